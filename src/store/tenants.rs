//! Tenants, SCIM tokens, plans and licenses.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{license, plan, scim_token, tenant};
use super::{now, Reader, StoreError, Writer};

/// Finds a tenant by slug.
pub async fn find_by_slug(conn: &impl ConnectionTrait, slug: &str) -> Result<Option<tenant::Model>, StoreError> {
    Ok(super::unique(conn, tenant::Entity::find().filter(tenant::Column::Slug.eq(slug))).await?)
}

/// Finds a tenant by id.
pub async fn find(conn: &impl ConnectionTrait, id: &str) -> Result<Option<tenant::Model>, StoreError> {
    Ok(super::unique(conn, tenant::Entity::find_by_id(id.to_string())).await?)
}

/// Inserts a tenant.
pub async fn insert_tenant(conn: &impl ConnectionTrait, slug: &str, name: &str) -> Result<tenant::Model, StoreError> {
    Ok(tenant::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        slug: Set(slug.to_string()),
        name: Set(name.to_string()),
        created_at: Set(now()),
        entitlement_epoch: Set(0),
    }
    .insert(conn)
    .await?)
}

/// Inserts a token row for a tenant; `token_hash` is the SHA-256 of the secret.
pub async fn insert_token(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    name: &str,
    token_hash: &str,
) -> Result<scim_token::Model, StoreError> {
    Ok(scim_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(tenant_id.to_string()),
        name: Set(name.to_string()),
        token_hash: Set(token_hash.to_string()),
        created_at: Set(now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
        last_user_agent: Set(None),
        last_idp: Set(None),
    }
    .insert(conn)
    .await?)
}

/// Finds an unrevoked token by the hash of its secret.
pub async fn find_token_by_hash(
    conn: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<scim_token::Model>, StoreError> {
    Ok(super::unique(
        conn,
        scim_token::Entity::find()
            .filter(scim_token::Column::TokenHash.eq(token_hash))
            .filter(scim_token::Column::RevokedAt.is_null()),
    )
    .await?)
}

/// Revokes a token (of `tenant_id` when given); returns its tenant, or `None` when no
/// unrevoked token has that id.
pub async fn revoke_token(
    conn: &impl ConnectionTrait,
    id: &str,
    tenant_id: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let mut find = scim_token::Entity::find_by_id(id.to_string()).filter(scim_token::Column::RevokedAt.is_null());
    if let Some(t) = tenant_id {
        find = find.filter(scim_token::Column::TenantId.eq(t));
    }
    let Some(token) = super::unique(conn, find).await? else {
        return Ok(None);
    };
    scim_token::Entity::update_many()
        .col_expr(scim_token::Column::RevokedAt, sea_orm::sea_query::Expr::value(now()))
        .filter(scim_token::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(Some(token.tenant_id))
}

/// Records that a token was used, and by which client.
pub async fn touch_token(
    conn: &impl ConnectionTrait,
    id: &str,
    user_agent: Option<&str>,
    idp: &str,
) -> Result<(), StoreError> {
    use sea_orm::sea_query::Expr;
    scim_token::Entity::update_many()
        .col_expr(scim_token::Column::LastUsedAt, Expr::value(now()))
        .col_expr(
            scim_token::Column::LastUserAgent,
            Expr::value(user_agent.map(str::to_string)),
        )
        .col_expr(scim_token::Column::LastIdp, Expr::value(idp.to_string()))
        .filter(scim_token::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// A tenant's tokens, newest first (revoked ones included).
pub async fn list_tokens(conn: &impl ConnectionTrait, tenant_id: &str) -> Result<Vec<scim_token::Model>, StoreError> {
    Ok(scim_token::Entity::find()
        .filter(scim_token::Column::TenantId.eq(tenant_id))
        .order_by_desc(scim_token::Column::CreatedAt)
        .order_by_desc(scim_token::Column::Id)
        .all(conn)
        .await?)
}

/// The token most recently used by a SCIM client: which IdP pushes to the tenant, and when.
pub async fn last_used_token(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
) -> Result<Option<scim_token::Model>, StoreError> {
    Ok(scim_token::Entity::find()
        .filter(scim_token::Column::TenantId.eq(tenant_id))
        .filter(scim_token::Column::LastUsedAt.is_not_null())
        .order_by_desc(scim_token::Column::LastUsedAt)
        .one(conn)
        .await?)
}

/// Every tenant.
pub async fn all(conn: &impl ConnectionTrait) -> Result<Vec<tenant::Model>, StoreError> {
    Ok(tenant::Entity::find().all(conn).await?)
}

/// Tenants in slug order, after `after_slug` (keyset pagination).
pub async fn list_page(
    conn: &impl ConnectionTrait,
    after_slug: Option<&str>,
    limit: u64,
) -> Result<Vec<tenant::Model>, StoreError> {
    let mut q = tenant::Entity::find().order_by_asc(tenant::Column::Slug).limit(limit);
    if let Some(a) = after_slug {
        q = q.filter(tenant::Column::Slug.gt(a));
    }
    Ok(q.all(conn).await?)
}

/// Every plan, by name.
pub async fn list_plans(conn: &impl ConnectionTrait) -> Result<Vec<plan::Model>, StoreError> {
    Ok(plan::Entity::find().order_by_asc(plan::Column::Name).all(conn).await?)
}

/// Finds a plan by name.
pub async fn find_plan(conn: &impl ConnectionTrait, name: &str) -> Result<Option<plan::Model>, StoreError> {
    Ok(super::unique(conn, plan::Entity::find_by_id(name.to_string())).await?)
}

/// Inserts or replaces a plan.
pub async fn upsert_plan(conn: &impl ConnectionTrait, p: &crate::license::Plan) -> Result<plan::Model, StoreError> {
    let t = now();
    let features = serde_json::to_string(&p.features).unwrap_or_else(|_| "[]".into());
    let pools = serde_json::to_string(&p.seat_pools).unwrap_or_else(|_| "{}".into());
    let grace = i32::try_from(p.grace_days).unwrap_or(i32::MAX);
    match find_plan(conn, &p.name).await? {
        Some(existing) => {
            let mut active: plan::ActiveModel = existing.into();
            active.features = Set(features);
            active.seats_default = Set(p.seats_default);
            active.seat_pools = Set(pools);
            active.grace_days = Set(grace);
            active.overage = Set(p.overage);
            active.updated_at = Set(t);
            Ok(active.update(conn).await?)
        }
        None => Ok(plan::ActiveModel {
            name: Set(p.name.clone()),
            features: Set(features),
            seats_default: Set(p.seats_default),
            seat_pools: Set(pools),
            grace_days: Set(grace),
            overage: Set(p.overage),
            created_at: Set(t),
            updated_at: Set(t),
        }
        .insert(conn)
        .await?),
    }
}

/// A tenant's license.
pub async fn find_license(conn: &impl ConnectionTrait, tenant_id: &str) -> Result<Option<license::Model>, StoreError> {
    Ok(super::unique(conn, license::Entity::find_by_id(tenant_id.to_string())).await?)
}

/// The fields of a license write.
#[derive(Debug, Clone)]
pub struct LicenseFields {
    pub plan_name: String,
    pub seats: i64,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates or updates a tenant's license, bumping its version.
pub async fn put_license(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    fields: LicenseFields,
) -> Result<license::Model, StoreError> {
    let t = now();
    match find_license(conn, tenant_id).await? {
        Some(existing) => {
            let version = existing.version + 1;
            let mut active: license::ActiveModel = existing.into();
            active.plan_name = Set(fields.plan_name);
            active.seats = Set(fields.seats);
            active.expires_at = Set(fields.expires_at);
            active.version = Set(version);
            active.updated_at = Set(t);
            Ok(active.update(conn).await?)
        }
        None => Ok(license::ActiveModel {
            tenant_id: Set(tenant_id.to_string()),
            plan_name: Set(fields.plan_name),
            seats: Set(fields.seats),
            starts_at: Set(t),
            expires_at: Set(fields.expires_at),
            status: Set("active".into()),
            policy: Set("block_new".into()),
            version: Set(1),
            updated_at: Set(t),
            usage_cap: Set(None),
            usage_period: Set(None),
            billing_event_at: Set(None),
        }
        .insert(conn)
        .await?),
    }
}

/// Serialises writes of one tenant: on PostgreSQL a row lock on the tenant, held until the
/// transaction ends, so seat decisions and audit chains of concurrent requests — on any number
/// of instances — happen one after another. SQLite write transactions are already exclusive
/// (`BEGIN IMMEDIATE`).
pub async fn lock_tenant(conn: &impl Writer, tenant_id: &str) -> Result<(), StoreError> {
    if conn.backend() == sea_orm::DbBackend::Postgres {
        let mut b = super::sql::SqlBuilder::new(sea_orm::DbBackend::Postgres);
        b.push("SELECT id FROM tenants WHERE id = ")
            .bind(tenant_id.to_string())
            .push(" FOR UPDATE");
        conn.rows(b.build()).await?;
    }
    Ok(())
}

/// A plan row as the license engine sees it. Unreadable JSON columns count as empty, and are
/// logged: a bad plan must not take provisioning down.
pub fn plan_to_domain(p: &plan::Model) -> crate::license::Plan {
    plan_from_columns(
        p.name.clone(),
        &p.features,
        p.seats_default,
        &p.seat_pools,
        p.grace_days,
        p.overage,
    )
}

/// [`plan_to_domain`] from the plan's columns.
fn plan_from_columns(
    name: String,
    features: &str,
    seats_default: i64,
    seat_pools: &str,
    grace_days: i32,
    overage: f64,
) -> crate::license::Plan {
    let features: Vec<String> = serde_json::from_str(features).unwrap_or_else(|e| {
        tracing::error!(plan = %name, error = %e, "plan features are not a JSON array of strings");
        Vec::new()
    });
    let seat_pools = serde_json::from_str(seat_pools).unwrap_or_else(|e| {
        tracing::error!(plan = %name, error = %e, "plan seat pools are not a JSON object");
        Default::default()
    });
    crate::license::Plan {
        name,
        features,
        seats_default,
        seat_pools,
        grace_days: i64::from(grace_days),
        overage,
    }
}

/// A license row as the license engine sees it.
pub fn license_to_domain(l: &license::Model) -> crate::license::License {
    crate::license::License {
        plan: l.plan_name.clone(),
        seats: l.seats,
        starts_at: l.starts_at,
        expires_at: l.expires_at,
        status: parse_status(&l.status),
        policy: parse_policy(&l.policy),
        version: l.version,
        usage_cap: l.usage_cap,
        usage_period: l.usage_period.clone(),
    }
}

fn parse_status(text: &str) -> crate::license::LicenseStatus {
    text.parse().unwrap_or(crate::license::LicenseStatus::Suspended)
}

fn parse_policy(text: &str) -> crate::license::Policy {
    text.parse().unwrap_or(crate::license::Policy::BlockNew)
}

/// A tenant's license and its plan, for a decision.
pub async fn license_and_plan(
    conn: &impl Reader,
    tenant_id: &str,
) -> Result<Option<(crate::license::License, crate::license::Plan)>, StoreError> {
    read_license_and_plan(conn, tenant_id, None).await
}

/// [`lock_tenant`] and [`license_and_plan`] in one statement: the first two of every
/// provisioning write, so on PostgreSQL one round trip less while the tenant is locked. A tenant
/// without a license is not locked (the write is refused). `notify` (channel, payload) is sent
/// by the same statement on PostgreSQL, which delivers it only if the transaction commits.
pub async fn lock_and_read_license(
    conn: &impl Writer,
    tenant_id: &str,
    notify: (&str, String),
) -> Result<Option<(crate::license::License, crate::license::Plan)>, StoreError> {
    match conn.backend() {
        sea_orm::DbBackend::Postgres => read_license_and_plan(conn, tenant_id, Some(notify)).await,
        _ => license_and_plan(conn, tenant_id).await,
    }
}

/// What a provisioning write reads right after taking the tenant's lock (see [`write_context`]).
#[derive(Debug, Clone, Default)]
pub struct WriteContext {
    /// The head of the tenant's audit chain (seq, hash); `None` before its first entry.
    pub audit_head: Option<(i64, String)>,
    /// The entitled users of the pool asked for.
    pub in_pool: Option<i64>,
    /// Does any user of the tenant wait for a seat (active, without one, not held by an admin)?
    pub anyone_waits: bool,
    /// Does any group of the tenant map its members to a seat type?
    pub seat_mappings: bool,
}

/// What a provisioning write reads right after taking the tenant's lock, in one statement: the
/// head of the tenant's audit chain, for `seat_type` the pool's entitled users, and whether
/// anyone waits for a seat or any group maps seats (so most writes can skip those lookups).
/// It must follow the lock as a statement of its own: PostgreSQL evaluates a locking
/// statement's columns in the snapshot it took before waiting for the lock, which would miss
/// what the previous holder committed.
pub async fn write_context(
    conn: &impl Reader,
    tenant_id: &str,
    seat_type: Option<&str>,
) -> Result<WriteContext, StoreError> {
    let mut b = super::sql::SqlBuilder::new(conn.backend());
    b.push("SELECT ");
    // Scalar subqueries, each an index seek: a join with a derived table made SQLite
    // materialize it in a temporary B-tree.
    for column in ["seq", "hash"] {
        b.push("(SELECT ")
            .push(column)
            .push(" FROM audit_log WHERE tenant_id = ")
            .bind(tenant_id.to_string())
            .push(" ORDER BY seq DESC")
            .limit(1, 0)
            .push("), ");
    }
    match seat_type {
        Some(seat_type) => {
            b.push("CAST(COALESCE((SELECT entitled FROM user_counts WHERE tenant_id = ")
                .bind(tenant_id.to_string())
                .push(" AND seat_type = ")
                .bind(seat_type.to_string())
                .push("), 0) AS BIGINT)");
        }
        None => {
            b.push("CAST(NULL AS BIGINT)");
        }
    }
    b.push(", CASE WHEN EXISTS (SELECT 1 FROM user_counts WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND waiting > 0) THEN 1 ELSE 0 END");
    b.push(", CASE WHEN EXISTS (SELECT 1 FROM seat_type_mappings WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(") THEN 1 ELSE 0 END");
    let Some(row) = conn.rows(b.build()).await?.into_iter().next() else {
        return Ok(WriteContext::default());
    };
    let audit_head = match (row.get::<Option<i64>>(0)?, row.get::<Option<String>>(1)?) {
        (Some(seq), Some(hash)) => Some((seq, hash)),
        _ => None,
    };
    Ok(WriteContext {
        audit_head,
        in_pool: row.get::<Option<i64>>(2)?,
        anyone_waits: row.get::<i32>(3)? != 0,
        seat_mappings: row.get::<i32>(4)? != 0,
    })
}

/// Reads the license and plan; with `lock_and_notify` (PostgreSQL), also locks the tenant's row
/// (as `lock_tenant` does: every writer of a tenant locks the same row) and sends the
/// notification (channel, payload).
async fn read_license_and_plan(
    conn: &impl Reader,
    tenant_id: &str,
    lock_and_notify: Option<(&str, String)>,
) -> Result<Option<(crate::license::License, crate::license::Plan)>, StoreError> {
    let mut b = super::sql::SqlBuilder::new(conn.backend());
    b.push(
        "SELECT l.plan_name, l.seats, l.starts_at, l.expires_at, l.status, l.policy, l.version, l.usage_cap, \
         l.usage_period, p.features, p.seats_default, p.seat_pools, p.grace_days, p.overage",
    );
    if let Some((channel, payload)) = &lock_and_notify {
        b.push(", pg_notify(")
            .bind(channel.to_string())
            .push(", ")
            .bind(payload.clone())
            .push(")");
    }
    b.push(" FROM licenses l JOIN plans p ON p.name = l.plan_name");
    if lock_and_notify.is_some() {
        b.push(" JOIN tenants t ON t.id = l.tenant_id");
    }
    b.push(" WHERE l.tenant_id = ").bind(tenant_id.to_string());
    if lock_and_notify.is_some() {
        b.push(" FOR UPDATE OF t");
    }
    let Some(r) = conn.rows(b.build()).await?.into_iter().next() else {
        return Ok(None);
    };
    let license = crate::license::License {
        plan: r.get(0)?,
        seats: r.get(1)?,
        starts_at: r.get(2)?,
        expires_at: r.get(3)?,
        status: parse_status(&r.get::<String>(4)?),
        policy: parse_policy(&r.get::<String>(5)?),
        version: r.get(6)?,
        usage_cap: r.get(7)?,
        usage_period: r.get(8)?,
    };
    let plan = plan_from_columns(
        license.plan.clone(),
        &r.get::<String>(9)?,
        r.get(10)?,
        &r.get::<String>(11)?,
        r.get(12)?,
        r.get(13)?,
    );
    Ok(Some((license, plan)))
}

/// Provisioning operations counted for a tenant in a period (`2026-11` or `2026-11-25`).
pub async fn usage(conn: &impl Reader, tenant_id: &str, period: &str) -> Result<i64, StoreError> {
    let mut b = super::sql::SqlBuilder::new(conn.backend());
    b.push("SELECT operations AS n FROM usage_counters WHERE tenant_id = ")
        .bind(tenant_id.to_string())
        .push(" AND period = ")
        .bind(period.to_string());
    Ok(conn.count(b.build()).await?)
}

/// Counts one provisioning operation.
pub async fn add_usage(conn: &impl Writer, tenant_id: &str, period: &str) -> Result<(), StoreError> {
    let mut b = super::sql::SqlBuilder::new(conn.backend());
    b.push("INSERT INTO usage_counters (tenant_id, period, operations) VALUES (")
        .bind(tenant_id.to_string())
        .push(", ")
        .bind(period.to_string())
        .push(", 1) ON CONFLICT (tenant_id, period) DO UPDATE SET operations = usage_counters.operations + 1");
    conn.write(b.build()).await?;
    Ok(())
}

/// Writes every field of a changed license row and bumps its version.
pub async fn save_license(conn: &impl ConnectionTrait, changed: license::Model) -> Result<license::Model, StoreError> {
    let version = changed.version + 1;
    let mut active = license::ActiveModel::from(changed).reset_all();
    active.version = Set(version);
    active.updated_at = Set(now());
    Ok(active.update(conn).await?)
}

/// Licenses whose expiry has passed while still stored as active or in grace: the sweeper's work.
pub async fn licenses_past_expiry(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<license::Model>, StoreError> {
    Ok(license::Entity::find()
        .filter(license::Column::ExpiresAt.lte(now))
        .filter(license::Column::Status.is_in(["active", "grace"]))
        .all(conn)
        .await?)
}

/// Moves the tenant's `entitlement_epoch` (`*`: every tenant's): its entitlements changed
/// other than by a SCIM write.
pub async fn bump_entitlement_epoch(conn: &impl Writer, tenant_id: &str) -> Result<(), StoreError> {
    let mut b = super::sql::SqlBuilder::new(conn.backend());
    b.push("UPDATE tenants SET entitlement_epoch = entitlement_epoch + 1");
    if tenant_id != "*" {
        b.push(" WHERE id = ").bind(tenant_id.to_string());
    }
    conn.write(b.build()).await?;
    Ok(())
}
