//! From a [`JobSpec`] to a hardened container configuration. Pure: no Docker, no I/O.
//!
//! Whatever the image or the request says: never privileged, every capability
//! dropped, `no-new-privileges`, a bridge or no network (never the host's), private
//! PID and IPC namespaces, no host mounts but the job's scratch directory and the
//! node's admin-approved datasets (read-only unless the node allows writing and the
//! job asks), pids/memory/CPU limits from the job's share of the node's devices, and
//! only the assigned devices: NVIDIA GPUs through a device request for exactly their
//! UUIDs, NPUs through their device nodes, with `NVIDIA_VISIBLE_DEVICES`,
//! `CUDA_VISIBLE_DEVICES` and `BERTH_DEVICES` forced to the assigned UUIDs.

use crate::runtime::options::DatasetSource;
use crate::runtime::{JobSpec, job_env};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HostConfig, HostConfigLogConfig, Mount,
    MountType, RestartPolicy, RestartPolicyNameEnum,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Label on every container Berth manages.
pub const LABEL_MANAGED: &str = "berth.managed";
/// Label: the job id.
pub const LABEL_JOB: &str = "berth.job";
/// Label: the node that runs it.
pub const LABEL_NODE: &str = "berth.node";
/// Label: the desired-state generation it was started under.
pub const LABEL_GENERATION: &str = "berth.generation";
/// Label: the organisation.
pub const LABEL_ORG: &str = "berth.org";
/// Where the scratch directory appears in the container.
pub const SCRATCH_MOUNT: &str = "/scratch";
/// Where dataset `NAME` appears in the container: `/datasets/NAME`.
pub const DATASETS_MOUNT: &str = "/datasets";
/// Processes allowed per assigned device.
pub const PIDS_PER_DEVICE: i64 = 4096;
/// Smallest memory limit given to a job, whatever its share.
const MIN_MEMORY_BYTES: i64 = 64 << 20;
/// Smallest CPU limit given to a job (a hundredth of a CPU), in nano-CPUs.
const MIN_NANO_CPUS: i64 = 10_000_000;

/// The name of a job's container.
pub fn container_name(job_id: &str) -> String {
    format!("berth-{job_id}")
}

/// The node's resources shared among its devices' jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeResources {
    /// CPUs.
    pub cpus: f64,
    /// Memory.
    pub memory_bytes: u64,
    /// Devices.
    pub devices: usize,
}

/// A job's limits: its device count over the node's, times the node's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `NanoCpus`.
    pub nano_cpus: i64,
    /// `Memory` (and `MemorySwap`: no swap beyond it).
    pub memory_bytes: i64,
    /// `PidsLimit`.
    pub pids: i64,
}

/// The limits of a job holding `job_devices` devices (a job without devices counts as one).
pub fn limits(node: &NodeResources, job_devices: usize) -> Limits {
    let held = job_devices.max(1);
    let share = if node.devices == 0 {
        1.0
    } else {
        (held as f64 / node.devices as f64).min(1.0)
    };
    Limits {
        nano_cpus: ((node.cpus * share * 1e9) as i64).max(MIN_NANO_CPUS),
        memory_bytes: ((node.memory_bytes as f64 * share) as i64).max(MIN_MEMORY_BYTES),
        pids: PIDS_PER_DEVICE.saturating_mul(held as i64),
    }
}

/// The network mode of a request: `bridge` (the default) or `none`; nothing else.
pub fn network_mode(requested: &str) -> Result<&'static str, String> {
    match requested {
        "" | "bridge" => Ok("bridge"),
        "none" => Ok("none"),
        other => Err(format!(
            "network {other:?} is not allowed: jobs may use \"bridge\" or \"none\""
        )),
    }
}

/// The environment of a job's container, `KEY=VALUE`: the user's, then Berth's
/// variables, which always win (also over the image's `ENV`, since a container's
/// environment overrides its image's).
pub fn container_env(spec: &JobSpec) -> Vec<String> {
    let mut env = job_env(spec);
    let devices = spec.devices.join(",");
    // "void": the NVIDIA runtime's word for "no GPU"; an empty value is not.
    let nvidia = if devices.is_empty() {
        "void".to_owned()
    } else {
        devices
    };
    env.insert("NVIDIA_VISIBLE_DEVICES".into(), nvidia);
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The mounts of a job: its scratch directory read-write at [`SCRATCH_MOUNT`], and
/// each dataset it asks for at `/datasets/NAME`, read-only unless the node allows
/// writing and the job asks. A dataset the node does not have is an error naming it.
pub fn mounts(
    spec: &JobSpec,
    node: &str,
    datasets: &BTreeMap<String, DatasetSource>,
) -> Result<Vec<Mount>, String> {
    let bind = |source: &PathBuf, target: String, read_only: bool| Mount {
        target: Some(target),
        source: Some(source.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut out = vec![bind(&spec.scratch_dir, SCRATCH_MOUNT.to_owned(), false)];
    let mut seen = std::collections::BTreeSet::new();
    for want in &spec.datasets {
        if !seen.insert(want.name.as_str()) {
            continue;
        }
        let Some(have) = datasets.get(&want.name) else {
            return Err(format!(
                "dataset {:?} is not available on node {node} (it has: {})",
                want.name,
                if datasets.is_empty() {
                    "none".to_owned()
                } else {
                    datasets.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ));
        };
        let read_only = !(want.read_write && have.allow_write);
        out.push(bind(
            &have.host_path,
            format!("{DATASETS_MOUNT}/{}", want.name),
            read_only,
        ));
    }
    Ok(out)
}

/// How the assigned devices reach the container: a device request for the NVIDIA
/// GPUs (exactly their UUIDs), device nodes for the others (NPUs); simulated devices
/// need neither. Every device of the job must be among the node's.
pub fn device_access(spec: &JobSpec) -> Result<(Vec<DeviceRequest>, Vec<DeviceMapping>), String> {
    let mut nvidia = Vec::new();
    let mut nodes = Vec::new();
    for uuid in &spec.devices {
        let Some(device) = spec.assigned.iter().find(|d| &d.uuid == uuid) else {
            return Err(format!("device {uuid} is not among this node's devices"));
        };
        match device.vendor.as_str() {
            "nvidia" => nvidia.push(uuid.clone()),
            _ => {
                for path in &device.device_nodes {
                    let path = path.display().to_string();
                    nodes.push(DeviceMapping {
                        path_on_host: Some(path.clone()),
                        path_in_container: Some(path),
                        cgroup_permissions: Some("rwm".to_owned()),
                    });
                }
            }
        }
    }
    let requests = if nvidia.is_empty() {
        Vec::new()
    } else {
        vec![DeviceRequest {
            driver: Some("nvidia".to_owned()),
            device_ids: Some(nvidia),
            capabilities: Some(vec![vec!["gpu".to_owned()]]),
            ..Default::default()
        }]
    };
    Ok((requests, nodes))
}

/// The labels of a job's container.
pub fn labels(spec: &JobSpec, node: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_JOB.to_owned(), spec.job_id.clone()),
        (LABEL_NODE.to_owned(), node.to_owned()),
        (LABEL_GENERATION.to_owned(), spec.generation.to_string()),
        (LABEL_ORG.to_owned(), spec.org.clone()),
    ])
}

/// The whole container configuration of a job on `node`.
pub fn container_config(
    spec: &JobSpec,
    node: &str,
    resources: &NodeResources,
    datasets: &BTreeMap<String, DatasetSource>,
) -> Result<ContainerCreateBody, String> {
    crate::runtime::validate_spec(spec)?;
    let network = network_mode(&spec.network)?;
    let mounts = mounts(spec, node, datasets)?;
    let (device_requests, devices) = device_access(spec)?;
    let limits = limits(resources, spec.devices.len());
    let host_config = HostConfig {
        privileged: Some(false),
        cap_drop: Some(vec!["ALL".to_owned()]),
        cap_add: Some(Vec::new()),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        network_mode: Some(network.to_owned()),
        // Private namespaces, whatever the daemon's defaults.
        pid_mode: Some(String::new()),
        ipc_mode: Some("private".to_owned()),
        // Nothing from the host but these.
        binds: Some(Vec::new()),
        mounts: Some(mounts),
        volumes_from: Some(Vec::new()),
        devices: Some(devices),
        device_requests: Some(device_requests),
        device_cgroup_rules: Some(Vec::new()),
        publish_all_ports: Some(false),
        nano_cpus: Some(limits.nano_cpus),
        memory: Some(limits.memory_bytes),
        memory_swap: Some(limits.memory_bytes),
        pids_limit: Some(limits.pids),
        oom_kill_disable: Some(false),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        // Removed by the agent once its output is collected.
        auto_remove: Some(false),
        // A driver the logs API can read back, bounded on disk.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".to_owned()),
            config: Some(HashMap::from([
                ("max-size".to_owned(), "100m".to_owned()),
                ("max-file".to_owned(), "3".to_owned()),
            ])),
        }),
        ..Default::default()
    };
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(container_env(spec)),
        labels: Some(labels(spec, node)),
        stop_signal: Some("SIGTERM".to_owned()),
        tty: Some(false),
        open_stdin: Some(false),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::spec;
    use crate::runtime::{AssignedDevice, DatasetRequest};

    const NODE: NodeResources = NodeResources {
        cpus: 16.0,
        memory_bytes: 64 << 30,
        devices: 8,
    };

    fn job() -> JobSpec {
        let mut s = spec("j1", &["sh", "-c", "true"], PathBuf::from("/state/jobs/j1"));
        s.image = "busybox:latest".into();
        s.assigned = vec![
            AssignedDevice {
                uuid: "GPU-a".into(),
                vendor: "nvidia".into(),
                device_nodes: Vec::new(),
            },
            AssignedDevice {
                uuid: "GPU-b".into(),
                vendor: "nvidia".into(),
                device_nodes: Vec::new(),
            },
        ];
        s
    }

    fn datasets() -> BTreeMap<String, DatasetSource> {
        ["imagenet=/data/imagenet", "out=/data/out:rw"]
            .iter()
            .map(|d| {
                let d: DatasetSource = d.parse().unwrap();
                (d.name.clone(), d)
            })
            .collect()
    }

    #[test]
    fn hardened_whatever_is_asked() {
        let mut s = job();
        s.env.insert("NVIDIA_VISIBLE_DEVICES".into(), "all".into());
        let c = container_config(&s, "n1", &NODE, &BTreeMap::new()).unwrap();
        let h = c.host_config.as_ref().unwrap();
        assert_eq!(h.privileged, Some(false));
        assert_eq!(h.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(h.cap_add.as_deref(), Some(&[][..]));
        assert_eq!(
            h.security_opt.as_deref(),
            Some(&["no-new-privileges".to_owned()][..])
        );
        assert_eq!(h.network_mode.as_deref(), Some("bridge"));
        assert_eq!(h.pid_mode.as_deref(), Some(""));
        assert_eq!(h.ipc_mode.as_deref(), Some("private"));
        assert_eq!(h.binds.as_deref(), Some(&[][..]));
        let mounts = h.mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("/state/jobs/j1"));
        assert_eq!(mounts[0].target.as_deref(), Some("/scratch"));
        assert_eq!(mounts[0].read_only, Some(false));
        assert_eq!(c.cmd, Some(vec!["sh".into(), "-c".into(), "true".into()]));
        let env = c.env.unwrap();
        for want in [
            "NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b",
            "CUDA_VISIBLE_DEVICES=GPU-a,GPU-b",
            "BERTH_DEVICES=GPU-a,GPU-b",
            "BERTH_JOB_ID=j1",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} in {env:?}");
        }
        assert!(!env.iter().any(|e| e == "NVIDIA_VISIBLE_DEVICES=all"));
        let labels = c.labels.unwrap();
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels[LABEL_JOB], "j1");
        assert_eq!(labels[LABEL_NODE], "n1");
        assert_eq!(labels[LABEL_GENERATION], "1");
        assert_eq!(labels[LABEL_ORG], "acme");
    }

    #[test]
    fn networks() {
        assert_eq!(network_mode(""), Ok("bridge"));
        assert_eq!(network_mode("bridge"), Ok("bridge"));
        assert_eq!(network_mode("none"), Ok("none"));
        for bad in ["host", "container:x", "my-net"] {
            let err = network_mode(bad).unwrap_err();
            assert!(err.contains("not allowed"), "{err}");
        }
        let mut s = job();
        s.network = "host".into();
        assert!(container_config(&s, "n1", &NODE, &BTreeMap::new()).is_err());
    }

    #[test]
    fn limits_follow_the_device_share() {
        let l = limits(&NODE, 2);
        assert_eq!(l.nano_cpus, 4_000_000_000);
        assert_eq!(l.memory_bytes, 16 << 30);
        assert_eq!(l.pids, 2 * PIDS_PER_DEVICE);
        let all = limits(&NODE, 8);
        assert_eq!(all.nano_cpus, 16_000_000_000);
        assert_eq!(limits(&NODE, 0), limits(&NODE, 1));
        let tiny = NodeResources {
            cpus: 0.001,
            memory_bytes: 1,
            devices: 0,
        };
        assert_eq!(limits(&tiny, 1).nano_cpus, MIN_NANO_CPUS);
        assert_eq!(limits(&tiny, 1).memory_bytes, MIN_MEMORY_BYTES);
        let c = container_config(&job(), "n1", &NODE, &BTreeMap::new()).unwrap();
        let h = c.host_config.unwrap();
        assert_eq!(h.nano_cpus, Some(4_000_000_000));
        assert_eq!(h.memory, Some(16 << 30));
        assert_eq!(h.memory_swap, Some(16 << 30));
        assert_eq!(h.pids_limit, Some(2 * PIDS_PER_DEVICE));
    }

    #[test]
    fn nvidia_gpus_by_uuid_npus_by_device_node_sim_by_nothing() {
        let (requests, nodes) = device_access(&job()).unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(
            requests[0].device_ids,
            Some(vec!["GPU-a".into(), "GPU-b".into()])
        );
        assert_eq!(requests[0].capabilities, Some(vec![vec!["gpu".into()]]));
        assert_eq!(requests[0].count, None);
        assert!(nodes.is_empty());

        let mut s = job();
        s.devices = vec!["npu-0".into(), "sim-0".into()];
        s.assigned = vec![
            AssignedDevice {
                uuid: "npu-0".into(),
                vendor: "rebellions".into(),
                device_nodes: vec!["/dev/rbln0".into()],
            },
            AssignedDevice {
                uuid: "npu-9".into(),
                vendor: "rebellions".into(),
                device_nodes: vec!["/dev/rbln9".into()],
            },
            AssignedDevice {
                uuid: "sim-0".into(),
                vendor: "sim".into(),
                device_nodes: Vec::new(),
            },
        ];
        let (requests, nodes) = device_access(&s).unwrap();
        assert!(requests.is_empty());
        assert_eq!(nodes.len(), 1, "only the assigned NPU's node");
        assert_eq!(nodes[0].path_on_host.as_deref(), Some("/dev/rbln0"));
        assert_eq!(nodes[0].path_in_container.as_deref(), Some("/dev/rbln0"));

        s.devices.push("GPU-elsewhere".into());
        let err = device_access(&s).unwrap_err();
        assert!(err.contains("GPU-elsewhere"), "{err}");
    }

    #[test]
    fn no_devices_means_void() {
        let mut s = job();
        s.devices.clear();
        let env = container_env(&s);
        assert!(env.iter().any(|e| e == "NVIDIA_VISIBLE_DEVICES=void"));
        assert!(device_access(&s).unwrap().0.is_empty());
    }

    #[test]
    fn datasets_read_only_unless_allowed_and_asked() {
        let mut s = job();
        s.datasets = vec![
            DatasetRequest {
                name: "imagenet".into(),
                read_write: true,
            },
            DatasetRequest {
                name: "out".into(),
                read_write: true,
            },
        ];
        let m = mounts(&s, "n1", &datasets()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].target.as_deref(), Some("/datasets/imagenet"));
        assert_eq!(m[1].source.as_deref(), Some("/data/imagenet"));
        assert_eq!(m[1].read_only, Some(true), "node does not allow writing");
        assert_eq!(m[2].read_only, Some(false));
        s.datasets[1].read_write = false;
        assert_eq!(
            mounts(&s, "n1", &datasets()).unwrap()[2].read_only,
            Some(true)
        );

        s.datasets.push(DatasetRequest {
            name: "secret".into(),
            read_write: false,
        });
        let err = mounts(&s, "n1", &datasets()).unwrap_err();
        assert!(
            err.contains("\"secret\"") && err.contains("node n1"),
            "{err}"
        );
    }
}
