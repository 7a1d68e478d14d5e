//! The engine: the scheduler's operations over the in-memory state and the store.
//!
//! Every change follows one path: take the state lock, decide (with the pure
//! [`crate::core`] where placement is involved), build a batch of mutations, commit it
//! with [`Store::apply`], and only then change memory and answer. The lock serialises
//! writers, so memory and database never disagree about what was acknowledged.

mod admin;
mod agents;
mod booking;
mod budgets;
mod charges;
mod jobs;
mod pass;
mod policy;
mod reclaim;

pub use agents::HeartbeatReply;
pub use policy::{SchedPolicy, percent_of};

use crate::auth::{AuthIndex, Caller, Keys};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::state::State;
use crate::store::{AuditRow, Mutation, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use tokio::sync::{Mutex, MutexGuard, Notify, watch};

/// Timings and limits of the engine.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How long an agent's lease lasts after each heartbeat.
    pub lease_ms: i64,
    /// The longest a heartbeat long-poll is held.
    pub max_poll_ms: i64,
    /// Time between SIGTERM and SIGKILL when stopping a job.
    pub grace_ms: i64,
    /// Lifetime of user API tokens unless asked otherwise.
    pub token_ttl_ms: i64,
    /// Lifetime of node credentials.
    pub node_credential_ttl_ms: i64,
    /// Lifetime of join tokens unless asked otherwise.
    pub join_token_ttl_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            lease_ms: 15_000,
            max_poll_ms: 10_000,
            grace_ms: 10_000,
            token_ttl_ms: 90 * 24 * berth_proto::time::HOUR_MS,
            node_credential_ttl_ms: 365 * 24 * berth_proto::time::HOUR_MS,
            join_token_ttl_ms: berth_proto::time::HOUR_MS,
        }
    }
}

/// Wakes log followers of a job when new chunks are stored or the job ends.
#[derive(Debug, Default)]
pub struct LogHub {
    jobs: StdMutex<HashMap<String, watch::Sender<u64>>>,
}

impl LogHub {
    /// A receiver that changes whenever the job's logs grow.
    pub fn subscribe(&self, job: &str) -> watch::Receiver<u64> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.entry(job.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the job's followers.
    pub fn notify(&self, job: &str) {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = jobs.get(job) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Wakes the job's followers one last time and forgets the job.
    pub fn close(&self, job: &str) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = jobs.remove(job) {
            tx.send_modify(|v| *v += 1);
        }
    }
}

/// The scheduler's operations.
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    state: Mutex<State>,
    pub(crate) keys: Arc<Keys>,
    pub(crate) auth: Arc<RwLock<AuthIndex>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) policy: Policy,
    /// Wakes the scheduling loop early.
    pub(crate) wake: Notify,
    pub(crate) logs: LogHub,
}

impl Engine {
    /// Loads the state from the store.
    pub async fn load(
        store: Arc<dyn Store>,
        keys: Keys,
        metrics: Arc<Metrics>,
        policy: Policy,
    ) -> Result<Self> {
        let now = berth_proto::time::now_ms();
        // Ledger entries of every period that may still be charged or shown as current,
        // and the usage that still weighs in fair share.
        let ledger_since = now - 62 * 24 * berth_proto::time::HOUR_MS;
        let usage_since = now - 90 * 24 * berth_proto::time::HOUR_MS;
        let snap = store.load(now, ledger_since, usage_since).await?;
        let mut index = AuthIndex::default();
        for u in &snap.users {
            index.put_user(u.clone());
        }
        for t in &snap.tokens {
            index.put_token(t.clone());
        }
        let state = State::from_snapshot(snap);
        tracing::info!(
            nodes = state.nodes.len(),
            devices = state.devices.len(),
            reservations = state.reservations.len(),
            jobs = state.jobs.len(),
            "state loaded"
        );
        let engine = Engine {
            store,
            state: Mutex::new(state),
            keys: Arc::new(keys),
            auth: Arc::new(RwLock::new(index)),
            metrics,
            policy,
            wake: Notify::new(),
            logs: LogHub::default(),
        };
        Ok(engine)
    }

    /// Takes the state lock.
    pub(crate) async fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().await
    }

    /// Commits a batch; nothing in memory changes until this returns Ok.
    pub(crate) async fn commit(&self, batch: Vec<Mutation>) -> Result<()> {
        self.store.apply(batch).await.map_err(Into::into)
    }

    /// Updates the auth index after a committed change.
    pub(crate) fn with_auth(&self, f: impl FnOnce(&mut AuthIndex)) {
        let mut index = self.auth.write().unwrap_or_else(|e| e.into_inner());
        f(&mut index);
    }

    /// Asks the scheduling loop to run a pass soon.
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// Records an audit event outside a batch (e.g. for refusals).
    pub(crate) async fn audit_refusal(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        error: &crate::error::Error,
    ) {
        let row = audit(caller, action, target, now(), &error.to_string());
        if let Err(e) = self.store.apply(vec![Mutation::Audit(row)]).await {
            tracing::warn!(error = %e, "could not record an audit event");
        }
    }

    /// The Prometheus exposition, with gauges read from the current state.
    pub async fn render_metrics(&self) -> String {
        self.metrics.observe_state(&*self.lock().await);
        self.metrics.render()
    }

    /// True when the database answers.
    pub async fn ready(&self) -> bool {
        self.store.list_audit(1).await.is_ok()
    }
}

/// The current time in milliseconds.
pub(crate) fn now() -> i64 {
    berth_proto::time::now_ms()
}

/// An audit row for `caller` doing `action` on `target`.
pub(crate) fn audit(
    caller: &Caller,
    action: &str,
    target: &str,
    time_ms: i64,
    outcome: &str,
) -> AuditRow {
    AuditRow {
        time_ms,
        actor: format!("{} ({})", caller.name, caller.role),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
    }
}

pub(crate) use booking::{check_class, refusal, reservation_usage};

impl Engine {
    /// A node as the API shows it.
    pub async fn node_view(&self, name: &str) -> berth_proto::v1::Node {
        let state = self.lock().await;
        let devices = state
            .devices
            .values()
            .filter(|d| d.row.node == name)
            .map(crate::convert::device)
            .collect();
        match state.nodes.get(name) {
            Some(n) => crate::convert::node(n, devices),
            None => berth_proto::v1::Node::default(),
        }
    }
}
