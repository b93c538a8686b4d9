//! Tenants, plans, licenses, SCIM tokens, users (with an email index table), groups and
//! group memberships.
//!
//! Resources are stored as a canonical JSON document (`doc`) plus the columns that filters,
//! sorting and uniqueness need (`*_norm` hold lower-cased values for case-insensitive lookups).
//! Group members live in their own table so one membership change touches one row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Slug,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Plans {
    Table,
    Name,
    Features,
    SeatsDefault,
    SeatPools,
    GraceDays,
    Overage,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Licenses {
    Table,
    TenantId,
    PlanName,
    Seats,
    StartsAt,
    ExpiresAt,
    Status,
    Policy,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScimTokens {
    Table,
    Id,
    TenantId,
    Name,
    TokenHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TenantId,
    UserName,
    UserNameNorm,
    ExternalId,
    DisplayName,
    DisplayNameNorm,
    Active,
    Doc,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserEmails {
    Table,
    UserId,
    Position,
    TenantId,
    ValueNorm,
    Kind,
    IsPrimary,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
    TenantId,
    DisplayName,
    DisplayNameNorm,
    ExternalId,
    Doc,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum GroupMembers {
    Table,
    GroupId,
    MemberId,
    TenantId,
    MemberType,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .col(string(Tenants::Id).primary_key())
                .col(string_uniq(Tenants::Slug))
                .col(string(Tenants::Name))
                .col(timestamp_with_time_zone(Tenants::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Plans::Table)
                .col(string(Plans::Name).primary_key())
                .col(text(Plans::Features))
                .col(big_integer(Plans::SeatsDefault))
                .col(text(Plans::SeatPools))
                .col(integer(Plans::GraceDays))
                .col(double(Plans::Overage))
                .col(timestamp_with_time_zone(Plans::CreatedAt))
                .col(timestamp_with_time_zone(Plans::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Licenses::Table)
                .col(string(Licenses::TenantId).primary_key())
                .col(string(Licenses::PlanName))
                .col(big_integer(Licenses::Seats))
                .col(timestamp_with_time_zone(Licenses::StartsAt))
                .col(timestamp_with_time_zone_null(Licenses::ExpiresAt))
                .col(string(Licenses::Status))
                .col(string(Licenses::Policy))
                .col(big_integer(Licenses::Version))
                .col(timestamp_with_time_zone(Licenses::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Licenses::Table, Licenses::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Licenses::Table, Licenses::PlanName)
                        .to(Plans::Table, Plans::Name),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ScimTokens::Table)
                .col(string(ScimTokens::Id).primary_key())
                .col(string(ScimTokens::TenantId))
                .col(string(ScimTokens::Name))
                .col(string_uniq(ScimTokens::TokenHash))
                .col(timestamp_with_time_zone(ScimTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ScimTokens::LastUsedAt))
                .col(timestamp_with_time_zone_null(ScimTokens::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ScimTokens::Table, ScimTokens::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(string(Users::Id).primary_key())
                .col(string(Users::TenantId))
                .col(string(Users::UserName))
                .col(string(Users::UserNameNorm))
                .col(string_null(Users::ExternalId))
                .col(string_null(Users::DisplayName))
                .col(string_null(Users::DisplayNameNorm))
                .col(boolean(Users::Active))
                .col(text(Users::Doc))
                .col(big_integer(Users::Version))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone(Users::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Users::Table, Users::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_users_tenant_user_name",
            Users::Table,
            [Users::TenantId, Users::UserNameNorm],
            true,
        )
        .await?;
        index(
            m,
            "ix_users_tenant_external_id",
            Users::Table,
            [Users::TenantId, Users::ExternalId],
            false,
        )
        .await?;
        index(
            m,
            "ix_users_tenant_display_name",
            Users::Table,
            [Users::TenantId, Users::DisplayNameNorm],
            false,
        )
        .await?;
        index(
            m,
            "ix_users_tenant_created",
            Users::Table,
            [Users::TenantId, Users::CreatedAt],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(UserEmails::Table)
                .col(string(UserEmails::UserId))
                .col(integer(UserEmails::Position))
                .col(string(UserEmails::TenantId))
                .col(string(UserEmails::ValueNorm))
                .col(string_null(UserEmails::Kind))
                .col(boolean(UserEmails::IsPrimary))
                .primary_key(Index::create().col(UserEmails::UserId).col(UserEmails::Position))
                .foreign_key(
                    ForeignKey::create()
                        .from(UserEmails::Table, UserEmails::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_user_emails_tenant_value",
            UserEmails::Table,
            [UserEmails::TenantId, UserEmails::ValueNorm],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Groups::Table)
                .col(string(Groups::Id).primary_key())
                .col(string(Groups::TenantId))
                .col(string(Groups::DisplayName))
                .col(string(Groups::DisplayNameNorm))
                .col(string_null(Groups::ExternalId))
                .col(text(Groups::Doc))
                .col(big_integer(Groups::Version))
                .col(timestamp_with_time_zone(Groups::CreatedAt))
                .col(timestamp_with_time_zone(Groups::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Groups::Table, Groups::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_groups_tenant_display_name",
            Groups::Table,
            [Groups::TenantId, Groups::DisplayNameNorm],
            false,
        )
        .await?;
        index(
            m,
            "ix_groups_tenant_external_id",
            Groups::Table,
            [Groups::TenantId, Groups::ExternalId],
            false,
        )
        .await?;
        index(
            m,
            "ix_groups_tenant_created",
            Groups::Table,
            [Groups::TenantId, Groups::CreatedAt],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(GroupMembers::Table)
                .col(string(GroupMembers::GroupId))
                .col(string(GroupMembers::MemberId))
                .col(string(GroupMembers::TenantId))
                .col(string(GroupMembers::MemberType))
                .col(timestamp_with_time_zone(GroupMembers::CreatedAt))
                .primary_key(Index::create().col(GroupMembers::GroupId).col(GroupMembers::MemberId))
                .foreign_key(
                    ForeignKey::create()
                        .from(GroupMembers::Table, GroupMembers::GroupId)
                        .to(Groups::Table, Groups::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_group_members_member",
            GroupMembers::Table,
            [GroupMembers::MemberId],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            GroupMembers::Table.into_iden(),
            Groups::Table.into_iden(),
            UserEmails::Table.into_iden(),
            Users::Table.into_iden(),
            ScimTokens::Table.into_iden(),
            Licenses::Table.into_iden(),
            Plans::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

async fn index<T, C, const N: usize>(
    m: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: [C; N],
    unique: bool,
) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
    C: IntoIden + 'static,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for c in cols {
        stmt.col(c);
    }
    if unique {
        stmt.unique();
    }
    m.create_index(stmt).await
}
