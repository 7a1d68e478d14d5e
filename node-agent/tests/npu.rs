//! NPU backends through stand-in vendor tools (shell scripts printing the tools' JSON):
//! job evidence integrates their power samples, and the Furiosa core clock reaches
//! `/metrics` as the SM clock.

use berth_agent::devices::DeviceBackend;
use berth_agent::devices::npu::{NpuBackend, Vendor};
use berth_agent::evidence::{JobMeter, Reading};
use berth_agent::metrics::{DeviceMetrics, Metered};
use berth_proto::evidence::{EnergySource, UtilizationSource};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const NPU0: &str = "3a5d3eec-4b2e-4fa0-afa0-192c9b99a7c2";

/// Writes an executable `name` into `dir` that prints `body` (a shell here-document
/// may use `$n`, the number of this call, counted in `dir/calls-NAME`).
fn tool(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\nf=\"$(dirname \"$0\")/calls-{name}\"\nn=$(( $(cat \"$f\" 2>/dev/null || echo 0) + 1 ))\necho $n > \"$f\"\n{body}\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn rbln_job_energy_is_integrated_from_power_samples() {
    let dir = tempfile::tempdir().unwrap();
    // Call n draws 100·n W; utilisation 25 %; 1 GiB in use.
    tool(
        dir.path(),
        "rbln-smi",
        r#"cat <<JSON
{"KMD_version": "3.0.0", "devices": [{"npu": 0, "name": "RBLN-CA22",
 "uuid": "3a5d3eec-4b2e-4fa0-afa0-192c9b99a7c2", "device": "rbln0", "status": "normal",
 "pci": {"bus_id": "0000:03:00.0"}, "temperature": "40C", "card_power": "$(( n * 100 ))000000uW",
 "memory": {"used": "1073741824", "total": "16877879296"}, "util": "25.0"}]}
JSON"#,
    );
    let backend = NpuBackend::new(Vendor::Rebellions, None, Some(dir.path())).unwrap();
    assert_eq!(backend.discover().await.unwrap().len(), 1);
    let mut job = JobMeter::new(&[NPU0.to_owned()]);
    let mut readings = Vec::new();
    for _ in 0..4 {
        // A pause between samples so they are apart in time.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = backend.sample().await.unwrap();
        let t = s[0].telemetry.as_ref().unwrap();
        assert!(!t.energy_counter, "rbln-smi has no energy counter");
        let r = Reading::from_telemetry(t);
        readings.push(r);
        job.add(NPU0, r);
    }
    // Calls 2..=5 (discovery was the first): 200, 300, 400, 500 W.
    let powers: Vec<f64> = readings.iter().map(|r| r.power_w).collect();
    assert_eq!(powers, [200.0, 300.0, 400.0, 500.0]);
    let want_j: f64 = readings
        .windows(2)
        .map(|w| (w[0].power_w + w[1].power_w) / 2.0 * (w[1].at_ms - w[0].at_ms) as f64 / 1000.0)
        .sum();
    let e = job.evidence().unwrap();
    assert!(want_j > 0.0);
    assert!(
        (e.energy_wh * 3600.0 - want_j).abs() < 1e-9,
        "{e:?} vs {want_j} J"
    );
    assert_eq!(e.energy_source, Some(EnergySource::PowerSamples));
    assert_eq!(e.utilization_source, UtilizationSource::DeviceBusy);
    assert_eq!(e.mean_utilization_percent, 25.0);
    assert_eq!(e.mean_sm_active, None);
    assert_eq!(e.peak_memory_bytes, 1 << 30);
    assert_eq!(e.samples, 4);
}

#[tokio::test]
async fn furiosa_core_clock_is_exported_as_the_sm_clock() {
    let dir = tempfile::tempdir().unwrap();
    tool(
        dir.path(),
        "furiosa-smi",
        r#"case "$1" in
info) cat <<JSON
[{"arch": "rngd", "dev_name": "npu0", "device_uuid": "A76AAD68-6855-40B1-9E86-D080852D1C80",
  "temperature": "30.18°C", "power": "53.00 W", "core_clock": "1000 MHz", "pci_bdf": "0000:17:00.0"}]
JSON
;;
status) cat <<JSON
[{"arch": "rngd", "device": "npu0", "liveness": "alive",
  "memory": {"dram": {"used_size": 0, "total_size": 51539607552}},
  "pe_utilizations": [{"pe_core": 0, "pe_utilization": 10.0}]}]
JSON
;;
esac"#,
    );
    let inner: Arc<dyn DeviceBackend> =
        Arc::new(NpuBackend::new(Vendor::Furiosa, None, Some(dir.path())).unwrap());
    let metrics = Arc::new(DeviceMetrics::new("npu-host"));
    let backend = Metered::new(inner, metrics.clone());
    backend.discover().await.unwrap();
    backend.sample().await.unwrap();
    let text = metrics.render();
    let line = r#"DCGM_FI_DEV_SM_CLOCK{Hostname="npu-host",UUID="A76AAD68-6855-40B1-9E86-D080852D1C80",berth_job="",berth_org="",device="furiosa0",gpu="0",modelName="rngd",pci_bus_id="0000:17:00.0"} 1000"#;
    assert!(text.contains(line), "{text}");
    assert!(
        text.contains(r#"berth_npu_power_watts{Hostname="npu-host",UUID="A76AAD68-6855-40B1-9E86-D080852D1C80""#),
        "{text}"
    );
    assert!(
        !text.contains("DCGM_FI_DEV_GPU_UTIL{"),
        "an NPU is not a GPU: {text}"
    );
}
