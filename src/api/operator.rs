//! Operator endpoints: the plan catalog, tenant licenses (with dry run) and seat usage.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::openapi::{Conflict, Problems};
use super::ApiError;
use crate::admin::Principal;
use crate::app::AppState;
use crate::license::{effective_status, LicenseStatus, Policy};
use crate::licensing::{self, LicenseUpdate, PlanSpec};
use crate::store::{self, tenants};

/// GET /plans.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_plans(_: Principal, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let plans: Vec<_> = tenants::list_plans(&state.db)
        .await?
        .iter()
        .map(tenants::plan_to_domain)
        .map(|p| {
            json!({"name": p.name, "features": p.features, "seats_default": p.seats_default,
                   "seat_pools": p.seat_pools, "grace_days": p.grace_days, "overage": p.overage})
        })
        .collect();
    Ok(HttpResponse::Ok().json(plans))
}

/// PUT /plans/{name}: create or replace; takes effect on the next request of every instance.
#[utoipa::path(put, path = "/api/v1/plans/{name}", tag = "plans", params(("name" = String, Path, description = "1-64 letters, digits, `-`, `_` or `.`", pattern = "^[A-Za-z0-9._-]{1,64}$")), request_body = PlanSpec, responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn put_plan(
    p: Principal,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<PlanSpec>,
) -> Result<HttpResponse, ApiError> {
    p.require_operator("changing a plan")?;
    let plan = licensing::set_plan(&state.db, &name, &body, &p.actor()).await?;
    state.signals.committed("*");
    Ok(HttpResponse::Ok().json(
        json!({"name": plan.name, "features": plan.features, "seats_default": plan.seats_default,
        "seat_pools": plan.seat_pools, "grace_days": plan.grace_days, "overage": plan.overage}),
    ))
}

/// GET /tenants/{slug}/license.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/license", tag = "licenses", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn get_license(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, license, plan) = load_for(&p, &state, &slug).await?;
    let status = effective_status(
        &tenants::license_to_domain(&license),
        &tenants::plan_to_domain(&plan),
        store::now(),
    );
    Ok(HttpResponse::Ok().json(json!({
        "tenant": tenant.slug, "plan": license.plan_name, "seats": license.seats, "starts_at": license.starts_at,
        "expires_at": license.expires_at, "status": status.as_str(), "policy": license.policy, "version": license.version,
        "usage_cap": license.usage_cap, "usage_period": license.usage_period,
    })))
}

/// The body of a license change. Absent fields keep their value; `expires_at: null` makes the
/// license perpetual.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LicenseBody {
    /// The name of an existing plan.
    plan: Option<String>,
    /// Size of the default pool: 0 or more.
    #[schema(minimum = 0)]
    seats: Option<i64>,
    /// An RFC 3339 date-time; `null`: perpetual.
    // The pattern repeats the shape of `format` for tools that skip `format` on a nullable string.
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = Option<String>,
        format = DateTime,
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
    )]
    expires_at: Option<Option<chrono::DateTime<chrono::Utc>>>,
    /// `active` or `suspended`; `grace` and `expired` follow from `expires_at` and cannot be set.
    #[schema(pattern = "^(active|suspended)$")]
    status: Option<String>,
    /// `block_new` or `deactivate_newest`.
    #[schema(pattern = "^(block_new|deactivate_newest)$")]
    policy: Option<String>,
    /// 0 or more; `null`: no cap.
    #[serde(default, deserialize_with = "present")]
    #[schema(minimum = 0)]
    usage_cap: Option<Option<i64>>,
    /// `day` or `month`.
    #[schema(pattern = "^(day|month)$")]
    usage_period: Option<String>,
    /// The version the change expects the license to be at; another version is a 409.
    version: Option<i64>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRun {
    #[serde(default)]
    dry_run: bool,
}

/// PUT /tenants/{slug}/license[?dry_run=true]: change the license; answers what moved.
#[utoipa::path(put, path = "/api/v1/tenants/{slug}/license", tag = "licenses", params(("slug" = String, Path), DryRun), request_body = LicenseBody, responses((status = 200, description = "OK", body = serde_json::Value), Problems, Conflict), security(("bearer" = []), ("session" = [])))]
pub async fn put_license(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    q: web::Query<DryRun>,
    body: web::Json<LicenseBody>,
) -> Result<HttpResponse, ApiError> {
    p.require_tenant(&slug)?;
    p.require_operator("changing a license")?;
    let body = body.into_inner();
    let update = LicenseUpdate {
        plan: body.plan,
        seats: body.seats,
        expires_at: body.expires_at,
        status: body
            .status
            .map(|s| s.parse::<LicenseStatus>().map_err(ApiError::BadRequest))
            .transpose()?,
        policy: body
            .policy
            .map(|p| p.parse::<Policy>().map_err(ApiError::BadRequest))
            .transpose()?,
        usage_cap: body.usage_cap,
        usage_period: body.usage_period,
        expected_version: body.version,
        ..Default::default()
    };
    let report = licensing::update_license(&state.db, &slug, &update, &p.actor(), q.dry_run).await?;
    if !q.dry_run {
        state.signals.committed(&report.tenant_id);
    }
    Ok(HttpResponse::Ok().json(report))
}

/// GET /tenants/{slug}/seats: in use, waiting and limit per seat pool.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/seats", tag = "seats", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn seat_usage(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, license, plan) = load_for(&p, &state, &slug).await?;
    let (license, plan) = (tenants::license_to_domain(&license), tenants::plan_to_domain(&plan));
    let pools = licensing::seat_pools(&state.db, &tenant.id, &license, &plan).await?;
    let status = effective_status(&license, &plan, store::now());
    Ok(HttpResponse::Ok()
        .json(json!({"tenant": tenant.slug, "plan": plan.name, "status": status.as_str(), "pools": pools})))
}

/// A tenant with its license and plan, as one the principal may see: a tenant they may not
/// see is as unknown as a missing one.
pub(super) async fn load_for(
    p: &Principal,
    state: &AppState,
    slug: &str,
) -> Result<
    (
        store::entities::tenant::Model,
        store::entities::license::Model,
        store::entities::plan::Model,
    ),
    ApiError,
> {
    p.require_tenant(slug)?;
    let tenant = tenants::find_by_slug(&state.db, slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant '{slug}'")))?;
    let license = tenants::find_license(&state.db, &tenant.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant '{slug}' has no license")))?;
    let plan = tenants::find_plan(&state.db, &license.plan_name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("plan '{}' is missing", license.plan_name)))?;
    Ok((tenant, license, plan))
}

/// GET /tenants/{slug}/seat-mappings: which IdP groups give which seat type.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/seat-mappings", tag = "seats", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_seat_mappings(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let mut out = Vec::new();
    for m in store::seat_mappings::list(&state.db, &tenant.id).await? {
        let name = store::groups::find(&state.db, &tenant.id, &m.group_id)
            .await?
            .map(|g| g.display_name);
        out.push(json!({"group_id": m.group_id, "group": name, "seat_type": m.seat_type, "priority": m.priority}));
    }
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MappingBody {
    seat_type: String,
    #[serde(default)]
    priority: i32,
}

/// PUT /tenants/{slug}/seat-mappings/{group}[?dry_run=true]: map a group (id or displayName) to
/// a seat type; its members move pools. Answers who gains or loses a seat.
#[utoipa::path(put, path = "/api/v1/tenants/{slug}/seat-mappings/{group}", tag = "seats", params(("slug" = String, Path), ("group" = String, Path), DryRun), request_body = MappingBody, responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn put_seat_mapping(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<DryRun>,
    body: web::Json<MappingBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    change_seat_mapping(
        &p,
        &state,
        path.into_inner(),
        Some((body.seat_type, body.priority)),
        q.dry_run,
    )
    .await
}

/// DELETE /tenants/{slug}/seat-mappings/{group}[?dry_run=true].
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/seat-mappings/{group}", tag = "seats", params(("slug" = String, Path), ("group" = String, Path), DryRun), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn delete_seat_mapping(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<DryRun>,
) -> Result<HttpResponse, ApiError> {
    change_seat_mapping(&p, &state, path.into_inner(), None, q.dry_run).await
}

async fn change_seat_mapping(
    p: &Principal,
    state: &AppState,
    (slug, group): (String, String),
    mapping: Option<(String, i32)>,
    dry_run: bool,
) -> Result<HttpResponse, ApiError> {
    p.require_tenant(&slug)?;
    let (seat_type, priority) = mapping.map_or((None, 0), |(t, p)| (Some(t), p));
    let report = licensing::set_seat_mapping(
        &state.db,
        &slug,
        &group,
        seat_type.as_deref(),
        priority,
        &p.actor(),
        dry_run,
    )
    .await?;
    if !dry_run {
        state.signals.committed(&report.tenant_id);
    }
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    tenant: Option<String>,
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size: default 100; values outside 1–1000 are clamped into that range.
    limit: Option<i64>,
}

async fn tenant_id(state: &AppState, slug: Option<&str>) -> Result<Option<String>, ApiError> {
    match slug {
        None => Ok(None),
        Some(s) => Ok(Some(
            tenants::find_by_slug(&state.db, s)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no tenant '{s}'")))?
                .id,
        )),
    }
}

/// GET /events/deliveries?tenant=&status=pending|delivered|dead&limit=: newest first.
#[utoipa::path(get, path = "/api/v1/events/deliveries", tag = "events", params(DeliveryQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_deliveries(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    deliveries_page(&p, &state, &q, q.status.as_deref()).await
}

/// GET /events/dead-letters?tenant=.
#[utoipa::path(get, path = "/api/v1/events/dead-letters", tag = "events", params(DeliveryQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn dead_letters(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    deliveries_page(&p, &state, &q, Some("dead")).await
}

/// A page of deliveries, newest first, as `{items, next_cursor}`.
async fn deliveries_page(
    p: &Principal,
    state: &AppState,
    q: &DeliveryQuery,
    status: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    p.require_operator_or_tenant(q.tenant.as_deref())?;
    let tenant = tenant_id(state, q.tenant.as_deref()).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let before = q.cursor.as_deref().map(super::cursor::decode_id).transpose()?;
    let rows = store::events::list_deliveries(&state.db, tenant.as_deref(), status, before, limit).await?;
    let next = rows
        .last()
        .filter(|_| rows.len() as i64 == limit)
        .map(|d| super::cursor::encode(&[&d.id.to_string()]));
    Ok(HttpResponse::Ok().json(json!({"items": rows, "next_cursor": next})))
}

/// POST /events/deliveries/{id}/retry: put one delivery back in line.
#[utoipa::path(post, path = "/api/v1/events/deliveries/{id}/retry", tag = "events", params(("id" = i64, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn retry_delivery(
    p: Principal,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    p.require_operator("re-driving a delivery by id")?;
    let n = store::events::redrive(&state.db, Some(*id), None).await?;
    if n == 0 {
        return Err(ApiError::NotFound(format!("no undelivered delivery {id}")));
    }
    state.signals.outbox.notify_one();
    Ok(HttpResponse::Ok().json(json!({"requeued": n})))
}

/// POST /events/dead-letters/retry?tenant=: re-drive every dead letter (of a tenant).
#[utoipa::path(post, path = "/api/v1/events/dead-letters/retry", tag = "events", params(DeliveryQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn retry_dead_letters(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require_operator_or_tenant(q.tenant.as_deref())?;
    let tenant = tenant_id(&state, q.tenant.as_deref()).await?;
    let n = store::events::redrive(&state.db, None, tenant.as_deref()).await?;
    state.signals.outbox.notify_one();
    Ok(HttpResponse::Ok().json(json!({"requeued": n})))
}

/// GET /tenants/{slug}/endpoints: where the tenant's events go (secrets are never shown).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/endpoints", tag = "events", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_endpoints(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    Ok(HttpResponse::Ok().json(store::events::list_endpoints(&state.db, &tenant.id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EndpointBody {
    /// An `http://` or `https://` URL.
    #[schema(pattern = "^https?://")]
    url: String,
    /// `webhook` (default) or `scim`.
    #[serde(default)]
    #[schema(pattern = "^(webhook|scim)$")]
    kind: Option<String>,
    /// Event types, or absent for all.
    #[serde(default)]
    events: Option<Vec<String>>,
    /// Bearer token of a downstream SCIM endpoint (`kind: scim`).
    #[serde(default)]
    token: Option<String>,
}

/// POST /tenants/{slug}/endpoints: registers an endpoint. A webhook endpoint's signing secret
/// is in the answer, once.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/endpoints", tag = "events", params(("slug" = String, Path)), request_body = EndpointBody, responses((status = 201, description = "Created; a webhook's signing secret is shown once", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn add_endpoint(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    body: web::Json<EndpointBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let body = body.into_inner();
    if !(body.url.starts_with("https://") || body.url.starts_with("http://")) {
        return Err(ApiError::BadRequest(format!(
            "url '{}' must be an http(s) URL",
            body.url
        )));
    }
    let types = match &body.events {
        None => "*".to_string(),
        Some(list) => json!(list).to_string(),
    };
    let kind = body.kind.as_deref().unwrap_or("webhook");
    let (secret, shown) = match kind {
        "webhook" => {
            let s = crate::events::signature::new_standard_secret();
            (s.clone(), Some(s))
        }
        "scim" => (
            body.token
                .ok_or_else(|| ApiError::BadRequest("a scim endpoint needs a token".into()))?,
            None,
        ),
        other => return Err(ApiError::BadRequest(format!("kind '{other}' must be webhook or scim"))),
    };
    let id = store::events::add_endpoint(&state.db, &tenant.id, kind, &body.url, &secret, &types).await?;
    Ok(HttpResponse::Created().json(json!({"id": id, "kind": kind, "url": body.url, "secret": shown})))
}
