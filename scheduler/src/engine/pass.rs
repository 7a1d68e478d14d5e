//! The scheduling pass: time-driven transitions and placement of pending jobs.
//!
//! Run by the scheduling loop on a tick and whenever something changes. Each step
//! commits its own small batch, so a failure leaves everything consistent.

use super::booking::reservation_usage;
use super::jobs::{bump_generation, reservation_runs};
use super::{Engine, now};
use crate::core::{Request, pick_within};
use crate::error::Result;
use crate::state::State;
use crate::store::{ClaimRow, JobState, Mutation, NodeState, OwnerKind, ReservationState};
use std::collections::HashSet;
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
            report.placed = self.place_pending(&mut state, t).await?;
        }
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
            if r.end_ms <= t {
                r.state = ReservationState::Completed;
                batch.push(Mutation::InsertUsage(reservation_usage(&r, r.end_ms)));
                for j in state.jobs.values() {
                    if j.row.reservation_id.as_deref() != Some(r.id.as_str()) {
                        continue;
                    }
                    if j.row.state == JobState::Pending {
                        let mut row = j.row.clone();
                        row.state = JobState::Cancelled;
                        row.reason = "its reservation ended before it could start".into();
                        row.finished_ms = Some(t);
                        batch.push(Mutation::UpsertJob(row));
                    } else if j.stop.is_none() {
                        to_stop.push((
                            j.row.id.clone(),
                            JobState::TimedOut,
                            "its reservation ended".into(),
                        ));
                    }
                }
            } else {
                r.state = ReservationState::Active;
            }
            batch.push(Mutation::UpsertReservation(r.clone()));
            self.commit(batch).await?;
            if r.state.is_final() {
                state.reservations.remove(&r.id);
                let ended: Vec<_> = state
                    .jobs
                    .values()
                    .filter(|j| {
                        j.row.reservation_id.as_deref() == Some(r.id.as_str())
                            && j.row.state == JobState::Pending
                    })
                    .map(|j| j.row.id.clone())
                    .collect();
                for id in ended {
                    state.jobs.remove(&id);
                    self.logs.close(&id);
                    self.metrics.job_finished(JobState::Cancelled);
                }
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

    /// Places pending jobs, oldest first; a job that does not fit does not hold up
    /// the ones behind it.
    async fn place_pending(&self, state: &mut State, t: i64) -> Result<usize> {
        let mut pending: Vec<_> = state
            .jobs
            .values()
            .filter(|j| j.row.state == JobState::Pending)
            .map(|j| (j.row.created_ms, j.row.id.clone()))
            .collect();
        pending.sort();
        let mut placed = 0;
        for (_, id) in pending {
            if self.try_place(state, &id, t).await? {
                placed += 1;
            }
        }
        Ok(placed)
    }

    async fn try_place(&self, state: &mut State, id: &str, t: i64) -> Result<bool> {
        let Some(job) = state.jobs.get(id).map(|j| j.row.clone()) else {
            return Ok(false);
        };
        let count = job.count.max(0) as u32;
        let choice = match &job.reservation_id {
            Some(rid) => {
                let Some(r) = state.reservations.get(rid).cloned() else {
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
                let busy: HashSet<String> = state
                    .jobs
                    .values()
                    .filter(|j| {
                        j.row.reservation_id.as_deref() == Some(rid.as_str())
                            && j.row.state.is_placed()
                    })
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
                match pick_on_one_node(state, &usable, &busy, count) {
                    Some(devices) => Some((devices, (t + job.max_runtime_ms).min(r.end_ms), None)),
                    None => {
                        self.set_pending(
                            state,
                            id,
                            format!("waiting for {count} of its reservation's devices to be free of its other jobs"),
                            None,
                        );
                        return Ok(false);
                    }
                }
            }
            None => {
                let req = Request {
                    class: job.class.clone(),
                    count,
                    site: None,
                    start: t,
                    end: t + job.max_runtime_ms,
                };
                match state.cluster.find_devices(&req) {
                    Ok(devices) if on_one_node(state, &devices) => {
                        Some((devices, req.end, Some(req)))
                    }
                    _ => {
                        let horizon = t + 366 * 24 * berth_proto::time::HOUR_MS;
                        let next = state
                            .cluster
                            .earliest_start(&req, horizon)
                            .filter(|s| *s > t);
                        let (total, schedulable) = state.cluster.class_counts(&job.class);
                        let reason = match next {
                            _ if schedulable < count => format!(
                                "waiting for {count} schedulable {} devices ({schedulable} of {total} are schedulable now)",
                                job.class
                            ),
                            Some(at) => format!(
                                "waiting for {count} free {} devices; next free at {}",
                                job.class,
                                crate::convert::local_hint(at)
                            ),
                            None => format!("waiting for {count} free {} devices", job.class),
                        };
                        self.set_pending(state, id, reason, next);
                        return Ok(false);
                    }
                }
            }
        };
        let Some((devices, deadline, claim)) = choice else {
            return Ok(false);
        };
        let Some(node) = devices
            .first()
            .and_then(|d| state.devices.get(d))
            .map(|d| d.row.node.clone())
        else {
            return Ok(false);
        };
        let mut row = job.clone();
        let mut batch = Vec::new();
        if let Some(req) = &claim {
            batch.push(Mutation::InsertClaims(
                devices
                    .iter()
                    .map(|d| ClaimRow {
                        device_uuid: d.clone(),
                        owner_kind: OwnerKind::Job,
                        owner_id: row.id.clone(),
                        start_ms: req.start,
                        end_ms: req.end,
                    })
                    .collect(),
            ));
        }
        let bump = bump_generation(state, &node, &mut batch);
        row.state = JobState::Scheduled;
        row.reason.clear();
        row.node = Some(node);
        row.devices = devices.clone();
        row.deadline_ms = Some(deadline);
        row.generation = state
            .nodes
            .get(row.node.as_deref().unwrap_or_default())
            .map_or(0, |n| n.row.generation + 1);
        batch.push(Mutation::UpsertJob(row.clone()));
        self.commit(batch).await?;
        if let Some(req) = claim
            && let Err(e) = state
                .cluster
                .add_claim(&row.id, &devices, req.start, req.end)
        {
            tracing::error!(job = %row.id, error = %e, "calendar disagrees with the database");
        }
        bump.publish(state);
        if let Some(j) = state.jobs.get_mut(id) {
            j.row = row;
            j.estimated_start = None;
        }
        Ok(true)
    }

    fn set_pending(&self, state: &mut State, id: &str, reason: String, estimate: Option<i64>) {
        if let Some(j) = state.jobs.get_mut(id) {
            j.row.reason = reason;
            j.estimated_start = estimate;
        }
    }
}

/// True when every device is on the same node.
fn on_one_node(state: &State, devices: &[String]) -> bool {
    let mut nodes = devices
        .iter()
        .filter_map(|d| state.devices.get(d).map(|e| e.row.node.as_str()));
    match nodes.next() {
        Some(first) => nodes.all(|n| n == first),
        None => false,
    }
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
