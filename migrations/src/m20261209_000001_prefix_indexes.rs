//! Drops the indexes whose columns begin another index of the same table.
//!
//! Each of these was created before the paging indexes that end in the row's id (see
//! `m20261204_000001_engine`): `(created_ms)` before `(created_ms, id)`, `(org,
//! created_ms)` before `(org, created_ms, id)`, and so on. The longer index answers every
//! query the shorter one did, in the same order, so the shorter one only cost an extra
//! b-tree insert on every new job, booking, audit event, usage record and ledger entry.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, table, columns)` of each dropped index, as it was created.
const DROPPED: [(&str, &str, &str); 8] = [
    ("idx_jobs_created", "jobs", "created_ms"),
    ("idx_jobs_org_created", "jobs", "org, created_ms"),
    ("idx_reservations_created", "reservations", "created_ms"),
    (
        "idx_reservations_org_created",
        "reservations",
        "org, created_ms",
    ),
    ("idx_audit_events_time", "audit_events", "time_ms"),
    ("idx_usage_records_start", "usage_records", "start_ms"),
    (
        "idx_usage_records_org_start",
        "usage_records",
        "org, start_ms",
    ),
    (
        "idx_ledger_entries_org_time",
        "ledger_entries",
        "org, time_ms",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _, _) in DROPPED {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, table, columns) in DROPPED {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"
            ))
            .await?;
        }
        Ok(())
    }
}
