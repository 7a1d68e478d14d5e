//! End-to-end with the `docker` runtime: the real scheduler and agent binaries, jobs in
//! containers on the local Docker engine, driven through `berth`.
//!
//! Needs a Docker engine and the test images, which are built locally on first use
//! (`scripts/build-test-images.sh`: `FROM scratch` with Debian's busybox-static; no
//! registry). Each test has its own node name, which the agent puts on its containers'
//! `berth.node` label; a guard removes whatever containers of that node are left.

mod common;

use common::{Centre, Run, string_set};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

const SITE: &str = "site-d";
const CLASS: &str = "gpu";
const IMAGE: &str = "berth-test/busybox:latest";
const VISIBLE_ALL: &str = "berth-test/visible-all:latest";
/// Bound on each wait below; every one ends on an observed change long before.
const DEADLINE: Duration = Duration::from_secs(90);

/// Builds the test images once per test binary (the script skips existing ones).
fn ensure_images() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-test-images.sh");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Runs `docker ARGS`; stdout on success, `None` on failure.
fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Ids of the containers (any state) carrying `label`.
fn containers(label: &str) -> Vec<String> {
    docker(&["ps", "-aq", "--filter", &format!("label={label}")])
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Removes every container of a node when dropped, even after a failed assertion.
struct NodeContainers(String);

impl Drop for NodeContainers {
    fn drop(&mut self) {
        let ids = containers(&format!("berth.node={}", self.0));
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(&args);
        }
    }
}

/// A centre with one docker-runtime node and a user `alice` in `org-a`.
struct World {
    // Dropped first: the agent and scheduler stop, then leftovers are removed.
    centre: Centre,
    _guard: NodeContainers,
    node: String,
    alice: String,
}

impl World {
    fn new(tag: &str, devices: u32) -> Self {
        ensure_images();
        let node = format!("dk-{tag}-{}", std::process::id());
        let guard = NodeContainers(node.clone());
        let centre = Centre::start();
        centre.site_and_class(SITE, CLASS);
        centre.admin(&["admin", "orgs", "create", "org-a"]);
        let alice = centre.user("org-a", "alice");
        let mut w = Self {
            centre,
            _guard: guard,
            node,
            alice,
        };
        w.start_agent(devices);
        w
    }

    fn start_agent(&mut self, devices: u32) {
        let node = self.node.clone();
        self.centre.start_agent_with(
            &node,
            SITE,
            CLASS,
            devices,
            &[
                "--runtime",
                "docker",
                "--pull",
                "never",
                "--node-cpus",
                "2",
                "--node-memory-mib",
                "2048",
            ],
        );
    }

    fn alice(&self, args: &[&str]) -> Run {
        self.centre.berth(&self.alice, args)
    }

    fn job(&self, id: &str) -> Value {
        self.centre.json(&self.alice, &["jobs", "show", id])
    }

    /// Submits and returns the job id.
    fn submit(&self, image: &str, count: u32, command: &[&str]) -> String {
        let count = count.to_string();
        let mut args = vec![
            "submit", "--class", CLASS, "--count", &count, "--image", image, "--",
        ];
        args.extend(command);
        self.alice(&args).ok().stdout.trim().to_owned()
    }

    fn wait_state(&self, id: &str, want: &[&str]) -> Value {
        self.centre
            .eventually(&format!("job {id} to be {want:?}"), DEADLINE, || {
                let j = self.job(id);
                want.iter().any(|s| j["state"] == *s).then_some(j)
            })
    }

    fn wait_finished(&self, id: &str) -> Value {
        self.wait_state(
            id,
            &["succeeded", "failed", "cancelled", "timed-out", "lost"],
        )
    }

    /// `berth logs`: the job's stdout on stdout, its stderr on stderr; both here.
    fn logs(&self, id: &str) -> String {
        let run = self.alice(&["logs", id]).ok();
        run.stdout + &run.stderr
    }

    /// The one container of job `id`.
    fn container_of(&self, id: &str) -> String {
        self.centre
            .eventually(&format!("the container of job {id}"), DEADLINE, || {
                containers(&format!("berth.job={id}")).into_iter().next()
            })
    }

    fn scratch(&self, id: &str) -> PathBuf {
        self.centre
            .agent_state_dir(&self.node)
            .join("jobs")
            .join(id)
    }

    /// Lets a job waiting for `/scratch/go` go on.
    fn release(&self, id: &str) {
        std::fs::write(self.scratch(id).join("go"), b"").expect("write /scratch/go");
    }

    /// Waits until the agent has recorded, in its state directory, that the
    /// scheduler stored every line job `id` has written so far (`lines` of them).
    ///
    /// The agent saves that position a few milliseconds after the scheduler
    /// acknowledges a line; a kill inside that window repeats the line after the
    /// restart (output is delivered at least once, see `runtime/docker/logs.rs`).
    /// Killing only after the position is saved checks the exact resumption.
    fn wait_log_position_saved(&self, id: &str, lines: usize) {
        let cid = self.container_of(id);
        let file = self
            .centre
            .agent_state_dir(&self.node)
            .join("docker-runtime")
            .join(format!("{id}.logpos"));
        self.centre.eventually(
            &format!("the agent to record that {lines} lines of job {id} are stored"),
            DEADLINE,
            || {
                let out = Command::new("docker")
                    .args(["logs", "--timestamps", &cid])
                    .output()
                    .ok()?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                let stamps: Vec<i64> = text
                    .lines()
                    .filter_map(|l| l.split_once(' '))
                    .filter_map(|(t, _)| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .filter_map(|t| t.timestamp_nanos_opt())
                    .collect();
                let last = *stamps.iter().max()?;
                let saved: Value = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
                (stamps.len() == lines && saved["time_ns"].as_i64()? >= last).then_some(())
            },
        );
    }

    fn wait_no_container(&self, id: &str) {
        self.centre
            .eventually(&format!("no container left for job {id}"), DEADLINE, || {
                containers(&format!("berth.job={id}"))
                    .is_empty()
                    .then_some(())
            });
    }
}

/// A job that prints `before`, waits for `/scratch/go`, prints `after` and exits `code`.
fn gated(code: u8) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "echo before; echo to-stderr >&2; \
             echo \"visible=$NVIDIA_VISIBLE_DEVICES|$CUDA_VISIBLE_DEVICES|$BERTH_DEVICES\"; \
             while [ ! -e /scratch/go ]; do sleep 0.1; done; echo after; exit {code}"
        ),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_container_job_runs_hardened_prints_and_exits_with_its_code() {
    let w = World::new("hard", 4);
    let id = w.submit(IMAGE, 2, &args(&gated(3)));
    let job = w.wait_state(&id, &["running"]);
    let devices = string_set(&job["devices"]);
    assert_eq!(devices.len(), 2, "{job}");

    let cid = w.container_of(&id);
    let raw = docker(&["inspect", &cid]).expect("docker inspect");
    let inspect: Value = serde_json::from_str::<Value>(&raw).expect("inspect json")[0].clone();
    let host = &inspect["HostConfig"];
    assert_eq!(host["Privileged"], false, "{host}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{host}");
    assert!(
        host["CapAdd"].as_array().is_none_or(Vec::is_empty),
        "no capability added: {host}"
    );
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"]),
        "{host}"
    );
    assert_eq!(host["NetworkMode"], "bridge", "{host}");
    assert!(
        !matches!(host["PidMode"].as_str(), Some("host")),
        "private PID namespace: {host}"
    );
    assert_eq!(host["IpcMode"], "private", "{host}");
    assert!(host["Binds"].as_array().is_none_or(Vec::is_empty), "{host}");
    // 2 of 4 devices: half of the 2 CPUs and 2 GiB the agent was told to share.
    assert_eq!(host["NanoCpus"], 1_000_000_000i64, "{host}");
    assert_eq!(host["Memory"], 1024i64 << 20, "{host}");
    assert_eq!(host["PidsLimit"], 8192, "{host}");
    assert!(
        host["DeviceRequests"].as_array().is_none_or(Vec::is_empty),
        "simulated devices need no device request: {host}"
    );
    let mounts = inspect["Mounts"].as_array().expect("Mounts");
    assert_eq!(mounts.len(), 1, "only the scratch dir: {mounts:?}");
    assert_eq!(mounts[0]["Destination"], "/scratch");
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(
        PathBuf::from(mounts[0]["Source"].as_str().unwrap()),
        w.scratch(&id)
    );
    let labels = &inspect["Config"]["Labels"];
    assert_eq!(labels["berth.managed"], "true", "{labels}");
    assert_eq!(labels["berth.job"], id.as_str(), "{labels}");
    assert_eq!(labels["berth.node"], w.node.as_str(), "{labels}");
    assert_eq!(labels["berth.org"], "org-a", "{labels}");
    assert!(
        labels["berth.generation"]
            .as_str()
            .is_some_and(|g| g.parse::<u64>().is_ok()),
        "{labels}"
    );
    assert_eq!(inspect["Name"], format!("/berth-{id}"));

    w.release(&id);
    let done = w.wait_finished(&id);
    assert_eq!(done["exit_code"], 3, "{done}");
    assert_eq!(done["state"], "failed", "{done}");
    let logs = w.logs(&id);
    assert!(
        logs.contains("before\n") && logs.contains("after\n"),
        "{logs}"
    );
    let visible: BTreeSet<String> = logs
        .lines()
        .find_map(|l| l.strip_prefix("visible="))
        .expect("visible= line")
        .split('|')
        .flat_map(|part| part.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(visible, devices, "only its devices, in all three variables");
    w.wait_no_container(&id);
}

#[test]
fn an_image_that_makes_all_gpus_visible_still_sees_only_its_own() {
    let w = World::new("visible", 4);
    let run = w
        .alice(&[
            "submit",
            "--class",
            CLASS,
            "--count",
            "1",
            "--image",
            VISIBLE_ALL,
            "--wait",
            "--",
            "sh",
            "-c",
            "echo \"nv=$NVIDIA_VISIBLE_DEVICES\"; echo \"cuda=$CUDA_VISIBLE_DEVICES\"",
        ])
        .ok();
    let id = w
        .centre
        .json(&w.alice, &["jobs", "--all"])
        .as_array()
        .and_then(|a| a.first().cloned())
        .expect("one job")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let devices = string_set(&w.job(&id)["devices"]);
    assert_eq!(devices.len(), 1);
    let uuid = devices.iter().next().unwrap();
    assert!(
        run.stdout.contains(&format!("nv={uuid}\n")),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains(&format!("cuda={uuid}\n")),
        "{}",
        run.describe()
    );
    assert!(!run.stdout.contains("=all"), "{}", run.describe());
    w.wait_no_container(&id);
}

#[test]
fn privileges_host_mounts_and_missing_images_are_refused_clearly() {
    let w = World::new("refuse", 2);
    let base = ["submit", "--class", CLASS, "--image", IMAGE];
    for (extra, field) in [
        (&["--privileged"][..], "privileged"),
        (&["--mount", "/etc:/x"][..], "mount"),
        (&["--cap-add", "SYS_ADMIN"][..], "cap"),
        (&["--network", "host"][..], "network"),
    ] {
        let mut a = base.to_vec();
        a.extend(extra);
        a.extend(["--", "true"]);
        let run = w.alice(&a).failed();
        assert!(
            run.err_lower().contains(field),
            "the error names {field}:\n{}",
            run.describe()
        );
    }
    assert!(
        w.centre
            .json(&w.alice, &["jobs", "--all"])
            .as_array()
            .is_none_or(Vec::is_empty),
        "nothing was submitted"
    );

    let id = w.submit("berth-test/not-there:never", 1, &["true"]);
    let done = w.wait_finished(&id);
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(
            "berth-test/not-there:never not found locally, and this node does not pull images"
        ),
        "{done}"
    );
    assert!(containers(&format!("berth.job={id}")).is_empty());
}

#[test]
fn a_killed_agent_re_adopts_its_containers_and_loses_no_output() {
    let mut w = World::new("restart", 2);
    // One job ends while the agent is away, the other runs on after it is back.
    let away = w.submit(IMAGE, 1, &args(&gated(7)));
    let across = w.submit(IMAGE, 1, &args(&gated(0)));
    for id in [&away, &across] {
        w.wait_state(id, &["running"]);
        w.centre.eventually("the first line stored", DEADLINE, || {
            w.logs(id).contains("before\n").then_some(())
        });
        w.wait_log_position_saved(id, 3);
    }
    let node = w.node.clone();
    w.centre.kill_agent(&node);

    w.release(&away);
    let away_cid = w.container_of(&away);
    w.centre.eventually(
        "the container to exit while the agent is away",
        DEADLINE,
        || {
            let state = docker(&["inspect", "-f", "{{.State.Status}}", &away_cid])?;
            (state.trim() == "exited").then_some(())
        },
    );
    let across_cid = w.container_of(&across);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &across_cid]).map(|s| s.trim().to_owned()),
        Some("true".to_owned()),
        "containers outlive a killed agent"
    );

    w.start_agent(2);
    let done = w.wait_finished(&away);
    assert_eq!(done["exit_code"], 7, "the real exit code: {done}");
    w.wait_state(&across, &["running"]);
    w.release(&across);
    let done = w.wait_finished(&across);
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(done["state"], "succeeded", "{done}");

    for id in [&away, &across] {
        let logs = w.logs(id);
        for line in ["before", "to-stderr", "after"] {
            assert_eq!(
                logs.lines().filter(|l| *l == line).count(),
                1,
                "{line:?} exactly once in the logs of {id}:\n{logs}"
            );
        }
        w.wait_no_container(id);
    }
}

#[test]
fn a_gracefully_stopped_agent_leaves_containers_running_for_the_next_one() {
    let mut w = World::new("upgrade", 1);
    let id = w.submit(IMAGE, 1, &args(&gated(5)));
    w.wait_state(&id, &["running"]);
    w.centre.eventually("the first line stored", DEADLINE, || {
        w.logs(&id).contains("before\n").then_some(())
    });
    let node = w.node.clone();
    w.centre.stop_agent(&node);
    let cid = w.container_of(&id);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &cid]).map(|s| s.trim().to_owned()),
        Some("true".to_owned()),
        "a planned agent restart does not stop the job"
    );
    w.start_agent(1);
    w.wait_state(&id, &["running"]);
    w.release(&id);
    let done = w.wait_finished(&id);
    assert_eq!(done["exit_code"], 5, "{done}");
    let logs = w.logs(&id);
    for line in ["before", "after"] {
        assert_eq!(
            logs.lines().filter(|l| *l == line).count(),
            1,
            "{line:?} once in:\n{logs}"
        );
    }
    w.wait_no_container(&id);
}

#[test]
fn cancel_stops_the_container_and_leaves_nothing_behind() {
    let w = World::new("cancel", 1);
    let id = w.submit(
        IMAGE,
        1,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 143' TERM; echo started; while :; do sleep 0.1; done",
        ],
    );
    w.wait_state(&id, &["running"]);
    w.container_of(&id);
    w.centre.eventually("the job's first line", DEADLINE, || {
        w.logs(&id).contains("started").then_some(())
    });
    w.alice(&["cancel", &id]).ok();
    let done = w.wait_finished(&id);
    assert_eq!(done["state"], "cancelled", "{done}");
    w.wait_no_container(&id);
    let logs = w.logs(&id);
    assert!(
        logs.contains("got-term"),
        "SIGTERM reached the job first:\n{logs}"
    );
}
