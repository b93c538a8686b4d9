//! The writes a [`super::WriteBatcher`] carries: what each request asks, checked and parsed as
//! far as it can be without the stored resource, and how it runs in a write transaction — alone,
//! or in a batch with the tenant's other writes of the moment.

use serde_json::Value;

use super::groups::GroupWrite;
use super::{Provisioning, StoredResource, WriteTx};
use crate::auth::Tenant;
use crate::scim::error::ScimError;
use crate::scim::patch::PatchOperation;
use crate::store::users;

/// A write of one SCIM request.
pub(crate) enum Write {
    User(UserWrite),
    Group(GroupWrite),
}

/// A user write.
pub(crate) enum UserWrite {
    /// POST /Users of a normalized document.
    Create(Value),
    /// PUT /Users/{id} of a normalized document.
    Replace {
        id: String,
        doc: Value,
        if_match: Option<String>,
    },
    /// PATCH /Users/{id}.
    Patch {
        id: String,
        ops: Vec<PatchOperation>,
        if_match: Option<String>,
    },
    /// DELETE /Users/{id}.
    Delete { id: String, if_match: Option<String> },
}

impl From<UserWrite> for Write {
    fn from(op: UserWrite) -> Self {
        Write::User(op)
    }
}

impl From<GroupWrite> for Write {
    fn from(op: GroupWrite) -> Self {
        Write::Group(op)
    }
}

impl Write {
    /// The audit action of the write (also recorded with its refusal).
    pub(super) fn action(&self) -> &'static str {
        match self {
            Write::User(UserWrite::Create(_)) => super::users::CREATE_ACTION,
            Write::User(UserWrite::Replace { .. }) => "scim.user.replace",
            Write::User(UserWrite::Patch { .. }) => "scim.user.patch",
            Write::User(UserWrite::Delete { .. }) => "scim.user.delete",
            Write::Group(GroupWrite::Create { .. }) => "scim.group.create",
            Write::Group(GroupWrite::Replace { .. }) => "scim.group.replace",
            Write::Group(GroupWrite::Patch { .. }) => "scim.group.patch",
            Write::Group(GroupWrite::Delete { .. }) => "scim.group.delete",
        }
    }

    /// What the write's refusal names: the user it would have created, the resource it
    /// changes, or `Group` for a group create.
    pub(super) fn target(&self) -> String {
        match self {
            Write::User(UserWrite::Create(doc)) => format!(
                "User?userName={}",
                doc.get("userName").and_then(Value::as_str).unwrap_or_default()
            ),
            Write::User(UserWrite::Replace { id, .. } | UserWrite::Patch { id, .. } | UserWrite::Delete { id, .. }) => {
                format!("User/{id}")
            }
            Write::Group(op) => match op.existing_group() {
                Some(id) => format!("Group/{id}"),
                None => "Group".to_string(),
            },
        }
    }

    /// The stored user the write changes or deletes.
    pub(super) fn existing_user(&self) -> Option<&str> {
        match self {
            Write::User(UserWrite::Replace { id, .. } | UserWrite::Patch { id, .. } | UserWrite::Delete { id, .. }) => {
                Some(id)
            }
            _ => None,
        }
    }

    /// The lower-cased `userName` a user create takes.
    pub(super) fn created_name(&self) -> Option<String> {
        match self {
            Write::User(UserWrite::Create(doc)) => Some(users::user_name_norm(doc)),
            _ => None,
        }
    }
}

impl Provisioning<'_> {
    /// Runs `op`: with a batcher (PostgreSQL), together with the tenant's other writes of the
    /// moment (see [`super::WriteBatcher`]), else alone.
    pub(super) async fn write(&self, tenant: &Tenant, op: impl Into<Write>) -> Result<StoredResource, ScimError> {
        let op = op.into();
        match self.batcher {
            Some(batcher) => batcher.write(tenant, self.actor.clone(), op).await,
            None => self.write_alone(tenant, &op).await,
        }
    }

    /// `op` in a transaction of its own.
    pub(super) async fn write_alone(&self, tenant: &Tenant, op: &Write) -> Result<StoredResource, ScimError> {
        let w = self.begin_for(tenant, op).await?;
        let outcome = self.write_in(&w, tenant, op).await;
        self.finish(w, tenant, op.action(), &op.target(), outcome).await
    }

    /// Opens the write of `op`: the tenant's lock, with, for a user create, the count of the
    /// pool its seat comes from when no group maps it yet (see `decide_seat`).
    pub(super) async fn begin_for(&self, tenant: &Tenant, op: &Write) -> Result<WriteTx, ScimError> {
        let Write::User(UserWrite::Create(doc)) = op else {
            return self.begin(tenant).await;
        };
        let seat_type = super::seats::requested_seat_type(doc);
        let pool = seat_type.as_deref().unwrap_or(crate::license::DEFAULT_SEAT_TYPE);
        self.begin_with_seats(tenant, Some(pool)).await
    }

    /// `op` itself, in `w`.
    pub(super) async fn write_in(&self, w: &WriteTx, tenant: &Tenant, op: &Write) -> Result<StoredResource, ScimError> {
        match op {
            Write::User(op) => self.user_write_in(w, tenant, op).await,
            Write::Group(op) => self.group_write_in(w, tenant, op).await,
        }
    }

    /// A write refused in a batch: a license refusal is recorded as a refusal alone is.
    pub(super) async fn refused_write(&self, tenant: &Tenant, op: &Write, err: ScimError) -> ScimError {
        self.refused(tenant, op.action(), &op.target(), err).await
    }
}
