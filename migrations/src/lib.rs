//! The Berth database schema as sea-orm migrations, for SQLite and PostgreSQL.
//!
//! The scheduler embeds these and runs [`Migrator::up`] at start. Times are BIGINT
//! milliseconds since the Unix epoch, ids are text, lists and maps are JSON text.
//! No device may be claimed twice for overlapping windows: PostgreSQL enforces it with
//! an exclusion constraint over (device, time range), SQLite with triggers.

pub use sea_orm_migration::prelude::*;

mod m20260101_000001_initial;
mod m20261121_000001_budgets;
mod m20261204_000001_engine;
mod m20261205_000001_leader;
mod m20261206_000001_portal;
mod m20261206_000001_tenancy;
mod m20261207_000001_notifications;
mod m20261207_000001_projects;
mod m20261207_000002_evidence;
mod m20261207_000010_billing;
mod m20261208_000001_ended_jobs;
mod m20261209_000001_prefix_indexes;
mod m20261210_000001_job_indexes;

/// The message SQLite's overlap triggers abort with; the store maps it to a conflict.
pub const CLAIM_OVERLAP_MESSAGE: &str = "device_claim_overlap";

/// The name of the PostgreSQL exclusion constraint on `device_claims`.
pub const CLAIM_EXCLUSION_CONSTRAINT: &str = "device_claims_no_overlap";

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_initial::Migration),
            Box::new(m20261121_000001_budgets::Migration),
            Box::new(m20261204_000001_engine::Migration),
            Box::new(m20261205_000001_leader::Migration),
            Box::new(m20261206_000001_tenancy::Migration),
            Box::new(m20261206_000001_portal::Migration),
            Box::new(m20261207_000001_notifications::Migration),
            Box::new(m20261207_000001_projects::Migration),
            Box::new(m20261207_000002_evidence::Migration),
            Box::new(m20261207_000010_billing::Migration),
            Box::new(m20261208_000001_ended_jobs::Migration),
            Box::new(m20261209_000001_prefix_indexes::Migration),
            Box::new(m20261210_000001_job_indexes::Migration),
        ]
    }
}
