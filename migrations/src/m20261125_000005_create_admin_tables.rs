//! The admin side: role grants kept in the database (beside those from the ID-token claim),
//! daily and on-change seat-usage snapshots for the dashboard chart, and the last client seen
//! on each SCIM token (which IdP pushes to a tenant).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AdminGrants {
    Table,
    Id,
    Principal,
    Role,
    TenantId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum SeatSnapshots {
    Table,
    TenantId,
    Day,
    SeatType,
    InUse,
    Waiting,
    SeatLimit,
    At,
}

#[derive(DeriveIden)]
enum ScimTokens {
    Table,
    LastUserAgent,
    LastIdp,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AdminGrants::Table)
                .col(string(AdminGrants::Id).primary_key())
                // An e-mail address or an OIDC `sub`, lower-cased.
                .col(string(AdminGrants::Principal))
                .col(string(AdminGrants::Role))
                .col(string_null(AdminGrants::TenantId))
                .col(timestamp_with_time_zone(AdminGrants::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_admin_grants_principal")
                .table(AdminGrants::Table)
                .col(AdminGrants::Principal)
                .to_owned(),
        )
        .await?;
        // One row per tenant, day and pool: the day's latest numbers (rewritten on change).
        m.create_table(
            Table::create()
                .table(SeatSnapshots::Table)
                .col(string(SeatSnapshots::TenantId))
                .col(string(SeatSnapshots::Day))
                .col(string(SeatSnapshots::SeatType))
                .col(big_integer(SeatSnapshots::InUse))
                .col(big_integer(SeatSnapshots::Waiting))
                .col(big_integer_null(SeatSnapshots::SeatLimit))
                .col(timestamp_with_time_zone(SeatSnapshots::At))
                .primary_key(
                    Index::create()
                        .col(SeatSnapshots::TenantId)
                        .col(SeatSnapshots::Day)
                        .col(SeatSnapshots::SeatType),
                )
                .to_owned(),
        )
        .await?;
        for col in [string_null(ScimTokens::LastUserAgent), string_null(ScimTokens::LastIdp)] {
            m.alter_table(Table::alter().table(ScimTokens::Table).add_column(col).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [ScimTokens::LastUserAgent, ScimTokens::LastIdp] {
            m.alter_table(Table::alter().table(ScimTokens::Table).drop_column(col).to_owned())
                .await?;
        }
        m.drop_table(Table::drop().table(SeatSnapshots::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(AdminGrants::Table).to_owned()).await
    }
}
