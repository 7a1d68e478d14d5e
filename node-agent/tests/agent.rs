//! The agent against a fake scheduler speaking the real gRPC protocol: joining,
//! long-poll heartbeats, starting and stopping jobs, logs before exit reports,
//! acknowledgements, re-joining, restart recovery and graceful shutdown.

use berth_agent::AgentConfig;
use berth_proto::evidence::{EnergySource, Evidence, UtilizationSource};
use berth_proto::time::{dur_to_ms, ms_to_dur, ms_to_ts, now_ms, ts_to_ms};
use berth_proto::v1::agent_server::{Agent, AgentServer};
use berth_proto::v1::{
    DesiredJob, DeviceReport, HeartbeatRequest, HeartbeatResponse, JobPhase, JoinRequest,
    JoinResponse, NodeState, ObservedJob, PushLogsRequest, PushLogsResponse, ReportJobResponse,
    Telemetry, log_chunk,
};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

mod fake_nvml;

/// Failure guard only: every wait ends on an event long before this.
const GUARD: Duration = Duration::from_secs(60);
const JOIN_TOKEN: &str = "join-secret";

#[derive(Default)]
struct State {
    joins: Vec<JoinRequest>,
    credential: Option<String>,
    issued: u32,
    generation: u64,
    desired: BTreeMap<String, DesiredJob>,
    acknowledged: Vec<String>,
    heartbeats: Vec<HeartbeatRequest>,
    reports: Vec<ObservedJob>,
    /// Stored chunks per job: seq → (stream, data).
    logs: BTreeMap<String, BTreeMap<u64, (i32, Vec<u8>)>>,
    /// For each final EXITED report: the job's stdout and stderr stored at that moment.
    logs_at_exit: BTreeMap<String, (String, String)>,
    unauthenticated: u32,
    /// How far the scheduler's clock is from the host's (the agent's).
    clock_offset_ms: i64,
    /// The digest of the inventory the scheduler holds (0: none, as after a restart).
    inventory_digest: u64,
    /// Answer UNIMPLEMENTED to heartbeat streams, as a scheduler from before them.
    no_streams: bool,
    /// Heartbeat streams opened, and refused as unimplemented.
    streams: u32,
    streams_refused: u32,
    /// Heartbeats taken on a stream, and as calls.
    streamed: u32,
    called: u32,
}

impl State {
    fn output(&self, job_id: &str) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        for (stream, data) in self.logs.get(job_id).into_iter().flat_map(|l| l.values()) {
            if *stream == log_chunk::Stream::Stdout as i32 {
                out.extend_from_slice(data);
            } else {
                err.extend_from_slice(data);
            }
        }
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    fn reports_of(&self, job_id: &str) -> Vec<&ObservedJob> {
        self.reports.iter().filter(|r| r.job_id == job_id).collect()
    }

    fn final_report(&self, job_id: &str) -> Option<&ObservedJob> {
        self.reports_of(job_id)
            .into_iter()
            .find(|r| is_final(r.phase))
    }
}

/// A device's telemetry in a heartbeat, whether it lists the inventory or leaves it out
/// (then the sample goes by the device's index).
fn telemetry_of(hb: &HeartbeatRequest, device: &DeviceReport) -> Option<Telemetry> {
    let listed = hb.devices.iter().find(|d| d.uuid == device.uuid);
    let sampled = hb.samples.iter().find(|s| s.index == device.index);
    listed
        .and_then(|d| d.telemetry)
        .or(sampled.and_then(|s| s.telemetry))
}

fn is_final(phase: i32) -> bool {
    [JobPhase::Exited, JobPhase::FailedToStart, JobPhase::Unknown]
        .iter()
        .any(|p| *p as i32 == phase)
}

/// A scheduler that does what the real one must: holds heartbeats, dedups logs,
/// acknowledges final reports and drops those jobs from the desired set.
#[derive(Clone)]
struct FakeScheduler {
    state: Arc<Mutex<State>>,
    desired_changed: Arc<Notify>,
    changed: watch::Sender<u64>,
}

impl FakeScheduler {
    fn new() -> Self {
        Self {
            state: Arc::default(),
            desired_changed: Arc::new(Notify::new()),
            changed: watch::channel(0).0,
        }
    }

    fn touch(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn check_auth<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let state = self.state.lock().unwrap();
        let got = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match (&state.credential, got) {
            (Some(c), Some(got)) if got == format!("Bearer {c}") => Ok(()),
            _ => Err(Status::unauthenticated("bad credential")),
        }
    }

    fn unauth(&self, status: Status) -> Status {
        self.state.lock().unwrap().unauthenticated += 1;
        self.touch();
        status
    }

    fn set_desired(&self, f: impl FnOnce(&mut BTreeMap<String, DesiredJob>)) {
        {
            let mut state = self.state.lock().unwrap();
            f(&mut state.desired);
            state.generation += 1;
        }
        self.desired_changed.notify_waiters();
        self.touch();
    }

    /// Takes a heartbeat (its credential checked; `streamed`: on a stream) and answers
    /// it, holding it while the agent has the current generation, up to its wait.
    async fn beat(&self, request: HeartbeatRequest, streamed: bool) -> HeartbeatResponse {
        let wait = Duration::from_millis(request.wait.as_ref().map_or(0, dur_to_ms) as u64);
        let notified = self.desired_changed.notified();
        let (current, unknown) = {
            let mut state = self.state.lock().unwrap();
            state.heartbeats.push(request.clone());
            if streamed {
                state.streamed += 1;
            } else {
                state.called += 1;
            }
            if !request.devices.is_empty() {
                state.inventory_digest = request.inventory_digest;
            }
            // An inventory left out that this scheduler does not hold: answered at once.
            let unknown = request.devices.is_empty()
                && request.inventory_digest != 0
                && request.inventory_digest != state.inventory_digest;
            (state.generation, unknown)
        };
        self.touch();
        if request.known_generation == current && !unknown {
            let _ = tokio::time::timeout(wait, notified).await;
        }
        let state = self.state.lock().unwrap();
        HeartbeatResponse {
            generation: state.generation,
            jobs: state.desired.values().cloned().collect(),
            lease: Some(ms_to_dur(30_000)),
            acknowledged: state.acknowledged.clone(),
            node_state: NodeState::Ready as i32,
            more: false,
            now: Some(ms_to_ts(now_ms() + state.clock_offset_ms)),
            inventory_digest: state.inventory_digest,
        }
    }

    /// Waits until `pred` holds for the state.
    async fn until<T>(&self, what: &str, mut pred: impl FnMut(&State) -> Option<T>) -> T {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                if let Some(v) = pred(&self.state.lock().unwrap()) {
                    return v;
                }
                rx.changed().await.expect("scheduler alive");
            }
        };
        tokio::time::timeout(GUARD, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }
}

#[tonic::async_trait]
impl Agent for FakeScheduler {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let request = request.into_inner();
        if request.join_token != JOIN_TOKEN {
            return Err(self.unauth(Status::unauthenticated("bad join token")));
        }
        let credential = {
            let mut state = self.state.lock().unwrap();
            state.issued += 1;
            let credential = format!("cred-{}", state.issued);
            state.credential = Some(credential.clone());
            state.joins.push(request.clone());
            credential
        };
        self.touch();
        Ok(Response::new(JoinResponse {
            node: request.node,
            credential,
            lease: Some(ms_to_dur(30_000)),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.check_auth(&request).map_err(|s| self.unauth(s))?;
        Ok(Response::new(self.beat(request.into_inner(), false).await))
    }

    type HeartbeatsStream = futures::stream::BoxStream<'static, Result<HeartbeatResponse, Status>>;

    async fn heartbeats(
        &self,
        request: Request<tonic::Streaming<HeartbeatRequest>>,
    ) -> Result<Response<Self::HeartbeatsStream>, Status> {
        if self.state.lock().unwrap().no_streams {
            self.state.lock().unwrap().streams_refused += 1;
            self.touch();
            return Err(Status::unimplemented("no heartbeat streams here"));
        }
        self.check_auth(&request).map_err(|s| self.unauth(s))?;
        let presented = request.metadata().get("authorization").cloned();
        self.state.lock().unwrap().streams += 1;
        self.touch();
        let (me, inbound) = (self.clone(), request.into_inner());
        // As the real scheduler does: the credential is checked at every request, and
        // an error ends the stream.
        let replies = futures::stream::unfold(Some((me, inbound)), move |open| {
            let presented = presented.clone();
            async move {
                let (me, mut inbound) = open?;
                let request = inbound.message().await.ok()??;
                let mut check = Request::new(());
                if let Some(v) = presented {
                    check.metadata_mut().insert("authorization", v);
                }
                if let Err(s) = me.check_auth(&check) {
                    return Some((Err(me.unauth(s)), None));
                }
                let reply = me.beat(request, true).await;
                Some((Ok(reply), Some((me, inbound))))
            }
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn report_job(
        &self,
        request: Request<ObservedJob>,
    ) -> Result<Response<ReportJobResponse>, Status> {
        self.check_auth(&request).map_err(|s| self.unauth(s))?;
        let report = request.into_inner();
        let final_report = is_final(report.phase);
        {
            let mut state = self.state.lock().unwrap();
            if report.phase == JobPhase::Exited as i32 {
                let output = state.output(&report.job_id);
                state.logs_at_exit.insert(report.job_id.clone(), output);
            }
            if final_report && !state.acknowledged.contains(&report.job_id) {
                state.acknowledged.push(report.job_id.clone());
            }
            state.reports.push(report.clone());
        }
        if final_report {
            self.set_desired(|d| {
                d.remove(&report.job_id);
            });
        }
        self.touch();
        Ok(Response::new(ReportJobResponse {}))
    }

    async fn push_logs(
        &self,
        request: Request<PushLogsRequest>,
    ) -> Result<Response<PushLogsResponse>, Status> {
        self.check_auth(&request).map_err(|s| self.unauth(s))?;
        let request = request.into_inner();
        let stored_seq = {
            let mut state = self.state.lock().unwrap();
            let logs = state.logs.entry(request.job_id).or_default();
            for chunk in request.chunks {
                logs.entry(chunk.seq).or_insert((chunk.stream, chunk.data));
            }
            logs.keys().next_back().copied().unwrap_or(0)
        };
        self.touch();
        Ok(Response::new(PushLogsResponse { stored_seq }))
    }
}

struct Harness {
    scheduler: FakeScheduler,
    server: String,
    stop_server: CancellationToken,
    state_dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let scheduler = FakeScheduler::new();
        let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
            .expect("bind");
        let addr = incoming.local_addr().unwrap();
        let stop_server = CancellationToken::new();
        let stop = stop_server.clone();
        let service = AgentServer::new(scheduler.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
                .expect("fake scheduler serves");
        });
        Self {
            scheduler,
            server: format!("http://{addr}"),
            stop_server,
            state_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> AgentConfig {
        let mut config =
            AgentConfig::new(&self.server, "test-node", "local", self.state_dir.path());
        config.join_token = Some(JOIN_TOKEN.to_owned());
        config.devices = "sim:2".to_owned();
        config.heartbeat_wait = Duration::from_millis(500);
        config
    }

    fn start_agent(
        &self,
        config: AgentConfig,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<Result<(), berth_agent::AgentError>>,
    ) {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(berth_agent::run(config, shutdown.clone()));
        (shutdown, handle)
    }

    /// Stops an agent `start_agent` started, and waits for it to return Ok.
    async fn stop_agent(
        &self,
        shutdown: CancellationToken,
        agent: tokio::task::JoinHandle<Result<(), berth_agent::AgentError>>,
    ) {
        shutdown.cancel();
        tokio::time::timeout(GUARD, agent)
            .await
            .expect("agent stops in time")
            .expect("agent task")
            .expect("agent returns Ok");
    }

    fn job(&self, id: &str, command: &[&str], device: &str) -> DesiredJob {
        DesiredJob {
            job_id: id.to_owned(),
            image: "ignored".to_owned(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: [("GREETING".to_owned(), "hello".to_owned())].into(),
            devices: vec![device.to_owned()],
            deadline: Some(ms_to_ts(now_ms() + 3_600_000)),
            grace: Some(ms_to_dur(10_000)),
            org: "acme".to_owned(),
            ..Default::default()
        }
    }
}

fn phases(reports: &[&ObservedJob]) -> Vec<JobPhase> {
    reports
        .iter()
        .map(|r| JobPhase::try_from(r.phase).unwrap())
        .collect()
}

#[tokio::test]
async fn runs_jobs_end_to_end() {
    let h = Harness::new().await;
    let s = &h.scheduler;
    let (shutdown, agent) = h.start_agent(h.config());

    // Joins with the token, stores the credential owner-only, then heartbeats with it.
    let join = s.until("join", |st| st.joins.first().cloned()).await;
    assert_eq!(join.node, "test-node");
    assert_eq!(join.site, "local");
    assert_eq!(join.runtime, "process");
    assert_eq!(join.devices.len(), 2);
    let first = s
        .until("heartbeat", |st| st.heartbeats.first().cloned())
        .await;
    assert_eq!(first.known_generation, 0);
    assert_eq!(first.devices.len(), 2);
    assert!(first.wait.is_some());
    let credential_file = h.state_dir.path().join("credential");
    assert_eq!(std::fs::read_to_string(&credential_file).unwrap(), "cred-1");
    assert_eq!(
        std::fs::metadata(&credential_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let gpu0 = join.devices[0].uuid.clone();
    let gpu1 = join.devices[1].uuid.clone();
    assert!(gpu0.starts_with("GPU-"));

    // A job that writes to both streams and fails: every line is stored before EXITED.
    s.set_desired(|d| {
        d.insert(
            "job-a".into(),
            h.job(
                "job-a",
                &[
                    "sh",
                    "-c",
                    "for i in 1 2 3; do echo line $i; done; echo \"$GREETING $BERTH_DEVICES\" >&2; exit 3",
                ],
                &gpu0,
            ),
        );
    });
    let exited = s
        .until("job-a exit", |st| st.final_report("job-a").cloned())
        .await;
    assert_eq!(JobPhase::try_from(exited.phase), Ok(JobPhase::Exited));
    assert_eq!(exited.exit_code, Some(3));
    assert!(!exited.stopped_by_agent);
    assert!(exited.started_at.is_some() && exited.finished_at.is_some());
    assert_eq!(exited.generation, 1);
    // Sampled at its start and after its end, however short it was.
    let e = Evidence::from_proto(exited.evidence.as_ref().expect("evidence")).unwrap();
    assert!(e.samples >= 2, "{e:?}");
    let (out, err) = s.state.lock().unwrap().logs_at_exit["job-a"].clone();
    assert_eq!(out, "line 1\nline 2\nline 3\n");
    assert_eq!(err, format!("hello {gpu0}\n"));
    let seqs: Vec<u64> = s.state.lock().unwrap().logs["job-a"]
        .keys()
        .copied()
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    {
        let st = s.state.lock().unwrap();
        let p = phases(&st.reports_of("job-a"));
        assert_eq!(p.first(), Some(&JobPhase::Starting));
        assert_eq!(p.last(), Some(&JobPhase::Exited));
        assert!(p.windows(2).all(|w| w[0] as i32 <= w[1] as i32), "{p:?}");
    }

    // Acknowledged: forgotten (no longer in heartbeats) and its scratch dir removed.
    let acked_at = s.state.lock().unwrap().heartbeats.len();
    s.until("job-a forgotten", |st| {
        st.heartbeats[acked_at..]
            .iter()
            .any(|hb| hb.jobs.is_empty())
            .then_some(())
    })
    .await;
    let scratch = h.state_dir.path().join("jobs/job-a");
    for _ in 0..200 {
        if !scratch.exists() {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !scratch.exists(),
        "scratch directory removed after acknowledgement"
    );

    // A running job shows as busy in telemetry, and is stopped once no longer desired.
    s.set_desired(|d| {
        d.insert("job-b".into(), h.job("job-b", &["sleep", "60"], &gpu1));
    });
    s.until("job-b running", |st| {
        st.reports_of("job-b")
            .iter()
            .any(|r| r.phase == JobPhase::Running as i32)
            .then_some(())
    })
    .await;
    let busy_from = s.state.lock().unwrap().heartbeats.len();
    let util = s
        .until("busy telemetry", |st| {
            st.heartbeats[busy_from..]
                .iter()
                .find_map(|hb| Some(telemetry_of(hb, &join.devices[1])?.utilization_pct))
        })
        .await;
    assert!(util >= 60.0, "busy device utilisation {util}");
    // Its evidence grows in the heartbeats while it runs.
    let running = s
        .until("job-b evidence while running", |st| {
            st.heartbeats[busy_from..].iter().find_map(|hb| {
                let job = hb.jobs.iter().find(|j| j.job_id == "job-b")?;
                let e = job.evidence.as_ref()?;
                (e.samples >= 3).then(|| Evidence::from_proto(e).expect("valid evidence"))
            })
        })
        .await;
    assert!(running.energy_wh > 0.0, "{running:?}");
    s.set_desired(|d| {
        d.remove("job-b");
    });
    let stopped = s
        .until("job-b stopped", |st| st.final_report("job-b").cloned())
        .await;
    // At its end: a simulated busy GPU's SM activity (at least 60 % × 0.55), its
    // memory, and energy from its counter at 60 to 700 W over the covered time.
    let e = Evidence::from_proto(stopped.evidence.as_ref().expect("final evidence")).unwrap();
    assert_eq!(e.devices, 1);
    assert!(e.samples > running.samples, "{e:?}");
    assert_eq!(e.utilization_source, UtilizationSource::SmActive);
    let sm = e.mean_sm_active.expect("simulated GPUs report SM activity");
    assert!((0.33..=0.95).contains(&sm), "{e:?}");
    assert!(
        (e.mean_utilization_percent - sm * 100.0).abs() < 1e-9,
        "{e:?}"
    );
    assert!(e.mean_tensor_active.unwrap() <= sm, "{e:?}");
    assert!(e.peak_memory_bytes >= 32 << 30, "{e:?}");
    assert_eq!(e.energy_source, Some(EnergySource::Counter));
    // (The simulator's clock is monotonic, the readings' milliseconds are wall-clock:
    // up to 1 ms apart per reading.)
    let joules = e.energy_wh * 3600.0;
    let slack_s = f64::from(e.samples) * 0.001;
    assert!(
        joules >= 60.0 * (e.covered_seconds - slack_s)
            && joules <= 700.0 * (e.covered_seconds + slack_s),
        "{e:?}"
    );
    assert!(e.covered_seconds > 0.0, "{e:?}");
    assert_eq!(stopped.exit_code, Some(143));
    assert!(stopped.stopped_by_agent);
    assert!(
        stopped.message.contains("no longer wanted"),
        "{}",
        stopped.message
    );

    // The agent stops a job at its deadline by itself.
    let mut short = h.job("job-c", &["sleep", "60"], &gpu0);
    short.deadline = Some(ms_to_ts(now_ms() + 1_000));
    s.set_desired(|d| {
        d.insert("job-c".into(), short);
    });
    let timed_out = s
        .until("job-c deadline", |st| st.final_report("job-c").cloned())
        .await;
    assert!(timed_out.stopped_by_agent);
    assert!(
        timed_out.message.contains("deadline"),
        "{}",
        timed_out.message
    );

    // Bad commands fail to start with a message.
    s.set_desired(|d| {
        d.insert(
            "job-d".into(),
            h.job("job-d", &["no-such-berth-command"], &gpu0),
        );
        d.insert("job-e".into(), h.job("job-e", &[], &gpu1));
    });
    for (id, want) in [("job-d", "not found in PATH"), ("job-e", "empty command")] {
        let failed = s.until(id, |st| st.final_report(id).cloned()).await;
        assert_eq!(
            JobPhase::try_from(failed.phase),
            Ok(JobPhase::FailedToStart)
        );
        assert!(failed.message.contains(want), "{id}: {}", failed.message);
    }

    // A refused credential makes the agent join again and go on.
    s.state.lock().unwrap().credential = Some("rotated-away".into());
    s.set_desired(|_| {});
    s.until("re-join", |st| (st.joins.len() >= 2).then_some(()))
        .await;
    let after = s.state.lock().unwrap().heartbeats.len();
    s.until("heartbeat after re-join", |st| {
        (st.heartbeats.len() > after).then_some(())
    })
    .await;
    assert_eq!(std::fs::read_to_string(&credential_file).unwrap(), "cred-2");
    // The stream was refused with the old credential: heartbeats went on as calls.
    assert!(s.state.lock().unwrap().called >= 1);

    // Shutdown stops running jobs with their grace, reports them, and returns Ok.
    s.set_desired(|d| {
        d.insert(
            "job-f".into(),
            h.job("job-f", &["sh", "-c", "echo bye; sleep 60"], &gpu0),
        );
    });
    s.until("job-f output", |st| {
        st.logs.get("job-f").filter(|l| !l.is_empty()).map(|_| ())
    })
    .await;
    h.stop_agent(shutdown, agent).await;
    let st = s.state.lock().unwrap();
    let last = st
        .final_report("job-f")
        .expect("job-f reported at shutdown");
    assert_eq!(JobPhase::try_from(last.phase), Ok(JobPhase::Exited));
    assert!(last.stopped_by_agent);
    assert!(last.message.contains("shutting down"), "{}", last.message);
    assert_eq!(st.logs_at_exit["job-f"].0, "bye\n");
    drop(st);
    h.stop_server.cancel();
}

#[tokio::test]
async fn a_restarted_agent_reports_jobs_it_could_not_keep() {
    let h = Harness::new().await;
    let s = &h.scheduler;
    let (_shutdown, agent) = h.start_agent(h.config());
    let join = s.until("join", |st| st.joins.first().cloned()).await;
    let gpu0 = join.devices[0].uuid.clone();
    s.set_desired(|d| {
        d.insert(
            "job-x".into(),
            h.job("job-x", &["sh", "-c", "echo up; sleep 60"], &gpu0),
        );
    });
    s.until("job-x output", |st| {
        st.logs.get("job-x").filter(|l| !l.is_empty()).map(|_| ())
    })
    .await;

    // The agent dies without stopping its job (as on a crash).
    agent.abort();
    let _ = agent.await;

    // A new agent on the same state directory: no join (stored credential), the
    // leftover job is killed and reported UNKNOWN, and never restarted though desired.
    let (shutdown, agent) = h.start_agent(h.config());
    let lost = s
        .until("job-x lost", |st| st.final_report("job-x").cloned())
        .await;
    assert_eq!(JobPhase::try_from(lost.phase), Ok(JobPhase::Unknown));
    assert!(lost.message.contains("cannot re-adopt"), "{}", lost.message);
    assert_eq!(lost.generation, 1);
    assert_eq!(
        s.state.lock().unwrap().joins.len(),
        1,
        "stored credential reused"
    );
    let starts = s
        .state
        .lock()
        .unwrap()
        .reports_of("job-x")
        .iter()
        .filter(|r| r.phase == JobPhase::Starting as i32)
        .count();
    assert_eq!(starts, 1, "never restarted");

    h.stop_agent(shutdown, agent).await;
    h.stop_server.cancel();
}

#[tokio::test]
async fn heartbeats_leave_out_an_inventory_the_scheduler_holds() {
    let h = Harness::new().await;
    let s = &h.scheduler;
    let (shutdown, agent) = h.start_agent(h.config());
    let join = s.until("join", |st| st.joins.first().cloned()).await;

    // In full until the scheduler answers its digest, then by the digest, with the
    // devices' telemetry by index.
    let (first, second) = s
        .until("two heartbeats", |st| {
            Some((
                st.heartbeats.first()?.clone(),
                st.heartbeats.get(1)?.clone(),
            ))
        })
        .await;
    assert_eq!(first.devices.len(), 2);
    assert!(first.samples.is_empty());
    assert_ne!(first.inventory_digest, 0);
    assert!(second.devices.is_empty(), "{second:?}");
    assert_eq!(second.inventory_digest, first.inventory_digest);
    let indexes: Vec<u32> = second.samples.iter().map(|d| d.index).collect();
    assert_eq!(indexes, [join.devices[0].index, join.devices[1].index]);
    assert!(
        join.devices
            .iter()
            .all(|d| telemetry_of(&second, d).is_some())
    );

    // The scheduler restarts and holds no inventory: a heartbeat that leaves it out is
    // answered at once with no digest, and the agent lists its devices in full again.
    let from = {
        let mut st = s.state.lock().unwrap();
        st.inventory_digest = 0;
        st.heartbeats.len()
    };
    let full = s
        .until("the inventory sent again", |st| {
            st.heartbeats[from..]
                .iter()
                .find(|hb| !hb.devices.is_empty())
                .cloned()
        })
        .await;
    let bare = |reports: &[DeviceReport]| {
        reports
            .iter()
            .map(|d| DeviceReport {
                telemetry: None,
                ..d.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(bare(&full.devices), bare(&first.devices));
    assert_eq!(full.inventory_digest, first.inventory_digest);

    h.stop_agent(shutdown, agent).await;
    h.stop_server.cancel();
}

#[tokio::test]
async fn heartbeats_go_on_one_stream_or_as_calls_to_a_scheduler_without_streams() {
    // A scheduler with streams: one stream carries every heartbeat, long-polls included,
    // and the work they bring runs.
    let h = Harness::new().await;
    let s = &h.scheduler;
    let (shutdown, agent) = h.start_agent(h.config());
    let join = s.until("join", |st| st.joins.first().cloned()).await;
    s.until("three heartbeats on a stream", |st| {
        (st.streamed >= 3).then_some(())
    })
    .await;
    s.set_desired(|d| {
        d.insert(
            "job-s".into(),
            h.job("job-s", &["true"], &join.devices[0].uuid),
        );
    });
    s.until("job-s ends", |st| st.final_report("job-s").cloned())
        .await;
    {
        let st = s.state.lock().unwrap();
        assert_eq!((st.streams, st.called), (1, 0));
        assert_eq!(st.heartbeats.len(), st.streamed as usize);
    }
    h.stop_agent(shutdown, agent).await;
    h.stop_server.cancel();

    // One from before streams: tried once, then calls only.
    let h = Harness::new().await;
    let s = &h.scheduler;
    s.state.lock().unwrap().no_streams = true;
    let (shutdown, agent) = h.start_agent(h.config());
    s.until("three heartbeats as calls", |st| {
        (st.called >= 3).then_some(())
    })
    .await;
    {
        let st = s.state.lock().unwrap();
        assert_eq!((st.streams_refused, st.streams, st.streamed), (1, 0, 0));
    }
    h.stop_agent(shutdown, agent).await;
    h.stop_server.cancel();
}

#[tokio::test]
async fn times_are_the_schedulers_whatever_the_hosts_clock_says() {
    // The host's clock is ten minutes ahead of the scheduler's.
    const OFFSET: i64 = -600_000;
    let scheduler_now = || now_ms() + OFFSET;
    let near = |what: &str, at: Option<&prost_types::Timestamp>| {
        let at = ts_to_ms(at.unwrap_or_else(|| panic!("no {what}")));
        assert!(
            (at - scheduler_now()).abs() < 10_000,
            "{what} is {} s off the scheduler's clock",
            (at - scheduler_now()) / 1000
        );
    };
    let h = Harness::new().await;
    let s = &h.scheduler;
    s.state.lock().unwrap().clock_offset_ms = OFFSET;
    let (shutdown, agent) = h.start_agent(h.config());
    let join = s.until("join", |st| st.joins.first().cloned()).await;
    let gpu0 = join.devices[0].uuid.clone();

    // A minute to run, by the scheduler's clock: nine minutes ago by the host's.
    let mut job = h.job("job-s", &["sh", "-c", "echo up; sleep 60"], &gpu0);
    job.deadline = Some(ms_to_ts(scheduler_now() + 60_000));
    s.set_desired(|d| {
        d.insert("job-s".into(), job);
    });
    let first = s
        .until("job-s to run or fail", |st| {
            st.reports_of("job-s")
                .into_iter()
                .find(|r| r.phase == JobPhase::Running as i32 || is_final(r.phase))
                .cloned()
        })
        .await;
    assert_eq!(
        JobPhase::try_from(first.phase),
        Ok(JobPhase::Running),
        "{first:?}"
    );
    near("started_at", first.started_at.as_ref());
    let beat = s
        .until(
            "a heartbeat with device samples after the first reply",
            |st| {
                st.heartbeats
                    .iter()
                    .skip(1)
                    .find_map(|h| join.devices.iter().find_map(|d| telemetry_of(h, d)))
            },
        )
        .await;
    near("a device sample's sampled_at", beat.sampled_at.as_ref());

    s.set_desired(|d| {
        d.remove("job-s");
    });
    let last = s
        .until("job-s to end", |st| st.final_report("job-s").cloned())
        .await;
    near("finished_at", last.finished_at.as_ref());
    near("started_at in the final report", last.started_at.as_ref());

    h.stop_agent(shutdown, agent).await;
    h.stop_server.cancel();
}

#[tokio::test]
async fn evidence_of_a_job_on_an_nvml_gpu() {
    // The stand-in NVML: each read of a GPU's energy counter finds 120 J more, GPM
    // gives GPU 0 45 % SM and 30 % tensor activity, GPU_UTIL says 40 %.
    let (_lib_dir, lib) = fake_nvml::build(&[]);
    let h = Harness::new().await;
    let s = &h.scheduler;
    let mut config = h.config();
    config.devices = "nvml".into();
    config.device_options.nvml.lib_path = Some(lib);
    let (shutdown, agent) = h.start_agent(config);
    let join = s.until("join", |st| st.joins.first().cloned()).await;
    let gpu0 = join.devices[0].uuid.clone();
    assert_eq!(join.devices[0].model, "NVIDIA H100 80GB HBM3");
    s.set_desired(|d| {
        d.insert("job-g".into(), h.job("job-g", &["sleep", "1"], &gpu0));
    });
    let done = s
        .until("job-g exit", |st| st.final_report("job-g").cloned())
        .await;
    assert_eq!(done.exit_code, Some(0));
    let wire = done.evidence.expect("evidence at the end");
    let e = Evidence::from_proto(&wire).unwrap();
    assert!(e.samples >= 2, "started and ended: {e:?}");
    assert_eq!(e.energy_source, Some(EnergySource::Counter));
    let want_wh = f64::from(e.samples - 1) * 120.0 / 3600.0;
    assert!((e.energy_wh - want_wh).abs() < 1e-9, "{e:?}");
    assert_eq!(e.utilization_source, UtilizationSource::SmActive);
    assert!((e.mean_utilization_percent - 45.0).abs() < 1e-9, "{e:?}");
    assert!((e.mean_tensor_active.unwrap() - 0.30).abs() < 1e-9, "{e:?}");
    assert_eq!(e.peak_memory_bytes, 1024 << 20);
    assert_eq!(e.devices, 1);
    // The heartbeat's telemetry carries the activity too, for idle reclaim.
    let telemetry = s
        .until("GPM telemetry", |st| {
            st.heartbeats.iter().rev().find_map(|hb| {
                let t = telemetry_of(hb, &join.devices[0])?;
                t.sm_active.is_some().then_some(t)
            })
        })
        .await;
    assert_eq!(telemetry.sm_active, Some(0.45));
    assert_eq!(telemetry.tensor_active, Some(0.3));
    assert_eq!(telemetry.utilization_pct, 40.0, "GPU_UTIL as it is");
    h.stop_agent(shutdown, agent).await;
    h.stop_server.cancel();
}

#[tokio::test]
async fn configuration_errors_are_reported_at_start() {
    let h = Harness::new().await;
    let mut bad = h.config();
    bad.devices = "sim:zero".into();
    let err = berth_agent::run(bad, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid device spec"), "{err}");

    let mut bad = h.config();
    bad.runtime = "kubernetes".into();
    let err = berth_agent::run(bad, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown runtime"), "{err}");

    let mut bad = h.config();
    bad.join_token = None;
    let err = berth_agent::run(bad, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no node credential"), "{err}");

    let mut bad = h.config();
    bad.join_token = Some("wrong".into());
    let err = berth_agent::run(bad, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    h.stop_server.cancel();
}
