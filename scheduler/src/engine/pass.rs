//! The scheduling pass: time-driven transitions and placement of pending jobs.
//!
//! Run by the scheduling loop on a tick and whenever something changes. Housekeeping
//! (bookings starting and ending, leases, deadlines, drains, idle reclaim, guests making
//! way, jobs in bookings) is decided under the live lock, in one batch. The queue pass
//! (`core::plan`) runs on a copy of what it needs, taken from the planner's own replica
//! of the committed state, on the planner's thread (off the async runtime, at a lower
//! priority: `planner.rs`), beside the API; its decisions are then checked against
//! whatever changed meanwhile and staged as one batch. The API never waits for a plan,
//! nor for the copy it starts from.

use super::charges::{self, Subject};
use super::observed::Lapse;
use super::observed::{Hint, HintMap, PendingWhy};
use super::pipeline::Tx;
use super::stage::{bump_generation, end_reservation_jobs, stage_stop};
use super::{Engine, now};
use crate::core::{
    Accounts, Ask, Cluster, Decision, Guest, IdleBooked, PlanInput, PlanPolicy, QueuedJob, Usage,
    Wait, pick_within, plan,
};
use crate::error::Result;
use crate::state::State;
use crate::store::{
    ClaimRow, Health, JobRow, JobState, Mutation, NodeRow, NodeState, OwnerKind, ReservationState,
    StopCause,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Jobs placed on devices.
    pub placed: usize,
    /// Jobs asked to stop (deadline, reservation end, reclaim, preemption).
    pub stopped: usize,
    /// Projects that became active or expired.
    pub projects_changed: usize,
    /// Reservations that started or ended.
    pub reservations_changed: usize,
    /// Nodes that became unreachable.
    pub nodes_lost: usize,
    /// Bookings reclaimed for idleness.
    pub reclaimed: usize,
    /// Preemptible jobs asked to make way.
    pub preempted: usize,
    /// Planned placements dropped because what they relied on changed while planning.
    pub stale: usize,
    /// Pending jobs the queue plan looked at (0: the queue was not planned).
    pub planned: usize,
}

/// How long a queue that decided nothing is trusted to decide nothing again while the
/// state stays as it was: the plan also depends on the clock (fair-share decay, how long
/// until a booking starts, estimated starts), so it is redone at least this often.
const REPLAN_IDLE_AFTER: Duration = Duration::from_secs(10);

/// A long queue that decided nothing is trusted that many times as long as its plan took,
/// when that is longer than [`REPLAN_IDLE_AFTER`]: replanning an unchanged queue then
/// takes at most a fortieth of a core (100k jobs waiting, planned in 0.5 s: every 20 s).
const REPLAN_IDLE_PLAN_TIMES: u32 = 40;

/// A queue plan that placed and preempted nothing (every job waits), on the state of
/// `version`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdlePlan {
    version: u64,
    at: Instant,
    /// How long the plan took.
    took: Duration,
}

impl IdlePlan {
    /// Whether the plan still stands for the state of `version`.
    fn stands(&self, version: u64) -> bool {
        let trusted = REPLAN_IDLE_AFTER.max(self.took * REPLAN_IDLE_PLAN_TIMES);
        self.version == version && self.at.elapsed() < trusted
    }
}

/// Everything the queue pass plans from, copied out of the planner's replica of the
/// committed state (on the planner's thread, holding no lock). Only pointers to the
/// pending jobs are copied; the planner's own rows ([`queued_jobs`]) are built from them
/// as it plans.
struct PlanSnapshot {
    version: u64,
    now: i64,
    cluster: Cluster,
    accounts: Accounts,
    /// The pending jobs outside bookings, as the live state held them.
    pending: Vec<Arc<JobRow>>,
    /// Budget units per device-hour, by class.
    rates: HashMap<String, f64>,
    /// How many pending jobs the plan looked at (once planned).
    planned: usize,
    /// The rows of the jobs the plan places, by id.
    placed_rows: HashMap<String, Arc<JobRow>>,
    weights: BTreeMap<String, f64>,
    usage: Usage,
    guests: Vec<Guest>,
    idle_booked: Vec<IdleBooked>,
    policy: PlanPolicy,
}

/// The planner's rows of the pending jobs (off the live lock), borrowing their ids,
/// orgs, classes and projects from the rows.
fn queued_jobs<'a>(pending: &'a [Arc<JobRow>], rates: &HashMap<String, f64>) -> Vec<QueuedJob<'a>> {
    let rate = |class: &str| rates.get(class).copied().unwrap_or(1.0);
    pending
        .iter()
        .map(|r| QueuedJob {
            id: Cow::Borrowed(&r.id),
            org: Cow::Borrowed(&r.org),
            class: Cow::Borrowed(&r.class),
            count: r.count.max(0) as u32,
            nodes: r.nodes.max(1) as u32,
            runtime_ms: r.max_runtime_ms,
            priority: r.priority,
            submitted_ms: r.created_ms,
            preemptible: r.preemptible,
            rate: rate(&r.class),
            project: r.project.as_deref().map(Cow::Borrowed),
        })
        .collect()
}

impl PlanSnapshot {
    /// What the queue pass at `t` plans from, copied out of `state` (the planner's
    /// replica); none when no job waits outside a booking.
    fn take(state: &State, t: i64, grace_ms: i64) -> Option<Self> {
        let pending: Vec<Arc<JobRow>> = state
            .jobs
            .values()
            .map(|j| &j.row)
            .filter(|r| r.state == JobState::Pending && r.reservation_id.is_none())
            .map(Arc::clone)
            .collect();
        if pending.is_empty() {
            return None;
        }
        let rates = state
            .classes
            .iter()
            .map(|(name, c)| (name.clone(), c.rate))
            .collect();
        let weights = state
            .orgs
            .values()
            .map(|o| (o.name.clone(), o.weight))
            .collect();
        let half_life = state.sched.fair_share_half_life_ms;
        let mut usage = state.fair.at(t, half_life);
        for j in state.placed_jobs() {
            if let Some(s) = j.row.started_ms {
                let used = (t - s).max(0) as f64 * f64::from(State::job_devices(&j.row));
                usage.add(&j.row.org, used * state.class_rate(&j.row.class), t);
            }
        }
        Some(PlanSnapshot {
            version: state.version,
            now: t,
            cluster: state.cluster.clone(),
            accounts: state.accounts.clone(),
            pending,
            rates,
            planned: 0,
            placed_rows: HashMap::new(),
            weights,
            usage,
            guests: guests(state),
            idle_booked: idle_booked(state, t),
            policy: state.sched.plan_policy(grace_ms),
        })
    }

    /// Keeps the rows of the jobs `decisions` place (looked up again under the live
    /// lock) and lets go of the others.
    fn keep_placed_rows(&mut self, decisions: &[Decision]) {
        let placed: HashSet<&str> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Place(p) => Some(p.job.as_str()),
                _ => None,
            })
            .collect();
        let pending = std::mem::take(&mut self.pending);
        if placed.is_empty() {
            return;
        }
        self.placed_rows = pending
            .into_iter()
            .filter(|r| placed.contains(r.id.as_str()))
            .map(|r| (r.id.clone(), r))
            .collect();
    }

    fn plan(&mut self) -> Vec<Decision> {
        let jobs = queued_jobs(&self.pending, &self.rates);
        let input = PlanInput {
            now: self.now,
            jobs: &jobs,
            weights: &self.weights,
            usage: &self.usage,
            guests: &self.guests,
            idle_booked: &self.idle_booked,
            policy: &self.policy,
        };
        let decisions = plan(&mut self.cluster, &mut self.accounts, &input);
        self.planned = jobs.len();
        drop(jobs);
        self.keep_placed_rows(&decisions);
        decisions
    }
}

impl Engine {
    /// Runs one scheduling pass.
    pub async fn pass(&self) -> Result<PassReport> {
        let _one = self.pass_lock.lock().await;
        let started = Instant::now();
        let t = now();
        let mut report = PassReport::default();
        let mut hints = HintMap::default();
        let lease = Duration::from_millis(self.policy.lease_ms.max(0) as u64);
        let fresh_ms = 3 * self.policy.lease_ms;
        let grace_ms = self.policy.grace_ms;
        let ((reclaimed, housekeeping_changed), first) = self.decide(|tx| {
            let before = tx.is_empty();
            report.reservations_changed = advance_reservations(tx, t);
            report.projects_changed = super::projects::advance_projects(tx, t);
            report.nodes_lost = expire_leases(tx, &self.observed, lease);
            report.stopped += stop_overdue(tx, t);
            report.stopped += end_ungranted(tx, t);
            finish_drains(tx);
            let reclaimed = super::reclaim::watch_idle(tx, &self.observed, t, fresh_ms);
            report.reclaimed = reclaimed.len();
            report.preempted += super::reclaim::evict_guests(tx, t, grace_ms);
            report.placed += place_in_reservations(tx, t, &mut hints);
            super::notify::sweep_bookings(tx, t);
            Ok((reclaimed, before != tx.is_empty()))
        })?;
        for (_, unused) in &reclaimed {
            self.metrics.reclaimed(*unused);
        }
        // Running jobs' evidence is kept until they end (the row then holds it).
        self.peek_live(|s| {
            self.observed
                .keep_evidence(|job| s.jobs.get(job).is_some_and(|j| j.row.state.is_placed()));
        });

        // The queue is planned from the committed state: what housekeeping just freed (a
        // booking that ended) or took (a node lost) is in it once durable.
        first.durable().await?;
        // A queue that decided nothing on this very state decides nothing again (until the
        // clock has moved on enough to matter): with 100k jobs waiting for busy devices,
        // each tick would otherwise copy and plan them all for nothing.
        let idle = *self.idle_plan.lock().unwrap_or_else(|e| e.into_inner());
        let unchanged = idle.is_some_and(|i| self.peek_live(|s| i.stands(s.version)));
        // Copying what the queue plan starts from, planning, and sorting the (maybe 100k)
        // decisions is the pass's heavy work: on the planner's thread, from its own copy
        // of the committed state, off the runtime's threads (which stay free to answer
        // requests) and below them in priority. No lock is held meanwhile.
        let planned = if unchanged {
            None
        } else {
            self.planner
                .run(move |committed| {
                    let mut snap = PlanSnapshot::take(committed, t, grace_ms)?;
                    let planning = Instant::now();
                    let decisions = snap.plan();
                    let took = planning.elapsed();
                    // Only placements and preemptions are decided under the live lock; why
                    // each of the other jobs waits is put together after.
                    let (actions, waits) = split_waits(decisions);
                    let classes = unschedulable_classes(&waits);
                    Some((snap, actions, waits, classes, took))
                })
                .await?
        };
        // Unless planned again, the waiting jobs' reasons and estimated starts stay those
        // of the last plan (an empty queue has none).
        let mut queue_hints = (!unchanged && planned.is_none()).then(HintMap::default);
        let mut second = None;
        if let Some((snap, actions, waits, classes, took)) = planned {
            self.metrics.queue_planned();
            report.planned = snap.planned;
            // Waiting is not a decision: a plan whose every job waits changed nothing.
            *self.idle_plan.lock().unwrap_or_else(|e| e.into_inner()) =
                actions.is_empty().then(|| IdlePlan {
                    version: snap.version,
                    at: Instant::now(),
                    took,
                });
            let ((outcome, draining), ticket) = self.decide(|tx| {
                let outcome = apply_plan(tx, &snap, actions);
                let draining = draining_by_class(tx.state(), &classes);
                Ok((outcome, draining))
            })?;
            report.placed += outcome.placed;
            report.preempted += outcome.preempted;
            report.stale = outcome.stale;
            second = Some(ticket);
            queue_hints = Some(
                self.planner
                    .run(move |_| wait_hints(waits, &draining))
                    .await?,
            );
        }
        let replaced = self.hints.set(hints, queue_hints);
        // The last plan's hints (a row per pending job) are freed off the runtime too.
        self.planner.drop_later(replaced);
        if let Some(t) = second {
            t.durable().await?;
        }
        if housekeeping_changed && report.placed > 0 {
            self.kick();
        }
        self.metrics.pass(started.elapsed());
        Ok(report)
    }
}

/// Confirmed → active at start; active → completed at end (its jobs stop).
fn advance_reservations(tx: &mut Tx<'_>, t: i64) -> usize {
    let mut due: Vec<_> = tx
        .state()
        .reservations
        .values()
        .filter(|r| (r.state == ReservationState::Confirmed && r.start_ms <= t) || r.end_ms <= t)
        .map(|r| crate::store::ReservationRow::clone(r))
        .collect();
    due.sort_by(|a, b| a.id.cmp(&b.id));
    let n = due.len();
    for mut r in due {
        if r.end_ms <= t {
            r.state = ReservationState::Completed;
            tx.push(Mutation::InsertUsage(super::reservation_usage(
                &r, r.end_ms,
            )));
            let id = r.id.clone();
            tx.push(Mutation::UpsertReservation(Arc::new(r)));
            end_reservation_jobs(
                tx,
                &id,
                t,
                "its reservation ended before it could start",
                (StopCause::ReservationEnded, "its reservation ended"),
            );
        } else {
            r.state = ReservationState::Active;
            tx.push(Mutation::UpsertReservation(Arc::new(r)));
        }
    }
    n
}

/// Nodes whose agents missed their lease become unreachable; their devices are held back
/// from new work until the agent reconciles.
fn expire_leases(tx: &mut Tx<'_>, observed: &super::observed::Observed, lease: Duration) -> usize {
    let state = tx.state();
    let live = state
        .nodes
        .values()
        .filter(|n| {
            matches!(
                n.row.state,
                NodeState::Ready | NodeState::Draining | NodeState::Drained
            )
        })
        .map(|n| n.row.name.as_str());
    let lost: Vec<(NodeRow, Lapse)> = observed
        .lapsed(live, lease)
        .into_iter()
        .filter_map(|(name, why)| Some((state.nodes.get(name)?.row.clone(), why)))
        .collect();
    let n = lost.len();
    for (mut row, why) in lost {
        match why {
            Lapse::Behind => {
                tracing::warn!(node = %row.name, "node's agent cannot take its desired work; now unreachable");
            }
            Lapse::Silent => {
                tracing::warn!(node = %row.name, "node missed its lease; now unreachable");
            }
        }
        row.state = NodeState::Unreachable;
        tx.push(Mutation::UpsertNode(row));
    }
    n
}

/// Placed jobs past their deadline are asked to stop.
fn stop_overdue(tx: &mut Tx<'_>, t: i64) -> usize {
    let mut overdue: Vec<String> = tx
        .state()
        .placed_jobs()
        .filter(|j| j.row.stop.is_none() && j.row.deadline_ms.is_some_and(|d| t >= d))
        .map(|j| j.row.id.clone())
        .collect();
    overdue.sort();
    let why = "reached its deadline (its maximum runtime or its reservation's end)";
    overdue
        .into_iter()
        .filter(|id| stage_stop(tx, id, StopCause::Deadline, why))
        .count()
}

/// Jobs that mount a dataset their org is no longer granted (or no longer read-write)
/// end: pending ones now, placed ones are stopped. Returns how many were stopped.
fn end_ungranted(tx: &mut Tx<'_>, t: i64) -> usize {
    let state = tx.state();
    let lacks = |row: &JobRow| {
        row.datasets.iter().find_map(|(name, rw)| {
            match state.dataset_grants.get(&(row.org.clone(), name.clone())) {
                Some(granted_rw) if *granted_rw || !*rw => None,
                _ => Some(name.clone()),
            }
        })
    };
    let mut hit: Vec<(String, String, JobState)> = state
        .jobs_with_datasets()
        .filter(|j| !j.row.state.is_final())
        .filter_map(|j| lacks(&j.row).map(|d| (j.row.id.clone(), d, j.row.state)))
        .collect();
    hit.sort_by(|a, b| a.0.cmp(&b.0));
    let mut stopped = 0;
    for (id, dataset, job_state) in hit {
        let why = format!("dataset {dataset:?} is no longer granted to its org");
        if job_state == JobState::Pending {
            let Some(j) = tx.state().jobs.get(&id) else {
                continue;
            };
            let mut row = JobRow::clone(&j.row);
            row.state = JobState::Failed;
            row.reason = why;
            row.finished_ms = Some(t);
            tx.push(Mutation::UpsertJob(Arc::new(row)));
        } else if stage_stop(tx, &id, StopCause::GrantRevoked, &why) {
            stopped += 1;
        }
    }
    stopped
}

/// Draining nodes with no work left become drained.
fn finish_drains(tx: &mut Tx<'_>) {
    let state = tx.state();
    let empty: Vec<NodeRow> = state
        .nodes
        .values()
        .filter(|n| n.row.state == NodeState::Draining)
        .filter(|n| state.placed_jobs_on(&n.row.name).next().is_none())
        .map(|n| n.row.clone())
        .collect();
    for mut row in empty {
        row.state = NodeState::Drained;
        tx.push(Mutation::UpsertNode(row));
    }
}

/// Places jobs waiting for their reservation's devices, oldest first; notes why the
/// others wait.
fn place_in_reservations(tx: &mut Tx<'_>, t: i64, hints: &mut HintMap) -> usize {
    let pending: Vec<String> = tx
        .state()
        .pending_in_bookings()
        .map(str::to_owned)
        .collect();
    pending
        .into_iter()
        .filter(|id| place_in_reservation(tx, id, t, hints))
        .count()
}

fn place_in_reservation(tx: &mut Tx<'_>, id: &str, t: i64, hints: &mut HintMap) -> bool {
    let state = tx.state();
    let Some(job) = state.jobs.get(id).map(|j| j.row.clone()) else {
        return false;
    };
    let Some(rid) = job.reservation_id.clone() else {
        return false;
    };
    let count = job.count.max(0) as u32;
    let Some(r) = state.reservations.get(&rid).cloned() else {
        return false;
    };
    if !super::jobs::reservation_runs(r.state) {
        let why = PendingWhy::ReservationNotStarted {
            start_ms: r.start_ms,
        };
        hints.insert(
            id.to_owned(),
            Hint {
                why: Arc::new(why),
                estimated_start: Some(r.start_ms),
            },
        );
        return false;
    }
    // Devices in use by any placed job: the reservation's own, and preemptible guests
    // (which the pass evicts when the reservation has work waiting).
    let busy: HashSet<String> = state
        .busy_devices()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let usable: Vec<String> = r
        .devices
        .iter()
        .filter(|d| {
            state.devices.get(*d).is_some_and(|e| {
                e.row.health != Health::Failed
                    && state.nodes.get(&e.row.node).is_some_and(|n| {
                        matches!(n.row.state, NodeState::Ready | NodeState::Draining)
                    })
            })
        })
        .cloned()
        .collect();
    let Some(devices) = pick_on_one_node(state, &usable, &busy, count) else {
        hints.insert(
            id.to_owned(),
            Hint {
                why: Arc::new(PendingWhy::ReservationBusy { count }),
                estimated_start: None,
            },
        );
        return false;
    };
    let Some(node) = node_of(state, &devices) else {
        return false;
    };
    let generation = bump_generation(tx, &node);
    let mut row = JobRow::clone(&job);
    row.state = JobState::Scheduled;
    row.reason.clear();
    row.node = Some(node);
    row.devices = devices;
    row.deadline_ms = Some((t + job.max_runtime_ms).min(r.end_ms));
    row.generation = generation;
    tx.push(Mutation::UpsertJob(Arc::new(row)));
    true
}

/// What staging a plan came to.
#[derive(Default)]
struct PlanOutcome {
    placed: usize,
    preempted: usize,
    stale: usize,
}

/// Stages a plan's decisions. When the live state changed while planning, each placement
/// is checked again (its job still pending and unchanged, its devices still free and
/// schedulable, its budget still allows it) and dropped if not; it is retried next pass.
fn apply_plan(tx: &mut Tx<'_>, snap: &PlanSnapshot, decisions: Vec<Decision>) -> PlanOutcome {
    let t = snap.now;
    // The live state is the committed state plus the batches in flight, and every copy
    // counts the mutations it applied: the same version means nothing changed since the
    // plan's copy was taken, and nothing is in flight.
    let unchanged = tx.state().version == snap.version;
    let mut busy: Option<HashSet<String>> = None;
    let mut out = PlanOutcome::default();
    for d in decisions {
        match d {
            Decision::Place(p) => {
                let Some(row) = snap.placed_rows.get(&p.job) else {
                    continue;
                };
                let charge = if unchanged {
                    Some(p.charge.clone())
                } else {
                    let state = tx.state();
                    let busy = busy.get_or_insert_with(|| {
                        state
                            .busy_devices()
                            .into_iter()
                            .map(str::to_owned)
                            .collect()
                    });
                    let c = revalidate(state, busy, row, &p);
                    if c.is_some() {
                        busy.extend(p.devices.iter().cloned());
                    }
                    c
                };
                let Some(charge) = charge else {
                    out.stale += 1;
                    continue;
                };
                if stage_placement(tx, row, &p, charge, t) {
                    out.placed += 1;
                } else {
                    out.stale += 1;
                }
            }
            Decision::Preempt { job, for_job } => {
                let why = format!("preempted to make room for job {for_job}");
                if stage_stop(tx, &job, StopCause::Preempted, &why) {
                    out.preempted += 1;
                }
            }
            Decision::Wait { .. } => {}
        }
    }
    out
}

/// Checks a planned placement against the live state; returns the charge to make now
/// (`Some(None)`: nothing to charge), or `None` when it no longer holds.
fn revalidate(
    state: &State,
    busy: &HashSet<String>,
    planned: &Arc<JobRow>,
    p: &crate::core::Placement,
) -> Option<Option<crate::core::ChargePlan>> {
    let live = state.jobs.get(&planned.id)?;
    if !Arc::ptr_eq(&live.row, planned) || live.row.state != JobState::Pending {
        return None;
    }
    let waiting = state.reservations_with_waiting_jobs();
    for d in &p.devices {
        let e = state.devices.get(d)?;
        let ready = state
            .nodes
            .get(&e.row.node)
            .is_some_and(|n| n.row.state == NodeState::Ready);
        if !ready || e.row.health == Health::Failed || busy.contains(d) {
            return None;
        }
        if p.claim {
            if !state.cluster.is_free(d, p.start, p.end) {
                return None;
            }
        } else {
            // A guest may only use a device every owner of which lends it.
            let lends = state.cluster.owners_on(d, p.start, p.end).iter().all(|o| {
                state.reservations.get(*o).is_some_and(|r| {
                    r.state == ReservationState::Active
                        && !waiting.contains(*o)
                        && r.end_ms > p.start
                })
            });
            if !lends {
                return None;
            }
        }
    }
    let row = &live.row;
    let ask = Ask {
        org: &row.org,
        class: &row.class,
        rate: state.class_rate(&row.class),
        devices: State::job_devices(row),
        start: p.start,
        end: p.end,
        now: p.start,
        capped: !row.preemptible,
        project: row.project.as_deref(),
    };
    state.accounts.admit(&ask).ok()
}

/// Stages one placement: claims, charge, the job scheduled on its nodes.
fn stage_placement(
    tx: &mut Tx<'_>,
    row: &Arc<JobRow>,
    p: &crate::core::Placement,
    charge: Option<crate::core::ChargePlan>,
    t: i64,
) -> bool {
    let Some(node) = node_of(tx.state(), &p.devices) else {
        return false;
    };
    let mut next = JobRow::clone(row);
    if let Some(plan) = &charge {
        let subject = Subject {
            org: &next.org,
            kind: OwnerKind::Job,
            id: &next.id,
            class: &next.class,
        };
        let (entry, kept) = charges::charge(
            &subject,
            plan,
            t,
            "queued job placed: charged for its max runtime",
        );
        next.charge = kept;
        tx.push(Mutation::InsertLedger(vec![entry]));
    }
    if p.claim {
        tx.push(Mutation::InsertClaims(
            p.devices
                .iter()
                .map(|dev| ClaimRow {
                    device_uuid: dev.clone(),
                    owner_kind: OwnerKind::Job,
                    owner_id: next.id.clone(),
                    start_ms: p.start,
                    end_ms: p.end,
                })
                .collect(),
        ));
    }
    // The highest of its nodes' new generations: a node that has applied it has the job
    // (the lost-job check relies on this).
    let generation = nodes_of(tx.state(), &p.devices)
        .iter()
        .map(|n| bump_generation(tx, n))
        .max()
        .unwrap_or(0);
    next.state = JobState::Scheduled;
    next.reason.clear();
    next.generation = generation;
    next.node = Some(node);
    next.devices = p.devices.clone();
    next.deadline_ms = Some(p.end);
    tx.push(Mutation::UpsertJob(Arc::new(next)));
    true
}

/// The node of the first device (a job's node; rank 0 of a multi-node job).
fn node_of(state: &State, devices: &[String]) -> Option<String> {
    devices
        .first()
        .and_then(|d| state.devices.get(d))
        .map(|d| d.row.node.clone())
}

/// The distinct nodes of some devices, in device order.
fn nodes_of(state: &State, devices: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in devices {
        if let Some(e) = state.devices.get(d)
            && !out.contains(&e.row.node)
        {
            out.push(e.row.node.clone());
        }
    }
    out
}

/// Draining nodes that have devices of `class`.
/// A plan's waiting job: its id, why it waits, when it may start.
type Waiting = (String, Wait, Option<i64>);

/// A plan's placements and preemptions, in order, and its waiting jobs.
fn split_waits(decisions: Vec<Decision>) -> (Vec<Decision>, Vec<Waiting>) {
    let mut actions = Vec::new();
    let mut waits = Vec::new();
    for d in decisions {
        match d {
            Decision::Wait {
                job,
                why,
                estimated_start,
            } => waits.push((job, why, estimated_start)),
            other => actions.push(other),
        }
    }
    (actions, waits)
}

/// The classes some waiting job cannot be scheduled on at all.
fn unschedulable_classes(waits: &[Waiting]) -> BTreeSet<String> {
    waits
        .iter()
        .filter_map(|(_, why, _)| match why {
            Wait::NotSchedulable { class, .. } => Some(class.clone()),
            _ => None,
        })
        .collect()
}

/// The draining nodes with devices of each of `classes`, sorted.
fn draining_by_class(state: &State, classes: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if classes.is_empty() {
        return BTreeMap::new();
    }
    for d in state.devices.values() {
        if classes.contains(&d.row.class)
            && state
                .nodes
                .get(&d.row.node)
                .is_some_and(|n| n.row.state == NodeState::Draining)
        {
            out.entry(d.row.class.clone())
                .or_default()
                .insert(d.row.node.clone());
        }
    }
    out.into_iter()
        .map(|(class, nodes)| (class, nodes.into_iter().collect()))
        .collect()
}

/// Why each waiting job waits: what the plan said, and the draining nodes of its class
/// when it cannot be scheduled at all. Equal reasons are held once, shared.
fn wait_hints(waits: Vec<Waiting>, draining: &BTreeMap<String, Vec<String>>) -> HintMap {
    let mut shared: HashSet<Arc<PendingWhy>> = HashSet::new();
    let mut last: Option<Arc<PendingWhy>> = None;
    waits
        .into_iter()
        .map(|(job, why, estimated_start)| {
            let nodes = match &why {
                Wait::NotSchedulable { class, .. } => draining.get(class),
                _ => None,
            };
            let why = match nodes {
                Some(nodes) => PendingWhy::Draining {
                    nodes: nodes.clone(),
                    wait: why,
                },
                None => PendingWhy::Queue(why),
            };
            // Jobs of one org and class come in runs with the same reason: the last one
            // is compared first, and only a new reason is hashed.
            let why = match &last {
                Some(l) if **l == why => Arc::clone(l),
                _ => match shared.get(&why) {
                    Some(s) => Arc::clone(s),
                    None => {
                        let why = Arc::new(why);
                        shared.insert(Arc::clone(&why));
                        why
                    }
                },
            };
            last = Some(Arc::clone(&why));
            (
                job,
                Hint {
                    why,
                    estimated_start,
                },
            )
        })
        .collect()
}

/// Running preemptible jobs and their devices.
fn guests(state: &State) -> Vec<Guest> {
    let mut out: Vec<Guest> = state
        .placed_jobs()
        .filter(|j| j.row.preemptible)
        .map(|j| Guest {
            job: j.row.id.clone(),
            class: j.row.class.clone(),
            devices: j.row.devices.clone(),
            started_ms: j
                .row
                .deadline_ms
                .map_or(j.row.created_ms, |d| d - j.row.max_runtime_ms),
        })
        .collect();
    out.sort_by(|a, b| a.job.cmp(&b.job));
    out
}

/// Devices of active bookings with no work waiting that no job uses now.
fn idle_booked(state: &State, t: i64) -> Vec<IdleBooked> {
    let used = state.busy_devices();
    let waiting = state.reservations_with_waiting_jobs();
    let mut out = Vec::new();
    for r in state.reservations.values() {
        if r.state != ReservationState::Active || r.end_ms <= t || waiting.contains(r.id.as_str()) {
            continue;
        }
        for d in &r.devices {
            let Some(e) = state.devices.get(d) else {
                continue;
            };
            let ready = state
                .nodes
                .get(&e.row.node)
                .is_some_and(|n| n.row.state == NodeState::Ready);
            if ready && e.row.health != Health::Failed && !used.contains(d.as_str()) {
                out.push(IdleBooked {
                    device: d.clone(),
                    class: r.class.clone(),
                    node: e.row.node.clone(),
                    until: r.end_ms,
                });
            }
        }
    }
    out.sort_by(|a, b| a.device.cmp(&b.device));
    out
}

/// Picks `count` free devices of a reservation, all on one node.
fn pick_on_one_node(
    state: &State,
    usable: &[String],
    busy: &HashSet<String>,
    count: u32,
) -> Option<Vec<String>> {
    let mut by_node: BTreeMap<&str, Vec<String>> = Default::default();
    for d in usable {
        if let Some(e) = state.devices.get(d) {
            by_node
                .entry(e.row.node.as_str())
                .or_default()
                .push(d.clone());
        }
    }
    by_node
        .values()
        .find_map(|devices| pick_within(devices, busy, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::LimitRefusal;

    fn cap(class: &str) -> Wait {
        Wait::Limit(LimitRefusal::Cap {
            class: class.into(),
            max: 1,
            held: 1,
            asked: 1,
        })
    }

    fn not_schedulable(class: &str) -> Wait {
        Wait::NotSchedulable {
            class: class.into(),
            needed: 8,
            schedulable: 0,
            total: 8,
        }
    }

    /// An idle plan made `ago` before now that took `took`, on version 7.
    fn idle(ago: Duration, took: Duration) -> IdlePlan {
        IdlePlan {
            version: 7,
            at: Instant::now() - ago,
            took,
        }
    }

    #[test]
    fn an_idle_plan_stands_for_its_state_ten_seconds_or_forty_times_its_length() {
        let ms = Duration::from_millis;
        // A short plan: trusted for REPLAN_IDLE_AFTER, on its own state only.
        assert!(idle(ms(9_000), ms(20)).stands(7));
        assert!(!idle(ms(9_000), ms(20)).stands(8));
        assert!(!idle(ms(10_500), ms(20)).stands(7));
        // A plan of half a second (100k jobs) is trusted for 20 s.
        assert!(idle(ms(19_000), ms(500)).stands(7));
        assert!(!idle(ms(21_000), ms(500)).stands(7));
        assert!(!idle(ms(1_000), ms(500)).stands(6));
    }

    #[test]
    fn equal_reasons_are_held_once_wherever_they_come_in_the_queue() {
        let waits: Vec<Waiting> = vec![
            ("a".into(), cap("gpu"), None),
            ("b".into(), cap("gpu"), Some(5)),
            ("c".into(), cap("npu"), None),
            ("d".into(), cap("gpu"), None),
            ("e".into(), not_schedulable("npu"), None),
            ("f".into(), not_schedulable("gpu"), None),
        ];
        let draining = BTreeMap::from([("npu".to_owned(), vec!["n1".to_owned()])]);
        let hints = wait_hints(waits, &draining);
        assert_eq!(hints.len(), 6);
        assert!(Arc::ptr_eq(&hints["a"].why, &hints["b"].why));
        assert!(Arc::ptr_eq(&hints["a"].why, &hints["d"].why));
        assert!(!Arc::ptr_eq(&hints["a"].why, &hints["c"].why));
        assert_eq!(*hints["a"].why, PendingWhy::Queue(cap("gpu")));
        assert_eq!(*hints["c"].why, PendingWhy::Queue(cap("npu")));
        assert_eq!(hints["b"].estimated_start, Some(5));
        // Draining nodes are named only for the class they drain.
        assert_eq!(
            *hints["e"].why,
            PendingWhy::Draining {
                nodes: vec!["n1".into()],
                wait: not_schedulable("npu"),
            }
        );
        assert_eq!(*hints["f"].why, PendingWhy::Queue(not_schedulable("gpu")));
    }
}
