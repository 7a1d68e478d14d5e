//! The agent's handling of a heartbeat reply, as `agent.rs` does it: the pure reconcile
//! (`node-agent/src/reconcile.rs`) of the reply against what the agent runs, then, for
//! each job it starts, the runtime spec (`spec_of`, `assigned_devices`) and the Docker
//! container configuration (`runtime/docker/spec.rs`). The reply is decoded from raw
//! bytes or built from pools of hostile values (reserved and malformed variables, flag
//! images, unsafe ids, devices of other nodes, unapproved datasets).
//!
//! Invariants: a stale reply starts and stops nothing for want of desire; a job is
//! started only if the reply lists it, the agent does not know it, it was never
//! forgotten, its id is safe, its deadline is ahead and its spec is one a process can
//! receive; stops, rejections and forgets follow the documented rules; and a container
//! is never privileged, keeps every capability dropped and `no-new-privileges`, mounts
//! nothing but its scratch directory and the node's approved datasets, gets only device
//! nodes and GPUs of its own listed devices that the node has, and sees Berth's device
//! variables exactly once each with Berth's values.

#![no_main]

use arbitrary::{Result, Unstructured};
use berth_agent::devices::DeviceInfo;
use berth_agent::reconcile::{
    Action, Desired, Inputs, LocalJob, LocalState, StopReason, reconcile,
};
use berth_agent::runtime::docker::spec::{
    DATASETS_MOUNT, NodeResources, SCRATCH_MOUNT, container_config,
};
use berth_agent::runtime::options::DatasetSource;
use berth_agent::runtime::{assigned_devices, validate_job_id};
use berth_fuzz::{BAD_IMAGES, DEVICES, ENV_KEYS, GOOD_IMAGES, JOB_IDS, edgy_i64, pick};
use berth_proto::model::is_env_name;
use berth_proto::time::{ms_to_dur, ms_to_ts, ts_to_ms};
use berth_proto::v1::{DatasetMount, DesiredJob, HeartbeatResponse};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const NOW: i64 = 1_780_000_000_000;
const STATE_DIR: &str = "/var/lib/berth-agent";
const NODE: &str = "n1";
const RESOURCES: NodeResources = NodeResources {
    cpus: 16.0,
    memory_bytes: 64 << 30,
    devices: 8,
};

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let applied: u64 = *u.choose(&[0, 1, 5, u64::MAX])?;
    let now = edgy_i64(&mut u, &[NOW])?;
    let response = if u.ratio(1, 4)? {
        let len = u.arbitrary_len::<u8>()?;
        match HeartbeatResponse::decode(u.bytes(len)?) {
            Ok(r) => r,
            Err(_) => return Ok(()),
        }
    } else {
        arb_response(&mut u, applied, now)?
    };
    let mut local = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..u.int_in_range(0..=5u8)? {
        let job_id = pick(&mut u, JOB_IDS)?;
        if !seen.insert(job_id.clone()) {
            continue;
        }
        local.push(LocalJob {
            job_id,
            state: *u.choose(&[
                LocalState::Starting,
                LocalState::Running,
                LocalState::Stopping,
                LocalState::Exiting,
                LocalState::Finished,
            ])?,
            deadline_ms: if u.arbitrary()? {
                Some(edgy_i64(&mut u, &[now])?)
            } else {
                None
            },
            grace: Duration::from_millis(u.int_in_range(0..=60_000)?),
        });
    }
    let forgotten: HashSet<String> = (0..u.int_in_range(0..=3u8)?)
        .map(|_| pick(&mut u, JOB_IDS))
        .collect::<Result<_>>()?;
    let node_devices = node_devices(&mut u)?;
    let datasets = approved_datasets();
    check(
        &response,
        applied,
        now,
        &local,
        &forgotten,
        &node_devices,
        &datasets,
    );
    Ok(())
}

fn arb_response(u: &mut Unstructured<'_>, applied: u64, now: i64) -> Result<HeartbeatResponse> {
    let mut jobs = Vec::new();
    for _ in 0..u.int_in_range(0..=5u8)? {
        let mut job = DesiredJob {
            job_id: pick(u, JOB_IDS)?,
            image: pick(u, &[GOOD_IMAGES, BAD_IMAGES].concat())?,
            org: pick(u, &["acme", "other"])?,
            network: pick(u, &["", "bridge", "none", "host", "container:x"])?,
            ..Default::default()
        };
        for _ in 0..u.int_in_range(0..=3u8)? {
            job.command
                .push(pick(u, &["sh", "-c", "true", "a\0b", "--privileged"])?);
        }
        for _ in 0..u.int_in_range(0..=4u8)? {
            let k = pick(u, ENV_KEYS)?;
            let v = pick(u, &["x", "all", "0,1,2,3", "void", "a\0b", ""])?;
            job.env.insert(k, v);
        }
        for _ in 0..u.int_in_range(0..=3u8)? {
            job.devices.push(pick(u, DEVICES)?);
        }
        if u.arbitrary()? {
            job.deadline = Some(ms_to_ts(edgy_i64(
                u,
                &[now, now.saturating_add(3_600_000)],
            )?));
        }
        if u.arbitrary()? {
            job.grace = Some(ms_to_dur(edgy_i64(u, &[0, 10_000, -1])?));
        }
        for _ in 0..u.int_in_range(0..=2u8)? {
            job.datasets.push(DatasetMount {
                name: pick(u, &["imagenet", "out", "secret", "../out", "/etc"])?,
                read_write: u.arbitrary()?,
            });
        }
        jobs.push(job);
    }
    Ok(HeartbeatResponse {
        generation: applied.saturating_add_signed(u.int_in_range(-1..=2)?),
        jobs,
        lease: None,
        acknowledged: (0..u.int_in_range(0..=3u8)?)
            .map(|_| pick(u, JOB_IDS))
            .collect::<Result<_>>()?,
        node_state: u.arbitrary()?,
        more: u.arbitrary()?,
        // The scheduler's clock: absent (an older scheduler), near the agent's, or odd.
        now: match u.int_in_range(0..=2u8)? {
            0 => None,
            _ => Some(ms_to_ts(edgy_i64(
                u,
                &[
                    now,
                    now.saturating_sub(300_000),
                    now.saturating_add(300_000),
                ],
            )?)),
        },
        // The digest of the inventory the scheduler holds: none, or any.
        inventory_digest: u.arbitrary()?,
    })
}

/// The node's own devices: a few of the pool, with their vendors' device nodes.
fn node_devices(u: &mut Unstructured<'_>) -> Result<Vec<DeviceInfo>> {
    let all = [
        ("GPU-a", "nvidia", None),
        ("GPU-b", "nvidia", None),
        ("npu-0", "rebellions", Some("/dev/rbln0")),
        ("npu-1", "furiosa", Some("/dev/rngd/npu1mgmt")),
        ("sim-0", "sim", None),
    ];
    let mut out = Vec::new();
    for (i, (uuid, vendor, node)) in all.into_iter().enumerate() {
        if u.arbitrary()? {
            out.push(DeviceInfo {
                uuid: uuid.to_owned(),
                index: i as u32,
                class: "c".to_owned(),
                vendor: vendor.to_owned(),
                model: "m".to_owned(),
                memory_bytes: 0,
                pci_bus_id: String::new(),
                device_nodes: node.map(PathBuf::from).into_iter().collect(),
            });
        }
    }
    Ok(out)
}

fn approved_datasets() -> BTreeMap<String, DatasetSource> {
    ["imagenet=/data/imagenet", "out=/data/out:rw"]
        .iter()
        .map(|d| {
            let d: DatasetSource = d.parse().expect("dataset");
            (d.name.clone(), d)
        })
        .collect()
}

fn check(
    response: &HeartbeatResponse,
    applied: u64,
    now: i64,
    local: &[LocalJob],
    forgotten: &HashSet<String>,
    node_devices: &[DeviceInfo],
    datasets: &BTreeMap<String, DatasetSource>,
) {
    let desired = Desired {
        generation: response.generation,
        jobs: response.jobs.clone(),
    };
    let plan = reconcile(&Inputs {
        applied_generation: applied,
        desired: Some(&desired),
        acknowledged: &response.acknowledged,
        local,
        forgotten,
        now_ms: now,
    });
    let stale = response.generation < applied;
    assert_eq!(plan.stale, stale);
    assert_eq!(
        plan.generation,
        if stale { applied } else { response.generation }
    );
    let local_of = |id: &str| local.iter().find(|j| j.job_id == id);
    let listed = |id: &str| !stale && response.jobs.iter().any(|j| j.job_id == id);

    let mut started = HashSet::new();
    let mut decided = HashSet::new();
    for action in &plan.actions {
        match action {
            Action::Start(job) => {
                assert!(!stale, "a stale reply starts nothing");
                let id = job.job_id.as_str();
                assert!(started.insert(id), "{id} started twice");
                assert!(decided.insert(id), "{id} started and rejected");
                assert!(
                    response.jobs.iter().any(|j| j == job),
                    "started exactly as the reply says"
                );
                assert!(local_of(id).is_none(), "{id} is already known");
                assert!(!forgotten.contains(id), "{id} finished and was forgotten");
                assert_eq!(validate_job_id(id), Ok(()));
                assert!(job.deadline.as_ref().is_none_or(|d| ts_to_ms(d) > now));
                check_container(job, plan.generation, node_devices, datasets);
            }
            Action::Reject { job_id, message } => {
                assert!(listed(job_id), "{job_id} rejected but not listed");
                assert!(decided.insert(job_id.as_str()), "{job_id} decided twice");
                assert!(local_of(job_id).is_none() && !forgotten.contains(job_id));
                assert!(!message.is_empty());
            }
            Action::Stop {
                job_id,
                grace,
                reason,
            } => {
                let job = local_of(job_id).expect("stops only jobs it runs");
                assert!(matches!(
                    job.state,
                    LocalState::Starting | LocalState::Running
                ));
                assert_eq!(*grace, job.grace);
                match reason {
                    StopReason::Deadline => assert!(job.deadline_ms.is_some_and(|d| d <= now)),
                    StopReason::NotDesired => {
                        assert!(!stale && !listed(job_id), "{job_id} is still wanted");
                        assert!(job.deadline_ms.is_none_or(|d| d > now));
                    }
                }
            }
            Action::Forget(job_id) => {
                let job = local_of(job_id).expect("forgets only jobs it knows");
                assert_eq!(job.state, LocalState::Finished);
                assert!(response.acknowledged.contains(job_id));
            }
        }
    }
    // Whatever must happen does: past-deadline jobs stop, acknowledged finished ones go.
    for job in local {
        let stopped = plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Stop { job_id, .. } if *job_id == job.job_id));
        let active = matches!(job.state, LocalState::Starting | LocalState::Running);
        if active && job.deadline_ms.is_some_and(|d| d <= now) {
            assert!(stopped, "{} is past its deadline", job.job_id);
        }
        if active && !stale && !listed(&job.job_id) {
            assert!(stopped, "{} is no longer wanted", job.job_id);
        }
        if job.state == LocalState::Finished && response.acknowledged.contains(&job.job_id) {
            assert!(
                plan.actions
                    .iter()
                    .any(|a| matches!(a, Action::Forget(id) if *id == job.job_id))
            );
        }
    }
}

/// The container a started job gets, as the Docker runtime would create it.
fn check_container(
    job: &DesiredJob,
    generation: u64,
    node_devices: &[DeviceInfo],
    datasets: &BTreeMap<String, DatasetSource>,
) {
    // What a process or the engine would refuse, or read as something else, never starts.
    assert!(job.env.keys().all(|k| is_env_name(k)), "{:?}", job.env);
    assert!(!job.env.values().any(|v| v.contains('\0')));
    assert!(!job.command.iter().any(|a| a.contains('\0')));
    assert!(
        job.image.is_empty() || berth_proto::image::check(&job.image).is_ok(),
        "{:?}",
        job.image
    );

    let mut spec = berth_agent::spec_of(job, generation, Path::new(STATE_DIR));
    spec.assigned = assigned_devices(&spec.devices, node_devices);
    let Ok(config) = container_config(&spec, NODE, &RESOURCES, datasets) else {
        return;
    };
    let h = config.host_config.as_ref().expect("host config");
    assert_eq!(h.privileged, Some(false));
    assert_eq!(h.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert_eq!(h.cap_add.as_deref(), Some(&[][..]));
    assert_eq!(
        h.security_opt.as_deref(),
        Some(&["no-new-privileges".to_owned()][..])
    );
    assert!(matches!(h.network_mode.as_deref(), Some("bridge" | "none")));
    assert_eq!(h.ipc_mode.as_deref(), Some("private"));
    assert_eq!(h.pid_mode.as_deref(), Some(""));
    assert_eq!(h.binds.as_deref(), Some(&[][..]));
    assert_eq!(h.volumes_from.as_deref(), Some(&[][..]));
    assert_eq!(h.device_cgroup_rules.as_deref(), Some(&[][..]));

    let mounts = h.mounts.as_deref().expect("mounts");
    let scratch = Path::new(STATE_DIR).join("jobs").join(&job.job_id);
    assert_eq!(
        mounts[0].source.as_deref(),
        Some(scratch.to_str().expect("utf-8"))
    );
    assert_eq!(mounts[0].target.as_deref(), Some(SCRATCH_MOUNT));
    for m in &mounts[1..] {
        let target = m.target.as_deref().expect("target");
        let name = target
            .strip_prefix(DATASETS_MOUNT)
            .and_then(|t| t.strip_prefix('/'))
            .expect("datasets only");
        let approved = datasets.get(name).expect("an approved dataset");
        assert_eq!(m.source.as_deref(), approved.host_path.to_str());
        // Writable only where the node allows it and the job asked (a name given twice
        // takes its first request).
        let asked_rw = job.datasets.iter().any(|d| d.name == name && d.read_write);
        if m.read_only != Some(true) {
            assert!(asked_rw && approved.allow_write, "{m:?} must be read-only");
        }
    }

    let own: Vec<&DeviceInfo> = node_devices
        .iter()
        .filter(|d| job.devices.contains(&d.uuid))
        .collect();
    for request in h.device_requests.iter().flatten() {
        for id in request.device_ids.iter().flatten() {
            assert!(
                own.iter().any(|d| &d.uuid == id && d.vendor == "nvidia"),
                "GPU {id} is not the job's"
            );
        }
    }
    for mapping in h.devices.iter().flatten() {
        let path = PathBuf::from(mapping.path_on_host.as_deref().expect("host path"));
        assert!(
            own.iter().any(|d| d.device_nodes.contains(&path)),
            "device node {path:?} is not the job's"
        );
        assert_eq!(mapping.path_in_container, mapping.path_on_host);
    }

    let env = config.env.as_deref().expect("env");
    let devices = job.devices.join(",");
    let nvidia = if devices.is_empty() {
        "void"
    } else {
        devices.as_str()
    };
    for (key, want) in [
        ("BERTH_JOB_ID", job.job_id.as_str()),
        ("BERTH_DEVICES", devices.as_str()),
        ("CUDA_VISIBLE_DEVICES", devices.as_str()),
        ("NVIDIA_VISIBLE_DEVICES", nvidia),
    ] {
        let values: Vec<&str> = env
            .iter()
            .filter_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
            .collect();
        assert_eq!(values, [want], "{key} in {env:?}");
    }
    for entry in env {
        let (key, _) = entry.split_once('=').expect("KEY=VALUE");
        assert!(is_env_name(key), "{entry:?}");
        assert!(!entry.contains('\0'), "{entry:?}");
    }
    assert_eq!(config.image.as_deref(), Some(job.image.as_str()));
}
