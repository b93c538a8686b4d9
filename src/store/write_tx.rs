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
//! Writes that queue behind one share its commit (group commit, see [`DirectWriter`]).
//!
//! The store's write functions take any [`Writer`]: every sea-orm connection and transaction is
//! one, and so is [`Tx`]. Provisioning opens a [`Tx`] with [`begin`]; everything else still
//! writes through the pool.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
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

    /// Notes that this write changes the user with this id (see [`Tx::touched_users`]).
    fn touched(&self, _user_id: &str) {}
}

#[async_trait::async_trait]
impl<C: sea_orm::ConnectionTrait> Writer for C {
    async fn write(&self, stmt: Statement) -> Result<u64, StoreError> {
        Ok(self.execute_raw(stmt).await?.rows_affected())
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    kind: TxKind,
    /// The users this transaction wrote, for the entitlement index to re-read once it commits.
    touched: Mutex<Vec<String>>,
    /// Statements run through [`Writer::write`] so far.
    writes: AtomicUsize,
}

enum TxKind {
    /// PostgreSQL, or SQLite in memory: a transaction of the pool.
    Pool(DatabaseTransaction),
    /// SQLite on a file: one write, in its own savepoint of the writer connection's
    /// transaction (which may carry other writes: group commit).
    Direct(DirectTx),
}

/// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite: the write lock is taken up front,
/// so a read-then-write such as a seat check and its insert cannot be overtaken). On an SQLite
/// file it runs on the process's writer connection (see the module comment).
pub async fn begin(db: &DatabaseConnection, reads: &PointReads) -> Result<Tx, StoreError> {
    let kind = match reads {
        PointReads::Direct(direct) => TxKind::Direct(direct.writer.begin().await?),
        PointReads::Pool(_) => TxKind::Pool(super::begin_write(db).await?),
    };
    Ok(Tx {
        kind,
        touched: Mutex::default(),
        writes: AtomicUsize::new(0),
    })
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.kind {
            TxKind::Pool(tx) => Ok(tx.commit().await?),
            TxKind::Direct(tx) => tx.commit().await,
        }
    }

    /// Whether this write runs on the SQLite writer connection (not a pool's transaction).
    pub fn is_direct(&self) -> bool {
        matches!(self.kind, TxKind::Direct(_))
    }

    /// A count that grows with every statement run through [`Writer::write`] and every user
    /// written (a create's row may be held back): a batch asks whether a failed write changed
    /// anything before it failed. Every store function that changes rows writes through
    /// [`Writer::write`].
    pub fn changes(&self) -> usize {
        self.writes.load(Ordering::Relaxed) + self.touched.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Has this transaction written the user `id` (since [`Tx::touched_users`] last took them)?
    pub fn was_touched(&self, id: &str) -> bool {
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|t| t == id)
    }

    /// The ids of the users written so far (each once), taken: what the entitlement index must
    /// re-read after the commit.
    pub fn touched_users(&self) -> Vec<String> {
        let mut ids = std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Rolls the transaction back.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.kind {
            TxKind::Pool(tx) => Ok(tx.rollback().await?),
            // Dropping a direct write rolls it back to its savepoint (see `DirectTx`).
            TxKind::Direct(tx) => {
                drop(tx);
                Ok(())
            }
        }
    }
}

#[async_trait::async_trait]
impl Reader for Tx {
    fn backend(&self) -> DbBackend {
        match &self.kind {
            TxKind::Pool(tx) => tx.backend(),
            TxKind::Direct(_) => DbBackend::Sqlite,
        }
    }

    async fn models<E>(&self, stmt: Statement, extra: bool) -> Result<Vec<Row<E::Model>>, DbErr>
    where
        E: EntityTrait,
        E::Model: sea_orm::FromQueryResult + Send + Sync,
        E::ActiveModel: sea_orm::TryIntoModel<E::Model> + Send,
    {
        match &self.kind {
            TxKind::Pool(tx) => tx.models::<E>(stmt, extra).await,
            TxKind::Direct(tx) => tx.run(|c| point_reads::models::<E>(c, &stmt, extra)).map_err(db_err),
        }
    }

    async fn count(&self, stmt: Statement) -> Result<i64, DbErr> {
        match &self.kind {
            TxKind::Pool(tx) => tx.count(stmt).await,
            TxKind::Direct(tx) => tx.run(|c| point_reads::count(c, &stmt)).map_err(db_err),
        }
    }

    async fn rows(&self, stmt: Statement) -> Result<Vec<RawRow>, DbErr> {
        match &self.kind {
            TxKind::Pool(tx) => tx.rows(stmt).await,
            TxKind::Direct(tx) => tx.run(|c| point_reads::raw_rows(c, &stmt)).map_err(db_err),
        }
    }
}

#[async_trait::async_trait]
impl Writer for Tx {
    async fn write(&self, stmt: Statement) -> Result<u64, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        match &self.kind {
            TxKind::Pool(tx) => tx.write(stmt).await,
            TxKind::Direct(tx) => tx
                .run(|c| {
                    let mut prepared = c.prepare_cached(&stmt.sql)?;
                    prepared.execute(rusqlite::params_from_iter(point_reads::params(&stmt)?))
                })
                .map(|n| n as u64)
                .map_err(store_err),
        }
    }

    fn touched(&self, user_id: &str) {
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(user_id.to_string());
    }
}

/// Prepared statements kept by the writer connection: writes build a few dozen distinct texts.
const WRITER_STATEMENT_CACHE: usize = 128;

/// The longest pause between two tries to take a write lock held by another connection.
const MAX_BUSY_PAUSE: Duration = Duration::from_millis(20);

/// The most writes one commit carries (see [`DirectWriter`]): bounds how long the first of them
/// waits for its answer.
const MAX_BATCH: usize = 64;

/// The process's SQLite writer connection, opened on first use. Its lock is held for a write,
/// so it also queues the process's writers.
///
/// **Group commit.** Each write runs inside a savepoint of a transaction that may carry several
/// writes. When a write ends and nobody waits for the connection, it commits at once. When
/// writers wait, it leaves the transaction open for them and queues again behind them: by its
/// next turn, they have added their writes, and one `COMMIT` makes them all durable (the others
/// that left it open are told, and leave the queue). Each
/// write's answer waits for that commit, so nothing is acknowledged before it is on disk, and a
/// failed commit fails every write it carried. A write that fails rolls back to its own
/// savepoint and leaves the others alone. A commit writes each changed page once, where one
/// commit per write wrote the same B-tree pages over and over.
#[derive(Debug, Clone)]
pub struct DirectWriter {
    path: std::path::PathBuf,
    /// How long a writer waits for another connection's write lock before giving up (503).
    busy_timeout: Duration,
    cache_kib: u32,
    state: Arc<tokio::sync::Mutex<WriterState>>,
    /// Writers queued for `state`.
    waiting: Arc<AtomicUsize>,
    /// Writes, commits and background checkpoints so far (writes per commit show how well
    /// batching works).
    counts: Arc<[AtomicU64; 3]>,
    /// Wakes the background checkpointer (see [`spawn_checkpointer`]); started on first use.
    checkpointer: Arc<OnceLock<Option<SyncSender<()>>>>,
}

/// Counts of a [`DirectWriter`]'s work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteCounts {
    /// Writes committed.
    pub writes: u64,
    /// Commits made (each carries one or more writes).
    pub commits: u64,
    /// Background WAL checkpoints run.
    pub checkpoints: u64,
}

/// The writer connection and the transaction open on it.
#[derive(Debug, Default)]
struct WriterState {
    conn: Option<rusqlite::Connection>,
    /// The open transaction, if any, and how many finished writes it carries.
    batch: Option<Arc<Batch>>,
    members: usize,
}

/// The writes one transaction carries: how its commit ended, once it has.
#[derive(Debug, Default)]
struct Batch {
    outcome: OnceLock<Result<(), Failure>>,
    /// Told when `outcome` is set.
    done: tokio::sync::Notify,
}

/// Why a batch did not commit (kept as text: every write of the batch gets a copy).
#[derive(Debug, Clone)]
struct Failure {
    unavailable: bool,
    message: String,
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        if f.unavailable {
            StoreError::Unavailable(f.message)
        } else {
            StoreError::Db(DbErr::Custom(f.message))
        }
    }
}

impl DirectWriter {
    pub(super) fn new(path: std::path::PathBuf, busy_timeout: Duration, cache_kib: u32) -> Self {
        DirectWriter {
            path,
            busy_timeout,
            cache_kib,
            state: Arc::default(),
            waiting: Arc::default(),
            counts: Arc::default(),
            checkpointer: Arc::default(),
        }
    }

    /// Asks the background checkpointer to copy the WAL's committed frames into the database
    /// (after a commit; and from readers that found frames left to copy, such as the pool's
    /// commits leave). Never waits: a wake-up already pending covers this one too.
    pub(super) fn wake_checkpointer(&self) {
        let wake = self.checkpointer.get_or_init(|| {
            spawn_checkpointer(self.path.clone(), self.counts.clone(), Arc::downgrade(&self.state))
                .map_err(|e| tracing::warn!(error = %e, "no background checkpointer; the writer checkpoints"))
                .ok()
        });
        if let Some(wake) = wake {
            let _ = wake.try_send(());
        }
    }

    /// What this process's writer has done so far.
    pub fn counts(&self) -> WriteCounts {
        let get = |i: usize| self.counts[i].load(Ordering::Relaxed);
        WriteCounts {
            writes: get(0),
            commits: get(1),
            checkpoints: get(2),
        }
    }

    /// Waits for the writer connection (counted in `waiting` while it waits).
    async fn lock(&self) -> OwnedMutexGuard<WriterState> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.state.clone().lock_owned().await
    }

    /// Waits for the writer connection, joins the open transaction or begins one, and opens
    /// this write's savepoint. While another connection (the pool, another process) holds
    /// SQLite's write lock, the wait is a timer, not SQLite's busy handler: the handler would
    /// sleep on the calling worker thread and stall every request on it.
    async fn begin(&self) -> Result<DirectTx, StoreError> {
        let mut state = self.lock().await;
        if state.conn.is_none() {
            state.conn = Some(self.open().map_err(store_err)?);
        }
        if state.batch.is_none() {
            self.begin_immediate(&state).await?;
            state.batch = Some(Arc::default());
            state.members = 0;
        }
        if let Err(e) = execute(&state, "SAVEPOINT write") {
            if state.members == 0 {
                end_batch(&mut state);
            }
            return Err(store_err(e));
        }
        Ok(DirectTx {
            state: Mutex::new(Some(state)),
            writer: self.clone(),
        })
    }

    async fn begin_immediate(&self, state: &WriterState) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.busy_timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match execute(state, "BEGIN IMMEDIATE") {
                Ok(()) => return Ok(()),
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BUSY_PAUSE);
                }
                Err(e) => return Err(store_err(e)),
            }
        }
    }

    /// Waits for `batch` to end: commits it if it is still open when this writer's turn
    /// comes again. A writer whose batch another one committed meanwhile leaves the queue
    /// without taking the connection: a turn taken only to read the outcome delayed every
    /// writer queued behind it, once per write of the batch.
    async fn settle(&self, batch: &Arc<Batch>) -> Result<(), StoreError> {
        let done = batch.done.notified();
        tokio::pin!(done);
        // Registered before the outcome is checked, so that a commit in between is not missed.
        done.as_mut().enable();
        if batch.outcome.get().is_none() {
            tokio::select! {
                biased;
                () = &mut done => {}
                mut state = self.lock() => {
                    if state.batch.as_ref().is_some_and(|open| Arc::ptr_eq(open, batch)) {
                        return commit_batch(&mut state, self).map_err(StoreError::from);
                    }
                }
            }
        }
        match batch.outcome.get() {
            Some(outcome) => outcome.clone().map_err(StoreError::from),
            None => Err(StoreError::Db(DbErr::Custom(
                "a write batch ended without an outcome".into(),
            ))),
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
        // Each write's savepoint keeps the first-touched pages' old contents in a statement
        // journal, a temporary file by default: 14 % of the CPU under POST load went to writing
        // it (perf). In memory it is a few pages per write.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
        Ok(conn)
    }
}

/// WAL pages after which a commit of the writer checkpoints in line, should the background
/// checkpointer fall behind (SQLite's default, used by the pool's connections, is 1,000).
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// WAL pages after which the background checkpointer makes the WAL restart (see
/// [`spawn_checkpointer`]): about 16 MiB. Each restart holds writes for two `fsync`s, 22–58 ms
/// here at 2,000–8,000 pages; PATCH p99 at 100,000 users was lowest at 4,000 (`bench/RESULTS.md`).
const RESTART_WAL_PAGES: i64 = 4_000;

/// The least time between two background checkpoints.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// Copies committed WAL frames into the database file on a thread of its own, woken after
/// commits. By default SQLite does it in the connection whose commit passes 1,000 WAL pages,
/// and that commit, with every write queued behind it, waits for the copy and its `fsync`
/// (POST p99 21.9 / 20.5 -> 14.2 / 13.7 ms with this thread, bench/RESULTS.md). A passive
/// checkpoint never blocks the writer.
///
/// The WAL restarts from its beginning only when a write begins with all of it copied, which
/// under sustained writes a passive checkpoint never sees: frames commit while it copies. Left
/// alone, the WAL grew to the writer's in-line checkpoint at 10,000 pages every few seconds,
/// and that checkpoint's copy and `fsync`s (30–45 ms, strace) held a worker thread and every
/// request on it. So once the WAL passes [`RESTART_WAL_PAGES`], the thread takes the writer's
/// turn (writers wait for it without holding a thread), commits a batch left open, and copies
/// the frames committed since its passive pass on the writer's own connection: the next write
/// begins on a fully copied WAL and restarts it. The thread ends with the writer.
fn spawn_checkpointer(
    path: std::path::PathBuf,
    counts: Arc<[AtomicU64; 3]>,
    writer: std::sync::Weak<tokio::sync::Mutex<WriterState>>,
) -> std::io::Result<SyncSender<()>> {
    let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut conn = None;
            while woken.recv().is_ok() {
                if conn.is_none() {
                    // Never creates the file: the writer has opened it already.
                    conn = rusqlite::Connection::open_with_flags(
                        &path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(|e| tracing::warn!(error = %e, "checkpointer: cannot open the database"))
                    .ok();
                }
                if let Some(conn) = &conn {
                    match checkpoint(conn) {
                        Ok(wal_pages) => {
                            counts[2].fetch_add(1, Ordering::Relaxed);
                            metrics::counter!(crate::metrics::SQLITE_CHECKPOINTS).increment(1);
                            if wal_pages > RESTART_WAL_PAGES {
                                if let Some(writer) = writer.upgrade() {
                                    checkpoint_between_writes(&writer, &counts);
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
                    }
                }
                std::thread::sleep(CHECKPOINT_INTERVAL);
            }
        })?;
    Ok(wake)
}

/// A passive checkpoint; returns the WAL's size in pages.
fn checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
}

/// Copies every committed frame while no write is under way, on the writer's connection (see
/// [`spawn_checkpointer`]). Called from the checkpointer's own thread, never from the runtime.
fn checkpoint_between_writes(writer: &tokio::sync::Mutex<WriterState>, counts: &[AtomicU64; 3]) {
    let mut state = writer.blocking_lock();
    let held = std::time::Instant::now();
    if state.batch.is_some() {
        // Left open for writers queued behind the checkpointer: they begin the next one.
        if commit_open_batch(&mut state, counts).is_err() {
            return;
        }
    }
    if let Some(conn) = &state.conn {
        if let Err(e) = checkpoint(conn) {
            tracing::warn!(error = %e, "WAL checkpoint between writes failed");
        }
    }
    metrics::histogram!(crate::metrics::SQLITE_WRITE_HOLDS).record(held.elapsed().as_secs_f64());
}

fn execute(state: &WriterState, sql: &str) -> rusqlite::Result<()> {
    match &state.conn {
        Some(conn) => conn.execute_batch(sql),
        None => Err(rusqlite::Error::InvalidQuery),
    }
}

/// Commits the open batch and records the outcome for every write it carries.
fn commit_batch(state: &mut WriterState, writer: &DirectWriter) -> Result<(), Failure> {
    let outcome = commit_open_batch(state, &writer.counts);
    if outcome.is_ok() {
        writer.wake_checkpointer();
    }
    outcome
}

/// [`commit_batch`], counted in `counts`, without waking the checkpointer.
fn commit_open_batch(state: &mut WriterState, counts: &[AtomicU64; 3]) -> Result<(), Failure> {
    let writes = state.members as u64;
    let outcome = execute(state, "COMMIT").map_err(|e| Failure {
        unavailable: is_busy(&e),
        message: format!("sqlite commit: {e}"),
    });
    if outcome.is_ok() {
        counts[0].fetch_add(writes, Ordering::Relaxed);
        counts[1].fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::SQLITE_WRITES).increment(writes);
        metrics::counter!(crate::metrics::SQLITE_COMMITS).increment(1);
    }
    end_batch_with(state, outcome.clone());
    outcome
}

/// Rolls the open batch back, failing every write it carries.
fn end_batch(state: &mut WriterState) {
    let failed = Err(Failure {
        unavailable: false,
        message: "the write batch was rolled back".into(),
    });
    end_batch_with(state, failed);
}

/// Ends the open batch with `outcome`. A transaction still open here (a failed `COMMIT` leaves
/// it open in SQLite) is rolled back before the connection serves the next writer.
fn end_batch_with(state: &mut WriterState, outcome: Result<(), Failure>) {
    let in_transaction = state.conn.as_ref().is_some_and(|c| !c.is_autocommit());
    if in_transaction {
        if let Err(e) = execute(state, "ROLLBACK") {
            tracing::error!(error = %e, "could not end a write transaction");
        }
    }
    if let Some(batch) = state.batch.take() {
        let _ = batch.outcome.set(outcome);
        batch.done.notify_waiters();
    }
    state.members = 0;
}

/// One write on the [`DirectWriter`]'s connection, inside its own savepoint. Its statements run
/// on the calling thread; the std mutex is never contended (the connection's own lock is held),
/// it only makes the write shareable across an `await`. Dropped before [`Tx::commit`], it rolls
/// back to its savepoint.
pub struct DirectTx {
    state: Mutex<Option<OwnedMutexGuard<WriterState>>>,
    writer: DirectWriter,
}

impl DirectTx {
    fn run<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.as_ref().and_then(|s| s.conn.as_ref()) {
            Some(conn) => f(conn),
            None => Err(rusqlite::Error::InvalidQuery),
        }
    }

    fn take(&mut self) -> Option<OwnedMutexGuard<WriterState>> {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Ends this write's savepoint, then commits at once (nobody waits, or the batch is full)
    /// or leaves the transaction to the writers queued behind and waits for its commit.
    async fn commit(mut self) -> Result<(), StoreError> {
        let Some(mut state) = self.take() else {
            return Err(StoreError::Db(DbErr::Custom("the write already ended".into())));
        };
        if let Err(e) = execute(&state, "RELEASE write") {
            undo_write(&mut state);
            return Err(store_err(e));
        }
        state.members += 1;
        if self.writer.waiting.load(Ordering::SeqCst) == 0 || state.members >= MAX_BATCH {
            return commit_batch(&mut state, &self.writer).map_err(StoreError::from);
        }
        let Some(batch) = state.batch.clone() else {
            return Err(StoreError::Db(DbErr::Custom("no open write batch".into())));
        };
        drop(state);
        let pending = Pending {
            writer: self.writer.clone(),
            batch: Some(batch.clone()),
        };
        let outcome = self.writer.settle(&batch).await;
        pending.disarm();
        outcome
    }
}

/// Rolls one write back to its savepoint. The batch's other writes stay, unless SQLite rolled
/// the whole transaction back (after some I/O errors), which fails them all.
fn undo_write(state: &mut WriterState) {
    if let Err(e) = execute(state, "ROLLBACK TO write; RELEASE write") {
        tracing::warn!(error = %e, "rollback of a write failed");
    }
    let lost = state.conn.as_ref().is_none_or(|c| c.is_autocommit()) || state.members == 0;
    if lost {
        end_batch(state);
    }
}

impl Drop for DirectTx {
    fn drop(&mut self) {
        if let Some(mut state) = self.take() {
            undo_write(&mut state);
        }
    }
}

/// A write waiting for its batch's commit. If the wait is abandoned (the request's future is
/// dropped), a task settles the batch instead, so that the transaction cannot stay open, holding
/// SQLite's write lock, with nobody left to commit it.
struct Pending {
    writer: DirectWriter,
    batch: Option<Arc<Batch>>,
}

impl Pending {
    fn disarm(mut self) {
        self.batch = None;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        if batch.outcome.get().is_some() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let writer = self.writer.clone();
            runtime.spawn(async move {
                if let Err(e) = writer.settle(&batch).await {
                    tracing::warn!(error = %e, "an abandoned write batch did not commit");
                }
            });
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
