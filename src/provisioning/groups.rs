//! Group operations. Members live in their own table and change row by row.

use serde_json::{json, Value};

use super::{check_precondition, group_resource, parse_doc, Precondition, Provisioning, StoredResource, WriteTx};
use crate::auth::Tenant;
use crate::events::types;
use crate::scim::error::ScimError;
use crate::scim::patch::{apply_patch, parse_patch_request, MemberChange, MemberRef, PatchOperation};
use crate::scim::resource::{check_immutable, check_schemas, normalize_resource};
use crate::scim::schema::ResourceKind;
use crate::store::entities::group;
use crate::store::listing::{list_page, ListQuery};
use crate::store::{groups, seat_mappings, Reader, Tx};

/// The plan feature every `/Groups` operation needs.
const GROUPS_FEATURE: &str = "scim.groups";

/// A group write a [`super::WriteBatcher`] can carry (see [`super::write::Write`]).
pub(crate) enum GroupWrite {
    /// POST /Groups of a normalized document, its members apart.
    Create {
        doc: Value,
        members: Option<Vec<MemberRef>>,
    },
    /// PUT /Groups/{id}: attributes and the whole member list.
    Replace {
        id: String,
        doc: Value,
        members: Option<Vec<MemberRef>>,
        if_match: Option<String>,
    },
    /// PATCH /Groups/{id}: how IdPs push membership changes.
    Patch {
        id: String,
        ops: Vec<PatchOperation>,
        if_match: Option<String>,
    },
    /// DELETE /Groups/{id}.
    Delete { id: String, if_match: Option<String> },
}

impl GroupWrite {
    /// The group the write changes or deletes; `None` for a create.
    pub(super) fn existing_group(&self) -> Option<&str> {
        match self {
            GroupWrite::Create { .. } => None,
            GroupWrite::Replace { id, .. } | GroupWrite::Patch { id, .. } | GroupWrite::Delete { id, .. } => Some(id),
        }
    }
}

impl Provisioning<'_> {
    /// POST /Groups.
    pub async fn create_group(&self, tenant: &Tenant, body: &Value) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::Group);
        check_schemas(rt, body)?;
        let (doc, members) = split_members(normalize_resource(rt, body)?)?;
        let with_members = members.is_some();
        let created = self.write(tenant, GroupWrite::Create { doc, members }).await?;
        if with_members {
            return self.get_group(tenant, &created.id, true).await;
        }
        Ok(created)
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
        let op = GroupWrite::Replace {
            id: id.to_string(),
            doc,
            members,
            if_match: pre.owned(),
        };
        self.write(tenant, op).await?;
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
        let ops = parse_patch_request(body)?;
        let op = GroupWrite::Patch {
            id: id.to_string(),
            ops,
            if_match: pre.owned(),
        };
        self.write(tenant, op).await
    }

    /// DELETE /Groups/{id}.
    pub async fn delete_group(&self, tenant: &Tenant, id: &str, pre: Precondition<'_>) -> Result<(), ScimError> {
        let op = GroupWrite::Delete {
            id: id.to_string(),
            if_match: pre.owned(),
        };
        self.write(tenant, op).await.map(drop)
    }

    /// The group write `op` itself, in `w`.
    pub(super) async fn group_write_in(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        op: &GroupWrite,
    ) -> Result<StoredResource, ScimError> {
        match op {
            GroupWrite::Create { doc, members } => self.insert_group(w, tenant, doc, members.as_deref()).await,
            GroupWrite::Replace {
                id,
                doc,
                members,
                if_match,
            } => {
                self.replace_group_in(w, tenant, id, doc, members.as_deref(), if_match)
                    .await
            }
            GroupWrite::Patch { id, ops, if_match } => self.patch_group_in(w, tenant, id, ops, if_match).await,
            GroupWrite::Delete { id, if_match } => self.delete_group_in(w, tenant, id, if_match).await,
        }
    }

    async fn insert_group(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        doc: &Value,
        members: Option<&[MemberRef]>,
    ) -> Result<StoredResource, ScimError> {
        super::seats::check_feature(&w.plan, GROUPS_FEATURE)?;
        self.charge_usage(w, tenant).await?;
        let row = groups::insert(&w.tx, &tenant.id, &uuid::Uuid::now_v7().to_string(), doc).await?;
        if let Some(members) = members {
            add_members(&w.tx, tenant, &row.id, members).await?;
        }
        let count = members.map_or(0, <[MemberRef]>::len);
        let after = json!({"displayName": row.display_name, "members": count});
        let group = json!({"id": row.id, "displayName": row.display_name, "externalId": row.external_id});
        let data = json!({"group": group, "members": count, "memberIds": member_ids(members)});
        w.emit(&tenant.id, types::GROUP_CREATED, data).await?;
        let target = format!("Group/{}", row.id);
        self.audit(w, tenant, "scim.group.create", &target, None, Some(after))
            .await?;
        Ok(group_resource(&row, doc.clone()))
    }

    async fn replace_group_in(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        id: &str,
        doc: &Value,
        members: Option<&[MemberRef]>,
        if_match: &Option<String>,
    ) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::Group);
        let row = self.load_group_for_write(w, tenant, id).await?;
        check_precondition(Precondition::kept(if_match), row.version)?;
        check_immutable(rt, &parse_doc(&row.doc), doc)?;
        let change = MemberChange::ReplaceAll(members.unwrap_or_default().to_vec());
        let affected = self
            .mapped_members_affected(w, tenant, &row.id, std::slice::from_ref(&change))
            .await?;
        groups::remove_all_members(&w.tx, &row.id).await?;
        if let Some(members) = members {
            add_members(&w.tx, tenant, &row.id, members).await?;
        }
        let new_row = groups::update(&w.tx, &row, doc).await?;
        self.reseat_all(w, tenant, &affected).await?;
        let count = members.map_or(0, <[MemberRef]>::len);
        let after = json!({"displayName": doc.get("displayName"), "members": count});
        let before = json!({"displayName": row.display_name});
        let group = json!({"id": id, "displayName": after["displayName"]});
        let data = json!({"group": group, "members": count, "memberIds": member_ids(members), "replaced": true});
        w.emit(&tenant.id, types::GROUP_UPDATED, data).await?;
        let target = format!("Group/{id}");
        self.audit(w, tenant, "scim.group.replace", &target, Some(before), Some(after))
            .await?;
        Ok(group_resource(&new_row, doc.clone()))
    }

    async fn patch_group_in(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        id: &str,
        ops: &[PatchOperation],
        if_match: &Option<String>,
    ) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::Group);
        let row = self.load_group_for_write(w, tenant, id).await?;
        check_precondition(Precondition::kept(if_match), row.version)?;
        let old = parse_doc(&row.doc);
        let mut doc = old.clone();
        let outcome = apply_patch(rt, &mut doc, ops)?;
        let doc = normalize_resource(rt, &doc)?;
        check_immutable(rt, &old, &doc)?;
        let affected = self
            .mapped_members_affected(w, tenant, &row.id, &outcome.member_changes)
            .await?;
        for change in &outcome.member_changes {
            apply_member_change(&w.tx, tenant, &row.id, change).await?;
        }
        self.reseat_all(w, tenant, &affected).await?;
        let changed = doc != old || !outcome.member_changes.is_empty();
        let new_row = if doc != old {
            groups::update(&w.tx, &row, &doc).await?
        } else if changed {
            groups::touch(&w.tx, &row).await?
        } else {
            row.clone()
        };
        if changed {
            let changes = describe(&outcome.member_changes);
            let data = json!({"group": {"id": id, "displayName": new_row.display_name}, "memberChanges": changes});
            w.emit(&tenant.id, types::GROUP_UPDATED, data).await?;
            let after = json!({"displayName": new_row.display_name, "memberChanges": changes});
            let before = json!({"displayName": row.display_name});
            let target = format!("Group/{id}");
            self.audit(w, tenant, "scim.group.patch", &target, Some(before), Some(after))
                .await?;
        }
        Ok(group_resource(&new_row, doc))
    }

    async fn delete_group_in(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        id: &str,
        if_match: &Option<String>,
    ) -> Result<StoredResource, ScimError> {
        let row = self.load_group_for_write(w, tenant, id).await?;
        check_precondition(Precondition::kept(if_match), row.version)?;
        let affected = self
            .mapped_members_affected(w, tenant, &row.id, &[MemberChange::RemoveAll])
            .await?;
        seat_mappings::remove(&w.tx, &tenant.id, &row.id).await?;
        groups::delete(&w.tx, &tenant.id, id).await?;
        self.reseat_all(w, tenant, &affected).await?;
        let before = json!({"displayName": row.display_name});
        let data = json!({"group": {"id": id, "displayName": row.display_name}});
        w.emit(&tenant.id, types::GROUP_DELETED, data).await?;
        let target = format!("Group/{id}");
        self.audit(w, tenant, "scim.group.delete", &target, Some(before), None)
            .await?;
        Ok(group_resource(&row, parse_doc(&row.doc)))
    }

    /// GET /Groups/{id}; `with_members` loads the member list.
    pub async fn get_group(&self, tenant: &Tenant, id: &str, with_members: bool) -> Result<StoredResource, ScimError> {
        self.require_feature(tenant, GROUPS_FEATURE).await?;
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
        self.require_feature(tenant, GROUPS_FEATURE).await?;
        let (total, rows) = list_page::<group::Entity>(
            self.db,
            self.reads,
            "groups",
            self.rt(ResourceKind::Group),
            &tenant.id,
            q,
            None,
            None,
        )
        .await?;
        let rows = rows.into_iter().map(|(row, _)| row).collect();
        Ok((total, self.groups_with_members(rows, with_members).await?))
    }

    /// Users whose seat type may change because this group is mapped to a seat type and its
    /// members change. Unmapped groups (the common case, and every large group) cost one lookup.
    async fn mapped_members_affected(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        group_id: &str,
        changes: &[MemberChange],
    ) -> Result<Vec<String>, ScimError> {
        // Without a mapping in the tenant (read under the lock), no group maps seats.
        if !w.seat_mappings || seat_mappings::for_group(&w.tx, &tenant.id, group_id).await?.is_none() {
            return Ok(Vec::new());
        }
        let mut ids = Vec::new();
        if changes
            .iter()
            .any(|c| matches!(c, MemberChange::RemoveAll | MemberChange::ReplaceAll(_)))
        {
            ids.extend(groups::member_user_ids(&w.tx, group_id).await?);
        }
        for change in changes {
            match change {
                MemberChange::Add(refs) | MemberChange::ReplaceAll(refs) => {
                    ids.extend(refs.iter().map(|r| r.value.clone()))
                }
                MemberChange::Remove(removed) => ids.extend(removed.iter().cloned()),
                MemberChange::RemoveAll => {}
            }
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Moves each user's seat to the pool its groups now give it (atomically with the change).
    async fn reseat_all(&self, w: &WriteTx, tenant: &Tenant, user_ids: &[String]) -> Result<(), ScimError> {
        for id in user_ids {
            self.reseat(w, tenant, id).await?;
        }
        Ok(())
    }

    /// Tier gate and lookup shared by every group write.
    async fn load_group_for_write(&self, w: &WriteTx, tenant: &Tenant, id: &str) -> Result<group::Model, ScimError> {
        super::seats::check_feature(&w.plan, GROUPS_FEATURE)?;
        self.load_group(&w.tx, tenant, id).await
    }

    async fn load_group(&self, conn: &impl Reader, tenant: &Tenant, id: &str) -> Result<group::Model, ScimError> {
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

/// A short description of member changes for the audit log.
fn describe(changes: &[MemberChange]) -> Vec<Value> {
    changes
        .iter()
        .map(|c| match c {
            MemberChange::Add(refs) => json!({"add": refs.iter().map(|r| r.value.as_str()).collect::<Vec<_>>()}),
            MemberChange::Remove(ids) => json!({"remove": ids}),
            MemberChange::RemoveAll => json!({"removeAll": true}),
            MemberChange::ReplaceAll(refs) => {
                json!({"replaceWith": refs.iter().map(|r| r.value.as_str()).collect::<Vec<_>>()})
            }
        })
        .collect()
}

/// The ids of the members a request gave, for events (an empty list when it gave none).
fn member_ids(members: Option<&[MemberRef]>) -> Vec<&str> {
    members.unwrap_or_default().iter().map(|r| r.value.as_str()).collect()
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

async fn apply_member_change(tx: &Tx, tenant: &Tenant, group_id: &str, change: &MemberChange) -> Result<(), ScimError> {
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
async fn add_members(tx: &Tx, tenant: &Tenant, group_id: &str, refs: &[MemberRef]) -> Result<(), ScimError> {
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
