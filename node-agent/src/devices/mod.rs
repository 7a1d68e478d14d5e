//! Accelerator devices: discovery, telemetry and health, behind [`DeviceBackend`].
//!
//! Devices are keyed by UUID, never by index (indexes change across reboots). A
//! backend discovers the devices once at start and is then sampled on every
//! heartbeat. Backends (`--devices`): [`nvml`] for NVIDIA GPUs (XID events,
//! uncorrectable ECC, lost from the bus → [`Health::Failed`]), [`npu`] for Rebellions
//! (`rbln-smi`) and FuriosaAI (`furiosa-smi`) NPUs, [`sim`] for simulated GPUs, and
//! `auto`, which picks what the machine has.

pub mod npu;
pub mod nvml;
pub mod sim;

use async_trait::async_trait;
use berth_proto::time::UnixMs;
use berth_proto::v1;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A device as discovered: what does not change while the agent runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    /// Host device nodes a container must be given to use this device (NPUs, e.g.
    /// `/dev/rbln0`). Empty for NVIDIA GPUs, which go through a device request by
    /// UUID, and for simulated devices.
    pub device_nodes: Vec<std::path::PathBuf>,
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
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Telemetry {
    /// When it was taken.
    pub sampled_at_ms: UnixMs,
    /// The device's own busy percentage, 0..=100: NVML's GPU utilisation (the share
    /// of time any kernel ran, `DCGM_FI_DEV_GPU_UTIL`), the NPU tool's utilisation.
    /// Finer engine activity, where known, is in [`Telemetry::activity`].
    pub utilization_pct: f64,
    /// Device memory in use.
    pub memory_used_bytes: u64,
    /// Memory utilisation (used / total), percent 0..=100.
    pub memory_utilization_pct: f64,
    /// Die temperature.
    pub temperature_c: f64,
    /// Board power draw.
    pub power_w: f64,
    /// Energy used since the driver loaded (or, where the device has no counter,
    /// since the agent started: integrated from power); never decreases while the
    /// agent runs.
    pub energy_j: f64,
    /// Whether `energy_j` is the device's own energy counter (NVML, simulated
    /// devices), which job evidence then uses; `false` where the agent integrated it
    /// from power (NPUs) or the device has none.
    pub energy_counter: bool,
    /// Engine activity over the interval since the device's previous sample (NVML
    /// GPM on Hopper and newer, simulated devices); unknown elsewhere.
    pub activity: Activity,
    /// Vendor-specific counters beyond the normalised fields; empty where the
    /// backend has none (they feed `/metrics` and `probe`, not the heartbeat).
    pub extra: TelemetryExtra,
}

/// Engine activity over the interval since the previous sample, fractions 0..=1,
/// under the DCGM exporter's profiling fields; `None` where the device does not
/// report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Activity {
    /// Share of time the graphics/compute engine was active
    /// (`DCGM_FI_PROF_GR_ENGINE_ACTIVE`; NVML GPM's graphics utilisation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gr_engine: Option<f64>,
    /// Share of cycles an SM had at least one warp assigned, over all SMs
    /// (`DCGM_FI_PROF_SM_ACTIVE`; GPM's SM utilisation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sm: Option<f64>,
    /// Share of cycles the tensor pipes were active (`DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`;
    /// GPM's any-tensor utilisation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensor: Option<f64>,
    /// Share of cycles the device memory interface was busy (`DCGM_FI_PROF_DRAM_ACTIVE`;
    /// GPM's DRAM bandwidth utilisation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dram: Option<f64>,
}

/// Counters some backends report besides [`Telemetry`]'s normalised fields.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TelemetryExtra {
    /// Free device memory, when the backend reports it apart from used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_free_bytes: Option<u64>,
    /// Share of time the memory controller was busy, percent (NVML's "memory
    /// utilisation", DCGM's `MEM_COPY_UTIL`); not the same as used / total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_busy_pct: Option<f64>,
    /// SM (shader) clock, MHz; for NPUs the compute-core clock where the tool reports
    /// one (`furiosa-smi`'s `core_clock`; `rbln-smi` reports none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    /// Memory clock, MHz.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_clock_mhz: Option<u32>,
    /// Corrected (single-bit) ECC errors since the driver loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecc_corrected_volatile: Option<u64>,
    /// Uncorrected (double-bit) ECC errors since the driver loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecc_uncorrected_volatile: Option<u64>,
    /// Memory pages retired (pre-Ampere GPUs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired_pages: Option<u64>,
    /// Rows remapped for correctable / uncorrectable errors (Ampere and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remapped_rows_correctable: Option<u64>,
    /// See [`TelemetryExtra::remapped_rows_correctable`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remapped_rows_uncorrectable: Option<u64>,
    /// A row remapping waits for a GPU reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remapping_pending: Option<bool>,
    /// Row remapping failed (the GPU needs service).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remapping_failed: Option<bool>,
    /// MIG mode currently enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig_enabled: Option<bool>,
    /// The last XID error seen on the device since the agent started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_xid: Option<u64>,
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
            sm_active: self.activity.sm,
            tensor_active: self.activity.tensor,
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

    /// Tells the backend which job and organisation hold each device (by UUID), for
    /// the `berth_job` / `berth_org` metric labels; devices not listed are idle.
    fn set_assignments(&self, _assignments: &std::collections::BTreeMap<String, Assignment>) {}
}

/// The job on a device, as the scheduler wants it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Job id.
    pub job: String,
    /// Organisation the job belongs to.
    pub org: String,
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
    /// `nvml`: NVIDIA GPUs through NVML.
    Nvml,
    /// `rbln`: Rebellions NPUs through `rbln-smi`.
    Rbln,
    /// `furiosa`: FuriosaAI NPUs through `furiosa-smi`.
    Furiosa,
    /// `auto`: NVML when it loads and finds a GPU, else `rbln-smi`, else `furiosa-smi`.
    Auto,
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
            "nvml" | "rbln" | "furiosa" | "auto" if parts.next().is_some() => Err(err(format!(
                "{kind} takes no ':' options (use --class, --nvml-lib, --fatal-xids)"
            ))),
            "nvml" => Ok(DeviceSpec::Nvml),
            "rbln" => Ok(DeviceSpec::Rbln),
            "furiosa" => Ok(DeviceSpec::Furiosa),
            "auto" => Ok(DeviceSpec::Auto),
            "" => Err(err("empty; expected e.g. sim:8".to_owned())),
            other => Err(err(format!(
                "unknown device backend {other:?} (supported: nvml, rbln, furiosa, sim:N[:CLASS], auto)"
            ))),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Sim { count, class } => write!(f, "sim:{count}:{class}"),
            DeviceSpec::Nvml => f.write_str("nvml"),
            DeviceSpec::Rbln => f.write_str("rbln"),
            DeviceSpec::Furiosa => f.write_str("furiosa"),
            DeviceSpec::Auto => f.write_str("auto"),
        }
    }
}

/// Options of the real backends.
#[derive(Debug, Clone, Default)]
pub struct DeviceOptions {
    /// Node name (simulated UUIDs derive from it).
    pub node: String,
    /// Class of every real device; default derived from the model (e.g. `h100-80gb`).
    pub class: Option<String>,
    /// NVML: library to load instead of `libnvidia-ml.so.1`; XIDs that fail a GPU.
    pub nvml: nvml::NvmlOptions,
    /// Directory holding `rbln-smi` / `furiosa-smi`; default: `PATH`.
    pub tool_dir: Option<std::path::PathBuf>,
}

/// Opens the backend a specification names. A real backend that cannot run (no
/// library, no driver, no tool) is a clear error.
pub async fn open(
    spec: &DeviceSpec,
    options: &DeviceOptions,
) -> Result<Arc<dyn DeviceBackend>, DeviceError> {
    let nvml_options = || nvml::NvmlOptions {
        class: options.class.clone(),
        ..options.nvml.clone()
    };
    let npu = |vendor: npu::Vendor| {
        npu::NpuBackend::new(vendor, options.class.clone(), options.tool_dir.as_deref())
    };
    Ok(match spec {
        DeviceSpec::Sim { count, class } => {
            Arc::new(sim::SimBackend::new(&options.node, *count, class))
        }
        DeviceSpec::Nvml => Arc::new(nvml::NvmlBackend::open(nvml_options()).await?),
        DeviceSpec::Rbln => Arc::new(npu(npu::Vendor::Rebellions)?),
        DeviceSpec::Furiosa => Arc::new(npu(npu::Vendor::Furiosa)?),
        DeviceSpec::Auto => {
            let mut tried = Vec::new();
            match nvml::NvmlBackend::open(nvml_options()).await {
                Ok(b) if !b.discover().await?.is_empty() => return Ok(Arc::new(b)),
                Ok(_) => tried.push("nvml: the library loaded but reports no GPU".to_owned()),
                Err(e) => tried.push(e.0),
            }
            for vendor in [npu::Vendor::Rebellions, npu::Vendor::Furiosa] {
                match npu(vendor) {
                    Ok(b) => match b.discover().await {
                        Ok(found) if !found.is_empty() => return Ok(Arc::new(b)),
                        Ok(_) => tried.push(format!("{}: no device listed", vendor.tool())),
                        Err(e) => tried.push(e.0),
                    },
                    Err(e) => tried.push(e.0),
                }
            }
            return Err(DeviceError(format!(
                "auto: found no accelerator ({}); use --devices sim:N for simulated devices",
                tried.join("; ")
            )));
        }
    })
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
            ("nvml:0", "takes no ':' options"),
            ("cuda", "unknown device backend \"cuda\""),
        ];
        for (text, want) in cases {
            let err = text.parse::<DeviceSpec>().expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("invalid device spec"), "{text}: {err}");
        }
    }

    #[test]
    fn parses_real_backends() {
        let cases = [
            ("nvml", DeviceSpec::Nvml),
            ("rbln", DeviceSpec::Rbln),
            ("furiosa", DeviceSpec::Furiosa),
            (" auto ", DeviceSpec::Auto),
        ];
        for (text, want) in cases {
            let spec: DeviceSpec = text.parse().unwrap();
            assert_eq!(spec, want);
            assert_eq!(spec.to_string().parse::<DeviceSpec>(), Ok(spec));
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
            device_nodes: Vec::new(),
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
