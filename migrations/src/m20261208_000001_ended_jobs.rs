//! An index of ended jobs, newest first, for listings: live jobs are listed from memory,
//! and only ended ones are read from the database, so a page of them never walks past the
//! rows of a long queue.
//!
//! A job has a finish time exactly when it has ended (every final state sets it, a
//! requeued copy clears it); rows written before that held everywhere get one here (when
//! it started, else when it was created), so the partial indexes cover every ended job.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, columns)` of each index, all over `jobs WHERE finished_ms IS NOT NULL`.
const INDEXES: [(&str, &str); 2] = [
    ("idx_jobs_ended_created_id", "created_ms, id"),
    ("idx_jobs_ended_org_created_id", "org, created_ms, id"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE jobs SET finished_ms = COALESCE(started_ms, created_ms) \
             WHERE finished_ms IS NULL AND state IN \
             ('succeeded', 'failed', 'cancelled', 'preempted', 'timed-out', 'lost')",
        )
        .await?;
        for (name, columns) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON jobs ({columns}) \
                 WHERE finished_ms IS NOT NULL"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}
