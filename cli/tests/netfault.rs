//! Network faults: the real scheduler and three real agents as separate hosts. Each agent
//! runs in a network namespace of its own, made by the test, joined by a veth pair to a
//! bridge in the root namespace where the scheduler listens (plain gRPC on the bridge's
//! address, hence `--insecure-plaintext`). Then one agent is killed, one paused, one cut
//! off the network for several leases, all of them cut at once, and agents run with their
//! clocks 5 minutes ahead and behind. See `docs/reliability.md`, "Network faults".
//!
//! Each outage checks that no device of an away node is given to anyone (jobs and a
//! booking are submitted during it), that the jobs the away nodes ran are neither ended
//! nor moved while they are away, and that a returning agent reconciles: each job ends
//! exactly once or keeps running, and no job ever starts twice (every job appends a line
//! to a file named by its id when it starts).
//!
//! Needs root, iproute2, nftables and libfaketime (`scripts/ops-tools.sh` installs them).
//! Outside CI without them the tests say so and pass; in CI (`CI` set) they fail.

mod common;

use common::{Centre, CentreOptions, binary, tail};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SITE: &str = "nf";
const CLASS: &str = "nf-gpu";
/// Devices on each node.
const PER_NODE: usize = 2;
/// Agents (hosts) in each test.
const NODES: usize = 3;
/// The scheduler's agent lease (the test harness starts it with `--lease 3s`).
const LEASE: Duration = Duration::from_secs(3);
/// How long one node is cut off: four leases.
const CUT_ONE: Duration = Duration::from_secs(12);
/// How long every node is cut off: the 60 s is four default (15 s) leases; here
/// more than six leases.
const CUT_ALL: Duration = Duration::from_secs(20);
/// Bound on each wait for a state change (every one ends on an observed change).
const DEADLINE: Duration = Duration::from_secs(60);
/// libfaketime's preload library (Debian's `libfaketime`).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Jobs still placed (they hold devices).
const PLACED: [&str; 4] = ["scheduled", "starting", "running", "stopping"];

/// Whether this host can run the suite: root, `ip`, `nft` and libfaketime. In CI a missing
/// one fails the test; elsewhere it is reported and the test passes without running.
fn runnable() -> bool {
    let mut missing = Vec::new();
    let uid = Command::new("id").arg("-u").output();
    if !uid.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0") {
        missing.push("root (to make network namespaces)".to_owned());
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push(format!("{tool} (iproute2 / nftables)"));
        }
    }
    if !Path::new(FAKETIME).exists() {
        missing.push(format!("{FAKETIME} (libfaketime)"));
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "the network-fault suite needs {}: run it as root after scripts/ops-tools.sh",
        missing.join(", ")
    );
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{why}");
    eprintln!("netfault: not run: {why}");
    false
}

/// Runs a command and panics with its output unless it succeeds.
#[track_caller]
fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring how it went (cleanup).
fn try_sh(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The test's network: a bridge in the root namespace with the scheduler's address, and
/// one namespace per agent joined to it by a veth pair. Names carry the test process's id
/// and a count of the networks it made, addresses come from a /28 of 100.64.0.0/10 chosen
/// by both (and checked unused), so parallel tests never share a name or an address.
/// Dropping it kills whatever still runs in the namespaces and removes them, the links and
/// the bridge, also when the test panics.
struct Net {
    /// Prefix of every link name (at most 15 characters with the suffixes).
    prefix: String,
    namespaces: Vec<String>,
    /// The scheduler's address, on the bridge.
    gateway: Ipv4Addr,
}

impl Net {
    fn new(hosts: usize) -> Self {
        // Unique per test process (nextest) and per test within one (`cargo test`).
        static NETS: AtomicU32 = AtomicU32::new(0);
        let n = NETS.fetch_add(1, Ordering::Relaxed) % 8;
        let pid = std::process::id();
        let prefix = format!("bnf{pid:x}{n}");
        let namespaces: Vec<String> = (0..hosts)
            .map(|i| format!("berth-netfault-{pid}-{n}-{i}"))
            .collect();
        let slot = (pid.wrapping_mul(8) + n) % (1 << 18);
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0)) + slot * 16;
        let net = Self {
            prefix,
            namespaces,
            gateway: Ipv4Addr::from(base + 1),
        };
        // Left by an earlier test process of the same id that was killed: it is gone.
        net.remove();
        let in_use = sh("ip", &["-4", "-o", "addr", "show"]);
        for n in 0..16 {
            let a = Ipv4Addr::from(base + n).to_string();
            assert!(
                !in_use
                    .split_whitespace()
                    .any(|w| w.split('/').next() == Some(&a)),
                "address {a} of this test's range is already in use on this host:\n{in_use}"
            );
        }
        let bridge = net.bridge();
        sh("ip", &["link", "add", &bridge, "type", "bridge"]);
        sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/28", net.gateway),
                "dev",
                &bridge,
            ],
        );
        sh("ip", &["link", "set", &bridge, "up"]);
        for (i, ns) in net.namespaces.iter().enumerate() {
            let (outer, inner) = (net.outer(i), format!("{}n{i}", net.prefix));
            sh("ip", &["netns", "add", ns]);
            sh("ip", &["-n", ns, "link", "set", "lo", "up"]);
            sh(
                "ip",
                &[
                    "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", ns,
                ],
            );
            sh("ip", &["link", "set", &outer, "master", &bridge]);
            sh("ip", &["link", "set", &outer, "up"]);
            let addr = format!("{}/28", net.host(i));
            sh("ip", &["-n", ns, "addr", "add", &addr, "dev", &inner]);
            sh("ip", &["-n", ns, "link", "set", &inner, "up"]);
        }
        net
    }

    fn bridge(&self) -> String {
        format!("{}b", self.prefix)
    }

    /// The root-namespace end of host `i`'s veth pair (its "switch port").
    fn outer(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// Host `i`'s address.
    fn host(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.gateway) + 1 + i as u32)
    }

    /// Pulls host `i`'s cable: its switch port goes down; packets are lost both ways.
    fn unplug(&self, i: usize) {
        sh("ip", &["link", "set", &self.outer(i), "down"]);
    }

    fn plug(&self, i: usize) {
        sh("ip", &["link", "set", &self.outer(i), "up"]);
    }

    /// A firewall in host `i`'s namespace drops every packet in and out (loopback aside):
    /// the host is up but nothing reaches it, and nothing tells its connections so.
    fn firewall(&self, i: usize) {
        let ns = &self.namespaces[i];
        let nft = |rule: &str| sh("ip", &["netns", "exec", ns, "nft", rule]);
        nft("add table inet berth_netfault");
        for hook in ["input", "output"] {
            nft(&format!(
                "add chain inet berth_netfault {hook} {{ type filter hook {hook} priority 0; policy drop; }}"
            ));
            let lo = if hook == "input" { "iif" } else { "oif" };
            nft(&format!(
                "add rule inet berth_netfault {hook} {lo} lo accept"
            ));
        }
    }

    fn unfirewall(&self, i: usize) {
        let ns = &self.namespaces[i];
        sh(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "nft",
                "delete table inet berth_netfault",
            ],
        );
    }

    /// Kills every process in the namespaces, then removes them and the bridge.
    fn remove(&self) {
        for ns in &self.namespaces {
            let pids = Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                try_sh("kill", &["-KILL", pid]);
            }
            try_sh("ip", &["netns", "del", ns]);
        }
        for i in 0..self.namespaces.len() {
            try_sh("ip", &["link", "del", &self.outer(i)]);
        }
        try_sh("ip", &["link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One agent, running in its host's namespace, optionally with its clock skewed.
struct Agent {
    node: String,
    ns: String,
    state: PathBuf,
    /// libfaketime's `FAKETIME`, e.g. `+5m`.
    skew: Option<&'static str>,
    child: Option<Child>,
    log: PathBuf,
    starts: usize,
}

impl Agent {
    /// Starts the agent; `join_token` for its first start, later it uses its credential.
    fn start(&mut self, server: &str, join_token: Option<&str>, dir: &Path) {
        assert!(self.child.is_none(), "{} already runs", self.node);
        self.starts += 1;
        self.log = dir.join(format!("agent-{}.{}.log", self.node, self.starts));
        let file = std::fs::File::create(&self.log).expect("agent log");
        let err = file.try_clone().expect("agent log");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(binary("berth-agent"))
            .args(["--server", server, "--node", &self.node, "--site", SITE])
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--devices", &format!("sim:{PER_NODE}:{CLASS}")])
            .args(["--runtime", "process", "--heartbeat-wait", "1s"])
            .env("BERTH_METRICS_ADDR", "127.0.0.1:0")
            .env("BERTH_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("LD_PRELOAD")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err));
        if let Some(token) = join_token {
            cmd.args(["--join-token", token]);
        }
        if let Some(skew) = self.skew {
            // The wall clock only: timers (the monotonic clock) run true, as on a host
            // whose clock is merely set wrong.
            cmd.env("LD_PRELOAD", FAKETIME)
                .env("FAKETIME", skew)
                .env("DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        self.child = Some(cmd.spawn().expect("start ip netns exec berth-agent"));
    }

    fn pid(&self) -> String {
        self.child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.node))
            .id()
            .to_string()
    }

    fn signal(&self, signal: &str) {
        sh("kill", &[signal, &self.pid()]);
    }

    /// SIGKILL, as a crash or the OOM killer would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped agent would not die of SIGTERM; SIGKILL needs no SIGCONT.
            try_sh("kill", &["-KILL", &child.id().to_string()]);
        }
        self.kill();
    }
}

/// A job as `berth jobs -o json` shows it.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    state: String,
    node: Option<String>,
    devices: Vec<String>,
    reason: String,
    json: Value,
}

impl Job {
    fn from_json(v: &Value) -> Self {
        Self {
            id: v["id"].as_str().expect("job id").to_owned(),
            state: v["state"].as_str().expect("job state").to_owned(),
            node: v["node"].as_str().map(str::to_owned),
            devices: common::string_set(&v["devices"]).into_iter().collect(),
            reason: v["reason"].as_str().unwrap_or_default().to_owned(),
            json: v.clone(),
        }
    }

    fn placed(&self) -> bool {
        PLACED.contains(&self.state.as_str())
    }
}

/// How a job a node was running before its outage comes out of it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum After {
    /// Still running on the same node.
    KeepsRunning,
    /// Ended once, as lost: the process runtime cannot re-adopt jobs across an agent
    /// restart, and says so.
    EndsLost,
}

/// The scheduler, three agents on their hosts, two tenants.
struct World {
    // Drop order: agents, then whatever still runs in the namespaces, then the centre.
    agents: Vec<Agent>,
    net: Net,
    centre: Centre,
    alice: String,
    bob: String,
    /// One file per job id, a line each time the job starts.
    marks: PathBuf,
    jobs_made: usize,
    started: Instant,
}

impl World {
    /// `None` when the host cannot run the suite (outside CI).
    fn new(skews: [Option<&'static str>; NODES]) -> Option<Self> {
        if !runnable() {
            return None;
        }
        let started = Instant::now();
        let net = Net::new(NODES);
        let centre = Centre::start_with(CentreOptions {
            grpc_addr: format!("{}:0", net.gateway),
            scheduler_args: vec!["--insecure-plaintext".into()],
            ..CentreOptions::default()
        });
        centre.site_and_class(SITE, CLASS);
        centre.admin(&["admin", "orgs", "create", "org-a"]);
        centre.admin(&["admin", "orgs", "create", "org-b"]);
        let alice = centre.user("org-a", "alice");
        let bob = centre.user("org-b", "bob");
        let marks = centre.path("marks");
        std::fs::create_dir_all(&marks).expect("marks dir");
        let agents = (0..NODES)
            .map(|i| Agent {
                node: format!("host-{i}"),
                ns: net.namespaces[i].clone(),
                state: centre.path(&format!("agent-host-{i}")),
                skew: skews[i],
                child: None,
                log: PathBuf::new(),
                starts: 0,
            })
            .collect();
        let mut w = Self {
            agents,
            net,
            centre,
            alice,
            bob,
            marks,
            jobs_made: 0,
            started,
        };
        for i in 0..NODES {
            let token = w.centre.join_token();
            let server = format!("http://{}", w.centre.grpc);
            let dir = w.centre.path("");
            w.agents[i].start(&server, Some(&token), &dir);
        }
        w.wait_nodes(&(0..NODES).collect::<Vec<_>>(), "ready");
        Some(w)
    }

    fn node(&self, i: usize) -> &str {
        &self.agents[i].node
    }

    /// Restarts agent `i` (it was killed) on its state directory and credential.
    fn restart_agent(&mut self, i: usize) {
        let server = format!("http://{}", self.centre.grpc);
        let dir = self.centre.path("");
        self.agents[i].start(&server, None, &dir);
    }

    /// Polls until `check` returns `Some`, failing after [`DEADLINE`] with every log.
    #[track_caller]
    fn eventually<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Node name → state.
    fn node_states(&self) -> BTreeMap<String, String> {
        let nodes = self.centre.json(&self.centre.admin_token, &["nodes"]);
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                (
                    n["name"].as_str().unwrap_or_default().to_owned(),
                    n["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Device uuid → node.
    fn device_nodes(&self) -> BTreeMap<String, String> {
        let nodes = self.centre.json(&self.centre.admin_token, &["nodes"]);
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|n| n["devices"].as_array().cloned().unwrap_or_default())
            .map(|d| {
                (
                    d["uuid"].as_str().unwrap_or_default().to_owned(),
                    d["node"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[track_caller]
    fn wait_nodes(&self, hosts: &[usize], state: &str) {
        let names: Vec<&str> = hosts.iter().map(|&i| self.node(i)).collect();
        self.eventually(&format!("{names:?} to be {state}"), |w| {
            let states = w.node_states();
            names
                .iter()
                .all(|n| states.get(*n).map(String::as_str) == Some(state))
                .then_some(())
        });
    }

    /// Every job of both tenants, by id.
    fn jobs(&self) -> BTreeMap<String, Job> {
        let mut out = BTreeMap::new();
        for token in [&self.alice, &self.bob] {
            let list = self.centre.json(token, &["jobs", "--all"]);
            for v in list.as_array().expect("jobs: array") {
                let j = Job::from_json(v);
                out.insert(j.id.clone(), j);
            }
        }
        out
    }

    /// How many times the job has started (lines in its mark file).
    fn starts(&self, id: &str) -> usize {
        std::fs::read_to_string(self.marks.join(id))
            .map_or(0, |t| t.lines().filter(|l| !l.is_empty()).count())
    }

    /// Submits a job of `count` devices that marks its start and sleeps; returns its id.
    #[track_caller]
    fn submit(&mut self, bob: bool, count: usize, extra: &[&str]) -> String {
        self.jobs_made += 1;
        let token = if bob { &self.bob } else { &self.alice };
        let name = format!("nf-{}", self.jobs_made);
        let count = count.to_string();
        let script = format!(
            "echo start >> {}/$BERTH_JOB_ID; exec sleep 600",
            self.marks.display()
        );
        let mut args = vec![
            "submit", "--class", CLASS, "--count", &count, "--name", &name,
        ];
        args.extend(extra);
        args.extend(["-o", "json", "--", "sh", "-c", &script]);
        let v = self.centre.berth(token, &args).ok().json();
        v["id"].as_str().expect("submit: id").to_owned()
    }

    /// Waits until each job runs and has marked its start; returns id → node.
    #[track_caller]
    fn wait_running(&self, ids: &[String]) -> BTreeMap<String, String> {
        self.eventually(&format!("jobs {ids:?} to run"), |w| {
            let jobs = w.jobs();
            let mut out = BTreeMap::new();
            for id in ids {
                let j = jobs.get(id)?;
                if j.state != "running" || w.starts(id) == 0 {
                    return None;
                }
                out.insert(id.clone(), j.node.clone()?);
            }
            Some(out)
        })
    }

    /// Three one-device jobs, running; returns id → node.
    fn baseline(&mut self) -> BTreeMap<String, String> {
        let ids: Vec<String> = (0..NODES)
            .map(|i| self.submit(i % 2 == 1, 1, &[]))
            .collect();
        self.wait_running(&ids)
    }

    /// A host that runs exactly one of `running`'s jobs, so it has a device free.
    fn host_with_one_job(&self, running: &BTreeMap<String, String>) -> usize {
        (0..NODES)
            .find(|&i| running.values().filter(|n| *n == self.node(i)).count() == 1)
            .unwrap_or_else(|| panic!("no host runs exactly one of {running:?}"))
    }

    /// Scheduling passes completed so far.
    fn passes(&self) -> u64 {
        self.centre.passes()
    }

    /// An outage of the hosts `pick` chooses once three one-device jobs run (given id →
    /// node): `cut` makes it, `restore` ends it after at least `length`. Checks everything
    /// the suite promises (see the module's doc); returns the figures.
    fn outage(
        &mut self,
        what: &str,
        pick: impl FnOnce(&Self, &BTreeMap<String, String>) -> Vec<usize>,
        length: Duration,
        cut: impl FnOnce(&mut Self, &[usize]),
        restore: impl FnOnce(&mut Self, &[usize]),
        after: After,
    ) -> Figures {
        let before = self.baseline();
        let away = &pick(self, &before)[..];
        let away_nodes: BTreeSet<String> = away.iter().map(|&i| self.node(i).to_owned()).collect();
        let devices = self.device_nodes();
        let away_devices: BTreeSet<&String> = devices
            .iter()
            .filter(|(_, n)| away_nodes.contains(*n))
            .map(|(d, _)| d)
            .collect();
        let free_elsewhere = devices.len()
            - away_devices.len()
            - before.values().filter(|n| !away_nodes.contains(*n)).count();

        let cut_at = Instant::now();
        cut(self, away);
        self.wait_nodes(away, "unreachable");
        let detected = cut_at.elapsed();
        // The lease runs from the last heartbeat, at most half a lease before the cut.
        assert!(
            detected >= LEASE / 2,
            "{what}: {away_nodes:?} marked unreachable {detected:?} after the cut: too soon \
             for a {LEASE:?} lease"
        );

        // While they are away: a booking, then more jobs than the other hosts can take.
        let booking = self.centre.berth(
            &self.alice,
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                "1",
                "--start",
                "now",
                "--duration",
                "10m",
                "-o",
                "json",
            ],
        );
        let mut booked = 0;
        if booking.code == 0 {
            let r = booking.json();
            for d in common::string_set(&r["devices"]) {
                assert!(
                    !away_devices.contains(&d),
                    "{what}: a booking made while {away_nodes:?} were away got their device {d}: {r}"
                );
                booked += 1;
            }
        } else {
            assert!(
                free_elsewhere == 0 && booking.err_lower().contains("free"),
                "{what}: a one-device booking was refused though {free_elsewhere} devices \
                 of reachable hosts were free:\n{}",
                booking.describe()
            );
        }
        let extra = free_elsewhere - booked + 2;
        let during: Vec<String> = (0..extra)
            .map(|i| self.submit(i % 2 == 0, 1, &[]))
            .collect();
        let passes_at = self.passes();

        // Watch the whole outage: nothing placed on an away host, nothing of theirs ended
        // or moved, and they stay away.
        let mut polls = 0;
        loop {
            let jobs = self.jobs();
            for j in jobs.values() {
                if let Some(n) = &j.node
                    && j.placed()
                    && away_nodes.contains(n)
                {
                    assert!(
                        before.contains_key(&j.id),
                        "{what}: job {} was placed on {n} while it was away: {}",
                        j.id,
                        j.json
                    );
                }
                if let Some(n) = before.get(&j.id) {
                    assert!(
                        j.state == "running" && j.node.as_ref() == Some(n),
                        "{what}: job {} (running on {n} before the outage) changed while \
                         its host was away: {}",
                        j.id,
                        j.json
                    );
                }
                assert!(
                    j.devices.iter().all(|d| !away_devices.contains(d))
                        || before.contains_key(&j.id),
                    "{what}: job {} got a device of an away host: {}",
                    j.id,
                    j.json
                );
            }
            let states = self.node_states();
            for n in &away_nodes {
                assert_eq!(
                    states.get(n).map(String::as_str),
                    Some("unreachable"),
                    "{what}: {n} came back during the outage"
                );
            }
            let placed_during = during
                .iter()
                .filter(|id| jobs.get(*id).is_some_and(Job::placed))
                .count();
            assert!(
                placed_during <= free_elsewhere - booked,
                "{what}: {placed_during} jobs placed while only {} devices were free",
                free_elsewhere - booked
            );
            polls += 1;
            // At least three passes saw the queue, and everything placeable is placed.
            if cut_at.elapsed() >= length
                && self.passes() >= passes_at + 3
                && placed_during == free_elsewhere - booked
            {
                break;
            }
            assert!(
                cut_at.elapsed() < length + DEADLINE,
                "{what}: the jobs submitted during the outage were not placed on the \
                 {} free devices of the reachable hosts",
                free_elsewhere - booked
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let outage = cut_at.elapsed();

        let back_at = Instant::now();
        restore(self, away);
        self.wait_nodes(away, "ready");
        let returned = back_at.elapsed();

        // Reconciled: each earlier job of the away hosts keeps running or ended once.
        let settled = self.eventually(&format!("{what}: the returning hosts' jobs"), |w| {
            let jobs = w.jobs();
            let ok = before.iter().all(|(id, node)| {
                let j = &jobs[id];
                match (away_nodes.contains(node), after) {
                    (false, _) | (true, After::KeepsRunning) => j.state == "running",
                    (true, After::EndsLost) => j.state == "lost",
                }
            });
            ok.then_some(jobs)
        });
        for (id, node) in &before {
            let j = &settled[id];
            assert_eq!(
                j.node.as_ref(),
                Some(node),
                "{what}: job {id} moved: {}",
                j.json
            );
            if away_nodes.contains(node) && after == After::EndsLost {
                assert!(
                    j.reason.contains("agent restarted"),
                    "{what}: job {id} should say why it was lost: {}",
                    j.json
                );
            }
        }
        let figures = Figures {
            detected,
            outage,
            returned,
            polls,
        };
        self.check_runs_once(what);
        eprintln!("{what}: {figures:?}");
        figures
    }

    /// Every job started at most once; every running job has started (exactly once), and
    /// no device is held by two placed jobs. Waits for the queue to settle first: no job
    /// scheduled or starting.
    #[track_caller]
    fn check_runs_once(&self, what: &str) {
        let jobs = self.eventually(&format!("{what}: jobs to settle"), |w| {
            let jobs = w.jobs();
            jobs.values()
                .all(|j| !matches!(j.state.as_str(), "scheduled" | "starting"))
                .then_some(jobs)
        });
        let jobs = self.eventually(&format!("{what}: running jobs to mark their start"), |w| {
            jobs.values()
                .filter(|j| j.state == "running")
                .all(|j| w.starts(&j.id) >= 1)
                .then_some(jobs.clone())
        });
        let mut holders: BTreeMap<&str, &str> = BTreeMap::new();
        for j in jobs.values() {
            let n = self.starts(&j.id);
            assert!(n <= 1, "{what}: job {} started {n} times: {}", j.id, j.json);
            if j.placed() {
                for d in &j.devices {
                    if let Some(other) = holders.insert(d, &j.id) {
                        panic!("{what}: device {d} is held by jobs {other} and {}", j.id);
                    }
                }
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for a in &self.agents {
                eprintln!(
                    "--- agent {} ({}) ---\n{}",
                    a.node,
                    a.log.display(),
                    tail(&a.log, 60)
                );
            }
        }
        eprintln!("netfault: this test took {:?}", self.started.elapsed());
    }
}

/// What one outage measured.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Figures {
    /// From the fault to the scheduler marking the hosts unreachable.
    detected: Duration,
    /// From the fault to its repair.
    outage: Duration,
    /// From the repair to the hosts being ready again.
    returned: Duration,
    /// Times everything was checked during the outage.
    polls: usize,
}

/// Hosts running exactly one of the baseline jobs, so with a device free: the first.
fn one_host(w: &World, running: &BTreeMap<String, String>) -> Vec<usize> {
    vec![w.host_with_one_job(running)]
}

fn all_hosts(_: &World, _: &BTreeMap<String, String>) -> Vec<usize> {
    (0..NODES).collect()
}

#[test]
fn a_killed_agent_is_held_away_and_its_restart_ends_its_jobs_once() {
    let Some(mut w) = World::new([None; NODES]) else {
        return;
    };
    w.outage(
        "kill",
        one_host,
        CUT_ONE,
        |w, away| w.agents[away[0]].kill(),
        |w, away| w.restart_agent(away[0]),
        After::EndsLost,
    );
}

#[test]
fn a_paused_agent_is_held_away_and_resumes_its_jobs() {
    let Some(mut w) = World::new([None; NODES]) else {
        return;
    };
    w.outage(
        "pause",
        one_host,
        CUT_ONE,
        |w, away| w.agents[away[0]].signal("-STOP"),
        |w, away| w.agents[away[0]].signal("-CONT"),
        After::KeepsRunning,
    );
}

#[test]
fn a_host_cut_off_for_four_leases_is_held_away_and_keeps_its_jobs() {
    let Some(mut w) = World::new([None; NODES]) else {
        return;
    };
    w.outage(
        "cut one",
        one_host,
        CUT_ONE,
        |w, away| w.net.firewall(away[0]),
        |w, away| w.net.unfirewall(away[0]),
        After::KeepsRunning,
    );
}

#[test]
fn every_host_cut_off_at_once_loses_no_running_job() {
    let Some(mut w) = World::new([None; NODES]) else {
        return;
    };
    w.outage(
        "cut all",
        all_hosts,
        CUT_ALL,
        |w, away| away.iter().for_each(|&i| w.net.unplug(i)),
        |w, away| away.iter().for_each(|&i| w.net.plug(i)),
        After::KeepsRunning,
    );
}

/// How far the clock of the process that wrote `log` is from this one's, in seconds: its
/// first line's timestamp against now (the line was written moments ago).
fn log_skew(log: &str) -> i64 {
    let line = log.lines().next().expect("the agent logged nothing");
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI colour: ESC [ ... m.
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let stamp = plain.split_whitespace().next().unwrap_or_default();
    let at = chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("no timestamp at the start of {line:?}: {e}"));
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()
}

/// An RFC 3339 field of a job.
fn time_of(j: &Job, field: &str) -> chrono::DateTime<chrono::Utc> {
    let text = j.json[field]
        .as_str()
        .unwrap_or_else(|| panic!("job {} has no {field}: {}", j.id, j.json));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("job {}: {field} {text:?}: {e}", j.id))
        .with_timezone(&chrono::Utc)
}

#[test]
fn agents_with_clocks_five_minutes_off_change_nothing() {
    let Some(mut w) = World::new([Some("+5m"), Some("-5m"), None]) else {
        return;
    };
    for (i, want) in [(0, 300), (1, -300), (2, 0)] {
        let skew = log_skew(&w.agents[i].log_text());
        assert!(
            (skew - want).abs() <= 60,
            "{}'s clock should be {want} s off, its log says {skew} s",
            w.node(i)
        );
    }
    // A two-device job fills a host: one per host. Two minutes is less than the skew.
    let submitted = chrono::Utc::now() - chrono::Duration::seconds(1);
    let ids: Vec<String> = (0..NODES)
        .map(|i| w.submit(i % 2 == 1, PER_NODE, &["--max-runtime", "2m"]))
        .collect();
    let running = w.wait_running(&ids);
    let hosts: BTreeSet<&String> = running.values().collect();
    assert_eq!(hosts.len(), NODES, "one job per host: {running:?}");

    // Three leases: every host stays ready, every job keeps running.
    let watch = Instant::now();
    while watch.elapsed() < LEASE * 3 {
        let states = w.node_states();
        for i in 0..NODES {
            assert_eq!(
                states.get(w.node(i)).map(String::as_str),
                Some("ready"),
                "{} left ready with its clock skewed: {states:?}",
                w.node(i)
            );
        }
        let jobs = w.jobs();
        for id in &ids {
            assert_eq!(
                jobs[id].state, "running",
                "job {id} did not keep running: {}",
                jobs[id].json
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    // The times recorded are the scheduler's, whatever the host's clock says.
    let jobs = w.jobs();
    for id in &ids {
        let started = time_of(&jobs[id], "started_at");
        let now = chrono::Utc::now() + chrono::Duration::seconds(1);
        assert!(
            submitted <= started && started <= now,
            "job {id} on {:?}: started_at {started} is not between its submission \
             ({submitted}) and now ({now})",
            jobs[id].node
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let token = if i % 2 == 1 { &w.bob } else { &w.alice };
        w.centre.berth(token, &["cancel", id]).ok();
    }
    let ended = w.eventually("the skewed hosts' jobs to end as cancelled", |w| {
        let jobs = w.jobs();
        ids.iter()
            .all(|id| jobs[id].state == "cancelled")
            .then_some(jobs)
    });
    for id in &ids {
        let (started, finished) = (
            time_of(&ended[id], "started_at"),
            time_of(&ended[id], "finished_at"),
        );
        let now = chrono::Utc::now() + chrono::Duration::seconds(1);
        assert!(
            started <= finished && finished <= now,
            "job {id}: started {started}, finished {finished}, now {now}"
        );
    }
    w.check_runs_once("clock skew");
}
