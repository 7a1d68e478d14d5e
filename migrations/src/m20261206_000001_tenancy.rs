//! Tenants that do not trust each other: user names unique within their organisation
//! (not across the centre, so one organisation cannot probe another's names), join
//! tokens that join a set number of new nodes (one by default) and are optionally bound
//! to a node, an admin's leave to re-join an
//! existing node, and per-organisation grants of datasets.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, boolean, integer, text, text_null};
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Org,
    Role,
    CreatedMs,
}

#[derive(DeriveIden)]
enum JoinTokens {
    Table,
    Node,
    UsedMs,
    MaxUses,
    Uses,
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    RejoinUntilMs,
}

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Name,
}

#[derive(DeriveIden)]
enum DatasetGrants {
    Table,
    Org,
    Name,
    ReadWrite,
    CreatedMs,
}

/// The users table as it now is: names unique per organisation.
fn users_table(name: DynIden) -> TableCreateStatement {
    Table::create()
        .table(name)
        .col(text(Users::Id).primary_key())
        .col(text(Users::Name))
        .col(text(Users::Org))
        .col(text(Users::Role))
        .col(big_integer(Users::CreatedMs))
        .foreign_key(
            ForeignKey::create()
                .name("fk_users_org")
                .from(Users::Table, Users::Org)
                .to(Orgs::Table, Orgs::Name),
        )
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared("ALTER TABLE users DROP CONSTRAINT IF EXISTS users_name_key")
                    .await?;
            }
            _ => {
                // SQLite cannot drop a column's UNIQUE: rebuild the table (nothing refers
                // to it by foreign key).
                manager
                    .create_table(users_table(Alias::new("users_v2").into_iden()))
                    .await?;
                db.execute_unprepared(
                    "INSERT INTO users_v2 (id, name, org, role, created_ms) \
                     SELECT id, name, org, role, created_ms FROM users",
                )
                .await?;
                manager
                    .drop_table(Table::drop().table(Users::Table).take())
                    .await?;
                manager
                    .rename_table(
                        Table::rename()
                            .table(Alias::new("users_v2"), Users::Table)
                            .take(),
                    )
                    .await?;
                manager
                    .create_index(
                        Index::create()
                            .name("idx_users_org")
                            .table(Users::Table)
                            .col(Users::Org)
                            .take(),
                    )
                    .await?;
            }
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_users_org_name")
                    .table(Users::Table)
                    .col(Users::Org)
                    .col(Users::Name)
                    .unique()
                    .take(),
            )
            .await?;
        for (table, column) in [
            (JoinTokens::Table.into_iden(), text_null(JoinTokens::Node)),
            (
                JoinTokens::Table.into_iden(),
                big_integer_null(JoinTokens::UsedMs),
            ),
            (
                JoinTokens::Table.into_iden(),
                integer(JoinTokens::MaxUses).default(1).take(),
            ),
            (
                JoinTokens::Table.into_iden(),
                integer(JoinTokens::Uses).default(0).take(),
            ),
            (
                Nodes::Table.into_iden(),
                big_integer_null(Nodes::RejoinUntilMs),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).add_column(column).take())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(DatasetGrants::Table)
                    .col(text(DatasetGrants::Org))
                    .col(text(DatasetGrants::Name))
                    .col(boolean(DatasetGrants::ReadWrite))
                    .col(big_integer(DatasetGrants::CreatedMs))
                    .primary_key(
                        Index::create()
                            .col(DatasetGrants::Org)
                            .col(DatasetGrants::Name),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_dataset_grants_org")
                            .from(DatasetGrants::Table, DatasetGrants::Org)
                            .to(Orgs::Table, Orgs::Name),
                    )
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DatasetGrants::Table).take())
            .await?;
        for (table, column) in [
            (Nodes::Table.into_iden(), Nodes::RejoinUntilMs.into_iden()),
            (JoinTokens::Table.into_iden(), JoinTokens::Uses.into_iden()),
            (
                JoinTokens::Table.into_iden(),
                JoinTokens::MaxUses.into_iden(),
            ),
            (
                JoinTokens::Table.into_iden(),
                JoinTokens::UsedMs.into_iden(),
            ),
            (JoinTokens::Table.into_iden(), JoinTokens::Node.into_iden()),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).take())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_org_name")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        // Names unique across the centre again (fails if two organisations share one).
        manager
            .create_index(
                Index::create()
                    .name("idx_users_name")
                    .table(Users::Table)
                    .col(Users::Name)
                    .unique()
                    .take(),
            )
            .await?;
        Ok(())
    }
}
