//! The PATCH engine (RFC 7644 §3.5.2), including the shapes Okta and Entra ID really send.
//!
//! It edits a canonical resource document (see `resource`) in memory. Group `members` are never
//! part of that document: operations on them come back as [`MemberChange`]s that the store
//! applies row by row, so a change to a 50,000-member group touches only the rows it names.

use serde_json::Value;

use super::error::ScimError;
use super::filter::PatchPath;
use super::schema::ResourceTypeDef;

/// The three PATCH operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

/// One parsed operation of a PatchOp request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A reference to a group member as sent by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// The member's resource id.
    pub value: String,
    /// `User` or `Group` when the client said so.
    pub kind: Option<String>,
}

/// A change to a group's member list, applied by the store without loading the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<MemberRef>),
    Remove(Vec<String>),
    RemoveAll,
    ReplaceAll(Vec<MemberRef>),
}

/// What applying a PATCH produced besides the edited document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchOutcome {
    /// Member changes in request order (groups only).
    pub member_changes: Vec<MemberChange>,
}
