//! SCIM bearer-token authentication. A token identifies exactly one tenant; only its SHA-256
//! hash is stored, and the stored hash is compared in constant time.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::audit;
use crate::entitlements::TokenView;
use crate::scim::client::Idp;
use crate::scim::error::ScimError;
use crate::store::entities::scim_token;
use crate::store::{self, tenants, StoreError};

/// Prefix that makes seatbridge tokens recognisable to secret scanners.
pub const TOKEN_PREFIX: &str = "sbt_";

/// The tenant a SCIM request acts for, resolved once from its bearer token.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub token_id: String,
}

/// A new random token: `sbt_` + 64 hex characters (256 bits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    // Into a buffer: `hex::encode` collects the digits one `char` at a time, on every request.
    let mut digits = [0u8; 64];
    let _ = hex::encode_to_slice(Sha256::digest(token.as_bytes()), &mut digits);
    String::from_utf8_lossy(&digits).into_owned()
}

fn bearer_token(req: &HttpRequest) -> Result<&str, ScimError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ScimError::Unauthorized("missing Authorization header; send 'Authorization: Bearer <token>'".into())
        })?;
    let value = header
        .to_str()
        .map_err(|_| ScimError::Unauthorized("malformed Authorization header".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ScimError::Unauthorized("Authorization must be 'Bearer <token>'".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ScimError::Unauthorized("Authorization must be 'Bearer <token>'".into()));
    }
    Ok(token.trim())
}

/// Resolves a bearer token to its tenant: from the cache when the token was seen within the
/// entitlement TTL (revoking invalidates it in this process at once, and in others through
/// NOTIFY on PostgreSQL), else from the database.
async fn authenticate(state: web::Data<AppState>, token: String, client: Client) -> Result<Tenant, ScimError> {
    let hash = hash_token(&token);
    let cache = &state.signals.entitlements;
    let view = match cache.token(&hash) {
        Some(view) => view,
        None => {
            let view = lookup_token(&state, &hash).await?;
            cache.remember_token(&hash, view.clone());
            view
        }
    };
    state.token_usage.record(&state.db, &view.token_id, client).await;
    Ok(Tenant {
        id: view.tenant_id,
        slug: view.slug,
        token_id: view.token_id,
    })
}

async fn lookup_token(state: &AppState, hash: &str) -> Result<TokenView, ScimError> {
    let row = tenants::find_token_by_hash(&state.db, hash).await.map_err(|e| {
        tracing::error!(error = %e, "token lookup failed");
        ScimError::Internal
    })?;
    let invalid = || ScimError::Unauthorized("invalid or revoked token".into());
    let row = row.ok_or_else(invalid)?;
    // The lookup used an index; this comparison keeps the final check free of timing leaks.
    if !bool::from(row.token_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(invalid());
    }
    let tenant = tenants::find(&state.db, &row.tenant_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "tenant lookup failed");
            ScimError::Internal
        })?
        .ok_or_else(invalid)?;
    Ok(TokenView {
        token_id: row.id,
        tenant_id: tenant.id,
        slug: tenant.slug,
    })
}

impl FromRequest for Tenant {
    type Error = ScimError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        if let Some(t) = req.extensions().get::<Tenant>() {
            let t = t.clone();
            return Box::pin(async move { Ok(t) });
        }
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or(ScimError::Internal)?;
            let token = bearer_token(&req)?.to_string();
            let tenant = authenticate(state.clone(), token, Client::of(&req)).await?;
            if let Some(limiter) = &state.scim_limiter {
                limiter.check(&tenant.token_id).map_err(|over| {
                    metrics::counter!(crate::metrics::RATE_LIMITED).increment(1);
                    ScimError::TooManyRequests(format!("this token sent {over}"))
                })?;
            }
            tracing::Span::current().record("tenant", tenant.slug.as_str());
            req.extensions_mut().insert(tenant.clone());
            Ok(tenant)
        })
    }
}

/// The SCIM client behind a request: its `User-Agent` and the IdP detected from it.
#[derive(Debug, Clone)]
pub struct Client {
    pub user_agent: Option<String>,
    pub idp: Idp,
}

impl Client {
    /// Reads the client off a request.
    pub fn of(req: &HttpRequest) -> Client {
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect::<String>());
        let idp = Idp::detect(user_agent.as_deref(), req.query_string());
        Client { user_agent, idp }
    }
}

/// Records `last_used_at` (and the client) at most once a minute per token, so
/// authentication does not turn every read into a database write.
#[derive(Debug, Default)]
pub struct TokenUsage {
    last: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl TokenUsage {
    async fn record(&self, db: &sea_orm::DatabaseConnection, token_id: &str, client: Client) {
        let due = {
            let Ok(mut last) = self.last.lock() else { return };
            let now = std::time::Instant::now();
            match last.get(token_id) {
                Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(60) => false,
                _ => {
                    last.insert(token_id.to_string(), now);
                    true
                }
            }
        };
        if due {
            if let Err(e) = tenants::touch_token(db, token_id, client.user_agent.as_deref(), client.idp.as_str()).await
            {
                tracing::warn!(error = %e, "could not record token use");
            }
        }
    }
}

/// Issues a SCIM token for a tenant and records it in the audit log. The secret is returned
/// here and never again: only its hash is stored.
pub async fn issue_token(
    db: &sea_orm::DatabaseConnection,
    tenant_id: &str,
    name: &str,
    actor: &str,
    request_id: Option<&str>,
) -> Result<(scim_token::Model, String), StoreError> {
    let secret = generate_token();
    let tx = store::begin_write(db).await?;
    tenants::lock_tenant(&tx, tenant_id).await?;
    let row = tenants::insert_token(&tx, tenant_id, name, &hash_token(&secret)).await?;
    let event = audit::Event {
        actor,
        action: "token.create",
        target: &format!("Token/{}", row.id),
        before: None,
        after: Some(serde_json::json!({"id": row.id, "name": row.name})),
        request_id,
    };
    audit::append(&tx, tenant_id, event).await?;
    tx.commit().await?;
    Ok((row, secret))
}

/// Revokes a token (only one of `tenant_id`, when given) and records it in the audit log.
/// Returns the token's tenant, or `None` when no active token has that id.
pub async fn revoke_token(
    db: &sea_orm::DatabaseConnection,
    id: &str,
    tenant_id: Option<&str>,
    actor: &str,
    request_id: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let tx = store::begin_write(db).await?;
    let Some(owner) = tenants::revoke_token(&tx, id, tenant_id).await? else {
        return Ok(None);
    };
    let event = audit::Event {
        actor,
        action: "token.revoke",
        target: &format!("Token/{id}"),
        before: None,
        after: None,
        request_id,
    };
    audit::append(&tx, &owner, event).await?;
    // Other instances drop the cached token when this commits (PostgreSQL).
    crate::entitlements::notify_change(&tx, &owner).await?;
    tx.commit().await?;
    Ok(Some(owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), a);
    }
}
