//! What a runtime needs to know of the node and of each job beyond its command:
//! the node's resources (to size a job's share), its admin-approved datasets, and
//! the vendor and device nodes of each assigned device.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A device assigned to a job, as a runtime needs it to expose the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedDevice {
    /// The device's UUID.
    pub uuid: String,
    /// `nvidia`, `rebellions`, `furiosa`, `sim`.
    pub vendor: String,
    /// Host device nodes the job must be given (NPUs); empty for NVIDIA and sim.
    #[serde(default)]
    pub device_nodes: Vec<PathBuf>,
}

/// A dataset a job asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRequest {
    /// Its admin-approved name.
    pub name: String,
    /// Whether the job asks to write to it (granted only where the node allows it).
    pub read_write: bool,
}

/// A dataset the node's admin approved: `--dataset NAME=HOSTPATH[:rw]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSource {
    /// Its name, as jobs ask for it.
    pub name: String,
    /// Where it lives on the host.
    pub host_path: PathBuf,
    /// Whether jobs may mount it read-write (when they ask to).
    pub allow_write: bool,
}

impl std::str::FromStr for DatasetSource {
    type Err = String;

    /// Parses `NAME=HOSTPATH[:rw|:ro]`; the host path must be absolute.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("invalid dataset {text:?}: {why} (expected NAME=/HOST/PATH[:rw])");
        let (name, rest) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(
                "the name may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        let (path, allow_write) = match rest.rsplit_once(':') {
            Some((path, "rw")) => (path, true),
            Some((path, "ro")) => (path, false),
            _ => (rest, false),
        };
        if !path.starts_with('/') || path.contains(',') {
            return Err(bad("the host path must be absolute"));
        }
        Ok(Self {
            name: name.to_owned(),
            host_path: PathBuf::from(path),
            allow_write,
        })
    }
}

/// The node as a runtime sees it.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// The node's name (container labels).
    pub node: String,
    /// How many devices the node has; a job's share of CPU and memory is its
    /// device count over this.
    pub node_devices: usize,
    /// CPUs of the node to share among jobs; `None`: all the host's.
    pub node_cpus: Option<f64>,
    /// Memory of the node to share among jobs; `None`: all the host's.
    pub node_memory_bytes: Option<u64>,
    /// Admin-approved datasets, by name.
    pub datasets: BTreeMap<String, DatasetSource>,
    /// Pull images that are not on the node; when false only local images run.
    pub pull_images: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_datasets() {
        let d: DatasetSource = "imagenet=/data/imagenet".parse().unwrap();
        assert_eq!(d.name, "imagenet");
        assert_eq!(d.host_path, PathBuf::from("/data/imagenet"));
        assert!(!d.allow_write);
        let d: DatasetSource = "scratch-2=/srv/x:rw".parse().unwrap();
        assert!(d.allow_write);
        assert_eq!(d.host_path, PathBuf::from("/srv/x"));
        let d: DatasetSource = "a=/srv/x:ro".parse().unwrap();
        assert!(!d.allow_write);
        for bad in ["", "x", "=/a", "a=rel/path", "a b=/x", "a=/x,y"] {
            assert!(bad.parse::<DatasetSource>().is_err(), "{bad}");
        }
    }
}
