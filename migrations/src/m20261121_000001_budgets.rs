//! Budgets, the ledger and the scheduling policy; fair-share weights and class rates;
//! charges, idle tracking, priority, preemption and gang size on reservations and jobs.
//!
//! Every new column of an existing table is added NOT NULL with a default (or nullable),
//! so rows written by the initial schema stay valid: weights and rates of 1.0, nothing
//! charged, priority 0, not preemptible, one node. SQLite adds one column per
//! `ALTER TABLE`, so each column is its own statement on both backends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, double, integer, integer_null, text, text_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Name,
    Weight,
}

#[derive(DeriveIden)]
enum DeviceClasses {
    Table,
    Rate,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    BudgetClass,
    ChargePeriodMs,
    ChargedMs,
    IdleSinceMs,
    IdleWarnedMs,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Priority,
    Preemptible,
    Nodes,
    BudgetClass,
    ChargePeriodMs,
    ChargedMs,
    RequeuedFrom,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    EndMs,
}

#[derive(DeriveIden)]
enum Budgets {
    Table,
    Org,
    Class,
    Period,
    AllowanceMs,
    MaxDevices,
    MaxBookingMs,
    HorizonMs,
    ExpiresMs,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    Id,
    Org,
    BudgetClass,
    TimeMs,
    Kind,
    AmountMs,
    PeriodStartMs,
    SubjectKind,
    SubjectId,
    DeviceClass,
    DeviceMs,
    Note,
}

#[derive(DeriveIden)]
enum SchedulerPolicy {
    Table,
    Id,
    Json,
    UpdatedMs,
}

/// The id of the one row of `scheduler_policy`.
const POLICY_ROW_ID: i32 = 1;

fn index<T: IntoIden + 'static>(name: &str, table: T, cols: &[DynIden]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col.clone());
    }
    index
}

/// The charge columns shared by reservations and jobs.
fn charge_columns<C: IntoIden>(budget_class: C, period: C, charged: C) -> [ColumnDef; 3] {
    [
        text(budget_class).default("").take(),
        big_integer(period).default(0i64).take(),
        big_integer(charged).default(0i64).take(),
    ]
}

fn added_columns() -> Vec<(DynIden, ColumnDef)> {
    let mut columns: Vec<(DynIden, ColumnDef)> = vec![
        (
            Orgs::Table.into_iden(),
            double(Orgs::Weight).default(1.0f64).take(),
        ),
        (
            DeviceClasses::Table.into_iden(),
            double(DeviceClasses::Rate).default(1.0f64).take(),
        ),
    ];
    for col in charge_columns(
        Reservations::BudgetClass,
        Reservations::ChargePeriodMs,
        Reservations::ChargedMs,
    ) {
        columns.push((Reservations::Table.into_iden(), col));
    }
    columns.extend([
        (
            Reservations::Table.into_iden(),
            big_integer_null(Reservations::IdleSinceMs),
        ),
        (
            Reservations::Table.into_iden(),
            big_integer_null(Reservations::IdleWarnedMs),
        ),
        (
            Jobs::Table.into_iden(),
            integer(Jobs::Priority).default(0i32).take(),
        ),
        (
            Jobs::Table.into_iden(),
            boolean(Jobs::Preemptible).default(false).take(),
        ),
        (
            Jobs::Table.into_iden(),
            integer(Jobs::Nodes).default(1i32).take(),
        ),
    ]);
    for col in charge_columns(Jobs::BudgetClass, Jobs::ChargePeriodMs, Jobs::ChargedMs) {
        columns.push((Jobs::Table.into_iden(), col));
    }
    columns.push((Jobs::Table.into_iden(), text_null(Jobs::RequeuedFrom)));
    columns
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in added_columns() {
            manager
                .alter_table(Table::alter().table(table).add_column(column).take())
                .await?;
        }
        // Fair share reads the usage of recent periods by end time.
        manager
            .create_index(index(
                "idx_usage_records_end",
                UsageRecords::Table,
                &[UsageRecords::EndMs.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Budgets::Table)
                    .col(text(Budgets::Org))
                    .col(text(Budgets::Class))
                    .col(text(Budgets::Period))
                    .col(big_integer_null(Budgets::AllowanceMs))
                    .col(integer_null(Budgets::MaxDevices))
                    .col(big_integer_null(Budgets::MaxBookingMs))
                    .col(big_integer_null(Budgets::HorizonMs))
                    .col(big_integer_null(Budgets::ExpiresMs))
                    .col(big_integer(Budgets::UpdatedMs))
                    .primary_key(Index::create().col(Budgets::Org).col(Budgets::Class))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_budgets_org")
                            .from(Budgets::Table, Budgets::Org)
                            .to(Orgs::Table, Orgs::Name),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LedgerEntries::Table)
                    .col(text(LedgerEntries::Id).primary_key().take())
                    .col(text(LedgerEntries::Org))
                    .col(text(LedgerEntries::BudgetClass))
                    .col(big_integer(LedgerEntries::TimeMs))
                    .col(text(LedgerEntries::Kind))
                    .col(big_integer(LedgerEntries::AmountMs))
                    .col(big_integer(LedgerEntries::PeriodStartMs))
                    .col(text_null(LedgerEntries::SubjectKind))
                    .col(text(LedgerEntries::SubjectId))
                    .col(text(LedgerEntries::DeviceClass))
                    .col(big_integer(LedgerEntries::DeviceMs))
                    .col(text(LedgerEntries::Note))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ledger_entries_org")
                            .from(LedgerEntries::Table, LedgerEntries::Org)
                            .to(Orgs::Table, Orgs::Name),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_ledger_entries_org_time",
                LedgerEntries::Table,
                &[
                    LedgerEntries::Org.into_iden(),
                    LedgerEntries::TimeMs.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_ledger_entries_period_start",
                LedgerEntries::Table,
                &[LedgerEntries::PeriodStartMs.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SchedulerPolicy::Table)
                    .col(integer(SchedulerPolicy::Id).primary_key().take())
                    .col(text(SchedulerPolicy::Json))
                    .col(big_integer(SchedulerPolicy::UpdatedMs))
                    .check((
                        Alias::new("scheduler_policy_single_row"),
                        Expr::col(SchedulerPolicy::Id).eq(POLICY_ROW_ID),
                    ))
                    .take(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables: [DynIden; 3] = [
            SchedulerPolicy::Table.into_iden(),
            LedgerEntries::Table.into_iden(),
            Budgets::Table.into_iden(),
        ];
        for table in tables {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_usage_records_end")
                    .table(UsageRecords::Table)
                    .to_owned(),
            )
            .await?;
        // Newest first; one column per statement, as SQLite requires.
        for (table, column) in added_columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new(column.get_column_name()))
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
