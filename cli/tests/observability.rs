//! Proof with real parts that the shipped dashboards and alert rules work: Debian's
//! `prometheus` scrapes a real scheduler and two real agents (one on a stand-in NVML
//! library, one on a stand-in `rbln-smi`: fakes only at the hardware edge), after a
//! booking, jobs and budgets exist. Then every query of every panel of every dashboard
//! in `helm/berth/dashboards/`, with its template variables set to real label values,
//! must parse and return series through Prometheus's HTTP API; the alert rules in
//! `helm/berth/rules/` are loaded and the fatal-XID alert fires on the GPU that reported
//! one; and `promtool check metrics` accepts every `/metrics` page.
//!
//! Needs `prometheus` and `promtool` (Debian's `prometheus` package; `.ci/run` installs
//! it) and `gcc`; fails, never skips, without them.

mod common;

use common::Centre;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SITE: &str = "busan";
const GPU_CLASS: &str = "h100-80gb";
const NPU_CLASS: &str = "rbln-ca22";
/// The fourth stand-in GPU reports XID 79 (fallen off the bus).
const FAILED_GPU: &str = "GPU-fa4e0000-0000-4000-8000-000000000003";
/// What Grafana puts for `$__rate_interval` and `$__interval` here (1 s scrapes).
const RATE_INTERVAL: &str = "30s";
const INTERVAL: &str = "2s";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_owned()
}

/// Fails the test with a clear message when a tool is missing.
#[track_caller]
fn require(tool: &str, hint: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is not installed: {hint}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` over HTTP/1.0 (no chunked encoding): status and body.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut all = String::new();
    s.read_to_string(&mut all).ok()?;
    let (head, body) = all.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// A Prometheus server on a free port, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, jobs: &[(&str, Vec<String>)], rules: &Path) -> Self {
        let mut scrape = String::new();
        for (job, targets) in jobs {
            let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            scrape.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ));
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - '{}'\nscrape_configs:\n{scrape}",
                rules.display()
            ),
        )
        .expect("write prometheus.yml");
        let check = Command::new("promtool")
            .args(["check", "config"])
            .arg(&config)
            .output()
            .expect("run promtool check config");
        assert!(
            check.status.success(),
            "promtool check config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let file = std::fs::File::create(&log).expect("prometheus log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start prometheus");
        let p = Self { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(&p.addr, "/-/ready").map(|r| r.0) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s; its log:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A JSON API call; panics unless the HTTP exchange works and the body is JSON.
    fn api(&self, path: &str) -> Value {
        let (status, body) = http_get(&self.addr, path)
            .unwrap_or_else(|| panic!("GET {path} from prometheus failed"));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: HTTP {status}, not JSON ({e}): {body}"))
    }

    fn query(&self, expr: &str) -> Value {
        self.api(&format!("/api/v1/query?query={}", encode(expr)))
    }

    fn query_range(&self, expr: &str, start: f64, end: f64, step: &str) -> Value {
        self.api(&format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            encode(expr)
        ))
    }

    /// The scalar value of the first series of an instant query, if any.
    fn value(&self, expr: &str) -> Option<f64> {
        let v = self.query(expr);
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log_text());
        }
    }
}

/// Builds the stand-in NVML library: four H100s, the fourth reporting XID 79.
fn fake_nvml(dir: &Path) -> PathBuf {
    require("gcc", "apt-get install gcc");
    let lib = dir.join("libnvidia-ml.so.1");
    let source = repo().join("node-agent/tests/fake_nvml/fake_nvml.c");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .args(["-DFAKE_GPU_COUNT=4", "-DFAKE_XID_GPU=3", "-DFAKE_XID=79"])
        .arg(&source)
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc failed on {}", source.display());
    lib
}

/// A stand-in `rbln-smi` that prints a recorded `rbln-smi --json` (two NPUs, one
/// abnormal).
fn fake_rbln_smi(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tools = dir.join("npu-tools");
    std::fs::create_dir_all(&tools).expect("tools dir");
    let script = tools.join("rbln-smi");
    let sample = repo().join("node-agent/testdata/rbln-smi.json");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec cat '{}'\n", sample.display()),
    )
    .expect("write rbln-smi");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    tools
}

/// Escapes a label value for a regex inside a PromQL double-quoted string, as Grafana
/// does for multi-value variables.
fn regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
    }
    out
}

/// Replaces `$name` and `${name}` with `vars[name]`; fails on any variable left.
fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = vars.keys().collect();
    // Longest first, so `$__rate_interval` is not taken for `$__rate`.
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_owned();
    for name in names {
        out = out
            .replace(&format!("${{{name}}}"), &vars[name])
            .replace(&format!("${name}"), &vars[name]);
    }
    assert!(
        !out.contains('$'),
        "an unknown template variable is left in {out:?}"
    );
    out
}

/// Resolves a dashboard's `label_values(SELECTOR, LABEL)` query variables in order, each
/// to every value Prometheus has (a Grafana "All" of real values).
fn resolve_variables(prom: &Prometheus, dashboard: &Value, file: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::from([
        ("__rate_interval".to_owned(), RATE_INTERVAL.to_owned()),
        ("__interval".to_owned(), INTERVAL.to_owned()),
    ]);
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        let name = v["name"].as_str().expect("variable name");
        match v["type"].as_str() {
            Some("datasource") => continue,
            Some("query") => {}
            other => panic!("{file}: variable {name}: unexpected type {other:?}"),
        }
        let query = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or_else(|| panic!("{file}: variable {name} has no query"));
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{file}: variable {name}: {query:?} is not label_values"));
        let (selector, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("{file}: variable {name}: {query:?}"));
        let selector = substitute(selector.trim(), &vars);
        let reply = prom.api(&format!(
            "/api/v1/label/{}/values?match[]={}",
            label.trim(),
            encode(&selector)
        ));
        assert_eq!(
            reply["status"], "success",
            "{file}: variable {name}: {reply}"
        );
        let values: Vec<String> = reply["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .map(regex_escape)
            .collect();
        assert!(
            !values.is_empty(),
            "{file}: variable {name} ({query}) has no values"
        );
        vars.insert(name.to_owned(), format!("({})", values.join("|")));
    }
    vars
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// True when some sample of a query result is a finite number.
fn has_finite_value(result: &Value) -> bool {
    let finite = |v: &Value| {
        v[1].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    result.as_array().into_iter().flatten().any(|series| {
        finite(&series["value"])
            || series["values"]
                .as_array()
                .into_iter()
                .flatten()
                .any(finite)
    })
}

/// Runs every panel query of `file`; returns a line per failure.
fn check_dashboard(prom: &Prometheus, file: &Path, since: f64) -> (usize, Vec<String>) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file).expect("read"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let vars = resolve_variables(prom, &dashboard, &name);
    let (mut checked, mut failures) = (0, Vec::new());
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let raw = target["expr"].as_str().expect("target expr");
            let expr = substitute(raw, &vars);
            let reply = if target["range"].as_bool() == Some(true) {
                prom.query_range(&expr, since, unix_now(), INTERVAL)
            } else {
                prom.query(&expr)
            };
            checked += 1;
            let result = &reply["data"]["result"];
            if reply["status"] != "success" {
                failures.push(format!("{name} / {title}: {expr}: {reply}"));
            } else if result.as_array().is_none_or(Vec::is_empty) {
                failures.push(format!("{name} / {title}: {expr}: no series"));
            } else if !has_finite_value(result) {
                failures.push(format!(
                    "{name} / {title}: {expr}: no finite value: {result}"
                ));
            }
        }
    }
    (checked, failures)
}

/// The findings `promtool check metrics` may report on our pages, and why:
/// - budget and device-hour metrics are in hours, the unit budgets are set and billed
///   in (their names are part of the interface);
/// - the agent's device metrics keep the DCGM exporter's label names (`modelName`), so
///   existing GPU dashboards work and NPU and health series join with GPU ones.
fn allowed_promtool_finding(line: &str) -> bool {
    const HOUR_METRICS: &[&str] = &[
        "berth_booked_device_hours_total",
        "berth_used_device_hours_total",
        "berth_reclaimed_device_hours_total",
        "berth_ledger_hours_total",
        "berth_budget_allowance_hours",
        "berth_budget_left_hours",
        "berth_budget_charged_hours",
        "berth_budget_used_hours",
        "berth_budget_limit_hours",
    ];
    if let Some(name) = line.strip_suffix(" use base unit \"seconds\" instead of \"hours\"") {
        return HOUR_METRICS.contains(&name);
    }
    if let Some(name) =
        line.strip_suffix(" label names should be written in 'snake_case' not 'camelCase'")
    {
        // The DCGM exporter's own label names (`UUID`, `modelName`, `Hostname`), on its
        // device and profiling (GPM) metrics alike, kept so DCGM dashboards work.
        return name.starts_with("DCGM_FI_DEV_")
            || name.starts_with("DCGM_FI_PROF_")
            || name.starts_with("berth_npu_")
            || name == "berth_agent_device_health";
    }
    false
}

#[track_caller]
fn promtool_check_metrics(what: &str, page: &str) {
    assert!(!page.is_empty(), "{what}: empty /metrics");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let unexpected: Vec<&&str> = findings
        .iter()
        .filter(|l| !allowed_promtool_finding(l))
        .collect();
    // Exit 0: clean; 3: lint findings only (parse errors exit 1).
    assert!(
        out.status.code() == Some(0) || (out.status.code() == Some(3) && unexpected.is_empty()),
        "promtool check metrics on {what}: exit {:?}, unexpected findings {unexpected:?}\n{text}",
        out.status.code()
    );
}

/// The active alerts named `name`.
fn alerts(prom: &Prometheus, name: &str) -> Vec<Value> {
    let reply = prom.api("/api/v1/alerts");
    reply["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["alertname"] == name)
        .cloned()
        .collect()
}

/// Waits (bounded) until every query returns a series, calling `traffic` meanwhile.
#[track_caller]
fn wait_for_series(
    prom: &Prometheus,
    centre: &Centre,
    queries: &[&str],
    mut traffic: impl FnMut(),
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        traffic();
        let missing: Vec<&&str> = queries.iter().filter(|q| prom.value(q).is_none()).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus has no series yet for {missing:?}\n{}",
            centre.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn dashboard_files() -> Vec<PathBuf> {
    let dir = repo().join("helm/berth/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "dashboards: {files:?}");
    files
}

#[test]
fn every_dashboard_panel_returns_series_from_a_real_prometheus() {
    require(
        "prometheus",
        "apt-get install prometheus (Debian's package; .ci/run installs it)",
    );
    require("promtool", "apt-get install prometheus");
    let mut centre = Centre::start();
    let work = centre.path("observability");
    std::fs::create_dir_all(&work).expect("work dir");
    centre.admin(&["admin", "sites", "create", SITE]);
    centre.admin(&[
        "admin", "classes", "create", GPU_CLASS, "--vendor", "nvidia",
    ]);
    centre.admin(&[
        "admin",
        "classes",
        "create",
        NPU_CLASS,
        "--vendor",
        "rebellions",
    ]);
    centre.admin(&["admin", "orgs", "create", "acme"]);
    let alice = centre.user("acme", "alice");
    for (class, hours) in [(GPU_CLASS, "100"), (NPU_CLASS, "50")] {
        centre.admin(&[
            "admin", "budgets", "set", "--org", "acme", "--class", class, "--hours", hours,
        ]);
    }

    let nvml = fake_nvml(&work);
    let tools = fake_rbln_smi(&work);
    let gpu_metrics = format!("127.0.0.1:{}", free_port());
    let npu_metrics = format!("127.0.0.1:{}", free_port());
    let nvml_lib = nvml.display().to_string();
    let tool_dir = tools.display().to_string();
    centre.start_agent_on(
        "gpu-01",
        SITE,
        "nvml",
        4,
        &[
            "--runtime",
            "process",
            "--nvml-lib",
            &nvml_lib,
            "--class",
            GPU_CLASS,
            "--hostname",
            "gpu-01",
            "--metrics-addr",
            &gpu_metrics,
        ],
    );
    centre.start_agent_on(
        "npu-01",
        SITE,
        "rbln",
        2,
        &[
            "--runtime",
            "process",
            "--npu-tool-dir",
            &tool_dir,
            "--class",
            NPU_CLASS,
            "--hostname",
            "npu-01",
            "--metrics-addr",
            &npu_metrics,
        ],
    );
    let prom = Prometheus::start(
        &work,
        &[
            ("berth-scheduler", vec![centre.http.clone()]),
            (
                "berth-agent",
                vec![gpu_metrics.clone(), npu_metrics.clone()],
            ),
        ],
        &repo().join("helm/berth/rules/berth-alerts.yaml"),
    );

    // Prometheus has a baseline before anything happens, so counters and histograms
    // that the activity moves show in rates.
    wait_for_series(
        &prom,
        &centre,
        &["count_over_time(berth_ready[1m]) >= 3"],
        || {},
    );

    // Activity: a booking with a job in it, a queued NPU job, a job that ends, and a
    // job that must wait for the booking's device.
    let since = unix_now() - 1.0;
    let booking = centre.json(
        &alice,
        &[
            "reserve",
            "--class",
            GPU_CLASS,
            "--count",
            "1",
            "--start",
            "now",
            "--duration",
            "1h",
        ],
    );
    let rid = booking["id"].as_str().expect("reservation id").to_owned();
    let submit = |args: &[&str]| centre.berth(&alice, args).ok().stdout.trim().to_owned();
    let in_booking = submit(&[
        "submit",
        "--reservation",
        &rid,
        "--count",
        "1",
        "--",
        "sleep",
        "600",
    ]);
    let on_npu = submit(&[
        "submit",
        "--class",
        NPU_CLASS,
        "--count",
        "1",
        "--max-runtime",
        "1h",
        "--",
        "sleep",
        "600",
    ]);
    let short = submit(&[
        "submit",
        "--class",
        GPU_CLASS,
        "--count",
        "1",
        "--max-runtime",
        "10m",
        "--",
        "true",
    ]);
    let waiting = submit(&[
        "submit",
        "--class",
        GPU_CLASS,
        "--count",
        "3",
        "--max-runtime",
        "2h",
        "--",
        "true",
    ]);
    let state = |id: &str| centre.json(&alice, &["jobs", "show", id])["state"].clone();
    centre.eventually("the jobs to run and end", Duration::from_secs(90), || {
        (state(&in_booking) == "running"
            && state(&on_npu) == "running"
            && state(&short) == "succeeded")
            .then_some(())
    });
    assert_eq!(
        state(&waiting),
        "pending",
        "the 3-GPU job waits for the booked device"
    );

    // Prometheus has scraped all three, with the jobs on the devices, for a while.
    wait_for_series(
        &prom,
        &centre,
        &[
            "count(up == 1) == 3",
            "DCGM_FI_DEV_GPU_UTIL{berth_org=\"acme\"}",
            "berth_npu_utilization_percent{berth_org=\"acme\"}",
            "berth_queue_length{class=\"h100-80gb\"} > 0",
            "sum(increase(berth_job_wait_seconds_count[1m])) >= 2.5",
            "berth_devices_used_now{class=\"rbln-ca22\"} > 0",
            "count_over_time(berth_ready[1m]) >= 15",
        ],
        // People look at their jobs meanwhile: API traffic across many scrapes.
        || {
            centre.berth(&alice, &["jobs"]).ok();
        },
    );

    // RPCs are counted by method and code: a success's status comes in the trailers, a
    // refusal's in the headers.
    centre
        .berth(
            &alice,
            &["jobs", "show", "00000000-0000-4000-8000-000000000000"],
        )
        .failed();
    let scheduler_page = http_get(&centre.http, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    for series in [
        "berth_rpc_requests_total{code=\"NOT_FOUND\",method=\"berth.v1.Jobs/GetJob\"} 1",
        "berth_rpc_requests_total{code=\"OK\",method=\"berth.v1.Jobs/SubmitJob\"} 4",
    ] {
        assert!(
            scheduler_page.contains(series),
            "no {series} in\n{scheduler_page}"
        );
    }

    // promtool accepts every /metrics page.
    let page = |addr: &str| http_get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
    promtool_check_metrics("the scheduler", &page(&centre.http));
    promtool_check_metrics("the GPU agent", &page(&gpu_metrics));
    promtool_check_metrics("the NPU agent", &page(&npu_metrics));

    // Every panel query of every dashboard returns series.
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in dashboard_files() {
        let (n, f) = check_dashboard(&prom, &file, since);
        checked += n;
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} panel queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 60, "only {checked} panel queries");

    // The rules load, the fatal XID fires on its GPU, and nothing claims the scheduler
    // is down or leaderless.
    let rules = prom.api("/api/v1/rules");
    let loaded = rules["data"]["groups"].as_array().map_or(0, |g| {
        g.iter()
            .map(|g| g["rules"].as_array().map_or(0, Vec::len))
            .sum()
    });
    assert_eq!(loaded, 8, "{rules}");
    let xid = centre.eventually(
        "BerthDeviceFatalXid to fire",
        Duration::from_secs(60),
        || {
            let firing: Vec<Value> = alerts(&prom, "BerthDeviceFatalXid")
                .into_iter()
                .filter(|a| a["state"] == "firing")
                .collect();
            (!firing.is_empty()).then_some(firing)
        },
    );
    assert_eq!(xid.len(), 1, "{xid:?}");
    assert_eq!(xid[0]["labels"]["UUID"], FAILED_GPU, "{xid:?}");
    assert_eq!(xid[0]["labels"]["Hostname"], "gpu-01", "{xid:?}");
    for quiet in [
        "BerthSchedulerNotReady",
        "BerthNoLeader",
        "BerthNodeUnreachable",
    ] {
        assert_eq!(alerts(&prom, quiet), Vec::<Value>::new(), "{quiet}");
    }
}

/// The dashboards are Grafana's classic JSON model, importable by hand: a Prometheus
/// data-source variable every panel uses, unique ids, and a grid position per panel.
#[test]
fn dashboards_use_a_datasource_variable_and_are_well_formed() {
    let mut uids = std::collections::BTreeSet::new();
    for file in dashboard_files() {
        let name = file.display().to_string();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_owned()),
            "{name}: uid reused"
        );
        assert!(
            d["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Berth / ")),
            "{name}"
        );
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{name}: schemaVersion"
        );
        assert!(d["id"].is_null(), "{name}: id must be null to import");
        let vars = d["templating"]["list"].as_array().expect("templating");
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: no Prometheus datasource variable"
        );
        let mut ids = std::collections::BTreeSet::new();
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{name}: {title}: id reused"
            );
            for k in ["h", "w", "x", "y"] {
                assert!(p["gridPos"][k].is_u64(), "{name}: {title}: gridPos.{k}");
            }
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}: {title}");
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: {title}: no query");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{name}: {title}");
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                    "{name}: {title}"
                );
            }
        }
    }
}

/// `berth up` serves the agent's device metrics and the web portal, and prints where.
#[test]
fn berth_up_prints_the_agents_metrics_url() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = format!("127.0.0.1:{}", free_port());
    let web = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["up", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--agent-metrics-addr", &agent])
        .args(["--web-addr", &web])
        .env("BERTH_CONFIG", dir.path().join("config.json"))
        .env_remove("BERTH_SERVER")
        .env_remove("BERTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth up");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wanted = format!("agent    http://{agent}/metrics");
    let portal = format!("portal   http://{web} ");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let hit = line.contains(&wanted);
                seen.push(line);
                if hit {
                    break true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => break false,
        }
    };
    let page = http_get(&agent, "/metrics");
    let login = http_get(&web, "/login");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found,
        "berth up never printed {wanted:?}:\n{}",
        seen.join("\n")
    );
    let (status, body) = page.expect("GET the agent's /metrics");
    assert_eq!(status, 200);
    assert!(body.contains("DCGM_FI_DEV_GPU_UTIL{"), "{body}");
    assert!(
        seen.iter().any(|l| l.contains(&portal)),
        "berth up never printed {portal:?}:\n{}",
        seen.join("\n")
    );
    let (status, body) = login.expect("GET the portal's /login");
    assert_eq!(status, 200);
    assert!(body.contains("name=\"token\""), "{body}");
}
