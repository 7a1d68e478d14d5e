//! The CLI config file:
//! `{"server": "...", "token": "...", "ca_cert": "...", "language": "ko"}`.
//!
//! Found at `$BERTH_CONFIG`, else `$XDG_CONFIG_HOME/berth/config.json`, else
//! `~/.config/berth/config.json`. Written with mode 0600 since it holds a token.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where `berth up` listens by default, and where the CLI looks when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";

/// The saved settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Scheduler gRPC URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// CA certificate (PEM) the `https://` server is verified against, instead of the
    /// system's trusted CAs; an absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// The user's language setting (`en`, `ko`), saved by `berth login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The config file path from the environment (`BERTH_CONFIG`, XDG, `HOME`).
pub fn path() -> Result<PathBuf, Error> {
    path_from(|k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

fn path_from(var: impl Fn(&str) -> Option<PathBuf>) -> Result<PathBuf, Error> {
    if let Some(p) = var("BERTH_CONFIG") {
        return Ok(p);
    }
    let base = match var("XDG_CONFIG_HOME") {
        Some(dir) => dir,
        None => var("HOME").map(|h| h.join(".config")).ok_or_else(|| {
            Error::Other(crate::error::tr(berth_i18n::cli::Msg::ConfigDirUnknown).into())
        })?,
    };
    Ok(base.join("berth").join("config.json"))
}

/// Reads the config; a missing file is an empty config.
pub fn load(path: &Path) -> Result<Config, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(Error::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Writes the config atomically, readable by its owner only.
pub fn save(path: &Path, config: &Config) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

    let fail = |e: std::io::Error| Error::Config {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".to_owned());
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut text = serde_json::to_string_pretty(config).map_err(|e| fail(e.into()))?;
    text.push('\n');
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode above only applies to a new file.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// Adds `http://` to a bare `host:port` (to each of several separated by commas).
pub fn normalize_server(server: &str) -> String {
    server
        .split(',')
        .map(|one| {
            let s = one.trim().trim_end_matches('/');
            if s.contains("://") {
                s.to_owned()
            } else {
                format!("http://{s}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<PathBuf> {
        let map: HashMap<String, PathBuf> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), PathBuf::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn path_prefers_berth_config_then_xdg_then_home() {
        let all = [
            ("BERTH_CONFIG", "/c/b.json"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(path_from(env(&all)).unwrap(), PathBuf::from("/c/b.json"));
        assert_eq!(
            path_from(env(&all[1..])).unwrap(),
            PathBuf::from("/x/berth/config.json")
        );
        assert_eq!(
            path_from(env(&all[2..])).unwrap(),
            PathBuf::from("/h/.config/berth/config.json")
        );
        assert!(path_from(env(&[])).is_err());
    }

    #[test]
    fn saved_config_round_trips_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.json");
        assert_eq!(load(&path).unwrap(), Config::default());
        let config = Config {
            server: Some("https://berth.example:7070".into()),
            token: Some("secret".into()),
            ca_cert: Some("/etc/berth/ca.pem".into()),
            language: None,
        };
        save(&path, &config).unwrap();
        save(&path, &config).unwrap();
        assert_eq!(load(&path).unwrap(), config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["server"], "https://berth.example:7070");
        assert_eq!(v["token"], "secret");
        assert_eq!(v["ca_cert"], "/etc/berth/ca.pem");
    }

    #[test]
    fn malformed_config_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("config file {}", path.display())),
            "{e}"
        );
    }

    #[test]
    fn bare_addresses_get_a_scheme() {
        assert_eq!(normalize_server("127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(normalize_server("http://h:1/"), "http://h:1");
        assert_eq!(normalize_server("https://h"), "https://h");
        assert_eq!(
            normalize_server("a:1, https://b:2/"),
            "http://a:1,https://b:2"
        );
    }
}
