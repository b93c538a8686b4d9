//! The relying-party side of OpenID Connect, on the `openidconnect` crate: discovery (cached,
//! refreshed when a key id is unknown), the authorization-code flow with PKCE, `state` and
//! `nonce`, ID-token validation, RP-initiated logout, and validation of JWT access tokens
//! (`jsonwebtoken`, against the same JWKS) for API callers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdToken, IdTokenFields, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::session::PendingLogin;
use crate::config::OidcSettings;

/// Every claim of the ID token beyond the standard ones (roles, groups…).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
impl AdditionalClaims for ExtraClaims {}

type Fields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<Fields, CoreTokenType>;
type RpIdToken = IdToken<ExtraClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type RpClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a login or a bearer token was refused, or the provider could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the OpenID Provider could not be reached: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Refused(String),
}

/// Who the OpenID Provider says logged in (or whose access token this is).
#[derive(Debug, Clone)]
pub struct Identity {
    pub subject: String,
    /// Only when the provider did not say it is unverified (`email_verified: false`): database
    /// grants match on it, so an address a user could type in unchecked must not count.
    pub email: Option<String>,
    pub name: Option<String>,
    /// Values of the configured roles claim.
    pub roles: Vec<String>,
    /// The raw ID token (login only), kept for `id_token_hint` at logout.
    pub id_token: Option<String>,
}

struct Discovered {
    metadata: ProviderMetadataWithLogout,
    jwks: jsonwebtoken::jwk::JwkSet,
    fetched_at: Instant,
}

/// The OpenID Provider of the admin side.
pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    current: RwLock<Option<Arc<Discovered>>>,
    /// When a token with an unknown `kid` last made us re-read the keys: at most once per
    /// [`UNKNOWN_KEY_GAP`], so forged tokens cannot make us hammer the provider.
    last_unknown_key: std::sync::Mutex<Option<Instant>>,
}

const UNKNOWN_KEY_GAP: Duration = Duration::from_secs(10);
const METADATA_MAX_AGE: Duration = Duration::from_secs(3600);
const LEEWAY_SECS: u64 = 60;

impl Oidc {
    /// A relying party for `settings`; discovery happens on first use, so the server starts
    /// even while the provider is down.
    pub fn new(settings: OidcSettings) -> Result<Self, OidcError> {
        let http = reqwest::Client::builder()
            // No redirects: the crate's advice against SSRF through a hostile provider.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        Ok(Oidc {
            settings,
            http,
            current: RwLock::new(None),
            last_unknown_key: std::sync::Mutex::new(None),
        })
    }

    /// The settings this relying party runs with.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Discovery and keys, read at most once an hour unless a new key turns up.
    async fn discovered(&self) -> Result<Arc<Discovered>, OidcError> {
        // Bound first: a guard in the match scrutinee would live through `fetch` and deadlock.
        let cached = self.current.read().await.clone();
        match cached {
            Some(d) if d.fetched_at.elapsed() < METADATA_MAX_AGE => Ok(d),
            _ => self.fetch(METADATA_MAX_AGE).await,
        }
    }

    /// A token names a key we do not know: the provider may have rotated. Re-reads the keys,
    /// unless an unknown key did that less than [`UNKNOWN_KEY_GAP`] ago.
    async fn refresh_for_unknown_key(&self) -> Result<Arc<Discovered>, OidcError> {
        let allowed = self
            .last_unknown_key
            .lock()
            .map(|mut last| {
                let ok = last.is_none_or(|t| t.elapsed() >= UNKNOWN_KEY_GAP);
                if ok {
                    *last = Some(Instant::now());
                }
                ok
            })
            .unwrap_or(false);
        if allowed {
            self.fetch(Duration::ZERO).await
        } else {
            self.discovered().await
        }
    }

    /// Fetches discovery and the JWKS unless another task did within `fresh_enough`.
    async fn fetch(&self, fresh_enough: Duration) -> Result<Arc<Discovered>, OidcError> {
        let mut current = self.current.write().await;
        if let Some(d) = current.as_ref().filter(|d| d.fetched_at.elapsed() < fresh_enough) {
            return Ok(d.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Unreachable(format!("issuer URL: {e}")))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unreachable(error_chain(&e)))?;
        let jwks = serde_json::to_value(metadata.jwks())
            .and_then(serde_json::from_value)
            .map_err(|e| OidcError::Unreachable(format!("unreadable JWKS: {e}")))?;
        let fresh = Arc::new(Discovered {
            metadata,
            jwks,
            fetched_at: Instant::now(),
        });
        *current = Some(fresh.clone());
        tracing::info!(issuer = %self.settings.issuer, "OpenID Provider discovered");
        Ok(fresh)
    }

    fn client(&self, d: &Discovered, redirect_uri: &str) -> Result<RpClient, OidcError> {
        let redirect =
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| OidcError::Refused(format!("redirect URI: {e}")))?;
        Ok(RpClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Where to send the browser to log in, and what the callback must find again.
    pub async fn start_login(
        &self,
        redirect_uri: &str,
        return_to: String,
        expires_at: i64,
    ) -> Result<(openidconnect::url::Url, PendingLogin), OidcError> {
        let d = self.discovered().await?;
        let client = self.client(&d, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok((
            url,
            PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to,
                expires_at,
            },
        ))
    }

    /// Exchanges the code and validates the ID token: signature against the provider's keys,
    /// issuer, audience, expiry and our nonce.
    pub async fn finish_login(
        &self,
        redirect_uri: &str,
        code: String,
        pending: &PendingLogin,
    ) -> Result<Identity, OidcError> {
        let d = self.discovered().await?;
        let client = self.client(&d, redirect_uri)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Unreachable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Refused(format!("the code exchange failed: {}", error_chain(&e))))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::Refused("the provider returned no ID token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let raw = id_token.to_string();
        let identity = match self.identity_from(&client, id_token, &nonce, &raw) {
            // A key we have not seen yet: the provider may have rotated; look again once.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.refresh_for_unknown_key().await?;
                self.identity_from(&self.client(&fresh, redirect_uri)?, id_token, &nonce, &raw)
            }
            other => other,
        };
        identity.map_err(|e| OidcError::Refused(format!("the ID token was refused: {e}")))
    }

    fn identity_from(
        &self,
        client: &RpClient,
        id_token: &RpIdToken,
        nonce: &Nonce,
        raw: &str,
    ) -> Result<Identity, openidconnect::ClaimsVerificationError> {
        let claims = id_token.claims(&client.id_token_verifier(), nonce)?;
        Ok(Identity {
            subject: claims.subject().to_string(),
            email: claims
                .email()
                .filter(|_| claims.email_verified() != Some(false))
                .map(|e| e.to_string()),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            roles: roles_in(&claims.additional_claims().rest, &self.settings.roles_claim),
            id_token: Some(raw.to_string()),
        })
    }

    /// Validates a JWT access token: signature (RS/PS/ES/EdDSA per its key), issuer,
    /// audience, expiry and not-before, with a minute of clock leeway.
    pub async fn verify_access_token(&self, token: &str) -> Result<Identity, OidcError> {
        let refused = |m: String| OidcError::Refused(format!("the access token was refused: {m}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| refused(e.to_string()))?;
        let kid = header
            .kid
            .clone()
            .ok_or_else(|| refused("it names no key (kid)".into()))?;
        let mut d = self.discovered().await?;
        if d.jwks.find(&kid).is_none() {
            d = self.refresh_for_unknown_key().await?;
        }
        let jwk = d
            .jwks
            .find(&kid)
            .ok_or_else(|| refused(format!("key '{kid}' is not in the provider's JWKS")))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| refused(e.to_string()))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[&self.settings.audience]);
        validation.set_issuer(&[d.metadata.issuer().as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| refused(e.to_string()))?;
        let claims = data.claims;
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Identity {
            subject: text("sub").unwrap_or_default(),
            email: text("email").filter(|_| claims.get("email_verified") != Some(&Value::Bool(false))),
            name: text("name"),
            roles: roles_in(&claims, &self.settings.roles_claim),
            id_token: None,
        })
    }

    /// The provider's end-session URL for RP-initiated logout, when it has one.
    pub async fn logout_url(&self, id_token: &str, post_logout_redirect: &str) -> Option<openidconnect::url::Url> {
        let d = self.discovered().await.ok()?;
        let endpoint = d.metadata.additional_metadata().end_session_endpoint.clone()?;
        let mut request = LogoutRequest::from(endpoint).set_client_id(ClientId::new(self.settings.client_id.clone()));
        if let Ok(hint) = id_token.parse::<RpIdToken>() {
            request = request.set_id_token_hint(&hint);
        }
        if let Ok(url) = PostLogoutRedirectUrl::new(post_logout_redirect.to_string()) {
            request = request.set_post_logout_redirect_uri(url);
        }
        Some(request.http_get_url())
    }
}

/// The values of a roles claim: an array of strings, or one space-separated string.
pub fn roles_in(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    match claims.get(claim) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_come_from_arrays_or_space_separated_strings() {
        let claims = json!({"roles": ["a", "b", 3], "groups": "x y"});
        let Value::Object(map) = claims else { unreachable!() };
        assert_eq!(roles_in(&map, "roles"), vec!["a", "b"]);
        assert_eq!(roles_in(&map, "groups"), vec!["x", "y"]);
        assert!(roles_in(&map, "missing").is_empty());
    }
}
