//! The engine: the scheduler's operations over the in-memory state and the store.
//!
//! Every change follows one path ([`Engine::commit`]): under the live lock, decide (with the
//! pure [`crate::core`] where placement is involved) and stage a batch of mutations, which
//! applies them to the live state; the writer commits batches in groups (see `pipeline`);
//! the request is answered once its batch is durable. Reads use the committed state or the
//! database, and never wait for a commit or a pass.

mod admin;
mod agents;
pub mod billing;
mod booking;
mod budgets;
mod charges;
mod effects;
mod jobs;
mod leader;
pub mod notify;
mod observed;
mod pass;
mod pipeline;
mod planner;
mod policy;
mod projects;
mod reclaim;
pub mod report;
mod retention;
mod stage;
mod views;
mod web;

pub use agents::HeartbeatReply;
pub use leader::{Leadership, Seen, Status};
pub use observed::{Hint, PENDING_KINDS, PendingWhy};
pub use pass::PassReport;
pub use pipeline::{MAX_GROUP, Ticket, Tx};
pub use policy::{Retention, SchedPolicy, percent_of};
pub use projects::ProjectAction;
pub use views::{JobView, Listed};
pub use web::{
    CostSource, LOGIN_LINK_PATH, LOGIN_LINK_TTL_MS, Quote, SESSION_TTL_MS, Web, WebSession,
};

use crate::auth::{AuthIndex, Caller, Keys};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::state::State;
use crate::store::{AuditRow, Mutation, Store};
use observed::{Generations, Hints, Observed};
use pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, RwLock, RwLockReadGuard};
use tokio::sync::{Notify, watch};

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

/// Most log followers at once, in all.
pub const MAX_FOLLOWERS: usize = 4096;
/// Most log followers at once per user (or node).
pub const MAX_FOLLOWERS_PER_USER: usize = 32;

/// Wakes log followers of a job when new chunks are stored or the job ends, and bounds
/// how many follow at once.
#[derive(Debug, Default)]
pub struct LogHub {
    jobs: StdMutex<HashMap<String, watch::Sender<u64>>>,
    followers: Arc<StdMutex<HashMap<String, usize>>>,
}

/// A follower's place; given back when the follower leaves.
#[derive(Debug)]
pub struct Follower {
    user: String,
    followers: Arc<StdMutex<HashMap<String, usize>>>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let mut f = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = f.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                f.remove(&self.user);
            }
        }
    }
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

    /// A place for one more follower of `user`, or RESOURCE_EXHAUSTED when the user or
    /// the scheduler is at its limit.
    pub fn admit(&self, user: &str) -> Result<Follower> {
        let mut f = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = f.values().sum();
        let mine = f.get(user).copied().unwrap_or(0);
        if mine >= MAX_FOLLOWERS_PER_USER {
            return Err(crate::error::Error::Overloaded {
                message: berth_i18n::text!(FollowLimitUser, mine),
                retry_after_ms: 1000,
            });
        }
        if total >= MAX_FOLLOWERS {
            return Err(crate::error::Error::Overloaded {
                message: berth_i18n::text!(FollowLimitServer),
                retry_after_ms: 1000,
            });
        }
        *f.entry(user.to_owned()).or_default() += 1;
        Ok(Follower {
            user: user.to_owned(),
            followers: self.followers.clone(),
        })
    }

    /// Followers now, in all.
    pub fn followers(&self) -> usize {
        self.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }

    /// Forgets jobs nobody follows any more.
    pub fn sweep(&self) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.retain(|_, tx| tx.receiver_count() > 0);
    }
}

/// The scheduler's operations.
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pipeline: Pipeline,
    pub(crate) keys: Arc<Keys>,
    pub(crate) auth: Arc<RwLock<AuthIndex>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) policy: Policy,
    /// Wakes the scheduling loop early.
    pub(crate) wake: Notify,
    pub(crate) logs: LogHub,
    pub(crate) observed: Observed,
    pub(crate) hints: Hints,
    generations: Generations,
    /// One pass at a time.
    pass_lock: tokio::sync::Mutex<()>,
    /// Where the pass plans (off the runtime, at a lower priority, on its own copy of
    /// the committed state).
    planner: planner::Planner,
    /// The last queue plan that decided nothing (see `pass.rs`).
    idle_plan: std::sync::Mutex<Option<pass::IdlePlan>>,
    /// Who leads; this scheduler decides and writes only while it does.
    leadership: Leadership,
    /// The lease schedulers on a shared database campaign for (`None`: this one leads
    /// alone).
    lease: Option<Arc<dyn crate::store::Lease>>,
    /// What the web portal needs kept.
    pub(crate) web: Web,
    /// Wakes the notification sender (new outbox rows committed, a slot freed).
    pub(crate) outbox_wake: Notify,
}

impl Engine {
    /// Loads the state from the store. Call [`Engine::spawn_writer`] before any write.
    pub async fn load(
        store: Arc<dyn Store>,
        keys: Keys,
        metrics: Arc<Metrics>,
        policy: Policy,
        lease: Option<(Arc<dyn crate::store::Lease>, crate::store::Candidate)>,
    ) -> Result<Self> {
        let (state, tokens) = load_state(&*store).await?;
        let mut index = AuthIndex::default();
        for u in state.users.values() {
            index.put_user(u.clone());
        }
        for t in tokens {
            index.put_token(t);
        }
        tracing::info!(
            nodes = state.nodes.len(),
            devices = state.devices.len(),
            reservations = state.reservations.len(),
            jobs = state.jobs.len(),
            "state loaded"
        );
        let observed = Observed::default();
        observed.seen_all(state.nodes.keys().map(String::as_str));
        let generations = Generations::default();
        for n in state.nodes.values() {
            generations.publish(&n.row.name, n.row.generation);
        }
        let (leadership, lease) = match lease {
            None => (Leadership::alone(), None),
            Some((l, me)) => (Leadership::campaigning(me), Some(l)),
        };
        let planner = planner::Planner::start(state.clone())?;
        let pipeline = Pipeline::new(state);
        if leadership.campaigns() {
            pipeline.set_refuse(Some(leadership.standby_message()));
        }
        metrics.set_leader(leadership.leads());
        Ok(Engine {
            store,
            pipeline,
            keys: Arc::new(keys),
            auth: Arc::new(RwLock::new(index)),
            metrics,
            policy,
            wake: Notify::new(),
            logs: LogHub::default(),
            observed,
            hints: Hints::default(),
            generations,
            pass_lock: tokio::sync::Mutex::new(()),
            planner,
            idle_plan: std::sync::Mutex::new(None),
            leadership,
            lease,
            web: Web::default(),
            outbox_wake: Notify::new(),
        })
    }

    /// Decides a change with `f` under the live lock and waits until it is durable.
    pub(crate) async fn commit<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let (out, ticket) = self.pipeline.decide(f)?;
        ticket.durable().await?;
        Ok(out)
    }

    /// Decides a change with `f` under the live lock; the ticket resolves once durable.
    pub(crate) fn decide<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T>,
    ) -> Result<(T, Ticket)> {
        self.pipeline.decide(f)
    }

    /// The committed state: what readers see.
    pub(crate) fn view(&self) -> RwLockReadGuard<'_, State> {
        self.pipeline.committed()
    }

    /// Runs `f` on the live state without changing it (e.g. to copy what a pass plans on).
    pub(crate) fn peek_live<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.pipeline.live().state)
    }

    /// Batches decided and not yet committed (the writer's queue).
    pub fn writes_in_flight(&self) -> usize {
        self.pipeline.in_flight()
    }

    /// Refuses writes with `why` until called with `None`.
    pub(crate) fn refuse_writes(&self, why: Option<berth_i18n::api::Text>) {
        self.pipeline.set_refuse(why);
    }

    /// Reloads both states from the database (nothing may be in flight): a new leader
    /// starts from everything that was acknowledged.
    pub(crate) async fn reload(&self) -> Result<()> {
        let (state, tokens) = load_state(&*self.store).await?;
        self.with_auth(|a| {
            *a = AuthIndex::default();
            for u in state.users.values() {
                a.put_user(u.clone());
            }
            for t in tokens {
                a.put_token(t);
            }
        });
        // Agents get a full lease to find the new leader.
        self.observed
            .seen_all(state.nodes.keys().map(String::as_str));
        for n in state.nodes.values() {
            self.generations.publish(&n.row.name, n.row.generation);
        }
        self.pipeline.replace(state, &self.planner);
        Ok(())
    }

    /// Reloads the auth index (users and live tokens) from the database.
    pub(crate) async fn refresh_auth(&self) -> Result<()> {
        let (users, tokens) = self.store.load_auth(now()).await?;
        self.with_auth(|a| {
            *a = AuthIndex::default();
            for u in users {
                a.put_user(u);
            }
            for t in tokens {
                a.put_token(t);
            }
        });
        Ok(())
    }

    /// Updates the auth index (after a committed change).
    pub(crate) fn with_auth(&self, f: impl FnOnce(&mut AuthIndex)) {
        let mut index = self.auth.write().unwrap_or_else(|e| e.into_inner());
        f(&mut index);
    }

    /// Asks the scheduling loop to run a pass soon.
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// Records an audit event of a refusal.
    pub(crate) async fn audit_refusal(
        &self,
        caller: &Caller,
        action: &str,
        target: &str,
        error: &crate::error::Error,
    ) {
        let row = audit(caller, action, target, now(), &error.to_string());
        if let Err(e) = self
            .commit(|tx| {
                tx.push(Mutation::Audit(row));
                Ok(())
            })
            .await
        {
            tracing::warn!(error = %e, "could not record an audit event");
        }
    }

    /// The Prometheus exposition, with gauges read from the committed state.
    pub async fn render_metrics(&self) -> String {
        let hints = self.hints.get();
        let last_seen = |node: &str| self.observed.last_seen(node);
        let pending_kind = |job: &str| hints.get(job).map_or("other", |h| h.why.kind());
        let seen = crate::metrics::Observations {
            last_seen: &last_seen,
            pending_kind: &pending_kind,
        };
        {
            let state = self.view();
            self.metrics.observe_state(&state, &seen);
        }
        self.metrics.render()
    }

    /// True when the database answers.
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }
}

/// Loads what the engine keeps in memory, and the credentials for the auth index.
async fn load_state(store: &dyn Store) -> Result<(State, Vec<crate::store::TokenRow>)> {
    let now = berth_proto::time::now_ms();
    // Ledger entries of every period that may still be charged or shown as current,
    // and the usage that still weighs in fair share.
    let ledger_since = now - 62 * 24 * berth_proto::time::HOUR_MS;
    let usage_since = now - 90 * 24 * berth_proto::time::HOUR_MS;
    let mut snap = store.load(now, ledger_since, usage_since).await?;
    let tokens = std::mem::take(&mut snap.tokens);
    let mut state = State::from_snapshot(snap);
    let ended = crate::store::JobFilter {
        include_finished: true,
        ended_only: true,
        ..Default::default()
    };
    if let Some(newest) = store
        .list_jobs(&ended, &crate::store::Page::first(1))
        .await?
        .first()
    {
        state.note_ended(newest.created_ms, &newest.id);
    }
    Ok((state, tokens))
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
