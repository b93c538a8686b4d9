//! License changes and the expiry sweeper. Both can move many users' seats at once, so each runs
//! as one transaction under the tenant's lock: the change and every seat it moves land together
//! or not at all. A dry run computes exactly the same change and rolls it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use serde::Serialize;
use serde_json::json;

use crate::audit;
use crate::events::{self, types};
use crate::license::decision::rebalance;
use crate::license::{effective_status, EntitlementReason, LicenseStatus, Policy};
use crate::store::entities::{license, tenant};
use crate::store::{self, groups, seat_mappings, tenants, user_counts, users, StoreError};

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
    /// Give the license exactly this version (must be newer): billing systems send their own.
    pub new_version: Option<i64>,
    /// Time of the billing event this change comes from.
    pub billing_event_at: Option<DateTime<Utc>>,
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
    #[error("tenant '{0}' already exists")]
    Exists(String),
    #[error("no user '{0}' in this tenant")]
    NoUser(String),
    #[error("{0}")]
    NoSeat(String),
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
    let report = update_license_in(&tx, &tenant, update, actor, dry_run).await?;
    finish(tx, dry_run).await?;
    Ok(report)
}

/// [`update_license`] inside a transaction the caller owns (and has locked the tenant in), so
/// the change can commit together with other records — e.g. a billing event's "seen" record.
pub async fn update_license_in(
    tx: &DatabaseTransaction,
    tenant: &tenant::Model,
    update: &LicenseUpdate,
    actor: &str,
    dry_run: bool,
) -> Result<ChangeReport, LicensingError> {
    validate(update)?;
    let current = tenants::find_license(tx, &tenant.id)
        .await?
        .ok_or_else(|| LicensingError::NoLicense(tenant.slug.clone()))?;
    if let Some(expected) = update.expected_version {
        if expected != current.version {
            return Err(LicensingError::StaleVersion {
                expected,
                current: current.version,
            });
        }
    }
    if let Some(v) = update.new_version {
        if v <= current.version {
            return Err(LicensingError::StaleVersion {
                expected: v,
                current: current.version,
            });
        }
    }
    let mut next = current.clone();
    apply_update(&mut next, update);
    let reason = if next.plan_name != current.plan_name {
        EntitlementReason::PlanDowngrade
    } else {
        EntitlementReason::SeatReduction
    };
    let job = Job {
        actor,
        action: "license.set",
        shrink_reason: reason,
        dry_run,
    };
    rebalance_tenant(tx, tenant, &current, next, &job).await
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
    if let Some(v) = update.new_version {
        // `save_license` bumps the version by one.
        next.version = v - 1;
    }
    if let Some(at) = update.billing_event_at {
        next.billing_event_at = Some(at);
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

/// In use, waiting and limit of every seat pool of a tenant: the plan's pools plus any pool
/// users sit in.
pub async fn seat_pools(
    conn: &impl ConnectionTrait,
    tenant_id: &str,
    license: &crate::license::License,
    plan: &crate::license::Plan,
) -> Result<Vec<store::admin::PoolSnapshot>, StoreError> {
    use crate::license::decision::{limit_of, seat_types};
    let usage = user_counts::pools(conn, tenant_id).await?;
    let names: std::collections::BTreeSet<String> = seat_types(plan)
        .into_iter()
        .chain(usage.iter().map(|u| u.seat_type.clone()))
        .collect();
    Ok(names
        .into_iter()
        .map(|pool| {
            let (in_use, waiting) = usage
                .iter()
                .find(|u| u.seat_type == pool)
                .map_or((0, 0), |u| (u.entitled, u.waiting));
            let limit = limit_of(plan, license, &pool).unwrap_or(Some(0));
            store::admin::PoolSnapshot {
                seat_type: pool,
                in_use,
                waiting,
                limit,
            }
        })
        .collect())
}

/// Keeps the seat-usage history: snapshots the tenants whose seats changed (as told by
/// `signals`) every few seconds, and every tenant once a day. Runs until cancelled.
pub async fn run_usage_snapshots(db: DatabaseConnection, signals: crate::events::Signals, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut daily_done: Option<String> = None;
    loop {
        tick.tick().await;
        if let Err(e) = snapshot_due(&db, &signals, &mut daily_done).await {
            tracing::warn!(error = %e, "could not record seat-usage snapshots");
        }
    }
}

async fn snapshot_due(
    db: &DatabaseConnection,
    signals: &crate::events::Signals,
    daily_done: &mut Option<String>,
) -> Result<(), StoreError> {
    let today = store::now().format("%Y-%m-%d").to_string();
    let mut due: std::collections::BTreeSet<String> = signals.take_changed().into_iter().collect();
    if due.remove("*") {
        due.extend(tenants::all(db).await?.into_iter().map(|t| t.id));
    }
    match daily_done.as_deref() {
        // At start every tenant, so the seat gauges of /metrics are complete.
        None => due.extend(tenants::all(db).await?.into_iter().map(|t| t.id)),
        Some(day) if day != today => due.extend(store::admin::tenants_without_snapshot(db, &today).await?),
        Some(_) => {}
    }
    *daily_done = Some(today);
    for tenant_id in due {
        let Some(tenant) = tenants::find(db, &tenant_id).await? else {
            continue;
        };
        if let Some((license, plan)) = tenants::license_and_plan(db, &tenant_id).await? {
            let pools = seat_pools(db, &tenant_id, &license, &plan).await?;
            store::admin::record_snapshot(db, &tenant_id, &pools).await?;
            crate::metrics::seats(&tenant.slug, &pools);
        }
    }
    Ok(())
}

/// Whether `slug` can name a tenant: 1–63 lowercase letters, digits or `-`, not leading `-`.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 63
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
}

/// What a new tenant starts with.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub name: Option<String>,
    pub plan: String,
    pub seats: i64,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates a tenant with its license, audited.
pub async fn create_tenant(
    db: &DatabaseConnection,
    new: &NewTenant,
    actor: &str,
) -> Result<(tenant::Model, license::Model), LicensingError> {
    if !valid_slug(&new.slug) {
        return Err(LicensingError::Invalid(format!(
            "tenant slug '{}' must be 1-63 lowercase letters, digits or '-'",
            new.slug
        )));
    }
    if new.seats < 0 {
        return Err(LicensingError::Invalid("seats must be 0 or more".into()));
    }
    if tenants::find_plan(db, &new.plan).await?.is_none() {
        let known: Vec<String> = tenants::list_plans(db).await?.into_iter().map(|p| p.name).collect();
        return Err(LicensingError::UnknownPlan {
            name: new.plan.clone(),
            known: known.join(", "),
        });
    }
    if tenants::find_by_slug(db, &new.slug).await?.is_some() {
        return Err(LicensingError::Exists(new.slug.clone()));
    }
    let tx = store::begin_write(db).await?;
    let t = tenants::insert_tenant(&tx, &new.slug, new.name.as_deref().unwrap_or(&new.slug)).await?;
    let fields = tenants::LicenseFields {
        plan_name: new.plan.clone(),
        seats: new.seats,
        expires_at: new.expires_at,
    };
    let l = tenants::put_license(&tx, &t.id, fields).await?;
    let after = json!({"slug": t.slug, "plan": l.plan_name, "seats": l.seats, "expires_at": l.expires_at});
    let target = format!("Tenant/{}", t.slug);
    audit_event(&tx, &t.id, actor, "tenant.create", &target, None, Some(after)).await?;
    tx.commit().await?;
    Ok((t, l))
}

/// An admin takes a user's seat away (`hold: true`) or gives it back (`hold: false`).
///
/// A held user keeps what the IdP set (`active`), holds no seat (reason `manual`), is never
/// handed a freed seat, and stays held through IdP writes until an admin releases them. The
/// seat a hold frees goes to whoever has waited longest. Releasing an active user (held, or
/// waiting in line) needs a free seat ([`LicensingError::NoSeat`] otherwise); an inactive one
/// just loses the hold.
pub async fn set_hold(
    db: &DatabaseConnection,
    slug: &str,
    user_id: &str,
    hold: bool,
    actor: &str,
) -> Result<crate::store::entities::user::Model, LicensingError> {
    let tx = store::begin_write(db).await?;
    let tenant = tenants::find_by_slug(&tx, slug)
        .await?
        .ok_or_else(|| LicensingError::NoTenant(slug.to_string()))?;
    tenants::lock_tenant(&tx, &tenant.id).await?;
    let user = users::find(&tx, &tenant.id, user_id)
        .await?
        .ok_or_else(|| LicensingError::NoUser(user_id.to_string()))?;
    let held = user.entitlement_reason == EntitlementReason::Manual.as_str();
    let change = |reason: EntitlementReason| UserChange {
        id: user.id.clone(),
        user_name: user.user_name.clone(),
        reason: reason.as_str().into(),
    };
    let target = format!("User/{}", user.id);
    if hold && !held {
        let revoked = [change(EntitlementReason::Manual)];
        apply_moves(&tx, &revoked, &[]).await?;
        if user.entitled {
            publish_moves(&tx, &tenant.id, &revoked, &[]).await?;
        }
        let before = json!({"entitled": user.entitled, "reason": user.entitlement_reason});
        let after = json!({"entitled": false, "reason": EntitlementReason::Manual.as_str()});
        audit_event(
            &tx,
            &tenant.id,
            actor,
            "entitlement.held",
            &target,
            Some(before),
            Some(after),
        )
        .await?;
        let current = tenants::find_license(&tx, &tenant.id)
            .await?
            .ok_or_else(|| LicensingError::NoLicense(tenant.slug.clone()))?;
        let job = Job {
            actor,
            action: "license.rebalance",
            shrink_reason: EntitlementReason::SeatReduction,
            dry_run: false,
        };
        rebalance_tenant(&tx, &tenant, &current, current.clone(), &job).await?;
    } else if !hold && (held || (user.active && !user.entitled)) {
        let (entitled, reason) = if user.active {
            let (license, plan) = tenants::license_and_plan(&tx, &tenant.id)
                .await?
                .ok_or_else(|| LicensingError::NoLicense(tenant.slug.clone()))?;
            let status = effective_status(&license, &plan, store::now());
            let in_use = user_counts::entitled_in_pool(&tx, &tenant.id, &user.seat_type, None).await?;
            let request = crate::license::decision::SeatRequest {
                seat_type: &user.seat_type,
                in_use,
            };
            crate::license::decision::admit(&plan, &license, status, request)
                .map_err(|e| LicensingError::NoSeat(format!("cannot give {} a seat: {e}", user.user_name)))?;
            let granted = [change(EntitlementReason::SeatAssigned)];
            apply_moves(&tx, &[], &granted).await?;
            publish_moves(&tx, &tenant.id, &[], &granted).await?;
            (true, EntitlementReason::SeatAssigned)
        } else {
            users::set_entitlement(
                &tx,
                std::slice::from_ref(&user.id),
                false,
                EntitlementReason::Inactive.as_str(),
            )
            .await?;
            (false, EntitlementReason::Inactive)
        };
        let after = json!({"entitled": entitled, "reason": reason.as_str()});
        audit_event(
            &tx,
            &tenant.id,
            actor,
            "entitlement.released",
            &target,
            None,
            Some(after),
        )
        .await?;
    }
    crate::entitlements::notify_change(&tx, &tenant.id).await?;
    let fresh = users::find(&tx, &tenant.id, user_id)
        .await?
        .ok_or_else(|| LicensingError::NoUser(user_id.to_string()))?;
    tx.commit().await?;
    Ok(fresh)
}

/// What a rebalance is part of, for the audit log and the report.
struct Job<'a> {
    actor: &'a str,
    /// Audit action of the license write, e.g. `license.set` or `license.status`.
    action: &'a str,
    /// Reason given to users who lose a seat because a pool shrank.
    shrink_reason: EntitlementReason,
    dry_run: bool,
}

/// Writes `next` if it differs from `current` (unless dry run), computes who gains and loses
/// seats under it, applies that, and audits every step. Shared by license changes, seat-type
/// mappings and the sweeper, so all follow one rule.
async fn rebalance_tenant(
    tx: &DatabaseTransaction,
    tenant: &tenant::Model,
    current: &license::Model,
    mut next: license::Model,
    job: &Job<'_>,
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
    let moves = rebalance(&plan, &lic, status, &holders, job.shrink_reason);

    let changed: Vec<String> = moves
        .revoke
        .iter()
        .map(|(id, _)| id.clone())
        .chain(moves.grant.iter().cloned())
        .collect();
    let names = users::user_names(tx, &tenant.id, &changed).await?;
    let change = |id: &str, reason: EntitlementReason| UserChange {
        id: id.to_string(),
        user_name: names.get(id).cloned().unwrap_or_default(),
        reason: reason.as_str().into(),
    };
    let deentitled: Vec<UserChange> = moves.revoke.iter().map(|(id, why)| change(id, *why)).collect();
    let reentitled: Vec<UserChange> = moves
        .grant
        .iter()
        .map(|id| change(id, EntitlementReason::SeatAssigned))
        .collect();

    let license_changes = next != *current;
    let saved = match (license_changes, job.dry_run) {
        (false, _) => next,
        (true, true) => license::Model {
            version: next.version + 1,
            ..next
        },
        (true, false) => tenants::save_license(tx, next).await?,
    };
    if !job.dry_run {
        apply_moves(tx, &deentitled, &reentitled).await?;
        crate::entitlements::notify_change(tx, &tenant.id).await?;
        publish_moves(tx, &tenant.id, &deentitled, &reentitled).await?;
        if license_changes {
            let data = json!({"tenant": tenant.slug, "before": license_summary(current), "after": license_summary(&saved),
                              "deentitled": deentitled.len(), "reentitled": reentitled.len()});
            events::emit(tx, &tenant.id, types::LICENSE_CHANGED, data).await?;
            let target = format!("License/{}", tenant.slug);
            let (before, after) = (license_summary(current), license_summary(&saved));
            audit_event(
                tx,
                &tenant.id,
                job.actor,
                job.action,
                &target,
                Some(before),
                Some(after),
            )
            .await?;
        }
        audit_moves(tx, &tenant.id, job.actor, &deentitled, &reentitled).await?;
    }
    Ok(ChangeReport {
        tenant: tenant.slug.clone(),
        tenant_id: tenant.id.clone(),
        dry_run: job.dry_run,
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

/// One event per moved user, for the product (batched: thousands of users move in seconds).
async fn publish_moves(
    tx: &DatabaseTransaction,
    tenant_id: &str,
    revoked: &[UserChange],
    granted: &[UserChange],
) -> Result<(), StoreError> {
    let ids: Vec<String> = revoked.iter().chain(granted).map(|u| u.id.clone()).collect();
    let rows = users::find_many(tx, tenant_id, &ids).await?;
    let mut batch = Vec::with_capacity(ids.len());
    for (list, event) in [
        (revoked, types::USER_DEPROVISIONED),
        (granted, types::USER_REPROVISIONED),
    ] {
        for u in list {
            if let Some(row) = rows.get(&u.id) {
                batch.push((event, events::user_data(row, &u.reason)));
            }
        }
    }
    events::emit_many(tx, tenant_id, &batch).await?;
    Ok(())
}

/// Audit entries for moved users, one per batch of up to 500 (each lists its users).
async fn audit_moves(
    tx: &DatabaseTransaction,
    tenant_id: &str,
    actor: &str,
    revoked: &[UserChange],
    granted: &[UserChange],
) -> Result<(), StoreError> {
    for (list, action, entitled) in [
        (revoked, "entitlement.revoked", false),
        (granted, "entitlement.granted", true),
    ] {
        for chunk in list.chunks(500) {
            let users: Vec<serde_json::Value> = chunk
                .iter()
                .map(|u| json!({"id": u.id, "userName": u.user_name, "reason": u.reason}))
                .collect();
            let after = json!({"entitled": entitled, "users": users});
            audit_event(
                tx,
                tenant_id,
                actor,
                action,
                &format!("Users ({} changed)", chunk.len()),
                None,
                Some(after),
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_moves(tx: &DatabaseTransaction, revoke: &[UserChange], grant: &[UserChange]) -> Result<(), StoreError> {
    let mut by_reason: HashMap<&str, Vec<String>> = HashMap::new();
    for u in revoke {
        by_reason.entry(u.reason.as_str()).or_default().push(u.id.clone());
    }
    for (reason, ids) in by_reason {
        users::set_entitlement(tx, &ids, false, reason).await?;
    }
    let ids: Vec<String> = grant.iter().map(|u| u.id.clone()).collect();
    users::set_entitlement(tx, &ids, true, EntitlementReason::SeatAssigned.as_str()).await
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

async fn sweep(db: &DatabaseConnection, signals: Option<&crate::events::Signals>) -> Result<SweepReport, StoreError> {
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
        let job = Job {
            actor: "system:sweeper",
            action: "license.status",
            shrink_reason: EntitlementReason::LicenseExpired,
            dry_run: false,
        };
        let moved = rebalance_tenant(&tx, &tenant, &current, next, &job)
            .await
            .map_err(|e| match e {
                LicensingError::Store(s) => s,
                other => StoreError::Db(sea_orm::DbErr::Custom(other.to_string())),
            })?;
        tx.commit().await?;
        if let Some(signals) = signals {
            signals.committed(&tenant.id);
        }
        tracing::info!(tenant = %tenant.slug, status = %moved.status, deentitled = moved.deentitled.len(), "license status changed");
        report.deentitled += moved.deentitled.len();
        report.transitions.push((tenant.slug, moved.status));
    }
    Ok(report)
}

/// Runs [`sweep_once`] every `interval` (with jitter, so instances do not wake together)
/// until the process stops.
pub async fn run_sweeper(db: DatabaseConnection, interval: std::time::Duration, signals: crate::events::Signals) {
    loop {
        let jitter = rand::random::<f64>() * 0.2 + 0.9;
        tokio::time::sleep(interval.mul_f64(jitter)).await;
        let outcome = match sweep(&db, Some(&signals)).await {
            Ok(r) if !r.transitions.is_empty() => {
                tracing::info!(?r, "sweep");
                "changed"
            }
            Ok(_) => "unchanged",
            Err(e) => {
                tracing::warn!(error = %e, "sweep failed; retrying next round");
                "failed"
            }
        };
        metrics::counter!(crate::metrics::SWEEPS, "outcome" => outcome).increment(1);
    }
}

/// A plan definition as operators write it (CLI flags or the JSON API), validated before use.
#[derive(Debug, Clone, serde::Deserialize, Serialize, validator::Validate, utoipa::ToSchema)]
pub struct PlanSpec {
    /// 1 to 100 feature names of 1-64 letters, digits, `-`, `_` or `.`.
    #[validate(length(min = 1, max = 100))]
    #[schema(
        min_items = 1,
        max_items = 100,
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]+$"
    )]
    pub features: Vec<String>,
    #[validate(range(min = 0))]
    #[schema(minimum = 0)]
    pub seats_default: i64,
    /// Extra pools by seat type; `null` = unlimited.
    #[serde(default)]
    #[schema(schema_with = seat_pools_schema)]
    pub seat_pools: std::collections::BTreeMap<String, Option<i64>>,
    #[serde(default)]
    #[validate(range(min = 0, max = 3650))]
    #[schema(minimum = 0, maximum = 3650)]
    pub grace_days: i64,
    /// 1.0 = no overage; 1.25 = a quarter more seats than licensed.
    #[serde(default = "no_overage")]
    #[validate(range(min = 1.0, max = 10.0))]
    #[schema(minimum = 1.0, maximum = 10.0)]
    pub overage: f64,
}

fn no_overage() -> f64 {
    1.0
}

/// `PlanSpec::seat_pools` in the OpenAPI document, as [`set_plan`] checks it: pool names as
/// [`valid_name`] and not `default` (whose size is the license's seats), sizes of 0 or more or
/// `null`.
fn seat_pools_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Extra pools by seat type (1-64 letters, digits, `-`, `_` or `.`; not `default`, whose size \
             is the license's seats): a size of 0 or more, or `null` = unlimited.",
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^(?!default$)[A-Za-z0-9._-]{1,64}$")),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(
                    [Type::Integer, Type::Null]
                        .into_iter()
                        .collect::<utoipa::openapi::schema::SchemaType>(),
                )
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0)),
        ))
        .build()
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

/// Does a stored user document name its seat type itself (the IdP's choice beats any mapping)?
pub fn has_explicit_seat_type(doc_text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(doc_text)
        .ok()
        .and_then(|d| {
            d.get(crate::scim::schema::SEATBRIDGE_USER_SCHEMA)?
                .get("seatType")
                .cloned()
        })
        .is_some_and(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()))
}

/// The seat type a user gets from its groups, or the default pool.
pub async fn mapped_seat_type(conn: &impl store::Reader, tenant_id: &str, user_id: &str) -> Result<String, StoreError> {
    Ok(seat_mappings::seat_type_of_user(conn, tenant_id, user_id)
        .await?
        .unwrap_or_else(|| crate::license::DEFAULT_SEAT_TYPE.to_string()))
}

/// Maps a group (by id or display name) to a seat type, or removes its mapping (`seat_type:
/// None`), and moves the group's members between pools. Moved users keep their place in line:
/// they get a seat in the new pool if one is free (longest-seated first), else they wait.
pub async fn set_seat_mapping(
    db: &DatabaseConnection,
    slug: &str,
    group: &str,
    seat_type: Option<&str>,
    priority: i32,
    actor: &str,
    dry_run: bool,
) -> Result<ChangeReport, LicensingError> {
    let tx = store::begin_write(db).await?;
    let tenant = tenants::find_by_slug(&tx, slug)
        .await?
        .ok_or_else(|| LicensingError::NoTenant(slug.to_string()))?;
    tenants::lock_tenant(&tx, &tenant.id).await?;
    let group_row = groups::find_by_id_or_name(&tx, &tenant.id, group)
        .await?
        .ok_or_else(|| {
            LicensingError::Invalid(format!(
                "no group '{group}' in tenant '{slug}' (give its id or displayName)"
            ))
        })?;
    let current = tenants::find_license(&tx, &tenant.id)
        .await?
        .ok_or_else(|| LicensingError::NoLicense(slug.to_string()))?;
    match seat_type {
        Some(st) => {
            let plan = tenants::find_plan(&tx, &current.plan_name)
                .await?
                .map(|p| tenants::plan_to_domain(&p));
            let known = plan
                .as_ref()
                .map(crate::license::decision::seat_types)
                .unwrap_or_default();
            if !known.iter().any(|k| k == st) {
                return Err(LicensingError::Invalid(format!(
                    "seat type '{st}' does not exist on plan {}; known seat types: {}",
                    current.plan_name,
                    known.join(", ")
                )));
            }
            seat_mappings::put(&tx, &tenant.id, &group_row.id, st, priority).await?;
        }
        None => {
            if !seat_mappings::remove(&tx, &tenant.id, &group_row.id).await? {
                return Err(LicensingError::Invalid(format!(
                    "group '{group}' has no seat-type mapping"
                )));
            }
        }
    }
    let mut moved_holders = Vec::new();
    let mut by_pool: HashMap<String, Vec<String>> = HashMap::new();
    for id in groups::member_user_ids(&tx, &group_row.id).await? {
        let Some(row) = users::find(&tx, &tenant.id, &id).await? else {
            continue;
        };
        if has_explicit_seat_type(&row.doc) {
            continue;
        }
        let target = mapped_seat_type(&tx, &tenant.id, &id).await?;
        if target != row.seat_type {
            if row.entitled {
                moved_holders.push(id.clone());
            }
            by_pool.entry(target).or_default().push(id);
        }
    }
    for (pool, ids) in &by_pool {
        users::move_to_pool_waiting(&tx, ids, pool).await?;
    }
    let job = Job {
        actor,
        action: "seat_mapping.set",
        shrink_reason: EntitlementReason::SeatReduction,
        dry_run,
    };
    let mut report = rebalance_tenant(&tx, &tenant, &current, current.clone(), &job).await?;
    // A holder moved and re-seated at once never lost access; one left waiting did.
    let regranted: std::collections::HashSet<String> = report.reentitled.iter().map(|u| u.id.clone()).collect();
    report.reentitled.retain(|u| !moved_holders.contains(&u.id));
    let names = users::user_names(&tx, &tenant.id, &moved_holders).await?;
    for id in moved_holders.iter().filter(|id| !regranted.contains(*id)) {
        report.deentitled.push(UserChange {
            id: id.clone(),
            user_name: names.get(id).cloned().unwrap_or_default(),
            reason: EntitlementReason::SeatLimit.as_str().into(),
        });
    }
    if !dry_run {
        let after = json!({"group": group_row.display_name, "seatType": seat_type, "priority": priority,
                           "movedUsers": by_pool.values().map(Vec::len).sum::<usize>()});
        audit_event(
            &tx,
            &tenant.id,
            actor,
            "seat_mapping.set",
            &format!("Group/{}", group_row.id),
            None,
            Some(after),
        )
        .await?;
        for id in moved_holders.iter().filter(|id| !regranted.contains(*id)) {
            let after = json!({"entitled": false, "reason": EntitlementReason::SeatLimit.as_str()});
            audit_event(
                &tx,
                &tenant.id,
                actor,
                "entitlement.revoked",
                &format!("User/{id}"),
                None,
                Some(after),
            )
            .await?;
        }
    }
    finish(tx, dry_run).await?;
    Ok(report)
}
