//! A job's evidence as the `evidence` JSON columns of `jobs` and `usage_records` hold it:
//! plain numbers and names, readable in the database.

use crate::store::StoreError;
use berth_proto::evidence::{EnergySource, Evidence, UtilizationSource};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    mean_utilization_percent: f64,
    utilization_source: String,
    peak_memory_bytes: u64,
    energy_wh: f64,
    energy_source: Option<String>,
    mean_sm_active: Option<f64>,
    mean_tensor_active: Option<f64>,
    samples: u32,
    covered_seconds: f64,
    devices: u32,
}

fn utilization_name(s: UtilizationSource) -> &'static str {
    match s {
        UtilizationSource::DeviceBusy => "device-busy",
        UtilizationSource::SmActive => "sm-active",
        UtilizationSource::Mixed => "mixed",
    }
}

fn energy_name(s: EnergySource) -> &'static str {
    match s {
        EnergySource::Counter => "counter",
        EnergySource::PowerSamples => "power-samples",
    }
}

fn bad(table: &str, what: &str) -> StoreError {
    StoreError::Db(format!("bad evidence in {table}.evidence: {what}"))
}

/// The column's JSON.
pub(super) fn to_json(e: &Evidence) -> String {
    let stored = Stored {
        mean_utilization_percent: e.mean_utilization_percent,
        utilization_source: utilization_name(e.utilization_source).to_owned(),
        peak_memory_bytes: e.peak_memory_bytes,
        energy_wh: e.energy_wh,
        energy_source: e.energy_source.map(|s| energy_name(s).to_owned()),
        mean_sm_active: e.mean_sm_active,
        mean_tensor_active: e.mean_tensor_active,
        samples: e.samples,
        covered_seconds: e.covered_seconds,
        devices: e.devices,
    };
    // Numbers and names only: encoding cannot fail.
    serde_json::to_string(&stored).unwrap_or_default()
}

/// The evidence a column holds.
pub(super) fn from_json(table: &str, json: &str) -> Result<Evidence, StoreError> {
    let s: Stored = serde_json::from_str(json).map_err(|e| bad(table, &e.to_string()))?;
    let utilization_source = [
        UtilizationSource::DeviceBusy,
        UtilizationSource::SmActive,
        UtilizationSource::Mixed,
    ]
    .into_iter()
    .find(|u| utilization_name(*u) == s.utilization_source)
    .ok_or_else(|| bad(table, &s.utilization_source))?;
    let energy_source = s
        .energy_source
        .map(|name| {
            [EnergySource::Counter, EnergySource::PowerSamples]
                .into_iter()
                .find(|e| energy_name(*e) == name)
                .ok_or_else(|| bad(table, &name))
        })
        .transpose()?;
    Ok(Evidence {
        mean_utilization_percent: s.mean_utilization_percent,
        utilization_source,
        peak_memory_bytes: s.peak_memory_bytes,
        energy_wh: s.energy_wh,
        energy_source,
        mean_sm_active: s.mean_sm_active,
        mean_tensor_active: s.mean_tensor_active,
        samples: s.samples,
        covered_seconds: s.covered_seconds,
        devices: s.devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_round_trips_through_its_column() {
        let e = Evidence {
            mean_utilization_percent: 61.5,
            utilization_source: UtilizationSource::SmActive,
            peak_memory_bytes: 42 << 30,
            energy_wh: 4.25,
            energy_source: Some(EnergySource::PowerSamples),
            mean_sm_active: Some(0.6),
            mean_tensor_active: None,
            samples: 5,
            covered_seconds: 60.0,
            devices: 2,
        };
        let json = to_json(&e);
        assert!(
            json.contains("\"utilization_source\":\"sm-active\""),
            "{json}"
        );
        assert_eq!(from_json("jobs", &json).unwrap(), e);
        assert!(from_json("jobs", "{}").is_err());
        let odd = json.replace("sm-active", "warp-speed");
        assert!(
            from_json("jobs", &odd)
                .unwrap_err()
                .to_string()
                .contains("warp-speed")
        );
    }
}
