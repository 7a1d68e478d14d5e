//! The gRPC tests' harness: a real scheduler on real sockets, and the agent side driven by
//! hand.

#![allow(dead_code)] // each test binary uses its own part

use berth_proto::time::ms_to_dur;
use berth_proto::v1;
use berth_scheduler::engine::Policy;
use berth_scheduler::server::{self, RunningServer, ServerConfig};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Request;
use tonic::transport::Channel;

pub struct Centre {
    pub server: RunningServer,
    pub channel: Channel,
    pub admin: String,
    _dir: tempfile::TempDir,
}

pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A scheduler on free ports with site `s1` and class `gpu`; agents' leases last `lease_ms`.
pub async fn centre(lease_ms: i64) -> Centre {
    centre_with(lease_ms, |_| {}).await
}

/// As [`centre`], with `tune` changing the configuration first.
pub async fn centre_with(lease_ms: i64, tune: impl FnOnce(&mut ServerConfig)) -> Centre {
    centre_in(tempfile::tempdir().unwrap(), lease_ms, tune).await
}

/// As [`centre_with`], on the data directory `dir` (whose SQLite database a test may have
/// filled first: `<dir>/berth.db`).
pub async fn centre_in(
    dir: tempfile::TempDir,
    lease_ms: i64,
    tune: impl FnOnce(&mut ServerConfig),
) -> Centre {
    let mut config = ServerConfig::dev(dir.path().to_path_buf());
    config.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    config.tick = Duration::from_millis(100);
    config.policy = Policy {
        lease_ms,
        max_poll_ms: 2_000,
        ..Policy::default()
    };
    tune(&mut config);
    let server = server::start(config).await.unwrap();
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
    Centre {
        server,
        channel,
        admin,
        _dir: dir,
    }
}

impl Centre {
    pub fn admin_client(&self) -> v1::admin_client::AdminClient<Channel> {
        v1::admin_client::AdminClient::new(self.channel.clone())
    }

    /// Clears a failed device's quarantine as the admin.
    pub async fn clear_device(&self, uuid: &str) -> v1::Device {
        self.admin_client()
            .clear_device(authed(
                v1::ClearDeviceRequest {
                    uuid: uuid.to_owned(),
                },
                &self.admin,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Gives node `node` leave to join again with a join token, as the admin.
    pub async fn rejoin_node(&self, node: &str) {
        self.admin_client()
            .rejoin_node(authed(
                v1::RejoinNodeRequest {
                    node: node.to_owned(),
                    ttl: None,
                },
                &self.admin,
            ))
            .await
            .unwrap();
    }

    pub fn usage_client(&self) -> v1::usage_client::UsageClient<Channel> {
        v1::usage_client::UsageClient::new(self.channel.clone())
    }

    /// A user of `org` (created if needed); returns the user's token.
    pub async fn user(&self, org: &str, name: &str) -> String {
        self.member(org, name, v1::Role::Unspecified).await
    }

    /// A user with `role` in `org` (created with the org if needed); returns the token.
    pub async fn member(&self, org: &str, name: &str, role: v1::Role) -> String {
        let mut adm = self.admin_client();
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
                role: role as i32,
            },
            &self.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .token
    }

    /// The job `id` as `token` sees it.
    pub async fn job(&self, token: &str, id: &str) -> v1::Job {
        v1::jobs_client::JobsClient::new(self.channel.clone())
            .get_job(authed(v1::GetJobRequest { id: id.into() }, token))
            .await
            .unwrap()
            .into_inner()
    }

    /// Queues a 1-device `sleep` job as `token` and long-polls as node `n1` until the
    /// job is in its desired work; returns the job and the generation seen.
    pub async fn queue_and_place(
        &self,
        token: &str,
        cred: &str,
        devices: &[String],
    ) -> (v1::Job, u64) {
        self.queue_and_place_with(token, cred, devices, sleeper())
            .await
    }

    /// As [`Centre::queue_and_place`], for the job `spec`.
    pub async fn queue_and_place_with(
        &self,
        token: &str,
        cred: &str,
        devices: &[String],
        spec: v1::SubmitJobRequest,
    ) -> (v1::Job, u64) {
        let job = v1::jobs_client::JobsClient::new(self.channel.clone())
            .submit_job(authed(spec, token))
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
                return (job, known);
            }
        }
    }

    /// Joins a node with `n` devices; returns its credential and device UUIDs.
    pub async fn join(&self, node: &str, n: usize) -> (String, Vec<String>) {
        let join = self
            .admin_client()
            .create_join_token(authed(v1::CreateJoinTokenRequest::default(), &self.admin))
            .await
            .unwrap()
            .into_inner()
            .token;
        let devices = (0..n)
            .map(|i| format!("GPU-{node}-{i}"))
            .collect::<Vec<_>>();
        let resp = v1::agent_client::AgentClient::new(self.channel.clone())
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
            .into_inner();
        (resp.credential, devices)
    }
}

/// A queued job of one `gpu` device that sleeps for ten minutes.
pub fn sleeper() -> v1::SubmitJobRequest {
    v1::SubmitJobRequest {
        class: "gpu".into(),
        count: 1,
        image: "busybox".into(),
        command: vec!["sleep".into(), "600".into()],
        ..Default::default()
    }
}

/// Device reports of healthy simulated GPUs.
pub fn reports(devices: &[String]) -> Vec<v1::DeviceReport> {
    devices
        .iter()
        .enumerate()
        .map(|(i, d)| v1::DeviceReport {
            uuid: d.clone(),
            index: i as u32,
            class: "gpu".into(),
            vendor: "sim".into(),
            model: "Sim".into(),
            health: v1::DeviceHealth::Healthy as i32,
            ..Default::default()
        })
        .collect()
}

/// A heartbeat of `node` holding generation `known`.
pub fn heartbeat(
    node: &str,
    known: u64,
    devices: &[String],
    jobs: Vec<v1::ObservedJob>,
) -> v1::HeartbeatRequest {
    v1::HeartbeatRequest {
        node: node.into(),
        known_generation: known,
        devices: reports(devices),
        jobs,
        wait: Some(ms_to_dur(1_500)),
        agent_version: "test".into(),
        runtime: "process".into(),
        ..Default::default()
    }
}

/// A minimal HTTP/1.0 exchange (the server closes the connection after the answer):
/// status, headers (names in lower case) and body.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("the answer ends")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad answer to {method} {path}: {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A counter or gauge of the scheduler's `/metrics` (0 when absent).
pub async fn metric(c: &Centre, name: &str) -> f64 {
    let (status, _, body) = http(c.server.http_addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200, "/metrics answers");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}
