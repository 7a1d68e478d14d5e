//! The `docker` runtime: each job runs in a hardened container through the Docker
//! Engine API (bollard, over the local unix socket).
//!
//! - [`spec`]: the container configuration of a job (pure, and where the hardening is).
//! - [`logs`]: the container's output into the job's sink, resumable after a restart.
//! - [`record`]: what is kept on disk per job (spec, exit, log position).
//!
//! A job's container is `berth-<job_id>`, labelled with the job, node, generation and
//! organisation and `berth.managed=true`. One supervisor task per job follows its
//! output and waits for its end; then it records the exit, removes the container and
//! sends [`RuntimeEvent::Exited`]. A restarted agent finds its containers by label:
//! those still there are adopted again (also those that ended meanwhile, so that the
//! rest of their output is collected before their real exit code is reported); a
//! job whose output was already collected is reported with its recorded exit.

pub mod logs;
pub mod record;
pub mod spec;

use super::{
    Exit, JobSpec, JobStatus, Recovered, RecoveredJob, Runtime, RuntimeError, RuntimeEvent,
    RuntimeOptions, StartError, validate_job_id,
};
use crate::logs::LogSink;
use async_trait::async_trait;
use berth_proto::time::now_ms;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerState, ContainerStateStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use logs::{LogPosition, PositionFile};
use record::JobRecord;
use spec::{LABEL_JOB, LABEL_MANAGED, LABEL_NODE, NodeResources, container_name};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OnceCell, mpsc, watch};

/// How long output may keep arriving after the container ended.
const OUTPUT_LINGER: Duration = Duration::from_secs(30);
/// How long to wait for a container to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// Pause before asking the engine again after a failed wait.
const RETRY: Duration = Duration::from_millis(500);
/// Longest an image pull may take.
const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Whether a Docker engine answers on the local socket (`DOCKER_HOST` when it is a
/// `unix://` address) within `timeout`.
pub async fn engine_answers(timeout: Duration) -> bool {
    let Ok(docker) = Docker::connect_with_unix_defaults() else {
        return false;
    };
    matches!(
        tokio::time::timeout(timeout, docker.ping()).await,
        Ok(Ok(_))
    )
}

/// Runs jobs in Docker containers.
pub struct DockerRuntime {
    shared: Arc<Shared>,
    jobs: Arc<Mutex<HashMap<String, Entry>>>,
}

/// What the supervisor tasks share with the runtime.
struct Shared {
    state_dir: PathBuf,
    records: PathBuf,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    options: RuntimeOptions,
    resources: NodeResources,
    unnegotiated: Docker,
    docker: OnceCell<Docker>,
}

struct Entry {
    started_at_ms: i64,
    exit: watch::Receiver<Option<Exit>>,
    /// For a job adopted at recovery until [`Runtime::attach_logs`] starts its supervisor.
    adopted: Option<(watch::Sender<Option<Exit>>, JobRecord)>,
}

fn engine_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Engine(e.to_string())
}

/// The HTTP status of an engine error, if it is one.
fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The host's memory, from `/proc/meminfo`.
fn host_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The exit of a container from its state.
fn exit_of(state: &ContainerState) -> Exit {
    let exit_code = state
        .exit_code
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(-1);
    let finished_at_ms = state
        .finished_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .filter(|ms| *ms > 0)
        .unwrap_or_else(now_ms);
    let message = if state.oom_killed == Some(true) {
        "killed: out of memory (the job's memory limit)".to_owned()
    } else if let Some(error) = state.error.as_deref().filter(|e| !e.is_empty()) {
        error.to_owned()
    } else if exit_code > 128 {
        let signal = nix::sys::signal::Signal::try_from(exit_code - 128)
            .map(|s| s.as_str())
            .unwrap_or("unknown");
        format!("killed by signal {} ({signal})", exit_code - 128)
    } else {
        String::new()
    };
    Exit {
        exit_code,
        finished_at_ms,
        message,
    }
}

impl DockerRuntime {
    /// A runtime keeping its records under `state_dir`, sending events to `events`.
    /// Connects lazily: nothing is asked of the engine before the first call.
    pub fn new(
        state_dir: &Path,
        events: mpsc::UnboundedSender<RuntimeEvent>,
        options: RuntimeOptions,
    ) -> Result<Self, String> {
        let unnegotiated = Docker::connect_with_unix_defaults()
            .map_err(|e| format!("cannot use the Docker engine's socket: {e}"))?;
        let resources = NodeResources {
            cpus: options.node_cpus.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
            }),
            memory_bytes: options
                .node_memory_bytes
                .or_else(host_memory_bytes)
                .unwrap_or(1 << 30),
            devices: options.node_devices,
        };
        Ok(Self {
            shared: Arc::new(Shared {
                state_dir: state_dir.to_owned(),
                records: record::records_dir(state_dir),
                events,
                options,
                resources,
                unnegotiated,
                docker: OnceCell::new(),
            }),
            jobs: Arc::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Finds the image locally or pulls it.
    async fn ensure_image(docker: &Docker, image: &str, pull: bool) -> Result<(), StartError> {
        if image.is_empty() {
            return Err(StartError("the job names no image".to_owned()));
        }
        if docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        if !pull {
            return Err(StartError(format!(
                "image {image} not found locally, and this node does not pull images (--pull never)"
            )));
        }
        tracing::info!(image, "image not found locally; pulling it");
        let pull = async {
            let options = CreateImageOptionsBuilder::new().from_image(image).build();
            let mut progress = docker.create_image(Some(options), None, None);
            while let Some(item) = progress.next().await {
                let info = item.map_err(|e| e.to_string())?;
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(detail);
                }
            }
            docker
                .inspect_image(image)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(PULL_TIMEOUT, pull).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(why),
            Err(_) => Err(format!("the pull took longer than {PULL_TIMEOUT:?}")),
        }
        .map_err(|why| {
            StartError(format!(
                "image {image} not found locally and could not be pulled: {why}"
            ))
        })
    }

    /// Creates and starts the container of `spec`; returns when it runs.
    async fn create_and_start(&self, spec: &JobSpec) -> Result<(), StartError> {
        let shared = &self.shared;
        let config = spec::container_config(
            spec,
            &shared.options.node,
            &shared.resources,
            &shared.options.datasets,
        )
        .map_err(StartError)?;
        let docker = shared
            .client()
            .await
            .map_err(|e| StartError(format!("cannot reach the Docker engine: {e}")))?;
        Self::ensure_image(&docker, &spec.image, shared.options.pull_images).await?;
        tokio::fs::create_dir_all(&spec.scratch_dir)
            .await
            .and_then(|()| {
                // Writable whatever user the image runs as; only this job sees it.
                std::fs::set_permissions(&spec.scratch_dir, std::fs::Permissions::from_mode(0o777))
            })
            .map_err(|e| {
                StartError(format!(
                    "cannot create scratch directory {}: {e}",
                    spec.scratch_dir.display()
                ))
            })?;
        let name = container_name(&spec.job_id);
        // Left by an attempt that failed half-way: ours by name, never started.
        let _ = docker
            .remove_container(
                &name,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await;
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        docker
            .create_container(Some(options), config)
            .await
            .map_err(|e| StartError(format!("cannot create the container: {e}")))?;
        if let Err(e) = docker.start_container(&name, None).await {
            shared.remove_container(&name).await;
            return Err(StartError(format!("cannot start the container: {e}")));
        }
        Ok(())
    }
}

impl Shared {
    /// The engine, with the API version negotiated on first use.
    async fn client(&self) -> Result<Docker, RuntimeError> {
        self.docker
            .get_or_try_init(|| async {
                self.unnegotiated
                    .clone()
                    .negotiate_version()
                    .await
                    .map_err(engine_err)
            })
            .await
            .cloned()
    }

    /// Removes a container, whatever its state; a missing one is fine.
    async fn remove_container(&self, name: &str) {
        let Ok(docker) = self.client().await else {
            return;
        };
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(e) = docker.remove_container(name, Some(options)).await
            && status_of(&e) != Some(404)
        {
            tracing::warn!(container = name, error = %e, "cannot remove container");
        }
    }

    /// Waits for the container to end and returns how.
    async fn wait_exit(&self, docker: &Docker, name: &str) -> Exit {
        loop {
            // Errors here (a non-zero exit is one for bollard) are read from the state.
            let _ = docker.wait_container(name, None).next().await;
            match docker.inspect_container(name, None).await {
                Ok(info) => {
                    let state = info.state.unwrap_or_default();
                    let ended = matches!(
                        state.status,
                        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
                    );
                    if ended {
                        return exit_of(&state);
                    }
                }
                Err(e) if status_of(&e) == Some(404) => {
                    return Exit {
                        exit_code: -1,
                        finished_at_ms: now_ms(),
                        message: "its container was removed by someone else".to_owned(),
                    };
                }
                Err(e) => tracing::warn!(container = name, error = %e, "cannot inspect container"),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Follows a job to its end: output into `sink`, then records the exit, removes
    /// the container and sends [`RuntimeEvent::Exited`].
    async fn supervise(
        self: Arc<Self>,
        mut rec: JobRecord,
        sink: LogSink,
        from: LogPosition,
        exit_tx: watch::Sender<Option<Exit>>,
    ) {
        let job_id = rec.spec.job_id.clone();
        let name = container_name(&job_id);
        let exit = match self.client().await {
            Ok(docker) => {
                let file = PositionFile {
                    dir: self.records.clone(),
                    job_id: job_id.clone(),
                };
                let pump = tokio::spawn(logs::pump(docker.clone(), name.clone(), sink, from, file));
                let exit = self.wait_exit(&docker, &name).await;
                let abort = pump.abort_handle();
                match tokio::time::timeout(OUTPUT_LINGER, pump).await {
                    Ok(Ok(Err(error))) => {
                        tracing::warn!(%job_id, %error, "reading the job's output broke off")
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tracing::warn!(%job_id, "output still flowing long after the end; stopped reading");
                        abort.abort();
                    }
                }
                exit
            }
            Err(error) => {
                drop(sink);
                Exit {
                    exit_code: -1,
                    finished_at_ms: now_ms(),
                    message: format!("lost track of the container: {error}"),
                }
            }
        };
        rec.exit = Some(exit.clone());
        if let Err(error) = record::write(&self.records, &rec).await {
            tracing::warn!(%job_id, %error, "cannot record job exit");
        }
        self.remove_container(&name).await;
        let _ = exit_tx.send(Some(exit.clone()));
        let _ = self.events.send(RuntimeEvent::Exited { job_id, exit });
    }

    /// This node's managed containers, by job id, with their state.
    async fn managed_containers(
        &self,
        docker: &Docker,
    ) -> Result<HashMap<String, Option<String>>, RuntimeError> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_NODE}={}", self.options.node),
            ],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = docker
            .list_containers(Some(options))
            .await
            .map_err(engine_err)?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let job = c.labels.as_ref()?.get(LABEL_JOB)?.clone();
                Some((job, c.state.map(|s| s.to_string())))
            })
            .collect())
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn keeps_jobs_across_restarts(&self) -> bool {
        true
    }

    async fn recover(&self) -> Result<Vec<RecoveredJob>, RuntimeError> {
        let shared = &self.shared;
        let docker = shared.client().await?;
        let mut containers = shared.managed_containers(&docker).await?;
        let mut found = Vec::new();
        for rec in record::read_all(&shared.records).await? {
            let job_id = rec.spec.job_id.clone();
            let name = container_name(&job_id);
            let container = containers.remove(&job_id);
            let state = match (container, &rec.exit) {
                (Some(_), Some(exit)) => {
                    // Output collected and exit recorded; only the removal was missed.
                    shared.remove_container(&name).await;
                    Recovered::Exited(exit.clone())
                }
                (None, Some(exit)) => Recovered::Exited(exit.clone()),
                (Some(state), None) if state.as_deref() == Some("created") => {
                    shared.remove_container(&name).await;
                    Recovered::Lost(
                        "the agent stopped while starting its container; removed it".to_owned(),
                    )
                }
                (Some(state), None) => {
                    tracing::info!(%job_id, state = ?state, "re-adopting container");
                    let (exit_tx, exit_rx) = watch::channel(None);
                    self.lock().insert(
                        job_id.clone(),
                        Entry {
                            started_at_ms: rec.started_at_ms.unwrap_or_else(now_ms),
                            exit: exit_rx,
                            adopted: Some((exit_tx, rec.clone())),
                        },
                    );
                    Recovered::Running
                }
                (None, None) => {
                    Recovered::Lost("its container disappeared while the agent was away".to_owned())
                }
            };
            found.push(RecoveredJob {
                spec: rec.spec,
                started_at_ms: rec.started_at_ms,
                state,
            });
        }
        // Managed containers of this node no record knows: orphans.
        for job_id in containers.into_keys() {
            tracing::warn!(%job_id, "removing an orphaned container");
            shared.remove_container(&container_name(&job_id)).await;
        }
        Ok(found)
    }

    async fn start(&self, spec: JobSpec, logs: LogSink) -> Result<(), StartError> {
        validate_job_id(&spec.job_id).map_err(StartError)?;
        if self.lock().contains_key(&spec.job_id) {
            return Err(StartError(format!(
                "job {} was already started",
                spec.job_id
            )));
        }
        let shared = &self.shared;
        let mut rec = JobRecord {
            spec: spec.clone(),
            started_at_ms: None,
            exit: None,
        };
        // Recorded before the container exists, so a restart never meets one it
        // cannot account for.
        record::write(&shared.records, &rec)
            .await
            .map_err(|e| StartError(format!("cannot record the job: {e}")))?;
        if let Err(e) = self.create_and_start(&spec).await {
            let _ = record::delete(&shared.records, &spec.job_id).await;
            return Err(e);
        }
        let started_at_ms = now_ms();
        rec.started_at_ms = Some(started_at_ms);
        if let Err(e) = record::write(&shared.records, &rec).await {
            tracing::warn!(job_id = %spec.job_id, error = %e, "cannot record job start");
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        self.lock().insert(
            spec.job_id.clone(),
            Entry {
                started_at_ms,
                exit: exit_rx,
                adopted: None,
            },
        );
        let _ = shared.events.send(RuntimeEvent::Running {
            job_id: spec.job_id.clone(),
            started_at_ms,
        });
        tokio::spawn(
            shared
                .clone()
                .supervise(rec, logs, LogPosition::default(), exit_tx),
        );
        Ok(())
    }

    async fn attach_logs(&self, job_id: &str, logs: LogSink) -> Result<(), RuntimeError> {
        let adopted = self
            .lock()
            .get_mut(job_id)
            .and_then(|entry| entry.adopted.take());
        let Some((exit_tx, rec)) = adopted else {
            return Err(RuntimeError::Engine(format!(
                "job {job_id} was not re-adopted (or is already attached)"
            )));
        };
        let from = record::read_position(&self.shared.records, job_id).await;
        tokio::spawn(self.shared.clone().supervise(rec, logs, from, exit_tx));
        Ok(())
    }

    async fn stop(&self, job_id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let Some(mut exit) = self.lock().get(job_id).map(|e| e.exit.clone()) else {
            return Ok(());
        };
        if exit.borrow().is_some() {
            return Ok(());
        }
        let docker = self.shared.client().await?;
        let name = container_name(job_id);
        let kill = |signal: &'static str| {
            let docker = docker.clone();
            let name = name.clone();
            async move {
                let options = KillContainerOptionsBuilder::new().signal(signal).build();
                match docker.kill_container(&name, Some(options)).await {
                    // 404: gone; 409: not running. Both mean it has ended.
                    Err(e) if !matches!(status_of(&e), Some(404 | 409)) => Err(engine_err(e)),
                    _ => Ok(()),
                }
            }
        };
        kill("SIGTERM").await?;
        if tokio::time::timeout(grace, exit.wait_for(Option::is_some))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tracing::info!(
            job_id,
            ?grace,
            "container ignored SIGTERM for its grace period; killing it"
        );
        kill("SIGKILL").await?;
        let _ = tokio::time::timeout(KILL_WAIT, exit.wait_for(Option::is_some)).await;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, JobStatus)>, RuntimeError> {
        let jobs = self.lock();
        let mut list: Vec<_> = jobs
            .iter()
            .map(|(id, e)| {
                (
                    id.clone(),
                    JobStatus::of(e.exit.borrow().as_ref(), e.started_at_ms),
                )
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(list)
    }

    async fn remove(&self, job_id: &str) -> Result<(), RuntimeError> {
        validate_job_id(job_id).map_err(RuntimeError::Engine)?;
        {
            let mut jobs = self.lock();
            if jobs.get(job_id).is_some_and(|e| e.exit.borrow().is_none()) {
                return Err(RuntimeError::StillRunning(job_id.to_owned()));
            }
            jobs.remove(job_id);
        }
        self.shared.remove_container(&container_name(job_id)).await;
        let scratch = super::scratch_dir(&self.shared.state_dir, job_id);
        match tokio::fs::remove_dir_all(&scratch).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::Io {
                    path: scratch,
                    source: e,
                });
            }
            _ => {}
        }
        record::delete(&self.shared.records, job_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_from_container_states() {
        let state = ContainerState {
            exit_code: Some(3),
            finished_at: Some("2026-11-21T10:00:00.5Z".into()),
            ..Default::default()
        };
        let exit = exit_of(&state);
        assert_eq!(exit.exit_code, 3);
        assert_eq!(exit.message, "");
        assert_eq!(exit.finished_at_ms % 1000, 500);
        let killed = exit_of(&ContainerState {
            exit_code: Some(143),
            ..Default::default()
        });
        assert!(killed.message.contains("SIGTERM"), "{}", killed.message);
        let oom = exit_of(&ContainerState {
            exit_code: Some(137),
            oom_killed: Some(true),
            ..Default::default()
        });
        assert!(oom.message.contains("out of memory"), "{}", oom.message);
        // Docker's zero time for a container that never finished.
        let zero = exit_of(&ContainerState {
            finished_at: Some("0001-01-01T00:00:00Z".into()),
            ..Default::default()
        });
        assert_eq!(zero.exit_code, -1);
        assert!(zero.finished_at_ms > 0);
    }
}
