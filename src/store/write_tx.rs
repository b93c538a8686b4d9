//! Write transactions: on a pool through sea-orm, or on SQLite through the process's own
//! writer connection, run on the calling thread.
//!
//! A SCIM create is about ten statements between `BEGIN IMMEDIATE` and `COMMIT` (license, seat
//! counter, user, e-mails, outbox event, deliveries, audit head and entry). Through sqlx each one
//! is a round trip to the connection's own thread, and writes to one database are serialized, so
//! those hand-offs are the writer's critical path: under POST load the server used one of two
//! cores, waiting (perf, `bench/RESULTS.md`). Every pool connection also drops its page cache
//! whenever another one wrote. [`DirectWriter`] keeps one `rusqlite` connection for the process's
//! writes and runs each statement where it is asked for; its cache stays valid, as only it writes.
//!
//! The store's write functions take any [`Writer`]: every sea-orm connection and transaction is
//! one, and so is [`Tx`]. Provisioning opens a [`Tx`] with [`begin`]; everything else still
//! writes through the pool.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait, Statement};
use tokio::sync::OwnedMutexGuard;

use super::point_reads::{self, RawRow, Row};
use super::{PointReads, Reader, StoreError};

/// What the store's write functions need of a connection, beside reading: running a statement.
#[async_trait::async_trait]
pub trait Writer: Reader {
    /// Runs `stmt` (a write); returns the number of rows it changed.
    async fn write(&self, stmt: Statement) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl<C: sea_orm::ConnectionTrait> Writer for C {
    async fn write(&self, stmt: Statement) -> Result<u64, StoreError> {
        Ok(self.execute_raw(stmt).await?.rows_affected())
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    /// PostgreSQL, or SQLite in memory: a transaction of the pool.
    Pool(DatabaseTransaction),
    /// SQLite on a file: the writer connection's transaction.
    Direct(DirectTx),
}

/// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite: the write lock is taken up front,
/// so a read-then-write such as a seat check and its insert cannot be overtaken). On an SQLite
/// file it runs on the process's writer connection (see the module comment).
pub async fn begin(db: &DatabaseConnection, reads: &PointReads) -> Result<Tx, StoreError> {
    match reads {
        PointReads::Direct(direct) => Ok(Tx::Direct(direct.writer.begin().await?)),
        PointReads::Pool(_) => Ok(Tx::Pool(super::begin_write(db).await?)),
    }
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Pool(tx) => Ok(tx.commit().await?),
            Tx::Direct(tx) => tx.finish("COMMIT"),
        }
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Pool(tx) => Ok(tx.rollback().await?),
            Tx::Direct(tx) => tx.finish("ROLLBACK"),
        }
    }
}

#[async_trait::async_trait]
impl Reader for Tx {
    fn backend(&self) -> DbBackend {
        match self {
            Tx::Pool(tx) => tx.backend(),
            Tx::Direct(_) => DbBackend::Sqlite,
        }
    }

    async fn models<E>(&self, stmt: Statement, extra: bool) -> Result<Vec<Row<E::Model>>, DbErr>
    where
        E: EntityTrait,
        E::Model: sea_orm::FromQueryResult + Send + Sync,
        E::ActiveModel: sea_orm::TryIntoModel<E::Model> + Send,
    {
        match self {
            Tx::Pool(tx) => tx.models::<E>(stmt, extra).await,
            Tx::Direct(tx) => tx.run(|c| point_reads::models::<E>(c, &stmt, extra)).map_err(db_err),
        }
    }

    async fn count(&self, stmt: Statement) -> Result<i64, DbErr> {
        match self {
            Tx::Pool(tx) => tx.count(stmt).await,
            Tx::Direct(tx) => tx.run(|c| point_reads::count(c, &stmt)).map_err(db_err),
        }
    }

    async fn rows(&self, stmt: Statement) -> Result<Vec<RawRow>, DbErr> {
        match self {
            Tx::Pool(tx) => tx.rows(stmt).await,
            Tx::Direct(tx) => tx.run(|c| point_reads::raw_rows(c, &stmt)).map_err(db_err),
        }
    }
}

#[async_trait::async_trait]
impl Writer for Tx {
    async fn write(&self, stmt: Statement) -> Result<u64, StoreError> {
        match self {
            Tx::Pool(tx) => tx.write(stmt).await,
            Tx::Direct(tx) => tx
                .run(|c| {
                    let mut prepared = c.prepare_cached(&stmt.sql)?;
                    prepared.execute(rusqlite::params_from_iter(point_reads::params(&stmt)?))
                })
                .map(|n| n as u64)
                .map_err(store_err),
        }
    }
}

/// Prepared statements kept by the writer connection: writes build a few dozen distinct texts.
const WRITER_STATEMENT_CACHE: usize = 128;

/// The longest pause between two tries to take a write lock held by another connection.
const MAX_BUSY_PAUSE: Duration = Duration::from_millis(20);

/// The process's SQLite writer connection, opened on first use. Its lock is held for a whole
/// transaction, so it also queues the process's writers.
#[derive(Debug, Clone)]
pub struct DirectWriter {
    path: std::path::PathBuf,
    /// How long a writer waits for another connection's write lock before giving up (503).
    busy_timeout: Duration,
    cache_kib: u32,
    conn: Arc<tokio::sync::Mutex<Option<rusqlite::Connection>>>,
}

impl DirectWriter {
    pub(super) fn new(path: std::path::PathBuf, busy_timeout: Duration, cache_kib: u32) -> Self {
        DirectWriter {
            path,
            busy_timeout,
            cache_kib,
            conn: Arc::default(),
        }
    }

    /// Waits for the writer connection, then takes SQLite's write lock. While another
    /// connection (the pool, another process) holds that lock, the wait is a timer, not
    /// SQLite's busy handler: the handler would sleep on the calling worker thread and stall
    /// every request on it.
    async fn begin(&self) -> Result<DirectTx, StoreError> {
        let mut guard = self.conn.clone().lock_owned().await;
        if guard.is_none() {
            *guard = Some(self.open().map_err(store_err)?);
        }
        let deadline = Instant::now() + self.busy_timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let begun = match guard.as_ref() {
                Some(conn) => conn.execute_batch("BEGIN IMMEDIATE"),
                None => Err(rusqlite::Error::InvalidQuery),
            };
            match begun {
                Ok(()) => {
                    return Ok(DirectTx {
                        conn: Mutex::new(guard),
                        open: true,
                    })
                }
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BUSY_PAUSE);
                }
                Err(e) => return Err(store_err(e)),
            }
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The same settings as the pool's connections (`store::connect`), but no busy timeout
        // (rusqlite's default is 5 s): `begin` waits for the lock itself.
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", format!("-{}", self.cache_kib))?;
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
        Ok(conn)
    }
}

/// A transaction on the [`DirectWriter`]'s connection. Its statements run on the calling
/// thread; the std mutex is never contended (the connection's own lock is held), it only makes
/// the transaction shareable across an `await`.
pub struct DirectTx {
    conn: Mutex<OwnedMutexGuard<Option<rusqlite::Connection>>>,
    open: bool,
}

impl DirectTx {
    fn run<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(conn) => f(conn),
            None => Err(rusqlite::Error::InvalidQuery),
        }
    }

    fn finish(mut self, verb: &str) -> Result<(), StoreError> {
        self.open = false;
        let result = self.run(|c| c.execute_batch(verb)).map_err(store_err);
        if result.is_err() {
            // A failed COMMIT leaves the transaction open in SQLite: end it before the
            // connection serves the next writer.
            let _ = self.run(|c| {
                if c.is_autocommit() {
                    Ok(())
                } else {
                    c.execute_batch("ROLLBACK")
                }
            });
        }
        result
    }
}

impl Drop for DirectTx {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.run(|c| c.execute_batch("ROLLBACK")) {
                tracing::warn!(error = %e, "rollback of an abandoned write failed");
            }
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// SQLite's error as the store's: a unique index refusing, a lock held too long, or a failure.
fn store_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        if matches!(
            f.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        ) {
            return StoreError::UniqueViolation(msg.clone().unwrap_or_else(|| e.to_string()));
        }
    }
    if is_busy(&e) {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Db(db_err(e))
}

fn db_err(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("sqlite write: {e}"))
}
