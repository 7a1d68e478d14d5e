//! What a job did on its devices (mean utilisation, peak memory, energy), as `berth jobs
//! show`, `berth usage` and their JSON and CSV show it.

use berth_proto::v1;
use serde::Serialize;

/// A job's evidence as printed in JSON, beside the job's or record's own fields; every
/// field is `null` when the job has no report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EvidenceView {
    /// Time-weighted mean utilisation of the job's devices, percent.
    pub mean_utilization_percent: Option<f64>,
    /// The most device memory in use on any one of its devices.
    pub peak_memory_bytes: Option<u64>,
    /// Energy of its devices together, watt-hours.
    pub energy_wh: Option<f64>,
    /// Mean SM activity, fraction 0..1, where every device reported it.
    pub mean_sm_active: Option<f64>,
    /// Mean tensor-pipe activity, fraction 0..1, where every device reported it.
    pub mean_tensor_active: Option<f64>,
    /// What the utilisation measures: `device-busy`, `sm-active` or `mixed`.
    pub utilization_source: Option<&'static str>,
}

fn source(s: i32) -> Option<&'static str> {
    match v1::UtilizationSource::try_from(s) {
        Ok(v1::UtilizationSource::DeviceBusy) => Some("device-busy"),
        Ok(v1::UtilizationSource::SmActive) => Some("sm-active"),
        Ok(v1::UtilizationSource::Mixed) => Some("mixed"),
        _ => None,
    }
}

impl EvidenceView {
    /// The view of an optional report.
    pub fn of(e: Option<&v1::JobEvidence>) -> Self {
        match e {
            None => Self::default(),
            Some(e) => Self {
                mean_utilization_percent: Some(e.mean_utilization_percent),
                peak_memory_bytes: Some(e.peak_memory_bytes),
                energy_wh: Some(e.energy_wh),
                mean_sm_active: e.mean_sm_active,
                mean_tensor_active: e.mean_tensor_active,
                utilization_source: source(e.utilization_source),
            },
        }
    }
}

/// Utilisation for a table: `73.4%`, `-` without a report.
pub fn util_cell(e: Option<&v1::JobEvidence>) -> String {
    e.map_or_else(
        || "-".to_owned(),
        |e| format!("{:.1}%", e.mean_utilization_percent),
    )
}

/// Peak memory for a table: `41.2 GiB`, `-` without a report.
pub fn memory_cell(e: Option<&v1::JobEvidence>) -> String {
    e.map_or_else(|| "-".to_owned(), |e| bytes(e.peak_memory_bytes))
}

/// Energy for a table: `12.3 Wh`, `-` without a report.
pub fn energy_cell(e: Option<&v1::JobEvidence>) -> String {
    e.map_or_else(|| "-".to_owned(), |e| format!("{:.1} Wh", e.energy_wh))
}

/// CSV cells: utilisation (4 decimals), peak memory (bytes), energy (4 decimals); empty
/// without a report.
pub fn csv_cells(e: Option<&v1::JobEvidence>) -> [String; 3] {
    match e {
        None => Default::default(),
        Some(e) => [
            format!("{:.4}", e.mean_utilization_percent),
            e.peak_memory_bytes.to_string(),
            format!("{:.4}", e.energy_wh),
        ],
    }
}

/// Bytes in binary units, one decimal.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> v1::JobEvidence {
        v1::JobEvidence {
            mean_utilization_percent: 73.42,
            peak_memory_bytes: 44_236_955_648,
            energy_wh: 12.345,
            mean_sm_active: Some(0.61),
            utilization_source: v1::UtilizationSource::SmActive as i32,
            ..Default::default()
        }
    }

    #[test]
    fn cells_and_json() {
        let e = sample();
        assert_eq!(util_cell(Some(&e)), "73.4%");
        assert_eq!(memory_cell(Some(&e)), "41.2 GiB");
        assert_eq!(energy_cell(Some(&e)), "12.3 Wh");
        assert_eq!(csv_cells(Some(&e)), ["73.4200", "44236955648", "12.3450"]);
        assert_eq!(util_cell(None), "-");
        assert_eq!(csv_cells(None), ["", "", ""]);
        let v = serde_json::to_value(EvidenceView::of(Some(&e))).unwrap();
        assert_eq!(v["mean_utilization_percent"], 73.42);
        assert_eq!(v["peak_memory_bytes"], 44_236_955_648u64);
        assert_eq!(v["energy_wh"], 12.345);
        assert_eq!(v["utilization_source"], "sm-active");
        let none = serde_json::to_value(EvidenceView::of(None)).unwrap();
        assert!(none["energy_wh"].is_null());
        assert_eq!(bytes(512), "512 B");
    }
}
