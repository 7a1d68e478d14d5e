//! The web portal: sessions behind a cookie, single-use sign-in links from
//! `berth login --web`, and each user's settings (the portal's and the CLI's language).
//! Only hashes of session and link secrets are stored.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebSessions {
    Table,
    Id,
    UserId,
    Csrf,
    CreatedMs,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum WebLogins {
    Table,
    Id,
    UserId,
    CreatedMs,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum UserSettings {
    Table,
    UserId,
    Lang,
    UpdatedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebSessions::Table)
                    .col(text(WebSessions::Id).primary_key())
                    .col(text(WebSessions::UserId))
                    .col(text(WebSessions::Csrf))
                    .col(big_integer(WebSessions::CreatedMs))
                    .col(big_integer(WebSessions::ExpiresMs))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("web_sessions_expires")
                    .table(WebSessions::Table)
                    .col(WebSessions::ExpiresMs)
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebLogins::Table)
                    .col(text(WebLogins::Id).primary_key())
                    .col(text(WebLogins::UserId))
                    .col(big_integer(WebLogins::CreatedMs))
                    .col(big_integer(WebLogins::ExpiresMs))
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserSettings::Table)
                    .col(text(UserSettings::UserId).primary_key())
                    .col(text(UserSettings::Lang).default(""))
                    .col(big_integer(UserSettings::UpdatedMs))
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserSettings::Table.into_iden(),
            WebLogins::Table.into_iden(),
            WebSessions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
