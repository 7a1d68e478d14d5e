//! The reconcile step: desired jobs (from the scheduler) against the jobs this agent
//! knows (from its runtime), as a pure function with no I/O and no clock.
//!
//! Rules:
//! - A desired job the agent does not know is started, unless it already finished
//!   here and was forgotten: a finished job is never restarted. One whose spec a
//!   process or the engine would misread (`runtime::validate_job`: unsafe id, flag for
//!   an image, malformed variable name, NUL) is rejected instead, whoever sent it.
//! - A starting or running job that is no longer desired is stopped, and so is one
//!   past its deadline, whatever the scheduler says.
//! - A finished job is kept (and reported) until the scheduler acknowledges it, then
//!   forgotten.
//! - A desired set older than the generation the agent already applied is stale and
//!   ignored (deadlines and acknowledgements still apply).

use berth_proto::time::{UnixMs, ts_to_ms};
use berth_proto::v1::DesiredJob;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Where a job the agent knows stands, as far as reconciling goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalState {
    /// Asked of the runtime, not yet running.
    Starting,
    /// Running.
    Running,
    /// The agent is stopping it.
    Stopping,
    /// It ended; its last output is being shipped before the exit is reported.
    Exiting,
    /// It ended (or never started) and that has been reported; kept until acknowledged.
    Finished,
}

/// A job the agent knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalJob {
    /// Its id.
    pub job_id: String,
    /// Where it stands.
    pub state: LocalState,
    /// When it must be stopped.
    pub deadline_ms: Option<UnixMs>,
    /// Its grace period when stopping.
    pub grace: Duration,
}

/// The scheduler's desired state, as a heartbeat returned it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    /// Its generation.
    pub generation: u64,
    /// The complete set of jobs the node should run.
    pub jobs: Vec<DesiredJob>,
}

/// Everything one reconcile step looks at.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Generation of the desired state the agent last applied.
    pub applied_generation: u64,
    /// A new desired state, or `None` for a step driven by time alone (deadlines).
    pub desired: Option<&'a Desired>,
    /// Finished jobs whose final state the scheduler has recorded.
    pub acknowledged: &'a [String],
    /// The jobs the agent knows.
    pub local: &'a [LocalJob],
    /// Finished jobs already forgotten, which must never start again.
    pub forgotten: &'a HashSet<String>,
    /// Now.
    pub now_ms: UnixMs,
}

/// Why the agent stops a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The scheduler no longer lists it.
    NotDesired,
    /// Its deadline passed.
    Deadline,
}

impl StopReason {
    /// The message reported with the job's exit.
    pub fn message(self) -> &'static str {
        match self {
            StopReason::NotDesired => "stopped by the agent: no longer wanted by the scheduler",
            StopReason::Deadline => "stopped by the agent: deadline reached",
        }
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a handful per reconcile; boxing buys nothing
pub enum Action {
    /// Start this job.
    Start(DesiredJob),
    /// Do not start this desired job; report it as failed to start with this message.
    Reject {
        /// The job.
        job_id: String,
        /// Why.
        message: String,
    },
    /// Stop this job with its grace period.
    Stop {
        /// The job.
        job_id: String,
        /// Time between SIGTERM and SIGKILL.
        grace: Duration,
        /// Why.
        reason: StopReason,
    },
    /// The scheduler has recorded this finished job: forget it.
    Forget(String),
}

/// The outcome of a reconcile step.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The generation the agent holds once the actions are taken.
    pub generation: u64,
    /// The desired state was older than the one applied, and was ignored.
    pub stale: bool,
    /// What to do, in order.
    pub actions: Vec<Action>,
}

/// Compares desired with observed and says what to do.
pub fn reconcile(inputs: &Inputs<'_>) -> Plan {
    let stale = inputs
        .desired
        .is_some_and(|d| d.generation < inputs.applied_generation);
    let desired = inputs.desired.filter(|_| !stale);
    let local: BTreeMap<&str, &LocalJob> = inputs
        .local
        .iter()
        .map(|j| (j.job_id.as_str(), j))
        .collect();
    let mut actions = Vec::new();

    let mut wanted: HashSet<&str> = HashSet::new();
    for job in desired.map(|d| d.jobs.as_slice()).unwrap_or_default() {
        let id = job.job_id.as_str();
        if !wanted.insert(id) || local.contains_key(id) || inputs.forgotten.contains(id) {
            continue;
        }
        if job.spec_omitted {
            // Its spec comes in a later reply; it is still wanted.
            continue;
        }
        if let Err(message) = crate::runtime::validate_job(id, &job.image, &job.command, &job.env) {
            actions.push(Action::Reject {
                job_id: id.to_owned(),
                message,
            });
        } else if job
            .deadline
            .as_ref()
            .is_some_and(|d| ts_to_ms(d) <= inputs.now_ms)
        {
            actions.push(Action::Reject {
                job_id: id.to_owned(),
                message: "its deadline passed before it could start".to_owned(),
            });
        } else {
            actions.push(Action::Start(job.clone()));
        }
    }

    let acknowledged: HashSet<&str> = inputs.acknowledged.iter().map(String::as_str).collect();
    for job in local.values() {
        let stop = |reason| Action::Stop {
            job_id: job.job_id.clone(),
            grace: job.grace,
            reason,
        };
        match job.state {
            LocalState::Starting | LocalState::Running => {
                if job.deadline_ms.is_some_and(|d| d <= inputs.now_ms) {
                    actions.push(stop(StopReason::Deadline));
                } else if desired.is_some() && !wanted.contains(job.job_id.as_str()) {
                    actions.push(stop(StopReason::NotDesired));
                }
            }
            LocalState::Stopping | LocalState::Exiting => {}
            LocalState::Finished => {
                if acknowledged.contains(job.job_id.as_str()) {
                    actions.push(Action::Forget(job.job_id.clone()));
                }
            }
        }
    }

    Plan {
        generation: desired.map_or(inputs.applied_generation, |d| d.generation),
        stale,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::time::ms_to_ts;

    const NOW: UnixMs = 1_000_000;
    const GRACE: Duration = Duration::from_secs(7);

    /// `"a"` is desired without deadline, `"a@500"` with deadline 500 ms.
    fn desired(generation: u64, jobs: &[&str]) -> Desired {
        Desired {
            generation,
            jobs: jobs
                .iter()
                .map(|spec| {
                    let (id, deadline) = match spec.split_once('@') {
                        Some((id, d)) => (id, Some(ms_to_ts(d.parse().unwrap()))),
                        None => (*spec, None),
                    };
                    DesiredJob {
                        job_id: id.to_owned(),
                        deadline,
                        ..Default::default()
                    }
                })
                .collect(),
        }
    }

    /// `"a:running"`, `"b:finished"`, `"c:running@500"`.
    fn local(jobs: &[&str]) -> Vec<LocalJob> {
        jobs.iter()
            .map(|spec| {
                let (spec, deadline_ms) = match spec.split_once('@') {
                    Some((s, d)) => (s, Some(d.parse().unwrap())),
                    None => (*spec, None),
                };
                let (id, state) = spec.split_once(':').unwrap();
                let state = match state {
                    "starting" => LocalState::Starting,
                    "running" => LocalState::Running,
                    "stopping" => LocalState::Stopping,
                    "exiting" => LocalState::Exiting,
                    "finished" => LocalState::Finished,
                    other => panic!("state {other}"),
                };
                LocalJob {
                    job_id: id.to_owned(),
                    state,
                    deadline_ms,
                    grace: GRACE,
                }
            })
            .collect()
    }

    fn describe(a: &Action) -> String {
        match a {
            Action::Start(j) => format!("start {}", j.job_id),
            Action::Reject { job_id, .. } => format!("reject {job_id}"),
            Action::Stop {
                job_id,
                reason,
                grace,
            } => {
                assert_eq!(*grace, GRACE);
                let why = match reason {
                    StopReason::NotDesired => "not-desired",
                    StopReason::Deadline => "deadline",
                };
                format!("stop {job_id} {why}")
            }
            Action::Forget(id) => format!("forget {id}"),
        }
    }

    struct Case {
        name: &'static str,
        applied: u64,
        desired: Option<Desired>,
        local: &'static [&'static str],
        acked: &'static [&'static str],
        forgotten: &'static [&'static str],
        want_generation: u64,
        want_stale: bool,
        want: &'static [&'static str],
    }

    #[test]
    fn table() {
        let cases = [
            Case {
                name: "first heartbeat starts everything",
                applied: 0,
                desired: Some(desired(3, &["a", "b"])),
                local: &[],
                acked: &[],
                forgotten: &[],
                want_generation: 3,
                want_stale: false,
                want: &["start a", "start b"],
            },
            Case {
                name: "known jobs are left alone, new ones started",
                applied: 3,
                desired: Some(desired(4, &["a", "c"])),
                local: &["a:running"],
                acked: &[],
                forgotten: &[],
                want_generation: 4,
                want_stale: false,
                want: &["start c"],
            },
            Case {
                name: "undesired running and starting jobs are stopped",
                applied: 4,
                desired: Some(desired(5, &["a"])),
                local: &["a:running", "b:running", "c:starting", "d:stopping"],
                acked: &[],
                forgotten: &[],
                want_generation: 5,
                want_stale: false,
                want: &["stop b not-desired", "stop c not-desired"],
            },
            Case {
                name: "empty desired set stops everything",
                applied: 5,
                desired: Some(desired(6, &[])),
                local: &["a:running"],
                acked: &[],
                forgotten: &[],
                want_generation: 6,
                want_stale: false,
                want: &["stop a not-desired"],
            },
            Case {
                name: "a finished job is never restarted, even while still desired",
                applied: 6,
                desired: Some(desired(6, &["a", "b"])),
                local: &["a:finished", "b:exiting"],
                acked: &[],
                forgotten: &[],
                want_generation: 6,
                want_stale: false,
                want: &[],
            },
            Case {
                name: "a forgotten job is never restarted",
                applied: 6,
                desired: Some(desired(7, &["a"])),
                local: &[],
                acked: &[],
                forgotten: &["a"],
                want_generation: 7,
                want_stale: false,
                want: &[],
            },
            Case {
                name: "acknowledged finished jobs are forgotten, others kept",
                applied: 7,
                desired: Some(desired(7, &[])),
                local: &["a:finished", "b:finished", "c:exiting"],
                acked: &["a", "c", "zz"],
                forgotten: &[],
                want_generation: 7,
                want_stale: false,
                want: &["forget a"],
            },
            Case {
                name: "a stale desired set is ignored, acks still apply",
                applied: 9,
                desired: Some(desired(8, &["x"])),
                local: &["a:running", "b:finished"],
                acked: &["b"],
                forgotten: &[],
                want_generation: 9,
                want_stale: true,
                want: &["forget b"],
            },
            Case {
                name: "the same generation again is applied idempotently",
                applied: 9,
                desired: Some(desired(9, &["a"])),
                local: &["a:running"],
                acked: &[],
                forgotten: &[],
                want_generation: 9,
                want_stale: false,
                want: &[],
            },
            Case {
                name: "deadlines stop jobs even while desired, and without a heartbeat",
                applied: 9,
                desired: None,
                local: &[
                    "a:running@1000000",
                    "b:running@1000001",
                    "c:starting@5",
                    "d:stopping@5",
                ],
                acked: &[],
                forgotten: &[],
                want_generation: 9,
                want_stale: false,
                want: &["stop a deadline", "stop c deadline"],
            },
            Case {
                name: "no heartbeat: nothing starts or stops for want of a desired set",
                applied: 9,
                desired: None,
                local: &["a:running"],
                acked: &[],
                forgotten: &[],
                want_generation: 9,
                want_stale: false,
                want: &[],
            },
            Case {
                name: "expired or unsafe desired jobs are rejected, duplicates ignored",
                applied: 0,
                desired: Some(desired(1, &["a@999999", "../x", "b@1000001", "b"])),
                local: &[],
                acked: &[],
                forgotten: &[],
                want_generation: 1,
                want_stale: false,
                want: &["reject a", "reject ../x", "start b"],
            },
            Case {
                name: "deadline wins over not-desired as the reason",
                applied: 1,
                desired: Some(desired(2, &[])),
                local: &["a:running@10"],
                acked: &[],
                forgotten: &[],
                want_generation: 2,
                want_stale: false,
                want: &["stop a deadline"],
            },
        ];
        for case in cases {
            let local = local(case.local);
            let acked: Vec<String> = case.acked.iter().map(|s| s.to_string()).collect();
            let forgotten: HashSet<String> = case.forgotten.iter().map(|s| s.to_string()).collect();
            let plan = reconcile(&Inputs {
                applied_generation: case.applied,
                desired: case.desired.as_ref(),
                acknowledged: &acked,
                local: &local,
                forgotten: &forgotten,
                now_ms: NOW,
            });
            let got: Vec<String> = plan.actions.iter().map(describe).collect();
            assert_eq!(got, case.want, "{}", case.name);
            assert_eq!(plan.generation, case.want_generation, "{}", case.name);
            assert_eq!(plan.stale, case.want_stale, "{}", case.name);
        }
    }

    #[test]
    fn jobs_whose_spec_comes_later_are_kept_but_not_started() {
        let mut d = desired(7, &["a", "b", "c"]);
        for j in &mut d.jobs {
            j.spec_omitted = j.job_id != "c";
        }
        // "a" runs here already (its spec is left out as known); "b" is new and its spec
        // comes later; "c" is new with its spec.
        let local = local(&["a:running"]);
        let plan = reconcile(&Inputs {
            applied_generation: 6,
            desired: Some(&d),
            acknowledged: &[],
            local: &local,
            forgotten: &HashSet::new(),
            now_ms: NOW,
        });
        let got: Vec<String> = plan.actions.iter().map(describe).collect();
        assert_eq!(got, ["start c"], "a keeps running, b waits for its spec");
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/heartbeat.rs`): whatever a heartbeat reply
    /// holds, a job a process or the engine would misread is rejected, never started.
    #[test]
    fn hostile_desired_jobs_are_rejected_not_started() {
        let job = |id: &str, f: &dyn Fn(&mut DesiredJob)| {
            let mut j = DesiredJob {
                job_id: id.to_owned(),
                image: "busybox".to_owned(),
                ..Default::default()
            };
            f(&mut j);
            j
        };
        let d = Desired {
            generation: 1,
            jobs: vec![
                job("flag", &|j| j.image = "--privileged".into()),
                job("shadow", &|j| {
                    j.env
                        .insert("NVIDIA_VISIBLE_DEVICES=all".into(), "x".into());
                }),
                job("nul", &|j| j.command = vec!["a\0b".into()]),
                job("fine", &|j| {
                    j.env.insert("NVIDIA_VISIBLE_DEVICES".into(), "all".into());
                }),
            ],
        };
        let plan = reconcile(&Inputs {
            applied_generation: 0,
            desired: Some(&d),
            acknowledged: &[],
            local: &[],
            forgotten: &HashSet::new(),
            now_ms: NOW,
        });
        let got: Vec<String> = plan.actions.iter().map(describe).collect();
        // A reserved variable is no reason to refuse: the runtime overrides it.
        assert_eq!(
            got,
            ["reject flag", "reject shadow", "reject nul", "start fine"]
        );
        let Action::Reject { message, .. } = &plan.actions[0] else {
            unreachable!()
        };
        assert!(message.starts_with("invalid image:"), "{message}");
    }

    #[test]
    fn reconciling_is_idempotent_once_actions_are_applied() {
        let d = desired(2, &["a", "b"]);
        let forgotten = HashSet::new();
        let mut local = local(&["b:running", "c:running"]);
        let inputs = |local: &[LocalJob]| {
            reconcile(&Inputs {
                applied_generation: 1,
                desired: Some(&d),
                acknowledged: &[],
                local,
                forgotten: &forgotten,
                now_ms: NOW,
            })
        };
        let plan = inputs(&local);
        assert_eq!(plan.actions.len(), 2);
        // Apply: a starts, c is being stopped.
        local.push(LocalJob {
            job_id: "a".into(),
            state: LocalState::Starting,
            deadline_ms: None,
            grace: GRACE,
        });
        local[1].state = LocalState::Stopping;
        assert_eq!(inputs(&local).actions, []);
    }
}
