//! Provisioning: the service layer between the SCIM handlers and the store.
//!
//! Every state change runs in one write transaction that first takes the tenant's write lock
//! ([`Provisioning::begin`]), so a request either lands whole or not at all, and license
//! decisions of concurrent requests — on one instance or many on PostgreSQL — never interleave.
//! Every user write passes through `users::write_user`, where the license engine decides the
//! seat; every change is appended to the audit log in the same transaction.

mod batch;
mod groups;
mod seats;
mod users;
mod write;

pub use batch::WriteBatcher;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbBackend};
use serde_json::{json, Value};

use crate::audit;
use crate::auth::Tenant;
use crate::entitlements;
use crate::events::{self, Signals};
use crate::license::{effective_status, License, LicenseStatus, Plan};
use crate::scim::error::ScimError;
use crate::scim::resource::format_datetime;
use crate::scim::schema::{ResourceKind, ResourceTypeDef, SchemaRegistry, SEATBRIDGE_USER_SCHEMA};
use crate::store::entities::{group, user};
use crate::store::listing::ListError;
use crate::store::{self, tenants, StoreError};

/// A resource as stored, ready to render: the canonical document (plus `groups`/`members`
/// when asked for) and its server-maintained metadata.
#[derive(Debug, Clone)]
pub struct StoredResource {
    pub id: String,
    pub doc: Document,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: i64,
}

/// A resource's document: a tree, or (on reads) the stored JSON text with the attributes the
/// server adds to it, so a response can be written without parsing it (`scim::render`).
#[derive(Debug, Clone)]
pub enum Document {
    Parsed(Value),
    Stored { text: String, added: Added },
}

/// What the server adds to a stored document, by attribute name, in order. A handful of
/// entries with fixed names: a list, where a map's hashing showed in the profile of a GET.
pub type Added = Vec<(&'static str, Addition)>;

/// An attribute the server adds to a stored user document, kept typed until it is written:
/// building `serde_json::Value` maps for it (an `IndexMap` insert and a SipHash per key) and
/// dropping them again cost a fifth of a list page's instructions (callgrind, `bench/RESULTS.md`).
/// [`Addition::to_value`] is its JSON, for the tree path; `scim::render` writes the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Addition {
    /// A user's direct groups (`groups`): each `{"value", "display", "type": "direct"}`.
    Groups(Vec<store::users::GroupRef>),
    /// The license verdict, in the seatbridge extension block.
    Verdict(Verdict),
}

/// A user's license verdict as its seatbridge extension block shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `seatPool`: the pool the user is in.
    pub seat_pool: String,
    pub entitled: bool,
    /// `entitlementReason`.
    pub reason: String,
    /// `entitlementUpdated`, when the verdict last changed.
    pub updated: Option<DateTime<Utc>>,
}

impl Addition {
    /// The attribute's JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Addition::Groups(groups) => groups
                .iter()
                .map(|g| json!({"value": g.id, "display": g.display_name, "type": "direct"}))
                .collect(),
            Addition::Verdict(v) => {
                let mut verdict = json!({
                    "seatPool": v.seat_pool,
                    "entitled": v.entitled,
                    "entitlementReason": v.reason,
                });
                if let Some(t) = &v.updated {
                    verdict["entitlementUpdated"] = json!(format_datetime(t));
                }
                verdict
            }
        }
    }
}

impl Document {
    /// The document as a tree, the added attributes merged in by [`merge_attribute`].
    pub fn into_value(self) -> Value {
        match self {
            Document::Parsed(doc) => doc,
            Document::Stored { text, added } => {
                let mut doc = parse_doc(&text);
                merge_added(&mut doc, added);
                doc
            }
        }
    }
}

/// How an attribute the server adds joins the stored one: an object merges into a stored
/// object (the server's members win, so the seatbridge block keeps the IdP's `seatType`);
/// anything else replaces it.
pub fn merge_attribute(stored: &mut Value, added: Value) {
    match (stored, added) {
        (Value::Object(old), Value::Object(new)) => old.extend(new),
        (stored, added) => *stored = added,
    }
}

fn merge_added(doc: &mut Value, added: Added) {
    let Value::Object(obj) = doc else { return };
    for (key, addition) in added {
        match obj.get_mut(key) {
            Some(stored) => merge_attribute(stored, addition.to_value()),
            None => {
                obj.insert(key.to_string(), addition.to_value());
            }
        }
    }
}

/// `If-Match` precondition of a write (RFC 7644 §3.14).
#[derive(Debug, Clone, Copy)]
pub enum Precondition<'a> {
    None,
    IfMatch(&'a str),
}

impl<'a> Precondition<'a> {
    /// The `If-Match` header, kept for a write that runs later.
    fn owned(self) -> Option<String> {
        match self {
            Precondition::None => None,
            Precondition::IfMatch(header) => Some(header.to_string()),
        }
    }

    /// A kept header (see [`Precondition::owned`]) as a precondition again.
    fn kept(header: &'a Option<String>) -> Self {
        header.as_deref().map_or(Precondition::None, Precondition::IfMatch)
    }
}

/// Who is acting, recorded with every audit entry.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `token:<id>` for SCIM clients, `cli`, `operator`, `system:sweeper`…
    pub name: String,
    pub request_id: Option<String>,
    /// The SCIM request being served, recorded with refusals.
    pub request: Option<crate::scim::client::RequestInfo>,
}

impl Actor {
    /// The SCIM client behind a tenant token.
    pub fn scim(
        tenant: &Tenant,
        request_id: Option<String>,
        request: Option<crate::scim::client::RequestInfo>,
    ) -> Self {
        Actor {
            name: format!("token:{}", tenant.token_id),
            request_id,
            request,
        }
    }
}

impl From<StoreError> for ScimError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UniqueViolation(_) => {
                ScimError::Uniqueness("a resource with this unique attribute already exists".into())
            }
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database busy or unreachable");
                ScimError::Unavailable("the database is busy or unreachable; retry the request".into())
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

/// An open write transaction holding the tenant's lock, with the license facts read under it.
pub(crate) struct WriteTx {
    pub tx: store::Tx,
    pub license: License,
    pub plan: Plan,
    pub status: LicenseStatus,
    /// This process's turn to write (SQLite only, see `Signals::sqlite_writer`).
    writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The head of the tenant's audit chain, read under the lock and moved by each append of
    /// this transaction (see [`WriteTx::audit`]).
    audit_head: std::sync::Mutex<Option<(i64, String)>>,
    /// Entitled users per pool, as the seat decisions of creates need them: read under the lock
    /// (the first with the write's context), then counted up by each create that takes a seat.
    /// Any other seat decision forgets them (updates move seats these would not see).
    seat_counts: std::sync::Mutex<HashMap<String, i64>>,
    /// Whether a user of the tenant may be waiting for a seat: read under the lock, and set by
    /// any write of this transaction that leaves a user waiting. While false, a freed seat has
    /// nobody to go to, and the pool need not be read.
    anyone_waits: std::sync::atomic::AtomicBool,
    /// Whether any group of the tenant maps seats, read under the lock (no write of this
    /// transaction adds a mapping). While false, every user's mapped seat type is the default.
    seat_mappings: bool,
    /// Users read ahead for the writes of a batch (see [`WriteTx::prefetched`]).
    prefetched: std::sync::Mutex<HashMap<String, user::Model>>,
    /// New users, audit entries and events written together when the transaction ends (a
    /// batch, see [`WriteBatcher`]), in the order they were made; `None`: each is written at
    /// once. (Updates write their rows at once: later reads of the batch must see them.)
    deferred: Option<std::sync::Mutex<Vec<DeferredWrite>>>,
}

/// Appended rows held back by a [`WriteTx`] that defers them: a user write's (its new user,
/// audit entry and event), or an audit entry or event alone.
#[derive(Default)]
struct DeferredWrite {
    user: Option<store::users::NewUser>,
    audit: Option<store::entities::audit_entry::Model>,
    event: Option<(&'static str, Value)>,
}

impl DeferredWrite {
    /// About how many bytes its rows add to a statement: the document, the event (which
    /// repeats part of it), ids, hashes and timestamps.
    fn size(&self) -> usize {
        self.user.as_ref().map_or(0, |u| 2 * u.row.doc.len()) + 1024
    }
}

/// The most bytes of rows one statement of held-back writes carries. sqlx 0.9.0 leaves Nagle's
/// algorithm on for its sockets (launchbadge/sqlx#4335, fixed upstream by #4336, not yet
/// released), and with TLS sends a message larger than one TLS record (16 KiB) in several
/// writes: the later ones then wait for PostgreSQL's delayed ACK, 40 ms, which made batches of
/// creates slower than creates alone (362 against 1,948 req/s). Statements below a record are
/// sent in one write.
const DEFERRED_STATEMENT_BYTES: usize = 12 * 1024;

impl WriteTx {
    /// Appends to the tenant's audit chain after the head this transaction knows.
    async fn audit(&self, tenant_id: &str, event: audit::Event<'_>) -> Result<(), StoreError> {
        let entry = self.next_audit_entry(tenant_id, event);
        let write = DeferredWrite {
            audit: Some(entry),
            ..Default::default()
        };
        match self.defer(write) {
            Some(DeferredWrite { audit: Some(entry), .. }) => store::audit::insert(&self.tx, entry).await,
            _ => Ok(()),
        }
    }

    /// Emits an event to the tenant's outbox (after what this transaction holds back).
    async fn emit(&self, tenant_id: &str, event_type: &'static str, data: Value) -> Result<(), StoreError> {
        let write = DeferredWrite {
            event: Some((event_type, data)),
            ..Default::default()
        };
        if let Some(DeferredWrite {
            event: Some((event_type, data)),
            ..
        }) = self.defer(write)
        {
            events::emit(&self.tx, tenant_id, event_type, data).await?;
        }
        Ok(())
    }

    /// Holds `write` back when this transaction defers its appends, else gives it back.
    fn defer(&self, write: DeferredWrite) -> Option<DeferredWrite> {
        match &self.deferred {
            Some(deferred) => {
                lock(deferred).push(write);
                None
            }
            None => Some(write),
        }
    }

    /// The next entry of the tenant's audit chain, for the caller to insert in this
    /// transaction. The head moves now: should the insert fail, the transaction fails with it.
    fn next_audit_entry(&self, tenant_id: &str, event: audit::Event<'_>) -> store::entities::audit_entry::Model {
        let mut head = lock(&self.audit_head);
        let entry = audit::entry_after(tenant_id, head.take(), event);
        *head = Some((entry.seq, entry.hash.clone()));
        entry
    }

    /// Reads the users `ids` ahead, in one statement, for the writes of a batch to take.
    async fn prefetch(&self, tenant_id: &str, ids: &[String]) -> Result<(), StoreError> {
        if !ids.is_empty() {
            *lock(&self.prefetched) = store::users::find_many(&self.tx, tenant_id, ids).await?;
        }
        Ok(())
    }

    /// The user `id` as read ahead, if this transaction has not written it since.
    fn prefetched(&self, id: &str) -> Option<user::Model> {
        let row = lock(&self.prefetched).remove(id)?;
        (!self.tx.was_touched(id)).then_some(row)
    }

    /// May a user of the tenant be waiting for a seat (see the field of that name)?
    fn anyone_waits(&self) -> bool {
        self.anyone_waits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A write of this transaction left `row` as it is now.
    fn user_written(&self, row: &user::Model) {
        if store::users::is_waiting(row) {
            self.anyone_waits.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The seat type `user_id` gets from its groups, or the default pool.
    async fn mapped_seat_type(&self, tenant_id: &str, user_id: &str) -> Result<String, StoreError> {
        if !self.seat_mappings {
            return Ok(crate::license::DEFAULT_SEAT_TYPE.to_string());
        }
        crate::licensing::mapped_seat_type(&self.tx, tenant_id, user_id).await
    }

    /// The entitled count of `seat_type`, if this transaction knows it without a query.
    fn seat_count(&self, seat_type: &str) -> Option<i64> {
        lock(&self.seat_counts).get(seat_type).copied()
    }

    /// A create's seat decision read the entitled count of `seat_type`.
    fn know_seat_count(&self, seat_type: &str, n: i64) {
        lock(&self.seat_counts).insert(seat_type.to_string(), n);
    }

    /// A create took a seat of `seat_type`.
    fn seat_taken(&self, seat_type: &str) {
        if let Some(n) = lock(&self.seat_counts).get_mut(seat_type) {
            *n += 1;
        }
    }

    /// A write other than a create decides seats: the counts are no longer known.
    fn forget_seat_counts(&self) {
        lock(&self.seat_counts).clear();
    }

    /// Holds this transaction's appends (new users, audit entries, events) back until
    /// [`WriteTx::write_deferred`].
    fn defer_writes(&mut self) {
        self.deferred = Some(std::sync::Mutex::default());
    }

    /// Writes a user write's rows (a create's new user; an update has written its row), its
    /// audit entry and its event: now, in one statement, or, when the transaction defers its
    /// writes, at [`WriteTx::write_deferred`].
    async fn write_user_rows(
        &self,
        tenant_id: &str,
        new: Option<store::users::NewUser>,
        entry: store::entities::audit_entry::Model,
        event: (&'static str, Value),
    ) -> Result<(), StoreError> {
        let write = DeferredWrite {
            user: new,
            audit: Some(entry),
            event: Some(event),
        };
        let Some(DeferredWrite { user, audit, event }) = self.defer(write) else {
            return Ok(());
        };
        let mut writes = user.map(store::users::NewUser::statements).unwrap_or_default();
        writes.extend(audit.map(store::audit::insert_statement));
        events::emit_with_writes(&self.tx, tenant_id, event.as_slice(), writes).await?;
        Ok(())
    }

    /// Runs the writes held back, in as few statements as [`DEFERRED_STATEMENT_BYTES`] allows
    /// (on PostgreSQL each a multi-row insert per table).
    async fn write_deferred(&self, tenant_id: &str) -> Result<(), StoreError> {
        let Some(deferred) = &self.deferred else {
            return Ok(());
        };
        let held = std::mem::take(&mut *lock(deferred));
        for group in split_by_size(held, DeferredWrite::size, DEFERRED_STATEMENT_BYTES) {
            let (mut users, mut audit, mut events) = (Vec::new(), Vec::new(), Vec::new());
            for write in group {
                users.extend(write.user);
                audit.extend(write.audit);
                events.extend(write.event);
            }
            let mut writes = store::users::NewUser::insert_many(users);
            if !audit.is_empty() {
                writes.push(store::audit::insert_many_statement(audit));
            }
            events::emit_with_writes(&self.tx, tenant_id, &events, writes).await?;
        }
        Ok(())
    }
}

/// `items` in order, in groups of at most `budget` by `size`; an item larger than the budget
/// forms a group of its own.
fn split_by_size<T>(items: Vec<T>, size: impl Fn(&T) -> usize, budget: usize) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut used = 0;
    for item in items {
        let n = size(&item);
        match groups.last_mut() {
            Some(group) if used + n <= budget => {
                used += n;
                group.push(item);
            }
            _ => {
                used = n;
                groups.push(vec![item]);
            }
        }
    }
    groups
}

/// A mutex of a [`WriteTx`]: only its own request uses it, so a poisoned one still holds what
/// that request last wrote.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The provisioning service for one request.
pub struct Provisioning<'a> {
    pub db: &'a DatabaseConnection,
    /// Reads of one indexed row (see [`store::PointReads`]); everything else uses `db`.
    reads: &'a store::PointReads,
    pub schemas: &'a SchemaRegistry,
    pub actor: Actor,
    /// Told about every committed change (other instances learn through NOTIFY).
    signals: Option<&'a Signals>,
    /// Where writes queue to be written in batches with the tenant's others (PostgreSQL).
    batcher: Option<&'a WriteBatcher>,
}

impl<'a> Provisioning<'a> {
    /// A service over a pool (and its point reads) and the schema registry, acting as `actor`.
    pub fn new(
        db: &'a DatabaseConnection,
        reads: &'a store::PointReads,
        schemas: &'a SchemaRegistry,
        actor: Actor,
    ) -> Self {
        Provisioning {
            db,
            reads,
            schemas,
            actor,
            signals: None,
            batcher: None,
        }
    }

    /// Tells `signals` (entitlement cache, outbox relay) about every change this service commits.
    pub fn with_signals(mut self, signals: &'a Signals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Runs the writes `batcher` carries through it, together with other writes of their tenant.
    pub fn with_batcher(mut self, batcher: Option<&'a WriteBatcher>) -> Self {
        self.batcher = batcher;
        self
    }

    fn rt(&self, kind: ResourceKind) -> &'a ResourceTypeDef {
        self.schemas.resource_type(kind)
    }

    /// Waits for this process's turn to write on SQLite through the pool (see
    /// `Signals::sqlite_writer`). Direct writes queue on their connection instead, which must
    /// not be held up here: a write waiting for its group commit has ended its turn. (On
    /// PostgreSQL the tenant's row lock orders writes; queueing them in the process as well
    /// made creates slower: 456 / 457 -> 402 / 379 req/s in two pairs.)
    async fn writer_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.signals {
            Some(signals) if self.db.get_database_backend() == DbBackend::Sqlite && !self.reads.is_direct() => {
                Some(signals.sqlite_writer.clone().lock_owned().await)
            }
            _ => None,
        }
    }

    /// Opens a write transaction, takes the tenant's lock and reads its license and plan.
    async fn begin(&self, tenant: &Tenant) -> Result<WriteTx, ScimError> {
        self.begin_with_seats(tenant, None).await
    }

    /// [`Provisioning::begin`] that also reads how many users hold a seat of `seat_type`, for a
    /// create's seat decision. Two statements run under the lock: the license (which takes the
    /// lock, and on PostgreSQL sends the entitlement caches' notification, delivered only if the
    /// write commits) and the write's context (audit head, pool count, whether anyone waits or
    /// any group maps seats).
    async fn begin_with_seats(&self, tenant: &Tenant, seat_type: Option<&str>) -> Result<WriteTx, ScimError> {
        let writer = self.writer_turn().await;
        let tx = store::write_tx::begin(self.db, self.reads).await?;
        let notify = entitlements::notification(entitlements::Change::Users, &tenant.id);
        let (license, plan) = tenants::lock_and_read_license(&tx, &tenant.id, notify)
            .await?
            .ok_or_else(|| ScimError::Forbidden {
                code: "NO_LICENSE",
                detail: "this tenant has no license; an operator must set one with `seatbridge license set`".into(),
            })?;
        let context = tenants::write_context(&tx, &tenant.id, seat_type).await?;
        let status = effective_status(&license, &plan, store::now());
        Ok(WriteTx {
            tx,
            license,
            plan,
            status,
            writer,
            audit_head: std::sync::Mutex::new(context.audit_head),
            anyone_waits: context.anyone_waits.into(),
            prefetched: std::sync::Mutex::default(),
            seat_mappings: context.seat_mappings,
            seat_counts: std::sync::Mutex::new(
                seat_type
                    .zip(context.in_pool)
                    .map(|(t, n)| (t.to_string(), n))
                    .into_iter()
                    .collect(),
            ),
            deferred: None,
        })
    }

    /// Commits a successful write; rolls back a failed one. A refusal by the license engine
    /// (403) is still recorded in the audit log, in a transaction of its own.
    async fn finish<T>(
        &self,
        w: WriteTx,
        tenant: &Tenant,
        action: &str,
        target: &str,
        outcome: Result<T, ScimError>,
    ) -> Result<T, ScimError> {
        match outcome {
            Ok(value) => {
                let touched = w.tx.touched_users();
                let guard = self.signals.map(|s| s.entitlements.write_guard(&tenant.id));
                w.tx.commit().await?;
                self.users_committed(tenant, touched).await;
                if let Some(guard) = guard {
                    guard.disarm();
                }
                Ok(value)
            }
            Err(err) => {
                let WriteTx { tx, writer, .. } = w;
                if let Err(e) = tx.rollback().await {
                    tracing::warn!(error = %e, "rollback failed");
                }
                // The refusal is recorded in a transaction of its own, which needs the turn.
                drop(writer);
                Err(self.refused(tenant, action, target, err).await)
            }
        }
    }

    /// Tells this process that a write of the tenant's users `touched` committed.
    async fn users_committed(&self, tenant: &Tenant, touched: Vec<String>) {
        if let Some(signals) = self.signals {
            signals.users_committed(self.reads, &tenant.id, touched).await;
        }
    }

    /// A failed write's error, after recording it in the audit log if it is the license's
    /// refusal (403).
    async fn refused(&self, tenant: &Tenant, action: &str, target: &str, err: ScimError) -> ScimError {
        if let ScimError::Forbidden { code, detail } = &err {
            tracing::info!(code, %detail, "refused by the license");
            self.record_refusal(tenant, action, target, code, detail).await;
        }
        err
    }

    async fn record_refusal(&self, tenant: &Tenant, action: &str, target: &str, code: &str, detail: &str) {
        metrics::counter!(crate::metrics::REFUSALS, "code" => code.to_string()).increment(1);
        let result = async {
            let _writer = self.writer_turn().await;
            let tx = store::write_tx::begin(self.db, self.reads).await?;
            tenants::lock_tenant(&tx, &tenant.id).await?;
            let after = json!({"refused": action, "code": code, "detail": detail, "request": self.actor.request});
            let event = self.event("provisioning.refused", target, None, Some(after.clone()));
            audit::append(&tx, &tenant.id, event).await?;
            if code == "SEAT_LIMIT_REACHED" {
                events::emit(&tx, &tenant.id, events::types::SEAT_LIMIT_REACHED, after).await?;
            }
            tx.commit().await?;
            // Only the audit log and the outbox changed: wake the relay, keep every cache.
            if let Some(signals) = self.signals {
                signals.outbox.notify_one();
            }
            Ok::<(), ScimError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a refusal in the audit log");
        }
    }

    /// Appends an audit entry for this actor, in the write `w`.
    async fn audit(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<(), ScimError> {
        Ok(w.audit(&tenant.id, self.event(action, target, before, after)).await?)
    }

    /// An audit event of this actor.
    fn event<'e>(
        &'e self,
        action: &'e str,
        target: &'e str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> audit::Event<'e> {
        audit::Event {
            actor: &self.actor.name,
            action,
            target,
            before,
            after,
            request_id: self.actor.request_id.as_deref(),
        }
    }

    /// The tenant's current plan (read outside a write, e.g. for discovery).
    /// With signals, from the entitlement cache (invalidated by every committed license or plan
    /// change); writes read the plan again inside their transaction.
    pub async fn plan(&self, tenant: &Tenant) -> Result<Plan, ScimError> {
        let plan = match self.signals {
            Some(signals) => signals.entitlements.plan(self.db, &tenant.slug).await?,
            None => tenants::license_and_plan(self.db, &tenant.id)
                .await?
                .map(|(_, plan)| plan),
        };
        plan.ok_or_else(|| ScimError::Forbidden {
            code: "NO_LICENSE",
            detail: "this tenant has no license; an operator must set one with `seatbridge license set`".into(),
        })
    }

    /// Refuses with 403 when the tenant's plan lacks `feature` (reads check outside a write).
    async fn require_feature(&self, tenant: &Tenant, feature: &str) -> Result<(), ScimError> {
        seats::check_feature(&self.plan(tenant).await?, feature)
    }
}

/// Refuses a write whose `If-Match` does not match the current version.
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

/// A user as SCIM shows it: its stored text, left unparsed, and what the server adds to it.
fn stored_user(row: user::Model, groups: Option<Vec<store::users::GroupRef>>) -> StoredResource {
    let added = user_added(&row, groups);
    StoredResource {
        id: row.id,
        doc: Document::Stored { text: row.doc, added },
        created: row.created_at,
        last_modified: row.updated_at,
        version: row.version,
    }
}

/// What the server adds to a user's document: its groups, and the license verdict in the
/// seatbridge extension (kept in columns, never in the document, so IdP writes cannot touch
/// it). The verdict merges into the stored block, which keeps `seatType`, what the IdP asked
/// for; `seatPool` is the pool the user is actually in (asked for, from a mapped group, or the
/// default).
fn user_added(row: &user::Model, groups: Option<Vec<store::users::GroupRef>>) -> Added {
    let mut added = Added::with_capacity(2);
    if let Some(g) = groups.filter(|g| !g.is_empty()) {
        added.push(("groups", Addition::Groups(g)));
    }
    let verdict = Verdict {
        seat_pool: row.seat_type.clone(),
        entitled: row.entitled,
        reason: row.entitlement_reason.clone(),
        updated: row.entitlement_updated,
    };
    added.push((SEATBRIDGE_USER_SCHEMA, Addition::Verdict(verdict)));
    added
}

fn group_resource(row: &group::Model, doc: Value) -> StoredResource {
    StoredResource {
        id: row.id.clone(),
        doc: Document::Parsed(doc),
        created: row.created_at,
        last_modified: row.updated_at,
        version: row.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_writes_split_in_order_within_the_budget() {
        let groups = split_by_size(vec![4, 4, 4, 9, 1, 20, 2], |n| *n, 10);
        assert_eq!(groups, vec![vec![4, 4], vec![4], vec![9, 1], vec![20], vec![2]]);
        assert!(split_by_size(Vec::<usize>::new(), |n| *n, 10).is_empty());
    }

    #[test]
    fn etags_compare_weakly_and_accept_star() {
        assert!(etag_matches("W/\"3\"", 3));
        assert!(etag_matches("\"3\"", 3));
        assert!(etag_matches("*", 9));
        assert!(etag_matches("W/\"1\", W/\"3\"", 3));
        assert!(!etag_matches("W/\"2\"", 3));
    }
}
