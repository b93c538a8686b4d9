//! Per-tenant, per-pool user counters (`user_counts`), kept exact by database triggers
//! (migration 000007). Seat checks, unfiltered list totals and seat-usage snapshots read them
//! instead of counting the tenant's users, so they cost the same at 1,000 or 1,000,000 users.
//!
//! The triggers run in the writing transaction, so a reader inside that transaction sees its
//! own writes counted, exactly as `COUNT(*)` would.

use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

use super::sql::SqlBuilder;
use super::{Reader, StoreError};

/// One pool's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCount {
    pub seat_type: String,
    pub users: i64,
    pub active: i64,
    pub entitled: i64,
    /// Active users without a seat who are not held by an admin: in line for a seat.
    pub waiting: i64,
}

/// Where the counters disagree with a full recount of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub tenant_id: String,
    pub seat_type: String,
    /// Users, active, entitled, waiting: as counted / as recorded.
    pub actual: [i64; 4],
    pub recorded: [i64; 4],
}

/// Entitled users of a tenant in one seat pool, not counting `except` (the user being decided).
pub async fn entitled_in_pool(
    conn: &impl Reader,
    tenant_id: &str,
    seat_type: &str,
    except: Option<&str>,
) -> Result<i64, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("SELECT COALESCE((SELECT entitled FROM user_counts WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND seat_type = ")
        .bind(seat_type.to_string())
        .push("), 0)");
    if let Some(id) = except {
        // The user being decided may hold a seat in this pool already; it is not "another" one.
        b.push(" - (SELECT COUNT(*) FROM users WHERE tenant_id = ")
            .bind(tenant_id.to_string())
            .push(" AND id = ")
            .bind(id.to_string())
            .push(" AND seat_type = ")
            .bind(seat_type.to_string())
            .push(" AND entitled = ")
            .bind(true)
            .push(")");
    }
    b.push(" AS n");
    Ok(conn.count(b.build()).await?)
}

/// One pool's counters (zero when nobody was ever in it).
pub async fn pool(conn: &impl Reader, tenant_id: &str, seat_type: &str) -> Result<PoolCount, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("SELECT users, active, entitled, waiting FROM user_counts WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND seat_type = ")
        .bind(seat_type.to_string());
    let row = conn.rows(b.build()).await?.into_iter().next();
    let n =
        |i: usize| -> Result<i64, StoreError> { Ok(row.as_ref().map(|r| r.get::<i64>(i)).transpose()?.unwrap_or(0)) };
    Ok(PoolCount {
        seat_type: seat_type.to_string(),
        users: n(0)?,
        active: n(1)?,
        entitled: n(2)?,
        waiting: n(3)?,
    })
}

/// The pools of a tenant that have users, by name.
pub async fn pools(conn: &impl Reader, tenant_id: &str) -> Result<Vec<PoolCount>, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("SELECT seat_type, users, active, entitled, waiting FROM user_counts WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND users > 0 ORDER BY seat_type");
    let mut out = Vec::new();
    for row in conn.rows(b.build()).await? {
        out.push(PoolCount {
            seat_type: row.get(0)?,
            users: row.get(1)?,
            active: row.get(2)?,
            entitled: row.get(3)?,
            waiting: row.get(4)?,
        });
    }
    Ok(out)
}

/// A tenant's users: total, active, entitled.
pub async fn totals(conn: &impl Reader, tenant_id: &str) -> Result<(i64, i64, i64), StoreError> {
    Ok(pools(conn, tenant_id)
        .await?
        .iter()
        .fold((0, 0, 0), |(u, a, e), p| (u + p.users, a + p.active, e + p.entitled)))
}

/// The full recount, per tenant and pool, as a derived table. The same definitions as the
/// triggers and backfill of migration 000007; `waiting` is also the predicate of
/// [`super::users::oldest_waiting`] and of the partial index of migration 000008.
const RECOUNT: &str = "SELECT tenant_id, seat_type, COUNT(*) AS users, \
    SUM(CASE WHEN active THEN 1 ELSE 0 END) AS active, \
    SUM(CASE WHEN entitled THEN 1 ELSE 0 END) AS entitled, \
    SUM(CASE WHEN active AND NOT entitled AND entitlement_reason <> 'manual' THEN 1 ELSE 0 END) AS waiting \
    FROM users GROUP BY tenant_id, seat_type";

/// Compares every counter with a full recount of `users`, in one statement (one snapshot, so a
/// concurrent write cannot make it report a false drift). Empty means consistent. Reads every
/// user: an operator's check, not a request path.
pub async fn drift(conn: &impl ConnectionTrait) -> Result<Vec<Drift>, StoreError> {
    // Counters with their recount (missing users count as 0), then recounts with no counter row.
    let sql = format!(
        "SELECT c.tenant_id, c.seat_type, COALESCE(a.users, 0), COALESCE(a.active, 0), \
         COALESCE(a.entitled, 0), COALESCE(a.waiting, 0), c.users, c.active, c.entitled, c.waiting \
         FROM user_counts c LEFT JOIN ({RECOUNT}) a ON a.tenant_id = c.tenant_id AND a.seat_type = c.seat_type \
         WHERE COALESCE(a.users, 0) <> c.users OR COALESCE(a.active, 0) <> c.active \
         OR COALESCE(a.entitled, 0) <> c.entitled OR COALESCE(a.waiting, 0) <> c.waiting \
         UNION ALL \
         SELECT a.tenant_id, a.seat_type, a.users, a.active, a.entitled, a.waiting, 0, 0, 0, 0 \
         FROM ({RECOUNT}) a LEFT JOIN user_counts c ON c.tenant_id = a.tenant_id AND c.seat_type = a.seat_type \
         WHERE c.tenant_id IS NULL"
    );
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push(&sql);
    let mut out = Vec::new();
    for row in conn.query_all_raw(b.build()).await? {
        let n = |i: usize| row.try_get_by_index::<i64>(i);
        out.push(Drift {
            tenant_id: row.try_get_by_index(0)?,
            seat_type: row.try_get_by_index(1)?,
            actual: [n(2)?, n(3)?, n(4)?, n(5)?],
            recorded: [n(6)?, n(7)?, n(8)?, n(9)?],
        });
    }
    Ok(out)
}

/// Replaces every counter with a full recount, in one transaction. Only needed if `users` was
/// changed with the triggers disabled (for example a partial restore); writers wait meanwhile.
pub async fn rebuild(conn: &DatabaseConnection) -> Result<(), StoreError> {
    let tx = conn.begin().await?;
    let backend = tx.get_database_backend();
    if backend == sea_orm::DbBackend::Postgres {
        // Writers must not change users between the delete and the recount.
        tx.execute_unprepared("LOCK TABLE users IN SHARE MODE").await?;
    }
    tx.execute_unprepared("DELETE FROM user_counts").await?;
    tx.execute_unprepared(&format!(
        "INSERT INTO user_counts (tenant_id, seat_type, users, active, entitled, waiting) \
         SELECT tenant_id, seat_type, users, active, entitled, waiting FROM ({RECOUNT}) a"
    ))
    .await?;
    tx.commit().await?;
    Ok(())
}
