//! The CLI and the agent as clients, end to end with the real binaries over real sockets:
//! TLS (certificates made at test time), agents' client certificates, the scheduler's
//! refusal of plaintext off loopback, exit codes by kind, untrusted text on a terminal,
//! shell completions and manual pages.

mod common;

use common::certs::TestPki;
use common::{Centre, CentreOptions, Run, binary, run_bounded};
use serde_json::Value;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

const SITE: &str = "site-1";
const CLASS: &str = "gpu";

/// Certificates in a fresh temp dir (kept alive by the returned guard).
fn pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::Builder::new()
        .prefix("berth-pki-")
        .tempdir()
        .expect("temp dir");
    let pki = TestPki::create(dir.path());
    (dir, pki)
}

#[track_caller]
fn assert_code(run: &Run, code: i32, why: &str) {
    assert_eq!(run.code, code, "{why}:\n{}", run.describe());
}

/// A `berth` run without any CA configured: the system's CAs only.
fn without_ca(cmd: &mut Command) {
    cmd.env_remove("BERTH_CA_CERT");
}

#[test]
fn a_centre_over_tls_serves_the_cli_and_agents_and_refuses_an_unknown_ca_by_name() {
    let (_dir, pki) = pki();
    let mut c = Centre::start_with(CentreOptions::tls(
        &pki.server.cert,
        &pki.server.key,
        &pki.ca,
    ));
    assert!(
        c.server_url().starts_with("https://127.0.0.1:"),
        "{}",
        c.server_url()
    );
    c.site_and_class(SITE, CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    let alice = c.user("acme", "alice");
    // The agent verifies the scheduler with --ca-cert, like the CLI.
    c.start_agent("node-1", SITE, CLASS, 2);
    let run = c.berth(
        &alice,
        &[
            "submit",
            "--class",
            CLASS,
            "--wait",
            "--",
            "sh",
            "-c",
            "echo over tls",
        ],
    );
    assert_code(&run, 0, "a job runs through a TLS scheduler");
    assert_eq!(run.stdout.trim(), "over tls", "{}", run.describe());

    // `berth login` keeps the CA with the server; later commands need nothing else.
    let config = c.path("login/config.json");
    let server = c.server_url();
    let ca = pki.ca.display().to_string();
    c.berth_with_config(
        &config,
        &[
            "login",
            "--server",
            &server,
            "--token",
            &alice,
            "--ca-cert",
            &ca,
        ],
    )
    .ok();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(saved["server"], server.as_str(), "{saved}");
    assert_eq!(saved["ca_cert"], ca.as_str(), "{saved}");
    let me = c
        .berth_with_config(&config, &["whoami", "-o", "json"])
        .ok()
        .json();
    assert_eq!(me["name"], "alice", "{me}");

    // Against the system's CAs only, the centre's private CA is unknown.
    let run = c.berth_adjusted(&alice, &["whoami"], without_ca).failed();
    assert_code(
        &run,
        6,
        "a refused server certificate is a connection failure",
    );
    assert!(
        run.stderr
            .contains("unknown certificate authority (unknown CA)")
            && run.stderr.contains("--ca-cert"),
        "names the problem and the fix:\n{}",
        run.describe()
    );
    // Another CA does not vouch for it either.
    let rogue = pki.rogue_ca.display().to_string();
    let run = c
        .berth_adjusted(&alice, &["whoami", "--ca-cert", &rogue], without_ca)
        .failed();
    assert!(run.stderr.contains("unknown CA"), "{}", run.describe());

    // Plain HTTP/2 to a TLS listener is refused too.
    let plain = server.replacen("https://", "http://", 1);
    let run = c
        .berth_adjusted(&alice, &["whoami"], |cmd| {
            cmd.env("BERTH_SERVER", &plain).env_remove("BERTH_CA_CERT");
        })
        .failed();
    assert_code(&run, 6, "plain gRPC to a TLS listener fails to connect");

    // A CA file for a plain URL is a mistake, not silently ignored.
    let run = c
        .berth_adjusted(&alice, &["whoami"], |cmd| {
            cmd.env("BERTH_SERVER", &plain);
        })
        .failed();
    assert_code(&run, 2, "--ca-cert with http:// is bad usage");
    assert!(run.stderr.contains("https://"), "{}", run.describe());
}

#[test]
fn a_plaintext_scheduler_is_named_when_the_cli_expects_tls() {
    let c = Centre::start();
    let tls_url = c.server_url().replacen("http://", "https://", 1);
    let (_dir, pki) = pki();
    let run = c
        .berth_adjusted(&c.admin_token, &["whoami"], |cmd| {
            cmd.env("BERTH_SERVER", &tls_url)
                .env("BERTH_CA_CERT", &pki.ca);
        })
        .failed();
    assert_code(&run, 6, "no TLS handshake is a connection failure");
    assert!(
        run.stderr.contains("did not answer in TLS"),
        "{}",
        run.describe()
    );
}

#[test]
fn an_expired_server_certificate_is_refused_by_name() {
    let (_dir, pki) = pki();
    let c = Centre::start_with(CentreOptions::tls(
        &pki.expired.cert,
        &pki.expired.key,
        &pki.ca,
    ));
    let run = c.berth(&c.admin_token, &["whoami"]).failed();
    assert_code(&run, 6, "an expired certificate is a connection failure");
    assert!(
        run.stderr
            .contains("certificate has expired: it was valid until 2021-01-01 00:00:00 UTC"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_certificate_for_another_host_name_is_refused_by_name() {
    let (_dir, pki) = pki();
    let c = Centre::start_with(CentreOptions::tls(
        &pki.wrong_name.cert,
        &pki.wrong_name.key,
        &pki.ca,
    ));
    let run = c.berth(&c.admin_token, &["whoami"]).failed();
    assert_code(
        &run,
        6,
        "a certificate for another name is a connection failure",
    );
    assert!(
        run.stderr.contains("wrong host name")
            && run
                .stderr
                .contains("does not name 127.0.0.1, only berth.other.example"),
        "{}",
        run.describe()
    );
}

#[test]
fn agents_present_client_certificates_signed_by_the_agent_ca_when_asked() {
    let (_dir, pki) = pki();
    let mut options = CentreOptions::tls(&pki.server.cert, &pki.server.key, &pki.ca);
    options
        .scheduler_args
        .extend(["--agent-ca".into(), pki.agent_ca.display().to_string()]);
    let mut c = Centre::start_with(options);
    c.site_and_class(SITE, CLASS);
    // Users have no certificate, and need none.
    let me = c.json(&c.admin_token, &["whoami"]);
    assert_eq!(me["role"], "admin", "{me}");

    // No client certificate: the agent service refuses the join, and says why.
    let token = c.join_token();
    c.spawn_agent(
        "no-cert",
        SITE,
        &format!("sim:1:{CLASS}"),
        &["--runtime", "process"],
        &token,
    );
    let (code, log) = c.wait_agent_exit("no-cert");
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("accepts agents only with a client certificate signed by its agent CA"),
        "{log}"
    );

    // A certificate from another CA: the TLS handshake refuses it.
    let rogue = [
        "--runtime",
        "process",
        "--tls-client-cert",
        pki.rogue_agent.cert.to_str().unwrap(),
        "--tls-client-key",
        pki.rogue_agent.key.to_str().unwrap(),
    ];
    let token = c.join_token();
    c.spawn_agent("rogue", SITE, &format!("sim:1:{CLASS}"), &rogue, &token);
    c.wait_agent_log("rogue", "the server refused this client's certificate");
    c.kill_agent("rogue");

    let good = [
        "--runtime",
        "process",
        "--tls-client-cert",
        pki.agent.cert.to_str().unwrap(),
        "--tls-client-key",
        pki.agent.key.to_str().unwrap(),
    ];
    // A good certificate does not replace the node credential: a bad join token is refused.
    c.spawn_agent(
        "bad-token",
        SITE,
        &format!("sim:1:{CLASS}"),
        &good,
        "not-a-join-token",
    );
    let (code, log) = c.wait_agent_exit("bad-token");
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("invalid, expired or already used join token"),
        "{log}"
    );

    // A good certificate and a join token: the node joins and is ready.
    c.start_agent_with("node-1", SITE, CLASS, 2, &good);
    let nodes = c.json(&c.admin_token, &["nodes"]);
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["node-1"],
        "only the agent with a good certificate joined: {nodes}"
    );
}

/// One HTTPS GET of `path` from `addr`, trusting only `ca`: the raw reply.
fn https_get(addr: &str, ca: &std::path::Path, path: &str) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::Write;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).expect("CA added");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = addr.rsplit_once(':').expect("host:port").0.to_owned();
    let name = ServerName::try_from(host).expect("server name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    match tls.read_to_end(&mut reply) {
        Ok(_) => {}
        // A server that closes without close_notify after a complete reply.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !reply.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[test]
fn the_portal_is_served_over_the_schedulers_tls() {
    let (_dir, pki) = pki();
    let c = Centre::start_with(CentreOptions::tls(
        &pki.server.cert,
        &pki.server.key,
        &pki.ca,
    ));
    let reply = https_get(&c.web, &pki.ca, "/login").expect("the portal over HTTPS");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let cookie = reply
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("the sign-in page sets its form cookie:\n{reply}"));
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // The same port does not answer plaintext HTTP: it speaks TLS only.
    assert_eq!(
        common::http_status(&c.web, "/login"),
        None,
        "plaintext HTTP on the TLS portal"
    );
    // A client that does not trust the centre's CA is refused in the handshake.
    let other = pki.agent_ca.clone();
    let err = https_get(&c.web, &other, "/login").expect_err("an unknown CA");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn the_scheduler_refuses_a_plaintext_portal_off_loopback_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(binary("berth-scheduler"));
    cmd.args([
        "--dev",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--web-addr",
        "0.0.0.0:0",
    ])
    .arg("--data-dir")
    .arg(dir.path())
    .env_remove("BERTH_TLS_CERT")
    .env_remove("BERTH_INSECURE_PLAINTEXT");
    let run = run_bounded(cmd, &["berth-scheduler", "--web-addr", "0.0.0.0:0"]);
    assert_ne!(run.code, 0, "{}", run.describe());
    assert!(
        run.stderr
            .contains("refusing to serve the web portal (--web-addr) in plaintext on 0.0.0.0:0")
            && run.stderr.contains("--tls-cert"),
        "{}",
        run.describe()
    );
}

#[test]
fn the_scheduler_refuses_plaintext_grpc_off_loopback_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(binary("berth-scheduler"));
    cmd.args([
        "--dev",
        "--grpc-addr",
        "0.0.0.0:0",
        "--http-addr",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(dir.path())
    .env_remove("BERTH_TLS_CERT")
    .env_remove("BERTH_INSECURE_PLAINTEXT");
    let run = run_bounded(cmd, &["berth-scheduler", "--grpc-addr", "0.0.0.0:0"]);
    assert_ne!(run.code, 0, "{}", run.describe());
    assert!(
        run.stderr
            .contains("refusing to serve gRPC in plaintext on 0.0.0.0:0")
            && run.stderr.contains("--tls-cert")
            && run.stderr.contains("--insecure-plaintext"),
        "{}",
        run.describe()
    );

    // With the flag it serves, and warns at every start.
    let mut c = Centre::start_with(CentreOptions {
        grpc_addr: "0.0.0.0:0".into(),
        scheduler_args: vec!["--insecure-plaintext".into()],
        ca_cert: None,
    });
    let warning = "--insecure-plaintext: gRPC is served without TLS";
    assert!(c.scheduler_log().contains(warning), "{}", c.scheduler_log());
    c.json(&c.admin_token, &["whoami"]);
    c.restart_scheduler();
    assert!(c.scheduler_log().contains(warning), "{}", c.scheduler_log());
}

#[test]
fn the_scheduler_names_an_unusable_certificate_or_key_at_start() {
    let (dir, pki) = pki();
    let start = |cert: &std::path::Path, key: &std::path::Path| {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(binary("berth-scheduler"));
        cmd.args([
            "--dev",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
        let run = run_bounded(cmd, &["berth-scheduler", "--tls-cert", "--tls-key"]);
        assert_ne!(
            run.code,
            0,
            "started with {cert:?} and {key:?}:\n{}",
            run.describe()
        );
        run.stderr
    };
    let missing = dir.path().join("missing.pem");
    let err = start(&missing, &pki.server.key);
    assert!(
        err.contains(&format!("--tls-cert {}", missing.display())),
        "{err}"
    );
    let err = start(&pki.server.key, &pki.server.key);
    assert!(
        err.contains("--tls-cert") && err.contains("holds no certificate"),
        "{err}"
    );
    let err = start(&pki.server.cert, &pki.server.cert);
    assert!(
        err.contains("--tls-key") && err.contains("holds no private key"),
        "{err}"
    );
    let err = start(&pki.server.cert, &pki.agent.key);
    assert!(
        err.contains("the private key does not belong to the certificate"),
        "{err}"
    );
}

#[test]
fn the_scheduler_checks_the_peer_ca_at_start() {
    let (dir, pki) = pki();
    let start = |ca: &std::path::Path, advertise: &str| {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(binary("berth-scheduler"));
        cmd.args([
            "--dev",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--advertise-url",
            advertise,
        ])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--peer-ca")
        .arg(ca);
        let run = run_bounded(cmd, &["berth-scheduler", "--peer-ca"]);
        assert_ne!(
            run.code,
            0,
            "started with --peer-ca {ca:?}:\n{}",
            run.describe()
        );
        run.stderr
    };
    let missing = dir.path().join("missing.pem");
    let err = start(&missing, "https://sched-0.example:7070");
    assert!(
        err.contains("--peer-ca") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    let err = start(&pki.server.key, "https://sched-0.example:7070");
    assert!(
        err.contains("--peer-ca") && err.contains("holds no certificate"),
        "{err}"
    );
    let err = start(&pki.ca, "http://sched-0.example:7070");
    assert!(
        err.contains("--peer-ca verifies https:// schedulers")
            && err.contains("http://sched-0.example:7070"),
        "{err}"
    );
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn each_kind_of_failure_exits_with_its_own_code() {
    let mut c = Centre::start();
    c.site_and_class(SITE, CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    let alice = c.user("acme", "alice");
    c.start_agent("node-1", SITE, CLASS, 2);
    let missing = "7f1d7f7e-9a65-4a39-a0e6-2f1b6a0f3b11";

    assert_code(&c.berth(&alice, &["whoami"]), 0, "success");

    // 2: bad usage or input, found by the CLI or by the server.
    let run = c.berth(
        &alice,
        &["submit", "--class", CLASS, "--env", "FOO", "--", "true"],
    );
    assert_code(&run, 2, "a malformed flag");
    let run = c.berth(&alice, &["jobs", "show", "not-an-id"]);
    assert_code(&run, 2, "INVALID_ARGUMENT");
    assert!(run.stderr.contains("invalid id"), "{}", run.describe());
    assert_code(
        &c.berth(&alice, &["reserve", "--no-such-flag"]),
        2,
        "clap usage",
    );

    // 3: not found.
    let run = c.berth(&alice, &["jobs", "show", missing]);
    assert_code(&run, 3, "NOT_FOUND");

    // 4: not signed in, or not allowed.
    let no_token = c.berth_adjusted(&alice, &["whoami"], |cmd| {
        cmd.env_remove("BERTH_TOKEN");
    });
    assert_code(&no_token, 4, "no token at all");
    assert_code(&c.berth("not-a-token", &["whoami"]), 4, "UNAUTHENTICATED");
    let run = c.berth(&alice, &["admin", "orgs", "create", "other"]);
    assert_code(&run, 4, "PERMISSION_DENIED");

    // 6: the server is unavailable.
    let down = format!("http://127.0.0.1:{}", closed_port());
    let run = c.berth_adjusted(&alice, &["whoami"], |cmd| {
        cmd.env("BERTH_SERVER", &down);
    });
    assert_code(&run, 6, "connection refused");

    // 1: anything else, such as a name already taken or a job that already ended.
    let run = c.berth(&c.admin_token, &["admin", "orgs", "create", "acme"]);
    assert_code(&run, 1, "ALREADY_EXISTS");
    let run = c
        .berth(&alice, &["submit", "--class", CLASS, "--", "true"])
        .ok();
    let job = run.stdout.trim().to_owned();
    c.eventually("the job to end", Duration::from_secs(60), || {
        let j = c.json(&alice, &["jobs", "show", &job]);
        (j["state"] == "succeeded").then_some(())
    });
    let run = c.berth(&alice, &["cancel", &job]);
    assert_code(&run, 1, "FAILED_PRECONDITION that is not a policy refusal");

    // `submit --wait` keeps the job's own code, even one that reads like another kind.
    let run = c.berth(
        &alice,
        &[
            "submit", "--class", CLASS, "--wait", "--", "sh", "-c", "exit 4",
        ],
    );
    assert_code(&run, 4, "the job's own exit code");

    // 5: refused by policy: more devices than exist, then the budget (last: it stops
    // queued jobs too).
    let run = c.berth(
        &alice,
        &[
            "reserve",
            "--class",
            CLASS,
            "--count",
            "3",
            "--start",
            "now",
            "--duration",
            "1h",
        ],
    );
    assert_code(&run, 5, "capacity");
    c.admin(&[
        "admin", "budgets", "set", "--org", "acme", "--class", "*", "--hours", "1",
    ]);
    let run = c.berth(
        &alice,
        &[
            "reserve",
            "--class",
            CLASS,
            "--count",
            "2",
            "--start",
            "now",
            "--duration",
            "1h",
        ],
    );
    assert_code(&run, 5, "budget");
    assert!(run.err_lower().contains("budget"), "{}", run.describe());
}

/// Runs `berth ARGS` with its stdout on a pseudo-terminal; returns what the terminal got.
fn on_a_terminal(c: &Centre, token: &str, args: &[&str]) -> String {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(args)
        .env("BERTH_SERVER", c.server_url())
        .env("BERTH_TOKEN", token)
        .env("BERTH_CONFIG", c.path("tty-config.json"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(pty.slave))
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("start berth");
    // `cmd` holds the slave's other copy; the master reads EOF (EIO) once both are gone.
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all
    });
    let deadline = std::time::Instant::now() + common::COMMAND_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "berth {args:?} hung");
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().expect("reader");
    assert!(status.success(), "berth {args:?} failed: {status}");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn untrusted_text_is_escaped_on_a_terminal_and_raw_elsewhere() {
    let mut c = Centre::start();
    c.site_and_class(SITE, CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    let alice = c.user("acme", "alice");
    c.start_agent("node-1", SITE, CLASS, 1);

    // A name with control characters is refused, naming the field; the error shows it escaped.
    let run = c.berth(
        &alice,
        &[
            "submit",
            "--class",
            CLASS,
            "--name",
            "evil\u{1b}[2J",
            "--",
            "true",
        ],
    );
    assert_code(&run, 2, "INVALID_ARGUMENT");
    assert!(
        run.stderr
            .contains("invalid name: must not contain control characters"),
        "{}",
        run.describe()
    );
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.describe());

    // A command with escapes in it, printing escapes, a bell and a NUL.
    let script = "printf 'title\\033]0;pwned\\007 red\\033[31mX\\000end\\n' # \u{1b}[2J";
    let run = c.berth(
        &alice,
        &[
            "submit", "--class", CLASS, "--wait", "--", "sh", "-c", script,
        ],
    );
    assert_code(&run, 0, "the job runs");
    let raw = "title\u{1b}]0;pwned\u{7} red\u{1b}[31mX\u{0}end\n";
    assert_eq!(run.stdout, raw, "into a pipe, the job's own bytes");
    let job = c.json(&alice, &["jobs", "--all"])[0]["id"]
        .as_str()
        .expect("job id")
        .to_owned();

    // `jobs show` shows the command with its ESC escaped.
    let shown = c.berth(&alice, &["jobs", "show", &job]).ok();
    assert!(
        shown.stdout.contains("# \\x1b[2J") && !shown.stdout.contains('\u{1b}'),
        "{}",
        shown.describe()
    );

    // `berth logs`: raw into a pipe or with --raw, escaped on a terminal.
    let piped = c.berth(&alice, &["logs", &job]).ok();
    assert_eq!(piped.stdout, raw);
    let tty = on_a_terminal(&c, &alice, &["logs", &job]);
    assert!(
        tty.contains(r"title\x1b]0;pwned\x07 red\x1b[31mX\x00end") && !tty.contains('\u{1b}'),
        "{tty:?}"
    );
    let tty_raw = on_a_terminal(&c, &alice, &["logs", &job, "--raw"]);
    assert!(tty_raw.contains("title\u{1b}]0;pwned\u{7}"), "{tty_raw:?}");
}

#[test]
fn completions_and_manual_pages_are_generated() {
    let berth = env!("CARGO_BIN_EXE_berth");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(berth);
        cmd.args(args);
        run_bounded(cmd, args).ok()
    };
    // bash loads the script and registers a completion for berth.
    let script = run(&["completions", "bash"]).stdout;
    let mut bash = Command::new("bash");
    bash.args(["-c", "source /dev/stdin && complete -p berth"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = bash.spawn().expect("bash");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("berth"),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run(&["completions", "zsh"])
            .stdout
            .starts_with("#compdef berth")
    );
    assert!(
        run(&["completions", "fish"])
            .stdout
            .contains("complete -c berth")
    );

    let page = run(&["man"]).stdout;
    assert!(page.contains(".TH berth 1"), "{page}");
    assert!(page.contains("Exit codes"), "the page lists the exit codes");
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--dir", dir.path().to_str().unwrap()]);
    for page in [
        "berth.1",
        "berth-jobs.1",
        "berth-logs.1",
        "berth-admin-orgs.1",
    ] {
        assert!(dir.path().join(page).exists(), "{page} written");
    }
}
