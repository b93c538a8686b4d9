//! License state on users (the `entitled` verdict, its reason and seat type), license models
//! (usage caps), group→seat-type mappings, and the hash-chained audit log.
//!
//! Users that exist when this runs keep access: `entitled` starts equal to `active`; the license
//! engine then brings each tenant in line with its license.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    TenantId,
    Active,
    Entitled,
    SeatType,
    EntitlementReason,
    EntitlementUpdated,
    SeatSince,
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    UsageCap,
    UsagePeriod,
}

#[derive(DeriveIden)]
enum SeatTypeMappings {
    Table,
    TenantId,
    GroupId,
    SeatType,
    Priority,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UsageCounters {
    Table,
    TenantId,
    Period,
    Operations,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    TenantId,
    Seq,
    At,
    Actor,
    Action,
    Target,
    Before,
    After,
    RequestId,
    PrevHash,
    Hash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one ADD COLUMN per ALTER TABLE.
        for col in [
            boolean(Users::Entitled).default(false).to_owned(),
            string(Users::SeatType).default("default").to_owned(),
            string(Users::EntitlementReason).default("inactive").to_owned(),
            timestamp_with_time_zone_null(Users::EntitlementUpdated),
            timestamp_with_time_zone_null(Users::SeatSince),
        ] {
            let mut col = col;
            m.alter_table(Table::alter().table(Users::Table).add_column(&mut col).to_owned())
                .await?;
        }
        m.exec_stmt(
            Query::update()
                .table(Users::Table)
                .value(Users::Entitled, Expr::col(Users::Active))
                .value(
                    Users::EntitlementReason,
                    Expr::case(Expr::col(Users::Active).eq(true), "seat_assigned").finally("inactive"),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_users_tenant_seat")
                .table(Users::Table)
                .col(Users::TenantId)
                .col(Users::SeatType)
                .col(Users::Entitled)
                .to_owned(),
        )
        .await?;

        for col in [big_integer_null(Licenses::UsageCap), string_null(Licenses::UsagePeriod)] {
            let mut col = col;
            m.alter_table(Table::alter().table(Licenses::Table).add_column(&mut col).to_owned())
                .await?;
        }

        m.create_table(
            Table::create()
                .table(SeatTypeMappings::Table)
                .col(string(SeatTypeMappings::TenantId))
                .col(string(SeatTypeMappings::GroupId))
                .col(string(SeatTypeMappings::SeatType))
                .col(integer(SeatTypeMappings::Priority))
                .col(timestamp_with_time_zone(SeatTypeMappings::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(SeatTypeMappings::TenantId)
                        .col(SeatTypeMappings::GroupId),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(UsageCounters::Table)
                .col(string(UsageCounters::TenantId))
                .col(string(UsageCounters::Period))
                .col(big_integer(UsageCounters::Operations))
                .primary_key(Index::create().col(UsageCounters::TenantId).col(UsageCounters::Period))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(string(AuditLog::TenantId))
                .col(big_integer(AuditLog::Seq))
                .col(timestamp_with_time_zone(AuditLog::At))
                .col(string(AuditLog::Actor))
                .col(string(AuditLog::Action))
                .col(string(AuditLog::Target))
                .col(text_null(AuditLog::Before))
                .col(text_null(AuditLog::After))
                .col(string_null(AuditLog::RequestId))
                .col(string(AuditLog::PrevHash))
                .col(string(AuditLog::Hash))
                .primary_key(Index::create().col(AuditLog::TenantId).col(AuditLog::Seq))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_audit_log_tenant_at")
                .table(AuditLog::Table)
                .col(AuditLog::TenantId)
                .col(AuditLog::At)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            UsageCounters::Table.into_iden(),
            SeatTypeMappings::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        m.drop_index(
            Index::drop()
                .name("ix_users_tenant_seat")
                .table(Users::Table)
                .to_owned(),
        )
        .await?;
        for col in [
            Users::Entitled,
            Users::SeatType,
            Users::EntitlementReason,
            Users::EntitlementUpdated,
            Users::SeatSince,
        ] {
            m.alter_table(Table::alter().table(Users::Table).drop_column(col).to_owned())
                .await?;
        }
        for col in [Licenses::UsageCap, Licenses::UsagePeriod] {
            m.alter_table(Table::alter().table(Licenses::Table).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}
