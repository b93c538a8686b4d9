//! Group rows and memberships. Membership changes touch only the rows they name, so a group
//! with 50,000 members costs the same to change as one with 10.

use std::collections::HashMap;

use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait};
use serde_json::Value;

use super::entities::group;
use super::sql::SqlBuilder;
use super::{now, Reader, StoreError, Writer};

/// SQLite allows 32,766 bound values per statement; stay far below it.
const CHUNK: usize = 500;

fn display_name(doc: &Value) -> String {
    doc.get("displayName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn external_id(doc: &Value) -> Option<String> {
    doc.get("externalId").and_then(Value::as_str).map(str::to_string)
}

/// Inserts a new group (without members).
pub async fn insert(conn: &impl Writer, tenant_id: &str, id: &str, doc: &Value) -> Result<group::Model, StoreError> {
    let t = now();
    let name = display_name(doc);
    let row = group::ActiveModel {
        id: Set(id.to_string()),
        tenant_id: Set(tenant_id.to_string()),
        display_name_norm: Set(name.to_lowercase()),
        display_name: Set(name),
        external_id: Set(external_id(doc)),
        doc: Set(super::doc_text(doc)),
        version: Set(1),
        created_at: Set(t),
        updated_at: Set(t),
    };
    super::insert_row(conn, row).await
}

/// Replaces a group's document (members untouched), bumping its version.
pub async fn update(conn: &impl Writer, row: &group::Model, doc: &Value) -> Result<group::Model, StoreError> {
    let name = display_name(doc);
    let mut active: group::ActiveModel = row.clone().into();
    active.display_name_norm = Set(name.to_lowercase());
    active.display_name = Set(name);
    active.external_id = Set(external_id(doc));
    active.doc = Set(super::doc_text(doc));
    active.version = Set(row.version + 1);
    active.updated_at = Set(now());
    super::update_row(conn, active).await
}

/// Finds a group of a tenant by id.
pub async fn find(conn: &impl Reader, tenant_id: &str, id: &str) -> Result<Option<group::Model>, StoreError> {
    Ok(super::unique(
        conn,
        group::Entity::find_by_id(id.to_string()).filter(group::Column::TenantId.eq(tenant_id)),
    )
    .await?)
}

/// Deletes a group, its memberships, and its membership in other groups.
pub async fn delete(conn: &impl Writer, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("DELETE FROM group_members WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND (group_id = ")
        .bind(id.to_string())
        .push(" OR member_id = ")
        .bind(id.to_string())
        .push(")");
    conn.write(b.build()).await?;
    let delete = group::Entity::delete_many()
        .filter(group::Column::Id.eq(id))
        .filter(group::Column::TenantId.eq(tenant_id))
        .build(conn.backend());
    Ok(conn.write(delete).await? > 0)
}

/// The resource type (`User` or `Group`) of each id that exists in the tenant.
pub async fn member_kinds(
    conn: &impl Reader,
    tenant_id: &str,
    ids: &[String],
) -> Result<HashMap<String, &'static str>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        for (table, kind) in [("users", "User"), ("groups", "Group")] {
            let mut b = SqlBuilder::new(conn.backend());
            b.push("SELECT id FROM ")
                .push(table)
                .push(" WHERE tenant_id = ")
                .bind(tenant_id.to_string())
                .push(" AND id IN ")
                .bind_list(chunk.iter().cloned());
            for id in super::strings(conn, b.build()).await? {
                out.insert(id, kind);
            }
        }
    }
    Ok(out)
}

/// Adds members (ids already checked to exist); adding an existing member is a no-op.
pub async fn add_members(
    conn: &impl Writer,
    tenant_id: &str,
    group_id: &str,
    members: &[(String, &'static str)],
) -> Result<(), StoreError> {
    let t = now();
    for chunk in members.chunks(CHUNK) {
        let mut b = SqlBuilder::new(conn.backend());
        b.push("INSERT INTO group_members (group_id, member_id, tenant_id, member_type, created_at) VALUES ");
        for (i, (id, kind)) in chunk.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push("(")
                .bind(group_id.to_string())
                .push(", ")
                .bind(id.clone())
                .push(", ")
                .bind(tenant_id.to_string())
                .push(", ")
                .bind(kind.to_string())
                .push(", ")
                .bind(t)
                .push(")");
        }
        b.push(" ON CONFLICT (group_id, member_id) DO NOTHING");
        conn.write(b.build()).await?;
    }
    Ok(())
}

/// Removes the listed members; ids that are not members are ignored.
pub async fn remove_members(conn: &impl Writer, group_id: &str, ids: &[String]) -> Result<(), StoreError> {
    for chunk in ids.chunks(CHUNK) {
        let mut b = SqlBuilder::new(conn.backend());
        b.push("DELETE FROM group_members WHERE group_id = ")
            .bind(group_id.to_string())
            .push(" AND member_id IN ")
            .bind_list(chunk.iter().cloned());
        conn.write(b.build()).await?;
    }
    Ok(())
}

/// Removes every member of a group.
pub async fn remove_all_members(conn: &impl Writer, group_id: &str) -> Result<(), StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("DELETE FROM group_members WHERE group_id = ")
        .bind(group_id.to_string());
    conn.write(b.build()).await?;
    Ok(())
}

/// Marks a group changed (new version, new lastModified) after its members changed.
pub async fn touch(conn: &impl Writer, row: &group::Model) -> Result<group::Model, StoreError> {
    let mut active: group::ActiveModel = row.clone().into();
    active.version = Set(row.version + 1);
    active.updated_at = Set(now());
    super::update_row(conn, active).await
}

/// One member of a group, with the display name the server fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub kind: String,
    pub display: Option<String>,
}

/// The members of each of the given groups, in the order they were added.
pub async fn members_of(
    conn: &impl ConnectionTrait,
    group_ids: &[&str],
) -> Result<HashMap<String, Vec<Member>>, StoreError> {
    let mut out: HashMap<String, Vec<Member>> = HashMap::new();
    if group_ids.is_empty() {
        return Ok(out);
    }
    let mut b = SqlBuilder::new(conn.get_database_backend());
    b.push(
        "SELECT m.group_id, m.member_id, m.member_type, COALESCE(u.display_name, u.user_name, g.display_name) \
         FROM group_members m LEFT JOIN users u ON u.id = m.member_id LEFT JOIN groups g ON g.id = m.member_id \
         WHERE m.group_id IN ",
    )
    .bind_list(group_ids.iter().map(|s| s.to_string()))
    .push(" ORDER BY m.group_id, m.created_at, m.member_id");
    for row in conn.query_all_raw(b.build()).await? {
        let group_id: String = row.try_get_by_index(0)?;
        out.entry(group_id).or_default().push(Member {
            id: row.try_get_by_index(1)?,
            kind: row.try_get_by_index(2)?,
            display: row.try_get_by_index(3)?,
        });
    }
    Ok(out)
}

/// Ids of the users (not nested groups) that are members of a group.
pub async fn member_user_ids(conn: &impl Reader, group_id: &str) -> Result<Vec<String>, StoreError> {
    let mut b = SqlBuilder::new(conn.backend());
    b.push("SELECT member_id FROM group_members WHERE group_id = ")
        .bind(group_id.to_string())
        .push(" AND member_type = 'User' ORDER BY member_id");
    super::strings(conn, b.build()).await
}

/// A group of a tenant by id or, failing that, by display name (case-insensitive).
pub async fn find_by_id_or_name(
    conn: &impl Reader,
    tenant_id: &str,
    key: &str,
) -> Result<Option<group::Model>, StoreError> {
    if let Some(g) = find(conn, tenant_id, key).await? {
        return Ok(Some(g));
    }
    Ok(super::unique(
        conn,
        group::Entity::find()
            .filter(group::Column::TenantId.eq(tenant_id))
            .filter(group::Column::DisplayNameNorm.eq(key.to_lowercase())),
    )
    .await?)
}
