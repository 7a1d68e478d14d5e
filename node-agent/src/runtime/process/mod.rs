//! The `process` runtime: each job's command runs directly on the host, for
//! development and tests (the image is ignored).
//!
//! The command runs without a shell (`command[0]` looked up in `PATH`) in its own
//! process group, in its scratch directory, with a clean environment: `PATH`,
//! `HOME` (the scratch directory), the job's variables and Berth's. Stopping signals
//! the whole group. When the command exits, whatever it left in its group is killed,
//! as a container's processes die with it. A restarted agent cannot re-adopt child
//! processes: [`Runtime::recover`] kills what is left and reports those jobs lost.

pub mod record;

use super::{
    Exit, JobSpec, JobStatus, Recovered, RecoveredJob, Runtime, RuntimeError, RuntimeEvent,
    StartError, job_env, validate_job_id,
};
use crate::logs::{LogSink, LogStream};
use async_trait::async_trait;
use berth_proto::time::now_ms;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use record::JobRecord;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

/// `PATH` used when neither the job nor the agent has one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long output may keep flowing after the command exited (from processes that
/// escaped its group) before the runtime stops reading.
const OUTPUT_LINGER: Duration = Duration::from_secs(5);
/// How long to wait for a group to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Runs jobs as host processes.
pub struct ProcessRuntime {
    state_dir: PathBuf,
    records: PathBuf,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    jobs: Arc<Mutex<HashMap<String, Entry>>>,
}

struct Entry {
    pgid: i32,
    started_at_ms: i64,
    exit: watch::Receiver<Option<Exit>>,
}

impl ProcessRuntime {
    /// A runtime keeping its records under `state_dir` and sending events to `events`.
    pub fn new(state_dir: &Path, events: mpsc::UnboundedSender<RuntimeEvent>) -> Self {
        Self {
            state_dir: state_dir.to_owned(),
            records: record::records_dir(state_dir),
            events,
            jobs: Arc::default(),
        }
    }

    fn entry(&self, job_id: &str) -> Option<(i32, watch::Receiver<Option<Exit>>)> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.get(job_id).map(|e| (e.pgid, e.exit.clone()))
    }
}

/// Finds the program to run: a name with a `/` is taken as a path (relative to the
/// scratch directory), any other name is looked up in `path`.
fn resolve_program(name: &str, path: &str, cwd: &Path) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = cwd.join(name);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(format!("command {name:?} not found or not executable"))
        };
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|p| executable(p))
        .ok_or_else(|| format!("command {name:?} not found in PATH ({path})"))
}

/// The exit code of a status: the code, or 128 + the signal that killed it.
fn exit_of(status: std::process::ExitStatus) -> Exit {
    let (exit_code, message) = match (status.code(), status.signal()) {
        (Some(code), _) => (code, String::new()),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("unknown");
            (128 + sig, format!("killed by signal {sig} ({name})"))
        }
        (None, None) => (-1, "ended without a status".to_owned()),
    };
    Exit {
        exit_code,
        finished_at_ms: now_ms(),
        message,
    }
}

/// Signals a process group; a group that no longer exists is not an error.
fn signal_group(pgid: i32, signal: Signal) {
    if let Err(e) = killpg(Pid::from_raw(pgid), signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(pgid, %signal, error = %e, "cannot signal process group");
    }
}

/// Copies one output stream into the job's sink until end of file. Keeps draining
/// (and discarding) if the sink closes, so the job never blocks on a full pipe.
async fn pump(mut from: impl AsyncRead + Unpin, stream: LogStream, sink: LogSink) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = true;
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if open && sink.write(stream, buf[..n].to_vec()).await.is_err() {
                    open = false;
                }
            }
        }
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn recover(&self) -> Result<Vec<RecoveredJob>, RuntimeError> {
        let boot = record::boot_id();
        let mut found = Vec::new();
        for mut rec in record::read_all(&self.records).await? {
            let state = match (&rec.lost, &rec.exit) {
                (Some(message), _) => Recovered::Lost(message.clone()),
                (None, Some(exit)) => Recovered::Exited(exit.clone()),
                (None, None) => {
                    let ticks = record::start_ticks(rec.pgid);
                    let killed = record::may_be_ours(&rec, boot.as_deref(), ticks)
                        && killpg(Pid::from_raw(rec.pgid), Signal::SIGKILL).is_ok();
                    let what = if killed {
                        format!("killed its leftover processes (process group {})", rec.pgid)
                    } else {
                        "its processes had already ended".to_owned()
                    };
                    let message = format!(
                        "the agent restarted and the process runtime cannot re-adopt jobs; {what}"
                    );
                    tracing::warn!(job_id = %rec.spec.job_id, pgid = rec.pgid, killed, "job lost across agent restart");
                    // Remember the verdict so a second restart does not signal again.
                    rec.lost = Some(message.clone());
                    record::write(&self.records, &rec).await?;
                    Recovered::Lost(message)
                }
            };
            found.push(RecoveredJob {
                spec: rec.spec,
                started_at_ms: Some(rec.started_at_ms),
                state,
            });
        }
        Ok(found)
    }

    async fn start(&self, spec: JobSpec, logs: LogSink) -> Result<(), StartError> {
        super::validate_spec(&spec).map_err(StartError)?;
        if !spec.datasets.is_empty() {
            let names: Vec<&str> = spec.datasets.iter().map(|d| d.name.as_str()).collect();
            return Err(StartError(format!(
                "the process runtime cannot isolate dataset mounts (asked for: {}); run the agent with --runtime docker",
                names.join(", ")
            )));
        }
        if self.entry(&spec.job_id).is_some() {
            return Err(StartError(format!(
                "job {} was already started",
                spec.job_id
            )));
        }
        let Some(program) = spec.command.first() else {
            return Err(StartError(
                "empty command: the process runtime needs a command to run".to_owned(),
            ));
        };
        tokio::fs::create_dir_all(&spec.scratch_dir)
            .await
            .map_err(|e| {
                StartError(format!(
                    "cannot create scratch directory {}: {e}",
                    spec.scratch_dir.display()
                ))
            })?;
        let env = job_env(&spec);
        let path = env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        let program = resolve_program(program, &path, &spec.scratch_dir).map_err(StartError)?;

        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&spec.command[1..])
            .current_dir(&spec.scratch_dir)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", &spec.scratch_dir)
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd
            .spawn()
            .map_err(|e| StartError(format!("cannot start {:?}: {e}", spec.command[0])))?;
        let Some(pgid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
            return Err(StartError(
                "the command ended before it could be tracked".into(),
            ));
        };
        let started_at_ms = now_ms();
        let mut rec = JobRecord {
            spec: spec.clone(),
            pgid,
            boot_id: record::boot_id(),
            leader_start_ticks: record::start_ticks(pgid),
            started_at_ms,
            exit: None,
            lost: None,
        };
        if let Err(e) = record::write(&self.records, &rec).await {
            signal_group(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
            return Err(StartError(format!("cannot record the job: {e}")));
        }

        let (exit_tx, exit_rx) = watch::channel(None);
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                spec.job_id.clone(),
                Entry {
                    pgid,
                    started_at_ms,
                    exit: exit_rx,
                },
            );
        let _ = self.events.send(RuntimeEvent::Running {
            job_id: spec.job_id.clone(),
            started_at_ms,
        });

        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(pump(out, LogStream::Stdout, logs.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(pump(err, LogStream::Stderr, logs.clone())));
        }
        drop(logs);
        let records = self.records.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => exit_of(status),
                Err(e) => Exit {
                    exit_code: -1,
                    finished_at_ms: now_ms(),
                    message: format!("lost track of the process: {e}"),
                },
            };
            // Like a container: when the command ends, everything it left dies with it.
            signal_group(pgid, Signal::SIGKILL);
            for reader in readers {
                let abort = reader.abort_handle();
                if tokio::time::timeout(OUTPUT_LINGER, reader).await.is_err() {
                    abort.abort();
                }
            }
            rec.exit = Some(exit.clone());
            if let Err(error) = record::write(&records, &rec).await {
                tracing::warn!(job_id = %rec.spec.job_id, %error, "cannot record job exit");
            }
            let _ = exit_tx.send(Some(exit.clone()));
            let _ = events.send(RuntimeEvent::Exited {
                job_id: rec.spec.job_id.clone(),
                exit,
            });
        });
        Ok(())
    }

    async fn stop(&self, job_id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let Some((pgid, mut exit)) = self.entry(job_id) else {
            return Ok(());
        };
        if exit.borrow().is_some() {
            return Ok(());
        }
        signal_group(pgid, Signal::SIGTERM);
        if tokio::time::timeout(grace, exit.wait_for(Option::is_some))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tracing::info!(
            job_id,
            ?grace,
            "job ignored SIGTERM for its grace period; killing it"
        );
        signal_group(pgid, Signal::SIGKILL);
        let _ = tokio::time::timeout(KILL_WAIT, exit.wait_for(Option::is_some)).await;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<(String, JobStatus)>, RuntimeError> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
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
        validate_job_id(job_id).map_err(|e| RuntimeError::Io {
            path: PathBuf::from(job_id),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            if jobs.get(job_id).is_some_and(|e| e.exit.borrow().is_none()) {
                return Err(RuntimeError::StillRunning(job_id.to_owned()));
            }
            jobs.remove(job_id);
        }
        let scratch = super::scratch_dir(&self.state_dir, job_id);
        match tokio::fs::remove_dir_all(&scratch).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::Io {
                    path: scratch,
                    source: e,
                });
            }
            _ => {}
        }
        record::delete(&self.records, job_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::scratch_dir;
    use crate::runtime::tests::spec;

    /// Failure guard only: every wait below ends on an event long before this.
    const GUARD: Duration = Duration::from_secs(30);

    struct Harness {
        dir: tempfile::TempDir,
        rt: ProcessRuntime,
        events: mpsc::UnboundedReceiver<RuntimeEvent>,
    }

    impl Harness {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let (tx, events) = mpsc::unbounded_channel();
            let rt = ProcessRuntime::new(dir.path(), tx);
            Self { dir, rt, events }
        }

        fn spec(&self, job_id: &str, command: &[&str]) -> JobSpec {
            spec(job_id, command, scratch_dir(self.dir.path(), job_id))
        }

        async fn event(&mut self) -> RuntimeEvent {
            tokio::time::timeout(GUARD, self.events.recv())
                .await
                .expect("event in time")
                .expect("runtime alive")
        }

        async fn start(&mut self, spec: JobSpec) -> mpsc::Receiver<(LogStream, Vec<u8>)> {
            let (sink, logs) = LogSink::channel(16);
            let job_id = spec.job_id.clone();
            self.rt.start(spec, sink).await.expect("started");
            match self.event().await {
                RuntimeEvent::Running { job_id: id, .. } => assert_eq!(id, job_id),
                other => panic!("expected Running, got {other:?}"),
            }
            logs
        }

        async fn exited(&mut self, job_id: &str) -> Exit {
            match self.event().await {
                RuntimeEvent::Exited { job_id: id, exit } => {
                    assert_eq!(id, job_id);
                    exit
                }
                other => panic!("expected Exited, got {other:?}"),
            }
        }
    }

    /// Everything written to a sink, per stream, once all its clones are dropped.
    async fn collect(mut logs: mpsc::Receiver<(LogStream, Vec<u8>)>) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some((stream, data)) = tokio::time::timeout(GUARD, logs.recv()).await.unwrap() {
            match stream {
                LogStream::Stdout => out.extend(data),
                LogStream::Stderr => err.extend(data),
            }
        }
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    /// Waits for the first output of a job (it signals it is ready).
    async fn first_line(logs: &mut mpsc::Receiver<(LogStream, Vec<u8>)>) -> String {
        let (_, data) = tokio::time::timeout(GUARD, logs.recv())
            .await
            .expect("output in time")
            .expect("output");
        String::from_utf8(data).unwrap()
    }

    #[tokio::test]
    async fn runs_a_command_and_reports_output_and_exit_code() {
        let mut h = Harness::new();
        let logs = h
            .start(h.spec("j1", &["sh", "-c", "echo hi; echo err >&2; exit 3"]))
            .await;
        let exit = h.exited("j1").await;
        assert_eq!(exit.exit_code, 3);
        assert_eq!(exit.message, "");
        assert_eq!(collect(logs).await, ("hi\n".to_owned(), "err\n".to_owned()));
        assert_eq!(
            h.rt.list().await.unwrap(),
            vec![("j1".to_owned(), JobStatus::Exited(exit))]
        );
    }

    #[tokio::test]
    async fn sets_berth_variables_and_runs_in_the_scratch_dir() {
        let mut h = Harness::new();
        let mut spec = h.spec(
            "j2",
            &[
                "sh",
                "-c",
                "echo \"$BERTH_JOB_ID|$BERTH_DEVICES|$CUDA_VISIBLE_DEVICES|$FOO|$(pwd)|$HOME|${BERTH_JOIN_TOKEN:-unset}\"",
            ],
        );
        spec.env.insert("FOO".into(), "bar".into());
        spec.env.insert("CUDA_VISIBLE_DEVICES".into(), "0".into());
        let scratch = spec
            .scratch_dir
            .canonicalize()
            .unwrap_or(spec.scratch_dir.clone());
        let logs = h.start(spec).await;
        assert_eq!(h.exited("j2").await.exit_code, 0);
        let scratch = scratch_dir(h.dir.path(), "j2")
            .canonicalize()
            .unwrap_or(scratch);
        let want = format!(
            "j2|GPU-a,GPU-b|GPU-a,GPU-b|bar|{}|{}|unset\n",
            scratch.display(),
            scratch_dir(h.dir.path(), "j2").display()
        );
        assert_eq!(collect(logs).await.0, want);
    }

    #[tokio::test]
    async fn stop_sends_sigterm_to_the_group() {
        let mut h = Harness::new();
        let logs = h.start(h.spec("j3", &["sleep", "60"])).await;
        tokio::time::timeout(GUARD, h.rt.stop("j3", Duration::from_secs(20)))
            .await
            .expect("stopped well before the grace period")
            .unwrap();
        let exit = h.exited("j3").await;
        assert_eq!(exit.exit_code, 128 + 15);
        assert!(exit.message.contains("SIGTERM"), "{}", exit.message);
        assert_eq!(collect(logs).await, (String::new(), String::new()));
        // Stopping again, or stopping an unknown job, is harmless.
        h.rt.stop("j3", Duration::ZERO).await.unwrap();
        h.rt.stop("nope", Duration::ZERO).await.unwrap();
    }

    #[tokio::test]
    async fn stop_kills_after_the_grace_period() {
        let mut h = Harness::new();
        let mut logs = h
            .start(h.spec(
                "j4",
                &[
                    "sh",
                    "-c",
                    "trap '' TERM; echo ready; while :; do sleep 1; done",
                ],
            ))
            .await;
        assert_eq!(first_line(&mut logs).await, "ready\n");
        h.rt.stop("j4", Duration::from_millis(100)).await.unwrap();
        let exit = h.exited("j4").await;
        assert_eq!(exit.exit_code, 128 + 9);
    }

    #[tokio::test]
    async fn leftover_processes_die_with_the_command() {
        let mut h = Harness::new();
        // The background sleep keeps stdout open; it must be killed when sh exits.
        let logs = h
            .start(h.spec("j5", &["sh", "-c", "sleep 60 & echo started"]))
            .await;
        assert_eq!(h.exited("j5").await.exit_code, 0);
        assert_eq!(collect(logs).await.0, "started\n");
    }

    #[tokio::test]
    async fn bad_commands_fail_to_start_with_clear_messages() {
        let h = Harness::new();
        let cases: [(&str, &[&str], &str); 4] = [
            ("e1", &[], "empty command"),
            (
                "e2",
                &["definitely-not-a-berth-command"],
                "not found in PATH",
            ),
            ("e3", &["./missing.sh"], "not found or not executable"),
            ("../e4", &["true"], "invalid job id"),
        ];
        for (id, command, want) in cases {
            let (sink, _logs) = LogSink::channel(1);
            let err = h.rt.start(h.spec(id, command), sink).await.expect_err(id);
            assert!(err.0.contains(want), "{id}: {err}");
        }
        assert!(h.rt.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn remove_forgets_ended_jobs_only() {
        let mut h = Harness::new();
        let mut logs = h
            .start(h.spec("j6", &["sh", "-c", "touch out.txt; echo go; sleep 60"]))
            .await;
        assert_eq!(first_line(&mut logs).await, "go\n");
        assert!(scratch_dir(h.dir.path(), "j6").join("out.txt").exists());
        assert!(matches!(
            h.rt.remove("j6").await,
            Err(RuntimeError::StillRunning(_))
        ));
        h.rt.stop("j6", Duration::from_secs(10)).await.unwrap();
        h.exited("j6").await;
        h.rt.remove("j6").await.unwrap();
        assert!(!scratch_dir(h.dir.path(), "j6").exists());
        assert!(h.rt.list().await.unwrap().is_empty());
        assert!(h.rt.recover().await.unwrap().is_empty(), "record deleted");
    }

    #[tokio::test]
    async fn a_restarted_runtime_kills_leftovers_and_reports_them_lost() {
        let mut old = Harness::new();
        let mut logs = old
            .start(old.spec("j7", &["sh", "-c", "echo up; sleep 60"]))
            .await;
        assert_eq!(first_line(&mut logs).await, "up\n");
        let done = old.spec("j8", &["true"]);
        let _ = old.start(done).await;
        let done_exit = old.exited("j8").await;

        // A new runtime on the same state directory, as after an agent restart.
        let (tx, _events) = mpsc::unbounded_channel();
        let new = ProcessRuntime::new(old.dir.path(), tx);
        let recovered = new.recover().await.unwrap();
        assert_eq!(recovered.len(), 2);
        assert_eq!(recovered[0].spec.job_id, "j7");
        match &recovered[0].state {
            Recovered::Lost(message) => {
                assert!(message.contains("cannot re-adopt"), "{message}");
                assert!(
                    message.contains("killed its leftover processes"),
                    "{message}"
                );
            }
            other => panic!("expected Lost, got {other:?}"),
        }
        assert_eq!(recovered[1].spec.job_id, "j8");
        assert_eq!(recovered[1].state, Recovered::Exited(done_exit));
        // The leftover process group really died (its old parent sees the SIGKILL).
        assert_eq!(old.exited("j7").await.exit_code, 128 + 9);

        new.remove("j7").await.unwrap();
        new.remove("j8").await.unwrap();
        assert!(new.recover().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_lost_verdict_is_kept_across_restarts_without_signalling() {
        let h = Harness::new();
        let rec = JobRecord {
            spec: h.spec("j9", &["true"]),
            // Our own group: signalling it would kill the test run.
            pgid: nix::unistd::getpgrp().as_raw(),
            boot_id: record::boot_id(),
            leader_start_ticks: None,
            started_at_ms: 0,
            exit: None,
            lost: Some("lost before".into()),
        };
        record::write(&h.rt.records, &rec).await.unwrap();
        let found = h.rt.recover().await.unwrap();
        assert_eq!(found[0].state, Recovered::Lost("lost before".into()));
    }

    #[test]
    fn resolves_programs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(resolve_program("sh", "/nonexistent:/bin:/usr/bin", dir.path()).is_ok());
        assert!(resolve_program("sh", "", dir.path()).is_err());
        assert!(resolve_program("/bin/sh", "", dir.path()).is_ok());
    }
}
