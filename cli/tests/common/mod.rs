//! End-to-end harness: starts the real `berth-scheduler` and `berth-agent` binaries on
//! free ports and drives them through the real `berth` binary, as a user would.
//!
//! The scheduler and agent binaries are looked for next to `berth` in the same target
//! dir; build them first (`cargo build -p berth-scheduler -p berth-agent`, or run the
//! tests with `cargo test --workspace`). With `BERTH_E2E_DB=postgres` and
//! `BERTH_TEST_POSTGRES_URL`, each centre gets a fresh PostgreSQL database (created and
//! dropped with `psql`); otherwise SQLite in the centre's temp dir.
//!
//! Nothing here sleeps for correctness: everything polls with a bounded deadline.

#![allow(dead_code)]

pub mod certs;

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one `berth` command may take before the test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(90);
/// How long the scheduler may take to listen and be ready.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long an agent may take to join and report its devices.
const JOIN_DEADLINE: Duration = Duration::from_secs(60);
/// Interval between polls.
const POLL: Duration = Duration::from_millis(50);

/// The result of one `berth` run.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub args: Vec<String>,
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            0,
            "berth {:?} failed:\n{}",
            self.args,
            self.describe()
        );
        self
    }

    /// Panics unless the command failed (non-zero exit) with an `error: ` line on stderr.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert_ne!(
            self.code,
            0,
            "berth {:?} should have failed:\n{}",
            self.args,
            self.describe()
        );
        assert!(
            self.stderr.contains("error: "),
            "berth {:?} should print `error: ...` on stderr:\n{}",
            self.args,
            self.describe()
        );
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "berth {:?}: stdout is not JSON ({e}):\n{}",
                self.args,
                self.describe()
            )
        })
    }

    /// Stderr, lower-cased, for matching messages.
    pub fn err_lower(&self) -> String {
        self.stderr.to_lowercase()
    }

    pub fn describe(&self) -> String {
        format!(
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The PostgreSQL server to create each centre's database on, when the tests are to
/// run on PostgreSQL: `BERTH_E2E_DB=postgres` (as `scripts/test.sh` sets for its second
/// pass) with `BERTH_TEST_POSTGRES_URL`. Otherwise SQLite, even when the URL is set for
/// the storage tests.
fn postgres_url() -> Option<String> {
    let url = std::env::var("BERTH_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    match std::env::var("BERTH_E2E_DB").as_deref() {
        Ok("postgres") => Some(url.expect(
            "BERTH_E2E_DB=postgres needs BERTH_TEST_POSTGRES_URL (eval \"$(scripts/postgres.sh)\")",
        )),
        Ok("sqlite") | Ok("") | Err(_) => None,
        Ok(other) => panic!("BERTH_E2E_DB={other:?}: expected postgres or sqlite"),
    }
}

/// A PostgreSQL database created for one centre.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    fn create(admin_url: &str) -> (Self, String) {
        let name = format!("berth_e2e_{:016x}", random_u64());
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        let url = with_database(admin_url, &name);
        (
            Self {
                admin_url: admin_url.to_owned(),
                name,
            },
            url,
        )
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.admin_url)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[track_caller]
pub fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("BERTH_TEST_POSTGRES_URL is set but psql cannot run: {e}"));
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replaces the database name in a `postgres://user:pass@host:port/db?opts` URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut out = format!("{scheme}://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A child process killed when dropped, with its output in a log file.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("create log file");
        let err = file.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Panics with the log if the process has exited.
    #[track_caller]
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.name,
                tail(&self.log, 80)
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Where the real binaries are: next to `berth`.
pub fn binary(name: &str) -> PathBuf {
    let berth = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let path = berth.with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: the end-to-end tests need the real {name} binary next to berth. \
         Build it first with `cargo build -p berth-scheduler -p berth-agent` \
         (or run `cargo test --workspace`).",
        path.display()
    );
    path
}

/// Starts `berth-scheduler` on `dir/scheduler` and waits for `/readyz`; returns it with
/// its gRPC, HTTP and web portal addresses (the portal on a free port).
fn spawn_scheduler(
    dir: &Path,
    db_url: &Option<String>,
    grpc: &str,
    http: &str,
    extra_args: &[String],
) -> (Proc, String, String, String) {
    let data = dir.join("scheduler");
    let addr_file = data.join("addrs.json");
    let _ = std::fs::remove_file(&addr_file);
    let token_file = data.join("admin.token");
    let mut cmd = Command::new(binary("berth-scheduler"));
    cmd.arg("--dev")
        .arg("--data-dir")
        .arg(&data)
        .args(["--grpc-addr", grpc, "--http-addr", http])
        .args(["--web-addr", "127.0.0.1:0"])
        .arg("--addr-file")
        .arg(&addr_file)
        .arg("--bootstrap-admin-token-file")
        .arg(&token_file)
        .args(["--lease", "3s"])
        .args(extra_args)
        .env_remove("BERTH_DATABASE_URL")
        .env("BERTH_LOG", "info");
    if let Some(url) = db_url {
        cmd.env("BERTH_DATABASE_URL", url);
    }
    let log = dir.join(format!("scheduler-{}.log", random_u64()));
    let mut scheduler = Proc::spawn("berth-scheduler", &mut cmd, log);
    let deadline = Instant::now() + START_DEADLINE;
    let addrs: Value = loop {
        scheduler.check_alive();
        if let Some(v) = std::fs::read_to_string(&addr_file)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "berth-scheduler wrote no {} within {START_DEADLINE:?}; its log:\n{}",
            addr_file.display(),
            tail(&scheduler.log, 80)
        );
        std::thread::sleep(POLL);
    };
    let grpc = addrs["grpc"].as_str().expect("addrs.json: grpc").to_owned();
    let http = addrs["http"].as_str().expect("addrs.json: http").to_owned();
    let web = addrs["web"].as_str().expect("addrs.json: web").to_owned();
    while http_status(&http, "/readyz") != Some(200) {
        scheduler.check_alive();
        assert!(
            Instant::now() < deadline,
            "berth-scheduler not ready within {START_DEADLINE:?}; its log:\n{}",
            tail(&scheduler.log, 80)
        );
        std::thread::sleep(POLL);
    }
    (scheduler, grpc, http, web)
}

/// How a centre's scheduler is started, beyond the defaults.
#[derive(Debug, Clone)]
pub struct CentreOptions {
    /// gRPC listen address.
    pub grpc_addr: String,
    /// Extra scheduler flags (`--tls-cert FILE`, `--insecure-plaintext`, ...).
    pub scheduler_args: Vec<String>,
    /// The scheduler serves TLS: its URL is `https://`, and the CLI and agents trust this
    /// CA (`BERTH_CA_CERT`, `--ca-cert`).
    pub ca_cert: Option<PathBuf>,
}

impl Default for CentreOptions {
    fn default() -> Self {
        Self {
            grpc_addr: "127.0.0.1:0".into(),
            scheduler_args: Vec::new(),
            ca_cert: None,
        }
    }
}

impl CentreOptions {
    /// A scheduler serving TLS with `cert` and `key`, trusted through `ca`.
    pub fn tls(cert: &Path, key: &Path, ca: &Path) -> Self {
        Self {
            scheduler_args: vec![
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ],
            ca_cert: Some(ca.to_owned()),
            ..Self::default()
        }
    }
}

/// A running centre: one scheduler, any number of agents, a temp dir for their state.
pub struct Centre {
    // Field order matters for drop: processes first, then the database, then the dir.
    agents: Vec<Proc>,
    scheduler: Proc,
    db_url: Option<String>,
    _db: Option<PgDatabase>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of the gRPC listener.
    pub grpc: String,
    /// `127.0.0.1:PORT` of the HTTP listener.
    pub http: String,
    /// `127.0.0.1:PORT` of the web portal (a new port after a restart).
    pub web: String,
    /// The bootstrap admin's token.
    pub admin_token: String,
    options: CentreOptions,
}

impl Centre {
    /// Starts a scheduler on free ports and waits until `/readyz` answers 200.
    pub fn start() -> Self {
        Self::start_with(CentreOptions::default())
    }

    /// As [`Centre::start`], with `options`.
    pub fn start_with(options: CentreOptions) -> Self {
        Self::start_on(postgres_url(), options)
    }

    /// As [`Centre::start`], always on SQLite.
    pub fn start_sqlite() -> Self {
        Self::start_on(None, CentreOptions::default())
    }

    /// As [`Centre::start`], always on a fresh PostgreSQL database of the server at
    /// `BERTH_TEST_POSTGRES_URL` (`eval "$(scripts/postgres.sh)"`); fails without it.
    pub fn start_postgres() -> Self {
        let url = std::env::var("BERTH_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .expect("BERTH_TEST_POSTGRES_URL is not set: eval \"$(scripts/postgres.sh)\"");
        Self::start_on(Some(url), CentreOptions::default())
    }

    fn start_on(postgres: Option<String>, options: CentreOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("scheduler");
        std::fs::create_dir_all(&data).expect("data dir");
        let db = postgres.map(|url| PgDatabase::create(&url));
        let db_url = db.as_ref().map(|(_, u)| u.clone());
        let (scheduler, grpc, http, web) = spawn_scheduler(
            dir.path(),
            &db_url,
            &options.grpc_addr,
            "127.0.0.1:0",
            &options.scheduler_args,
        );
        let token_file = data.join("admin.token");
        let admin_token = std::fs::read_to_string(&token_file)
            .unwrap_or_else(|e| panic!("{}: {e}", token_file.display()))
            .trim()
            .to_owned();
        assert!(!admin_token.is_empty(), "the admin token file is empty");
        Self {
            agents: Vec::new(),
            scheduler,
            db_url,
            _db: db.map(|(d, _)| d),
            dir,
            grpc,
            http,
            web,
            admin_token,
            options,
        }
    }

    /// Kills the scheduler with SIGKILL (no chance to flush anything) and starts it
    /// again on the same data, database and addresses.
    pub fn restart_scheduler(&mut self) {
        let _ = self.scheduler.child.kill();
        let _ = self.scheduler.child.wait();
        let (scheduler, _, _, web) = spawn_scheduler(
            self.dir.path(),
            &self.db_url,
            &self.grpc,
            &self.http,
            &self.options.scheduler_args,
        );
        self.scheduler = scheduler;
        self.web = web;
    }

    /// Scheduling passes the scheduler has completed (`berth_scheduling_pass_seconds_count`).
    pub fn passes(&self) -> u64 {
        let text = http_body(&self.http, "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix("berth_scheduling_pass_seconds_count "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// The scheduler's PostgreSQL URL; `None` on SQLite (`scheduler/berth.db` in the
    /// centre's dir).
    pub fn database_url(&self) -> Option<&str> {
        self.db_url.as_deref()
    }

    /// Kills the scheduler (SIGKILL) and waits for it; [`Centre::restart_scheduler`]
    /// starts it again.
    pub fn stop_scheduler(&mut self) {
        let _ = self.scheduler.child.kill();
        let _ = self.scheduler.child.wait();
    }

    /// The scheduler's next start uses the PostgreSQL database at `url` (one the test
    /// made; it is not dropped with the centre).
    pub fn use_database(&mut self, url: String) {
        self.db_url = Some(url);
    }

    /// The scheduler's gRPC URL (`https://` when it serves TLS).
    pub fn server_url(&self) -> String {
        let scheme = if self.options.ca_cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.grpc)
    }

    /// The scheduler's log so far.
    pub fn scheduler_log(&self) -> String {
        std::fs::read_to_string(&self.scheduler.log).unwrap_or_default()
    }

    /// Runs `berth ARGS` with `token`, after `adjust` changed its command (environment,
    /// server), bounded by [`COMMAND_DEADLINE`].
    #[track_caller]
    pub fn berth_adjusted(
        &self,
        token: &str,
        args: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Run {
        let mut cmd = self.berth_command(token, args);
        adjust(&mut cmd);
        run_bounded(cmd, args)
    }

    /// Runs `berth ARGS` with `token`, bounded by [`COMMAND_DEADLINE`].
    #[track_caller]
    pub fn berth(&self, token: &str, args: &[&str]) -> Run {
        run_bounded(self.berth_command(token, args), args)
    }

    /// Starts `berth ARGS` with `token` in the background.
    pub fn spawn_berth(&self, token: &str, args: &[&str]) -> Running {
        Running::spawn(self.berth_command(token, args), args)
    }

    fn berth_command(&self, token: &str, args: &[&str]) -> Command {
        let config_dir = self.dir.path().join("cli-config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .env("BERTH_SERVER", self.server_url())
            .env("BERTH_TOKEN", token)
            .env("BERTH_CONFIG", config_dir.join("config.json"))
            .env("XDG_CONFIG_HOME", &config_dir)
            .env_remove("BERTH_IMAGE")
            .env("NO_COLOR", "1")
            // Messages in English unless a test asks otherwise.
            .env("LANG", "C")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES");
        match &self.options.ca_cert {
            Some(ca) => cmd.env("BERTH_CA_CERT", ca),
            None => cmd.env_remove("BERTH_CA_CERT"),
        };
        cmd
    }

    /// Runs `berth ARGS` with no server or token in the environment, only the config
    /// file at `config` (as after `berth login`).
    #[track_caller]
    pub fn berth_with_config(&self, config: &Path, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .env_remove("BERTH_SERVER")
            .env_remove("BERTH_TOKEN")
            .env_remove("BERTH_CA_CERT")
            .env("BERTH_CONFIG", config)
            .env("LANG", "C")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES");
        run_bounded(cmd, args)
    }

    /// A path inside the centre's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `berth ARGS -o json` as `token`, expects success, returns the JSON.
    #[track_caller]
    pub fn json(&self, token: &str, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        self.berth(token, &all).ok().json()
    }

    /// Runs `berth ARGS` as the admin and expects success.
    #[track_caller]
    pub fn admin(&self, args: &[&str]) -> Run {
        self.berth(&self.admin_token, args).ok()
    }

    /// Creates `site` and the device class `class` of simulated devices.
    #[track_caller]
    pub fn site_and_class(&self, site: &str, class: &str) {
        self.admin(&["admin", "sites", "create", site]);
        self.admin(&["admin", "classes", "create", class, "--vendor", "sim"]);
    }

    /// Creates user `name` in `org` and returns their token, checking the reply's shape.
    #[track_caller]
    pub fn user(&self, org: &str, name: &str) -> String {
        let v = self.json(
            &self.admin_token,
            &["admin", "users", "create", "--org", org, "--name", name],
        );
        assert_eq!(v["user"], name, "{v}");
        assert_eq!(v["org"], org, "{v}");
        assert_eq!(v["role"], "user", "{v}");
        assert!(
            v["token_id"].is_string() && v["expires_at"].is_string(),
            "{v}"
        );
        v["token"].as_str().expect("users create: token").to_owned()
    }

    /// Starts an agent for `node` at `site` with `count` simulated devices of `class`,
    /// joining with a fresh join token, and waits until the node is ready with them.
    #[track_caller]
    pub fn start_agent(&mut self, node: &str, site: &str, class: &str, count: u32) {
        self.start_agent_with(node, site, class, count, &["--runtime", "process"]);
    }

    /// The state directory of `node`'s agent.
    pub fn agent_state_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(format!("agent-{node}"))
    }

    /// Stops `node`'s agent gracefully (SIGTERM, as systemd or Kubernetes would) and
    /// waits for it to exit.
    pub fn stop_agent(&mut self, node: &str) {
        let name = format!("berth-agent {node}");
        if let Some(i) = self.agents.iter().position(|a| a.name == name) {
            let mut agent = self.agents.remove(i);
            let pid = agent.child.id().to_string();
            let status = Command::new("kill").args(["-TERM", &pid]).status();
            assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
            let deadline = Instant::now() + START_DEADLINE;
            while agent.child.try_wait().ok().flatten().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the agent did not stop after SIGTERM; its log:\n{}",
                    tail(&agent.log, 40)
                );
                std::thread::sleep(POLL);
            }
        }
    }

    /// Kills `node`'s agent with SIGKILL (its jobs' containers live on) and waits for it.
    pub fn kill_agent(&mut self, node: &str) {
        let name = format!("berth-agent {node}");
        if let Some(i) = self.agents.iter().position(|a| a.name == name) {
            let mut agent = self.agents.remove(i);
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
    }

    /// As [`Centre::start_agent`] with the runtime flags given (e.g. `--runtime docker`);
    /// also restarts a killed agent on its old state directory.
    #[track_caller]
    pub fn start_agent_with(
        &mut self,
        node: &str,
        site: &str,
        class: &str,
        count: u32,
        runtime_args: &[&str],
    ) {
        let devices = format!("sim:{count}:{class}");
        self.start_agent_on(node, site, &devices, count as usize, runtime_args);
    }

    /// Starts an agent for `node` with the device spec `devices` (`sim:N:CLASS`, `nvml`,
    /// `rbln`, ...) and the extra flags `runtime_args`, joining with a fresh join token, and
    /// waits until the node is ready with `count` devices.
    #[track_caller]
    pub fn start_agent_on(
        &mut self,
        node: &str,
        site: &str,
        devices: &str,
        count: usize,
        runtime_args: &[&str],
    ) {
        let join_token = self.join_token();
        self.spawn_agent(node, site, devices, runtime_args, &join_token);
        self.wait_node_ready(node, count);
    }

    /// A fresh join token from the admin.
    #[track_caller]
    pub fn join_token(&self) -> String {
        let join = self.json(&self.admin_token.clone(), &["admin", "join-token"]);
        join["token"]
            .as_str()
            .expect("join-token: token")
            .to_owned()
    }

    /// Starts an agent for `node` with `extra_args` and `join_token`, without waiting for
    /// anything; it trusts the centre's CA when the centre serves TLS.
    pub fn spawn_agent(
        &mut self,
        node: &str,
        site: &str,
        devices: &str,
        extra_args: &[&str],
        join_token: &str,
    ) {
        let state = self.dir.path().join(format!("agent-{node}"));
        let mut cmd = Command::new(binary("berth-agent"));
        if let Some(ca) = &self.options.ca_cert {
            cmd.arg("--ca-cert").arg(ca);
        }
        cmd.arg("--server")
            .arg(self.server_url())
            .args(["--node", node, "--site", site])
            .args(["--join-token", join_token])
            .arg("--state-dir")
            .arg(&state)
            .args(["--devices", devices])
            .args(extra_args)
            .args(["--heartbeat-wait", "1s"])
            // Parallel agents: each its own free port (a flag given by a test wins).
            .env("BERTH_METRICS_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env("BERTH_LOG", "info");
        let restarts = self.dir.path().read_dir().map_or(0, |d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("agent-{node}."))
                })
                .count()
        });
        let log = self.dir.path().join(if restarts == 0 {
            format!("agent-{node}.log")
        } else {
            format!("agent-{node}.{restarts}.log")
        });
        self.agents
            .push(Proc::spawn(&format!("berth-agent {node}"), &mut cmd, log));
    }

    /// Waits until `node`'s agent has logged a line containing `needle`; returns its log.
    #[track_caller]
    pub fn wait_agent_log(&self, node: &str, needle: &str) -> String {
        let name = format!("berth-agent {node}");
        let agent = self
            .agents
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no agent for {node}"));
        self.eventually(&format!("{name} to log {needle:?}"), JOIN_DEADLINE, || {
            let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
            log.contains(needle).then_some(log)
        })
    }

    /// Waits until `node`'s agent has exited by itself; returns its exit code and log.
    #[track_caller]
    pub fn wait_agent_exit(&mut self, node: &str) -> (Option<i32>, String) {
        let name = format!("berth-agent {node}");
        let i = self
            .agents
            .iter()
            .position(|a| a.name == name)
            .unwrap_or_else(|| panic!("no agent for {node}"));
        let deadline = Instant::now() + JOIN_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.agents[i].child.try_wait() {
                let agent = self.agents.remove(i);
                let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
                return (status.code(), log);
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not exit within {JOIN_DEADLINE:?}; its log:\n{}",
                tail(&self.agents[i].log, 40)
            );
            std::thread::sleep(POLL);
        }
    }

    /// Polls `berth nodes` until `node` is ready with `devices` devices.
    #[track_caller]
    pub fn wait_node_ready(&mut self, node: &str, devices: usize) {
        let deadline = Instant::now() + JOIN_DEADLINE;
        loop {
            for a in &mut self.agents {
                a.check_alive();
            }
            self.scheduler.check_alive();
            let nodes = self.json(&self.admin_token, &["nodes"]);
            let ready = nodes.as_array().into_iter().flatten().any(|n| {
                n["name"] == node
                    && n["state"] == "ready"
                    && n["devices"].as_array().map_or(0, Vec::len) == devices
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} not ready with {devices} devices within {JOIN_DEADLINE:?}; \
                 last `berth nodes`: {nodes}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls until `check` returns `Some`, or fails after `deadline` with `what`.
    #[track_caller]
    pub fn eventually<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let end = Instant::now() + deadline;
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The tails of the scheduler's and agents' logs.
    pub fn logs(&self) -> String {
        let mut out = format!(
            "--- scheduler log ({}) ---\n{}\n",
            self.scheduler.log.display(),
            tail(&self.scheduler.log, 60)
        );
        for a in &self.agents {
            out.push_str(&format!("--- {} log ---\n{}\n", a.name, tail(&a.log, 60)));
        }
        out
    }
}

impl Drop for Centre {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A `berth` run in the background.
pub struct Running {
    args: Vec<String>,
    child: Child,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    fn spawn(mut cmd: Command, args: &[&str]) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start berth");
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        Self {
            args: args.iter().map(|s| s.to_string()).collect(),
            child,
            out: std::thread::spawn(move || {
                let mut b = Vec::new();
                let _ = out.read_to_end(&mut b);
                b
            }),
            err: std::thread::spawn(move || {
                let mut b = Vec::new();
                let _ = err.read_to_end(&mut b);
                b
            }),
        }
    }

    /// Waits for it to end, killing it (and failing) after [`COMMAND_DEADLINE`].
    #[track_caller]
    pub fn finish(mut self) -> Run {
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for berth") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let run = Run {
            args: self.args,
            code: status.and_then(|s| s.code()).unwrap_or(-1),
            stdout: String::from_utf8_lossy(&self.out.join().unwrap_or_default()).into_owned(),
            stderr: String::from_utf8_lossy(&self.err.join().unwrap_or_default()).into_owned(),
        };
        assert!(
            status.is_some(),
            "berth {:?} did not finish within {COMMAND_DEADLINE:?}:\n{}",
            run.args,
            run.describe()
        );
        run
    }
}

/// Runs a command with captured output, killing it after [`COMMAND_DEADLINE`].
#[track_caller]
pub fn run_bounded(cmd: Command, args: &[&str]) -> Run {
    Running::spawn(cmd, args).finish()
}

/// The body of `GET path` over plain HTTP/1.1 (empty if it cannot be had).
pub fn http_body(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    all.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned())
}

/// Status code of `GET path` over plain HTTP/1.1, or `None` if it cannot be had.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let m = s.read(&mut head[n..]).ok()?;
        if m == 0 {
            break;
        }
        n += m;
    }
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The strings of a JSON array, as a set.
pub fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The ids of a JSON array of objects.
pub fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
