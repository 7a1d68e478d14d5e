//! The sea-orm implementation of [`Store`], for SQLite and PostgreSQL.
//!
//! Writes run in one transaction per call. On SQLite a write transaction starts with
//! `BEGIN IMMEDIATE`, so concurrent writers queue on the busy timeout instead of failing
//! when they upgrade a read lock; on PostgreSQL batches run at READ COMMITTED and the
//! exclusion constraint makes a racing claim wait for the first one's outcome. Deadlocks,
//! serialization failures and busy errors are retried a few times.

mod apply;
mod convert;
mod entities;
mod error;
mod evidence;
mod lease;
mod lists;
mod metrics;
mod notify;
mod web;

use std::collections::HashMap;
use std::time::Duration;

use berth_migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{
    AccessMode, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IsolationLevel, QueryFilter, QueryOrder,
    QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use self::apply::Failed;
use self::entities::{
    api_token, budget, dataset_grant, device, device_claim, device_class, job, job_log, join_token,
    ledger_entry, node, org, project, project_grant, reservation, scheduler_policy, site,
    usage_record, user,
};
use self::metrics::{Op, StoreMetrics};
use super::types::*;
use super::{
    AuditFilter, JobFilter, Page, Prunable, Pruned, RangeFilter, ReservationFilter, Store,
    StoreError,
};

/// How long a SQLite connection waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections per pool on a SQLite file (WAL lets readers run beside the writer).
const SQLITE_POOL_SIZE: u32 = 4;
/// Connections per pool on PostgreSQL.
const POSTGRES_POOL_SIZE: u32 = 10;
/// How long a PostgreSQL connection may sit idle in the pool before it is pinged when
/// taken out again.
const POSTGRES_PING_IDLE: Duration = Duration::from_secs(5);
/// How long to wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of a write transaction that hits a deadlock, serialization failure or busy
/// database before the error is returned.
const WRITE_ATTEMPTS: u32 = 10;
/// Key of the PostgreSQL advisory lock that serialises migrations of several replicas.
const MIGRATION_LOCK_KEY: i64 = 0x6265_7274_685f_6d67; // "berth_mg"
/// Log chunks per INSERT statement.
const LOG_INSERT_CHUNK: usize = 256;

const FINAL_RESERVATION_STATES: [ReservationState; 3] = [
    ReservationState::Completed,
    ReservationState::Cancelled,
    ReservationState::Reclaimed,
];

const FINAL_JOB_STATES: [JobState; 6] = [
    JobState::Succeeded,
    JobState::Failed,
    JobState::Cancelled,
    JobState::Preempted,
    JobState::TimedOut,
    JobState::Lost,
];

/// The store on SQLite or PostgreSQL through sea-orm.
#[derive(Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
    backend: DbBackend,
    metrics: StoreMetrics,
    /// Set once this scheduler campaigns for leadership: writes then check the lease.
    fence: std::sync::Arc<std::sync::Mutex<lease::Fencing>>,
}

impl std::fmt::Debug for SeaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SeaStore {
    /// Opens the database at `url` (`sqlite://PATH?mode=rwc`, `sqlite::memory:` or
    /// `postgres://...`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<SeaStore, StoreError> {
        let metrics = StoreMetrics::new()
            .map_err(|e| StoreError::Db(format!("creating store metrics: {e}")))?;
        let mut options = ConnectOptions::new(url);
        options.sqlx_logging(false).acquire_timeout(ACQUIRE_TIMEOUT);
        let backend = if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            // An in-memory database is shared between connections through SQLite's shared
            // cache, where a second writer fails at once instead of waiting: use one.
            options.max_connections(if in_memory { 1 } else { SQLITE_POOL_SIZE });
            // A connection to a local file cannot hang up: pinging it on every checkout
            // would only add a round trip to SQLite's worker thread to every transaction.
            options.test_before_acquire(false);
            options.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
                    // Commits stay durable (`synchronous` stays FULL); only the scratch
                    // files a statement keeps to undo itself (a multi-row upsert's
                    // statement journal) and temporary sort tables live in memory
                    // instead of being written to and read back from disk.
                    .pragma("temp_store", "memory")
            });
            DbBackend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            options.max_connections(POSTGRES_POOL_SIZE);
            // Ping only a connection that sat idle long enough for the server or a proxy
            // to have dropped it: a busy one goes straight to work, one round trip sooner.
            options.test_before_acquire_if_idle_for(POSTGRES_PING_IDLE);
            // A transaction whose scheduler went silent (cut off, frozen) must not hold
            // its locks, the lease row's among them, for long: the server ends it.
            options.map_sqlx_postgres_opts(|o| {
                o.options([("idle_in_transaction_session_timeout", "5s")])
            });
            DbBackend::Postgres
        } else {
            return Err(StoreError::Db(
                "unsupported database URL: expected sqlite: or postgres://".to_owned(),
            ));
        };
        let db = open_pool(options).await?;
        let store = SeaStore {
            db,
            backend,
            metrics,
            fence: Default::default(),
        };
        store.metrics.time(Op::Migrate, store.migrate()).await?;
        Ok(store)
    }

    /// The database it runs on.
    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// Registers the store's metrics (`berth_store_operation_seconds`,
    /// `berth_store_errors_total`) on `registry`.
    pub fn register_metrics(
        &self,
        registry: &prometheus::Registry,
    ) -> Result<(), prometheus::Error> {
        self.metrics.register(registry)
    }

    /// Applies pending migrations in one transaction; on PostgreSQL under an advisory
    /// lock, on SQLite under the write lock, so replicas starting together take turns.
    async fn migrate(&self) -> Result<(), StoreError> {
        let txn = self.begin_write().await.map_err(error::db)?;
        let result = async {
            if self.backend == DbBackend::Postgres {
                txn.execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .await?;
            }
            Migrator::up(&txn, None).await
        }
        .await;
        match result {
            Ok(()) => txn.commit().await.map_err(error::db),
            Err(e) => {
                rollback(txn).await;
                Err(StoreError::Db(format!("migrating the database: {e}")))
            }
        }
    }

    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        match self.backend {
            DbBackend::Sqlite => {
                self.db
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..TransactionOptions::default()
                    })
                    .await
            }
            _ => self.db.begin().await,
        }
    }

    /// A transaction that sees one consistent state of the database.
    async fn begin_read(&self) -> Result<DatabaseTransaction, DbErr> {
        match self.backend {
            DbBackend::Postgres => {
                self.db
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
            _ => self.db.begin().await,
        }
    }

    /// Runs a write transaction, retrying transient failures.
    async fn apply_batch(&self, batch: &[&[Mutation]]) -> Result<(), StoreError> {
        let mut attempt = 1;
        loop {
            match self.apply_once(batch).await {
                Ok(()) => return Ok(()),
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Transient(e)) if attempt >= WRITE_ATTEMPTS => return Err(error::db(e)),
                Err(Failed::Transient(e)) => {
                    tracing::debug!(attempt, error = %e, "retrying store batch");
                    backoff(attempt).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn apply_once(&self, group: &[&[Mutation]]) -> Result<(), Failed> {
        let term = self.term()?;
        let txn = self.begin_write().await.map_err(Failed::from_db)?;
        if let Some(term) = &term
            && let Err(e) = lease::check_fence(&txn, term).await
        {
            rollback(txn).await;
            return Err(e);
        }
        match apply::apply_all(&txn, group).await {
            Ok(()) => txn.commit().await.map_err(Failed::from_db),
            Err(e) => {
                rollback(txn).await;
                Err(e)
            }
        }
    }

    async fn append_logs_retrying(
        &self,
        job_id: &str,
        chunks: &[LogRow],
    ) -> Result<i64, StoreError> {
        let mut attempt = 1;
        loop {
            match self.append_logs_once(job_id, chunks).await {
                Ok(seq) => return Ok(seq),
                Err(Failed::Final(e)) => return Err(e),
                Err(Failed::Transient(e)) if attempt >= WRITE_ATTEMPTS => return Err(error::db(e)),
                Err(Failed::Transient(e)) => {
                    tracing::debug!(attempt, error = %e, "retrying log append");
                    backoff(attempt).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn append_logs_once(&self, job_id: &str, chunks: &[LogRow]) -> Result<i64, Failed> {
        let txn = self.begin_write().await.map_err(Failed::from_db)?;
        let result = async {
            for part in chunks.chunks(LOG_INSERT_CHUNK) {
                let models = part.iter().map(|c| {
                    sea_orm::IntoActiveModel::into_active_model(convert::log_model(job_id, c))
                });
                job_log::Entity::insert_many(models)
                    .on_conflict_do_nothing()
                    .exec_without_returning(&txn)
                    .await?;
            }
            max_log_seq(&txn, job_id).await
        }
        .await;
        match result {
            Ok(seq) => {
                txn.commit().await.map_err(Failed::from_db)?;
                Ok(seq)
            }
            Err(e) => {
                rollback(txn).await;
                Err(Failed::from_db(e))
            }
        }
    }
}

async fn rollback(txn: DatabaseTransaction) {
    if let Err(e) = txn.rollback().await {
        // The connection is discarded by the pool if it is broken; nothing else to do.
        tracing::warn!(error = %e, "rolling back a store transaction failed");
    }
}

/// A short pause before retrying a transaction that lost a deadlock or a lock race: up to
/// 5 ms × 2^(attempt-1) (capped at 320 ms), drawn at random so that writers that collided do
/// not retry in lockstep and collide again.
/// Opens the connection pool. The first connections to a fresh SQLite file switch it to
/// WAL, which needs the exclusive lock: when two openers (replicas starting together)
/// both hold the shared lock, SQLite answers one SQLITE_BUSY at once, without waiting in
/// the busy handler (that wait could deadlock), and the statement is to be retried. So a
/// busy open is retried, within the busy timeout.
async fn open_pool(options: ConnectOptions) -> Result<DatabaseConnection, StoreError> {
    let give_up = std::time::Instant::now() + SQLITE_BUSY_TIMEOUT;
    let mut attempt = 1;
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(e)
                if error::classify(&e) == error::Kind::Transient
                    && std::time::Instant::now() < give_up =>
            {
                tracing::debug!(attempt, error = %e, "retrying opening the database");
                backoff(attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(error::db(e)),
        }
    }
}

async fn backoff(attempt: u32) {
    let cap_ms = 5u64 << attempt.saturating_sub(1).min(6);
    let ms = rand::random_range(1..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn max_log_seq<C: ConnectionTrait>(db: &C, job_id: &str) -> Result<i64, DbErr> {
    let seq: Option<i64> = job_log::Entity::find()
        .select_only()
        .column(job_log::Column::Seq)
        .filter(job_log::Column::JobId.eq(job_id))
        .order_by_desc(job_log::Column::Seq)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(seq.unwrap_or(0))
}

fn collect<M, R>(
    models: Vec<M>,
    f: impl Fn(M) -> Result<R, StoreError>,
) -> Result<Vec<R>, StoreError> {
    models.into_iter().map(f).collect()
}

fn final_reservation_states() -> impl Iterator<Item = &'static str> {
    FINAL_RESERVATION_STATES.iter().map(|s| s.as_str())
}

fn final_job_states() -> impl Iterator<Item = &'static str> {
    FINAL_JOB_STATES.iter().map(|s| s.as_str())
}

/// What [`Store::load`] reads, in one transaction.
async fn snapshot<C: ConnectionTrait>(
    db: &C,
    now_ms: i64,
    ledger_since_ms: i64,
    usage_since_ms: i64,
) -> Result<Snapshot, StoreError> {
    let sites = site::Entity::find()
        .order_by_asc(site::Column::Name)
        .all(db)
        .await;
    let sites = sites.map_err(error::db)?;
    let classes = device_class::Entity::find()
        .order_by_asc(device_class::Column::Name)
        .all(db)
        .await;
    let classes = classes.map_err(error::db)?;
    let orgs = org::Entity::find()
        .order_by_asc(org::Column::Name)
        .all(db)
        .await;
    let orgs = orgs.map_err(error::db)?;
    let users = user::Entity::find()
        .order_by_asc(user::Column::Name)
        .all(db)
        .await;
    let users = users.map_err(error::db)?;
    let tokens = api_token::Entity::find()
        .filter(api_token::Column::Revoked.eq(false))
        .filter(api_token::Column::ExpiresMs.gt(now_ms))
        .order_by_asc(api_token::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let join_tokens = join_token::Entity::find()
        .filter(join_token::Column::ExpiresMs.gt(now_ms))
        .filter(sea_orm::sea_query::ExprTrait::lt(
            sea_orm::sea_query::Expr::col(join_token::Column::Uses),
            sea_orm::sea_query::Expr::col(join_token::Column::MaxUses),
        ))
        .order_by_asc(join_token::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let nodes = node::Entity::find()
        .order_by_asc(node::Column::Name)
        .all(db)
        .await;
    let nodes = nodes.map_err(error::db)?;
    let devices = device::Entity::find()
        .order_by_asc(device::Column::Node)
        .order_by_asc(device::Column::DeviceIndex)
        .order_by_asc(device::Column::Uuid)
        .all(db)
        .await
        .map_err(error::db)?;
    let reservations = reservation::Entity::find()
        .filter(reservation::Column::State.is_not_in(final_reservation_states()))
        .order_by_asc(reservation::Column::CreatedMs)
        .order_by_asc(reservation::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let jobs = job::Entity::find()
        .filter(job::Column::State.is_not_in(final_job_states()))
        .order_by_asc(job::Column::CreatedMs)
        .order_by_asc(job::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let claims = device_claim::Entity::find()
        .filter(device_claim::Column::EndMs.gt(now_ms))
        .order_by_asc(device_claim::Column::DeviceUuid)
        .order_by_asc(device_claim::Column::StartMs)
        .all(db)
        .await
        .map_err(error::db)?;
    let budgets = budget::Entity::find()
        .order_by_asc(budget::Column::Org)
        .order_by_asc(budget::Column::Class)
        .all(db)
        .await
        .map_err(error::db)?;
    // Recent periods' entries, and every entry of a project (its grant spans its whole
    // period, however long ago that started).
    let ledger = ledger_entry::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(ledger_entry::Column::PeriodStartMs.gte(ledger_since_ms))
                .add(ledger_entry::Column::ProjectId.is_not_null()),
        )
        .order_by_asc(ledger_entry::Column::TimeMs)
        .order_by_asc(ledger_entry::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let recent_usage = usage_record::Entity::find()
        .filter(usage_record::Column::EndMs.gte(usage_since_ms))
        .order_by_asc(usage_record::Column::StartMs)
        .order_by_asc(usage_record::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let projects = project::Entity::find()
        .order_by_asc(project::Column::CreatedMs)
        .order_by_asc(project::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let mut grants: HashMap<String, Vec<project_grant::Model>> = HashMap::new();
    for g in project_grant::Entity::find()
        .all(db)
        .await
        .map_err(error::db)?
    {
        grants.entry(g.project_id.clone()).or_default().push(g);
    }
    let projects = projects
        .into_iter()
        .map(|p| {
            let g = grants.remove(&p.id).unwrap_or_default();
            convert::project_row(p, g)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prices = entities::price::Entity::find()
        .order_by_asc(entities::price::Column::Class)
        .all(db)
        .await
        .map_err(error::db)?;
    let discounts = entities::discount::Entity::find()
        .order_by_asc(entities::discount::Column::Org)
        .all(db)
        .await
        .map_err(error::db)?;
    let invoices = entities::invoice::Entity::find()
        .order_by_asc(entities::invoice::Column::CreatedMs)
        .order_by_asc(entities::invoice::Column::Id)
        .all(db)
        .await
        .map_err(error::db)?;
    let policy = scheduler_policy::Entity::find_by_id(scheduler_policy::ROW_ID)
        .one(db)
        .await
        .map_err(error::db)?;
    let (subscriptions, webhooks) = notify::load(db).await.map_err(error::db)?;
    Ok(Snapshot {
        sites: sites.into_iter().map(convert::site_row).collect(),
        classes: classes.into_iter().map(convert::class_row).collect(),
        orgs: collect(orgs, convert::org_row)?,
        users: collect(users, convert::user_row)?,
        tokens: tokens.into_iter().map(convert::token_row).collect(),
        join_tokens: join_tokens
            .into_iter()
            .map(convert::join_token_row)
            .collect(),
        nodes: collect(nodes, convert::node_row)?,
        devices: collect(devices, convert::device_row)?,
        reservations: collect(reservations, convert::reservation_row)?,
        jobs: collect(jobs, convert::job_row)?,
        claims: collect(claims, convert::claim_row)?,
        budgets: budgets.into_iter().map(convert::budget_row).collect(),
        ledger: collect(ledger, convert::ledger_row)?,
        recent_usage: collect(recent_usage, convert::usage_row)?,
        policy: policy.map(convert::policy_row),
        dataset_grants: dataset_grant::Entity::find()
            .order_by_asc(dataset_grant::Column::Org)
            .order_by_asc(dataset_grant::Column::Name)
            .all(db)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(convert::dataset_grant_row)
            .collect(),
        projects,
        prices: prices.into_iter().map(convert::price_row).collect(),
        discounts: discounts.into_iter().map(convert::discount_row).collect(),
        invoices: collect(invoices, convert::invoice_row)?,
        subscriptions,
        webhooks,
    })
}

#[async_trait::async_trait]
impl Store for SeaStore {
    async fn apply_group(&self, group: &[&[Mutation]]) -> Result<(), StoreError> {
        if group.iter().all(|b| b.is_empty()) {
            return Ok(());
        }
        self.metrics.time(Op::Apply, self.apply_batch(group)).await
    }

    async fn load(
        &self,
        now_ms: i64,
        ledger_since_ms: i64,
        usage_since_ms: i64,
    ) -> Result<Snapshot, StoreError> {
        self.metrics
            .time(Op::Load, async {
                let txn = self.begin_read().await.map_err(error::db)?;
                let result = snapshot(&txn, now_ms, ledger_since_ms, usage_since_ms).await;
                // Read-only: nothing to keep, so always end it with a rollback.
                rollback(txn).await;
                result
            })
            .await
    }

    async fn list_reservations(
        &self,
        filter: &ReservationFilter,
        page: &Page,
    ) -> Result<Vec<ReservationRow>, StoreError> {
        self.metrics
            .time(Op::ListReservations, self.page_reservations(filter, page))
            .await
    }

    async fn get_reservation(&self, id: &str) -> Result<Option<ReservationRow>, StoreError> {
        self.metrics
            .time(Op::GetReservation, async {
                let model = reservation::Entity::find_by_id(id.to_owned())
                    .one(&self.db)
                    .await
                    .map_err(error::db)?;
                model.map(convert::reservation_row).transpose()
            })
            .await
    }

    async fn list_jobs(&self, filter: &JobFilter, page: &Page) -> Result<Vec<JobRow>, StoreError> {
        self.metrics
            .time(Op::ListJobs, self.page_jobs(filter, page))
            .await
    }

    async fn get_job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        self.metrics
            .time(Op::GetJob, async {
                let model = job::Entity::find_by_id(id.to_owned())
                    .one(&self.db)
                    .await
                    .map_err(error::db)?;
                model.map(convert::job_row).transpose()
            })
            .await
    }

    async fn list_users(&self, org: Option<&str>) -> Result<Vec<UserRow>, StoreError> {
        self.metrics
            .time(Op::ListUsers, async {
                let mut query = user::Entity::find();
                if let Some(org) = org {
                    query = query.filter(user::Column::Org.eq(org));
                }
                let models = query
                    .order_by_desc(user::Column::CreatedMs)
                    .order_by_desc(user::Column::Id)
                    .all(&self.db)
                    .await
                    .map_err(error::db)?;
                collect(models, convert::user_row)
            })
            .await
    }

    async fn list_usage(
        &self,
        filter: &RangeFilter,
        page: &Page,
    ) -> Result<Vec<(i64, UsageRow)>, StoreError> {
        self.metrics
            .time(Op::ListUsage, self.page_usage(filter, page))
            .await
    }

    async fn usage_totals(
        &self,
        filter: &RangeFilter,
    ) -> Result<Vec<(String, String, OwnerKind, i64)>, StoreError> {
        self.metrics
            .time(Op::ListUsage, self.sum_usage(filter))
            .await
    }

    async fn list_ledger(
        &self,
        filter: &RangeFilter,
        page: &Page,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        self.metrics
            .time(Op::ListLedger, self.page_ledger(filter, page))
            .await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<Vec<(i64, AuditRow)>, StoreError> {
        self.metrics
            .time(Op::ListAudit, self.page_audit(filter, page))
            .await
    }

    async fn prune(
        &self,
        what: Prunable,
        before_ms: i64,
        limit: u32,
    ) -> Result<Pruned, StoreError> {
        self.metrics
            .time(Op::Prune, self.prune_batch(what, before_ms, limit))
            .await
    }

    async fn list_tokens(
        &self,
        node: Option<&str>,
        users: Option<&[String]>,
        all: bool,
        now_ms: i64,
    ) -> Result<Vec<TokenRow>, StoreError> {
        self.metrics
            .time(Op::ListUsers, async {
                let mut q = api_token::Entity::find();
                if let Some(n) = node {
                    q = q.filter(api_token::Column::Node.eq(n));
                }
                if let Some(ids) = users {
                    q = q.filter(api_token::Column::UserId.is_in(ids.iter().map(String::as_str)));
                }
                if !all {
                    q = q
                        .filter(api_token::Column::Revoked.eq(false))
                        .filter(api_token::Column::ExpiresMs.gt(now_ms));
                }
                let rows = q
                    .order_by_desc(api_token::Column::CreatedMs)
                    .order_by_desc(api_token::Column::Id)
                    .limit(10_000)
                    .all(&self.db)
                    .await
                    .map_err(error::db)?;
                Ok(rows.into_iter().map(convert::token_row).collect())
            })
            .await
    }

    async fn load_auth(&self, now_ms: i64) -> Result<(Vec<UserRow>, Vec<TokenRow>), StoreError> {
        self.metrics
            .time(Op::Load, async {
                let users = user::Entity::find()
                    .order_by_asc(user::Column::Name)
                    .all(&self.db)
                    .await
                    .map_err(error::db)?;
                let tokens = api_token::Entity::find()
                    .filter(api_token::Column::Revoked.eq(false))
                    .filter(api_token::Column::ExpiresMs.gt(now_ms))
                    .order_by_asc(api_token::Column::Id)
                    .all(&self.db)
                    .await
                    .map_err(error::db)?;
                Ok((
                    collect(users, convert::user_row)?,
                    tokens.into_iter().map(convert::token_row).collect(),
                ))
            })
            .await
    }

    async fn get_web_session(&self, id: &str) -> Result<Option<WebSessionRow>, StoreError> {
        self.metrics
            .time(Op::GetWebSession, async {
                web::session(&self.db, id).await.map_err(error::db)
            })
            .await
    }

    async fn get_web_login(&self, id: &str) -> Result<Option<WebLoginRow>, StoreError> {
        self.metrics
            .time(Op::GetWebLogin, async {
                web::login(&self.db, id).await.map_err(error::db)
            })
            .await
    }

    async fn list_notifications(
        &self,
        filter: &NotificationFilter,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        self.metrics
            .time(Op::ListNotifications, async {
                notify::list(&self.db, filter, limit)
                    .await
                    .map_err(error::db)
            })
            .await
    }

    async fn due_notifications(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        self.metrics
            .time(Op::DueNotifications, async {
                notify::due(&self.db, now_ms, limit)
                    .await
                    .map_err(error::db)
            })
            .await
    }

    async fn get_user_settings(
        &self,
        user_id: &str,
    ) -> Result<Option<UserSettingsRow>, StoreError> {
        self.metrics
            .time(Op::GetUserSettings, async {
                web::settings(&self.db, user_id).await.map_err(error::db)
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.metrics
            .time(Op::Ping, async {
                self.db
                    .execute_unprepared("SELECT 1")
                    .await
                    .map(|_| ())
                    .map_err(error::db)
            })
            .await
    }

    async fn list_claims(&self, after_ms: i64) -> Result<Vec<ClaimRow>, StoreError> {
        self.metrics
            .time(Op::ListClaims, async {
                let models = device_claim::Entity::find()
                    .filter(device_claim::Column::EndMs.gt(after_ms))
                    .order_by_asc(device_claim::Column::DeviceUuid)
                    .order_by_asc(device_claim::Column::StartMs)
                    .all(&self.db)
                    .await
                    .map_err(error::db)?;
                collect(models, convert::claim_row)
            })
            .await
    }

    async fn append_logs(&self, job_id: &str, chunks: Vec<LogRow>) -> Result<i64, StoreError> {
        self.metrics
            .time(Op::AppendLogs, async {
                if chunks.is_empty() {
                    return max_log_seq(&self.db, job_id).await.map_err(error::db);
                }
                self.append_logs_retrying(job_id, &chunks).await
            })
            .await
    }

    async fn read_logs(
        &self,
        job_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogRow>, StoreError> {
        self.metrics
            .time(Op::ReadLogs, async {
                let models = job_log::Entity::find()
                    .filter(job_log::Column::JobId.eq(job_id))
                    .filter(job_log::Column::Seq.gt(after_seq))
                    .order_by_asc(job_log::Column::Seq)
                    .limit(u64::from(limit))
                    .all(&self.db)
                    .await
                    .map_err(error::db)?;
                Ok(models.into_iter().map(convert::log_row).collect())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_state_lists_match_is_final() {
        for s in [
            "requested",
            "confirmed",
            "active",
            "completed",
            "cancelled",
            "reclaimed",
        ] {
            let state = ReservationState::parse(s).expect("known state");
            assert_eq!(
                state.is_final(),
                FINAL_RESERVATION_STATES.contains(&state),
                "{s}"
            );
        }
        for s in [
            "pending",
            "scheduled",
            "starting",
            "running",
            "succeeded",
            "failed",
            "cancelled",
            "preempted",
            "timed-out",
            "lost",
        ] {
            let state = JobState::parse(s).expect("known state");
            assert_eq!(state.is_final(), FINAL_JOB_STATES.contains(&state), "{s}");
        }
    }
}
