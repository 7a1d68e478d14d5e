//! Paged listings (keyset paging on a sort key and the id, AIP-158) and the retention
//! sweep. Every listing reads committed rows only, so it never waits for the writer.

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
};

use super::entities::{
    audit_event, device_claim, job, job_log, ledger_entry, notification, reservation, usage_record,
};
use super::{SeaStore, collect, convert, error, final_job_states, final_reservation_states};
use crate::store::types::*;
use crate::store::{
    AuditFilter, Cursor, JobFilter, Page, Prunable, Pruned, RangeFilter, ReservationFilter,
    StoreError,
};

/// Rows after `cursor` in descending (key, id) order.
fn before<K: ColumnTrait, I: ColumnTrait>(key: K, id: I, cursor: &Cursor) -> Condition {
    Condition::any().add(key.lt(cursor.key)).add(
        Condition::all()
            .add(key.eq(cursor.key))
            .add(id.lt(cursor.id.as_str())),
    )
}

/// Rows after `cursor` in ascending (key, id) order.
fn after<K: ColumnTrait, I: ColumnTrait>(key: K, id: I, cursor: &Cursor) -> Condition {
    Condition::any().add(key.gt(cursor.key)).add(
        Condition::all()
            .add(key.eq(cursor.key))
            .add(id.gt(cursor.id.as_str())),
    )
}

/// The same for tables whose ids are integers (the cursor holds the id in decimal).
fn numeric_id(cursor: &Cursor) -> Result<i64, StoreError> {
    cursor
        .id
        .parse()
        .map_err(|_| StoreError::Db(format!("cursor id {:?} is not a number", cursor.id)))
}

impl SeaStore {
    pub(super) async fn page_jobs(
        &self,
        f: &JobFilter,
        page: &Page,
    ) -> Result<Vec<JobRow>, StoreError> {
        let mut q = job::Entity::find();
        if let Some(org) = &f.org {
            q = q.filter(job::Column::Org.eq(org.as_str()));
        }
        if !f.states.is_empty() {
            q = q.filter(job::Column::State.is_in(f.states.iter().map(|s| s.as_str())));
        } else if !f.include_finished {
            q = q.filter(job::Column::State.is_not_in(final_job_states()));
        }
        if let Some(user) = &f.user {
            q = q.filter(job::Column::UserName.eq(user.as_str()));
        }
        if let Some(class) = &f.class {
            q = q.filter(job::Column::Class.eq(class.as_str()));
        }
        if let Some(since) = f.since_ms {
            q = q.filter(job::Column::CreatedMs.gte(since));
        }
        if f.ended_only {
            // The very term of the partial indexes of ended jobs, so both databases use them.
            q = q.filter(job::Column::FinishedMs.is_not_null());
        }
        if let Some(c) = &page.after {
            q = q.filter(before(job::Column::CreatedMs, job::Column::Id, c));
        }
        let models = q
            .order_by_desc(job::Column::CreatedMs)
            .order_by_desc(job::Column::Id)
            .limit(u64::from(page.limit))
            .all(&self.db)
            .await
            .map_err(error::db)?;
        collect(models, convert::job_row)
    }

    pub(super) async fn page_reservations(
        &self,
        f: &ReservationFilter,
        page: &Page,
    ) -> Result<Vec<ReservationRow>, StoreError> {
        let mut q = reservation::Entity::find();
        if let Some(org) = &f.org {
            q = q.filter(reservation::Column::Org.eq(org.as_str()));
        }
        if !f.states.is_empty() {
            q = q.filter(reservation::Column::State.is_in(f.states.iter().map(|s| s.as_str())));
        } else if !f.include_finished {
            q = q.filter(reservation::Column::State.is_not_in(final_reservation_states()));
        }
        if let Some(user) = &f.user {
            q = q.filter(reservation::Column::UserName.eq(user.as_str()));
        }
        if let Some(class) = &f.class {
            q = q.filter(reservation::Column::Class.eq(class.as_str()));
        }
        if let Some(since) = f.since_ms {
            q = q.filter(reservation::Column::CreatedMs.gte(since));
        }
        if let Some(c) = &page.after {
            q = q.filter(before(
                reservation::Column::CreatedMs,
                reservation::Column::Id,
                c,
            ));
        }
        let models = q
            .order_by_desc(reservation::Column::CreatedMs)
            .order_by_desc(reservation::Column::Id)
            .limit(u64::from(page.limit))
            .all(&self.db)
            .await
            .map_err(error::db)?;
        collect(models, convert::reservation_row)
    }

    pub(super) async fn page_usage(
        &self,
        f: &RangeFilter,
        page: &Page,
    ) -> Result<Vec<(i64, UsageRow)>, StoreError> {
        let mut q = usage_record::Entity::find()
            .filter(usage_record::Column::StartMs.lt(f.to_ms))
            .filter(usage_record::Column::EndMs.gt(f.from_ms));
        if let Some(org) = &f.org {
            q = q.filter(usage_record::Column::Org.eq(org.as_str()));
        }
        if let Some(class) = &f.class {
            q = q.filter(usage_record::Column::Class.eq(class.as_str()));
        }
        if let Some(c) = &page.after {
            let id = numeric_id(c)?;
            q = q.filter(
                Condition::any()
                    .add(usage_record::Column::StartMs.gt(c.key))
                    .add(
                        Condition::all()
                            .add(usage_record::Column::StartMs.eq(c.key))
                            .add(usage_record::Column::Id.gt(id)),
                    ),
            );
        }
        let models = q
            .order_by_asc(usage_record::Column::StartMs)
            .order_by_asc(usage_record::Column::Id)
            .limit(u64::from(page.limit))
            .all(&self.db)
            .await
            .map_err(error::db)?;
        models
            .into_iter()
            .map(|m| {
                let id = m.id;
                convert::usage_row(m).map(|r| (id, r))
            })
            .collect()
    }

    pub(super) async fn sum_usage(
        &self,
        f: &RangeFilter,
    ) -> Result<Vec<(String, String, OwnerKind, i64)>, StoreError> {
        let mut q = usage_record::Entity::find()
            .select_only()
            .column(usage_record::Column::Org)
            .column(usage_record::Column::Class)
            .column(usage_record::Column::Kind)
            .column_as(Expr::cust("CAST(SUM(device_ms) AS BIGINT)"), "total")
            .filter(usage_record::Column::StartMs.lt(f.to_ms))
            .filter(usage_record::Column::EndMs.gt(f.from_ms));
        if let Some(org) = &f.org {
            q = q.filter(usage_record::Column::Org.eq(org.as_str()));
        }
        if let Some(class) = &f.class {
            q = q.filter(usage_record::Column::Class.eq(class.as_str()));
        }
        let rows: Vec<(String, String, String, Option<i64>)> = q
            .group_by(usage_record::Column::Org)
            .group_by(usage_record::Column::Class)
            .group_by(usage_record::Column::Kind)
            .order_by_asc(usage_record::Column::Org)
            .order_by_asc(usage_record::Column::Class)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(error::db)?;
        rows.into_iter()
            .map(|(org, class, kind, total)| {
                let kind = OwnerKind::parse(&kind).ok_or_else(|| {
                    StoreError::Db(format!("unknown value {kind:?} in usage_records.kind"))
                })?;
                Ok((org, class, kind, total.unwrap_or(0)))
            })
            .collect()
    }

    pub(super) async fn page_ledger(
        &self,
        f: &RangeFilter,
        page: &Page,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let mut q = ledger_entry::Entity::find()
            .filter(ledger_entry::Column::TimeMs.gte(f.from_ms))
            .filter(ledger_entry::Column::TimeMs.lt(f.to_ms));
        if let Some(org) = &f.org {
            q = q.filter(ledger_entry::Column::Org.eq(org.as_str()));
        }
        if let Some(class) = &f.class {
            q = q.filter(ledger_entry::Column::DeviceClass.eq(class.as_str()));
        }
        if let Some(c) = &page.after {
            q = q.filter(after(
                ledger_entry::Column::TimeMs,
                ledger_entry::Column::Id,
                c,
            ));
        }
        let models = q
            .order_by_asc(ledger_entry::Column::TimeMs)
            .order_by_asc(ledger_entry::Column::Id)
            .limit(u64::from(page.limit))
            .all(&self.db)
            .await
            .map_err(error::db)?;
        collect(models, convert::ledger_row)
    }

    pub(super) async fn page_audit(
        &self,
        f: &AuditFilter,
        page: &Page,
    ) -> Result<Vec<(i64, AuditRow)>, StoreError> {
        let mut q = audit_event::Entity::find();
        if let Some(since) = f.since_ms {
            q = q.filter(audit_event::Column::TimeMs.gte(since));
        }
        if let Some(prefix) = &f.action_prefix {
            q = q.filter(audit_event::Column::Action.starts_with(prefix.as_str()));
        }
        if let Some(c) = &page.after {
            let id = numeric_id(c)?;
            q = q.filter(
                Condition::any()
                    .add(audit_event::Column::TimeMs.lt(c.key))
                    .add(
                        Condition::all()
                            .add(audit_event::Column::TimeMs.eq(c.key))
                            .add(audit_event::Column::Id.lt(id)),
                    ),
            );
        }
        let models = q
            .order_by_desc(audit_event::Column::TimeMs)
            .order_by_desc(audit_event::Column::Id)
            .limit(u64::from(page.limit))
            .all(&self.db)
            .await
            .map_err(error::db)?;
        Ok(models
            .into_iter()
            .map(|m| (m.id, convert::audit_row(m)))
            .collect())
    }

    /// Deletes one batch of at most `limit` rows of `what` older than `before_ms`.
    pub(super) async fn prune_batch(
        &self,
        what: Prunable,
        before_ms: i64,
        limit: u32,
    ) -> Result<Pruned, StoreError> {
        let limit = u64::from(std::cmp::max(limit, 1));
        let stmt = match what {
            Prunable::Audit => Query::delete()
                .from_table(audit_event::Entity)
                .and_where(
                    Expr::col(audit_event::Column::Id).in_subquery(
                        Query::select()
                            .column(audit_event::Column::Id)
                            .from(audit_event::Entity)
                            .and_where(audit_event::Column::TimeMs.lt(before_ms))
                            .order_by(audit_event::Column::Id, sea_orm::Order::Asc)
                            .limit(limit)
                            .take(),
                    ),
                )
                .to_owned(),
            Prunable::Usage => Query::delete()
                .from_table(usage_record::Entity)
                .and_where(
                    Expr::col(usage_record::Column::Id).in_subquery(
                        Query::select()
                            .column(usage_record::Column::Id)
                            .from(usage_record::Entity)
                            .and_where(usage_record::Column::EndMs.lt(before_ms))
                            .limit(limit)
                            .take(),
                    ),
                )
                .to_owned(),
            Prunable::Ledger => Query::delete()
                .from_table(ledger_entry::Entity)
                .and_where(
                    Expr::col(ledger_entry::Column::Id).in_subquery(
                        Query::select()
                            .column(ledger_entry::Column::Id)
                            .from(ledger_entry::Entity)
                            .and_where(ledger_entry::Column::PeriodStartMs.lt(before_ms))
                            .limit(limit)
                            .take(),
                    ),
                )
                .to_owned(),
            Prunable::Logs => {
                // Chunks of jobs that finished before the cut-off, a job at a time.
                let finished = job::Entity::find()
                    .select_only()
                    .column(job::Column::Id)
                    .filter(job::Column::FinishedMs.lt(before_ms))
                    .filter(
                        job::Column::Id.in_subquery(
                            Query::select()
                                .distinct()
                                .column(job_log::Column::JobId)
                                .from(job_log::Entity)
                                .take(),
                        ),
                    )
                    .limit(limit)
                    .into_query();
                Query::delete()
                    .from_table(job_log::Entity)
                    .and_where(Expr::col(job_log::Column::JobId).in_subquery(finished))
                    .to_owned()
            }
            Prunable::Finished => {
                return self.prune_finished(before_ms, limit).await;
            }
            Prunable::Notifications => Query::delete()
                .from_table(notification::Entity)
                .and_where(
                    Expr::col(notification::Column::Id).in_subquery(
                        Query::select()
                            .column(notification::Column::Id)
                            .from(notification::Entity)
                            .and_where(
                                notification::Column::State.ne(DeliveryState::Pending.as_str()),
                            )
                            .and_where(notification::Column::UpdatedMs.lt(before_ms))
                            .limit(limit)
                            .take(),
                    ),
                )
                .to_owned(),
        };
        let res = self.db.execute(&stmt).await.map_err(error::db)?;
        Ok(Pruned {
            rows: res.rows_affected(),
        })
    }

    /// Deletes finished jobs and reservations that ended before `before_ms`, with their
    /// claims (each at most `limit` rows per call).
    async fn prune_finished(&self, before_ms: i64, limit: u64) -> Result<Pruned, StoreError> {
        let mut rows = 0;
        let claims = Query::delete()
            .from_table(device_claim::Entity)
            .and_where(
                Expr::col(device_claim::Column::Id).in_subquery(
                    Query::select()
                        .column(device_claim::Column::Id)
                        .from(device_claim::Entity)
                        .and_where(device_claim::Column::EndMs.lt(before_ms))
                        .limit(limit)
                        .take(),
                ),
            )
            .to_owned();
        let jobs = Query::delete()
            .from_table(job::Entity)
            .and_where(
                Expr::col(job::Column::Id).in_subquery(
                    Query::select()
                        .column(job::Column::Id)
                        .from(job::Entity)
                        .and_where(job::Column::FinishedMs.lt(before_ms))
                        .and_where(job::Column::State.is_in(final_job_states()))
                        .limit(limit)
                        .take(),
                ),
            )
            .to_owned();
        let reservations = Query::delete()
            .from_table(reservation::Entity)
            .and_where(
                Expr::col(reservation::Column::Id).in_subquery(
                    Query::select()
                        .column(reservation::Column::Id)
                        .from(reservation::Entity)
                        .and_where(reservation::Column::EndMs.lt(before_ms))
                        .and_where(reservation::Column::State.is_in(final_reservation_states()))
                        .limit(limit)
                        .take(),
                ),
            )
            .to_owned();
        for stmt in [claims, jobs, reservations] {
            rows += self
                .db
                .execute(&stmt)
                .await
                .map_err(error::db)?
                .rows_affected();
        }
        Ok(Pruned { rows })
    }
}
