//! Korean NPUs through their vendors' management tools: Rebellions (`rbln-smi`) and
//! FuriosaAI (`furiosa-smi`). Each sample runs the tool and parses its JSON.
//!
//! Formats (recorded samples in `node-agent/testdata/`):
//! - `rbln-smi --json` (also `rbln-stat --json` on older drivers): an object with
//!   `KMD_version` and `devices[]`, each with `npu`, `name` (e.g. `RBLN-CA22`),
//!   `uuid`, `device` (`rbln0`, the node `/dev/rbln0`), `status`, `pci.bus_id`,
//!   `temperature` ("29C"), `card_power` ("18109794uW"), `memory.used/total` (bytes,
//!   as strings), `util` ("4.4", percent). Field names as documented by Rebellions'
//!   `rbln-smi` page (docs.rbln.ai, "Device Monitoring") for the table columns, and
//!   as printed by `--json` in captures published with lablup/all-smi's test fixtures.
//! - `furiosa-smi info --format json` (RNGD): an array of `{arch, dev_name ("npu0"),
//!   device_uuid, device_sn, firmware, temperature ("30.18°C"), power ("53.00 W"),
//!   core_clock, governor, pci_bdf, pci_dev}`, and `furiosa-smi status --format json`:
//!   `[{arch, device, liveness ("alive"), memory: {dram: {used_size, total_size}},
//!   pe_utilizations: [{pe_core, pe_utilization}]}]` (developer.furiosa.ai, "Furiosa
//!   SMI CLI"; the JSON keys as consumed by lablup/all-smi). RNGD device files live
//!   under `/dev/rngd/` as `npuN…` (management, PE and DMA nodes), all of which a
//!   container needs for that NPU.
//!
//! Neither tool has an energy counter: the backend integrates power between samples
//! (and job evidence does the same per job). Neither reports engine activity like
//! NVIDIA's GPM, so NPUs have no SM or tensor activity. Clocks: `furiosa-smi info`
//! gives the compute cores' `core_clock` ("1000 MHz"), exported as the SM clock;
//! `rbln-smi --json` gives no clock (only a power state, `pstate`).

use super::{Activity, DeviceError, DeviceInfo, DeviceSample, Health, Telemetry, TelemetryExtra};
use async_trait::async_trait;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a vendor tool may take to answer.
const TOOL_TIMEOUT: Duration = Duration::from_secs(15);
/// Where Furiosa RNGD device files live.
pub const RNGD_DEV_DIR: &str = "/dev/rngd";

/// Which vendor's tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Rebellions ATOM (`rbln-smi`).
    Rebellions,
    /// FuriosaAI RNGD (`furiosa-smi`).
    Furiosa,
}

impl Vendor {
    /// The tool's executable name.
    pub fn tool(self) -> &'static str {
        match self {
            Vendor::Rebellions => "rbln-smi",
            Vendor::Furiosa => "furiosa-smi",
        }
    }

    /// The `vendor` field of its devices.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Rebellions => "rebellions",
            Vendor::Furiosa => "furiosa",
        }
    }
}

/// One NPU as read from a tool: what discovery and sampling both need.
#[derive(Debug, Clone, PartialEq)]
pub struct NpuReading {
    /// The static description (class still unset: the backend fills it).
    pub info: DeviceInfo,
    /// Health as the tool reports it.
    pub health: Health,
    /// Telemetry (`sampled_at_ms` left 0; the backend stamps it).
    pub telemetry: Telemetry,
}

fn parse_err(tool: &str, what: impl std::fmt::Display) -> DeviceError {
    DeviceError(format!("{tool}: unexpected output: {what}"))
}

/// Leading number of a string such as `29C`, `30.18°C`, `53.00 W`, `4.4`; `None` when
/// there is none or it does not fit a finite `f64` (400 digits parse as infinity).
fn number(text: &str) -> Option<f64> {
    let t = text.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(t.len());
    t[..end].parse().ok().filter(|v: &f64| v.is_finite())
}

/// Power such as `18109794uW`, `53.00 W`, `43.9W`, `1.2kW`, in watts (finite).
fn watts(text: &str) -> Option<f64> {
    let value = number(text)?;
    let unit = text
        .trim()
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    Some(match unit.trim() {
        "uW" | "µW" => value / 1e6,
        "mW" => value / 1e3,
        "kW" => value * 1e3,
        _ => value,
    })
    .filter(|w| w.is_finite())
}

/// A percentage as [`super::Telemetry`] promises it: within 0..=100 (a tool's nonsense,
/// such as -5 or 1e308, is clamped; NaN is 0).
fn percent(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 100.0)
    }
}

/// The index in a device name such as `rbln3` or `npu0`: `prefix` then ASCII digits only
/// (`rbln+0`, `npu٣` and `rbln` are not names of a device).
fn index_of(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)
        .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

/// Checks a device's identity as a tool reports it. It becomes the device's key in the
/// scheduler and goes into comma-separated lists (`BERTH_DEVICES`, `CUDA_VISIBLE_DEVICES`),
/// so it must be 1 to 128 letters, digits, `-`, `_`, `.` or `:` (real UUIDs are).
fn device_uuid(tool: &str, device: &str, uuid: &str) -> Result<String, DeviceError> {
    let uuid = uuid.trim();
    let ok = !uuid.is_empty()
        && uuid.len() <= 128
        && uuid
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(uuid.to_owned())
    } else {
        Err(parse_err(
            tool,
            format!(
                "device {device:?} has no usable uuid ({uuid:?}: expected 1 to 128 letters, digits, '-', '_', '.' or ':')"
            ),
        ))
    }
}

/// A clock such as `1000 MHz` or `1.2 GHz`, in whole MHz.
fn mhz(text: &str) -> Option<u32> {
    let value = number(text)?;
    let unit = text
        .trim()
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
        .trim();
    let mhz = match unit {
        "GHz" => value * 1000.0,
        "kHz" => value / 1000.0,
        "" | "MHz" => value,
        _ => return None,
    };
    (mhz.is_finite() && mhz >= 0.0 && mhz <= f64::from(u32::MAX)).then(|| mhz.round() as u32)
}

/// A class from a model name: `RBLN-CA22` → `rbln-ca22`, `rngd` → `rngd`.
pub fn class_from_model(model: &str) -> String {
    let class: String = model
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let class = class.trim_matches('-').to_owned();
    if berth_proto::model::name("class", &class).is_ok() {
        class
    } else {
        "npu".to_owned()
    }
}

#[derive(Deserialize)]
struct RblnOutput {
    devices: Vec<RblnDevice>,
}

#[derive(Deserialize)]
struct RblnDevice {
    name: String,
    uuid: String,
    device: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    pci: Option<RblnPci>,
    #[serde(default)]
    temperature: String,
    #[serde(default)]
    card_power: String,
    memory: RblnMemory,
    #[serde(default)]
    util: String,
}

#[derive(Deserialize)]
struct RblnPci {
    #[serde(default)]
    bus_id: String,
}

#[derive(Deserialize)]
struct RblnMemory {
    used: String,
    total: String,
}

/// Parses `rbln-smi --json`.
pub fn parse_rbln(json: &str) -> Result<Vec<NpuReading>, DeviceError> {
    let tool = Vendor::Rebellions.tool();
    let out: RblnOutput = serde_json::from_str(json).map_err(|e| parse_err(tool, e))?;
    out.devices
        .into_iter()
        .map(|d| {
            let bytes = |what: &str, v: &str| {
                v.trim().parse::<u64>().map_err(|_| {
                    parse_err(
                        tool,
                        format!("{} memory {what} {v:?} is not a byte count", d.uuid),
                    )
                })
            };
            let used = bytes("used", &d.memory.used)?;
            let total = bytes("total", &d.memory.total)?;
            let uuid = device_uuid(tool, &d.device, &d.uuid)?;
            let index = index_of(&d.device, "rbln").ok_or_else(|| {
                parse_err(tool, format!("device name {:?} is not rblnN", d.device))
            })?;
            let health = match d.status.as_str() {
                "" | "normal" => Health::Healthy,
                other => Health::Failed(format!("rbln-smi reports status {other:?}")),
            };
            Ok(NpuReading {
                info: DeviceInfo {
                    uuid,
                    index,
                    class: String::new(),
                    vendor: Vendor::Rebellions.name().to_owned(),
                    model: d.name,
                    memory_bytes: total,
                    pci_bus_id: d.pci.map(|p| p.bus_id).unwrap_or_default(),
                    device_nodes: vec![PathBuf::from(format!("/dev/{}", d.device))],
                },
                health,
                telemetry: Telemetry {
                    sampled_at_ms: 0,
                    utilization_pct: percent(number(&d.util).unwrap_or(0.0)),
                    memory_used_bytes: used,
                    memory_utilization_pct: pct(used, total),
                    temperature_c: number(&d.temperature).unwrap_or(0.0),
                    power_w: watts(&d.card_power).unwrap_or(0.0),
                    energy_j: 0.0,
                    energy_counter: false,
                    activity: Activity::default(),
                    extra: TelemetryExtra {
                        memory_free_bytes: Some(total.saturating_sub(used)),
                        ..TelemetryExtra::default()
                    },
                },
            })
        })
        .collect()
}

fn pct(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        percent(used as f64 / total as f64 * 100.0)
    }
}

#[derive(Deserialize)]
struct FuriosaInfo {
    arch: String,
    dev_name: String,
    device_uuid: String,
    #[serde(default)]
    temperature: String,
    #[serde(default)]
    power: String,
    #[serde(default)]
    pci_bdf: String,
    #[serde(default)]
    core_clock: String,
}

#[derive(Deserialize)]
struct FuriosaStatus {
    device: String,
    #[serde(default)]
    liveness: String,
    #[serde(default)]
    memory: Option<FuriosaMemory>,
    #[serde(default)]
    pe_utilizations: Vec<FuriosaPe>,
}

#[derive(Deserialize)]
struct FuriosaMemory {
    #[serde(alias = "DRAM")]
    dram: Option<FuriosaDram>,
}

#[derive(Deserialize)]
struct FuriosaDram {
    used_size: u64,
    total_size: u64,
}

#[derive(Deserialize)]
struct FuriosaPe {
    #[serde(alias = "utilization")]
    pe_utilization: f64,
}

/// The device files of Furiosa NPU `dev_name` (`npu0`) among the names in
/// [`RNGD_DEV_DIR`]: every `npu0…` entry not followed by another digit. Only plain file
/// names count: an entry holding `/` (or `.`/`..`) could name a path outside the directory.
pub fn furiosa_nodes(dev_name: &str, listing: &[String]) -> Vec<PathBuf> {
    let mut nodes: Vec<PathBuf> = listing
        .iter()
        .filter(|n| !n.contains(['/', '\0']) && n.as_str() != "." && n.as_str() != "..")
        .filter(|n| {
            n.strip_prefix(dev_name)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|n| Path::new(RNGD_DEV_DIR).join(n))
        .collect();
    nodes.sort();
    nodes
}

/// Parses `furiosa-smi info --format json` and `furiosa-smi status --format json`;
/// `listing` is the content of [`RNGD_DEV_DIR`].
pub fn parse_furiosa(
    info_json: &str,
    status_json: &str,
    listing: &[String],
) -> Result<Vec<NpuReading>, DeviceError> {
    let tool = Vendor::Furiosa.tool();
    let infos: Vec<FuriosaInfo> =
        serde_json::from_str(info_json).map_err(|e| parse_err(tool, format!("info: {e}")))?;
    let statuses: Vec<FuriosaStatus> =
        serde_json::from_str(status_json).map_err(|e| parse_err(tool, format!("status: {e}")))?;
    infos
        .into_iter()
        .map(|d| {
            let uuid = device_uuid(tool, &d.dev_name, &d.device_uuid)?;
            let index = index_of(&d.dev_name, "npu").ok_or_else(|| {
                parse_err(tool, format!("device name {:?} is not npuN", d.dev_name))
            })?;
            let status = statuses.iter().find(|s| s.device == d.dev_name);
            let dram = status
                .and_then(|s| s.memory.as_ref())
                .and_then(|m| m.dram.as_ref());
            let (used, total) = dram.map_or((0, 0), |m| (m.used_size, m.total_size));
            let utilization = status
                .filter(|s| !s.pe_utilizations.is_empty())
                .map_or(0.0, |s| {
                    percent(
                        s.pe_utilizations
                            .iter()
                            .map(|p| p.pe_utilization)
                            .sum::<f64>()
                            / s.pe_utilizations.len() as f64,
                    )
                });
            let health = match status.map(|s| s.liveness.as_str()) {
                None => Health::Degraded("furiosa-smi status does not list the device".to_owned()),
                Some("alive" | "") => Health::Healthy,
                Some(other) => Health::Failed(format!("furiosa-smi reports liveness {other:?}")),
            };
            let mut nodes = furiosa_nodes(&d.dev_name, listing);
            if nodes.is_empty() {
                nodes.push(Path::new(RNGD_DEV_DIR).join(format!("{}mgmt", d.dev_name)));
            }
            Ok(NpuReading {
                info: DeviceInfo {
                    uuid,
                    index,
                    class: String::new(),
                    vendor: Vendor::Furiosa.name().to_owned(),
                    model: d.arch,
                    memory_bytes: total,
                    pci_bus_id: d.pci_bdf,
                    device_nodes: nodes,
                },
                health,
                telemetry: Telemetry {
                    sampled_at_ms: 0,
                    utilization_pct: utilization,
                    memory_used_bytes: used,
                    memory_utilization_pct: pct(used, total),
                    temperature_c: number(&d.temperature).unwrap_or(0.0),
                    power_w: watts(&d.power).unwrap_or(0.0),
                    energy_j: 0.0,
                    energy_counter: false,
                    activity: Activity::default(),
                    extra: TelemetryExtra {
                        memory_free_bytes: dram.map(|_| total.saturating_sub(used)),
                        sm_clock_mhz: mhz(&d.core_clock),
                        ..TelemetryExtra::default()
                    },
                },
            })
        })
        .collect()
}

/// Finds `tool` in `dir` or on `PATH`.
pub fn find_tool(tool: &str, dir: Option<&Path>) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match dir {
        Some(dir) => vec![dir.join(tool)],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(tool)).collect())
            .unwrap_or_default(),
    };
    candidates.into_iter().find(|p| p.is_file())
}

/// NPUs of one vendor, read through its tool.
pub struct NpuBackend {
    vendor: Vendor,
    tool: PathBuf,
    class: Option<String>,
    energy: std::sync::Mutex<EnergyState>,
}

/// Energy integrated from power between samples (the tools report no counter).
#[derive(Default)]
struct EnergyState {
    last: Option<std::time::Instant>,
    joules: std::collections::HashMap<String, (f64, f64)>,
}

impl NpuBackend {
    /// A backend for `vendor`; fails when its tool is not found.
    pub fn new(
        vendor: Vendor,
        class: Option<String>,
        tool_dir: Option<&Path>,
    ) -> Result<Self, DeviceError> {
        let tool = find_tool(vendor.tool(), tool_dir).ok_or_else(|| {
            DeviceError(match tool_dir {
                Some(dir) => format!("{}: not found in {}", vendor.tool(), dir.display()),
                None => format!(
                    "{}: not found on PATH; is the {} driver package installed?",
                    vendor.tool(),
                    vendor.name()
                ),
            })
        })?;
        Ok(Self {
            vendor,
            tool,
            class,
            energy: std::sync::Mutex::default(),
        })
    }

    async fn run(&self, args: &[&str]) -> Result<String, DeviceError> {
        let name = self.vendor.tool();
        let output = tokio::time::timeout(
            TOOL_TIMEOUT,
            tokio::process::Command::new(&self.tool)
                .args(args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| DeviceError(format!("{name}: no answer within {TOOL_TIMEOUT:?}")))?
        .map_err(|e| DeviceError(format!("{name}: cannot run {}: {e}", self.tool.display())))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(DeviceError(format!(
                "{name} {} failed ({}): {}",
                args.join(" "),
                output.status,
                stderr.trim()
            )));
        }
        String::from_utf8(output.stdout).map_err(|_| parse_err(name, "not UTF-8"))
    }

    async fn read(&self) -> Result<Vec<NpuReading>, DeviceError> {
        let mut readings = match self.vendor {
            Vendor::Rebellions => parse_rbln(&self.run(&["--json"]).await?)?,
            Vendor::Furiosa => {
                let info = self.run(&["info", "--format", "json"]).await?;
                let status = self.run(&["status", "--format", "json"]).await?;
                let listing: Vec<String> = std::fs::read_dir(RNGD_DEV_DIR)
                    .map(|dir| {
                        dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                parse_furiosa(&info, &status, &listing)?
            }
        };
        for r in &mut readings {
            r.info.class = self
                .class
                .clone()
                .unwrap_or_else(|| class_from_model(&r.info.model));
        }
        Ok(readings)
    }
}

#[async_trait]
impl super::DeviceBackend for NpuBackend {
    fn name(&self) -> &'static str {
        match self.vendor {
            Vendor::Rebellions => "rbln",
            Vendor::Furiosa => "furiosa",
        }
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        Ok(self.read().await?.into_iter().map(|r| r.info).collect())
    }

    async fn sample(&self) -> Result<Vec<DeviceSample>, DeviceError> {
        let readings = self.read().await?;
        let now = std::time::Instant::now();
        let now_ms = berth_proto::time::now_ms();
        let mut energy = self
            .energy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dt = energy
            .last
            .map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
        energy.last = Some(now);
        Ok(readings
            .into_iter()
            .map(|mut r| {
                let (joules, last_w) = energy
                    .joules
                    .entry(r.info.uuid.clone())
                    .or_insert((0.0, r.telemetry.power_w));
                *joules += crate::evidence::trapezoid_j(*last_w, r.telemetry.power_w, dt);
                *last_w = r.telemetry.power_w;
                r.telemetry.energy_j = *joules;
                r.telemetry.sampled_at_ms = now_ms;
                DeviceSample {
                    uuid: r.info.uuid,
                    health: r.health,
                    telemetry: Some(r.telemetry),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RBLN: &str = include_str!("../../testdata/rbln-smi.json");
    const FURIOSA_INFO: &str = include_str!("../../testdata/furiosa-smi-info.json");
    const FURIOSA_STATUS: &str = include_str!("../../testdata/furiosa-smi-status.json");

    #[test]
    fn parses_rbln_smi() {
        let devices = parse_rbln(RBLN).unwrap();
        assert_eq!(devices.len(), 2);
        let d = &devices[0];
        assert_eq!(d.info.uuid, "3a5d3eec-4b2e-4fa0-afa0-192c9b99a7c2");
        assert_eq!(d.info.index, 0);
        assert_eq!(d.info.vendor, "rebellions");
        assert_eq!(d.info.model, "RBLN-CA22");
        assert_eq!(d.info.memory_bytes, 16_877_879_296);
        assert_eq!(d.info.pci_bus_id, "0000:03:00.0");
        assert_eq!(d.info.device_nodes, [PathBuf::from("/dev/rbln0")]);
        assert_eq!(d.health, Health::Healthy);
        assert!((d.telemetry.power_w - 18.109794).abs() < 1e-9);
        assert_eq!(d.telemetry.temperature_c, 29.0);
        assert_eq!(d.telemetry.memory_used_bytes, 75_497_472);
        assert_eq!(
            d.telemetry.extra.sm_clock_mhz, None,
            "rbln-smi gives no clock"
        );
        assert!(!d.telemetry.energy_counter);
        let busy = &devices[1];
        assert_eq!(busy.info.device_nodes, [PathBuf::from("/dev/rbln5")]);
        assert_eq!(busy.telemetry.utilization_pct, 4.4);
        assert!(matches!(&busy.health, Health::Failed(r) if r.contains("\"abnormal\"")));
        assert_eq!(class_from_model("RBLN-CA22"), "rbln-ca22");
    }

    #[test]
    fn parses_furiosa_smi() {
        let listing: Vec<String> = ["npu0mgmt", "npu0pe0", "npu0pe0-1", "npu1mgmt", "npu10mgmt"]
            .map(String::from)
            .to_vec();
        let devices = parse_furiosa(FURIOSA_INFO, FURIOSA_STATUS, &listing).unwrap();
        assert_eq!(devices.len(), 2);
        let d = &devices[0];
        assert_eq!(d.info.uuid, "A76AAD68-6855-40B1-9E86-D080852D1C80");
        assert_eq!(d.info.model, "rngd");
        assert_eq!(d.info.vendor, "furiosa");
        assert_eq!(d.info.pci_bus_id, "0000:17:00.0");
        assert_eq!(d.info.memory_bytes, 51_539_607_552);
        assert_eq!(
            d.info.device_nodes,
            [
                "/dev/rngd/npu0mgmt",
                "/dev/rngd/npu0pe0",
                "/dev/rngd/npu0pe0-1"
            ]
            .map(PathBuf::from)
        );
        assert!((d.telemetry.temperature_c - 30.18).abs() < 1e-9);
        assert_eq!(d.telemetry.power_w, 53.0);
        assert_eq!(d.telemetry.utilization_pct, 50.0);
        assert_eq!(d.telemetry.extra.sm_clock_mhz, Some(1000));
        assert!(!d.telemetry.energy_counter);
        assert_eq!(d.telemetry.activity, Activity::default());
        assert_eq!(d.health, Health::Healthy);
        assert_eq!(
            devices[1].info.device_nodes,
            [PathBuf::from("/dev/rngd/npu1mgmt")]
        );
        assert!(matches!(&devices[1].health, Health::Failed(r) if r.contains("dead")));
        assert_eq!(class_from_model("rngd"), "rngd");
    }

    #[test]
    fn malformed_output_is_a_clear_error() {
        for bad in ["", "not json", "{\"devices\": [{\"uuid\": 1}]}", "[]"] {
            let e = parse_rbln(bad).unwrap_err().to_string();
            assert!(e.starts_with("rbln-smi: unexpected output"), "{e}");
        }
        let bad_mem = RBLN.replacen("\"16877879296\"", "\"lots\"", 1);
        assert!(
            parse_rbln(&bad_mem)
                .unwrap_err()
                .0
                .contains("not a byte count")
        );
        let e = parse_furiosa("{", FURIOSA_STATUS, &[]).unwrap_err().0;
        assert!(
            e.starts_with("furiosa-smi: unexpected output: info:"),
            "{e}"
        );
        let e = parse_furiosa(FURIOSA_INFO, "nope", &[]).unwrap_err().0;
        assert!(e.contains("status:"), "{e}");
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/npu_smi.rs`): identities that break device
    /// lists, index spellings, infinities and percentages out of range, paths leaving
    /// `/dev/rngd`.
    #[test]
    fn hostile_tool_output_is_refused_or_bounded() {
        // JSON text: `\u001b` is an escape in the decoded uuid.
        for uuid in ["a,b", "a b", r"x\u001b[2J", "", "a=b", &"a".repeat(129)] {
            let json = RBLN.replacen("3a5d3eec-4b2e-4fa0-afa0-192c9b99a7c2", uuid, 1);
            let e = parse_rbln(&json).unwrap_err().0;
            assert!(e.contains("has no usable uuid"), "{uuid:?}: {e}");
        }
        let info = FURIOSA_INFO.replacen("A76AAD68-6855-40B1-9E86-D080852D1C80", "A,B", 1);
        let e = parse_furiosa(&info, FURIOSA_STATUS, &[]).unwrap_err().0;
        assert!(e.contains("has no usable uuid"), "{e}");
        for device in ["rbln+0", "rbln", "rbln-1", "rbln0/../sda"] {
            let json = RBLN.replacen("\"rbln0\"", &format!("{device:?}"), 1);
            let e = parse_rbln(&json).unwrap_err().0;
            assert!(e.contains("is not rblnN"), "{device}: {e}");
        }

        let huge = "9".repeat(400);
        let json = RBLN
            .replacen("\"29C\"", &format!("\"{huge}C\""), 1)
            .replacen("\"18109794uW\"", &format!("\"{huge}kW\""), 1)
            .replacen("\"0.0\"", "\"-5\"", 1)
            .replacen("\"75497472\"", "\"99999999999999999\"", 1);
        let d = &parse_rbln(&json).unwrap()[0];
        assert_eq!(d.telemetry.temperature_c, 0.0, "not infinity");
        assert_eq!(d.telemetry.power_w, 0.0, "not infinity");
        assert_eq!(d.telemetry.utilization_pct, 0.0, "clamped");
        assert_eq!(d.telemetry.memory_utilization_pct, 100.0, "used > total");
        assert_eq!(number(&huge), None);

        let status = FURIOSA_STATUS
            .replacen("80.0", "1e308", 1)
            .replacen("20.0", "1e308", 1);
        let d = &parse_furiosa(FURIOSA_INFO, &status, &[]).unwrap()[0];
        assert_eq!(d.telemetry.utilization_pct, 100.0);

        let listing: Vec<String> = ["npu0/../../sda", "npu0mgmt", "..", "npu0\0x"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            furiosa_nodes("npu0", &listing),
            [PathBuf::from("/dev/rngd/npu0mgmt")]
        );
    }

    #[test]
    fn power_and_numbers() {
        assert_eq!(watts("18109794uW"), Some(18.109794));
        assert_eq!(watts("53.00 W"), Some(53.0));
        assert_eq!(watts("43.9W"), Some(43.9));
        assert_eq!(watts("x"), None);
        assert_eq!(number("30.18°C"), Some(30.18));
        assert_eq!(mhz("1000 MHz"), Some(1000));
        assert_eq!(mhz("1.2 GHz"), Some(1200));
        assert_eq!(mhz("1500"), Some(1500));
        assert_eq!(mhz("fast"), None);
        assert_eq!(mhz("3 parsecs"), None);
    }

    #[test]
    fn missing_tool_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = NpuBackend::new(Vendor::Rebellions, None, Some(dir.path()))
            .err()
            .unwrap()
            .0;
        assert!(e.starts_with("rbln-smi: not found in"), "{e}");
    }
}
