//! The license engine inside the write path: tier gates, usage caps, seat decisions and handing
//! freed seats to waiting users. The decisions themselves are in `crate::license`; this file
//! loads the facts they need inside the write transaction and applies the verdict.

use serde_json::{json, Value};

use super::{Provisioning, WriteTx};
use crate::auth::Tenant;
use crate::license::decision::{admit, limit_of, AdmitError, SeatRequest};
use crate::license::{EntitlementReason, LicenseStatus, Plan, DEFAULT_SEAT_TYPE};
use crate::scim::error::ScimError;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, SEATBRIDGE_USER_SCHEMA};
use crate::store::entities::user;
use crate::store::users::{self, SeatState};
use crate::store::{self, tenants, user_counts};

/// Refuses with 403 when the plan lacks `feature`.
pub(super) fn check_feature(plan: &Plan, feature: &str) -> Result<(), ScimError> {
    if plan.has_feature(feature) {
        return Ok(());
    }
    Err(ScimError::Forbidden {
        code: "FEATURE_NOT_IN_PLAN",
        detail: format!(
            "this needs the '{feature}' entitlement, which plan {} does not include; upgrade the plan to use it",
            plan.name
        ),
    })
}

/// Tier gates that depend on what a user document carries.
pub(super) fn check_user_features(plan: &Plan, doc: &Value) -> Result<(), ScimError> {
    if doc.get(ENTERPRISE_USER_SCHEMA).is_some() {
        check_feature(plan, "scim.enterprise").map_err(|_| ScimError::Forbidden {
            code: "FEATURE_NOT_IN_PLAN",
            detail: format!(
                "enterprise extension attributes ({ENTERPRISE_USER_SCHEMA}) need the 'scim.enterprise' entitlement, \
                 which plan {} does not include; upgrade the plan or stop sending these attributes",
                plan.name
            ),
        })?;
    }
    Ok(())
}

/// The seat type a document asks for (our extension's `seatType`), if any.
pub(super) fn requested_seat_type(doc: &Value) -> Option<String> {
    doc.get(SEATBRIDGE_USER_SCHEMA)?
        .get("seatType")?
        .as_str()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn waiting_reason(err: &AdmitError) -> EntitlementReason {
    match err {
        AdmitError::Expired { .. } => EntitlementReason::LicenseExpired,
        AdmitError::Suspended { .. } => EntitlementReason::LicenseSuspended,
        _ => EntitlementReason::SeatLimit,
    }
}

fn refusal(err: AdmitError) -> ScimError {
    ScimError::Forbidden {
        code: err.code(),
        detail: err.to_string(),
    }
}

impl Provisioning<'_> {
    /// Decides the license state a user write leaves behind.
    ///
    /// * A user an admin holds stays held (no seat, reason `manual`).
    /// * Inactive users hold no seat.
    /// * A user keeping its seat in the same pool keeps it (profile updates never need a seat).
    /// * Anyone else who is active asks the engine for a seat. A write that *newly* asks — a
    ///   create with `active: true`, a reactivation, a move to another pool — is refused (403,
    ///   nothing written) when there is none. A user already waiting stays waiting.
    /// * A seat type the plan does not have gets no seat (reason `unknown_seat_type`).
    pub(super) async fn decide_seat(
        &self,
        w: &WriteTx,
        tenant: &Tenant,
        existing: Option<&user::Model>,
        doc: &Value,
    ) -> Result<SeatState, ScimError> {
        if existing.is_some() {
            w.forget_seat_counts();
        }
        // The IdP's explicit choice, else the user's mapped groups, else the default pool.
        let seat_type = match (requested_seat_type(doc), existing) {
            (Some(explicit), _) => explicit,
            (None, Some(e)) => w.mapped_seat_type(&tenant.id, &e.id).await?,
            (None, None) => DEFAULT_SEAT_TYPE.to_string(),
        };
        let state = |entitled: bool, reason: EntitlementReason| SeatState {
            entitled,
            seat_type: seat_type.clone(),
            reason: reason.as_str(),
        };
        // An admin's hold outlasts whatever the IdP sends, until an admin releases it.
        if existing.is_some_and(|e| e.entitlement_reason == EntitlementReason::Manual.as_str()) {
            return Ok(state(false, EntitlementReason::Manual));
        }
        if !users::doc_active(doc) {
            return Ok(state(false, EntitlementReason::Inactive));
        }
        let holds_same_seat = existing.is_some_and(|e| e.entitled && e.seat_type == seat_type);
        if holds_same_seat {
            return Ok(match w.status {
                LicenseStatus::Active | LicenseStatus::Grace => state(true, EntitlementReason::SeatAssigned),
                LicenseStatus::Expired => state(false, EntitlementReason::LicenseExpired),
                LicenseStatus::Suspended => state(false, EntitlementReason::LicenseSuspended),
            });
        }
        let newly_asking = match existing {
            None => true,
            Some(e) => !e.active || e.entitled,
        };
        // A create counts on what the transaction knows: in a batch, earlier creates' rows may
        // not be written yet.
        let known = existing.is_none().then(|| w.seat_count(&seat_type)).flatten();
        let in_use = match known {
            Some(n) => n,
            None => {
                let n = user_counts::entitled_in_pool(&w.tx, &tenant.id, &seat_type, existing.map(|e| e.id.as_str()))
                    .await?;
                if existing.is_none() {
                    w.know_seat_count(&seat_type, n);
                }
                n
            }
        };
        let verdict = admit(
            &w.plan,
            &w.license,
            w.status,
            SeatRequest {
                seat_type: &seat_type,
                in_use,
            },
        );
        match verdict {
            Ok(()) => {
                if existing.is_none() {
                    w.seat_taken(&seat_type);
                }
                Ok(state(true, EntitlementReason::SeatAssigned))
            }
            // The identity is still provisioned, without a seat: an IdP attribute naming a pool
            // the plan lacks is an admin's mapping problem, visible in `entitlementReason`.
            Err(err @ AdmitError::UnknownSeatType { .. }) => {
                tracing::warn!(%err, "user provisioned without a seat");
                Ok(state(false, EntitlementReason::UnknownSeatType))
            }
            Err(err) if newly_asking => Err(refusal(err)),
            Err(err) => Ok(state(false, waiting_reason(&err))),
        }
    }

    /// Gives free seats of `seat_type` to waiting users, oldest first (only while the license
    /// is active: in grace nobody new gets a seat).
    pub(super) async fn promote_waiting(&self, w: &WriteTx, tenant: &Tenant, seat_type: &str) -> Result<(), ScimError> {
        w.forget_seat_counts();
        if w.status != LicenseStatus::Active || !w.anyone_waits() {
            return Ok(());
        }
        let Ok(limit) = limit_of(&w.plan, &w.license, seat_type) else {
            return Ok(());
        };
        // The pool's counters say at once whether anyone waits and how many seats are free.
        let pool = user_counts::pool(&w.tx, &tenant.id, seat_type).await?;
        let free = limit.map_or(i64::MAX, |limit| limit - pool.entitled);
        if free <= 0 || pool.waiting == 0 {
            return Ok(());
        }
        let next = users::oldest_waiting(&w.tx, &tenant.id, seat_type, free).await?;
        if next.is_empty() {
            return Ok(());
        }
        users::set_entitlement(&w.tx, &next, true, EntitlementReason::SeatAssigned.as_str()).await?;
        for id in &next {
            if let Some(row) = users::find(&w.tx, &tenant.id, id).await? {
                let data = crate::events::user_data(&row, EntitlementReason::SeatAssigned.as_str());
                w.emit(&tenant.id, crate::events::types::USER_REPROVISIONED, data)
                    .await?;
            }
            let after =
                json!({"entitled": true, "seatType": seat_type, "reason": EntitlementReason::SeatAssigned.as_str()});
            self.audit(
                w,
                tenant,
                "entitlement.granted",
                &format!("User/{id}"),
                None,
                Some(after),
            )
            .await?;
        }
        Ok(())
    }

    /// Counts one provisioning operation (a user or group create) against a usage-capped license,
    /// refusing past the cap. Updates and deletes are never counted: removing access must always
    /// work.
    pub(super) async fn charge_usage(&self, w: &WriteTx, tenant: &Tenant) -> Result<(), ScimError> {
        let (Some(cap), Some(period)) = (w.license.usage_cap, w.license.usage_period.as_deref()) else {
            return Ok(());
        };
        let now = store::now();
        let key = match period {
            "day" => now.format("%Y-%m-%d").to_string(),
            _ => now.format("%Y-%m").to_string(),
        };
        let used = tenants::usage(&w.tx, &tenant.id, &key).await?;
        if used >= cap {
            return Err(ScimError::Forbidden {
                code: "USAGE_CAP_REACHED",
                detail: format!(
                    "usage cap reached: {used} of {cap} provisioning operations this {period} on plan {}; \
                     wait for the next {period} or raise the cap",
                    w.plan.name
                ),
            });
        }
        tenants::add_usage(&w.tx, &tenant.id, &key).await?;
        Ok(())
    }
}
