//! Agent overhead while sampling 8 devices every second: the device backend's real
//! sampling path plus the `/metrics` update (and a scrape every 15 s) and the job
//! evidence integration (one job per device, as on a full node), measured from
//! /proc/self/stat (CPU time of the whole process, all threads) and /proc/self/status
//! (resident memory).
//!
//! ```sh
//! cargo bench -p berth-agent --bench sampling            # 60 s per backend
//! BERTH_BENCH_SECS=10 cargo bench -p berth-agent --bench sampling
//! ```
//!
//! Backends: `sim:8`, then NVML through the real nvml-wrapper path against the fake
//! `libnvidia-ml.so.1` (tests/fake_nvml) built with 8 GPUs (skipped without gcc).

use berth_agent::devices::{self, DeviceBackend, DeviceOptions, DeviceSpec};
use berth_agent::evidence::{JobMeter, Reading};
use berth_agent::metrics::{DeviceMetrics, Metered};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clock ticks per second of /proc/self/stat (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after "(comm) ".
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / USER_HZ
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run(label: &str, spec: DeviceSpec, options: DeviceOptions, secs: u64) {
    let inner = devices::open(&spec, &options).await.expect("open backend");
    let metrics = Arc::new(DeviceMetrics::new("bench-host"));
    let backend = Metered::new(inner, metrics.clone());
    let infos = backend.discover().await.expect("discover");
    let n = infos.len();
    let mut jobs: Vec<JobMeter> = infos
        .iter()
        .map(|d| JobMeter::new(std::slice::from_ref(&d.uuid)))
        .collect();
    // Warm up (first sample allocates), then measure.
    backend.sample().await.expect("sample");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut samples = 0u64;
    let mut rendered = 0usize;
    while t0.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let s = backend.sample().await.expect("sample");
        assert_eq!(s.len(), n);
        for (job, sample) in jobs.iter_mut().zip(&s) {
            if let Some(t) = &sample.telemetry {
                job.add(&sample.uuid, Reading::from_telemetry(t));
            }
        }
        samples += 1;
        if samples.is_multiple_of(15) {
            rendered = metrics.render().len();
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let evidence = jobs.iter().filter_map(JobMeter::evidence).count();
    assert_eq!(evidence, n, "every job has evidence");
    println!(
        "{label}: {n} devices, {samples} samples in {wall:.1} s: CPU {cpu:.2} s = {:.3} % of one core; \
         RSS {:.1} MB (peak {:.1} MB); /metrics {rendered} bytes",
        cpu / wall * 100.0,
        status_kib("VmRSS:") as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0,
    );
}

fn main() {
    let secs: u64 = std::env::var("BERTH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let options = DeviceOptions {
            node: "bench".into(),
            ..DeviceOptions::default()
        };
        run(
            "sim:8",
            DeviceSpec::Sim {
                count: 8,
                class: "sim-gpu".into(),
            },
            options.clone(),
            secs,
        )
        .await;

        let dir = tempfile::tempdir().expect("temp dir");
        let lib = dir.path().join("libnvidia-ml.so.1");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
        let built = std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-DFAKE_GPU_COUNT=8", "-o"])
            .arg(&lib)
            .arg(&source)
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            println!(
                "nvml (fake, 8 GPUs): skipped, gcc could not build {}",
                source.display()
            );
            return;
        }
        let mut options = options;
        options.nvml.lib_path = Some(lib);
        run(
            "nvml (fake libnvidia-ml, 8 GPUs)",
            DeviceSpec::Nvml,
            options,
            secs,
        )
        .await;
    });
}
