//! Hostile job specs against the real Docker engine, as a compromised or buggy scheduler
//! could send them to a node: the `docker` runtime either refuses them before anything
//! reaches the engine, or neutralises them, which each test proves by inspecting the
//! real container through the Docker Engine API and from inside it.
//!
//! The scheduler refuses all of these at submit (proto/src/model.rs, tested in
//! cli/tests/hostile.rs); here the node is tested on its own, as defence in depth.
//! Needs a Docker engine and the test images, built locally on first use
//! (`scripts/build-test-images.sh`).

use berth_agent::logs::{LogSink, LogStream};
use berth_agent::runtime::options::DatasetSource;
use berth_agent::runtime::{
    AssignedDevice, DatasetRequest, JobSpec, Runtime, RuntimeEvent, RuntimeOptions,
};
use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::ListContainersOptionsBuilder;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::sync::mpsc;

const IMAGE: &str = "berth-test/busybox:latest";
/// Sets `ENV NVIDIA_VISIBLE_DEVICES=all`, as CUDA base images do.
const VISIBLE_ALL: &str = "berth-test/visible-all:latest";
/// Failure guard only: every wait ends on an event long before this.
const GUARD: Duration = Duration::from_secs(90);

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

/// A docker runtime of its own node, with one approved read-only dataset, and the
/// engine to inspect what it creates.
struct Node {
    runtime: Arc<dyn Runtime>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    engine: Docker,
    name: String,
    dataset_dir: tempfile::TempDir,
    state_dir: tempfile::TempDir,
}

impl Node {
    fn new(tag: &str) -> Self {
        ensure_images();
        let name = format!("hostile-{tag}-{}", std::process::id());
        let state_dir = tempfile::tempdir().expect("state dir");
        let dataset_dir = tempfile::tempdir().expect("dataset dir");
        std::fs::write(dataset_dir.path().join("data.txt"), b"shared").expect("dataset file");
        let dataset: DatasetSource = format!("shared={}", dataset_dir.path().display())
            .parse()
            .expect("dataset");
        let (tx, events) = mpsc::unbounded_channel();
        let options = RuntimeOptions {
            node: name.clone(),
            node_devices: 2,
            node_cpus: Some(1.0),
            node_memory_bytes: Some(512 << 20),
            datasets: BTreeMap::from([(dataset.name.clone(), dataset)]),
            pull_images: false,
        };
        let runtime = berth_agent::runtime::open_with("docker", state_dir.path(), tx, options)
            .expect("docker runtime");
        let engine = Docker::connect_with_unix_defaults().expect("the Docker engine's socket");
        Self {
            runtime,
            events,
            engine,
            name,
            dataset_dir,
            state_dir,
        }
    }

    /// A job that prints its view of itself, then waits for `/scratch/go`.
    fn spec(&self, job_id: &str) -> JobSpec {
        let report = "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; \
                      env | sort; \
                      if touch /datasets/shared/x 2>/dev/null; then echo dataset=writable; \
                      else echo dataset=read-only; fi; \
                      echo big=${#BIG}; \
                      while [ ! -e /scratch/go ]; do sleep 0.1; done";
        JobSpec {
            job_id: job_id.to_owned(),
            generation: 1,
            image: IMAGE.to_owned(),
            command: vec!["sh".into(), "-c".into(), report.into()],
            env: BTreeMap::new(),
            devices: vec!["npu-0".into()],
            deadline_ms: None,
            grace: Duration::from_secs(2),
            org: "org-a".into(),
            scratch_dir: self.state_dir.path().join("jobs").join(job_id),
            // The node's two NPUs; only npu-0 is the job's. /dev/zero and /dev/full
            // stand in for their device files (fakes at the hardware edge only).
            assigned: vec![
                AssignedDevice {
                    uuid: "npu-0".into(),
                    vendor: "rebellions".into(),
                    device_nodes: vec!["/dev/zero".into()],
                },
                AssignedDevice {
                    uuid: "npu-1".into(),
                    vendor: "rebellions".into(),
                    device_nodes: vec!["/dev/full".into()],
                },
            ],
            datasets: Vec::new(),
            network: String::new(),
        }
    }

    async fn inspect(&self, job_id: &str) -> ContainerInspectResponse {
        self.engine
            .inspect_container(&format!("berth-{job_id}"), None)
            .await
            .expect("inspect the job's container")
    }

    /// Containers of this node, any state.
    async fn containers(&self) -> usize {
        let filters = HashMap::from([("label", vec![format!("berth.node={}", self.name)])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.engine
            .list_containers(Some(options))
            .await
            .expect("list containers")
            .len()
    }

    /// Starts `spec`, waits until it runs and has printed `until`; returns its output so far
    /// and the receiver of the rest.
    async fn run_until(
        &mut self,
        spec: JobSpec,
        until: &str,
    ) -> (String, mpsc::Receiver<(LogStream, Vec<u8>)>) {
        let (sink, mut logs) = LogSink::channel(64);
        let job_id = spec.job_id.clone();
        self.runtime.start(spec, sink).await.expect("started");
        match tokio::time::timeout(GUARD, self.events.recv()).await {
            Ok(Some(RuntimeEvent::Running { job_id: id, .. })) => assert_eq!(id, job_id),
            other => panic!("expected Running, got {other:?}"),
        }
        let mut out = String::new();
        while !out.contains(until) {
            match tokio::time::timeout(GUARD, logs.recv()).await {
                Ok(Some((_, data))) => out.push_str(&String::from_utf8_lossy(&data)),
                other => panic!("output ended before {until:?} ({other:?}):\n{out}"),
            }
        }
        (out, logs)
    }

    /// Lets the job end and waits for its exit and the removal of its container.
    async fn finish(&mut self, job_id: &str) {
        let scratch = self.state_dir.path().join("jobs").join(job_id);
        std::fs::write(scratch.join("go"), b"").expect("write /scratch/go");
        match tokio::time::timeout(GUARD, self.events.recv()).await {
            Ok(Some(RuntimeEvent::Exited { job_id: id, exit })) => {
                assert_eq!(id, job_id);
                assert_eq!(exit.exit_code, 0, "{exit:?}");
            }
            other => panic!("expected Exited, got {other:?}"),
        }
        self.runtime.remove(job_id).await.expect("remove");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Whatever a failed test left of this node's containers.
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=berth.node={}", self.name),
            ])
            .output();
        if let Ok(out) = out {
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(ids)
                    .output();
            }
        }
    }
}

/// `KEY=VALUE` entries of `env` whose key is `key`.
fn values<'a>(env: &'a [String], key: &str) -> Vec<&'a str> {
    env.iter()
        .filter_map(|e| e.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn device_variable_tricks_and_image_env_are_overridden_and_the_container_is_locked_down() {
    let mut node = Node::new("env");
    let mut spec = node.spec("hostile-env");
    spec.image = VISIBLE_ALL.to_owned();
    for (k, v) in [
        ("NVIDIA_VISIBLE_DEVICES", "all"),
        ("CUDA_VISIBLE_DEVICES", "0,1,2,3"),
        ("BERTH_DEVICES", "npu-0,npu-1"),
        ("BERTH_JOB_ID", "someone-else"),
        ("FOO", "bar"),
    ] {
        spec.env.insert(k.into(), v.into());
    }
    // As large a variable as the scheduler's 64 KiB cap lets through.
    spec.env.insert("BIG".into(), "x".repeat(60 * 1024));
    spec.datasets = vec![DatasetRequest {
        name: "shared".into(),
        read_write: true,
    }];
    let (out, _logs) = node.run_until(spec, "big=").await;

    let c = node.inspect("hostile-env").await;
    let h = c.host_config.as_ref().expect("HostConfig");
    assert_eq!(h.privileged, Some(false));
    assert_eq!(h.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(h.cap_add.as_ref().is_none_or(Vec::is_empty), "{h:?}");
    assert_eq!(
        h.security_opt.as_deref(),
        Some(&["no-new-privileges".to_owned()][..])
    );
    assert_eq!(h.network_mode.as_deref(), Some("bridge"));
    assert_eq!(h.ipc_mode.as_deref(), Some("private"));
    assert!(h.binds.as_ref().is_none_or(Vec::is_empty), "{h:?}");
    assert!(
        h.device_requests.as_ref().is_none_or(Vec::is_empty),
        "{h:?}"
    );
    assert!(
        h.device_cgroup_rules.as_ref().is_none_or(Vec::is_empty),
        "{h:?}"
    );
    let devices: Vec<(Option<&str>, Option<&str>)> = h
        .devices
        .iter()
        .flatten()
        .map(|d| (d.path_on_host.as_deref(), d.path_in_container.as_deref()))
        .collect();
    assert_eq!(
        devices,
        [(Some("/dev/zero"), Some("/dev/zero"))],
        "only the job's own NPU"
    );

    // Mounts as the engine reports them: the scratch directory, and the dataset
    // read-only although the job asked to write (the node does not allow it).
    let mut mounts: Vec<(String, String, bool)> = c
        .mounts
        .iter()
        .flatten()
        .map(|m| {
            (
                m.destination.clone().unwrap_or_default(),
                m.source.clone().unwrap_or_default(),
                m.rw.unwrap_or(true),
            )
        })
        .collect();
    mounts.sort();
    let scratch = node.state_dir.path().join("jobs").join("hostile-env");
    assert_eq!(
        mounts,
        [
            (
                "/datasets/shared".to_owned(),
                node.dataset_dir.path().display().to_string(),
                false
            ),
            ("/scratch".to_owned(), scratch.display().to_string(), true),
        ]
    );

    // The environment as the engine holds it (the image's, overridden by the job's).
    let env = c.config.as_ref().and_then(|c| c.env.clone()).expect("Env");
    assert_eq!(values(&env, "NVIDIA_VISIBLE_DEVICES"), ["npu-0"], "{env:?}");
    assert_eq!(values(&env, "CUDA_VISIBLE_DEVICES"), ["npu-0"]);
    assert_eq!(values(&env, "BERTH_DEVICES"), ["npu-0"]);
    assert_eq!(values(&env, "BERTH_JOB_ID"), ["hostile-env"]);
    assert_eq!(values(&env, "FOO"), ["bar"]);

    // And as the job sees it, from inside.
    for line in [
        "NVIDIA_VISIBLE_DEVICES=npu-0\n",
        "CUDA_VISIBLE_DEVICES=npu-0\n",
        "BERTH_DEVICES=npu-0\n",
        "BERTH_JOB_ID=hostile-env\n",
        "CapEff:\t0000000000000000\n",
        "CapBnd:\t0000000000000000\n",
        "NoNewPrivs:\t1\n",
        "dataset=read-only\n",
        "big=61440\n",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
    assert!(!out.contains("=all"), "{out}");
    node.finish("hostile-env").await;
    assert_eq!(node.containers().await, 0);
}

#[tokio::test]
async fn specs_the_engine_would_misread_never_reach_it() {
    let node = Node::new("refuse");
    /// A case: its job id, what makes it hostile, and what its refusal must say.
    type Case = (&'static str, Box<dyn Fn(&mut JobSpec)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "flag-image",
            Box::new(|s| s.image = "--privileged".into()),
            "invalid image:",
        ),
        (
            "volume-image",
            Box::new(|s| s.image = "-v".into()),
            "invalid image:",
        ),
        (
            "shadow-env",
            Box::new(|s| {
                s.env.insert("NVIDIA_VISIBLE_DEVICES=all".into(), "".into());
            }),
            r#"invalid env: "NVIDIA_VISIBLE_DEVICES=all" is not a valid variable name"#,
        ),
        (
            "nul-env",
            Box::new(|s| {
                s.env.insert("FOO".into(), "a\0b".into());
            }),
            "invalid env.FOO",
        ),
        (
            "host-network",
            Box::new(|s| s.network = "host".into()),
            "network \"host\" is not allowed",
        ),
        (
            "other-device",
            Box::new(|s| s.devices.push("GPU-of-another-node".into())),
            "device GPU-of-another-node is not among this node's devices",
        ),
        (
            "unapproved-dataset",
            Box::new(|s| {
                s.datasets = vec![DatasetRequest {
                    name: "etc".into(),
                    read_write: true,
                }]
            }),
            "dataset \"etc\" is not available",
        ),
        (
            "traversal-id",
            Box::new(|s| {
                s.job_id = "../../etc".into();
                s.scratch_dir = PathBuf::from("/etc");
            }),
            "invalid job id",
        ),
    ];
    for (id, hostile, want) in cases {
        let mut spec = node.spec(id);
        hostile(&mut spec);
        let (sink, _logs) = LogSink::channel(4);
        let err = node.runtime.start(spec, sink).await.expect_err(id);
        assert!(err.0.contains(want), "{id}: {err}");
        assert!(
            !node.state_dir.path().join("jobs").join(id).exists(),
            "{id}: nothing was prepared for a refused job"
        );
    }
    assert_eq!(node.containers().await, 0, "no container was created");
}
