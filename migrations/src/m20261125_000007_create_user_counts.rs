//! Per-tenant, per-seat-pool user counters, kept by database triggers.
//!
//! Before this, every seat decision counted the pool's entitled users (`COUNT(*)` under the
//! tenant lock), every unfiltered list page counted the tenant's users, and every seat-usage
//! snapshot grouped the whole tenant: writes and list pages slowed down linearly with tenant
//! size (17 creates a second at 1,000,000 users, bench/RESULTS.md).
//!
//! The counters are maintained by triggers rather than by the application so that every path
//! that touches `users` — SCIM writes, license changes, the sweeper, seat mappings, admin holds,
//! the CLI, an operator's manual SQL — keeps them exact, inside the same transaction. Existing
//! rows are counted once here. `seatbridge db check-counts` compares them with a full recount.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserCounts {
    Table,
    TenantId,
    SeatType,
    Users,
    Active,
    Entitled,
    Waiting,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

/// What one user row adds to its pool's counters, as SQL over a row alias (`NEW` or `OLD`).
/// "Waiting" matches the seat engine: active, without a seat, and not held by an admin (the same
/// predicate as `store::users::oldest_waiting`, migration 000008's index and the recount of
/// `store::user_counts`; migrations cannot import application code).
fn contribution(row: &str) -> [String; 4] {
    [
        "1".to_string(),
        format!("CASE WHEN {row}.active THEN 1 ELSE 0 END"),
        format!("CASE WHEN {row}.entitled THEN 1 ELSE 0 END"),
        format!(
            "CASE WHEN {row}.active AND NOT {row}.entitled AND {row}.entitlement_reason <> 'manual' THEN 1 ELSE 0 END"
        ),
    ]
}

/// `INSERT … ON CONFLICT DO UPDATE` adding `NEW`'s contribution (the same text on both backends).
fn add_new() -> String {
    let [u, a, e, w] = contribution("NEW");
    format!(
        "INSERT INTO user_counts (tenant_id, seat_type, users, active, entitled, waiting) \
         VALUES (NEW.tenant_id, NEW.seat_type, {u}, {a}, {e}, {w}) \
         ON CONFLICT (tenant_id, seat_type) DO UPDATE SET \
         users = user_counts.users + excluded.users, active = user_counts.active + excluded.active, \
         entitled = user_counts.entitled + excluded.entitled, waiting = user_counts.waiting + excluded.waiting"
    )
}

/// `UPDATE` taking `OLD`'s contribution away.
fn remove_old() -> String {
    let [u, a, e, w] = contribution("OLD");
    format!(
        "UPDATE user_counts SET users = users - {u}, active = active - ({a}), \
         entitled = entitled - ({e}), waiting = waiting - ({w}) \
         WHERE tenant_id = OLD.tenant_id AND seat_type = OLD.seat_type"
    )
}

/// The columns whose change moves a user between counters; other updates skip the trigger.
fn counted_change() -> String {
    ["tenant_id", "seat_type", "active", "entitled", "entitlement_reason"]
        .iter()
        .map(|c| format!("OLD.{c} IS NOT NEW.{c}"))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// SQLite: row-level triggers (SQLite has no statement-level ones).
fn sqlite_triggers() -> Vec<String> {
    vec![
        format!(
            "CREATE TRIGGER trg_user_counts_insert AFTER INSERT ON users BEGIN {}; END",
            add_new()
        ),
        format!(
            "CREATE TRIGGER trg_user_counts_delete AFTER DELETE ON users BEGIN {}; END",
            remove_old()
        ),
        format!(
            "CREATE TRIGGER trg_user_counts_update AFTER UPDATE ON users WHEN {} BEGIN {}; {}; END",
            counted_change(),
            remove_old(),
            add_new()
        ),
    ]
}

/// PostgreSQL: statement-level triggers over transition tables, one counter update per
/// statement and pool. Row-level triggers updated the same counter row once per user, and
/// PostgreSQL writes a new row version each time: a statement touching N users of one pool
/// (a seed, a license change re-seating thousands) cost O(N²) — 100,000 inserts took 153 s
/// instead of 7.5 s. SQLite updates in place and keeps the row-level triggers above.
fn postgres_triggers() -> Vec<String> {
    let sums = |rows: &str, sign: &str| {
        let [u, a, e, w] = contribution(rows);
        format!(
            "SELECT tenant_id, seat_type, {sign}{u} AS users, {sign}({a}) AS active, \
             {sign}({e}) AS entitled, {sign}({w}) AS waiting FROM {rows}"
        )
    };
    // Net change per pool; pools whose counts did not move (profile updates) are not written.
    let apply = |deltas: String| {
        format!(
            "INSERT INTO user_counts (tenant_id, seat_type, users, active, entitled, waiting) \
             SELECT tenant_id, seat_type, SUM(users), SUM(active), SUM(entitled), SUM(waiting) \
             FROM ({deltas}) d GROUP BY tenant_id, seat_type \
             HAVING SUM(users) <> 0 OR SUM(active) <> 0 OR SUM(entitled) <> 0 OR SUM(waiting) <> 0 \
             ON CONFLICT (tenant_id, seat_type) DO UPDATE SET \
             users = user_counts.users + excluded.users, active = user_counts.active + excluded.active, \
             entitled = user_counts.entitled + excluded.entitled, waiting = user_counts.waiting + excluded.waiting"
        )
    };
    // Deletes only decrement: when a tenant is deleted, its counter rows may already be gone
    // (both cascade), and an upsert would re-create them for a tenant that no longer exists.
    let [u, a, e, w] = contribution("old_rows");
    let subtract = format!(
        "UPDATE user_counts c SET users = c.users - d.users, active = c.active - d.active, \
         entitled = c.entitled - d.entitled, waiting = c.waiting - d.waiting \
         FROM (SELECT tenant_id, seat_type, SUM({u}) AS users, SUM({a}) AS active, SUM({e}) AS entitled, \
         SUM({w}) AS waiting FROM old_rows GROUP BY tenant_id, seat_type) d \
         WHERE c.tenant_id = d.tenant_id AND c.seat_type = d.seat_type"
    );
    let function = format!(
        "CREATE FUNCTION user_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF TG_OP = 'INSERT' THEN {}; \
         ELSIF TG_OP = 'DELETE' THEN {subtract}; \
         ELSE {}; END IF; \
         RETURN NULL; END $$",
        apply(sums("new_rows", "")),
        apply(format!("{} UNION ALL {}", sums("new_rows", ""), sums("old_rows", "-"))),
    );
    // A trigger with transition tables may have only one event, hence three.
    let trigger = |name: &str, event: &str, tables: &str| {
        format!(
            "CREATE TRIGGER {name} AFTER {event} ON users REFERENCING {tables} \
             FOR EACH STATEMENT EXECUTE FUNCTION user_counts_apply()"
        )
    };
    vec![
        function,
        trigger("trg_user_counts_insert", "INSERT", "NEW TABLE AS new_rows"),
        trigger(
            "trg_user_counts_update",
            "UPDATE",
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
        trigger("trg_user_counts_delete", "DELETE", "OLD TABLE AS old_rows"),
    ]
}

/// Counts the users that exist when the migration runs.
const BACKFILL: &str = "INSERT INTO user_counts (tenant_id, seat_type, users, active, entitled, waiting) \
    SELECT tenant_id, seat_type, COUNT(*), \
    SUM(CASE WHEN active THEN 1 ELSE 0 END), \
    SUM(CASE WHEN entitled THEN 1 ELSE 0 END), \
    SUM(CASE WHEN active AND NOT entitled AND entitlement_reason <> 'manual' THEN 1 ELSE 0 END) \
    FROM users GROUP BY tenant_id, seat_type";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(UserCounts::Table)
                .col(string(UserCounts::TenantId))
                .col(string(UserCounts::SeatType))
                .col(big_integer(UserCounts::Users).default(0))
                .col(big_integer(UserCounts::Active).default(0))
                .col(big_integer(UserCounts::Entitled).default(0))
                .col(big_integer(UserCounts::Waiting).default(0))
                .primary_key(Index::create().col(UserCounts::TenantId).col(UserCounts::SeatType))
                .foreign_key(
                    ForeignKey::create()
                        .from(UserCounts::Table, UserCounts::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        let triggers = match m.get_database_backend() {
            DbBackend::Postgres => postgres_triggers(),
            _ => sqlite_triggers(),
        };
        for sql in triggers {
            db.execute_unprepared(&sql).await?;
        }
        db.execute_unprepared(BACKFILL).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        let drops: &[&str] = match m.get_database_backend() {
            DbBackend::Postgres => &[
                "DROP TRIGGER IF EXISTS trg_user_counts_insert ON users",
                "DROP TRIGGER IF EXISTS trg_user_counts_update ON users",
                "DROP TRIGGER IF EXISTS trg_user_counts_delete ON users",
                "DROP FUNCTION IF EXISTS user_counts_apply()",
            ],
            _ => &[
                "DROP TRIGGER IF EXISTS trg_user_counts_update",
                "DROP TRIGGER IF EXISTS trg_user_counts_delete",
                "DROP TRIGGER IF EXISTS trg_user_counts_insert",
            ],
        };
        for sql in drops {
            db.execute_unprepared(sql).await?;
        }
        m.drop_table(Table::drop().table(UserCounts::Table).to_owned()).await
    }
}
