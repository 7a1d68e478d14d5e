//! The scheduler's one error enum, mapped to `tonic::Status` in one place.

use crate::store::StoreError;
use berth_i18n::{Lang, tf};
use berth_proto::model::FieldError;
use tonic::{Code, Status};

/// Everything a scheduler RPC can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// No valid credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role does not allow this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The object does not exist, or the caller may not see it (indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The object is not in a state that allows this.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Not enough capacity (devices, budget) for the request.
    #[error("{0}")]
    Capacity(String),
    /// Too many requests from this caller, or the server is at its limit; retry after
    /// the hint.
    #[error("{message}")]
    Overloaded {
        /// What was exceeded.
        message: String,
        /// When to retry, in milliseconds.
        retry_after_ms: u64,
    },
    /// Another request took the devices first; retrying may succeed.
    #[error("{0}")]
    Conflict(String),
    /// The scheduler cannot take writes now (stopping, not the leader, an earlier commit
    /// failed); retrying, possibly elsewhere, may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The database failed. The text is for the log only: clients get a reference.
    #[error("storage failure: {0}")]
    Store(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for an invalid field.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        Error::Invalid(FieldError::new(field, reason))
    }

    /// True for refusals by policy (budget, concurrency cap, capacity), which clients
    /// learn from the [`berth_proto::REFUSAL`] metadata.
    pub fn is_policy_refusal(&self) -> bool {
        matches!(self, Error::Capacity(_))
    }

    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Invalid(_) => Code::InvalidArgument,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Capacity(_) | Error::Overloaded { .. } => Code::ResourceExhausted,
            Error::Conflict(_) => Code::Aborted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Store(_) | Error::Internal(_) => Code::Internal,
        }
    }

    /// A copy to answer several requests with.
    pub fn same(&self) -> Self {
        self.clone()
    }

    /// The message in `lang`: the frame (`invalid {field}: {reason}`, `{what} not found`)
    /// and every text the catalogue knows are translated; texts it does not know yet stay
    /// English. Database and internal errors are worded by [`Status::from`] (a
    /// reference into the log only).
    pub fn localized(&self, lang: Lang) -> String {
        use berth_i18n::api::{Msg, words};
        match self {
            Error::Invalid(fe) => tf(
                lang,
                Msg::InvalidField,
                &[("field", &fe.field), ("reason", &words(lang, &fe.reason))],
            ),
            Error::NotFound(what) => tf(lang, Msg::NotFound, &[("what", what)]),
            Error::AlreadyExists(what) => tf(lang, Msg::AlreadyExists, &[("what", what)]),
            Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::FailedPrecondition(m)
            | Error::Capacity(m)
            | Error::Conflict(m)
            | Error::Unavailable(m)
            | Error::Overloaded { message: m, .. } => words(lang, m),
            Error::Store(_) | Error::Internal(_) => self.to_string(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Error::Conflict(format!(
                "the devices were taken by a concurrent request ({m}); try again"
            )),
            StoreError::AlreadyExists { what } => Error::AlreadyExists(what),
            StoreError::Db(m) => Error::Store(m),
            StoreError::Fenced(m) => Error::Unavailable(format!(
                "this scheduler is no longer the leader ({m}); nothing was recorded: retry \
                 with the leader"
            )),
        }
    }
}

/// A short reference that ties a redacted client message to the full log line.
fn reference() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

impl From<Error> for Status {
    /// The status a client gets, worded in the call's language ([`crate::lang`]).
    fn from(e: Error) -> Self {
        e.into_status(crate::lang::current())
    }
}

impl Error {
    /// The status a client gets, worded in `lang`.
    pub fn into_status(self, lang: Lang) -> Status {
        let e = self;
        match &e {
            Error::Store(_) | Error::Internal(_) => {
                // Database and internal errors may carry SQL, table names or paths: log
                // them whole, answer only a reference.
                let r = reference();
                tracing::error!(error = %e, reference = %r, "request failed");
                let what = if matches!(e, Error::Store(_)) {
                    berth_i18n::api::Msg::StoreFailed
                } else {
                    berth_i18n::api::Msg::InternalFailed
                };
                return Status::new(e.code(), tf(lang, what, &[("reference", &r)]));
            }
            Error::Overloaded { retry_after_ms, .. } => {
                let mut s = Status::new(e.code(), e.localized(lang));
                if let Ok(v) = retry_after_ms.to_string().parse() {
                    s.metadata_mut().insert("retry-after-ms", v);
                }
                return s;
            }
            _ => tracing::debug!(error = %e, "request refused"),
        }
        let mut status = Status::new(e.code(), e.localized(lang));
        if e.is_policy_refusal() {
            status.metadata_mut().insert(
                berth_proto::REFUSAL,
                tonic::metadata::MetadataValue::from_static(berth_proto::REFUSAL_POLICY),
            );
        }
        status
    }
}

/// Result of scheduler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refusals_carry_the_refusal_marker() {
        let status = Status::from(Error::Capacity("budget exhausted".into()));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.metadata().get(berth_proto::REFUSAL).unwrap(),
            berth_proto::REFUSAL_POLICY
        );
        let status = Status::from(Error::FailedPrecondition("job j already ended".into()));
        assert!(status.metadata().get(berth_proto::REFUSAL).is_none());
    }
}
