//! The admin side: OpenID Connect login for browsers, the session cookie, JWT bearers for
//! API callers, roles, and the embedded web UI at `/admin/`.
//!
//! The admin REST API itself lives in [`crate::api`]; its handlers take a [`Principal`].

pub mod oidc;
pub mod principal;
pub mod session;
mod ui;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::api::openapi::Problems;
use crate::api::ApiError;
use crate::app::{public_base, AppState};
use crate::config::Config;
pub use oidc::{Oidc, OidcError};
pub use principal::Principal;
use session::{PendingLogin, Sealer, Session, LOGIN_COOKIE, SESSION_COOKIE};

/// How long a login may take between leaving for the provider and coming back.
const LOGIN_TTL_SECS: i64 = 600;

/// The admin side's shared state.
pub struct Admin {
    /// `None` when no OpenID Provider is configured.
    pub oidc: Option<Oidc>,
    pub sealer: Sealer,
    session_ttl_secs: i64,
}

impl Admin {
    /// Builds the admin side from the configuration.
    pub fn new(config: &Config) -> Result<Self, OidcError> {
        if config.session_secret.is_none() && config.oidc.is_some() {
            tracing::warn!(
                "SEATBRIDGE_SESSION_KEY is unset: admin sessions end when this process restarts \
                 and are not shared with other instances"
            );
        }
        let secure = config.public_url.as_deref().is_some_and(|u| u.starts_with("https://"));
        Ok(Admin {
            oidc: config.oidc.clone().map(Oidc::new).transpose()?,
            sealer: Sealer::new(config.session_secret.as_deref(), secure),
            session_ttl_secs: i64::try_from(config.session_ttl.as_secs()).unwrap_or(i64::MAX),
        })
    }
}

/// Maps an OIDC failure to the API's error: a refused token is 401, an unreachable
/// provider 503.
pub fn refused(e: OidcError) -> ApiError {
    match e {
        OidcError::Refused(m) => ApiError::Unauthorized(m),
        OidcError::Unreachable(m) => {
            tracing::warn!(error = %m, "OpenID Provider unreachable");
            ApiError::Unavailable
        }
    }
}

/// Mounts `/admin/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login))
        .route("/callback", web::get().to(callback))
        .route("/logout", web::post().to(logout))
        .configure(ui::configure);
}

fn redirect_uri(req: &HttpRequest, state: &AppState) -> String {
    format!("{}/admin/callback", public_base(req, state))
}

/// Only paths inside the admin UI may be returned to, so the login cannot be used as an
/// open redirect.
fn safe_return_to(r: Option<&str>) -> String {
    match r {
        Some(p) if p.starts_with("/admin") && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/admin/".to_string(),
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn oidc(state: &AppState) -> Result<&Oidc, ApiError> {
    state.admin.oidc.as_ref().ok_or_else(|| {
        ApiError::NotConfigured(
            "browser login is not configured: set SEATBRIDGE_OIDC_ISSUER, SEATBRIDGE_OIDC_CLIENT_ID and \
             SEATBRIDGE_OIDC_CLIENT_SECRET"
                .into(),
        )
    })
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

/// GET /admin/login: off to the OpenID Provider.
async fn login(req: HttpRequest, state: web::Data<AppState>, q: web::Query<LoginQuery>) -> HttpResponse {
    let result = async {
        principal::check_login_rate(&req, &state)?;
        let oidc = oidc(&state)?;
        let expires = chrono::Utc::now().timestamp() + LOGIN_TTL_SECS;
        let (url, pending) = oidc
            .start_login(
                &redirect_uri(&req, &state),
                safe_return_to(q.return_to.as_deref()),
                expires,
            )
            .await
            .map_err(refused)?;
        Ok::<_, ApiError>(
            HttpResponse::Found()
                .insert_header((header::LOCATION, url.to_string()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .cookie(state.admin.sealer.seal(LOGIN_COOKIE, &pending, LOGIN_TTL_SECS))
                .finish(),
        )
    }
    .await;
    result.unwrap_or_else(|e| ui::error_page(&e))
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// GET /admin/callback: the provider sends the browser back here with a code.
async fn callback(req: HttpRequest, state: web::Data<AppState>, q: web::Query<CallbackQuery>) -> HttpResponse {
    // Refused before the login cookie is read, so the pending login survives for a retry.
    if let Err(e) = principal::check_login_rate(&req, &state) {
        return ui::error_page(&e);
    }
    let result = finish_login(&req, &state, q.into_inner()).await;
    match result {
        Ok((session, return_to)) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, return_to))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .cookie(
                state
                    .admin
                    .sealer
                    .seal(SESSION_COOKIE, &session, state.admin.session_ttl_secs),
            )
            .cookie(state.admin.sealer.clear(LOGIN_COOKIE))
            .finish(),
        Err(e) => {
            tracing::warn!(error = %e, "admin login refused");
            let mut page = ui::error_page(&e);
            let _ = page.add_cookie(&state.admin.sealer.clear(LOGIN_COOKIE));
            page
        }
    }
}

async fn finish_login(req: &HttpRequest, state: &AppState, q: CallbackQuery) -> Result<(Session, String), ApiError> {
    let oidc = oidc(state)?;
    let pending: PendingLogin = state
        .admin
        .sealer
        .open(req, LOGIN_COOKIE)
        .filter(|p: &PendingLogin| p.expires_at > chrono::Utc::now().timestamp())
        .ok_or_else(|| ApiError::BadRequest("this login has expired or was started elsewhere; log in again".into()))?;
    if let Some(error) = q.error {
        return Err(ApiError::Unauthorized(format!(
            "the identity provider refused the login: {error}{}",
            q.error_description.map(|d| format!(" ({d})")).unwrap_or_default()
        )));
    }
    let sent_state = q.state.unwrap_or_default();
    if !bool::from(sent_state.as_bytes().ct_eq(pending.state.as_bytes())) {
        return Err(ApiError::BadRequest(
            "the login state does not match (a forged or replayed callback); log in again".into(),
        ));
    }
    let code = q
        .code
        .ok_or_else(|| ApiError::BadRequest("the callback carries no code".into()))?;
    let identity = oidc
        .finish_login(&redirect_uri(req, state), code, &pending)
        .await
        .map_err(refused)?;
    tracing::info!(subject = %identity.subject, "admin logged in");
    let session = Session {
        subject: identity.subject,
        email: identity.email,
        name: identity.name,
        roles: identity.roles,
        csrf: random_token(),
        expires_at: chrono::Utc::now().timestamp() + state.admin.session_ttl_secs,
        id_token: identity.id_token.unwrap_or_default(),
    };
    Ok((session, pending.return_to))
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf: String,
}

/// POST /admin/logout: ends the session here, then at the provider (RP-initiated logout).
async fn logout(req: HttpRequest, state: web::Data<AppState>, form: web::Form<LogoutForm>) -> HttpResponse {
    let Some(session) = state.admin.sealer.open::<Session>(&req, SESSION_COOKIE) else {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/admin/"))
            .finish();
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
        return ui::error_page(&ApiError::Forbidden(
            "the logout form is stale; reload and try again".into(),
        ));
    }
    let back = format!("{}/admin/", public_base(&req, &state));
    let target = match &state.admin.oidc {
        Some(o) => o.logout_url(&session.id_token, &back).await.map(|u| u.to_string()),
        None => None,
    };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target.unwrap_or_else(|| "/admin/".into())))
        .cookie(state.admin.sealer.clear(SESSION_COOKIE))
        .finish()
}

/// GET /api/v1/me: who is logged in, their roles, and the CSRF token for state changes.
#[utoipa::path(get, path = "/api/v1/me", tag = "session", responses((status = 200, description = "OK", body = Me), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn me(req: HttpRequest, state: web::Data<AppState>, p: Principal) -> HttpResponse {
    let session: Option<Session> = state.admin.sealer.open(&req, SESSION_COOKIE);
    let body = Me {
        subject: p.subject,
        name: p.name,
        email: p.email,
        operator: p.operator,
        tenants: p.tenants.into_iter().collect(),
        via: format!("{:?}", p.via).to_lowercase(),
        csrf_token: session.as_ref().map(|s| s.csrf.clone()),
        expires_at: session.and_then(|s| chrono::DateTime::from_timestamp(s.expires_at, 0)),
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// The caller, as `GET /api/v1/me` describes them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Me {
    subject: String,
    name: Option<String>,
    email: Option<String>,
    operator: bool,
    /// The tenants a tenant admin may see (operators see all).
    tenants: Vec<String>,
    /// `session`, `bearer` or `operatortoken`.
    via: String,
    /// Echo in `X-CSRF-Token` on state-changing requests made with the session cookie.
    csrf_token: Option<String>,
    /// When the session ends.
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn return_to_stays_inside_the_admin_ui() {
        assert_eq!(safe_return_to(Some("/admin/#/t/acme")), "/admin/#/t/acme");
        assert_eq!(safe_return_to(Some("https://evil.example/")), "/admin/");
        assert_eq!(safe_return_to(Some("//evil.example/admin")), "/admin/");
        assert_eq!(safe_return_to(Some("/admin\\@evil")), "/admin/");
        assert_eq!(safe_return_to(None), "/admin/");
    }

    #[test]
    fn refusals_are_401_and_an_unreachable_provider_is_503() {
        assert_eq!(refused(OidcError::Refused("x".into())).status_code().as_u16(), 401);
        assert_eq!(refused(OidcError::Unreachable("x".into())).status_code().as_u16(), 503);
    }
}
