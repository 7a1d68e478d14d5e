//! Durable state, behind one small trait with one sea-orm implementation that runs on
//! SQLite (embedded default) and PostgreSQL.
//!
//! Writes go through [`Store::apply`]: a batch of [`Mutation`]s committed in one
//! transaction, so the scheduler acknowledges nothing it has not committed.
//! On PostgreSQL an exclusion constraint over (device, time range) and on SQLite a
//! trigger refuse overlapping device claims in the schema itself.

mod sea;
pub mod types;

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
        /// What exists, e.g. `org "acme"`.
        what: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Db(String),
}

/// Filter for listings scoped to a tenant.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this org; `None` for all (admins).
    pub org: Option<String>,
    /// Include finished objects.
    pub include_finished: bool,
}

/// Durable state of the scheduler.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies a batch of mutations in one transaction.
    async fn apply(&self, batch: Vec<Mutation>) -> Result<(), StoreError>;
    /// Loads what the scheduler keeps in memory: live objects as of `now_ms`, ledger
    /// entries of periods starting at or after `ledger_since_ms`, and usage records ending
    /// at or after `usage_since_ms`.
    async fn load(
        &self,
        now_ms: i64,
        ledger_since_ms: i64,
        usage_since_ms: i64,
    ) -> Result<Snapshot, StoreError>;
    /// Reservations, newest first.
    async fn list_reservations(&self, scope: &Scope) -> Result<Vec<ReservationRow>, StoreError>;
    /// One reservation.
    async fn get_reservation(&self, id: &str) -> Result<Option<ReservationRow>, StoreError>;
    /// Jobs, newest first.
    async fn list_jobs(&self, scope: &Scope) -> Result<Vec<JobRow>, StoreError>;
    /// One job.
    async fn get_job(&self, id: &str) -> Result<Option<JobRow>, StoreError>;
    /// Users, optionally of one org.
    async fn list_users(&self, org: Option<&str>) -> Result<Vec<UserRow>, StoreError>;
    /// Usage records overlapping [from, to), optionally of one org, oldest first.
    async fn list_usage(
        &self,
        org: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageRow>, StoreError>;
    /// Ledger entries with `from_ms <= time < to_ms`, optionally of one org, oldest first.
    async fn list_ledger(
        &self,
        org: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<LedgerRow>, StoreError>;
    /// The newest audit events, newest first.
    async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError>;
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

/// Opens the store at `url` (`sqlite://PATH?mode=rwc` or `postgres://...`) and runs
/// the embedded migrations.
pub async fn open(url: &str) -> Result<SeaStore, StoreError> {
    SeaStore::connect(url).await
}
