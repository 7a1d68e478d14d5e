//! The CLI's errors. Every message a user can see from the CLI itself is written here,
//! so that they can later be translated in one place; the server's own messages are
//! passed through as they are.

use std::path::PathBuf;

/// Everything that can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or argument value the CLI refused before calling the server.
    #[error("invalid {flag} {value:?}: {reason}")]
    InvalidValue {
        flag: String,
        value: String,
        reason: String,
    },
    /// The server refused the call; its message names the field and the reason.
    #[error("{}", rpc_message(.0))]
    Rpc(#[from] tonic::Status),
    /// The server could not be reached.
    #[error("cannot connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    /// No token is configured.
    #[error(
        "no token: run `berth login --server URL --token TOKEN`, set BERTH_TOKEN or pass --token"
    )]
    NoToken,
    /// The config file is unreadable or malformed.
    #[error("config file {}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    /// A local I/O failure.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A refused flag value.
    pub fn invalid(flag: &str, value: &str, reason: impl Into<String>) -> Self {
        Error::InvalidValue {
            flag: flag.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// A local I/O failure while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

fn rpc_message(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    }
}

/// Renders an error and its sources on one line (`a: b: c`), skipping repeats.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_errors_show_the_server_message() {
        let e = Error::from(tonic::Status::invalid_argument(
            "invalid count: must be at least 1",
        ));
        assert_eq!(e.to_string(), "invalid count: must be at least 1");
        let e = Error::from(tonic::Status::not_found(""));
        assert_eq!(e.to_string(), "Some requested entity was not found");
    }

    #[test]
    fn invalid_values_quote_the_value() {
        let e = Error::invalid("--env", "FOO", "expected KEY=VALUE");
        assert_eq!(e.to_string(), r#"invalid --env "FOO": expected KEY=VALUE"#);
    }
}
