//! The operations: each runs its requests over the connections and measures them.

use crate::Common;
use crate::stats::{Samples, Summary};
use berth_proto::v1;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel that sends the bearer token.
pub(crate) type Authed = InterceptedService<Channel, Bearer>;

/// One connection to the scheduler.
#[derive(Clone)]
pub struct Conn {
    channel: Channel,
    bearer: Bearer,
}

impl Conn {
    pub(crate) fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }
    fn jobs(&self) -> v1::jobs_client::JobsClient<Authed> {
        v1::jobs_client::JobsClient::new(self.authed())
    }
    fn reservations(&self) -> v1::reservations_client::ReservationsClient<Authed> {
        v1::reservations_client::ReservationsClient::new(self.authed())
    }
    fn capacity(&self) -> v1::capacity_client::CapacityClient<Authed> {
        v1::capacity_client::CapacityClient::new(self.authed())
    }
    fn admin(&self) -> v1::admin_client::AdminClient<Authed> {
        v1::admin_client::AdminClient::new(self.authed())
    }
    fn agent(&self, credential: &str) -> Result<v1::agent_client::AgentClient<Authed>, String> {
        let bearer = Bearer(Some(bearer_value(credential)?));
        Ok(v1::agent_client::AgentClient::new(InterceptedService::new(
            self.channel.clone(),
            bearer,
        )))
    }
}

fn bearer_value(token: &str) -> Result<MetadataValue<tonic::metadata::Ascii>, String> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not valid header text".to_owned())
}

/// Opens `c.connections` separate HTTP/2 connections.
async fn connect(c: &Common) -> Result<Vec<Conn>, String> {
    let bearer = Bearer(c.token.as_deref().map(bearer_value).transpose()?);
    let mut out = Vec::with_capacity(c.connections.max(1));
    for _ in 0..c.connections.max(1) {
        let channel = Channel::from_shared(c.server.clone())
            .map_err(|e| format!("--server {}: {e}", c.server))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", c.server))?;
        out.push(Conn {
            channel,
            bearer: bearer.clone(),
        });
    }
    Ok(out)
}

/// CPU seconds a process has used (user + system), from `/proc`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every architecture Berth runs on.
    Some((utime + stime) / 100.0)
}

/// CPU time of the scheduler (with `--pid`) and of this load generator over one run.
struct CpuClock {
    server: Option<(u32, f64)>,
    bench: Option<f64>,
}

impl CpuClock {
    fn start(c: &Common) -> Self {
        CpuClock {
            server: c.pid.and_then(|p| Some((p, cpu_seconds(p)?))),
            bench: cpu_seconds(std::process::id()),
        }
    }

    /// Fills in the summary's CPU shares over `wall`.
    fn stop(self, summary: &mut Summary, wall: Duration) {
        let percent = |a: f64, b: Option<f64>| b.map(|b| 100.0 * (b - a) / wall.as_secs_f64());
        summary.server_cpu_percent = self
            .server
            .and_then(|(pid, a)| percent(a, cpu_seconds(pid)));
        summary.bench_cpu_percent = self
            .bench
            .and_then(|a| percent(a, cpu_seconds(std::process::id())));
    }
}

/// Runs `c.count` requests made by `call(conn, i)` over the connections, with
/// `c.per_connection` in flight on each: back to back, or request `i` at `i / c.rate`
/// seconds after the start; none started after `c.time_limit`.
async fn run<F, Fut>(c: &Common, op: &str, conns: Vec<Conn>, call: F) -> Summary
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let call = Arc::new(call);
    let count = c.count;
    let cpu = CpuClock::start(c);
    let started = Instant::now();
    let (rate, time_limit) = (c.rate, c.time_limit);
    let mut workers = Vec::new();
    for conn in &conns {
        for _ in 0..c.per_connection.max(1) {
            let (next, call, conn) = (next.clone(), call.clone(), conn.clone());
            workers.push(tokio::spawn(async move {
                let mut samples = Samples::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || time_limit.is_some_and(|l| started.elapsed() >= l) {
                        return samples;
                    }
                    if rate > 0.0 {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let t = Instant::now();
                    match call(conn.clone(), i).await {
                        Ok(()) => samples.ok(t.elapsed()),
                        Err(e) => samples.err(format!("{:?}: {}", e.code(), e.message())),
                    }
                }
            }));
        }
    }
    let mut all = Samples::default();
    for w in workers {
        if let Ok(s) = w.await {
            all.merge(s);
        }
    }
    let wall = started.elapsed();
    let mut summary = all.summary(op, conns.len(), wall);
    cpu.stop(&mut summary, wall);
    summary
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn dur(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// `submit`: queue jobs.
pub async fn submit(
    c: &Common,
    devices: u32,
    max_runtime: Duration,
    image: &str,
    env_bytes: usize,
) -> Result<Summary, String> {
    let conns = connect(c).await?;
    let mut env = std::collections::HashMap::new();
    if env_bytes > 0 {
        env.insert("PAD".to_owned(), "x".repeat(env_bytes));
    }
    let req = v1::SubmitJobRequest {
        class: c.class.clone(),
        count: devices,
        image: image.to_owned(),
        command: vec!["sleep".into(), "3600".into()],
        max_runtime: Some(dur(max_runtime)),
        env,
        ..Default::default()
    };
    Ok(run(c, "submit", conns, move |conn, i| {
        let mut req = req.clone();
        req.name = format!("bench-{i}");
        async move { conn.jobs().submit_job(req).await.map(drop) }
    })
    .await)
}

/// `reserve`: book windows one after another, as many side by side as the class holds.
pub async fn reserve(
    c: &Common,
    devices: u32,
    length: Duration,
    ahead: Duration,
) -> Result<Summary, String> {
    let conns = connect(c).await?;
    let classes = conns[0]
        .capacity()
        .list_classes(v1::ListClassesRequest {})
        .await
        .map_err(|e| e.message().to_owned())?
        .into_inner()
        .classes;
    let total = classes
        .iter()
        .find(|k| k.name == c.class)
        .map(|k| k.schedulable_devices)
        .ok_or_else(|| format!("no class {:?} on the server", c.class))?;
    let side_by_side = (total / devices.max(1)).max(1) as usize;
    let first = now_ms() + ahead.as_millis() as i64;
    let len = length.as_millis() as i64;
    let class = c.class.clone();
    Ok(run(c, "reserve", conns, move |conn, i| {
        let start = first + (i / side_by_side) as i64 * len;
        let req = v1::CreateReservationRequest {
            class: class.clone(),
            count: devices,
            start: Some(ts(start)),
            end: Some(ts(start + len)),
            site: String::new(),
            project: String::new(),
        };
        async move { conn.reservations().create_reservation(req).await.map(drop) }
    })
    .await)
}

/// `list`: one page of jobs per request. Each page's jobs are counted, not decoded
/// (`decode`: decoded in full, as a client that shows them would).
pub async fn list(c: &Common, page_size: u32, decode: bool) -> Result<Summary, String> {
    let conns = connect(c).await?;
    Ok(run(c, "list", conns, move |conn, _| async move {
        let req = v1::ListJobsRequest {
            all: true,
            page_size,
            ..Default::default()
        };
        let jobs = if decode {
            conn.jobs().list_jobs(req).await?.into_inner().jobs.len()
        } else {
            crate::page::list_jobs(conn.authed(), req).await?.jobs
        };
        if jobs == 0 {
            return Err(Status::failed_precondition(
                "no jobs to list: submit some first",
            ));
        }
        Ok(())
    })
    .await)
}

/// `get`: single jobs by id.
pub async fn get(c: &Common) -> Result<Summary, String> {
    let conns = connect(c).await?;
    let ids: Vec<String> = conns[0]
        .jobs()
        .list_jobs(v1::ListJobsRequest {
            all: true,
            page_size: 5000,
            ..Default::default()
        })
        .await
        .map_err(|e| e.message().to_owned())?
        .into_inner()
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    if ids.is_empty() {
        return Err("no jobs to read: submit some first".into());
    }
    let ids = Arc::new(ids);
    Ok(run(c, "get", conns, move |conn, i| {
        // A fixed stride through the ids: every request reads a different job.
        let id = ids[(i * 7919) % ids.len()].clone();
        async move {
            conn.jobs()
                .get_job(v1::GetJobRequest { id })
                .await
                .map(drop)
        }
    })
    .await)
}

/// How simulated agents report their inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inventory {
    /// In full once, then by its digest while the scheduler holds it (as agents do).
    Digest,
    /// In full in every heartbeat, with no digest (as agents did before digests).
    Full,
}

/// How simulated agents send their heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// On one `Heartbeats` stream per agent (as agents do).
    Stream,
    /// One `Heartbeat` call each (as agents did before streams).
    Calls,
}

/// How the simulated agents behave.
#[derive(Debug, Clone, Copy)]
pub struct Agents {
    /// Time between an agent's heartbeats.
    pub interval: Duration,
    /// How they report their inventory.
    pub inventory: Inventory,
    /// How they send their heartbeats.
    pub transport: Transport,
}

/// One simulated agent's open heartbeat stream: where its requests go, where its replies
/// come from.
type Beats = (
    tokio::sync::mpsc::Sender<v1::HeartbeatRequest>,
    tonic::Streaming<v1::HeartbeatResponse>,
);

/// Sends one heartbeat the way `transport` says, opening the agent's stream first when
/// it has none; a failed stream is dropped, to be opened again at the next heartbeat. A
/// scheduler without streams (UNIMPLEMENTED) gets calls from then on, as agents do.
async fn beat(
    client: &mut v1::agent_client::AgentClient<Authed>,
    transport: &mut Transport,
    stream: &mut Option<Beats>,
    req: v1::HeartbeatRequest,
) -> Result<v1::HeartbeatResponse, tonic::Status> {
    if *transport == Transport::Calls {
        return client.heartbeat(req).await.map(|r| r.into_inner());
    }
    if stream.is_none() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let opened = client
            .heartbeats(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let replies = match opened {
            Ok(replies) => replies.into_inner(),
            Err(e) if e.code() == tonic::Code::Unimplemented => {
                *transport = Transport::Calls;
                return client.heartbeat(req).await.map(|r| r.into_inner());
            }
            Err(e) => return Err(e),
        };
        *stream = Some((tx, replies));
    }
    let (tx, replies) = stream.as_mut().expect("opened above");
    let reply = match tx.send(req).await {
        Ok(()) => replies.message().await,
        Err(_) => Err(tonic::Status::unavailable("the heartbeat stream closed")),
    };
    match reply {
        Ok(Some(r)) => Ok(r),
        Ok(None) => {
            *stream = None;
            Err(tonic::Status::unavailable(
                "the scheduler ended the heartbeat stream",
            ))
        }
        Err(e) => {
            *stream = None;
            Err(e)
        }
    }
}

/// `heartbeat`: `c.count` simulated agents of 8 devices each join and heartbeat every
/// `agents.interval` from then on, as real agents do; the summary covers the heartbeats
/// of `duration`, measured from one interval after the last agent joined (every agent
/// has then sent its first heartbeat, with its inventory in full, and is in its steady
/// rhythm).
pub async fn heartbeat(
    c: &Common,
    agents: Agents,
    duration: Duration,
    site: Option<&str>,
) -> Result<Summary, String> {
    let conns = connect(c).await?;
    let site = match site {
        Some(s) => s.to_owned(),
        None => conns[0]
            .capacity()
            .list_sites(v1::ListSitesRequest {})
            .await
            .map_err(|e| e.message().to_owned())?
            .into_inner()
            .sites
            .first()
            .map(|s| s.name.clone())
            .ok_or("the server has no site yet")?,
    };
    let run_id = now_ms() % 1_000_000;
    eprintln!("joining {} agents...", c.count);
    let (window_tx, window) = tokio::sync::watch::channel(None);
    let epoch = Instant::now();
    let mut beating = Vec::with_capacity(c.count);
    for chunk in (0..c.count).collect::<Vec<_>>().chunks(256) {
        let mut joins = Vec::new();
        for &i in chunk {
            let conn = conns[i % conns.len()].clone();
            let (site, class) = (site.clone(), c.class.clone());
            joins.push(tokio::spawn(async move {
                let node = format!("bench-{run_id}-{i}");
                join(&conn, &node, &site, &class).await.map(|j| (conn, j))
            }));
        }
        for j in joins {
            let (conn, joined) = j.await.map_err(|e| e.to_string())??;
            let client = conn.agent(&joined.credential)?;
            // Like a real agent, it heartbeats from the moment it has joined; then in
            // its own slot of the interval, as real ones drift apart.
            let slot = epoch
                + agents
                    .interval
                    .mul_f64(beating.len() as f64 / c.count as f64);
            beating.push(tokio::spawn(beat_every(
                client,
                joined,
                agents,
                slot,
                window.clone(),
            )));
        }
    }
    // One interval on, every agent has sent its first heartbeat: the measure begins.
    tokio::time::sleep(agents.interval).await;
    eprintln!("measuring heartbeats for {} s...", duration.as_secs());
    let cpu = CpuClock::start(c);
    let started = Instant::now();
    let _ = window_tx.send(Some((started, started + duration)));
    let mut all = Samples::default();
    for a in beating {
        if let Ok(s) = a.await {
            all.merge(s);
        }
    }
    let wall = started.elapsed();
    let mut summary = all.summary("heartbeat", conns.len(), wall);
    cpu.stop(&mut summary, wall);
    Ok(summary)
}

/// A simulated agent once joined: its node, credential and devices.
struct Joined {
    node: String,
    credential: String,
    devices: Vec<v1::DeviceReport>,
}

/// Creates a join token for `node` (with the admin's token) and joins it with 8 devices.
async fn join(conn: &Conn, node: &str, site: &str, class: &str) -> Result<Joined, String> {
    // A join token joins once, so each agent gets its own.
    let token = conn
        .admin()
        .create_join_token(v1::CreateJoinTokenRequest {
            node: node.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            format!(
                "creating a join token (needs an admin token): {}",
                e.message()
            )
        })?
        .into_inner()
        .token;
    let devices = reports(node, class);
    let mut agent = v1::agent_client::AgentClient::new(conn.channel.clone());
    let r = agent
        .join(v1::JoinRequest {
            join_token: token,
            node: node.to_owned(),
            site: site.to_owned(),
            hostname: node.to_owned(),
            devices: devices.clone(),
            agent_version: "berth-bench".into(),
            runtime: "none".into(),
        })
        .await
        .map_err(|e| format!("joining {node}: {}", e.message()))?
        .into_inner();
    Ok(Joined {
        node: node.to_owned(),
        credential: r.credential,
        devices,
    })
}

/// One agent's heartbeats: one now, then every `agents.interval` from `slot` on, until
/// the measured window (`(start, end)`, once `window` holds it) ends; the samples are
/// those sent inside it.
async fn beat_every(
    mut client: v1::agent_client::AgentClient<Authed>,
    Joined { node, devices, .. }: Joined,
    agents: Agents,
    slot: Instant,
    window: tokio::sync::watch::Receiver<Option<(Instant, Instant)>>,
) -> Samples {
    let mut samples = Samples::default();
    let mut known = 0u64;
    // Like a real agent, it sends its inventory in full until the scheduler answers its
    // digest, then telemetry alone.
    let digest = match agents.inventory {
        Inventory::Digest => berth_proto::inventory::digest(&devices),
        Inventory::Full => 0,
    };
    let telemetry = berth_proto::inventory::samples(&devices);
    let mut acked = 0u64;
    // Like a real agent, it runs what it is sent (until told otherwise) and says so: a
    // job it did not report would be recorded as lost, and replaced.
    let mut running: Vec<v1::ObservedJob> = Vec::new();
    let mut stream = None;
    let mut transport = agents.transport;
    let mut at = Instant::now();
    let mut next = slot;
    loop {
        tokio::time::sleep_until(at.into()).await;
        let measured = matches!(*window.borrow(), Some((start, _)) if at >= start);
        let held = digest != 0 && acked == digest;
        let req = v1::HeartbeatRequest {
            node: node.clone(),
            known_generation: known,
            devices: if held { Vec::new() } else { devices.clone() },
            inventory_digest: digest,
            samples: if held { telemetry.clone() } else { Vec::new() },
            jobs: running.clone(),
            wait: None,
            agent_version: "berth-bench".into(),
            runtime: "none".into(),
        };
        let t = Instant::now();
        match beat(&mut client, &mut transport, &mut stream, req).await {
            Ok(r) => {
                if measured {
                    samples.ok(t.elapsed());
                }
                running = runs(&r, &running);
                known = r.generation;
                acked = r.inventory_digest;
            }
            Err(e) if measured => samples.err(format!("{:?}: {}", e.code(), e.message())),
            Err(_) => {}
        }
        while next <= at {
            next += agents.interval;
        }
        at = next;
        if matches!(*window.borrow(), Some((_, end)) if at >= end) {
            break;
        }
    }
    samples
}

/// What a simulated agent runs after a heartbeat's reply: every job it was sent, running
/// since it was first seen.
fn runs(reply: &v1::HeartbeatResponse, before: &[v1::ObservedJob]) -> Vec<v1::ObservedJob> {
    reply
        .jobs
        .iter()
        .map(|d| {
            before
                .iter()
                .find(|o| o.job_id == d.job_id)
                .cloned()
                .unwrap_or_else(|| v1::ObservedJob {
                    job_id: d.job_id.clone(),
                    phase: v1::JobPhase::Running as i32,
                    started_at: Some(ts(now_ms())),
                    generation: reply.generation,
                    ..Default::default()
                })
        })
        .collect()
}

/// Eight healthy simulated devices of a node, with a telemetry sample.
fn reports(node: &str, class: &str) -> Vec<v1::DeviceReport> {
    (0..8)
        .map(|i| v1::DeviceReport {
            uuid: format!("BENCH-{node}-{i}"),
            index: i,
            class: class.to_owned(),
            vendor: "sim".into(),
            model: "Bench".into(),
            memory_bytes: 80 << 30,
            health: v1::DeviceHealth::Healthy as i32,
            telemetry: Some(v1::Telemetry {
                utilization_pct: 50.0,
                memory_used_bytes: 1 << 30,
                power_w: 300.0,
                temperature_c: 50.0,
                sampled_at: Some(ts(now_ms())),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}
