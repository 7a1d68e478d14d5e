//! The storage test suite, generic over the backend: every test runs on SQLite (a
//! temporary file) and on PostgreSQL (a fresh database per test).
//!
//! PostgreSQL comes from `BERTH_TEST_POSTGRES_URL` (for example
//! `postgres://berth:berth@127.0.0.1:5432/berth_test`); the role needs CREATEDB. Each
//! test creates `berth_test_<random>` next to the named database and drops it at the
//! end, so tests run in parallel. Without the variable the PostgreSQL tests fail, saying
//! how to provide one: a test never passes by skipping what it needs.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use berth_migrations::{Migrator, MigratorTrait};
use berth_proto::model::Role;
use berth_scheduler::store::*;
use futures::FutureExt;
use sea_orm::sea_query::{Alias, Query};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait,
};
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

const POSTGRES_URL_VAR: &str = "BERTH_TEST_POSTGRES_URL";

/// The unpaged listings the older tests were written against, over the paged API: every
/// page, in order, through the real page cursors.
#[derive(Debug, Clone, Default)]
struct Scope {
    org: Option<String>,
    include_finished: bool,
}

/// Small pages, so these helpers walk several of them.
const WALK_PAGE: u32 = 2;

trait Unpaged {
    async fn all_jobs(&self, scope: &Scope) -> Result<Vec<JobRow>, StoreError>;
    async fn all_reservations(&self, scope: &Scope) -> Result<Vec<ReservationRow>, StoreError>;
    async fn all_usage(
        &self,
        org: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsageRow>, StoreError>;
    async fn all_ledger(
        &self,
        org: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<LedgerRow>, StoreError>;
    async fn audit_first(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError>;
}

impl<S: Store> Unpaged for S {
    async fn all_jobs(&self, scope: &Scope) -> Result<Vec<JobRow>, StoreError> {
        let filter = JobFilter {
            org: scope.org.clone(),
            include_finished: scope.include_finished,
            ..JobFilter::default()
        };
        let mut out: Vec<JobRow> = Vec::new();
        loop {
            let after = out.last().map(|j| Cursor {
                key: j.created_ms,
                id: j.id.clone(),
            });
            let page = self
                .list_jobs(
                    &filter,
                    &Page {
                        after,
                        limit: WALK_PAGE,
                    },
                )
                .await?;
            let n = page.len();
            out.extend(page);
            if n < WALK_PAGE as usize {
                return Ok(out);
            }
        }
    }

    async fn all_reservations(&self, scope: &Scope) -> Result<Vec<ReservationRow>, StoreError> {
        let filter = ReservationFilter {
            org: scope.org.clone(),
            include_finished: scope.include_finished,
            ..ReservationFilter::default()
        };
        let mut out: Vec<ReservationRow> = Vec::new();
        loop {
            let after = out.last().map(|r| Cursor {
                key: r.created_ms,
                id: r.id.clone(),
            });
            let page = self
                .list_reservations(
                    &filter,
                    &Page {
                        after,
                        limit: WALK_PAGE,
                    },
                )
                .await?;
            let n = page.len();
            out.extend(page);
            if n < WALK_PAGE as usize {
                return Ok(out);
            }
        }
    }

    async fn all_usage(
        &self,
        org: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let filter = RangeFilter {
            org: org.map(str::to_owned),
            from_ms,
            to_ms,
            class: None,
        };
        let mut out: Vec<(i64, UsageRow)> = Vec::new();
        loop {
            let after = out.last().map(|(id, u)| Cursor {
                key: u.start_ms,
                id: id.to_string(),
            });
            let page = self
                .list_usage(
                    &filter,
                    &Page {
                        after,
                        limit: WALK_PAGE,
                    },
                )
                .await?;
            let n = page.len();
            out.extend(page);
            if n < WALK_PAGE as usize {
                return Ok(out.into_iter().map(|(_, u)| u).collect());
            }
        }
    }

    async fn all_ledger(
        &self,
        org: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let filter = RangeFilter {
            org: org.map(str::to_owned),
            from_ms,
            to_ms,
            class: None,
        };
        let mut out: Vec<LedgerRow> = Vec::new();
        loop {
            let after = out.last().map(|e| Cursor {
                key: e.time_ms,
                id: e.id.clone(),
            });
            let page = self
                .list_ledger(
                    &filter,
                    &Page {
                        after,
                        limit: WALK_PAGE,
                    },
                )
                .await?;
            let n = page.len();
            out.extend(page);
            if n < WALK_PAGE as usize {
                return Ok(out);
            }
        }
    }

    async fn audit_first(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let rows = self
            .list_audit(&AuditFilter::default(), &Page::first(limit))
            .await?;
        Ok(rows.into_iter().map(|(_, a)| a).collect())
    }
}

/// One test's database: open as many store handles on it as the test needs.
#[derive(Clone)]
struct TestDb {
    url: String,
}

impl TestDb {
    async fn open(&self) -> SeaStore {
        match SeaStore::connect(&self.url).await {
            Ok(store) => store,
            Err(e) => panic!("opening the test store: {e}"),
        }
    }

    /// A plain connection, outside the store (no migrations run).
    async fn raw(&self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.url.clone());
        options.max_connections(1).sqlx_logging(false);
        if self.url.starts_with("sqlite:") {
            options.map_sqlx_sqlite_opts(|o| o.foreign_keys(true));
        }
        Database::connect(options)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
    }
}

/// `SELECT COUNT(*)` of `table`.
async fn count_rows(db: &DatabaseConnection, table: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .unwrap_or_else(|e| panic!("counting {table}: {e}"))
        .unwrap_or_else(|| panic!("counting {table}: no row"));
    row.try_get_by_index::<i64>(0)
        .unwrap_or_else(|e| panic!("counting {table}: {e}"))
}

/// Runs `test` on a fresh SQLite file.
async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("berth.db");
    let db = TestDb {
        url: format!("sqlite://{}?mode=rwc", path.display()),
    };
    test(db).await;
}

/// Runs `test` on a fresh PostgreSQL database, dropped afterwards even if the test fails.
async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(base) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|s| !s.is_empty())
    else {
        // A test that needs PostgreSQL fails without it: it never passes by skipping.
        panic!(
            "{POSTGRES_URL_VAR} is not set: the storage suite runs on PostgreSQL too. Run \
             `make test` (which starts Debian's PostgreSQL), or `eval \"$(scripts/postgres.sh)\"` \
             first, or point {POSTGRES_URL_VAR} at a database whose role may CREATEDB \
             (e.g. postgres://berth:berth@127.0.0.1:5432/berth_test)"
        );
    };
    let name = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
    let mut options = ConnectOptions::new(base.clone());
    options.max_connections(1).sqlx_logging(false);
    let admin = Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}: {e}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));

    let db = TestDb {
        url: with_database(&base, &name),
    };
    let outcome = AssertUnwindSafe(test(db)).catch_unwind().await;

    let dropped = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    let _ = admin.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    if let Err(e) = dropped {
        panic!("dropping database {name}: {e}");
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Declares each test once per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! storage_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run_sqlite(super::$name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run_postgres(super::$name).await;
                }
            )+
        }
    };
}

storage_tests!(
    every_mutation_round_trips,
    upserts_update_in_place,
    tokens_revoked_or_expired_are_not_loaded,
    batch_is_all_or_nothing,
    overlapping_claims_are_refused,
    truncate_and_delete_claims,
    concurrent_bookings_have_exactly_one_winner,
    concurrent_disjoint_bookings_all_succeed,
    unique_names_already_exist,
    foreign_keys_are_enforced,
    logs_dedupe_and_order,
    usage_range_filter,
    scope_filters_org_and_finished,
    audit_is_newest_first,
    a_group_writes_runs_of_jobs_at_once_and_keeps_every_outcome,
    a_group_writes_runs_of_devices_at_once_and_keeps_every_outcome,
    a_group_writes_runs_of_bookings_at_once_or_none_of_them,
    reopening_keeps_data,
    replicas_starting_together_migrate_once,
    metrics_time_every_operation,
    budgets_upsert_replace_and_delete,
    ledger_filters_by_org_time_and_period,
    recent_usage_is_filtered_by_end,
    policy_is_one_row,
    billing_rows_upsert_update_delete_and_load,
    updates_of_unknown_rows_fail_the_batch,
    old_database_migrates_forward,
    pages_walk_every_row_once_with_filters,
    retention_prunes_only_what_is_old_in_small_batches,
    join_tokens_join_no_more_than_they_may,
    projects_round_trip_with_their_grants_and_ledger,
    notifications_outbox_dedupes_lists_and_records,
    no_index_only_repeats_the_start_of_another,
);

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn site(name: &str) -> SiteRow {
    SiteRow {
        name: name.to_owned(),
        description: format!("site {name}"),
        created_ms: 1_000,
    }
}

fn class(name: &str) -> ClassRow {
    ClassRow {
        name: name.to_owned(),
        description: "80 GB".to_owned(),
        vendor: "nvidia".to_owned(),
        created_ms: 1_001,
        rate: 2.5,
    }
}

fn org(name: &str) -> OrgRow {
    OrgRow {
        name: name.to_owned(),
        description: format!("org {name}"),
        created_ms: 1_002,
        weight: 3.0,
        overage: Default::default(),
    }
}

fn user(id: &str, name: &str, org: &str, created_ms: i64) -> UserRow {
    UserRow {
        id: id.to_owned(),
        name: name.to_owned(),
        org: org.to_owned(),
        role: Role::OrgAdmin,
        created_ms,
        default_project: None,
    }
}

fn token(id: &str, expires_ms: i64) -> TokenRow {
    TokenRow {
        id: id.to_owned(),
        user_id: Some("u-alice".to_owned()),
        node: None,
        hash: format!("hash-{id}"),
        created_ms: 1_000,
        expires_ms,
        revoked: false,
    }
}

fn node(name: &str) -> NodeRow {
    NodeRow {
        name: name.to_owned(),
        site: "busan".to_owned(),
        state: NodeState::Ready,
        hostname: format!("{name}.local"),
        agent_version: "0.1.0".to_owned(),
        runtime: "docker".to_owned(),
        last_heartbeat_ms: Some(5_000),
        generation: 3,
        created_ms: 1_003,
        rejoin_until_ms: Some(9_000),
    }
}

fn device(uuid: &str, node: &str, index: i32) -> DeviceRow {
    DeviceRow {
        uuid: uuid.to_owned(),
        node: node.to_owned(),
        class: "h100".to_owned(),
        vendor: "nvidia".to_owned(),
        model: "NVIDIA H100 80GB HBM3".to_owned(),
        memory_bytes: 85_899_345_920,
        pci_bus_id: format!("0000:{index:02x}:00.0"),
        index,
        health: Health::Healthy,
        health_reason: String::new(),
        updated_ms: 5_000,
    }
}

fn reservation(id: &str, org: &str, state: ReservationState, created_ms: i64) -> ReservationRow {
    ReservationRow {
        id: id.to_owned(),
        org: org.to_owned(),
        user_id: "u-alice".to_owned(),
        user_name: "alice".to_owned(),
        class: "h100".to_owned(),
        count: 2,
        site: Some("busan".to_owned()),
        start_ms: 10_000,
        end_ms: 20_000,
        state,
        reason: String::new(),
        devices: vec!["GPU-a".to_owned(), "GPU-b".to_owned()],
        created_ms,
        charge: Charge::default(),
        idle_since_ms: None,
        idle_warned_ms: None,
        project: None,
    }
}

fn job(id: &str, org: &str, state: JobState, created_ms: i64) -> JobRow {
    JobRow {
        id: id.to_owned(),
        name: format!("train-{id}"),
        org: org.to_owned(),
        user_id: "u-alice".to_owned(),
        user_name: "alice".to_owned(),
        class: "h100".to_owned(),
        count: 1,
        image: "pytorch/pytorch:2.5".to_owned(),
        command: vec![
            "python".to_owned(),
            "train.py".to_owned(),
            "--epochs=3".to_owned(),
        ],
        env: BTreeMap::from([
            ("HF_HOME".to_owned(), "/scratch/hf".to_owned()),
            ("QUOTE".to_owned(), "a \"quoted\" value, ünïcode".to_owned()),
        ]),
        datasets: vec![("imagenet".to_owned(), false), ("ckpt".to_owned(), true)],
        network: "none".to_owned(),
        max_runtime_ms: 3_600_000,
        reservation_id: None,
        state,
        reason: String::new(),
        node: None,
        devices: Vec::new(),
        exit_code: None,
        created_ms,
        started_ms: None,
        finished_ms: None,
        deadline_ms: None,
        generation: 0,
        priority: 0,
        preemptible: false,
        nodes: 1,
        charge: Charge::default(),
        requeued_from: None,
        stop: None,
        project: None,
        evidence: None,
    }
}

fn claim(device: &str, owner: &str, start_ms: i64, end_ms: i64) -> ClaimRow {
    ClaimRow {
        device_uuid: device.to_owned(),
        owner_kind: if owner.starts_with('j') {
            OwnerKind::Job
        } else {
            OwnerKind::Reservation
        },
        owner_id: owner.to_owned(),
        start_ms,
        end_ms,
    }
}

fn usage(org: &str, subject: &str, start_ms: i64, end_ms: i64) -> UsageRow {
    UsageRow {
        org: org.to_owned(),
        user_id: "u-alice".to_owned(),
        kind: OwnerKind::Job,
        subject_id: subject.to_owned(),
        class: "h100".to_owned(),
        devices: 2,
        start_ms,
        end_ms,
        device_ms: 2 * (end_ms - start_ms),
        evidence: None,
    }
}

fn budget(org: &str, class: &str) -> BudgetRow {
    BudgetRow {
        org: org.to_owned(),
        class: class.to_owned(),
        period: "week".to_owned(),
        allowance_ms: Some(100 * 3_600_000),
        max_devices: Some(8),
        max_booking_ms: Some(24 * 3_600_000),
        horizon_ms: Some(14 * 24 * 3_600_000),
        expires_ms: None,
        updated_ms: 1_500,
    }
}

fn ledger(id: &str, org: &str, time_ms: i64, period_start_ms: i64) -> LedgerRow {
    LedgerRow {
        id: id.to_owned(),
        org: org.to_owned(),
        budget_class: "h100".to_owned(),
        time_ms,
        kind: LedgerKind::Charge,
        amount_ms: 50_000,
        period_start_ms,
        subject_kind: Some(OwnerKind::Reservation),
        subject_id: "r-1".to_owned(),
        device_class: "h100".to_owned(),
        device_ms: 20_000,
        note: String::new(),
        project_id: None,
    }
}

fn audit(time_ms: i64, action: &str) -> AuditRow {
    AuditRow {
        time_ms,
        actor: "admin".to_owned(),
        action: action.to_owned(),
        target: "org/acme".to_owned(),
        outcome: "ok".to_owned(),
    }
}

/// Sites, classes, an org with a user, and one node with four devices.
fn base() -> Vec<Mutation> {
    vec![
        Mutation::InsertSite(site("busan")),
        Mutation::InsertClass(class("h100")),
        Mutation::InsertOrg(org("acme")),
        Mutation::InsertUser(user("u-alice", "alice", "acme", 1_010)),
        Mutation::UpsertNode(node("n1")),
        Mutation::UpsertDevice(device("GPU-a", "n1", 0)),
        Mutation::UpsertDevice(device("GPU-b", "n1", 1)),
        Mutation::UpsertDevice(device("GPU-c", "n1", 2)),
        Mutation::UpsertDevice(device("GPU-d", "n1", 3)),
    ]
}

async fn apply(store: &SeaStore, batch: Vec<Mutation>) {
    if let Err(e) = store.apply(batch).await {
        panic!("apply failed: {e}");
    }
}

fn expect_conflict(result: Result<(), StoreError>, device: &str) {
    match result {
        Err(StoreError::Conflict(message)) => {
            assert!(
                message.contains(device),
                "conflict {message:?} should name {device}"
            )
        }
        other => panic!("expected a conflict on {device}, got {other:?}"),
    }
}

fn ids<T>(rows: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|r| id(r).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

async fn every_mutation_round_trips(db: TestDb) {
    let store = db.open().await;
    let empty = store.load(0, 0, 0).await.expect("load");
    assert!(empty.sites.is_empty() && empty.claims.is_empty() && empty.jobs.is_empty());
    assert!(empty.budgets.is_empty() && empty.ledger.is_empty());
    assert!(empty.recent_usage.is_empty() && empty.policy.is_none());

    let node_token = TokenRow {
        id: "t-node".to_owned(),
        user_id: None,
        node: Some("n1".to_owned()),
        hash: "hash-node".to_owned(),
        created_ms: 1_000,
        expires_ms: i64::MAX,
        revoked: false,
    };
    let join = JoinTokenRow {
        id: "jt-1".to_owned(),
        hash: "hash-join".to_owned(),
        created_by: "admin".to_owned(),
        created_ms: 1_000,
        expires_ms: 100_000,
        node: Some("n1".to_owned()),
        used_ms: None,
        max_uses: 1,
        uses: 0,
    };
    let mut res = reservation("r-1", "acme", ReservationState::Confirmed, 2_000);
    res.site = None;
    res.charge = Charge {
        budget_class: ANY_CLASS.to_owned(),
        period_start_ms: 604_800_000,
        amount_ms: 50_000,
        project: None,
    };
    res.idle_since_ms = Some(12_000);
    res.idle_warned_ms = Some(13_000);
    let mut running = job("j-1", "acme", JobState::Running, 3_000);
    running.priority = 7;
    running.preemptible = true;
    running.nodes = 2;
    running.charge = Charge {
        budget_class: "h100".to_owned(),
        period_start_ms: 604_800_000,
        amount_ms: 9_500,
        project: None,
    };
    running.requeued_from = Some("j-0".to_owned());
    running.reservation_id = Some("r-1".to_owned());
    running.node = Some("n1".to_owned());
    running.devices = vec!["GPU-a".to_owned()];
    running.started_ms = Some(10_500);
    running.deadline_ms = Some(20_000);
    running.generation = 7;
    let mut failed = job("j-2", "acme", JobState::Failed, 3_001);
    failed.exit_code = Some(-9);
    failed.finished_ms = Some(11_000);
    failed.reason = "OOM killed".to_owned();
    failed.env = BTreeMap::new();
    failed.command = Vec::new();
    failed.priority = -3;
    let claims = vec![
        claim("GPU-a", "r-1", 10_000, 20_000),
        claim("GPU-b", "r-1", 10_000, 20_000),
        claim("GPU-c", "j-3", 1_000, 2_000),
    ];

    let mut batch = base();
    batch.extend([
        Mutation::InsertToken(token("t-alice", i64::MAX)),
        Mutation::InsertToken(node_token.clone()),
        Mutation::InsertJoinToken(join.clone()),
        Mutation::UpsertReservation(res.clone().into()),
        Mutation::UpsertJob(running.clone().into()),
        Mutation::UpsertJob(failed.clone().into()),
        Mutation::InsertClaims(claims.clone()),
        Mutation::InsertUsage(usage("acme", "j-0", 100, 200)),
        Mutation::Audit(audit(9_000, "org.create")),
    ]);
    apply(&store, batch).await;

    // Budgets, the ledger, the policy and updates of orgs and classes.
    let mut any = budget("acme", ANY_CLASS);
    any.period = "month".to_owned();
    any.allowance_ms = None;
    any.max_devices = None;
    any.max_booking_ms = None;
    any.horizon_ms = None;
    any.expires_ms = Some(i64::MAX);
    let h100 = budget("acme", "h100");
    let charge = ledger("l-1", "acme", 2_000, 604_800_000);
    let refund = LedgerRow {
        kind: LedgerKind::Refund,
        amount_ms: 1,
        note: "cancelled early; \"quoted\", ünïcode".to_owned(),
        subject_kind: Some(OwnerKind::Job),
        subject_id: "j-1".to_owned(),
        ..ledger("l-2", "acme", 2_500, 604_800_000)
    };
    let top_up = LedgerRow {
        kind: LedgerKind::TopUp,
        budget_class: ANY_CLASS.to_owned(),
        subject_kind: None,
        subject_id: String::new(),
        device_class: String::new(),
        device_ms: 0,
        ..ledger("l-3", "acme", 2_500, 604_800_000)
    };
    let policy = PolicyRow {
        json: r#"{"fair_share":{"half_life_ms":604800000},"preemption":true}"#.to_owned(),
        updated_ms: 4_000,
    };
    let acme = OrgRow {
        description: "Acme, now bigger".to_owned(),
        weight: 0.25,
        // Not updated: the stored creation time stays.
        created_ms: 99,
        ..org("acme")
    };
    let h100_class = ClassRow {
        description: "H100 SXM 80 GB".to_owned(),
        vendor: "NVIDIA".to_owned(),
        rate: 1.75,
        created_ms: 99,
        ..class("h100")
    };
    apply(
        &store,
        vec![
            Mutation::UpsertBudget(h100.clone()),
            Mutation::UpsertBudget(any.clone()),
            Mutation::InsertLedger(vec![top_up.clone(), refund.clone(), charge.clone()]),
            Mutation::InsertLedger(Vec::new()),
            Mutation::SetPolicy(policy.clone()),
            Mutation::UpdateOrg(acme.clone()),
            Mutation::UpdateClass(h100_class.clone()),
        ],
    )
    .await;

    let snap = store.load(5_000, 0, 0).await.expect("load");
    assert_eq!(snap.sites, vec![site("busan")]);
    assert_eq!(
        snap.classes,
        vec![ClassRow {
            created_ms: 1_001,
            ..h100_class
        }]
    );
    assert_eq!(
        snap.orgs,
        vec![OrgRow {
            created_ms: 1_002,
            ..acme
        }]
    );
    // Budgets by (org, class): "*" sorts before letters.
    assert_eq!(snap.budgets, vec![any, h100]);
    // Ledger by time, then id.
    assert_eq!(
        snap.ledger,
        vec![charge.clone(), refund.clone(), top_up.clone()]
    );
    assert_eq!(snap.recent_usage, vec![usage("acme", "j-0", 100, 200)]);
    assert_eq!(snap.policy, Some(policy));
    assert_eq!(
        store.all_ledger(None, 0, 10_000).await.expect("ledger"),
        vec![charge, refund, top_up]
    );
    assert_eq!(snap.users, vec![user("u-alice", "alice", "acme", 1_010)]);
    assert_eq!(snap.tokens, vec![token("t-alice", i64::MAX), node_token]);
    assert_eq!(snap.join_tokens, vec![join]);
    assert_eq!(snap.nodes, vec![node("n1")]);
    assert_eq!(
        snap.devices,
        vec![
            device("GPU-a", "n1", 0),
            device("GPU-b", "n1", 1),
            device("GPU-c", "n1", 2),
            device("GPU-d", "n1", 3),
        ]
    );
    assert_eq!(snap.reservations, vec![res.clone()]);
    assert_eq!(snap.jobs, vec![running.clone()], "the failed job is final");
    // Claims ending after the load time: GPU-c's ended at 2000.
    assert_eq!(snap.claims, claims[..2].to_vec());
    assert_eq!(store.load(1_500, 0, 0).await.expect("load").claims.len(), 3);

    assert_eq!(store.get_reservation("r-1").await.expect("get"), Some(res));
    assert_eq!(store.get_reservation("r-none").await.expect("get"), None);
    assert_eq!(store.get_job("j-1").await.expect("get"), Some(running));
    assert_eq!(store.get_job("j-2").await.expect("get"), Some(failed));
    assert_eq!(store.get_job("j-none").await.expect("get"), None);
    assert_eq!(store.list_claims(0).await.expect("claims"), claims);
    assert_eq!(
        store.all_usage(None, 0, 1_000).await.expect("usage"),
        vec![usage("acme", "j-0", 100, 200)]
    );
    assert_eq!(
        store.audit_first(10).await.expect("audit"),
        vec![audit(9_000, "org.create")]
    );
    assert_eq!(
        store.list_users(None).await.expect("users"),
        vec![user("u-alice", "alice", "acme", 1_010)]
    );
}

async fn upserts_update_in_place(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    apply(
        &store,
        vec![
            Mutation::UpsertReservation(
                reservation("r-1", "acme", ReservationState::Confirmed, 2_000).into(),
            ),
            Mutation::UpsertJob(job("j-1", "acme", JobState::Pending, 3_000).into()),
        ],
    )
    .await;

    let mut n1 = node("n1");
    n1.state = NodeState::Unreachable;
    n1.last_heartbeat_ms = None;
    n1.generation = 4;
    let mut gpu_a = device("GPU-a", "n1", 0);
    gpu_a.health = Health::Failed;
    gpu_a.health_reason = "XID 79: fallen off the bus".to_owned();
    let mut res = reservation("r-1", "acme", ReservationState::Active, 2_000);
    res.reason = "window started".to_owned();
    let mut j1 = job("j-1", "acme", JobState::Lost, 3_000);
    j1.reason = "node n1 lost".to_owned();
    j1.exit_code = Some(137);
    apply(
        &store,
        vec![
            Mutation::UpsertNode(n1.clone()),
            Mutation::UpsertDevice(gpu_a.clone()),
            Mutation::UpsertReservation(res.clone().into()),
            Mutation::UpsertJob(j1.clone().into()),
        ],
    )
    .await;

    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!(snap.nodes, vec![n1]);
    assert_eq!(snap.devices.len(), 4);
    assert_eq!(snap.devices[0], gpu_a);
    assert_eq!(snap.reservations, vec![res.clone()]);
    assert!(snap.jobs.is_empty(), "a lost job is final");
    assert_eq!(store.get_job("j-1").await.expect("get"), Some(j1));
    assert_eq!(store.get_reservation("r-1").await.expect("get"), Some(res));
}

async fn tokens_revoked_or_expired_are_not_loaded(db: TestDb) {
    let store = db.open().await;
    let mut batch = base();
    batch.extend([
        Mutation::InsertToken(token("t-live", 10_000)),
        Mutation::InsertToken(token("t-expired", 5_000)),
        Mutation::InsertToken(token("t-revoked", 10_000)),
        Mutation::InsertJoinToken(JoinTokenRow {
            id: "jt-old".to_owned(),
            hash: "h".to_owned(),
            created_by: "admin".to_owned(),
            created_ms: 0,
            expires_ms: 5_000,
            node: None,
            used_ms: None,
            max_uses: 3,
            uses: 1,
        }),
    ]);
    apply(&store, batch).await;
    apply(
        &store,
        vec![Mutation::RevokeToken {
            id: "t-revoked".to_owned(),
        }],
    )
    .await;
    // Revoking an unknown token is not an error.
    apply(
        &store,
        vec![Mutation::RevokeToken {
            id: "t-unknown".to_owned(),
        }],
    )
    .await;

    let snap = store.load(5_000, 0, 0).await.expect("load");
    assert_eq!(ids(&snap.tokens, |t| &t.id), vec!["t-live"]);
    assert!(
        snap.join_tokens.is_empty(),
        "expired join tokens are not loaded"
    );
    let earlier = store.load(4_999, 0, 0).await.expect("load");
    assert_eq!(ids(&earlier.tokens, |t| &t.id), vec!["t-expired", "t-live"]);
    assert_eq!(earlier.join_tokens.len(), 1);
}

async fn join_tokens_join_no_more_than_they_may(db: TestDb) {
    let store = db.open().await;
    let mut batch = base();
    batch.push(Mutation::InsertJoinToken(JoinTokenRow {
        id: "jt-2".to_owned(),
        hash: "h2".to_owned(),
        created_by: "admin".to_owned(),
        created_ms: 0,
        expires_ms: 100_000,
        node: None,
        used_ms: None,
        max_uses: 2,
        uses: 0,
    }));
    apply(&store, batch).await;
    let used = |t: i64| Mutation::UseJoinToken {
        id: "jt-2".to_owned(),
        used_ms: t,
    };
    apply(&store, vec![used(1_000)]).await;
    let snap = store.load(2_000, 0, 0).await.expect("load");
    assert_eq!(snap.join_tokens.len(), 1);
    assert_eq!(snap.join_tokens[0].uses, 1);
    assert_eq!(snap.join_tokens[0].used_ms, Some(1_000));
    apply(&store, vec![used(2_000)]).await;
    let snap = store.load(3_000, 0, 0).await.expect("load");
    assert!(snap.join_tokens.is_empty(), "a used-up token is not loaded");
    // A third use (a second scheduler, or a bug) fails the whole batch.
    match store.apply(vec![used(3_000)]).await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("jt-2"), "{message}"),
        other => panic!("a used-up join token joined again: {other:?}"),
    }
}

async fn batch_is_all_or_nothing(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    apply(
        &store,
        vec![Mutation::InsertClaims(vec![claim(
            "GPU-a", "r-old", 0, 100,
        )])],
    )
    .await;

    // The last mutation conflicts: nothing of the batch may remain.
    let result = store
        .apply(vec![
            Mutation::InsertOrg(org("globex")),
            Mutation::UpsertReservation(
                reservation("r-new", "acme", ReservationState::Confirmed, 5).into(),
            ),
            Mutation::Audit(audit(1, "reserve")),
            Mutation::InsertClaims(vec![claim("GPU-b", "r-new", 0, 100)]),
            Mutation::InsertClaims(vec![claim("GPU-a", "r-new", 50, 150)]),
        ])
        .await;
    expect_conflict(result, "GPU-a");

    // A duplicate name last: same.
    let result = store
        .apply(vec![
            Mutation::InsertOrg(org("initech")),
            Mutation::InsertClaims(vec![claim("GPU-c", "r-new", 0, 100)]),
            Mutation::InsertOrg(org("acme")),
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::AlreadyExists { .. })),
        "{result:?}"
    );

    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!(ids(&snap.orgs, |o| &o.name), vec!["acme"]);
    assert!(snap.reservations.is_empty());
    assert_eq!(snap.claims, vec![claim("GPU-a", "r-old", 0, 100)]);
    assert!(store.audit_first(10).await.expect("audit").is_empty());
    assert_eq!(store.get_reservation("r-new").await.expect("get"), None);

    // The store is still usable and the same batch without the conflict succeeds.
    apply(
        &store,
        vec![
            Mutation::InsertOrg(org("globex")),
            Mutation::InsertClaims(vec![claim("GPU-a", "r-new", 100, 150)]),
        ],
    )
    .await;
    assert_eq!(store.list_claims(0).await.expect("claims").len(), 2);
}

async fn overlapping_claims_are_refused(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    apply(
        &store,
        vec![Mutation::InsertClaims(vec![claim(
            "GPU-a", "r-1", 100, 200,
        )])],
    )
    .await;

    for (start, end) in [
        (150, 250),
        (50, 150),
        (120, 130),
        (0, 300),
        (100, 200),
        (199, 200),
    ] {
        let result = store
            .apply(vec![Mutation::InsertClaims(vec![claim(
                "GPU-a", "j-2", start, end,
            )])])
            .await;
        expect_conflict(result, "GPU-a");
    }
    // Two overlapping claims inside one batch conflict with each other too.
    let result = store
        .apply(vec![Mutation::InsertClaims(vec![
            claim("GPU-d", "r-3", 0, 100),
            claim("GPU-d", "r-3", 99, 150),
        ])])
        .await;
    expect_conflict(result, "GPU-d");

    // Half-open windows: touching ends do not overlap; other devices are independent.
    apply(
        &store,
        vec![Mutation::InsertClaims(vec![
            claim("GPU-a", "r-2", 200, 300),
            claim("GPU-a", "j-4", 0, 100),
            claim("GPU-b", "r-5", 100, 200),
            claim("GPU-c", "r-5", 150, 250),
        ])],
    )
    .await;

    // An empty or inverted window is invalid, not a conflict.
    for (start, end) in [(500, 500), (600, 550)] {
        let result = store
            .apply(vec![Mutation::InsertClaims(vec![claim(
                "GPU-d", "r-6", start, end,
            )])])
            .await;
        assert!(
            matches!(result, Err(StoreError::Db(_))),
            "[{start}, {end}): {result:?}"
        );
    }

    let claims = store.list_claims(i64::MIN).await.expect("claims");
    assert_eq!(
        claims,
        vec![
            claim("GPU-a", "j-4", 0, 100),
            claim("GPU-a", "r-1", 100, 200),
            claim("GPU-a", "r-2", 200, 300),
            claim("GPU-b", "r-5", 100, 200),
            claim("GPU-c", "r-5", 150, 250),
        ]
    );
    assert_eq!(store.list_claims(200).await.expect("claims").len(), 2);
}

async fn truncate_and_delete_claims(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    apply(
        &store,
        vec![Mutation::InsertClaims(vec![
            claim("GPU-a", "r-1", 100, 200),
            claim("GPU-b", "r-1", 300, 400),
            claim("GPU-c", "r-1", 50, 150),
            claim("GPU-d", "r-1", 150, 160),
            claim("GPU-d", "r-2", 0, 100),
        ])],
    )
    .await;

    apply(
        &store,
        vec![Mutation::TruncateClaims {
            owner_id: "r-1".to_owned(),
            end_ms: 150,
        }],
    )
    .await;
    assert_eq!(
        store.list_claims(i64::MIN).await.expect("claims"),
        vec![
            claim("GPU-a", "r-1", 100, 150),
            claim("GPU-c", "r-1", 50, 150),
            claim("GPU-d", "r-2", 0, 100),
        ],
        "longer claims shortened, claims starting at or after the end removed"
    );
    // The freed time can be claimed by someone else.
    apply(
        &store,
        vec![Mutation::InsertClaims(vec![claim(
            "GPU-a", "j-9", 150, 300,
        )])],
    )
    .await;
    expect_conflict(
        store
            .apply(vec![Mutation::InsertClaims(vec![claim(
                "GPU-a", "j-10", 149, 151,
            )])])
            .await,
        "GPU-a",
    );

    apply(
        &store,
        vec![Mutation::DeleteClaims {
            owner_id: "r-1".to_owned(),
        }],
    )
    .await;
    assert_eq!(
        store.list_claims(i64::MIN).await.expect("claims"),
        vec![
            claim("GPU-a", "j-9", 150, 300),
            claim("GPU-d", "r-2", 0, 100)
        ]
    );
    // Deleting or truncating an owner without claims is a no-op.
    apply(
        &store,
        vec![
            Mutation::DeleteClaims {
                owner_id: "r-none".to_owned(),
            },
            Mutation::TruncateClaims {
                owner_id: "r-none".to_owned(),
                end_ms: 0,
            },
        ],
    )
    .await;
    assert_eq!(store.list_claims(i64::MIN).await.expect("claims").len(), 2);
}

const RACERS: usize = 8;

/// Each racer books GPU-a and GPU-b through its own store handle (its own pool).
async fn race(db: &TestDb, window: impl Fn(usize) -> (i64, i64)) -> Vec<Result<(), StoreError>> {
    let mut stores = Vec::with_capacity(RACERS);
    for _ in 0..RACERS {
        stores.push(db.open().await);
    }
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::with_capacity(RACERS);
    for (i, store) in stores.into_iter().enumerate() {
        let barrier = barrier.clone();
        let (start, end) = window(i);
        tasks.push(tokio::spawn(async move {
            let id = format!("r-race-{i}");
            let mut res = reservation(&id, "acme", ReservationState::Confirmed, 100 + i as i64);
            res.start_ms = start;
            res.end_ms = end;
            let batch = vec![
                Mutation::UpsertReservation(res.into()),
                Mutation::InsertClaims(vec![
                    claim("GPU-a", &id, start, end),
                    claim("GPU-b", &id, start, end),
                ]),
                Mutation::Audit(audit(100 + i as i64, "reserve")),
            ];
            barrier.wait().await;
            store.apply(batch).await
        }));
    }
    let mut results = Vec::with_capacity(RACERS);
    for task in tasks {
        results.push(task.await.expect("racer panicked"));
    }
    results
}

async fn concurrent_bookings_have_exactly_one_winner(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;

    // Every window overlaps every other one.
    let results = race(&db, |i| (10_000 + 100 * i as i64, 20_000 + 100 * i as i64)).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one booking wins: {results:?}");
    for result in &results {
        match result {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a losing booking must fail with a conflict, not {e:?}"),
        }
    }

    let winner = format!("r-race-{}", winners[0]);
    let all = Scope {
        org: None,
        include_finished: true,
    };
    let reservations = store.all_reservations(&all).await.expect("list");
    assert_eq!(ids(&reservations, |r| &r.id), vec![winner.clone()]);
    let claims = store.list_claims(i64::MIN).await.expect("claims");
    assert_eq!(claims.len(), 2, "{claims:?}");
    assert!(claims.iter().all(|c| c.owner_id == winner), "{claims:?}");
    assert_eq!(ids(&claims, |c| &c.device_uuid), vec!["GPU-a", "GPU-b"]);
    assert_eq!(store.audit_first(100).await.expect("audit").len(), 1);
}

async fn concurrent_disjoint_bookings_all_succeed(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;

    // Back-to-back windows: concurrent writers wait for each other, none fails.
    let results = race(&db, |i| (1_000 * i as i64, 1_000 * (i as i64 + 1))).await;
    for (i, result) in results.iter().enumerate() {
        assert!(result.is_ok(), "racer {i}: {result:?}");
    }
    assert_eq!(
        store.list_claims(i64::MIN).await.expect("claims").len(),
        2 * RACERS
    );
    assert_eq!(
        store
            .all_reservations(&Scope::default())
            .await
            .expect("list")
            .len(),
        RACERS
    );
}

async fn unique_names_already_exist(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;

    let cases = [
        (Mutation::InsertSite(site("busan")), "site \"busan\""),
        (
            Mutation::InsertClass(class("h100")),
            "device class \"h100\"",
        ),
        (Mutation::InsertOrg(org("acme")), "org \"acme\""),
        (
            Mutation::InsertUser(user("u-other", "alice", "acme", 5)),
            "user \"alice\"",
        ),
        (
            Mutation::InsertUser(user("u-alice", "alicia", "acme", 5)),
            "user \"alicia\"",
        ),
    ];
    for (mutation, expected) in cases {
        match store.apply(vec![mutation]).await {
            Err(StoreError::AlreadyExists { what }) => assert_eq!(what.to_string(), expected),
            other => panic!("expected {expected} to exist, got {other:?}"),
        }
    }
    let err = StoreError::AlreadyExists {
        what: berth_i18n::text!(WhatOrg, name = ?"acme"),
    };
    assert_eq!(err.to_string(), "org \"acme\" already exists");

    let users = store.list_users(None).await.expect("users");
    assert_eq!(users, vec![user("u-alice", "alice", "acme", 1_010)]);
}

async fn foreign_keys_are_enforced(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;

    let result = store
        .apply(vec![Mutation::InsertUser(user(
            "u-bob", "bob", "nowhere", 5,
        ))])
        .await;
    assert!(
        matches!(result, Err(StoreError::Db(_))),
        "user of an unknown org: {result:?}"
    );
    let result = store
        .apply(vec![Mutation::UpsertDevice(device("GPU-z", "n-none", 0))])
        .await;
    assert!(
        matches!(result, Err(StoreError::Db(_))),
        "device of an unknown node: {result:?}"
    );

    // In one batch, parents first, it works.
    apply(
        &store,
        vec![
            Mutation::InsertOrg(org("globex")),
            Mutation::InsertUser(user("u-bob", "bob", "globex", 5)),
            Mutation::UpsertNode(node("n2")),
            Mutation::UpsertDevice(device("GPU-z", "n2", 0)),
        ],
    )
    .await;
    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!(snap.users.len(), 2);
    assert_eq!(snap.devices.len(), 5);
}

fn chunk(seq: i64, data: &str) -> LogRow {
    LogRow {
        seq,
        stream: if seq % 2 == 0 { 2 } else { 1 },
        data: data.as_bytes().to_vec(),
        time_ms: 1_000 + seq,
    }
}

async fn logs_dedupe_and_order(db: TestDb) {
    let store = db.open().await;
    assert_eq!(
        store.append_logs("j-1", Vec::new()).await.expect("append"),
        0
    );

    let first = vec![chunk(1, "one\n"), chunk(2, "two\n"), chunk(3, "three\n")];
    assert_eq!(store.append_logs("j-1", first).await.expect("append"), 3);
    // A resend overlapping what is stored keeps the stored chunks.
    let resend = vec![chunk(2, "TWO\n"), chunk(3, "THREE\n"), chunk(4, "four\n")];
    assert_eq!(
        store
            .append_logs("j-1", resend.clone())
            .await
            .expect("append"),
        4
    );
    assert_eq!(store.append_logs("j-1", resend).await.expect("append"), 4);
    // Out of order, and binary data.
    let mut binary = chunk(5, "");
    binary.data = vec![0, 159, 146, 150, 255];
    assert_eq!(
        store
            .append_logs("j-1", vec![chunk(6, "six\n"), binary.clone()])
            .await
            .expect("append"),
        6
    );
    assert_eq!(
        store.append_logs("j-1", Vec::new()).await.expect("append"),
        6
    );
    assert_eq!(
        store
            .append_logs("j-2", vec![chunk(1, "other\n")])
            .await
            .expect("append"),
        1
    );

    let all = store.read_logs("j-1", 0, 100).await.expect("read");
    assert_eq!(
        all,
        vec![
            chunk(1, "one\n"),
            chunk(2, "two\n"),
            chunk(3, "three\n"),
            chunk(4, "four\n"),
            binary,
            chunk(6, "six\n"),
        ]
    );
    assert_eq!(
        store.read_logs("j-1", 2, 2).await.expect("read"),
        vec![chunk(3, "three\n"), chunk(4, "four\n")]
    );
    assert!(
        store
            .read_logs("j-1", 6, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store.read_logs("j-2", 0, 10).await.expect("read"),
        vec![chunk(1, "other\n")]
    );
    assert!(
        store
            .read_logs("j-none", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );

    // Many chunks in one call.
    let many: Vec<LogRow> = (7..=1_006).map(|seq| chunk(seq, "line\n")).collect();
    assert_eq!(store.append_logs("j-1", many).await.expect("append"), 1_006);
    assert_eq!(
        store.read_logs("j-1", 0, 5_000).await.expect("read").len(),
        1_006
    );
}

async fn usage_range_filter(db: TestDb) {
    let store = db.open().await;
    apply(
        &store,
        vec![
            Mutation::InsertUsage(usage("acme", "j-3", 200, 300)),
            Mutation::InsertUsage(usage("acme", "j-1", 0, 100)),
            Mutation::InsertUsage(usage("acme", "j-2", 100, 200)),
            Mutation::InsertUsage(usage("globex", "j-4", 150, 250)),
            Mutation::InsertUsage(usage("globex", "j-5", 50, 500)),
        ],
    )
    .await;

    let subjects = |rows: Vec<UsageRow>| ids(&rows, |u| &u.subject_id);
    // [100, 200): touching records at either end are outside.
    assert_eq!(
        subjects(store.all_usage(None, 100, 200).await.expect("usage")),
        vec!["j-5", "j-2", "j-4"]
    );
    assert_eq!(
        subjects(
            store
                .all_usage(Some("acme"), 100, 200)
                .await
                .expect("usage")
        ),
        vec!["j-2"]
    );
    assert_eq!(
        subjects(
            store
                .all_usage(Some("acme"), 0, 1_000)
                .await
                .expect("usage")
        ),
        vec!["j-1", "j-2", "j-3"]
    );
    assert_eq!(
        subjects(
            store
                .all_usage(Some("globex"), 260, 270)
                .await
                .expect("usage")
        ),
        vec!["j-5"]
    );
    assert!(
        store
            .all_usage(None, 500, 600)
            .await
            .expect("usage")
            .is_empty()
    );
    assert!(
        store
            .all_usage(Some("initech"), 0, 1_000)
            .await
            .expect("usage")
            .is_empty()
    );
    assert_eq!(
        store.all_usage(None, 0, 1_000).await.expect("usage")[0],
        usage("acme", "j-1", 0, 100)
    );
}

async fn scope_filters_org_and_finished(db: TestDb) {
    let store = db.open().await;
    let mut batch = base();
    batch.extend([
        Mutation::InsertOrg(org("globex")),
        Mutation::InsertUser(user("u-bob", "bob", "globex", 1_020)),
        Mutation::InsertUser(user("u-carol", "carol", "acme", 1_030)),
        Mutation::UpsertReservation(
            reservation("r-1", "acme", ReservationState::Active, 100).into(),
        ),
        Mutation::UpsertReservation(
            reservation("r-2", "acme", ReservationState::Completed, 200).into(),
        ),
        Mutation::UpsertReservation(
            reservation("r-3", "globex", ReservationState::Requested, 300).into(),
        ),
        Mutation::UpsertReservation(
            reservation("r-4", "acme", ReservationState::Cancelled, 300).into(),
        ),
        Mutation::UpsertReservation(
            reservation("r-5", "acme", ReservationState::Confirmed, 300).into(),
        ),
        Mutation::UpsertJob(job("j-1", "acme", JobState::Running, 100).into()),
        Mutation::UpsertJob(job("j-2", "acme", JobState::Succeeded, 200).into()),
        Mutation::UpsertJob(job("j-3", "globex", JobState::Pending, 300).into()),
        Mutation::UpsertJob(job("j-4", "acme", JobState::TimedOut, 400).into()),
        Mutation::UpsertJob(job("j-5", "acme", JobState::Scheduled, 400).into()),
    ]);
    apply(&store, batch).await;

    let scope = |org: Option<&str>, include_finished| Scope {
        org: org.map(str::to_owned),
        include_finished,
    };
    let reservations = |rows: Vec<ReservationRow>| ids(&rows, |r| &r.id);
    let jobs = |rows: Vec<JobRow>| ids(&rows, |j| &j.id);

    // Newest first, ties broken by id (descending).
    assert_eq!(
        reservations(
            store
                .all_reservations(&scope(None, true))
                .await
                .expect("list")
        ),
        vec!["r-5", "r-4", "r-3", "r-2", "r-1"]
    );
    assert_eq!(
        reservations(
            store
                .all_reservations(&scope(None, false))
                .await
                .expect("list")
        ),
        vec!["r-5", "r-3", "r-1"]
    );
    assert_eq!(
        reservations(
            store
                .all_reservations(&scope(Some("acme"), false))
                .await
                .expect("list")
        ),
        vec!["r-5", "r-1"]
    );
    assert_eq!(
        reservations(
            store
                .all_reservations(&scope(Some("acme"), true))
                .await
                .expect("list")
        ),
        vec!["r-5", "r-4", "r-2", "r-1"]
    );
    assert!(
        store
            .all_reservations(&scope(Some("initech"), true))
            .await
            .expect("list")
            .is_empty()
    );

    assert_eq!(
        jobs(store.all_jobs(&scope(None, true)).await.expect("list")),
        vec!["j-5", "j-4", "j-3", "j-2", "j-1"]
    );
    assert_eq!(
        jobs(store.all_jobs(&scope(None, false)).await.expect("list")),
        vec!["j-5", "j-3", "j-1"]
    );
    assert_eq!(
        jobs(
            store
                .all_jobs(&scope(Some("globex"), false))
                .await
                .expect("list")
        ),
        vec!["j-3"]
    );
    assert_eq!(
        jobs(
            store
                .all_jobs(&scope(Some("acme"), true))
                .await
                .expect("list")
        ),
        vec!["j-5", "j-4", "j-2", "j-1"]
    );

    let users = |rows: Vec<UserRow>| ids(&rows, |u| &u.name);
    assert_eq!(
        users(store.list_users(None).await.expect("users")),
        vec!["carol", "bob", "alice"]
    );
    assert_eq!(
        users(store.list_users(Some("acme")).await.expect("users")),
        vec!["carol", "alice"]
    );
    assert!(
        store
            .list_users(Some("initech"))
            .await
            .expect("users")
            .is_empty()
    );
}

/// A group of batches is written with runs of job upserts as one statement each and the
/// audit events last: what it leaves must be exactly what the mutations said, in order
/// (a job written twice keeps its later row; audit events keep their order).
async fn a_group_writes_runs_of_jobs_at_once_and_keeps_every_outcome(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    let mut batches: Vec<Vec<Mutation>> = Vec::new();
    for i in 0..600 {
        batches.push(vec![
            Mutation::UpsertJob(
                job(&format!("j-{i:03}"), "acme", JobState::Pending, 1_000 + i).into(),
            ),
            Mutation::Audit(audit(5_000, &format!("submit-{i:03}"))),
        ]);
    }
    // The same job again in the same group, later: its row wins.
    let mut ran = job("j-007", "acme", JobState::Cancelled, 1_007);
    ran.finished_ms = Some(9_000);
    batches.push(vec![
        Mutation::UpsertJob(ran.into()),
        Mutation::Audit(audit(5_000, "cancel-007")),
    ]);
    let group: Vec<&[Mutation]> = batches.iter().map(Vec::as_slice).collect();
    store.apply_group(&group).await.expect("group");

    let j7 = store.get_job("j-007").await.expect("get").expect("j-007");
    assert_eq!(
        (j7.state, j7.finished_ms),
        (JobState::Cancelled, Some(9_000))
    );
    let j599 = store.get_job("j-599").await.expect("get").expect("j-599");
    assert_eq!(j599.state, JobState::Pending);
    let audits = store.audit_first(1_000).await.expect("audit");
    let actions: Vec<&str> = audits.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions.len(), 601);
    assert_eq!(actions[0], "cancel-007", "newest first: the last written");
    assert_eq!(actions[1], "submit-599");
    assert_eq!(actions[600], "submit-000");
}

/// A node's devices, as a join stages them (its row, then each device), are written in
/// one statement per run of device upserts: runs longer than a statement's share, two
/// joins in one group, and a device written twice in a run (the later row wins) all
/// leave exactly what the mutations said.
async fn a_group_writes_runs_of_devices_at_once_and_keeps_every_outcome(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    let join = |name: &str, n: i32| {
        let mut b = vec![Mutation::UpsertNode(node(name))];
        b.extend(
            (0..n).map(|i| Mutation::UpsertDevice(device(&format!("{name}-{i:04}"), name, i))),
        );
        b
    };
    let mut big = join("n-big", 1_100);
    // The same device again in the same run, failed: its later row wins.
    let mut failed = device("n-big-0007", "n-big", 7);
    failed.health = Health::Failed;
    failed.health_reason = "XID 79".to_owned();
    big.push(Mutation::UpsertDevice(failed.clone()));
    // And within one statement's share: the run ends before it, and it comes next.
    let mut small = join("n-small", 8);
    let mut degraded = device("n-small-0003", "n-small", 3);
    degraded.health = Health::Degraded;
    small.push(Mutation::UpsertDevice(degraded.clone()));
    store.apply_group(&[&big, &small]).await.expect("group");

    let snap = store.load(0, 0, 0).await.expect("load");
    let of = |n: &str| snap.devices.iter().filter(|d| d.node == n).count();
    assert_eq!((of("n-big"), of("n-small")), (1_100, 8));
    let loaded = |uuid: &str| {
        snap.devices
            .iter()
            .find(|d| d.uuid == uuid)
            .unwrap_or_else(|| panic!("{uuid} was not loaded"))
            .clone()
    };
    assert_eq!(loaded("n-big-0007"), failed);
    assert_eq!(loaded("n-small-0003"), degraded);
    assert_eq!(loaded("n-big-1099"), device("n-big-1099", "n-big", 1_099));
}

/// Several new bookings in a group are written claims first, then the bookings, then
/// their ledger entries, each kind in a few statements: every row lands; and an overlap
/// between two of them (which the calendar would have refused) fails the whole group.
async fn a_group_writes_runs_of_bookings_at_once_or_none_of_them(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    let booking = |i: i64, device: &str| {
        let id = format!("r-{i}");
        let mut r = reservation(&id, "acme", ReservationState::Confirmed, 1_000 + i);
        (r.start_ms, r.end_ms) = (i * 100, i * 100 + 100);
        r.count = 1;
        r.devices = vec![device.to_owned()];
        let mut l = ledger(&format!("l-{i}"), "acme", 1_000 + i, 0);
        l.subject_id = id.clone();
        vec![
            Mutation::InsertClaims(vec![claim(device, &id, r.start_ms, r.end_ms)]),
            Mutation::UpsertReservation(r.into()),
            Mutation::InsertLedger(vec![l]),
            Mutation::Audit(audit(1_000 + i, "reservation.create")),
        ]
    };
    let batches: Vec<Vec<Mutation>> = (0..40)
        .map(|i| booking(i, if i % 2 == 0 { "GPU-a" } else { "GPU-b" }))
        .collect();
    let group: Vec<&[Mutation]> = batches.iter().map(Vec::as_slice).collect();
    store.apply_group(&group).await.expect("group");
    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!(snap.reservations.len(), 40);
    assert_eq!(snap.claims.len(), 40);
    assert_eq!(snap.ledger.len(), 40);

    // Two bookings of the same device and hour in one group: neither is written.
    let clash: Vec<Vec<Mutation>> = vec![booking(100, "GPU-a"), {
        let mut b = booking(101, "GPU-a");
        if let Mutation::InsertClaims(c) = &mut b[0] {
            (c[0].start_ms, c[0].end_ms) = (10_000, 10_100);
        }
        b
    }];
    let group: Vec<&[Mutation]> = clash.iter().map(Vec::as_slice).collect();
    match store.apply_group(&group).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("GPU-a"), "{m}"),
        other => panic!("an overlap fails the group: {other:?}"),
    }
    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!((snap.reservations.len(), snap.claims.len()), (40, 40));
}

async fn audit_is_newest_first(db: TestDb) {
    let store = db.open().await;
    apply(
        &store,
        vec![
            Mutation::Audit(audit(300, "c")),
            Mutation::Audit(audit(100, "a")),
        ],
    )
    .await;
    apply(
        &store,
        vec![
            Mutation::Audit(audit(200, "b")),
            Mutation::Audit(audit(300, "d")),
        ],
    )
    .await;

    let actions = |rows: Vec<AuditRow>| ids(&rows, |a| &a.action);
    // Same time: the later insert first.
    assert_eq!(
        actions(store.audit_first(10).await.expect("audit")),
        vec!["d", "c", "b", "a"]
    );
    assert_eq!(
        actions(store.audit_first(2).await.expect("audit")),
        vec!["d", "c"]
    );
    assert!(store.audit_first(0).await.expect("audit").is_empty());
}

/// One plain b-tree index as the database reports it.
#[derive(Debug)]
struct PlainIndex {
    name: String,
    table: String,
    columns: Vec<String>,
}

/// The indexes that are neither unique, partial nor behind a constraint: the ones that
/// only speed up reads, and that every insert pays for.
async fn plain_indexes(db: &DatabaseConnection) -> Vec<PlainIndex> {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Sqlite => {
            "SELECT m.name AS name, m.tbl_name AS tbl, \
                (SELECT group_concat(name, ',') FROM \
                   (SELECT i.name FROM pragma_index_info(m.name) AS i ORDER BY i.seqno)) AS cols \
             FROM sqlite_master AS m \
             WHERE m.type = 'index' AND m.sql IS NOT NULL \
               AND m.sql NOT LIKE '%UNIQUE%' AND m.sql NOT LIKE '% WHERE %'"
        }
        _ => {
            "SELECT c.relname::text AS name, t.relname::text AS tbl, \
                array_to_string(ARRAY(SELECT a.attname::text \
                    FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                    ORDER BY k.ord), ',') AS cols \
             FROM pg_index ix \
             JOIN pg_class c ON c.oid = ix.indexrelid \
             JOIN pg_class t ON t.oid = ix.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             JOIN pg_am am ON am.oid = c.relam \
             WHERE n.nspname = current_schema() AND am.amname = 'btree' \
               AND NOT ix.indisunique AND ix.indpred IS NULL \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ix.indexrelid)"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("listing indexes");
    rows.iter()
        .map(|r| PlainIndex {
            name: r.try_get("", "name").expect("name"),
            table: r.try_get("", "tbl").expect("tbl"),
            columns: r
                .try_get::<String>("", "cols")
                .expect("cols")
                .split(',')
                .map(str::to_owned)
                .collect(),
        })
        .collect()
}

/// An index whose columns begin another index of the same table answers nothing the
/// longer one does not, and costs every insert a b-tree write (a `SubmitJob` group paid
/// for two such indexes on `jobs`).
async fn no_index_only_repeats_the_start_of_another(db: TestDb) {
    drop(db.open().await);
    let raw = db.raw().await;
    let indexes = plain_indexes(&raw).await;
    assert!(
        indexes
            .iter()
            .any(|i| i.name == "idx_reservations_org_created_id"),
        "the query found no index: {indexes:?}"
    );
    for short in &indexes {
        for long in &indexes {
            if short.name != long.name
                && short.table == long.table
                && long.columns.starts_with(&short.columns)
            {
                panic!(
                    "index {} {:?} on {} only repeats the start of {} {:?}",
                    short.name, short.columns, short.table, long.name, long.columns
                );
            }
        }
    }
}

async fn reopening_keeps_data(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    apply(
        &store,
        vec![Mutation::InsertClaims(vec![claim("GPU-a", "r-1", 0, 100)])],
    )
    .await;
    drop(store);

    // Migrations are already applied: opening again changes nothing.
    let store = db.open().await;
    let again = db.open().await;
    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!(snap.devices.len(), 4);
    assert_eq!(snap.claims, vec![claim("GPU-a", "r-1", 0, 100)]);
    expect_conflict(
        again
            .apply(vec![Mutation::InsertClaims(vec![claim(
                "GPU-a", "r-2", 50, 60,
            )])])
            .await,
        "GPU-a",
    );
}

async fn replicas_starting_together_migrate_once(db: TestDb) {
    // Several handles open a fresh database at once: one migrates, the others wait.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.open().await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("open panicked"));
    }
    apply(&stores[0], base()).await;
    for store in &stores {
        assert_eq!(store.load(0, 0, 0).await.expect("load").devices.len(), 4);
    }
}

async fn metrics_time_every_operation(db: TestDb) {
    let store = db.open().await;
    let registry = prometheus::Registry::new();
    store.register_metrics(&registry).expect("register");
    apply(&store, base()).await;
    let _ = store.apply(vec![Mutation::InsertOrg(org("acme"))]).await;
    store.load(0, 0, 0).await.expect("load");

    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encode");
    assert!(
        text.contains("berth_store_operation_seconds_count{op=\"apply\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("berth_store_operation_seconds_count{op=\"load\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("berth_store_operation_seconds_count{op=\"migrate\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("berth_store_errors_total{kind=\"already_exists\",op=\"apply\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("berth_store_errors_total{kind=\"db\",op=\"apply\"} 0"),
        "{text}"
    );
    // Registering the same store's metrics twice is refused, not silently duplicated.
    assert!(store.register_metrics(&registry).is_err());
}

async fn budgets_upsert_replace_and_delete(db: TestDb) {
    let store = db.open().await;
    let mut batch = base();
    batch.push(Mutation::InsertOrg(org("globex")));
    apply(&store, batch).await;

    let acme_h100 = budget("acme", "h100");
    let acme_any = budget("acme", ANY_CLASS);
    let globex_h100 = budget("globex", "h100");
    apply(
        &store,
        vec![
            Mutation::UpsertBudget(globex_h100.clone()),
            Mutation::UpsertBudget(acme_h100.clone()),
            Mutation::UpsertBudget(acme_any.clone()),
        ],
    )
    .await;
    assert_eq!(
        store.load(0, 0, 0).await.expect("load").budgets,
        vec![acme_any.clone(), acme_h100, globex_h100.clone()]
    );

    // Upserting the same (org, class) replaces every field, limits back to none too.
    let replaced = BudgetRow {
        period: "day".to_owned(),
        allowance_ms: Some(1),
        max_devices: None,
        max_booking_ms: None,
        horizon_ms: None,
        expires_ms: Some(9_999),
        updated_ms: 2_000,
        ..budget("acme", "h100")
    };
    apply(&store, vec![Mutation::UpsertBudget(replaced.clone())]).await;
    assert_eq!(
        store.load(0, 0, 0).await.expect("load").budgets,
        vec![acme_any, replaced.clone(), globex_h100.clone()]
    );

    // Deleting removes only that (org, class); deleting an absent budget is a no-op.
    apply(
        &store,
        vec![
            Mutation::DeleteBudget {
                org: "acme".to_owned(),
                class: ANY_CLASS.to_owned(),
            },
            Mutation::DeleteBudget {
                org: "acme".to_owned(),
                class: ANY_CLASS.to_owned(),
            },
            Mutation::DeleteBudget {
                org: "initech".to_owned(),
                class: "h100".to_owned(),
            },
        ],
    )
    .await;
    assert_eq!(
        store.load(0, 0, 0).await.expect("load").budgets,
        vec![replaced, globex_h100]
    );

    // A budget of an unknown org is refused.
    let result = store
        .apply(vec![Mutation::UpsertBudget(budget("initech", "h100"))])
        .await;
    assert!(matches!(result, Err(StoreError::Db(_))), "{result:?}");
}

async fn ledger_filters_by_org_time_and_period(db: TestDb) {
    let store = db.open().await;
    let mut batch = base();
    batch.push(Mutation::InsertOrg(org("globex")));
    apply(&store, batch).await;

    // Periods start at 0 (old) and 1_000 (current).
    apply(
        &store,
        vec![Mutation::InsertLedger(vec![
            ledger("l-5", "acme", 1_500, 1_000),
            ledger("l-1", "acme", 100, 0),
            ledger("l-3", "globex", 1_000, 1_000),
            ledger("l-2", "acme", 999, 0),
            ledger("l-4", "acme", 1_000, 1_000),
            ledger("l-6", "globex", 2_000, 1_000),
        ])],
    )
    .await;
    let ledger_ids = |rows: Vec<LedgerRow>| ids(&rows, |l| &l.id);

    // [from, to): by time, ties by id.
    assert_eq!(
        ledger_ids(store.all_ledger(None, 0, 10_000).await.expect("ledger")),
        vec!["l-1", "l-2", "l-3", "l-4", "l-5", "l-6"]
    );
    assert_eq!(
        ledger_ids(store.all_ledger(None, 999, 1_500).await.expect("ledger")),
        vec!["l-2", "l-3", "l-4"]
    );
    assert_eq!(
        ledger_ids(
            store
                .all_ledger(Some("acme"), 100, 1_501)
                .await
                .expect("ledger")
        ),
        vec!["l-1", "l-2", "l-4", "l-5"]
    );
    assert_eq!(
        ledger_ids(
            store
                .all_ledger(Some("globex"), 1_001, 10_000)
                .await
                .expect("ledger")
        ),
        vec!["l-6"]
    );
    assert!(
        store
            .all_ledger(Some("initech"), 0, 10_000)
            .await
            .expect("ledger")
            .is_empty()
    );
    assert!(
        store
            .all_ledger(None, 2_001, 10_000)
            .await
            .expect("ledger")
            .is_empty()
    );

    // load keeps entries of periods starting at or after ledger_since_ms.
    assert_eq!(
        ledger_ids(store.load(0, 1_000, 0).await.expect("load").ledger),
        vec!["l-3", "l-4", "l-5", "l-6"]
    );
    assert_eq!(
        ledger_ids(store.load(0, 0, 0).await.expect("load").ledger),
        vec!["l-1", "l-2", "l-3", "l-4", "l-5", "l-6"]
    );
    assert!(
        store
            .load(0, 1_001, 0)
            .await
            .expect("load")
            .ledger
            .is_empty()
    );

    // Ids are unique; a duplicate fails the batch and names it.
    let result = store
        .apply(vec![Mutation::InsertLedger(vec![ledger(
            "l-1", "acme", 5, 0,
        )])])
        .await;
    match result {
        Err(StoreError::AlreadyExists { what }) => {
            assert!(what.to_string().contains("\"l-1\""), "{what}")
        }
        other => panic!("expected a duplicate ledger id to fail, got {other:?}"),
    }
    // An entry of an unknown org is refused.
    let result = store
        .apply(vec![Mutation::InsertLedger(vec![ledger(
            "l-9", "initech", 5, 0,
        )])])
        .await;
    assert!(matches!(result, Err(StoreError::Db(_))), "{result:?}");

    // Many entries in one mutation.
    let many: Vec<LedgerRow> = (0..600)
        .map(|i| ledger(&format!("m-{i:04}"), "globex", 50_000 + i, 50_000))
        .collect();
    apply(&store, vec![Mutation::InsertLedger(many)]).await;
    assert_eq!(
        store
            .all_ledger(Some("globex"), 50_000, 60_000)
            .await
            .expect("ledger")
            .len(),
        600
    );
}

async fn recent_usage_is_filtered_by_end(db: TestDb) {
    let store = db.open().await;
    apply(
        &store,
        vec![
            Mutation::InsertUsage(usage("acme", "j-3", 200, 300)),
            Mutation::InsertUsage(usage("acme", "j-1", 0, 100)),
            Mutation::InsertUsage(usage("acme", "j-2", 100, 200)),
            Mutation::InsertUsage(usage("globex", "j-4", 150, 250)),
        ],
    )
    .await;
    let subjects = |rows: Vec<UsageRow>| ids(&rows, |u| &u.subject_id);

    // Ending at or after usage_since_ms, oldest first.
    assert_eq!(
        subjects(store.load(0, 0, 200).await.expect("load").recent_usage),
        vec!["j-2", "j-4", "j-3"]
    );
    assert_eq!(
        subjects(store.load(0, 0, 201).await.expect("load").recent_usage),
        vec!["j-4", "j-3"]
    );
    assert_eq!(
        subjects(store.load(0, 0, i64::MIN).await.expect("load").recent_usage),
        vec!["j-1", "j-2", "j-4", "j-3"]
    );
    assert!(
        store
            .load(0, 0, 301)
            .await
            .expect("load")
            .recent_usage
            .is_empty()
    );
    assert_eq!(
        store.load(0, 0, 300).await.expect("load").recent_usage,
        vec![usage("acme", "j-3", 200, 300)]
    );
}

async fn billing_rows_upsert_update_delete_and_load(db: TestDb) {
    use berth_scheduler::core::invoice::{InvoiceLine, LineKind};
    let store = db.open().await;
    let price = |krw, idle| PriceRow {
        class: "h100".to_owned(),
        krw_per_hour: krw,
        idle_krw_per_hour: idle,
        updated_ms: 1,
    };
    let discount = DiscountRow {
        org: "acme".to_owned(),
        percent: 50,
        reason: "부산 소재 중소기업".to_owned(),
        updated_ms: 2,
    };
    let invoice = |id: &str, state| InvoiceRow {
        id: id.to_owned(),
        org: "acme".to_owned(),
        month: "2026-11".to_owned(),
        period_start_ms: 10,
        period_end_ms: 20,
        state,
        lines: vec![InvoiceLine {
            project: Some("p1".to_owned()),
            class: "h100".to_owned(),
            kind: LineKind::Idle,
            device_ms: -5,
            covered_ms: -5,
            billable_ms: 0,
            krw_per_hour: 1000,
            discount_percent: 50,
            amount_krw: 0,
        }],
        subtotal_krw: 17_500,
        vat_krw: 1_750,
        total_krw: 19_250,
        discount_percent: 50,
        discount_reason: "부산 소재 중소기업".to_owned(),
        created_ms: 3,
        issued_ms: None,
        paid_ms: None,
        voided_ms: None,
    };
    apply(
        &store,
        vec![
            Mutation::UpsertPrice(price(3500, None)),
            Mutation::UpsertDiscount(discount.clone()),
            Mutation::UpsertInvoice(Arc::new(invoice("i1", InvoiceState::Draft))),
            Mutation::UpsertInvoice(Arc::new(invoice("i2", InvoiceState::Draft))),
        ],
    )
    .await;
    let issued = InvoiceRow {
        issued_ms: Some(4),
        ..invoice("i1", InvoiceState::Issued)
    };
    apply(
        &store,
        vec![
            Mutation::UpsertPrice(price(4000, Some(1000))),
            Mutation::UpsertInvoice(Arc::new(issued.clone())),
            Mutation::DeleteInvoice {
                id: "i2".to_owned(),
            },
        ],
    )
    .await;
    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!(snap.prices, vec![price(4000, Some(1000))]);
    assert_eq!(snap.discounts, vec![discount]);
    assert_eq!(snap.invoices, vec![issued]);
    let raw = db.raw().await;
    assert_eq!(count_rows(&raw, "prices").await, 1);
    assert_eq!(count_rows(&raw, "invoices").await, 1);
}

async fn policy_is_one_row(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.load(0, 0, 0).await.expect("load").policy, None);

    let first = PolicyRow {
        json: r#"{"preemption":false}"#.to_owned(),
        updated_ms: 1_000,
    };
    let second = PolicyRow {
        json: r#"{"preemption":true,"idle_reclaim_ms":1800000}"#.to_owned(),
        updated_ms: 2_000,
    };
    apply(&store, vec![Mutation::SetPolicy(first.clone())]).await;
    assert_eq!(store.load(0, 0, 0).await.expect("load").policy, Some(first));
    apply(&store, vec![Mutation::SetPolicy(second.clone())]).await;
    // Twice in one batch: the last wins.
    apply(
        &store,
        vec![
            Mutation::SetPolicy(PolicyRow::default()),
            Mutation::SetPolicy(second.clone()),
        ],
    )
    .await;
    assert_eq!(
        store.load(0, 0, 0).await.expect("load").policy,
        Some(second)
    );

    let raw = db.raw().await;
    assert_eq!(count_rows(&raw, "scheduler_policy").await, 1);
    // The schema allows no second row.
    let result = raw
        .execute_unprepared(
            "INSERT INTO scheduler_policy (id, json, updated_ms) VALUES (2, '{}', 0)",
        )
        .await;
    assert!(result.is_err(), "a second policy row was accepted");
    assert_eq!(count_rows(&raw, "scheduler_policy").await, 1);
    raw.close().await.expect("close");
}

async fn updates_of_unknown_rows_fail_the_batch(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;

    // An unknown org fails the whole batch, and the error names it.
    let result = store
        .apply(vec![
            Mutation::InsertOrg(org("globex")),
            Mutation::UpsertBudget(budget("acme", "h100")),
            Mutation::UpdateClass(ClassRow {
                rate: 9.0,
                ..class("h100")
            }),
            Mutation::SetPolicy(PolicyRow {
                json: "{}".to_owned(),
                updated_ms: 1,
            }),
            Mutation::InsertLedger(vec![ledger("l-1", "acme", 1, 0)]),
            Mutation::UpdateOrg(org("nowhere")),
        ])
        .await;
    match result {
        Err(StoreError::Db(message)) => {
            assert!(message.contains("org \"nowhere\""), "{message}")
        }
        other => panic!("expected an unknown org to fail, got {other:?}"),
    }
    let snap = store.load(0, i64::MIN, i64::MIN).await.expect("load");
    assert_eq!(snap.orgs, vec![org("acme")]);
    assert_eq!(snap.classes, vec![class("h100")]);
    assert!(snap.budgets.is_empty() && snap.ledger.is_empty());
    assert_eq!(snap.policy, None);

    // An unknown class too.
    let result = store
        .apply(vec![
            Mutation::UpdateOrg(OrgRow {
                weight: 0.5,
                ..org("acme")
            }),
            Mutation::UpdateClass(class("a100")),
        ])
        .await;
    match result {
        Err(StoreError::Db(message)) => {
            assert!(message.contains("device class \"a100\""), "{message}")
        }
        other => panic!("expected an unknown class to fail, got {other:?}"),
    }
    assert_eq!(
        store.load(0, 0, 0).await.expect("load").orgs,
        vec![org("acme")]
    );

    // Updating to the same values is not "unknown".
    apply(
        &store,
        vec![
            Mutation::UpdateOrg(org("acme")),
            Mutation::UpdateClass(class("h100")),
        ],
    )
    .await;
}

/// Inserts `values` into `table` with the query builder (bound values on both backends).
async fn insert_raw(db: &DatabaseConnection, table: &str, values: Vec<(&str, sea_orm::Value)>) {
    let (columns, values): (Vec<_>, Vec<_>) = values
        .into_iter()
        .map(|(c, v)| (Alias::new(c), sea_orm::sea_query::SimpleExpr::from(v)))
        .unzip();
    let insert = Query::insert()
        .into_table(Alias::new(table))
        .columns(columns)
        .values_panic(values)
        .to_owned();
    db.execute(&insert)
        .await
        .unwrap_or_else(|e| panic!("inserting into {table}: {e}"));
}

async fn old_database_migrates_forward(db: TestDb) {
    // A database of the first release, with data in it.
    let raw = db.raw().await;
    Migrator::up(&raw, Some(1))
        .await
        .expect("initial migration");
    let json = |v: serde_json::Value| sea_orm::Value::from(v.to_string());
    let text = |s: &str| sea_orm::Value::from(s.to_owned());
    let none_text = sea_orm::Value::String(None);
    let none_int = sea_orm::Value::BigInt(None);
    insert_raw(
        &raw,
        "orgs",
        vec![
            ("name", text("acme")),
            ("description", text("org acme")),
            ("created_ms", 1_002i64.into()),
        ],
    )
    .await;
    insert_raw(
        &raw,
        "device_classes",
        vec![
            ("name", text("h100")),
            ("description", text("80 GB")),
            ("vendor", text("nvidia")),
            ("created_ms", 1_001i64.into()),
        ],
    )
    .await;
    insert_raw(
        &raw,
        "reservations",
        vec![
            ("id", text("r-old")),
            ("org", text("acme")),
            ("user_id", text("u-alice")),
            ("user_name", text("alice")),
            ("class", text("h100")),
            ("count", 2i32.into()),
            ("site", text("busan")),
            ("start_ms", 10_000i64.into()),
            ("end_ms", 20_000i64.into()),
            ("state", text("confirmed")),
            ("reason", text("")),
            ("devices", json(serde_json::json!(["GPU-a", "GPU-b"]))),
            ("created_ms", 2_000i64.into()),
        ],
    )
    .await;
    let old_job = job("j-old", "acme", JobState::Pending, 3_000);
    insert_raw(
        &raw,
        "jobs",
        vec![
            ("id", text("j-old")),
            ("name", text(&old_job.name)),
            ("org", text("acme")),
            ("user_id", text("u-alice")),
            ("user_name", text("alice")),
            ("class", text("h100")),
            ("count", 1i32.into()),
            ("image", text(&old_job.image)),
            ("command", json(serde_json::json!(old_job.command))),
            ("env", json(serde_json::json!(old_job.env))),
            ("datasets", json(serde_json::json!(old_job.datasets))),
            ("network", text("none")),
            ("max_runtime_ms", 3_600_000i64.into()),
            ("reservation_id", none_text.clone()),
            ("state", text("pending")),
            ("reason", text("")),
            ("node", none_text),
            ("devices", json(serde_json::json!([]))),
            ("exit_code", sea_orm::Value::Int(None)),
            ("created_ms", 3_000i64.into()),
            ("started_ms", none_int.clone()),
            ("finished_ms", none_int.clone()),
            ("deadline_ms", none_int),
            ("generation", 0i64.into()),
        ],
    )
    .await;
    insert_raw(
        &raw,
        "usage_records",
        vec![
            ("org", text("acme")),
            ("user_id", text("u-alice")),
            ("kind", text("job")),
            ("subject_id", text("j-0")),
            ("class", text("h100")),
            ("devices", 2i32.into()),
            ("start_ms", 100i64.into()),
            ("end_ms", 200i64.into()),
            ("device_ms", 200i64.into()),
        ],
    )
    .await;
    raw.close().await.expect("close");

    // Opening it with this release migrates it forward; every row is kept, with the
    // new columns' defaults.
    let old_org = OrgRow {
        weight: 1.0,
        ..org("acme")
    };
    let old_class = ClassRow {
        rate: 1.0,
        ..class("h100")
    };
    let old_res = reservation("r-old", "acme", ReservationState::Confirmed, 2_000);
    let check_old_rows = |snap: Snapshot| {
        assert_eq!(snap.orgs, vec![old_org.clone()]);
        assert_eq!(snap.classes, vec![old_class.clone()]);
        assert_eq!(snap.reservations, vec![old_res.clone()]);
        assert_eq!(snap.jobs, vec![old_job.clone()]);
        assert_eq!(snap.recent_usage, vec![usage("acme", "j-0", 100, 200)]);
        assert!(snap.budgets.is_empty() && snap.ledger.is_empty() && snap.policy.is_none());
    };
    let store = db.open().await;
    check_old_rows(store.load(0, 0, 0).await.expect("load"));

    // The new tables and columns work on the migrated database.
    let mut res = old_res.clone();
    res.charge = Charge {
        budget_class: "h100".to_owned(),
        period_start_ms: 0,
        amount_ms: 20_000,
        project: None,
    };
    res.idle_since_ms = Some(15_000);
    let mut requeued = job("j-new", "acme", JobState::Pending, 4_000);
    requeued.requeued_from = Some("j-old".to_owned());
    requeued.preemptible = true;
    requeued.nodes = 2;
    apply(
        &store,
        vec![
            Mutation::UpdateOrg(org("acme")),
            Mutation::UpsertReservation(res.clone().into()),
            Mutation::UpsertJob(requeued.clone().into()),
            Mutation::UpsertBudget(budget("acme", "h100")),
            Mutation::InsertLedger(vec![ledger("l-1", "acme", 2_000, 0)]),
            Mutation::SetPolicy(PolicyRow {
                json: "{}".to_owned(),
                updated_ms: 5,
            }),
        ],
    )
    .await;
    let snap = store.load(0, 0, 0).await.expect("load");
    assert_eq!(snap.orgs, vec![org("acme")]);
    assert_eq!(snap.reservations, vec![res]);
    assert_eq!(snap.jobs, vec![old_job.clone(), requeued]);
    assert_eq!(snap.budgets.len(), 1);
    assert_eq!(snap.ledger.len(), 1);
    drop(store);

    // The migrations after the initial one roll back cleanly, newest first, keeping the
    // old rows, and apply again.
    let raw = db.raw().await;
    let later = Migrator::migrations().len() as u32 - 1;
    Migrator::down(&raw, Some(later))
        .await
        .expect("rolling back");
    assert_eq!(count_rows(&raw, "jobs").await, 2);
    raw.execute_unprepared("DELETE FROM jobs WHERE id = 'j-new'")
        .await
        .expect("delete");
    raw.close().await.expect("close");
    let store = db.open().await;
    check_old_rows(store.load(0, 0, 0).await.expect("load"));
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = SeaStore::connect("sqlite::memory:").await.expect("open");
    apply(&store, base()).await;
    apply(
        &store,
        vec![Mutation::InsertClaims(vec![claim("GPU-a", "r-1", 0, 100)])],
    )
    .await;
    expect_conflict(
        store
            .apply(vec![Mutation::InsertClaims(vec![claim(
                "GPU-a", "r-2", 50, 150,
            )])])
            .await,
        "GPU-a",
    );
    assert_eq!(store.load(0, 0, 0).await.expect("load").devices.len(), 4);
}

/// Waits until a session of `db` waits for a lock in a statement that contains `what`;
/// fails if `task`, which should be the one waiting, ends first.
async fn until_waiting_for_a_lock<T>(
    db: &DatabaseConnection,
    what: &str,
    task: &tokio::task::JoinHandle<T>,
) {
    let sql = format!(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock' \
           AND query LIKE '%{what}%'"
    );
    loop {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                sql.clone(),
            ))
            .await
            .expect("reading pg_stat_activity")
            .expect("a count");
        if row.try_get_by_index::<i64>(0).expect("a count") > 0 {
            return;
        }
        assert!(
            !task.is_finished(),
            "ended without waiting for a lock in {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The name of job `id`, read outside the store.
async fn job_name(db: &DatabaseConnection, id: &str) -> String {
    db.query_one_raw(Statement::from_string(
        db.get_database_backend(),
        format!("SELECT name FROM jobs WHERE id = '{id}'"),
    ))
    .await
    .expect("reading a job")
    .expect("the job")
    .try_get_by_index::<String>(0)
    .expect("its name")
}

/// The leader renews its lease while its own writes are in flight (a renewal stuck behind
/// them could let the lease lapse under a working leader), but a standby takes an expired
/// lease over only once every write of the old term has ended, and the old leader's
/// writes are refused from then on.
async fn the_leader_renews_beside_its_writes_and_a_takeover_waits_for_them(db: TestDb) {
    let a = Arc::new(db.open().await);
    let b = db.open().await;
    let (raw, locker) = (db.raw().await, db.raw().await);
    let candidate = |id: &str| Candidate {
        id: id.into(),
        address: format!("http://{id}:7400"),
        started_ms: 1,
    };
    let (me, other) = (candidate("sched-a"), candidate("sched-b"));
    apply(&a, base()).await;
    apply(
        &a,
        vec![Mutation::UpsertJob(
            job("j-1", "acme", JobState::Pending, 1_000).into(),
        )],
    )
    .await;
    let first = a.campaign(&me, 60_000).await.expect("a campaigns");
    assert!(first.held_by(&me.id), "{first:?}");

    // A write of this term, held inside its transaction (after the fence) by a row lock.
    let blocker = locker.begin().await.expect("begin");
    blocker
        .execute_unprepared("SELECT id FROM jobs WHERE id = 'j-1' FOR UPDATE")
        .await
        .expect("locking the job");
    let write = tokio::spawn({
        let a = a.clone();
        let mut row = job("j-1", "acme", JobState::Pending, 1_000);
        row.name = "written-by-a".into();
        async move { a.apply(vec![Mutation::UpsertJob(row.into())]).await }
    });
    until_waiting_for_a_lock(&raw, "INSERT INTO \"jobs\"", &write).await;

    // The holder renews at once, the write still open.
    let renewed = tokio::time::timeout(std::time::Duration::from_secs(20), a.campaign(&me, 60_000))
        .await
        .expect("the renewal waited for the leader's own write")
        .expect("a renews");
    assert_eq!(renewed.token, first.token);
    assert!(renewed.expires_ms >= first.expires_ms, "{renewed:?}");
    assert!(!write.is_finished(), "the write was not held open");

    // The lease lapses; the standby's takeover waits for the open write.
    a.campaign(&me, 1).await.expect("a renews for 1 ms");
    let takeover = tokio::spawn(async move { (b.campaign(&other, 60_000).await, b) });
    until_waiting_for_a_lock(&raw, "FOR UPDATE", &takeover).await;

    blocker.rollback().await.expect("releasing the job");
    write
        .await
        .expect("the write's task")
        .expect("the write of the term it began in lands");
    let (taken, b) = takeover.await.expect("the takeover's task");
    let taken = taken.expect("b campaigns");
    assert_eq!(taken.holder, "sched-b");
    assert_eq!(taken.token, first.token + 1);
    assert_eq!(job_name(&raw, "j-1").await, "written-by-a");

    // The old leader's writes are refused from now on; the new one's land.
    let mut row = job("j-1", "acme", JobState::Pending, 1_000);
    row.name = "late".into();
    let late = a.apply(vec![Mutation::UpsertJob(row.into())]).await;
    assert!(matches!(late, Err(StoreError::Fenced(_))), "{late:?}");
    let late = a.apply(vec![Mutation::InsertOrg(org("late"))]).await;
    assert!(matches!(late, Err(StoreError::Fenced(_))), "{late:?}");
    let mut row = job("j-1", "acme", JobState::Pending, 1_000);
    row.name = "written-by-b".into();
    apply(&b, vec![Mutation::UpsertJob(row.into())]).await;
    assert_eq!(job_name(&raw, "j-1").await, "written-by-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_the_leader_renews_beside_its_writes_and_a_takeover_waits_for_them() {
    run_postgres(the_leader_renews_beside_its_writes_and_a_takeover_waits_for_them).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let result = SeaStore::connect("mysql://root@localhost/berth").await;
    assert!(matches!(result, Err(StoreError::Db(_))), "{result:?}");
}

#[test]
fn database_url_is_rewritten() {
    assert_eq!(
        with_database("postgres://berth:berth@127.0.0.1:5432/berth_test", "x"),
        "postgres://berth:berth@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

async fn pages_walk_every_row_once_with_filters(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    // Same creation time for several jobs: the id breaks the tie, so no page repeats or
    // skips one.
    let mut batch = Vec::new();
    for i in 0..7 {
        let mut j = job(&format!("j-{i}"), "acme", JobState::Pending, 1_000 + i / 3);
        if i % 2 == 1 {
            j.class = "npu".into();
            j.state = JobState::Succeeded;
            j.user_name = "bob".into();
            j.finished_ms = Some(2_000);
        }
        batch.push(Mutation::UpsertJob(j.into()));
    }
    apply(&store, batch).await;
    let walk = |filter: JobFilter| {
        let store = &store;
        async move {
            let mut out: Vec<String> = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_jobs(&filter, &Page { after, limit: 2 })
                    .await
                    .expect("page");
                let n = page.len();
                after = page.last().map(|j| Cursor {
                    key: j.created_ms,
                    id: j.id.clone(),
                });
                out.extend(page.into_iter().map(|j| j.id));
                if n < 2 {
                    return out;
                }
            }
        }
    };
    let everything = JobFilter {
        include_finished: true,
        ..JobFilter::default()
    };
    assert_eq!(
        walk(everything.clone()).await,
        ["j-6", "j-5", "j-4", "j-3", "j-2", "j-1", "j-0"],
        "newest first, ties by id"
    );
    assert_eq!(
        walk(JobFilter::default()).await,
        ["j-6", "j-4", "j-2", "j-0"],
        "live only"
    );
    let bobs = JobFilter {
        user: Some("bob".into()),
        ..everything.clone()
    };
    assert_eq!(walk(bobs).await, ["j-5", "j-3", "j-1"]);
    let done_npu = JobFilter {
        states: vec![JobState::Succeeded],
        class: Some("npu".into()),
        since_ms: Some(1_001),
        ..JobFilter::default()
    };
    assert_eq!(walk(done_npu).await, ["j-5", "j-3"]);
    let ended = JobFilter {
        ended_only: true,
        ..everything.clone()
    };
    assert_eq!(
        walk(ended.clone()).await,
        ["j-5", "j-3", "j-1"],
        "the index of ended jobs"
    );
    let acme_ended = JobFilter {
        org: Some("acme".into()),
        states: vec![JobState::Succeeded],
        ..ended
    };
    assert_eq!(walk(acme_ended).await, ["j-5", "j-3", "j-1"]);
    let other_org = JobFilter {
        org: Some("globex".into()),
        ..everything
    };
    assert!(walk(other_org).await.is_empty());
}

async fn retention_prunes_only_what_is_old_in_small_batches(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    let mut old = job("j-old", "acme", JobState::Succeeded, 100);
    old.finished_ms = Some(200);
    let mut recent = job("j-new", "acme", JobState::Succeeded, 5_000);
    recent.finished_ms = Some(6_000);
    let live = job("j-live", "acme", JobState::Running, 50);
    let mut batch = vec![
        Mutation::UpsertJob(old.into()),
        Mutation::UpsertJob(recent.into()),
        Mutation::UpsertJob(live.into()),
        Mutation::InsertClaims(vec![claim("GPU-a", "j-old", 100, 200)]),
        Mutation::InsertUsage(usage("acme", "j-old", 100, 200)),
        Mutation::InsertUsage(usage("acme", "j-new", 5_000, 6_000)),
        Mutation::InsertLedger(vec![
            ledger("l-old", "acme", 150, 0),
            ledger("l-new", "acme", 5_500, 5_000),
        ]),
    ];
    for i in 0..5 {
        batch.push(Mutation::Audit(audit(10 + i, "old.thing")));
    }
    batch.push(Mutation::Audit(audit(9_000, "new.thing")));
    apply(&store, batch).await;
    for (job, seq) in [("j-old", 1), ("j-old", 2), ("j-new", 1), ("j-live", 1)] {
        store
            .append_logs(job, vec![chunk(seq, "x")])
            .await
            .expect("logs");
    }

    // Audit: two at a time, only the old ones.
    let mut rounds = Vec::new();
    loop {
        let n = store
            .prune(Prunable::Audit, 1_000, 2)
            .await
            .expect("prune")
            .rows;
        rounds.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(rounds, [2, 2, 1, 0], "small batches");
    let left = store.audit_first(100).await.expect("audit");
    assert_eq!(ids(&left, |a| &a.action), ["new.thing"]);

    // Logs of jobs that ended before the cut-off; a live job's logs stay.
    assert_eq!(
        store
            .prune(Prunable::Logs, 1_000, 10)
            .await
            .expect("logs")
            .rows,
        2
    );
    assert!(
        store
            .read_logs("j-old", 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(
        store.read_logs("j-new", 0, 10).await.expect("read").len(),
        1
    );
    assert_eq!(
        store.read_logs("j-live", 0, 10).await.expect("read").len(),
        1
    );

    // Usage and ledger rows by their own times.
    assert_eq!(
        store
            .prune(Prunable::Usage, 1_000, 10)
            .await
            .expect("u")
            .rows,
        1
    );
    assert_eq!(
        store.all_usage(None, 0, 10_000).await.expect("usage"),
        vec![usage("acme", "j-new", 5_000, 6_000)]
    );
    assert_eq!(
        store
            .prune(Prunable::Ledger, 1_000, 10)
            .await
            .expect("l")
            .rows,
        1
    );
    let ledger_left = store.all_ledger(None, 0, 10_000).await.expect("ledger");
    assert_eq!(ids(&ledger_left, |e| &e.id), ["l-new"]);

    // Finished jobs (and their claims) that ended before the cut-off; live ones stay.
    let pruned = store
        .prune(Prunable::Finished, 1_000, 10)
        .await
        .expect("finished")
        .rows;
    assert_eq!(pruned, 2, "the old job and its claim");
    assert!(store.get_job("j-old").await.expect("get").is_none());
    assert!(store.get_job("j-new").await.expect("get").is_some());
    assert!(store.get_job("j-live").await.expect("get").is_some());
    assert!(
        store
            .list_claims(i64::MIN)
            .await
            .expect("claims")
            .is_empty()
    );
}

fn project(id: &str, org: &str, state: ProjectState, grants: &[(&str, i64)]) -> ProjectRow {
    ProjectRow {
        id: id.into(),
        org: org.into(),
        title: "과제 제목".into(),
        programme: "NIPA HPC".into(),
        start_ms: 1_000,
        end_ms: 100_000,
        contact: "alice".into(),
        state,
        reason: String::new(),
        grants: grants
            .iter()
            .map(|(class, ms)| GrantRow {
                class: (*class).into(),
                device_ms: *ms,
            })
            .collect(),
        created_ms: 900,
        updated_ms: 900,
        expiry_warned_ms: None,
    }
}

async fn projects_round_trip_with_their_grants_and_ledger(db: TestDb) {
    let store = db.open().await;
    let mut batch = base();
    batch.push(Mutation::InsertClass(class("rngd")));
    let p1 = project(
        "p-1",
        "acme",
        ProjectState::Active,
        &[("h100", 7_200_000), ("rngd", 3_600_000)],
    );
    batch.push(Mutation::UpsertProject(p1.clone()));
    apply(&store, batch).await;

    // Grants are replaced as a whole; the state and reason change in place.
    let mut p1b = p1.clone();
    p1b.state = ProjectState::Revoked;
    p1b.reason = "revoked by admin".into();
    p1b.grants.truncate(1);
    p1b.updated_ms = 5_000;
    // A project charge from long before the load's ledger window is still loaded; an
    // old budget charge is not.
    let mut on_project = ledger("l-p", "acme", 1_500, 1_000);
    on_project.project_id = Some("p-1".into());
    let old_budget = ledger("l-b", "acme", 1_600, 1_000);
    let mut res = reservation("r-1", "acme", ReservationState::Confirmed, 1_100);
    res.project = Some("p-1".into());
    res.charge.project = Some("p-1".into());
    let mut j = job("j-1", "acme", JobState::Pending, 1_200);
    j.project = Some("p-1".into());
    apply(
        &store,
        vec![
            Mutation::UpsertProject(p1b.clone()),
            Mutation::InsertLedger(vec![on_project, old_budget]),
            Mutation::UpsertReservation(std::sync::Arc::new(res)),
            Mutation::UpsertJob(std::sync::Arc::new(j)),
            Mutation::SetDefaultProject {
                user_id: "u-alice".into(),
                project: Some("p-1".into()),
            },
        ],
    )
    .await;
    let mut allow = org("acme");
    allow.overage = Overage::Allow;
    apply(&store, vec![Mutation::UpdateOrg(allow)]).await;

    let snap = store.load(5_000, 50_000, 0).await.expect("load");
    assert_eq!(snap.projects, vec![p1b]);
    assert_eq!(ids(&snap.ledger, |l| &l.id), ["l-p"]);
    assert_eq!(snap.ledger[0].project_id.as_deref(), Some("p-1"));
    assert_eq!(snap.reservations[0].project.as_deref(), Some("p-1"));
    assert_eq!(snap.reservations[0].charge.project.as_deref(), Some("p-1"));
    assert_eq!(snap.jobs[0].project.as_deref(), Some("p-1"));
    assert_eq!(snap.jobs[0].charge.project, None);
    let alice = snap.users.iter().find(|u| u.id == "u-alice").unwrap();
    assert_eq!(alice.default_project.as_deref(), Some("p-1"));
    let acme = snap.orgs.iter().find(|o| o.name == "acme").unwrap();
    assert_eq!(acme.overage, Overage::Allow);

    // A project of an unknown org is refused by the schema.
    let stray = project("p-2", "nobody", ProjectState::Requested, &[("h100", 1)]);
    assert!(
        store
            .apply(vec![Mutation::UpsertProject(stray)])
            .await
            .is_err()
    );
}

fn delivery(
    id: &str,
    dedupe: Option<&str>,
    channel: Channel,
    user: &str,
    t: i64,
) -> NotificationRow {
    NotificationRow {
        id: id.into(),
        dedupe: dedupe.map(str::to_owned),
        event: "job-end".into(),
        org: "acme".into(),
        object_kind: "job".into(),
        object_id: "j1".into(),
        channel,
        target: if channel == Channel::Email {
            "kim@acme.test".into()
        } else {
            "https://hooks.example.kr/x".into()
        },
        user_id: user.into(),
        webhook_id: if channel == Channel::Webhook {
            "wh-1".into()
        } else {
            String::new()
        },
        payload: "{}".into(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_ms: t,
        last_error: String::new(),
        created_ms: t,
        updated_ms: t,
        sent_ms: None,
    }
}

/// The outbox keeps one delivery per dedupe key (across batches), lists what a filter
/// allows newest first, finds due rows, and records attempts; subscriptions and webhooks
/// load back.
async fn notifications_outbox_dedupes_lists_and_records(db: TestDb) {
    let store = db.open().await;
    apply(&store, base()).await;
    apply(
        &store,
        vec![
            Mutation::SetSubscription(SubscriptionRow {
                user_id: "u1".into(),
                org: "acme".into(),
                email: "kim@acme.test".into(),
                events: vec!["job-end".into(), "budget".into()],
                updated_ms: 1,
            }),
            Mutation::InsertWebhook(WebhookRow {
                id: "wh-1".into(),
                org: "acme".into(),
                url: "https://hooks.example.kr/x".into(),
                events: vec![],
                created_ms: 1,
            }),
            Mutation::InsertNotifications(vec![
                delivery(
                    "n1",
                    Some("budget:acme:gpu:0:50:email:u1"),
                    Channel::Email,
                    "u1",
                    10,
                ),
                delivery("n2", None, Channel::Webhook, "", 20),
            ]),
        ],
    )
    .await;
    // The same occurrence staged again (a sweep after a restart) is dropped; the rest of
    // the batch commits.
    apply(
        &store,
        vec![Mutation::InsertNotifications(vec![
            delivery(
                "n3",
                Some("budget:acme:gpu:0:50:email:u1"),
                Channel::Email,
                "u1",
                30,
            ),
            delivery("n4", None, Channel::Email, "u2", 40),
        ])],
    )
    .await;
    let all = store
        .list_notifications(&NotificationFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(ids(&all, |n| &n.id), ["n4", "n2", "n1"]);
    let kim = NotificationFilter {
        org: Some("acme".into()),
        user_id: Some("u1".into()),
        webhooks: false,
    };
    let mine = store.list_notifications(&kim, 10).await.unwrap();
    assert_eq!(ids(&mine, |n| &n.id), ["n1"]);
    let org_admin = NotificationFilter {
        webhooks: true,
        ..kim.clone()
    };
    let seen = store.list_notifications(&org_admin, 10).await.unwrap();
    assert_eq!(ids(&seen, |n| &n.id), ["n2", "n1"]);
    let other = NotificationFilter {
        org: Some("other".into()),
        user_id: Some("u9".into()),
        webhooks: true,
    };
    assert!(
        store
            .list_notifications(&other, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let due = store.due_notifications(25, 10).await.unwrap();
    assert_eq!(ids(&due, |n| &n.id), ["n1", "n2"]);
    apply(
        &store,
        vec![
            Mutation::UpdateNotification(DeliveryOutcome {
                id: "n1".into(),
                state: DeliveryState::Sent,
                attempts: 1,
                next_ms: 26,
                last_error: String::new(),
                updated_ms: 26,
                sent_ms: Some(26),
            }),
            Mutation::UpdateNotification(DeliveryOutcome {
                id: "n2".into(),
                state: DeliveryState::Pending,
                attempts: 1,
                next_ms: 1_000,
                last_error: "HTTP 503".into(),
                updated_ms: 26,
                sent_ms: None,
            }),
        ],
    )
    .await;
    let due = store.due_notifications(100, 10).await.unwrap();
    assert_eq!(ids(&due, |n| &n.id), ["n4"]);
    let all = store
        .list_notifications(&NotificationFilter::default(), 10)
        .await
        .unwrap();
    let n2 = all.iter().find(|n| n.id == "n2").unwrap();
    assert_eq!(
        (n2.attempts, n2.next_ms, n2.last_error.as_str()),
        (1, 1_000, "HTTP 503")
    );
    let n1 = all.iter().find(|n| n.id == "n1").unwrap();
    assert_eq!((n1.state, n1.sent_ms), (DeliveryState::Sent, Some(26)));

    // Retention: sent and failed deliveries before the cut-off go; pending ones stay.
    let pruned = store
        .prune(Prunable::Notifications, 100, 10)
        .await
        .unwrap()
        .rows;
    assert_eq!(pruned, 1, "n1 was sent at 26");
    let left = store
        .list_notifications(&NotificationFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(ids(&left, |n| &n.id), ["n4", "n2"]);

    let snap = store.load(0, 0, 0).await.unwrap();
    assert_eq!(snap.subscriptions.len(), 1);
    assert_eq!(snap.subscriptions[0].events, ["job-end", "budget"]);
    assert_eq!(snap.webhooks.len(), 1);
    assert!(snap.webhooks[0].events.is_empty());
    apply(
        &store,
        vec![
            Mutation::DeleteSubscription {
                user_id: "u1".into(),
            },
            Mutation::DeleteWebhook { id: "wh-1".into() },
        ],
    )
    .await;
    let snap = store.load(0, 0, 0).await.unwrap();
    assert!(snap.subscriptions.is_empty() && snap.webhooks.is_empty());
}
