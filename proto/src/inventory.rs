//! A node's device inventory as its agent reports it in heartbeats, and the digest by
//! which later heartbeats refer to it instead of reporting it again.

use crate::v1;
use prost::Message;

/// The digest of an inventory: FNV-1a over every report's encoding with telemetry left
/// out, in order. Never 0 (0 means "no digest" on the wire).
pub fn digest(reports: &[v1::DeviceReport]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut buf = Vec::new();
    for report in reports {
        buf.clear();
        let bare = v1::DeviceReport {
            telemetry: None,
            ..report.clone()
        };
        // Length-delimited, so that no two different lists encode alike.
        bare.encode_length_delimited(&mut buf)
            .expect("a Vec grows as needed");
        for byte in &buf {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(PRIME);
        }
    }
    hash.max(1)
}

/// The telemetry of `reports`, by device index: what a heartbeat sends in place of an
/// inventory the scheduler already holds.
pub fn samples(reports: &[v1::DeviceReport]) -> Vec<v1::DeviceSample> {
    reports
        .iter()
        .filter(|d| d.telemetry.is_some())
        .map(|d| v1::DeviceSample {
            index: d.index,
            telemetry: d.telemetry,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(uuid: &str, health: v1::DeviceHealth) -> v1::DeviceReport {
        v1::DeviceReport {
            uuid: uuid.into(),
            class: "h100".into(),
            health: health as i32,
            ..Default::default()
        }
    }

    #[test]
    fn telemetry_does_not_change_the_digest() {
        let a = vec![report("GPU-1", v1::DeviceHealth::Healthy)];
        let mut b = a.clone();
        b[0].telemetry = Some(v1::Telemetry {
            utilization_pct: 93.0,
            ..Default::default()
        });
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn health_order_and_membership_change_the_digest() {
        let one = report("GPU-1", v1::DeviceHealth::Healthy);
        let two = report("GPU-2", v1::DeviceHealth::Healthy);
        let base = digest(&[one.clone(), two.clone()]);
        let failed = report("GPU-1", v1::DeviceHealth::Failed);
        assert_ne!(base, digest(&[failed, two.clone()]));
        assert_ne!(base, digest(&[two.clone(), one.clone()]));
        assert_ne!(base, digest(std::slice::from_ref(&one)));
        assert_ne!(digest(&[]), 0);
    }

    #[test]
    fn samples_keep_the_index_and_the_telemetry() {
        let mut r = report("GPU-7", v1::DeviceHealth::Healthy);
        r.index = 7;
        r.telemetry = Some(v1::Telemetry {
            power_w: 300.0,
            ..Default::default()
        });
        let s = samples(&[r, report("GPU-8", v1::DeviceHealth::Healthy)]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].index, 7);
        assert_eq!(s[0].telemetry.map(|t| t.power_w), Some(300.0));
    }
}
