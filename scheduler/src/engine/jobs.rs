//! Jobs: submission, cancellation, and recording how they end.

use super::charges::{self, Subject};
use super::{Engine, audit, now, percent_of};
use crate::auth::Caller;
use crate::core::{LimitRefusal, rated};
use crate::error::{Error, Result};
use crate::state::{LiveJob, State, stop_reason, usage_amount};
use crate::store::{
    Charge, JobRow, JobState, LedgerRow, Mutation, OwnerKind, ReservationState, Scope, UsageRow,
};
use berth_proto::model::{self, JobSpec, JobTarget};
use berth_proto::v1;

/// How a job ended, as the node saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The process exited with this status.
    Exited(i32),
    /// It never started.
    FailedToStart(String),
    /// The node has no trace of it.
    Lost(String),
}

impl Engine {
    /// Queues a job, in a reservation or for a class.
    pub async fn submit_job(&self, caller: &Caller, req: &v1::SubmitJobRequest) -> Result<LiveJob> {
        caller.require_user()?;
        let spec = JobSpec::from_request(req)?;
        let mut state = self.lock().await;
        let t = now();
        let (class, reservation_id) = match &spec.target {
            JobTarget::Reservation(id) => {
                let r = state
                    .reservations
                    .get(id)
                    .filter(|r| caller.can_see_org(&r.org))
                    .cloned();
                let r = match r {
                    Some(r) => r,
                    None => {
                        return match self.store.get_reservation(id).await? {
                            Some(r) if caller.can_see_org(&r.org) => {
                                Err(Error::FailedPrecondition(format!(
                                    "reservation {id} is {}; jobs can no longer be submitted to it",
                                    r.state
                                )))
                            }
                            _ => Err(Error::NotFound(format!("reservation {id}"))),
                        };
                    }
                };
                if r.org != caller.org {
                    return Err(Error::PermissionDenied(format!(
                        "reservation {id} belongs to org {}; jobs run in it are charged to it",
                        r.org
                    )));
                }
                if spec.count as i32 > r.count {
                    return Err(Error::field(
                        "count",
                        format!(
                            "reservation {id} holds {} devices, {} requested",
                            r.count, spec.count
                        ),
                    ));
                }
                if r.end_ms <= t {
                    return Err(Error::FailedPrecondition(format!(
                        "reservation {id} has ended"
                    )));
                }
                (r.class.clone(), Some(r.id.clone()))
            }
            JobTarget::Class(class) => {
                super::booking::check_class(&state.classes, class)?;
                let largest = largest_node(&state, class);
                if spec.count > largest {
                    return Err(Error::field(
                        "count",
                        format!(
                            "{} {class} devices requested but the largest node has {largest}; \
                             count is per node (use --nodes to span nodes)",
                            spec.count
                        ),
                    ));
                }
                let fitting = nodes_with_at_least(&state, class, spec.count);
                if spec.nodes > fitting {
                    return Err(Error::field(
                        "nodes",
                        format!(
                            "{} nodes with {} {class} devices each requested, but only {fitting} \
                             node(s) have that many",
                            spec.nodes, spec.count
                        ),
                    ));
                }
                if let Some(r) = never_within_limits(&state, &caller.org, class, &spec) {
                    return Err(Error::Capacity(format!("{r}; this job could never start")));
                }
                (class.clone(), None)
            }
        };
        let row = JobRow {
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
            requeued_from: None,
        };
        self.commit(vec![
            Mutation::UpsertJob(row.clone()),
            Mutation::Audit(audit(caller, "job.submit", &row.id, t, "ok")),
        ])
        .await?;
        let live = LiveJob {
            row,
            stop: None,
            estimated_start: None,
            ranks: Default::default(),
        };
        state.jobs.insert(live.row.id.clone(), live.clone());
        self.metrics.job_submitted();
        drop(state);
        self.kick();
        Ok(live)
    }

    /// Jobs of the caller's org (admins: all). Live jobs come from memory so pending
    /// jobs carry their current reason and estimate.
    pub async fn list_jobs(&self, caller: &Caller, all: bool) -> Result<Vec<LiveJob>> {
        caller.require_user()?;
        let scope = Scope {
            org: (!caller.is_admin()).then(|| caller.org.clone()),
            include_finished: all,
        };
        let rows = self.store.list_jobs(&scope).await?;
        let state = self.lock().await;
        Ok(rows
            .into_iter()
            .map(|r| live_or_stored(&state, r))
            .collect())
    }

    /// One job, if the caller may see it.
    pub async fn get_job(&self, caller: &Caller, id: &str) -> Result<LiveJob> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        self.visible_job(caller, &id).await
    }

    pub(crate) async fn visible_job(&self, caller: &Caller, id: &str) -> Result<LiveJob> {
        {
            let state = self.lock().await;
            if let Some(j) = state.jobs.get(id) {
                return if caller.can_see_org(&j.row.org) {
                    Ok(j.clone())
                } else {
                    Err(Error::NotFound(format!("job {id}")))
                };
            }
        }
        self.store
            .get_job(id)
            .await?
            .filter(|j| caller.can_see_org(&j.org))
            .map(|row| LiveJob {
                row,
                stop: None,
                estimated_start: None,
                ranks: Default::default(),
            })
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Cancels a job: a pending one ends at once; a placed one is stopped by its node
    /// (SIGTERM, grace, SIGKILL) and recorded as cancelled when the node confirms.
    pub async fn cancel_job(&self, caller: &Caller, id: &str) -> Result<LiveJob> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        let job = self.visible_job(caller, &id).await?;
        if !caller.can_modify(&job.row.org, &job.row.user_id) {
            return Err(Error::PermissionDenied(format!(
                "job {id} belongs to {}; only they or an org-admin may cancel it",
                job.row.user_name
            )));
        }
        if job.row.state.is_final() {
            return Err(Error::FailedPrecondition(format!(
                "job {id} already ended ({})",
                job.row.state
            )));
        }
        let reason = format!("cancelled by {}", caller.name);
        let mut state = self.lock().await;
        let Some(live) = state.jobs.get(&id).cloned() else {
            return Err(Error::FailedPrecondition(format!("job {id} already ended")));
        };
        let t = now();
        if live.row.state == JobState::Pending {
            let mut row = live.row.clone();
            row.state = JobState::Cancelled;
            row.reason = reason;
            row.finished_ms = Some(t);
            self.commit(vec![
                Mutation::UpsertJob(row.clone()),
                Mutation::Audit(audit(caller, "job.cancel", &id, t, "ok")),
            ])
            .await?;
            state.jobs.remove(&id);
            self.logs.close(&id);
            self.metrics.job_finished(row.state);
            return Ok(LiveJob {
                row,
                stop: None,
                estimated_start: None,
                ranks: Default::default(),
            });
        }
        self.commit(vec![Mutation::Audit(audit(
            caller,
            "job.cancel",
            &id,
            t,
            "ok",
        ))])
        .await?;
        drop(state);
        self.request_stop(&id, JobState::Cancelled, &reason).await?;
        let state = self.lock().await;
        Ok(state.jobs.get(&id).cloned().unwrap_or(live))
    }

    /// Asks the job's node to stop it; `end` and `reason` are recorded when it has.
    pub(crate) async fn request_stop(&self, id: &str, end: JobState, reason: &str) -> Result<()> {
        let mut state = self.lock().await;
        self.stage_stop(&mut state, id, end, reason).await
    }

    /// [`Self::request_stop`] under a lock the caller holds: records the intent and bumps
    /// the generation of every node the job runs on.
    pub(crate) async fn stage_stop(
        &self,
        state: &mut State,
        id: &str,
        end: JobState,
        reason: &str,
    ) -> Result<()> {
        let Some(live) = state.jobs.get(id).cloned() else {
            return Ok(());
        };
        if live.stop.is_some() || !live.row.state.is_placed() {
            return Ok(());
        }
        let mut row = live.row.clone();
        row.reason = stop_reason(end, reason);
        let mut batch = vec![Mutation::UpsertJob(row.clone())];
        let bumps: Vec<Bump> = state
            .job_nodes(&row)
            .iter()
            .map(|n| bump_generation(state, n, &mut batch))
            .collect();
        self.commit(batch).await?;
        if let Some(j) = state.jobs.get_mut(id) {
            j.row = row;
            j.stop = Some((end, reason.to_owned()));
        }
        for b in bumps {
            b.publish(state);
        }
        Ok(())
    }

    /// Records that a placed job ended: releases its devices, writes its usage, refunds
    /// what it was charged but did not use (all of it when a device fault ended it) and
    /// requeues it if it was preempted.
    pub(crate) fn finish_job(
        &self,
        state: &mut State,
        id: &str,
        ending: Ending,
        t: i64,
        batch: &mut Vec<Mutation>,
    ) -> Option<Finished> {
        let live = state.jobs.get(id)?;
        let mut row = live.row.clone();
        let (state_, reason) = match (&live.stop, &ending) {
            (Some((s, r)), _) => (*s, r.clone()),
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
        row.state = state_;
        row.reason = reason;
        if let Ending::Exited(code) = ending {
            row.exit_code = Some(code);
        }
        row.finished_ms = Some(t);
        if row.reservation_id.is_none() && !row.preemptible {
            batch.push(Mutation::TruncateClaims {
                owner_id: row.id.clone(),
                end_ms: t,
            });
        }
        let devices = i64::from(State::job_devices(&row));
        let used_ms = row.started_ms.map_or(0, |s| (t.max(s) - s) * devices);
        if let Some(start) = row.started_ms {
            let end = t.max(start);
            batch.push(Mutation::InsertUsage(UsageRow {
                org: row.org.clone(),
                user_id: row.user_id.clone(),
                kind: OwnerKind::Job,
                subject_id: row.id.clone(),
                class: row.class.clone(),
                devices: devices as i32,
                start_ms: start,
                end_ms: end,
                device_ms: used_ms,
            }));
        }
        let rate = state.class_rate(&row.class);
        let mut ledger = Vec::new();
        let (org, class, jid) = (row.org.clone(), row.class.clone(), row.id.clone());
        let subject = Subject {
            org: &org,
            kind: OwnerKind::Job,
            id: &jid,
            class: &class,
        };
        let unused = row.charge.amount_ms - rated(used_ms, rate);
        let note = "charged for its max runtime; refunded what it did not run";
        ledger.extend(charges::refund_amount(
            &subject,
            &mut row.charge,
            unused,
            0,
            t,
            note,
        ));
        if is_fault_reason(&row.reason) {
            let pct = state.sched.refund_fault_pct;
            let amount = percent_of(row.charge.amount_ms, pct);
            let note = format!("ended by a device fault ({pct}% of what it ran)");
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
            batch.push(Mutation::InsertLedger(ledger.clone()));
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
            row.reason = format!("{}; requeued as job {}", row.reason, next.id);
            next
        });
        batch.push(Mutation::UpsertJob(row.clone()));
        if let Some(next) = &requeued {
            batch.push(Mutation::UpsertJob(next.clone()));
        }
        Some(Finished {
            used_ms,
            row,
            ledger,
            requeued,
        })
    }

    /// Applies a committed [`Self::finish_job`] to memory.
    pub(crate) fn finished_in_memory(&self, state: &mut State, done: &Finished, t: i64) {
        let row = &done.row;
        if row.reservation_id.is_none() {
            state.cluster.truncate_claims(&row.id, t);
        }
        state
            .accounts
            .release(&row.org, &row.class, &row.id, i64::MIN);
        charges::applied(state, &self.metrics, &done.ledger);
        if done.used_ms > 0 && row.reservation_id.is_none() {
            let rate = state.class_rate(&row.class);
            let used = UsageRow {
                org: row.org.clone(),
                user_id: String::new(),
                kind: OwnerKind::Job,
                subject_id: row.id.clone(),
                class: row.class.clone(),
                devices: 0,
                start_ms: t,
                end_ms: t,
                device_ms: done.used_ms,
            };
            let half_life = state.sched.fair_share_half_life_ms;
            state
                .fair
                .add(&row.org, usage_amount(&used, rate), t, half_life);
        }
        state.jobs.remove(&row.id);
        self.logs.close(&row.id);
        self.metrics.job_finished(row.state);
        if let Some(next) = &done.requeued {
            self.metrics.preemption();
            self.metrics.job_submitted();
            state.jobs.insert(
                next.id.clone(),
                LiveJob {
                    row: next.clone(),
                    stop: None,
                    estimated_start: None,
                    ranks: Default::default(),
                },
            );
        }
    }
}

/// What [`Engine::finish_job`] staged.
pub(crate) struct Finished {
    /// The final row.
    pub row: JobRow,
    /// Device-milliseconds it ran.
    pub used_ms: i64,
    /// Refunds.
    pub ledger: Vec<LedgerRow>,
    /// The job that continues it, if it was preempted.
    pub requeued: Option<JobRow>,
}

/// The reason recorded for a job a device fault ended.
pub(crate) fn fault_reason(uuid: &str, why: &str) -> String {
    format!("device {uuid} failed: {why}")
}

/// Whether a job's final reason says a device fault ended it.
fn is_fault_reason(reason: &str) -> bool {
    reason.starts_with("device ") && reason.contains(" failed: ")
}

/// How many nodes have at least `count` devices of `class`.
fn nodes_with_at_least(state: &State, class: &str, count: u32) -> u32 {
    let mut per_node = std::collections::HashMap::<&str, u32>::new();
    for d in state.devices.values().filter(|d| d.row.class == class) {
        *per_node.entry(d.row.node.as_str()).or_default() += 1;
    }
    per_node.values().filter(|&&n| n >= count).count() as u32
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

/// The most devices of `class` any one node has.
fn largest_node(state: &State, class: &str) -> u32 {
    let mut per_node = std::collections::HashMap::<&str, u32>::new();
    for d in state.devices.values().filter(|d| d.row.class == class) {
        *per_node.entry(d.row.node.as_str()).or_default() += 1;
    }
    per_node.values().copied().max().unwrap_or(0)
}

/// A live job's view if it is still live, else the stored row.
fn live_or_stored(state: &State, row: JobRow) -> LiveJob {
    state.jobs.get(&row.id).cloned().unwrap_or(LiveJob {
        row,
        stop: None,
        estimated_start: None,
        ranks: Default::default(),
    })
}

/// A node generation bump, staged in a batch and published after commit.
pub(crate) struct Bump {
    node: String,
    generation: i64,
}

impl Bump {
    /// Publishes the new generation to the node's waiting heartbeat.
    pub(crate) fn publish(self, state: &mut State) {
        if let Some(n) = state.nodes.get_mut(&self.node) {
            n.row.generation = self.generation;
            n.generation_tx.send_replace(self.generation);
        }
    }
}

/// Stages a bump of the node's desired-work generation.
pub(crate) fn bump_generation(state: &mut State, node: &str, batch: &mut Vec<Mutation>) -> Bump {
    let Some(entry) = state.nodes.get(node) else {
        return Bump {
            node: node.to_owned(),
            generation: 0,
        };
    };
    let mut row = entry.row.clone();
    row.generation += 1;
    let generation = row.generation;
    batch.push(Mutation::UpsertNode(row));
    Bump {
        node: node.to_owned(),
        generation,
    }
}

/// True once a reservation's window has begun and it can run jobs.
pub(crate) fn reservation_runs(state: ReservationState) -> bool {
    state == ReservationState::Active
}
