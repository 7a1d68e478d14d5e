//! Reservations: booking devices of a class for a window.

use super::charges::{self, Subject};
use super::stage::end_reservation_jobs;
use super::{Engine, audit, now, percent_of};
use crate::auth::Caller;
use crate::core::{Ask, Refusal, Request};
use crate::error::{Error, Result};
use crate::store::{
    Charge, ClaimRow, Mutation, OwnerKind, ReservationRow, ReservationState, StopCause, UsageRow,
};
use berth_i18n::text;
use berth_proto::model::{self, ReservationSpec};
use berth_proto::v1;
use std::sync::Arc;

impl Engine {
    /// Books devices for a window: atomic, packed on one node when the count fits.
    pub async fn create_reservation(
        &self,
        caller: &Caller,
        req: &v1::CreateReservationRequest,
    ) -> Result<Arc<ReservationRow>> {
        caller.require_user()?;
        let spec = ReservationSpec::from_request(req, now())?;
        let result = self.commit(|tx| book(tx, caller, &spec)).await;
        self.metrics.booking(match &result {
            Ok(_) => "confirmed",
            Err(Error::Capacity(_)) => "refused_capacity",
            Err(Error::Invalid(_)) => "refused_invalid",
            Err(_) => "error",
        });
        match &result {
            Ok(_) => self.kick(),
            Err(e @ Error::Capacity(_)) => {
                self.audit_refusal(
                    caller,
                    "reservation.create",
                    &format!("{} x{}", spec.class, spec.count),
                    e,
                )
                .await
            }
            Err(_) => {}
        }
        result
    }

    /// One reservation, if the caller may see it.
    pub async fn get_reservation(&self, caller: &Caller, id: &str) -> Result<Arc<ReservationRow>> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        let live = self.view().reservations.get(&id).cloned();
        let row = match live {
            Some(r) => Some(r),
            None => self.store.get_reservation(&id).await?.map(Arc::new),
        };
        row.filter(|r| caller.can_see_org(&r.org))
            .ok_or_else(|| Error::NotFound(text!(WhatReservation, id)))
    }

    /// Cancels a reservation: before its start it is released whole; during its window the
    /// devices are released from now and its running jobs are stopped. One batch holds it
    /// all: the reservation, the refund, the claims, its jobs and their nodes.
    pub async fn cancel_reservation(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Arc<ReservationRow>> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        let done = self
            .commit(|tx| {
                let Some(current) = tx.state().reservations.get(&id).cloned() else {
                    return Ok(None);
                };
                cancel(tx, caller, &current).map(Some)
            })
            .await?;
        match done {
            Some(row) => {
                self.kick();
                Ok(row)
            }
            // Final or unknown: tell which only to those who may see it.
            None => match self.store.get_reservation(&id).await? {
                Some(r) if caller.can_see_org(&r.org) => Err(Error::FailedPrecondition(text!(
                    ReservationAlready,
                    id,
                    state = r.state
                ))),
                _ => Err(Error::NotFound(text!(WhatReservation, id))),
            },
        }
    }
}

/// What a booking would take, checked exactly as a booking is: its start (now at the
/// earliest), the budget charge (`None`: no budget applies) and the devices.
pub(crate) struct Admitted {
    /// The window's start, not before now.
    pub start: i64,
    /// Budget units per device-hour of the class.
    pub rate: f64,
    /// The charge it will carry.
    pub plan: Option<crate::core::ChargePlan>,
    /// The devices it would be pinned to.
    pub devices: Vec<String>,
    /// The project it is booked under.
    pub project: Option<String>,
}

/// Checks a booking against the class, the site, the org's budget and limits and the
/// free devices, changing nothing. Used to book and to quote a booking's cost.
pub(crate) fn admit_booking(
    state: &crate::state::State,
    caller: &Caller,
    spec: &ReservationSpec,
    t: i64,
) -> Result<Admitted> {
    check_class(&state.classes, &spec.class)?;
    if let Some(site) = &spec.site
        && !state.sites.contains_key(site)
    {
        return Err(Error::field("site", text!(UnknownSite, site = ?site)));
    }
    let start = spec.start.max(t);
    let request = Request {
        class: spec.class.clone(),
        count: spec.count,
        site: spec.site.clone(),
        start,
        end: spec.end,
    };
    let rate = state.class_rate(&spec.class);
    let project = super::projects::resolve_project(state, caller, spec.project.as_deref())?;
    let plan = state
        .accounts
        .admit(&Ask {
            org: &caller.org,
            class: &spec.class,
            rate,
            devices: spec.count,
            start,
            end: spec.end,
            now: t,
            capped: true,
            project: project.as_deref(),
        })
        .map_err(limit_refusal)?;
    let devices = state.cluster.find_devices(&request).map_err(refusal)?;
    Ok(Admitted {
        start,
        rate,
        plan,
        devices,
        project,
    })
}

/// Decides a booking.
fn book(
    tx: &mut super::Tx<'_>,
    caller: &Caller,
    spec: &ReservationSpec,
) -> Result<Arc<ReservationRow>> {
    let t = now();
    let Admitted {
        start,
        plan,
        devices,
        project,
        ..
    } = admit_booking(tx.state(), caller, spec, t)?;
    let mut row = ReservationRow {
        id: uuid::Uuid::new_v4().to_string(),
        org: caller.org.clone(),
        user_id: caller.id.clone(),
        user_name: caller.name.clone(),
        class: spec.class.clone(),
        count: spec.count as i32,
        site: spec.site.clone(),
        start_ms: start,
        end_ms: spec.end,
        state: if start <= t {
            ReservationState::Active
        } else {
            ReservationState::Confirmed
        },
        reason: String::new(),
        devices: devices.clone(),
        created_ms: t,
        charge: Charge::default(),
        project,
        idle_since_ms: None,
        idle_warned_ms: None,
    };
    let ledger: Vec<_> = plan
        .iter()
        .map(|plan| {
            let subject = Subject {
                org: &row.org,
                kind: OwnerKind::Reservation,
                id: &row.id,
                class: &row.class,
            };
            let (entry, kept) = charges::charge(&subject, plan, t, "booking confirmed");
            row.charge = kept;
            entry
        })
        .collect();
    let claims = devices
        .iter()
        .map(|d| ClaimRow {
            device_uuid: d.clone(),
            owner_kind: OwnerKind::Reservation,
            owner_id: row.id.clone(),
            start_ms: row.start_ms,
            end_ms: row.end_ms,
        })
        .collect();
    let row = Arc::new(row);
    let target = format!("{} {} x{}", row.id, row.class, row.count);
    tx.push(Mutation::InsertClaims(claims));
    tx.push(Mutation::UpsertReservation(row.clone()));
    if !ledger.is_empty() {
        tx.push(Mutation::InsertLedger(ledger));
    }
    tx.push(Mutation::Audit(audit(
        caller,
        "reservation.create",
        &target,
        t,
        "ok",
    )));
    Ok(row)
}

/// Decides a cancellation of a live reservation.
fn cancel(
    tx: &mut super::Tx<'_>,
    caller: &Caller,
    current: &ReservationRow,
) -> Result<Arc<ReservationRow>> {
    let id = current.id.clone();
    if !caller.can_see_org(&current.org) {
        return Err(Error::NotFound(text!(WhatReservation, id)));
    }
    if !caller.can_modify(&current.org, &current.user_id) {
        return Err(Error::PermissionDenied(text!(
            ReservationNotYours,
            id,
            owner = current.user_name
        )));
    }
    let t = now();
    let state = tx.state();
    let mut row = current.clone();
    row.state = ReservationState::Cancelled;
    row.reason = format!("cancelled by {}", caller.name);
    let rate = state.class_rate(&row.class);
    let subject = Subject {
        org: &current.org,
        kind: OwnerKind::Reservation,
        id: &current.id,
        class: &current.class,
    };
    let count = i64::from(row.count.max(0));
    let refund = if t <= row.start_ms {
        let amount = percent_of(row.charge.amount_ms, state.sched.refund_cancel_pct);
        let device_ms = (row.end_ms - row.start_ms) * count;
        let note = format!("cancelled before its start by {}", caller.name);
        charges::refund_amount(&subject, &mut row.charge, amount, device_ms, t, &note)
    } else {
        let unused = (row.end_ms - t).max(0) * count;
        let pct = state.sched.refund_cancel_started_pct;
        let amount = percent_of(row.charge.worth(unused, rate), pct);
        let note = format!(
            "cancelled early by {} ({pct}% of the unused rest)",
            caller.name
        );
        charges::refund_amount(&subject, &mut row.charge, amount, unused, t, &note)
    };
    if t <= row.start_ms {
        tx.push(Mutation::DeleteClaims {
            owner_id: id.clone(),
        });
    } else {
        tx.push(Mutation::TruncateClaims {
            owner_id: id.clone(),
            end_ms: t,
        });
        tx.push(Mutation::InsertUsage(reservation_usage(&row, t)));
    }
    let row = Arc::new(row);
    tx.push(Mutation::UpsertReservation(row.clone()));
    if let Some(r) = refund {
        tx.push(Mutation::InsertLedger(vec![r]));
    }
    // Jobs waiting for this reservation end now; placed ones are stopped.
    let why = "its reservation was cancelled";
    end_reservation_jobs(tx, &id, t, why, (StopCause::ReservationCancelled, why));
    tx.push(Mutation::Audit(audit(
        caller,
        "reservation.cancel",
        &id,
        t,
        "ok",
    )));
    Ok(row)
}

/// Ends a live booking early by the centre's decision (its project ended): one that has
/// not started is cancelled, one that has ends now; all of its unused time is refunded
/// and its jobs end with it.
pub(crate) fn end_booking_early(
    tx: &mut super::Tx<'_>,
    current: &ReservationRow,
    t: i64,
    ended: ReservationState,
    (cause, why): (StopCause, &str),
) {
    let mut row = current.clone();
    row.state = ended;
    row.reason = why.to_owned();
    let rate = tx.state().class_rate(&row.class);
    let subject = Subject {
        org: &current.org,
        kind: OwnerKind::Reservation,
        id: &current.id,
        class: &current.class,
    };
    let count = i64::from(row.count.max(0));
    let started = t > row.start_ms;
    let unused = (row.end_ms - t.max(row.start_ms)).max(0) * count;
    let amount = if started {
        row.charge.worth(unused, rate)
    } else {
        row.charge.amount_ms
    };
    let note = format!("{why}: its unused time refunded");
    let refund = charges::refund_amount(&subject, &mut row.charge, amount, unused, t, &note);
    if started {
        tx.push(Mutation::TruncateClaims {
            owner_id: row.id.clone(),
            end_ms: t,
        });
        tx.push(Mutation::InsertUsage(reservation_usage(&row, t)));
    } else {
        tx.push(Mutation::DeleteClaims {
            owner_id: row.id.clone(),
        });
    }
    let id = row.id.clone();
    tx.push(Mutation::UpsertReservation(Arc::new(row)));
    if let Some(r) = refund {
        tx.push(Mutation::InsertLedger(vec![r]));
    }
    end_reservation_jobs(tx, &id, t, why, (cause, why));
}

/// The usage record of a reservation held until `until`.
pub(crate) fn reservation_usage(r: &ReservationRow, until: i64) -> UsageRow {
    let end = until.min(r.end_ms).max(r.start_ms);
    UsageRow {
        org: r.org.clone(),
        user_id: r.user_id.clone(),
        kind: OwnerKind::Reservation,
        subject_id: r.id.clone(),
        class: r.class.clone(),
        devices: r.count,
        start_ms: r.start_ms,
        end_ms: end,
        device_ms: (end - r.start_ms) * i64::from(r.count),
        evidence: None,
    }
}

/// Fails with a field error naming the known classes when `class` is unknown.
pub(crate) fn check_class(
    classes: &std::collections::BTreeMap<String, crate::store::ClassRow>,
    class: &str,
) -> Result<()> {
    check_class_field("class", classes, class)
}

/// [`check_class`] for a class given in `field`.
pub(crate) fn check_class_field(
    field: &str,
    classes: &std::collections::BTreeMap<String, crate::store::ClassRow>,
    class: &str,
) -> Result<()> {
    if classes.contains_key(class) {
        return Ok(());
    }
    let known: Vec<&str> = classes.keys().map(String::as_str).collect();
    Err(Error::field(
        field,
        if known.is_empty() {
            text!(UnknownClassNone, class = ?class)
        } else {
            text!(UnknownClassKnown, class = ?class, known = known.join(", "))
        },
    ))
}

/// Maps a refusal by the org's limits or its project's grant to an error: a window
/// outside the project's period is a bad request naming the field, the rest are policy
/// refusals.
pub(crate) fn limit_refusal(r: crate::core::LimitRefusal) -> Error {
    match r {
        r @ crate::core::LimitRefusal::OutsideProject { .. } => Error::field("end", r.text()),
        r => Error::Capacity(r.text()),
    }
}

/// Maps a core refusal to an error.
pub(crate) fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::UnknownClass { class } => Error::Capacity(text!(NoDevicesYet, class)),
        Refusal::InvalidWindow { reason } => Error::field("end", reason),
        r @ (Refusal::NotEnough { .. } | Refusal::NoNodeFits { .. }) => Error::Capacity(r.text()),
    }
}
