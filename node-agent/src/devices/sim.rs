//! Simulated GPUs for development, tests and `berth up`.
//!
//! UUIDs are derived from the node name and index, so a node keeps its devices across
//! agent restarts. Telemetry is synthetic but plausible: idle devices sit at 0–3 %
//! utilisation, busy ones at 60–100 %; temperature and power follow the load and the
//! energy counter integrates power over time. Engine activity looks like a Hopper
//! GPU's GPM counters: SM activity below the engine's, tensor and DRAM activity below
//! the SMs', all near zero when idle; the SM clock boosts under load.

use super::{
    Activity, DeviceBackend, DeviceError, DeviceInfo, DeviceSample, Health, Telemetry,
    TelemetryExtra,
};
use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Memory of one simulated device: 80 GiB.
pub const SIM_MEMORY_BYTES: u64 = 80 << 30;
/// Model name of simulated devices.
pub const SIM_MODEL: &str = "Berth Simulated GPU 80GB";
/// Vendor of simulated devices.
pub const SIM_VENDOR: &str = "sim";

const IDLE_TEMP_C: f64 = 30.0;
const MAX_TEMP_C: f64 = 80.0;
const IDLE_POWER_W: f64 = 60.0;
const MAX_POWER_W: f64 = 700.0;
/// Time constant of the temperature's approach to its load-dependent target.
const THERMAL_TAU_S: f64 = 20.0;
const IDLE_MEMORY_MAX: u64 = 512 << 20;
/// SM clock of an idle device and the range of a busy one, MHz (an H100's).
const IDLE_SM_CLOCK_MHZ: u32 = 345;
const BUSY_SM_CLOCK_MHZ: std::ops::RangeInclusive<u32> = 1755..=1980;
/// Memory clock, MHz (HBM3).
const MEMORY_CLOCK_MHZ: u32 = 2619;

/// The UUID of simulated device `index` on `node`: stable, and formatted like NVIDIA's.
pub fn sim_uuid(node: &str, index: u32) -> String {
    let digest = Sha256::new()
        .chain_update(b"berth-sim-device\0")
        .chain_update(node.as_bytes())
        .chain_update(b"\0")
        .chain_update(index.to_be_bytes())
        .finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The PCI bus id of simulated device `index`, e.g. `00000000:1B:00.0`.
pub fn sim_pci_bus_id(index: u32) -> String {
    let bus = 0x1B + index;
    format!("{:08X}:{:02X}:00.0", bus / 256, bus % 256)
}

/// The simulated backend: `count` devices of one class.
pub struct SimBackend {
    devices: Vec<DeviceInfo>,
    state: Mutex<SimState>,
}

struct SimState {
    rng: StdRng,
    busy: BTreeSet<String>,
    last: Option<Instant>,
    devices: Vec<DeviceState>,
}

/// The evolving physical state of one simulated device.
#[derive(Debug, Clone, PartialEq)]
struct DeviceState {
    utilization_pct: f64,
    memory_used_bytes: u64,
    temperature_c: f64,
    power_w: f64,
    energy_j: f64,
    activity: Activity,
    sm_clock_mhz: u32,
}

impl DeviceState {
    fn idle() -> Self {
        Self {
            utilization_pct: 0.0,
            memory_used_bytes: 0,
            temperature_c: IDLE_TEMP_C + 2.0,
            power_w: IDLE_POWER_W,
            energy_j: 0.0,
            activity: Activity::default(),
            sm_clock_mhz: IDLE_SM_CLOCK_MHZ,
        }
    }

    /// Advances the device by `dt_s` seconds with or without a job on it.
    fn step(&mut self, dt_s: f64, busy: bool, rng: &mut StdRng) {
        let was_busy = self.utilization_pct >= 50.0;
        self.utilization_pct = if busy {
            rng.random_range(60.0..=100.0)
        } else {
            rng.random_range(0.0..=3.0)
        };
        self.memory_used_bytes = match (busy, was_busy) {
            // A job holds what it allocated.
            (true, true) if self.memory_used_bytes > IDLE_MEMORY_MAX => self.memory_used_bytes,
            (true, _) => rng.random_range(SIM_MEMORY_BYTES * 2 / 5..=SIM_MEMORY_BYTES * 9 / 10),
            (false, _) => rng.random_range(0..=IDLE_MEMORY_MAX),
        };
        let load = self.utilization_pct / 100.0;
        let target_temp = IDLE_TEMP_C + (MAX_TEMP_C - IDLE_TEMP_C) * load;
        let approach = 1.0 - (-dt_s.max(0.0) / THERMAL_TAU_S).exp();
        self.temperature_c = (self.temperature_c + (target_temp - self.temperature_c) * approach)
            .clamp(IDLE_TEMP_C, MAX_TEMP_C);
        let noise = rng.random_range(-5.0..=5.0);
        let power = (IDLE_POWER_W + (MAX_POWER_W - IDLE_POWER_W) * load + noise)
            .clamp(IDLE_POWER_W, MAX_POWER_W);
        self.energy_j += crate::evidence::trapezoid_j(self.power_w, power, dt_s);
        self.power_w = power;
        // The engine is active as often as the device is busy; SMs less, tensor pipes
        // and DRAM less again. Idle: a stray kernel now and then, no tensor work.
        let gr = load;
        let sm = gr
            * if busy {
                rng.random_range(0.55..=0.95)
            } else {
                rng.random_range(0.0..=0.5)
            };
        let (tensor, dram) = if busy {
            (
                sm * rng.random_range(0.2..=0.8),
                sm * rng.random_range(0.2..=0.7),
            )
        } else {
            (0.0, sm * rng.random_range(0.0..=0.2))
        };
        self.activity = Activity {
            gr_engine: Some(gr),
            sm: Some(sm),
            tensor: Some(tensor),
            dram: Some(dram),
        };
        self.sm_clock_mhz = if busy {
            rng.random_range(BUSY_SM_CLOCK_MHZ)
        } else {
            IDLE_SM_CLOCK_MHZ
        };
    }
}

impl SimBackend {
    /// `count` simulated devices of class `class` on node `node`.
    pub fn new(node: &str, count: u32, class: &str) -> Self {
        let devices = (0..count)
            .map(|index| DeviceInfo {
                uuid: sim_uuid(node, index),
                index,
                class: class.to_owned(),
                vendor: SIM_VENDOR.to_owned(),
                model: SIM_MODEL.to_owned(),
                memory_bytes: SIM_MEMORY_BYTES,
                pci_bus_id: sim_pci_bus_id(index),
                device_nodes: Vec::new(),
            })
            .collect();
        let seed = Sha256::digest(node.as_bytes());
        let mut seed_bytes = [0u8; 32];
        seed_bytes.copy_from_slice(&seed);
        Self {
            devices,
            state: Mutex::new(SimState {
                rng: StdRng::from_seed(seed_bytes),
                busy: BTreeSet::new(),
                last: None,
                devices: vec![DeviceState::idle(); count as usize],
            }),
        }
    }

    /// Samples as of monotonic instant `now` (tests drive time with it).
    fn sample_at(&self, now: Instant, now_ms: i64) -> Vec<DeviceSample> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        let dt_s = state
            .last
            .map(|last| now.saturating_duration_since(last).as_secs_f64())
            .unwrap_or(0.0);
        state.last = Some(now);
        self.devices
            .iter()
            .zip(state.devices.iter_mut())
            .map(|(info, dev)| {
                dev.step(dt_s, state.busy.contains(&info.uuid), &mut state.rng);
                DeviceSample {
                    uuid: info.uuid.clone(),
                    health: Health::Healthy,
                    telemetry: Some(Telemetry {
                        sampled_at_ms: now_ms,
                        utilization_pct: dev.utilization_pct,
                        memory_used_bytes: dev.memory_used_bytes,
                        memory_utilization_pct: dev.memory_used_bytes as f64
                            / SIM_MEMORY_BYTES as f64
                            * 100.0,
                        temperature_c: dev.temperature_c,
                        power_w: dev.power_w,
                        energy_j: dev.energy_j,
                        energy_counter: true,
                        activity: dev.activity,
                        extra: TelemetryExtra {
                            memory_free_bytes: Some(
                                SIM_MEMORY_BYTES.saturating_sub(dev.memory_used_bytes),
                            ),
                            memory_busy_pct: dev.activity.dram.map(|d| d * 100.0),
                            sm_clock_mhz: Some(dev.sm_clock_mhz),
                            memory_clock_mhz: Some(MEMORY_CLOCK_MHZ),
                            ..TelemetryExtra::default()
                        },
                    }),
                }
            })
            .collect()
    }
}

#[async_trait]
impl DeviceBackend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        Ok(self.devices.clone())
    }

    async fn sample(&self) -> Result<Vec<DeviceSample>, DeviceError> {
        Ok(self.sample_at(Instant::now(), berth_proto::time::now_ms()))
    }

    fn set_busy(&self, uuids: &BTreeSet<String>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.busy = uuids.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn telemetry(s: &DeviceSample) -> &Telemetry {
        s.telemetry.as_ref().expect("sim always has telemetry")
    }

    #[test]
    fn uuids_are_stable_distinct_and_nvidia_shaped() {
        assert_eq!(sim_uuid("local-0", 3), sim_uuid("local-0", 3));
        assert_ne!(sim_uuid("local-0", 3), sim_uuid("local-0", 4));
        assert_ne!(sim_uuid("local-0", 3), sim_uuid("local-1", 3));
        let u = sim_uuid("local-0", 0);
        let groups: Vec<&str> = u.strip_prefix("GPU-").expect("prefix").split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }));
        let a = SimBackend::new("n", 4, "sim-gpu");
        let b = SimBackend::new("n", 4, "sim-gpu");
        assert_eq!(a.devices, b.devices);
    }

    #[test]
    fn uuid_is_pinned_across_releases() {
        // Derived from sha256; must never change or existing nodes lose their devices.
        let u = sim_uuid("local-0", 0);
        assert_eq!(u, PINNED_LOCAL0_DEV0, "sim UUID derivation changed");
    }

    const PINNED_LOCAL0_DEV0: &str = "GPU-32e3c988-a056-5e2a-39c0-d2b21f7bd637";

    #[test]
    fn device_descriptions() {
        let b = SimBackend::new("n", 3, "h100-80gb");
        let d = &b.devices[2];
        assert_eq!(d.index, 2);
        assert_eq!(d.class, "h100-80gb");
        assert_eq!(d.vendor, "sim");
        assert_eq!(d.model, "Berth Simulated GPU 80GB");
        assert_eq!(d.memory_bytes, 80 * 1024 * 1024 * 1024);
        assert_eq!(b.devices[0].pci_bus_id, "00000000:1B:00.0");
        assert_eq!(d.pci_bus_id, "00000000:1D:00.0");
        assert_eq!(sim_pci_bus_id(255), "00000001:1A:00.0");
    }

    #[test]
    fn telemetry_is_plausible_and_follows_load() {
        let b = SimBackend::new("n", 2, "sim-gpu");
        let busy_uuid = b.devices[0].uuid.clone();
        b.set_busy(&BTreeSet::from([busy_uuid.clone()]));
        let t0 = Instant::now();
        let mut last_energy = [0.0f64; 2];
        let mut last_temp = [0.0f64; 2];
        for step in 0..120u64 {
            let samples = b.sample_at(t0 + Duration::from_secs(step * 5), step as i64);
            assert_eq!(samples.len(), 2);
            for (i, s) in samples.iter().enumerate() {
                let t = telemetry(s);
                assert_eq!(s.health, Health::Healthy);
                assert!((30.0..=80.0).contains(&t.temperature_c), "{t:?}");
                assert!((60.0..=700.0).contains(&t.power_w), "{t:?}");
                assert!(t.memory_used_bytes <= SIM_MEMORY_BYTES);
                assert!((0.0..=100.0).contains(&t.memory_utilization_pct));
                assert!(t.energy_j >= last_energy[i], "energy must not decrease");
                if step > 0 {
                    assert!(t.energy_j > last_energy[i], "energy must grow over time");
                }
                last_energy[i] = t.energy_j;
                last_temp[i] = t.temperature_c;
                assert!(t.energy_counter);
                let a = &t.activity;
                let (gr, sm, tensor, dram) = (
                    a.gr_engine.unwrap(),
                    a.sm.unwrap(),
                    a.tensor.unwrap(),
                    a.dram.unwrap(),
                );
                assert!((gr - t.utilization_pct / 100.0).abs() < 1e-9, "{t:?}");
                assert!(sm <= gr && tensor <= sm && dram <= sm, "{t:?}");
                assert!(
                    [gr, sm, tensor, dram]
                        .iter()
                        .all(|f| (0.0..=1.0).contains(f))
                );
                let clock = t.extra.sm_clock_mhz.unwrap();
                if i == 0 {
                    assert!((60.0..=100.0).contains(&t.utilization_pct), "{t:?}");
                    assert!(t.memory_used_bytes > 16 << 30, "{t:?}");
                    assert!(sm >= 0.6 * 0.55 && tensor > 0.0, "{t:?}");
                    assert!((1755..=1980).contains(&clock), "{t:?}");
                } else {
                    assert!((0.0..=3.0).contains(&t.utilization_pct), "{t:?}");
                    assert!(t.power_w < 100.0, "{t:?}");
                    assert!(sm <= 0.015 && tensor == 0.0, "{t:?}");
                    assert_eq!(clock, 345);
                }
            }
        }
        // After ten minutes of load the busy device is much hotter than the idle one.
        assert!(last_temp[0] > 55.0 && last_temp[1] < 35.0, "{last_temp:?}");
        // Energy ≈ power × time: idle ~60–80 W over 595 s.
        assert!(
            (595.0 * 60.0..=595.0 * 90.0).contains(&last_energy[1]),
            "{last_energy:?}"
        );

        // When the job ends the device cools down and frees its memory.
        b.set_busy(&BTreeSet::new());
        let mut temp = last_temp[0];
        for step in 120..240u64 {
            let s = b.sample_at(t0 + Duration::from_secs(step * 5), 0);
            let t = telemetry(&s[0]);
            assert!(
                t.temperature_c <= temp.max(IDLE_TEMP_C + 2.0) + 1e-9,
                "cooling: {t:?}"
            );
            assert!(t.utilization_pct <= 3.0);
            assert!(t.memory_used_bytes <= IDLE_MEMORY_MAX);
            temp = t.temperature_c;
        }
        assert!(temp < 35.0, "{temp}");
    }

    #[tokio::test]
    async fn backend_trait_discovers_and_samples_by_uuid() {
        let b = SimBackend::new("local-0", 8, "sim-gpu");
        let devices = b.discover().await.unwrap();
        let samples = b.sample().await.unwrap();
        assert_eq!(devices.len(), 8);
        let uuids: Vec<_> = devices.iter().map(|d| &d.uuid).collect();
        assert_eq!(samples.iter().map(|s| &s.uuid).collect::<Vec<_>>(), uuids);
        assert_eq!(b.name(), "sim");
    }
}
