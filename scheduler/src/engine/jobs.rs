//! Jobs: submission and cancellation.

use super::stage::stage_stop;
use super::{Engine, JobView, audit, now};
use crate::auth::Caller;
use crate::core::LimitRefusal;
use crate::error::{Error, Result};
use crate::state::State;
use crate::store::{Charge, JobRow, JobState, Mutation, StopCause};
use berth_i18n::text;
use berth_proto::model::{self, JobSpec, JobTarget};
use berth_proto::v1;
use std::sync::Arc;

/// What a cancellation found.
enum Cancelled {
    /// The job ended now (it was pending) or was asked to stop.
    Done(Arc<JobRow>),
    /// The job is not live: final or unknown.
    NotLive,
}

impl Engine {
    /// Queues a job, in a reservation or for a class.
    pub async fn submit_job(&self, caller: &Caller, req: &v1::SubmitJobRequest) -> Result<JobView> {
        caller.require_user()?;
        let limits = berth_proto::model::SubmitLimits {
            max_spec_bytes: self.view().sched.max_job_spec_bytes as usize,
        };
        let spec = JobSpec::from_request_with(req, &limits)?;
        let decided = self
            .commit(|tx| {
                let row = match admit_job(tx.state(), caller, &spec)? {
                    Admit::Row(row) => Arc::new(*row),
                    Admit::ReservationNotLive(id) => return Ok(Err(id)),
                };
                let t = row.created_ms;
                tx.push(Mutation::UpsertJob(row.clone()));
                tx.push(Mutation::Audit(audit(
                    caller,
                    "job.submit",
                    &row.id,
                    t,
                    "ok",
                )));
                Ok(Ok(row))
            })
            .await;
        let row = match decided {
            Ok(Ok(row)) => row,
            Ok(Err(not_live)) => return Err(self.reservation_gone(caller, &not_live).await),
            Err(e) => return Err(e),
        };
        self.kick();
        Ok(JobView::new(row, None))
    }

    /// The error for a submission to a reservation that is not live: "not found" to those
    /// who may not see it, its state to those who may.
    async fn reservation_gone(&self, caller: &Caller, id: &str) -> Error {
        match self.store.get_reservation(id).await {
            Ok(Some(r)) if caller.can_see_org(&r.org) => {
                Error::FailedPrecondition(text!(ReservationClosed, id, state = r.state))
            }
            Ok(_) => Error::NotFound(text!(WhatReservation, id)),
            Err(e) => e.into(),
        }
    }

    /// One job, if the caller may see it: live jobs from the committed state (with why
    /// they wait), ended ones from the database.
    pub async fn get_job(&self, caller: &Caller, id: &str) -> Result<JobView> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        self.visible_job(caller, &id).await
    }

    pub(crate) async fn visible_job(&self, caller: &Caller, id: &str) -> Result<JobView> {
        let live = self.view().jobs.get(id).map(|j| j.row.clone());
        let row = match live {
            Some(row) => Some(row),
            None => self.store.get_job(id).await?.map(Arc::new),
        };
        let row = row
            .filter(|j| caller.can_see_org(&j.org))
            .ok_or_else(|| Error::NotFound(text!(WhatJob, id)))?;
        let hint = (row.state == JobState::Pending)
            .then(|| self.hints.of(id))
            .flatten();
        Ok(JobView::new(row, hint).observed(&self.observed))
    }

    /// Cancels a job: a pending one ends at once; a placed one is stopped by its node
    /// (SIGTERM, grace, SIGKILL) and recorded as cancelled when the node confirms.
    pub async fn cancel_job(&self, caller: &Caller, id: &str) -> Result<JobView> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        let t = now();
        let outcome = self
            .commit(|tx| {
                let Some(live) = tx.state().jobs.get(&id) else {
                    return Ok(Cancelled::NotLive);
                };
                let row = live.row.clone();
                if !caller.can_see_org(&row.org) {
                    return Err(Error::NotFound(text!(WhatJob, id)));
                }
                if !caller.can_modify(&row.org, &row.user_id) {
                    return Err(Error::PermissionDenied(text!(
                        JobNotYours,
                        id,
                        owner = row.user_name
                    )));
                }
                let reason = format!("cancelled by {}", caller.name);
                if row.state == JobState::Pending {
                    let mut ended = JobRow::clone(&row);
                    ended.state = JobState::Cancelled;
                    ended.reason = reason;
                    ended.finished_ms = Some(t);
                    let ended = Arc::new(ended);
                    tx.push(Mutation::UpsertJob(ended.clone()));
                    tx.push(Mutation::Audit(audit(caller, "job.cancel", &id, t, "ok")));
                    return Ok(Cancelled::Done(ended));
                }
                stage_stop(tx, &id, StopCause::Cancelled, &reason);
                tx.push(Mutation::Audit(audit(caller, "job.cancel", &id, t, "ok")));
                let now_row = tx.state().jobs.get(&id).map_or(row, |j| j.row.clone());
                Ok(Cancelled::Done(now_row))
            })
            .await?;
        match outcome {
            Cancelled::Done(row) => {
                self.kick();
                Ok(JobView::new(row, None))
            }
            Cancelled::NotLive => {
                let job = self.visible_job(caller, &id).await?;
                Err(Error::FailedPrecondition(text!(
                    JobAlreadyEnded,
                    id,
                    state = job.row.state
                )))
            }
        }
    }
}

/// What a submission checked against the live state comes to.
enum Admit {
    /// The job to queue.
    Row(Box<JobRow>),
    /// It names a reservation that is not live (ended, or unknown).
    ReservationNotLive(String),
}

/// Checks a submission against the live state and builds its row.
fn admit_job(state: &State, caller: &Caller, spec: &JobSpec) -> Result<Admit> {
    let t = now();
    for (name, rw) in &spec.datasets {
        match state
            .dataset_grants
            .get(&(caller.org.clone(), name.clone()))
        {
            None => {
                return Err(Error::PermissionDenied(text!(
                    DatasetNotGranted,
                    quoted = ?name,
                    quoted_org = ?caller.org,
                    org = caller.org,
                    name
                )));
            }
            Some(false) if *rw => {
                return Err(Error::PermissionDenied(text!(
                    DatasetReadOnly,
                    org = ?caller.org,
                    name = ?name
                )));
            }
            Some(_) => {}
        }
    }
    let (class, reservation_id, project) = match &spec.target {
        JobTarget::Reservation(id) => {
            let Some(r) = state.reservations.get(id) else {
                return Ok(Admit::ReservationNotLive(id.clone()));
            };
            if !caller.can_see_org(&r.org) {
                return Err(Error::NotFound(text!(WhatReservation, id)));
            }
            if r.org != caller.org {
                return Err(Error::PermissionDenied(text!(
                    ReservationOtherOrg,
                    id,
                    org = r.org
                )));
            }
            if spec.count as i32 > r.count {
                return Err(Error::field(
                    "count",
                    text!(
                        ReservationHolds,
                        id,
                        holds = r.count,
                        requested = spec.count
                    ),
                ));
            }
            if r.end_ms <= t {
                return Err(Error::FailedPrecondition(text!(ReservationEnded, id)));
            }
            if spec.project.is_some() && spec.project != r.project {
                return Err(Error::field(
                    "project",
                    text!(
                        JobProjectIsBookings,
                        id,
                        project = r.project.as_deref().unwrap_or("-")
                    ),
                ));
            }
            (r.class.clone(), Some(r.id.clone()), r.project.clone())
        }
        JobTarget::Class(class) => {
            super::booking::check_class(&state.classes, class)?;
            let largest = state.largest_node(class);
            if spec.count > largest {
                return Err(Error::field(
                    "count",
                    text!(LargestNode, count = spec.count, class, largest),
                ));
            }
            let fitting = state.nodes_with_at_least(class, spec.count);
            if spec.nodes > fitting {
                return Err(Error::field(
                    "nodes",
                    text!(
                        TooFewNodes,
                        nodes = spec.nodes,
                        count = spec.count,
                        class,
                        fitting
                    ),
                ));
            }
            if let Some(r) = never_within_limits(state, &caller.org, class, spec) {
                return Err(Error::Capacity(text!(NeverStart, why = @r.text())));
            }
            let project = super::projects::resolve_project(state, caller, spec.project.as_deref())?;
            if let Some(id) = &project {
                never_within_project(state, &caller.org, id, class, spec, t)?;
            }
            (class.clone(), None, project)
        }
    };
    Ok(Admit::Row(Box::new(JobRow {
        id: uuid::Uuid::new_v4().to_string(),
        name: spec.name.clone(),
        org: caller.org.clone(),
        user_id: caller.id.clone(),
        user_name: caller.name.clone(),
        class,
        count: spec.count as i32,
        image: spec.image.clone(),
        command: spec.command.clone(),
        env: spec.env.clone(),
        datasets: spec.datasets.clone(),
        network: spec.network.clone(),
        max_runtime_ms: spec.max_runtime_ms,
        reservation_id,
        state: JobState::Pending,
        reason: "waiting for the scheduler".into(),
        node: None,
        devices: Vec::new(),
        exit_code: None,
        created_ms: t,
        started_ms: None,
        finished_ms: None,
        deadline_ms: None,
        generation: 0,
        priority: spec.priority,
        preemptible: spec.preemptible,
        nodes: spec.nodes as i32,
        charge: Charge::default(),
        project,
        evidence: None,
        requeued_from: None,
        stop: None,
    })))
}

/// A limit the job breaks whatever else happens (too long, or more devices than the cap).
fn never_within_limits(
    state: &State,
    org: &str,
    class: &str,
    spec: &JobSpec,
) -> Option<LimitRefusal> {
    let key = state.accounts.key_for(org, class)?;
    let b = state.accounts.budget(org, key)?;
    if let Some(max_ms) = b.max_booking_ms
        && spec.max_runtime_ms > max_ms
    {
        return Some(LimitRefusal::TooLong {
            class: class.to_owned(),
            max_ms,
            asked_ms: spec.max_runtime_ms,
        });
    }
    let devices = spec.count * spec.nodes;
    let cap = b.max_devices.or_else(|| {
        state
            .accounts
            .budget(org, crate::core::ANY)
            .and_then(|b| b.max_devices)
    });
    match cap {
        Some(max) if !spec.preemptible && devices > max => Some(LimitRefusal::Cap {
            class: class.to_owned(),
            max,
            held: 0,
            asked: devices,
        }),
        _ => None,
    }
}

/// Refuses a queued job its project can never pay for: one whose max runtime from now
/// runs past the project's end, or that asks more device-hours than the project grants
/// its class in all (unless the org allows overage onto its budget).
fn never_within_project(
    state: &State,
    org: &str,
    id: &str,
    class: &str,
    spec: &JobSpec,
    t: i64,
) -> Result<()> {
    let Some(g) = state.accounts.grant(id) else {
        return Ok(());
    };
    if t.max(g.start).saturating_add(spec.max_runtime_ms) > g.end {
        let r = LimitRefusal::OutsideProject {
            project: id.to_owned(),
            start: g.start,
            end: g.end,
        };
        return Err(Error::field("max_runtime", r.text()));
    }
    let asked = spec
        .max_runtime_ms
        .saturating_mul(i64::from(spec.count * spec.nodes));
    let granted = g.device_ms.get(class).copied().unwrap_or(0);
    let overage = state
        .orgs
        .get(org)
        .is_some_and(|o| o.overage == crate::store::Overage::Allow);
    if asked > granted && !overage {
        let r = LimitRefusal::GrantExhausted {
            project: id.to_owned(),
            class: class.to_owned(),
            left_ms: (granted - state.accounts.grant_used(id, class)).max(0),
            asked_ms: asked,
            end: g.end,
        };
        return Err(Error::Capacity(text!(NeverStart, why = @r.text())));
    }
    Ok(())
}

/// True once a reservation's window has begun and it can run jobs.
pub(crate) fn reservation_runs(state: crate::store::ReservationState) -> bool {
    state == crate::store::ReservationState::Active
}
