//! Storage settings reach every pooled connection; point reads agree with the pool.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use seatbridge::store::entities::tenant;
use seatbridge::store::{self, tenants, users, DbSettings, PointReads, Reader, StoreError};
use serde_json::json;

use crate::helpers::*;

/// `SEATBRIDGE_SQLITE_CACHE_KIB` is applied to each SQLite connection (the pool multiplies it,
/// so it bounds memory under load). PostgreSQL has no such setting: nothing to check there.
#[tokio::test]
async fn every_sqlite_connection_gets_the_configured_page_cache() {
    let app = TestApp::spawn_with(|c| {
        c.sqlite_cache_kib = 300;
        c.db_max_connections = Some(3);
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

/// Point reads (on SQLite, the calling thread's own connection outside the pool) decode users
/// exactly as the pool does: NULLs, booleans, timestamps in sqlx's form and in SQLite's own, the
/// groups read beside the row. They see a committed write at once, and they refuse to write.
#[tokio::test]
async fn point_reads_return_what_the_pool_returns() {
    let app = TestApp::spawn().await;
    let reads = PointReads::new(&app.db, &app.config.db_settings()).await.unwrap();
    assert_eq!(reads.is_direct(), app.db.get_database_backend() == DbBackend::Sqlite);

    let alice = app.create_user("alice").await;
    let (status, bob) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "Bob", "externalId": "x-1", "active": false,
                   "emails": [{"value": "bob@example.com", "primary": true}]}),
        )
        .await;
    assert_eq!(status, 201, "{bob}");
    let bob = bob["id"].as_str().unwrap().to_string();
    app.create_group("Engineering", &[&alice, &bob]).await;
    app.create_group("Admins", &[&alice]).await;
    // NULLs in optional columns, and a timestamp in SQLite's own format rather than sqlx's.
    app.sql(&format!(
        "UPDATE users SET entitlement_updated = NULL, created_at = '2026-01-02 03:04:05' WHERE id = '{bob}'"
    ))
    .await;
    let tenant = tenant_of(&app, &alice).await;

    for id in [&alice, &bob] {
        let pooled = users::find_with_groups(&app.db, &tenant, id).await.unwrap().unwrap();
        let direct = users::find_with_groups(&reads, &tenant, id).await.unwrap().unwrap();
        assert_eq!(pooled, direct);
        assert_eq!(
            users::find_for_check(&app.db, &tenant, "BOB").await.unwrap(),
            users::find_for_check(&reads, &tenant, "BOB").await.unwrap()
        );
    }
    let (bob_row, groups) = users::find_with_groups(&reads, &tenant, &bob).await.unwrap().unwrap();
    assert_eq!((bob_row.active, bob_row.external_id.as_deref()), (false, Some("x-1")));
    assert_eq!(bob_row.entitlement_updated, None);
    assert_eq!(bob_row.created_at.to_rfc3339(), "2026-01-02T03:04:05+00:00");
    assert_eq!(groups.len(), 1);
    assert!(users::find_with_groups(&reads, &tenant, "no-such-id")
        .await
        .unwrap()
        .is_none());
    // A check names a user by id or by userName, and an id wins: here a userName is alice's id.
    let namesake = app.create_user(&alice).await;
    let by_id = users::find_for_check(&app.db, &tenant, &alice).await.unwrap();
    assert_eq!(by_id.map(|u| u.id), Some(alice.clone()));
    let by_id = users::find_for_check(&reads, &tenant, &alice).await.unwrap();
    assert_eq!(by_id.map(|u| u.id), Some(alice.clone()));
    let by_name = users::find_for_check(&reads, &tenant, &alice.to_uppercase())
        .await
        .unwrap();
    assert_eq!(by_name.map(|u| u.id), Some(namesake));
    assert!(users::find(&reads, "another-tenant", &alice).await.unwrap().is_none());

    let before = users::find(&reads, &tenant, &alice).await.unwrap().unwrap();
    let (status, body) = app
        .patch(
            &format!("/Users/{alice}"),
            TestApp::patch_body(json!([{"op": "replace", "path": "displayName", "value": "Alice A."}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after = users::find(&reads, &tenant, &alice).await.unwrap().unwrap();
    assert_eq!(after.display_name.as_deref(), Some("Alice A."));
    assert_eq!(after.version, before.version + 1);

    if reads.is_direct() {
        let write = Statement::from_string(DbBackend::Sqlite, "DELETE FROM users RETURNING 1 AS n");
        assert!(reads.count(write).await.is_err(), "a point read wrote");
        assert!(users::find(&app.db, &tenant, &alice).await.unwrap().is_some());
    }
}

async fn tenant_of(app: &TestApp, user_id: &str) -> String {
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            app.db.get_database_backend(),
            format!("SELECT tenant_id FROM users WHERE id = '{user_id}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "tenant_id").unwrap()
}

/// A point read runs on the worker thread: while the SQLite file is locked exclusively it fails
/// fast as "unavailable" (503, retry) instead of holding the worker for the pool's busy timeout
/// (5 s here), and it works again once the lock is gone. (In WAL mode readers are blocked only by
/// such a lock, which another process can take once nothing else has the file open.)
#[tokio::test]
async fn a_locked_database_fails_point_reads_fast_instead_of_stalling_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (db, reads, _) = sqlite_file(&dir, std::time::Duration::from_secs(5)).await;
    db.close().await.unwrap();

    // A connection in exclusive locking mode keeps the file locked after its first write.
    let locker = rusqlite::Connection::open(dir.path().join("writes.db")).unwrap();
    locker.pragma_update(None, "locking_mode", "EXCLUSIVE").unwrap();
    locker
        .execute_batch("BEGIN IMMEDIATE; UPDATE tenants SET name = name; COMMIT;")
        .unwrap();

    let started = std::time::Instant::now();
    let refused = users::find(&reads, "tenant", "user").await;
    let waited = started.elapsed();
    assert!(matches!(refused, Err(StoreError::Unavailable(_))), "{refused:?}");
    assert!(waited < std::time::Duration::from_secs(2), "waited {waited:?}");

    drop(locker);
    assert!(users::find(&reads, "tenant", "user").await.unwrap().is_none());
}

/// An SQLite file with its migrations and a tenant (returned with the pool and the point
/// reads), opened as the server opens it, with `busy_timeout`.
async fn sqlite_file(
    dir: &tempfile::TempDir,
    busy_timeout: std::time::Duration,
) -> (sea_orm::DatabaseConnection, PointReads, tenant::Model) {
    let path = dir.path().join("writes.db");
    let settings = DbSettings {
        url: format!("sqlite://{}?mode=rwc", path.display()),
        max_connections: 2,
        busy_timeout,
        sqlite_cache_kib: 256,
        statement_timeout: std::time::Duration::ZERO,
    };
    let db = store::connect(&settings).await.unwrap();
    store::migrate(&db).await.unwrap();
    let reads = PointReads::new(&db, &settings).await.unwrap();
    assert!(reads.is_direct());
    let tenant = tenants::insert_tenant(&db, "acme", "Acme").await.unwrap();
    (db, reads, tenant)
}

/// Another connection to the file, holding its write lock.
fn lock_holder(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(dir.path().join("writes.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder
}

fn seat() -> users::SeatState {
    users::SeatState {
        entitled: true,
        seat_type: "default".into(),
        reason: "seat_assigned",
    }
}

/// On an SQLite file, writes run on the process's writer connection, on the calling thread. A
/// write lock held by another connection (the pool, the CLI) is waited for on a timer, so the
/// thread keeps serving other requests meanwhile, and the write then lands. A transaction that
/// is dropped without a commit (a client gone mid-request) leaves nothing behind.
#[tokio::test]
async fn a_direct_write_waits_for_the_lock_without_holding_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (db, reads, tenant) = sqlite_file(&dir, std::time::Duration::from_secs(5)).await;

    let locker = lock_holder(&dir);
    let started = std::time::Instant::now();
    // One thread (`#[tokio::test]` runs on a current-thread runtime): the second branch runs
    // only if the first one yields while it waits.
    let (tx, released_at) = tokio::join!(store::write_tx::begin(&db, &reads), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        locker.execute_batch("COMMIT").unwrap();
        started.elapsed()
    });
    let tx = tx.unwrap();
    assert!(tx.is_direct());
    assert!(
        released_at < std::time::Duration::from_secs(2),
        "the thread was held: {released_at:?}"
    );
    tenants::add_usage(&tx, &tenant.id, "2026-11").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(tenants::usage(&db, &tenant.id, "2026-11").await.unwrap(), 1);

    let abandoned = store::write_tx::begin(&db, &reads).await.unwrap();
    tenants::add_usage(&abandoned, &tenant.id, "2026-11").await.unwrap();
    assert_eq!(
        tenants::usage(&abandoned, &tenant.id, "2026-11").await.unwrap(),
        2,
        "reads see the transaction's own writes"
    );
    drop(abandoned);
    assert_eq!(tenants::usage(&db, &tenant.id, "2026-11").await.unwrap(), 1);
    let next = store::write_tx::begin(&db, &reads).await.unwrap();
    tenants::add_usage(&next, &tenant.id, "2026-11").await.unwrap();
    next.commit().await.unwrap();
    assert_eq!(tenants::usage(&reads, &tenant.id, "2026-11").await.unwrap(), 2);
}

/// A lock held past the busy timeout makes the write unavailable (503, retry), and a unique
/// index refusing a direct write is a uniqueness error (409), as on the pool.
#[tokio::test]
async fn direct_write_errors_are_classified_as_on_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (db, reads, tenant) = sqlite_file(&dir, std::time::Duration::from_millis(200)).await;

    let locker = lock_holder(&dir);
    let started = std::time::Instant::now();
    let busy = store::write_tx::begin(&db, &reads).await;
    assert!(matches!(busy, Err(StoreError::Unavailable(_))), "{:?}", busy.err());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    locker.execute_batch("ROLLBACK").unwrap();

    let seat = seat();
    let doc = json!({"userName": "ada"});
    let tx = store::write_tx::begin(&db, &reads).await.unwrap();
    users::insert(&tx, &tenant.id, "u1", &doc, &seat).await.unwrap();
    let taken = users::insert(&tx, &tenant.id, "u2", &doc, &seat).await;
    assert!(matches!(taken, Err(StoreError::UniqueViolation(_))), "{taken:?}");
    tx.commit().await.unwrap();
    assert!(users::find(&db, &tenant.id, "u1").await.unwrap().is_some());
    assert!(users::find(&db, &tenant.id, "u2").await.unwrap().is_none());
}

/// Writes that queue for the SQLite writer share one commit (group commit): each still gets
/// its own answer only after the commit, and one that fails rolls back alone.
#[tokio::test]
async fn queued_direct_writes_share_a_commit_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (db, reads, tenant) = sqlite_file(&dir, std::time::Duration::from_secs(5)).await;
    let seat = seat();
    let writes = (0..20).map(|i| {
        let (db, reads, tenant, seat) = (&db, &reads, &tenant, &seat);
        async move {
            let tx = store::write_tx::begin(db, reads).await?;
            tenants::add_usage(&tx, &tenant.id, "2026-11").await?;
            // Every fifth write takes the same userName: all but the first of them fail.
            let name = if i % 5 == 0 {
                "taken".to_string()
            } else {
                format!("user{i}")
            };
            // Yield while holding the writer, so that the other writes queue behind this one.
            tokio::task::yield_now().await;
            match users::insert(&tx, &tenant.id, &format!("u{i}"), &json!({"userName": name}), seat).await {
                Ok(_) => tx.commit().await.map(|()| true),
                Err(e) => {
                    tx.rollback().await?;
                    Err(e)
                }
            }
        }
    });
    let results = futures_util::future::join_all(writes).await;
    let committed = results.iter().filter(|r| matches!(r, Ok(true))).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::UniqueViolation(_))))
        .count();
    assert_eq!((committed, refused), (17, 3), "{results:?}");
    // The refused writes' usage counts were rolled back with them.
    assert_eq!(tenants::usage(&db, &tenant.id, "2026-11").await.unwrap(), 17);
    let counts = reads.write_counts().unwrap();
    assert_eq!(counts.writes, 17);
    assert!(counts.commits < 5, "{counts:?}");
}

/// Commits of the SQLite writer are copied into the database file by a background checkpoint,
/// not by the commit that crosses SQLite's WAL threshold: the database file alone, without its
/// WAL, holds what was committed.
#[tokio::test]
async fn commits_are_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let (db, reads, tenant) = sqlite_file(&dir, std::time::Duration::from_secs(5)).await;
    let seat = seat();
    for i in 0..5 {
        let tx = store::write_tx::begin(&db, &reads).await.unwrap();
        let doc = json!({"userName": format!("user{i}")});
        users::insert(&tx, &tenant.id, &format!("u{i}"), &doc, &seat)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // Each commit wakes the checkpointer; the last may be copied a few tens of ms later.
    let copied = || {
        let copy = dir.path().join("copy.db");
        std::fs::copy(dir.path().join("writes.db"), &copy).unwrap();
        let conn = rusqlite::Connection::open(&copy).unwrap();
        // Until a checkpoint, the file may not even hold the tables.
        conn.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
    };
    // The checkpointer counts a checkpoint after it returns, a moment after the file holds it.
    let checkpoints = || reads.write_counts().unwrap().checkpoints;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while copied() < 5 || checkpoints() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 5 users in the database file, {} checkpoints counted",
            copied(),
            checkpoints()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Under sustained writes the WAL still restarts from its beginning, so it stays near the
/// checkpointer's restart size: it does not grow until a commit of the writer checkpoints in
/// line (at 10,000 pages, about 40 MiB), holding its thread for the copy and its `fsync`.
#[tokio::test]
async fn the_wal_restarts_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, reads, tenant) = sqlite_file(&dir, std::time::Duration::from_secs(5)).await;
    let seat = seat();
    // About 16 KiB a user, four overflow pages: 3,000 users put over 12,000 pages in the WAL.
    let padding = "x".repeat(16_000);
    let wal = dir.path().join("writes.db-wal");
    let holds = || {
        let metrics = seatbridge::metrics::handle().expect("recorder").render();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("seatbridge_sqlite_write_hold_seconds_count "))
            .map_or(0, |n| n.trim().parse::<u64>().unwrap())
    };
    let holds_before = holds();
    let mut largest = 0;
    for i in 0..3_000 {
        let tx = store::write_tx::begin(&db, &reads).await.unwrap();
        let doc = json!({"userName": format!("user{i}"), "title": padding});
        users::insert(&tx, &tenant.id, &format!("u{i}"), &doc, &seat)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The file keeps its size when the WAL restarts: its length is the WAL's high mark.
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    // The checkpointer restarts it past 4,000 pages; it grows a little more meanwhile.
    assert!(largest < 8_000 * 4_096, "the WAL grew to {} MiB", largest / (1 << 20));
    assert!(holds() > holds_before, "each restart is counted in the hold histogram");
    let (total, _, _) = store::user_counts::totals(&db, &tenant.id).await.unwrap();
    assert_eq!(total, 3_000);
}

/// A write whose wait for its group commit is abandoned (the client went away) does not leave
/// the transaction open, holding SQLite's write lock with nobody to commit it, even when the
/// writer it left the transaction to goes away too.
#[tokio::test]
async fn an_abandoned_wait_for_a_group_commit_still_ends_the_transaction() {
    use futures_util::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let (db, reads, tenant) = sqlite_file(&dir, std::time::Duration::from_secs(5)).await;

    let first = store::write_tx::begin(&db, &reads).await.unwrap();
    tenants::add_usage(&first, &tenant.id, "2026-11").await.unwrap();
    // A second writer queues for the connection...
    let mut second = Box::pin(store::write_tx::begin(&db, &reads));
    assert!((&mut second).now_or_never().is_none());
    // ...so the first leaves the transaction open for it and waits for the commit.
    let mut waiting = Box::pin(first.commit());
    assert!((&mut waiting).now_or_never().is_none());
    // Both go away.
    drop(waiting);
    drop(second);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The write lock is free (no busy timeout: this fails at once if it is held), and the
    // first write was committed.
    let other = rusqlite::Connection::open(dir.path().join("writes.db")).unwrap();
    other.busy_timeout(std::time::Duration::ZERO).unwrap();
    other.execute_batch("BEGIN IMMEDIATE; COMMIT;").unwrap();
    assert_eq!(tenants::usage(&db, &tenant.id, "2026-11").await.unwrap(), 1);
}

/// On PostgreSQL a statement that runs past `SEATBRIDGE_DB_STATEMENT_TIMEOUT_SECS` is cancelled
/// by the server, so an abandoned or runaway query stops holding its connection, and it counts as
/// "unavailable" (503, retry), not as a failure (500). Migrations get a connection without the
/// limit. SQLite has no such limit.
#[tokio::test]
async fn a_statement_past_the_timeout_is_cancelled_but_migrations_are_not_limited() {
    let app = TestApp::spawn().await;
    if app.db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let settings = DbSettings {
        statement_timeout: std::time::Duration::from_millis(200),
        ..app.config.db_settings()
    };
    let db = store::connect(&settings).await.unwrap();
    let started = std::time::Instant::now();
    let slow = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT pg_sleep(5)"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "not cancelled");
    assert!(matches!(StoreError::from(slow), StoreError::Unavailable(_)));
    let quick = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT 1 AS n"))
        .await;
    assert!(
        quick.unwrap().is_some(),
        "the connection works after a cancelled statement"
    );

    let timeout_of = |conn: &sea_orm::DatabaseConnection| {
        let conn = conn.clone();
        async move {
            let row = conn
                .query_one_raw(Statement::from_string(DbBackend::Postgres, "SHOW statement_timeout"))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<String>(0).unwrap()
        }
    };
    assert_eq!(timeout_of(&db).await, "200ms");
    let migrations = store::migration_connection(&db).await.unwrap();
    assert_eq!(timeout_of(&migrations).await, "0");
}

/// When PostgreSQL drops the server's connections (a restart, a failover, a terminated backend),
/// a request on a dropped connection answers 503 (retry), never 500, and the pool replaces the
/// connection: the requests after it succeed. The pool pings a connection only after 500 ms
/// idle, so connections just used are handed out dropped.
#[tokio::test]
async fn requests_on_connections_the_database_dropped_answer_503_and_the_pool_recovers() {
    let app = TestApp::spawn().await;
    if app.db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let t = app.tenant("dropped", "team", 10).await;
    let (_, user) = t.create_user("kept", true).await;
    let path = format!("/Users/{}", user["id"].as_str().unwrap());
    let t = &t;
    let burst = || futures_util::future::join_all((0..16).map(|_| t.get(&path)));
    // Open as many pool connections as a burst of reads needs.
    assert!(burst().await.iter().all(|(s, _)| *s == 200));

    let killed = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap();
    assert!(killed.len() > 1, "the server had no connections to drop");

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.extend(burst().await.into_iter().map(|(s, body)| {
            if s == 503 {
                assert_eq!(body["status"], json!("503"), "{body}");
            }
            s
        }));
        statuses.push(
            t.patch(
                &path,
                TestApp::patch_body(json!([{"op":"replace","value":{"displayName":"Kept"}}])),
            )
            .await
            .0,
        );
    }
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    // A dropped connection fails one request at most (the pool then replaces it): no more 503s
    // than connections were dropped.
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert!(refused <= killed.len(), "{refused} refused, {} dropped", killed.len());
    let (last, body) = t.get(&path).await;
    assert_eq!(last, 200, "{body}");
    let after = burst().await;
    assert!(
        after.iter().all(|(s, _)| *s == 200),
        "{:?}",
        after.iter().map(|r| r.0).collect::<Vec<_>>()
    );
}
