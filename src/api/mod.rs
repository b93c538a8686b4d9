//! The JSON API under `/api/v1`: operator endpoints (plans, licenses, seat usage) and the
//! product-facing entitlement check. Errors are RFC 9457 problem documents.
//!
//! Admin endpoints take a [`crate::admin::Principal`]: a browser session, an OIDC access
//! token, or the static `SEATBRIDGE_OPERATOR_TOKEN` for automation. Product services use
//! `SEATBRIDGE_SERVICE_TOKEN`.

mod admin;
mod cursor;
pub(crate) mod openapi;
mod operator;
mod problem;
mod product;

use actix_web::{web, HttpRequest};
use subtle::ConstantTimeEq;

pub use problem::{ApiError, Problem};
pub use product::jwks;

/// Mounts the routes; the caller puts them under `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/entitlements/check", web::get().to(product::check))
        .route("/entitlements/token", web::get().to(product::user_token))
        .route("/licenses/token", web::get().to(product::tenant_token))
        .route("/openapi.json", web::get().to(openapi::document))
        .route("/me", web::get().to(crate::admin::me))
        .route("/tenants", web::get().to(admin::list_tenants))
        .route("/tenants", web::post().to(admin::create_tenant))
        .route("/tenants/{slug}", web::get().to(admin::overview))
        .route("/tenants/{slug}/seats/history", web::get().to(admin::seat_history))
        .route("/tenants/{slug}/users", web::get().to(admin::list_users))
        .route(
            "/tenants/{slug}/users/{id}/deprovision",
            web::post().to(admin::deprovision_user),
        )
        .route(
            "/tenants/{slug}/users/{id}/reactivate",
            web::post().to(admin::reactivate_user),
        )
        .route("/tenants/{slug}/tokens", web::get().to(admin::list_tokens))
        .route("/tenants/{slug}/tokens", web::post().to(admin::create_token))
        .route("/tenants/{slug}/tokens/{id}", web::delete().to(admin::revoke_token))
        .route("/tenants/{slug}/audit", web::get().to(admin::list_audit))
        .route("/tenants/{slug}/audit/verify", web::get().to(admin::verify_audit))
        .route("/tenants/{slug}/audit/export", web::get().to(admin::export_audit))
        .route("/plans", web::get().to(operator::list_plans))
        .route("/plans/{name}", web::put().to(operator::put_plan))
        .route("/tenants/{slug}/license", web::get().to(operator::get_license))
        .route("/tenants/{slug}/license", web::put().to(operator::put_license))
        .route("/tenants/{slug}/seats", web::get().to(operator::seat_usage))
        .route("/tenants/{slug}/endpoints", web::get().to(operator::list_endpoints))
        .route("/tenants/{slug}/endpoints", web::post().to(operator::add_endpoint))
        .route("/events/deliveries", web::get().to(operator::list_deliveries))
        .route(
            "/events/deliveries/{id}/retry",
            web::post().to(operator::retry_delivery),
        )
        .route("/events/dead-letters", web::get().to(operator::dead_letters))
        .route(
            "/events/dead-letters/retry",
            web::post().to(operator::retry_dead_letters),
        )
        .route(
            "/tenants/{slug}/seat-mappings",
            web::get().to(operator::list_seat_mappings),
        )
        .route(
            "/tenants/{slug}/seat-mappings/{group}",
            web::put().to(operator::put_seat_mapping),
        )
        .route(
            "/tenants/{slug}/seat-mappings/{group}",
            web::delete().to(operator::delete_seat_mapping),
        );
}

/// Checks `Authorization: Bearer <secret>` against a configured secret in constant time.
fn require_bearer(req: &HttpRequest, configured: Option<&str>, what: &str, env: &str) -> Result<(), ApiError> {
    let Some(expected) = configured.filter(|s| !s.is_empty()) else {
        return Err(ApiError::Unauthorized(format!(
            "the {what} API is disabled: set {env} to enable it"
        )));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(format!(
            "missing or wrong bearer token for the {what} API"
        )))
    }
}
