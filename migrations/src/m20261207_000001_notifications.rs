//! Notifications: each user's email address and the events they want, each org's
//! webhooks, and the outbox of deliveries. Outbox rows are written in the same
//! transaction as the change that caused them, and a sender records each attempt back.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, integer, text, text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum NotifySubscriptions {
    Table,
    UserId,
    Org,
    Email,
    Events,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    Org,
    Url,
    Events,
    CreatedMs,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Id,
    Dedupe,
    Event,
    Org,
    ObjectKind,
    ObjectId,
    Channel,
    Target,
    UserId,
    WebhookId,
    Payload,
    State,
    Attempts,
    NextMs,
    LastError,
    CreatedMs,
    UpdatedMs,
    SentMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NotifySubscriptions::Table)
                    .col(text(NotifySubscriptions::UserId).primary_key())
                    .col(text(NotifySubscriptions::Org))
                    .col(text(NotifySubscriptions::Email))
                    .col(text(NotifySubscriptions::Events))
                    .col(big_integer(NotifySubscriptions::UpdatedMs))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(text(Webhooks::Id).primary_key())
                    .col(text(Webhooks::Org))
                    .col(text(Webhooks::Url))
                    .col(text(Webhooks::Events))
                    .col(big_integer(Webhooks::CreatedMs))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(text(Notifications::Id).primary_key())
                    .col(text_null(Notifications::Dedupe))
                    .col(text(Notifications::Event))
                    .col(text(Notifications::Org))
                    .col(text(Notifications::ObjectKind))
                    .col(text(Notifications::ObjectId))
                    .col(text(Notifications::Channel))
                    .col(text(Notifications::Target))
                    .col(text(Notifications::UserId))
                    .col(text(Notifications::WebhookId))
                    .col(text(Notifications::Payload))
                    .col(text(Notifications::State))
                    .col(integer(Notifications::Attempts))
                    .col(big_integer(Notifications::NextMs))
                    .col(text(Notifications::LastError))
                    .col(big_integer(Notifications::CreatedMs))
                    .col(big_integer(Notifications::UpdatedMs))
                    .col(big_integer_null(Notifications::SentMs))
                    .take(),
            )
            .await?;
        // One delivery per occurrence and recipient, even when a sweep stages it again
        // after a restart (NULLs never collide: most events need no key).
        manager
            .create_index(
                Index::create()
                    .name("notifications_dedupe")
                    .table(Notifications::Table)
                    .col(Notifications::Dedupe)
                    .unique()
                    .take(),
            )
            .await?;
        // The sender's query: pending rows that are due.
        manager
            .create_index(
                Index::create()
                    .name("notifications_due")
                    .table(Notifications::Table)
                    .col(Notifications::State)
                    .col(Notifications::NextMs)
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notifications_org_created")
                    .table(Notifications::Table)
                    .col(Notifications::Org)
                    .col(Notifications::CreatedMs)
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Notifications::Table.into_iden(),
            Webhooks::Table.into_iden(),
            NotifySubscriptions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
