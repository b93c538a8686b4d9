//! Storage: sea-orm entities and repository functions. The only module that writes SQL.
//!
//! Repository functions take `&impl ConnectionTrait` so the same code runs on a pool or inside
//! the write transaction opened by [`begin_write`].

pub mod admin;
pub mod audit;
pub mod entities;
pub mod events;
pub mod filter_sql;
pub mod groups;
pub mod listing;
pub mod seat_mappings;
pub mod sql;
pub mod tenants;
pub mod user_counts;
pub mod users;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqlErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use migration::{Migrator, MigratorTrait};

/// A storage failure, classified so callers can answer with the right status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique index refused the write (e.g. a userName taken within the tenant).
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),
    /// The database is busy or unreachable; the request may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken database. Logged, never shown to clients.
    #[error(transparent)]
    Db(DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(msg)) = err.sql_err() {
            return StoreError::UniqueViolation(msg);
        }
        let text = err.to_string();
        if matches!(err, DbErr::ConnectionAcquire(_)) || text.contains("database is locked") {
            return StoreError::Unavailable(text);
        }
        StoreError::Db(err)
    }
}

/// Database pool settings.
#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    pub max_connections: u32,
    /// How long an SQLite writer waits for the lock before giving up.
    pub busy_timeout: Duration,
}

/// Opens a pool. SQLite gets WAL, `synchronous=NORMAL` (durable at checkpoints, safe in WAL) and
/// a busy timeout so concurrent writers queue instead of failing.
pub async fn connect(settings: &DbSettings) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(settings.url.clone());
    let busy = settings.busy_timeout;
    opts.max_connections(settings.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
                .create_if_missing(true)
        });
    Database::connect(opts).await
}

/// Runs a lookup by a unique key (or one known to match at most one row). sea-orm's `one()`
/// binds `LIMIT ?`, which makes SQLite re-prepare the statement on every execution (see
/// [`sql::SqlBuilder::limit`]); a unique key needs no LIMIT.
pub async fn unique<E: sea_orm::EntityTrait>(
    conn: &impl ConnectionTrait,
    select: sea_orm::Select<E>,
) -> Result<Option<E::Model>, DbErr> {
    Ok(select.all(conn).await?.into_iter().next())
}

/// Applies pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// True when every migration known to this binary has been applied.
pub async fn migrations_current(db: &DatabaseConnection) -> Result<bool, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.is_empty())
}

/// Begins the transaction every state-changing request runs in. On SQLite it is
/// `BEGIN IMMEDIATE`: the write lock is taken up front, so a read-then-write (such as a seat
/// check followed by an insert) can never be invalidated by a concurrent writer.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let options = TransactionOptions {
        sqlite_transaction_mode: (db.get_database_backend() == DbBackend::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
        ..Default::default()
    };
    db.begin_with_options(options).await
}

/// Current time truncated to milliseconds, the precision SCIM `meta` timestamps carry, so a
/// value read back compares equal to the one written.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let t = chrono::Utc::now();
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
