//! A counter per tenant that every change of its entitlements other than a SCIM write bumps
//! (license, plan, seat mapping, hold, tokens).
//!
//! Entitlement checks keep every user of a tenant in memory and follow this process's own SCIM
//! writes. Another process's changes reach them through PostgreSQL `NOTIFY`; on SQLite there is
//! none, and the CLI changes licenses from a process of its own. The check compares this counter
//! when it re-reads the tenant (every TTL) and starts over when it moved.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    EntitlementEpoch,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(
                    ColumnDef::new(Tenants::EntitlementEpoch)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .drop_column(Tenants::EntitlementEpoch)
                .to_owned(),
        )
        .await
    }
}
