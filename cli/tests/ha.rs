//! High availability: several schedulers on one PostgreSQL database, one leading, fenced.
//! Real scheduler processes on real sockets; PostgreSQL from `BERTH_TEST_POSTGRES_URL`
//! (`make test` starts Debian's). Killing the leader, cutting it off from the database
//! (through a TCP proxy the test holds), and starting two at once: nothing acknowledged
//! is lost, and no write of a deposed leader lands.

mod common;

use berth_proto::v1;
use common::{binary, http_body, http_status, psql, random_u64, tail, with_database};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Request;
use tonic::transport::Channel;

const SIGNING_KEY: &str = "ha-test-signing-key-0123456789abcdef0123456789";

fn pg_server() -> String {
    std::env::var("BERTH_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("BERTH_TEST_POSTGRES_URL is not set: these tests need PostgreSQL (eval \"$(scripts/postgres.sh)\")")
}

/// A fresh database for one test, dropped at the end.
struct Db {
    server: String,
    name: String,
}

impl Db {
    fn create() -> Self {
        let server = pg_server();
        let name = format!("berth_ha_{:016x}", random_u64());
        psql(&server, &format!("CREATE DATABASE {name}"));
        Db { server, name }
    }

    /// The database's URL, or the same through a proxy listening on `port`.
    fn url(&self, port: Option<u16>) -> String {
        let url = with_database(&self.server, &self.name);
        match port {
            None => url,
            Some(p) => {
                let (scheme, rest) = url.split_once("://").expect("a URL");
                let (auth, path) = rest.split_once('/').expect("a database path");
                let creds = auth.rsplit_once('@').map_or("", |(c, _)| c);
                let at = if creds.is_empty() { "" } else { "@" };
                format!("{scheme}://{creds}{at}127.0.0.1:{p}/{path}")
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.server)
            .args(["-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A free local port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One scheduler process.
struct Scheduler {
    child: Child,
    grpc: String,
    http: String,
    web: String,
    log: PathBuf,
    token_file: PathBuf,
}

impl Scheduler {
    fn start(dir: &Path, name: &str, db_url: &str, lease: &str) -> Self {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).expect("data dir");
        let (grpc, http, web) = (free_port(), free_port(), free_port());
        let log = dir.join(format!("{name}.log"));
        let token_file = data.join("admin.token");
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(binary("berth-scheduler"))
            .arg("--data-dir")
            .arg(&data)
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--web-addr", &format!("127.0.0.1:{web}")])
            .args(["--ha-lease", lease, "--lease", "30s", "--tick", "200ms"])
            .arg("--bootstrap-admin-token-file")
            .arg(&token_file)
            .env("BERTH_DATABASE_URL", db_url)
            .env("BERTH_SIGNING_KEY", SIGNING_KEY)
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start berth-scheduler");
        Scheduler {
            child,
            grpc: format!("127.0.0.1:{grpc}"),
            http: format!("127.0.0.1:{http}"),
            web: format!("127.0.0.1:{web}"),
            log,
            token_file,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    fn ready(&self) -> Option<u16> {
        http_status(&self.http, "/readyz")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `check` holds, or fails with `what` and the logs.
#[track_caller]
fn wait_for(
    what: &str,
    limit: Duration,
    scheds: &mut [&mut Scheduler],
    mut check: impl FnMut(&mut [&mut Scheduler]) -> bool,
) {
    let end = Instant::now() + limit;
    while !check(scheds) {
        if Instant::now() > end {
            let logs: Vec<String> = scheds
                .iter_mut()
                .map(|s| {
                    // Whether it still runs, and how the listeners answer, say more than
                    // an empty log.
                    let process = match s.child.try_wait() {
                        Ok(None) => format!("pid {} running", s.child.id()),
                        Ok(Some(status)) => format!("exited: {status}"),
                        Err(e) => format!("unknown: {e}"),
                    };
                    format!(
                        "--- {} ({process}; /readyz: {:?}) ---\n{}",
                        s.log.display(),
                        http_status(&s.http, "/readyz"),
                        tail(&s.log, 40)
                    )
                })
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The index of the one scheduler that is ready (leads), when exactly one is.
fn the_leader(scheds: &[&mut Scheduler]) -> Option<usize> {
    let ready: Vec<usize> = (0..scheds.len())
        .filter(|&i| scheds[i].ready() == Some(200))
        .collect();
    (ready.len() == 1).then(|| ready[0])
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("token"),
    );
    r
}

async fn channel(url: &str) -> Option<Channel> {
    Channel::from_shared(url.to_owned())
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .connect()
        .await
        .ok()
}

/// Sets up a site, a class, a user and a node with 4 devices through the leader at `url`;
/// returns the user's token.
async fn populate(url: &str, admin: &str) -> String {
    let ch = channel(url).await.expect("connect to the leader");
    let mut adm = v1::admin_client::AdminClient::new(ch.clone());
    adm.create_site(authed(
        v1::CreateSiteRequest {
            name: "s1".into(),
            description: String::new(),
        },
        admin,
    ))
    .await
    .expect("site");
    adm.create_class(authed(
        v1::CreateClassRequest {
            name: "gpu".into(),
            description: String::new(),
            vendor: "sim".into(),
        },
        admin,
    ))
    .await
    .expect("class");
    adm.create_org(authed(
        v1::CreateOrgRequest {
            name: "acme".into(),
            description: String::new(),
        },
        admin,
    ))
    .await
    .expect("org");
    let token = adm
        .create_user(authed(
            v1::CreateUserRequest {
                org: "acme".into(),
                name: "alice".into(),
                role: 0,
            },
            admin,
        ))
        .await
        .expect("user")
        .into_inner()
        .token;
    let join = adm
        .create_join_token(authed(v1::CreateJoinTokenRequest::default(), admin))
        .await
        .expect("join token")
        .into_inner()
        .token;
    let devices: Vec<v1::DeviceReport> = (0..4)
        .map(|i| v1::DeviceReport {
            uuid: format!("GPU-ha-{i}"),
            index: i,
            class: "gpu".into(),
            vendor: "sim".into(),
            model: "Sim".into(),
            health: v1::DeviceHealth::Healthy as i32,
            ..Default::default()
        })
        .collect();
    v1::agent_client::AgentClient::new(ch)
        .join(v1::JoinRequest {
            join_token: join,
            node: "n1".into(),
            site: "s1".into(),
            hostname: "n1".into(),
            devices,
            agent_version: "test".into(),
            runtime: "process".into(),
        })
        .await
        .expect("join");
    token
}

/// What clients were told succeeded.
#[derive(Default)]
struct Acked {
    jobs: BTreeSet<String>,
    reservations: BTreeSet<String>,
}

/// A client that submits and books against whichever scheduler leads, moving on when one
/// refuses (a standby names the leader) or is gone, until `stop`.
async fn client(
    urls: Vec<String>,
    token: String,
    lane: usize,
    acked: Arc<Mutex<Acked>>,
    stop: watch::Receiver<bool>,
) {
    let mut at = 0;
    let first = berth_proto::time::now_ms() + 7_200_000 + lane as i64 * 3_600_000 * 24;
    let mut i: i64 = 0;
    while !*stop.borrow() {
        let url = &urls[at % urls.len()];
        let Some(ch) = channel(url).await else {
            at += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut jobs = v1::jobs_client::JobsClient::new(ch.clone());
        let mut res = v1::reservations_client::ReservationsClient::new(ch);
        while !*stop.borrow() {
            i += 1;
            let r = jobs
                .submit_job(authed(
                    v1::SubmitJobRequest {
                        class: "gpu".into(),
                        count: 1,
                        image: "busybox".into(),
                        command: vec!["sleep".into(), "3600".into()],
                        name: format!("ha-{lane}-{i}"),
                        ..Default::default()
                    },
                    &token,
                ))
                .await;
            match r {
                Ok(j) => {
                    acked.lock().expect("acked").jobs.insert(j.into_inner().id);
                }
                Err(_) => {
                    at += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
            let start = first + i * 60_000;
            let r = res
                .create_reservation(authed(
                    v1::CreateReservationRequest {
                        class: "gpu".into(),
                        count: 1,
                        start: Some(berth_proto::time::ms_to_ts(start)),
                        end: Some(berth_proto::time::ms_to_ts(start + 60_000)),
                        site: String::new(),
                        project: String::new(),
                    },
                    &token,
                ))
                .await;
            match r {
                Ok(b) => {
                    acked
                        .lock()
                        .expect("acked")
                        .reservations
                        .insert(b.into_inner().id);
                }
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {}
                Err(_) => {
                    at += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
            }
        }
    }
}

/// Every acknowledged job and booking is on the leader at `url`; no device is booked twice.
async fn check_everything_is_there(url: &str, token: &str, acked: &Acked) {
    let ch = channel(url).await.expect("connect to the new leader");
    let mut jobs = v1::jobs_client::JobsClient::new(ch.clone());
    for id in &acked.jobs {
        jobs.get_job(authed(v1::GetJobRequest { id: id.clone() }, token))
            .await
            .unwrap_or_else(|e| panic!("acknowledged job {id} is gone after the failover: {e}"));
    }
    let mut res = v1::reservations_client::ReservationsClient::new(ch);
    let mut seen = Vec::new();
    let mut page = String::new();
    loop {
        let r = res
            .list_reservations(authed(
                v1::ListReservationsRequest {
                    all: true,
                    page_size: 1000,
                    page_token: page,
                    ..Default::default()
                },
                token,
            ))
            .await
            .expect("list reservations")
            .into_inner();
        seen.extend(r.reservations);
        if r.next_page_token.is_empty() {
            break;
        }
        page = r.next_page_token;
    }
    let ids: BTreeSet<&str> = seen.iter().map(|r| r.id.as_str()).collect();
    for id in &acked.reservations {
        assert!(
            ids.contains(id.as_str()),
            "acknowledged booking {id} is gone after the failover"
        );
    }
    let mut by_device: std::collections::BTreeMap<&str, Vec<(i64, i64)>> = Default::default();
    for r in &seen {
        for d in &r.devices {
            let s = berth_proto::time::ts_to_ms(r.start.as_ref().expect("start"));
            let e = berth_proto::time::ts_to_ms(r.end.as_ref().expect("end"));
            by_device.entry(d).or_default().push((s, e));
        }
    }
    for (d, mut w) in by_device {
        w.sort();
        for p in w.windows(2) {
            assert!(
                p[0].1 <= p[1].0,
                "device {d} booked twice: {:?} {:?}",
                p[0],
                p[1]
            );
        }
    }
}

fn admin_token(s: &Scheduler) -> String {
    std::fs::read_to_string(&s.token_file)
        .unwrap_or_else(|e| panic!("{}: {e}", s.token_file.display()))
        .trim()
        .to_owned()
}

#[test]
fn two_schedulers_started_together_elect_exactly_one_leader() {
    let db = Db::create();
    let dir = tempfile::tempdir().expect("dir");
    let url = db.url(None);
    let mut a = Scheduler::start(dir.path(), "a", &url, "3s");
    let mut b = Scheduler::start(dir.path(), "b", &url, "3s");
    wait_for(
        "one leader",
        Duration::from_secs(60),
        &mut [&mut a, &mut b],
        |s| the_leader(s).is_some(),
    );
    let (leader, standby) = if a.ready() == Some(200) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // The standby says who leads, on /readyz and to callers.
    let why = http_body(&standby.http, "/readyz");
    assert!(
        why.contains("standby") && why.contains(&leader.url()),
        "{why}"
    );
    let admin = admin_token(leader);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let ch = channel(&standby.url()).await.expect("connect");
        // A call relayed once already is refused, naming the leader.
        let mut twice = authed(v1::ListOrgsRequest {}, &admin);
        twice
            .metadata_mut()
            .insert("berth-forwarded", "1".parse().expect("header"));
        let refused = v1::admin_client::AdminClient::new(ch.clone())
            .list_orgs(twice)
            .await
            .expect_err("a standby does not relay twice");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert_eq!(
            refused
                .metadata()
                .get("berth-leader")
                .and_then(|v| v.to_str().ok()),
            Some(leader.url().as_str())
        );
        // Any other call is relayed to the leader and answered by it.
        let orgs = v1::admin_client::AdminClient::new(ch.clone())
            .list_orgs(authed(v1::ListOrgsRequest {}, &admin))
            .await
            .expect("relayed to the leader")
            .into_inner()
            .orgs;
        assert!(orgs.iter().any(|o| o.name == "centre"), "{orgs:?}");
        // Every scheduler answers who leads (the standby's credentials catch up with the
        // leader's on its next campaign); the token is the term of the only leader.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let r = v1::admin_client::AdminClient::new(ch.clone())
                .get_status(authed(v1::GetStatusRequest {}, &admin))
                .await;
            match r {
                Ok(s) => break s.into_inner(),
                Err(e) if e.code() == tonic::Code::Unauthenticated && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("status from the standby: {e:?}"),
            }
        };
        assert!(status.shared_database);
        assert_eq!(status.leader_address, leader.url());
        assert_eq!(status.schedulers.len(), 2, "{status:?}");
        let roles: Vec<&str> = status.schedulers.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles.iter().filter(|r| **r == "leader").count(),
            1,
            "{status:?}"
        );
        assert!(status.fencing_token >= 1);
    });
    // Kubernetes' readiness probe: a standby whose database answers is ready to relay.
    assert_eq!(http_status(&standby.http, "/readyz?role=any"), Some(200));
    assert_eq!(http_status(&standby.http, "/readyz"), Some(503));
    // The portal answers on the leader; a standby asks the browser to come again on a
    // new connection (which a Service may give to the leader).
    assert_eq!(http_status(&leader.web, "/login"), Some(200));
    assert_eq!(http_status(&standby.web, "/login"), Some(503));
    let page = http_body(&standby.web, "/login");
    assert!(page.contains("standing by"), "{page}");
}

#[test]
fn a_leader_killed_under_load_is_replaced_within_15_s_with_everything_acknowledged() {
    let db = Db::create();
    let dir = tempfile::tempdir().expect("dir");
    let url = db.url(None);
    // The default lease (10 s): the takeover bound is what operators get.
    let mut a = Scheduler::start(dir.path(), "a", &url, "10s");
    wait_for("a to lead", Duration::from_secs(60), &mut [&mut a], |s| {
        s[0].ready() == Some(200)
    });
    let mut b = Scheduler::start(dir.path(), "b", &url, "10s");
    wait_for(
        "b to stand by",
        Duration::from_secs(60),
        &mut [&mut b],
        |s| http_body(&s[0].http, "/readyz").contains("standby"),
    );
    let admin = admin_token(&a);
    let urls = vec![a.url(), b.url()];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let token = rt.block_on(populate(&a.url(), &admin));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients: Vec<_> = (0..16)
        .map(|lane| {
            rt.spawn(client(
                urls.clone(),
                token.clone(),
                lane,
                acked.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = acked.lock().expect("acked").jobs.len();
    assert!(before > 0, "the clients got nothing done before the kill");
    a.kill();
    let killed = Instant::now();
    wait_for(
        "b to take over",
        Duration::from_secs(15),
        &mut [&mut b],
        |s| s[0].ready() == Some(200),
    );
    let took = killed.elapsed();
    // The clients go on with the new leader.
    wait_for(
        "the clients to be acknowledged by b",
        Duration::from_secs(30),
        &mut [&mut b],
        |_| acked.lock().expect("acked").jobs.len() > before + 10,
    );
    stop_tx.send(true).expect("stop");
    rt.block_on(async {
        for c in clients {
            let _ = c.await;
        }
    });
    let a_ = acked.lock().expect("acked");
    rt.block_on(check_everything_is_there(&b.url(), &token, &a_));
    eprintln!(
        "b took over {took:?} after the kill; {} jobs and {} bookings acknowledged, all there",
        a_.jobs.len(),
        a_.reservations.len()
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    // The CLI follows the leader through a list of servers, the dead one first.
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["admin", "status", "-o", "json"])
        .env("BERTH_SERVER", format!("{},{}", a.url(), b.url()))
        .env("BERTH_TOKEN", &admin)
        .env("BERTH_CONFIG", dir.path().join("cli.json"))
        .output()
        .expect("berth admin status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["leader_address"], b.url(), "{v}");
    assert!(
        v["fencing_token"].as_u64().unwrap_or(0) >= 2,
        "a new term: {v}"
    );
    assert!(b.alive());
}

/// A TCP proxy the test can cut: while cut, nothing passes either way (bytes wait, as in
/// a network partition), and new connections wait too.
struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *cut.borrow() {
            if cut.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy");
        let port = listener.local_addr().expect("addr").port();
        let (cut, rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let (upstream, mut rx) = (upstream.clone(), rx.clone());
                tokio::spawn(async move {
                    while *rx.borrow() {
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                    let Ok(up) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::spawn(pump(dr, uw, rx.clone()));
                    tokio::spawn(pump(ur, dw, rx));
                });
            }
        });
        Proxy { port, cut }
    }
}

#[test]
fn a_leader_cut_off_from_the_database_is_deposed_and_none_of_its_writes_land() {
    let db = Db::create();
    let dir = tempfile::tempdir().expect("dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pg = {
        let u = db.url(None);
        let host = u
            .split_once("://")
            .and_then(|(_, r)| r.split('/').next())
            .expect("host");
        host.rsplit_once('@').map_or(host, |(_, h)| h).to_owned()
    };
    let proxy = rt.block_on(Proxy::start(pg));
    let mut a = Scheduler::start(dir.path(), "a", &db.url(Some(proxy.port)), "4s");
    wait_for("a to lead", Duration::from_secs(60), &mut [&mut a], |s| {
        s[0].ready() == Some(200)
    });
    let mut b = Scheduler::start(dir.path(), "b", &db.url(None), "4s");
    wait_for(
        "b to stand by",
        Duration::from_secs(60),
        &mut [&mut b],
        |s| http_body(&s[0].http, "/readyz").contains("standby"),
    );
    let admin = admin_token(&a);
    rt.block_on(populate(&a.url(), &admin));

    // Cut a off the database, then ask it for a write: it decides, and its commit waits.
    proxy.cut.send(true).expect("cut");
    let a_url = a.url();
    let admin_ = admin.clone();
    let pending = rt.spawn(async move {
        let ch = channel(&a_url).await.expect("connect to a");
        let mut req = authed(
            v1::CreateOrgRequest {
                name: "deposed".into(),
                description: String::new(),
            },
            &admin_,
        );
        req.set_timeout(Duration::from_secs(60));
        v1::admin_client::AdminClient::new(ch).create_org(req).await
    });
    wait_for(
        "b to take over",
        Duration::from_secs(30),
        &mut [&mut b],
        |s| s[0].ready() == Some(200),
    );
    // Heal: a's waiting transaction reaches the database, and its fence refuses it.
    proxy.cut.send(false).expect("heal");
    let answered = rt.block_on(pending).expect("task");
    let err = answered.expect_err("a deposed leader's write is not acknowledged");
    assert!(
        matches!(
            err.code(),
            tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::DeadlineExceeded
        ),
        "{err:?}"
    );
    wait_for(
        "a to stand by",
        Duration::from_secs(30),
        &mut [&mut a],
        |s| http_body(&s[0].http, "/readyz").contains("standby"),
    );
    // Nothing of it landed: the new leader has no such org, in memory or in the database.
    let orgs = rt.block_on(async {
        let ch = channel(&b.url()).await.expect("connect to b");
        v1::admin_client::AdminClient::new(ch)
            .list_orgs(authed(v1::ListOrgsRequest {}, &admin))
            .await
            .expect("orgs")
            .into_inner()
            .orgs
    });
    assert!(orgs.iter().all(|o| o.name != "deposed"), "{orgs:?}");
    let out = Command::new("psql")
        .arg(db.url(None))
        .args([
            "-qAt",
            "-c",
            "SELECT count(*) FROM orgs WHERE name = 'deposed'",
        ])
        .output()
        .expect("psql");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert!(a.alive() && b.alive());
}

#[test]
fn a_second_scheduler_on_one_sqlite_file_is_refused_saying_why() {
    let dir = tempfile::tempdir().expect("dir");
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("berth.db").display()
    );
    let mut a = Scheduler::start(dir.path(), "a", &db, "10s");
    wait_for(
        "a to be ready",
        Duration::from_secs(60),
        &mut [&mut a],
        |s| s[0].ready() == Some(200),
    );
    let mut b = Scheduler::start(dir.path(), "b", &db, "10s");
    let status = b.child.wait().expect("b exits");
    assert!(!status.success());
    let log = std::fs::read_to_string(&b.log).unwrap_or_default();
    assert!(
        log.contains("single scheduler") && log.contains("PostgreSQL"),
        "{log}"
    );
    assert!(a.alive());
}
