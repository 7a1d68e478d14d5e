//! The NVML backend through the real nvml-wrapper path: a stand-in
//! `libnvidia-ml.so.1` (`tests/fake_nvml/fake_nvml.c`) is compiled with gcc for each
//! scenario and loaded exactly as the driver's library would be.

use berth_agent::devices::nvml::{NvmlBackend, NvmlOptions};
use berth_agent::devices::{self, DeviceBackend, DeviceOptions, DeviceSample, DeviceSpec, Health};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the fake library with `defines` into a fresh directory.
fn fake_nvml(defines: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lib = dir.path().join("libnvidia-ml.so.1");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg(&source)
        .status()
        .expect("gcc must be installed to build the fake NVML library");
    assert!(status.success(), "gcc failed on {}", source.display());
    (dir, lib)
}

fn options(lib: &Path) -> NvmlOptions {
    NvmlOptions {
        lib_path: Some(lib.to_owned()),
        ..NvmlOptions::default()
    }
}

fn by_uuid<'a>(samples: &'a [DeviceSample], uuid: &str) -> &'a DeviceSample {
    samples.iter().find(|s| s.uuid == uuid).expect(uuid)
}

const GPU0: &str = "GPU-fa4e0000-0000-4000-8000-000000000000";
const GPU1: &str = "GPU-fa4e0000-0000-4000-8000-000000000001";

#[tokio::test]
async fn discovers_two_gpus_with_their_fields() {
    let (_dir, lib) = fake_nvml(&[]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    assert_eq!(backend.name(), "nvml");
    let devices = backend.discover().await.unwrap();
    assert_eq!(devices.len(), 2);
    let d = &devices[1];
    assert_eq!(d.uuid, GPU1);
    assert_eq!(d.index, 1);
    assert_eq!(d.vendor, "nvidia");
    assert_eq!(d.model, "NVIDIA H100 80GB HBM3");
    assert_eq!(d.class, "h100-80gb");
    assert_eq!(d.memory_bytes, 81559 << 20);
    assert_eq!(d.pci_bus_id, "00000000:1C:00.0");
    assert!(
        d.device_nodes.is_empty(),
        "NVIDIA GPUs go through a device request"
    );
    assert_eq!(devices[0].uuid, GPU0);
    assert_eq!(devices[0].pci_bus_id, "00000000:1B:00.0");

    let named = NvmlBackend::open(NvmlOptions {
        class: Some("gpu-large".into()),
        ..options(&lib)
    })
    .await
    .unwrap();
    assert!(
        named
            .discover()
            .await
            .unwrap()
            .iter()
            .all(|d| d.class == "gpu-large")
    );
}

#[tokio::test]
async fn telemetry_is_read_and_plausible() {
    let (_dir, lib) = fake_nvml(&[]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    let first = backend.sample().await.unwrap();
    let second = backend.sample().await.unwrap();
    assert_eq!(first.len(), 2);
    for (i, uuid) in [GPU0, GPU1].into_iter().enumerate() {
        let s = by_uuid(&second, uuid);
        assert_eq!(s.health, Health::Healthy, "{uuid}");
        let t = s.telemetry.as_ref().expect("telemetry");
        assert_eq!(t.utilization_pct, 40.0 + 10.0 * i as f64);
        assert_eq!(t.temperature_c, 45.0 + i as f64);
        assert_eq!(t.power_w, 120.0 + i as f64);
        assert_eq!(t.memory_used_bytes, (1024 + 1024 * i as u64) << 20);
        assert!((0.0..=100.0).contains(&t.memory_utilization_pct));
        assert!(t.sampled_at_ms > 0);
        let before = by_uuid(&first, uuid).telemetry.as_ref().unwrap().energy_j;
        assert!(
            t.energy_j > before && before > 5000.0,
            "energy grows: {before} → {}",
            t.energy_j
        );
        let x = &t.extra;
        assert_eq!(x.sm_clock_mhz, Some(1980));
        assert_eq!(x.memory_clock_mhz, Some(2619));
        assert_eq!(x.memory_busy_pct, Some(20.0 + i as f64));
        assert_eq!(x.ecc_corrected_volatile, Some(3));
        assert_eq!(x.ecc_uncorrected_volatile, Some(0));
        assert_eq!(x.retired_pages, None, "Hopper does not retire pages");
        assert_eq!(x.remapped_rows_correctable, Some(1));
        assert_eq!(x.remapped_rows_uncorrectable, Some(0));
        assert_eq!(x.remapping_pending, Some(false));
        assert_eq!(x.mig_enabled, Some(false));
        assert_eq!(x.last_xid, None);
        let free = x.memory_free_bytes.unwrap();
        assert_eq!(free, (81559 - 512 - 1024 - 1024 * i as u64) << 20);
    }
}

#[tokio::test]
async fn a_fatal_xid_fails_its_gpu_and_stays_failed() {
    let (_dir, lib) = fake_nvml(&["FAKE_XID_GPU=1", "FAKE_XID=79"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    for _ in 0..2 {
        let samples = backend.sample().await.unwrap();
        assert_eq!(by_uuid(&samples, GPU0).health, Health::Healthy);
        let failed = by_uuid(&samples, GPU1);
        assert_eq!(
            failed.health,
            Health::Failed("XID 79 (GPU has fallen off the bus)".into())
        );
        assert_eq!(failed.telemetry.as_ref().unwrap().extra.last_xid, Some(79));
    }
}

#[tokio::test]
async fn a_non_fatal_xid_is_recorded_and_the_fatal_set_is_configurable() {
    let (_dir, lib) = fake_nvml(&["FAKE_XID_GPU=0", "FAKE_XID=13"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    let samples = backend.sample().await.unwrap();
    let s = by_uuid(&samples, GPU0);
    assert_eq!(s.health, Health::Healthy);
    assert_eq!(s.telemetry.as_ref().unwrap().extra.last_xid, Some(13));

    let (_dir2, lib2) = fake_nvml(&["FAKE_XID_GPU=0", "FAKE_XID=13"]);
    let strict = NvmlBackend::open(NvmlOptions {
        fatal_xids: BTreeSet::from([13]),
        ..options(&lib2)
    })
    .await
    .unwrap();
    let samples = strict.sample().await.unwrap();
    assert_eq!(
        by_uuid(&samples, GPU0).health,
        Health::Failed("XID 13 (graphics engine exception)".into())
    );
}

#[tokio::test]
async fn an_uncorrectable_ecc_error_fails_the_gpu() {
    let (_dir, lib) = fake_nvml(&["FAKE_ECC_GPU=0"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    let samples = backend.sample().await.unwrap();
    assert_eq!(
        by_uuid(&samples, GPU0).health,
        Health::Failed("uncorrectable ECC error (2 since the driver loaded)".into())
    );
    assert_eq!(by_uuid(&samples, GPU1).health, Health::Healthy);
}

#[tokio::test]
async fn a_gpu_lost_from_the_bus_fails_without_telemetry() {
    let (_dir, lib) = fake_nvml(&["FAKE_LOST_GPU=1"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    for _ in 0..2 {
        let samples = backend.sample().await.unwrap();
        let lost = by_uuid(&samples, GPU1);
        assert_eq!(
            lost.health,
            Health::Failed("lost from the bus (NVML: GPU is lost)".into())
        );
        assert!(lost.telemetry.is_none());
        assert!(by_uuid(&samples, GPU0).telemetry.is_some());
    }
}

#[tokio::test]
async fn a_missing_library_or_driver_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("libnvidia-ml.so.1");
    let err = NvmlBackend::open(options(&missing)).await.unwrap_err().0;
    assert!(
        err.starts_with("nvml: cannot load the NVIDIA management library")
            && err.contains("is the NVIDIA driver installed?"),
        "{err}"
    );

    let (_dir, lib) = fake_nvml(&["FAKE_DRIVER_NOT_LOADED"]);
    let err = NvmlBackend::open(options(&lib)).await.unwrap_err().0;
    assert!(err.contains("NVIDIA kernel driver is not running"), "{err}");
}

#[tokio::test]
async fn auto_picks_nvml_and_otherwise_says_what_it_tried() {
    let (_dir, lib) = fake_nvml(&[]);
    let empty = tempfile::tempdir().unwrap();
    let mut opts = DeviceOptions {
        node: "n".into(),
        nvml: options(&lib),
        tool_dir: Some(empty.path().to_owned()),
        ..DeviceOptions::default()
    };
    let backend = devices::open(&DeviceSpec::Auto, &opts).await.unwrap();
    assert_eq!(backend.name(), "nvml");
    assert_eq!(backend.discover().await.unwrap().len(), 2);

    let (_dir0, none) = fake_nvml(&["FAKE_GPU_COUNT=0"]);
    opts.nvml.lib_path = Some(none);
    let err = devices::open(&DeviceSpec::Auto, &opts)
        .await
        .err()
        .unwrap()
        .0;
    assert!(err.starts_with("auto: found no accelerator"), "{err}");
    assert!(
        err.contains("nvml: the library loaded but reports no GPU"),
        "{err}"
    );
    assert!(err.contains("rbln-smi: not found"), "{err}");
    assert!(err.contains("furiosa-smi: not found"), "{err}");

    let nvml = devices::open(&DeviceSpec::Nvml, &opts).await.unwrap();
    assert!(nvml.discover().await.unwrap().is_empty());
}

/// GETs `path` from `addr` with a bare HTTP/1.0 request; the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: agent\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn metrics_endpoint_serves_dcgm_names_and_labels() {
    use berth_agent::devices::Assignment;
    use berth_agent::metrics::{DeviceMetrics, Metered, serve};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    let (_dir, lib) = fake_nvml(&["FAKE_XID_GPU=1", "FAKE_XID=79"]);
    let nvml: Arc<dyn DeviceBackend> = Arc::new(NvmlBackend::open(options(&lib)).await.unwrap());
    let metrics = Arc::new(DeviceMetrics::new("gpu-host-1"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let addr = serve(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let backend = Metered::new(nvml, metrics);
    backend.discover().await.unwrap();
    backend.set_assignments(&BTreeMap::from([(
        GPU0.to_owned(),
        Assignment {
            job: "job-7".into(),
            org: "acme".into(),
        },
    )]));
    backend.sample().await.unwrap();

    let body = http_get(addr, "/metrics").await;
    let gpu0 = format!(
        r#"Hostname="gpu-host-1",UUID="{GPU0}",berth_job="job-7",berth_org="acme",device="nvidia0",gpu="0",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:1B:00.0""#
    );
    let gpu1 = format!(
        r#"Hostname="gpu-host-1",UUID="{GPU1}",berth_job="",berth_org="",device="nvidia1",gpu="1",modelName="NVIDIA H100 80GB HBM3",pci_bus_id="00000000:1C:00.0""#
    );
    for line in [
        format!("DCGM_FI_DEV_GPU_UTIL{{{gpu0}}} 40"),
        format!("DCGM_FI_DEV_MEM_COPY_UTIL{{{gpu0}}} 20"),
        format!("DCGM_FI_DEV_FB_USED{{{gpu0}}} 1024"),
        format!("DCGM_FI_DEV_FB_FREE{{{gpu0}}} 80023"),
        format!("DCGM_FI_DEV_GPU_TEMP{{{gpu0}}} 45"),
        format!("DCGM_FI_DEV_POWER_USAGE{{{gpu0}}} 120"),
        format!("DCGM_FI_DEV_SM_CLOCK{{{gpu0}}} 1980"),
        format!("DCGM_FI_DEV_MEM_CLOCK{{{gpu0}}} 2619"),
        format!("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{{{gpu0}}} 3"),
        format!("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{gpu0}}} 0"),
        format!("DCGM_FI_DEV_XID_ERRORS{{{gpu0}}} 0"),
        format!("DCGM_FI_DEV_XID_ERRORS{{{gpu1}}} 79"),
        format!(
            r#"berth_agent_device_health{{Hostname="gpu-host-1",UUID="{GPU1}",modelName="NVIDIA H100 80GB HBM3",vendor="nvidia"}} 2"#
        ),
        format!(
            r#"berth_agent_device_health{{Hostname="gpu-host-1",UUID="{GPU0}",modelName="NVIDIA H100 80GB HBM3",vendor="nvidia"}} 0"#
        ),
    ] {
        assert!(body.contains(&line), "missing {line}\n{body}");
    }
    assert!(
        body.contains(&format!("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{gpu0}}} ")),
        "{body}"
    );
    assert!(
        body.contains("# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %)."),
        "{body}"
    );
    assert!(body.contains("# TYPE DCGM_FI_DEV_FB_USED gauge"), "{body}");
    shutdown.cancel();
}
