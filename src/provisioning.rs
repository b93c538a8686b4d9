//! Provisioning: the service layer between the SCIM handlers and the store.
//!
//! Every state change runs in one write transaction (see [`store::begin_write`]), so a request
//! either lands whole or not at all. Every write of a user document passes through
//! [`Provisioning::write_user`]: that is where the license engine decides seats and tiers.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde_json::{json, Value};

use crate::auth::Tenant;
use crate::scim::error::ScimError;
use crate::scim::patch::{apply_patch, parse_patch_request, MemberChange, MemberRef};
use crate::scim::resource::{check_immutable, check_schemas, normalize_resource};
use crate::scim::schema::{ResourceKind, ResourceTypeDef, SchemaRegistry};
use crate::store::entities::{group, user};
use crate::store::listing::{list_page, ListError, ListQuery};
use crate::store::{self, groups, users, StoreError};

/// A resource as stored, ready to render: the canonical document (plus `groups`/`members`
/// when asked for) and its server-maintained metadata.
#[derive(Debug, Clone)]
pub struct StoredResource {
    pub id: String,
    pub doc: Value,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: i64,
}

/// `If-Match` precondition of a write (RFC 7644 §3.14).
#[derive(Debug, Clone, Copy)]
pub enum Precondition<'a> {
    None,
    IfMatch(&'a str),
}

impl From<StoreError> for ScimError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UniqueViolation(_) => {
                ScimError::Uniqueness("a resource with this unique attribute already exists".into())
            }
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database busy");
                ScimError::Unavailable("the database is busy; retry the request".into())
            }
            StoreError::Db(e) => {
                tracing::error!(error = %e, "database error");
                ScimError::Internal
            }
        }
    }
}

impl From<sea_orm::DbErr> for ScimError {
    fn from(err: sea_orm::DbErr) -> Self {
        StoreError::from(err).into()
    }
}

impl From<ListError> for ScimError {
    fn from(err: ListError) -> Self {
        match err {
            ListError::Filter(e) => ScimError::InvalidFilter(e.0),
            ListError::Store(e) => e.into(),
        }
    }
}

/// The provisioning service for one request.
pub struct Provisioning<'a> {
    pub db: &'a DatabaseConnection,
    pub schemas: &'a SchemaRegistry,
}

impl<'a> Provisioning<'a> {
    /// A service over a pool and the schema registry.
    pub fn new(db: &'a DatabaseConnection, schemas: &'a SchemaRegistry) -> Self {
        Provisioning { db, schemas }
    }

    fn rt(&self, kind: ResourceKind) -> &'a ResourceTypeDef {
        self.schemas.resource_type(kind)
    }

    // ---------------------------------------------------------------- users

    /// POST /Users.
    pub async fn create_user(&self, tenant: &Tenant, body: &Value) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::User);
        check_schemas(rt, body)?;
        let doc = normalize_resource(rt, body)?;
        let tx = store::begin_write(self.db).await?;
        let row = self.write_user(&tx, tenant, None, &doc).await?;
        tx.commit().await?;
        Ok(user_resource(&row, doc, None))
    }

    /// PUT /Users/{id}.
    pub async fn replace_user(
        &self,
        tenant: &Tenant,
        id: &str,
        body: &Value,
        pre: Precondition<'_>,
    ) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::User);
        check_schemas(rt, body)?;
        let doc = normalize_resource(rt, body)?;
        let tx = store::begin_write(self.db).await?;
        let row = self.load_user(&tx, tenant, id).await?;
        check_precondition(pre, row.version)?;
        check_immutable(rt, &parse_doc(&row.doc), &doc)?;
        let row = self.write_user(&tx, tenant, Some(&row), &doc).await?;
        tx.commit().await?;
        Ok(user_resource(&row, doc, None))
    }

    /// PATCH /Users/{id}. A PATCH that changes nothing writes nothing (the version stays).
    pub async fn patch_user(
        &self,
        tenant: &Tenant,
        id: &str,
        body: &Value,
        pre: Precondition<'_>,
    ) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::User);
        let ops = parse_patch_request(body)?;
        let tx = store::begin_write(self.db).await?;
        let row = self.load_user(&tx, tenant, id).await?;
        check_precondition(pre, row.version)?;
        let old = parse_doc(&row.doc);
        let mut doc = old.clone();
        apply_patch(rt, &mut doc, &ops)?;
        let doc = normalize_resource(rt, &doc)?;
        check_immutable(rt, &old, &doc)?;
        if doc == old {
            tx.rollback().await?;
            return Ok(user_resource(&row, doc, None));
        }
        let row = self.write_user(&tx, tenant, Some(&row), &doc).await?;
        tx.commit().await?;
        Ok(user_resource(&row, doc, None))
    }

    /// DELETE /Users/{id}: removes the user and its group memberships.
    pub async fn delete_user(&self, tenant: &Tenant, id: &str, pre: Precondition<'_>) -> Result<(), ScimError> {
        let tx = store::begin_write(self.db).await?;
        let row = self.load_user(&tx, tenant, id).await?;
        check_precondition(pre, row.version)?;
        users::delete(&tx, &tenant.id, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// GET /Users/{id}; `with_groups` loads the reverse `groups` attribute.
    pub async fn get_user(&self, tenant: &Tenant, id: &str, with_groups: bool) -> Result<StoredResource, ScimError> {
        let row = self.load_user(self.db, tenant, id).await?;
        let mut out = self.users_with_groups(tenant, vec![row], with_groups).await?;
        out.pop().ok_or(ScimError::Internal)
    }

    /// GET /Users with filter, sort and pagination.
    pub async fn list_users(
        &self,
        tenant: &Tenant,
        q: &ListQuery,
        with_groups: bool,
    ) -> Result<(u64, Vec<StoredResource>), ScimError> {
        let (total, rows) =
            list_page::<user::Entity>(self.db, "users", self.rt(ResourceKind::User), &tenant.id, q).await?;
        Ok((total, self.users_with_groups(tenant, rows, with_groups).await?))
    }

    /// The one place every user write passes (create, replace, patch, bulk). Uniqueness of
    /// `userName` is enforced by the database inside this transaction.
    async fn write_user(
        &self,
        tx: &DatabaseTransaction,
        tenant: &Tenant,
        existing: Option<&user::Model>,
        doc: &Value,
    ) -> Result<user::Model, ScimError> {
        let active = users::doc_active(doc);
        let seat = users::SeatState {
            entitled: active,
            seat_type: crate::license::DEFAULT_SEAT_TYPE.to_string(),
            reason: if active { "seat_assigned" } else { "inactive" },
        };
        let result = match existing {
            None => users::insert(tx, &tenant.id, &uuid::Uuid::now_v7().to_string(), doc, &seat).await,
            Some(row) => users::update(tx, row, doc, &seat).await,
        };
        result.map_err(|e| match e {
            StoreError::UniqueViolation(_) => ScimError::Uniqueness(format!(
                "userName '{}' is already in use in this tenant",
                doc.get("userName").and_then(Value::as_str).unwrap_or_default()
            )),
            other => other.into(),
        })
    }

    async fn load_user(
        &self,
        conn: &impl ConnectionTrait,
        tenant: &Tenant,
        id: &str,
    ) -> Result<user::Model, ScimError> {
        users::find(conn, &tenant.id, id)
            .await?
            .ok_or_else(|| ScimError::NotFound(format!("User '{id}' not found")))
    }

    async fn users_with_groups(
        &self,
        tenant: &Tenant,
        rows: Vec<user::Model>,
        with_groups: bool,
    ) -> Result<Vec<StoredResource>, ScimError> {
        let mut groups = if with_groups {
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            users::groups_of(self.db, &tenant.id, &ids).await?
        } else {
            Default::default()
        };
        Ok(rows
            .iter()
            .map(|row| {
                let g = groups.remove(&row.id).map(|list| {
                    list.into_iter()
                        .map(|g| json!({"value": g.id, "display": g.display_name, "type": "direct"}))
                        .collect::<Vec<_>>()
                });
                user_resource(row, parse_doc(&row.doc), g)
            })
            .collect())
    }

    // ---------------------------------------------------------------- groups

    /// POST /Groups.
    pub async fn create_group(&self, tenant: &Tenant, body: &Value) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::Group);
        check_schemas(rt, body)?;
        let (doc, members) = split_members(normalize_resource(rt, body)?)?;
        let tx = store::begin_write(self.db).await?;
        let row = groups::insert(&tx, &tenant.id, &uuid::Uuid::now_v7().to_string(), &doc).await?;
        let has_members = members.is_some();
        if let Some(members) = members {
            add_members(&tx, tenant, &row.id, &members).await?;
        }
        tx.commit().await?;
        if has_members {
            return self.get_group(tenant, &row.id, true).await;
        }
        Ok(group_resource(&row, doc))
    }

    /// PUT /Groups/{id}: replaces attributes and the whole member list.
    pub async fn replace_group(
        &self,
        tenant: &Tenant,
        id: &str,
        body: &Value,
        pre: Precondition<'_>,
    ) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::Group);
        check_schemas(rt, body)?;
        let (doc, members) = split_members(normalize_resource(rt, body)?)?;
        let tx = store::begin_write(self.db).await?;
        let row = self.load_group(&tx, tenant, id).await?;
        check_precondition(pre, row.version)?;
        check_immutable(rt, &parse_doc(&row.doc), &doc)?;
        groups::remove_all_members(&tx, &row.id).await?;
        if let Some(members) = members {
            add_members(&tx, tenant, &row.id, &members).await?;
        }
        groups::update(&tx, &row, &doc).await?;
        tx.commit().await?;
        self.get_group(tenant, id, true).await
    }

    /// PATCH /Groups/{id}. Member changes are applied row by row, never by rewriting the list.
    pub async fn patch_group(
        &self,
        tenant: &Tenant,
        id: &str,
        body: &Value,
        pre: Precondition<'_>,
    ) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::Group);
        let ops = parse_patch_request(body)?;
        let tx = store::begin_write(self.db).await?;
        let row = self.load_group(&tx, tenant, id).await?;
        check_precondition(pre, row.version)?;
        let old = parse_doc(&row.doc);
        let mut doc = old.clone();
        let outcome = apply_patch(rt, &mut doc, &ops)?;
        let doc = normalize_resource(rt, &doc)?;
        check_immutable(rt, &old, &doc)?;
        for change in &outcome.member_changes {
            apply_member_change(&tx, tenant, &row.id, change).await?;
        }
        let row = if doc != old {
            groups::update(&tx, &row, &doc).await?
        } else if !outcome.member_changes.is_empty() {
            groups::touch(&tx, &row).await?
        } else {
            row
        };
        tx.commit().await?;
        Ok(group_resource(&row, doc))
    }

    /// DELETE /Groups/{id}.
    pub async fn delete_group(&self, tenant: &Tenant, id: &str, pre: Precondition<'_>) -> Result<(), ScimError> {
        let tx = store::begin_write(self.db).await?;
        let row = self.load_group(&tx, tenant, id).await?;
        check_precondition(pre, row.version)?;
        groups::delete(&tx, &tenant.id, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// GET /Groups/{id}; `with_members` loads the member list.
    pub async fn get_group(&self, tenant: &Tenant, id: &str, with_members: bool) -> Result<StoredResource, ScimError> {
        let row = self.load_group(self.db, tenant, id).await?;
        let mut out = self.groups_with_members(vec![row], with_members).await?;
        out.pop().ok_or(ScimError::Internal)
    }

    /// GET /Groups with filter, sort and pagination.
    pub async fn list_groups(
        &self,
        tenant: &Tenant,
        q: &ListQuery,
        with_members: bool,
    ) -> Result<(u64, Vec<StoredResource>), ScimError> {
        let (total, rows) =
            list_page::<group::Entity>(self.db, "groups", self.rt(ResourceKind::Group), &tenant.id, q).await?;
        Ok((total, self.groups_with_members(rows, with_members).await?))
    }

    async fn load_group(
        &self,
        conn: &impl ConnectionTrait,
        tenant: &Tenant,
        id: &str,
    ) -> Result<group::Model, ScimError> {
        groups::find(conn, &tenant.id, id)
            .await?
            .ok_or_else(|| ScimError::NotFound(format!("Group '{id}' not found")))
    }

    async fn groups_with_members(
        &self,
        rows: Vec<group::Model>,
        with_members: bool,
    ) -> Result<Vec<StoredResource>, ScimError> {
        let mut members = if with_members {
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            groups::members_of(self.db, &ids).await?
        } else {
            Default::default()
        };
        Ok(rows
            .iter()
            .map(|row| {
                let mut doc = parse_doc(&row.doc);
                if let Some(list) = members.remove(&row.id) {
                    let values: Vec<Value> = list
                        .into_iter()
                        .map(|m| {
                            let mut v = json!({"value": m.id, "type": m.kind});
                            if let Some(d) = m.display {
                                v["display"] = json!(d);
                            }
                            v
                        })
                        .collect();
                    doc["members"] = Value::Array(values);
                }
                group_resource(row, doc)
            })
            .collect())
    }
}

/// Separates `members` from a normalized group document: members live in their own table.
fn split_members(mut doc: Value) -> Result<(Value, Option<Vec<MemberRef>>), ScimError> {
    let members = doc.as_object_mut().and_then(|o| o.remove("members"));
    let refs = match members {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|m| {
                    let value = m.get("value").and_then(Value::as_str).ok_or_else(|| {
                        ScimError::InvalidValue("every member needs a 'value' (the member's id)".into())
                    })?;
                    Ok(MemberRef {
                        value: value.to_string(),
                        kind: m.get("type").and_then(Value::as_str).map(str::to_string),
                    })
                })
                .collect::<Result<Vec<_>, ScimError>>()?,
        ),
        Some(_) => return Err(ScimError::InvalidValue("'members' must be an array".into())),
    };
    Ok((doc, refs))
}

async fn apply_member_change(
    tx: &DatabaseTransaction,
    tenant: &Tenant,
    group_id: &str,
    change: &MemberChange,
) -> Result<(), ScimError> {
    match change {
        MemberChange::Add(refs) => add_members(tx, tenant, group_id, refs).await,
        MemberChange::Remove(ids) => Ok(groups::remove_members(tx, group_id, ids).await?),
        MemberChange::RemoveAll => Ok(groups::remove_all_members(tx, group_id).await?),
        MemberChange::ReplaceAll(refs) => {
            groups::remove_all_members(tx, group_id).await?;
            add_members(tx, tenant, group_id, refs).await
        }
    }
}

/// Adds members after checking that each id is a user or group of the same tenant.
async fn add_members(
    tx: &DatabaseTransaction,
    tenant: &Tenant,
    group_id: &str,
    refs: &[MemberRef],
) -> Result<(), ScimError> {
    if refs.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<String> = refs.iter().map(|r| r.value.clone()).collect();
    ids.sort();
    ids.dedup();
    if ids.iter().any(|id| id == group_id) {
        return Err(ScimError::InvalidValue("a group cannot be a member of itself".into()));
    }
    let kinds = groups::member_kinds(tx, &tenant.id, &ids).await?;
    if let Some(missing) = ids.iter().find(|id| !kinds.contains_key(*id)) {
        return Err(ScimError::InvalidValue(format!(
            "member '{missing}' is not a User or Group of this tenant"
        )));
    }
    let members: Vec<(String, &'static str)> = ids
        .into_iter()
        .map(|id| {
            let kind = kinds.get(&id).copied().unwrap_or("User");
            (id, kind)
        })
        .collect();
    Ok(groups::add_members(tx, &tenant.id, group_id, &members).await?)
}

fn check_precondition(pre: Precondition<'_>, version: i64) -> Result<(), ScimError> {
    let Precondition::IfMatch(header) = pre else {
        return Ok(());
    };
    if etag_matches(header, version) {
        Ok(())
    } else {
        Err(ScimError::PreconditionFailed(format!(
            "the resource has changed: current version is {}",
            crate::scim::resource::etag(version)
        )))
    }
}

/// Weak comparison of an `If-Match`/`If-None-Match` list (`*`, `W/"3"`, `"3"`) with a version.
pub fn etag_matches(header: &str, version: i64) -> bool {
    let want = version.to_string();
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == want)
}

/// Stored documents are written by this program; an unreadable one is treated as empty so a
/// corrupt row can still be read, replaced or deleted.
fn parse_doc(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::error!(error = %e, "stored resource document is not valid JSON");
        json!({})
    })
}

fn user_resource(row: &user::Model, mut doc: Value, groups: Option<Vec<Value>>) -> StoredResource {
    if let Some(g) = groups.filter(|g| !g.is_empty()) {
        doc["groups"] = Value::Array(g);
    }
    StoredResource {
        id: row.id.clone(),
        doc,
        created: row.created_at,
        last_modified: row.updated_at,
        version: row.version,
    }
}

fn group_resource(row: &group::Model, doc: Value) -> StoredResource {
    StoredResource {
        id: row.id.clone(),
        doc,
        created: row.created_at,
        last_modified: row.updated_at,
        version: row.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_weakly_and_accept_star() {
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"3\"", 3));
        assert!(etag_matches("*", 9));
        assert!(etag_matches("W/\"1\", W/\"3\"", 3));
        assert!(!etag_matches("W/\"2\"", 3));
    }
}
