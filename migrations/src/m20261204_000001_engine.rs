//! The group-commit engine: the scheduler's stop intent on jobs as data (a cause and its
//! words, never parsed back from the human reason), and the indexes that keyset paging of
//! jobs, reservations, audit events, usage and the ledger walks (sort key, then id).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Org,
    CreatedMs,
    StopCause,
    StopReason,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Id,
    Org,
    CreatedMs,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TimeMs,
}

#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    Id,
    Org,
    TimeMs,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Id,
    Org,
    StartMs,
}

fn index<T: IntoIden + 'static>(name: &str, table: T, cols: &[DynIden]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col.clone());
    }
    index
}

/// Every index this migration creates: (name, table, columns).
fn indexes() -> Vec<(&'static str, DynIden, Vec<DynIden>)> {
    vec![
        (
            "idx_jobs_created_id",
            Jobs::Table.into_iden(),
            vec![Jobs::CreatedMs.into_iden(), Jobs::Id.into_iden()],
        ),
        (
            "idx_jobs_org_created_id",
            Jobs::Table.into_iden(),
            vec![
                Jobs::Org.into_iden(),
                Jobs::CreatedMs.into_iden(),
                Jobs::Id.into_iden(),
            ],
        ),
        (
            "idx_reservations_created_id",
            Reservations::Table.into_iden(),
            vec![
                Reservations::CreatedMs.into_iden(),
                Reservations::Id.into_iden(),
            ],
        ),
        (
            "idx_reservations_org_created_id",
            Reservations::Table.into_iden(),
            vec![
                Reservations::Org.into_iden(),
                Reservations::CreatedMs.into_iden(),
                Reservations::Id.into_iden(),
            ],
        ),
        (
            "idx_audit_events_time_id",
            AuditEvents::Table.into_iden(),
            vec![AuditEvents::TimeMs.into_iden(), AuditEvents::Id.into_iden()],
        ),
        (
            "idx_ledger_entries_time_id",
            LedgerEntries::Table.into_iden(),
            vec![
                LedgerEntries::TimeMs.into_iden(),
                LedgerEntries::Id.into_iden(),
            ],
        ),
        (
            "idx_ledger_entries_org_time_id",
            LedgerEntries::Table.into_iden(),
            vec![
                LedgerEntries::Org.into_iden(),
                LedgerEntries::TimeMs.into_iden(),
                LedgerEntries::Id.into_iden(),
            ],
        ),
        (
            "idx_usage_records_start_id",
            UsageRecords::Table.into_iden(),
            vec![
                UsageRecords::StartMs.into_iden(),
                UsageRecords::Id.into_iden(),
            ],
        ),
        (
            "idx_usage_records_org_start_id",
            UsageRecords::Table.into_iden(),
            vec![
                UsageRecords::Org.into_iden(),
                UsageRecords::StartMs.into_iden(),
                UsageRecords::Id.into_iden(),
            ],
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement, as SQLite requires.
        for column in [text_null(Jobs::StopCause), text_null(Jobs::StopReason)] {
            manager
                .alter_table(Table::alter().table(Jobs::Table).add_column(column).take())
                .await?;
        }
        for (name, table, cols) in indexes() {
            manager.create_index(index(name, table, &cols)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in indexes().into_iter().rev() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        for column in [Jobs::StopReason, Jobs::StopCause] {
            manager
                .alter_table(Table::alter().table(Jobs::Table).drop_column(column).take())
                .await?;
        }
        Ok(())
    }
}
