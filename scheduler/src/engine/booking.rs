//! Reservations: booking devices of a class for a window.

use super::charges::{self, Subject};
use super::{Engine, audit, now, percent_of};
use crate::auth::Caller;
use crate::core::{Ask, Refusal, Request};
use crate::error::{Error, Result};
use crate::state::State;
use crate::store::{
    Charge, JobRow, JobState, Mutation, OwnerKind, ReservationRow, ReservationState, Scope,
    UsageRow,
};
use berth_proto::model::{self, ReservationSpec};
use berth_proto::v1;

impl Engine {
    /// Books devices for a window: atomic, packed on one node when the count fits.
    pub async fn create_reservation(
        &self,
        caller: &Caller,
        req: &v1::CreateReservationRequest,
    ) -> Result<ReservationRow> {
        caller.require_user()?;
        let spec = ReservationSpec::from_request(req, now())?;
        let result = self.book(caller, &spec).await;
        self.metrics.booking(match &result {
            Ok(_) => "confirmed",
            Err(Error::Capacity(_)) => "refused_capacity",
            Err(Error::Invalid(_)) => "refused_invalid",
            Err(_) => "error",
        });
        if let Err(e @ Error::Capacity(_)) = &result {
            self.audit_refusal(
                caller,
                "reservation.create",
                &format!("{} x{}", spec.class, spec.count),
                e,
            )
            .await;
        }
        result
    }

    async fn book(&self, caller: &Caller, spec: &ReservationSpec) -> Result<ReservationRow> {
        let mut state = self.lock().await;
        check_class(&state.classes, &spec.class)?;
        if let Some(site) = &spec.site
            && !state.sites.contains_key(site)
        {
            return Err(Error::field("site", format!("unknown site {site:?}")));
        }
        let t = now();
        let start = spec.start.max(t);
        let request = Request {
            class: spec.class.clone(),
            count: spec.count,
            site: spec.site.clone(),
            start,
            end: spec.end,
        };
        let rate = state.class_rate(&spec.class);
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
            })
            .map_err(|r| Error::Capacity(r.to_string()))?;
        let devices = state.cluster.find_devices(&request).map_err(refusal)?;
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
            .map(|d| crate::store::ClaimRow {
                device_uuid: d.clone(),
                owner_kind: OwnerKind::Reservation,
                owner_id: row.id.clone(),
                start_ms: row.start_ms,
                end_ms: row.end_ms,
            })
            .collect();
        self.commit(vec![
            Mutation::UpsertReservation(row.clone()),
            Mutation::InsertClaims(claims),
            Mutation::InsertLedger(ledger.clone()),
            Mutation::Audit(audit(
                caller,
                "reservation.create",
                &format!("{} {} x{}", row.id, row.class, row.count),
                t,
                "ok",
            )),
        ])
        .await?;
        state
            .cluster
            .add_claim(&row.id, &devices, row.start_ms, row.end_ms)
            .map_err(|e| Error::Internal(format!("calendar disagrees with the database: {e}")))?;
        charges::applied(&mut state, &self.metrics, &ledger);
        state.accounts.hold(
            &row.org,
            &row.class,
            &row.id,
            row.start_ms,
            row.end_ms,
            spec.count,
        );
        state.reservations.insert(row.id.clone(), row.clone());
        drop(state);
        self.kick();
        Ok(row)
    }

    /// Reservations of the caller's org (admins: all).
    pub async fn list_reservations(
        &self,
        caller: &Caller,
        all: bool,
    ) -> Result<Vec<ReservationRow>> {
        caller.require_user()?;
        let scope = Scope {
            org: (!caller.is_admin()).then(|| caller.org.clone()),
            include_finished: all,
        };
        Ok(self.store.list_reservations(&scope).await?)
    }

    /// One reservation, if the caller may see it.
    pub async fn get_reservation(&self, caller: &Caller, id: &str) -> Result<ReservationRow> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        let row = self.store.get_reservation(&id).await?;
        row.filter(|r| caller.can_see_org(&r.org))
            .ok_or_else(|| Error::NotFound(format!("reservation {id}")))
    }

    /// Cancels a reservation: before its start it is released whole; during its
    /// window the devices are released from now and its running jobs are stopped.
    pub async fn cancel_reservation(&self, caller: &Caller, id: &str) -> Result<ReservationRow> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        let mut state = self.lock().await;
        let Some(current) = state.reservations.get(&id).cloned() else {
            // Final or unknown: tell which only to those who may see it.
            return match self.store.get_reservation(&id).await? {
                Some(r) if caller.can_see_org(&r.org) => Err(Error::FailedPrecondition(format!(
                    "reservation {id} is already {}",
                    r.state
                ))),
                _ => Err(Error::NotFound(format!("reservation {id}"))),
            };
        };
        if !caller.can_see_org(&current.org) {
            return Err(Error::NotFound(format!("reservation {id}")));
        }
        if !caller.can_modify(&current.org, &current.user_id) {
            return Err(Error::PermissionDenied(format!(
                "reservation {id} belongs to {}; only they or an org-admin may cancel it",
                current.user_name
            )));
        }
        let t = now();
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
            let amount = percent_of(crate::core::rated(unused, rate), pct);
            let note = format!(
                "cancelled early by {} ({pct}% of the unused rest)",
                caller.name
            );
            charges::refund_amount(&subject, &mut row.charge, amount, unused, t, &note)
        };
        let ledger: Vec<_> = refund.into_iter().collect();
        let mut batch = vec![
            Mutation::UpsertReservation(row.clone()),
            Mutation::InsertLedger(ledger.clone()),
        ];
        let held_until = if t <= row.start_ms {
            batch.push(Mutation::DeleteClaims {
                owner_id: id.clone(),
            });
            None
        } else {
            batch.push(Mutation::TruncateClaims {
                owner_id: id.clone(),
                end_ms: t,
            });
            batch.push(Mutation::InsertUsage(reservation_usage(&row, t)));
            Some(t)
        };
        // Jobs waiting for this reservation end now; placed ones are stopped.
        let why = "its reservation was cancelled";
        let (finished, stopped) =
            end_reservation_jobs(&state, &id, t, why, (JobState::Cancelled, why), &mut batch);
        batch.push(Mutation::Audit(audit(
            caller,
            "reservation.cancel",
            &id,
            t,
            "ok",
        )));
        self.commit(batch).await?;
        match held_until {
            None => state.cluster.remove_claims(&id),
            Some(end) => state.cluster.truncate_claims(&id, end),
        }
        charges::applied(&mut state, &self.metrics, &ledger);
        state.accounts.release(&row.org, &row.class, &id, i64::MIN);
        state.reservations.remove(&id);
        self.forget_ended(&mut state, &finished);
        drop(state);
        for (job, end, reason) in stopped {
            self.request_stop(&job, end, &reason).await?;
        }
        let state = self.lock().await;
        drop(state);
        self.kick();
        Ok(row)
    }
}

/// The jobs of a reservation that is ending. Pending ones end now, cancelled with
/// `pending_reason`: their final rows are staged in `batch` and returned, to be forgotten
/// with [`Engine::forget_ended`] once committed. Placed ones not already stopping are
/// returned as stops with `stop_state` and `stop_reason`.
pub(crate) fn end_reservation_jobs(
    state: &State,
    rid: &str,
    t: i64,
    pending_reason: &str,
    (stop_state, stop_reason): (JobState, &str),
    batch: &mut Vec<Mutation>,
) -> (Vec<JobRow>, Vec<(String, JobState, String)>) {
    let mut ended = Vec::new();
    let mut stops = Vec::new();
    for j in state.jobs.values() {
        if j.row.reservation_id.as_deref() != Some(rid) {
            continue;
        }
        if j.row.state == JobState::Pending {
            let mut row = j.row.clone();
            row.state = JobState::Cancelled;
            row.reason = pending_reason.to_owned();
            row.finished_ms = Some(t);
            batch.push(Mutation::UpsertJob(row.clone()));
            ended.push(row);
        } else if j.stop.is_none() {
            stops.push((j.row.id.clone(), stop_state, stop_reason.to_owned()));
        }
    }
    (ended, stops)
}

impl Engine {
    /// Forgets pending jobs whose end was just committed.
    pub(crate) fn forget_ended(&self, state: &mut State, rows: &[JobRow]) {
        for row in rows {
            state.jobs.remove(&row.id);
            self.logs.close(&row.id);
            self.metrics.job_finished(row.state);
        }
    }
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
    }
}

/// Fails with a field error naming the known classes when `class` is unknown.
pub(crate) fn check_class(
    classes: &std::collections::BTreeMap<String, crate::store::ClassRow>,
    class: &str,
) -> Result<()> {
    if classes.contains_key(class) {
        return Ok(());
    }
    let known: Vec<&str> = classes.keys().map(String::as_str).collect();
    Err(Error::field(
        "class",
        format!(
            "unknown device class {class:?} (known: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ),
    ))
}

/// Maps a core refusal to an error.
pub(crate) fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::UnknownClass { class } => {
            Error::Capacity(format!("no {class} devices are registered yet"))
        }
        Refusal::InvalidWindow { reason } => Error::field("end", reason),
        r @ (Refusal::NotEnough { .. } | Refusal::NoNodeFits { .. }) => {
            Error::Capacity(r.to_string())
        }
    }
}
