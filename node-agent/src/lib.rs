//! The Berth node agent.
//!
//! It joins the scheduler, reports the node's devices and their telemetry, and runs
//! the jobs the scheduler wants on this node, reconciling desired against observed on
//! every heartbeat. Modules:
//!
//! - [`devices`]: device discovery and telemetry behind [`devices::DeviceBackend`]
//!   (NVML, `rbln-smi`, `furiosa-smi`, simulated GPUs).
//! - [`runtime`]: what runs jobs, behind [`runtime::Runtime`]: hardened Docker
//!   containers, or host processes for development.
//! - [`reconcile`]: the pure desired-vs-observed diff.
//! - [`evidence`]: the pure integration of a job's device readings into its evidence
//!   (mean utilisation, peak memory, energy).
//! - [`logs`]: job output cut into chunks and shipped to the scheduler.
//! - `client`, `reporter`: the agent protocol's calls (credential, re-join, retries).
//! - [`clock`]: the scheduler's clock as the host sees it; protocol times are its.
//! - `jobs`, `agent`: the job table and the loop.
//!
//! `berth up` and the `berth-agent` binary both call [`run`].

mod agent;
mod client;
pub mod clock;
pub mod config;
pub mod devices;
pub mod error;
pub mod evidence;
mod jobs;
pub mod logs;
pub mod metrics;
pub mod probe;
pub mod reconcile;
mod reporter;
pub mod runtime;

pub use agent::AGENT_VERSION;
pub use config::AgentConfig;
pub use error::AgentError;
/// The runtime spec of a desired job, as the agent builds it (for the fuzz targets).
pub use jobs::spec_of;

use tokio_util::sync::CancellationToken;

/// Runs the agent until `shutdown` is cancelled, then stops its jobs (each with its
/// grace period), ships their output, reports them and returns `Ok`.
///
/// Fails at start on a bad configuration, an unusable state directory, or when the
/// node has no credential and cannot join; once running, connection trouble is
/// retried and running jobs keep running.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    match agent::Agent::start(config, &shutdown).await? {
        Some(agent) => agent.run(shutdown).await,
        None => Ok(()),
    }
}
