//! The agent protocol: join, heartbeat (lease + desired work), job reports, logs.

use super::charges::{self, Subject};
use super::observed::{Inventory, Reported};
use super::pipeline::Tx;
use super::stage::{Ending, finish_job, stage_stop};
use super::{Engine, now, percent_of};
use crate::auth::{self, Caller};
use crate::error::{Error, Result};
use crate::state::{RankEnd, State};
use crate::store::{
    AuditRow, DeviceRow, Evidence, Health, JobRow, JobState, LogRow, Mutation, NodeRow, NodeState,
    OwnerKind, ReservationRow, StopCause,
};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::model;
use berth_proto::time::{dur_to_ms, ms_to_dur, ms_to_ts, ts_to_ms};
use berth_proto::v1;
use std::sync::Arc;
use std::time::Duration;

/// What a heartbeat answers.
#[derive(Debug, Clone)]
pub struct HeartbeatReply {
    /// The wire response.
    pub response: v1::HeartbeatResponse,
}

impl Engine {
    /// Registers a node with a join token (used once; possibly bound to the node's name),
    /// or re-registers an existing one, which needs its current credential (`presented`)
    /// or an admin's leave (`berth admin nodes rejoin`); re-joining revokes the node's old
    /// credentials. Returns the new credential.
    pub async fn join(
        &self,
        req: &v1::JoinRequest,
        presented: Option<&Caller>,
    ) -> Result<v1::JoinResponse> {
        let t = now();
        let node = model::name("node", &req.node)?;
        let site = model::name("site", &req.site)?;
        let own_credential = presented.is_some_and(|c| c.node.as_deref() == Some(node.as_str()));
        if req.join_token.is_empty() && !own_credential {
            return Err(Error::Unauthenticated(text!(JoinTokenRequired)));
        }
        let hash = auth::hash_secret(&req.join_token);
        let issued = auth::issue(
            &self.keys,
            None,
            Some(&node),
            t,
            self.policy.node_credential_ttl_ms,
        )?;
        let token_row = issued.row.clone();
        self.commit(|tx| {
            let state = tx.state();
            let token = if req.join_token.is_empty() {
                None
            } else {
                let Some(j) = state
                    .join_tokens
                    .iter()
                    .find(|j| j.hash == hash && j.expires_ms > t)
                else {
                    return Err(Error::Unauthenticated(text!(JoinTokenInvalid)));
                };
                if let Some(bound) = &j.node
                    && *bound != node
                {
                    return Err(Error::Unauthenticated(text!(
                        JoinTokenForOtherNode,
                        bound = ?bound,
                        node = ?node
                    )));
                }
                Some(j.id.clone())
            };
            if !state.sites.contains_key(&site) {
                return Err(Error::FailedPrecondition(text!(
                    SiteMissing,
                    quoted = ?site,
                    site
                )));
            }
            let mut devices = device_rows(state, &node, &req.devices, t, |_| true)?;
            for d in &mut devices {
                // Quarantine outlives a re-join.
                if let Some(prev) = state.devices.get(&d.uuid)
                    && prev.row.health == Health::Failed
                {
                    d.health = Health::Failed;
                    d.health_reason = prev.row.health_reason.clone();
                }
            }
            let previous = state.nodes.get(&node).map(|n| n.row.clone());
            if let Some(p) = &previous {
                if p.site != site {
                    return Err(Error::FailedPrecondition(text!(
                        NodeAtOtherSite,
                        node = ?node,
                        registered = ?p.site,
                        site = ?site
                    )));
                }
                // A join token alone never takes over an existing node.
                let leave = p.rejoin_until_ms.is_some_and(|u| u > t);
                if !own_credential && !leave {
                    return Err(Error::PermissionDenied(text!(
                        NodeExists,
                        quoted = ?node,
                        node
                    )));
                }
            }
            let row = NodeRow {
                name: node.clone(),
                site: site.clone(),
                state: match previous.as_ref().map(|p| p.state) {
                    None | Some(NodeState::Unreachable | NodeState::Down) => NodeState::Ready,
                    Some(s) => s,
                },
                hostname: req.hostname.clone(),
                agent_version: req.agent_version.clone(),
                runtime: req.runtime.clone(),
                last_heartbeat_ms: Some(t),
                generation: previous.as_ref().map_or(0, |p| p.generation),
                created_ms: previous.as_ref().map_or(t, |p| p.created_ms),
                rejoin_until_ms: None,
            };
            let count = devices.len();
            if let Some(id) = token {
                tx.push(Mutation::UseJoinToken { id, used_ms: t });
            }
            if previous.is_some() {
                // Whoever held the old credential holds nothing now.
                tx.push(Mutation::RevokeNodeCredentials { node: node.clone() });
            }
            tx.push(Mutation::UpsertNode(row));
            tx.extend(devices.into_iter().map(Mutation::UpsertDevice));
            tx.push(Mutation::InsertToken(token_row));
            tx.push(Mutation::Audit(AuditRow {
                time_ms: t,
                actor: format!("agent {node}"),
                action: "node.join".into(),
                target: format!("{node} ({count} devices)"),
                outcome: "ok".into(),
            }));
            // Seen as it becomes ready, in the same step: a pass between the commit and
            // a later `seen` would find a ready node never heard from and take it away.
            self.observed.seen(&node);
            Ok(())
        })
        .await?;
        // Its heartbeats report the inventory afresh.
        self.observed.forget_inventory(&node);
        self.observed.telemetry(
            req.devices
                .iter()
                .filter_map(|d| d.telemetry.map(|t| (d.uuid.as_str(), t))),
        );
        self.kick();
        tracing::info!(%node, %site, "node joined");
        Ok(v1::JoinResponse {
            node,
            credential: issued.token,
            lease: Some(ms_to_dur(self.policy.lease_ms)),
        })
    }

    /// Renews the lease, takes in observed state, and answers the desired work, holding
    /// the call while nothing changes (long-poll). Everything the heartbeat changes is one
    /// batch; the reply is built from the committed state, so a node never starts work
    /// that is not durable.
    pub async fn heartbeat(
        &self,
        caller: &Caller,
        req: v1::HeartbeatRequest,
    ) -> Result<HeartbeatReply> {
        caller.require_node(&req.node)?;
        let node = req.node.clone();
        self.observed.seen(&node);
        let inventory = self.inventory_of(&req);
        let (devices, kept): (&[v1::DeviceReport], _) = match &inventory {
            Inventoried::Listed => (&req.devices, None),
            Inventoried::Kept(kept) => (&kept.devices, Some(&**kept)),
            Inventoried::Unknown => (&[], None),
        };
        match &inventory {
            Inventoried::Listed => self.observed.telemetry(
                req.devices
                    .iter()
                    .filter_map(|d| d.telemetry.map(|t| (d.uuid.as_str(), t))),
            ),
            Inventoried::Kept(kept) => self.observed.telemetry(
                req.samples
                    .iter()
                    .filter_map(|s| Some((kept.uuid(s.index)?, s.telemetry?))),
            ),
            Inventoried::Unknown => {}
        }
        let t = now();
        let reported = self.observed.job_evidence(&node, &req.jobs);
        let (changed, ticket) =
            self.decide(|tx| take_heartbeat(tx, &req, devices, kept, &reported, t))?;
        ticket.durable().await?;
        if changed {
            self.kick();
        }
        // Kept only once durable: a later heartbeat that names it stands for this one's
        // devices, which are now recorded.
        let digest = match &inventory {
            Inventoried::Listed if req.inventory_digest != 0 => {
                let kept = Inventory::new(req.inventory_digest, &req.devices);
                self.observed.keep_inventory(&node, kept);
                req.inventory_digest
            }
            Inventoried::Listed => {
                self.observed.forget_inventory(&node);
                0
            }
            Inventoried::Kept(kept) => kept.digest,
            Inventoried::Unknown => 0,
        };
        let mut rx = self.generations.subscribe(&node);
        let current = *rx.borrow_and_update();
        self.observed.applied(
            &node,
            u64::try_from(current).unwrap_or(0) <= req.known_generation,
        );
        // An agent whose inventory is unknown here is answered at once, to send it.
        if u64::try_from(current).unwrap_or(0) == req.known_generation
            && !matches!(inventory, Inventoried::Unknown)
        {
            let asked = req.wait.as_ref().map(dur_to_ms).unwrap_or(0);
            let wait = asked.clamp(0, self.policy.max_poll_ms.min(self.policy.lease_ms / 2));
            if wait > 0 {
                let _ =
                    tokio::time::timeout(Duration::from_millis(wait as u64), rx.changed()).await;
            }
        }
        let state = self.view();
        Ok(HeartbeatReply {
            response: desired(&state, &node, &req, &self.policy, digest),
        })
    }

    /// How a heartbeat reports its node's devices.
    fn inventory_of(&self, req: &v1::HeartbeatRequest) -> Inventoried {
        if !req.devices.is_empty() || req.inventory_digest == 0 {
            return Inventoried::Listed;
        }
        match self.observed.inventory(&req.node, req.inventory_digest) {
            Some(kept) => Inventoried::Kept(kept),
            None => Inventoried::Unknown,
        }
    }

    /// A job phase change reported by its node.
    pub async fn report_job(&self, caller: &Caller, obs: &v1::ObservedJob) -> Result<()> {
        let node = caller
            .node
            .clone()
            .ok_or_else(|| Error::PermissionDenied(text!(OnlyAgentsReport)))?;
        caller.require_node(&node)?;
        let t = now();
        let reported = self.observed.job_evidence(&node, [obs]);
        let changed = self
            .commit(|tx| observe_job(tx, &node, obs, &reported, t))
            .await?;
        if changed {
            self.kick();
        }
        Ok(())
    }

    /// Stores a batch of log chunks from the job's node.
    pub async fn push_logs(&self, caller: &Caller, req: v1::PushLogsRequest) -> Result<u64> {
        let job_id = model::id("job_id", &req.job_id)?;
        let node = caller
            .node
            .clone()
            .ok_or_else(|| Error::PermissionDenied(text!(OnlyAgentsPushLogs)))?;
        // Which part of the job this node runs: logs of rank r are stored at
        // seq = r * RANK_SEQ_SPAN + the agent's own seq.
        let live = {
            let state = self.view();
            state
                .jobs
                .get(&job_id)
                .map(|j| state.job_nodes(&j.row).iter().position(|n| *n == node))
        };
        let rank = match live {
            Some(Some(r)) => r,
            Some(None) => return Err(Error::NotFound(text!(WhatJobOnNode, id = job_id, node))),
            None => {
                let Some(row) = self.store.get_job(&job_id).await? else {
                    return Err(Error::NotFound(text!(WhatJobOnNode, id = job_id, node)));
                };
                let position = self.view().job_nodes(&row).iter().position(|n| *n == node);
                match position {
                    Some(r) => r,
                    None if row.node.as_deref() == Some(node.as_str()) => 0,
                    None => return Err(Error::NotFound(text!(WhatJobOnNode, id = job_id, node))),
                }
            }
        };
        let base = rank as i64 * crate::logs::RANK_SEQ_SPAN;
        let rows = req
            .chunks
            .into_iter()
            .filter(|c| c.seq > 0 && c.seq < crate::logs::RANK_SEQ_SPAN as u64)
            .map(|c| LogRow {
                seq: base + c.seq as i64,
                stream: c.stream,
                data: c.data,
                time_ms: c.time.as_ref().map_or_else(now, ts_to_ms),
            })
            .collect::<Vec<_>>();
        let bytes: usize = rows.iter().map(|r| r.data.len()).sum();
        let stored = self.store.append_logs(&job_id, rows).await?;
        self.metrics.log_bytes(bytes);
        self.logs.notify(&job_id);
        if rank == 0 && stored < crate::logs::RANK_SEQ_SPAN {
            return Ok(stored.max(0) as u64);
        }
        // The highest seq stored within this rank's range.
        let top = crate::logs::last_seq_in(&*self.store, &job_id, base).await?;
        Ok((top - base).max(0) as u64)
    }
}

/// How a heartbeat reports its node's devices.
enum Inventoried {
    /// In full, in `devices` (or the node has none).
    Listed,
    /// By the digest of the inventory the node last reported in full, kept here.
    Kept(Arc<Inventory>),
    /// By a digest this scheduler holds no inventory of (it restarted since, or the
    /// agent reported to another replica): nothing is known of the devices this time.
    Unknown,
}

/// Applies a heartbeat's observations (node back, inventory and health, jobs) as one
/// batch. Returns whether anything changed that a pass should look at. `devices` are the
/// reported devices; `kept`, the kept inventory they come from, if they do: the rows are
/// not compared with it again while no device of the node changed since they were.
fn take_heartbeat(
    tx: &mut Tx<'_>,
    req: &v1::HeartbeatRequest,
    devices: &[v1::DeviceReport],
    kept: Option<&Inventory>,
    reported: &Reported,
    t: i64,
) -> Result<bool> {
    let node = &req.node;
    let state = tx.state();
    let entry = state
        .nodes
        .get(node)
        .ok_or_else(|| Error::NotFound(text!(WhatNode, name = ?node)))?;
    let mut row = entry.row.clone();
    // A node is back once its agent calls and has applied the work it was sent (an agent
    // that cannot take its desired state stays unreachable).
    let caught_up = u64::try_from(row.generation).unwrap_or(0) <= req.known_generation;
    let came_back = row.state == NodeState::Unreachable && caught_up;
    if came_back {
        row.state = NodeState::Ready;
        tracing::info!(%node, "node reachable again");
    }
    let version_changed = row.agent_version != req.agent_version || row.runtime != req.runtime;
    // Devices: health and inventory changes are recorded.
    let mut updates = Vec::new();
    let mut newly_failed = Vec::new();
    // Most heartbeats report every device as it is recorded: those need no row.
    let differs = |d: &v1::DeviceReport| {
        state
            .devices
            .get(&d.uuid)
            .is_none_or(|e| !reports_as_recorded(&e.row, node, d))
    };
    let settled = kept.is_some_and(|k| k.settled(entry.devices_stamp));
    let devices = if settled { &[] } else { devices };
    for mut d in device_rows(state, node, devices, t, differs)? {
        // A failed device stays quarantined until an admin clears it.
        if let Some(prev) = state.devices.get(&d.uuid) {
            if prev.row.health == Health::Failed && d.health != Health::Failed {
                d.health = Health::Failed;
                d.health_reason = prev.row.health_reason.clone();
            } else if prev.row.health != Health::Failed && d.health == Health::Failed {
                newly_failed.push((d.uuid.clone(), d.health_reason.clone()));
            }
        }
        let changed = state.devices.get(&d.uuid).is_none_or(|e| {
            let o = &e.row;
            (o.health, &o.health_reason, &o.class, &o.node, o.index)
                != (d.health, &d.health_reason, &d.class, &d.node, d.index)
        });
        if changed {
            updates.push(d);
        }
    }
    let mut changed = came_back || !updates.is_empty();
    if came_back || version_changed {
        row.agent_version = req.agent_version.clone();
        row.runtime = req.runtime.clone();
        row.last_heartbeat_ms = Some(t);
        tx.push(Mutation::UpsertNode(row));
    }
    tx.extend(updates.into_iter().map(Mutation::UpsertDevice));
    // The rows are now as the kept inventory has them (a quarantine kept is no update).
    if let Some(k) = kept
        && !settled
        && let Some(entry) = tx.state().nodes.get(node)
    {
        k.compared_at(entry.devices_stamp);
    }
    for obs in &req.jobs {
        changed |= observe_job(tx, node, obs, reported, t)?;
    }
    // Placed jobs the agent should have but does not report are lost, once the agent
    // has applied the generation they were placed in.
    let known = i64::try_from(req.known_generation).unwrap_or(i64::MAX);
    let missing: Vec<String> = tx
        .state()
        .placed_jobs_on(node)
        .filter(|j| j.row.generation <= known && known > 0)
        .filter(|j| !req.jobs.iter().any(|o| o.job_id == j.row.id))
        .map(|j| j.row.id.clone())
        .collect();
    for id in missing {
        finish_job(
            tx,
            &id,
            Ending::Lost("the node no longer has it".into()),
            None,
            None,
            t,
        );
        changed = true;
    }
    for (uuid, why) in newly_failed {
        tracing::warn!(device = %uuid, reason = %why, "device failed; quarantined");
        refund_faulted_bookings(tx, &uuid, t);
        let hit: Vec<String> = tx
            .state()
            .placed_jobs_on(node)
            .filter(|j| j.row.devices.contains(&uuid))
            .map(|j| j.row.id.clone())
            .collect();
        for id in hit {
            stage_stop(tx, &id, StopCause::DeviceFault, &fault_reason(&uuid, &why));
        }
        changed = true;
    }
    Ok(changed)
}

/// The reason recorded for a job a device fault ended.
fn fault_reason(uuid: &str, why: &str) -> String {
    format!("device {uuid} failed: {why}")
}

/// Refunds, by the fault policy, the rest of every booking that holds a device that just
/// failed (the hours of that device from now to the booking's end).
fn refund_faulted_bookings(tx: &mut Tx<'_>, uuid: &str, t: i64) {
    let state = tx.state();
    let pct = state.sched.refund_fault_pct;
    let mut hit: Vec<ReservationRow> = state
        .reservations
        .values()
        .filter(|r| r.devices.iter().any(|d| d == uuid) && r.end_ms > t)
        .map(|r| ReservationRow::clone(r))
        .collect();
    hit.sort_by(|a, b| a.id.cmp(&b.id));
    for mut r in hit {
        let lost_ms = r.end_ms - t.max(r.start_ms);
        let rate = tx.state().class_rate(&r.class);
        let (org, id, class) = (r.org.clone(), r.id.clone(), r.class.clone());
        let subject = Subject {
            org: &org,
            kind: OwnerKind::Reservation,
            id: &id,
            class: &class,
        };
        let amount = percent_of(r.charge.worth(lost_ms, rate), pct);
        let note = format!("device {uuid} failed ({pct}% of its remaining hours)");
        let Some(entry) =
            charges::refund_amount(&subject, &mut r.charge, amount, lost_ms, t, &note)
        else {
            continue;
        };
        tx.push(Mutation::UpsertReservation(Arc::new(r)));
        tx.push(Mutation::InsertLedger(vec![entry]));
    }
}

/// Applies one observed job to the record. Returns whether anything changed.
fn observe_job(
    tx: &mut Tx<'_>,
    node: &str,
    obs: &v1::ObservedJob,
    reported: &Reported,
    t: i64,
) -> Result<bool> {
    let evidence = reported.get(&obs.job_id).cloned();
    let state = tx.state();
    let Some(live) = state.jobs.get(&obs.job_id) else {
        return Ok(false); // already final, or not ours: acknowledged in the reply
    };
    if !live.row.state.is_placed() || !state.job_on(&live.row, node) {
        return Ok(false); // a node may only report its own jobs
    }
    let row = live.row.clone();
    let phase = v1::JobPhase::try_from(obs.phase).unwrap_or(v1::JobPhase::Unspecified);
    if row.nodes > 1 {
        return Ok(observe_rank(tx, node, obs, phase, evidence, t));
    }
    let started = obs.started_at.as_ref().map(ts_to_ms);
    match phase {
        v1::JobPhase::Starting if row.state == JobState::Scheduled => {
            let mut next = JobRow::clone(&row);
            next.state = JobState::Starting;
            tx.push(Mutation::UpsertJob(Arc::new(next)));
            Ok(true)
        }
        v1::JobPhase::Running if matches!(row.state, JobState::Scheduled | JobState::Starting) => {
            let mut next = JobRow::clone(&row);
            next.state = JobState::Running;
            next.started_ms = Some(started.unwrap_or(t));
            if next.stop.is_none() {
                next.reason.clear();
            }
            tx.push(Mutation::UpsertJob(Arc::new(next)));
            Ok(true)
        }
        v1::JobPhase::Exited => {
            let code = obs.exit_code.unwrap_or(-1);
            finish_job(tx, &obs.job_id, Ending::Exited(code), started, evidence, t);
            Ok(true)
        }
        v1::JobPhase::FailedToStart => {
            let ending = Ending::FailedToStart(obs.message.clone());
            finish_job(tx, &obs.job_id, ending, started, evidence, t);
            Ok(true)
        }
        v1::JobPhase::Unknown => {
            let m = if obs.message.is_empty() {
                "the node lost track of it".to_owned()
            } else {
                obs.message.clone()
            };
            finish_job(tx, &obs.job_id, Ending::Lost(m), started, evidence, t);
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// One node's report on its part of a multi-node job. The job runs once every part runs;
/// the first part that fails stops the others; the job ends when every part has.
fn observe_rank(
    tx: &mut Tx<'_>,
    node: &str,
    obs: &v1::ObservedJob,
    phase: v1::JobPhase,
    evidence: Option<Evidence>,
    t: i64,
) -> bool {
    let Some(live) = tx.state().jobs.get(&obs.job_id) else {
        return false;
    };
    let row = live.row.clone();
    let nodes = tx.state().job_nodes(&row);
    let rank = nodes.iter().position(|n| n == node).unwrap_or(0);
    let started = obs.started_at.as_ref().map(ts_to_ms);
    let end = match phase {
        v1::JobPhase::Starting if row.state == JobState::Scheduled => {
            let mut next = JobRow::clone(&row);
            next.state = JobState::Starting;
            tx.push(Mutation::UpsertJob(Arc::new(next)));
            return true;
        }
        v1::JobPhase::Running => {
            if row.state == JobState::Running {
                return false;
            }
            let running = match tx.ranks_mut(&obs.job_id) {
                Some(r) => {
                    r.running.insert(node.to_owned());
                    r.running.len()
                }
                None => 0,
            };
            if running < nodes.len() {
                return false;
            }
            let mut next = JobRow::clone(&row);
            next.state = JobState::Running;
            next.started_ms = Some(
                started
                    .unwrap_or(t)
                    .max(next.started_ms.unwrap_or(i64::MIN)),
            );
            if next.stop.is_none() {
                next.reason.clear();
            }
            tx.push(Mutation::UpsertJob(Arc::new(next)));
            return true;
        }
        v1::JobPhase::Exited => RankEnd::Exited(obs.exit_code.unwrap_or(-1)),
        v1::JobPhase::FailedToStart => RankEnd::Failed(format!("failed to start: {}", obs.message)),
        v1::JobPhase::Unknown => RankEnd::Failed("the node lost track of it".into()),
        _ => return false,
    };
    let failed = !matches!(end, RankEnd::Exited(0));
    let ended = match tx.ranks_mut(&obs.job_id) {
        Some(r) => {
            r.ended.insert(node.to_owned(), end.clone());
            nodes
                .iter()
                .filter_map(|n| r.ended.get(n).cloned())
                .collect::<Vec<_>>()
        }
        None => return false,
    };
    let mut changed = false;
    if failed && row.stop.is_none() {
        let why = match &end {
            RankEnd::Exited(code) => format!("rank {rank} on node {node} exited with code {code}"),
            RankEnd::Failed(m) => format!("rank {rank} on node {node}: {m}"),
        };
        changed |= stage_stop(tx, &obs.job_id, StopCause::PartFailed, &why);
    }
    if ended.len() < nodes.len() {
        return changed;
    }
    let ending = ended
        .iter()
        .find_map(|e| match e {
            RankEnd::Exited(0) => None,
            RankEnd::Exited(c) => Some(Ending::Exited(*c)),
            RankEnd::Failed(m) => Some(Ending::FailedToStart(m.clone())),
        })
        .unwrap_or(Ending::Exited(0));
    finish_job(tx, &obs.job_id, ending, started, evidence, t);
    true
}

/// Bytes of new jobs' specs one heartbeat reply carries at most (at least one spec is
/// always sent, however large): the rest follow in the next replies (`more`).
pub const REPLY_SPEC_BUDGET: usize = 1024 * 1024;

/// The size of a job's spec as it goes to its node.
pub(crate) fn spec_bytes(row: &JobRow) -> usize {
    row.image.len()
        + row.network.len()
        + row.command.iter().map(|c| c.len() + 8).sum::<usize>()
        + row
            .env
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
        + row.datasets.iter().map(|(n, _)| n.len() + 8).sum::<usize>()
}

/// The desired work of a node, from the committed state. Jobs the agent reports carry no
/// spec (it has them); new jobs' specs are sent up to [`REPLY_SPEC_BUDGET`] per reply,
/// and `more` tells the agent to ask again for the rest, so a reply stays small whatever
/// tenants put in their jobs. It answers `inventory_digest`, the digest of the node's
/// inventory kept here.
fn desired(
    state: &State,
    node: &str,
    req: &v1::HeartbeatRequest,
    policy: &super::Policy,
    inventory_digest: u64,
) -> v1::HeartbeatResponse {
    let entry = state.nodes.get(node);
    let known: std::collections::HashSet<&str> =
        req.jobs.iter().map(|o| o.job_id.as_str()).collect();
    let mut placed: Vec<&crate::state::LiveJob> = state
        .placed_jobs_on(node)
        .filter(|j| j.row.stop.is_none())
        .collect();
    // Oldest first, so the specs that wait longest go first.
    placed.sort_by(|a, b| (a.row.created_ms, &a.row.id).cmp(&(b.row.created_ms, &b.row.id)));
    let mut budget = REPLY_SPEC_BUDGET;
    let mut sent_one = false;
    let mut more = false;
    let jobs = placed
        .into_iter()
        .map(|j| {
            let row = &j.row;
            let mut d = v1::DesiredJob {
                job_id: row.id.clone(),
                devices: row
                    .devices
                    .iter()
                    .filter(|d| state.devices.get(*d).is_some_and(|e| e.row.node == node))
                    .cloned()
                    .collect(),
                deadline: row.deadline_ms.map(ms_to_ts),
                grace: Some(ms_to_dur(policy.grace_ms)),
                org: row.org.clone(),
                spec_omitted: true,
                ..Default::default()
            };
            if known.contains(row.id.as_str()) {
                return d;
            }
            let size = spec_bytes(row);
            if size > budget && sent_one {
                more = true;
                return d;
            }
            budget = budget.saturating_sub(size);
            sent_one = true;
            d.spec_omitted = false;
            d.image = row.image.clone();
            d.command = row.command.clone();
            d.env = job_env(state, row, node);
            d.datasets = crate::convert::datasets(&granted_datasets(state, row));
            d.network = row.network.clone();
            d
        })
        .collect();
    let acknowledged = req
        .jobs
        .iter()
        .filter(|o| !state.jobs.contains_key(&o.job_id))
        .map(|o| o.job_id.clone())
        .collect();
    v1::HeartbeatResponse {
        generation: entry.map_or(0, |e| e.row.generation.max(0) as u64),
        jobs,
        lease: Some(ms_to_dur(policy.lease_ms)),
        acknowledged,
        node_state: entry.map_or(v1::NodeState::Unspecified, |e| e.row.state.to_proto()) as i32,
        more,
        now: Some(ms_to_ts(now())),
        inventory_digest,
    }
}

/// A job's datasets its org is (still) granted: a revoked grant never reaches a node.
fn granted_datasets(state: &State, row: &JobRow) -> Vec<(String, bool)> {
    row.datasets
        .iter()
        .filter_map(|(name, rw)| {
            let granted = state.dataset_grants.get(&(row.org.clone(), name.clone()))?;
            Some((name.clone(), *rw && *granted))
        })
        .collect()
}

/// The environment of a job's part on `node`: the job's own, plus, for multi-node jobs,
/// where it sits among its nodes (`BERTH_NODE_RANK`, `BERTH_NUM_NODES`, `BERTH_NODES`,
/// `BERTH_MASTER_ADDR`: hostnames in rank order).
fn job_env(state: &State, row: &JobRow, node: &str) -> std::collections::HashMap<String, String> {
    let mut env: std::collections::HashMap<String, String> = row.env.clone().into_iter().collect();
    if row.nodes > 1 {
        let nodes = state.job_nodes(row);
        let host = |n: &String| {
            state
                .nodes
                .get(n)
                .map(|e| e.row.hostname.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| n.clone())
        };
        let hosts: Vec<String> = nodes.iter().map(host).collect();
        let rank = nodes.iter().position(|n| n == node).unwrap_or(0);
        env.insert("BERTH_NODE_RANK".into(), rank.to_string());
        env.insert("BERTH_NUM_NODES".into(), nodes.len().to_string());
        env.insert("BERTH_NODES".into(), hosts.join(","));
        env.insert(
            "BERTH_MASTER_ADDR".into(),
            hosts.first().cloned().unwrap_or_default(),
        );
    }
    env
}

/// Checks and converts the devices an agent reports.
/// Whether a device report says what is recorded of the device: on this node, of its
/// class and index, with its health and reason (a report that differs only in what is
/// not recorded from heartbeats, such as telemetry, needs no new row).
fn reports_as_recorded(row: &DeviceRow, node: &str, d: &v1::DeviceReport) -> bool {
    row.node == node
        && row.class == d.class
        && i64::from(row.index) == i64::from(d.index)
        && row.health == health_of(d)
        && row.health_reason == d.health_reason
}

/// The health a device report states.
fn health_of(d: &v1::DeviceReport) -> Health {
    match v1::DeviceHealth::try_from(d.health) {
        Ok(v1::DeviceHealth::Failed) => Health::Failed,
        Ok(v1::DeviceHealth::Degraded) => Health::Degraded,
        _ => Health::Healthy,
    }
}

/// The rows of the reported devices that `keep` selects, checked (ids, classes, not on
/// another node).
fn device_rows(
    state: &State,
    node: &str,
    reports: &[v1::DeviceReport],
    t: i64,
    keep: impl Fn(&v1::DeviceReport) -> bool,
) -> Result<Vec<DeviceRow>> {
    let mut out = Vec::with_capacity(reports.len());
    for (i, d) in reports.iter().enumerate().filter(|(_, d)| keep(d)) {
        if d.uuid.is_empty() || d.uuid.len() > 128 {
            return Err(Error::field(
                &format!("devices[{i}].uuid"),
                Msg::OneTo128Characters,
            ));
        }
        let class = model::name(&format!("devices[{i}].class"), &d.class)?;
        if !state.classes.contains_key(&class) {
            return Err(Error::FailedPrecondition(text!(
                ClassMissing,
                quoted = ?class,
                class
            )));
        }
        if let Some(other) = state.devices.get(&d.uuid)
            && other.row.node != node
        {
            return Err(Error::FailedPrecondition(text!(
                DeviceOnOtherNode,
                uuid = d.uuid,
                node = other.row.node
            )));
        }
        let health = health_of(d);
        out.push(DeviceRow {
            uuid: d.uuid.clone(),
            node: node.to_owned(),
            class,
            vendor: d.vendor.clone(),
            model: d.model.clone(),
            memory_bytes: d.memory_bytes.min(i64::MAX as u64) as i64,
            pci_bus_id: d.pci_bus_id.clone(),
            index: d.index.min(i32::MAX as u32) as i32,
            health,
            health_reason: d.health_reason.clone(),
            updated_ms: t,
        });
    }
    Ok(out)
}
