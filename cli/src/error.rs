//! The CLI's errors, and the one place the CLI's words come from: every message the CLI
//! writes itself is a key of the catalogue (`berth_i18n::cli`), in English or Korean.
//! The language is the user's setting (saved by `berth login`), then `LANG`
//! (`LC_ALL`, `LC_MESSAGES`), then English. The server's own messages are passed through
//! as they are (the server words them in the language the CLI asks for).
//!
//! Each error has a [`Kind`], which is the process's exit code: scripts branch on the
//! kind, never on the words. A server's refusal is classified by its gRPC status code
//! and, for refusals by policy, the scheduler's `berth-refusal: policy` metadata.

use berth_i18n::cli::Msg;
use berth_i18n::{Lang, Message};
use std::path::PathBuf;
use tonic::Code;

/// What kind of failure ended a command; its value is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 1: anything not listed below.
    Other = 1,
    /// 2: bad usage or input (a flag, an argument, a file named by a flag, a request
    /// field the server refused).
    Usage = 2,
    /// 3: the object does not exist (or is not yours to see).
    NotFound = 3,
    /// 4: permission denied, or not signed in (no token, an invalid or expired one).
    Denied = 4,
    /// 5: refused by policy: budget, grant, concurrency cap, capacity.
    Policy = 5,
    /// 6: the server is unavailable: cannot connect (refused, timed out, TLS handshake
    /// failed), or it answered UNAVAILABLE or DEADLINE_EXCEEDED.
    Unavailable = 6,
}

impl Kind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit codes as `berth --help` lists them (a macro, so `concat!` can use it).
macro_rules! exit_codes_help {
    () => {
        "Exit codes: 0 success; 2 bad usage or input; 3 not found; \
         4 permission denied or not signed in; 5 refused by policy (budget, grant, capacity); \
         6 server unavailable; 1 anything else. `submit --wait` exits with the job's own exit code."
    };
}
pub(crate) use exit_codes_help;
use std::sync::OnceLock;

static LANG: OnceLock<Lang> = OnceLock::new();

/// Sets the language of this run (once, at start).
pub fn set_lang(lang: Lang) {
    let _ = LANG.set(lang);
}

/// The language of this run.
pub fn lang() -> Lang {
    LANG.get().copied().unwrap_or_default()
}

/// A message in this run's language.
pub fn tr(msg: Msg) -> &'static str {
    msg.text(lang())
}

/// A message in this run's language with its `{placeholders}` filled.
pub fn trf(msg: Msg, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    berth_i18n::tf(lang(), msg, args)
}

/// Everything that can stop a command.
#[derive(Debug)]
pub enum Error {
    /// A flag or argument value the CLI refused before calling the server.
    InvalidValue {
        flag: String,
        value: String,
        reason: String,
    },
    /// The server refused the call; its message names the field and the reason.
    Rpc(tonic::Status),
    /// The server could not be reached, or its TLS certificate was refused.
    Connect { server: String, reason: String },
    /// A TLS setting is unusable: a CA or certificate file, or a CA for an http:// URL.
    Tls(berth_proto::tls::TlsError),
    /// The command line does not say what to do; the message says what is missing.
    Usage(String),
    /// No token is configured.
    NoToken,
    /// The config file is unreadable or malformed.
    Config { path: PathBuf, reason: String },
    /// A local I/O failure.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// Anything else, already worded for the user.
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidValue {
                flag,
                value,
                reason,
            } => f.write_str(&trf(
                Msg::InvalidValue,
                &[
                    ("flag", flag),
                    ("value", &format!("{value:?}")),
                    ("reason", reason),
                ],
            )),
            Error::Rpc(status) => f.write_str(&rpc_message(status)),
            Error::Connect { server, reason } => f.write_str(&trf(
                Msg::CannotConnect,
                &[("server", server), ("reason", reason)],
            )),
            Error::NoToken => f.write_str(tr(Msg::NoToken)),
            Error::Config { path, reason } => f.write_str(&trf(
                Msg::ConfigFile,
                &[("path", &path.display()), ("reason", reason)],
            )),
            Error::Tls(e) => write!(f, "{e}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Usage(m) | Error::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Error::Rpc(s)
    }
}

impl From<berth_proto::tls::TlsError> for Error {
    fn from(e: berth_proto::tls::TlsError) -> Self {
        Error::Tls(e)
    }
}

impl Error {
    /// What kind of failure this is (the exit code).
    pub fn kind(&self) -> Kind {
        match self {
            Error::InvalidValue { .. } | Error::Usage(_) | Error::Tls(_) | Error::Config { .. } => {
                Kind::Usage
            }
            Error::Rpc(status) => status_kind(status),
            Error::Connect { .. } => Kind::Unavailable,
            Error::NoToken => Kind::Denied,
            Error::Io { .. } | Error::Other(_) => Kind::Other,
        }
    }

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

/// The kind of a server's refusal, from its status code and refusal metadata.
pub fn status_kind(status: &tonic::Status) -> Kind {
    let policy = status
        .metadata()
        .get(berth_proto::REFUSAL)
        .is_some_and(|v| v == berth_proto::REFUSAL_POLICY);
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => Kind::Usage,
        Code::NotFound => Kind::NotFound,
        Code::PermissionDenied | Code::Unauthenticated => Kind::Denied,
        Code::ResourceExhausted => Kind::Policy,
        _ if policy => Kind::Policy,
        Code::Unavailable | Code::DeadlineExceeded => Kind::Unavailable,
        _ if connection_failed(status) => Kind::Unavailable,
        _ => Kind::Other,
    }
}

/// True when the call failed in this process's connection, not at the server: the CLI
/// never cancels a call itself, so CANCELLED is the connection dropping before the
/// answer; and a status the server sent never carries a local cause, while one tonic
/// made here from a transport or HTTP/2 failure (UNKNOWN, INTERNAL) does.
fn connection_failed(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    status.code() == Code::Cancelled
        || (matches!(status.code(), Code::Unknown | Code::Internal) && status.source().is_some())
}

fn rpc_message(status: &tonic::Status) -> String {
    if let Some(tls) = berth_proto::tls::explain(status) {
        return tls;
    }
    if connection_failed(status) {
        return trf(Msg::ConnectionClosed, &[("reason", &chain(status))]);
    }
    if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    }
}

/// Renders an error and its sources on one line (`a: b: c`), skipping repeats.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    berth_proto::tls::error_chain(e)
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
    fn status_codes_map_to_exit_codes() {
        let kind = |code| Error::from(tonic::Status::new(code, "x")).kind().code();
        assert_eq!(kind(Code::InvalidArgument), 2);
        assert_eq!(kind(Code::OutOfRange), 2);
        assert_eq!(kind(Code::NotFound), 3);
        assert_eq!(kind(Code::PermissionDenied), 4);
        assert_eq!(kind(Code::Unauthenticated), 4);
        assert_eq!(kind(Code::ResourceExhausted), 5);
        assert_eq!(kind(Code::Unavailable), 6);
        assert_eq!(kind(Code::DeadlineExceeded), 6);
        assert_eq!(
            kind(Code::Cancelled),
            6,
            "the CLI never cancels; the connection did"
        );
        assert_eq!(kind(Code::Unknown), 1, "from the server");
        assert_eq!(kind(Code::Internal), 1, "from the server");
        let local = tonic::Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(local.code(), Code::Unknown);
        assert_eq!(
            Error::from(local).kind(),
            Kind::Unavailable,
            "a local transport failure"
        );
        assert_eq!(
            kind(Code::FailedPrecondition),
            1,
            "a state conflict, not a policy"
        );
        assert_eq!(kind(Code::AlreadyExists), 1);
        assert_eq!(kind(Code::Internal), 1);
        let mut refused = tonic::Status::failed_precondition("the grant has ended");
        refused.metadata_mut().insert(
            berth_proto::REFUSAL,
            tonic::metadata::MetadataValue::from_static(berth_proto::REFUSAL_POLICY),
        );
        assert_eq!(Error::from(refused).kind(), Kind::Policy);
    }

    #[test]
    fn local_errors_have_kinds() {
        assert_eq!(Error::invalid("--env", "FOO", "x").kind(), Kind::Usage);
        assert_eq!(Error::NoToken.kind(), Kind::Denied);
        let connect = Error::Connect {
            server: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(connect.kind(), Kind::Unavailable);
        assert_eq!(Error::Other("x".into()).kind(), Kind::Other);
    }

    #[test]
    fn invalid_values_quote_the_value() {
        let e = Error::invalid("--env", "FOO", "expected KEY=VALUE");
        assert_eq!(e.to_string(), r#"invalid --env "FOO": expected KEY=VALUE"#);
    }

    #[test]
    fn messages_come_from_the_catalogue() {
        assert_eq!(Error::NoToken.to_string(), Msg::NoToken.text(Lang::En));
        assert!(Msg::NoToken.text(Lang::Ko).contains("BERTH_TOKEN"));
    }
}
