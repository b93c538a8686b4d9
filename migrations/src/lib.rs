//! Database migrations for seatbridge. The same migrations run on SQLite and PostgreSQL.
//! Files are named `mYYYYMMDD_NNNNNN_verb_noun.rs` and never edited once landed.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_core_tables;
mod m20261125_000002_seed_plans;
mod m20261125_000003_add_license_state;
mod m20261125_000004_create_events;
mod m20261125_000005_create_admin_tables;
mod m20261125_000006_add_listing_indexes;
mod m20261125_000007_create_user_counts;
mod m20261125_000008_add_waiting_index;
mod m20261127_000009_add_entitlement_epoch;
mod m20261207_000010_index_memberships_by_tenant;

/// Runs every migration in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_core_tables::Migration),
            Box::new(m20261125_000002_seed_plans::Migration),
            Box::new(m20261125_000003_add_license_state::Migration),
            Box::new(m20261125_000004_create_events::Migration),
            Box::new(m20261125_000005_create_admin_tables::Migration),
            Box::new(m20261125_000006_add_listing_indexes::Migration),
            Box::new(m20261125_000007_create_user_counts::Migration),
            Box::new(m20261125_000008_add_waiting_index::Migration),
            Box::new(m20261127_000009_add_entitlement_epoch::Migration),
            Box::new(m20261207_000010_index_memberships_by_tenant::Migration),
        ]
    }
}
