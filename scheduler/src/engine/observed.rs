//! What the scheduler observes but does not decide: agents' last calls, device telemetry,
//! why pending jobs wait, and the generation of each node's desired work as committed.
//! None of it is durable; none of it waits for the writer.

use crate::core::Wait;
use crate::store::Evidence;
use berth_proto::v1;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why a node's lease lapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lapse {
    /// Its agent has not called within the lease.
    Silent,
    /// Its agent calls but has not taken its desired work for two leases.
    Behind,
}

/// A map by node name or device uuid, looked up several times in every heartbeat (10k
/// agents: 2,000 a second), so hashed with foldhash rather than SipHash; its quality
/// variant, seeded at random per process, as the names come from the agents.
type AgentMap<V> = HashMap<String, V, foldhash::quality::RandomState>;

/// Agents' last calls and their devices' latest samples.
#[derive(Debug, Default)]
pub struct Observed {
    seen: Mutex<AgentMap<(Instant, i64)>>,
    /// Since when each node's agent has reported an older generation than it was sent.
    behind: Mutex<AgentMap<Instant>>,
    telemetry: Mutex<AgentMap<v1::Telemetry>>,
    /// Before when no node can lapse, for the lease it was found with: the earliest
    /// lapse of the last scan that found none. Calls only move a node's lapse later, and
    /// a node enters the scan (joins, comes back, is loaded) only as it is seen, so
    /// scans before it can skip the nodes.
    horizon: Mutex<Option<(Instant, Duration)>>,
    /// The inventory each node's agent last reported in full, with its digest: later
    /// heartbeats may name the digest instead of reporting it again.
    inventories: Mutex<AgentMap<Arc<Inventory>>>,
    /// What each running job did so far, by job and node (its agents' latest reports).
    evidence: Mutex<HashMap<String, BTreeMap<String, Evidence>>>,
}

/// A node's device inventory as its agent last reported it in full (telemetry left out),
/// and the agent's digest of it.
#[derive(Debug)]
pub struct Inventory {
    /// The agent's digest (never 0).
    pub digest: u64,
    /// The reports, without telemetry.
    pub devices: Vec<v1::DeviceReport>,
    /// The node's device stamp ([`crate::state::NodeEntry::devices_stamp`]) when its
    /// device rows were last found as these reports have them (0: not yet).
    compared: AtomicU64,
}

impl PartialEq for Inventory {
    fn eq(&self, other: &Inventory) -> bool {
        self.digest == other.digest && self.devices == other.devices
    }
}

impl Inventory {
    /// The inventory of a complete report, telemetry left out.
    pub fn new(digest: u64, reports: &[v1::DeviceReport]) -> Inventory {
        Inventory {
            digest,
            devices: reports
                .iter()
                .map(|d| v1::DeviceReport {
                    telemetry: None,
                    ..d.clone()
                })
                .collect(),
            compared: AtomicU64::new(0),
        }
    }

    /// Whether the node's device rows were found as these reports have them, with no
    /// device of the node changed since (`stamp`: its device stamp now).
    pub fn settled(&self, stamp: u64) -> bool {
        self.compared.load(Ordering::Relaxed) == stamp
    }

    /// Records that the node's device rows are as these reports have them, at `stamp`.
    pub fn compared_at(&self, stamp: u64) {
        self.compared.store(stamp, Ordering::Relaxed);
    }

    /// The uuid of the device of `index`.
    pub fn uuid(&self, index: u32) -> Option<&str> {
        self.devices
            .iter()
            .find(|d| d.index == index)
            .map(|d| d.uuid.as_str())
    }
}

/// Jobs' evidence so far, combined across their nodes, by job id.
pub type Reported = HashMap<String, Evidence>;

impl Observed {
    /// Records that a node's agent called in now.
    pub fn seen(&self, node: &str) {
        let at = (Instant::now(), berth_proto::time::now_ms());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get_mut(node) {
            Some(v) => *v = at,
            None => {
                seen.insert(node.to_owned(), at);
            }
        }
    }

    /// When a node's agent last called in (`None`: not since this scheduler started).
    pub fn last_seen(&self, node: &str) -> Option<Instant> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(node).map(|v| v.0)
    }

    /// When a node's agent last called in, in ms since the epoch (`None`: not since this
    /// scheduler started).
    pub fn last_seen_ms(&self, node: &str) -> Option<i64> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(node).map(|v| v.1)
    }

    /// Gives every node a fresh lease (at start: agents get a full lease to reconnect).
    /// The wall time stays unknown until the agent really calls.
    pub fn seen_all<'a>(&self, nodes: impl IntoIterator<Item = &'a str>) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for n in nodes {
            let wall = seen.get(n).map_or(0, |v| v.1);
            seen.insert(n.to_owned(), (now, wall));
        }
    }

    /// Which of `nodes` have lapsed, and how: their agent has not called within `lease`,
    /// or has lagged its desired work for over twice that. Takes each lock once, however
    /// many nodes, and looks at none of them before the earliest moment one can lapse
    /// (each pass asks; 10k nodes take milliseconds).
    pub fn lapsed<'a>(
        &self,
        nodes: impl IntoIterator<Item = &'a str>,
        lease: Duration,
    ) -> Vec<(&'a str, Lapse)> {
        let now = Instant::now();
        let mut horizon = self.horizon.lock().unwrap_or_else(|e| e.into_inner());
        if horizon.is_some_and(|(at, l)| l == lease && now < at) {
            return Vec::new();
        }
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let behind = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        let mut earliest: Option<Instant> = None;
        let lapsed: Vec<(&'a str, Lapse)> = nodes
            .into_iter()
            .filter_map(|n| {
                let lagging = if behind.is_empty() {
                    None
                } else {
                    behind.get(n)
                };
                let behind_until = lagging.map(|since| *since + lease * 2);
                let silent_until = seen.get(n).map(|s| s.0 + lease);
                if behind_until.is_some_and(|u| now > u) {
                    Some((n, Lapse::Behind))
                } else if silent_until.is_none_or(|u| now > u) {
                    Some((n, Lapse::Silent))
                } else {
                    let until = silent_until.into_iter().chain(behind_until).min();
                    earliest = earliest.into_iter().chain(until).min();
                    None
                }
            })
            .collect();
        // Lapsed nodes are looked at again until they leave the scan (their pass may fail).
        *horizon = match lapsed.is_empty() {
            true => earliest.map(|at| (at, lease)),
            false => None,
        };
        lapsed
    }

    /// Records whether a node's agent has applied the desired work it was sent.
    pub fn applied(&self, node: &str, caught_up: bool) {
        let mut behind = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        if caught_up {
            if !behind.is_empty() {
                behind.remove(node);
            }
        } else {
            behind.entry(node.to_owned()).or_insert_with(Instant::now);
        }
    }

    /// Stores the latest samples of some devices.
    pub fn telemetry<'a>(&self, samples: impl IntoIterator<Item = (&'a str, v1::Telemetry)>) {
        let mut t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
        for (uuid, sample) in samples {
            match t.get_mut(uuid) {
                Some(old) => *old = sample,
                None => {
                    t.insert(uuid.to_owned(), sample);
                }
            }
        }
    }

    /// The inventory `node` last reported in full, if it is the one of `digest`.
    pub fn inventory(&self, node: &str, digest: u64) -> Option<Arc<Inventory>> {
        let all = self.inventories.lock().unwrap_or_else(|e| e.into_inner());
        all.get(node).filter(|i| i.digest == digest).cloned()
    }

    /// Keeps the inventory `node` reported in full (a digest of 0 keeps nothing, and
    /// forgets what was kept).
    pub fn keep_inventory(&self, node: &str, inventory: Inventory) {
        let mut all = self.inventories.lock().unwrap_or_else(|e| e.into_inner());
        if inventory.digest == 0 {
            all.remove(node);
        } else if all.get(node).is_none_or(|i| **i != inventory) {
            all.insert(node.to_owned(), Arc::new(inventory));
        }
    }

    /// Forgets the inventory kept for `node` (it joined again, or reports with no digest).
    pub fn forget_inventory(&self, node: &str) {
        let mut all = self.inventories.lock().unwrap_or_else(|e| e.into_inner());
        all.remove(node);
    }

    /// A device's latest sample.
    pub fn sample(&self, uuid: &str) -> Option<v1::Telemetry> {
        let t = self.telemetry.lock().unwrap_or_else(|e| e.into_inner());
        t.get(uuid).copied()
    }

    /// Takes in what `node` reports its jobs did so far, and returns the evidence of
    /// each reported job combined across its nodes (jobs with no report are left out).
    pub fn job_evidence<'a>(
        &self,
        node: &str,
        jobs: impl IntoIterator<Item = &'a v1::ObservedJob>,
    ) -> Reported {
        let mut all = self.evidence.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Reported::new();
        for obs in jobs {
            match obs.evidence.as_ref().map(Evidence::from_proto) {
                Some(Ok(e)) => {
                    all.entry(obs.job_id.clone())
                        .or_default()
                        .insert(node.to_owned(), e);
                }
                // A report the agent got wrong: the job keeps what it had.
                Some(Err(error)) => {
                    tracing::warn!(%node, job_id = %obs.job_id, %error, "ignoring bad evidence");
                }
                None => {}
            }
            if let Some(combined) = all
                .get(&obs.job_id)
                .and_then(|p| Evidence::merge(p.values()))
            {
                out.insert(obs.job_id.clone(), combined);
            }
        }
        out
    }

    /// A running job's evidence so far, combined across its nodes.
    pub fn evidence_of(&self, job: &str) -> Option<Evidence> {
        let all = self.evidence.lock().unwrap_or_else(|e| e.into_inner());
        all.get(job).and_then(|p| Evidence::merge(p.values()))
    }

    /// Forgets the evidence of jobs `live` says are no longer running.
    pub fn keep_evidence(&self, live: impl Fn(&str) -> bool) {
        let mut all = self.evidence.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|job, _| live(job));
    }
}

/// Why a pending job waits, as data: reasons in words and metric labels are derived
/// from it, never the other way round.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PendingWhy {
    /// What the queue pass said.
    Queue(Wait),
    /// The queue pass said it cannot be scheduled, and these nodes of its class drain.
    Draining {
        /// The draining nodes.
        nodes: Vec<String>,
        /// What the queue pass said.
        wait: Wait,
    },
    /// Its reservation has not started.
    ReservationNotStarted {
        /// When it starts.
        start_ms: i64,
    },
    /// Its reservation's devices are busy with other jobs.
    ReservationBusy {
        /// Devices it needs.
        count: u32,
    },
}

/// The bounded label values of `berth_jobs_pending{reason}`.
pub const PENDING_KINDS: &[&str] = &[
    "budget",
    "cap",
    "capacity",
    "schedulable",
    "preempting",
    "reservation",
    "other",
];

impl PendingWhy {
    /// The reason in words.
    pub fn describe(&self) -> String {
        let at = crate::convert::local_hint;
        match self {
            PendingWhy::Queue(w) => w.describe(at),
            PendingWhy::Draining { nodes, wait } => {
                format!(
                    "node draining ({}): {}",
                    nodes.join(", "),
                    wait.describe(at)
                )
            }
            PendingWhy::ReservationNotStarted { start_ms } => {
                format!("waiting for its reservation to start at {}", at(*start_ms))
            }
            PendingWhy::ReservationBusy { count } => {
                format!("waiting for {count} of its reservation's devices to be free of other jobs")
            }
        }
    }

    /// Its metric label (one of [`PENDING_KINDS`]).
    pub fn kind(&self) -> &'static str {
        use crate::core::LimitRefusal as L;
        match self {
            PendingWhy::Queue(Wait::Limit(L::Cap { .. })) => "cap",
            PendingWhy::Queue(Wait::Limit(_)) => "budget",
            PendingWhy::Queue(Wait::NoDevices { .. }) => "capacity",
            PendingWhy::Queue(Wait::NotSchedulable { .. }) | PendingWhy::Draining { .. } => {
                "schedulable"
            }
            PendingWhy::Queue(Wait::Preempting { .. }) => "preempting",
            PendingWhy::ReservationNotStarted { .. } | PendingWhy::ReservationBusy { .. } => {
                "reservation"
            }
        }
    }
}

/// A pending job's latest wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// Why it waits (shared: most of a queue's jobs wait for the same reason).
    pub why: Arc<PendingWhy>,
    /// When it is expected to start, if known.
    pub estimated_start: Option<i64>,
}

/// Hints by job id. Looked up for every job of a listing (500 a page), so hashed with
/// foldhash rather than SipHash: the ids are the scheduler's own, and the seed is still
/// random per process.
pub type HintMap = HashMap<String, Hint, foldhash::fast::RandomState>;

/// The latest hints: those of jobs in bookings, replaced after each pass, and those of
/// the queue, replaced after each pass that planned it (a queue that only waited on an
/// unchanged state keeps its hints without a copy of them).
#[derive(Debug, Default)]
pub struct Hints(RwLock<HintSet>);

/// Hints as one pass left them; cheap to clone (two shared maps).
#[derive(Debug, Default, Clone)]
pub struct HintSet {
    bookings: Arc<HintMap>,
    queue: Arc<HintMap>,
}

impl HintSet {
    /// One job's hint.
    pub fn get(&self, job: &str) -> Option<&Hint> {
        self.bookings.get(job).or_else(|| self.queue.get(job))
    }
}

impl Hints {
    /// The current hints.
    pub fn get(&self) -> HintSet {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One job's hint.
    pub fn of(&self, job: &str) -> Option<Hint> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(job)
            .cloned()
    }

    /// Replaces the hints of jobs in bookings, and those of the queue when it was
    /// planned (`None`: the last plan's stand). Returns the hints it replaced, so that
    /// the caller frees them (a row per pending job) outside the lock, where it likes.
    #[must_use = "the replaced hints are freed where they are dropped"]
    pub fn set(&self, bookings: HintMap, queue: Option<HintMap>) -> HintSet {
        let mut h = self.0.write().unwrap_or_else(|e| e.into_inner());
        let bookings = std::mem::replace(&mut h.bookings, Arc::new(bookings));
        let queue = match queue {
            Some(q) => std::mem::replace(&mut h.queue, Arc::new(q)),
            None => Arc::clone(&h.queue),
        };
        HintSet { bookings, queue }
    }
}

/// Publishes each node's committed generation to its waiting heartbeats.
#[derive(Debug, Default)]
pub struct Generations(Mutex<AgentMap<watch::Sender<i64>>>);

impl Generations {
    /// A receiver of the node's committed generation (every known node has one: they are
    /// published at load and after every commit that changes a node).
    pub fn subscribe(&self, node: &str) -> watch::Receiver<i64> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(node) {
            return tx.subscribe();
        }
        map.entry(node.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Publishes a committed generation.
    pub fn publish(&self, node: &str, generation: i64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(node) {
            Some(tx) => {
                tx.send_if_modified(|g| {
                    let changed = *g != generation;
                    *g = generation;
                    changed
                });
            }
            None => {
                map.insert(node.to_owned(), watch::channel(generation).0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_lapse_once_their_lease_passes_and_not_before() {
        let o = Observed::default();
        let lease = Duration::from_millis(1000);
        o.seen("a");
        o.seen("b");
        assert!(o.lapsed(["a", "b"], lease).is_empty());
        std::thread::sleep(lease / 2);
        o.seen("b");
        std::thread::sleep(lease * 3 / 4);
        // a's lease passed; b called since.
        assert_eq!(o.lapsed(["a", "b"], lease), [("a", Lapse::Silent)]);
        // Until it leaves the scan, it is found again.
        assert_eq!(o.lapsed(["a", "b"], lease), [("a", Lapse::Silent)]);
        std::thread::sleep(lease);
        assert_eq!(o.lapsed(["b"], lease), [("b", Lapse::Silent)]);
        // Calling in again, it is live, however recently the last scan ran.
        o.seen("b");
        assert!(o.lapsed(["b"], lease).is_empty());
    }

    #[test]
    fn a_node_that_lags_its_work_for_two_leases_lapses_though_it_calls() {
        let o = Observed::default();
        let lease = Duration::from_millis(400);
        o.seen("a");
        o.applied("a", false);
        for _ in 0..2 {
            std::thread::sleep(lease / 4);
            o.seen("a");
            assert!(o.lapsed(["a"], lease).is_empty());
        }
        std::thread::sleep(lease * 7 / 4);
        o.seen("a");
        assert_eq!(o.lapsed(["a"], lease), [("a", Lapse::Behind)]);
        o.applied("a", true);
        assert!(o.lapsed(["a"], lease).is_empty());
    }

    #[test]
    fn an_inventory_is_found_by_its_digest_only() {
        let o = Observed::default();
        let reports = [v1::DeviceReport {
            uuid: "GPU-1".into(),
            index: 3,
            telemetry: Some(v1::Telemetry::default()),
            ..Default::default()
        }];
        o.keep_inventory("n1", Inventory::new(7, &reports));
        let kept = o.inventory("n1", 7).expect("kept");
        assert_eq!(kept.uuid(3), Some("GPU-1"));
        assert_eq!(kept.devices[0].telemetry, None);
        assert!(o.inventory("n1", 8).is_none());
        assert!(o.inventory("n2", 7).is_none());
        o.keep_inventory("n1", Inventory::new(0, &reports));
        assert!(o.inventory("n1", 7).is_none());
        o.keep_inventory("n1", Inventory::new(7, &reports));
        o.forget_inventory("n1");
        assert!(o.inventory("n1", 7).is_none());
    }
}
