//! The agent's table of the jobs it knows, and how each is reported.
//!
//! A job is reported STARTING until the runtime says it runs, RUNNING until it has
//! ended *and* all its output is stored by the scheduler, then EXITED (or
//! FAILED_TO_START / UNKNOWN). It stays in the table, and in every heartbeat, until
//! the scheduler acknowledges it.
//!
//! Each job carries its evidence meter: fed with its devices' readings from the first
//! sample after it runs until the first sample after it ended, then closed; every
//! report carries the evidence so far.

use crate::devices::DeviceSample;
use crate::evidence::{JobMeter, Reading};
use crate::reconcile::{LocalJob, LocalState};
use crate::runtime::{Exit, JobSpec};
use berth_proto::time::{UnixMs, dur_to_ms, opt_ts, ts_to_ms};
use berth_proto::v1::{DesiredJob, JobPhase, ObservedJob};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::Path;
use std::time::Duration;

/// Grace period when the scheduler gives none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How a job ended, once reported as such.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its process or container ended.
    Exited(Exit),
    /// It could not be started.
    FailedToStart(String),
    /// The agent lost it (e.g. across a restart).
    Unknown(String),
}

/// One job the agent knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// Generation it was started under.
    pub generation: u64,
    /// Its devices.
    pub devices: Vec<String>,
    /// When the agent stops it.
    pub deadline_ms: Option<UnixMs>,
    /// Its grace period.
    pub grace: Duration,
    /// The runtime reported it running.
    pub running: bool,
    /// When it started running.
    pub started_at_ms: Option<UnixMs>,
    /// Why the agent is stopping it, once it decided to.
    pub stop_reason: Option<String>,
    /// The runtime was asked to stop it.
    pub stop_sent: bool,
    /// The runtime reported its end (output may still be shipping).
    pub exit: Option<Exit>,
    /// Its output pipeline has finished; `Some(false)` when some output was lost.
    pub logs_done: Option<bool>,
    /// Its reported end.
    pub outcome: Option<Outcome>,
    /// The integration of its devices' readings.
    pub meter: JobMeter,
}

impl Job {
    /// A job about to be started from `spec`.
    pub fn starting(spec: &JobSpec) -> Self {
        Self {
            id: spec.job_id.clone(),
            generation: spec.generation,
            devices: spec.devices.clone(),
            deadline_ms: spec.deadline_ms,
            grace: spec.grace,
            running: false,
            started_at_ms: None,
            stop_reason: None,
            stop_sent: false,
            exit: None,
            logs_done: None,
            outcome: None,
            meter: JobMeter::new(&spec.devices),
        }
    }

    /// A job that already has its final outcome (rejected, lost, recovered).
    pub fn finished(spec: &JobSpec, outcome: Outcome) -> Self {
        Self {
            outcome: Some(outcome),
            ..Self::starting(spec)
        }
    }

    /// Where it stands for reconciling.
    pub fn state(&self) -> LocalState {
        if self.outcome.is_some() {
            LocalState::Finished
        } else if self.exit.is_some() {
            LocalState::Exiting
        } else if self.stop_reason.is_some() {
            LocalState::Stopping
        } else if self.running {
            LocalState::Running
        } else {
            LocalState::Starting
        }
    }

    /// Whether it holds its devices (anything but finished).
    pub fn active(&self) -> bool {
        self.outcome.is_none()
    }

    /// Records the end when both the exit and the last output are in; returns
    /// whether the job just finished.
    pub fn try_finish(&mut self) -> bool {
        if self.outcome.is_some() || self.logs_done.is_none() {
            return false;
        }
        let Some(exit) = self.exit.clone() else {
            return false;
        };
        self.outcome = Some(Outcome::Exited(exit));
        true
    }

    /// The view the reconciler works on.
    pub fn local(&self) -> LocalJob {
        LocalJob {
            job_id: self.id.clone(),
            state: self.state(),
            deadline_ms: self.deadline_ms,
            grace: self.grace,
        }
    }

    /// The phase reported to the scheduler.
    pub fn phase(&self) -> JobPhase {
        match &self.outcome {
            Some(Outcome::Exited(_)) => JobPhase::Exited,
            Some(Outcome::FailedToStart(_)) => JobPhase::FailedToStart,
            Some(Outcome::Unknown(_)) => JobPhase::Unknown,
            None if self.running => JobPhase::Running,
            None => JobPhase::Starting,
        }
    }

    /// The report of this job as it stands.
    pub fn observed(&self) -> ObservedJob {
        let (exit_code, finished_at_ms, message) = match &self.outcome {
            Some(Outcome::Exited(exit)) => {
                let mut parts: Vec<&str> = Vec::new();
                if let Some(reason) = &self.stop_reason {
                    parts.push(reason);
                }
                if !exit.message.is_empty() {
                    parts.push(&exit.message);
                }
                if self.logs_done == Some(false) {
                    parts.push("some output could not be stored");
                }
                (
                    Some(exit.exit_code),
                    Some(exit.finished_at_ms),
                    parts.join("; "),
                )
            }
            Some(Outcome::FailedToStart(m) | Outcome::Unknown(m)) => (None, None, m.clone()),
            None => (None, None, String::new()),
        };
        ObservedJob {
            job_id: self.id.clone(),
            phase: self.phase() as i32,
            exit_code,
            message,
            started_at: opt_ts(self.started_at_ms),
            finished_at: opt_ts(finished_at_ms),
            generation: self.generation,
            stopped_by_agent: self.stop_reason.is_some(),
            evidence: self.meter.evidence().map(|e| e.to_proto()),
        }
    }
}

/// Builds the runtime spec of a desired job.
pub fn spec_of(desired: &DesiredJob, generation: u64, state_dir: &Path) -> JobSpec {
    let grace = desired
        .grace
        .as_ref()
        .map(dur_to_ms)
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(DEFAULT_GRACE, Duration::from_millis);
    JobSpec {
        job_id: desired.job_id.clone(),
        generation,
        image: desired.image.clone(),
        command: desired.command.clone(),
        env: desired
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        devices: desired.devices.clone(),
        deadline_ms: desired.deadline.as_ref().map(ts_to_ms),
        grace,
        org: desired.org.clone(),
        scratch_dir: crate::runtime::scratch_dir(state_dir, &desired.job_id),
        // Filled by the agent from the node's discovered devices.
        assigned: Vec::new(),
        datasets: desired
            .datasets
            .iter()
            .map(|d| crate::runtime::DatasetRequest {
                name: d.name.clone(),
                read_write: d.read_write,
            })
            .collect(),
        network: desired.network.clone(),
    }
}

/// The jobs the agent knows, and the finished ones it forgot.
#[derive(Debug, Default)]
pub struct Jobs {
    jobs: BTreeMap<String, Job>,
    forgotten: HashSet<String>,
    forgotten_order: VecDeque<String>,
}

/// How many forgotten job ids are remembered (to never restart them).
const FORGOTTEN_CAP: usize = 10_000;

impl Jobs {
    /// The job `id`.
    pub fn get(&self, id: &str) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// The job `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.jobs.get_mut(id)
    }

    /// Adds (or replaces) a job.
    pub fn insert(&mut self, job: Job) {
        self.jobs.insert(job.id.clone(), job);
    }

    /// Every job.
    pub fn iter(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    /// Forgets a job, remembering its id so it never starts again.
    pub fn forget(&mut self, id: &str) {
        self.jobs.remove(id);
        if self.forgotten.insert(id.to_owned()) {
            self.forgotten_order.push_back(id.to_owned());
            if self.forgotten_order.len() > FORGOTTEN_CAP
                && let Some(old) = self.forgotten_order.pop_front()
            {
                self.forgotten.remove(&old);
            }
        }
    }

    /// Ids of forgotten jobs.
    pub fn forgotten(&self) -> &HashSet<String> {
        &self.forgotten
    }

    /// Views for the reconciler.
    pub fn local(&self) -> Vec<LocalJob> {
        self.jobs.values().map(Job::local).collect()
    }

    /// Reports of every job, for the heartbeat.
    pub fn observed(&self) -> Vec<ObservedJob> {
        self.jobs.values().map(Job::observed).collect()
    }

    /// Feeds one round of device samples to the meters of the jobs that run or have
    /// just ended, then closes the meters of those that ended: a job's last round is
    /// the first one sampled after its end.
    pub fn record(&mut self, samples: &[DeviceSample]) {
        for job in self.jobs.values_mut() {
            if !job.running || job.outcome.is_some() || job.meter.is_closed() {
                continue;
            }
            for sample in samples {
                if let Some(t) = &sample.telemetry {
                    job.meter.add(&sample.uuid, Reading::from_telemetry(t));
                }
            }
            if job.exit.is_some() {
                job.meter.close();
            }
        }
    }

    /// Devices held by active jobs.
    pub fn busy_devices(&self) -> BTreeSet<String> {
        self.jobs
            .values()
            .filter(|j| j.active())
            .flat_map(|j| j.devices.iter().cloned())
            .collect()
    }

    /// The earliest deadline of a job that is starting or running.
    pub fn next_deadline(&self) -> Option<UnixMs> {
        self.jobs
            .values()
            .filter(|j| matches!(j.state(), LocalState::Starting | LocalState::Running))
            .filter_map(|j| j.deadline_ms)
            .min()
    }

    /// Whether every job has its final outcome.
    pub fn all_finished(&self) -> bool {
        self.jobs.values().all(|j| !j.active())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::spec;
    use berth_proto::time::ms_to_ts;
    use std::path::PathBuf;

    fn job() -> Job {
        Job::starting(&spec("j", &["true"], PathBuf::new()))
    }

    #[test]
    fn lifecycle_phases() {
        let mut j = job();
        assert_eq!(
            (j.state(), j.phase()),
            (LocalState::Starting, JobPhase::Starting)
        );
        j.running = true;
        j.started_at_ms = Some(10);
        assert_eq!(
            (j.state(), j.phase()),
            (LocalState::Running, JobPhase::Running)
        );
        j.stop_reason = Some("stopped by the agent: deadline reached".into());
        assert_eq!(
            (j.state(), j.phase()),
            (LocalState::Stopping, JobPhase::Running)
        );
        j.exit = Some(Exit {
            exit_code: 143,
            finished_at_ms: 20,
            message: "killed by signal 15 (SIGTERM)".into(),
        });
        // Exited, but output still shipping: still reported running.
        assert!(!j.try_finish());
        assert_eq!(
            (j.state(), j.phase()),
            (LocalState::Exiting, JobPhase::Running)
        );
        assert!(j.active());
        j.logs_done = Some(true);
        assert!(j.try_finish());
        assert!(!j.try_finish(), "only once");
        assert_eq!(
            (j.state(), j.phase()),
            (LocalState::Finished, JobPhase::Exited)
        );
        let o = j.observed();
        assert_eq!(o.exit_code, Some(143));
        assert!(o.stopped_by_agent);
        assert_eq!(
            o.message,
            "stopped by the agent: deadline reached; killed by signal 15 (SIGTERM)"
        );
        assert_eq!(o.started_at, Some(ms_to_ts(10)));
        assert_eq!(o.finished_at, Some(ms_to_ts(20)));
        assert_eq!(o.generation, 1);
    }

    #[test]
    fn output_done_before_exit_waits_for_the_exit() {
        let mut j = job();
        j.logs_done = Some(false);
        assert!(!j.try_finish());
        j.exit = Some(Exit {
            exit_code: 0,
            finished_at_ms: 1,
            message: String::new(),
        });
        assert!(j.try_finish());
        let o = j.observed();
        assert_eq!(o.message, "some output could not be stored");
        assert!(!o.stopped_by_agent);
    }

    #[test]
    fn failed_and_lost_jobs() {
        let s = spec("j", &[], PathBuf::new());
        let f = Job::finished(&s, Outcome::FailedToStart("empty command".into()));
        assert_eq!(f.observed().phase, JobPhase::FailedToStart as i32);
        assert_eq!(f.observed().message, "empty command");
        assert_eq!(f.observed().exit_code, None);
        let u = Job::finished(&s, Outcome::Unknown("lost".into()));
        assert_eq!(u.observed().phase, JobPhase::Unknown as i32);
        assert!(!u.active());
    }

    #[test]
    fn desired_jobs_become_specs() {
        let d = DesiredJob {
            job_id: "j1".into(),
            image: "img".into(),
            command: vec!["echo".into()],
            env: [("A".to_owned(), "1".to_owned())].into(),
            devices: vec!["GPU-1".into()],
            deadline: Some(ms_to_ts(5000)),
            grace: Some(berth_proto::time::ms_to_dur(1500)),
            org: "acme".into(),
            datasets: vec![berth_proto::v1::DatasetMount {
                name: "imagenet".into(),
                read_write: true,
            }],
            network: "none".into(),
            spec_omitted: false,
        };
        let s = spec_of(&d, 4, Path::new("/state"));
        assert_eq!(
            s.datasets,
            vec![crate::runtime::DatasetRequest {
                name: "imagenet".into(),
                read_write: true
            }]
        );
        assert_eq!(s.network, "none");
        assert!(s.assigned.is_empty(), "filled by the agent");
        assert_eq!(s.grace, Duration::from_millis(1500));
        assert_eq!(s.deadline_ms, Some(5000));
        assert_eq!(s.generation, 4);
        assert_eq!(s.scratch_dir, PathBuf::from("/state/jobs/j1"));
        assert_eq!(s.env["A"], "1");
        let s = spec_of(&DesiredJob::default(), 1, Path::new("/s"));
        assert_eq!((s.grace, s.deadline_ms), (DEFAULT_GRACE, None));
    }

    #[test]
    fn table_tracks_devices_deadlines_and_forgotten_ids() {
        let mut jobs = Jobs::default();
        let mut a = job();
        a.id = "a".into();
        a.deadline_ms = Some(50);
        let mut b = job();
        b.id = "b".into();
        b.devices = vec!["GPU-c".into()];
        b.outcome = Some(Outcome::Unknown("x".into()));
        b.deadline_ms = Some(10);
        jobs.insert(a);
        jobs.insert(b);
        assert_eq!(jobs.next_deadline(), Some(50));
        assert_eq!(
            jobs.busy_devices(),
            BTreeSet::from(["GPU-a".to_owned(), "GPU-b".to_owned()])
        );
        assert!(!jobs.all_finished());
        jobs.forget("a");
        assert!(jobs.all_finished());
        assert!(jobs.forgotten().contains("a"));
        assert_eq!(jobs.observed().len(), 1);
    }

    /// A round of samples of GPU-a, GPU-b and GPU-c at `s` seconds: 100 W each, the
    /// counter at 100 J per second.
    fn round(s: i64) -> Vec<DeviceSample> {
        ["GPU-a", "GPU-b", "GPU-c"]
            .into_iter()
            .map(|uuid| DeviceSample {
                uuid: uuid.into(),
                health: crate::devices::Health::Healthy,
                telemetry: Some(crate::devices::Telemetry {
                    sampled_at_ms: s * 1000,
                    utilization_pct: 50.0,
                    memory_used_bytes: 1 << 30,
                    memory_utilization_pct: 1.0,
                    temperature_c: 40.0,
                    power_w: 100.0,
                    energy_j: s as f64 * 100.0,
                    energy_counter: true,
                    activity: crate::devices::Activity::default(),
                    extra: crate::devices::TelemetryExtra::default(),
                }),
            })
            .collect()
    }

    #[test]
    fn evidence_runs_from_the_first_round_after_start_to_the_first_after_the_end() {
        let mut jobs = Jobs::default();
        jobs.insert(job());
        jobs.record(&round(0));
        assert_eq!(
            jobs.get("j").unwrap().observed().evidence,
            None,
            "not running yet"
        );
        jobs.get_mut("j").unwrap().running = true;
        jobs.record(&round(10));
        assert_eq!(jobs.observed()[0].evidence.as_ref().unwrap().samples, 1);
        jobs.record(&round(20));
        jobs.get_mut("j").unwrap().exit = Some(Exit {
            exit_code: 0,
            finished_at_ms: 25_000,
            message: String::new(),
        });
        jobs.record(&round(30)); // the round after the end: the last one
        jobs.record(&round(40));
        let e = jobs.observed()[0].evidence.unwrap();
        assert_eq!((e.samples, e.devices), (3, 2), "GPU-c is not the job's");
        // 20 s on two devices at 100 W.
        assert!((e.energy_wh - 4_000.0 / 3600.0).abs() < 1e-9, "{e:?}");
        assert!(jobs.get("j").unwrap().meter.is_closed());

        // A round that could not be sampled still ends a job's evidence.
        let mut jobs = Jobs::default();
        let mut j = job();
        j.running = true;
        jobs.insert(j);
        jobs.record(&round(0));
        jobs.get_mut("j").unwrap().exit = Some(Exit {
            exit_code: 1,
            finished_at_ms: 1,
            message: String::new(),
        });
        jobs.record(&[]);
        assert!(jobs.get("j").unwrap().meter.is_closed());
        assert_eq!(jobs.observed()[0].evidence.as_ref().unwrap().samples, 1);
    }
}
