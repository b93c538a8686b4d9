//! License changes and the expiry sweeper. Both can move many users' seats at once, so each runs
//! as one transaction under the tenant's lock: the change and every seat it moves land together
//! or not at all. A dry run computes exactly the same change and rolls it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::Serialize;
use serde_json::json;

use crate::audit;
use crate::license::decision::rebalance;
use crate::license::{effective_status, EntitlementReason, LicenseStatus, Policy};
use crate::store::entities::{license, tenant};
use crate::store::{self, tenants, users, StoreError};

/// The fields a license change may set; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct LicenseUpdate {
    pub plan: Option<String>,
    pub seats: Option<i64>,
    /// `Some(None)` makes the license perpetual.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Only `active` and `suspended` may be set; grace and expired follow from the dates.
    pub status: Option<LicenseStatus>,
    pub policy: Option<Policy>,
    pub usage_cap: Option<Option<i64>>,
    pub usage_period: Option<String>,
    /// Refuse the change unless the license is at this version (optimistic concurrency).
    pub expected_version: Option<i64>,
}

/// A user whose seat a change moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserChange {
    pub id: String,
    pub user_name: String,
    pub reason: String,
}

/// What a license change did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeReport {
    pub tenant: String,
    pub tenant_id: String,
    pub dry_run: bool,
    pub plan: String,
    pub seats: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: String,
    pub policy: String,
    pub version: i64,
    /// Users who lose their seat, newest first within each pool.
    pub deentitled: Vec<UserChange>,
    /// Users who gain a seat, longest waiting first.
    pub reentitled: Vec<UserChange>,
}

/// Why a license change was refused.
#[derive(Debug, thiserror::Error)]
pub enum LicensingError {
    #[error("no tenant '{0}'")]
    NoTenant(String),
    #[error("tenant '{0}' has no license yet; give a plan")]
    NoLicense(String),
    #[error("unknown plan '{name}'; known plans: {known}")]
    UnknownPlan { name: String, known: String },
    #[error("stale update: the license is at version {current}, the update expected {expected}; re-read it and retry")]
    StaleVersion { expected: i64, current: i64 },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sea_orm::DbErr> for LicensingError {
    fn from(e: sea_orm::DbErr) -> Self {
        LicensingError::Store(e.into())
    }
}

/// Changes a tenant's license and brings its users in line, by the tenant's policy.
pub async fn update_license(
    db: &DatabaseConnection,
    slug: &str,
    update: &LicenseUpdate,
    actor: &str,
    dry_run: bool,
) -> Result<ChangeReport, LicensingError> {
    validate(update)?;
    let tx = store::begin_write(db).await?;
    let tenant = tenants::find_by_slug(&tx, slug)
        .await?
        .ok_or_else(|| LicensingError::NoTenant(slug.to_string()))?;
    tenants::lock_tenant(&tx, &tenant.id).await?;
    let current = tenants::find_license(&tx, &tenant.id).await?;
    if let (Some(expected), Some(cur)) = (update.expected_version, &current) {
        if expected != cur.version {
            return Err(LicensingError::StaleVersion {
                expected,
                current: cur.version,
            });
        }
    }
    let Some(current) = current else {
        return Err(LicensingError::NoLicense(slug.to_string()));
    };
    let mut next = current.clone();
    apply_update(&mut next, update);
    let plan_changed = next.plan_name != current.plan_name;
    let reason = if plan_changed {
        EntitlementReason::PlanDowngrade
    } else {
        EntitlementReason::SeatReduction
    };
    let report = rebalance_tenant(&tx, &tenant, &current, next, reason, actor, "license.set", dry_run).await?;
    finish(tx, dry_run).await?;
    Ok(report)
}

fn validate(update: &LicenseUpdate) -> Result<(), LicensingError> {
    if update.seats.is_some_and(|s| s < 0) {
        return Err(LicensingError::Invalid("seats must be 0 or more".into()));
    }
    if matches!(update.status, Some(LicenseStatus::Grace | LicenseStatus::Expired)) {
        return Err(LicensingError::Invalid(
            "only 'active' or 'suspended' can be set; grace and expired follow from expires_at".into(),
        ));
    }
    if update.usage_cap.flatten().is_some_and(|c| c < 0) {
        return Err(LicensingError::Invalid("usage cap must be 0 or more".into()));
    }
    if let Some(p) = &update.usage_period {
        if p != "day" && p != "month" {
            return Err(LicensingError::Invalid("usage period must be 'day' or 'month'".into()));
        }
    }
    Ok(())
}

fn apply_update(next: &mut license::Model, update: &LicenseUpdate) {
    if let Some(plan) = &update.plan {
        next.plan_name = plan.clone();
    }
    if let Some(seats) = update.seats {
        next.seats = seats;
    }
    if let Some(expires) = update.expires_at {
        next.expires_at = expires;
    }
    if let Some(status) = update.status {
        next.status = status.as_str().to_string();
    } else if next.status != LicenseStatus::Suspended.as_str() {
        // Dates decide active/grace/expired; a renewal revives an expired license.
        next.status = LicenseStatus::Active.as_str().to_string();
    }
    if let Some(policy) = update.policy {
        next.policy = policy.as_str().to_string();
    }
    if let Some(cap) = update.usage_cap {
        next.usage_cap = cap;
    }
    if let Some(period) = &update.usage_period {
        next.usage_period = Some(period.clone());
    }
}

async fn finish(tx: DatabaseTransaction, dry_run: bool) -> Result<(), LicensingError> {
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(())
}

/// Writes `next` (unless dry run), computes who gains and loses seats under it, applies that,
/// and audits every step. Shared by license changes and the sweeper, so both follow one rule.
#[allow(clippy::too_many_arguments)]
async fn rebalance_tenant(
    tx: &DatabaseTransaction,
    tenant: &tenant::Model,
    current: &license::Model,
    mut next: license::Model,
    shrink_reason: EntitlementReason,
    actor: &str,
    action: &str,
    dry_run: bool,
) -> Result<ChangeReport, LicensingError> {
    let plan_row = tenants::find_plan(tx, &next.plan_name).await?;
    let Some(plan_row) = plan_row else {
        let known: Vec<String> = tenants::list_plans(tx).await?.into_iter().map(|p| p.name).collect();
        return Err(LicensingError::UnknownPlan {
            name: next.plan_name.clone(),
            known: known.join(", "),
        });
    };
    let plan = tenants::plan_to_domain(&plan_row);
    let status = effective_status(&tenants::license_to_domain(&next), &plan, store::now());
    if status != LicenseStatus::Suspended {
        next.status = status.as_str().to_string();
    }
    let lic = tenants::license_to_domain(&next);
    let holders = users::seat_holders(tx, &tenant.id).await?;
    let plan_moves = rebalance(&plan, &lic, status, &holders, shrink_reason);

    let changed: Vec<String> = plan_moves
        .revoke
        .iter()
        .map(|(id, _)| id.clone())
        .chain(plan_moves.grant.iter().cloned())
        .collect();
    let names = users::user_names(tx, &tenant.id, &changed).await?;
    let name = |id: &str| names.get(id).cloned().unwrap_or_default();
    let deentitled: Vec<UserChange> = plan_moves
        .revoke
        .iter()
        .map(|(id, why)| UserChange {
            id: id.clone(),
            user_name: name(id),
            reason: why.as_str().into(),
        })
        .collect();
    let reentitled: Vec<UserChange> = plan_moves
        .grant
        .iter()
        .map(|id| UserChange {
            id: id.clone(),
            user_name: name(id),
            reason: EntitlementReason::SeatAssigned.as_str().into(),
        })
        .collect();

    let saved = if dry_run {
        license::Model {
            version: next.version + 1,
            ..next
        }
    } else {
        tenants::save_license(tx, next).await?
    };
    if !dry_run {
        apply_moves(tx, &tenant.id, &deentitled, &reentitled).await?;
        crate::entitlements::notify_change(tx, &tenant.id).await?;
        let before = license_summary(current);
        let after = license_summary(&saved);
        audit_event(
            tx,
            &tenant.id,
            actor,
            action,
            &format!("License/{}", tenant.slug),
            Some(before),
            Some(after),
        )
        .await?;
        for (list, what) in [
            (&deentitled, "entitlement.revoked"),
            (&reentitled, "entitlement.granted"),
        ] {
            for u in list.iter() {
                let after =
                    json!({"entitled": what == "entitlement.granted", "reason": u.reason, "userName": u.user_name});
                audit_event(
                    tx,
                    &tenant.id,
                    actor,
                    what,
                    &format!("User/{}", u.id),
                    None,
                    Some(after),
                )
                .await?;
            }
        }
    }
    Ok(ChangeReport {
        tenant: tenant.slug.clone(),
        tenant_id: tenant.id.clone(),
        dry_run,
        plan: saved.plan_name,
        seats: saved.seats,
        expires_at: saved.expires_at,
        status: saved.status,
        policy: saved.policy,
        version: saved.version,
        deentitled,
        reentitled,
    })
}

async fn apply_moves(
    tx: &DatabaseTransaction,
    tenant_id: &str,
    revoke: &[UserChange],
    grant: &[UserChange],
) -> Result<(), StoreError> {
    let mut by_reason: HashMap<&str, Vec<String>> = HashMap::new();
    for u in revoke {
        by_reason.entry(u.reason.as_str()).or_default().push(u.id.clone());
    }
    for (reason, ids) in by_reason {
        users::set_entitlement(tx, tenant_id, &ids, false, reason).await?;
    }
    let ids: Vec<String> = grant.iter().map(|u| u.id.clone()).collect();
    users::set_entitlement(tx, tenant_id, &ids, true, EntitlementReason::SeatAssigned.as_str()).await
}

fn license_summary(l: &license::Model) -> serde_json::Value {
    json!({"plan": l.plan_name, "seats": l.seats, "expires_at": l.expires_at, "status": l.status,
           "policy": l.policy, "version": l.version, "usage_cap": l.usage_cap, "usage_period": l.usage_period})
}

async fn audit_event(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    audit::append(
        conn,
        tenant_id,
        audit::Event {
            actor,
            action,
            target,
            before,
            after,
            request_id: None,
        },
    )
    .await
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepReport {
    /// `(tenant slug, new status)` for every license that changed state.
    pub transitions: Vec<(String, String)>,
    pub deentitled: usize,
}

/// Moves licenses past their expiry to `grace` or `expired` and de-entitles users of expired
/// ones. Safe with several instances: each tenant is handled under its lock, and a license
/// already moved by another instance is skipped.
pub async fn sweep_once(db: &DatabaseConnection) -> Result<SweepReport, StoreError> {
    sweep(db, None).await
}

async fn sweep(
    db: &DatabaseConnection,
    cache: Option<&crate::entitlements::EntitlementCache>,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let now = store::now();
    for candidate in tenants::licenses_past_expiry(db, now).await? {
        let tx = store::begin_write(db).await?;
        tenants::lock_tenant(&tx, &candidate.tenant_id).await?;
        let (Some(current), Some(tenant)) = (
            tenants::find_license(&tx, &candidate.tenant_id).await?,
            tenants::find(&tx, &candidate.tenant_id).await?,
        ) else {
            continue;
        };
        let Some(plan) = tenants::find_plan(&tx, &current.plan_name).await? else {
            continue;
        };
        let status = effective_status(
            &tenants::license_to_domain(&current),
            &tenants::plan_to_domain(&plan),
            now,
        );
        if status.as_str() == current.status {
            tx.rollback().await?;
            continue;
        }
        let next = current.clone();
        let moved = rebalance_tenant(
            &tx,
            &tenant,
            &current,
            next,
            EntitlementReason::LicenseExpired,
            "system:sweeper",
            "license.status",
            false,
        )
        .await
        .map_err(|e| match e {
            LicensingError::Store(s) => s,
            other => StoreError::Db(sea_orm::DbErr::Custom(other.to_string())),
        })?;
        tx.commit().await?;
        if let Some(cache) = cache {
            cache.invalidate(&tenant.id);
        }
        tracing::info!(tenant = %tenant.slug, status = %moved.status, deentitled = moved.deentitled.len(), "license status changed");
        report.deentitled += moved.deentitled.len();
        report.transitions.push((tenant.slug, moved.status));
    }
    Ok(report)
}

/// Runs [`sweep_once`] every `interval` (with jitter, so instances do not wake together)
/// until the process stops.
pub async fn run_sweeper(
    db: DatabaseConnection,
    interval: std::time::Duration,
    cache: std::sync::Arc<crate::entitlements::EntitlementCache>,
) {
    loop {
        let jitter = rand::random::<f64>() * 0.2 + 0.9;
        tokio::time::sleep(interval.mul_f64(jitter)).await;
        match sweep(&db, Some(&cache)).await {
            Ok(r) if !r.transitions.is_empty() => tracing::info!(?r, "sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweep failed; retrying next round"),
        }
    }
}

/// A plan definition as operators write it (CLI flags or the JSON API), validated before use.
#[derive(Debug, Clone, serde::Deserialize, Serialize, validator::Validate)]
pub struct PlanSpec {
    #[validate(length(min = 1, max = 100))]
    pub features: Vec<String>,
    #[validate(range(min = 0))]
    pub seats_default: i64,
    /// Extra pools by seat type; `null` = unlimited.
    #[serde(default)]
    pub seat_pools: std::collections::BTreeMap<String, Option<i64>>,
    #[serde(default)]
    #[validate(range(min = 0, max = 3650))]
    pub grace_days: i64,
    /// 1.0 = no overage; 1.25 = a quarter more seats than licensed.
    #[serde(default = "no_overage")]
    #[validate(range(min = 1.0, max = 10.0))]
    pub overage: f64,
}

fn no_overage() -> f64 {
    1.0
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Creates or replaces a plan. The change applies to the next request on every instance; the
/// seats it moves (if any) move on the next license change or sweep of each tenant.
pub async fn set_plan(
    db: &DatabaseConnection,
    name: &str,
    spec: &PlanSpec,
    actor: &str,
) -> Result<crate::license::Plan, LicensingError> {
    use validator::Validate;
    spec.validate()
        .map_err(|e| LicensingError::Invalid(format!("invalid plan: {e}")))?;
    if !valid_name(name) {
        return Err(LicensingError::Invalid(format!(
            "plan name '{name}' must be 1-64 letters, digits, '-', '_' or '.'"
        )));
    }
    if let Some(bad) = spec.features.iter().find(|f| !valid_name(f)) {
        return Err(LicensingError::Invalid(format!(
            "feature '{bad}' must be letters, digits, '-', '_' or '.'"
        )));
    }
    if let Some((pool, _)) = spec
        .seat_pools
        .iter()
        .find(|(k, v)| !valid_name(k) || k.as_str() == crate::license::DEFAULT_SEAT_TYPE || v.is_some_and(|n| n < 0))
    {
        return Err(LicensingError::Invalid(format!(
            "seat pool '{pool}' is invalid: use a new name (not 'default', whose size is the license's seats) and a count >= 0 or null"
        )));
    }
    let plan = crate::license::Plan {
        name: name.to_string(),
        features: spec.features.clone(),
        seats_default: spec.seats_default,
        seat_pools: spec.seat_pools.clone(),
        grace_days: spec.grace_days,
        overage: spec.overage,
    };
    let tx = store::begin_write(db).await?;
    let before = tenants::find_plan(&tx, name)
        .await?
        .map(|p| json!(tenants::plan_to_domain(&p).features));
    tenants::upsert_plan(&tx, &plan).await?;
    let after = json!({"features": plan.features, "seats_default": plan.seats_default, "seat_pools": plan.seat_pools,
                       "grace_days": plan.grace_days, "overage": plan.overage});
    audit_event(
        &tx,
        "",
        actor,
        "plan.set",
        &format!("Plan/{name}"),
        before.map(|f| json!({"features": f})),
        Some(after),
    )
    .await?;
    crate::entitlements::notify_change(&tx, "*").await?;
    tx.commit().await?;
    Ok(plan)
}
