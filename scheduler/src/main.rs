//! `berth-scheduler`: the Berth control plane.

use anyhow::Context;
use berth_scheduler::engine::Policy;
use berth_scheduler::server::{self, ServerConfig};
use berth_scheduler::tls::TlsFiles;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The Berth scheduler: bookings, queue, placement and the agent protocol over gRPC.
#[derive(Debug, Parser)]
#[command(name = "berth-scheduler", version)]
struct Args {
    /// gRPC listen address (port 0 picks a free port).
    #[arg(long, env = "BERTH_GRPC_ADDR", default_value = "127.0.0.1:7070")]
    grpc_addr: SocketAddr,
    /// HTTP listen address for /metrics, /healthz and /readyz.
    #[arg(long, env = "BERTH_HTTP_ADDR", default_value = "127.0.0.1:7071")]
    http_addr: SocketAddr,
    /// Web portal listen address.
    #[arg(long, env = "BERTH_WEB_ADDR", default_value = "127.0.0.1:7072")]
    web_addr: SocketAddr,
    /// How users reach the web portal, for the sign-in links of `berth login --web`
    /// (default: http://<web-addr>).
    #[arg(long, env = "BERTH_WEB_URL")]
    web_url: Option<String>,
    /// Directory for the embedded SQLite database and dev-mode files.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = "/var/lib/berth")]
    data_dir: PathBuf,
    /// Database URL: `sqlite://PATH?mode=rwc` or `postgres://USER:PASS@HOST/DB`.
    /// Default: SQLite in the data dir.
    #[arg(long, env = "BERTH_DATABASE_URL")]
    database_url: Option<String>,
    /// File holding the JWT signing secret (at least 32 bytes).
    #[arg(long, env = "BERTH_SIGNING_KEY_FILE")]
    signing_key_file: Option<PathBuf>,
    /// Development mode: generate and keep a signing key in the data dir.
    #[arg(long)]
    dev: bool,
    /// Make sure an admin user exists and keep a valid admin token in this file (mode 0600).
    #[arg(long, env = "BERTH_BOOTSTRAP_ADMIN_TOKEN_FILE")]
    bootstrap_admin_token_file: Option<PathBuf>,
    /// Write the bound addresses as JSON to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// How long an agent's lease lasts after each heartbeat (e.g. 15s).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease: Duration,
    /// Time between SIGTERM and SIGKILL when stopping a job.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    /// Interval of the scheduling pass.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    tick: Duration,
    /// The SMTP relay notification mail goes through: `smtp://HOST[:PORT]` (plain, port
    /// 25) or `smtps://HOST[:PORT]` (TLS, 465); no AUTH. Without it, mail deliveries are
    /// recorded as failed (`berth notifications` shows why); webhooks still work.
    #[arg(long, env = "BERTH_SMTP_URL", requires = "smtp_from")]
    smtp_url: Option<String>,
    /// The sender address of notification mail (`berth@centre.example`).
    #[arg(long, env = "BERTH_SMTP_FROM", requires = "smtp_url")]
    smtp_from: Option<String>,
    /// Longest one notification attempt (a mail or a webhook post) may take.
    #[arg(long, env = "BERTH_NOTIFY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    notify_timeout: Duration,
    /// Interval of the retention sweep (see `berth admin retention`).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    retention_interval: Duration,
    /// Longest a request may take (a client's shorter grpc-timeout wins).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    request_deadline: Duration,
    /// Largest gRPC message either way, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Requests in flight at once (heartbeats not counted) before new ones are refused
    /// with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// Calls per second each organisation's users may make together (0: unlimited);
    /// beyond it, calls are refused with RESOURCE_EXHAUSTED and a retry hint.
    #[arg(long, env = "BERTH_ORG_RATE", default_value_t = 500.0, value_parser = rate)]
    org_rate: f64,
    /// Calls one organisation may make at once after a quiet spell (at least 1).
    #[arg(long, env = "BERTH_ORG_BURST", default_value_t = 1000.0, value_parser = burst)]
    org_burst: f64,
    /// Calls per second each node's agent may make (0: unlimited; burst 4 times that).
    #[arg(long, env = "BERTH_NODE_RATE", default_value_t = 100.0, value_parser = rate)]
    node_rate: f64,
    /// Agents' heartbeat long-polls and heartbeat streams open at once.
    #[arg(long, default_value_t = 20_000)]
    max_heartbeats: usize,
    /// How clients reach this scheduler, told to them by standbys (default:
    /// http://<grpc-addr>).
    #[arg(long, env = "BERTH_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// CA (PEM) that verifies the other schedulers' https:// addresses, to which a
    /// standby relays calls (default: the system's CAs).
    #[arg(long, env = "BERTH_PEER_CA", value_name = "FILE")]
    peer_ca: Option<PathBuf>,
    /// The leader's lease on a shared PostgreSQL database: a standby takes over within
    /// this long after the leader stops.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    ha_lease: Duration,
    /// TLS certificate chain (PEM, leaf first) for the gRPC listener. Without TLS the
    /// scheduler listens on loopback only (see --insecure-plaintext).
    #[arg(
        long,
        env = "BERTH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(
        long,
        env = "BERTH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// CA certificate (PEM) that signs agents' client certificates: agents must then
    /// present one (users' CLIs need none), besides their node credential.
    #[arg(
        long,
        env = "BERTH_AGENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    agent_ca: Option<PathBuf>,
    /// Serve gRPC without TLS on a non-loopback address, for when TLS ends in front of
    /// the scheduler (a proxy or service mesh). Logged as a warning at every start.
    #[arg(long, env = "BERTH_INSECURE_PLAINTEXT", conflicts_with = "tls_cert")]
    insecure_plaintext: bool,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "BERTH_LOG", default_value = "info")]
    log: String,
}

/// Parses `500ms`, `15s`, `2m`, `1h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 15s or 500ms"))?;
    let ms = match unit {
        "ms" => n,
        "s" | "" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_millis(ms))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    let signing_key = match (&args.signing_key_file, std::env::var("BERTH_SIGNING_KEY")) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the signing key {}", path.display()))?
                .trim()
                .as_bytes()
                .to_vec(),
        ),
        (None, Ok(k)) if !k.is_empty() => Some(k.into_bytes()),
        _ => None,
    };
    let smtp = match (&args.smtp_url, &args.smtp_from) {
        (Some(url), Some(from)) => Some(
            berth_scheduler::engine::notify::SmtpConfig::new(url, from)
                .map_err(anyhow::Error::msg)
                .context("--smtp-url / --smtp-from")?,
        ),
        _ => None,
    };
    let config = ServerConfig {
        grpc_addr: args.grpc_addr,
        http_addr: args.http_addr,
        web_addr: Some(args.web_addr),
        web_url: args.web_url,
        database_url: args.database_url,
        data_dir: args.data_dir,
        signing_key,
        dev: args.dev,
        bootstrap_admin_token_file: args.bootstrap_admin_token_file,
        addr_file: args.addr_file,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                agent_ca: args.agent_ca,
            }),
            _ => None,
        },
        insecure_plaintext: args.insecure_plaintext,
        policy: Policy {
            lease_ms: args.lease.as_millis() as i64,
            max_poll_ms: (args.lease.as_millis() as i64 / 2).min(10_000),
            grace_ms: args.grace.as_millis() as i64,
            ..Policy::default()
        },
        tick: args.tick,
        retention_interval: args.retention_interval,
        advertise_url: args.advertise_url,
        peer_ca: args.peer_ca,
        ha_lease: args.ha_lease,
        notify: berth_scheduler::engine::notify::NotifyConfig {
            smtp,
            attempt_timeout: args.notify_timeout,
            ..Default::default()
        },
        limits: server::Limits {
            deadline: args.request_deadline,
            max_message_bytes: args.max_message_bytes,
            in_flight: berth_scheduler::overload::Limits {
                calls: args.max_in_flight,
                heartbeats: args.max_heartbeats,
            },
            per_org: berth_scheduler::ratelimit::Rate {
                per_second: args.org_rate,
                burst: args.org_burst,
            },
            per_node: berth_scheduler::ratelimit::Rate {
                per_second: args.node_rate,
                burst: (args.node_rate * 4.0).max(1.0),
            },
        },
    };
    let server = server::start(config).await?;
    let stop = server.shutdown_token();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
        _ = stop.cancelled() => {}
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// A rate flag: calls per second, 0 (unlimited) or more.
fn rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err("expected calls per second: 0 (unlimited) or a positive number".into()),
    }
}

/// A burst flag: at least one call.
fn burst(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(b) if b.is_finite() && b >= 1.0 => Ok(b),
        _ => Err("expected a number of calls, at least 1".into()),
    }
}
