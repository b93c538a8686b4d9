//! `GET /api/v1/entitlements/check?tenant=&user=&feature=` for product services.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::openapi::Problems;
use super::{require_bearer, ApiError};
use crate::app::AppState;
use crate::license::effective_status;
use crate::license::token::{
    TenantLicenseClaims, UserEntitlementClaims, DEFAULT_TENANT_TOKEN_TTL_SECS, DEFAULT_USER_TOKEN_TTL_SECS,
};
use crate::store::{tenants, users};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    tenant: String,
    user: String,
    feature: Option<String>,
}

/// Answers from the in-memory cache: `{"allowed": bool, "reason": …}`.
#[utoipa::path(get, path = "/api/v1/entitlements/check", tag = "product", params(CheckQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("service" = [])))]
pub async fn check(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    require_bearer(
        &req,
        state.config.service_token.as_deref(),
        "entitlement check",
        "SEATBRIDGE_SERVICE_TOKEN",
    )?;
    let result = state
        .entitlements
        .check(
            &state.db,
            &state.reads,
            &q.tenant,
            &q.user,
            q.feature.as_deref().filter(|f| !f.is_empty()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(result))
}

/// `GET /.well-known/jwks.json`: the public keys that verify license tokens (RFC 8037 OKP).
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(state.keys.jwks(chrono::Utc::now()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    tenant: String,
}

/// `GET /api/v1/licenses/token?tenant=`: a signed tenant license token (EdDSA JWS) a product
/// can verify offline with the JWKS until it expires.
#[utoipa::path(get, path = "/api/v1/licenses/token", tag = "product", params(TenantQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("service" = [])))]
pub async fn tenant_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, license, plan) = licensed_tenant(&req, &state, &q.tenant).await?;
    let now = chrono::Utc::now();
    let claims = TenantLicenseClaims {
        iss: crate::app::public_base(&req, &state),
        sub: tenant.slug.clone(),
        tenant_id: tenant.id,
        plan: plan.name.clone(),
        features: plan.features.clone(),
        seats: license.seats,
        seat_pools: plan.seat_pools.clone(),
        license_status: effective_status(&license, &plan, now).as_str().to_string(),
        license_expires_at: license.expires_at.map(|t| t.timestamp()),
        license_version: license.version,
        iat: now.timestamp(),
        exp: now.timestamp() + DEFAULT_TENANT_TOKEN_TTL_SECS,
        typ: TenantLicenseClaims::TYP.to_string(),
    };
    sign(&state, &claims)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    tenant: String,
    user: String,
}

/// `GET /api/v1/entitlements/token?tenant=&user=`: a signed statement that this user holds (or
/// does not hold) a seat of this type, for a product that checks single users offline.
#[utoipa::path(get, path = "/api/v1/entitlements/token", tag = "product", params(UserQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("service" = [])))]
pub async fn user_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, license, plan) = licensed_tenant(&req, &state, &q.tenant).await?;
    let user = users::find_for_check(&state.db, &tenant.id, &q.user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user '{}' in tenant '{}'", q.user, q.tenant)))?;
    let now = chrono::Utc::now();
    let status = effective_status(&license, &plan, now);
    let view = crate::entitlements::UserView {
        id: user.id.as_str().into(),
        active: user.active,
        entitled: user.entitled,
        seat_type: user.seat_type.as_str().into(),
        reason: user.entitlement_reason.as_str().into(),
    };
    let (allowed, reason) = crate::entitlements::decide(&plan, status, &view, None);
    let claims = UserEntitlementClaims {
        iss: crate::app::public_base(&req, &state),
        sub: user.id,
        tenant_id: tenant.id,
        tenant: tenant.slug,
        user_name: user.user_name,
        seat_type: user.seat_type,
        entitled: allowed,
        reason,
        features: if allowed { plan.features.clone() } else { Vec::new() },
        license_version: license.version,
        iat: now.timestamp(),
        exp: now.timestamp() + DEFAULT_USER_TOKEN_TTL_SECS,
        typ: UserEntitlementClaims::TYP.to_string(),
    };
    sign(&state, &claims)
}

/// Authorises a token request and loads the tenant with its license and plan.
async fn licensed_tenant(
    req: &HttpRequest,
    state: &AppState,
    slug: &str,
) -> Result<
    (
        crate::store::entities::tenant::Model,
        crate::license::License,
        crate::license::Plan,
    ),
    ApiError,
> {
    require_bearer(
        req,
        state.config.service_token.as_deref(),
        "license token",
        "SEATBRIDGE_SERVICE_TOKEN",
    )?;
    let tenant = tenants::find_by_slug(&state.db, slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant '{slug}'")))?;
    let (license, plan) = tenants::license_and_plan(&state.db, &tenant.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant '{slug}' has no license")))?;
    Ok((tenant, license, plan))
}

fn sign<C: serde::Serialize>(state: &AppState, claims: &C) -> Result<HttpResponse, ApiError> {
    let token = state.keys.sign(claims).map_err(|e| {
        tracing::error!(error = %e, "could not sign a license token");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"token": token, "jwks": "/.well-known/jwks.json"})))
}
