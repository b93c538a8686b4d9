//! Read snapshots held across requests by the point-read connections (`store::point_reads`).
//!
//! In WAL mode every statement outside a transaction begins and ends a read transaction of its
//! own: it takes a read mark in the WAL index (`<db>-shm`) under a mutex that all of the
//! process's connections to the file share, and an `fcntl` lock when it is the process's first
//! reader on that mark. Under `GET /Users/{id}` load the two worker threads' connections
//! contended for that mutex on most requests (1.24 `futex` and 1.32 `fcntl` calls per request,
//! strace), and the kernel's share of the server's CPU was about 30 % (perf, `bench/RESULTS.md`).
//!
//! So while requests are in flight on a thread, its point-read connection keeps one read
//! transaction open and reads through it, for as long as nothing has committed since it began,
//! when every frame of the WAL was already copied into the database at its beginning (see
//! [`WalIndex::state`]; while writes go on, reads mostly run as before).
//! "Nothing has committed" is read from the WAL index header, which every commit rewrites (by any
//! connection, in this process or another: the `seatbridge` CLI included) before it returns:
//! the header is read with one `pread` before the snapshot begins and before each reuse, and
//! any difference (or a failed read) starts a new snapshot. A request that follows a write's
//! response therefore always reads what the write committed.
//!
//! A held snapshot keeps the checkpointer from copying frames committed after it began, so it
//! is also given up when it is [`MAX_SNAPSHOT_AGE`] old: at the next read, or by a timer
//! ([`releaser`]) when the worker has gone idle. The age limit also bounds what a header that
//! stops changing could hide (a `-shm` file replaced under a running server): 5 ms. Only reads inside a request ([`RequestScope`])
//! hold one; elsewhere (background tasks, tests) reads run in autocommit as before. Without a
//! readable `-shm` file (another journal mode) nothing is held.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::marker::PhantomData;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The longest a point-read connection keeps one read snapshot. Long enough to serve dozens of
/// requests under load, short enough that snapshots begun after a checkpoint soon stop pinning
/// the WAL (which restarts from its beginning only when no reader is still using it).
pub const MAX_SNAPSHOT_AGE: Duration = Duration::from_millis(5);

/// The start of the WAL index (<https://sqlite.org/walformat.html#the_wal_index_file_format>):
/// two copies of its 48-byte header (`iVersion` … `aCksum`; every commit changes `iChange`,
/// `mxFrame` and the checksum), then the checkpoint information, which begins with
/// `nBackfill`. Integers are in the host's byte order.
const WAL_INDEX_HEADER: usize = 48;
const MX_FRAME: usize = 16;
const N_BACKFILL: usize = 96;
const WAL_INDEX_READ: usize = N_BACKFILL + 4;

/// The WAL index (`<db>-shm`) of a database file, opened read-only beside SQLite's own mapping
/// of it, once per process and never closed: closing any descriptor of a file drops every POSIX
/// lock the process holds on it, SQLite's included (its own files' closes it defers likewise).
fn wal_index_file(db: &Path) -> Option<Arc<File>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<File>>>> = OnceLock::new();
    let mut name = db.as_os_str().to_owned();
    name.push("-shm");
    let name = PathBuf::from(name);
    let mut open = OPEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let current = std::fs::metadata(&name).ok()?;
    if let Some(file) = open.get(&name) {
        // The same file, not one made anew at its path after the database was closed by all.
        if file
            .metadata()
            .is_ok_and(|m| (m.dev(), m.ino()) == (current.dev(), current.ino()))
        {
            return Some(file.clone());
        }
    }
    let file = Arc::new(File::open(&name).ok()?);
    // A replaced entry's descriptor stays open (in the `Arc`s of its connections, or leaked).
    if let Some(old) = open.insert(name, file.clone()) {
        std::mem::forget(old);
    }
    Some(file)
}

/// Whether another process has the database open (SQLite's connections each hold a shared
/// lock on the WAL index's "DMS" byte while open; a lock of this process never conflicts
/// with the test). `false` when it cannot tell (no WAL index).
pub fn other_process_attached(db: &Path) -> bool {
    /// `UNIX_SHM_DMS` of SQLite's unix VFS: `(22 + SQLITE_SHM_NLOCK) * 4 + SQLITE_SHM_NLOCK`.
    const DMS_BYTE: libc::off_t = 128;
    let Some(file) = wal_index_file(db) else {
        return false;
    };
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: DMS_BYTE,
        l_len: 1,
        l_pid: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETLK only reads and fills `probe`, a valid `flock` that outlives the call, on
    // a descriptor `file` keeps open.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) };
    rc == 0 && probe.l_type != libc::F_UNLCK as libc::c_short
}

/// The WAL index of a database file.
#[derive(Debug)]
struct WalIndex(Arc<File>);

impl WalIndex {
    fn open(db: &Path) -> Option<Self> {
        wal_index_file(db).map(WalIndex)
    }

    /// The header as it is now, and whether every frame of the WAL has been copied into the
    /// database (`mxFrame == nBackfill`); `None` when it cannot be read.
    ///
    /// Only a fully copied WAL lets a snapshot be held. A reader that begins on one reads the
    /// database file alone (read mark 0), which does not stop the WAL from restarting at its
    /// beginning; one that begins with frames still to copy holds a mark in the WAL, and a WAL
    /// with such a reader never restarts: held from there, snapshots grew the WAL by 30 MB a
    /// second under mixed GET and POST load, against 40 MB in all without them (`bench/RESULTS.md`).
    fn state(&self) -> Option<WalState> {
        let mut index = [0u8; WAL_INDEX_READ];
        self.0.read_exact_at(&mut index, 0).ok()?;
        let word = |at: usize| {
            index
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_ne_bytes)
        };
        if word(MX_FRAME)? != word(N_BACKFILL)? {
            return Some(WalState::FramesToCopy);
        }
        index.first_chunk::<WAL_INDEX_HEADER>().copied().map(WalState::Copied)
    }
}

/// What the WAL index says.
enum WalState {
    /// Every frame is in the database; the header as it is.
    Copied([u8; WAL_INDEX_HEADER]),
    /// Committed frames wait for a checkpoint.
    FramesToCopy,
}

/// A snapshot being held: the header it began under, and when.
#[derive(Debug)]
struct Held {
    header: [u8; WAL_INDEX_HEADER],
    since: Instant,
}

/// A point-read connection and the read snapshot it may hold.
#[derive(Debug)]
pub(super) struct ReadConnection {
    conn: rusqlite::Connection,
    wal_index: Option<WalIndex>,
    held: Option<Held>,
}

impl ReadConnection {
    pub(super) fn new(conn: rusqlite::Connection, db: &Path) -> Self {
        ReadConnection {
            conn,
            wal_index: WalIndex::open(db),
            held: None,
        }
    }

    /// The connection, ready for a read: in a request, inside a snapshot that nothing has
    /// committed since; otherwise in autocommit. `checkpoint` is called when a request finds
    /// committed frames still to copy, which keep it from holding a snapshot (the background
    /// checkpointer is woken by the writer's commits, not by the pool's).
    pub(super) fn for_read(&mut self, checkpoint: impl FnOnce()) -> &rusqlite::Connection {
        if in_request() {
            self.hold_current_snapshot(checkpoint);
        } else {
            self.release();
        }
        &self.conn
    }

    fn hold_current_snapshot(&mut self, checkpoint: impl FnOnce()) {
        let now = match self.wal_index.as_ref().and_then(WalIndex::state) {
            Some(WalState::Copied(header)) => header,
            Some(WalState::FramesToCopy) => {
                self.release();
                checkpoint();
                return;
            }
            None => {
                self.release();
                return;
            }
        };
        if let Some(held) = &self.held {
            if held.header == now && held.since.elapsed() < MAX_SNAPSHOT_AGE {
                return;
            }
            self.release();
        }
        // The header was read before the snapshot begins (at the next statement): a commit in
        // between makes the next check see a change and begin again, never miss one.
        if self.conn.is_autocommit() && self.conn.execute_batch("BEGIN").is_ok() {
            self.held = Some(Held {
                header: now,
                since: Instant::now(),
            });
        }
    }

    /// Ends the held snapshot, if any.
    pub(super) fn release(&mut self) {
        if self.held.take().is_some() && !self.conn.is_autocommit() && self.conn.execute_batch("COMMIT").is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    pub(super) fn holds_snapshot(&self) -> bool {
        self.held.is_some()
    }

    /// Ends the held snapshot if it is `age` old or older.
    pub(super) fn release_if_older(&mut self, age: Duration) {
        if self.held.as_ref().is_some_and(|h| h.since.elapsed() >= age) {
            self.release();
        }
    }
}

thread_local! {
    /// Requests in flight on this thread (actix runs each on one worker thread throughout).
    static IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread runs a [`releaser`].
    static RELEASER: Cell<bool> = const { Cell::new(false) };
}

fn in_request() -> bool {
    IN_FLIGHT.with(Cell::get) > 0
}

/// Marks a request in flight on this thread for as long as it lives: point reads hold
/// snapshots only then (not in background tasks).
#[derive(Debug)]
pub struct RequestScope {
    /// Not `Send`: the count is this thread's.
    _thread: PhantomData<*const ()>,
}

impl RequestScope {
    pub fn enter() -> Self {
        IN_FLIGHT.with(|n| n.set(n.get() + 1));
        RequestScope { _thread: PhantomData }
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        IN_FLIGHT.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// After a request: when this thread holds a snapshot and nothing yet watches it, the task that
/// gives its snapshots up once they are [`MAX_SNAPSHOT_AGE`] old, and ends when none is left.
/// The caller spawns it on this same thread (it watches this thread's connections). Requests
/// on actix do not overlap on a thread (a point read never yields), so the end of a request
/// cannot tell that the worker went idle; a timer can.
pub fn releaser() -> Option<impl std::future::Future<Output = ()>> {
    if RELEASER.with(Cell::get) || !super::point_reads::holds_snapshots() {
        return None;
    }
    RELEASER.with(|r| r.set(true));
    Some(async {
        loop {
            tokio::time::sleep(MAX_SNAPSHOT_AGE).await;
            super::point_reads::release_snapshots(MAX_SNAPSHOT_AGE);
            if !super::point_reads::holds_snapshots() {
                break;
            }
        }
        RELEASER.with(|r| r.set(false));
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A WAL database with one row, all of it checkpointed, and its writer.
    fn database(dir: &Path) -> (std::path::PathBuf, rusqlite::Connection) {
        let path = dir.join("db.sqlite");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        checkpoint(&writer);
        (path, writer)
    }

    fn checkpoint(conn: &rusqlite::Connection) {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
    }

    fn count(conn: &rusqlite::Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    fn reader(path: &Path) -> ReadConnection {
        ReadConnection::new(rusqlite::Connection::open(path).unwrap(), path)
    }

    #[test]
    fn a_held_snapshot_sees_every_commit_made_before_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let mut reader = reader(&path);
        let _request = RequestScope::enter();
        assert_eq!(count(reader.for_read(|| ())), 1);
        assert!(reader.holds_snapshot() && !reader.conn.is_autocommit());
        let first = reader.held.as_ref().unwrap().since;
        assert_eq!(count(reader.for_read(|| ())), 1);
        assert_eq!(
            reader.held.as_ref().unwrap().since,
            first,
            "unchanged: the same snapshot"
        );

        writer.execute_batch("INSERT INTO t VALUES (2)").unwrap();
        let mut asked = false;
        assert_eq!(
            count(reader.for_read(|| asked = true)),
            2,
            "a commit ends the held snapshot"
        );
        assert!(!reader.holds_snapshot(), "frames still to copy: nothing held");
        assert!(asked, "and a checkpoint is asked for");
        checkpoint(&writer);
        assert_eq!(count(reader.for_read(|| ())), 2);
        assert!(reader.holds_snapshot());
        // Another process's commit, as the CLI makes them, is seen the same way.
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("INSERT INTO t VALUES (3)").unwrap();
        assert_eq!(count(reader.for_read(|| ())), 3);
    }

    #[test]
    fn snapshots_are_held_in_requests_and_given_up_with_age() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _writer) = database(dir.path());
        let mut reader = reader(&path);
        assert_eq!(count(reader.for_read(|| ())), 1);
        assert!(reader.conn.is_autocommit(), "outside a request nothing is held");

        let request = RequestScope::enter();
        count(reader.for_read(|| ()));
        let first = reader.held.as_ref().unwrap().since;
        std::thread::sleep(MAX_SNAPSHOT_AGE);
        count(reader.for_read(|| ()));
        assert!(
            reader.held.as_ref().unwrap().since > first,
            "an old snapshot is renewed"
        );
        reader.release_if_older(MAX_SNAPSHOT_AGE);
        assert!(reader.holds_snapshot(), "younger than the limit");
        std::thread::sleep(MAX_SNAPSHOT_AGE);
        reader.release_if_older(MAX_SNAPSHOT_AGE);
        assert!(reader.conn.is_autocommit() && !reader.holds_snapshot());
        count(reader.for_read(|| ()));
        drop(request);
        assert_eq!(count(reader.for_read(|| ())), 1);
        assert!(reader.conn.is_autocommit(), "after the request, the next read lets go");
    }

    #[test]
    fn the_wal_still_restarts_while_snapshots_are_held() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = database(dir.path());
        let mut reader = reader(&path);
        let _request = RequestScope::enter();
        // Writes, checkpoints and reads interleaved, as a server under mixed load runs them.
        for i in 0..300 {
            writer.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            count(reader.for_read(|| ()));
            checkpoint(&writer);
            count(reader.for_read(|| ()));
        }
        // Restarting, the WAL reuses its first frames; never restarting, it would hold 300.
        let wal = std::fs::metadata(dir.path().join("db.sqlite-wal")).unwrap().len();
        assert!(wal < 20 * 4_120, "the WAL grew to {wal} bytes");
    }

    #[test]
    fn without_a_wal_index_nothing_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollback.sqlite");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let mut reader = reader(&path);
        let _request = RequestScope::enter();
        assert_eq!(count(reader.for_read(|| ())), 1);
        assert!(reader.conn.is_autocommit());
    }
}
