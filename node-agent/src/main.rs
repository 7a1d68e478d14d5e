//! `berth-agent`: the Berth node agent.

use anyhow::Context;
use berth_agent::config::{self, AgentConfig};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The Berth node agent: reports this server's accelerators to the scheduler and runs
/// the jobs it is given.
#[derive(Debug, Parser)]
#[command(name = "berth-agent", version, about)]
struct Args {
    /// Scheduler gRPC address, e.g. https://scheduler.example:7070 (TLS) or
    /// http://127.0.0.1:7070. Several schedulers (one leads, the others stand by):
    /// separate them with commas; the agent follows the leader.
    #[arg(long, env = "BERTH_SERVER")]
    server: String,

    /// CA certificate (PEM) to verify an https:// scheduler against, instead of the
    /// system's trusted CAs.
    #[arg(long, env = "BERTH_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// Client certificate (PEM) to present to the scheduler, for schedulers started
    /// with --agent-ca.
    #[arg(
        long,
        env = "BERTH_TLS_CLIENT_CERT",
        value_name = "FILE",
        requires = "tls_client_key"
    )]
    tls_client_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "BERTH_TLS_CLIENT_KEY",
        value_name = "FILE",
        requires = "tls_client_cert"
    )]
    tls_client_key: Option<PathBuf>,

    /// Node name (lower-case letters, digits, '-', '_', '.'); default: the host name.
    #[arg(long, env = "BERTH_NODE")]
    node: Option<String>,

    /// Site (centre) this node belongs to, e.g. busan-ifc.
    #[arg(long, env = "BERTH_SITE")]
    site: String,

    /// Host name reported to the scheduler; default: the system's.
    #[arg(long, env = "BERTH_HOSTNAME")]
    hostname: Option<String>,

    /// Join token, needed when the node has no stored credential yet.
    #[arg(long, env = "BERTH_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,

    /// Where the agent keeps its credential, job records and job scratch directories.
    #[arg(long, env = "BERTH_STATE_DIR", default_value = "/var/lib/berth-agent")]
    state_dir: PathBuf,

    /// Devices: nvml (NVIDIA GPUs through libnvidia-ml), rbln (Rebellions, rbln-smi),
    /// furiosa (FuriosaAI, furiosa-smi), sim:COUNT[:CLASS] (simulated GPUs), or auto
    /// (nvml when it finds a GPU, else rbln-smi, else furiosa-smi).
    #[arg(long, env = "BERTH_DEVICES", default_value = config::DEFAULT_DEVICES)]
    devices: String,

    /// Job runtime: docker (hardened containers through the local Docker engine), or
    /// process (commands run directly on the host; for development and tests).
    #[arg(long, env = "BERTH_RUNTIME", default_value = "docker")]
    runtime: String,

    /// An admin-approved dataset jobs may mount at /datasets/NAME: NAME=/HOST/PATH,
    /// read-only, or NAME=/HOST/PATH:rw to let jobs that ask mount it read-write.
    /// Repeat the flag (or separate with commas in the variable) for several.
    #[arg(long = "dataset", env = "BERTH_DATASETS", value_delimiter = ',')]
    datasets: Vec<berth_agent::runtime::options::DatasetSource>,

    /// Whether to pull images missing on the node: `missing` (pull them) or `never`
    /// (only images already on the node run; for offline nodes and tests).
    #[arg(long, env = "BERTH_PULL", default_value = "missing", value_parser = ["missing", "never"])]
    pull: String,

    /// CPUs shared among jobs by their share of the node's devices; default: all the host's.
    #[arg(long, env = "BERTH_NODE_CPUS")]
    node_cpus: Option<f64>,

    /// Memory in MiB shared among jobs by their share of the node's devices; default: all the host's.
    #[arg(long, env = "BERTH_NODE_MEMORY_MIB")]
    node_memory_mib: Option<u64>,

    /// How long the scheduler may hold a heartbeat when nothing changes, e.g. 10s, 500ms.
    #[arg(long, env = "BERTH_HEARTBEAT_WAIT", default_value = "10s", value_parser = config::parse_duration)]
    heartbeat_wait: Duration,

    /// Log filter: error, warn, info, debug, trace, or directives like berth_agent=debug.
    #[arg(long, env = "BERTH_LOG_LEVEL", default_value = "info")]
    log_level: String,

    #[command(flatten)]
    device_flags: berth_agent::probe::DeviceFlags,

    #[command(flatten)]
    metrics: berth_agent::probe::MetricsFlags,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints the detected devices and one telemetry sample, then exits (no scheduler
    /// needed: `berth-agent probe -o json`).
    Probe(berth_agent::probe::ProbeArgs),
}

/// `berth-agent probe ...` parsed on its own, so it needs no --server or --site.
#[derive(Debug, Parser)]
#[command(name = "berth-agent probe")]
struct ProbeCli {
    #[command(flatten)]
    args: berth_agent::probe::ProbeArgs,
}

/// Runs `probe` and prints its report to stdout.
async fn probe(args: berth_agent::probe::ProbeArgs) -> anyhow::Result<()> {
    let node = config::system_hostname()
        .map(|h| config::node_name_from_hostname(&h))
        .unwrap_or_else(|| "node".to_owned());
    let report = berth_agent::probe::probe(&args, &node)
        .await
        .map_err(anyhow::Error::msg)?;
    match args.output {
        berth_agent::probe::Format::Json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        berth_agent::probe::Format::Table => print!("{}", berth_agent::probe::table(&report)),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("probe") {
        return probe(ProbeCli::parse_from(std::env::args().skip(1)).args).await;
    }
    let args = Args::parse();
    if let Some(Command::Probe(probe_args)) = args.command {
        return probe(probe_args).await;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid --log-level {:?}", args.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    let system_hostname = config::system_hostname();
    let node = match args.node {
        Some(node) => node,
        None => config::node_name_from_hostname(
            system_hostname
                .as_deref()
                .context("cannot read the host name: pass --node")?,
        ),
    };
    let mut config = AgentConfig::new(args.server, node, args.site, args.state_dir);
    if let Some(hostname) = args.hostname.or(system_hostname) {
        config.hostname = hostname;
    }
    config.tls = berth_proto::tls::ClientTls {
        ca_cert: args.ca_cert,
        identity: args.tls_client_cert.zip(args.tls_client_key),
    };
    config.join_token = args.join_token.filter(|t| !t.is_empty());
    config.devices = args.devices;
    config.runtime = args.runtime;
    config.datasets = args.datasets;
    config.node_cpus = args.node_cpus.filter(|c| *c > 0.0);
    config.pull_images = args.pull == "missing";
    config.node_memory_bytes = args.node_memory_mib.map(|m| m.saturating_mul(1 << 20));
    config.heartbeat_wait = args.heartbeat_wait;
    config.device_options = args
        .device_flags
        .options(&config.node)
        .map_err(anyhow::Error::msg)?;
    config.metrics_addr = args.metrics.addr().map_err(anyhow::Error::msg)?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    berth_agent::run(config, shutdown).await?;
    Ok(())
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => Some(term),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            None
        }
    };
    let terminated = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_flags() {
        let args = Args::try_parse_from([
            "berth-agent",
            "--server",
            "http://s:7070",
            "--site",
            "local",
            "--heartbeat-wait",
            "500ms",
            "--devices",
            "sim:2:h100",
        ])
        .unwrap();
        assert_eq!(args.heartbeat_wait, Duration::from_millis(500));
        assert_eq!(args.devices, "sim:2:h100");
        assert_eq!(args.state_dir, PathBuf::from("/var/lib/berth-agent"));
        assert!(
            Args::try_parse_from([
                "berth-agent",
                "--server",
                "x",
                "--site",
                "s",
                "--heartbeat-wait",
                "5x"
            ])
            .is_err()
        );
    }
}
