//! What a job did on its devices (mean utilisation, peak memory, energy), as JSON on
//! the job and on its usage record once it ends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Evidence,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Evidence,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            (Jobs::Table.into_iden(), Jobs::Evidence.into_iden()),
            (
                UsageRecords::Table.into_iden(),
                UsageRecords::Evidence.into_iden(),
            ),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(text_null(column))
                        .take(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            (Jobs::Table.into_iden(), Jobs::Evidence.into_iden()),
            (
                UsageRecords::Table.into_iden(),
                UsageRecords::Evidence.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).take())
                .await?;
        }
        Ok(())
    }
}
