//! Storage: sea-orm entities and repository functions. The only module that writes SQL.
//!
//! Repository functions take a connection so the same code runs on a pool or inside a write
//! transaction: those on provisioning's paths take a [`Reader`] or [`Writer`], which also cover
//! SQLite's point reads and writer connection ([`point_reads`], [`write_tx`]); the rest take
//! sea-orm's `ConnectionTrait`, and run inside [`begin_write`]'s transactions.

pub mod admin;
pub mod audit;
pub mod entities;
pub mod events;
pub mod filter_sql;
pub mod groups;
pub mod listing;
pub mod page_cursors;
mod pg_rows;
pub mod point_reads;
pub mod read_snapshots;
pub mod seat_mappings;
pub mod sql;
pub mod tenants;
pub mod user_counts;
pub mod users;
pub mod write_tx;

pub use point_reads::{PointReads, RawRow, Reader};
pub use write_tx::{Tx, Writer};

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr,
    SqlErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
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
        // PostgreSQL's `statement_timeout` cancels with "canceling statement due to statement
        // timeout" (SQLSTATE 57014): the database is overloaded or the query too costly, not broken.
        if matches!(err, DbErr::ConnectionAcquire(_))
            || connection_lost(&err)
            || text.contains("database is locked")
            || text.contains("statement timeout")
        {
            return StoreError::Unavailable(text);
        }
        StoreError::Db(err)
    }
}

/// Whether `err` says the connection to the database was lost (a restart, a failover, a network
/// fault, a terminated backend): the request did not fail on its own account and may be
/// retried. The pool replaces the connection.
fn connection_lost(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error;
    let (DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return matches!(err, DbErr::Conn(_));
    };
    match &**e {
        Error::Io(_) | Error::Tls(_) | Error::PoolClosed | Error::PoolTimedOut | Error::WorkerCrashed => true,
        // Class 57P, operator intervention: the server is shutting down or not yet accepting
        // connections (57P01 is what every backend's client gets on a restart).
        Error::Database(db) => db.code().is_some_and(|code| code.starts_with("57P")),
        _ => false,
    }
}

/// Database pool settings.
#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    pub max_connections: u32,
    /// How long an SQLite writer waits for the lock before giving up.
    pub busy_timeout: Duration,
    /// SQLite page cache of each connection (the pool's, and each worker thread's point-read
    /// one), in KiB. Every connection keeps its own, so the connections multiply it, while the
    /// kernel's page cache already holds the file once for all of them: a small one halved RSS
    /// under load and cost no throughput (bench/RESULTS.md).
    pub sqlite_cache_kib: u32,
    /// PostgreSQL only: the longest one statement may run (`statement_timeout`; zero: no limit).
    /// A request the client gave up on no longer holds its connection and the server's CPU
    /// until its query ends; the request gets a 503. Migrations run without it.
    pub statement_timeout: Duration,
}

/// The pool size when none is configured: 16 on PostgreSQL. On SQLite the pool serves only
/// what may scan (filters without a key, counts, deep pages, the admin side): reads by key run
/// on each worker thread's own connection and writes on one writer connection. Each pooled
/// connection is a thread of its own, with its own page cache and, under load, its own malloc
/// arena; past two per core they add memory, not throughput (100,000 users, `bench/RESULTS.md`:
/// 16 connections 54–55 MiB after the deep-page scenario, 4 connections 42–43 MiB, at the same
/// or better rates).
pub fn default_pool_size(url: &str) -> u32 {
    if url.starts_with("sqlite:") {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        u32::try_from(cores * 2).unwrap_or(u32::MAX).clamp(4, 16)
    } else {
        16
    }
}

/// Opens a pool. SQLite gets WAL, `synchronous=NORMAL` (durable at checkpoints, safe in WAL), a
/// busy timeout so concurrent writers queue instead of failing, and a per-connection page cache
/// of `sqlite_cache_kib`.
pub async fn connect(settings: &DbSettings) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(settings.url.clone());
    let busy = settings.busy_timeout;
    let cache_kib = settings.sqlite_cache_kib;
    let statement_timeout_ms = settings.statement_timeout.as_millis();
    opts.max_connections(settings.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        // A connection used within the last half second is handed out as it is; one idle for
        // longer is pinged first, as one a restart, proxy or firewall may have dropped
        // (HikariCP's `aliveBypassWindowMs`). Pinging on every acquire, sqlx's default, cost
        // PostgreSQL a round trip per statement: 6 % of the server's CPU on a list page.
        .test_before_acquire_if_idle_for(Duration::from_millis(500))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
                .create_if_missing(true)
                // Negative: KiB rather than pages (https://sqlite.org/pragma.html#pragma_cache_size).
                .pragma("cache_size", format!("-{cache_kib}"))
        })
        .map_sqlx_postgres_opts(move |o| match statement_timeout_ms {
            0 => o,
            ms => o.options([("statement_timeout", format!("{ms}ms"))]),
        });
    Database::connect(opts).await
}

/// Runs a lookup by a unique key (or one known to match at most one row). sea-orm's `one()`
/// binds `LIMIT ?`, which makes SQLite re-prepare the statement on every execution (see
/// [`sql::SqlBuilder::limit`]); a unique key needs no LIMIT.
pub async fn unique<E>(conn: &impl Reader, select: sea_orm::Select<E>) -> Result<Option<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: sea_orm::FromQueryResult + Send + Sync,
    E::ActiveModel: sea_orm::TryIntoModel<E::Model> + Send,
{
    use sea_orm::QueryTrait;
    let stmt = select.build(conn.backend());
    Ok(conn
        .models::<E>(stmt, false)
        .await?
        .into_iter()
        .next()
        .map(|(model, _)| model))
}

/// Inserts a row whose every column is set, and returns it as its model.
pub async fn insert_row<A>(conn: &impl Writer, row: A) -> Result<<A::Entity as sea_orm::EntityTrait>::Model, StoreError>
where
    A: sea_orm::ActiveModelTrait + sea_orm::TryIntoModel<<A::Entity as sea_orm::EntityTrait>::Model> + Clone + Send,
{
    use sea_orm::QueryTrait;
    let stmt = <A::Entity as sea_orm::EntityTrait>::insert(row.clone()).build(conn.backend());
    conn.write(stmt).await?;
    Ok(row.try_into_model()?)
}

/// Writes the changed columns of a row read earlier, and returns the row as it now is.
pub async fn update_row<A>(conn: &impl Writer, row: A) -> Result<<A::Entity as sea_orm::EntityTrait>::Model, StoreError>
where
    A: sea_orm::ActiveModelTrait + sea_orm::TryIntoModel<<A::Entity as sea_orm::EntityTrait>::Model> + Clone + Send,
{
    use sea_orm::QueryTrait;
    let stmt = <A::Entity as sea_orm::EntityTrait>::update(row.clone())
        .validate()?
        .build(conn.backend());
    if conn.write(stmt).await? == 0 {
        return Err(StoreError::Db(DbErr::RecordNotUpdated));
    }
    Ok(row.try_into_model()?)
}

/// The first column of every row of `stmt`, as text (ids, names).
pub async fn strings(conn: &impl Reader, stmt: sea_orm::Statement) -> Result<Vec<String>, StoreError> {
    conn.rows(stmt)
        .await?
        .iter()
        .map(|r| r.get::<String>(0).map_err(StoreError::from))
        .collect()
}

/// Applies pending migrations. A database that is already current is left alone with one read:
/// every CLI command and every start calls this, and sea-orm-migration's own check begins with
/// `CREATE TABLE IF NOT EXISTS`, which PostgreSQL answers with a notice each time.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if migration_state(db).await? == MigrationState::Current {
        return Ok(());
    }
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let unlimited = migration_connection(db).await?;
    let result = Migrator::up(&unlimited, None).await;
    unlimited.close().await.ok();
    result
}

/// PostgreSQL: one connection like `db`'s but without `statement_timeout`, for migrations (an
/// index over millions of rows may take minutes). Opened only when a migration is pending.
pub async fn migration_connection(db: &DatabaseConnection) -> Result<DatabaseConnection, DbErr> {
    let options = (*db.get_postgres_connection_pool().connect_options())
        .clone()
        .options([("statement_timeout", "0")]);
    let pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| DbErr::Custom(format!("could not open a connection for migrations: {e}")))?;
    Ok(sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// How the database's applied migrations compare with the ones this binary knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationState {
    /// Exactly this binary's migrations are applied.
    Current,
    /// Some of this binary's migrations are not applied yet.
    Pending,
    /// The database has migrations this binary does not know (a newer release migrated it).
    Newer(Vec<String>),
}

/// Reads the applied migrations with one plain query. (sea-orm-migration's own check runs
/// `CREATE TABLE IF NOT EXISTS` first, which PostgreSQL logs as a notice on every `/readyz`,
/// and it reports a newer database as an error indistinguishable from an unreachable one.)
pub async fn migration_state(db: &DatabaseConnection) -> Result<MigrationState, DbErr> {
    let applied = match db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await
    {
        Ok(rows) => rows
            .iter()
            .map(|r| r.try_get_by_index::<String>(0))
            .collect::<Result<std::collections::BTreeSet<_>, _>>()?,
        Err(e) => {
            // No table yet means nothing is applied; anything else is the database failing.
            db.ping().await?;
            tracing::debug!(error = %e, "no migration table yet");
            return Ok(MigrationState::Pending);
        }
    };
    let known: std::collections::BTreeSet<String> =
        Migrator::migrations().iter().map(|m| m.name().to_string()).collect();
    let unknown: Vec<String> = applied.difference(&known).cloned().collect();
    Ok(if !unknown.is_empty() {
        MigrationState::Newer(unknown)
    } else if known.is_subset(&applied) {
        MigrationState::Current
    } else {
        MigrationState::Pending
    })
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

/// A resource document as stored: its JSON text. (`Value`'s `to_string` writes through
/// `fmt::Formatter`, a call per token; this writes into the buffer directly.)
pub fn doc_text(doc: &serde_json::Value) -> String {
    serde_json::to_string(doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_pools_follow_the_cores_and_postgres_pools_keep_sixteen() {
        assert_eq!(default_pool_size("postgres://db/seatbridge"), 16);
        let sqlite = default_pool_size("sqlite://seatbridge.db?mode=rwc");
        assert!((4..=16).contains(&sqlite) && sqlite.is_multiple_of(2), "{sqlite}");
    }
}
