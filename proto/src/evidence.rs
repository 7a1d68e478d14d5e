//! Job evidence: what a job did on its devices (mean utilisation, peak memory, energy),
//! as the agent integrates it from device samples.
//!
//! [`Evidence`] is the checked domain value behind the wire's `JobEvidence`: the agent
//! builds it, the scheduler checks what arrives with [`Evidence::from_proto`] (a bad
//! field is a [`FieldError`] naming it) and joins the parts of a multi-node job with
//! [`Evidence::merge`].

use crate::model::FieldError;
use crate::v1;
use berth_i18n::api::Msg;
use berth_i18n::text;

/// What a job's mean utilisation measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtilizationSource {
    /// The device's own busy percentage (NVML's GPU utilisation, the NPU tool's).
    DeviceBusy,
    /// SM activity from NVML GPM (NVIDIA Hopper and newer), as a percentage.
    SmActive,
    /// Some devices gave SM activity, the others their busy percentage.
    Mixed,
}

impl UtilizationSource {
    /// The wire value.
    pub fn to_proto(self) -> v1::UtilizationSource {
        match self {
            UtilizationSource::DeviceBusy => v1::UtilizationSource::DeviceBusy,
            UtilizationSource::SmActive => v1::UtilizationSource::SmActive,
            UtilizationSource::Mixed => v1::UtilizationSource::Mixed,
        }
    }

    /// The source of parts that each have their own.
    pub fn combine(self, other: Self) -> Self {
        if self == other {
            self
        } else {
            UtilizationSource::Mixed
        }
    }
}

/// Where a job's energy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnergySource {
    /// The devices' total energy counters.
    Counter,
    /// At least partly integrated from power samples.
    PowerSamples,
}

impl EnergySource {
    /// The wire value.
    pub fn to_proto(self) -> v1::EnergySource {
        match self {
            EnergySource::Counter => v1::EnergySource::Counter,
            EnergySource::PowerSamples => v1::EnergySource::PowerSamples,
        }
    }

    /// The source of parts that each have their own.
    pub fn combine(self, other: Self) -> Self {
        if self == other {
            self
        } else {
            EnergySource::PowerSamples
        }
    }
}

/// What a job did on its devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Time-weighted mean utilisation of the devices, percent 0..=100.
    pub mean_utilization_percent: f64,
    /// What [`Evidence::mean_utilization_percent`] measures.
    pub utilization_source: UtilizationSource,
    /// The most memory in use on any one device.
    pub peak_memory_bytes: u64,
    /// Energy of the devices together, watt-hours.
    pub energy_wh: f64,
    /// Where the energy comes from; `None` while no interval has been integrated.
    pub energy_source: Option<EnergySource>,
    /// Time-weighted mean SM activity, fraction 0..=1, when every device reported it.
    pub mean_sm_active: Option<f64>,
    /// Time-weighted mean tensor-pipe activity, fraction 0..=1, when every device
    /// reported it.
    pub mean_tensor_active: Option<f64>,
    /// Device samples integrated (the most of any one device).
    pub samples: u32,
    /// Seconds of the run the samples cover (the least of any one device).
    pub covered_seconds: f64,
    /// Devices integrated.
    pub devices: u32,
}

fn bounded(field: &str, value: f64, max: f64) -> Result<f64, FieldError> {
    if !value.is_finite() || value < 0.0 || value > max {
        return Err(FieldError::new(
            format!("evidence.{field}"),
            text!(NumberFromZero, max, value),
        ));
    }
    Ok(value)
}

fn non_negative(field: &str, value: f64) -> Result<f64, FieldError> {
    if !value.is_finite() || value < 0.0 {
        return Err(FieldError::new(
            format!("evidence.{field}"),
            text!(FiniteNotNegative, value),
        ));
    }
    Ok(value)
}

impl Evidence {
    /// The wire message.
    pub fn to_proto(&self) -> v1::JobEvidence {
        v1::JobEvidence {
            mean_utilization_percent: self.mean_utilization_percent,
            peak_memory_bytes: self.peak_memory_bytes,
            energy_wh: self.energy_wh,
            mean_sm_active: self.mean_sm_active,
            mean_tensor_active: self.mean_tensor_active,
            samples: self.samples,
            utilization_source: self.utilization_source.to_proto() as i32,
            energy_source: self
                .energy_source
                .map_or(v1::EnergySource::Unspecified, EnergySource::to_proto)
                as i32,
            covered_seconds: self.covered_seconds,
            devices: self.devices,
        }
    }

    /// Checks evidence from the wire: percentages within 0..=100, fractions within
    /// 0..=1, energy and time finite and not negative, known sources.
    pub fn from_proto(e: &v1::JobEvidence) -> Result<Self, FieldError> {
        let utilization_source = match v1::UtilizationSource::try_from(e.utilization_source) {
            Ok(v1::UtilizationSource::DeviceBusy) => UtilizationSource::DeviceBusy,
            Ok(v1::UtilizationSource::SmActive) => UtilizationSource::SmActive,
            Ok(v1::UtilizationSource::Mixed) => UtilizationSource::Mixed,
            Ok(v1::UtilizationSource::Unspecified) => {
                return Err(FieldError::new(
                    "evidence.utilization_source",
                    Msg::MustBeGiven,
                ));
            }
            Err(_) => {
                return Err(FieldError::new(
                    "evidence.utilization_source",
                    text!(UnknownSource, source = e.utilization_source),
                ));
            }
        };
        let energy_source = match v1::EnergySource::try_from(e.energy_source) {
            Ok(v1::EnergySource::Unspecified) => None,
            Ok(v1::EnergySource::Counter) => Some(EnergySource::Counter),
            Ok(v1::EnergySource::PowerSamples) => Some(EnergySource::PowerSamples),
            Err(_) => {
                return Err(FieldError::new(
                    "evidence.energy_source",
                    text!(UnknownSource, source = e.energy_source),
                ));
            }
        };
        let fraction = |field: &str, v: Option<f64>| v.map(|v| bounded(field, v, 1.0)).transpose();
        if e.devices == 0 {
            return Err(FieldError::new("evidence.devices", Msg::AtLeastOne));
        }
        Ok(Self {
            mean_utilization_percent: bounded(
                "mean_utilization_percent",
                e.mean_utilization_percent,
                100.0,
            )?,
            utilization_source,
            peak_memory_bytes: e.peak_memory_bytes,
            energy_wh: non_negative("energy_wh", e.energy_wh)?,
            energy_source,
            mean_sm_active: fraction("mean_sm_active", e.mean_sm_active)?,
            mean_tensor_active: fraction("mean_tensor_active", e.mean_tensor_active)?,
            samples: e.samples,
            covered_seconds: non_negative("covered_seconds", e.covered_seconds)?,
            devices: e.devices,
        })
    }

    /// Joins the parts of one job (its nodes' reports): means weighted by devices,
    /// the highest peak, energy summed, the fewest seconds covered. `None` when there
    /// are no parts.
    pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Evidence>) -> Option<Evidence> {
        let parts: Vec<&Evidence> = parts.into_iter().collect();
        let first = *parts.first()?;
        let devices: u32 = parts.iter().map(|p| p.devices).sum();
        let weight = |p: &Evidence| f64::from(p.devices) / f64::from(devices.max(1));
        let mean = |get: &dyn Fn(&Evidence) -> Option<f64>| -> Option<f64> {
            parts
                .iter()
                .map(|p| get(p).map(|v| v * weight(p)))
                .sum::<Option<f64>>()
        };
        Some(Evidence {
            mean_utilization_percent: mean(&|p| Some(p.mean_utilization_percent))
                .unwrap_or_default(),
            utilization_source: parts
                .iter()
                .map(|p| p.utilization_source)
                .fold(first.utilization_source, UtilizationSource::combine),
            peak_memory_bytes: parts.iter().map(|p| p.peak_memory_bytes).max().unwrap_or(0),
            energy_wh: parts.iter().map(|p| p.energy_wh).sum(),
            energy_source: parts
                .iter()
                .map(|p| p.energy_source)
                .reduce(|a, b| match (a, b) {
                    (Some(a), Some(b)) => Some(a.combine(b)),
                    (a, b) => a.or(b),
                })
                .flatten(),
            mean_sm_active: mean(&|p| p.mean_sm_active),
            mean_tensor_active: mean(&|p| p.mean_tensor_active),
            samples: parts.iter().map(|p| p.samples).max().unwrap_or(0),
            covered_seconds: parts
                .iter()
                .map(|p| p.covered_seconds)
                .fold(f64::INFINITY, f64::min),
            devices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Evidence {
        Evidence {
            mean_utilization_percent: 62.5,
            utilization_source: UtilizationSource::SmActive,
            peak_memory_bytes: 40 << 30,
            energy_wh: 350.0,
            energy_source: Some(EnergySource::Counter),
            mean_sm_active: Some(0.625),
            mean_tensor_active: Some(0.3),
            samples: 360,
            covered_seconds: 3600.0,
            devices: 2,
        }
    }

    #[test]
    fn round_trips_through_the_wire() {
        let e = sample();
        assert_eq!(Evidence::from_proto(&e.to_proto()), Ok(e));
        let no_energy = Evidence {
            energy_source: None,
            mean_sm_active: None,
            mean_tensor_active: None,
            utilization_source: UtilizationSource::DeviceBusy,
            ..sample()
        };
        assert_eq!(Evidence::from_proto(&no_energy.to_proto()), Ok(no_energy));
    }

    #[test]
    fn bad_fields_are_named() {
        let good = sample().to_proto();
        let cases: Vec<(v1::JobEvidence, &str)> = vec![
            (
                v1::JobEvidence {
                    mean_utilization_percent: 100.5,
                    ..good
                },
                "invalid evidence.mean_utilization_percent: must be a number from 0 to 100",
            ),
            (
                v1::JobEvidence {
                    mean_utilization_percent: f64::NAN,
                    ..good
                },
                "invalid evidence.mean_utilization_percent",
            ),
            (
                v1::JobEvidence {
                    energy_wh: -1.0,
                    ..good
                },
                "invalid evidence.energy_wh: must be a finite number of at least 0",
            ),
            (
                v1::JobEvidence {
                    energy_wh: f64::INFINITY,
                    ..good
                },
                "invalid evidence.energy_wh",
            ),
            (
                v1::JobEvidence {
                    mean_sm_active: Some(1.5),
                    ..good
                },
                "invalid evidence.mean_sm_active: must be a number from 0 to 1",
            ),
            (
                v1::JobEvidence {
                    mean_tensor_active: Some(-0.1),
                    ..good
                },
                "invalid evidence.mean_tensor_active",
            ),
            (
                v1::JobEvidence {
                    covered_seconds: -3.0,
                    ..good
                },
                "invalid evidence.covered_seconds",
            ),
            (
                v1::JobEvidence {
                    utilization_source: 0,
                    ..good
                },
                "invalid evidence.utilization_source: must be given",
            ),
            (
                v1::JobEvidence {
                    utilization_source: 9,
                    ..good
                },
                "invalid evidence.utilization_source: unknown source 9",
            ),
            (
                v1::JobEvidence {
                    energy_source: 7,
                    ..good
                },
                "invalid evidence.energy_source: unknown source 7",
            ),
            (
                v1::JobEvidence { devices: 0, ..good },
                "invalid evidence.devices: must be at least 1",
            ),
        ];
        for (wire, want) in cases {
            let err = Evidence::from_proto(&wire).unwrap_err().to_string();
            assert!(err.starts_with(want), "{want}: {err}");
        }
    }

    #[test]
    fn parts_of_a_multi_node_job_merge() {
        assert_eq!(Evidence::merge([]), None);
        let a = sample();
        assert_eq!(Evidence::merge([&a]), Some(a.clone()));
        let b = Evidence {
            mean_utilization_percent: 20.0,
            utilization_source: UtilizationSource::DeviceBusy,
            peak_memory_bytes: 1 << 30,
            energy_wh: 50.0,
            energy_source: Some(EnergySource::PowerSamples),
            mean_sm_active: None,
            mean_tensor_active: None,
            samples: 100,
            covered_seconds: 3000.0,
            devices: 6,
        };
        let m = Evidence::merge([&a, &b]).unwrap();
        assert_eq!(m.devices, 8);
        // 2 devices at 62.5 % and 6 at 20 %.
        assert!((m.mean_utilization_percent - 30.625).abs() < 1e-9, "{m:?}");
        assert_eq!(m.utilization_source, UtilizationSource::Mixed);
        assert_eq!(m.peak_memory_bytes, 40 << 30);
        assert_eq!(m.energy_wh, 400.0);
        assert_eq!(m.energy_source, Some(EnergySource::PowerSamples));
        assert_eq!(m.mean_sm_active, None, "not every part has it");
        assert_eq!(m.samples, 360);
        assert_eq!(m.covered_seconds, 3000.0);

        let twin = Evidence::merge([&a, &a]).unwrap();
        assert_eq!(twin.utilization_source, UtilizationSource::SmActive);
        assert_eq!(twin.energy_source, Some(EnergySource::Counter));
        assert!((twin.mean_sm_active.unwrap() - 0.625).abs() < 1e-12);
        assert_eq!(twin.energy_wh, 700.0);
    }
}
