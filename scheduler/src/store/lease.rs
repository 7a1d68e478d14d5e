//! Leadership among several schedulers on one database: a lease row with a fencing token.
//!
//! A scheduler *campaigns* every second or so: it takes the lease when it has expired (by
//! the database's clock, so schedulers' clocks may disagree) or renews its own. Taking it
//! starts a new term with a larger fencing token. Every write transaction of the store then
//! checks, under a share lock on the lease row, that this scheduler still holds the lease
//! with that token and that it has not expired; a deposed leader's writes fail, and a new
//! leader cannot take the lease while one of them is committing.

use super::StoreError;

/// This scheduler, as it campaigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Unique per process.
    pub id: String,
    /// Where clients reach it (its advertised gRPC URL).
    pub address: String,
    /// When it started (ms).
    pub started_ms: i64,
}

/// The lease as a campaign left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// Who holds it (empty: nobody has yet).
    pub holder: String,
    /// The holder's address.
    pub address: String,
    /// The current term's fencing token.
    pub token: i64,
    /// When the current term started (ms, database clock).
    pub since_ms: i64,
    /// When it expires unless renewed (ms, database clock).
    pub expires_ms: i64,
    /// The database's clock when it was read (ms).
    pub db_now_ms: i64,
}

impl LeaseView {
    /// Whether `id` holds an unexpired lease.
    pub fn held_by(&self, id: &str) -> bool {
        self.holder == id && self.expires_ms > self.db_now_ms
    }
}

/// A scheduler taking part, as `berth admin status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub id: String,
    pub address: String,
    pub started_ms: i64,
    /// Its last campaign (ms, database clock).
    pub last_seen_ms: i64,
    /// `leader` or `standby`.
    pub role: String,
    /// The token of its term, when it leads.
    pub token: i64,
}

/// Leadership on a database several schedulers share.
#[async_trait::async_trait]
pub trait Lease: Send + Sync + 'static {
    /// Takes the lease if it is free or expired, or renews it if held; records this
    /// scheduler among the members. On success the store fences its writes with the
    /// term's token; otherwise it refuses writes.
    async fn campaign(&self, me: &Candidate, lease_ms: i64) -> Result<LeaseView, StoreError>;
    /// Stops fencing writes with a held term (this scheduler stepped down).
    fn unfence(&self);
    /// Gives the lease up at once (graceful shutdown), so a standby takes over without
    /// waiting for it to expire.
    async fn resign(&self, me: &Candidate) -> Result<(), StoreError>;
    /// The lease and the members seen within `recent_ms`.
    async fn status(&self, recent_ms: i64) -> Result<(LeaseView, Vec<MemberRow>), StoreError>;
}
