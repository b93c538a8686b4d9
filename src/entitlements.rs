//! Entitlement checks for product services ("may this user use that feature?"), answered from
//! memory.
//!
//! The cache holds one view per tenant (plan, license status, and the users asked about so
//! far), and the SCIM tokens seen recently with the tenant each acts for, so that neither SCIM
//! authentication nor a read's plan gate costs a query on the hot path. Every committed change
//! invalidates what it can have changed: a SCIM write only the tenant's users, any other change
//! (license, plan, tokens, tenant) the tenant's whole view and its tokens. In this process
//! directly, and on PostgreSQL in every process through `NOTIFY seatbridge_entitlements` (sent
//! inside the changing transaction, so it is delivered exactly when the change commits). A short TTL bounds staleness from writers that
//! cannot notify (another process on the same SQLite file, such as `seatbridge token revoke`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbBackend};
use serde::Serialize;

use crate::license::{effective_status, LicenseStatus, Plan};
use crate::store::{self, tenants, users, Reader, StoreError, Writer};

/// The PostgreSQL channel that carries "tenant X changed" (payload: tenant id, or `*`), and
/// "users of tenant X changed" (payload: `users:` and the tenant id).
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
            Change::Users => format!("users:{tenant_id}"),
            Change::Tenant => tenant_id.to_string(),
        }
    }

    /// The change and tenant a NOTIFY payload stands for.
    fn parse(payload: &str) -> (Change, &str) {
        match payload.strip_prefix("users:") {
            Some(tenant_id) => (Change::Users, tenant_id),
            None => (Change::Tenant, payload),
        }
    }
}

/// Tokens kept before expired entries are swept (a bound, not an eviction policy: live
/// tokens number in the tens per tenant).
const MAX_CACHED_TOKENS: usize = 10_000;

/// Users (and unknown names) remembered per tenant view before it starts over.
const MAX_CACHED_USERS: usize = 20_000;

/// One user as the check needs it. A tenant has few seat types and reasons, so the cache shares
/// them between its users ([`UserCache::name`]): an entry takes about half the memory of one
/// with owned strings, which matters at 20,000 entries per tenant.
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

struct TenantView {
    id: String,
    plan: Plan,
    status: LicenseStatus,
    loaded: Instant,
    users: RwLock<UserCache>,
}

/// The users of one tenant view that checks asked about.
#[derive(Debug, Default)]
struct UserCache {
    /// Keyed by user id and by lower-cased userName; `None` remembers "no such user".
    by_key: HashMap<Box<str>, Option<UserView>>,
    /// The seat types and reasons the entries share.
    names: HashSet<Arc<str>>,
}

impl UserCache {
    /// `text` shared with the entries that hold it already.
    fn name(&mut self, text: String) -> Arc<str> {
        if let Some(shared) = self.names.get(text.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = text.into();
        self.names.insert(shared.clone());
        shared
    }

    fn clear(&mut self) {
        self.by_key.clear();
        self.names.clear();
    }
}

/// A SCIM token as authentication needs it: which token, for which tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    pub token_id: String,
    pub tenant_id: String,
    pub slug: String,
}

/// The in-memory cache of tenant views and of SCIM tokens (keyed by token hash).
pub struct EntitlementCache {
    tenants: RwLock<HashMap<String, Arc<TenantView>>>,
    tokens: RwLock<HashMap<String, (TokenView, Instant)>>,
    ttl: Duration,
}

impl EntitlementCache {
    /// A cache whose views live at most `ttl`.
    pub fn new(ttl: Duration) -> Self {
        EntitlementCache {
            tenants: RwLock::new(HashMap::new()),
            tokens: RwLock::new(HashMap::new()),
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

    /// Answers a check; `user` is a user id or a userName (case-insensitive). A user the cache
    /// misses is read through `reads` (one indexed row: a point read); the tenant's view through
    /// `db`.
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
        let Some(u) = self.user_view(reads, &view, user).await? else {
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
            plan,
            status,
            loaded: Instant::now(),
            users: RwLock::default(),
        });
        if let Ok(mut map) = self.tenants.write() {
            map.insert(slug.to_string(), view.clone());
        }
        Ok(Some(view))
    }

    async fn user_view(&self, db: &impl Reader, view: &TenantView, key: &str) -> Result<Option<UserView>, StoreError> {
        let cache_key = key.to_lowercase();
        if let Some(hit) = view
            .users
            .read()
            .ok()
            .and_then(|c| c.by_key.get(cache_key.as_str()).cloned())
        {
            return Ok(hit);
        }
        let row = users::find_for_check(db, &view.id, key).await?;
        let mut cache = match view.users.write() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        // A bound, so that a caller asking about arbitrary names cannot grow memory without
        // limit; the view is rebuilt within the TTL anyway.
        if cache.by_key.len() >= MAX_CACHED_USERS {
            cache.clear();
        }
        let found = row.map(|row| UserView {
            id: row.id.into(),
            active: row.active,
            entitled: row.entitled,
            seat_type: cache.name(row.seat_type),
            reason: cache.name(row.entitlement_reason),
        });
        cache.by_key.insert(cache_key.into(), found.clone());
        Ok(found)
    }

    fn read_tenants(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TenantView>>> {
        match self.tenants.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Forgets what `change` of a tenant (by id; `*`: every tenant) can have changed.
    pub fn forget(&self, change: Change, tenant_id: &str) {
        match change {
            Change::Tenant => self.invalidate(tenant_id),
            Change::Users => {
                for view in self.read_tenants().values() {
                    if tenant_id == "*" || view.id == tenant_id {
                        match view.users.write() {
                            Ok(mut users) => users.clear(),
                            Err(poisoned) => poisoned.into_inner().clear(),
                        }
                    }
                }
            }
        }
    }

    /// Forgets one tenant's view and tokens (by tenant id); `*` forgets all.
    pub fn invalidate(&self, tenant_id: &str) {
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

/// Tells every instance that a tenant's entitlements changed. Call inside the changing
/// transaction: PostgreSQL delivers the notification when (and only if) it commits.
pub async fn notify_change(conn: &impl Writer, tenant_id: &str) -> Result<(), StoreError> {
    notify(conn, Change::Tenant, tenant_id).await
}

/// The channel and payload of the notification [`notify`] sends, for a statement that sends it
/// itself (one round trip less in a transaction that holds a lock).
pub fn notification(change: Change, tenant_id: &str) -> (&'static str, String) {
    (CHANNEL, change.payload(tenant_id))
}

/// [`notify_change`] for a change of `change`'s scope.
pub async fn notify(conn: &impl Writer, change: Change, tenant_id: &str) -> Result<(), StoreError> {
    if conn.backend() == DbBackend::Postgres {
        let mut b = store::sql::SqlBuilder::new(DbBackend::Postgres);
        b.push("SELECT pg_notify('")
            .push(CHANNEL)
            .push("', ")
            .bind(change.payload(tenant_id))
            .push(")");
        conn.rows(b.build()).await?;
    }
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
                            Ok(n) => {
                                let (change, tenant_id) = Change::parse(n.payload());
                                cache.forget(change, tenant_id);
                            }
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
        let cache = EntitlementCache::new(Duration::from_secs(60));
        cache.remember_token("h1", token("t1"));
        cache.remember_token("h2", token("t2"));
        assert_eq!(cache.token("h1"), Some(token("t1")));
        cache.invalidate("t1");
        assert_eq!((cache.token("h1"), cache.token("h2")), (None, Some(token("t2"))));
        cache.invalidate("*");
        assert_eq!(cache.token("h2"), None);

        let expired = EntitlementCache::new(Duration::ZERO);
        expired.remember_token("h1", token("t1"));
        assert_eq!(expired.token("h1"), None);
    }

    #[test]
    fn a_users_change_forgets_the_users_and_keeps_plan_and_tokens() {
        let cache = EntitlementCache::new(Duration::from_secs(60));
        cache.remember_token("h1", token("t1"));
        let view = Arc::new(TenantView {
            id: "t1".into(),
            plan: plan(),
            status: LicenseStatus::Active,
            loaded: Instant::now(),
            users: RwLock::new(UserCache {
                by_key: HashMap::from([("u".into(), Some(user(true, true)))]),
                names: HashSet::new(),
            }),
        });
        cache.tenants.write().unwrap().insert("slug1".into(), view.clone());

        cache.forget(Change::Users, "t2");
        assert_eq!(view.users.read().unwrap().by_key.len(), 1, "another tenant's change");
        cache.forget(Change::Users, "t1");
        assert!(view.users.read().unwrap().by_key.is_empty());
        assert!(cache.read_tenants().contains_key("slug1"));
        assert_eq!(cache.token("h1"), Some(token("t1")));

        cache.forget(Change::Tenant, "t1");
        assert!(!cache.read_tenants().contains_key("slug1"));
        assert_eq!(cache.token("h1"), None);
    }

    #[test]
    fn notification_payloads_round_trip() {
        for change in [Change::Users, Change::Tenant] {
            for tenant in ["t1", "*", "0193a7c2-users"] {
                assert_eq!(Change::parse(&change.payload(tenant)), (change, tenant));
            }
        }
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
    fn cached_users_share_seat_types_and_reasons() {
        let mut cache = UserCache::default();
        let a = cache.name("default".into());
        let b = cache.name("default".into());
        assert!(Arc::ptr_eq(&a, &b));
        cache.name("seat_limit".into());
        assert_eq!(cache.names.len(), 2);
        cache.clear();
        assert!(cache.names.is_empty());
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
