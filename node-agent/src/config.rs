//! The agent's configuration, as `berth up` and the `berth-agent` binary build it.

use std::path::PathBuf;
use std::time::Duration;

/// Default long-poll wait asked of the scheduler.
pub const DEFAULT_HEARTBEAT_WAIT: Duration = Duration::from_secs(10);
/// Default device specification: eight simulated GPUs.
pub const DEFAULT_DEVICES: &str = "sim:8";
/// Default job runtime.
pub const DEFAULT_RUNTIME: &str = "process";

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Scheduler address, e.g. `http://127.0.0.1:7070` (`http://` is assumed when no scheme
    /// is given); `https://` connects over TLS.
    pub server: String,
    /// Which CAs an `https://` server is verified against, and the client certificate
    /// to present, if any.
    pub tls: berth_proto::tls::ClientTls,
    /// Node name, e.g. `local-0`.
    pub node: String,
    /// Site the node belongs to, e.g. `local`.
    pub site: String,
    /// Host name reported to the scheduler (informational).
    pub hostname: String,
    /// Join token, used when there is no stored credential or the stored one is refused.
    pub join_token: Option<String>,
    /// Where the agent keeps its credential, job records and job scratch directories.
    pub state_dir: PathBuf,
    /// Device specification, e.g. `sim:8:sim-gpu`.
    pub devices: String,
    /// Job runtime: `docker` or `process`.
    pub runtime: String,
    /// Admin-approved datasets jobs may mount (`docker` runtime).
    pub datasets: Vec<crate::runtime::options::DatasetSource>,
    /// Pull images missing on the node (`docker` runtime); false: only local images run.
    pub pull_images: bool,
    /// CPUs shared among the node's jobs by device share; `None`: all the host's.
    pub node_cpus: Option<f64>,
    /// Memory shared among the node's jobs by device share; `None`: all the host's.
    pub node_memory_bytes: Option<u64>,
    /// How long the scheduler may hold a heartbeat when nothing changed.
    pub heartbeat_wait: Duration,
    /// Real devices: their class, NVML library and fatal XIDs, vendor tool directory.
    pub device_options: crate::devices::DeviceOptions,
    /// Where to serve `/metrics`; `None`: not served.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl AgentConfig {
    /// A configuration with sensible defaults: the host name from the system (or the node
    /// name when it cannot be read), no join token, [`DEFAULT_DEVICES`],
    /// [`DEFAULT_RUNTIME`] and [`DEFAULT_HEARTBEAT_WAIT`].
    pub fn new(
        server: impl Into<String>,
        node: impl Into<String>,
        site: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        let node = node.into();
        Self {
            server: server.into(),
            tls: berth_proto::tls::ClientTls::default(),
            hostname: system_hostname().unwrap_or_else(|| node.clone()),
            node,
            site: site.into(),
            join_token: None,
            state_dir: state_dir.into(),
            devices: DEFAULT_DEVICES.to_owned(),
            runtime: DEFAULT_RUNTIME.to_owned(),
            datasets: Vec::new(),
            pull_images: true,
            node_cpus: None,
            node_memory_bytes: None,
            heartbeat_wait: DEFAULT_HEARTBEAT_WAIT,
            device_options: crate::devices::DeviceOptions::default(),
            metrics_addr: None,
        }
    }
}

/// The system's host name, if it can be read and is valid UTF-8.
pub fn system_hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
}

/// Turns a host name into a valid node name: lower-case, characters other than
/// letters, digits, `-`, `_` and `.` replaced by `-`, at most 63 characters.
pub fn node_name_from_hostname(hostname: &str) -> String {
    let mut name: String = hostname
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.len() != name.len() {
        name = trimmed.to_owned();
    }
    if name.is_empty() {
        "node".to_owned()
    } else {
        name
    }
}

/// Parses a duration such as `10s`, `500ms`, `2m`, `1h` or `1m30s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number, e.g. 5s or 500ms"
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            unit => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {unit:?} (use ms, s, m or h)"
                ));
            }
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let cases = [
            ("5s", Duration::from_secs(5)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("7", Duration::from_secs(7)),
            (" 10s ", Duration::from_secs(10)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for text in ["", "s", "5x", "ms5", "-1s", "1.5s"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn node_names_from_hostnames() {
        assert_eq!(
            node_name_from_hostname("GPU-Host01.example.com"),
            "gpu-host01.example.com"
        );
        assert_eq!(node_name_from_hostname("_x y"), "x-y");
        assert_eq!(node_name_from_hostname("***"), "node");
        assert_eq!(node_name_from_hostname(&"a".repeat(80)).len(), 63);
        for name in ["GPU-Host01", "_x y", "***"] {
            let n = node_name_from_hostname(name);
            assert!(berth_proto::model::name("node", &n).is_ok(), "{n}");
        }
    }

    #[test]
    fn defaults() {
        let c = AgentConfig::new("http://127.0.0.1:7070", "local-0", "local", "/tmp/x");
        assert_eq!(c.devices, "sim:8");
        assert_eq!(c.runtime, "process");
        assert_eq!(c.heartbeat_wait, Duration::from_secs(10));
        assert!(c.join_token.is_none());
        assert!(!c.hostname.is_empty());
    }
}
