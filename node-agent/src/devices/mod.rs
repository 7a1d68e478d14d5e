//! Accelerator devices: discovery, telemetry and health, behind [`DeviceBackend`].
//!
//! Devices are keyed by UUID, never by index (indexes change across reboots). A
//! backend discovers the devices once at start and is then sampled on every
//! heartbeat. Only the simulated backend exists today (`sim:COUNT[:CLASS]`); an NVML
//! backend for NVIDIA GPUs and `rbln-smi` / `furiosa-smi` backends for NPUs fit the
//! same trait: discovery maps to their device listings, sampling to their telemetry
//! and health queries (XID events, ECC, fell off the bus → [`Health::Failed`]).

pub mod sim;

use async_trait::async_trait;
use berth_proto::time::UnixMs;
use berth_proto::v1;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A device as discovered: what does not change while the agent runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// Stable identity, e.g. `GPU-1f2e...` for NVIDIA.
    pub uuid: String,
    /// Index on the node as the driver numbers it; informational only.
    pub index: u32,
    /// Device class users book, e.g. `h100-80gb`.
    pub class: String,
    /// `nvidia`, `rebellions`, `furiosa`, `sim`.
    pub vendor: String,
    /// Marketing model name.
    pub model: String,
    /// Total device memory.
    pub memory_bytes: u64,
    /// PCI bus id, e.g. `00000000:1B:00.0`.
    pub pci_bus_id: String,
}

/// Device health as the backend judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Fit for work.
    Healthy,
    /// Usable but suspect (e.g. correctable errors rising); the reason says why.
    Degraded(String),
    /// Not usable (XID 79, uncorrectable ECC, lost from the bus); the reason says why.
    Failed(String),
}

impl Health {
    /// The wire enum and reason.
    pub fn to_proto(&self) -> (v1::DeviceHealth, String) {
        match self {
            Health::Healthy => (v1::DeviceHealth::Healthy, String::new()),
            Health::Degraded(r) => (v1::DeviceHealth::Degraded, r.clone()),
            Health::Failed(r) => (v1::DeviceHealth::Failed, r.clone()),
        }
    }
}

/// One telemetry reading of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// When it was taken.
    pub sampled_at_ms: UnixMs,
    /// Compute utilisation, percent 0..=100.
    pub utilization_pct: f64,
    /// Device memory in use.
    pub memory_used_bytes: u64,
    /// Memory utilisation (used / total), percent 0..=100.
    pub memory_utilization_pct: f64,
    /// Die temperature.
    pub temperature_c: f64,
    /// Board power draw.
    pub power_w: f64,
    /// Energy used since the driver loaded; never decreases.
    pub energy_j: f64,
}

impl Telemetry {
    /// The wire message.
    pub fn to_proto(&self) -> v1::Telemetry {
        v1::Telemetry {
            sampled_at: Some(berth_proto::time::ms_to_ts(self.sampled_at_ms)),
            utilization_pct: self.utilization_pct,
            memory_used_bytes: self.memory_used_bytes,
            temperature_c: self.temperature_c,
            power_w: self.power_w,
            energy_j: self.energy_j,
            memory_utilization_pct: self.memory_utilization_pct,
        }
    }
}

/// One sample of one device: its health, and telemetry when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSample {
    /// The device.
    pub uuid: String,
    /// Its health now.
    pub health: Health,
    /// Telemetry; `None` when the device could not be read (it is then usually failed).
    pub telemetry: Option<Telemetry>,
}

/// Why a backend could not discover or sample devices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeviceError(pub String);

/// A source of devices and their telemetry.
///
/// Implementations must be cheap to sample (the agent samples on every heartbeat)
/// and keyed by UUID. The agent tells the backend which devices run jobs with
/// [`DeviceBackend::set_busy`]; real backends measure instead and may ignore it.
#[async_trait]
pub trait DeviceBackend: Send + Sync {
    /// Short name for logs and the heartbeat, e.g. `sim`, `nvml`.
    fn name(&self) -> &'static str;

    /// Lists the devices present.
    async fn discover(&self) -> Result<Vec<DeviceInfo>, DeviceError>;

    /// Reads health and telemetry of every discovered device.
    async fn sample(&self) -> Result<Vec<DeviceSample>, DeviceError>;

    /// Tells the backend which devices are running jobs now.
    fn set_busy(&self, _uuids: &BTreeSet<String>) {}
}

/// A parsed `--devices` specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `sim:COUNT[:CLASS]`: simulated GPUs.
    Sim {
        /// How many devices.
        count: u32,
        /// Their class.
        class: String,
    },
}

/// The most simulated devices one node may have.
pub const MAX_SIM_DEVICES: u32 = 256;
/// The class of simulated devices when the spec names none.
pub const DEFAULT_SIM_CLASS: &str = "sim-gpu";

/// A `--devices` value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid device spec {spec:?}: {reason}")]
pub struct SpecError {
    /// The value given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for DeviceSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let err = |reason: String| SpecError {
            spec: spec.to_owned(),
            reason,
        };
        let mut parts = spec.trim().split(':');
        let kind = parts.next().unwrap_or_default();
        match kind {
            "sim" => {
                let count = parts
                    .next()
                    .ok_or_else(|| err("expected sim:COUNT[:CLASS], e.g. sim:8".to_owned()))?;
                let count: u32 = count
                    .parse()
                    .map_err(|_| err(format!("device count {count:?} is not a whole number")))?;
                if count == 0 || count > MAX_SIM_DEVICES {
                    return Err(err(format!(
                        "device count must be between 1 and {MAX_SIM_DEVICES}, not {count}"
                    )));
                }
                let class = match parts.next() {
                    None => DEFAULT_SIM_CLASS.to_owned(),
                    Some(c) => {
                        berth_proto::model::name("class", c).map_err(|e| err(e.to_string()))?
                    }
                };
                if parts.next().is_some() {
                    return Err(err(
                        "too many ':' parts; expected sim:COUNT[:CLASS]".to_owned()
                    ));
                }
                Ok(DeviceSpec::Sim { count, class })
            }
            "" => Err(err("empty; expected e.g. sim:8".to_owned())),
            other => Err(err(format!(
                "unknown device backend {other:?} (supported: sim)"
            ))),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Sim { count, class } => write!(f, "sim:{count}:{class}"),
        }
    }
}

/// Opens the backend a specification names, for node `node`.
pub fn open(spec: &DeviceSpec, node: &str) -> Arc<dyn DeviceBackend> {
    match spec {
        DeviceSpec::Sim { count, class } => Arc::new(sim::SimBackend::new(node, *count, class)),
    }
}

/// Builds the wire report of one device from its description and latest sample.
pub fn report(info: &DeviceInfo, sample: Option<&DeviceSample>) -> v1::DeviceReport {
    let (health, health_reason) = match sample {
        Some(s) => s.health.to_proto(),
        None => (v1::DeviceHealth::Unspecified, String::new()),
    };
    v1::DeviceReport {
        uuid: info.uuid.clone(),
        index: info.index,
        class: info.class.clone(),
        vendor: info.vendor.clone(),
        model: info.model.clone(),
        memory_bytes: info.memory_bytes,
        pci_bus_id: info.pci_bus_id.clone(),
        health: health as i32,
        health_reason,
        telemetry: sample
            .and_then(|s| s.telemetry.as_ref())
            .map(Telemetry::to_proto),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_specs() {
        let cases = [
            ("sim:8", 8, "sim-gpu"),
            ("sim:1:h100-80gb", 1, "h100-80gb"),
            (" sim:256:rngd ", 256, "rngd"),
        ];
        for (text, count, class) in cases {
            assert_eq!(
                text.parse::<DeviceSpec>(),
                Ok(DeviceSpec::Sim {
                    count,
                    class: class.to_owned()
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_specs_with_clear_reasons() {
        let cases = [
            ("", "empty"),
            ("sim", "expected sim:COUNT"),
            ("sim:", "not a whole number"),
            ("sim:x", "not a whole number"),
            ("sim:-1", "not a whole number"),
            ("sim:0", "between 1 and 256"),
            ("sim:257", "between 1 and 256"),
            ("sim:2:", "must not be empty"),
            ("sim:2:H100", "lower-case"),
            ("sim:2:a:b", "too many"),
            ("nvml", "unknown device backend \"nvml\""),
        ];
        for (text, want) in cases {
            let err = text.parse::<DeviceSpec>().expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("invalid device spec"), "{text}: {err}");
        }
    }

    #[test]
    fn spec_display_round_trips() {
        let spec: DeviceSpec = "sim:3".parse().unwrap();
        assert_eq!(spec.to_string(), "sim:3:sim-gpu");
        assert_eq!(spec.to_string().parse::<DeviceSpec>(), Ok(spec));
    }

    #[test]
    fn report_carries_health_and_telemetry() {
        let info = DeviceInfo {
            uuid: "GPU-x".into(),
            index: 0,
            class: "c".into(),
            vendor: "sim".into(),
            model: "m".into(),
            memory_bytes: 1,
            pci_bus_id: "p".into(),
        };
        let sample = DeviceSample {
            uuid: "GPU-x".into(),
            health: Health::Failed("XID 79".into()),
            telemetry: None,
        };
        let r = report(&info, Some(&sample));
        assert_eq!(r.health, v1::DeviceHealth::Failed as i32);
        assert_eq!(r.health_reason, "XID 79");
        assert!(r.telemetry.is_none());
        assert_eq!(r.uuid, "GPU-x");
    }
}
