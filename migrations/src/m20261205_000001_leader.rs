//! Several schedulers on one PostgreSQL: the leader's lease (one row, with the fencing
//! token every write checks) and the schedulers taking part, for `berth admin status`.
//! The tables exist on SQLite too, where one scheduler always leads.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SchedulerLease {
    Table,
    Id,
    Holder,
    Address,
    Token,
    SinceMs,
    ExpiresMs,
    RenewedMs,
}

#[derive(DeriveIden)]
enum SchedulerMembers {
    Table,
    Id,
    Address,
    StartedMs,
    LastSeenMs,
    Role,
    Token,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SchedulerLease::Table)
                    .col(integer(SchedulerLease::Id).primary_key())
                    .col(text(SchedulerLease::Holder).default(""))
                    .col(text(SchedulerLease::Address).default(""))
                    .col(big_integer(SchedulerLease::Token).default(0i64))
                    .col(big_integer(SchedulerLease::SinceMs).default(0i64))
                    .col(big_integer(SchedulerLease::ExpiresMs).default(0i64))
                    .col(big_integer(SchedulerLease::RenewedMs).default(0i64))
                    .take(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(SchedulerLease::Table)
                    .columns([SchedulerLease::Id])
                    .values_panic([1.into()])
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SchedulerMembers::Table)
                    .col(text(SchedulerMembers::Id).primary_key())
                    .col(text(SchedulerMembers::Address))
                    .col(big_integer(SchedulerMembers::StartedMs))
                    .col(big_integer(SchedulerMembers::LastSeenMs))
                    .col(text(SchedulerMembers::Role))
                    .col(big_integer(SchedulerMembers::Token).default(0i64))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SchedulerMembers::Table.into_iden(),
            SchedulerLease::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
