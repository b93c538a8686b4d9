//! Storage settings reach every pooled connection.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::*;

/// `SEATBRIDGE_SQLITE_CACHE_KIB` is applied to each SQLite connection (the pool multiplies it,
/// so it bounds memory under load). PostgreSQL has no such setting: nothing to check there.
#[tokio::test]
async fn every_sqlite_connection_gets_the_configured_page_cache() {
    let app = TestApp::spawn_with(|c| {
        c.sqlite_cache_kib = 300;
        c.db_max_connections = 3;
    })
    .await;
    if app.db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    // Three at once, so that the pool has to open more than one connection.
    let reads = (0..3).map(|_| {
        app.db
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA cache_size"))
    });
    for row in futures_util::future::join_all(reads).await {
        let size: i64 = row.unwrap().unwrap().try_get_by_index(0).unwrap();
        assert_eq!(size, -300, "negative means KiB");
    }
}
