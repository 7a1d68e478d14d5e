//! The scheduler's one error enum, mapped to `tonic::Status` in one place.

use crate::store::StoreError;
use berth_i18n::api::{Msg, Text};
use berth_i18n::{Lang, text, tf};
use berth_proto::model::FieldError;
use tonic::{Code, Status};

/// Everything a scheduler RPC can fail with. Every message a client sees is a [`Text`]:
/// a catalogue key with its arguments, worded in the client's language when answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// No valid credential.
    #[error("{0}")]
    Unauthenticated(Text),
    /// The caller's role does not allow this.
    #[error("{0}")]
    PermissionDenied(Text),
    /// The object does not exist, or the caller may not see it (indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(Text),
    /// A unique name is taken.
    #[error("{0} already exists")]
    AlreadyExists(Text),
    /// The object is not in a state that allows this.
    #[error("{0}")]
    FailedPrecondition(Text),
    /// Not enough capacity (devices, budget) for the request.
    #[error("{0}")]
    Capacity(Text),
    /// Too many requests from this caller, or the server is at its limit; retry after
    /// the hint.
    #[error("{message}")]
    Overloaded {
        /// What was exceeded.
        message: Text,
        /// When to retry, in milliseconds.
        retry_after_ms: u64,
    },
    /// Another request took the devices first; retrying may succeed.
    #[error("{0}")]
    Conflict(Text),
    /// The scheduler cannot take writes now (stopping, not the leader, an earlier commit
    /// failed); retrying, possibly elsewhere, may succeed.
    #[error("{0}")]
    Unavailable(Text),
    /// The database failed. The text is for the log only: clients get a reference.
    #[error("storage failure: {0}")]
    Store(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for an invalid field.
    pub fn field(field: &str, reason: impl Into<Text>) -> Self {
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

    /// The message in `lang`, values as they are. Database and internal errors are worded
    /// by [`Error::into_status`] (a reference into the log only).
    pub fn localized(&self, lang: Lang) -> String {
        match self {
            Error::Invalid(fe) => tf(
                lang,
                Msg::InvalidField,
                &[("field", &fe.field), ("reason", &fe.reason.render(lang))],
            ),
            Error::NotFound(what) => tf(lang, Msg::NotFound, &[("what", &what.render(lang))]),
            Error::AlreadyExists(what) => {
                tf(lang, Msg::AlreadyExists, &[("what", &what.render(lang))])
            }
            Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::FailedPrecondition(m)
            | Error::Capacity(m)
            | Error::Conflict(m)
            | Error::Unavailable(m)
            | Error::Overloaded { message: m, .. } => m.render(lang),
            Error::Store(_) | Error::Internal(_) => self.to_string(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Error::Conflict(text!(TakenConcurrently, detail = m)),
            StoreError::AlreadyExists { what } => Error::AlreadyExists(what),
            StoreError::Db(m) => Error::Store(m),
            StoreError::Fenced(m) => Error::Unavailable(text!(NoLongerLeader, detail = m)),
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
                    Msg::StoreFailed
                } else {
                    Msg::InternalFailed
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
        let status = Status::from(Error::Capacity(text!(
            BudgetExhausted,
            key = "sim-gpu",
            left = "1 h",
            asked = "2 h"
        )));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.metadata().get(berth_proto::REFUSAL).unwrap(),
            berth_proto::REFUSAL_POLICY
        );
        let status = Status::from(Error::FailedPrecondition(text!(
            JobAlreadyEnded,
            id = "j",
            state = "succeeded"
        )));
        assert!(status.metadata().get(berth_proto::REFUSAL).is_none());
    }

    #[test]
    fn messages_with_values_are_worded_in_the_callers_language() {
        let unknown = Error::field(
            "class",
            text!(UnknownClassKnown, class = ?"h100", known = "a100, l4"),
        );
        assert_eq!(
            unknown.to_string(),
            "invalid class: unknown device class \"h100\" (known: a100, l4)"
        );
        assert_eq!(
            unknown.localized(Lang::Ko),
            "class 값이 올바르지 않습니다: 알 수 없는 장치 클래스 \"h100\"입니다 (등록된 클래스: a100, l4)"
        );
        // A budget refusal as the core raises it: the class and the hours are values.
        let refusal = crate::core::LimitRefusal::Exhausted {
            key: "a100".into(),
            left_ms: 5_400_000,
            asked_ms: 4 * 3_600_000,
        };
        let budget = Error::Capacity(refusal.text());
        assert_eq!(
            budget.localized(Lang::En),
            "budget for a100 exhausted: 1.5 h left, 4 h requested"
        );
        let status = budget.into_status(Lang::Ko);
        assert_eq!(
            status.message(),
            "a100의 예산이 소진되었습니다: 1.5 h 남음, 4 h 요청됨"
        );
        let gone = Error::NotFound(text!(WhatNode, name = ?"n1"));
        assert_eq!(gone.to_string(), "node \"n1\" not found");
        assert_eq!(
            gone.localized(Lang::Ko),
            "노드 \"n1\"을(를) 찾을 수 없습니다"
        );
    }
}
