//! Staging the consequences of a change inside its one batch: stopping a job, ending one,
//! bumping a node's desired-work generation, ending a reservation's jobs.

use super::charges::{self, Subject};
use super::percent_of;
use super::pipeline::Tx;
use crate::state::State;
use crate::store::{
    Charge, Evidence, JobRow, JobState, Mutation, OwnerKind, Stop, StopCause, UsageRow,
};
use std::sync::Arc;

/// How a job ended, as the node saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The process exited with this status.
    Exited(i32),
    /// It never started.
    FailedToStart(String),
    /// The node has no trace of it, or the node was lost.
    Lost(String),
}

/// Bumps the generation of a node's desired work; returns the new generation.
pub(crate) fn bump_generation(tx: &mut Tx<'_>, node: &str) -> i64 {
    let Some(entry) = tx.state().nodes.get(node) else {
        return 0;
    };
    let mut row = entry.row.clone();
    row.generation += 1;
    let generation = row.generation;
    tx.push(Mutation::UpsertNode(row));
    generation
}

/// Asks the nodes of a placed job to stop it; the cause decides how it is recorded once
/// they confirm. Does nothing for a job already stopping or not placed.
pub(crate) fn stage_stop(tx: &mut Tx<'_>, id: &str, cause: StopCause, reason: &str) -> bool {
    let Some(live) = tx.state().jobs.get(id) else {
        return false;
    };
    if live.row.stop.is_some() || !live.row.state.is_placed() {
        return false;
    }
    let mut row = JobRow::clone(&live.row);
    row.stop = Some(Stop {
        cause,
        reason: reason.to_owned(),
    });
    let nodes = tx.state().job_nodes(&row);
    tx.push(Mutation::UpsertJob(Arc::new(row)));
    for n in nodes {
        bump_generation(tx, &n);
    }
    true
}

/// Ends the jobs of a reservation that is ending: pending ones are cancelled now with
/// `pending_reason`; placed ones are asked to stop with `cause` and `stop_reason`.
pub(crate) fn end_reservation_jobs(
    tx: &mut Tx<'_>,
    rid: &str,
    t: i64,
    pending_reason: &str,
    (cause, stop_reason): (StopCause, &str),
) {
    let mut ids: Vec<(i64, String)> = tx
        .state()
        .jobs
        .values()
        .filter(|j| j.row.reservation_id.as_deref() == Some(rid))
        .map(|j| (j.row.created_ms, j.row.id.clone()))
        .collect();
    ids.sort();
    for (_, id) in ids {
        let Some(j) = tx.state().jobs.get(&id) else {
            continue;
        };
        if j.row.state == JobState::Pending {
            let mut row = JobRow::clone(&j.row);
            row.state = JobState::Cancelled;
            row.reason = pending_reason.to_owned();
            row.finished_ms = Some(t);
            tx.push(Mutation::UpsertJob(Arc::new(row)));
        } else {
            stage_stop(tx, &id, cause, stop_reason);
        }
    }
}

/// Records that a placed job ended: releases its devices, writes its usage, refunds what
/// it was charged but did not use (all of it when a device fault ended it), requeues it if
/// it was preempted, and bumps its nodes' generations. `started` is when the node says it
/// started, for a job that ended before it was reported running. Returns the final row.
pub(crate) fn finish_job(
    tx: &mut Tx<'_>,
    id: &str,
    ending: Ending,
    started: Option<i64>,
    evidence: Option<Evidence>,
    t: i64,
) -> Option<JobRow> {
    let state = tx.state();
    let live = state.jobs.get(id)?;
    let mut row = JobRow::clone(&live.row);
    if row.started_ms.is_none() {
        row.started_ms = started;
    }
    let nodes = state.job_nodes(&row);
    let (final_state, reason) = match (&row.stop, &ending) {
        (Some(stop), _) => (stop.cause.final_state(), stop.reason.clone()),
        (None, Ending::Exited(0)) => (JobState::Succeeded, String::new()),
        (None, Ending::Exited(code)) => {
            if row.deadline_ms.is_some_and(|d| t >= d) {
                (JobState::TimedOut, "reached its deadline".to_owned())
            } else {
                (JobState::Failed, format!("exited with code {code}"))
            }
        }
        (None, Ending::FailedToStart(m)) => (JobState::Failed, format!("failed to start: {m}")),
        (None, Ending::Lost(m)) => (JobState::Lost, m.clone()),
    };
    row.state = final_state;
    row.reason = reason;
    if let Ending::Exited(code) = ending {
        row.exit_code = Some(code);
    }
    row.finished_ms = Some(t);
    if evidence.is_some() {
        row.evidence = evidence.map(Box::new);
    }
    let devices = i64::from(State::job_devices(&row));
    let used_ms = row.started_ms.map_or(0, |s| (t.max(s) - s) * devices);
    let rate = state.class_rate(&row.class);
    let fault_pct = state.sched.refund_fault_pct;
    if row.reservation_id.is_none() && !row.preemptible {
        tx.push(Mutation::TruncateClaims {
            owner_id: row.id.clone(),
            end_ms: t,
        });
    }
    if let Some(start) = row.started_ms {
        tx.push(Mutation::InsertUsage(UsageRow {
            org: row.org.clone(),
            user_id: row.user_id.clone(),
            kind: OwnerKind::Job,
            subject_id: row.id.clone(),
            class: row.class.clone(),
            devices: devices as i32,
            start_ms: start,
            end_ms: t.max(start),
            device_ms: used_ms,
            evidence: row.evidence.as_deref().cloned(),
        }));
    }
    let mut ledger = Vec::new();
    let (org, class, jid) = (row.org.clone(), row.class.clone(), row.id.clone());
    let subject = Subject {
        org: &org,
        kind: OwnerKind::Job,
        id: &jid,
        class: &class,
    };
    let unused = row.charge.amount_ms - row.charge.worth(used_ms, rate);
    let note = "charged for its max runtime; refunded what it did not run";
    ledger.extend(charges::refund_amount(
        &subject,
        &mut row.charge,
        unused,
        0,
        t,
        note,
    ));
    if row
        .stop
        .as_ref()
        .is_some_and(|s| s.cause == StopCause::DeviceFault)
    {
        let amount = percent_of(row.charge.amount_ms, fault_pct);
        let note = format!("ended by a device fault ({fault_pct}% of what it ran)");
        ledger.extend(charges::refund_amount(
            &subject,
            &mut row.charge,
            amount,
            used_ms,
            t,
            &note,
        ));
    }
    if !ledger.is_empty() {
        tx.push(Mutation::InsertLedger(ledger));
    }
    let requeued = (row.state == JobState::Preempted).then(|| {
        let mut next = row.clone();
        next.id = uuid::Uuid::new_v4().to_string();
        next.state = JobState::Pending;
        next.reason = format!("requeued after preemption of job {}", row.id);
        next.requeued_from = Some(row.id.clone());
        next.node = None;
        next.devices = Vec::new();
        next.exit_code = None;
        next.started_ms = None;
        next.finished_ms = None;
        next.deadline_ms = None;
        next.generation = 0;
        next.charge = Charge::default();
        next.stop = None;
        row.reason = format!("{}; requeued as job {}", row.reason, next.id);
        next
    });
    tx.push(Mutation::UpsertJob(Arc::new(row.clone())));
    if let Some(next) = requeued {
        tx.push(Mutation::UpsertJob(Arc::new(next)));
    }
    for n in nodes {
        bump_generation(tx, &n);
    }
    Some(row)
}
