//! Use it or lose it, and making way for owners: idle bookings are warned and then
//! reclaimed; preemptible jobs leave devices their owners need.

use super::booking::{end_reservation_jobs, reservation_usage};
use super::charges::{self, Subject};
use super::{Engine, SchedPolicy, percent_of};
use crate::core::{IdleAction, IdleState, rated};
use crate::error::Result;
use crate::state::State;
use crate::store::{JobState, Mutation, OwnerKind, ReservationRow, ReservationState};
use berth_proto::v1;
use std::collections::HashSet;

/// A job to stop: id, the state to record, and why.
type Stop = (String, JobState, String);

impl Engine {
    /// Reservations as the API shows them, with the idle warning of each under the current
    /// policy (in the same order).
    pub async fn reservation_views(&self, rows: &[ReservationRow]) -> Vec<v1::Reservation> {
        let policy = self.lock().await.sched.clone();
        rows.iter().map(|r| reservation_view(&policy, r)).collect()
    }

    /// Advances the idle state of every active booking from its devices' telemetry: a
    /// warning after the policy's idle time, a reclaim after the further time. Returns how
    /// many bookings were reclaimed.
    pub(super) async fn watch_idle(
        &self,
        state: &mut State,
        t: i64,
        to_stop: &mut Vec<Stop>,
    ) -> Result<usize> {
        let policy = state.sched.idle_policy();
        let fresh_ms = 3 * self.policy.lease_ms;
        let guest_devices: HashSet<&str> = state
            .jobs
            .values()
            .filter(|j| j.row.preemptible && j.row.state.is_placed())
            .flat_map(|j| j.row.devices.iter().map(String::as_str))
            .collect();
        let mut changes = Vec::new();
        for r in state.reservations.values() {
            if r.state != ReservationState::Active {
                continue;
            }
            let prev = IdleState {
                since: r.idle_since_ms,
                warned: r.idle_warned_ms,
            };
            let busy = booking_busy(state, r, &guest_devices, t, fresh_ms);
            let (next, action) = policy.step(prev, busy, t);
            if next != prev || action == IdleAction::Reclaim {
                changes.push((r.clone(), next, action));
            }
        }
        let mut reclaimed = 0;
        for (mut r, next, action) in changes {
            if action == IdleAction::Reclaim {
                self.reclaim(state, r, t, to_stop).await?;
                reclaimed += 1;
                continue;
            }
            r.idle_since_ms = next.since;
            r.idle_warned_ms = next.warned;
            self.commit(vec![Mutation::UpsertReservation(r.clone())])
                .await?;
            match action {
                IdleAction::Warn { reclaim_at } => tracing::warn!(
                    reservation = %r.id, org = %r.org,
                    reclaim_at = %crate::convert::local_hint(reclaim_at),
                    "booking idle; warned"
                ),
                IdleAction::Cleared => {
                    tracing::info!(reservation = %r.id, "booking busy again; warning cleared")
                }
                _ => {}
            }
            state.reservations.insert(r.id.clone(), r);
        }
        Ok(reclaimed)
    }

    /// Ends an idle booking now: its devices return to the pool, its jobs stop, and the
    /// unused rest is refunded by the policy.
    async fn reclaim(
        &self,
        state: &mut State,
        current: ReservationRow,
        t: i64,
        to_stop: &mut Vec<Stop>,
    ) -> Result<()> {
        let mut r = current;
        let threshold = state.sched.idle_threshold_pct;
        let since = r.idle_since_ms.unwrap_or(t);
        r.state = ReservationState::Reclaimed;
        r.reason = format!(
            "reclaimed: its devices stayed under {threshold}% utilisation from {} on",
            crate::convert::local_hint(since)
        );
        let count = i64::from(r.count.max(0));
        let unused = (r.end_ms - t).max(0) * count;
        let rate = state.class_rate(&r.class);
        let pct = state.sched.refund_reclaim_pct;
        let (org, id, class) = (r.org.clone(), r.id.clone(), r.class.clone());
        let subject = Subject {
            org: &org,
            kind: OwnerKind::Reservation,
            id: &id,
            class: &class,
        };
        let amount = percent_of(rated(unused, rate), pct);
        let note = format!("reclaimed for idleness ({pct}% of the unused rest)");
        let ledger: Vec<_> =
            charges::refund_amount(&subject, &mut r.charge, amount, unused, t, &note)
                .into_iter()
                .collect();
        let mut batch = vec![
            Mutation::UpsertReservation(r.clone()),
            Mutation::TruncateClaims {
                owner_id: id.clone(),
                end_ms: t,
            },
            Mutation::InsertUsage(reservation_usage(&r, t)),
            Mutation::InsertLedger(ledger.clone()),
        ];
        let why = "its reservation was reclaimed for idleness";
        let (ended, stops) =
            end_reservation_jobs(state, &id, t, why, (JobState::Cancelled, why), &mut batch);
        to_stop.extend(stops);
        self.commit(batch).await?;
        state.cluster.truncate_claims(&id, t);
        state.accounts.release(&org, &class, &id, i64::MIN);
        charges::applied(state, &self.metrics, &ledger);
        state.reservations.remove(&id);
        self.forget_ended(state, &ended);
        self.metrics.reclaimed(unused);
        tracing::warn!(reservation = %id, %org, "idle booking reclaimed");
        Ok(())
    }

    /// Preemptible jobs whose devices are claimed by someone who needs them within the
    /// grace period: a booking or job starting, or a booking with work waiting.
    pub(super) fn evict_guests(&self, state: &State, t: i64, to_stop: &mut Vec<Stop>) {
        let soon = t + self.policy.grace_ms + 1;
        let waiting = state.reservations_with_waiting_jobs();
        for g in state.jobs.values() {
            if !g.row.preemptible || !g.row.state.is_placed() || g.stop.is_some() {
                continue;
            }
            let needed_by = g.row.devices.iter().find_map(|d| {
                state
                    .cluster
                    .owners_on(d, t, soon)
                    .into_iter()
                    .find(|owner| {
                        // An active booking that is not using the device lends it.
                        let lends = state.reservations.get(*owner).is_some_and(|r| {
                            r.state == ReservationState::Active && !waiting.contains(*owner)
                        });
                        !lends
                    })
                    .map(str::to_owned)
            });
            if let Some(owner) = needed_by {
                let what = if state.reservations.contains_key(&owner) {
                    "reservation"
                } else {
                    "job"
                };
                to_stop.push((
                    g.row.id.clone(),
                    JobState::Preempted,
                    format!("preempted: its devices are needed by {what} {owner}"),
                ));
            }
        }
    }
}

/// A reservation with its idle warning: when an active booking has been warned, when it
/// will be reclaimed and why.
pub fn reservation_view(policy: &SchedPolicy, r: &ReservationRow) -> v1::Reservation {
    let mut v = crate::convert::reservation(r);
    if r.state == ReservationState::Active
        && let Some(warned) = r.idle_warned_ms
    {
        let at = warned + policy.idle_reclaim_after_ms;
        v.reclaim_at = Some(berth_proto::time::ms_to_ts(at));
        v.warning = format!(
            "idle: every device has stayed under {}% utilisation since {}; it will be \
             reclaimed at {} and the unused hours refunded unless the devices are used",
            policy.idle_threshold_pct,
            crate::convert::local_hint(r.idle_since_ms.unwrap_or(warned)),
            crate::convert::local_hint(at)
        );
    }
    v
}

/// Whether a booking's devices are in use: `Some(true)` if any device it does not lend to
/// a preemptible job is at or above the idle threshold, `Some(false)` if all are below
/// it (or all are lent), `None` when telemetry is missing or stale.
fn booking_busy(
    state: &State,
    r: &ReservationRow,
    lent: &HashSet<&str>,
    t: i64,
    fresh_ms: i64,
) -> Option<bool> {
    let policy = state.sched.idle_policy();
    let mut unknown = false;
    for d in r.devices.iter().filter(|d| !lent.contains(d.as_str())) {
        let sample = state
            .devices
            .get(d)
            .and_then(|e| e.telemetry.as_ref())
            .filter(|tm| {
                tm.sampled_at
                    .as_ref()
                    .is_some_and(|at| t - berth_proto::time::ts_to_ms(at) <= fresh_ms)
            });
        match sample {
            Some(tm) if !policy.is_idle(tm.utilization_pct) => return Some(true),
            Some(_) => {}
            None => unknown = true,
        }
    }
    (!unknown).then_some(false)
}
