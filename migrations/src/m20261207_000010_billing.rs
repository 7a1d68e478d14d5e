//! Billing in Korean won: prices per device-hour per class, per-org discounts with a
//! reason, and monthly invoices (their lines as JSON text; never edited once issued).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, integer, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Prices {
    Table,
    Class,
    KrwPerHour,
    IdleKrwPerHour,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum Discounts {
    Table,
    Org,
    Percent,
    Reason,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum Invoices {
    Table,
    Id,
    Org,
    Month,
    PeriodStartMs,
    PeriodEndMs,
    State,
    Lines,
    SubtotalKrw,
    VatKrw,
    TotalKrw,
    DiscountPercent,
    DiscountReason,
    CreatedMs,
    IssuedMs,
    PaidMs,
    VoidedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Prices::Table)
                    .col(text(Prices::Class).primary_key())
                    .col(big_integer(Prices::KrwPerHour))
                    .col(big_integer_null(Prices::IdleKrwPerHour))
                    .col(big_integer(Prices::UpdatedMs))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Discounts::Table)
                    .col(text(Discounts::Org).primary_key())
                    .col(integer(Discounts::Percent))
                    .col(text(Discounts::Reason))
                    .col(big_integer(Discounts::UpdatedMs))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Invoices::Table)
                    .col(text(Invoices::Id).primary_key())
                    .col(text(Invoices::Org))
                    .col(text(Invoices::Month))
                    .col(big_integer(Invoices::PeriodStartMs))
                    .col(big_integer(Invoices::PeriodEndMs))
                    .col(text(Invoices::State))
                    .col(text(Invoices::Lines))
                    .col(big_integer(Invoices::SubtotalKrw))
                    .col(big_integer(Invoices::VatKrw))
                    .col(big_integer(Invoices::TotalKrw))
                    .col(integer(Invoices::DiscountPercent))
                    .col(text(Invoices::DiscountReason))
                    .col(big_integer(Invoices::CreatedMs))
                    .col(big_integer_null(Invoices::IssuedMs))
                    .col(big_integer_null(Invoices::PaidMs))
                    .col(big_integer_null(Invoices::VoidedMs))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("invoices_org_month")
                    .table(Invoices::Table)
                    .col(Invoices::Org)
                    .col(Invoices::Month)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Invoices::Table.into_iden(),
            Discounts::Table.into_iden(),
            Prices::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
