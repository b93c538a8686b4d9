//! Admin role grants kept in the database, and seat-usage snapshots.

use std::collections::BTreeSet;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{admin_grant, seat_snapshot, tenant};
use super::{now, StoreError};

/// Roles granted in the database to any of a principal's keys (subject, e-mail).
#[derive(Debug, Default)]
pub struct Granted {
    pub operator: bool,
    /// Tenant slugs.
    pub tenants: BTreeSet<String>,
}

/// The database grants of a principal known by any of `keys` (lower-cased).
pub async fn roles_of(conn: &impl ConnectionTrait, keys: &[String]) -> Result<Granted, StoreError> {
    let rows = admin_grant::Entity::find()
        .filter(admin_grant::Column::Principal.is_in(keys.iter().cloned()))
        .all(conn)
        .await?;
    let mut granted = Granted::default();
    let mut tenant_ids = Vec::new();
    for row in rows {
        match (row.role.as_str(), row.tenant_id) {
            ("operator", _) => granted.operator = true,
            ("tenant_admin", Some(t)) => tenant_ids.push(t),
            _ => {}
        }
    }
    if !tenant_ids.is_empty() {
        granted.tenants = tenant::Entity::find()
            .filter(tenant::Column::Id.is_in(tenant_ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|t| t.slug)
            .collect();
    }
    Ok(granted)
}

/// Grants a role; granting the same role twice keeps one row.
pub async fn grant(
    conn: &impl ConnectionTrait,
    principal: &str,
    role: &str,
    tenant_id: Option<&str>,
) -> Result<(), StoreError> {
    let principal = principal.to_lowercase();
    let existing = find(conn, &principal, role, tenant_id).await?;
    if existing.is_empty() {
        admin_grant::Entity::insert(admin_grant::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            principal: Set(principal),
            role: Set(role.to_string()),
            tenant_id: Set(tenant_id.map(str::to_string)),
            created_at: Set(now()),
        })
        .exec(conn)
        .await?;
    }
    Ok(())
}

/// Removes a grant; answers whether there was one.
pub async fn revoke(
    conn: &impl ConnectionTrait,
    principal: &str,
    role: &str,
    tenant_id: Option<&str>,
) -> Result<bool, StoreError> {
    let rows = find(conn, &principal.to_lowercase(), role, tenant_id).await?;
    let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(false);
    }
    admin_grant::Entity::delete_many()
        .filter(admin_grant::Column::Id.is_in(ids))
        .exec(conn)
        .await?;
    Ok(true)
}

async fn find(
    conn: &impl ConnectionTrait,
    principal: &str,
    role: &str,
    tenant_id: Option<&str>,
) -> Result<Vec<admin_grant::Model>, StoreError> {
    let mut q = admin_grant::Entity::find()
        .filter(admin_grant::Column::Principal.eq(principal))
        .filter(admin_grant::Column::Role.eq(role));
    q = match tenant_id {
        Some(t) => q.filter(admin_grant::Column::TenantId.eq(t)),
        None => q.filter(admin_grant::Column::TenantId.is_null()),
    };
    Ok(q.all(conn).await?)
}

/// Every grant, by principal.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<admin_grant::Model>, StoreError> {
    Ok(admin_grant::Entity::find()
        .order_by_asc(admin_grant::Column::Principal)
        .order_by_asc(admin_grant::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// One seat pool's numbers, as snapshots record them and the API shows them.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PoolSnapshot {
    pub seat_type: String,
    /// Users holding a seat of this pool.
    pub in_use: i64,
    /// Active users waiting for one.
    pub waiting: i64,
    /// `null`: unlimited.
    pub limit: Option<i64>,
}

/// Writes today's snapshot of each pool, replacing an earlier one of the same day.
pub async fn record_snapshot(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    pools: &[PoolSnapshot],
) -> Result<(), StoreError> {
    if pools.is_empty() {
        return Ok(());
    }
    let at = now();
    let day = at.format("%Y-%m-%d").to_string();
    let rows = pools.iter().map(|p| seat_snapshot::ActiveModel {
        tenant_id: Set(tenant_id.to_string()),
        day: Set(day.clone()),
        seat_type: Set(p.seat_type.clone()),
        in_use: Set(p.in_use),
        waiting: Set(p.waiting),
        seat_limit: Set(p.limit),
        at: Set(at),
    });
    seat_snapshot::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                seat_snapshot::Column::TenantId,
                seat_snapshot::Column::Day,
                seat_snapshot::Column::SeatType,
            ])
            .update_columns([
                seat_snapshot::Column::InUse,
                seat_snapshot::Column::Waiting,
                seat_snapshot::Column::SeatLimit,
                seat_snapshot::Column::At,
            ])
            .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// A tenant's snapshots from `since_day` (`YYYY-MM-DD`) on, oldest first.
pub async fn snapshots_since(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    since_day: &str,
) -> Result<Vec<seat_snapshot::Model>, StoreError> {
    Ok(seat_snapshot::Entity::find()
        .filter(seat_snapshot::Column::TenantId.eq(tenant_id))
        .filter(seat_snapshot::Column::Day.gte(since_day))
        .order_by_asc(seat_snapshot::Column::Day)
        .order_by_asc(seat_snapshot::Column::SeatType)
        .all(conn)
        .await?)
}

/// Ids of the tenants with no snapshot on `day`.
pub async fn tenants_without_snapshot(conn: &impl ConnectionTrait, day: &str) -> Result<Vec<String>, StoreError> {
    let have: BTreeSet<String> = seat_snapshot::Entity::find()
        .filter(seat_snapshot::Column::Day.eq(day))
        .all(conn)
        .await?
        .into_iter()
        .map(|s| s.tenant_id)
        .collect();
    Ok(super::tenants::all(conn)
        .await?
        .into_iter()
        .map(|t| t.id)
        .filter(|id| !have.contains(id))
        .collect())
}
