//! Per-job evidence, integrated from device readings: mean utilisation, peak memory
//! and energy, per device and then per job.
//!
//! Pure: readings in, a summary out; no clock and no I/O. The agent feeds a job's
//! [`JobMeter`] with the readings of the job's devices when the job starts running, on
//! every heartbeat while it runs and once more when it has ended, then closes it.
//!
//! Per device, between two consecutive readings:
//! - **energy**: the increase of the device's energy counter when both readings have
//!   one (NVML's total energy, millijoules since the driver loaded). A counter that went
//!   down was reset (driver reload) and counts from zero again, as Prometheus'
//!   `increase()` does. A counter spans gaps: it measured them. Without a counter (NPUs),
//!   the trapezoid of the two power readings over the time between them;
//! - **utilisation**: the busy percentage is a point reading, integrated as a
//!   trapezoid; SM and tensor-pipe activity (NVML GPM) are means over the interval
//!   since the device's previous reading, so the later reading's value holds for the
//!   whole interval. A device's mean utilisation is its SM activity when it reported
//!   any, else its busy percentage;
//! - a **gap** longer than [`MAX_GAP_MS`] (the device could not be read) is not
//!   integrated for utilisation or power-based energy: nothing is known about it. It
//!   is not counted in the covered time either.
//!
//! Per job: utilisation and activity are the mean over its devices, energy the sum,
//! peak memory the highest of any one device.

use crate::devices::Telemetry;
use berth_proto::evidence::{EnergySource, Evidence, UtilizationSource};
use berth_proto::time::UnixMs;
use std::collections::BTreeMap;

/// The longest time between two readings that is still integrated.
pub const MAX_GAP_MS: i64 = 5 * 60_000;

const JOULES_PER_WH: f64 = 3600.0;

/// One reading of one device, as the integration needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When it was taken.
    pub at_ms: UnixMs,
    /// The device's own busy percentage, 0..=100, at that moment.
    pub busy_pct: f64,
    /// SM activity over the interval since the device's previous reading, 0..=1.
    pub sm_active: Option<f64>,
    /// Tensor-pipe activity over the same interval, 0..=1.
    pub tensor_active: Option<f64>,
    /// Device memory in use.
    pub memory_used_bytes: u64,
    /// Board power.
    pub power_w: f64,
    /// The device's cumulative energy counter, when it has one.
    pub energy_counter_j: Option<f64>,
}

impl Reading {
    /// The reading in a telemetry sample.
    pub fn from_telemetry(t: &Telemetry) -> Self {
        Self {
            at_ms: t.sampled_at_ms,
            busy_pct: t.utilization_pct,
            sm_active: t.activity.sm,
            tensor_active: t.activity.tensor,
            memory_used_bytes: t.memory_used_bytes,
            power_w: t.power_w,
            energy_counter_j: t.energy_counter.then_some(t.energy_j),
        }
    }

    /// The reading with values out of range or not numbers made harmless.
    fn sanitised(self) -> Self {
        let clean = |v: f64, max: f64| {
            if v.is_finite() {
                v.clamp(0.0, max)
            } else {
                0.0
            }
        };
        let fraction = |v: Option<f64>| v.filter(|v| v.is_finite()).map(|v| v.clamp(0.0, 1.0));
        Self {
            busy_pct: clean(self.busy_pct, 100.0),
            sm_active: fraction(self.sm_active),
            tensor_active: fraction(self.tensor_active),
            power_w: clean(self.power_w, f64::MAX),
            energy_counter_j: self.energy_counter_j.filter(|j| j.is_finite() && *j >= 0.0),
            ..self
        }
    }
}

/// Energy over `dt_s` seconds from the power at its two ends (trapezoid), joules.
pub fn trapezoid_j(p0_w: f64, p1_w: f64, dt_s: f64) -> f64 {
    (p0_w + p1_w) / 2.0 * dt_s.max(0.0)
}

/// How much a cumulative counter grew from `prev` to `cur`. A counter that went down
/// was reset and has counted `cur` since.
pub fn counter_increase(prev: f64, cur: f64) -> f64 {
    if cur >= prev { cur - prev } else { cur }
}

/// A time-weighted sum: value × milliseconds, and the milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Weighted {
    area: f64,
    ms: i64,
}

impl Weighted {
    fn add(&mut self, value: f64, ms: i64) {
        self.area += value * ms as f64;
        self.ms += ms;
    }

    fn mean(&self) -> Option<f64> {
        (self.ms > 0).then(|| self.area / self.ms as f64)
    }
}

/// The running integration of one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceMeter {
    last: Option<Reading>,
    samples: u32,
    busy_sum: f64,
    busy: Weighted,
    sm: Weighted,
    tensor: Weighted,
    peak_memory_bytes: u64,
    energy_j: f64,
    counter_intervals: u32,
    power_intervals: u32,
}

/// What one device did.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvidence {
    /// Readings integrated.
    pub samples: u32,
    /// Milliseconds covered by intervals no longer than [`MAX_GAP_MS`].
    pub covered_ms: i64,
    /// Mean busy percentage: time-weighted, or of the readings while no interval is
    /// covered.
    pub mean_busy_pct: f64,
    /// Time-weighted mean SM activity, when the device reported any.
    pub mean_sm_active: Option<f64>,
    /// Time-weighted mean tensor-pipe activity, when the device reported any.
    pub mean_tensor_active: Option<f64>,
    /// The most memory in use in any reading.
    pub peak_memory_bytes: u64,
    /// Energy, joules.
    pub energy_j: f64,
    /// Where the energy came from; `None` while no interval was integrated.
    pub energy_source: Option<EnergySource>,
}

impl DeviceEvidence {
    /// The device's mean utilisation, percent, and what it measures.
    pub fn utilization(&self) -> (f64, UtilizationSource) {
        match self.mean_sm_active {
            Some(sm) => (sm * 100.0, UtilizationSource::SmActive),
            None => (self.mean_busy_pct, UtilizationSource::DeviceBusy),
        }
    }
}

impl DeviceMeter {
    /// Integrates the next reading.
    pub fn add(&mut self, reading: Reading) {
        let r = reading.sanitised();
        self.samples = self.samples.saturating_add(1);
        self.busy_sum += r.busy_pct;
        self.peak_memory_bytes = self.peak_memory_bytes.max(r.memory_used_bytes);
        if let Some(prev) = self.last {
            let dt_ms = r.at_ms - prev.at_ms;
            let in_reach = dt_ms > 0 && dt_ms <= MAX_GAP_MS;
            match (prev.energy_counter_j, r.energy_counter_j) {
                (Some(a), Some(b)) => {
                    self.energy_j += counter_increase(a, b);
                    self.counter_intervals += 1;
                }
                _ if in_reach => {
                    self.energy_j += trapezoid_j(prev.power_w, r.power_w, dt_ms as f64 / 1000.0);
                    self.power_intervals += 1;
                }
                _ => {}
            }
            if in_reach {
                self.busy.add((prev.busy_pct + r.busy_pct) / 2.0, dt_ms);
                if let Some(sm) = r.sm_active {
                    self.sm.add(sm, dt_ms);
                }
                if let Some(tensor) = r.tensor_active {
                    self.tensor.add(tensor, dt_ms);
                }
            }
        }
        self.last = Some(r);
    }

    /// What the device did so far; `None` before its first reading.
    pub fn summary(&self) -> Option<DeviceEvidence> {
        if self.samples == 0 {
            return None;
        }
        let energy_source = match (self.counter_intervals, self.power_intervals) {
            (0, 0) => None,
            (_, 0) => Some(EnergySource::Counter),
            _ => Some(EnergySource::PowerSamples),
        };
        Some(DeviceEvidence {
            samples: self.samples,
            covered_ms: self.busy.ms,
            mean_busy_pct: self
                .busy
                .mean()
                .unwrap_or(self.busy_sum / f64::from(self.samples)),
            mean_sm_active: self.sm.mean(),
            mean_tensor_active: self.tensor.mean(),
            peak_memory_bytes: self.peak_memory_bytes,
            energy_j: self.energy_j,
            energy_source,
        })
    }
}

/// The running integration of one job on this node: one meter per device it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMeter {
    devices: BTreeMap<String, DeviceMeter>,
    closed: bool,
}

impl JobMeter {
    /// A meter for a job on `devices` (UUIDs).
    pub fn new(devices: &[String]) -> Self {
        Self {
            devices: devices
                .iter()
                .map(|uuid| (uuid.clone(), DeviceMeter::default()))
                .collect(),
            closed: false,
        }
    }

    /// Integrates a reading of device `uuid`; ignored once closed, or when the device
    /// is not the job's.
    pub fn add(&mut self, uuid: &str, reading: Reading) {
        if self.closed {
            return;
        }
        if let Some(meter) = self.devices.get_mut(uuid) {
            meter.add(reading);
        }
    }

    /// Ends the integration: later readings are ignored.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Whether [`JobMeter::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// What the job did on its devices so far; `None` before any reading.
    pub fn evidence(&self) -> Option<Evidence> {
        let devices: Vec<DeviceEvidence> = self
            .devices
            .values()
            .filter_map(DeviceMeter::summary)
            .collect();
        aggregate(&devices)
    }
}

/// A job's evidence from its devices'; `None` for no device.
pub fn aggregate(devices: &[DeviceEvidence]) -> Option<Evidence> {
    let first = devices.first()?;
    let n = devices.len() as f64;
    let utilization: Vec<(f64, UtilizationSource)> =
        devices.iter().map(DeviceEvidence::utilization).collect();
    let all = |get: fn(&DeviceEvidence) -> Option<f64>| -> Option<f64> {
        devices.iter().map(get).sum::<Option<f64>>().map(|s| s / n)
    };
    Some(Evidence {
        mean_utilization_percent: utilization.iter().map(|(u, _)| u).sum::<f64>() / n,
        utilization_source: utilization
            .iter()
            .map(|(_, s)| *s)
            .fold(utilization[0].1, UtilizationSource::combine),
        peak_memory_bytes: devices
            .iter()
            .map(|d| d.peak_memory_bytes)
            .max()
            .unwrap_or(0),
        energy_wh: devices.iter().map(|d| d.energy_j).sum::<f64>() / JOULES_PER_WH,
        energy_source: devices
            .iter()
            .map(|d| d.energy_source)
            .fold(first.energy_source, |a, b| match (a, b) {
                (Some(a), Some(b)) => Some(a.combine(b)),
                (a, b) => a.or(b),
            }),
        mean_sm_active: all(|d| d.mean_sm_active),
        mean_tensor_active: all(|d| d.mean_tensor_active),
        samples: devices.iter().map(|d| d.samples).max().unwrap_or(0),
        covered_seconds: devices.iter().map(|d| d.covered_ms).min().unwrap_or(0) as f64 / 1000.0,
        devices: u32::try_from(devices.len()).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// A reading at `s` seconds with busy `%`, power `W` and an optional counter (J).
    fn r(s: i64, busy: f64, power: f64, counter: Option<f64>) -> Reading {
        Reading {
            at_ms: 1_000_000 + s * 1000,
            busy_pct: busy,
            sm_active: None,
            tensor_active: None,
            memory_used_bytes: GIB,
            power_w: power,
            energy_counter_j: counter,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn energy_is_the_counter_increase() {
        let mut m = DeviceMeter::default();
        for (s, j) in [(0, 5_000.0), (10, 8_000.0), (20, 11_500.0)] {
            m.add(r(s, 50.0, 300.0, Some(j)));
        }
        let e = m.summary().unwrap();
        assert!(close(e.energy_j, 6_500.0), "{e:?}");
        assert_eq!(e.energy_source, Some(EnergySource::Counter));
        assert_eq!(e.samples, 3);
        assert_eq!(e.covered_ms, 20_000);
    }

    #[test]
    fn a_counter_reset_counts_from_zero() {
        // The driver reloaded between 10 s and 20 s: the counter restarted, and had
        // counted 700 J by the next reading.
        let mut m = DeviceMeter::default();
        for (s, j) in [(0, 5_000.0), (10, 8_000.0), (20, 700.0), (30, 3_700.0)] {
            m.add(r(s, 50.0, 300.0, Some(j)));
        }
        let e = m.summary().unwrap();
        assert!(close(e.energy_j, 3_000.0 + 700.0 + 3_000.0), "{e:?}");
        assert!(close(counter_increase(10.0, 4.0), 4.0));
        assert!(close(counter_increase(4.0, 10.0), 6.0));
    }

    #[test]
    fn npu_energy_is_the_power_trapezoid() {
        // 100 W rising to 300 W over 10 s, then 300 W for 20 s: 2000 J + 6000 J.
        let mut m = DeviceMeter::default();
        for (s, p) in [(0, 100.0), (10, 300.0), (30, 300.0)] {
            m.add(r(s, 10.0, p, None));
        }
        let e = m.summary().unwrap();
        assert!(close(e.energy_j, 8_000.0), "{e:?}");
        assert_eq!(e.energy_source, Some(EnergySource::PowerSamples));
        assert!(close(trapezoid_j(100.0, 300.0, 10.0), 2_000.0));
        assert_eq!(trapezoid_j(100.0, 300.0, -1.0), 0.0);
    }

    #[test]
    fn gaps_are_not_guessed_but_counters_span_them() {
        // Power only: the 10-minute gap is neither integrated nor covered.
        let mut m = DeviceMeter::default();
        for (s, busy, p) in [
            (0, 100.0, 400.0),
            (10, 100.0, 400.0),
            (610, 0.0, 50.0),
            (620, 0.0, 50.0),
        ] {
            m.add(r(s, busy, p, None));
        }
        let e = m.summary().unwrap();
        assert!(close(e.energy_j, 4_000.0 + 500.0), "{e:?}");
        assert_eq!(e.covered_ms, 20_000);
        assert!(close(e.mean_busy_pct, 50.0), "{e:?}");

        // With a counter the gap's energy is measured, and still not covered.
        let mut m = DeviceMeter::default();
        for (s, j) in [(0, 0.0), (10, 4_000.0), (610, 100_000.0)] {
            m.add(r(s, 100.0, 400.0, Some(j)));
        }
        let e = m.summary().unwrap();
        assert!(close(e.energy_j, 100_000.0), "{e:?}");
        assert_eq!(e.covered_ms, 10_000);
        assert_eq!(e.energy_source, Some(EnergySource::Counter));

        // A counter missing from one reading: that interval falls back to power.
        let mut m = DeviceMeter::default();
        m.add(r(0, 0.0, 100.0, Some(0.0)));
        m.add(r(10, 0.0, 100.0, None));
        m.add(r(20, 0.0, 100.0, Some(2_500.0)));
        let e = m.summary().unwrap();
        assert!(
            close(e.energy_j, 2_000.0),
            "power for both intervals: {e:?}"
        );
        assert_eq!(e.energy_source, Some(EnergySource::PowerSamples));
    }

    #[test]
    fn utilisation_is_time_weighted() {
        // 100 % for 30 s, then 0 % for 10 s (the trapezoid of each interval).
        let mut m = DeviceMeter::default();
        for (s, busy) in [(0, 100.0), (30, 100.0), (30, 0.0), (40, 0.0)] {
            m.add(r(s, busy, 0.0, None));
        }
        let e = m.summary().unwrap();
        assert!(close(e.mean_busy_pct, 75.0), "{e:?}");
        assert_eq!(e.utilization(), (75.0, UtilizationSource::DeviceBusy));
        assert_eq!(e.mean_sm_active, None);
    }

    #[test]
    fn gpm_activity_is_an_interval_mean() {
        // The first reading's activity describes the time before the job: ignored.
        let mut m = DeviceMeter::default();
        let gpm = |s: i64, sm: f64, tensor: f64| Reading {
            sm_active: Some(sm),
            tensor_active: Some(tensor),
            ..r(s, 100.0, 500.0, Some(s as f64 * 500.0))
        };
        m.add(gpm(0, 0.9, 0.9));
        m.add(gpm(10, 0.2, 0.1));
        m.add(gpm(40, 0.6, 0.3));
        let e = m.summary().unwrap();
        // (0.2 × 10 + 0.6 × 30) / 40
        assert!(close(e.mean_sm_active.unwrap(), 0.5), "{e:?}");
        assert!(close(e.mean_tensor_active.unwrap(), 0.25), "{e:?}");
        let (util, source) = e.utilization();
        assert!(close(util, 50.0));
        assert_eq!(source, UtilizationSource::SmActive);
        assert!(close(e.mean_busy_pct, 100.0), "GPU_UTIL says busy: {e:?}");
    }

    #[test]
    fn one_reading_gives_its_values_and_no_energy() {
        let mut m = DeviceMeter::default();
        assert_eq!(m.summary(), None);
        m.add(Reading {
            memory_used_bytes: 7 * GIB,
            ..r(0, 42.0, 300.0, Some(9.0))
        });
        let e = m.summary().unwrap();
        assert_eq!(e.samples, 1);
        assert_eq!(e.mean_busy_pct, 42.0);
        assert_eq!(e.peak_memory_bytes, 7 * GIB);
        assert_eq!(e.energy_j, 0.0);
        assert_eq!(e.energy_source, None);
        assert_eq!(e.covered_ms, 0);
    }

    #[test]
    fn bad_values_and_clock_steps_do_no_harm() {
        let mut m = DeviceMeter::default();
        m.add(r(10, f64::NAN, f64::INFINITY, Some(f64::NAN)));
        m.add(r(0, 250.0, -5.0, None)); // clock stepped back
        m.add(Reading {
            sm_active: Some(3.0),
            ..r(10, 50.0, 100.0, None)
        });
        let e = m.summary().unwrap();
        assert!(e.energy_j.is_finite() && e.energy_j >= 0.0, "{e:?}");
        assert!((0.0..=100.0).contains(&e.mean_busy_pct), "{e:?}");
        assert_eq!(e.mean_sm_active, Some(1.0));
    }

    #[test]
    fn a_job_sums_energy_and_takes_the_highest_peak() {
        let devices = ["GPU-a".to_owned(), "GPU-b".to_owned()];
        let mut job = JobMeter::new(&devices);
        assert_eq!(job.evidence(), None);
        for s in [0i64, 30, 60] {
            job.add(
                "GPU-a",
                Reading {
                    memory_used_bytes: 30 * GIB,
                    ..r(s, 90.0, 600.0, Some(s as f64 * 600.0))
                },
            );
            job.add(
                "GPU-b",
                Reading {
                    memory_used_bytes: 50 * GIB,
                    ..r(s, 30.0, 200.0, Some(s as f64 * 200.0))
                },
            );
            job.add("GPU-other", r(s, 100.0, 700.0, Some(1e9)));
        }
        let e = job.evidence().unwrap();
        assert_eq!(e.devices, 2);
        assert!(close(e.mean_utilization_percent, 60.0), "{e:?}");
        assert_eq!(e.utilization_source, UtilizationSource::DeviceBusy);
        assert_eq!(e.peak_memory_bytes, 50 * GIB);
        // 600 W × 60 s + 200 W × 60 s = 48 kJ = 13.33 Wh.
        assert!(close(e.energy_wh, 48_000.0 / 3600.0), "{e:?}");
        assert_eq!(e.energy_source, Some(EnergySource::Counter));
        assert_eq!(e.samples, 3);
        assert_eq!(e.covered_seconds, 60.0);
        assert_eq!(e.mean_sm_active, None);

        job.close();
        job.add("GPU-a", r(90, 0.0, 0.0, Some(1e12)));
        assert!(job.is_closed());
        assert_eq!(job.evidence(), Some(e), "closed: later readings ignored");
    }

    #[test]
    fn a_job_with_and_without_gpm_is_mixed() {
        let devices = ["GPU-h100".to_owned(), "GPU-a100".to_owned()];
        let mut job = JobMeter::new(&devices);
        for s in [0i64, 10] {
            job.add(
                "GPU-h100",
                Reading {
                    sm_active: Some(0.4),
                    tensor_active: Some(0.2),
                    ..r(s, 100.0, 500.0, None)
                },
            );
            job.add("GPU-a100", r(s, 80.0, 300.0, None));
        }
        let e = job.evidence().unwrap();
        assert_eq!(e.utilization_source, UtilizationSource::Mixed);
        assert!(
            close(e.mean_utilization_percent, 60.0),
            "(40 + 80) / 2: {e:?}"
        );
        assert_eq!(e.mean_sm_active, None, "not every device has it");
        assert_eq!(e.energy_source, Some(EnergySource::PowerSamples));
        assert!(close(e.energy_wh, (5_000.0 + 3_000.0) / 3600.0), "{e:?}");
    }
}
