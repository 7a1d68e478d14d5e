//! One operation, one batch: an operation's consequences are committed together or not at
//! all, and a failed commit leaves memory exactly as durable as the database. A store that
//! fails on command (wrapping the real SQLite store) is put under a real scheduler, and the
//! operations that used to commit in several steps are made to fail.

mod common;

use berth_proto::v1;
use berth_scheduler::engine::Policy;
use berth_scheduler::metrics::Metrics;
use berth_scheduler::server::{self, ServerConfig};
use berth_scheduler::store::*;
use common::{authed, heartbeat, reports, sleeper};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tonic::transport::Channel;

/// Which group to fail, and a gate to hold groups at.
type Pick = Box<dyn Fn(&[&[Mutation]]) -> bool + Send + Sync>;

/// The real store, with failures on command.
struct FailingStore {
    inner: SeaStore,
    /// Fail the next group this matches (then forget it).
    fail: Mutex<Option<Pick>>,
    /// Hold the next group this matches until `release` is notified.
    hold: Mutex<Option<Pick>>,
    held: Notify,
    release: Notify,
}

impl FailingStore {
    fn fail_next(&self, pick: impl Fn(&[&[Mutation]]) -> bool + Send + Sync + 'static) {
        *self.fail.lock().unwrap() = Some(Box::new(pick));
    }
    fn hold_next(&self, pick: impl Fn(&[&[Mutation]]) -> bool + Send + Sync + 'static) {
        *self.hold.lock().unwrap() = Some(Box::new(pick));
    }
}

fn take_if(slot: &Mutex<Option<Pick>>, group: &[&[Mutation]]) -> bool {
    let mut slot = slot.lock().unwrap();
    if slot.as_ref().is_some_and(|p| p(group)) {
        *slot = None;
        true
    } else {
        false
    }
}

#[async_trait::async_trait]
impl Store for FailingStore {
    async fn apply_group(&self, group: &[&[Mutation]]) -> Result<(), StoreError> {
        if take_if(&self.hold, group) {
            self.held.notify_one();
            self.release.notified().await;
        }
        if take_if(&self.fail, group) {
            return Err(StoreError::Db("injected failure".into()));
        }
        self.inner.apply_group(group).await
    }
    async fn load(&self, now: i64, l: i64, u: i64) -> Result<Snapshot, StoreError> {
        self.inner.load(now, l, u).await
    }
    async fn list_reservations(
        &self,
        f: &ReservationFilter,
        p: &Page,
    ) -> Result<Vec<ReservationRow>, StoreError> {
        self.inner.list_reservations(f, p).await
    }
    async fn get_reservation(&self, id: &str) -> Result<Option<ReservationRow>, StoreError> {
        self.inner.get_reservation(id).await
    }
    async fn list_jobs(&self, f: &JobFilter, p: &Page) -> Result<Vec<JobRow>, StoreError> {
        self.inner.list_jobs(f, p).await
    }
    async fn get_job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        self.inner.get_job(id).await
    }
    async fn list_users(&self, org: Option<&str>) -> Result<Vec<UserRow>, StoreError> {
        self.inner.list_users(org).await
    }
    async fn list_usage(
        &self,
        f: &RangeFilter,
        p: &Page,
    ) -> Result<Vec<(i64, UsageRow)>, StoreError> {
        self.inner.list_usage(f, p).await
    }
    async fn usage_totals(
        &self,
        f: &RangeFilter,
    ) -> Result<Vec<(String, String, OwnerKind, i64)>, StoreError> {
        self.inner.usage_totals(f).await
    }
    async fn list_ledger(&self, f: &RangeFilter, p: &Page) -> Result<Vec<LedgerRow>, StoreError> {
        self.inner.list_ledger(f, p).await
    }
    async fn list_audit(
        &self,
        f: &AuditFilter,
        p: &Page,
    ) -> Result<Vec<(i64, AuditRow)>, StoreError> {
        self.inner.list_audit(f, p).await
    }
    async fn prune(&self, what: Prunable, before: i64, limit: u32) -> Result<Pruned, StoreError> {
        self.inner.prune(what, before, limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn list_tokens(
        &self,
        node: Option<&str>,
        users: Option<&[String]>,
        all: bool,
        now: i64,
    ) -> Result<Vec<TokenRow>, StoreError> {
        self.inner.list_tokens(node, users, all, now).await
    }
    async fn load_auth(&self, now: i64) -> Result<(Vec<UserRow>, Vec<TokenRow>), StoreError> {
        self.inner.load_auth(now).await
    }
    async fn get_web_session(&self, id: &str) -> Result<Option<WebSessionRow>, StoreError> {
        self.inner.get_web_session(id).await
    }
    async fn get_web_login(&self, id: &str) -> Result<Option<WebLoginRow>, StoreError> {
        self.inner.get_web_login(id).await
    }
    async fn get_user_settings(&self, user: &str) -> Result<Option<UserSettingsRow>, StoreError> {
        self.inner.get_user_settings(user).await
    }
    async fn list_notifications(
        &self,
        f: &NotificationFilter,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        self.inner.list_notifications(f, limit).await
    }
    async fn due_notifications(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        self.inner.due_notifications(now, limit).await
    }
    async fn list_claims(&self, after_ms: i64) -> Result<Vec<ClaimRow>, StoreError> {
        self.inner.list_claims(after_ms).await
    }
    async fn append_logs(&self, job_id: &str, chunks: Vec<LogRow>) -> Result<i64, StoreError> {
        self.inner.append_logs(job_id, chunks).await
    }
    async fn read_logs(
        &self,
        job: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LogRow>, StoreError> {
        self.inner.read_logs(job, after, limit).await
    }
}

struct Rig {
    server: server::RunningServer,
    store: Arc<FailingStore>,
    channel: Channel,
    admin: String,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev(dir.path().to_path_buf());
    config.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.tick = Duration::from_millis(50);
    config.policy = Policy {
        lease_ms: 600_000,
        max_poll_ms: 1_000,
        ..Policy::default()
    };
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("berth.db").display()
    );
    let store = Arc::new(FailingStore {
        inner: SeaStore::connect(&url).await.unwrap(),
        fail: Mutex::new(None),
        hold: Mutex::new(None),
        held: Notify::new(),
        release: Notify::new(),
    });
    let metrics = Arc::new(Metrics::new().unwrap());
    let server = server::start_on(config, store.clone(), None, metrics)
        .await
        .unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let admin = server.admin_token.clone().unwrap();
    let mut adm = v1::admin_client::AdminClient::new(channel.clone());
    adm.create_site(authed(
        v1::CreateSiteRequest {
            name: "s1".into(),
            description: String::new(),
        },
        &admin,
    ))
    .await
    .unwrap();
    adm.create_class(authed(
        v1::CreateClassRequest {
            name: "gpu".into(),
            description: String::new(),
            vendor: "sim".into(),
        },
        &admin,
    ))
    .await
    .unwrap();
    Rig {
        server,
        store,
        channel,
        admin,
        _dir: dir,
    }
}

impl Rig {
    async fn user(&self, org: &str, name: &str) -> String {
        let mut adm = v1::admin_client::AdminClient::new(self.channel.clone());
        let _ = adm
            .create_org(authed(
                v1::CreateOrgRequest {
                    name: org.into(),
                    description: String::new(),
                },
                &self.admin,
            ))
            .await;
        adm.create_user(authed(
            v1::CreateUserRequest {
                org: org.into(),
                name: name.into(),
                role: 0,
            },
            &self.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .token
    }

    async fn join(&self, node: &str, n: usize) -> (String, Vec<String>) {
        let join = v1::admin_client::AdminClient::new(self.channel.clone())
            .create_join_token(authed(v1::CreateJoinTokenRequest::default(), &self.admin))
            .await
            .unwrap()
            .into_inner()
            .token;
        let devices: Vec<String> = (0..n).map(|i| format!("GPU-{node}-{i}")).collect();
        let cred = v1::agent_client::AgentClient::new(self.channel.clone())
            .join(v1::JoinRequest {
                join_token: join,
                node: node.into(),
                site: "s1".into(),
                hostname: node.into(),
                devices: reports(&devices),
                agent_version: "test".into(),
                runtime: "process".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .credential;
        (cred, devices)
    }

    fn jobs(&self) -> v1::jobs_client::JobsClient<Channel> {
        v1::jobs_client::JobsClient::new(self.channel.clone())
    }

    async fn job(&self, token: &str, id: &str) -> v1::Job {
        self.jobs()
            .get_job(authed(v1::GetJobRequest { id: id.into() }, token))
            .await
            .unwrap()
            .into_inner()
    }

    /// Submits a one-device job and waits (heartbeating as the node) until it runs.
    async fn running_job(&self, token: &str, cred: &str, devices: &[String]) -> (v1::Job, u64) {
        let job = self
            .jobs()
            .submit_job(authed(sleeper(), token))
            .await
            .unwrap()
            .into_inner();
        let mut agent = v1::agent_client::AgentClient::new(self.channel.clone());
        let mut known = 0;
        loop {
            let r = agent
                .heartbeat(authed(heartbeat("n1", known, devices, vec![]), cred))
                .await
                .unwrap()
                .into_inner();
            known = r.generation;
            if r.jobs.iter().any(|d| d.job_id == job.id) {
                break;
            }
        }
        let running = v1::ObservedJob {
            job_id: job.id.clone(),
            phase: v1::JobPhase::Running as i32,
            ..Default::default()
        };
        let r = agent
            .heartbeat(authed(heartbeat("n1", known, devices, vec![running]), cred))
            .await
            .unwrap()
            .into_inner();
        (self.job(token, &job.id).await, r.generation)
    }
}

fn has(group: &[&[Mutation]], f: impl Fn(&Mutation) -> bool) -> bool {
    group.iter().flat_map(|b| b.iter()).any(f)
}

async fn ledger_len(rig: &Rig, token: &str) -> usize {
    v1::usage_client::UsageClient::new(rig.channel.clone())
        .list_ledger(authed(v1::ListLedgerRequest::default(), token))
        .await
        .unwrap()
        .into_inner()
        .entries
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_fault_records_the_quarantine_the_stops_and_the_refunds_together_or_not_at_all() {
    let rig = rig().await;
    let token = rig.user("acme", "alice").await;
    let (cred, devices) = rig.join("n1", 2).await;
    let (job, known) = rig.running_job(&token, &cred, &devices).await;
    let faulty = job.devices[0].clone();
    let mut failed = reports(&devices);
    for d in &mut failed {
        if d.uuid == faulty {
            d.health = v1::DeviceHealth::Failed as i32;
            d.health_reason = "XID 79".into();
        }
    }
    let running = v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Running as i32,
        ..Default::default()
    };
    let mut req = heartbeat("n1", known, &devices, vec![running]);
    req.devices = failed;
    req.wait = None;
    let mut agent = v1::agent_client::AgentClient::new(rig.channel.clone());

    // The commit of the fault fails: nothing of it shows, in memory or in the database.
    rig.store.fail_next(|g| {
        has(
            g,
            |m| matches!(m, Mutation::UpsertDevice(d) if d.health == Health::Failed),
        )
    });
    let err = agent
        .heartbeat(authed(req.clone(), &cred))
        .await
        .expect_err("the heartbeat whose commit failed is not acknowledged");
    assert_eq!(err.code(), tonic::Code::Internal, "{err:?}");
    assert!(
        !err.message().contains("injected"),
        "database text reaches the client: {err:?}"
    );
    let j = rig.job(&token, &job.id).await;
    assert_eq!(j.state, v1::JobState::Running as i32, "{j:?}");
    assert!(
        !j.reason.contains("stopping"),
        "no stop without its quarantine: {j:?}"
    );
    let nodes = v1::capacity_client::CapacityClient::new(rig.channel.clone())
        .list_nodes(authed(v1::ListNodesRequest::default(), &token))
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert!(
        nodes[0]
            .devices
            .iter()
            .all(|d| d.health == v1::DeviceHealth::Healthy as i32),
        "{nodes:?}"
    );

    // The same report commits next time, all of it at once.
    let r = agent
        .heartbeat(authed(req, &cred))
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.jobs.iter().all(|d| d.job_id != job.id),
        "the node is told to stop the job"
    );
    let j = rig.job(&token, &job.id).await;
    assert!(
        j.reason.contains("stopping") && j.reason.contains(&faulty),
        "{j:?}"
    );
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_reservation_ends_its_jobs_in_the_same_batch() {
    let rig = rig().await;
    let token = rig.user("acme", "alice").await;
    let (_cred, _devices) = rig.join("n1", 2).await;
    let mut res = v1::reservations_client::ReservationsClient::new(rig.channel.clone());
    let now = berth_proto::time::now_ms();
    let r = res
        .create_reservation(authed(
            v1::CreateReservationRequest {
                class: "gpu".into(),
                count: 2,
                start: Some(berth_proto::time::ms_to_ts(now + 3_600_000)),
                end: Some(berth_proto::time::ms_to_ts(now + 7_200_000)),
                site: String::new(),
                project: String::new(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let waiting = rig
        .jobs()
        .submit_job(authed(
            v1::SubmitJobRequest {
                reservation_id: r.id.clone(),
                count: 1,
                image: "busybox".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let ledger_before = ledger_len(&rig, &token).await;
    rig.store.fail_next(|g| {
        has(g, |m| {
            matches!(m, Mutation::UpsertReservation(r) if r.state == ReservationState::Cancelled)
        })
    });
    let cancel = v1::CancelReservationRequest { id: r.id.clone() };
    res.cancel_reservation(authed(cancel.clone(), &token))
        .await
        .expect_err("not acknowledged");
    let shown = res
        .get_reservation(authed(
            v1::GetReservationRequest { id: r.id.clone() },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.state, v1::ReservationState::Confirmed as i32);
    let j = rig.job(&token, &waiting.id).await;
    assert_eq!(j.state, v1::JobState::Pending as i32, "{j:?}");
    assert_eq!(
        ledger_len(&rig, &token).await,
        ledger_before,
        "no refund alone"
    );

    let done = res
        .cancel_reservation(authed(cancel, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, v1::ReservationState::Cancelled as i32);
    let j = rig.job(&token, &waiting.id).await;
    assert_eq!(j.state, v1::JobState::Cancelled as i32, "{j:?}");
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_a_node_down_ends_its_jobs_in_the_same_batch() {
    let rig = rig().await;
    let token = rig.user("acme", "alice").await;
    let (cred, devices) = rig.join("n1", 2).await;
    let (job, _) = rig.running_job(&token, &cred, &devices).await;
    let mut adm = v1::admin_client::AdminClient::new(rig.channel.clone());
    let down = v1::MarkNodeDownRequest { node: "n1".into() };
    rig.store.fail_next(|g| {
        has(
            g,
            |m| matches!(m, Mutation::UpsertNode(n) if n.state == NodeState::Down),
        )
    });
    adm.mark_node_down(authed(down.clone(), &rig.admin))
        .await
        .expect_err("not acknowledged");
    let j = rig.job(&token, &job.id).await;
    assert_eq!(j.state, v1::JobState::Running as i32, "{j:?}");
    let node = adm
        .mark_node_down(authed(down, &rig.admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node.state, v1::NodeState::Down as i32);
    let j = rig.job(&token, &job.id).await;
    assert_eq!(j.state, v1::JobState::Lost as i32, "{j:?}");
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_fails_the_requests_decided_after_it_and_rolls_memory_back() {
    let rig = rig().await;
    let mut adm = v1::admin_client::AdminClient::new(rig.channel.clone());
    // Hold the commit of org "x" and fail it once the user created in it (decided on the
    // live state, where "x" exists) is queued behind it.
    rig.store
        .hold_next(|g| has(g, |m| matches!(m, Mutation::InsertOrg(o) if o.name == "x")));
    rig.store
        .fail_next(|g| has(g, |m| matches!(m, Mutation::InsertOrg(o) if o.name == "x")));
    let org = {
        let mut adm = adm.clone();
        let admin = rig.admin.clone();
        tokio::spawn(async move {
            adm.create_org(authed(
                v1::CreateOrgRequest {
                    name: "x".into(),
                    description: String::new(),
                },
                &admin,
            ))
            .await
        })
    };
    rig.store.held.notified().await;
    let user = {
        let mut adm = adm.clone();
        let admin = rig.admin.clone();
        tokio::spawn(async move {
            adm.create_user(authed(
                v1::CreateUserRequest {
                    org: "x".into(),
                    name: "xavier".into(),
                    role: 0,
                },
                &admin,
            ))
            .await
        })
    };
    // Wait (on the engine, not the clock) until the user's batch is queued behind the org's.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.server.engine.writes_in_flight() < 2 {
        assert!(Instant::now() < deadline, "the second request never queued");
        tokio::task::yield_now().await;
    }
    rig.store.release.notify_one();
    assert!(
        org.await.unwrap().is_err(),
        "the failed org is not acknowledged"
    );
    let u = user.await.unwrap();
    let e = u.expect_err("a user in an org that was never committed is not acknowledged");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    // Memory was rolled back: the org does not exist, and creating it again works.
    let orgs = adm
        .list_orgs(authed(v1::ListOrgsRequest {}, &rig.admin))
        .await
        .unwrap()
        .into_inner()
        .orgs;
    assert!(orgs.iter().all(|o| o.name != "x"), "{orgs:?}");
    adm.create_org(authed(
        v1::CreateOrgRequest {
            name: "x".into(),
            description: String::new(),
        },
        &rig.admin,
    ))
    .await
    .expect("org x can be created after the rollback");
    adm.create_user(authed(
        v1::CreateUserRequest {
            org: "x".into(),
            name: "xavier".into(),
            role: 0,
        },
        &rig.admin,
    ))
    .await
    .expect("and its user too");
    rig.server.shutdown().await;
}
