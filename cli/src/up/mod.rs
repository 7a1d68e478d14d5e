//! `berth up`: a whole local centre in one process. The scheduler runs on SQLite in the
//! data dir, an agent with eight simulated GPUs joins it as node `local-0`, and the CLI
//! config is pointed at it with the admin token, so `berth` works at once from another
//! shell. Jobs run in Docker containers when a Docker engine answers, else as host
//! processes; the banner says which. Running it again keeps the data. It listens on
//! loopback, in plaintext: nothing of it leaves the machine.
//!
//! The scheduler and agent are linked in only with the `local` cargo feature (on by
//! default); the light client that companies install (`--no-default-features`) says so.

#[cfg(feature = "local")]
mod local;

use crate::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `berth up` flags.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where the database, keys and agent state live (default $XDG_DATA_HOME/berth).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address; loopback only, since `berth up` speaks plaintext.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "127.0.0.1:7071")]
    pub http_addr: SocketAddr,
    /// Web portal listen address.
    #[arg(long, default_value = "127.0.0.1:7072")]
    pub web_addr: SocketAddr,
    /// Listen address of the agent's /metrics (DCGM exporter names); a fixed port.
    #[arg(long, default_value = AGENT_METRICS_ADDR, value_parser = fixed_port)]
    pub agent_metrics_addr: SocketAddr,
    /// The SMTP relay for notification mail (`smtp://HOST:PORT`), as berth-scheduler's
    /// flag; without it, mail deliveries are recorded as failed.
    #[arg(long, requires = "smtp_from", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// The sender address of notification mail.
    #[arg(long, requires = "smtp_url", value_name = "ADDR")]
    pub smtp_from: Option<String>,
}

/// Where `berth up`'s agent serves its metrics unless told otherwise (the agent's own
/// default; a test in `local` checks they agree).
pub const AGENT_METRICS_ADDR: &str = "127.0.0.1:9400";

/// A listen address with a fixed port, so the banner can print where it is.
fn fixed_port(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not HOST:PORT, e.g. 127.0.0.1:9400"))?;
    if addr.port() == 0 {
        return Err(format!("{s:?}: give a fixed port, not 0"));
    }
    Ok(addr)
}

/// What `berth up` says when this binary was built without the `local` feature.
#[cfg(not(feature = "local"))]
const NOT_BUILT: &str = "this berth is the light client, built without the `local` feature: it cannot run a local centre. \
Install the full CLI with `cargo install --path cli` (default features), or run berth-scheduler and berth-agent";

/// `berth up`.
#[cfg(feature = "local")]
pub async fn run(args: &UpArgs) -> Result<(), Error> {
    local::run(args).await
}

/// `berth up` in the light client: a clear refusal.
#[cfg(not(feature = "local"))]
pub async fn run(_args: &UpArgs) -> Result<(), Error> {
    Err(Error::Usage(NOT_BUILT.to_owned()))
}
