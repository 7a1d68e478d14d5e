//! Use it or lose it, and making way for owners: idle bookings are warned and then
//! reclaimed; preemptible jobs leave devices their owners need.

use super::booking::reservation_usage;
use super::charges::{self, Subject};
use super::observed::Observed;
use super::pipeline::Tx;
use super::stage::{end_reservation_jobs, stage_stop};
use super::{SchedPolicy, percent_of};
use crate::core::{IdleAction, IdleState};
use crate::state::State;
use crate::store::{Mutation, OwnerKind, ReservationRow, ReservationState, StopCause};
use berth_proto::v1;
use std::collections::HashSet;
use std::sync::Arc;

/// Advances the idle state of every active booking from its devices' telemetry: a warning
/// after the policy's idle time, a reclaim after the further time. Returns the ids and
/// unused device-milliseconds of the bookings reclaimed.
pub(super) fn watch_idle(
    tx: &mut Tx<'_>,
    observed: &Observed,
    t: i64,
    fresh_ms: i64,
) -> Vec<(String, i64)> {
    let state = tx.state();
    let policy = state.sched.idle_policy();
    let guest_devices: HashSet<&str> = state
        .placed_jobs()
        .filter(|j| j.row.preemptible)
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
        let busy = booking_busy(state, observed, r, &guest_devices, t, fresh_ms);
        let (next, action) = policy.step(prev, busy, t);
        if next != prev || action == IdleAction::Reclaim {
            changes.push((ReservationRow::clone(r), next, action));
        }
    }
    changes.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let mut reclaimed = Vec::new();
    for (mut r, next, action) in changes {
        if action == IdleAction::Reclaim {
            let unused = (r.end_ms - t).max(0) * i64::from(r.count.max(0));
            let id = r.id.clone();
            reclaim(tx, r, t);
            reclaimed.push((id, unused));
            continue;
        }
        r.idle_since_ms = next.since;
        r.idle_warned_ms = next.warned;
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
        tx.push(Mutation::UpsertReservation(Arc::new(r)));
    }
    reclaimed
}

/// Ends an idle booking now: its devices return to the pool, its jobs stop, and the unused
/// rest is refunded by the policy.
fn reclaim(tx: &mut Tx<'_>, current: ReservationRow, t: i64) {
    let state = tx.state();
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
    let amount = percent_of(r.charge.worth(unused, rate), pct);
    let note = format!("reclaimed for idleness ({pct}% of the unused rest)");
    let refund = charges::refund_amount(&subject, &mut r.charge, amount, unused, t, &note);
    tx.push(Mutation::TruncateClaims {
        owner_id: id.clone(),
        end_ms: t,
    });
    tx.push(Mutation::InsertUsage(reservation_usage(&r, t)));
    tx.push(Mutation::UpsertReservation(Arc::new(r)));
    if let Some(e) = refund {
        tx.push(Mutation::InsertLedger(vec![e]));
    }
    let why = "its reservation was reclaimed for idleness";
    end_reservation_jobs(tx, &id, t, why, (StopCause::Reclaimed, why));
    tracing::warn!(reservation = %id, %org, "idle booking reclaimed");
}

/// Preemptible jobs whose devices are claimed by someone who needs them within the grace
/// period (a booking or job starting, or a booking with work waiting) are asked to stop.
/// Returns how many.
pub(super) fn evict_guests(tx: &mut Tx<'_>, t: i64, grace_ms: i64) -> usize {
    let state = tx.state();
    let soon = t + grace_ms + 1;
    let waiting = state.reservations_with_waiting_jobs();
    let mut evict = Vec::new();
    for g in state.placed_jobs() {
        if !g.row.preemptible || g.row.stop.is_some() {
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
            evict.push((
                g.row.id.clone(),
                format!("preempted: its devices are needed by {what} {owner}"),
            ));
        }
    }
    evict.sort();
    let mut n = 0;
    for (id, why) in evict {
        if stage_stop(tx, &id, StopCause::Preempted, &why) {
            n += 1;
        }
    }
    n
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
/// a preemptible job is at or above the idle threshold, `Some(false)` if all are below it
/// (or all are lent), `None` when telemetry is missing or stale.
fn booking_busy(
    state: &State,
    observed: &Observed,
    r: &ReservationRow,
    lent: &HashSet<&str>,
    t: i64,
    fresh_ms: i64,
) -> Option<bool> {
    let policy = state.sched.idle_policy();
    let mut unknown = false;
    for d in r.devices.iter().filter(|d| !lent.contains(d.as_str())) {
        let sample = observed.sample(d).filter(|tm| {
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
