//! Drops the indexes on `jobs` that every new job paid for and no query reads: the two by
//! creation over all jobs, `(created_ms, id)` and `(org, created_ms, id)`, and the one by
//! `state`.
//!
//! Live jobs are listed, counted and reported from the scheduler's memory; ended ones
//! through the partial indexes of ended jobs (`m20261208_000001_ended_jobs`), which cover
//! the same columns. What still filters on the state either reads ended jobs (those
//! indexes, the state a filter on top) or wants most of the table (loading the live jobs
//! is `state NOT IN (...)`, which no b-tree on the state answers). The three only cost
//! b-tree inserts on every new job and on every change of a job's state.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, columns)` of each dropped index on `jobs`, as it was created.
const DROPPED: [(&str, &str); 3] = [
    ("idx_jobs_created_id", "created_ms, id"),
    ("idx_jobs_org_created_id", "org, created_ms, id"),
    ("idx_jobs_state", "state"),
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
