//! The append-only, hash-chained audit log.
//!
//! Each tenant has its own chain (the deployment-wide chain uses the empty tenant id). Every
//! entry stores the SHA-256 of the previous entry and its own hash over its content, so an edited,
//! inserted or deleted row breaks the chain, which [`verify`] detects. Entries are appended inside
//! the transaction of the change they record: both land or neither does.

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::store::entities::audit_entry;
use crate::store::{self, audit as rows, StoreError};

/// The `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, by whom, to what.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    /// `token:<id>`, `cli`, `operator`, `system:sweeper`…
    pub actor: &'a str,
    /// Dotted action name, e.g. `scim.user.create`, `seat.refused`, `license.set`.
    pub action: &'a str,
    /// What the action was applied to, e.g. `User/<id>`.
    pub target: &'a str,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<&'a str>,
}

/// The hash of an entry: SHA-256 over a canonical JSON array of every field but the hash.
pub fn entry_hash(e: &audit_entry::Model) -> String {
    let canonical = json!([
        e.tenant_id,
        e.seq,
        e.at.timestamp_millis(),
        e.actor,
        e.action,
        e.target,
        e.before,
        e.after,
        e.request_id,
        e.prev_hash,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Appends an event to a tenant's chain. Call it inside the transaction of the change (which on
/// PostgreSQL holds the tenant's row lock, and on SQLite the write lock), so chains never fork.
pub async fn append(conn: &impl crate::store::Writer, tenant_id: &str, event: Event<'_>) -> Result<(), StoreError> {
    let head = rows::head(conn, tenant_id).await?;
    rows::insert(conn, entry_after(tenant_id, head, event)).await
}

/// The entry that follows `head` (seq, hash; `None` for an empty chain) in a tenant's chain,
/// hashed, for a caller that read the head under the same lock and inserts the entry itself.
pub fn entry_after(tenant_id: &str, head: Option<(i64, String)>, event: Event<'_>) -> audit_entry::Model {
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let mut entry = audit_entry::Model {
        tenant_id: tenant_id.to_string(),
        seq,
        at: store::now(),
        actor: event.actor.to_string(),
        action: event.action.to_string(),
        target: event.target.to_string(),
        before: event.before.map(|v| v.to_string()),
        after: event.after.map(|v| v.to_string()),
        request_id: event.request_id.map(str::to_string),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    entry
}

/// The outcome of a chain check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub entries: u64,
    /// The first entry that does not fit the chain, with what is wrong.
    pub broken_at: Option<(i64, String)>,
}

/// Walks a tenant's chain from the start and reports the first break.
pub async fn verify(conn: &impl ConnectionTrait, tenant_id: &str) -> Result<Verification, StoreError> {
    let mut entries = 0u64;
    let mut expected_prev = GENESIS.to_string();
    let mut expected_seq = 1i64;
    let mut after = 0i64;
    loop {
        let page = rows::page(conn, tenant_id, after, 1000).await?;
        if page.is_empty() {
            return Ok(Verification {
                entries,
                broken_at: None,
            });
        }
        for e in page {
            let problem = if e.seq != expected_seq {
                Some(format!(
                    "expected entry {expected_seq}, found {} (an entry was deleted)",
                    e.seq
                ))
            } else if e.prev_hash != expected_prev {
                Some("prev_hash does not match the previous entry".to_string())
            } else if entry_hash(&e) != e.hash {
                Some("content does not match its hash (the entry was edited)".to_string())
            } else {
                None
            };
            if let Some(p) = problem {
                return Ok(Verification {
                    entries,
                    broken_at: Some((e.seq, p)),
                });
            }
            entries += 1;
            expected_seq += 1;
            expected_prev = e.hash.clone();
            after = e.seq;
        }
    }
}

/// One entry as exported (JSON lines) and shown by the API.
pub fn to_json(e: &audit_entry::Model) -> Value {
    let parse = |s: &Option<String>| s.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
    json!({
        "tenant_id": e.tenant_id, "seq": e.seq, "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "actor": e.actor, "action": e.action, "target": e.target,
        "before": parse(&e.before), "after": parse(&e.after), "request_id": e.request_id,
        "prev_hash": e.prev_hash, "hash": e.hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn entry(seq: i64, prev: &str) -> audit_entry::Model {
        let mut e = audit_entry::Model {
            tenant_id: "t".into(),
            seq,
            at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default(),
            actor: "cli".into(),
            action: "license.set".into(),
            target: "License/t".into(),
            before: Some("{\"seats\":5}".into()),
            after: Some("{\"seats\":9}".into()),
            request_id: None,
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        e
    }

    #[test]
    fn any_field_change_changes_the_hash() {
        let e = entry(1, GENESIS);
        let mut edited = e.clone();
        edited.after = Some("{\"seats\":900}".into());
        assert_ne!(entry_hash(&edited), e.hash);
        let mut moved = e.clone();
        moved.seq = 2;
        assert_ne!(entry_hash(&moved), e.hash);
        assert_eq!(entry_hash(&e), e.hash);
    }
}
