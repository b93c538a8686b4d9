//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations (utoipa),
//! so it cannot drift from the routes' parameters and bodies.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::Problem;

/// The errors every admin endpoint may answer, as RFC 9457 problem documents.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Describes responses for the document; handlers answer through ApiError.
pub enum Problems {
    #[response(
        status = 400,
        description = "Invalid input",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    #[response(
        status = 401,
        description = "Not authenticated",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    #[response(
        status = 403,
        description = "Not allowed: a role is missing, or a cookie request lacks X-CSRF-Token",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    #[response(
        status = 404,
        description = "Unknown, or a tenant the caller may not see",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    #[response(
        status = 429,
        description = "Over the caller's admin rate limit (SEATBRIDGE_ADMIN_RATE / SEATBRIDGE_ADMIN_BURST per \
                       principal; the product endpoints are not limited); retry after `Retry-After` seconds",
        content_type = "application/problem+json",
        headers(("Retry-After" = u32, description = "Seconds to wait"))
    )]
    TooManyRequests(Problem),
}

/// A write that lost a race or found no room: stale version, no free seat, already exists.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // As above.
pub enum Conflict {
    #[response(status = 409, description = "Conflict", content_type = "application/problem+json")]
    Conflict(Problem),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "seatbridge API",
        description = "Admin API (OIDC session cookie or access token; the static operator token for \
                       automation) and the product-facing entitlement API. Errors are RFC 9457 problem \
                       documents. Lists page with opaque cursors: pass `next_cursor` back as `cursor`."
    ),
    paths(
        crate::admin::me,
        super::admin::list_tenants,
        super::admin::create_tenant,
        super::admin::overview,
        super::admin::seat_history,
        super::admin::list_users,
        super::admin::deprovision_user,
        super::admin::reactivate_user,
        super::admin::list_tokens,
        super::admin::create_token,
        super::admin::revoke_token,
        super::admin::list_audit,
        super::admin::verify_audit,
        super::admin::export_audit,
        super::operator::list_plans,
        super::operator::put_plan,
        super::operator::get_license,
        super::operator::put_license,
        super::operator::seat_usage,
        super::operator::list_seat_mappings,
        super::operator::put_seat_mapping,
        super::operator::delete_seat_mapping,
        super::operator::list_deliveries,
        super::operator::dead_letters,
        super::operator::retry_delivery,
        super::operator::retry_dead_letters,
        super::operator::list_endpoints,
        super::operator::add_endpoint,
        super::product::check,
        super::product::tenant_token,
        super::product::user_token,
    ),
    components(schemas(super::Problem)),
    modifiers(&SecuritySchemes, &EndpointTokenRule)
)]
struct ApiDoc;

/// `EndpointBody`: a `scim` endpoint needs a `token` (`add_endpoint`), as
/// `allOf: [the fields, anyOf: [kind absent, null or webhook; token a string]]`, since the
/// derive has no `if`/`then`.
struct EndpointTokenRule;

impl Modify for EndpointTokenRule {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, SchemaType, Type};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(fields) = components.schemas.remove("EndpointBody") else {
            return;
        };
        let not_scim = ObjectBuilder::new().property(
            "kind",
            ObjectBuilder::new()
                .schema_type([Type::String, Type::Null].into_iter().collect::<SchemaType>())
                .enum_values(Some([serde_json::json!("webhook"), serde_json::Value::Null])),
        );
        let with_token = ObjectBuilder::new()
            .property("token", ObjectBuilder::new().schema_type(Type::String))
            .required("token");
        let rule = AnyOfBuilder::new()
            .item(not_scim)
            .item(with_token)
            .description(Some("A `scim` endpoint needs a `token`."));
        components.schemas.insert(
            "EndpointBody".into(),
            AllOfBuilder::new().item(fields).item(rule).into(),
        );
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token of the admin OpenID Provider (aud = SEATBRIDGE_OIDC_AUDIENCE), \
                         or SEATBRIDGE_OPERATOR_TOKEN",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::admin::session::SESSION_COOKIE,
                "The browser session from /admin/login; state changes also need the X-CSRF-Token header",
            ))),
        );
        components.add_security_scheme(
            "service",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("SEATBRIDGE_SERVICE_TOKEN"))
                    .build(),
            ),
        );
    }
}

/// GET /api/v1/openapi.json.
pub async fn document() -> HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default());
    HttpResponse::Ok().content_type("application/json").body(body.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_admin_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
        for path in [
            "/api/v1/tenants/{slug}/users",
            "/api/v1/tenants/{slug}/license",
            "/api/v1/me",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
        assert!(doc["components"]["securitySchemes"].get("session").is_some());
        for schema in ["Overview", "UserPage", "TokenItem", "Me", "PoolSnapshot", "Problem"] {
            assert!(
                doc["components"]["schemas"].get(schema).is_some(),
                "schema {schema} missing"
            );
        }
        let license_put = &doc["paths"]["/api/v1/tenants/{slug}/license"]["put"]["responses"];
        for status in ["200", "400", "401", "403", "404", "409"] {
            assert!(license_put.get(status).is_some(), "PUT license lacks {status}");
        }
        assert!(license_put["404"]["content"].get("application/problem+json").is_some());
    }

    /// The request bodies state what the handlers check, so a client (or a fuzzer) that keeps
    /// to the document is not refused.
    #[test]
    fn request_bodies_state_the_constraints_the_server_checks() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        let schemas = &doc["components"]["schemas"];
        let token_name = &schemas["TokenBody"]["properties"]["name"];
        assert_eq!(token_name["minLength"], 1);
        assert_eq!(token_name["maxLength"], 100);
        let plan = &schemas["PlanSpec"]["properties"];
        assert_eq!(plan["features"]["minItems"], 1);
        assert_eq!(plan["overage"]["minimum"], 1.0);
        assert_eq!(plan["seat_pools"]["additionalProperties"]["minimum"], 0);
        assert_eq!(schemas["TenantBody"]["properties"]["seats"]["minimum"], 0);
        let license = &schemas["LicenseBody"]["properties"];
        assert_eq!(license["expires_at"]["format"], "date-time");
        assert_eq!(license["status"]["pattern"], "^(active|suspended)$");
        let endpoint = &schemas["EndpointBody"]["allOf"];
        assert_eq!(endpoint[0]["properties"]["url"]["pattern"], "^https?://");
        assert_eq!(endpoint[1]["anyOf"][1]["required"][0], "token");
    }
}
