//! One module per noun. Each command gets a [`Ctx`] with the resolved server, token and
//! output format.

pub mod account;
pub mod admin;
pub mod billing;
pub mod budgets;
pub mod capacity;
pub mod evidence;
pub mod jobs;
pub mod ledger;
pub mod notify;
pub mod policy;
pub mod projects;
pub mod report;
pub mod reserve;
pub mod retention;
pub mod security;
pub mod status;
pub mod usage;

use crate::client::Api;
use crate::config::{self, Config};
use crate::error::Error;
use crate::output::Format;
use berth_proto::tls::ClientTls;
use berth_proto::v1;
use std::path::{Path, PathBuf};

/// Flags every command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Scheduler gRPC URL (default: from the config file, else http://127.0.0.1:7070).
    /// Several schedulers: separate them with commas; the CLI finds the leader.
    #[arg(long, global = true, env = "BERTH_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// API token (default: from the config file).
    #[arg(
        long,
        global = true,
        env = "BERTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify an https:// server against, instead of the
    /// system's trusted CAs (default: from the config file, for its server).
    #[arg(long, global = true, env = "BERTH_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// The CA file to verify `server` with: the flag (or `BERTH_CA_CERT`), else the config
/// file's, when the file is for that same server.
pub fn ca_cert_for(server: &str, flag: Option<&Path>, file: &Config) -> Option<PathBuf> {
    let flag = flag.filter(|p| !p.as_os_str().is_empty());
    if let Some(path) = flag {
        return Some(path.to_owned());
    }
    let same_server = file
        .server
        .as_deref()
        .is_some_and(|s| config::normalize_server(s) == server);
    file.ca_cert.clone().filter(|_| same_server)
}

/// What a command runs with.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Server URL, `http://` added when missing.
    pub server: String,
    /// Token, if any is configured.
    pub token: Option<String>,
    /// How an `https://` server is verified.
    pub tls: ClientTls,
    /// Output format.
    pub format: Format,
}

impl Ctx {
    /// Resolves flags and environment over the config file (read only when needed).
    pub fn resolve(global: &GlobalArgs) -> Result<Self, Error> {
        let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        let (server, token) = (nonempty(&global.server), nonempty(&global.token));
        let file = if server.is_some() && token.is_some() {
            // Everything needed is given; the file may still name the server's CA.
            config::path()
                .ok()
                .and_then(|p| config::load(&p).ok())
                .unwrap_or_default()
        } else {
            config::load(&config::path()?)?
        };
        let server = config::normalize_server(
            &server
                .or(file.server.clone())
                .unwrap_or_else(|| config::DEFAULT_SERVER.to_owned()),
        );
        let tls = ClientTls {
            ca_cert: ca_cert_for(&server, global.ca_cert.as_deref(), &file),
            identity: None,
        };
        Ok(Self {
            server,
            token: token.or(file.token),
            tls,
            format: global.output,
        })
    }

    /// Connects with the configured token.
    pub async fn api(&self) -> Result<Api, Error> {
        let token = self.token.as_deref().ok_or(Error::NoToken)?;
        Api::connect(&self.server, token, &self.tls).await
    }
}

/// `confirmed`, `active`, ...
pub fn reservation_state(state: i32) -> &'static str {
    use v1::ReservationState as S;
    match S::try_from(state) {
        Ok(S::Requested) => "requested",
        Ok(S::Confirmed) => "confirmed",
        Ok(S::Active) => "active",
        Ok(S::Completed) => "completed",
        Ok(S::Cancelled) => "cancelled",
        Ok(S::Reclaimed) => "reclaimed",
        Ok(S::Unspecified) | Err(_) => "unknown",
    }
}

/// `pending`, `running`, `timed-out`, ...
pub fn job_state(state: i32) -> &'static str {
    use v1::JobState as S;
    match S::try_from(state) {
        Ok(S::Pending) => "pending",
        Ok(S::Scheduled) => "scheduled",
        Ok(S::Starting) => "starting",
        Ok(S::Running) => "running",
        Ok(S::Succeeded) => "succeeded",
        Ok(S::Failed) => "failed",
        Ok(S::Cancelled) => "cancelled",
        Ok(S::Preempted) => "preempted",
        Ok(S::TimedOut) => "timed-out",
        Ok(S::Lost) => "lost",
        Ok(S::Unspecified) | Err(_) => "unknown",
    }
}

/// True for the states a job never leaves.
pub fn job_finished(state: i32) -> bool {
    use v1::JobState as S;
    matches!(
        S::try_from(state),
        Ok(S::Succeeded | S::Failed | S::Cancelled | S::Preempted | S::TimedOut | S::Lost)
    )
}

/// `ready`, `draining`, ...
pub fn node_state(state: i32) -> &'static str {
    use v1::NodeState as S;
    match S::try_from(state) {
        Ok(S::Ready) => "ready",
        Ok(S::Draining) => "draining",
        Ok(S::Drained) => "drained",
        Ok(S::Unreachable) => "unreachable",
        Ok(S::Down) => "down",
        Ok(S::Unspecified) | Err(_) => "unknown",
    }
}

/// `healthy`, `degraded`, `failed`.
pub fn device_health(health: i32) -> &'static str {
    use v1::DeviceHealth as H;
    match H::try_from(health) {
        Ok(H::Healthy) => "healthy",
        Ok(H::Degraded) => "degraded",
        Ok(H::Failed) => "failed",
        Ok(H::Unspecified) | Err(_) => "unknown",
    }
}

/// `user`, `org-admin`, `admin`, `agent`.
pub fn role(role: i32) -> &'static str {
    use v1::Role as R;
    match R::try_from(role) {
        Ok(R::User) => "user",
        Ok(R::OrgAdmin) => "org-admin",
        Ok(R::Admin) => "admin",
        Ok(R::Agent) => "agent",
        Ok(R::Unspecified) | Err(_) => "unknown",
    }
}

/// `None` for an empty string (JSON null), the string otherwise.
pub fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `-` for an empty string in tables.
pub fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_files_ca_is_used_for_its_own_server_only() {
        let file = Config {
            server: Some("https://berth.example:7070/".into()),
            token: None,
            ca_cert: Some("/etc/berth/ca.pem".into()),
            language: None,
        };
        let ours = "https://berth.example:7070";
        assert_eq!(
            ca_cert_for(ours, None, &file),
            Some(PathBuf::from("/etc/berth/ca.pem"))
        );
        assert_eq!(ca_cert_for("https://other.example:7070", None, &file), None);
        assert_eq!(
            ca_cert_for(ours, Some(Path::new("/tmp/ca.pem")), &file),
            Some(PathBuf::from("/tmp/ca.pem")),
            "the flag wins"
        );
    }

    #[test]
    fn states_are_lower_case_names() {
        assert_eq!(
            reservation_state(v1::ReservationState::Confirmed as i32),
            "confirmed"
        );
        assert_eq!(reservation_state(99), "unknown");
        assert_eq!(job_state(v1::JobState::TimedOut as i32), "timed-out");
        assert_eq!(job_state(v1::JobState::Pending as i32), "pending");
        assert!(job_finished(v1::JobState::Lost as i32));
        assert!(!job_finished(v1::JobState::Running as i32));
        assert_eq!(node_state(v1::NodeState::Unreachable as i32), "unreachable");
        assert_eq!(role(v1::Role::OrgAdmin as i32), "org-admin");
    }
}
