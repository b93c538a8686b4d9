//! Entitlement checks for product services ("may this user use that feature?"), answered from
//! memory.
//!
//! The cache holds one view per tenant (plan, license status), every user of the tenants
//! checked ([`tenant_users`]: the whole tenant in memory, kept current by this process's SCIM
//! writes), and the SCIM tokens seen recently with the tenant each acts for, so that neither
//! SCIM authentication nor a read's plan gate costs a query on the hot path.
//!
//! Every committed change invalidates what it can have changed: a SCIM write updates the users
//! it wrote; any other change (license, plan, seat mapping, hold, tokens, tenant) drops the
//! tenant's view, users and tokens. In this process directly, and on PostgreSQL in every
//! process through `NOTIFY seatbridge_entitlements` (sent inside the changing transaction, so
//! it is delivered exactly when the change commits). Other instances learn which users a SCIM
//! write changed from a second notification the writer sends after its commit
//! ([`RowsNotice`]), and re-read them; one that does not follow within a second makes them
//! drop the tenant's users and rebuild. Views are re-read every TTL, which bounds
//! staleness from writers that cannot notify (another process on the same SQLite file, such as
//! `seatbridge license set`); such changes also bump the tenant's `entitlement_epoch`, which
//! the re-read compares to drop the users it knew.

mod index;
mod tenant_users;

pub use index::{CheckRow, UserIndex};
pub use tenant_users::{Budget, DropReason, TenantUsers};

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbBackend};
use serde::Serialize;

use crate::license::{effective_status, LicenseStatus, Plan};
use crate::store::{self, tenants, Reader, StoreError, Writer};

/// The PostgreSQL channel that carries "tenant X changed" (payload: tenant id, or `*`), and
/// "users of tenant X changed" (payload: `users:`, the tenant id, `@` and the writing
/// process's [`instance`] id).
pub const CHANNEL: &str = "seatbridge_entitlements";

/// What a committed change can have changed, and so what caches must forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The tenant's users (a SCIM write): its plan, license and tokens are still good.
    Users,
    /// Anything of the tenant (license, plan, tokens, the tenant itself).
    Tenant,
}

impl Change {
    /// The NOTIFY payload for a change of `tenant_id`.
    fn payload(self, tenant_id: &str) -> String {
        match self {
            Change::Users => format!("users:{tenant_id}@{}", instance()),
            Change::Tenant => tenant_id.to_string(),
        }
    }

    /// The change, tenant and writing instance (for a users' change) a NOTIFY payload stands for.
    fn parse(payload: &str) -> (Change, &str, Option<&str>) {
        match payload.strip_prefix("users:") {
            Some(rest) => match rest.split_once('@') {
                Some((tenant_id, origin)) => (Change::Users, tenant_id, Some(origin)),
                None => (Change::Users, rest, None),
            },
            None => (Change::Tenant, payload, None),
        }
    }
}

/// A SCIM write's users as told to other instances after its commit (payload `rows:`, the
/// tenant id, `@`, the writing [`instance`], `:`, then the user ids joined by `,`, or `*` when
/// they do not fit a notification). Every users' change of a tenant ([`Change::Users`], heard
/// when the write commits) is followed by one such notice from the same instance: the other
/// instances re-read those users instead of dropping what they know of the tenant.
#[derive(Debug, PartialEq, Eq)]
pub struct RowsNotice {
    pub tenant_id: String,
    pub origin: String,
    /// `None`: too many to list.
    pub ids: Option<Vec<String>>,
}

/// PostgreSQL refuses payloads of 8,000 bytes and more.
const MAX_PAYLOAD: usize = 7_900;

impl RowsNotice {
    /// The payload telling other instances that this process wrote `ids` of `tenant_id`.
    pub fn payload(tenant_id: &str, ids: &[String]) -> String {
        let mut payload = format!("rows:{tenant_id}@{}:", instance());
        let listed: usize = ids.iter().map(|id| id.len() + 1).sum();
        if payload.len() + listed > MAX_PAYLOAD {
            payload.push('*');
        } else {
            payload.push_str(&ids.join(","));
        }
        payload
    }

    /// The notice a payload stands for, if it is one.
    pub fn parse(payload: &str) -> Option<RowsNotice> {
        let (tenant_id, rest) = payload.strip_prefix("rows:")?.split_once('@')?;
        let (origin, list) = rest.split_once(':')?;
        let ids = match list {
            "*" => None,
            list => Some(
                list.split(',')
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
        };
        Some(RowsNotice {
            tenant_id: tenant_id.to_string(),
            origin: origin.to_string(),
            ids,
        })
    }
}

/// Tells the other instances which users a committed SCIM write of this process changed
/// (`payload` from [`RowsNotice::payload`]); PostgreSQL only.
pub async fn notify_rows(db: &DatabaseConnection, payload: String) -> Result<(), StoreError> {
    pg_notify(db, payload).await
}

/// This process's id in notifications: its own SCIM writes it follows exactly, and ignores
/// when PostgreSQL echoes them.
pub fn instance() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::now_v7().simple().to_string())
}

/// Tokens kept before expired entries are swept (a bound, not an eviction policy: live
/// tokens number in the tens per tenant).
const MAX_CACHED_TOKENS: usize = 10_000;

/// Users indexed for checks by default, over all tenants (about 80 bytes each; see
/// `bench/RESULTS.md`).
pub const DEFAULT_INDEX_USERS: usize = 2_000_000;

/// One user as the check needs it. A tenant has few seat types and reasons: they are shared
/// between its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: Box<str>,
    pub active: bool,
    pub entitled: bool,
    pub seat_type: Arc<str>,
    pub reason: Arc<str>,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub allowed: bool,
    /// `ok`, or why not: `unknown_tenant`, `unknown_user`, `inactive`, `license_expired`,
    /// `license_suspended`, `feature_not_in_plan`, or the user's entitlement reason.
    pub reason: String,
    pub tenant: String,
    pub user: Option<String>,
    pub plan: Option<String>,
    pub license_status: Option<String>,
    pub seat_type: Option<String>,
    pub feature: Option<String>,
}

/// The decision itself, free of I/O: access needs a usable license, an active user holding a
/// seat, and (when asked) the feature in the plan.
pub fn decide(plan: &Plan, status: LicenseStatus, user: &UserView, feature: Option<&str>) -> (bool, String) {
    if !status.allows_access() {
        let why = if status == LicenseStatus::Suspended {
            "license_suspended"
        } else {
            "license_expired"
        };
        return (false, why.into());
    }
    if !user.active {
        return (false, "inactive".into());
    }
    if !user.entitled {
        return (false, user.reason.to_string());
    }
    if let Some(f) = feature {
        if !plan.has_feature(f) {
            return (false, "feature_not_in_plan".into());
        }
    }
    (true, "ok".into())
}

#[derive(Clone)]
struct TenantView {
    id: String,
    slug: String,
    plan: Plan,
    status: LicenseStatus,
    /// The tenant's `entitlement_epoch` when read.
    epoch: i64,
    loaded: Instant,
}

/// A SCIM token as authentication needs it: which token, for which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub token_id: String,
    pub tenant_id: String,
    pub slug: String,
}

/// The in-memory cache of tenant views (by slug), their users (by tenant id) and SCIM tokens
/// (by token hash).
pub struct EntitlementCache {
    tenants: RwLock<HashMap<String, Arc<TenantView>>>,
    users: RwLock<HashMap<String, Arc<TenantUsers>>>,
    tokens: RwLock<HashMap<String, (TokenView, Instant)>>,
    budget: Arc<Budget>,
    ttl: Duration,
}

impl EntitlementCache {
    /// A cache whose views live at most `ttl`, indexing at most `index_users` users.
    pub fn new(ttl: Duration, index_users: usize) -> Self {
        EntitlementCache {
            tenants: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            tokens: RwLock::new(HashMap::new()),
            budget: Arc::new(Budget::new(index_users)),
            ttl,
        }
    }

    /// The tenant's plan (from its cached view), or `None` when the tenant has no license.
    pub async fn plan(&self, db: &DatabaseConnection, slug: &str) -> Result<Option<Plan>, StoreError> {
        Ok(self.tenant_view(db, slug).await?.map(|v| v.plan.clone()))
    }

    /// The token with this hash, if it was seen within the TTL and not revoked since.
    pub fn token(&self, hash: &str) -> Option<TokenView> {
        let map = self.tokens.read().ok()?;
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(t, _)| t.clone())
    }

    /// Remembers a token that authenticated (only valid tokens are cached, so a flood of bad
    /// tokens cannot grow the map).
    pub fn remember_token(&self, hash: &str, token: TokenView) {
        if let Ok(mut map) = self.tokens.write() {
            if map.len() >= MAX_CACHED_TOKENS {
                let ttl = self.ttl;
                map.retain(|_, (_, at)| at.elapsed() < ttl);
            }
            map.insert(hash.to_string(), (token, Instant::now()));
        }
    }

    /// Answers a check; `user` is a user id or a userName (case-insensitive). A user of a
    /// tenant not (yet) indexed is read through `reads` (one indexed row: a point read); the
    /// tenant's view, and its index, through `db`.
    pub async fn check(
        &self,
        db: &DatabaseConnection,
        reads: &impl Reader,
        tenant: &str,
        user: &str,
        feature: Option<&str>,
    ) -> Result<CheckResult, StoreError> {
        let mut result = CheckResult {
            allowed: false,
            reason: "unknown_tenant".into(),
            tenant: tenant.to_string(),
            user: None,
            plan: None,
            license_status: None,
            seat_type: None,
            feature: feature.map(str::to_string),
        };
        let Some(view) = self.tenant_view(db, tenant).await? else {
            return Ok(result);
        };
        result.plan = Some(view.plan.name.clone());
        result.license_status = Some(view.status.as_str().to_string());
        let users = self.users_of(&view);
        // Another process on the same SQLite file writes unheard: while one is there, checks
        // read users, as remembered for at most a TTL.
        if users.probe_due(self.ttl) && reads.other_process_attached() {
            users.distrust(self.ttl * 2, DropReason::OtherProcess);
        }
        let Some(u) = users.lookup(db, reads, user).await? else {
            result.reason = "unknown_user".into();
            return Ok(result);
        };
        let (allowed, reason) = decide(&view.plan, view.status, &u, feature);
        result.allowed = allowed;
        result.reason = reason;
        result.user = Some(u.id.into_string());
        result.seat_type = Some(u.seat_type.to_string());
        Ok(result)
    }

    async fn tenant_view(&self, db: &DatabaseConnection, slug: &str) -> Result<Option<Arc<TenantView>>, StoreError> {
        if let Some(v) = self.read_tenants().get(slug).filter(|v| v.loaded.elapsed() < self.ttl) {
            return Ok(Some(v.clone()));
        }
        let Some(t) = tenants::find_by_slug(db, slug).await? else {
            return Ok(None);
        };
        let Some((license, plan)) = tenants::license_and_plan(db, &t.id).await? else {
            return Ok(None);
        };
        let status = effective_status(&license, &plan, store::now());
        let view = Arc::new(TenantView {
            id: t.id,
            slug: t.slug,
            plan,
            status,
            epoch: t.entitlement_epoch,
            loaded: Instant::now(),
        });
        if let Ok(mut map) = self.tenants.write() {
            map.insert(slug.to_string(), view.clone());
        }
        Ok(Some(view))
    }

    /// What checks know of the view's tenant's users, started over when the tenant's epoch
    /// moved (a change this process was not told of).
    fn users_of(&self, view: &TenantView) -> Arc<TenantUsers> {
        if let Some(users) = read(&self.users).get(&view.id).filter(|u| u.epoch == view.epoch) {
            return users.clone();
        }
        let mut map = write(&self.users);
        let users = map
            .entry(view.id.clone())
            .or_insert_with(|| Arc::new(TenantUsers::new(&view.id, &view.slug, view.epoch, self.budget.clone())));
        if users.epoch != view.epoch {
            *users = Arc::new(TenantUsers::new(&view.id, &view.slug, view.epoch, self.budget.clone()));
        }
        users.clone()
    }

    /// Brings the tenant's users up to date after this process committed a SCIM write of
    /// `ids`; a no-op when no check asked about the tenant.
    pub async fn users_written(&self, reads: &impl Reader, tenant_id: &str, ids: Vec<String>) {
        let users = read(&self.users).get(tenant_id).cloned();
        if let Some(users) = users {
            users.apply(reads, ids).await;
        }
    }

    /// A guard to hold across a SCIM write's commit until [`EntitlementCache::users_written`]
    /// has run: dropped before it is [disarmed](WriteGuard::disarm) (the request was cancelled
    /// between the two), it drops the tenant's index, which then no longer knows what committed.
    pub fn write_guard(self: &Arc<Self>, tenant_id: &str) -> WriteGuard {
        WriteGuard {
            cache: Some(self.clone()),
            tenant_id: tenant_id.to_string(),
        }
    }

    /// Whether the tenant's users are indexed (tests and diagnostics).
    pub fn is_indexed(&self, tenant_id: &str) -> bool {
        read(&self.users).get(tenant_id).is_some_and(|u| u.is_indexed())
    }

    fn read_tenants(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TenantView>>> {
        read(&self.tenants)
    }

    /// Forgets what `change` of a tenant (by id; `*`: every tenant) can have changed, as heard
    /// from `origin` (the instance that wrote, for a users' change). This process's own users'
    /// changes are already applied ([`EntitlementCache::users_written`]).
    pub fn forget(&self, change: Change, tenant_id: &str, origin: Option<&str>) {
        match change {
            Change::Tenant => self.invalidate(tenant_id),
            Change::Users if origin == Some(instance()) => {}
            Change::Users => {
                if let Some(users) = read(&self.users).get(tenant_id) {
                    users.expect_rows(origin.unwrap_or_default());
                }
            }
        }
    }

    /// Drops what checks know of a tenant's users, which are read until an index is built
    /// again.
    fn distrust_users(&self, tenant_id: &str, why: DropReason) {
        if let Some(users) = read(&self.users).get(tenant_id) {
            users.distrust(tenant_users::QUIET, why);
        }
    }

    /// Another instance's [`RowsNotice`] arrived: the tenant's users it names, to re-read and
    /// apply with [`TenantUsers::apply`] (`None`: nothing to re-read here, or the tenant's
    /// users were dropped because the notice could not name them all).
    pub fn rows_written_elsewhere(&self, notice: RowsNotice) -> Option<(Arc<TenantUsers>, Vec<String>)> {
        if notice.origin == instance() {
            return None;
        }
        let users = read(&self.users).get(&notice.tenant_id).cloned()?;
        users.rows_arrived(&notice.origin);
        match notice.ids {
            None => {
                users.distrust(tenant_users::QUIET, DropReason::TooManyIds);
                None
            }
            Some(ids) if ids.is_empty() => None,
            Some(ids) => Some((users, ids)),
        }
    }

    /// Forgets one tenant's view, users and tokens (by tenant id); `*` forgets all.
    pub fn invalidate(&self, tenant_id: &str) {
        {
            let mut map = write(&self.users);
            if tenant_id == "*" {
                map.clear();
            } else {
                map.remove(tenant_id);
            }
        }
        if let Ok(mut map) = self.tenants.write() {
            if tenant_id == "*" {
                map.clear();
            } else {
                map.retain(|_, v| v.id != tenant_id);
            }
        }
        if let Ok(mut map) = self.tokens.write() {
            if tenant_id == "*" {
                map.clear();
            } else {
                map.retain(|_, (t, _)| t.tenant_id != tenant_id);
            }
        }
    }
}

/// See [`EntitlementCache::write_guard`].
pub struct WriteGuard {
    cache: Option<Arc<EntitlementCache>>,
    tenant_id: String,
}

impl WriteGuard {
    /// The write's users were applied: nothing to drop.
    pub fn disarm(mut self) {
        self.cache = None;
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.take() {
            cache.distrust_users(&self.tenant_id, DropReason::WriteCancelled);
        }
    }
}

/// Tells every instance that a tenant's entitlements changed (`*`: every tenant's). Call inside
/// the changing transaction: PostgreSQL delivers the notification when (and only if) it
/// commits, and the tenant's `entitlement_epoch` moves with it, for processes that cannot hear
/// it (on SQLite).
pub async fn notify_change(conn: &impl Writer, tenant_id: &str) -> Result<(), StoreError> {
    tenants::bump_entitlement_epoch(conn, tenant_id).await?;
    notify(conn, Change::Tenant, tenant_id).await
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The channel and payload of the notification [`notify`] sends, for a statement that sends it
/// itself (one round trip less in a transaction that holds a lock).
pub fn notification(change: Change, tenant_id: &str) -> (&'static str, String) {
    (CHANNEL, change.payload(tenant_id))
}

/// [`notify_change`] for a change of `change`'s scope.
pub async fn notify(conn: &impl Writer, change: Change, tenant_id: &str) -> Result<(), StoreError> {
    if conn.backend() == DbBackend::Postgres {
        pg_notify(conn, change.payload(tenant_id)).await?;
    }
    Ok(())
}

/// `NOTIFY` on [`CHANNEL`] with `payload` (PostgreSQL).
async fn pg_notify(conn: &impl Reader, payload: String) -> Result<(), StoreError> {
    let mut b = store::sql::SqlBuilder::new(DbBackend::Postgres);
    b.push("SELECT pg_notify('")
        .push(CHANNEL)
        .push("', ")
        .bind(payload)
        .push(")");
    conn.rows(b.build()).await?;
    Ok(())
}

/// Invalidates the cache on every notification from any instance (PostgreSQL only; returns at
/// once on SQLite). Reconnects after errors.
pub async fn listen_for_changes(db: DatabaseConnection, cache: Arc<EntitlementCache>) {
    if db.get_database_backend() != DbBackend::Postgres {
        return std::future::pending().await;
    }
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "could not LISTEN for entitlement changes");
                } else {
                    // Anything may have changed while we were not listening.
                    cache.invalidate("*");
                    loop {
                        match listener.recv().await {
                            Ok(n) => match RowsNotice::parse(n.payload()) {
                                Some(notice) => {
                                    if let Some((users, ids)) = cache.rows_written_elsewhere(notice) {
                                        // Off the listener: the next notices need not wait for the read.
                                        let db = db.clone();
                                        tokio::spawn(async move { users.apply(&db, ids).await });
                                    }
                                }
                                None => {
                                    let (change, tenant_id, origin) = Change::parse(n.payload());
                                    cache.forget(change, tenant_id, origin);
                                }
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, "entitlement listener lost its connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not connect the entitlement listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token(tenant: &str) -> TokenView {
        TokenView {
            token_id: format!("tok-{tenant}"),
            tenant_id: tenant.into(),
            slug: tenant.into(),
        }
    }

    #[test]
    fn cached_tokens_go_with_their_tenant_and_with_the_ttl() {
        let cache = EntitlementCache::new(Duration::from_secs(60), 0);
        cache.remember_token("h1", token("t1"));
        cache.remember_token("h2", token("t2"));
        assert_eq!(cache.token("h1"), Some(token("t1")));
        cache.invalidate("t1");
        assert_eq!((cache.token("h1"), cache.token("h2")), (None, Some(token("t2"))));
        cache.invalidate("*");
        assert_eq!(cache.token("h2"), None);

        let expired = EntitlementCache::new(Duration::ZERO, 0);
        expired.remember_token("h1", token("t1"));
        assert_eq!(expired.token("h1"), None);
    }

    fn notice(origin: &str, ids: Option<&[&str]>) -> RowsNotice {
        RowsNotice {
            tenant_id: "t1".into(),
            origin: origin.into(),
            ids: ids.map(|ids| ids.iter().map(|id| id.to_string()).collect()),
        }
    }

    #[test]
    fn another_instances_users_change_is_applied_by_id_and_keeps_plan_and_tokens() {
        let cache = EntitlementCache::new(Duration::from_secs(60), 100);
        cache.remember_token("h1", token("t1"));
        let view = Arc::new(view_of_t1());
        cache.tenants.write().unwrap().insert("slug1".into(), view.clone());
        let users = cache.users_of(&view);
        users.install_for_test(UserIndex::default());
        assert!(cache.is_indexed("t1"));

        cache.forget(Change::Users, "t2", Some("elsewhere"));
        cache.forget(Change::Users, "t1", Some(instance()));
        cache.forget(Change::Users, "t1", Some("elsewhere"));
        assert!(cache.is_indexed("t1"), "kept while the written users' ids come");
        assert!(cache
            .rows_written_elsewhere(notice(instance(), Some(&["u1"])))
            .is_none());
        let (to_apply, ids) = cache
            .rows_written_elsewhere(notice("elsewhere", Some(&["u1", "u2"])))
            .unwrap();
        assert!(Arc::ptr_eq(&to_apply, &users));
        assert_eq!(ids, ["u1", "u2"]);
        assert!(cache.rows_written_elsewhere(notice("elsewhere", Some(&[]))).is_none());
        assert!(cache.is_indexed("t1"));
        assert!(
            cache.rows_written_elsewhere(notice("elsewhere", None)).is_none(),
            "too many to name"
        );
        assert!(!cache.is_indexed("t1"));
        assert!(
            Arc::ptr_eq(&cache.users_of(&view), &users),
            "the same tenant, the same epoch"
        );
        assert!(cache.read_tenants().contains_key("slug1"));
        assert_eq!(cache.token("h1"), Some(token("t1")));

        let moved = TenantView {
            epoch: 1,
            ..(*view).clone()
        };
        assert!(!Arc::ptr_eq(&cache.users_of(&moved), &users), "a new epoch starts over");

        cache.forget(Change::Tenant, "t1", None);
        assert!(!cache.read_tenants().contains_key("slug1"));
        assert!(read(&cache.users).is_empty());
        assert_eq!(cache.token("h1"), None);
    }

    #[test]
    fn a_write_cancelled_before_its_users_were_applied_drops_the_index() {
        let cache = Arc::new(EntitlementCache::new(Duration::from_secs(60), 100));
        cache.users_of(&view_of_t1()).install_for_test(UserIndex::default());
        cache.write_guard("t1").disarm();
        assert!(cache.is_indexed("t1"), "applied: kept");
        drop(cache.write_guard("t1"));
        assert!(!cache.is_indexed("t1"), "cancelled: dropped");
    }

    /// Tenant `t1` (slug `slug1`), active, at epoch 0.
    fn view_of_t1() -> TenantView {
        TenantView {
            id: "t1".into(),
            slug: "slug1".into(),
            plan: plan(),
            status: LicenseStatus::Active,
            epoch: 0,
            loaded: Instant::now(),
        }
    }

    #[test]
    fn notification_payloads_round_trip() {
        for tenant in ["t1", "*", "0193a7c2-users"] {
            assert_eq!(
                Change::parse(&Change::Tenant.payload(tenant)),
                (Change::Tenant, tenant, None)
            );
            assert_eq!(
                Change::parse(&Change::Users.payload(tenant)),
                (Change::Users, tenant, Some(instance()))
            );
        }
        assert_eq!(
            Change::parse("users:t1"),
            (Change::Users, "t1", None),
            "an older instance's"
        );
        assert_eq!(RowsNotice::parse("users:t1@x"), None);
        let ids: Vec<String> = (0..3)
            .map(|n| format!("0193a7c2-0000-7000-8000-00000000000{n}"))
            .collect();
        let told = RowsNotice::parse(&RowsNotice::payload("t1", &ids)).unwrap();
        assert_eq!(
            (told.tenant_id.as_str(), told.origin.as_str(), told.ids),
            ("t1", instance(), Some(ids))
        );
        assert_eq!(
            RowsNotice::parse(&RowsNotice::payload("t1", &[])).unwrap().ids,
            Some(vec![])
        );
        // PostgreSQL refuses a payload of 8,000 bytes: more ids than fit are "all of them".
        let many: Vec<String> = (0..250).map(|n| format!("0193a7c2-0000-7000-8000-{n:012}")).collect();
        let payload = RowsNotice::payload("t1", &many);
        assert!(payload.len() < 8_000);
        assert_eq!(RowsNotice::parse(&payload).unwrap().ids, None);
    }

    fn plan() -> Plan {
        Plan {
            name: "team".into(),
            features: vec!["scim.users".into(), "sso".into()],
            seats_default: 5,
            seat_pools: Default::default(),
            grace_days: 7,
            overage: 1.0,
        }
    }

    fn user(active: bool, entitled: bool) -> UserView {
        UserView {
            id: "u".into(),
            active,
            entitled,
            seat_type: "default".into(),
            reason: if entitled { "seat_assigned" } else { "seat_limit" }.into(),
        }
    }

    #[test]
    fn access_needs_license_activity_seat_and_feature() {
        let p = plan();
        assert_eq!(
            decide(&p, LicenseStatus::Active, &user(true, true), Some("sso")),
            (true, "ok".into())
        );
        assert_eq!(
            decide(&p, LicenseStatus::Grace, &user(true, true), None),
            (true, "ok".into())
        );
        assert_eq!(
            decide(&p, LicenseStatus::Expired, &user(true, true), None).1,
            "license_expired"
        );
        assert_eq!(
            decide(&p, LicenseStatus::Suspended, &user(true, true), None).1,
            "license_suspended"
        );
        assert_eq!(
            decide(&p, LicenseStatus::Active, &user(false, true), None).1,
            "inactive"
        );
        assert_eq!(
            decide(&p, LicenseStatus::Active, &user(true, false), None).1,
            "seat_limit"
        );
        assert_eq!(
            decide(&p, LicenseStatus::Active, &user(true, true), Some("audit.export")).1,
            "feature_not_in_plan"
        );
    }
}
