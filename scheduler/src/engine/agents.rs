//! The agent protocol: join, heartbeat (lease + desired work), job reports, logs.

use super::jobs::{Ending, bump_generation};
use super::{Engine, now};
use crate::auth::{self, Caller};
use crate::error::{Error, Result};
use crate::state::{DeviceEntry, NodeEntry, RankEnd, State, node_schedulable};
use crate::store::{AuditRow, DeviceRow, Health, JobState, LogRow, Mutation, NodeRow, NodeState};
use berth_proto::model;
use berth_proto::time::{dur_to_ms, ms_to_dur, ms_to_ts, ts_to_ms};
use berth_proto::v1;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a heartbeat answers.
#[derive(Debug, Clone)]
pub struct HeartbeatReply {
    /// The wire response.
    pub response: v1::HeartbeatResponse,
}

impl Engine {
    /// Registers (or re-registers) a node with a join token; returns its credential.
    pub async fn join(&self, req: &v1::JoinRequest) -> Result<v1::JoinResponse> {
        let t = now();
        let node = model::name("node", &req.node)?;
        let site = model::name("site", &req.site)?;
        if req.join_token.is_empty() {
            return Err(Error::Unauthenticated(
                "a join token is required to join".into(),
            ));
        }
        let hash = auth::hash_secret(&req.join_token);
        let mut state = self.lock().await;
        if !state
            .join_tokens
            .iter()
            .any(|j| j.hash == hash && j.expires_ms > t)
        {
            return Err(Error::Unauthenticated(
                "invalid or expired join token: create one with `berth admin join-token`".into(),
            ));
        }
        if !state.sites.contains_key(&site) {
            return Err(Error::FailedPrecondition(format!(
                "site {site:?} does not exist: create it with `berth admin sites create {site}`"
            )));
        }
        let mut devices = device_rows(&state, &node, &req.devices, t)?;
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
        if let Some(p) = &previous
            && p.site != site
        {
            return Err(Error::FailedPrecondition(format!(
                "node {node:?} is registered at site {:?}, not {site:?}",
                p.site
            )));
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
        };
        let issued = auth::issue(
            &self.keys,
            None,
            Some(&node),
            t,
            self.policy.node_credential_ttl_ms,
        )?;
        let mut batch = vec![Mutation::UpsertNode(row.clone())];
        batch.extend(devices.iter().cloned().map(Mutation::UpsertDevice));
        batch.push(Mutation::InsertToken(issued.row.clone()));
        batch.push(Mutation::Audit(AuditRow {
            time_ms: t,
            actor: format!("agent {node}"),
            action: "node.join".into(),
            target: format!("{node} ({} devices)", devices.len()),
            outcome: "ok".into(),
        }));
        self.commit(batch).await?;
        state
            .cluster
            .upsert_node(&node, &site, node_schedulable(row.state));
        for d in devices {
            state
                .cluster
                .upsert_device(&d.uuid, &node, &d.class, d.health != Health::Failed);
            let telemetry = req
                .devices
                .iter()
                .find(|r| r.uuid == d.uuid)
                .and_then(|r| r.telemetry);
            state
                .devices
                .insert(d.uuid.clone(), DeviceEntry { row: d, telemetry });
        }
        match state.nodes.get_mut(&node) {
            Some(entry) => {
                entry.row = row;
                entry.last_seen = Some(Instant::now());
            }
            None => {
                let (generation_tx, _) = watch::channel(row.generation);
                state.nodes.insert(
                    node.clone(),
                    NodeEntry {
                        row,
                        last_seen: Some(Instant::now()),
                        generation_tx,
                    },
                );
            }
        }
        drop(state);
        self.with_auth(|a| a.put_token(issued.row.clone()));
        self.kick();
        tracing::info!(%node, %site, "node joined");
        Ok(v1::JoinResponse {
            node,
            credential: issued.token,
            lease: Some(ms_to_dur(self.policy.lease_ms)),
        })
    }

    /// Renews the lease, takes in observed state, and answers the desired work,
    /// holding the call while nothing changes (long-poll).
    pub async fn heartbeat(
        &self,
        caller: &Caller,
        req: v1::HeartbeatRequest,
    ) -> Result<HeartbeatReply> {
        caller.require_node(&req.node)?;
        let node = req.node.clone();
        let (mut rx, failed) = {
            let mut state = self.lock().await;
            let failed = self.take_heartbeat(&mut state, &req).await?;
            let entry = state
                .nodes
                .get(&node)
                .ok_or_else(|| Error::NotFound(format!("node {node:?}")))?;
            (entry.generation_tx.subscribe(), failed)
        };
        for (job, why) in failed {
            self.request_stop(&job, JobState::Failed, &why).await?;
        }
        let current = *rx.borrow_and_update();
        if u64::try_from(current).unwrap_or(0) == req.known_generation {
            let asked = req.wait.as_ref().map(dur_to_ms).unwrap_or(0);
            let wait = asked.clamp(0, self.policy.max_poll_ms.min(self.policy.lease_ms / 2));
            if wait > 0 {
                let _ =
                    tokio::time::timeout(Duration::from_millis(wait as u64), rx.changed()).await;
            }
        }
        let state = self.lock().await;
        Ok(HeartbeatReply {
            response: self.desired(&state, &node, &req),
        })
    }

    /// Applies the heartbeat's observations: lease, devices, jobs. Returns the jobs to
    /// stop because a device they hold has just failed.
    async fn take_heartbeat(
        &self,
        state: &mut State,
        req: &v1::HeartbeatRequest,
    ) -> Result<Vec<(String, String)>> {
        let t = now();
        let node = &req.node;
        let entry = state
            .nodes
            .get(node)
            .ok_or_else(|| Error::NotFound(format!("node {node:?}")))?;
        let mut batch = Vec::new();
        let mut row = entry.row.clone();
        let came_back = row.state == NodeState::Unreachable;
        if came_back {
            row.state = NodeState::Ready;
            tracing::info!(%node, "node reachable again");
        }
        let version_changed = row.agent_version != req.agent_version || row.runtime != req.runtime;
        row.agent_version = req.agent_version.clone();
        row.runtime = req.runtime.clone();
        row.last_heartbeat_ms = Some(t);
        if came_back || version_changed {
            batch.push(Mutation::UpsertNode(row.clone()));
        }
        // Devices: telemetry in memory; health and inventory changes are persisted.
        let mut device_updates = Vec::new();
        let mut newly_failed = Vec::new();
        for mut d in device_rows(state, node, &req.devices, t)? {
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
                batch.push(Mutation::UpsertDevice(d.clone()));
            }
            device_updates.push(d);
        }
        if !batch.is_empty() {
            self.commit(batch).await?;
        }
        if let Some(e) = state.nodes.get_mut(node) {
            e.row = row.clone();
            e.last_seen = Some(Instant::now());
        }
        if came_back {
            state
                .cluster
                .set_node_schedulable(node, node_schedulable(row.state));
        }
        for d in device_updates {
            state
                .cluster
                .upsert_device(&d.uuid, node, &d.class, d.health != Health::Failed);
            let telemetry = req
                .devices
                .iter()
                .find(|r| r.uuid == d.uuid)
                .and_then(|r| r.telemetry);
            state
                .devices
                .insert(d.uuid.clone(), DeviceEntry { row: d, telemetry });
        }
        for obs in &req.jobs {
            self.observe_job(state, node, obs).await?;
        }
        // Placed jobs the agent should have but does not report are lost, once the
        // agent has applied the generation they were placed in.
        let known = i64::try_from(req.known_generation).unwrap_or(i64::MAX);
        let missing: Vec<String> = state
            .placed_jobs_on(node)
            .filter(|j| j.row.generation <= known && known > 0)
            .filter(|j| !req.jobs.iter().any(|o| o.job_id == j.row.id))
            .map(|j| j.row.id.clone())
            .collect();
        for id in missing {
            self.end_job(state, &id, Ending::Lost("the node no longer has it".into()))
                .await?;
        }
        let mut to_stop = Vec::new();
        for (uuid, why) in newly_failed {
            tracing::warn!(device = %uuid, reason = %why, "device failed; quarantined");
            self.refund_faulted_bookings(state, &uuid, t).await?;
            for j in state.placed_jobs_on(node) {
                if j.row.devices.contains(&uuid) {
                    to_stop.push((j.row.id.clone(), super::jobs::fault_reason(&uuid, &why)));
                }
            }
        }
        Ok(to_stop)
    }

    /// Refunds, by the fault policy, the rest of every booking that holds a device that
    /// just failed (the hours of that device from now to the booking's end).
    async fn refund_faulted_bookings(&self, state: &mut State, uuid: &str, t: i64) -> Result<()> {
        let pct = state.sched.refund_fault_pct;
        let hit: Vec<_> = state
            .reservations
            .values()
            .filter(|r| r.devices.iter().any(|d| d == uuid) && r.end_ms > t)
            .cloned()
            .collect();
        for mut r in hit {
            let lost_ms = r.end_ms - t.max(r.start_ms);
            let rate = state.class_rate(&r.class);
            let (org, id, class) = (r.org.clone(), r.id.clone(), r.class.clone());
            let subject = super::charges::Subject {
                org: &org,
                kind: crate::store::OwnerKind::Reservation,
                id: &id,
                class: &class,
            };
            let amount = super::percent_of(crate::core::rated(lost_ms, rate), pct);
            let note = format!("device {uuid} failed ({pct}% of its remaining hours)");
            let Some(entry) =
                super::charges::refund_amount(&subject, &mut r.charge, amount, lost_ms, t, &note)
            else {
                continue;
            };
            let ledger = vec![entry];
            self.commit(vec![
                Mutation::UpsertReservation(r.clone()),
                Mutation::InsertLedger(ledger.clone()),
            ])
            .await?;
            super::charges::applied(state, &self.metrics, &ledger);
            state.reservations.insert(id, r);
        }
        Ok(())
    }

    /// The desired work of a node.
    fn desired(
        &self,
        state: &State,
        node: &str,
        req: &v1::HeartbeatRequest,
    ) -> v1::HeartbeatResponse {
        let entry = state.nodes.get(node);
        let jobs = state
            .placed_jobs_on(node)
            .filter(|j| j.stop.is_none())
            .map(|j| v1::DesiredJob {
                job_id: j.row.id.clone(),
                image: j.row.image.clone(),
                command: j.row.command.clone(),
                env: job_env(state, &j.row, node),
                devices: j
                    .row
                    .devices
                    .iter()
                    .filter(|d| state.devices.get(*d).is_some_and(|e| e.row.node == node))
                    .cloned()
                    .collect(),
                deadline: j.row.deadline_ms.map(ms_to_ts),
                grace: Some(ms_to_dur(self.policy.grace_ms)),
                org: j.row.org.clone(),
                datasets: crate::convert::datasets(&j.row.datasets),
                network: j.row.network.clone(),
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
            lease: Some(ms_to_dur(self.policy.lease_ms)),
            acknowledged,
            node_state: entry.map_or(v1::NodeState::Unspecified, |e| e.row.state.to_proto()) as i32,
        }
    }

    /// A job phase change reported by its node.
    pub async fn report_job(&self, caller: &Caller, obs: &v1::ObservedJob) -> Result<()> {
        let node = caller
            .node
            .clone()
            .ok_or_else(|| Error::PermissionDenied("only agents report jobs".into()))?;
        caller.require_node(&node)?;
        let mut state = self.lock().await;
        self.observe_job(&mut state, &node, obs).await?;
        Ok(())
    }

    /// Applies one observed job to the record.
    async fn observe_job(
        &self,
        state: &mut State,
        node: &str,
        obs: &v1::ObservedJob,
    ) -> Result<()> {
        let Some(live) = state.jobs.get(&obs.job_id) else {
            return Ok(()); // already final, or not ours: acknowledged in the reply
        };
        if !live.row.state.is_placed() || !state.job_on(&live.row, node) {
            return Ok(()); // a node may only report its own jobs
        }
        let phase = v1::JobPhase::try_from(obs.phase).unwrap_or(v1::JobPhase::Unspecified);
        let t = now();
        if live.row.nodes > 1 {
            return self.observe_rank(state, node, obs, phase, t).await;
        }
        match phase {
            v1::JobPhase::Starting if live.row.state == JobState::Scheduled => {
                let mut row = live.row.clone();
                row.state = JobState::Starting;
                self.save_job(state, row).await
            }
            v1::JobPhase::Running
                if matches!(live.row.state, JobState::Scheduled | JobState::Starting) =>
            {
                let mut row = live.row.clone();
                row.state = JobState::Running;
                row.started_ms = Some(obs.started_at.as_ref().map_or(t, ts_to_ms));
                if live.stop.is_none() {
                    row.reason.clear();
                }
                self.metrics.job_started(
                    &row.class,
                    (row.started_ms.unwrap_or(t) - row.created_ms).max(0),
                );
                self.save_job(state, row).await
            }
            v1::JobPhase::Exited => {
                // A job that ran too briefly to be reported running still used its devices.
                if let (Some(j), Some(at)) = (state.jobs.get_mut(&obs.job_id), &obs.started_at)
                    && j.row.started_ms.is_none()
                {
                    j.row.started_ms = Some(ts_to_ms(at));
                    self.metrics
                        .job_started(&j.row.class, ts_to_ms(at) - j.row.created_ms);
                }
                let code = obs.exit_code.unwrap_or(-1);
                self.end_job(state, &obs.job_id, Ending::Exited(code)).await
            }
            v1::JobPhase::FailedToStart => {
                self.end_job(
                    state,
                    &obs.job_id,
                    Ending::FailedToStart(obs.message.clone()),
                )
                .await
            }
            v1::JobPhase::Unknown => {
                let m = if obs.message.is_empty() {
                    "the node lost track of it".to_owned()
                } else {
                    obs.message.clone()
                };
                self.end_job(state, &obs.job_id, Ending::Lost(m)).await
            }
            _ => Ok(()),
        }
    }

    /// One node's report on its part of a multi-node job. The job runs once every part
    /// runs; the first part that fails stops the others; the job ends when every part has.
    async fn observe_rank(
        &self,
        state: &mut State,
        node: &str,
        obs: &v1::ObservedJob,
        phase: v1::JobPhase,
        t: i64,
    ) -> Result<()> {
        let Some(live) = state.jobs.get(&obs.job_id).cloned() else {
            return Ok(());
        };
        let nodes = state.job_nodes(&live.row);
        let rank = nodes.iter().position(|n| n == node).unwrap_or(0);
        let end = match phase {
            v1::JobPhase::Starting if live.row.state == JobState::Scheduled => {
                let mut row = live.row.clone();
                row.state = JobState::Starting;
                return self.save_job(state, row).await;
            }
            v1::JobPhase::Running => {
                if live.row.state == JobState::Running {
                    return Ok(());
                }
                if let Some(j) = state.jobs.get_mut(&obs.job_id) {
                    j.ranks.running.insert(node.to_owned());
                }
                let running = state
                    .jobs
                    .get(&obs.job_id)
                    .map_or(0, |j| j.ranks.running.len());
                if running < nodes.len() {
                    return Ok(());
                }
                let mut row = live.row.clone();
                row.state = JobState::Running;
                row.started_ms = Some(
                    obs.started_at
                        .as_ref()
                        .map_or(t, ts_to_ms)
                        .max(row.started_ms.unwrap_or(i64::MIN)),
                );
                if live.stop.is_none() {
                    row.reason.clear();
                }
                self.metrics.job_started(
                    &row.class,
                    (row.started_ms.unwrap_or(t) - row.created_ms).max(0),
                );
                return self.save_job(state, row).await;
            }
            v1::JobPhase::Exited => RankEnd::Exited(obs.exit_code.unwrap_or(-1)),
            v1::JobPhase::FailedToStart => {
                RankEnd::Failed(format!("failed to start: {}", obs.message))
            }
            v1::JobPhase::Unknown => RankEnd::Failed("the node lost track of it".into()),
            _ => return Ok(()),
        };
        if let (Some(j), Some(at)) = (state.jobs.get_mut(&obs.job_id), &obs.started_at)
            && j.row.started_ms.is_none()
        {
            j.row.started_ms = Some(ts_to_ms(at));
        }
        let failed = !matches!(end, RankEnd::Exited(0));
        if let Some(j) = state.jobs.get_mut(&obs.job_id) {
            j.ranks.ended.insert(node.to_owned(), end.clone());
        }
        if failed && live.stop.is_none() {
            let why = match &end {
                RankEnd::Exited(code) => {
                    format!("rank {rank} on node {node} exited with code {code}")
                }
                RankEnd::Failed(m) => format!("rank {rank} on node {node}: {m}"),
            };
            self.stage_stop(state, &obs.job_id, JobState::Failed, &why)
                .await?;
        }
        let Some(j) = state.jobs.get(&obs.job_id) else {
            return Ok(());
        };
        let ended: Vec<&RankEnd> = nodes.iter().filter_map(|n| j.ranks.ended.get(n)).collect();
        if ended.len() < nodes.len() {
            return Ok(());
        }
        let ending = ended
            .iter()
            .find_map(|e| match e {
                RankEnd::Exited(0) => None,
                RankEnd::Exited(c) => Some(Ending::Exited(*c)),
                RankEnd::Failed(m) => Some(Ending::FailedToStart(m.clone())),
            })
            .unwrap_or(Ending::Exited(0));
        self.end_job(state, &obs.job_id, ending).await
    }

    async fn save_job(&self, state: &mut State, row: crate::store::JobRow) -> Result<()> {
        self.commit(vec![Mutation::UpsertJob(row.clone())]).await?;
        if let Some(j) = state.jobs.get_mut(&row.id) {
            j.row = row;
        }
        Ok(())
    }

    /// Ends a placed job and bumps its node's generation.
    pub(crate) async fn end_job(&self, state: &mut State, id: &str, ending: Ending) -> Result<()> {
        let t = now();
        let mut batch = Vec::new();
        let nodes = match state.jobs.get(id) {
            Some(j) => state.job_nodes(&j.row),
            None => return Ok(()),
        };
        let Some(done) = self.finish_job(state, id, ending, t, &mut batch) else {
            return Ok(());
        };
        let bumps: Vec<_> = nodes
            .iter()
            .map(|n| bump_generation(state, n, &mut batch))
            .collect();
        self.commit(batch).await?;
        self.finished_in_memory(state, &done, t);
        for b in bumps {
            b.publish(state);
        }
        self.kick();
        Ok(())
    }

    /// Stores a batch of log chunks from the job's node.
    pub async fn push_logs(&self, caller: &Caller, req: v1::PushLogsRequest) -> Result<u64> {
        let job_id = model::id("job_id", &req.job_id)?;
        let node = caller
            .node
            .clone()
            .ok_or_else(|| Error::PermissionDenied("only agents push logs".into()))?;
        // Which part of the job this node runs: logs of rank r are stored at
        // seq = r * RANK_SEQ_SPAN + the agent's own seq.
        let rank = {
            let state = self.lock().await;
            match state.jobs.get(&job_id) {
                Some(j) => state.job_nodes(&j.row).iter().position(|n| *n == node),
                None => None,
            }
        };
        let rank = match rank {
            Some(r) => r,
            None => {
                let stored = self.store.get_job(&job_id).await?;
                let Some(row) = stored else {
                    return Err(Error::NotFound(format!("job {job_id} on node {node}")));
                };
                let state = self.lock().await;
                match state.job_nodes(&row).iter().position(|n| *n == node) {
                    Some(r) => r,
                    None if row.node.as_deref() == Some(node.as_str()) => 0,
                    None => return Err(Error::NotFound(format!("job {job_id} on node {node}"))),
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

/// The environment of a job's part on `node`: the job's own, plus, for multi-node jobs,
/// where it sits among its nodes (`BERTH_NODE_RANK`, `BERTH_NUM_NODES`, `BERTH_NODES`,
/// `BERTH_MASTER_ADDR`: hostnames in rank order).
fn job_env(
    state: &State,
    row: &crate::store::JobRow,
    node: &str,
) -> std::collections::HashMap<String, String> {
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
fn device_rows(
    state: &State,
    node: &str,
    reports: &[v1::DeviceReport],
    t: i64,
) -> Result<Vec<DeviceRow>> {
    let mut out = Vec::with_capacity(reports.len());
    for (i, d) in reports.iter().enumerate() {
        if d.uuid.is_empty() || d.uuid.len() > 128 {
            return Err(Error::field(
                &format!("devices[{i}].uuid"),
                "must be 1 to 128 characters",
            ));
        }
        let class = model::name(&format!("devices[{i}].class"), &d.class)?;
        if !state.classes.contains_key(&class) {
            return Err(Error::FailedPrecondition(format!(
                "device class {class:?} does not exist: create it with `berth admin classes create {class}`"
            )));
        }
        if let Some(other) = state.devices.get(&d.uuid)
            && other.row.node != node
        {
            return Err(Error::FailedPrecondition(format!(
                "device {} is registered on node {}",
                d.uuid, other.row.node
            )));
        }
        let health = match v1::DeviceHealth::try_from(d.health) {
            Ok(v1::DeviceHealth::Failed) => Health::Failed,
            Ok(v1::DeviceHealth::Degraded) => Health::Degraded,
            _ => Health::Healthy,
        };
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
