//! Durable state, behind one small trait with one sea-orm implementation that runs on
//! SQLite (embedded default) and PostgreSQL.
//!
//! Writes go through [`Store::apply`]: a batch of [`Mutation`]s committed in one
//! transaction, so the scheduler acknowledges nothing it has not committed.
//! On PostgreSQL an exclusion constraint over (device, time range) and on SQLite a
//! trigger refuse overlapping device claims in the schema itself.

pub mod lease;
mod sea;
#[cfg(test)]
pub(crate) mod testing;
pub mod types;

pub use lease::{Candidate, Lease, LeaseView, MemberRow};
pub use sea::SeaStore;
pub use types::*;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A device claim overlaps an existing one.
    #[error("device already claimed for an overlapping window: {0}")]
    Conflict(String),
    /// A unique name is taken.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists, e.g. `org "acme"`, as a catalogue message.
        what: berth_i18n::api::Text,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
    /// This scheduler does not hold the lease (or not with this term's token): another
    /// leads, and nothing of the write was recorded.
    #[error("not the leader: {0}")]
    Fenced(String),
}

/// Where a page of a listing starts: after the row with this sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key of the last row of the previous page (a time in ms).
    pub key: i64,
    /// The id of that row (the tie-breaker).
    pub id: String,
}

/// One page of a listing: at most `limit` rows after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Start after this row; `None`: from the first.
    pub after: Option<Cursor>,
    /// Rows at most.
    pub limit: u32,
}

impl Page {
    /// The first `limit` rows.
    pub fn first(limit: u32) -> Self {
        Page { after: None, limit }
    }
}

/// Which jobs a listing shows (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JobFilter {
    /// Only this org; `None` for all (admins).
    pub org: Option<String>,
    /// Include finished jobs.
    pub include_finished: bool,
    /// Only jobs in one of these states (empty: any allowed by `include_finished`).
    pub states: Vec<JobState>,
    /// Only this user's (by name).
    pub user: Option<String>,
    /// Only this class.
    pub class: Option<String>,
    /// Only jobs created at or after this instant.
    pub since_ms: Option<i64>,
    /// Only jobs that have ended (read through the index of ended jobs: listings take
    /// live jobs from memory).
    pub ended_only: bool,
}

/// Which reservations a listing shows (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ReservationFilter {
    /// Only this org; `None` for all (admins).
    pub org: Option<String>,
    /// Include finished reservations.
    pub include_finished: bool,
    /// Only reservations in one of these states.
    pub states: Vec<ReservationState>,
    /// Only this user's (by name).
    pub user: Option<String>,
    /// Only this class.
    pub class: Option<String>,
    /// Only reservations created at or after this instant.
    pub since_ms: Option<i64>,
}

/// Which audit events a listing shows (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AuditFilter {
    /// Only events at or after this instant.
    pub since_ms: Option<i64>,
    /// Only events whose action starts with this (e.g. `job.`).
    pub action_prefix: Option<String>,
}

/// Which ledger entries or usage records a listing shows (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeFilter {
    /// Only this org; `None` for all (admins).
    pub org: Option<String>,
    /// From this instant (inclusive).
    pub from_ms: i64,
    /// To this instant (exclusive).
    pub to_ms: i64,
    /// Only this device class.
    pub class: Option<String>,
}

/// How much a retention sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted.
    pub rows: u64,
}

/// Durable state of the scheduler.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies a group of batches, in order, in one transaction: all or nothing.
    async fn apply_group(&self, group: &[&[Mutation]]) -> Result<(), StoreError>;
    /// Applies one batch of mutations in one transaction.
    async fn apply(&self, batch: Vec<Mutation>) -> Result<(), StoreError> {
        self.apply_group(&[&batch]).await
    }
    /// Loads what the scheduler keeps in memory: live objects as of `now_ms`, ledger
    /// entries of periods starting at or after `ledger_since_ms`, and usage records ending
    /// at or after `usage_since_ms`.
    async fn load(
        &self,
        now_ms: i64,
        ledger_since_ms: i64,
        usage_since_ms: i64,
    ) -> Result<Snapshot, StoreError>;
    /// A page of reservations, newest first (by creation time, then id).
    async fn list_reservations(
        &self,
        filter: &ReservationFilter,
        page: &Page,
    ) -> Result<Vec<ReservationRow>, StoreError>;
    /// One reservation.
    async fn get_reservation(&self, id: &str) -> Result<Option<ReservationRow>, StoreError>;
    /// A page of jobs, newest first (by creation time, then id).
    async fn list_jobs(&self, filter: &JobFilter, page: &Page) -> Result<Vec<JobRow>, StoreError>;
    /// One job.
    async fn get_job(&self, id: &str) -> Result<Option<JobRow>, StoreError>;
    /// Users, optionally of one org.
    async fn list_users(&self, org: Option<&str>) -> Result<Vec<UserRow>, StoreError>;
    /// A page of usage records overlapping [from, to), oldest first (by start, then id).
    async fn list_usage(
        &self,
        filter: &RangeFilter,
        page: &Page,
    ) -> Result<Vec<(i64, UsageRow)>, StoreError>;
    /// Device-milliseconds of the usage records overlapping [from, to), by org, class
    /// and kind.
    async fn usage_totals(
        &self,
        filter: &RangeFilter,
    ) -> Result<Vec<(String, String, OwnerKind, i64)>, StoreError>;
    /// A page of ledger entries with `from <= time < to`, oldest first (by time, then id).
    async fn list_ledger(
        &self,
        filter: &RangeFilter,
        page: &Page,
    ) -> Result<Vec<LedgerRow>, StoreError>;
    /// A page of audit events, newest first (by time, then id), with their ids.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<Vec<(i64, AuditRow)>, StoreError>;
    /// Deletes up to `limit` rows of `what` older than `before_ms`; returns how many.
    async fn prune(&self, what: Prunable, before_ms: i64, limit: u32)
    -> Result<Pruned, StoreError>;
    /// Issued credentials, newest first: of one node, or of these users, or all; with
    /// `all`, revoked and expired ones too.
    async fn list_tokens(
        &self,
        node: Option<&str>,
        users: Option<&[String]>,
        all: bool,
        now_ms: i64,
    ) -> Result<Vec<TokenRow>, StoreError>;
    /// Users, and tokens neither revoked nor expired at `now_ms`: what the auth index
    /// holds (standbys refresh it, so they can answer who leads to a new admin).
    async fn load_auth(&self, now_ms: i64) -> Result<(Vec<UserRow>, Vec<TokenRow>), StoreError>;
    /// A web portal session by the hash of its secret.
    async fn get_web_session(&self, id: &str) -> Result<Option<WebSessionRow>, StoreError>;
    /// A single-use sign-in link by the hash of its secret.
    async fn get_web_login(&self, id: &str) -> Result<Option<WebLoginRow>, StoreError>;
    /// The newest `limit` deliveries the filter allows, newest first.
    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError>;
    /// Up to `limit` pending deliveries due at `now_ms`, soonest first.
    async fn due_notifications(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError>;
    /// A user's settings, if they ever changed one.
    async fn get_user_settings(&self, user_id: &str)
    -> Result<Option<UserSettingsRow>, StoreError>;
    /// Answers when the database does (a cheap query).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Claims of every device, ending after `after_ms` (for consistency checks).
    async fn list_claims(&self, after_ms: i64) -> Result<Vec<ClaimRow>, StoreError>;
    /// Stores log chunks; a chunk whose (job, seq) is already stored is ignored.
    /// Returns the highest stored seq of the job.
    async fn append_logs(&self, job_id: &str, chunks: Vec<LogRow>) -> Result<i64, StoreError>;
    /// Log chunks with seq > `after_seq`, in order, at most `limit`.
    async fn read_logs(
        &self,
        job_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogRow>, StoreError>;
}

/// What the retention sweep may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prunable {
    /// Log chunks of jobs that finished before the cut-off.
    Logs,
    /// Audit events.
    Audit,
    /// Usage records that ended before the cut-off.
    Usage,
    /// Ledger entries of periods that started before the cut-off.
    Ledger,
    /// Finished jobs and reservations (and their claims) that ended before the cut-off.
    Finished,
    /// Notification deliveries sent or given up before the cut-off (pending ones stay).
    Notifications,
}

impl Prunable {
    /// Its name in the policy and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Prunable::Logs => "logs",
            Prunable::Audit => "audit",
            Prunable::Usage => "usage",
            Prunable::Ledger => "ledger",
            Prunable::Finished => "finished",
            Prunable::Notifications => "notifications",
        }
    }
}

/// Opens the store at `url` (`sqlite://PATH?mode=rwc` or `postgres://...`) and runs
/// the embedded migrations.
pub async fn open(url: &str) -> Result<SeaStore, StoreError> {
    SeaStore::connect(url).await
}
