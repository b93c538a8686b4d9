//! Who is calling the admin API, and what they may touch.
//!
//! A principal comes from, in order: the static operator token (automation), an OIDC access
//! token (`Authorization: Bearer <JWT>`), or the session cookie of a browser login. Roles are
//! the union of the configured ID-token claim and grants in the database, so revoking a
//! database grant takes effect on the next request.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use subtle::ConstantTimeEq;

use super::oidc::Identity;
use super::session::{Session, SESSION_COOKIE};
use crate::api::ApiError;
use crate::app::AppState;
use crate::config::OidcSettings;
use crate::store::admin as grants;

/// The header a browser session must echo on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The static `SEATBRIDGE_OPERATOR_TOKEN`.
    OperatorToken,
    /// An OIDC access token.
    Bearer,
    /// The browser session cookie.
    Session,
}

/// An authenticated admin-API caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub operator: bool,
    /// Slugs of the tenants this principal administers (operators see all).
    pub tenants: BTreeSet<String>,
    pub via: Via,
}

/// What the roles claim says, before database grants are added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClaimRoles {
    pub operator: bool,
    pub tenants: BTreeSet<String>,
}

/// Reads `operator` and `tenant_admin` roles out of claim values.
pub fn claim_roles(settings: &OidcSettings, values: &[String]) -> ClaimRoles {
    let mut roles = ClaimRoles::default();
    for v in values {
        if *v == settings.operator_role {
            roles.operator = true;
        } else if let Some(slug) = v.strip_prefix(&settings.tenant_admin_prefix) {
            if !slug.is_empty() {
                roles.tenants.insert(slug.to_string());
            }
        }
    }
    roles
}

impl Principal {
    /// The name recorded as the actor in the audit log.
    pub fn actor(&self) -> String {
        match self.via {
            Via::OperatorToken => "operator".into(),
            _ => format!("admin:{}", self.email.as_deref().unwrap_or(&self.subject)),
        }
    }

    /// The key of this principal's admin request budget: the token's subject, shared by its
    /// sessions and bearer tokens (one key for the static operator token).
    pub fn rate_key(&self) -> String {
        match self.via {
            Via::OperatorToken => "operator-token".into(),
            Via::Bearer | Via::Session => format!("sub:{}", self.subject),
        }
    }

    /// Refuses unless the principal is an operator.
    pub fn require_operator(&self, what: &str) -> Result<(), ApiError> {
        if self.operator {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("{what} needs the operator role")))
        }
    }

    /// Refuses a tenant the principal does not administer with the same 404 an unknown slug
    /// gets, so a tenant admin learns nothing about other tenants.
    pub fn require_tenant(&self, slug: &str) -> Result<(), ApiError> {
        if self.operator || self.tenants.contains(slug) {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!("no tenant '{slug}'")))
        }
    }

    /// Tenant-wide views (`?tenant=slug`) for that tenant's admins; everything else for
    /// operators only.
    pub fn require_operator_or_tenant(&self, slug: Option<&str>) -> Result<(), ApiError> {
        match slug {
            Some(s) => self.require_tenant(s),
            None => self.require_operator("a view across all tenants"),
        }
    }

    async fn from_identity(state: &AppState, identity: Identity, via: Via) -> Result<Principal, ApiError> {
        let settings = state
            .admin
            .oidc
            .as_ref()
            .map(|o| o.settings().clone())
            .ok_or_else(|| ApiError::Unauthorized("OpenID Connect is not configured".into()))?;
        let mut roles = claim_roles(&settings, &identity.roles);
        let keys: Vec<String> = std::iter::once(identity.subject.to_lowercase())
            .chain(identity.email.iter().map(|e| e.to_lowercase()))
            .collect();
        let granted = grants::roles_of(&state.db, &keys).await?;
        roles.operator |= granted.operator;
        roles.tenants.extend(granted.tenants);
        Ok(Principal {
            subject: identity.subject,
            email: identity.email,
            name: identity.name,
            operator: roles.operator,
            tenants: roles.tenants,
            via,
        })
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or(ApiError::Internal)?;
    if let Some(token) = bearer(&req) {
        if let Some(expected) = state.config.operator_token.as_deref().filter(|t| !t.is_empty()) {
            if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) {
                return Ok(Principal {
                    subject: "operator-token".into(),
                    email: None,
                    name: None,
                    operator: true,
                    tenants: BTreeSet::new(),
                    via: Via::OperatorToken,
                });
            }
        }
        let oidc = state.admin.oidc.as_ref().ok_or_else(|| {
            ApiError::Unauthorized(
                "wrong bearer token (JWT bearers need SEATBRIDGE_OIDC_ISSUER; operators may use SEATBRIDGE_OPERATOR_TOKEN)"
                    .into(),
            )
        })?;
        let identity = oidc.verify_access_token(token).await.map_err(super::refused)?;
        return Principal::from_identity(&state, identity, Via::Bearer).await;
    }
    let session: Session = state
        .admin
        .sealer
        .open(&req, SESSION_COOKIE)
        .filter(|s: &Session| s.expires_at > chrono::Utc::now().timestamp())
        .ok_or_else(|| ApiError::Unauthorized("log in at /admin/login, or send a bearer token".into()))?;
    if !is_safe(req.method()) {
        let sent = req.headers().get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
            return Err(ApiError::Forbidden(
                "missing or wrong X-CSRF-Token header (take it from GET /api/v1/me)".into(),
            ));
        }
    }
    let identity = Identity {
        subject: session.subject,
        email: session.email,
        name: session.name,
        roles: session.roles,
        id_token: None,
    };
    Principal::from_identity(&state, identity, Via::Session).await
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        if let Some(p) = req.extensions().get::<Principal>() {
            let p = p.clone();
            return Box::pin(async move { Ok(p) });
        }
        let req = req.clone();
        Box::pin(async move {
            let principal = authenticate(req.clone()).await?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or(ApiError::Internal)?;
            if let Some(limiter) = &state.admin_limiter {
                limiter.check(&principal.rate_key()).map_err(|over| {
                    metrics::counter!(crate::metrics::ADMIN_RATE_LIMITED, "scope" => "api").increment(1);
                    ApiError::TooManyRequests(format!("{} sent {over}", principal.actor()))
                })?;
            }
            // Charged once per request, however many extractors ask.
            req.extensions_mut().insert(principal.clone());
            Ok(principal)
        })
    }
}

/// Refuses a client IP over its login budget (`/admin/login`, `/admin/callback`). These are
/// unauthenticated, so the peer address is the only key; seatbridge has no trusted-proxy
/// setting, so `X-Forwarded-For` is ignored (behind a proxy, all logins share its budget).
pub fn check_login_rate(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let (Some(limiter), Some(peer)) = (&state.admin_limiter, req.peer_addr()) else {
        return Ok(());
    };
    limiter.check(&format!("ip:{}", peer.ip())).map_err(|over| {
        metrics::counter!(crate::metrics::ADMIN_RATE_LIMITED, "scope" => "login").increment(1);
        ApiError::TooManyRequests(format!("this address sent {over}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_values_map_to_roles() {
        let s = OidcSettings::new("http://op", "c");
        let values = vec![
            "seatbridge-tenant-admin:acme".to_string(),
            "seatbridge-tenant-admin:".to_string(),
            "unrelated".to_string(),
        ];
        let roles = claim_roles(&s, &values);
        assert!(!roles.operator);
        assert_eq!(roles.tenants.into_iter().collect::<Vec<_>>(), vec!["acme"]);
        assert!(claim_roles(&s, &["seatbridge-operator".to_string()]).operator);
    }

    #[test]
    fn tenant_admins_get_404_for_other_tenants_and_403_for_operator_work() {
        let p = Principal {
            subject: "s".into(),
            email: Some("a@x".into()),
            name: None,
            operator: false,
            tenants: ["acme".to_string()].into(),
            via: Via::Session,
        };
        assert!(p.require_tenant("acme").is_ok());
        assert!(matches!(p.require_tenant("globex"), Err(ApiError::NotFound(_))));
        assert!(matches!(p.require_operator("x"), Err(ApiError::Forbidden(_))));
        assert_eq!(p.actor(), "admin:a@x");
    }
}
