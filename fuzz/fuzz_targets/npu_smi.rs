//! The NPU tools' parsers (`node-agent/src/devices/npu.rs`): `rbln-smi --json`, and
//! `furiosa-smi info` / `status` with the listing of `/dev/rngd`.
//!
//! Input: a first byte choosing the tool; for Furiosa the rest is split at 0xFF bytes
//! (never in UTF-8) into info JSON, status JSON and the directory listing (lines).
//!
//! Invariants: every device has an identity safe to put in a comma-separated list
//! (`CUDA_VISIBLE_DEVICES`, `BERTH_DEVICES`) and an index that its name spells; its
//! device nodes are exactly the tool's own nodes: `/dev/rblnN`, or files directly in
//! `/dev/rngd` named after the device (never a path that leaves the directory); the
//! percentages are within 0..=100 and every number is finite; free memory is total
//! minus used; and parsing is deterministic.

#![no_main]

use berth_agent::devices::npu::{NpuReading, RNGD_DEV_DIR, parse_furiosa, parse_rbln};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let Ok(json) = std::str::from_utf8(rest) else {
            return;
        };
        let parsed = parse_rbln(json);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", parse_rbln(json)));
        for r in parsed.iter().flatten() {
            check_reading(r);
            let [node] = r.info.device_nodes.as_slice() else {
                panic!("one node per Rebellions NPU: {r:?}");
            };
            let name = node_name(node, Path::new("/dev"));
            assert_eq!(name, format!("rbln{}", digits_of(&name, "rbln", r)));
            assert_eq!(r.info.vendor, "rebellions");
        }
    } else {
        let mut parts = rest.split(|b| *b == 0xFF);
        let mut text = || {
            parts
                .next()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default()
        };
        let (info, status, listing) = (text(), text(), text());
        let listing: Vec<String> = listing.lines().map(str::to_owned).collect();
        let parsed = parse_furiosa(&info, &status, &listing);
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", parse_furiosa(&info, &status, &listing))
        );
        for r in parsed.iter().flatten() {
            check_reading(r);
            assert!(!r.info.device_nodes.is_empty(), "{r:?}");
            for node in &r.info.device_nodes {
                let name = node_name(node, Path::new(RNGD_DEV_DIR));
                let digits: String = name
                    .strip_prefix("npu")
                    .unwrap_or_default()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                assert_eq!(
                    digits.parse::<u32>().ok(),
                    Some(r.info.index),
                    "{name:?} is not a node of NPU {}",
                    r.info.index
                );
            }
            assert_eq!(r.info.vendor, "furiosa");
        }
    }
});

/// The file name of `node`, which must lie directly in `dir` (no `..`, no subdirectory).
fn node_name(node: &Path, dir: &Path) -> String {
    assert_eq!(
        node.parent(),
        Some(dir),
        "{node:?} is not directly in {dir:?}"
    );
    let mut components = node.strip_prefix(dir).expect("under dir").components();
    let Some(Component::Normal(name)) = components.next() else {
        panic!("{node:?} is not a plain file in {dir:?}");
    };
    assert!(components.next().is_none(), "{node:?}");
    name.to_str().expect("UTF-8 node name").to_owned()
}

/// The digits after `prefix` in `name`, which must spell the reading's index.
fn digits_of(name: &str, prefix: &str, r: &NpuReading) -> String {
    let digits = name.strip_prefix(prefix).unwrap_or_default();
    assert!(
        !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()),
        "{name:?}"
    );
    assert_eq!(digits.parse::<u32>().ok(), Some(r.info.index), "{name:?}");
    digits.to_owned()
}

fn check_reading(r: &NpuReading) {
    let uuid = &r.info.uuid;
    assert!(!uuid.is_empty() && uuid.len() <= 128, "{uuid:?}");
    assert!(
        uuid.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':')),
        "{uuid:?} is not safe in a comma-separated device list"
    );
    let t = &r.telemetry;
    for (what, pct) in [
        ("utilization", t.utilization_pct),
        ("memory utilization", t.memory_utilization_pct),
    ] {
        assert!((0.0..=100.0).contains(&pct), "{what} {pct} in {r:?}");
    }
    assert!(t.temperature_c.is_finite(), "{r:?}");
    assert!(t.power_w.is_finite(), "{r:?}");
    if let Some(free) = t.extra.memory_free_bytes {
        assert_eq!(
            free,
            r.info.memory_bytes.saturating_sub(t.memory_used_bytes)
        );
    }
}
