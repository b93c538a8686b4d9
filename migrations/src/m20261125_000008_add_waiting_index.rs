//! A partial index over the users waiting for a seat, in the order they get one.
//!
//! When a seat frees up, the engine hands it to the pool's longest-waiting user. Without this
//! index that lookup read every user of the tenant; with it, it reads the head of the line.
//! The predicate must stay textually the same as in `store::users::oldest_waiting`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_users_waiting ON users \
                 (tenant_id, seat_type, (COALESCE(seat_since, created_at)), id) \
                 WHERE active AND NOT entitled AND entitlement_reason <> 'manual'",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ix_users_waiting")
            .await?;
        Ok(())
    }
}
