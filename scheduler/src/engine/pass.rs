//! The scheduling pass: time-driven transitions and placement of pending jobs.
//!
//! Run by the scheduling loop on a tick and whenever something changes. Each step
//! commits its own small batch, so a failure leaves everything consistent.

use super::booking::{end_reservation_jobs, reservation_usage};
use super::charges::{self, Subject};
use super::jobs::{bump_generation, reservation_runs};
use super::{Engine, now};
use crate::core::{Decision, Guest, IdleBooked, PlanInput, QueuedJob, Wait, pick_within, plan};
use crate::error::Result;
use crate::state::State;
use crate::store::{ClaimRow, JobRow, JobState, Mutation, NodeState, OwnerKind, ReservationState};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Jobs placed on devices.
    pub placed: usize,
    /// Jobs asked to stop (deadline or reservation end).
    pub stopped: usize,
    /// Reservations that started or ended.
    pub reservations_changed: usize,
    /// Nodes that became unreachable.
    pub nodes_lost: usize,
    /// Bookings reclaimed for idleness.
    pub reclaimed: usize,
    /// Preemptible jobs asked to make way.
    pub preempted: usize,
}

impl Engine {
    /// Runs one scheduling pass.
    pub async fn pass(&self) -> Result<PassReport> {
        let started = Instant::now();
        let mut report = PassReport::default();
        let mut to_stop = Vec::new();
        {
            let mut state = self.lock().await;
            let t = now();
            report.reservations_changed = self
                .advance_reservations(&mut state, t, &mut to_stop)
                .await?;
            report.nodes_lost = self.expire_leases(&mut state).await?;
            for j in state.jobs.values() {
                if j.stop.is_none()
                    && j.row.state.is_placed()
                    && j.row.deadline_ms.is_some_and(|d| t >= d)
                {
                    let why = "reached its deadline (its maximum runtime or its reservation's end)";
                    to_stop.push((j.row.id.clone(), JobState::TimedOut, why.to_owned()));
                }
            }
            self.finish_drains(&mut state).await?;
            report.reclaimed = self.watch_idle(&mut state, t, &mut to_stop).await?;
            self.evict_guests(&state, t, &mut to_stop);
            report.placed = self.place_in_reservations(&mut state, t).await?;
            let (placed, preempt) = self.place_queue(&mut state, t).await?;
            report.placed += placed;
            report.preempted = preempt.len();
            to_stop.extend(preempt);
        }
        let mut seen = HashSet::new();
        to_stop.retain(|(id, _, _)| seen.insert(id.clone()));
        report.stopped = to_stop.len();
        for (id, end, reason) in to_stop {
            self.request_stop(&id, end, &reason).await?;
        }
        self.metrics.pass(started.elapsed());
        Ok(report)
    }

    /// Confirmed → active at start; active → completed at end (its jobs stop).
    async fn advance_reservations(
        &self,
        state: &mut State,
        t: i64,
        to_stop: &mut Vec<(String, JobState, String)>,
    ) -> Result<usize> {
        let due: Vec<_> = state
            .reservations
            .values()
            .filter(|r| {
                (r.state == ReservationState::Confirmed && r.start_ms <= t) || r.end_ms <= t
            })
            .cloned()
            .collect();
        for mut r in due.iter().cloned() {
            let mut batch = Vec::new();
            let mut ended = Vec::new();
            if r.end_ms <= t {
                r.state = ReservationState::Completed;
                batch.push(Mutation::InsertUsage(reservation_usage(&r, r.end_ms)));
                let (done, stops) = end_reservation_jobs(
                    state,
                    &r.id,
                    t,
                    "its reservation ended before it could start",
                    (JobState::TimedOut, "its reservation ended"),
                    &mut batch,
                );
                ended = done;
                to_stop.extend(stops);
            } else {
                r.state = ReservationState::Active;
            }
            batch.push(Mutation::UpsertReservation(r.clone()));
            self.commit(batch).await?;
            if r.state.is_final() {
                state.accounts.release(&r.org, &r.class, &r.id, i64::MIN);
                state.reservations.remove(&r.id);
                self.forget_ended(state, &ended);
            } else {
                state.reservations.insert(r.id.clone(), r);
            }
        }
        Ok(due.len())
    }

    /// Nodes whose agents missed their lease become unreachable; their devices are
    /// held back from new work until the agent reconciles.
    async fn expire_leases(&self, state: &mut State) -> Result<usize> {
        let lease = Duration::from_millis(self.policy.lease_ms.max(0) as u64);
        let lost: Vec<_> = state
            .nodes
            .values()
            .filter(|n| {
                matches!(
                    n.row.state,
                    NodeState::Ready | NodeState::Draining | NodeState::Drained
                )
            })
            .filter(|n| n.last_seen.is_none_or(|s| s.elapsed() > lease))
            .map(|n| n.row.clone())
            .collect();
        for mut row in lost.iter().cloned() {
            row.state = NodeState::Unreachable;
            self.commit(vec![Mutation::UpsertNode(row.clone())]).await?;
            tracing::warn!(node = %row.name, "node missed its lease; now unreachable");
            state.cluster.set_node_schedulable(&row.name, false);
            if let Some(e) = state.nodes.get_mut(&row.name) {
                e.row = row;
            }
        }
        Ok(lost.len())
    }

    /// Draining nodes with no work left become drained.
    async fn finish_drains(&self, state: &mut State) -> Result<()> {
        let empty: Vec<_> = state
            .nodes
            .values()
            .filter(|n| n.row.state == NodeState::Draining)
            .filter(|n| state.placed_jobs_on(&n.row.name).next().is_none())
            .map(|n| n.row.clone())
            .collect();
        for mut row in empty {
            row.state = NodeState::Drained;
            self.commit(vec![Mutation::UpsertNode(row.clone())]).await?;
            if let Some(e) = state.nodes.get_mut(&row.name) {
                e.row = row;
            }
        }
        Ok(())
    }

    /// Places jobs waiting for their reservation's devices, oldest first.
    async fn place_in_reservations(&self, state: &mut State, t: i64) -> Result<usize> {
        let mut pending: Vec<_> = state
            .jobs
            .values()
            .filter(|j| j.row.state == JobState::Pending && j.row.reservation_id.is_some())
            .map(|j| (j.row.created_ms, j.row.id.clone()))
            .collect();
        pending.sort();
        let mut placed = 0;
        for (_, id) in pending {
            if self.place_in_reservation(state, &id, t).await? {
                placed += 1;
            }
        }
        Ok(placed)
    }

    async fn place_in_reservation(&self, state: &mut State, id: &str, t: i64) -> Result<bool> {
        let Some(job) = state.jobs.get(id).map(|j| j.row.clone()) else {
            return Ok(false);
        };
        let Some(rid) = job.reservation_id.clone() else {
            return Ok(false);
        };
        let count = job.count.max(0) as u32;
        let Some(r) = state.reservations.get(&rid).cloned() else {
            return Ok(false);
        };
        if !reservation_runs(r.state) {
            let at = crate::convert::local_hint(r.start_ms);
            self.set_pending(
                state,
                id,
                format!("waiting for its reservation to start at {at}"),
                Some(r.start_ms),
            );
            return Ok(false);
        }
        // Devices in use by any placed job: the reservation's own, and preemptible guests
        // (which the pass evicts when the reservation has work waiting).
        let busy: HashSet<String> = state
            .jobs
            .values()
            .filter(|j| j.row.state.is_placed())
            .flat_map(|j| j.row.devices.iter().cloned())
            .collect();
        let usable: Vec<String> = r
            .devices
            .iter()
            .filter(|d| {
                state.devices.get(*d).is_some_and(|e| {
                    e.row.health != crate::store::Health::Failed
                        && state.nodes.get(&e.row.node).is_some_and(|n| {
                            matches!(n.row.state, NodeState::Ready | NodeState::Draining)
                        })
                })
            })
            .cloned()
            .collect();
        let Some(devices) = pick_on_one_node(state, &usable, &busy, count) else {
            self.set_pending(
                state,
                id,
                format!(
                    "waiting for {count} of its reservation's devices to be free of other jobs"
                ),
                None,
            );
            return Ok(false);
        };
        let Some(node) = node_of(state, &devices) else {
            return Ok(false);
        };
        let mut row = job.clone();
        let mut batch = Vec::new();
        let bump = bump_generation(state, &node, &mut batch);
        row.state = JobState::Scheduled;
        row.reason.clear();
        row.node = Some(node.clone());
        row.devices = devices;
        row.deadline_ms = Some((t + job.max_runtime_ms).min(r.end_ms));
        row.generation = state.nodes.get(&node).map_or(0, |n| n.row.generation + 1);
        batch.push(Mutation::UpsertJob(row.clone()));
        self.commit(batch).await?;
        bump.publish(state);
        if let Some(j) = state.jobs.get_mut(id) {
            j.row = row;
            j.estimated_start = None;
        }
        Ok(true)
    }

    /// Runs the pure queue pass over the jobs queued for a class, commits its placements
    /// in one batch, and records why the others wait. Returns how many were placed and
    /// the preemptible jobs to stop.
    async fn place_queue(
        &self,
        state: &mut State,
        t: i64,
    ) -> Result<(usize, Vec<(String, JobState, String)>)> {
        let queued: Vec<QueuedJob> = state
            .jobs
            .values()
            .filter(|j| j.row.state == JobState::Pending && j.row.reservation_id.is_none())
            .map(|j| QueuedJob {
                id: j.row.id.clone(),
                org: j.row.org.clone(),
                class: j.row.class.clone(),
                count: j.row.count.max(0) as u32,
                nodes: j.row.nodes.max(1) as u32,
                runtime_ms: j.row.max_runtime_ms,
                priority: j.row.priority,
                submitted_ms: j.row.created_ms,
                preemptible: j.row.preemptible,
                rate: state.class_rate(&j.row.class),
            })
            .collect();
        if queued.is_empty() {
            return Ok((0, Vec::new()));
        }
        let weights: BTreeMap<String, f64> = state
            .orgs
            .values()
            .map(|o| (o.name.clone(), o.weight))
            .collect();
        let half_life = state.sched.fair_share_half_life_ms;
        let mut usage = state.fair.at(t, half_life);
        for j in state.jobs.values().filter(|j| j.row.state.is_placed()) {
            if let Some(s) = j.row.started_ms {
                let used = (t - s).max(0) as f64 * f64::from(State::job_devices(&j.row));
                usage.add(&j.row.org, used * state.class_rate(&j.row.class), t);
            }
        }
        let guests = guests(state);
        let idle_booked = idle_booked(state, t);
        let policy = state.sched.plan_policy(self.policy.grace_ms);
        let input = PlanInput {
            now: t,
            jobs: &queued,
            weights: &weights,
            usage: &usage,
            guests: &guests,
            idle_booked: &idle_booked,
            policy: &policy,
        };
        let mut accounts = state.accounts.clone();
        let decisions = plan(&mut state.cluster, &mut accounts, &input);

        let mut batch = Vec::new();
        let mut ledger = Vec::new();
        let mut placed: Vec<JobRow> = Vec::new();
        let mut bumps = BTreeMap::new();
        let mut preempt = Vec::new();
        for d in &decisions {
            match d {
                Decision::Place(p) => {
                    let Some(live) = state.jobs.get(&p.job) else {
                        continue;
                    };
                    let Some(node) = node_of(state, &p.devices) else {
                        continue;
                    };
                    let mut row = live.row.clone();
                    if let Some(plan) = &p.charge {
                        let subject = Subject {
                            org: &row.org,
                            kind: OwnerKind::Job,
                            id: &row.id,
                            class: &row.class,
                        };
                        let (entry, kept) = charges::charge(
                            &subject,
                            plan,
                            t,
                            "queued job placed: charged for its max runtime",
                        );
                        ledger.push(entry);
                        row.charge = kept;
                    }
                    if p.claim {
                        batch.push(Mutation::InsertClaims(
                            p.devices
                                .iter()
                                .map(|dev| ClaimRow {
                                    device_uuid: dev.clone(),
                                    owner_kind: OwnerKind::Job,
                                    owner_id: row.id.clone(),
                                    start_ms: p.start,
                                    end_ms: p.end,
                                })
                                .collect(),
                        ));
                    }
                    for n in nodes_of(state, &p.devices) {
                        if let std::collections::btree_map::Entry::Vacant(e) = bumps.entry(n) {
                            let b = bump_generation(state, e.key(), &mut batch);
                            e.insert(b);
                        }
                    }
                    row.state = JobState::Scheduled;
                    row.reason.clear();
                    // The highest of its nodes' new generations: a node that has applied
                    // it has the job (the lost-job check relies on this).
                    row.generation = nodes_of(state, &p.devices)
                        .iter()
                        .filter_map(|n| state.nodes.get(n))
                        .map(|n| n.row.generation + 1)
                        .max()
                        .unwrap_or(0);
                    row.node = Some(node);
                    row.devices = p.devices.clone();
                    row.deadline_ms = Some(p.end);
                    batch.push(Mutation::UpsertJob(row.clone()));
                    placed.push(row);
                }
                Decision::Preempt { job, for_job } => preempt.push((
                    job.clone(),
                    JobState::Preempted,
                    format!("preempted to make room for job {for_job}"),
                )),
                Decision::Wait {
                    job,
                    why,
                    estimated_start,
                } => {
                    let mut reason = why.describe(crate::convert::local_hint);
                    if let Wait::NotSchedulable { class, .. } = why {
                        let draining = draining_nodes(state, class);
                        if !draining.is_empty() {
                            reason = format!("node draining ({}): {reason}", draining.join(", "));
                        }
                    }
                    self.set_pending(state, job, reason, *estimated_start);
                }
            }
        }
        if placed.is_empty() {
            return Ok((0, preempt));
        }
        batch.push(Mutation::InsertLedger(ledger.clone()));
        if let Err(e) = self.commit(batch).await {
            // Nothing was recorded: take back the claims the pass added; keep the accounts.
            for row in &placed {
                state.cluster.remove_claims(&row.id);
            }
            return Err(e);
        }
        state.accounts = accounts;
        for e in &ledger {
            self.metrics.ledger(e.kind, e.amount_ms);
        }
        for (_, b) in bumps {
            b.publish(state);
        }
        let n = placed.len();
        for row in placed {
            if let Some(j) = state.jobs.get_mut(&row.id) {
                j.row = row;
                j.estimated_start = None;
            }
        }
        Ok((n, preempt))
    }

    fn set_pending(&self, state: &mut State, id: &str, reason: String, estimate: Option<i64>) {
        if let Some(j) = state.jobs.get_mut(id) {
            j.row.reason = reason;
            j.estimated_start = estimate;
        }
    }
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
fn draining_nodes(state: &State, class: &str) -> Vec<String> {
    let mut out: Vec<String> = state
        .devices
        .values()
        .filter(|d| d.row.class == class)
        .filter(|d| {
            state
                .nodes
                .get(&d.row.node)
                .is_some_and(|n| n.row.state == NodeState::Draining)
        })
        .map(|d| d.row.node.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Running preemptible jobs and their devices.
fn guests(state: &State) -> Vec<Guest> {
    let mut out: Vec<Guest> = state
        .jobs
        .values()
        .filter(|j| j.row.preemptible && j.row.state.is_placed())
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
    let used: HashSet<&str> = state
        .jobs
        .values()
        .filter(|j| j.row.state.is_placed())
        .flat_map(|j| j.row.devices.iter().map(String::as_str))
        .collect();
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
            if ready && e.row.health != crate::store::Health::Failed && !used.contains(d.as_str()) {
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
    let mut by_node: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
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
