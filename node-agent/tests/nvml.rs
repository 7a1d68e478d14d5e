//! The NVML backend through the real nvml-wrapper path: a stand-in
//! `libnvidia-ml.so.1` (`tests/fake_nvml/fake_nvml.c`) is compiled with gcc for each
//! scenario and loaded exactly as the driver's library would be.

use berth_agent::devices::nvml::{NvmlBackend, NvmlOptions};
use berth_agent::devices::{
    self, Activity, DeviceBackend, DeviceOptions, DeviceSample, DeviceSpec, Health,
};
use berth_agent::evidence::{JobMeter, Reading};
use berth_proto::evidence::{EnergySource, UtilizationSource};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod fake_nvml;

/// Builds the fake library with `defines` into a fresh directory.
fn fake_nvml(defines: &[&str]) -> (tempfile::TempDir, PathBuf) {
    fake_nvml::build(defines)
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
        assert!(t.energy_counter, "NVML's energy is the GPU's own counter");
        assert_eq!(t.energy_j - before, 120.0, "one read of the counter later");
        // GPM wants two samples 100 ms apart: none yet, so no activity.
        assert_eq!(t.activity, Activity::default());
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

/// More than NVML's 100 ms between two GPM samples. A pause between samples, not a
/// wait for something to happen.
const GPM_PAUSE: Duration = Duration::from_millis(150);

fn activity(samples: &[DeviceSample], uuid: &str) -> Activity {
    by_uuid(samples, uuid).telemetry.as_ref().unwrap().activity
}

/// The activity the stand-in reports for GPU `i`, as fractions.
fn hopper_activity(i: u32) -> Activity {
    let i = f64::from(i);
    Activity {
        gr_engine: Some((60.0 + 10.0 * i) / 100.0),
        sm: Some((45.0 + 10.0 * i) / 100.0),
        tensor: Some((30.0 + 10.0 * i) / 100.0),
        dram: Some((25.0 + i) / 100.0),
    }
}

#[tokio::test]
async fn gpm_activity_is_computed_between_two_samples() {
    let (_dir, lib) = fake_nvml(&[]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    let first = backend.sample().await.unwrap();
    assert_eq!(
        activity(&first, GPU0),
        Activity::default(),
        "one sample is not enough"
    );
    tokio::time::sleep(GPM_PAUSE).await;
    let second = backend.sample().await.unwrap();
    assert_eq!(activity(&second, GPU0), hopper_activity(0));
    assert_eq!(activity(&second, GPU1), hopper_activity(1));
    // Sooner than 100 ms: the activity computed last, not an error or a gap.
    let soon = backend.sample().await.unwrap();
    assert_eq!(activity(&soon, GPU1), hopper_activity(1));
    // The stand-in refuses more than 4 live GPM samples per GPU: old ones are freed.
    for _ in 0..8 {
        tokio::time::sleep(GPM_PAUSE).await;
        let s = backend.sample().await.unwrap();
        assert_eq!(activity(&s, GPU0), hopper_activity(0));
        assert_eq!(activity(&s, GPU1), hopper_activity(1));
    }
}

#[tokio::test]
async fn gpus_without_gpm_have_no_activity() {
    // GPU 1 predates Hopper.
    let (_dir, lib) = fake_nvml(&["FAKE_NO_GPM_GPU=1"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    backend.sample().await.unwrap();
    tokio::time::sleep(GPM_PAUSE).await;
    let s = backend.sample().await.unwrap();
    assert_eq!(activity(&s, GPU0), hopper_activity(0));
    assert_eq!(activity(&s, GPU1), Activity::default());
    assert_eq!(by_uuid(&s, GPU1).health, Health::Healthy);

    // A driver without the GPM functions at all.
    let (_dir, lib) = fake_nvml(&["FAKE_NO_GPM"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    backend.sample().await.unwrap();
    tokio::time::sleep(GPM_PAUSE).await;
    let s = backend.sample().await.unwrap();
    for uuid in [GPU0, GPU1] {
        let t = by_uuid(&s, uuid).telemetry.as_ref().unwrap();
        assert_eq!(t.activity, Activity::default());
        assert_eq!(t.utilization_pct, if uuid == GPU0 { 40.0 } else { 50.0 });
    }
}

#[tokio::test]
async fn job_evidence_from_nvml_uses_gpm_and_the_energy_counter() {
    // The counter restarts (a driver reload) at each GPU's 3rd read.
    let (_dir, lib) = fake_nvml(&["FAKE_ENERGY_RESET_AT=3"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    let mut job = JobMeter::new(&[GPU0.to_owned(), GPU1.to_owned()]);
    let mut counters = Vec::new();
    for round in 0..5 {
        if round > 0 {
            tokio::time::sleep(GPM_PAUSE).await;
        }
        for s in backend.sample().await.unwrap() {
            let t = s.telemetry.as_ref().unwrap();
            if s.uuid == GPU0 {
                counters.push(t.energy_j);
            }
            job.add(&s.uuid, Reading::from_telemetry(t));
        }
    }
    assert!(
        counters[2] < counters[1],
        "the counter was reset: {counters:?}"
    );
    let e = job.evidence().unwrap();
    // 4 intervals of 120 J on each of 2 GPUs, the reset included.
    assert!(
        (e.energy_wh - 2.0 * 4.0 * 120.0 / 3600.0).abs() < 1e-9,
        "{e:?}"
    );
    assert_eq!(e.energy_source, Some(EnergySource::Counter));
    // Utilisation is SM activity (45 % and 55 %), not GPU_UTIL (40 % and 50 %).
    assert_eq!(e.utilization_source, UtilizationSource::SmActive);
    assert!((e.mean_utilization_percent - 50.0).abs() < 1e-9, "{e:?}");
    assert!((e.mean_sm_active.unwrap() - 0.50).abs() < 1e-9, "{e:?}");
    assert!((e.mean_tensor_active.unwrap() - 0.35).abs() < 1e-9, "{e:?}");
    assert_eq!(e.peak_memory_bytes, 2048 << 20);
    assert_eq!((e.samples, e.devices), (5, 2));
    assert!(e.covered_seconds >= 0.5, "{e:?}");

    // Without GPM, utilisation is GPU_UTIL.
    let (_dir, lib) = fake_nvml(&["FAKE_NO_GPM"]);
    let backend = NvmlBackend::open(options(&lib)).await.unwrap();
    let mut job = JobMeter::new(&[GPU1.to_owned()]);
    for _ in 0..2 {
        for s in backend.sample().await.unwrap() {
            job.add(
                &s.uuid,
                Reading::from_telemetry(s.telemetry.as_ref().unwrap()),
            );
        }
    }
    let e = job.evidence().unwrap();
    assert_eq!(e.utilization_source, UtilizationSource::DeviceBusy);
    assert_eq!(e.mean_utilization_percent, 50.0);
    assert_eq!(e.mean_sm_active, None);
    assert!((e.energy_wh - 120.0 / 3600.0).abs() < 1e-9, "{e:?}");
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
    tokio::time::sleep(GPM_PAUSE).await;
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
        format!("DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{gpu0}}} 0.6"),
        format!("DCGM_FI_PROF_SM_ACTIVE{{{gpu0}}} 0.45"),
        format!("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{gpu0}}} 0.3"),
        format!("DCGM_FI_PROF_DRAM_ACTIVE{{{gpu0}}} 0.25"),
        format!("DCGM_FI_PROF_SM_ACTIVE{{{gpu1}}} 0.55"),
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

/// The panels of NVIDIA's DCGM exporter dashboard (Grafana 12239) and the series each
/// one queries, all selected by `instance` (Prometheus adds it) and `gpu`; the `gpu`
/// drop-down lists `label_values(DCGM_FI_DEV_GPU_TEMP, gpu)`.
const DASHBOARD_12239: [(&str, &str); 8] = [
    ("GPU Temperature", "DCGM_FI_DEV_GPU_TEMP"),
    ("GPU Avg. Temp", "DCGM_FI_DEV_GPU_TEMP"),
    ("GPU Power Usage", "DCGM_FI_DEV_POWER_USAGE"),
    ("GPU Power Total", "DCGM_FI_DEV_POWER_USAGE"),
    ("GPU SM Clocks", "DCGM_FI_DEV_SM_CLOCK"),
    ("GPU Utilization", "DCGM_FI_DEV_GPU_UTIL"),
    ("GPU Framebuffer Mem Used", "DCGM_FI_DEV_FB_USED"),
    ("Tensor Core Utilization", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"),
];

#[tokio::test]
async fn every_panel_of_the_dcgm_dashboard_has_data() {
    use berth_agent::metrics::{DeviceMetrics, Metered};
    use std::sync::Arc;

    let (_dir, lib) = fake_nvml(&[]);
    let nvml: Arc<dyn DeviceBackend> = Arc::new(NvmlBackend::open(options(&lib)).await.unwrap());
    let sim = devices::open(
        &DeviceSpec::Sim {
            count: 2,
            class: "sim-gpu".into(),
        },
        &DeviceOptions {
            node: "n".into(),
            ..DeviceOptions::default()
        },
    )
    .await
    .unwrap();
    for (name, inner) in [("nvml", nvml), ("sim", sim)] {
        let metrics = Arc::new(DeviceMetrics::new("host"));
        let backend = Metered::new(inner, metrics.clone());
        backend.discover().await.unwrap();
        backend.sample().await.unwrap();
        tokio::time::sleep(GPM_PAUSE).await;
        backend.sample().await.unwrap();
        let text = metrics.render();
        for (panel, metric) in DASHBOARD_12239 {
            for gpu in ["0", "1"] {
                let value = text
                    .lines()
                    .filter(|l| l.starts_with(&format!("{metric}{{")))
                    .find(|l| l.contains(&format!("gpu=\"{gpu}\"")))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or_else(|| {
                        panic!("{name}: panel {panel:?} has no {metric} for gpu {gpu}\n{text}")
                    });
                assert!(value.is_finite(), "{name}: {panel}: {value}");
                if metric.starts_with("DCGM_FI_PROF_") {
                    assert!(
                        (0.0..=1.0).contains(&value),
                        "{name}: {panel}: a fraction, not {value}"
                    );
                }
            }
        }
    }
}
