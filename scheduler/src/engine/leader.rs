//! Leadership: on a database several schedulers share, one leads (it decides and writes)
//! and the others stand by, refusing requests with the leader's address. A single
//! scheduler (the embedded SQLite default) always leads.
//!
//! The leader campaigns every `lease / 5` to renew its lease. A standby campaigns on the
//! same beat and takes the lease once it has expired by the database's clock; it then
//! reloads everything from the database (so it has all that was acknowledged), and opens
//! for writes. A leader that cannot renew steps down by its own clock before its lease can
//! expire, and the store's fence refuses any write of a term that is over, so two
//! schedulers never write at once.

use super::Engine;
use crate::store::{Candidate, Lease, LeaseView, MemberRow};
use berth_i18n::api::Text;
use berth_i18n::text;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Who leads, as this scheduler last saw it.
#[derive(Debug)]
pub struct Leadership {
    /// Whether schedulers campaign at all (PostgreSQL); without, this one always leads.
    campaigns: bool,
    leading: AtomicBool,
    seen: RwLock<Seen>,
}

/// The last campaign's view.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// This scheduler.
    pub me: Option<Candidate>,
    /// The lease as last read.
    pub lease: Option<LeaseView>,
    /// When this scheduler's term began (local clock), if it leads.
    pub term_started: Option<Instant>,
    /// When the lease was last renewed or read (local clock).
    pub renewed: Option<Instant>,
}

impl Leadership {
    /// A scheduler that leads alone.
    pub fn alone() -> Self {
        Leadership {
            campaigns: false,
            leading: AtomicBool::new(true),
            seen: RwLock::default(),
        }
    }

    /// A scheduler that campaigns; it stands by until it wins.
    pub fn campaigning(me: Candidate) -> Self {
        Leadership {
            campaigns: true,
            leading: AtomicBool::new(false),
            seen: RwLock::new(Seen {
                me: Some(me),
                ..Seen::default()
            }),
        }
    }

    /// Whether this scheduler leads.
    pub fn leads(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// Whether schedulers campaign on this database.
    pub fn campaigns(&self) -> bool {
        self.campaigns
    }

    /// The last campaign's view.
    pub fn seen(&self) -> Seen {
        self.seen.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The leader's address when another scheduler leads (for standbys' answers).
    pub fn leader_address(&self) -> Option<String> {
        let seen = self.seen();
        let lease = seen.lease?;
        let me = seen.me.map(|m| m.id).unwrap_or_default();
        (lease.expires_ms > lease.db_now_ms && lease.holder != me && !lease.address.is_empty())
            .then_some(lease.address)
    }

    /// Why this scheduler takes no requests, for answers and `/readyz`.
    pub fn standby_message(&self) -> Text {
        match self.leader_address() {
            Some(a) => text!(StandbyLeaderAt, address = a),
            None => text!(StandbyNoLeader),
        }
    }

    fn set_seen(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.write().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The schedulers on the database and their roles, for `berth admin status`.
#[derive(Debug, Clone)]
pub struct Status {
    /// The lease (`None` for a scheduler that leads alone).
    pub lease: Option<LeaseView>,
    /// The schedulers seen recently.
    pub members: Vec<MemberRow>,
}

impl Engine {
    /// Whether this scheduler leads (decides and writes).
    pub fn leads(&self) -> bool {
        self.leadership.leads()
    }

    /// Who leads, as this scheduler last saw it.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Campaigns for leadership until `stop`, every `lease_ms / 5`. `on_lead` runs once
    /// per term, after the state is reloaded and before writes open (e.g. the bootstrap
    /// admin).
    pub async fn campaign<F, Fut>(
        self: Arc<Self>,
        lease: Arc<dyn Lease>,
        lease_ms: i64,
        on_lead: F,
        stop: CancellationToken,
    ) where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let every = Duration::from_millis((lease_ms / 5).max(100) as u64);
        loop {
            self.campaign_once(&*lease, lease_ms, &on_lead).await;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        if self.leads() {
            self.step_down("the scheduler is stopping");
        }
        if let Some(me) = self.leadership.seen().me
            && let Err(e) = lease.resign(&me).await
        {
            tracing::warn!(error = %e, "could not give the lease up; it expires on its own");
        }
    }

    /// One campaign: renew or take the lease, or stand by.
    pub async fn campaign_once<F, Fut>(&self, lease: &dyn Lease, lease_ms: i64, on_lead: &F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let Some(me) = self.leadership.seen().me else {
            return;
        };
        let asked = Instant::now();
        // A database that does not answer is a database this scheduler lost: the campaign
        // gives up before the lease could expire, so the step-down below happens in time.
        let limit = Duration::from_millis((lease_ms * 2 / 5).max(50) as u64);
        let result = match tokio::time::timeout(limit, lease.campaign(&me, lease_ms)).await {
            Ok(r) => r,
            Err(_) => Err(crate::store::StoreError::Db(format!(
                "the database did not answer the campaign within {limit:?}"
            ))),
        };
        match result {
            Ok(view) if view.held_by(&me.id) => {
                self.leadership.set_seen(|s| {
                    s.lease = Some(view.clone());
                    s.renewed = Some(asked);
                });
                self.metrics.set_leader_lease_age(Duration::ZERO);
                if !self.leads() {
                    self.take_office(&view, on_lead).await;
                }
            }
            Ok(view) => {
                let leader = view.address.clone();
                self.leadership.set_seen(|s| {
                    s.lease = Some(view.clone());
                    s.renewed = Some(asked);
                    s.term_started = None;
                });
                if self.leads() {
                    self.step_down(&format!("{leader} leads now"));
                }
                // Standbys keep their credentials current, so anyone the leader knows
                // can ask them who leads.
                if let Err(e) = self.refresh_auth().await {
                    tracing::debug!(error = %e, "could not refresh credentials");
                }
                let age = (view.db_now_ms - (view.expires_ms - lease_ms)).max(0);
                self.metrics
                    .set_leader_lease_age(Duration::from_millis(age as u64));
            }
            Err(e) => {
                tracing::warn!(error = %e, "campaign failed");
                // Step down before the lease can expire, measured from when the last
                // renewal was asked for, so no standby can lead while this one still does.
                let renewed = self.leadership.seen().renewed;
                let safe = Duration::from_millis((lease_ms * 3 / 5).max(1) as u64);
                if self.leads() && renewed.is_none_or(|r| r.elapsed() > safe) {
                    lease.unfence();
                    self.step_down("this scheduler lost its database");
                }
            }
        }
    }

    /// Becomes the leader: waits out any batch of an earlier term, reloads the state from
    /// the database, runs `on_lead`, and opens for writes.
    async fn take_office<F, Fut>(&self, view: &LeaseView, on_lead: &F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        while self.writes_in_flight() > 0 {
            tokio::task::yield_now().await;
        }
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "won the lease but could not load the state; standing by");
            return;
        }
        // Writes open for the term's own set-up (e.g. the bootstrap admin), then for all.
        self.refuse_writes(None);
        on_lead().await;
        let first = view.token <= 1;
        self.leadership
            .set_seen(|s| s.term_started = Some(Instant::now()));
        self.leadership.leading.store(true, Ordering::Release);
        self.metrics.set_leader(true);
        if !first {
            self.metrics.failover();
        }
        tracing::info!(term = view.token, "this scheduler leads");
        self.kick();
    }

    /// Stops leading: refuses writes at once (requests in flight fail on the fence).
    pub(crate) fn step_down(&self, why: &str) {
        self.leadership.leading.store(false, Ordering::Release);
        self.refuse_writes(Some(text!(NoLongerLeads, why)));
        self.metrics.set_leader(false);
        tracing::warn!(reason = %why, "stepped down");
    }

    /// The schedulers on the database and who leads.
    pub async fn status(&self, caller: &crate::auth::Caller) -> crate::error::Result<Status> {
        caller.require_admin()?;
        match &self.lease {
            None => Ok(Status {
                lease: None,
                members: Vec::new(),
            }),
            Some(l) => {
                let (lease, members) = l.status(60_000).await?;
                Ok(Status {
                    lease: Some(lease),
                    members,
                })
            }
        }
    }
}
