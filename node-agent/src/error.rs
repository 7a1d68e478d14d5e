//! The agent's error type.

use std::path::PathBuf;

/// Why the agent could not start or had to stop.
///
/// Transient trouble (the scheduler unreachable, a call refused for a while) is
/// retried inside the agent and never surfaces here; these are the conditions
/// that retrying cannot fix.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A configuration value is unusable (`--devices`, `--runtime`, `--server`, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The state directory or a file in it could not be read or written.
    #[error("state directory {path}: {source}")]
    State {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No stored credential and no join token to get one.
    #[error("no node credential in {0} and no join token given: pass --join-token")]
    NoCredential(PathBuf),
    /// The scheduler refused to let this node join.
    #[error("the scheduler refused to let this node join: {0}")]
    JoinRefused(String),
    /// The device backend failed to discover devices.
    #[error("device discovery failed: {0}")]
    Devices(#[from] crate::devices::DeviceError),
    /// The job runtime failed in a way the agent cannot work around.
    #[error("job runtime failed: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
}

impl AgentError {
    /// Wraps an I/O error on `path`.
    pub(crate) fn state(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::State {
            path: path.into(),
            source,
        }
    }
}
