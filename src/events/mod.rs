//! Events: billing webhooks in, the transactional outbox, and delivery to the product.
//!
//! Every provisioning decision and license change appends an event to the outbox in the same
//! transaction as the change ([`emit`]); the [`relay`] delivers them to each tenant's endpoints
//! in order, with retries and dead letters.

pub mod downstream;
pub mod inbound;
pub mod relay;
pub mod signature;

use std::sync::Arc;

use sea_orm::DbBackend;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::entitlements::EntitlementCache;
use crate::store::entities::user;
use crate::store::{self, StoreError, Writer};

/// The PostgreSQL channel that wakes relays when events are appended.
pub const OUTBOX_CHANNEL: &str = "seatbridge_outbox";

/// Event types sent to products.
pub mod types {
    pub const USER_PROVISIONED: &str = "user.provisioned";
    pub const USER_UPDATED: &str = "user.updated";
    pub const USER_DEPROVISIONED: &str = "user.deprovisioned";
    pub const USER_REPROVISIONED: &str = "user.reprovisioned";
    pub const GROUP_CREATED: &str = "group.created";
    pub const GROUP_UPDATED: &str = "group.updated";
    pub const GROUP_DELETED: &str = "group.deleted";
    pub const LICENSE_CHANGED: &str = "license.changed";
    pub const SEAT_LIMIT_REACHED: &str = "seat.limit_reached";
}

/// Appends an event to the outbox. Call inside the transaction of the change it reports: both
/// commit or neither does. On PostgreSQL every relay is woken when the transaction commits, if
/// the event is to be delivered anywhere. Returns the deliveries created.
pub async fn emit(conn: &impl Writer, tenant_id: &str, event_type: &str, data: Value) -> Result<u64, StoreError> {
    emit_many(conn, tenant_id, &[(event_type, data)]).await
}

/// [`emit_many`], with other inserts of the write (its rows, its audit entries) made by the
/// same statement on PostgreSQL (round trips saved under the tenant's lock), in order before it
/// on SQLite.
pub async fn emit_with_writes(
    conn: &impl Writer,
    tenant_id: &str,
    events: &[(&str, Value)],
    writes: Vec<sea_orm::sea_query::InsertStatement>,
) -> Result<u64, StoreError> {
    append(conn, tenant_id, events, writes).await
}

/// Appends many events at once (same rules as [`emit`]).
pub async fn emit_many(conn: &impl Writer, tenant_id: &str, events: &[(&str, Value)]) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    append(conn, tenant_id, events, Vec::new()).await
}

async fn append(
    conn: &impl Writer,
    tenant_id: &str,
    events: &[(&str, Value)],
    also: Vec<sea_orm::sea_query::InsertStatement>,
) -> Result<u64, StoreError> {
    let at = crate::scim::resource::format_datetime(&store::now());
    let rows: Vec<(String, String)> = events
        .iter()
        .map(|(t, data)| {
            (
                t.to_string(),
                json!({"type": t, "timestamp": at, "data": data}).to_string(),
            )
        })
        .collect();
    let deliveries = store::events::append_many(conn, tenant_id, &rows, also).await?;
    if deliveries > 0 && conn.backend() == DbBackend::Postgres {
        let mut b = store::sql::SqlBuilder::new(DbBackend::Postgres);
        b.push("SELECT pg_notify('").push(OUTBOX_CHANNEL).push("', '')");
        conn.rows(b.build()).await?;
    }
    Ok(deliveries)
}

/// The user attributes user events carry for products (and the downstream SCIM connector).
pub const PROFILE_ATTRIBUTES: [&str; 7] = [
    "displayName",
    "name",
    "emails",
    "title",
    "locale",
    "preferredLanguage",
    "timezone",
];

/// Does a user have access (active at the IdP and holding a seat)?
pub fn has_access(row: &user::Model) -> bool {
    row.active && row.entitled
}

/// The data of a user event: who (with the profile attributes a downstream system mirrors),
/// whether it has access now, and why.
pub fn user_data(row: &user::Model, reason: &str) -> Value {
    let doc: Value = serde_json::from_str(&row.doc).unwrap_or_default();
    let mut profile = serde_json::Map::new();
    for key in PROFILE_ATTRIBUTES {
        if let Some(v) = doc.get(key) {
            profile.insert(key.to_string(), v.clone());
        }
    }
    json!({
        "user": {"id": row.id, "userName": row.user_name, "externalId": row.external_id, "active": row.active,
                 "entitled": row.entitled, "seatType": row.seat_type, "profile": profile},
        "access": has_access(row),
        "reason": reason,
    })
}

/// What in this process must hear about a committed change: the entitlement cache and the
/// outbox relay. (Other instances hear through PostgreSQL NOTIFY.)
#[derive(Clone)]
pub struct Signals {
    pub entitlements: Arc<EntitlementCache>,
    pub outbox: Arc<Notify>,
    /// Tenants whose seat usage may have changed since the last usage snapshot.
    changed: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// On SQLite, this process's provisioning writes queue here, in arrival order, instead of
    /// retrying `BEGIN IMMEDIATE` in SQLite's busy handler, which sleeps up to 100 ms between
    /// tries and gave POST a p99 above one second under 32 concurrent writers.
    pub sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// On PostgreSQL, where the users each SCIM write changed are told to other instances.
    peers: Option<sea_orm::DatabaseConnection>,
}

impl Signals {
    /// Signals with a fresh cache and relay wake-up.
    pub fn new(entitlements: Arc<EntitlementCache>) -> Self {
        Signals {
            entitlements,
            outbox: Arc::new(Notify::new()),
            changed: Arc::default(),
            sqlite_writer: Arc::default(),
            peers: None,
        }
    }

    /// Tells other instances, through `db` (PostgreSQL), which users each SCIM write changed.
    pub fn with_peers(mut self, db: &sea_orm::DatabaseConnection) -> Self {
        if db.get_database_backend() == sea_orm::DbBackend::Postgres {
            self.peers = Some(db.clone());
        }
        self
    }

    /// A SCIM write of `tenant_id`'s users `ids` has committed: the entitlement check's users
    /// are brought up to date (read through `reads`), and other instances told which they are,
    /// before this returns, even if the caller is dropped meanwhile; its plan, license and
    /// tokens are kept.
    pub async fn users_committed(&self, reads: &crate::store::PointReads, tenant_id: &str, ids: Vec<String>) {
        self.after_commit(tenant_id);
        let (cache, reads, tenant) = (self.entitlements.clone(), reads.clone(), tenant_id.to_string());
        let peers = self.peers.clone();
        // Built before `ids` moves on (PostgreSQL only).
        let notice = peers
            .as_ref()
            .map(|_| crate::entitlements::RowsNotice::payload(&tenant, &ids));
        let applied = tokio::spawn(async move {
            let tell = async {
                if let Some((db, notice)) = peers.as_ref().zip(notice) {
                    if let Err(e) = crate::entitlements::notify_rows(db, notice).await {
                        // The other instances drop the tenant's users when the ids do not come.
                        tracing::warn!(error = %e, tenant = %tenant, "could not tell other instances which users a write changed");
                    }
                }
            };
            tokio::join!(cache.users_written(&reads, &tenant, ids), tell);
        });
        if let Err(e) = applied.await {
            tracing::error!(error = %e, "updating the entitlement check's users failed");
        }
    }

    /// A change of `tenant_id` (or `*`) has committed.
    pub fn committed(&self, tenant_id: &str) {
        self.entitlements
            .forget(crate::entitlements::Change::Tenant, tenant_id, None);
        self.after_commit(tenant_id);
    }

    fn after_commit(&self, tenant_id: &str) {
        self.outbox.notify_one();
        if let Ok(mut changed) = self.changed.lock() {
            changed.insert(tenant_id.to_string());
        }
    }

    /// The tenants changed since the last call (`*` for all).
    pub fn take_changed(&self) -> Vec<String> {
        self.changed.lock().map(|mut c| c.drain().collect()).unwrap_or_default()
    }
}
