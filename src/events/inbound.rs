//! Billing webhooks in: `POST /webhooks/billing/stripe` and `POST /webhooks/billing/generic`.
//!
//! Exactly once and in order: the event's "seen" record and the license change it causes commit
//! in one transaction (under the tenant lock). A replayed id is acknowledged and not applied
//! again; an event older than what the license already reflects is recorded and ignored. A
//! failure part-way rolls the whole change back, and the sender's retry applies it whole.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::signature::{verify_standard, verify_stripe};
use crate::api::ApiError;
use crate::app::AppState;
use crate::license::LicenseStatus;
use crate::licensing::{self, LicenseUpdate};
use crate::store::{self, tenants};

/// Mounts the routes under `/webhooks/billing`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/stripe", web::post().to(stripe))
        .route("/generic", web::post().to(generic));
}

/// Largest billing event accepted; a larger body is refused with 413 before any signature work.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads the body up to [`MAX_BODY_BYTES`], answering a problem document over it.
async fn read_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    match payload.to_bytes_limited(MAX_BODY_BYTES).await {
        Ok(read) => read.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}"))),
        Err(_) => Err(ApiError::PayloadTooLarge(format!(
            "the billing event exceeds the {MAX_BODY_BYTES}-byte limit"
        ))),
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The documented body of the generic endpoint.
///
/// ```json
/// {"tenant": "acme", "plan": "team", "seats": 25, "expires_at": "2027-01-31T00:00:00Z",
///  "status": "active", "version": 42}
/// ```
/// `version` is required and must grow: an event whose version is not newer than the
/// license's is recorded and ignored. Absent fields keep their value; `"expires_at": null`
/// makes the license perpetual.
#[derive(Debug, Deserialize)]
pub struct GenericEvent {
    pub tenant: String,
    pub plan: Option<String>,
    pub seats: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub status: Option<String>,
    pub version: i64,
}

fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// What happened to an inbound event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    Stale,
    Unmapped(String),
    Ignored(String),
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "ignored_stale",
            Outcome::Unmapped(_) => "ignored_unmapped",
            Outcome::Ignored(_) => "ignored_type",
        }
    }
}

fn answer(outcome: &Outcome) -> HttpResponse {
    let detail = match outcome {
        Outcome::Unmapped(d) | Outcome::Ignored(d) => Some(d.clone()),
        _ => None,
    };
    HttpResponse::Ok().json(json!({"status": outcome.name(), "detail": detail}))
}

/// `POST /webhooks/billing/generic` (Standard Webhooks).
pub async fn generic(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    verify_standard(
        header(&req, "webhook-id"),
        header(&req, "webhook-timestamp"),
        header(&req, "webhook-signature"),
        &body,
        &state.config.billing_webhook_secrets,
        Utc::now().timestamp(),
    )
    .map_err(|e| ApiError::Unauthorized(format!("webhook signature rejected: {e}")))?;
    let event_id = header(&req, "webhook-id").unwrap_or_default().to_string();
    let event: GenericEvent =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid billing event: {e}")))?;
    let status = event
        .status
        .as_deref()
        .map(|s| s.parse::<LicenseStatus>().map_err(ApiError::BadRequest))
        .transpose()?;
    let update = LicenseUpdate {
        plan: event.plan,
        seats: event.seats,
        expires_at: event.expires_at,
        status,
        new_version: Some(event.version),
        ..Default::default()
    };
    let target = Target::Slug(event.tenant);
    let outcome = apply(
        &state,
        "generic",
        &event_id,
        target,
        |license| event.version > license.version,
        update,
    )
    .await?;
    Ok(answer(&outcome))
}

/// `POST /webhooks/billing/stripe`.
pub async fn stripe(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    verify_stripe(
        header(&req, "stripe-signature"),
        &body,
        &state.config.stripe_webhook_secrets,
        Utc::now().timestamp(),
    )
    .map_err(|e| ApiError::Unauthorized(format!("Stripe signature rejected: {e}")))?;
    let event: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid Stripe event: {e}")))?;
    let id = event["id"]
        .as_str()
        .ok_or_else(|| ApiError::BadRequest("Stripe event without id".into()))?
        .to_string();
    let created = event["created"]
        .as_i64()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or_else(|| ApiError::BadRequest("Stripe event without created".into()))?;
    let action = match stripe_action(&event, Utc::now()) {
        Ok(a) => a,
        Err(why) => {
            return Ok(answer(
                &record_only(&state, "stripe", &id, Outcome::Ignored(why)).await?,
            ))
        }
    };
    let plan = match &action.price {
        Some(price) => {
            let mut plan = store::events::billing_plan(&state.db, "stripe", price).await?;
            if plan.is_none() {
                if let Some(product) = &action.product {
                    plan = store::events::billing_plan(&state.db, "stripe", product).await?;
                }
            }
            match plan {
                Some(p) => Some(p),
                None => {
                    let why = format!("no plan is mapped to Stripe price '{price}'; map it with `seatbridge billing-plan set stripe {price} PLAN`");
                    return Ok(answer(
                        &record_only(&state, "stripe", &id, Outcome::Unmapped(why)).await?,
                    ));
                }
            }
        }
        None => None,
    };
    let update = LicenseUpdate {
        plan,
        seats: action.seats,
        expires_at: action.expires_at.map(Some),
        status: action.status,
        billing_event_at: Some(created),
        ..Default::default()
    };
    let target = Target::StripeCustomer {
        customer: action.customer,
        slug: action.tenant,
    };
    let newer = |license: &store::entities::license::Model| license.billing_event_at.is_none_or(|seen| created > seen);
    let outcome = apply(&state, "stripe", &id, target, newer, update).await?;
    Ok(answer(&outcome))
}

/// A license change read from a Stripe event.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeAction {
    pub customer: String,
    /// `metadata.seatbridge_tenant` of the subscription, when set.
    pub tenant: Option<String>,
    pub price: Option<String>,
    pub product: Option<String>,
    pub seats: Option<i64>,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: Option<LicenseStatus>,
}

/// Maps a Stripe event to a license change (pure, unit-tested):
/// * `customer.subscription.created|updated`: plan from the price, seats from the quantity,
///   expiry at the end of the paid period; an ended subscription expires now.
/// * `customer.subscription.deleted`: expires now (grace days then apply).
/// * `invoice.payment_failed`: expires now — grace starts, nobody new gets a seat.
/// * `invoice.paid`: renewed to the end of the invoiced period.
pub fn stripe_action(event: &Value, now: DateTime<Utc>) -> Result<StripeAction, String> {
    let kind = event["type"].as_str().unwrap_or_default();
    let obj = &event["data"]["object"];
    let customer = obj["customer"]
        .as_str()
        .ok_or("event object has no customer")?
        .to_string();
    let ts = |v: &Value| v.as_i64().and_then(|t| DateTime::from_timestamp(t, 0));
    let blank = StripeAction {
        customer,
        tenant: None,
        price: None,
        product: None,
        seats: None,
        expires_at: None,
        status: None,
    };
    match kind {
        "customer.subscription.created" | "customer.subscription.updated" => {
            let item = &obj["items"]["data"][0];
            let period_end = ts(&obj["current_period_end"]).or_else(|| ts(&item["current_period_end"]));
            let ended = matches!(
                obj["status"].as_str(),
                Some("canceled" | "unpaid" | "incomplete_expired")
            );
            Ok(StripeAction {
                tenant: obj["metadata"]["seatbridge_tenant"].as_str().map(str::to_string),
                price: item["price"]["id"].as_str().map(str::to_string),
                product: item["price"]["product"].as_str().map(str::to_string),
                seats: Some(item["quantity"].as_i64().unwrap_or(1)),
                expires_at: if ended { Some(now) } else { period_end },
                status: Some(LicenseStatus::Active),
                ..blank
            })
        }
        "customer.subscription.deleted" => Ok(StripeAction {
            tenant: obj["metadata"]["seatbridge_tenant"].as_str().map(str::to_string),
            expires_at: Some(ts(&obj["ended_at"]).unwrap_or(now)),
            ..blank
        }),
        "invoice.payment_failed" => Ok(StripeAction {
            expires_at: Some(now),
            ..blank
        }),
        "invoice.paid" => {
            let end = ts(&obj["lines"]["data"][0]["period"]["end"]).or_else(|| ts(&obj["period_end"]));
            Ok(StripeAction {
                expires_at: end,
                status: Some(LicenseStatus::Active),
                ..blank
            })
        }
        other => Err(format!("event type '{other}' does not change licenses")),
    }
}

/// Which tenant an event is about.
enum Target {
    Slug(String),
    StripeCustomer { customer: String, slug: Option<String> },
}

/// Records an event that changes nothing (so a replay is recognised) and reports it.
async fn record_only(state: &AppState, provider: &str, id: &str, outcome: Outcome) -> Result<Outcome, ApiError> {
    let detail = match &outcome {
        Outcome::Unmapped(d) | Outcome::Ignored(d) => d.clone(),
        _ => String::new(),
    };
    let tx = store::begin_write(&state.db).await.map_err(store::StoreError::from)?;
    let fresh = store::events::record_inbound(&tx, provider, id, None, outcome.name(), &detail).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    tracing::info!(provider, event = id, outcome = outcome.name(), %detail, "billing event not applied");
    Ok(if fresh { outcome } else { Outcome::Duplicate })
}

/// Applies an event exactly once: the "seen" record and the license change share one
/// transaction under the tenant lock.
async fn apply(
    state: &AppState,
    provider: &str,
    event_id: &str,
    target: Target,
    is_newer: impl FnOnce(&store::entities::license::Model) -> bool,
    update: LicenseUpdate,
) -> Result<Outcome, ApiError> {
    if event_id.is_empty() {
        return Err(ApiError::BadRequest("the event has no id".into()));
    }
    let tx = store::begin_write(&state.db).await.map_err(store::StoreError::from)?;
    if store::events::inbound_outcome(&tx, provider, event_id).await?.is_some() {
        tx.rollback().await.map_err(store::StoreError::from)?;
        return Ok(Outcome::Duplicate);
    }
    let tenant = match &target {
        Target::Slug(slug) => tenants::find_by_slug(&tx, slug).await?,
        Target::StripeCustomer { customer, slug } => match slug {
            Some(slug) => tenants::find_by_slug(&tx, slug).await?,
            None => match store::events::billing_customer(&tx, provider, customer).await? {
                Some(tenant_id) => tenants::find(&tx, &tenant_id).await?,
                None => None,
            },
        },
    };
    let Some(tenant) = tenant else {
        tx.rollback().await.map_err(store::StoreError::from)?;
        let why =
            "no tenant for this event (set metadata.seatbridge_tenant on the subscription, or check the tenant slug)";
        return record_only(state, provider, event_id, Outcome::Unmapped(why.into())).await;
    };
    tenants::lock_tenant(&tx, &tenant.id).await?;
    if let Target::StripeCustomer { customer, .. } = &target {
        store::events::put_billing_customer(&tx, provider, customer, &tenant.id).await?;
    }
    let license = tenants::find_license(&tx, &tenant.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant '{}' has no license", tenant.slug)))?;
    let outcome = if is_newer(&license) {
        Outcome::Applied
    } else {
        Outcome::Stale
    };
    if !store::events::record_inbound(&tx, provider, event_id, Some(&tenant.id), outcome.name(), "").await? {
        tx.rollback().await.map_err(store::StoreError::from)?;
        return Ok(Outcome::Duplicate);
    }
    if outcome == Outcome::Applied {
        licensing::update_license_in(&tx, &tenant, &update, &format!("billing:{provider}"), false).await?;
    }
    tx.commit().await.map_err(store::StoreError::from)?;
    state.signals.committed(&tenant.id);
    tracing::info!(provider, event = event_id, tenant = %tenant.slug, outcome = outcome.name(), "billing event");
    Ok(outcome)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subscription_updates_map_price_quantity_and_period() {
        let now = Utc::now();
        let event = json!({"type":"customer.subscription.updated","data":{"object":{
            "customer":"cus_1","status":"active","current_period_end":1_900_000_000,
            "metadata":{"seatbridge_tenant":"acme"},
            "items":{"data":[{"quantity":12,"price":{"id":"price_team","product":"prod_team"}}]}}}});
        let a = stripe_action(&event, now).unwrap();
        assert_eq!(a.tenant.as_deref(), Some("acme"));
        assert_eq!((a.price.as_deref(), a.seats), (Some("price_team"), Some(12)));
        assert_eq!(a.expires_at, DateTime::from_timestamp(1_900_000_000, 0));
        assert_eq!(a.status, Some(LicenseStatus::Active));
    }

    #[test]
    fn cancellation_and_payment_failure_expire_now_and_payment_renews() {
        let now = Utc::now();
        let canceled = json!({"type":"customer.subscription.updated","data":{"object":{"customer":"c","status":"canceled","items":{"data":[{}]}}}});
        assert_eq!(stripe_action(&canceled, now).unwrap().expires_at, Some(now));
        let failed = json!({"type":"invoice.payment_failed","data":{"object":{"customer":"c"}}});
        assert_eq!(stripe_action(&failed, now).unwrap().expires_at, Some(now));
        let paid = json!({"type":"invoice.paid","data":{"object":{"customer":"c","lines":{"data":[{"period":{"end":1_900_000_000}}]}}}});
        assert_eq!(
            stripe_action(&paid, now).unwrap().expires_at,
            DateTime::from_timestamp(1_900_000_000, 0)
        );
        let other = json!({"type":"charge.refunded","data":{"object":{"customer":"c"}}});
        assert!(stripe_action(&other, now).is_err());
    }
}
