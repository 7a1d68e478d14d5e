//! Projects (과제): grants of device-hours per class to an organisation for a period,
//! under a public programme. Bookings, jobs and ledger entries name the project they
//! are charged to; an org says whether work may overflow onto its paid budget; a user
//! may have a default project.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, text, text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Org,
    Title,
    Programme,
    StartMs,
    EndMs,
    Contact,
    State,
    Reason,
    ExpiryWarnedMs,
    CreatedMs,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum ProjectGrants {
    Table,
    ProjectId,
    Class,
    HoursMs,
}

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Name,
    Overage,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    DefaultProject,
}

#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    ProjectId,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    ProjectId,
    ChargeProject,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    ProjectId,
    ChargeProject,
}

/// The nullable columns naming a project (or the charge's project), by table.
fn project_columns() -> [(DynIden, DynIden); 6] {
    [
        (Users::Table.into_iden(), Users::DefaultProject.into_iden()),
        (
            LedgerEntries::Table.into_iden(),
            LedgerEntries::ProjectId.into_iden(),
        ),
        (
            Reservations::Table.into_iden(),
            Reservations::ProjectId.into_iden(),
        ),
        (Jobs::Table.into_iden(), Jobs::ProjectId.into_iden()),
        (
            Reservations::Table.into_iden(),
            Reservations::ChargeProject.into_iden(),
        ),
        (Jobs::Table.into_iden(), Jobs::ChargeProject.into_iden()),
    ]
}

fn index(name: &str, table: impl IntoIden, cols: &[DynIden]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(table);
    for c in cols {
        i.col(c.clone());
    }
    i.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(text(Projects::Id).primary_key())
                    .col(text(Projects::Org))
                    .col(text(Projects::Title))
                    .col(text(Projects::Programme))
                    .col(big_integer(Projects::StartMs))
                    .col(big_integer(Projects::EndMs))
                    .col(text(Projects::Contact))
                    .col(text(Projects::State))
                    .col(text(Projects::Reason).default(""))
                    .col(big_integer_null(Projects::ExpiryWarnedMs))
                    .col(big_integer(Projects::CreatedMs))
                    .col(big_integer(Projects::UpdatedMs))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_projects_org")
                            .from(Projects::Table, Projects::Org)
                            .to(Orgs::Table, Orgs::Name),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_projects_org",
                Projects::Table,
                &[Projects::Org.into_iden()],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProjectGrants::Table)
                    .col(text(ProjectGrants::ProjectId))
                    .col(text(ProjectGrants::Class))
                    .col(big_integer(ProjectGrants::HoursMs))
                    .primary_key(
                        Index::create()
                            .col(ProjectGrants::ProjectId)
                            .col(ProjectGrants::Class),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_project_grants_project")
                            .from(ProjectGrants::Table, ProjectGrants::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orgs::Table)
                    .add_column(text(Orgs::Overage).default("deny"))
                    .take(),
            )
            .await?;
        for (table, column) in project_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(text_null(column))
                        .take(),
                )
                .await?;
        }
        manager
            .create_index(index(
                "idx_ledger_entries_project",
                LedgerEntries::Table,
                &[LedgerEntries::ProjectId.into_iden()],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_ledger_entries_project")
                    .table(LedgerEntries::Table)
                    .to_owned(),
            )
            .await?;
        let overage = (Orgs::Table.into_iden(), Orgs::Overage.into_iden());
        for (table, column) in project_columns().into_iter().chain([overage]) {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).take())
                .await?;
        }
        for table in [
            ProjectGrants::Table.into_iden(),
            Projects::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
