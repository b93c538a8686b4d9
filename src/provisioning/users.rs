//! User operations. Every write goes through [`Provisioning::write_user`].

use std::collections::HashMap;

use serde_json::{json, Value};

use super::write::UserWrite;
use super::{check_precondition, parse_doc, stored_user, Precondition, Provisioning, StoredResource, WriteTx};
use crate::auth::Tenant;
use crate::events::{self, types};
use crate::scim::error::ScimError;
use crate::scim::patch::{apply_patch, parse_patch_request};
use crate::scim::resource::{check_immutable, check_schemas, normalize_resource};
use crate::scim::schema::ResourceKind;
use crate::store::entities::user;
use crate::store::listing::{list_page, reads_at_most_one, ListQuery, Listed};
use crate::store::Writer as _;
use crate::store::{user_counts, users, Reader, StoreError};

/// The plan feature every `/Users` operation needs.
const USERS_FEATURE: &str = "scim.users";

/// The audit action of a create.
pub(super) const CREATE_ACTION: &str = "scim.user.create";

/// Attributes unique within a tenant: an `eq` filter on one reads at most one user, through an
/// index, and so may run as a point read (`store::PointReads`).
const USER_KEYS: &[&str] = &["userName", "id"];

impl Provisioning<'_> {
    /// POST /Users.
    pub async fn create_user(&self, tenant: &Tenant, body: &Value) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::User);
        check_schemas(rt, body)?;
        self.write(tenant, UserWrite::Create(normalize_resource(rt, body)?))
            .await
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
        let if_match = pre.owned();
        self.write(
            tenant,
            UserWrite::Replace {
                id: id.to_string(),
                doc,
                if_match,
            },
        )
        .await
    }

    /// PATCH /Users/{id}. A PATCH that changes nothing writes nothing (the version stays).
    pub async fn patch_user(
        &self,
        tenant: &Tenant,
        id: &str,
        body: &Value,
        pre: Precondition<'_>,
    ) -> Result<StoredResource, ScimError> {
        let ops = parse_patch_request(body)?;
        let if_match = pre.owned();
        self.write(
            tenant,
            UserWrite::Patch {
                id: id.to_string(),
                ops,
                if_match,
            },
        )
        .await
    }

    /// The user write `op` itself, in `w`.
    pub(super) async fn user_write_in(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        op: &UserWrite,
    ) -> Result<StoredResource, ScimError> {
        let rt = self.rt(ResourceKind::User);
        match op {
            UserWrite::Create(doc) => {
                self.charge_usage(w, tenant).await?;
                let row = self.write_user(w, tenant, None, doc).await?;
                Ok(stored_user(row, None))
            }
            UserWrite::Replace { id, doc, if_match } => {
                let row = self.user_to_write(w, tenant, id).await?;
                check_precondition(Precondition::kept(if_match), row.version)?;
                check_immutable(rt, &parse_doc(&row.doc), doc)?;
                let row = self.write_user(w, tenant, Some(&row), doc).await?;
                Ok(stored_user(row, None))
            }
            UserWrite::Patch { id, ops, if_match } => {
                let row = self.user_to_write(w, tenant, id).await?;
                check_precondition(Precondition::kept(if_match), row.version)?;
                let old = parse_doc(&row.doc);
                let mut doc = old.clone();
                apply_patch(rt, &mut doc, ops)?;
                let doc = normalize_resource(rt, &doc)?;
                check_immutable(rt, &old, &doc)?;
                if doc == old {
                    return Ok(stored_user(row, None));
                }
                let row = self.write_user(w, tenant, Some(&row), &doc).await?;
                Ok(stored_user(row, None))
            }
            UserWrite::Delete { id, if_match } => {
                self.check_users_allowed(w)?;
                let row = self.user_to_write(w, tenant, id).await?;
                check_precondition(Precondition::kept(if_match), row.version)?;
                self.remove_user(w, tenant, &row).await?;
                Ok(stored_user(row, None))
            }
        }
    }

    /// Deletes `row`'s user and its memberships; its seat goes to the next in line.
    async fn remove_user(&self, w: &WriteTx, tenant: &Tenant, row: &user::Model) -> Result<(), ScimError> {
        users::delete(&w.tx, &tenant.id, &row.id).await?;
        let mut data = events::user_data(row, "deleted");
        data["access"] = json!(false);
        data["deleted"] = json!(true);
        w.emit(&tenant.id, types::USER_DEPROVISIONED, data).await?;
        let target = format!("User/{}", row.id);
        self.audit(w, tenant, "scim.user.delete", &target, Some(summary(row)), None)
            .await?;
        if row.entitled {
            self.promote_waiting(w, tenant, &row.seat_type).await?;
        }
        Ok(())
    }

    /// DELETE /Users/{id}: removes the user and its memberships; its seat goes to the next in line.
    pub async fn delete_user(&self, tenant: &Tenant, id: &str, pre: Precondition<'_>) -> Result<(), ScimError> {
        let if_match = pre.owned();
        self.write(
            tenant,
            UserWrite::Delete {
                id: id.to_string(),
                if_match,
            },
        )
        .await
        .map(|_| ())
    }

    /// GET /Users/{id}; `with_groups` loads the reverse `groups` attribute.
    pub async fn get_user(&self, tenant: &Tenant, id: &str, with_groups: bool) -> Result<StoredResource, ScimError> {
        self.require_feature(tenant, USERS_FEATURE).await?;
        if !with_groups {
            let row = self.load_user(self.reads, tenant, id).await?;
            return Ok(stored_user(row, None));
        }
        let (row, groups) = users::find_with_groups(self.reads, &tenant.id, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        Ok(stored_user(row, Some(groups)))
    }

    /// GET /Users with filter, sort and pagination.
    pub async fn list_users(
        &self,
        tenant: &Tenant,
        q: &ListQuery,
        with_groups: bool,
    ) -> Result<(u64, Vec<StoredResource>), ScimError> {
        self.require_feature(tenant, USERS_FEATURE).await?;
        // Unfiltered, the total is the tenant's counter: no count over every user per page.
        let known_total = match q.filter {
            None => Some(u64::try_from(user_counts::totals(self.reads, &tenant.id).await?.0).unwrap_or(0)),
            Some(_) => None,
        };
        // Unfiltered and in id order, a page is a range of the tenant's user ids: its users'
        // groups are read after it, in one range scan, instead of beside each row.
        let groups_by_range = with_groups && q.filter.is_none() && q.sort_by.is_none();
        let groups = (with_groups && !groups_by_range).then(|| users::member_of_sql(self.db.get_database_backend()));
        let (total, rows) = if q.filter.as_ref().is_some_and(|f| reads_at_most_one(f, USER_KEYS)) {
            self.user_page(self.reads, tenant, q, known_total, groups).await?
        } else {
            self.user_page(self.db, tenant, q, known_total, groups).await?
        };
        let in_range = match (groups_by_range, rows.first(), rows.last()) {
            (true, Some((first, _)), Some((last, _))) => {
                // In the database's order of ids (its collation), which the page followed.
                let (low, high) = if q.descending { (last, first) } else { (first, last) };
                Some(users::groups_of_id_range(self.reads, &tenant.id, &low.id, &high.id).await?)
            }
            _ => None,
        };
        Ok((total, Self::render_listed(rows, in_range)?))
    }

    /// One page of [`list_page`] over users, read through `conn`.
    async fn user_page(
        &self,
        conn: &impl Reader,
        tenant: &Tenant,
        q: &ListQuery,
        known_total: Option<u64>,
        groups: Option<&str>,
    ) -> Result<(u64, Vec<Listed<user::Model>>), ScimError> {
        let rt = self.rt(ResourceKind::User);
        Ok(list_page::<user::Entity>(conn, self.reads, "users", rt, &tenant.id, q, known_total, groups).await?)
    }

    fn check_users_allowed(&self, w: &WriteTx) -> Result<(), ScimError> {
        super::seats::check_feature(&w.plan, USERS_FEATURE)
    }

    /// The one place every user write passes (create, replace, patch, bulk): tier gates, the
    /// seat decision, the write itself, the audit entry, and handing a freed seat to the next
    /// user in line — all in the caller's transaction.
    pub(super) async fn write_user(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        existing: Option<&user::Model>,
        doc: &Value,
    ) -> Result<user::Model, ScimError> {
        self.check_users_allowed(w)?;
        super::seats::check_user_features(&w.plan, doc)?;
        let seat = self.decide_seat(w, tenant, existing, doc).await?;
        // A create's rows are written by the statement that writes its event and audit entry
        // (one round trip under the lock on PostgreSQL); an update's row first, as it is
        // checked to exist.
        let (row, new) = match existing {
            None => {
                let new = users::NewUser::new(&tenant.id, &uuid::Uuid::now_v7().to_string(), doc, &seat)?;
                w.tx.touched(&new.row.id);
                (new.row.clone(), Some(new))
            }
            Some(old) => (
                users::update(&w.tx, old, doc, &seat)
                    .await
                    .map_err(|e| user_name_taken(e, doc))?,
                None,
            ),
        };
        w.user_written(&row);
        let action = if existing.is_some() {
            "scim.user.update"
        } else {
            CREATE_ACTION
        };
        let target = format!("User/{}", row.id);
        let entry = w.next_audit_entry(
            &tenant.id,
            self.event(action, &target, existing.map(summary), Some(summary(&row))),
        );
        let event = (event_type(existing, &row), events::user_data(&row, access_reason(&row)));
        w.write_user_rows(&tenant.id, new, entry, event)
            .await
            .map_err(|e| user_name_taken(e, doc))?;
        if let Some(old) = existing.filter(|o| o.entitled && (!row.entitled || o.seat_type != row.seat_type)) {
            self.promote_waiting(w, tenant, &old.seat_type).await?;
        }
        Ok(row)
    }

    /// Re-derives a user's seat type from its groups after a membership change, moving its seat
    /// (or refusing the change when the new pool has no seat for a user who holds one).
    pub(super) async fn reseat(&self, w: &WriteTx, tenant: &Tenant, user_id: &str) -> Result<(), ScimError> {
        let Some(row) = users::find(&w.tx, &tenant.id, user_id).await? else {
            return Ok(());
        };
        if crate::licensing::has_explicit_seat_type(&row.doc) {
            return Ok(());
        }
        if w.mapped_seat_type(&tenant.id, user_id).await? == row.seat_type {
            return Ok(());
        }
        self.write_user(w, tenant, Some(&row), &parse_doc(&row.doc))
            .await
            .map(|_| ())
    }

    /// The user `id` as an update in `w` starts from: read ahead by its batch, or read now.
    async fn user_to_write(&self, w: &WriteTx, tenant: &Tenant, id: &str) -> Result<user::Model, ScimError> {
        match w.prefetched(id) {
            Some(row) => Ok(row),
            None => self.load_user(&w.tx, tenant, id).await,
        }
    }

    pub(super) async fn load_user(
        &self,
        conn: &impl Reader,
        tenant: &Tenant,
        id: &str,
    ) -> Result<user::Model, ScimError> {
        users::find(conn, &tenant.id, id)
            .await?
            .ok_or_else(|| user_not_found(id))
    }

    /// Listed users, each with its groups when they were read: beside the row (`member_of`), or
    /// for the whole page (`in_range`, by user id; a user not in it is in no group).
    fn render_listed(
        rows: Vec<Listed<user::Model>>,
        mut in_range: Option<HashMap<String, Vec<users::GroupRef>>>,
    ) -> Result<Vec<StoredResource>, ScimError> {
        rows.into_iter()
            .map(|(row, member_of)| {
                let groups = match (&mut in_range, member_of) {
                    (Some(by_user), _) => Some(by_user.remove(&row.id).unwrap_or_default()),
                    (None, Some(json)) => Some(users::parse_member_of(Some(&json))?),
                    (None, None) => None,
                };
                Ok(stored_user(row, groups))
            })
            .collect()
    }
}

/// A write's error, a unique violation (users are unique only by `userName` within a tenant)
/// told as the taken `userName`.
fn user_name_taken(err: StoreError, doc: &Value) -> ScimError {
    match err {
        StoreError::UniqueViolation(_) => user_name_in_use(doc),
        other => other.into(),
    }
}

/// 409 for a document whose `userName` another user of the tenant holds.
pub(super) fn user_name_in_use(doc: &Value) -> ScimError {
    ScimError::Uniqueness(format!(
        "userName '{}' is already in use in this tenant",
        doc.get("userName").and_then(Value::as_str).unwrap_or_default()
    ))
}

fn user_not_found(id: &str) -> ScimError {
    ScimError::NotFound(format!("User '{id}' not found"))
}

fn has_access(row: &user::Model) -> bool {
    events::has_access(row)
}

/// The event a user write produces: access gained or lost is what products care about most.
fn event_type(before: Option<&user::Model>, after: &user::Model) -> &'static str {
    match before {
        None => types::USER_PROVISIONED,
        Some(b) if has_access(b) && !has_access(after) => types::USER_DEPROVISIONED,
        Some(b) if !has_access(b) && has_access(after) => types::USER_REPROVISIONED,
        Some(_) => types::USER_UPDATED,
    }
}

fn access_reason(row: &user::Model) -> &str {
    if row.active {
        &row.entitlement_reason
    } else {
        "inactive"
    }
}

/// What the audit log keeps of a user: enough to explain a decision, no personal profile data
/// beyond the login name.
pub(super) fn summary(row: &user::Model) -> Value {
    json!({
        "userName": row.user_name,
        "active": row.active,
        "entitled": row.entitled,
        "seatType": row.seat_type,
        "reason": row.entitlement_reason,
    })
}
