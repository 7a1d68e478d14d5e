//! NVIDIA GPUs through NVML (`nvml-wrapper`, which loads `libnvidia-ml.so.1` at run
//! time, so the agent has no link-time dependency on the driver).
//!
//! NVML handles borrow the library handle, so one worker thread owns the library,
//! the device handles and the XID event set; `sample()` sends it a request and
//! awaits the answer. NVML calls can block for milliseconds; none of that runs on the
//! async runtime. Each sample first drains the event set (without waiting) so XID
//! events are seen on the very next sample, then reads every device.
//!
//! Health, per device:
//! - an XID in the fatal set (default {48, 63, 64, 74, 79, 94, 95}, `--fatal-xids`)
//!   → failed, and stays failed until the agent restarts;
//! - a query answering `NVML_ERROR_GPU_IS_LOST` → failed ("lost from the bus"), sticky;
//! - volatile uncorrected ECC errors > 0, or a failed row remapping → failed;
//! - a pending row remapping → degraded (the GPU wants a reset).
//!
//! Engine activity (Hopper and newer, where `nvmlGpmQueryDeviceSupport` says so): each
//! sample takes a GPM sample of the GPU and computes, from it and the previous one,
//! graphics-engine, SM, tensor-pipe and DRAM activity over the interval between them
//! (`nvmlGpmMetricsGet`; percentages, reported as fractions under the DCGM exporter's
//! `DCGM_FI_PROF_*` names). NVML wants the two samples at least 100 ms apart; a sample
//! closer than that to the previous one repeats the activity computed then and keeps
//! the older GPM sample. Older GPUs, or drivers without GPM, have only `GPU_UTIL`.
//!
//! Energy comes from the GPU's total energy counter (Volta and newer; millijoules since
//! the driver loaded).

use super::{Activity, DeviceError, DeviceInfo, DeviceSample, Health, Telemetry, TelemetryExtra};
use async_trait::async_trait;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, RetirementCause, TemperatureSensor,
};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::{GpmSample, gpm_metrics_get};
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id;
use nvml_wrapper::{Device, EventSet, Nvml};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The library loaded when no path is given.
pub const DEFAULT_LIB: &str = "libnvidia-ml.so.1";
/// XIDs that mark a GPU failed unless `--fatal-xids` says otherwise.
pub const DEFAULT_FATAL_XIDS: [u64; 7] = [48, 63, 64, 74, 79, 94, 95];
/// At most this many events are taken from the event set per sample.
const MAX_EVENTS_PER_SAMPLE: usize = 1024;
/// The shortest interval NVML computes GPM metrics over.
const MIN_GPM_INTERVAL: Duration = Duration::from_millis(100);
/// The GPM metrics read, in the order of [`Activity`]'s fields.
const GPM_METRICS: [GpmMetricId; 4] = [
    GpmMetricId::GraphicsUtil,
    GpmMetricId::SmUtil,
    GpmMetricId::AnyTensorUtil,
    GpmMetricId::DramBwUtil,
];

/// How to open NVML.
#[derive(Debug, Clone)]
pub struct NvmlOptions {
    /// The library to load; default [`DEFAULT_LIB`] (found by the dynamic loader).
    pub lib_path: Option<PathBuf>,
    /// XIDs that mark a device failed.
    pub fatal_xids: BTreeSet<u64>,
    /// Device class for every GPU; default derived from the model ([`class_from_model`]).
    pub class: Option<String>,
}

impl Default for NvmlOptions {
    fn default() -> Self {
        Self {
            lib_path: None,
            fatal_xids: DEFAULT_FATAL_XIDS.into_iter().collect(),
            class: None,
        }
    }
}

/// Parses `48,63,79` into a set of XIDs.
pub fn parse_xids(text: &str) -> Result<BTreeSet<u64>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| format!("invalid XID {t:?}: expected numbers such as 48,79"))
        })
        .collect()
}

/// What an XID means, for health reasons (NVIDIA's XID catalogue, abridged).
pub fn xid_meaning(xid: u64) -> &'static str {
    match xid {
        13 => "graphics engine exception",
        31 => "GPU memory page fault",
        43 => "GPU stopped processing",
        45 => "preemptive cleanup",
        48 => "double-bit ECC error",
        61 | 62 => "internal micro-controller error",
        63 => "ECC page retirement or row remapping event",
        64 => "ECC page retirement or row remapping failure",
        74 => "NVLink error",
        79 => "GPU has fallen off the bus",
        92 => "high single-bit ECC error rate",
        94 => "contained ECC error",
        95 => "uncontained ECC error",
        119 | 120 => "GSP error",
        _ => "see NVIDIA's XID catalogue",
    }
}

/// The device class for a GPU model: `NVIDIA H100 80GB HBM3` → `h100-80gb`,
/// `NVIDIA A100-SXM4-40GB` → `a100-40gb`. Vendor words and form factors (SXM, PCIe,
/// HBM) are dropped; the memory size (rounded GiB) is appended when the name has none.
pub fn class_from_model(model: &str, memory_bytes: u64) -> String {
    const DROP: [&str; 5] = ["nvidia", "tesla", "pcie", "nvl", "sxm"];
    let lower = model.to_ascii_lowercase();
    let mut tokens: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .filter(|t| !DROP.iter().any(|d| t == d))
        .filter(|t| !(t.starts_with("sxm") || t.starts_with("hbm")))
        .collect();
    let is_mem =
        |t: &str| t.ends_with("gb") && t[..t.len() - 2].chars().all(|c| c.is_ascii_digit());
    let mem_token;
    if !tokens.iter().any(|t| is_mem(t)) && memory_bytes > 0 {
        let gib = (memory_bytes as f64 / f64::from(1u32 << 30)).round() as u64;
        mem_token = format!("{gib}gb");
        tokens.push(&mem_token);
    }
    let mut class = tokens.join("-");
    class.truncate(63);
    let class = class.trim_end_matches('-').to_owned();
    if berth_proto::model::name("class", &class).is_ok() {
        class
    } else {
        "gpu".to_owned()
    }
}

/// Judges a device's health from what was read. `sticky` is a failure seen earlier
/// (a fatal XID, lost from the bus) that holds until the agent restarts.
pub fn judge(sticky: Option<&str>, extra: &TelemetryExtra) -> Health {
    if let Some(reason) = sticky {
        return Health::Failed(reason.to_owned());
    }
    if let Some(n) = extra.ecc_uncorrected_volatile.filter(|n| *n > 0) {
        return Health::Failed(format!(
            "uncorrectable ECC error ({n} since the driver loaded)"
        ));
    }
    if extra.remapping_failed == Some(true) {
        return Health::Failed("row remapping failed; the GPU needs service".to_owned());
    }
    if extra.remapping_pending == Some(true) {
        return Health::Degraded("row remapping pending; the GPU needs a reset".to_owned());
    }
    Health::Healthy
}

/// The reason for a fatal XID.
pub fn xid_reason(xid: u64) -> String {
    format!("XID {xid} ({})", xid_meaning(xid))
}

const LOST_REASON: &str = "lost from the bus (NVML: GPU is lost)";

type SampleReply = oneshot::Sender<Result<Vec<DeviceSample>, DeviceError>>;

/// NVIDIA GPUs through NVML.
pub struct NvmlBackend {
    devices: Vec<DeviceInfo>,
    requests: mpsc::Sender<SampleReply>,
}

impl std::fmt::Debug for NvmlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlBackend")
            .field("devices", &self.devices.len())
            .finish()
    }
}

impl NvmlBackend {
    /// Loads NVML, lists the GPUs and subscribes to their XID events. A missing
    /// library, a driver that is not loaded or a GPU that cannot be read is an error.
    pub async fn open(options: NvmlOptions) -> Result<Self, DeviceError> {
        let (init_tx, init_rx) = oneshot::channel();
        let (requests, rx) = mpsc::channel::<SampleReply>();
        std::thread::Builder::new()
            .name("berth-nvml".to_owned())
            .spawn(move || worker(&options, init_tx, &rx))
            .map_err(|e| DeviceError(format!("nvml: cannot start its worker thread: {e}")))?;
        let devices = init_rx.await.map_err(|_| {
            DeviceError("nvml: the worker thread ended while starting".to_owned())
        })??;
        Ok(Self { devices, requests })
    }
}

#[async_trait]
impl super::DeviceBackend for NvmlBackend {
    fn name(&self) -> &'static str {
        "nvml"
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        Ok(self.devices.clone())
    }

    async fn sample(&self) -> Result<Vec<DeviceSample>, DeviceError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .map_err(|_| DeviceError("nvml: the worker thread has stopped".to_owned()))?;
        rx.await
            .map_err(|_| DeviceError("nvml: the worker thread has stopped".to_owned()))?
    }
}

/// A clear message for an NVML error met while opening.
fn open_error(path: &str, error: &NvmlError) -> DeviceError {
    let what = match error {
        NvmlError::LibloadingError(e) => format!(
            "cannot load the NVIDIA management library {path:?} ({e}); is the NVIDIA driver installed?"
        ),
        NvmlError::FailedToLoadSymbol(e) => {
            format!("{path:?} is not a usable NVML library: {e}")
        }
        NvmlError::DriverNotLoaded => {
            format!("{path:?} loaded but the NVIDIA kernel driver is not running")
        }
        NvmlError::NoPermission => format!("no permission to talk to the NVIDIA driver ({path})"),
        other => format!("NVML initialisation through {path:?} failed: {other}"),
    };
    DeviceError(format!("nvml: {what}"))
}

/// Per-device state kept by the worker.
#[derive(Default)]
struct GpuState {
    sticky: Option<String>,
    last_xid: Option<u64>,
}

/// A GPU's GPM state: whether it has GPM, its latest GPM sample and the activity last
/// computed.
enum Gpm<'n> {
    /// No GPM (before Hopper, or a driver without it): activity stays unknown.
    Unsupported,
    /// GPM is supported.
    Supported {
        /// The latest GPM sample and when it was taken.
        last: Option<(GpmSample<'n>, Instant)>,
        /// The activity computed at the latest sample.
        activity: Activity,
    },
}

impl<'n> Gpm<'n> {
    /// Asks the GPU whether it has GPM.
    fn probe(gpu: &Device<'n>, uuid: &str) -> Self {
        match gpu.gpm_support() {
            Ok(true) => Gpm::Supported {
                last: None,
                activity: Activity::default(),
            },
            Ok(false) => {
                tracing::info!(%uuid, "nvml: no GPM on this GPU; utilisation is GPU_UTIL");
                Gpm::Unsupported
            }
            Err(error) => {
                tracing::info!(%uuid, %error, "nvml: cannot query GPM; utilisation is GPU_UTIL");
                Gpm::Unsupported
            }
        }
    }

    /// Takes a GPM sample and returns the activity since the previous one. Within
    /// [`MIN_GPM_INTERVAL`] of the previous sample, the activity computed then.
    fn activity(&mut self, nvml: &'n Nvml, gpu: &Device<'n>, lost: &mut bool) -> Activity {
        let Gpm::Supported { last, activity } = self else {
            return Activity::default();
        };
        let now = Instant::now();
        if last
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at) < MIN_GPM_INTERVAL)
        {
            return *activity;
        }
        let Some(sample) = ok(gpu.gpm_sample(), lost) else {
            *last = None;
            *activity = Activity::default();
            return *activity;
        };
        // Stamped once taken, so the next check never undercounts the interval.
        let taken = Instant::now();
        *activity = match last.take() {
            Some((previous, _)) => match gpm_metrics_get(nvml, &previous, &sample, &GPM_METRICS) {
                Ok(values) => {
                    let fraction = |i: usize| {
                        values
                            .get(i)
                            .and_then(|v| v.as_ref().ok())
                            .map(|m| m.value / 100.0)
                            .filter(|f| f.is_finite())
                            .map(|f| f.clamp(0.0, 1.0))
                    };
                    Activity {
                        gr_engine: fraction(0),
                        sm: fraction(1),
                        tensor: fraction(2),
                        dram: fraction(3),
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "nvml: cannot compute GPM metrics");
                    Activity::default()
                }
            },
            None => Activity::default(),
        };
        *last = Some((sample, taken));
        *activity
    }
}

fn worker(
    options: &NvmlOptions,
    init: oneshot::Sender<Result<Vec<DeviceInfo>, DeviceError>>,
    requests: &mpsc::Receiver<SampleReply>,
) {
    let path = options
        .lib_path
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LIB));
    let shown = path.display().to_string();
    let nvml = match Nvml::builder().lib_path(path.as_os_str()).init() {
        Ok(nvml) => nvml,
        Err(e) => {
            let _ = init.send(Err(open_error(&shown, &e)));
            return;
        }
    };
    let (gpus, infos) = match discover(&nvml, options) {
        Ok(found) => found,
        Err(e) => {
            let _ = init.send(Err(e));
            return;
        }
    };
    let events = subscribe(&nvml, &gpus);
    let index_of: HashMap<String, usize> = infos
        .iter()
        .enumerate()
        .map(|(i, d)| (d.uuid.clone(), i))
        .collect();
    let mut states: Vec<GpuState> = infos.iter().map(|_| GpuState::default()).collect();
    let mut gpms: Vec<Gpm<'_>> = gpus
        .iter()
        .zip(&infos)
        .map(|(gpu, info)| Gpm::probe(gpu, &info.uuid))
        .collect();
    if init.send(Ok(infos.clone())).is_err() {
        return;
    }
    while let Ok(reply) = requests.recv() {
        if let Some(set) = &events {
            drain_events(set, &index_of, &mut states, &options.fatal_xids);
        }
        let now = berth_proto::time::now_ms();
        let samples = gpus
            .iter()
            .zip(&infos)
            .zip(states.iter_mut())
            .zip(gpms.iter_mut())
            .map(|(((gpu, info), state), gpm)| read(&nvml, gpu, gpm, info, state, now))
            .collect();
        let _ = reply.send(Ok(samples));
    }
}

fn discover<'n>(
    nvml: &'n Nvml,
    options: &NvmlOptions,
) -> Result<(Vec<Device<'n>>, Vec<DeviceInfo>), DeviceError> {
    let err = |what: &str, e: NvmlError| DeviceError(format!("nvml: cannot read {what}: {e}"));
    let count = nvml.device_count().map_err(|e| err("the GPU count", e))?;
    let mut gpus = Vec::new();
    let mut infos = Vec::new();
    for i in 0..count {
        let gpu = nvml
            .device_by_index(i)
            .map_err(|e| err(&format!("GPU {i}"), e))?;
        let uuid = gpu.uuid().map_err(|e| err(&format!("GPU {i}'s UUID"), e))?;
        let model = gpu.name().map_err(|e| err(&format!("{uuid}'s name"), e))?;
        let memory = gpu
            .memory_info()
            .map_err(|e| err(&format!("{uuid}'s memory"), e))?;
        let pci = gpu
            .pci_info()
            .map_err(|e| err(&format!("{uuid}'s PCI bus id"), e))?;
        let class = options
            .class
            .clone()
            .unwrap_or_else(|| class_from_model(&model, memory.total));
        infos.push(DeviceInfo {
            uuid,
            index: gpu.index().unwrap_or(i),
            class,
            vendor: "nvidia".to_owned(),
            model,
            memory_bytes: memory.total,
            pci_bus_id: pci.bus_id,
            device_nodes: Vec::new(),
        });
        gpus.push(gpu);
    }
    Ok((gpus, infos))
}

/// An event set with every GPU's XID events, or `None` (logged) when NVML cannot.
fn subscribe<'n>(nvml: &'n Nvml, gpus: &[Device<'n>]) -> Option<EventSet<'n>> {
    let mut set = match nvml.create_event_set() {
        Ok(set) => set,
        Err(error) => {
            tracing::warn!(%error, "nvml: cannot create an event set; XID errors will not be seen");
            return None;
        }
    };
    for gpu in gpus {
        let supported = gpu
            .supported_event_types()
            .is_ok_and(|t| t.contains(EventTypes::CRITICAL_XID_ERROR));
        if !supported {
            tracing::warn!(uuid = ?gpu.uuid().ok(), "nvml: GPU does not report XID events");
            continue;
        }
        set = match gpu.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(set) => set,
            Err(error) => {
                tracing::warn!(%error, "nvml: cannot subscribe to XID events; XID errors will not be seen");
                return None;
            }
        };
    }
    Some(set)
}

fn drain_events(
    set: &EventSet<'_>,
    index_of: &HashMap<String, usize>,
    states: &mut [GpuState],
    fatal: &BTreeSet<u64>,
) {
    for _ in 0..MAX_EVENTS_PER_SAMPLE {
        let event = match set.wait(0) {
            Ok(event) => event,
            Err(NvmlError::Timeout) => return,
            Err(error) => {
                tracing::warn!(%error, "nvml: cannot read events");
                return;
            }
        };
        let Some(XidError::Value(xid)) = event.event_data else {
            continue;
        };
        let Some(&i) = event
            .device
            .uuid()
            .ok()
            .and_then(|uuid| index_of.get(&uuid))
        else {
            continue;
        };
        let state = &mut states[i];
        state.last_xid = Some(xid);
        if fatal.contains(&xid) {
            tracing::warn!(
                xid,
                reason = xid_meaning(xid),
                "nvml: fatal XID; the GPU is failed"
            );
            state.sticky.get_or_insert_with(|| xid_reason(xid));
        } else {
            tracing::info!(xid, reason = xid_meaning(xid), "nvml: XID event");
        }
    }
}

/// Keeps a value, notes a lost GPU, and drops what the device does not support.
fn ok<T>(result: Result<T, NvmlError>, lost: &mut bool) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(NvmlError::GpuLost) => {
            *lost = true;
            None
        }
        Err(_) => None,
    }
}

fn read<'n>(
    nvml: &'n Nvml,
    gpu: &Device<'n>,
    gpm: &mut Gpm<'n>,
    info: &DeviceInfo,
    state: &mut GpuState,
    now_ms: i64,
) -> DeviceSample {
    let mut lost = false;
    let memory = ok(gpu.memory_info(), &mut lost);
    let util = ok(gpu.utilization_rates(), &mut lost);
    let temperature = ok(gpu.temperature(TemperatureSensor::Gpu), &mut lost);
    let power_mw = ok(gpu.power_usage(), &mut lost);
    let energy_mj = ok(gpu.total_energy_consumption(), &mut lost);
    let activity = gpm.activity(nvml, gpu, &mut lost);
    let retired = [
        RetirementCause::MultipleSingleBitEccErrors,
        RetirementCause::DoubleBitEccError,
    ]
    .into_iter()
    .map(|cause| ok(gpu.retired_pages(cause), &mut lost).map(|p| p.len() as u64))
    .try_fold(0u64, |sum, n| n.map(|n| sum + n));
    let remap = ok(
        gpu.field_values_for(&[
            FieldId(field_id::NVML_FI_DEV_REMAPPED_COR),
            FieldId(field_id::NVML_FI_DEV_REMAPPED_UNC),
            FieldId(field_id::NVML_FI_DEV_REMAPPED_PENDING),
            FieldId(field_id::NVML_FI_DEV_REMAPPED_FAILURE),
        ]),
        &mut lost,
    )
    .map(|values| {
        values
            .into_iter()
            .map(|v| match v.ok().and_then(|v| v.value.ok()) {
                Some(SampleValue::U64(n)) => Some(n),
                Some(SampleValue::U32(n)) => Some(u64::from(n)),
                Some(SampleValue::I64(n)) => u64::try_from(n).ok(),
                _ => None,
            })
            .collect::<Vec<_>>()
    })
    .unwrap_or_default();
    let field = |i: usize| remap.get(i).copied().flatten();
    let extra = TelemetryExtra {
        memory_free_bytes: memory.as_ref().map(|m| m.free),
        memory_busy_pct: util.as_ref().map(|u| f64::from(u.memory)),
        sm_clock_mhz: ok(gpu.clock_info(Clock::SM), &mut lost),
        memory_clock_mhz: ok(gpu.clock_info(Clock::Memory), &mut lost),
        ecc_corrected_volatile: ok(
            gpu.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
            &mut lost,
        ),
        ecc_uncorrected_volatile: ok(
            gpu.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
            &mut lost,
        ),
        retired_pages: retired,
        remapped_rows_correctable: field(0),
        remapped_rows_uncorrectable: field(1),
        remapping_pending: field(2).map(|n| n > 0),
        remapping_failed: field(3).map(|n| n > 0),
        mig_enabled: ok(gpu.mig_mode(), &mut lost).map(|m| m.current == 1),
        last_xid: state.last_xid,
    };
    if lost && state.sticky.is_none() {
        tracing::warn!(uuid = %info.uuid, "nvml: GPU lost from the bus");
        state.sticky = Some(LOST_REASON.to_owned());
    }
    let health = judge(state.sticky.as_deref(), &extra);
    let telemetry = match (lost, memory) {
        (false, Some(memory)) => Some(Telemetry {
            sampled_at_ms: now_ms,
            utilization_pct: util.as_ref().map_or(0.0, |u| f64::from(u.gpu)),
            memory_used_bytes: memory.used,
            memory_utilization_pct: if memory.total > 0 {
                memory.used as f64 / memory.total as f64 * 100.0
            } else {
                0.0
            },
            temperature_c: temperature.map_or(0.0, f64::from),
            power_w: power_mw.map_or(0.0, |mw| f64::from(mw) / 1000.0),
            energy_j: energy_mj.map_or(0.0, |mj| mj as f64 / 1000.0),
            energy_counter: energy_mj.is_some(),
            activity,
            extra,
        }),
        _ => None,
    };
    DeviceSample {
        uuid: info.uuid.clone(),
        health,
        telemetry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_from_models() {
        let gib = 1u64 << 30;
        let cases = [
            ("NVIDIA H100 80GB HBM3", 80 * gib, "h100-80gb"),
            ("NVIDIA A100-SXM4-40GB", 40 * gib, "a100-40gb"),
            ("Tesla V100-SXM2-16GB", 16 * gib, "v100-16gb"),
            ("NVIDIA H100 PCIe", 81559 << 20, "h100-80gb"),
            ("NVIDIA H200", 141 * gib, "h200-141gb"),
            ("NVIDIA L40S", 46068 << 20, "l40s-45gb"),
            ("NVIDIA GeForce RTX 4090", 24 * gib, "geforce-rtx-4090-24gb"),
            ("???", 0, "gpu"),
        ];
        for (model, mem, want) in cases {
            assert_eq!(class_from_model(model, mem), want, "{model}");
        }
    }

    #[test]
    fn parses_xid_lists() {
        assert_eq!(parse_xids("48, 79,94"), Ok(BTreeSet::from([48, 79, 94])));
        assert_eq!(parse_xids(""), Ok(BTreeSet::new()));
        assert!(
            parse_xids("48,x")
                .unwrap_err()
                .contains("invalid XID \"x\"")
        );
        assert_eq!(xid_reason(79), "XID 79 (GPU has fallen off the bus)");
    }

    #[test]
    fn judges_health() {
        let clean = TelemetryExtra::default();
        assert_eq!(judge(None, &clean), Health::Healthy);
        assert_eq!(
            judge(Some("XID 79 (GPU has fallen off the bus)"), &clean),
            Health::Failed("XID 79 (GPU has fallen off the bus)".into())
        );
        let ecc = TelemetryExtra {
            ecc_uncorrected_volatile: Some(2),
            ecc_corrected_volatile: Some(100),
            ..TelemetryExtra::default()
        };
        assert_eq!(
            judge(None, &ecc),
            Health::Failed("uncorrectable ECC error (2 since the driver loaded)".into())
        );
        let corrected_only = TelemetryExtra {
            ecc_uncorrected_volatile: Some(0),
            ecc_corrected_volatile: Some(100),
            ..TelemetryExtra::default()
        };
        assert_eq!(judge(None, &corrected_only), Health::Healthy);
        let pending = TelemetryExtra {
            remapping_pending: Some(true),
            ..TelemetryExtra::default()
        };
        assert!(matches!(judge(None, &pending), Health::Degraded(_)));
        let failed = TelemetryExtra {
            remapping_failed: Some(true),
            ..pending
        };
        assert!(matches!(judge(None, &failed), Health::Failed(_)));
    }
}
