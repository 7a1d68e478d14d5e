//! The initial schema.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, blob, boolean, integer, integer_null, text,
    text_null, text_uniq,
};
use sea_orm_migration::sea_orm::DbBackend;

use crate::{CLAIM_EXCLUSION_CONSTRAINT, CLAIM_OVERLAP_MESSAGE};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sites {
    Table,
    Name,
    Description,
    CreatedMs,
}

#[derive(DeriveIden)]
enum DeviceClasses {
    Table,
    Name,
    Description,
    Vendor,
    CreatedMs,
}

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Name,
    Description,
    CreatedMs,
}

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
enum ApiTokens {
    Table,
    Id,
    UserId,
    Node,
    Hash,
    CreatedMs,
    ExpiresMs,
    Revoked,
}

#[derive(DeriveIden)]
enum JoinTokens {
    Table,
    Id,
    Hash,
    CreatedBy,
    CreatedMs,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Name,
    Site,
    State,
    Hostname,
    AgentVersion,
    Runtime,
    LastHeartbeatMs,
    Generation,
    CreatedMs,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Uuid,
    Node,
    Class,
    Vendor,
    Model,
    MemoryBytes,
    PciBusId,
    DeviceIndex,
    Health,
    HealthReason,
    UpdatedMs,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Id,
    Org,
    UserId,
    UserName,
    Class,
    Count,
    Site,
    StartMs,
    EndMs,
    State,
    Reason,
    Devices,
    CreatedMs,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Name,
    Org,
    UserId,
    UserName,
    Class,
    Count,
    Image,
    Command,
    Env,
    MaxRuntimeMs,
    ReservationId,
    State,
    Reason,
    Node,
    Devices,
    ExitCode,
    CreatedMs,
    StartedMs,
    FinishedMs,
    DeadlineMs,
    Generation,
    Datasets,
    Network,
}

#[derive(DeriveIden)]
enum DeviceClaims {
    Table,
    Id,
    DeviceUuid,
    OwnerKind,
    OwnerId,
    StartMs,
    EndMs,
}

#[derive(DeriveIden)]
enum JobLogs {
    Table,
    JobId,
    Seq,
    Stream,
    Data,
    TimeMs,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Id,
    Org,
    UserId,
    Kind,
    SubjectId,
    Class,
    Devices,
    StartMs,
    EndMs,
    DeviceMs,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TimeMs,
    Actor,
    Action,
    Target,
    Outcome,
}

fn index<T: IntoIden + 'static>(name: &str, table: T, cols: &[DynIden]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col.clone());
    }
    index
}

fn pk_text<T: IntoIden>(col: T) -> ColumnDef {
    text(col).primary_key().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        if backend == DbBackend::Postgres {
            db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS btree_gist")
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Sites::Table)
                    .col(pk_text(Sites::Name))
                    .col(text(Sites::Description))
                    .col(big_integer(Sites::CreatedMs))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeviceClasses::Table)
                    .col(pk_text(DeviceClasses::Name))
                    .col(text(DeviceClasses::Description))
                    .col(text(DeviceClasses::Vendor))
                    .col(big_integer(DeviceClasses::CreatedMs))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Orgs::Table)
                    .col(pk_text(Orgs::Name))
                    .col(text(Orgs::Description))
                    .col(big_integer(Orgs::CreatedMs))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(pk_text(Users::Id))
                    .col(text_uniq(Users::Name))
                    .col(text(Users::Org))
                    .col(text(Users::Role))
                    .col(big_integer(Users::CreatedMs))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_org")
                            .from(Users::Table, Users::Org)
                            .to(Orgs::Table, Orgs::Name),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_users_org",
                Users::Table,
                &[Users::Org.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(pk_text(ApiTokens::Id))
                    .col(text_null(ApiTokens::UserId))
                    .col(text_null(ApiTokens::Node))
                    .col(text(ApiTokens::Hash))
                    .col(big_integer(ApiTokens::CreatedMs))
                    .col(big_integer(ApiTokens::ExpiresMs))
                    .col(boolean(ApiTokens::Revoked))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_api_tokens_expires",
                ApiTokens::Table,
                &[ApiTokens::ExpiresMs.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(JoinTokens::Table)
                    .col(pk_text(JoinTokens::Id))
                    .col(text(JoinTokens::Hash))
                    .col(text(JoinTokens::CreatedBy))
                    .col(big_integer(JoinTokens::CreatedMs))
                    .col(big_integer(JoinTokens::ExpiresMs))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Nodes::Table)
                    .col(pk_text(Nodes::Name))
                    .col(text(Nodes::Site))
                    .col(text(Nodes::State))
                    .col(text(Nodes::Hostname))
                    .col(text(Nodes::AgentVersion))
                    .col(text(Nodes::Runtime))
                    .col(big_integer_null(Nodes::LastHeartbeatMs))
                    .col(big_integer(Nodes::Generation))
                    .col(big_integer(Nodes::CreatedMs))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .col(pk_text(Devices::Uuid))
                    .col(text(Devices::Node))
                    .col(text(Devices::Class))
                    .col(text(Devices::Vendor))
                    .col(text(Devices::Model))
                    .col(big_integer(Devices::MemoryBytes))
                    .col(text(Devices::PciBusId))
                    .col(integer(Devices::DeviceIndex))
                    .col(text(Devices::Health))
                    .col(text(Devices::HealthReason))
                    .col(big_integer(Devices::UpdatedMs))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_devices_node")
                            .from(Devices::Table, Devices::Node)
                            .to(Nodes::Table, Nodes::Name),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_devices_node",
                Devices::Table,
                &[Devices::Node.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .col(pk_text(Reservations::Id))
                    .col(text(Reservations::Org))
                    .col(text(Reservations::UserId))
                    .col(text(Reservations::UserName))
                    .col(text(Reservations::Class))
                    .col(integer(Reservations::Count))
                    .col(text_null(Reservations::Site))
                    .col(big_integer(Reservations::StartMs))
                    .col(big_integer(Reservations::EndMs))
                    .col(text(Reservations::State))
                    .col(text(Reservations::Reason))
                    .col(text(Reservations::Devices))
                    .col(big_integer(Reservations::CreatedMs))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_reservations_state",
                Reservations::Table,
                &[Reservations::State.into_iden()],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_reservations_org_created",
                Reservations::Table,
                &[
                    Reservations::Org.into_iden(),
                    Reservations::CreatedMs.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_reservations_created",
                Reservations::Table,
                &[Reservations::CreatedMs.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(pk_text(Jobs::Id))
                    .col(text(Jobs::Name))
                    .col(text(Jobs::Org))
                    .col(text(Jobs::UserId))
                    .col(text(Jobs::UserName))
                    .col(text(Jobs::Class))
                    .col(integer(Jobs::Count))
                    .col(text(Jobs::Image))
                    .col(text(Jobs::Command))
                    .col(text(Jobs::Env))
                    .col(text(Jobs::Datasets).default("[]"))
                    .col(text(Jobs::Network).default("bridge"))
                    .col(big_integer(Jobs::MaxRuntimeMs))
                    .col(text_null(Jobs::ReservationId))
                    .col(text(Jobs::State))
                    .col(text(Jobs::Reason))
                    .col(text_null(Jobs::Node))
                    .col(text(Jobs::Devices))
                    .col(integer_null(Jobs::ExitCode))
                    .col(big_integer(Jobs::CreatedMs))
                    .col(big_integer_null(Jobs::StartedMs))
                    .col(big_integer_null(Jobs::FinishedMs))
                    .col(big_integer_null(Jobs::DeadlineMs))
                    .col(big_integer(Jobs::Generation))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_jobs_state",
                Jobs::Table,
                &[Jobs::State.into_iden()],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_jobs_org_created",
                Jobs::Table,
                &[Jobs::Org.into_iden(), Jobs::CreatedMs.into_iden()],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_jobs_created",
                Jobs::Table,
                &[Jobs::CreatedMs.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeviceClaims::Table)
                    .col(big_pk_auto(DeviceClaims::Id))
                    .col(text(DeviceClaims::DeviceUuid))
                    .col(text(DeviceClaims::OwnerKind))
                    .col(text(DeviceClaims::OwnerId))
                    .col(big_integer(DeviceClaims::StartMs))
                    .col(big_integer(DeviceClaims::EndMs))
                    .check((
                        Alias::new("device_claims_window"),
                        Expr::col(DeviceClaims::EndMs).gt(Expr::col(DeviceClaims::StartMs)),
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_device_claims_owner",
                DeviceClaims::Table,
                &[DeviceClaims::OwnerId.into_iden()],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_device_claims_device_start",
                DeviceClaims::Table,
                &[
                    DeviceClaims::DeviceUuid.into_iden(),
                    DeviceClaims::StartMs.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_device_claims_end",
                DeviceClaims::Table,
                &[DeviceClaims::EndMs.into_iden()],
            ))
            .await?;
        match backend {
            DbBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "ALTER TABLE device_claims ADD CONSTRAINT {CLAIM_EXCLUSION_CONSTRAINT} \
                     EXCLUDE USING gist (device_uuid WITH =, int8range(start_ms, end_ms) WITH &&)"
                ))
                .await?;
            }
            DbBackend::Sqlite => {
                // Half-open windows [start, end) overlap when each starts before the other
                // ends. Inverted windows are left to the CHECK constraint.
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER device_claims_no_overlap_insert \
                     BEFORE INSERT ON device_claims FOR EACH ROW \
                     WHEN NEW.start_ms < NEW.end_ms AND EXISTS ( \
                       SELECT 1 FROM device_claims c \
                       WHERE c.device_uuid = NEW.device_uuid \
                         AND c.start_ms < NEW.end_ms AND NEW.start_ms < c.end_ms) \
                     BEGIN SELECT RAISE(ABORT, '{CLAIM_OVERLAP_MESSAGE}'); END"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER device_claims_no_overlap_update \
                     BEFORE UPDATE OF device_uuid, start_ms, end_ms ON device_claims FOR EACH ROW \
                     WHEN NEW.start_ms < NEW.end_ms AND EXISTS ( \
                       SELECT 1 FROM device_claims c \
                       WHERE c.id <> OLD.id AND c.device_uuid = NEW.device_uuid \
                         AND c.start_ms < NEW.end_ms AND NEW.start_ms < c.end_ms) \
                     BEGIN SELECT RAISE(ABORT, '{CLAIM_OVERLAP_MESSAGE}'); END"
                ))
                .await?;
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "unsupported database backend {other:?}"
                )));
            }
        }

        manager
            .create_table(
                Table::create()
                    .table(JobLogs::Table)
                    .col(text(JobLogs::JobId))
                    .col(big_integer(JobLogs::Seq))
                    .col(integer(JobLogs::Stream))
                    .col(blob(JobLogs::Data))
                    .col(big_integer(JobLogs::TimeMs))
                    .primary_key(Index::create().col(JobLogs::JobId).col(JobLogs::Seq))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UsageRecords::Table)
                    .col(big_pk_auto(UsageRecords::Id))
                    .col(text(UsageRecords::Org))
                    .col(text(UsageRecords::UserId))
                    .col(text(UsageRecords::Kind))
                    .col(text(UsageRecords::SubjectId))
                    .col(text(UsageRecords::Class))
                    .col(integer(UsageRecords::Devices))
                    .col(big_integer(UsageRecords::StartMs))
                    .col(big_integer(UsageRecords::EndMs))
                    .col(big_integer(UsageRecords::DeviceMs))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_usage_records_start",
                UsageRecords::Table,
                &[UsageRecords::StartMs.into_iden()],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_usage_records_org_start",
                UsageRecords::Table,
                &[
                    UsageRecords::Org.into_iden(),
                    UsageRecords::StartMs.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(big_integer(AuditEvents::TimeMs))
                    .col(text(AuditEvents::Actor))
                    .col(text(AuditEvents::Action))
                    .col(text(AuditEvents::Target))
                    .col(text(AuditEvents::Outcome))
                    .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_audit_events_time",
                AuditEvents::Table,
                &[AuditEvents::TimeMs.into_iden()],
            ))
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents, so foreign keys never block a drop.
        let tables: [DynIden; 14] = [
            AuditEvents::Table.into_iden(),
            UsageRecords::Table.into_iden(),
            JobLogs::Table.into_iden(),
            DeviceClaims::Table.into_iden(),
            Jobs::Table.into_iden(),
            Reservations::Table.into_iden(),
            Devices::Table.into_iden(),
            Nodes::Table.into_iden(),
            JoinTokens::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Users::Table.into_iden(),
            Orgs::Table.into_iden(),
            DeviceClasses::Table.into_iden(),
            Sites::Table.into_iden(),
        ];
        for table in tables {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
