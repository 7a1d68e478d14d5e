//! The agent loop: heartbeat, reconcile, act, report, level-triggered.
//!
//! One task owns all state. It waits on whichever comes first: the heartbeat's
//! answer (a long poll), a runtime event (a job runs or ended), a log pipeline
//! finishing, or the next job deadline; it applies the change and goes on. Slow
//! work (starting a job, stopping one with its grace period, removing scratch
//! directories) runs in tasks of its own and reports back through channels, so a
//! job pulling an image or ignoring SIGTERM never delays a heartbeat.
//! Sampling the devices is quick and runs in the loop: before each heartbeat, and when
//! a job starts running or ends, so that its evidence starts and ends with a reading.

use crate::client::{CallError, JoinInfo, SchedulerClient};
use crate::config::AgentConfig;
use crate::devices::{self, DeviceBackend, DeviceInfo, DeviceSpec};
use crate::error::AgentError;
use crate::jobs::{Job, Jobs, Outcome, spec_of};
use crate::logs::{self, LogOptions, LogTransport, LogsDone};
use crate::reconcile::{Action, Desired, Inputs, reconcile};
use crate::reporter::Reporter;
use crate::runtime::{self, JobSpec, Recovered, Runtime, RuntimeEvent};
use berth_proto::inventory;
use berth_proto::time::{ms_to_dur, now_ms};
use berth_proto::v1::{DesiredJob, HeartbeatRequest, HeartbeatResponse, JoinRequest, NodeState};
use futures::future::BoxFuture;
use rand::Rng;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// Version reported to the scheduler.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// A heartbeat answered faster than this without news is followed by a pause...
const QUICK_ANSWER: Duration = Duration::from_millis(200);
/// ...of this long, so a scheduler that does not hold heartbeats is not hammered.
const QUICK_ANSWER_PAUSE: Duration = Duration::from_secs(1);
/// Longest sleep between deadline checks (guards against wall-clock jumps).
const MAX_DEADLINE_SLEEP: Duration = Duration::from_secs(60);
/// At shutdown: how long beyond the longest grace period to wait for jobs to end
/// and their output to be stored.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(15);
/// At shutdown: how long to try delivering the last job reports.
const REPORT_FLUSH: Duration = Duration::from_secs(10);
/// Message of jobs stopped because the agent itself stops.
const SHUTDOWN_MESSAGE: &str = "stopped by the agent: the agent is shutting down";

/// Exponential backoff with jitter, for reconnecting.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The next delay: doubling up to [`Backoff::MAX`], ±20 %.
    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        base.mul_f64(rand::rng().random_range(0.8..=1.2))
    }
}

/// Reported back by tasks the agent spawned.
#[derive(Debug)]
enum TaskEvent {
    StartFailed { job_id: String, message: String },
}

/// The running agent.
pub struct Agent {
    node: String,
    state_dir: PathBuf,
    heartbeat_wait: Duration,
    client: SchedulerClient,
    log_transport: Arc<dyn LogTransport>,
    log_options: LogOptions,
    log_cancel: CancellationToken,
    devices: Arc<dyn DeviceBackend>,
    device_infos: Vec<DeviceInfo>,
    runtime: Arc<dyn Runtime>,
    runtime_events: mpsc::UnboundedReceiver<RuntimeEvent>,
    task_tx: mpsc::UnboundedSender<TaskEvent>,
    task_rx: mpsc::UnboundedReceiver<TaskEvent>,
    logs_tx: mpsc::UnboundedSender<LogsDone>,
    logs_rx: mpsc::UnboundedReceiver<LogsDone>,
    reporter: Reporter,
    jobs: Jobs,
    generation: u64,
    /// The inventory digest of the scheduler's last answer: while the inventory keeps
    /// it, heartbeats send telemetry only (0: send the inventory in full).
    inventory_acked: u64,
    node_state: Option<NodeState>,
}

impl Agent {
    /// Checks the configuration, opens devices and runtime, cleans up after a previous
    /// run and joins the scheduler. `None` when `shutdown` fired while joining.
    pub async fn start(
        config: AgentConfig,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>, AgentError> {
        let config_err = |e: berth_proto::model::FieldError| AgentError::Config(e.to_string());
        berth_proto::model::name("node", &config.node).map_err(config_err)?;
        berth_proto::model::name("site", &config.site).map_err(config_err)?;
        let spec: DeviceSpec = config
            .devices
            .parse()
            .map_err(|e: devices::SpecError| AgentError::Config(e.to_string()))?;
        tokio::fs::create_dir_all(&config.state_dir)
            .await
            .map_err(|e| AgentError::state(&config.state_dir, e))?;

        let device_options = devices::DeviceOptions {
            node: config.node.clone(),
            ..config.device_options.clone()
        };
        let devices = devices::open(&spec, &device_options).await?;
        let devices =
            crate::metrics::instrument(config.metrics_addr, &config.hostname, devices, shutdown)
                .await?;
        let device_infos = devices.discover().await?;
        let (events_tx, runtime_events) = mpsc::unbounded_channel();
        let runtime_options = runtime::RuntimeOptions {
            node: config.node.clone(),
            node_devices: device_infos.len(),
            node_cpus: config.node_cpus,
            node_memory_bytes: config.node_memory_bytes,
            pull_images: config.pull_images,
            datasets: config
                .datasets
                .iter()
                .map(|d| (d.name.clone(), d.clone()))
                .collect(),
        };
        let runtime = runtime::open_with(
            &config.runtime,
            &config.state_dir,
            events_tx,
            runtime_options,
        )
        .map_err(AgentError::Config)?;
        // Before anything else: kill what a previous run left behind.
        let recovered = runtime.recover().await?;
        tracing::info!(
            node = %config.node,
            devices = device_infos.len(),
            backend = devices.name(),
            runtime = runtime.name(),
            recovered = recovered.len(),
            "agent starting"
        );

        let mut agent_devices = Vec::new();
        let samples = devices.sample().await.unwrap_or_default();
        for info in &device_infos {
            agent_devices.push(devices::report(
                info,
                samples.iter().find(|s| s.uuid == info.uuid),
            ));
        }
        let join = JoinInfo {
            token: config.join_token.clone(),
            request: JoinRequest {
                join_token: String::new(),
                node: config.node.clone(),
                site: config.site.clone(),
                hostname: config.hostname.clone(),
                devices: agent_devices,
                agent_version: AGENT_VERSION.to_owned(),
                runtime: runtime.name().to_owned(),
            },
        };
        let client = SchedulerClient::new(&config.server, &config.tls, &config.state_dir, join)?;
        if !ensure_credential(&client, shutdown).await? {
            return Ok(None);
        }

        let (task_tx, task_rx) = mpsc::unbounded_channel();
        let (logs_tx, logs_rx) = mpsc::unbounded_channel();
        let mut agent = Agent {
            node: config.node,
            state_dir: config.state_dir,
            heartbeat_wait: config.heartbeat_wait,
            log_transport: Arc::new(client.clone()),
            reporter: Reporter::spawn(Arc::new(client.clone())),
            client,
            log_options: LogOptions::default(),
            log_cancel: CancellationToken::new(),
            devices,
            device_infos,
            runtime,
            runtime_events,
            task_tx,
            task_rx,
            logs_tx,
            logs_rx,
            jobs: Jobs::default(),
            generation: 0,
            inventory_acked: 0,
            node_state: None,
        };
        for found in recovered {
            agent.adopt(found);
        }
        agent.devices_changed();
        Ok(Some(agent))
    }

    /// Takes on a job found by the runtime at start.
    fn adopt(&mut self, found: runtime::RecoveredJob) {
        let id = found.spec.job_id.clone();
        let mut job = match found.state {
            Recovered::Lost(message) => Job::finished(&found.spec, Outcome::Unknown(message)),
            Recovered::Exited(exit) => Job::finished(&found.spec, Outcome::Exited(exit)),
            Recovered::Running => {
                let mut job = Job::starting(&found.spec);
                job.running = true;
                let sink = self.log_pipeline(&id, None);
                let runtime = self.runtime.clone();
                let job_id = id.clone();
                tokio::spawn(async move {
                    if let Err(error) = runtime.attach_logs(&job_id, sink).await {
                        tracing::warn!(%job_id, %error, "cannot re-attach to the output of an adopted job");
                    }
                });
                job
            }
        };
        job.started_at_ms = found.started_at_ms;
        self.jobs.insert(job);
        self.report(&id);
    }

    /// Runs until `shutdown`, then stops every job, ships its output and reports it.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let mut heartbeat: Option<(Instant, u64, Option<u64>, BoxFuture<'static, _>)> = None;
        let mut next_heartbeat = Instant::now();
        let mut backoff = Backoff::new();
        let mut connected = true;
        loop {
            if heartbeat.is_none() && Instant::now() >= next_heartbeat {
                let request = self.heartbeat_request().await;
                let client = self.client.clone();
                let wait = self.heartbeat_wait;
                let known = request.known_generation;
                // The inventory digest the call stands on, when it leaves the inventory out.
                let digest = (request.inventory_digest == self.inventory_acked)
                    .then_some(request.inventory_digest);
                let call: BoxFuture<'static, Result<HeartbeatResponse, CallError>> =
                    Box::pin(async move { client.heartbeat(request, wait).await });
                heartbeat = Some((Instant::now(), known, digest, call));
            }
            let deadline_check = self.deadline_check();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(event) = self.runtime_events.recv() => self.on_runtime_event(event).await,
                Some(event) = self.task_rx.recv() => self.on_task_event(event),
                Some(done) = self.logs_rx.recv() => self.on_logs_done(done),
                _ = sleep_until(deadline_check) => self.on_deadline_tick(),
                result = async { heartbeat.as_mut().expect("guarded").3.as_mut().await }, if heartbeat.is_some() => {
                    let (sent_at, known, digest, _) = heartbeat.take().expect("guarded");
                    match result {
                        Ok(response) => {
                            if !connected {
                                tracing::info!("heartbeats are answered again");
                                connected = true;
                            }
                            backoff.reset();
                            let unchanged = response.generation == known;
                            let more = response.more;
                            // The scheduler does not hold the inventory left out (it
                            // restarted): send it at once.
                            let resend = digest.is_some_and(|d| d != response.inventory_digest);
                            self.inventory_acked = response.inventory_digest;
                            self.on_heartbeat(response);
                            next_heartbeat = if more || resend {
                                // The rest of the new jobs' specs: ask again at once.
                                Instant::now()
                            } else if unchanged && sent_at.elapsed() < QUICK_ANSWER {
                                Instant::now() + QUICK_ANSWER_PAUSE
                            } else {
                                Instant::now()
                            };
                        }
                        Err(error) => {
                            let delay = backoff.next_delay();
                            tracing::warn!(%error, retry_in = ?delay, "heartbeat failed; jobs keep running");
                            connected = false;
                            // Whoever answers next may not hold the inventory.
                            self.inventory_acked = 0;
                            next_heartbeat = Instant::now() + delay;
                        }
                    }
                }
                _ = sleep_until(next_heartbeat), if heartbeat.is_none() => {}
            }
        }
        drop(heartbeat);
        self.shut_down().await;
        Ok(())
    }

    /// Stops the jobs (unless the runtime keeps them for the next agent), waits
    /// (bounded) for their ends and output, flushes reports.
    async fn shut_down(mut self) {
        if self.runtime.keeps_jobs_across_restarts() {
            let running = self.jobs.iter().filter(|j| j.active()).count();
            tracing::info!(
                jobs = running,
                runtime = self.runtime.name(),
                "agent stopping; its jobs keep running and the next agent re-adopts them"
            );
            self.log_cancel.cancel();
            if !self.reporter.close(REPORT_FLUSH).await {
                tracing::warn!("could not deliver every job report before stopping");
            }
            return;
        }
        let active: Vec<(String, Duration)> = self
            .jobs
            .iter()
            .filter(|j| j.active())
            .map(|j| (j.id.clone(), j.grace))
            .collect();
        tracing::info!(jobs = active.len(), "agent stopping; stopping its jobs");
        let longest_grace = active.iter().map(|(_, g)| *g).max().unwrap_or_default();
        for (id, _) in &active {
            self.stop_job(id, SHUTDOWN_MESSAGE);
        }
        let give_up = Instant::now() + longest_grace + SHUTDOWN_SLACK;
        while !self.jobs.all_finished() {
            tokio::select! {
                Some(event) = self.runtime_events.recv() => self.on_runtime_event(event).await,
                Some(event) = self.task_rx.recv() => self.on_task_event(event),
                Some(done) = self.logs_rx.recv() => self.on_logs_done(done),
                _ = sleep_until(give_up) => {
                    tracing::warn!("gave up waiting for jobs to end and their output to be stored");
                    break;
                }
            }
        }
        self.log_cancel.cancel();
        if !self.reporter.close(REPORT_FLUSH).await {
            tracing::warn!("could not deliver every job report before stopping");
        }
        tracing::info!("agent stopped");
    }

    /// When to check deadlines next.
    fn deadline_check(&self) -> Instant {
        let wait = self.jobs.next_deadline().map_or(MAX_DEADLINE_SLEEP, |d| {
            Duration::from_millis(u64::try_from(d - now_ms()).unwrap_or(0)).min(MAX_DEADLINE_SLEEP)
        });
        Instant::now() + wait
    }

    /// Samples the devices and feeds the readings to the jobs' evidence meters.
    async fn sample_devices(&mut self) -> Vec<devices::DeviceSample> {
        let samples = match self.devices.sample().await {
            Ok(samples) => samples,
            Err(error) => {
                tracing::warn!(%error, "cannot sample devices");
                Vec::new()
            }
        };
        self.jobs.record(&samples);
        samples
    }

    async fn heartbeat_request(&mut self) -> HeartbeatRequest {
        let samples = self.sample_devices().await;
        let by_uuid: HashMap<&str, &devices::DeviceSample> =
            samples.iter().map(|s| (s.uuid.as_str(), s)).collect();
        let mut reports: Vec<_> = self
            .device_infos
            .iter()
            .map(|info| devices::report(info, by_uuid.get(info.uuid.as_str()).copied()))
            .collect();
        // An inventory the scheduler holds goes by its digest, with telemetry alone.
        let digest = inventory::digest(&reports);
        let samples = if digest == self.inventory_acked {
            inventory::samples(&std::mem::take(&mut reports))
        } else {
            Vec::new()
        };
        HeartbeatRequest {
            node: self.node.clone(),
            known_generation: self.generation,
            devices: reports,
            inventory_digest: digest,
            samples,
            jobs: self.jobs.observed(),
            wait: Some(ms_to_dur(
                i64::try_from(self.heartbeat_wait.as_millis()).unwrap_or(i64::MAX),
            )),
            agent_version: AGENT_VERSION.to_owned(),
            runtime: self.runtime.name().to_owned(),
        }
    }

    fn on_heartbeat(&mut self, response: HeartbeatResponse) {
        let node_state = NodeState::try_from(response.node_state).unwrap_or_default();
        if self.node_state != Some(node_state) {
            tracing::info!(state = node_state.as_str_name(), "node state");
            self.node_state = Some(node_state);
        }
        self.devices
            .set_assignments(&crate::metrics::assignments(&response.jobs));
        let more = response.more;
        let desired = Desired {
            generation: response.generation,
            jobs: response.jobs,
        };
        let local = self.jobs.local();
        let plan = reconcile(&Inputs {
            applied_generation: self.generation,
            desired: Some(&desired),
            acknowledged: &response.acknowledged,
            local: &local,
            forgotten: self.jobs.forgotten(),
            now_ms: now_ms(),
        });
        if plan.stale {
            tracing::warn!(
                got = desired.generation,
                applied = self.generation,
                "ignoring a stale desired state"
            );
        } else if desired.generation != self.generation {
            tracing::debug!(
                generation = desired.generation,
                jobs = desired.jobs.len(),
                "new desired state"
            );
        }
        self.apply(plan.actions, desired.generation);
        // With specs still to come, the desired state is not applied yet: the next
        // heartbeat asks with the old generation, so the scheduler sends the rest (and
        // does not count the jobs not started yet as lost).
        if !more {
            self.generation = plan.generation;
        }
    }

    fn on_deadline_tick(&mut self) {
        let local = self.jobs.local();
        let plan = reconcile(&Inputs {
            applied_generation: self.generation,
            desired: None,
            acknowledged: &[],
            local: &local,
            forgotten: self.jobs.forgotten(),
            now_ms: now_ms(),
        });
        self.apply(plan.actions, self.generation);
    }

    fn apply(&mut self, actions: Vec<Action>, generation: u64) {
        if actions.is_empty() {
            return;
        }
        for action in actions {
            match action {
                Action::Start(desired) => {
                    self.start_job(spec_of(&desired, generation, &self.state_dir));
                }
                Action::Reject { job_id, message } => {
                    tracing::warn!(%job_id, %message, "not starting a job");
                    let desired = DesiredJob {
                        job_id: job_id.clone(),
                        ..Default::default()
                    };
                    let spec = spec_of(&desired, generation, &self.state_dir);
                    self.jobs
                        .insert(Job::finished(&spec, Outcome::FailedToStart(message)));
                    self.report(&job_id);
                }
                Action::Stop { job_id, reason, .. } => {
                    tracing::info!(%job_id, reason = reason.message(), "stopping job");
                    self.stop_job(&job_id, reason.message());
                }
                Action::Forget(job_id) => {
                    self.jobs.forget(&job_id);
                    let runtime = self.runtime.clone();
                    tokio::spawn(async move {
                        if let Err(error) = runtime.remove(&job_id).await {
                            tracing::warn!(%job_id, %error, "cannot clean up after a job");
                        }
                    });
                }
            }
        }
        self.devices_changed();
    }

    fn log_pipeline(&self, job_id: &str, first_seq: Option<u64>) -> logs::LogSink {
        logs::spawn_job_logs(
            job_id.to_owned(),
            first_seq,
            self.log_transport.clone(),
            self.log_options.clone(),
            self.logs_tx.clone(),
            self.log_cancel.child_token(),
        )
    }

    fn start_job(&mut self, mut spec: JobSpec) {
        spec.assigned = runtime::assigned_devices(&spec.devices, &self.device_infos);
        let job_id = spec.job_id.clone();
        tracing::info!(%job_id, devices = ?spec.devices, "starting job");
        self.jobs.insert(Job::starting(&spec));
        self.report(&job_id);
        let sink = self.log_pipeline(&job_id, Some(1));
        let runtime = self.runtime.clone();
        let tasks = self.task_tx.clone();
        tokio::spawn(async move {
            if let Err(error) = runtime.start(spec, sink).await {
                let _ = tasks.send(TaskEvent::StartFailed {
                    job_id,
                    message: error.0,
                });
            }
        });
    }

    /// Marks a job as being stopped and asks the runtime to stop it once it runs.
    fn stop_job(&mut self, job_id: &str, reason: &str) {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        if !job.active() {
            return;
        }
        if job.stop_reason.is_none() {
            job.stop_reason = Some(reason.to_owned());
        }
        if job.running && !job.stop_sent && job.exit.is_none() {
            job.stop_sent = true;
            let runtime = self.runtime.clone();
            let (id, grace) = (job.id.clone(), job.grace);
            tokio::spawn(async move {
                if let Err(error) = runtime.stop(&id, grace).await {
                    tracing::warn!(job_id = %id, %error, "cannot stop job");
                }
            });
        }
    }

    /// A job runs or ended. Either way the devices are sampled at once: the job's
    /// evidence starts from a reading at its start and ends with one after its end.
    async fn on_runtime_event(&mut self, event: RuntimeEvent) {
        match event {
            RuntimeEvent::Running {
                job_id,
                started_at_ms,
            } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                job.running = true;
                job.started_at_ms = Some(started_at_ms);
                let pending_stop = job.stop_reason.clone();
                self.sample_devices().await;
                self.report(&job_id);
                if let Some(reason) = pending_stop {
                    self.stop_job(&job_id, &reason);
                }
            }
            RuntimeEvent::Exited { job_id, exit } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                tracing::info!(%job_id, exit_code = exit.exit_code, "job ended");
                job.exit = Some(exit);
                self.sample_devices().await;
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                if job.try_finish() {
                    self.finished(&job_id);
                }
            }
        }
    }

    fn on_logs_done(&mut self, done: LogsDone) {
        let Some(job) = self.jobs.get_mut(&done.job_id) else {
            return;
        };
        job.logs_done = Some(done.complete);
        if job.try_finish() {
            self.finished(&done.job_id);
        }
    }

    fn on_task_event(&mut self, event: TaskEvent) {
        match event {
            TaskEvent::StartFailed { job_id, message } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                if job.outcome.is_none() {
                    tracing::warn!(%job_id, %message, "job failed to start");
                    job.outcome = Some(Outcome::FailedToStart(message));
                    self.finished(&job_id);
                }
            }
        }
    }

    fn finished(&mut self, job_id: &str) {
        self.report(job_id);
        self.devices_changed();
    }

    fn report(&self, job_id: &str) {
        if let Some(job) = self.jobs.get(job_id) {
            self.reporter.report(job.observed());
        }
    }

    fn devices_changed(&self) {
        self.devices.set_busy(&self.jobs.busy_devices());
    }
}

/// Loads the stored credential or joins for one; `false` when `shutdown` fired first.
async fn ensure_credential(
    client: &SchedulerClient,
    shutdown: &CancellationToken,
) -> Result<bool, AgentError> {
    if client.load_credential().await? {
        return Ok(true);
    }
    if !client.can_join() {
        return Err(AgentError::NoCredential(
            client.credential_path().to_owned(),
        ));
    }
    let mut backoff = Backoff::new();
    loop {
        match client.join().await {
            Ok(()) => return Ok(true),
            Err(CallError::Rejected(status)) => {
                return Err(AgentError::JoinRefused(status.message().to_owned()));
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in = ?delay, "cannot join the scheduler yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        let mut b = Backoff::new();
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(200) && delays[0] <= Duration::from_millis(300));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(6)));
        assert!(delays[7] >= Duration::from_secs(4));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(300));
    }
}
