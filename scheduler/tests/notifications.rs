//! Notifications end to end: a real SMTP server (PyPI's aiosmtpd, from .venv-ci) and
//! HTTP sinks in the test. A job's end mails its subscribed owner in their language and
//! posts the org's webhooks; a webhook that never answers is retried with backoff and
//! delays nobody else; without SMTP, mail is recorded as failed; the outbox survives a
//! restart; one org never sees another's notifications.

mod common;

use berth_proto::time::{ms_to_ts, now_ms, ts_to_ms};
use berth_proto::v1;
use berth_scheduler::engine::notify::{NotifyConfig, SmtpConfig};
use berth_scheduler::server::{self, ServerConfig};
use common::{Centre, authed, centre_with};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// How long anything may take to arrive before a test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// aiosmtpd on a free port, writing the mails it accepts to a file.
struct SmtpSink {
    child: Child,
    file: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts it. Never skips: without aiosmtpd the test fails, saying how to get it.
    fn start() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let venv = root.join(".venv-ci/bin/python");
        let python = if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mail.jsonl");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the SMTP sink (aiosmtpd) did not start with {}: {}\n\
                 run scripts/venv.sh to build .venv-ci from tests/ops/requirements.txt",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        SmtpSink {
            child,
            file,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver: records each POST's path and JSON body, answers 200.
#[derive(Clone)]
struct HttpSink {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<(String, Value)>>>,
}

impl HttpSink {
    async fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    fn on(listener: TcpListener) -> Self {
        let sink = HttpSink {
            addr: listener.local_addr().unwrap(),
            posts: Arc::default(),
        };
        let posts = sink.posts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let posts = posts.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        let n = conn.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the request ended early");
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map(|v| v.trim().parse::<usize>().unwrap())
                                .unwrap_or(0);
                            break (i + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = conn.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "the body ended early");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let body: Value = serde_json::from_slice(&buf[head_end..]).unwrap();
                    posts.lock().unwrap().push((path, body));
                    conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await
                    .unwrap();
                });
            }
        });
        sink
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn posts(&self) -> Vec<(String, Value)> {
        self.posts.lock().unwrap().clone()
    }
}

/// A webhook that accepts connections and never answers.
async fn silent_sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    addr
}

/// Fast retries for tests.
fn notify_config(smtp: Option<&SmtpSink>) -> NotifyConfig {
    NotifyConfig {
        smtp: smtp.map(|s| SmtpConfig::new(&s.url(), "berth@centre.test").unwrap()),
        attempt_timeout: Duration::from_millis(1500),
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        max_attempts: 50,
        poll: Duration::from_millis(100),
        concurrency: 8,
    }
}

/// Polls `f` until it returns `Some`, failing after [`PATIENCE`].
async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn notifications(ch: &Channel) -> v1::notifications_client::NotificationsClient<Channel> {
    v1::notifications_client::NotificationsClient::new(ch.clone())
}

async fn list(ch: &Channel, token: &str) -> Vec<v1::Notification> {
    notifications(ch)
        .list_notifications(authed(v1::ListNotificationsRequest { limit: 0 }, token))
        .await
        .unwrap()
        .into_inner()
        .notifications
}

async fn subscribe(ch: &Channel, token: &str, email: &str, events: &str) {
    notifications(ch)
        .set_notification_settings(authed(
            v1::SetNotificationSettingsRequest {
                email: email.into(),
                events: vec![events.into()],
                fields: vec!["email".into(), "events".into()],
                clear: false,
            },
            token,
        ))
        .await
        .unwrap();
}

async fn add_webhook(c: &Centre, org: &str, url: &str, events: &[&str]) -> v1::Webhook {
    notifications(&c.channel)
        .add_webhook(authed(
            v1::AddWebhookRequest {
                org: org.into(),
                url: url.into(),
                events: events.iter().map(|e| e.to_string()).collect(),
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Books one `gpu` device from `from` for `minutes`.
async fn book(ch: &Channel, token: &str, from: i64, minutes: i64) -> v1::Reservation {
    v1::reservations_client::ReservationsClient::new(ch.clone())
        .create_reservation(authed(
            v1::CreateReservationRequest {
                class: "gpu".into(),
                count: 1,
                start: Some(ms_to_ts(from)),
                end: Some(ms_to_ts(from + minutes * 60_000)),
                site: String::new(),
                project: String::new(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Places a job of `token` on node `n1` and reports that it exited with code 3.
async fn fail_a_job(c: &Centre, token: &str, cred: &str, devices: &[String]) -> v1::Job {
    let (job, _) = c.queue_and_place(token, cred, devices).await;
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    for (phase, code) in [
        (v1::JobPhase::Running, None),
        (v1::JobPhase::Exited, Some(3)),
    ] {
        agent
            .report_job(authed(
                v1::ObservedJob {
                    job_id: job.id.clone(),
                    phase: phase as i32,
                    exit_code: code,
                    started_at: Some(ms_to_ts(now_ms())),
                    ..Default::default()
                },
                cred,
            ))
            .await
            .unwrap();
    }
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_end_mails_its_owner_in_their_language_and_posts_webhooks_a_dead_one_delaying_none() {
    let smtp = SmtpSink::start();
    let good = HttpSink::start().await;
    let silent = silent_sink().await;
    let config = notify_config(Some(&smtp));
    let c = centre_with(60_000, |s| s.notify = config).await;
    let (cred, devices) = c.join("n1", 1).await;
    let kim = c.user("acme", "kim").await;
    let lee = c.user("acme", "lee").await;
    let park = c.user("other", "park").await;

    // Kim reads Korean; Lee (same org, not the owner) and Park (another org) subscribe too.
    v1::identity_client::IdentityClient::new(c.channel.clone())
        .set_language(authed(
            v1::SetLanguageRequest {
                language: "ko".into(),
            },
            &kim,
        ))
        .await
        .unwrap();
    subscribe(&c.channel, &kim, "kim@acme.test", "job-end,budget").await;
    subscribe(&c.channel, &lee, "lee@acme.test", "job-end").await;
    subscribe(&c.channel, &park, "park@other.test", "job-end").await;
    let hook = add_webhook(&c, "acme", &good.url("/acme"), &["job-end"]).await;
    let dead = add_webhook(&c, "acme", &format!("http://{silent}/never"), &[]).await;
    // Two more that never answer: a sender that went one delivery at a time would very
    // likely reach one of them before the good one.
    let more_dead = [
        add_webhook(
            &c,
            "acme",
            &format!("http://{silent}/never-2"),
            &["job-end"],
        )
        .await,
        add_webhook(
            &c,
            "acme",
            &format!("http://{silent}/never-3"),
            &["job-end"],
        )
        .await,
    ];
    add_webhook(&c, "other", &good.url("/other"), &[]).await;
    add_webhook(&c, "acme", &good.url("/bookings"), &["booking-start"]).await;

    let job = fail_a_job(&c, &kim, &cred, &devices).await;

    // The good webhook gets the post while the silent one's first attempt is still
    // waiting for an answer: it delays nobody.
    let post = until("the webhook post", || async {
        good.posts().into_iter().find(|(p, _)| p == "/acme")
    })
    .await;
    let rows = list(&c.channel, &c.admin).await;
    for hook in std::iter::once(&dead).chain(&more_dead) {
        let silent_row = rows.iter().find(|n| n.webhook_id == hook.id).unwrap();
        assert_eq!(
            (silent_row.state.as_str(), silent_row.attempts),
            ("pending", 0),
            "the silent webhooks have not had an answer yet"
        );
    }
    let body = post.1;
    assert_eq!(body["event"], "job-end");
    assert_eq!(body["org"], "acme");
    assert_eq!(body["kind"], "job");
    assert_eq!(body["id"], job.id.as_str());
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("Job {} (", job.id)) && text.contains("failed"),
        "{text}"
    );

    // Kim's mail, in Korean, through the real SMTP server.
    let mail = until("kim's mail", || async { smtp.mails().into_iter().next() }).await;
    assert_eq!(mail["rcpt_tos"][0], "kim@acme.test");
    assert_eq!(mail["mail_from"], "berth@centre.test");
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.contains(&format!("작업 {}", job.id)) && subject.contains("failed"),
        "{subject}"
    );
    assert!(mail["body"].as_str().unwrap().contains("끝났습니다"));

    // Exactly: Kim's mail and acme's four webhooks that want job-end. Not Lee (not the
    // owner), not Park or the other org's webhook, not the booking-only webhook.
    let rows = list(&c.channel, &c.admin).await;
    let mut got: Vec<(String, String)> = rows
        .iter()
        .filter(|n| n.event == "job-end")
        .map(|n| (n.channel.clone(), n.target.clone()))
        .collect();
    got.sort();
    let mut want = vec![
        ("email".to_owned(), "kim@acme.test".to_owned()),
        ("webhook".to_owned(), hook.url.clone()),
        ("webhook".to_owned(), dead.url.clone()),
        ("webhook".to_owned(), more_dead[0].url.clone()),
        ("webhook".to_owned(), more_dead[1].url.clone()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(good.posts().iter().all(|(p, _)| p == "/acme"));

    // The silent webhook is retried with growing waits and stays pending, while the
    // others are sent.
    let retried = until("the silent webhook's retries", || async {
        list(&c.channel, &c.admin)
            .await
            .into_iter()
            .find(|n| n.webhook_id == dead.id && n.attempts >= 2)
    })
    .await;
    assert_eq!(retried.state, "pending");
    assert!(
        retried.last_error.contains("no answer within 1500 ms"),
        "{}",
        retried.last_error
    );
    let wait = ts_to_ms(retried.next_attempt_at.as_ref().unwrap())
        - ts_to_ms(retried.updated_at.as_ref().unwrap());
    assert!(wait >= 400, "second backoff is 2 x 200 ms, got {wait} ms");
    let rows = list(&c.channel, &c.admin).await;
    let silent_ids = [&dead.id, &more_dead[0].id, &more_dead[1].id];
    for n in rows.iter().filter(|n| !silent_ids.contains(&&n.webhook_id)) {
        assert_eq!(n.state, "sent", "{n:?}");
        assert_eq!(n.attempts, 1);
    }

    // Tenants: Kim sees her own mail only; Lee and Park see nothing of it.
    let mine = list(&c.channel, &kim).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(
        (mine[0].channel.as_str(), mine[0].target.as_str()),
        ("email", "kim@acme.test")
    );
    assert!(list(&c.channel, &lee).await.is_empty());
    assert!(list(&c.channel, &park).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_smtp_mail_fails_visibly_and_webhooks_still_go_bookings_and_budgets_too() {
    let good = HttpSink::start().await;
    let c = centre_with(60_000, |s| s.notify = notify_config(None)).await;
    let (cred, devices) = c.join("n1", 1).await;
    let kim = c.user("acme", "kim").await;
    subscribe(&c.channel, &kim, "kim@acme.test", "job-end").await;
    add_webhook(&c, "acme", &good.url("/all"), &[]).await;

    let job = fail_a_job(&c, &kim, &cred, &devices).await;
    let failed = until("the failed mail", || async {
        list(&c.channel, &kim)
            .await
            .into_iter()
            .find(|n| n.state == "failed")
    })
    .await;
    assert_eq!(failed.object_id, job.id);
    assert!(
        failed.last_error.contains("no SMTP server is configured"),
        "{}",
        failed.last_error
    );
    until("the webhook post", || async {
        good.posts()
            .into_iter()
            .find(|(_, b)| b["event"] == "job-end" && b["id"] == job.id.as_str())
    })
    .await;

    // A budget of 1 h a month: a 40-minute booking passes 50 %, 10 more minutes 80 %.
    c.admin_client()
        .set_budget(authed(
            v1::SetBudgetRequest {
                org: "acme".into(),
                class: "gpu".into(),
                hours: Some(1.0),
                period: "month".into(),
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap();
    let start = now_ms() + 10 * 60_000;
    let first = book(&c.channel, &kim, start, 40).await;
    book(&c.channel, &kim, start + 40 * 60_000, 10).await;
    let percents = until("both budget posts", || async {
        let p: Vec<i64> = good
            .posts()
            .iter()
            .filter(|(_, b)| b["event"] == "budget")
            .map(|(_, b)| b["details"]["percent"].as_i64().unwrap())
            .collect();
        (p.len() >= 2).then_some(p)
    })
    .await;
    let mut sorted = percents.clone();
    sorted.sort();
    assert_eq!(sorted, [50, 80], "{percents:?}");

    // The first booking starts in 10 minutes: its users hear of it once.
    let post = until("the booking-start post", || async {
        good.posts()
            .into_iter()
            .find(|(_, b)| b["event"] == "booking-start")
    })
    .await;
    assert_eq!(post.1["id"], first.id.as_str());
    assert_eq!(post.1["kind"], "reservation");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let starts = list(&c.channel, &c.admin)
        .await
        .into_iter()
        .filter(|n| n.event == "booking-start")
        .count();
    assert_eq!(starts, 1, "each booking's start is told once");

    // A booking from now for 5 minutes ends within 15: its end is told.
    let short = book(&c.channel, &kim, now_ms(), 5).await;
    let post = until("the booking-end post", || async {
        good.posts()
            .into_iter()
            .find(|(_, b)| b["event"] == "booking-end" && b["id"] == short.id.as_str())
    })
    .await;
    assert!(
        post.1["text"].as_str().unwrap().contains("ends at"),
        "{}",
        post.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_survives_a_restart_and_is_delivered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = |dir: &Path| {
        let mut config = ServerConfig::dev(dir.to_path_buf());
        config.grpc_addr = "127.0.0.1:0".parse().unwrap();
        config.http_addr = "127.0.0.1:0".parse().unwrap();
        config.tick = Duration::from_millis(100);
        config.notify = notify_config(None);
        config
    };
    let first = server::start(config(dir.path())).await.unwrap();
    let admin = first.admin_token.clone().unwrap();
    let ch = Channel::from_shared(format!("http://{}", first.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut adm = v1::admin_client::AdminClient::new(ch.clone());
    adm.create_org(authed(
        v1::CreateOrgRequest {
            name: "acme".into(),
            description: String::new(),
        },
        &admin,
    ))
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");
    notifications(&ch)
        .add_webhook(authed(
            v1::AddWebhookRequest {
                org: "acme".into(),
                url: url.clone(),
                events: vec![],
            },
            &admin,
        ))
        .await
        .unwrap();
    // A user with a budget of 1 h: a 30-minute booking is an event (budget 50 %).
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
    adm.set_budget(authed(
        v1::SetBudgetRequest {
            org: "acme".into(),
            class: "gpu".into(),
            hours: Some(1.0),
            period: "month".into(),
            ..Default::default()
        },
        &admin,
    ))
    .await
    .unwrap();
    let join = adm
        .create_join_token(authed(v1::CreateJoinTokenRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner()
        .token;
    v1::agent_client::AgentClient::new(ch.clone())
        .join(v1::JoinRequest {
            join_token: join,
            node: "n1".into(),
            site: "s1".into(),
            hostname: "n1".into(),
            devices: common::reports(&["GPU-n1-0".to_owned()]),
            agent_version: "test".into(),
            runtime: "process".into(),
        })
        .await
        .unwrap();
    let kim = adm
        .create_user(authed(
            v1::CreateUserRequest {
                org: "acme".into(),
                name: "kim".into(),
                role: 0,
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    book(&ch, &kim, now_ms() + 3 * 3_600_000, 30).await;
    // The endpoint is down: the delivery fails and stays pending.
    let failed = until("a failed attempt", || async {
        list(&ch, &admin)
            .await
            .into_iter()
            .find(|n| n.event == "budget" && n.attempts >= 1)
    })
    .await;
    assert_eq!(failed.state, "pending");
    assert!(!failed.last_error.is_empty());
    first.shutdown().await;

    // Back up, with the endpoint listening now: the stored delivery goes out.
    let sink = HttpSink::on(TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    let second = server::start(config(dir.path())).await.unwrap();
    let post = until("the delivery after the restart", || async {
        sink.posts().into_iter().next()
    })
    .await;
    assert_eq!(post.0, "/hook");
    assert_eq!(post.1["event"], "budget");
    assert_eq!(post.1["org"], "acme");
    assert_eq!(post.1["notification"], failed.id.as_str());
    second.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let c = centre_with(60_000, |_| {}).await;
    let kim = c.user("acme", "kim").await;
    let mut n = notifications(&c.channel);
    let field = |e: tonic::Status| {
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        e.message().to_owned()
    };
    for url in ["ftp://hooks.example.kr/x", "hooks.example.kr", "http://"] {
        let e = n
            .add_webhook(authed(
                v1::AddWebhookRequest {
                    org: "acme".into(),
                    url: url.into(),
                    events: vec![],
                },
                &c.admin,
            ))
            .await
            .unwrap_err();
        assert!(field(e).contains("url"), "{url}");
    }
    let e = n
        .add_webhook(authed(
            v1::AddWebhookRequest {
                org: "acme".into(),
                url: "https://hooks.example.kr/x".into(),
                events: vec!["job-end,jobs-ended".into()],
            },
            &c.admin,
        ))
        .await
        .unwrap_err();
    assert!(field(e).contains("events"));
    let set = |email: &str, events: &str| v1::SetNotificationSettingsRequest {
        email: email.into(),
        events: vec![events.into()],
        fields: vec!["email".into(), "events".into()],
        clear: false,
    };
    let e = n
        .set_notification_settings(authed(set("kim at acme", "job-end"), &kim))
        .await
        .unwrap_err();
    assert!(field(e).contains("email"));
    let e = n
        .set_notification_settings(authed(set("kim@acme.test", "reclaim"), &kim))
        .await
        .unwrap_err();
    assert!(field(e).contains("events"));
    // Only admins add webhooks.
    let e = n
        .add_webhook(authed(
            v1::AddWebhookRequest {
                org: "acme".into(),
                url: "https://hooks.example.kr/x".into(),
                events: vec![],
            },
            &kim,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    // Nothing was stored by the refusals.
    let s = n
        .get_notification_settings(authed(v1::GetNotificationSettingsRequest {}, &kim))
        .await
        .unwrap()
        .into_inner();
    assert!(!s.set);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_project_warns_before_it_expires_and_when_it_has() {
    let hook = HttpSink::start().await;
    let c = centre_with(60_000, |s| s.notify = notify_config(None)).await;
    c.user("acme", "kim").await;
    add_webhook(&c, "acme", &hook.url("/projects"), &["project-expiry"]).await;
    let t = now_ms();
    let p = v1::projects_client::ProjectsClient::new(c.channel.clone())
        .create_project(authed(
            v1::CreateProjectRequest {
                org: "acme".into(),
                title: "짧은 과제".into(),
                programme: "NIPA HPC".into(),
                start: Some(ms_to_ts(t - 1_000)),
                end: Some(ms_to_ts(t + 2_000)),
                grants: vec![v1::GrantSpec {
                    class: "gpu".into(),
                    hours: 1.0,
                }],
                contact: String::new(),
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let posts = until("both notices", || async {
        let posts: Vec<Value> = hook
            .posts()
            .into_iter()
            .map(|(_, b)| b)
            .filter(|b| b["event"] == "project-expiry" && b["id"] == p.id.as_str())
            .collect();
        (posts.len() >= 2).then_some(posts)
    })
    .await;
    assert_eq!(posts.len(), 2, "each notice once: {posts:?}");
    let texts: Vec<&str> = posts.iter().filter_map(|b| b["text"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains("expire")), "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projects_grant_reaching_50_and_80_percent_is_told_once_each() {
    let hook = HttpSink::start().await;
    let c = centre_with(60_000, |s| s.notify = notify_config(None)).await;
    c.join("n1", 1).await;
    let kim = c.user("acme", "kim").await;
    add_webhook(&c, "acme", &hook.url("/grants"), &["budget"]).await;
    let t = now_ms();
    let mut projects = v1::projects_client::ProjectsClient::new(c.channel.clone());
    let p = projects
        .create_project(authed(
            v1::CreateProjectRequest {
                org: "acme".into(),
                title: "grant watch".into(),
                programme: "NIPA HPC".into(),
                start: Some(ms_to_ts(t - 1_000)),
                end: Some(ms_to_ts(t + 30 * 24 * 3_600_000)),
                grants: vec![v1::GrantSpec {
                    class: "gpu".into(),
                    hours: 10.0,
                }],
                contact: String::new(),
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    projects
        .set_default_project(authed(
            v1::SetDefaultProjectRequest {
                project: p.id.clone(),
            },
            &kim,
        ))
        .await
        .unwrap();
    // 5.5 h of 10 (55 %), then 3 h more (85 %).
    let start = t + 3_600_000;
    let first = book(&c.channel, &kim, start, 330).await;
    assert_eq!(first.charged_project, p.id);
    book(&c.channel, &kim, start + 6 * 3_600_000, 180).await;
    let posts = until("the 50 and 80 % posts", || async {
        let percents: Vec<u64> = hook
            .posts()
            .into_iter()
            .map(|(_, b)| b)
            .filter(|b| b["event"] == "budget" && b["id"] == p.id.as_str())
            .filter_map(|b| b["details"]["percent"].as_u64())
            .collect();
        (percents.len() >= 2).then_some(percents)
    })
    .await;
    assert_eq!(posts, [50, 80]);
}
