//! Leadership on PostgreSQL: the lease row, the members, and the fence every write checks.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Statement, Value};

use super::apply::Failed;
use super::{SeaStore, error, rollback};
use crate::store::StoreError;
use crate::store::lease::{Candidate, Lease, LeaseView, MemberRow};

/// Whether, and with which term, this store's writes are fenced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Fencing {
    /// Nobody campaigns (a single scheduler, e.g. on SQLite): writes are not fenced.
    #[default]
    Off,
    /// This scheduler campaigns but does not lead: every write is refused.
    Standby,
    /// This scheduler leads this term: writes check the lease still says so.
    Term(Term),
}

/// A term this scheduler leads: what every write transaction checks the lease against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Term {
    holder: String,
    token: i64,
}

impl Term {
    /// Judges the lease row as [`check_fence`] read it inside a write transaction: the
    /// write may commit only if this term still holds the lease, unexpired.
    pub(super) fn check(&self, row: Option<&QueryResult>) -> Result<(), Failed> {
        let row =
            row.ok_or_else(|| Failed::Final(StoreError::Db("the lease row is missing".into())))?;
        let lease = row_view(row).map_err(Failed::Final)?;
        let token = self.token;
        if lease.holder != self.holder || lease.token != token {
            return Err(Failed::Final(StoreError::Fenced(format!(
                "{} leads now (term {}); this scheduler's term {token} ended",
                lease.address, lease.token
            ))));
        }
        if lease.expires_ms <= lease.db_now_ms {
            return Err(Failed::Final(StoreError::Fenced(format!(
                "this scheduler's lease (term {token}) expired"
            ))));
        }
        Ok(())
    }
}

/// Checks, inside a write transaction, that `term` still holds the lease, unexpired, and
/// locks the lease row `FOR KEY SHARE` until the transaction ends. That lock keeps a new
/// leader from taking the lease meanwhile (a takeover locks the row `FOR UPDATE` first,
/// see `campaign`), yet lets the holder renew it: a renewal changes no key, so it takes
/// only a no-key-update lock, which does not conflict with key-share ones.
pub(super) async fn check_fence(txn: &DatabaseTransaction, term: &Term) -> Result<(), Failed> {
    let sql = format!(
        "SELECT holder, address, token, since_ms, expires_ms, {DB_NOW} AS db_now \
         FROM scheduler_lease WHERE id = 1 FOR KEY SHARE"
    );
    let row = txn
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .map_err(Failed::from_db)?;
    term.check(row.as_ref())
}

/// The database's clock in ms.
const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

fn row_view(row: &sea_orm::QueryResult) -> Result<LeaseView, StoreError> {
    let get = |c: &str| -> Result<i64, StoreError> { row.try_get("", c).map_err(error::db) };
    let text = |c: &str| -> Result<String, StoreError> { row.try_get("", c).map_err(error::db) };
    Ok(LeaseView {
        holder: text("holder")?,
        address: text("address")?,
        token: get("token")?,
        since_ms: get("since_ms")?,
        expires_ms: get("expires_ms")?,
        db_now_ms: get("db_now")?,
    })
}

/// Takes the lease for `me` if it is free or expired (a new term: a larger token), or
/// renews it if `me` holds it unexpired; changes nothing otherwise.
async fn take_lease(
    txn: &DatabaseTransaction,
    me: &Candidate,
    lease_ms: i64,
) -> Result<(), sea_orm::DbErr> {
    let take = format!(
        "UPDATE scheduler_lease SET \
           token = CASE WHEN holder = $1 AND expires_ms > {DB_NOW} THEN token ELSE token + 1 END, \
           since_ms = CASE WHEN holder = $1 AND expires_ms > {DB_NOW} THEN since_ms ELSE {DB_NOW} END, \
           holder = $1, address = $2, expires_ms = {DB_NOW} + $3, renewed_ms = {DB_NOW} \
         WHERE id = 1 AND (holder = $1 OR expires_ms <= {DB_NOW})"
    );
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        take,
        [
            Value::from(me.id.clone()),
            Value::from(me.address.clone()),
            Value::from(lease_ms),
        ],
    ))
    .await?;
    Ok(())
}

impl SeaStore {
    fn pg(&self) -> Result<(), StoreError> {
        if self.backend == DbBackend::Postgres {
            Ok(())
        } else {
            Err(StoreError::Db(
                "several schedulers need PostgreSQL; the embedded SQLite database runs one".into(),
            ))
        }
    }

    fn set_fencing(&self, f: Fencing) {
        *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// The term this store's writes are fenced with: `None` when they are not fenced
    /// (nobody campaigns); refused when this scheduler stands by.
    pub(super) fn term(&self) -> Result<Option<Term>, Failed> {
        match &*self.fence.lock().unwrap_or_else(|e| e.into_inner()) {
            Fencing::Off => Ok(None),
            Fencing::Standby => Err(Failed::Final(StoreError::Fenced(
                "this scheduler is a standby".into(),
            ))),
            Fencing::Term(term) => Ok(Some(term.clone())),
        }
    }
}

#[async_trait::async_trait]
impl Lease for SeaStore {
    async fn campaign(&self, me: &Candidate, lease_ms: i64) -> Result<LeaseView, StoreError> {
        self.pg()?;
        let txn = self.begin_write().await.map_err(error::db)?;
        let result = async {
            // The holder of an unexpired lease renews it without waiting for its own
            // writers (see `check_fence`): a renewal stuck behind a stream of writes
            // would let the lease lapse under a leader that is working.
            let renew = format!(
                "UPDATE scheduler_lease SET address = $2, expires_ms = {DB_NOW} + $3, \
                   renewed_ms = {DB_NOW} \
                 WHERE id = 1 AND holder = $1 AND expires_ms > {DB_NOW}"
            );
            let renewed = txn
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    renew,
                    [
                        Value::from(me.id.clone()),
                        Value::from(me.address.clone()),
                        Value::from(lease_ms),
                    ],
                ))
                .await?
                .rows_affected()
                == 1;
            if !renewed {
                // Taking the lease over waits for every writer of the term before:
                // `FOR UPDATE` conflicts with their key-share locks.
                txn.execute_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT id FROM scheduler_lease WHERE id = 1 FOR UPDATE",
                ))
                .await?;
                take_lease(&txn, me, lease_ms).await?;
            }
            let read = format!(
                "SELECT holder, address, token, since_ms, expires_ms, {DB_NOW} AS db_now \
                 FROM scheduler_lease WHERE id = 1"
            );
            let row = txn
                .query_one_raw(Statement::from_string(DbBackend::Postgres, read))
                .await?;
            let lease = match row {
                Some(r) => row_view(&r).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?,
                None => return Err(sea_orm::DbErr::Custom("the lease row is missing".into())),
            };
            let mine = lease.held_by(&me.id);
            let member = format!(
                "INSERT INTO scheduler_members (id, address, started_ms, last_seen_ms, role, token) \
                 VALUES ($1, $2, $3, {DB_NOW}, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, \
                   last_seen_ms = EXCLUDED.last_seen_ms, role = EXCLUDED.role, token = EXCLUDED.token"
            );
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                member,
                [
                    Value::from(me.id.clone()),
                    Value::from(me.address.clone()),
                    Value::from(me.started_ms),
                    Value::from(if mine { "leader" } else { "standby" }),
                    Value::from(if mine { lease.token } else { 0 }),
                ],
            ))
            .await?;
            Ok(lease)
        }
        .await;
        match result {
            Ok(lease) => {
                txn.commit().await.map_err(error::db)?;
                self.set_fencing(if lease.held_by(&me.id) {
                    Fencing::Term(Term {
                        holder: me.id.clone(),
                        token: lease.token,
                    })
                } else {
                    Fencing::Standby
                });
                Ok(lease)
            }
            Err(e) => {
                rollback(txn).await;
                Err(error::db(e))
            }
        }
    }

    fn unfence(&self) {
        self.set_fencing(Fencing::Standby);
    }

    async fn resign(&self, me: &Candidate) -> Result<(), StoreError> {
        self.pg()?;
        self.set_fencing(Fencing::Standby);
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE scheduler_lease SET expires_ms = 0 WHERE id = 1 AND holder = $1",
                [Value::from(me.id.clone())],
            ))
            .await
            .map_err(error::db)?;
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "DELETE FROM scheduler_members WHERE id = $1",
                [Value::from(me.id.clone())],
            ))
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn status(&self, recent_ms: i64) -> Result<(LeaseView, Vec<MemberRow>), StoreError> {
        self.pg()?;
        let read = format!(
            "SELECT holder, address, token, since_ms, expires_ms, {DB_NOW} AS db_now \
             FROM scheduler_lease WHERE id = 1"
        );
        let row = self
            .db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, read))
            .await
            .map_err(error::db)?
            .ok_or_else(|| StoreError::Db("the lease row is missing".into()))?;
        let lease = row_view(&row)?;
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, address, started_ms, last_seen_ms, role, token \
                 FROM scheduler_members WHERE last_seen_ms >= $1 ORDER BY started_ms, id",
                [Value::from(lease.db_now_ms - recent_ms)],
            ))
            .await
            .map_err(error::db)?;
        let members = rows
            .iter()
            .map(|r| {
                let int =
                    |c: &str| -> Result<i64, StoreError> { r.try_get("", c).map_err(error::db) };
                let text =
                    |c: &str| -> Result<String, StoreError> { r.try_get("", c).map_err(error::db) };
                Ok(MemberRow {
                    id: text("id")?,
                    address: text("address")?,
                    started_ms: int("started_ms")?,
                    last_seen_ms: int("last_seen_ms")?,
                    role: text("role")?,
                    token: int("token")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((lease, members))
    }
}
