//! Job runtimes: what actually runs a job's command, behind [`Runtime`].
//!
//! The trait speaks of jobs, not containers: a spec goes in (command, env, devices,
//! deadline, grace, scratch directory), output comes out through a [`LogSink`], and
//! lifecycle changes come out as [`RuntimeEvent`]s on the channel the runtime was
//! built with. The same shape fits the `process` runtime (host processes, for
//! development and tests), the `docker` runtime (hardened containers; labels find
//! them again after a restart, the engine's wait gives the exit) and a Kubernetes
//! one (a pod per job, a watch for its phase).
//!
//! Contract: after a successful [`Runtime::start`] the runtime sends exactly one
//! [`RuntimeEvent::Running`] and later exactly one [`RuntimeEvent::Exited`] for the
//! job, in that order, and drops every clone of the job's [`LogSink`] before sending
//! `Exited`. A failed start sends no event.

pub mod docker;
pub mod options;
pub mod process;
mod records;

pub use options::{AssignedDevice, DatasetRequest, RuntimeOptions};

use crate::logs::LogSink;
use async_trait::async_trait;
use berth_proto::time::UnixMs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Everything a runtime needs to run one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Scheduler-assigned id (a UUID); safe as a file name once [`validate_job_id`] passed.
    pub job_id: String,
    /// Generation of the desired state the job was started under.
    pub generation: u64,
    /// Container image (ignored by the `process` runtime).
    pub image: String,
    /// Command and arguments; empty means the image's default where a runtime has one.
    pub command: Vec<String>,
    /// Environment the user asked for; Berth's own variables override it.
    pub env: BTreeMap<String, String>,
    /// UUIDs of the devices assigned to the job.
    pub devices: Vec<String>,
    /// When the agent stops the job if it still runs.
    pub deadline_ms: Option<UnixMs>,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub grace: Duration,
    /// Organisation the job belongs to (for labels and metrics).
    pub org: String,
    /// The job's private working directory on the host.
    pub scratch_dir: PathBuf,
    /// Vendor and device nodes of each assigned device, from the node's discovery.
    #[serde(default)]
    pub assigned: Vec<AssignedDevice>,
    /// Admin-approved datasets the job asks for, by name.
    #[serde(default)]
    pub datasets: Vec<DatasetRequest>,
    /// Container network: `bridge` (also when empty) or `none`.
    #[serde(default)]
    pub network: String,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit status; 128 + N when killed by signal N (shell and Docker convention).
    pub exit_code: i32,
    /// When it ended.
    pub finished_at_ms: UnixMs,
    /// Extra detail (e.g. the signal), empty when none.
    pub message: String,
}

/// A lifecycle change of a job, sent by the runtime as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// The job's process or container is running.
    Running {
        /// The job.
        job_id: String,
        /// When it started.
        started_at_ms: UnixMs,
    },
    /// It ended; all its output has been written to its sink.
    Exited {
        /// The job.
        job_id: String,
        /// How.
        exit: Exit,
    },
}

/// What a runtime found of a job left by a previous agent process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Still running and managed again; the agent attaches a new sink with
    /// [`Runtime::attach_logs`], and events follow as for a started job.
    Running,
    /// It ended while the agent was away (or before the agent reported it).
    Exited(Exit),
    /// It cannot be re-adopted; whatever was left has been killed. The message says why.
    Lost(String),
}

/// A job found by [`Runtime::recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredJob {
    /// The spec it was started with.
    pub spec: JobSpec,
    /// When it started, if known.
    pub started_at_ms: Option<UnixMs>,
    /// Its state now.
    pub state: Recovered,
}

/// The state of a job the runtime manages, as [`Runtime::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Running since the given time.
    Running {
        /// When it started.
        started_at_ms: UnixMs,
    },
    /// Ended, not yet removed.
    Exited(Exit),
}

impl JobStatus {
    /// The status of a job started at `started_at_ms` that has ended with `exit`, if it has.
    pub fn of(exit: Option<&Exit>, started_at_ms: UnixMs) -> Self {
        match exit {
            Some(exit) => JobStatus::Exited(exit.clone()),
            None => JobStatus::Running { started_at_ms },
        }
    }
}

/// A job could not be started; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// A runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Reading or writing the runtime's own state failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The runtime cannot do this (e.g. re-attach logs of a plain process).
    #[error("the {runtime} runtime cannot {what}")]
    Unsupported {
        /// Runtime name.
        runtime: &'static str,
        /// The operation.
        what: &'static str,
    },
    /// The job is still running (e.g. on remove).
    #[error("job {0} is still running")]
    StillRunning(String),
    /// The container engine failed or cannot be reached.
    #[error("container engine: {0}")]
    Engine(String),
}

/// Runs jobs.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Short name reported to the scheduler: `process`, `docker`.
    fn name(&self) -> &'static str;

    /// True when the runtime's jobs outlive the agent and are re-adopted by the next one
    /// (containers); then a graceful agent shutdown leaves them running. False when they
    /// die with the agent (child processes), so the agent stops them itself first.
    fn keeps_jobs_across_restarts(&self) -> bool {
        false
    }

    /// Finds jobs left by a previous agent process: re-adopts what it can, kills and
    /// reports as lost what it cannot. Called once, before any start.
    async fn recover(&self) -> Result<Vec<RecoveredJob>, RuntimeError>;

    /// Starts a job; returns once it runs (sending [`RuntimeEvent::Running`]) or failed.
    /// May take long (image pulls): the agent calls it from its own task.
    async fn start(&self, spec: JobSpec, logs: LogSink) -> Result<(), StartError>;

    /// Streams the output of a re-adopted job into `logs`.
    async fn attach_logs(&self, job_id: &str, logs: LogSink) -> Result<(), RuntimeError> {
        let _ = (job_id, logs);
        Err(RuntimeError::Unsupported {
            runtime: self.name(),
            what: "re-attach to running jobs",
        })
    }

    /// Stops a job: SIGTERM (or the runtime's equivalent), `grace`, then SIGKILL.
    /// Returns once it has ended; the exit still arrives as [`RuntimeEvent::Exited`].
    /// Stopping a job that ended or is unknown is not an error.
    async fn stop(&self, job_id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// The jobs the runtime manages now, running or ended and not yet removed.
    async fn list(&self) -> Result<Vec<(String, JobStatus)>, RuntimeError>;

    /// Forgets an ended job and removes what it left (records, scratch directory).
    async fn remove(&self, job_id: &str) -> Result<(), RuntimeError>;
}

/// The runtimes this build knows.
pub const RUNTIMES: &[&str] = &["docker", "process"];

/// Builds the runtime named `name`, keeping its state under `state_dir` and sending
/// lifecycle events to `events`.
pub fn open(
    name: &str,
    state_dir: &Path,
    events: mpsc::UnboundedSender<RuntimeEvent>,
) -> Result<Arc<dyn Runtime>, String> {
    open_with(name, state_dir, events, RuntimeOptions::default())
}

/// As [`open`], with the node's resources and datasets (used by the `docker` runtime).
pub fn open_with(
    name: &str,
    state_dir: &Path,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    options: RuntimeOptions,
) -> Result<Arc<dyn Runtime>, String> {
    match name {
        "process" => Ok(Arc::new(process::ProcessRuntime::new(state_dir, events))),
        "docker" => Ok(Arc::new(docker::DockerRuntime::new(
            state_dir, events, options,
        )?)),
        other => Err(format!(
            "unknown runtime {other:?} (supported: {})",
            RUNTIMES.join(", ")
        )),
    }
}

/// What a runtime needs of each of a job's devices, from the node's discovered ones;
/// a UUID the node does not have is left out (the runtime then refuses the job).
pub fn assigned_devices(
    uuids: &[String],
    node_devices: &[crate::devices::DeviceInfo],
) -> Vec<AssignedDevice> {
    uuids
        .iter()
        .filter_map(|uuid| node_devices.iter().find(|d| &d.uuid == uuid))
        .map(|d| AssignedDevice {
            uuid: d.uuid.clone(),
            vendor: d.vendor.clone(),
            device_nodes: d.device_nodes.clone(),
        })
        .collect()
}

/// The scratch directory of a job: `<state_dir>/jobs/<job_id>`.
pub fn scratch_dir(state_dir: &Path, job_id: &str) -> PathBuf {
    state_dir.join("jobs").join(job_id)
}

/// Checks that a job id is safe as a file name and label: 1 to 128 ASCII letters,
/// digits, `-` and `_`.
pub fn validate_job_id(job_id: &str) -> Result<(), String> {
    let ok = !job_id.is_empty()
        && job_id.len() <= 128
        && job_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid job id {job_id:?}"))
    }
}

/// Checks what a job asks of a runtime, whoever sent it. The scheduler checks every
/// submission, but the agent does not run what a process or the engine would misread:
/// the id must be safe ([`validate_job_id`]); every variable name must be one a process
/// can receive (a name holding `=` would smuggle in, or shadow, another variable such
/// as `NVIDIA_VISIBLE_DEVICES`); values and arguments must hold no NUL (which would cut
/// them short); and the image must be empty (the process runtime needs none) or a
/// valid reference, which can never be read as a flag.
pub fn validate_job<'a>(
    job_id: &str,
    image: &str,
    command: &[String],
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), String> {
    validate_job_id(job_id)?;
    if !image.is_empty() {
        berth_proto::image::check(image).map_err(|e| format!("invalid image: {e}"))?;
    }
    if command.iter().any(|a| a.contains('\0')) {
        return Err("invalid command: an argument holds a NUL character".to_owned());
    }
    for (k, v) in env {
        if !berth_proto::model::is_env_name(k) {
            return Err(format!("invalid env: {k:?} is not a valid variable name"));
        }
        if v.contains('\0') {
            return Err(format!("invalid env.{k}: the value holds a NUL character"));
        }
    }
    Ok(())
}

/// [`validate_job`] of a runtime spec.
pub fn validate_spec(spec: &JobSpec) -> Result<(), String> {
    validate_job(&spec.job_id, &spec.image, &spec.command, &spec.env)
}

/// The environment of a job: the user's, without the variables Berth reserves, plus
/// `BERTH_JOB_ID`, `BERTH_DEVICES` and `CUDA_VISIBLE_DEVICES` (comma-separated
/// device UUIDs). Berth's values always win.
pub fn job_env(spec: &JobSpec) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = spec
        .env
        .iter()
        .filter(|(k, _)| !berth_proto::model::RESERVED_ENV.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let devices = spec.devices.join(",");
    env.insert("BERTH_JOB_ID".into(), spec.job_id.clone());
    env.insert("BERTH_DEVICES".into(), devices.clone());
    env.insert("CUDA_VISIBLE_DEVICES".into(), devices);
    env
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A spec for tests.
    pub(crate) fn spec(job_id: &str, command: &[&str], scratch_dir: PathBuf) -> JobSpec {
        JobSpec {
            job_id: job_id.into(),
            generation: 1,
            image: String::new(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            devices: vec!["GPU-a".into(), "GPU-b".into()],
            deadline_ms: None,
            grace: Duration::from_secs(5),
            org: "acme".into(),
            scratch_dir,
            assigned: Vec::new(),
            datasets: Vec::new(),
            network: String::new(),
        }
    }

    #[test]
    fn job_ids() {
        for ok in ["0b6f6c7e-3c1a-4c1e-9d0a-1b2c3d4e5f60", "job_1"] {
            assert!(validate_job_id(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", "..", "a/b", "../etc", "a b", long.as_str()] {
            assert!(validate_job_id(bad).is_err(), "{bad}");
        }
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/heartbeat.rs`): a desired job with a flag for
    /// an image, a variable name holding `=` (which would shadow `NVIDIA_VISIBLE_DEVICES`
    /// in the container) or a NUL was handed to the runtime.
    #[test]
    fn jobs_a_process_or_engine_would_misread_are_refused() {
        let ok = spec("j1", &["sh", "-c", "true"], PathBuf::from("/x"));
        assert_eq!(validate_spec(&ok), Ok(()));
        let with = |f: &dyn Fn(&mut JobSpec)| {
            let mut s = ok.clone();
            f(&mut s);
            validate_spec(&s).unwrap_err()
        };
        let e = with(&|s| s.image = "--privileged".into());
        assert!(e.starts_with("invalid image:") && e.contains("flag"), "{e}");
        let e = with(&|s| s.image = "-v".into());
        assert!(e.starts_with("invalid image:"), "{e}");
        let e = with(&|s| {
            s.env
                .insert("NVIDIA_VISIBLE_DEVICES=all".into(), String::new());
        });
        assert_eq!(
            e,
            r#"invalid env: "NVIDIA_VISIBLE_DEVICES=all" is not a valid variable name"#
        );
        let e = with(&|s| {
            s.env.insert("FOO".into(), "a\0b".into());
        });
        assert_eq!(e, "invalid env.FOO: the value holds a NUL character");
        let e = with(&|s| s.command.push("a\0b".into()));
        assert!(e.starts_with("invalid command"), "{e}");
        assert!(with(&|s| s.job_id = "../x".into()).contains("invalid job id"));
        let mut no_image = ok.clone();
        no_image.image.clear();
        assert_eq!(
            validate_spec(&no_image),
            Ok(()),
            "the process runtime needs none"
        );
    }

    #[test]
    fn berth_variables_win() {
        let mut s = spec("j1", &["true"], PathBuf::from("/x"));
        s.env
            .insert("CUDA_VISIBLE_DEVICES".into(), "0,1,2,3".into());
        s.env.insert("NVIDIA_VISIBLE_DEVICES".into(), "all".into());
        s.env.insert("BERTH_JOB_ID".into(), "other".into());
        s.env.insert("FOO".into(), "bar".into());
        let env = job_env(&s);
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "GPU-a,GPU-b");
        assert_eq!(env["BERTH_DEVICES"], "GPU-a,GPU-b");
        assert_eq!(env["BERTH_JOB_ID"], "j1");
        assert_eq!(env["FOO"], "bar");
        assert!(!env.contains_key("NVIDIA_VISIBLE_DEVICES"));
    }

    #[test]
    fn opens_known_runtimes_only() {
        let (tx, _rx) = mpsc::unbounded_channel();
        assert_eq!(
            open("process", Path::new("/tmp"), tx.clone()).map(|r| r.name()),
            Ok("process")
        );
        let err = open("kubernetes", Path::new("/tmp"), tx)
            .err()
            .expect("unknown");
        assert!(err.contains("unknown runtime \"kubernetes\""), "{err}");
    }
}
