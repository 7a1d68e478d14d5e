//! Classifies database errors into what the store reports.

use berth_migrations::{CLAIM_EXCLUSION_CONSTRAINT, CLAIM_OVERLAP_MESSAGE};
use sea_orm::{DbErr, RuntimeErr, sqlx};

use crate::store::StoreError;

/// What a database error means to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A device claim overlaps another (PostgreSQL exclusion constraint, SQLite trigger).
    Overlap,
    /// A unique or primary key is taken.
    Unique,
    /// A deadlock, serialization failure or busy database: the transaction may be retried.
    Transient,
    /// Anything else.
    Other,
}

/// PostgreSQL: exclusion_violation.
const PG_EXCLUSION_VIOLATION: &str = "23P01";
/// PostgreSQL: unique_violation.
const PG_UNIQUE_VIOLATION: &str = "23505";
/// PostgreSQL: serialization_failure and deadlock_detected.
const PG_TRANSIENT: [&str; 2] = ["40001", "40P01"];
/// SQLite extended codes: SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE.
const SQLITE_UNIQUE: [&str; 2] = ["1555", "2067"];
/// SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes (BUSY_RECOVERY,
/// BUSY_SNAPSHOT, BUSY_TIMEOUT, LOCKED_SHAREDCACHE).
const SQLITE_TRANSIENT: [&str; 7] = ["5", "6", "261", "517", "773", "262", "518"];

fn database_error(err: &DbErr) -> Option<&(dyn sqlx::error::DatabaseError + 'static)> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::Database(db) => Some(db.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// Classifies a database error.
pub(super) fn classify(err: &DbErr) -> Kind {
    let Some(db) = database_error(err) else {
        return Kind::Other;
    };
    let code = db.code().unwrap_or_default();
    let code = code.as_ref();
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        match code {
            PG_EXCLUSION_VIOLATION if db.constraint() == Some(CLAIM_EXCLUSION_CONSTRAINT) => {
                Kind::Overlap
            }
            PG_UNIQUE_VIOLATION => Kind::Unique,
            c if PG_TRANSIENT.contains(&c) => Kind::Transient,
            _ => Kind::Other,
        }
    } else if db.message().contains(CLAIM_OVERLAP_MESSAGE) {
        Kind::Overlap
    } else if SQLITE_UNIQUE.contains(&code) {
        Kind::Unique
    } else if SQLITE_TRANSIENT.contains(&code) {
        Kind::Transient
    } else {
        Kind::Other
    }
}

/// Any other database error.
pub(super) fn db(err: DbErr) -> StoreError {
    StoreError::Db(err.to_string())
}

/// The label of an error for `berth_store_errors_total`.
pub(super) fn label(err: &StoreError) -> &'static str {
    match err {
        StoreError::Conflict(_) => "conflict",
        StoreError::AlreadyExists { .. } => "already_exists",
        StoreError::Db(_) => "db",
        StoreError::Fenced(_) => "fenced",
    }
}
