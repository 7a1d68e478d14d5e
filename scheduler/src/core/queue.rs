//! The queue pass: which pending jobs start now, which preemptible jobs make way, and, for
//! every job that waits, why and until when.
//!
//! Policy, all of it here and deterministic for the same inputs:
//! - **Order.** Orgs take turns by fair share (decayed usage / weight, lowest first; ties by
//!   name); within an org, higher priority first, then older first. Placing a job adds its
//!   expected cost to its org's usage at once, so orgs interleave within one pass.
//! - **Limits.** A job over its org's budget, cap or longest runtime waits, saying which.
//! - **Backfill.** A job starts now only on devices free for its whole max runtime. The
//!   first `reserve_depth` blocked jobs of each class (one under EASY backfill) get a planned
//!   start: their devices are held for them from that instant, so later, smaller jobs can
//!   only use the gap before it and large jobs are not starved.
//! - **Preemptible jobs** hold no claim in the calendar. They run on free devices or on
//!   booked-but-idle ones, and are preempted when a waiting non-preemptible job could start
//!   on their devices (once they have run the minimum runtime).
//! - **All or nothing.** A job gets `count` devices on each of `nodes` nodes, or none.

use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use super::accounts::{Accounts, Ask, ChargePlan, LimitRefusal};
use super::admission::Request;
use super::bitset::BitSet;
use super::cluster::Cluster;
use super::fairshare::{Usage, share};

/// A job waiting in the queue. Its strings borrow from the job's row where they can: a
/// pass over 100k pending jobs would otherwise copy 400k strings before it decides
/// anything.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob<'a> {
    /// Job id.
    pub id: Cow<'a, str>,
    /// Its org.
    pub org: Cow<'a, str>,
    /// Device class.
    pub class: Cow<'a, str>,
    /// Devices on each node.
    pub count: u32,
    /// Nodes (at least 1).
    pub nodes: u32,
    /// Max runtime, ms.
    pub runtime_ms: i64,
    /// Priority within its org (higher first).
    pub priority: i32,
    /// When it was submitted (older first among equal priorities).
    pub submitted_ms: i64,
    /// Preemptible work.
    pub preemptible: bool,
    /// Budget units per device-hour of its class.
    pub rate: f64,
    /// The project to charge first.
    pub project: Option<Cow<'a, str>>,
}

/// A running preemptible job and the devices it uses (held outside the calendar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// Job id.
    pub job: String,
    /// Device class.
    pub class: String,
    /// Devices it uses.
    pub devices: Vec<String>,
    /// When it was placed.
    pub started_ms: i64,
}

/// A device of an active booking that its owner is not using now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleBooked {
    /// Device UUID.
    pub device: String,
    /// Its class.
    pub class: String,
    /// Its node.
    pub node: String,
    /// The booking's end: the device is lendable only before it.
    pub until: i64,
}

/// How waiting jobs are protected from being overtaken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backfill {
    /// No planned starts: any job that fits runs (large jobs may starve).
    None,
    /// The top blocked job of each class gets a planned start.
    #[default]
    Easy,
    /// The top `reserve_depth` blocked jobs of each class get planned starts.
    Conservative,
}

impl Backfill {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Backfill::None => "none",
            Backfill::Easy => "easy",
            Backfill::Conservative => "conservative",
        }
    }

    /// Parses `none`, `easy` or `conservative`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Backfill::None),
            "easy" => Some(Backfill::Easy),
            "conservative" => Some(Backfill::Conservative),
            _ => None,
        }
    }
}

/// Knobs of the queue pass.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanPolicy {
    /// Backfill mode.
    pub backfill: Backfill,
    /// Planned starts per class under conservative backfill.
    pub reserve_depth: u32,
    /// Preemptible jobs are not preempted before they ran this long.
    pub min_runtime_ms: i64,
    /// Time a preempted job gets between SIGTERM and SIGKILL.
    pub grace_ms: i64,
    /// How far ahead start estimates look.
    pub estimate_horizon_ms: i64,
}

impl Default for PlanPolicy {
    fn default() -> Self {
        PlanPolicy {
            backfill: Backfill::Easy,
            reserve_depth: 16,
            min_runtime_ms: 10 * 60_000,
            grace_ms: 10_000,
            estimate_horizon_ms: 31 * 24 * 3_600_000,
        }
    }
}

/// Everything a pass decides from, besides the calendar and the accounts.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The current time.
    pub now: i64,
    /// Pending jobs, in any order.
    pub jobs: &'a [QueuedJob<'a>],
    /// Fair-share weights by org (1 when absent).
    pub weights: &'a BTreeMap<String, f64>,
    /// Decayed usage by org, including running work.
    pub usage: &'a Usage,
    /// Running preemptible jobs.
    pub guests: &'a [Guest],
    /// Booked-but-idle devices preemptible jobs may use.
    pub idle_booked: &'a [IdleBooked],
    /// Knobs.
    pub policy: &'a PlanPolicy,
}

/// Why a job waits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Wait {
    /// Over one of its org's limits.
    Limit(LimitRefusal),
    /// Not enough free devices now.
    NoDevices {
        /// Class.
        class: String,
        /// Devices per node.
        count: u32,
        /// Nodes.
        nodes: u32,
        /// When they are expected to be free (within the estimate horizon).
        next_free: Option<i64>,
    },
    /// Not enough schedulable devices at all (nodes draining, down or unreachable; devices
    /// failed).
    NotSchedulable {
        /// Class.
        class: String,
        /// Devices needed in all.
        needed: u32,
        /// Schedulable devices of the class.
        schedulable: u32,
        /// Devices of the class.
        total: u32,
    },
    /// Preemptible jobs are being stopped to free its devices.
    Preempting {
        /// How many.
        jobs: usize,
    },
}

impl Wait {
    /// The reason in words, with instants formatted by `at`.
    pub fn describe(&self, at: impl Fn(i64) -> String) -> String {
        match self {
            Wait::Limit(r) => r.to_string(),
            Wait::NoDevices {
                class,
                count,
                nodes,
                next_free,
            } => {
                let what = if *nodes > 1 {
                    format!("waiting for {count} free {class} devices on each of {nodes} nodes")
                } else {
                    format!("waiting for {count} free {class} devices")
                };
                match next_free {
                    Some(t) => format!("{what}; next free at {}", at(*t)),
                    None => what,
                }
            }
            Wait::NotSchedulable {
                class,
                needed,
                schedulable,
                total,
            } => format!(
                "waiting for {needed} schedulable {class} devices ({schedulable} of {total} are \
                 schedulable now; the rest are on draining or unavailable nodes, or failed)"
            ),
            Wait::Preempting { jobs } => {
                format!("waiting for {jobs} preemptible job(s) to yield its devices")
            }
        }
    }
}

/// A job to start now.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Job id.
    pub job: String,
    /// Its devices, grouped by node.
    pub devices: Vec<String>,
    /// When it starts (the pass's now).
    pub start: i64,
    /// When it must stop.
    pub end: i64,
    /// Whether it holds a claim in the calendar (false for preemptible jobs).
    pub claim: bool,
    /// What it is charged.
    pub charge: Option<ChargePlan>,
}

/// One decision of a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start a job.
    Place(Placement),
    /// Stop a running preemptible job (and requeue it) so `for_job` can use its devices.
    Preempt {
        /// The preemptible job.
        job: String,
        /// The job that needs its devices.
        for_job: String,
    },
    /// The job keeps waiting.
    Wait {
        /// Job id.
        job: String,
        /// Why.
        why: Wait,
        /// When it is expected to start, if known.
        estimated_start: Option<i64>,
    },
}

/// Owner name of a planned start held for a waiting job during a pass.
fn shadow_owner(job: &str) -> String {
    format!("\u{0}plan:{job}")
}

/// An `f64` ordered totally (fair-share keys).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Per-class state of one pass.
#[derive(Default)]
struct ClassPass {
    /// Slots held by preemptible jobs (running or placed in this pass).
    guests: BitSet,
    /// Slots of guests that may not be preempted yet.
    protected: BitSet,
    /// Whether any guest holds a device of the class.
    has_guests: bool,
    /// Shapes `(count, nodes, runtime)` that did not fit now: anything at least as large
    /// does not fit either, as claims only grow during a pass.
    failed: Vec<(u32, u32, i64)>,
    /// Planned starts given so far.
    shadows: u32,
    /// Holds given so far to jobs waiting for guests still within their minimum runtime.
    holds: u32,
    /// Start estimates by shape; cleared when a planned start is added.
    estimates: HashMap<(u32, u32, i64), Option<i64>>,
    /// The class's (total, schedulable) devices, once asked (they do not change in a pass).
    counts: Option<(u32, u32)>,
}

impl ClassPass {
    /// Whether a shape at most as large as the job's already failed to fit now.
    fn dominated(&self, job: &QueuedJob<'_>) -> bool {
        let nodes = job.nodes.max(1);
        self.failed
            .iter()
            .any(|&(c, n, r)| job.count >= c && nodes >= n && job.runtime_ms >= r)
    }
}

/// Runs one queue pass. Placed non-preemptible jobs get their claims added to `cluster`
/// and their charges and holdings recorded in `accounts`; nothing else changes (planned
/// starts are removed before returning). Decisions come in the order they were made.
pub fn plan(
    cluster: &mut Cluster,
    accounts: &mut Accounts,
    input: &PlanInput<'_>,
) -> Vec<Decision> {
    let now = input.now;
    let policy = input.policy;
    let mut usage: BTreeMap<&str, f64> = BTreeMap::new();

    let weight = |org: &str| input.weights.get(org).copied().unwrap_or(1.0);
    let mut classes: BTreeMap<&str, ClassPass> = BTreeMap::new();
    for g in input.guests {
        let cp = classes.entry(g.class.as_str()).or_default();
        let mask = cluster.slot_mask(&g.class, g.devices.iter().map(String::as_str));
        cp.guests.union_with(&mask);
        cp.has_guests = true;
        if now - g.started_ms < policy.min_runtime_ms {
            cp.protected.union_with(&mask);
        }
    }
    // Guests by device, to know whom a placement preempts.
    let guest_of: HashMap<&str, &Guest> = input
        .guests
        .iter()
        .flat_map(|g| g.devices.iter().map(move |d| (d.as_str(), g)))
        .collect();
    // Booked-but-idle devices a guest already runs on are not lent twice.
    let mut idle_pool = IdlePool::new(input.idle_booked, &guest_of, now);
    let mut preempted: BTreeSet<&str> = BTreeSet::new();
    let mut shadows: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(input.jobs.len());

    // Regular jobs first, then preemptible ones on what is left: preemptible work never
    // takes devices a regular job of this pass (or its planned start) needs.
    for preemptible in [false, true] {
        // Each org's queue, best first (reversed, so `pop` takes the best).
        let mut queues: BTreeMap<&str, Vec<&QueuedJob<'_>>> = BTreeMap::new();
        for j in input.jobs.iter().filter(|j| j.preemptible == preemptible) {
            queues.entry(&*j.org).or_default().push(j);
        }
        for q in queues.values_mut() {
            q.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then(a.submitted_ms.cmp(&b.submitted_ms))
                    .then(a.id.cmp(&b.id))
                    .reverse()
            });
        }
        let mut heap: BinaryHeap<Reverse<(Key, &str)>> = BinaryHeap::new();
        for &org in queues.keys() {
            let u = *usage.entry(org).or_insert_with(|| input.usage.get(org));
            heap.push(Reverse((Key(share(u, weight(org))), org)));
        }
        while let Some(Reverse((_, org))) = heap.pop() {
            let Some(job) = queues.get_mut(org).and_then(Vec::pop) else {
                continue;
            };
            let cp = classes.entry(&*job.class).or_default();
            let end = now.saturating_add(job.runtime_ms.max(1));
            let ask = Ask {
                org: &job.org,
                class: &job.class,
                rate: job.rate,
                devices: job.count * job.nodes.max(1),
                start: now,
                end,
                now,
                capped: !job.preemptible,
                project: job.project.as_deref(),
            };
            let decision = match accounts.admit(&ask) {
                Err(refusal) => Decision::Wait {
                    job: job.id.to_string(),
                    why: Wait::Limit(refusal),
                    estimated_start: None,
                },
                Ok(charge) if job.preemptible => {
                    place_guest(cluster, cp, job, now, end, charge, &mut idle_pool)
                }
                Ok(charge) => {
                    let ctx = Ctx {
                        now,
                        end,
                        policy,
                        guest_of: &guest_of,
                    };
                    let d = place_or_wait(
                        cluster,
                        cp,
                        job,
                        charge,
                        &ctx,
                        &mut preempted,
                        &mut shadows,
                        &mut out,
                    );
                    if let Decision::Wait {
                        why: Wait::NoDevices { .. },
                        ..
                    } = &d
                        && !cp.dominated(job)
                    {
                        cp.failed
                            .push((job.count, job.nodes.max(1), job.runtime_ms));
                    }
                    d
                }
            };
            let mut more = 0.0;
            if let Decision::Place(p) = &decision {
                if let Some(c) = &p.charge {
                    accounts.add_charged(&job.org, &c.key, c.period_start, c.amount_ms);
                }
                if p.claim {
                    accounts.hold(
                        &job.org,
                        &job.class,
                        &job.id,
                        p.start,
                        p.end,
                        job.count * job.nodes.max(1),
                    );
                }
                more =
                    (p.end - p.start) as f64 * f64::from(job.count * job.nodes.max(1)) * job.rate;
            }
            out.push(decision);
            let u = usage.entry(org).or_default();
            *u += more;
            if queues.get(org).is_some_and(|q| !q.is_empty()) {
                heap.push(Reverse((Key(share(*u, weight(org))), org)));
            }
        }
    }
    for s in shadows {
        cluster.remove_claims(&s);
    }
    out
}

/// What every decision of a pass shares.
struct Ctx<'a, 'b> {
    now: i64,
    end: i64,
    policy: &'b PlanPolicy,
    /// The running guest on each device it holds.
    guest_of: &'b HashMap<&'a str, &'a Guest>,
}

impl<'a> Ctx<'a, '_> {
    /// The guests running on `devices`.
    fn guests_on(&self, devices: &[String]) -> BTreeMap<&'a str, &'a Guest> {
        devices
            .iter()
            .filter_map(|d| self.guest_of.get(d.as_str()))
            .map(|g| (g.job.as_str(), *g))
            .collect()
    }
}

/// Holds `devices` for `job` from `now` to `end` during the pass, so no later job of the
/// pass takes them (the hold is removed when the pass ends).
fn hold(
    cluster: &mut Cluster,
    job: &QueuedJob<'_>,
    devices: &[String],
    now: i64,
    end: i64,
    shadows: &mut Vec<String>,
) {
    if cluster
        .add_claim(&shadow_owner(&job.id), devices, now, end)
        .is_ok()
    {
        shadows.push(shadow_owner(&job.id));
    }
}

/// Places a non-preemptible job now, or preempts guests for it, or decides how it waits.
#[allow(clippy::too_many_arguments)]
fn place_or_wait<'a>(
    cluster: &mut Cluster,
    cp: &mut ClassPass,
    job: &'a QueuedJob<'a>,
    charge: Option<ChargePlan>,
    ctx: &Ctx<'a, '_>,
    preempted: &mut BTreeSet<&'a str>,
    shadows: &mut Vec<String>,
    out: &mut Vec<Decision>,
) -> Decision {
    let (now, end, policy) = (ctx.now, ctx.end, ctx.policy);
    let req = Request {
        class: job.class.to_string(),
        count: job.count,
        site: None,
        start: now,
        end,
    };
    let nodes = job.nodes.max(1);
    if !cp.dominated(job) {
        if let Ok(devices) = cluster.find_gang_avoiding(&req, nodes, Some(&cp.guests)) {
            if let Err(e) = cluster.add_claim(&job.id, &devices, now, end) {
                debug_assert!(false, "a device found free could not be claimed: {e}");
            }
            return Decision::Place(Placement {
                job: job.id.to_string(),
                devices,
                start: now,
                end,
                claim: true,
                charge,
            });
        }
        // Would it fit if the guests that may be preempted made way?
        if cp.has_guests
            && let Ok(devices) = cluster.find_gang_avoiding(&req, nodes, Some(&cp.protected))
        {
            let victims = ctx.guests_on(&devices);
            // Hold the devices for this job so no later job takes or preempts for them.
            hold(cluster, job, &devices, now, end, shadows);
            let fresh: Vec<&str> = victims
                .keys()
                .copied()
                .filter(|v| !preempted.contains(v))
                .collect();
            for v in &fresh {
                preempted.insert(v);
                out.push(Decision::Preempt {
                    job: (*v).to_owned(),
                    for_job: job.id.to_string(),
                });
            }
            return Decision::Wait {
                job: job.id.to_string(),
                why: Wait::Preempting {
                    jobs: victims.len(),
                },
                estimated_start: Some(now + policy.grace_ms),
            };
        }
        // Only guests still within their minimum runtime stand in the way: hold the devices
        // so no new guest takes them, and start once the last of those guests may go.
        // Without this a large job could wait forever behind a stream of fresh guests. Like
        // planned starts, only the first blocked jobs of a class get one (one, or the
        // conservative depth), which keeps the pass's cost bounded.
        let hold_budget = match policy.backfill {
            Backfill::Conservative => policy.reserve_depth.max(1),
            Backfill::Easy | Backfill::None => 1,
        };
        if cp.has_guests
            && cp.holds < hold_budget
            && let Ok(devices) = cluster.find_gang(&req, nodes)
        {
            cp.holds += 1;
            let victims = ctx.guests_on(&devices);
            hold(cluster, job, &devices, now, end, shadows);
            let free_at = victims
                .values()
                .map(|g| g.started_ms.saturating_add(policy.min_runtime_ms))
                .max()
                .unwrap_or(now)
                .max(now);
            return Decision::Wait {
                job: job.id.to_string(),
                why: Wait::Preempting {
                    jobs: victims.len(),
                },
                estimated_start: Some(free_at.saturating_add(policy.grace_ms)),
            };
        }
    }
    let (total, schedulable) = *cp
        .counts
        .get_or_insert_with(|| cluster.class_counts(&job.class));
    let needed = job.count * nodes;
    if schedulable < needed {
        return Decision::Wait {
            job: job.id.to_string(),
            why: Wait::NotSchedulable {
                class: job.class.to_string(),
                needed,
                schedulable,
                total,
            },
            estimated_start: None,
        };
    }
    let horizon = now.saturating_add(policy.estimate_horizon_ms);
    let depth = match policy.backfill {
        Backfill::None => 0,
        Backfill::Easy => 1,
        Backfill::Conservative => policy.reserve_depth,
    };
    let shape = (job.count, nodes, job.runtime_ms);
    let estimate = if cp.shadows < depth {
        let at = cluster.earliest_gang(&req, nodes, horizon);
        if let Some(t) = at {
            let planned = Request {
                start: t,
                end: t.saturating_add(job.runtime_ms.max(1)),
                ..req.clone()
            };
            if let Ok(devices) = cluster.find_gang(&planned, nodes)
                && cluster
                    .add_claim(&shadow_owner(&job.id), &devices, planned.start, planned.end)
                    .is_ok()
            {
                shadows.push(shadow_owner(&job.id));
                cp.shadows += 1;
                cp.estimates.clear();
            }
        }
        at
    } else {
        *cp.estimates
            .entry(shape)
            .or_insert_with(|| cluster.earliest_gang(&req, nodes, horizon))
    };
    Decision::Wait {
        job: job.id.to_string(),
        why: Wait::NoDevices {
            class: job.class.to_string(),
            count: job.count,
            nodes,
            next_free: estimate,
        },
        estimated_start: estimate,
    }
}

/// Booked-but-idle devices no guest runs on, by class and node, taken as guests are placed.
struct IdlePool<'a> {
    by_class: HashMap<&'a str, BTreeMap<&'a str, Vec<&'a IdleBooked>>>,
}

impl<'a> IdlePool<'a> {
    /// The devices of `idle` still lendable at `now` that no running guest holds.
    fn new(idle: &'a [IdleBooked], guest_of: &HashMap<&str, &Guest>, now: i64) -> Self {
        let mut by_class: HashMap<&str, BTreeMap<&str, Vec<&IdleBooked>>> = HashMap::new();
        for d in idle {
            if d.until > now && !guest_of.contains_key(d.device.as_str()) {
                by_class
                    .entry(d.class.as_str())
                    .or_default()
                    .entry(d.node.as_str())
                    .or_default()
                    .push(d);
            }
        }
        for d in by_class.values_mut().flat_map(BTreeMap::values_mut) {
            d.sort_by(|a, b| a.device.cmp(&b.device));
            d.dedup_by(|a, b| a.device == b.device);
        }
        IdlePool { by_class }
    }

    /// Takes `count` devices of `class` on one node (the node with the fewest that fit, then
    /// by name; its devices by name).
    fn take(&mut self, class: &str, count: u32) -> Option<Vec<String>> {
        let nodes = self.by_class.get_mut(class)?;
        let node = *nodes
            .iter()
            .filter(|(_, v)| v.len() >= count as usize)
            .min_by_key(|(_, v)| v.len())?
            .0;
        let free = nodes.get_mut(node)?;
        Some(
            free.drain(..count as usize)
                .map(|d| d.device.clone())
                .collect(),
        )
    }
}

/// Places a preemptible job on free devices, else on booked-but-idle ones, else it waits.
///
/// Either way it may run its whole max runtime (what it is charged for): it holds no claim,
/// so whoever needs its devices later (the booking's holder, a booking that starts on them,
/// a waiting regular job) has it preempted and requeued; the end of the booking it borrowed
/// from does not cut it short.
#[allow(clippy::too_many_arguments)]
fn place_guest<'a>(
    cluster: &Cluster,
    cp: &mut ClassPass,
    job: &QueuedJob<'_>,
    now: i64,
    end: i64,
    charge: Option<ChargePlan>,
    idle_pool: &mut IdlePool<'a>,
) -> Decision {
    let req = Request {
        class: job.class.to_string(),
        count: job.count,
        site: None,
        start: now,
        end,
    };
    let nodes = job.nodes.max(1);
    let mut chosen = cluster
        .find_gang_avoiding(&req, nodes, Some(&cp.guests))
        .ok();
    if chosen.is_none() && nodes == 1 {
        chosen = idle_pool.take(&job.class, job.count);
    }
    match chosen {
        Some(devices) => {
            let mask = cluster.slot_mask(&job.class, devices.iter().map(String::as_str));
            cp.guests.union_with(&mask);
            cp.protected.union_with(&mask);
            cp.has_guests = true;
            Decision::Place(Placement {
                job: job.id.to_string(),
                devices,
                start: now,
                end,
                claim: false,
                charge,
            })
        }
        None => Decision::Wait {
            job: job.id.to_string(),
            why: Wait::NoDevices {
                class: job.class.to_string(),
                count: job.count,
                nodes,
                next_free: None,
            },
            estimated_start: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::accounts::Budget;
    use super::*;

    const H: i64 = 3_600_000;
    const NOW: i64 = 1_795_264_496_000;

    /// Nodes `n1..` of 4 `gpu` devices each, devices `<node>-d<i>`.
    fn centre(nodes: usize) -> Cluster {
        let mut c = Cluster::new();
        for i in 1..=nodes {
            let node = format!("n{i}");
            c.upsert_node(&node, "s", true);
            for d in 0..4 {
                c.upsert_device(&format!("{node}-d{d}"), &node, "gpu", true);
            }
        }
        c
    }

    fn job(id: &str, org: &str, count: u32, hours: i64) -> QueuedJob<'static> {
        QueuedJob {
            id: id.to_owned().into(),
            org: org.to_owned().into(),
            class: "gpu".into(),
            count,
            nodes: 1,
            runtime_ms: hours * H,
            priority: 0,
            submitted_ms: NOW - 1000,
            preemptible: false,
            rate: 1.0,
            project: None,
        }
    }

    struct World {
        weights: BTreeMap<String, f64>,
        usage: Usage,
        guests: Vec<Guest>,
        idle: Vec<IdleBooked>,
        policy: PlanPolicy,
    }

    impl World {
        fn new() -> Self {
            World {
                weights: BTreeMap::new(),
                usage: Usage::new(NOW, 24 * H),
                guests: Vec::new(),
                idle: Vec::new(),
                policy: PlanPolicy::default(),
            }
        }

        fn run(&self, c: &mut Cluster, a: &mut Accounts, jobs: &[QueuedJob]) -> Vec<Decision> {
            plan(
                c,
                a,
                &PlanInput {
                    now: NOW,
                    jobs,
                    weights: &self.weights,
                    usage: &self.usage,
                    guests: &self.guests,
                    idle_booked: &self.idle,
                    policy: &self.policy,
                },
            )
        }
    }

    fn placed(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Place(p) => Some(p.job.as_str()),
                _ => None,
            })
            .collect()
    }

    fn waiting<'a>(d: &'a [Decision], id: &str) -> Option<(&'a Wait, Option<i64>)> {
        d.iter().find_map(|d| match d {
            Decision::Wait {
                job,
                why,
                estimated_start,
            } if job == id => Some((why, *estimated_start)),
            _ => None,
        })
    }

    #[test]
    fn orgs_take_turns_by_weighted_usage() {
        let mut c = centre(1);
        let mut w = World::new();
        w.usage.add("heavy", 100.0 * H as f64, NOW);
        w.weights.insert("heavy".into(), 1.0);
        let jobs = vec![
            job("h1", "heavy", 1, 1),
            job("h2", "heavy", 1, 1),
            job("l1", "light", 1, 1),
            job("l2", "light", 1, 1),
            job("l3", "light", 1, 1),
        ];
        let d = w.run(&mut c, &mut Accounts::new(), &jobs);
        // Four devices: the light org (no usage) goes first until its usage passes heavy's.
        assert_eq!(placed(&d), vec!["l1", "l2", "l3", "h1"]);
        // With a large weight the heavy org's usage counts for little: once the light org
        // has run one job, the heavy org's share is the lower one.
        let mut c = centre(1);
        w.weights.insert("heavy".into(), 1000.0);
        let d = w.run(&mut c, &mut Accounts::new(), &jobs);
        assert_eq!(placed(&d), vec!["l1", "h1", "h2", "l2"]);
    }

    #[test]
    fn priority_orders_jobs_within_an_org() {
        let mut c = centre(1);
        let mut hi = job("b-hi", "o", 4, 1);
        hi.priority = 5;
        let jobs = vec![job("a-old", "o", 4, 1), hi];
        let d = World::new().run(&mut c, &mut Accounts::new(), &jobs);
        assert_eq!(placed(&d), vec!["b-hi"]);
        let (why, est) = waiting(&d, "a-old").unwrap();
        assert_eq!(est, Some(NOW + H));
        assert_eq!(
            why.describe(|t| format!("+{}h", (t - NOW) / H)),
            "waiting for 4 free gpu devices; next free at +1h"
        );
    }

    #[test]
    fn easy_backfill_protects_the_head_job() {
        let mut c = centre(2);
        // n1 busy for 2 h, n2 busy for 10 h on 2 devices.
        let n1: Vec<String> = (0..4).map(|i| format!("n1-d{i}")).collect();
        c.add_claim("x", &n1, NOW, NOW + 2 * H).unwrap();
        c.add_claim("y", &["n2-d0".into(), "n2-d1".into()], NOW, NOW + 10 * H)
            .unwrap();
        let mut big = job("big", "o", 4, 5);
        big.submitted_ms -= 10;
        let long_small = job("long", "o", 2, 3);
        let jobs = vec![big, long_small];
        let mut w = World::new();
        // Without backfill protection the 3-hour job takes n2's free pair... which does not
        // delay the head (it needs a whole node, n1 frees at +2h): it may run.
        let d = w.run(&mut c.clone(), &mut Accounts::new(), &jobs);
        assert_eq!(placed(&d), vec!["long"]);
        assert_eq!(waiting(&d, "big").unwrap().1, Some(NOW + 2 * H));
        // A small job that would sit on n1 past +2h must not start there.
        let mut c2 = c.clone();
        c2.remove_claims("y");
        c2.add_claim(
            "y",
            &(0..4).map(|i| format!("n2-d{i}")).collect::<Vec<_>>(),
            NOW,
            NOW + 10 * H,
        )
        .unwrap();
        c2.remove_claims("x");
        c2.add_claim("x", &["n1-d0".into(), "n1-d1".into()], NOW, NOW + 2 * H)
            .unwrap();
        let d = w.run(&mut c2.clone(), &mut Accounts::new(), &jobs);
        assert!(
            placed(&d).is_empty(),
            "the 3 h job would delay the head: {d:?}"
        );
        let short = job("short", "o", 2, 1);
        let d = w.run(
            &mut c2.clone(),
            &mut Accounts::new(),
            &[jobs[0].clone(), short.clone()],
        );
        assert_eq!(
            placed(&d),
            vec!["short"],
            "a job done before the head's start backfills"
        );
        // With backfill off, the long job starts and the head is pushed back.
        w.policy.backfill = Backfill::None;
        let d = w.run(&mut c2, &mut Accounts::new(), &jobs);
        assert_eq!(placed(&d), vec!["long"]);
    }

    #[test]
    fn limits_make_jobs_wait_and_charges_are_recorded() {
        let mut c = centre(1);
        let mut a = Accounts::new();
        a.set_budget(
            "o",
            "gpu",
            Budget {
                allowance_ms: Some(3 * H),
                max_devices: Some(2),
                ..Budget::default()
            },
        );
        let jobs = vec![
            job("a", "o", 2, 1),
            job("b", "o", 1, 1),
            job("c", "o", 1, 2),
        ];
        let d = World::new().run(&mut c, &mut a, &jobs);
        assert_eq!(placed(&d), vec!["a"]);
        let (why, _) = waiting(&d, "b").unwrap();
        assert!(
            why.describe(|_| String::new())
                .starts_with("cap on concurrent gpu devices")
        );
        let (p, _) = crate::core::Period::Month.bounds(NOW);
        assert_eq!(a.totals("o", "gpu", p).charged, 2 * H);
        assert_eq!(a.left("o", "gpu", NOW), Some(H));
        let (why, _) = waiting(&d, "c").unwrap();
        assert_eq!(
            why.describe(|_| String::new()),
            "cap on concurrent gpu devices reached: 2 allowed, 2 held, 1 requested"
        );
    }

    #[test]
    fn preemptible_jobs_use_idle_bookings_and_make_way() {
        let mut c = centre(1);
        let all: Vec<String> = (0..4).map(|i| format!("n1-d{i}")).collect();
        c.add_claim("booking", &all, NOW - H, NOW + 5 * H).unwrap();
        let mut w = World::new();
        w.idle = all
            .iter()
            .map(|d| IdleBooked {
                device: d.clone(),
                class: "gpu".into(),
                node: "n1".into(),
                until: NOW + 5 * H,
            })
            .collect();
        let mut guest = job("guest", "o", 2, 8);
        guest.preemptible = true;
        let d = w.run(&mut c, &mut Accounts::new(), &[guest.clone()]);
        let Decision::Place(p) = &d[0] else {
            panic!("{d:?}")
        };
        assert!(!p.claim, "guests hold no claim");
        assert_eq!(
            p.end,
            NOW + 8 * H,
            "a guest may run its max runtime; the booking's end does not cut it short"
        );
        assert_eq!(c.claims().len(), 4, "only the booking's claims");

        // Idle booked devices a guest already runs on are not lent to a second guest.
        w.guests = vec![Guest {
            job: "guest".into(),
            class: "gpu".into(),
            devices: p.devices.clone(),
            started_ms: NOW,
        }];
        let mut second = job("second", "o", 4, 8);
        second.preemptible = true;
        let d = w.run(&mut c, &mut Accounts::new(), &[second]);
        assert!(placed(&d).is_empty(), "{d:?}");
        let mut third = job("third", "o", 2, 8);
        third.preemptible = true;
        let d = w.run(&mut c, &mut Accounts::new(), &[third]);
        let Decision::Place(q) = &d[0] else {
            panic!("{d:?}")
        };
        assert!(q.devices.iter().all(|d| !p.devices.contains(d)), "{d:?}");
        w.guests.clear();

        // On free devices, a waiting regular job preempts a guest that ran long enough.
        let mut c = centre(1);
        let mut w = World::new();
        w.guests = vec![Guest {
            job: "g".into(),
            class: "gpu".into(),
            devices: all.clone(),
            started_ms: NOW - H,
        }];
        let d = w.run(&mut c, &mut Accounts::new(), &[job("need", "p", 4, 1)]);
        assert_eq!(
            d[0],
            Decision::Preempt {
                job: "g".into(),
                for_job: "need".into()
            }
        );
        assert!(matches!(
            waiting(&d, "need").unwrap().0,
            Wait::Preempting { jobs: 1 }
        ));
        assert!(
            c.claims().is_empty(),
            "planned holds are removed after the pass"
        );
        // ...but not before its minimum runtime: it holds the devices meanwhile, so a new
        // guest does not take them, and says when it expects to start.
        // (Even with no backfill: this hold is not a planned start.)
        w.guests[0].started_ms = NOW - 60_000;
        w.guests[0].devices = all[..1].to_vec();
        w.policy.backfill = Backfill::None;
        let mut newcomer = job("newcomer", "q", 1, 1);
        newcomer.preemptible = true;
        let d = w.run(
            &mut c,
            &mut Accounts::new(),
            &[job("need", "p", 4, 1), newcomer],
        );
        assert!(d.iter().all(|d| !matches!(d, Decision::Preempt { .. })));
        let (why, at) = waiting(&d, "need").unwrap();
        assert!(matches!(why, Wait::Preempting { jobs: 1 }), "{why:?}");
        let p = &w.policy;
        assert_eq!(at, Some(NOW - 60_000 + p.min_runtime_ms + p.grace_ms));
        assert!(
            placed(&d).is_empty(),
            "the held devices are not lent: {d:?}"
        );
        assert!(c.claims().is_empty());
    }

    #[test]
    fn multi_node_jobs_are_all_or_nothing() {
        let mut c = centre(3);
        c.add_claim("x", &["n3-d0".into()], NOW, NOW + 4 * H)
            .unwrap();
        let mut gang = job("gang", "o", 4, 1);
        gang.nodes = 3;
        let d = World::new().run(&mut c, &mut Accounts::new(), &[gang.clone()]);
        assert!(placed(&d).is_empty());
        assert_eq!(waiting(&d, "gang").unwrap().1, Some(NOW + 4 * H));
        assert_eq!(c.claims().len(), 1, "nothing held for a job that waits");
        gang.nodes = 2;
        let d = World::new().run(&mut c, &mut Accounts::new(), &[gang]);
        let Decision::Place(p) = &d[0] else {
            panic!("{d:?}")
        };
        assert_eq!(p.devices.len(), 8);
    }

    #[test]
    fn unschedulable_capacity_says_so() {
        let mut c = centre(2);
        c.set_node_schedulable("n2", false);
        let d = World::new().run(&mut c, &mut Accounts::new(), &[job("j", "o", 4, 1)]);
        assert_eq!(placed(&d), vec!["j"]);
        let mut j = job("k", "o", 4, 1);
        j.nodes = 2;
        let d = World::new().run(&mut c, &mut Accounts::new(), &[j]);
        assert!(matches!(
            waiting(&d, "k").unwrap().0,
            Wait::NotSchedulable {
                schedulable: 4,
                needed: 8,
                ..
            }
        ));
    }
}
