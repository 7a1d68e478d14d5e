//! Device flags shared by the agent and `berth-agent probe`, and the probe itself:
//! the detected devices and a telemetry sample, as a table or JSON. The probe samples
//! twice, [`PROBE_INTERVAL`] apart, and shows the second sample: engine activity (NVML
//! GPM) is measured between two samples.

use crate::devices::{self, DeviceOptions, DeviceSample, DeviceSpec, Health, nvml};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of the real device backends.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceFlags {
    /// Device class of every accelerator on this node, e.g. h100-80gb. Default: derived
    /// from the model: NVIDIA "H100 80GB HBM3" → h100-80gb, "A100-SXM4-40GB" → a100-40gb,
    /// Rebellions RBLN-CA22 → rbln-ca22, Furiosa RNGD → rngd.
    #[arg(long = "class", env = "BERTH_DEVICE_CLASS")]
    pub class: Option<String>,

    /// NVIDIA management library to load instead of libnvidia-ml.so.1 (found by the
    /// dynamic loader).
    #[arg(long, env = "BERTH_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,

    /// XIDs that mark a GPU failed (quarantined by the scheduler), comma-separated.
    #[arg(long, env = "BERTH_FATAL_XIDS", default_value = "48,63,64,74,79,94,95", value_parser = nvml::parse_xids)]
    pub fatal_xids: BTreeSet<u64>,

    /// Directory holding rbln-smi / furiosa-smi; default: found on PATH.
    #[arg(long, env = "BERTH_NPU_TOOL_DIR")]
    pub npu_tool_dir: Option<PathBuf>,
}

impl DeviceFlags {
    /// The backends' options for node `node`; fails on an invalid class.
    pub fn options(&self, node: &str) -> Result<DeviceOptions, String> {
        if let Some(class) = &self.class {
            berth_proto::model::name("class", class).map_err(|e| format!("--class: {e}"))?;
        }
        Ok(DeviceOptions {
            node: node.to_owned(),
            class: self.class.clone(),
            nvml: nvml::NvmlOptions {
                lib_path: self.nvml_lib.clone(),
                fatal_xids: self.fatal_xids.clone(),
                class: self.class.clone(),
            },
            tool_dir: self.npu_tool_dir.clone(),
        })
    }
}

/// The `/metrics` flag.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsFlags {
    /// Address of the agent's Prometheus /metrics (DCGM exporter names), or "off".
    #[arg(long, env = "BERTH_METRICS_ADDR", default_value = crate::metrics::DEFAULT_METRICS_ADDR)]
    pub metrics_addr: String,
}

impl MetricsFlags {
    /// The address, `None` for "off".
    pub fn addr(&self) -> Result<Option<SocketAddr>, String> {
        match self.metrics_addr.trim() {
            "" | "off" => Ok(None),
            a => a.parse().map(Some).map_err(|_| {
                format!("--metrics-addr {a:?}: expected HOST:PORT, e.g. 127.0.0.1:9400, or off")
            }),
        }
    }
}

/// Time between the probe's two samples.
pub const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Output format of `probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// JSON for records and scripts.
    Json,
}

/// `berth-agent probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Devices to probe: auto, nvml, rbln, furiosa or sim:N[:CLASS].
    #[arg(long, env = "BERTH_DEVICES", default_value = "auto")]
    pub devices: String,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,

    #[command(flatten)]
    pub device: DeviceFlags,
}

/// What `probe` found, as printed in JSON.
#[derive(Debug, serde::Serialize)]
pub struct ProbeReport {
    /// Backend used.
    pub backend: String,
    /// When the sample was taken (Unix milliseconds).
    pub sampled_at_ms: i64,
    /// Devices with their sample.
    pub devices: Vec<ProbedDevice>,
}

/// One device in a [`ProbeReport`].
#[derive(Debug, serde::Serialize)]
pub struct ProbedDevice {
    /// Its description.
    #[serde(flatten)]
    pub info: devices::DeviceInfo,
    /// `healthy`, `degraded` or `failed`.
    pub health: &'static str,
    /// Why, when not healthy.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub health_reason: String,
    /// Telemetry, when it could be read.
    pub telemetry: Option<devices::Telemetry>,
}

/// Detects the devices, samples them twice [`PROBE_INTERVAL`] apart and builds the
/// report from the second sample.
pub async fn probe(args: &ProbeArgs, node: &str) -> Result<ProbeReport, String> {
    let spec: DeviceSpec = args
        .devices
        .parse()
        .map_err(|e: devices::SpecError| e.to_string())?;
    let options = args.device.options(node)?;
    let backend = devices::open(&spec, &options).await.map_err(|e| e.0)?;
    let infos = backend.discover().await.map_err(|e| e.0)?;
    backend.sample().await.map_err(|e| e.0)?;
    tokio::time::sleep(PROBE_INTERVAL).await;
    let samples = backend.sample().await.map_err(|e| e.0)?;
    let devices = infos
        .into_iter()
        .map(|info| {
            let sample: Option<&DeviceSample> = samples.iter().find(|s| s.uuid == info.uuid);
            let (health, health_reason) = match sample.map(|s| &s.health) {
                Some(Health::Healthy) => ("healthy", String::new()),
                Some(Health::Degraded(r)) => ("degraded", r.clone()),
                Some(Health::Failed(r)) => ("failed", r.clone()),
                None => ("failed", "not sampled".to_owned()),
            };
            ProbedDevice {
                telemetry: sample.and_then(|s| s.telemetry.clone()),
                info,
                health,
                health_reason,
            }
        })
        .collect();
    Ok(ProbeReport {
        backend: backend.name().to_owned(),
        sampled_at_ms: berth_proto::time::now_ms(),
        devices,
    })
}

/// The report as a table.
pub fn table(report: &ProbeReport) -> String {
    let mut out = format!(
        "{:<5} {:<42} {:<24} {:<12} {:>7} {:<8} {:>6} {:>6} {:>6} {:>6} {:>8} {:<16}\n",
        "INDEX",
        "UUID",
        "MODEL",
        "CLASS",
        "MEM_GB",
        "HEALTH",
        "UTIL%",
        "SM%",
        "MEM%",
        "TEMP",
        "POWER_W",
        "PCI"
    );
    for d in &report.devices {
        let t = d.telemetry.as_ref();
        let num = |f: fn(&devices::Telemetry) -> f64| {
            t.map_or("-".to_owned(), |t| format!("{:.0}", f(t)))
        };
        let sm = t
            .and_then(|t| t.activity.sm)
            .map_or("-".to_owned(), |f| format!("{:.0}", f * 100.0));
        out.push_str(&format!(
            "{:<5} {:<42} {:<24} {:<12} {:>7.1} {:<8} {:>6} {:>6} {:>6} {:>6} {:>8} {:<16}\n",
            d.info.index,
            d.info.uuid,
            d.info.model,
            d.info.class,
            d.info.memory_bytes as f64 / 1e9,
            d.health,
            num(|t| t.utilization_pct),
            sm,
            num(|t| t.memory_utilization_pct),
            num(|t| t.temperature_c),
            num(|t| t.power_w),
            d.info.pci_bus_id,
        ));
        if !d.health_reason.is_empty() {
            out.push_str(&format!("      {}\n", d.health_reason));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        d: DeviceFlags,
        #[command(flatten)]
        m: MetricsFlags,
    }

    #[test]
    fn parses_device_and_metrics_flags() {
        let t = T::try_parse_from(["t", "--fatal-xids", "79,48", "--class", "h100-80gb"]).unwrap();
        assert_eq!(t.d.fatal_xids, BTreeSet::from([48, 79]));
        let o = t.d.options("n").unwrap();
        assert_eq!(o.nvml.class.as_deref(), Some("h100-80gb"));
        assert_eq!(t.m.addr().unwrap(), Some("127.0.0.1:9400".parse().unwrap()));
        let t = T::try_parse_from(["t", "--metrics-addr", "off", "--class", "H100"]).unwrap();
        assert_eq!(t.m.addr().unwrap(), None);
        assert!(t.d.options("n").unwrap_err().contains("--class"));
        let t = T::try_parse_from(["t"]).unwrap();
        assert_eq!(
            t.d.fatal_xids,
            nvml::DEFAULT_FATAL_XIDS.into_iter().collect()
        );
        assert!(T::try_parse_from(["t", "--fatal-xids", "x"]).is_err());
    }

    #[tokio::test]
    async fn probes_simulated_devices() {
        let args = ProbeArgs {
            devices: "sim:2".into(),
            output: Format::Json,
            device: T::try_parse_from(["t"]).unwrap().d,
        };
        let report = probe(&args, "n").await.unwrap();
        assert_eq!(report.backend, "sim");
        assert_eq!(report.devices.len(), 2);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["devices"][0]["health"], "healthy");
        assert!(json["devices"][1]["telemetry"]["power_w"].as_f64().unwrap() > 0.0);
        let sm = json["devices"][1]["telemetry"]["activity"]["sm"].as_f64();
        assert!(sm.is_some_and(|f| (0.0..=1.0).contains(&f)), "{json}");
        assert!(
            json["devices"][1]["telemetry"]["energy_counter"]
                .as_bool()
                .unwrap()
        );
        assert!(
            json["devices"][1]["uuid"]
                .as_str()
                .unwrap()
                .starts_with("GPU-")
        );
        assert!(table(&report).lines().count() == 3);
    }
}
