//! Drops the two indexes of every job by creation, `(created_ms, id)` and `(org,
//! created_ms, id)`.
//!
//! Nothing reads jobs through them any more: live jobs are listed, counted and reported
//! from the scheduler's memory, and ended ones through the partial indexes of ended jobs
//! (`m20261208_000001_ended_jobs`), which cover the same columns. They only cost two
//! b-tree inserts on every new job, the larger part of a `SubmitJob` group's writes after
//! the row itself.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, columns)` of each dropped index on `jobs`, as it was created.
const DROPPED: [(&str, &str); 2] = [
    ("idx_jobs_created_id", "created_ms, id"),
    ("idx_jobs_org_created_id", "org, created_ms, id"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in DROPPED {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, columns) in DROPPED {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON jobs ({columns})"
            ))
            .await?;
        }
        Ok(())
    }
}
