//! The agent's `/metrics`: device telemetry under the DCGM exporter's names and labels
//! (so existing GPU dashboards work), NPUs under `berth_npu_*`, and each device's
//! health as `berth_agent_device_health`.
//!
//! GPUs (and simulated devices, which stand in for GPUs) carry the DCGM exporter's
//! labels `gpu`, `UUID`, `pci_bus_id`, `device` (`nvidia0`), `modelName`, `Hostname`;
//! NPUs `npu`, `UUID`, `modelName`, `vendor`, `Hostname`. Both add `berth_job` and
//! `berth_org`: the job and organisation on the device now, empty when idle. These
//! stay bounded: one series per device, replaced when its job changes.
//!
//! Engine activity (`DCGM_FI_PROF_GR_ENGINE_ACTIVE`, `_SM_ACTIVE`, `_PIPE_TENSOR_ACTIVE`,
//! `_DRAM_ACTIVE`) is a fraction 0..1, as DCGM gives it, where the device reports it
//! (NVML GPM on Hopper and newer, simulated devices). `DCGM_FI_DEV_SM_CLOCK` comes from
//! every backend that knows a clock, NPUs included (under the GPU labels, with `gpu`
//! the NPU's index and `device` e.g. `furiosa0`), so one clock panel shows them all.
//!
//! NVIDIA's DCGM exporter dashboard (Grafana 12239) reads, per `instance` and `gpu`:
//! `DCGM_FI_DEV_GPU_TEMP`, `_POWER_USAGE`, `_SM_CLOCK`, `_GPU_UTIL`, `_FB_USED` and
//! `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`; a GPU node of Berth serves all of them.
//!
//! Values are those of the latest sample the agent took (every heartbeat).

use crate::devices::{Assignment, DeviceBackend, DeviceError, DeviceInfo, DeviceSample, Health};
use async_trait::async_trait;
use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

/// Default address of `/metrics`.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9400";

const GPU_LABELS: [&str; 8] = [
    "gpu",
    "UUID",
    "pci_bus_id",
    "device",
    "modelName",
    "Hostname",
    "berth_job",
    "berth_org",
];
const NPU_LABELS: [&str; 7] = [
    "npu",
    "UUID",
    "modelName",
    "vendor",
    "Hostname",
    "berth_job",
    "berth_org",
];
const HEALTH_LABELS: [&str; 4] = ["UUID", "vendor", "modelName", "Hostname"];
const MIB: f64 = 1024.0 * 1024.0;

/// The agent's device metrics, on their own registry.
pub struct DeviceMetrics {
    registry: Registry,
    hostname: String,
    gpu: GpuGauges,
    npu: NpuGauges,
    health: GaugeVec,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    infos: Vec<DeviceInfo>,
    samples: Vec<DeviceSample>,
    assignments: BTreeMap<String, Assignment>,
}

struct GpuGauges {
    util: GaugeVec,
    mem_copy_util: GaugeVec,
    fb_used: GaugeVec,
    fb_free: GaugeVec,
    temp: GaugeVec,
    power: GaugeVec,
    energy: GaugeVec,
    sm_clock: GaugeVec,
    mem_clock: GaugeVec,
    xid: GaugeVec,
    ecc_dbe: GaugeVec,
    ecc_sbe: GaugeVec,
    gr_engine_active: GaugeVec,
    sm_active: GaugeVec,
    tensor_active: GaugeVec,
    dram_active: GaugeVec,
}

struct NpuGauges {
    util: GaugeVec,
    mem_used: GaugeVec,
    mem_total: GaugeVec,
    temp: GaugeVec,
    power: GaugeVec,
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

impl DeviceMetrics {
    /// Metrics for devices on host `hostname`.
    pub fn new(hostname: &str) -> Self {
        let registry = Registry::new();
        let r = &registry;
        let g = |name, help| gauge(r, name, help, &GPU_LABELS);
        let gpu = GpuGauges {
            util: g("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
            mem_copy_util: g("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %)."),
            fb_used: g("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
            fb_free: g("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
            temp: g("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
            power: g("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
            energy: g(
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                "Total energy consumption since boot (in mJ).",
            ),
            sm_clock: g("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz)."),
            mem_clock: g("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz)."),
            xid: g(
                "DCGM_FI_DEV_XID_ERRORS",
                "Value of the last XID error encountered.",
            ),
            ecc_dbe: g(
                "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
                "Total number of double-bit volatile ECC errors.",
            ),
            ecc_sbe: g(
                "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                "Total number of single-bit volatile ECC errors.",
            ),
            gr_engine_active: g(
                "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                "Ratio of time the graphics engine is active.",
            ),
            sm_active: g(
                "DCGM_FI_PROF_SM_ACTIVE",
                "The ratio of cycles an SM has at least 1 warp assigned.",
            ),
            tensor_active: g(
                "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
                "Ratio of cycles the tensor (HMMA) pipe is active.",
            ),
            dram_active: g(
                "DCGM_FI_PROF_DRAM_ACTIVE",
                "Ratio of cycles the device memory interface is active sending or receiving data.",
            ),
        };
        let n = |name, help| gauge(r, name, help, &NPU_LABELS);
        let npu = NpuGauges {
            util: n("berth_npu_utilization_percent", "NPU utilisation (in %)."),
            mem_used: n("berth_npu_memory_used_bytes", "NPU memory in use (bytes)."),
            mem_total: n(
                "berth_npu_memory_total_bytes",
                "NPU memory in total (bytes).",
            ),
            temp: n("berth_npu_temperature_celsius", "NPU temperature (in C)."),
            power: n("berth_npu_power_watts", "NPU board power draw (in W)."),
        };
        let health = gauge(
            r,
            "berth_agent_device_health",
            "Device health as the agent judges it: 0 healthy, 1 degraded, 2 failed.",
            &HEALTH_LABELS,
        );
        Self {
            registry,
            hostname: hostname.to_owned(),
            gpu,
            npu,
            health,
            state: Mutex::default(),
        }
    }

    /// Records the latest sample of the devices `infos`.
    pub fn observe(&self, infos: &[DeviceInfo], samples: &[DeviceSample]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.infos = infos.to_vec();
        state.samples = samples.to_vec();
        self.apply(&state);
    }

    /// Sets which job and organisation hold each device.
    pub fn set_assignments(&self, assignments: &BTreeMap<String, Assignment>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.assignments != *assignments {
            state.assignments = assignments.clone();
            self.apply(&state);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        // Hold the lock so a scrape never sees a half-applied update.
        let _state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut buf = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    fn apply(&self, state: &State) {
        let g = &self.gpu;
        let gpu_all = [
            &g.util,
            &g.mem_copy_util,
            &g.fb_used,
            &g.fb_free,
            &g.temp,
            &g.power,
            &g.energy,
            &g.sm_clock,
            &g.mem_clock,
            &g.xid,
            &g.ecc_dbe,
            &g.ecc_sbe,
            &g.gr_engine_active,
            &g.sm_active,
            &g.tensor_active,
            &g.dram_active,
        ];
        let n = &self.npu;
        let npu_all = [&n.util, &n.mem_used, &n.mem_total, &n.temp, &n.power];
        for v in gpu_all.iter().chain(npu_all.iter()) {
            v.reset();
        }
        self.health.reset();
        let idle = Assignment::default();
        for info in &state.infos {
            let Some(sample) = state.samples.iter().find(|s| s.uuid == info.uuid) else {
                continue;
            };
            let health = match sample.health {
                Health::Healthy => 0.0,
                Health::Degraded(_) => 1.0,
                Health::Failed(_) => 2.0,
            };
            self.health
                .with_label_values(&[&info.uuid, &info.vendor, &info.model, &self.hostname])
                .set(health);
            let Some(t) = &sample.telemetry else {
                continue;
            };
            let a = state.assignments.get(&info.uuid).unwrap_or(&idle);
            let index = info.index.to_string();
            let device = format!(
                "{}{}",
                if info.vendor == "nvidia" {
                    "nvidia"
                } else {
                    &info.vendor
                },
                info.index
            );
            let gpu_labels = [
                index.as_str(),
                &info.uuid,
                &info.pci_bus_id,
                &device,
                &info.model,
                &self.hostname,
                &a.job,
                &a.org,
            ];
            if let Some(mhz) = t.extra.sm_clock_mhz {
                g.sm_clock
                    .with_label_values(&gpu_labels)
                    .set(f64::from(mhz));
            }
            if is_npu(&info.vendor) {
                let labels = [
                    index.as_str(),
                    &info.uuid,
                    &info.model,
                    &info.vendor,
                    &self.hostname,
                    &a.job,
                    &a.org,
                ];
                n.util.with_label_values(&labels).set(t.utilization_pct);
                n.mem_used
                    .with_label_values(&labels)
                    .set(t.memory_used_bytes as f64);
                n.mem_total
                    .with_label_values(&labels)
                    .set(info.memory_bytes as f64);
                n.temp.with_label_values(&labels).set(t.temperature_c);
                n.power.with_label_values(&labels).set(t.power_w);
                continue;
            }
            let labels = gpu_labels;
            let x = &t.extra;
            let free = x
                .memory_free_bytes
                .unwrap_or_else(|| info.memory_bytes.saturating_sub(t.memory_used_bytes));
            g.util.with_label_values(&labels).set(t.utilization_pct);
            if let Some(busy) = x.memory_busy_pct {
                g.mem_copy_util.with_label_values(&labels).set(busy);
            }
            g.fb_used
                .with_label_values(&labels)
                .set((t.memory_used_bytes as f64 / MIB).round());
            g.fb_free
                .with_label_values(&labels)
                .set((free as f64 / MIB).round());
            g.temp.with_label_values(&labels).set(t.temperature_c);
            g.power.with_label_values(&labels).set(t.power_w);
            g.energy
                .with_label_values(&labels)
                .set((t.energy_j * 1000.0).round());
            if let Some(mhz) = x.memory_clock_mhz {
                g.mem_clock.with_label_values(&labels).set(f64::from(mhz));
            }
            g.xid
                .with_label_values(&labels)
                .set(x.last_xid.unwrap_or(0) as f64);
            if let Some(n) = x.ecc_uncorrected_volatile {
                g.ecc_dbe.with_label_values(&labels).set(n as f64);
            }
            if let Some(n) = x.ecc_corrected_volatile {
                g.ecc_sbe.with_label_values(&labels).set(n as f64);
            }
            let activity = [
                (&g.gr_engine_active, t.activity.gr_engine),
                (&g.sm_active, t.activity.sm),
                (&g.tensor_active, t.activity.tensor),
                (&g.dram_active, t.activity.dram),
            ];
            for (gauge, value) in activity {
                if let Some(v) = value {
                    gauge.with_label_values(&labels).set(v);
                }
            }
        }
    }
}

fn is_npu(vendor: &str) -> bool {
    matches!(vendor, "rebellions" | "furiosa")
}

/// The device assignments in a desired state: each device's job and organisation.
pub fn assignments(jobs: &[berth_proto::v1::DesiredJob]) -> BTreeMap<String, Assignment> {
    jobs.iter()
        .flat_map(|j| {
            j.devices.iter().map(|uuid| {
                (
                    uuid.clone(),
                    Assignment {
                        job: j.job_id.clone(),
                        org: j.org.clone(),
                    },
                )
            })
        })
        .collect()
}

/// A backend that records every discovery and sample into [`DeviceMetrics`].
pub struct Metered {
    inner: Arc<dyn DeviceBackend>,
    metrics: Arc<DeviceMetrics>,
    infos: Mutex<Vec<DeviceInfo>>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn DeviceBackend>, metrics: Arc<DeviceMetrics>) -> Self {
        Self {
            inner,
            metrics,
            infos: Mutex::default(),
        }
    }
}

#[async_trait]
impl DeviceBackend for Metered {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        let infos = self.inner.discover().await?;
        *self.infos.lock().unwrap_or_else(PoisonError::into_inner) = infos.clone();
        Ok(infos)
    }

    async fn sample(&self) -> Result<Vec<DeviceSample>, DeviceError> {
        let samples = self.inner.sample().await?;
        let infos = self
            .infos
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.metrics.observe(&infos, &samples);
        Ok(samples)
    }

    fn set_busy(&self, uuids: &BTreeSet<String>) {
        self.inner.set_busy(uuids);
    }

    fn set_assignments(&self, assignments: &BTreeMap<String, Assignment>) {
        self.metrics.set_assignments(assignments);
        self.inner.set_assignments(assignments);
    }
}

/// Serves `/metrics` on `addr` until `shutdown`; returns the bound address (the port
/// may have been 0).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<DeviceMetrics>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    use axum::http::header;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(error) = server.await {
            tracing::warn!(%error, "metrics server stopped");
        }
    });
    tracing::info!(addr = %bound, "serving /metrics");
    Ok(bound)
}

/// Wraps `devices` so its samples feed `/metrics`, served on `addr` until `shutdown`;
/// `devices` unchanged when `addr` is `None`.
pub async fn instrument(
    addr: Option<SocketAddr>,
    hostname: &str,
    devices: Arc<dyn DeviceBackend>,
    shutdown: &CancellationToken,
) -> Result<Arc<dyn DeviceBackend>, crate::AgentError> {
    let Some(addr) = addr else {
        return Ok(devices);
    };
    let metrics = Arc::new(DeviceMetrics::new(hostname));
    serve(addr, metrics.clone(), shutdown.child_token())
        .await
        .map_err(|e| crate::AgentError::Config(format!("cannot serve /metrics on {addr}: {e}")))?;
    Ok(Arc::new(Metered::new(devices, metrics)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{Activity, Telemetry, TelemetryExtra};

    fn info(uuid: &str, vendor: &str, index: u32) -> DeviceInfo {
        DeviceInfo {
            uuid: uuid.into(),
            index,
            class: "c".into(),
            vendor: vendor.into(),
            model: "NVIDIA H100 80GB HBM3".into(),
            memory_bytes: 80 << 30,
            pci_bus_id: "00000000:1B:00.0".into(),
            device_nodes: Vec::new(),
        }
    }

    fn sample(uuid: &str, health: Health) -> DeviceSample {
        DeviceSample {
            uuid: uuid.into(),
            health,
            telemetry: Some(Telemetry {
                sampled_at_ms: 1,
                utilization_pct: 42.0,
                memory_used_bytes: 2 << 30,
                memory_utilization_pct: 2.5,
                temperature_c: 50.0,
                power_w: 300.5,
                energy_j: 12.345,
                energy_counter: true,
                activity: Activity {
                    gr_engine: Some(0.75),
                    sm: Some(0.5),
                    tensor: Some(0.25),
                    dram: None,
                },
                extra: TelemetryExtra {
                    last_xid: Some(79),
                    ecc_uncorrected_volatile: Some(1),
                    sm_clock_mhz: Some(1980),
                    ..TelemetryExtra::default()
                },
            }),
        }
    }

    #[test]
    fn renders_dcgm_names_labels_and_units() {
        let m = DeviceMetrics::new("host-a");
        m.observe(
            &[info("GPU-a", "nvidia", 0), info("NPU-b", "rebellions", 1)],
            &[
                sample("GPU-a", Health::Failed("XID 79".into())),
                sample("NPU-b", Health::Healthy),
            ],
        );
        let text = m.render();
        let gpu_labels = r#"Hostname="host-a",UUID="GPU-a",berth_job="",berth_org="",device="nvidia0",gpu="0",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:1B:00.0""#;
        for line in [
            format!("DCGM_FI_DEV_GPU_UTIL{{{gpu_labels}}} 42"),
            format!("DCGM_FI_DEV_FB_USED{{{gpu_labels}}} 2048"),
            format!("DCGM_FI_DEV_FB_FREE{{{gpu_labels}}} 79872"),
            format!("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{gpu_labels}}} 12345"),
            format!("DCGM_FI_DEV_XID_ERRORS{{{gpu_labels}}} 79"),
            format!("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{gpu_labels}}} 1"),
            format!("DCGM_FI_DEV_SM_CLOCK{{{gpu_labels}}} 1980"),
            format!("DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{gpu_labels}}} 0.75"),
            format!("DCGM_FI_PROF_SM_ACTIVE{{{gpu_labels}}} 0.5"),
            format!("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{gpu_labels}}} 0.25"),
            // The NPU's clock too, under the GPU labels.
            r#"DCGM_FI_DEV_SM_CLOCK{Hostname="host-a",UUID="NPU-b",berth_job="",berth_org="",device="rebellions1",gpu="1",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:1B:00.0"} 1980"#.to_owned(),
            r#"berth_agent_device_health{Hostname="host-a",UUID="GPU-a",modelName="NVIDIA H100 80GB HBM3",vendor="nvidia"} 2"#.to_owned(),
            r#"berth_npu_power_watts{Hostname="host-a",UUID="NPU-b",berth_job="",berth_org="",modelName="NVIDIA H100 80GB HBM3",npu="1",vendor="rebellions"} 300.5"#.to_owned(),
        ] {
            assert!(text.contains(&line), "missing {line}\n{text}");
        }
        assert!(!text.contains("DCGM_FI_DEV_GPU_UTIL{Hostname=\"host-a\",UUID=\"NPU-b\""));
        // Unknown activity is left out, not reported as 0.
        assert!(!text.contains("DCGM_FI_PROF_DRAM_ACTIVE{"), "{text}");
        assert!(!text.contains("DCGM_FI_PROF_SM_ACTIVE{Hostname=\"host-a\",UUID=\"NPU-b\""));

        // A job takes the GPU: its series is replaced, not added to.
        m.set_assignments(&BTreeMap::from([(
            "GPU-a".to_owned(),
            Assignment {
                job: "j1".into(),
                org: "acme".into(),
            },
        )]));
        let text = m.render();
        assert!(
            text.contains(r#"berth_job="j1",berth_org="acme""#),
            "{text}"
        );
        assert_eq!(text.matches("DCGM_FI_DEV_GPU_UTIL{").count(), 1, "{text}");
    }

    #[test]
    fn assignments_from_desired_jobs() {
        let jobs = vec![berth_proto::v1::DesiredJob {
            job_id: "j".into(),
            org: "o".into(),
            devices: vec!["a".into(), "b".into()],
            ..Default::default()
        }];
        let a = assignments(&jobs);
        assert_eq!(a.len(), 2);
        assert_eq!(a["b"].org, "o");
    }
}
