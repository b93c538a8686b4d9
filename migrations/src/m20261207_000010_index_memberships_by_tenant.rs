//! Memberships indexed by tenant and member instead of by member alone.
//!
//! A page of a tenant's users in id order is a contiguous range of its user ids, so the groups
//! of the whole page are one range scan of `(tenant_id, member_id)` instead of one index probe
//! per user (100 probes cost PostgreSQL more than the page itself: `bench/RESULTS.md`). Every
//! lookup by member already names the tenant, so the index by member alone goes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("CREATE INDEX ix_group_members_tenant_member ON group_members (tenant_id, member_id)")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_group_members_member")
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("CREATE INDEX ix_group_members_member ON group_members (member_id)")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS ix_group_members_tenant_member")
            .await?;
        Ok(())
    }
}
