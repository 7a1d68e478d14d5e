//! The gauges read from the in-memory state at scrape time.
//!
//! Only the state's `nodes`, `devices`, `classes`, `reservations`, `jobs`, `accounts`
//! and `cluster` are read. Series of every known class (and of every state of a node or
//! device) are set to zero first, so a dashboard or alert sees 0 rather than nothing.

use super::{DEVICE_STATES, Metrics};
use crate::convert::hours;
use crate::engine::PENDING_KINDS;
use crate::state::State;
use crate::store::{Health, JobRow, JobState, NodeState, ReservationState};
use std::collections::{BTreeMap, HashSet};
use std::sync::PoisonError;
use std::time::Instant;

const NODE_STATES: [NodeState; 5] = [
    NodeState::Ready,
    NodeState::Draining,
    NodeState::Drained,
    NodeState::Unreachable,
    NodeState::Down,
];

/// Devices a job holds in all: `count` on each of its `nodes` nodes.
fn job_devices(row: &JobRow) -> i64 {
    i64::from(row.count.max(0)) * i64::from(row.nodes.max(1))
}

/// When a pending job started waiting to run, or `None` when it cannot run yet (its
/// booking has not started).
fn waiting_since(state: &State, row: &JobRow, now: i64) -> Option<i64> {
    match row
        .reservation_id
        .as_ref()
        .map(|id| state.reservations.get(id))
    {
        Some(Some(r)) if r.start_ms > now => None,
        Some(Some(r)) => Some(row.created_ms.max(r.start_ms)),
        Some(None) | None => Some(row.created_ms),
    }
}

/// What the engine observes but does not keep in its state, as the gauges need it.
pub struct Observations<'a> {
    /// When a node's agent last called in (`None`: not since this scheduler started).
    pub last_seen: &'a dyn Fn(&str) -> Option<Instant>,
    /// Why a pending job waits, as one of [`PENDING_KINDS`] (by job id).
    pub pending_kind: &'a dyn Fn(&str) -> &'static str,
}

impl Metrics {
    /// Sets the gauges from the state, and accrues the booked and used device-hours of
    /// work in progress (at scrape time).
    pub fn observe_state(&self, state: &State, seen: &Observations<'_>) {
        let now = berth_proto::time::now_ms();
        self.observe_nodes(state, seen, Instant::now());
        self.observe_devices(state, now);
        self.observe_bookings(state, now);
        self.observe_jobs(state, seen, now);
        self.observe_budgets(state, now);
        self.accrue(state, now);
    }

    fn observe_nodes(&self, state: &State, seen: &Observations<'_>, now: Instant) {
        self.nodes.reset();
        self.node_state.reset();
        self.node_heartbeat_age.reset();
        for n in state.nodes.values() {
            let (name, site) = (n.row.name.as_str(), n.row.site.as_str());
            for s in NODE_STATES {
                self.nodes.with_label_values(&[site, s.as_str()]);
                self.node_state
                    .with_label_values(&[name, site, s.as_str()])
                    .set(i64::from(s == n.row.state));
            }
            self.nodes
                .with_label_values(&[site, n.row.state.as_str()])
                .inc();
            if let Some(seen) = (seen.last_seen)(name) {
                self.node_heartbeat_age
                    .with_label_values(&[name, site])
                    .set(now.saturating_duration_since(seen).as_secs_f64());
            }
        }
    }

    fn observe_devices(&self, state: &State, now: i64) {
        self.devices.reset();
        for d in state.devices.values() {
            let node = state.nodes.get(&d.row.node);
            let site = node.map_or("", |n| n.row.site.as_str());
            let class = d.row.class.as_str();
            let status = if d.row.health == Health::Failed {
                "failed"
            } else if !node.is_some_and(|n| n.row.state == NodeState::Ready) {
                "unschedulable"
            } else if state.cluster.is_free(&d.row.uuid, now, now + 1) {
                "free"
            } else {
                "busy"
            };
            for s in DEVICE_STATES {
                self.devices.with_label_values(&[class, site, s]);
            }
            self.devices.with_label_values(&[class, site, status]).inc();
        }
    }

    fn observe_bookings(&self, state: &State, now: i64) {
        self.reservations.reset();
        for s in [
            ReservationState::Requested,
            ReservationState::Confirmed,
            ReservationState::Active,
        ] {
            self.reservations.with_label_values(&[s.as_str()]).set(0);
        }
        self.devices_booked_now.reset();
        self.reservation_idle_max.reset();
        for class in state.classes.keys() {
            self.devices_booked_now.with_label_values(&[class]).set(0);
            self.reservation_idle_max
                .with_label_values(&[class])
                .set(0.0);
        }
        let mut idle_warned = 0;
        for r in state.reservations.values() {
            self.reservations
                .with_label_values(&[r.state.as_str()])
                .inc();
            if r.state.is_final() {
                continue;
            }
            idle_warned += i64::from(r.idle_warned_ms.is_some());
            if r.start_ms <= now && now < r.end_ms {
                self.devices_booked_now
                    .with_label_values(&[&r.class])
                    .add(i64::from(r.count.max(0)));
                if let Some(since) = r.idle_since_ms {
                    let idle = self.reservation_idle_max.with_label_values(&[&r.class]);
                    let seconds = (now - since).max(0) as f64 / 1000.0;
                    if seconds > idle.get() {
                        idle.set(seconds);
                    }
                }
            }
        }
        self.idle_warned.set(idle_warned);
    }

    fn observe_jobs(&self, state: &State, seen: &Observations<'_>, now: i64) {
        self.jobs.reset();
        for s in [
            JobState::Pending,
            JobState::Scheduled,
            JobState::Starting,
            JobState::Running,
        ] {
            self.jobs.with_label_values(&[s.as_str()]).set(0);
        }
        self.jobs_pending.reset();
        for reason in PENDING_KINDS {
            self.jobs_pending.with_label_values(&[reason]).set(0);
        }
        self.devices_used_now.reset();
        self.queue_length.reset();
        self.queue_oldest_wait.reset();
        let mut oldest: BTreeMap<&str, i64> = BTreeMap::new();
        for class in state.classes.keys() {
            // A class's wait histogram exists from the start, so the first jobs show in rates.
            self.job_wait.with_label_values(&[class]);
            self.devices_used_now.with_label_values(&[class]).set(0);
            self.queue_length.with_label_values(&[class]).set(0);
            oldest.insert(class, now);
        }
        for j in state.jobs.values() {
            let row = &j.row;
            self.jobs.with_label_values(&[row.state.as_str()]).inc();
            match row.state {
                JobState::Running => self
                    .devices_used_now
                    .with_label_values(&[&row.class])
                    .add(job_devices(row)),
                JobState::Pending => {
                    self.jobs_pending
                        .with_label_values(&[(seen.pending_kind)(&row.id)])
                        .inc();
                    if let Some(since) = waiting_since(state, row, now) {
                        self.queue_length.with_label_values(&[&row.class]).inc();
                        let o = oldest.entry(row.class.as_str()).or_insert(now);
                        *o = (*o).min(since);
                    }
                }
                _ => {}
            }
        }
        for (class, since) in oldest {
            self.queue_oldest_wait
                .with_label_values(&[class])
                .set((now - since).max(0) as f64 / 1000.0);
        }
    }

    fn observe_budgets(&self, state: &State, now: i64) {
        for g in [
            &self.budget_allowance,
            &self.budget_left,
            &self.budget_charged,
            &self.budget_used,
            &self.budget_limit,
        ] {
            g.reset();
        }
        for ((org, class), b) in state.accounts.budgets() {
            let labels = [org.as_str(), class.as_str()];
            let (start, _) = b.period.bounds(now);
            let totals = state.accounts.totals(org, class, start);
            self.budget_charged
                .with_label_values(&labels)
                .set(hours(totals.charged));
            self.budget_used
                .with_label_values(&labels)
                .set(hours(totals.charged - totals.refunded));
            if let Some(allowance) = b.allowance_ms {
                self.budget_allowance
                    .with_label_values(&labels)
                    .set(hours(allowance));
                self.budget_limit
                    .with_label_values(&labels)
                    .set(hours(allowance + totals.topped_up));
            }
            if let Some(left) = state.accounts.left(org, class, now) {
                self.budget_left.with_label_values(&labels).set(hours(left));
            }
        }
    }

    /// Adds the device-time that started bookings and running jobs have held since the
    /// last scrape to the booked and used counters.
    fn accrue(&self, state: &State, now: i64) {
        for class in state.classes.keys() {
            self.booked_hours.with_label_values(&[class]);
            self.used_hours.with_label_values(&[class]);
        }
        let mut accrual = self.accrual.lock().unwrap_or_else(PoisonError::into_inner);
        let mut live = HashSet::new();
        for r in state.reservations.values() {
            if r.state.is_final() || r.start_ms > now {
                continue;
            }
            live.insert(r.id.as_str());
            let add = accrual.observe(&r.id, i64::from(r.count), r.start_ms, now.min(r.end_ms));
            self.booked_hours
                .with_label_values(&[&r.class])
                .inc_by(hours(add));
        }
        for j in state.jobs.values() {
            let (row, Some(started)) = (&j.row, j.row.started_ms) else {
                continue;
            };
            if !row.state.is_placed() {
                continue;
            }
            live.insert(row.id.as_str());
            let add = accrual.observe(&row.id, job_devices(row), started, now);
            self.used_hours
                .with_label_values(&[&row.class])
                .inc_by(hours(add));
        }
        accrual.retain(&live);
    }
}
