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
///
/// Each path is one resource listing its methods, so a known path with another method is
/// answered 405 with `Allow` (RFC 9110 §15.5.6) rather than 404.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, post, put};
    cfg.service(path("/entitlements/check", "GET").route(get().to(product::check)))
        .service(path("/entitlements/token", "GET").route(get().to(product::user_token)))
        .service(path("/licenses/token", "GET").route(get().to(product::tenant_token)))
        .service(path("/openapi.json", "GET").route(get().to(openapi::document)))
        .service(path("/me", "GET").route(get().to(crate::admin::me)))
        .service(
            path("/tenants", "GET, POST")
                .route(get().to(admin::list_tenants))
                .route(post().to(admin::create_tenant)),
        )
        .service(path("/tenants/{slug}", "GET").route(get().to(admin::overview)))
        .service(path("/tenants/{slug}/seats/history", "GET").route(get().to(admin::seat_history)))
        .service(path("/tenants/{slug}/users", "GET").route(get().to(admin::list_users)))
        .service(path("/tenants/{slug}/users/{id}/deprovision", "POST").route(post().to(admin::deprovision_user)))
        .service(path("/tenants/{slug}/users/{id}/reactivate", "POST").route(post().to(admin::reactivate_user)))
        .service(
            path("/tenants/{slug}/tokens", "GET, POST")
                .route(get().to(admin::list_tokens))
                .route(post().to(admin::create_token)),
        )
        .service(path("/tenants/{slug}/tokens/{id}", "DELETE").route(delete().to(admin::revoke_token)))
        .service(path("/tenants/{slug}/audit", "GET").route(get().to(admin::list_audit)))
        .service(path("/tenants/{slug}/audit/verify", "GET").route(get().to(admin::verify_audit)))
        .service(path("/tenants/{slug}/audit/export", "GET").route(get().to(admin::export_audit)))
        .service(path("/plans", "GET").route(get().to(operator::list_plans)))
        .service(path("/plans/{name}", "PUT").route(put().to(operator::put_plan)))
        .service(
            path("/tenants/{slug}/license", "GET, PUT")
                .route(get().to(operator::get_license))
                .route(put().to(operator::put_license)),
        )
        .service(path("/tenants/{slug}/seats", "GET").route(get().to(operator::seat_usage)))
        .service(
            path("/tenants/{slug}/endpoints", "GET, POST")
                .route(get().to(operator::list_endpoints))
                .route(post().to(operator::add_endpoint)),
        )
        .service(path("/events/deliveries", "GET").route(get().to(operator::list_deliveries)))
        .service(path("/events/deliveries/{id}/retry", "POST").route(post().to(operator::retry_delivery)))
        .service(path("/events/dead-letters", "GET").route(get().to(operator::dead_letters)))
        .service(path("/events/dead-letters/retry", "POST").route(post().to(operator::retry_dead_letters)))
        .service(path("/tenants/{slug}/seat-mappings", "GET").route(get().to(operator::list_seat_mappings)))
        .service(
            path("/tenants/{slug}/seat-mappings/{group}", "PUT, DELETE")
                .route(put().to(operator::put_seat_mapping))
                .route(delete().to(operator::delete_seat_mapping)),
        );
}

/// A resource whose other methods get a 405 problem naming `allow`.
fn path(pattern: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(pattern).default_service(web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
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
