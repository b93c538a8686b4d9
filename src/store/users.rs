//! User rows and their email index.

use std::collections::HashMap;

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryTrait};
use serde_json::Value;

use super::entities::{user, user_email};
use super::sql::SqlBuilder;
use super::{now, Reader, StoreError, Writer};
use crate::entitlements::CheckRow;
use sea_orm::sea_query::InsertStatement;

/// The indexed columns derived from a user document: the document is the truth, these
/// columns exist so filters, sorting and uniqueness run on indexes.
struct UserColumns {
    user_name: String,
    external_id: Option<String>,
    display_name: Option<String>,
    active: bool,
}

fn columns(doc: &Value) -> UserColumns {
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    UserColumns {
        user_name: text("userName").unwrap_or_default(),
        external_id: text("externalId"),
        display_name: text("displayName"),
        // RFC 7643 leaves the default to the provider; a user created without `active` is active.
        active: doc.get("active").and_then(Value::as_bool).unwrap_or(true),
    }
}

/// Reads the `active` flag of a user document (absent means active).
pub fn doc_active(doc: &Value) -> bool {
    columns(doc).active
}

/// The license state written with a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatState {
    pub entitled: bool,
    pub seat_type: String,
    pub reason: &'static str,
}

/// A new user with its e-mails, not yet written: the row as it will be, and what writes it.
/// The write path runs its inserts in the statement that also writes the create's audit entry
/// and event (`events::emit_with_writes`), or, in a batch, with the other creates' rows as
/// multi-row inserts ([`NewUser::insert_many`]): on PostgreSQL a create is one round trip under
/// the tenant's lock, or part of one. A taken `userName` fails that statement with
/// [`StoreError::UniqueViolation`].
#[derive(Debug, Clone)]
pub struct NewUser {
    pub row: user::Model,
    active: user::ActiveModel,
    emails: Vec<user_email::ActiveModel>,
}

impl NewUser {
    /// The user `doc` with id `id` and license state `seat`, created now.
    pub fn new(tenant_id: &str, id: &str, doc: &Value, seat: &SeatState) -> Result<Self, StoreError> {
        let c = columns(doc);
        let t = now();
        let active = user::ActiveModel {
            id: Set(id.to_string()),
            tenant_id: Set(tenant_id.to_string()),
            user_name_norm: Set(c.user_name.to_lowercase()),
            user_name: Set(c.user_name),
            external_id: Set(c.external_id),
            display_name_norm: Set(c.display_name.as_deref().map(str::to_lowercase)),
            display_name: Set(c.display_name),
            active: Set(c.active),
            doc: Set(super::doc_text(doc)),
            version: Set(1),
            created_at: Set(t),
            updated_at: Set(t),
            entitled: Set(seat.entitled),
            seat_type: Set(seat.seat_type.clone()),
            entitlement_reason: Set(seat.reason.to_string()),
            entitlement_updated: Set(Some(t)),
            seat_since: Set(Some(t)),
        };
        Ok(NewUser {
            row: sea_orm::TryIntoModel::try_into_model(active.clone())?,
            emails: email_rows(tenant_id, id, doc),
            active,
        })
    }

    /// The inserts of this user and its e-mails.
    pub fn statements(self) -> Vec<InsertStatement> {
        Self::insert_many(vec![self])
    }

    /// The inserts of many new users: one multi-row insert per table (PostgreSQL plans a
    /// statement of a few large inserts much faster than one of many small ones).
    pub fn insert_many(users: Vec<NewUser>) -> Vec<InsertStatement> {
        let (mut rows, mut emails) = (Vec::with_capacity(users.len()), Vec::new());
        for u in users {
            rows.push(u.active);
            emails.extend(u.emails);
        }
        let mut writes = Vec::with_capacity(2);
        if !rows.is_empty() {
            writes.push(user::Entity::insert_many(rows).into_query());
        }
        if !emails.is_empty() {
            writes.push(user_email::Entity::insert_many(emails).into_query());
        }
        writes
    }
}

/// Inserts a new user with its e-mails, statement after statement (the write path runs
/// [`NewUser`]'s inserts with the rest of its create instead).
pub async fn insert(
    conn: &impl Writer,
    tenant_id: &str,
    id: &str,
    doc: &Value,
    seat: &SeatState,
) -> Result<user::Model, StoreError> {
    let new = NewUser::new(tenant_id, id, doc, seat)?;
    let row = new.row.clone();
    conn.touched(id);
    for stmt in &new.statements() {
        let mut b = SqlBuilder::new(conn.backend());
        b.query(stmt);
        conn.write(b.build()).await?;
    }
    Ok(row)
}

/// A user document's `userName` as the uniqueness index compares it (lower-cased).
pub fn user_name_norm(doc: &Value) -> String {
    columns(doc).user_name.to_lowercase()
}

/// Which of `names` (lower-cased userNames) the tenant's users already hold.
pub async fn taken_user_names(
    conn: &impl Reader,
    tenant_id: &str,
    names: &[String],
) -> Result<std::collections::HashSet<String>, StoreError> {
    if names.is_empty() {
        return Ok(Default::default());
    }
    let mut b = SqlBuilder::new(conn.backend());
    b.push("SELECT user_name_norm FROM users WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND user_name_norm IN ")
        .bind_list(names.iter().cloned());
    conn.rows(b.build())
        .await?
        .iter()
        .map(|r| Ok(r.get::<String>(0)?))
        .collect()
}

/// Replaces a user's document and license state, bumping its version. `seat_since` moves when
/// the user gains a seat or starts waiting for one.
pub async fn update(
    conn: &impl Writer,
    row: &user::Model,
    doc: &Value,
    seat: &SeatState,
) -> Result<user::Model, StoreError> {
    let c = columns(doc);
    let t = now();
    conn.touched(&row.id);
    let mut active: user::ActiveModel = row.clone().into();
    if row.entitled != seat.entitled || row.seat_type != seat.seat_type || row.entitlement_reason != seat.reason {
        active.entitled = Set(seat.entitled);
        active.seat_type = Set(seat.seat_type.clone());
        active.entitlement_reason = Set(seat.reason.to_string());
        active.entitlement_updated = Set(Some(t));
        if row.entitled != seat.entitled || row.seat_type != seat.seat_type {
            active.seat_since = Set(Some(t));
        }
    }
    // Only the columns that changed: SQLite rewrites the entries of every index over a column
    // in the SET list, equal or not, and a deactivation then dirtied three index pages at
    // random besides the row's (`bench/RESULTS.md`).
    set_if_changed(
        &mut active.user_name_norm,
        &row.user_name_norm,
        c.user_name.to_lowercase(),
    );
    set_if_changed(&mut active.user_name, &row.user_name, c.user_name);
    set_if_changed(&mut active.external_id, &row.external_id, c.external_id);
    let display_name_norm = c.display_name.as_deref().map(str::to_lowercase);
    set_if_changed(&mut active.display_name_norm, &row.display_name_norm, display_name_norm);
    set_if_changed(&mut active.display_name, &row.display_name, c.display_name);
    set_if_changed(&mut active.active, &row.active, c.active);
    active.doc = Set(super::doc_text(doc));
    active.version = Set(row.version + 1);
    active.updated_at = Set(t);
    let model = super::update_row(conn, active).await?;
    // Most updates (an IdP deactivating, renaming) leave the e-mails alone; their index rows
    // are rewritten only when the list changed.
    if emails_changed(&row.doc, doc.get("emails")) {
        let delete = user_email::Entity::delete_many()
            .filter(user_email::Column::UserId.eq(row.id.as_str()))
            .build(conn.backend());
        conn.write(delete).await?;
        insert_emails(conn, &row.tenant_id, &row.id, doc).await?;
    }
    Ok(model)
}

/// Sets `field` to `new` when it differs from the row's `old` value.
fn set_if_changed<V>(field: &mut sea_orm::ActiveValue<V>, old: &V, new: V)
where
    V: PartialEq + Into<sea_orm::Value>,
{
    if *old != new {
        *field = Set(new);
    }
}

/// Finds a user of a tenant by id.
pub async fn find(conn: &impl Reader, tenant_id: &str, id: &str) -> Result<Option<user::Model>, StoreError> {
    Ok(super::unique(
        conn,
        user::Entity::find_by_id(id.to_string()).filter(user::Column::TenantId.eq(tenant_id)),
    )
    .await?)
}

/// An SQL expression over a user row `r`: its direct groups as a JSON list of
/// `[id, displayName, sort key]`, in no particular order ([`parse_member_of`] sorts them).
/// Reading it beside the user makes a GET (or a list page) one statement. On SQLite an
/// `ORDER BY` inside the aggregate opened a temporary B-tree per user, even one in no group:
/// 13 % of the instructions of a `GET /Users/{id}` (callgrind, `bench/RESULTS.md`).
pub fn member_of_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "(SELECT COALESCE(json_agg(json_build_array(g.id, g.display_name, g.display_name_norm)), '[]')::text \
             FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.tenant_id = r.tenant_id AND m.member_id = r.id)"
        }
        _ => {
            "(SELECT json_group_array(json_array(g.id, g.display_name, g.display_name_norm)) \
             FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.tenant_id = r.tenant_id AND m.member_id = r.id)"
        }
    }
}

/// The groups [`member_of_sql`] read, ordered by display name (case-insensitively), then id.
pub fn parse_member_of(json: Option<&str>) -> Result<Vec<GroupRef>, DbErr> {
    let rows: Vec<(String, String, Option<String>)> = serde_json::from_str(json.unwrap_or("[]"))
        .map_err(|e| DbErr::Type(format!("a user's groups are not a list of [id, displayName, key]: {e}")))?;
    Ok(in_display_order(rows))
}

/// `[id, displayName, sort key]` rows as a user's groups: by display name (case-insensitively),
/// then id, the order GET and lists both give.
fn in_display_order(mut rows: Vec<(String, String, Option<String>)>) -> Vec<GroupRef> {
    rows.sort_by(|a, b| (&a.2, &a.0).cmp(&(&b.2, &b.0)));
    rows.into_iter()
        .map(|(id, display_name, _)| GroupRef { id, display_name })
        .collect()
}

/// The direct groups of the tenant's users whose ids lie from `first` to `last`, by user id,
/// each list in [`parse_member_of`]'s order: one range scan of the memberships' `(tenant_id,
/// member_id)` index. A page of users listed in id order without a filter is exactly the
/// tenant's users in that range; [`member_of_sql`] beside each of its rows costs PostgreSQL an
/// index probe per user, more than the page itself (`bench/RESULTS.md`).
pub async fn groups_of_id_range(
    conn: &impl Reader,
    tenant_id: &str,
    first: &str,
    last: &str,
) -> Result<HashMap<String, Vec<GroupRef>>, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push(
        "SELECT m.member_id, g.id, g.display_name, g.display_name_norm FROM group_members m \
         JOIN groups g ON g.id = m.group_id WHERE m.tenant_id = ",
    )
    .bind(tenant_id.to_string())
    .push(" AND m.member_id >= ")
    .bind(first.to_string())
    .push(" AND m.member_id <= ")
    .bind(last.to_string())
    .push(" AND m.member_type = 'User'");
    let mut by_user: HashMap<String, Vec<(String, String, Option<String>)>> = HashMap::new();
    for row in conn.rows(b.build()).await? {
        let group = (row.get(1)?, row.get(2)?, Some(row.get(3)?));
        by_user.entry(row.get(0)?).or_default().push(group);
    }
    Ok(by_user
        .into_iter()
        .map(|(user, groups)| (user, in_display_order(groups)))
        .collect())
}

/// A user and its direct groups, in one statement (see [`member_of_sql`]).
pub async fn find_with_groups(
    conn: &impl Reader,
    tenant_id: &str,
    id: &str,
) -> Result<Option<(user::Model, Vec<GroupRef>)>, StoreError> {
    let backend = conn.backend();
    let mut b = SqlBuilder::new(backend);
    b.push("SELECT r.*, ")
        .push(member_of_sql(backend))
        .push(" AS extra FROM users r WHERE r.id = ")
        .bind(id.to_string())
        .push(" AND r.tenant_id = ")
        .bind(tenant_id.to_string());
    let Some((user, member_of)) = conn.models::<user::Entity>(b.build(), true).await?.into_iter().next() else {
        return Ok(None);
    };
    let groups = parse_member_of(member_of.as_deref())?;
    Ok(Some((user, groups)))
}

/// Deletes a user and its memberships. Returns false when no such user exists in the tenant.
pub async fn delete(conn: &impl Writer, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
    conn.touched(id);
    let backend = conn.backend();
    let mut b = SqlBuilder::new(backend);
    b.push("DELETE FROM group_members WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND member_id = ")
        .bind(id.to_string());
    conn.write(b.build()).await?;
    let emails = user_email::Entity::delete_many()
        .filter(user_email::Column::UserId.eq(id))
        .build(backend);
    conn.write(emails).await?;
    let user = user::Entity::delete_many()
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::TenantId.eq(tenant_id))
        .build(backend);
    Ok(conn.write(user).await? > 0)
}

/// Whether a stored document's `emails` differ from `new` (an unreadable document differs, so
/// its index rows are rewritten).
fn emails_changed(stored: &str, new: Option<&Value>) -> bool {
    #[derive(serde::Deserialize)]
    struct Emails {
        emails: Option<Value>,
    }
    serde_json::from_str::<Emails>(stored).map_or(true, |old| old.emails.as_ref() != new)
}

/// Writes the `user_emails` index rows of a document's `emails` (the user has none yet).
async fn insert_emails(conn: &impl Writer, tenant_id: &str, user_id: &str, doc: &Value) -> Result<(), StoreError> {
    write_emails(conn, email_rows(tenant_id, user_id, doc)).await
}

async fn write_emails(conn: &impl Writer, rows: Vec<user_email::ActiveModel>) -> Result<(), StoreError> {
    if !rows.is_empty() {
        conn.write(user_email::Entity::insert_many(rows).build(conn.backend()))
            .await?;
    }
    Ok(())
}

/// The e-mail index rows of a user's document.
fn email_rows(tenant_id: &str, user_id: &str, doc: &Value) -> Vec<user_email::ActiveModel> {
    let Some(emails) = doc.get("emails").and_then(Value::as_array) else {
        return Vec::new();
    };
    emails
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let value = e.get("value")?.as_str()?;
            Some(user_email::ActiveModel {
                user_id: Set(user_id.to_string()),
                position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
                tenant_id: Set(tenant_id.to_string()),
                value_norm: Set(value.to_lowercase()),
                kind: Set(e.get("type").and_then(Value::as_str).map(str::to_string)),
                is_primary: Set(e.get("primary").and_then(Value::as_bool).unwrap_or(false)),
            })
        })
        .collect()
}

/// A group a user belongs to (the reverse `groups` attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display_name: String,
}

/// Every user of a tenant with its seat state, for rebalancing after a license change.
pub async fn seat_holders(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Vec<crate::license::decision::SeatHolder>, StoreError> {
    let mut b = SqlBuilder::new(conn.get_database_backend());
    // A user an admin holds (reason `manual`) counts as inactive: no seat, and never in line.
    b.push("SELECT id, seat_type, active AND entitlement_reason <> 'manual', entitled, COALESCE(seat_since, created_at) FROM users WHERE tenant_id = ")
        .bind(tenant_id.to_string());
    let mut out = Vec::new();
    for row in conn.query_all_raw(b.build()).await? {
        out.push(crate::license::decision::SeatHolder {
            id: row.try_get_by_index(0)?,
            seat_type: row.try_get_by_index(1)?,
            active: row.try_get_by_index(2)?,
            entitled: row.try_get_by_index(3)?,
            since: row.try_get_by_index(4)?,
        });
    }
    Ok(out)
}

/// Sets the verdict of many users at once (in batches), bumping their versions. The ids must
/// come from one tenant's rows read in the caller's transaction.
pub async fn set_entitlement(
    conn: &impl Writer,
    ids: &[String],
    entitled: bool,
    reason: &str,
) -> Result<(), StoreError> {
    let t = now();
    ids.iter().for_each(|id| conn.touched(id));
    for chunk in ids.chunks(500) {
        let mut b = SqlBuilder::new(conn.backend());
        b.push("UPDATE users SET entitled = ")
            .bind(entitled)
            .push(", entitlement_reason = ")
            .bind(reason.to_string())
            .push(", entitlement_updated = ")
            .bind(t)
            .push(", seat_since = ")
            .bind(t)
            .push(", updated_at = ")
            .bind(t)
            // By primary key only: the ids were read from this tenant's rows inside the same
            // locked transaction, and a tenant predicate lets PostgreSQL's generic plan pick the
            // tenant index and filter thousands of rows per batch (10x slower, measured).
            .push(", version = version + 1 WHERE id IN ")
            .bind_list(chunk.iter().cloned());
        conn.write(b.build()).await?;
    }
    Ok(())
}

/// Is `row` waiting for a seat: active, not entitled, not held by an admin? (The predicate of
/// [`oldest_waiting`] and of the `waiting` seat counter.)
pub fn is_waiting(row: &user::Model) -> bool {
    row.active && !row.entitled && row.entitlement_reason != crate::license::EntitlementReason::Manual.as_str()
}

/// The `limit` users of a pool who have waited longest for a seat (active, not entitled, not
/// held by an admin).
pub async fn oldest_waiting(
    conn: &impl Reader,
    tenant_id: &str,
    seat_type: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("SELECT id FROM users WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND seat_type = ")
        .bind(seat_type.to_string())
        // Literal predicates, the same text as the partial index `ix_users_waiting` (migration
        // 000008), which a planner can only match against literals, not bound values.
        .push(" AND active AND NOT entitled AND entitlement_reason <> 'manual' ORDER BY COALESCE(seat_since, created_at), id")
        .limit(limit, 0);
    super::strings(conn, b.build()).await
}

/// The `userName` of each of the given users.
pub async fn user_names(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    ids: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut b = SqlBuilder::new(conn.get_database_backend());
        b.push("SELECT id, user_name FROM users WHERE tenant_id = ")
            .bind(tenant_id.to_string())
            .push(" AND id IN ")
            .bind_list(chunk.iter().cloned());
        for row in conn.query_all_raw(b.build()).await? {
            out.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        }
    }
    Ok(out)
}

/// A user of a tenant by id, or else by userName (case-insensitive): how products name users.
/// One statement whose two halves each use their own index (an `OR` let PostgreSQL's planner
/// filter the whole tenant through the tenant index); an id match wins over a userName match.
pub async fn find_for_check(conn: &impl Reader, tenant_id: &str, key: &str) -> Result<Option<user::Model>, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("SELECT * FROM users WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND id = ")
        .bind(key.to_string())
        .push(" UNION ALL SELECT * FROM users WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND user_name_norm = ")
        .bind(key.to_lowercase());
    let rows = conn.models::<user::Entity>(b.build(), false).await?;
    Ok(rows.into_iter().map(|(row, _)| row).max_by_key(|row| row.id == key))
}

/// The columns an entitlement check reads, in [`CheckRow`]'s order.
const CHECK_COLUMNS: &str =
    "SELECT id, user_name_norm, active, entitled, seat_type, entitlement_reason FROM users WHERE tenant_id = ";

fn check_row(row: &super::RawRow) -> Result<CheckRow, StoreError> {
    Ok(CheckRow {
        id: row.get(0)?,
        name_norm: row.get(1)?,
        active: row.get(2)?,
        entitled: row.get(3)?,
        seat_type: row.get(4)?,
        reason: row.get(5)?,
    })
}

/// Up to `limit` of the tenant's users as entitlement checks need them, in id order, after the
/// id `after` (`""`: from the first).
pub async fn check_rows_page(
    conn: &impl Reader,
    tenant_id: &str,
    after: &str,
    limit: u64,
) -> Result<Vec<CheckRow>, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push(CHECK_COLUMNS)
        .bind(tenant_id.to_string())
        .push(" AND id > ")
        .bind(after.to_string())
        .push(" ORDER BY id LIMIT ")
        .push(&limit.to_string());
    conn.rows(b.build()).await?.iter().map(check_row).collect()
}

/// The users among `ids` as entitlement checks need them (a missing id was deleted).
pub async fn check_rows(conn: &impl Reader, tenant_id: &str, ids: &[String]) -> Result<Vec<CheckRow>, StoreError> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut b = SqlBuilder::new(conn.backend());
        b.push(CHECK_COLUMNS)
            .bind(tenant_id.to_string())
            .push(" AND id IN ")
            .bind_list(chunk.iter().cloned());
        for row in conn.rows(b.build()).await? {
            found.push(check_row(&row)?);
        }
    }
    Ok(found)
}

/// Moves users to another seat pool without a seat (they wait there, in their old order). The
/// ids must come from one tenant's rows read in the caller's transaction.
pub async fn move_to_pool_waiting(conn: &impl Writer, ids: &[String], seat_type: &str) -> Result<(), StoreError> {
    let t = now();
    ids.iter().for_each(|id| conn.touched(id));
    for chunk in ids.chunks(500) {
        let mut b = SqlBuilder::new(conn.backend());
        b.push("UPDATE users SET seat_type = ")
            .bind(seat_type.to_string())
            .push(", entitled = ")
            .bind(false)
            .push(
                // An admin's hold (`manual`) moves with the user.
                ", entitlement_reason = CASE WHEN entitlement_reason = 'manual' THEN 'manual' WHEN active THEN 'seat_limit' ELSE 'inactive' END, entitlement_updated = ",
            )
            .bind(t)
            .push(", updated_at = ")
            .bind(t)
            // By primary key only: the ids were read from this tenant's rows inside the same
            // locked transaction, and a tenant predicate lets PostgreSQL's generic plan pick the
            // tenant index and filter thousands of rows per batch (10x slower, measured).
            .push(", version = version + 1 WHERE id IN ")
            .bind_list(chunk.iter().cloned());
        conn.write(b.build()).await?;
    }
    Ok(())
}

/// Users of a tenant by id, in batches.
pub async fn find_many(
    conn: &impl Reader,
    tenant_id: &str,
    ids: &[String],
) -> Result<HashMap<String, user::Model>, StoreError> {
    use sea_orm::QueryTrait;
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let select = user::Entity::find()
            .filter(user::Column::TenantId.eq(tenant_id))
            .filter(user::Column::Id.is_in(chunk.iter().cloned()));
        let rows = conn.models::<user::Entity>(select.build(conn.backend()), false).await?;
        out.extend(rows.into_iter().map(|(r, _)| (r.id.clone(), r)));
    }
    Ok(out)
}

/// Which users an admin listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    All,
    Active,
    Inactive,
    Entitled,
    /// Active without a seat.
    Waiting,
}

/// A page of a tenant's users for the admin UI, by `userName`, after the `(userName, id)`
/// of the previous page's last row. `q` matches userName or displayName (case-insensitive).
pub async fn admin_page(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    q: Option<&str>,
    status: UserStatus,
    after: Option<(String, String)>,
    limit: u64,
) -> Result<Vec<user::Model>, StoreError> {
    use sea_orm::sea_query::{Condition, LikeExpr};
    use sea_orm::{QueryOrder, QuerySelect};
    let mut find = user::Entity::find().filter(user::Column::TenantId.eq(tenant_id));
    if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = || LikeExpr::new(format!("%{escaped}%")).escape('\\');
        find = find.filter(
            Condition::any()
                .add(user::Column::UserNameNorm.like(pattern()))
                .add(user::Column::DisplayNameNorm.like(pattern())),
        );
    }
    find = match status {
        UserStatus::All => find,
        UserStatus::Active => find.filter(user::Column::Active.eq(true)),
        UserStatus::Inactive => find.filter(user::Column::Active.eq(false)),
        UserStatus::Entitled => find.filter(user::Column::Entitled.eq(true)),
        UserStatus::Waiting => find
            .filter(user::Column::Active.eq(true))
            .filter(user::Column::Entitled.eq(false)),
    };
    if let Some((name, id)) = after {
        find = find.filter(
            Condition::any().add(user::Column::UserNameNorm.gt(name.clone())).add(
                Condition::all()
                    .add(user::Column::UserNameNorm.eq(name))
                    .add(user::Column::Id.gt(id)),
            ),
        );
    }
    Ok(find
        .order_by_asc(user::Column::UserNameNorm)
        .order_by_asc(user::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_columns_are_set() {
        let mut name = sea_orm::ActiveValue::Unchanged("alice".to_string());
        set_if_changed(&mut name, &"alice".to_string(), "alice".to_string());
        assert!(!name.is_set(), "an equal value leaves the column out of the UPDATE");
        set_if_changed(&mut name, &"alice".to_string(), "alicia".to_string());
        assert_eq!(name, Set("alicia".to_string()));
        let mut external = sea_orm::ActiveValue::Unchanged(Some("x".to_string()));
        set_if_changed(&mut external, &Some("x".to_string()), None);
        assert_eq!(external, Set(None));
    }

    #[test]
    fn emails_change_only_when_the_list_does() {
        let stored = r#"{"userName":"a","emails":[{"value":"a@x.com","primary":true}],"active":true}"#;
        let same = serde_json::json!([{"value": "a@x.com", "primary": true}]);
        let other = serde_json::json!([{"value": "b@x.com", "primary": true}]);
        assert!(!emails_changed(stored, Some(&same)));
        assert!(emails_changed(stored, Some(&other)));
        assert!(emails_changed(stored, None));
        assert!(!emails_changed(r#"{"userName":"a"}"#, None));
        assert!(emails_changed(r#"{"userName":"a"}"#, Some(&same)));
        assert!(emails_changed("not json", None), "an unreadable document is rewritten");
    }

    #[test]
    fn groups_are_ordered_by_display_name_then_id() {
        let read = r#"[["g3","beta","beta"],["g2","Alpha","alpha"],["g1","alpha","alpha"]]"#;
        let groups = parse_member_of(Some(read)).unwrap();
        let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["g1", "g2", "g3"]);
        assert_eq!(groups[1].display_name, "Alpha");
        assert!(parse_member_of(None).unwrap().is_empty());
        assert!(parse_member_of(Some("[[1]]")).is_err());
    }
}
