//! Typed configuration. Defaults → `SEATBRIDGE_*`/`DATABASE_URL` environment → CLI flags
//! (clap resolves env and flags; see `cli.rs`). Secrets are never logged: `Debug` redacts
//! the database URL's password.

use std::time::Duration;

use crate::store::DbSettings;

/// Default SQLite database in the working directory.
/// Default longest run of one PostgreSQL statement, in seconds: far above any request's normal
/// cost (a list page over a million users takes milliseconds), well below an IdP's patience.
pub const DEFAULT_DB_STATEMENT_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_DATABASE_URL: &str = "sqlite://seatbridge.db?mode=rwc";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// SQLite page cache per pooled connection, in KiB: at 100,000 users this halved RSS under
/// load (99 → 52 MiB) against SQLite's default of 2,000 KiB, with no loss of throughput.
pub const DEFAULT_SQLITE_CACHE_KIB: u32 = 256;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Limits and behaviour of the SCIM endpoints (advertised truthfully in ServiceProviderConfig).
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// Largest page a list may return (`filter.maxResults`); larger `count`s are capped.
    pub max_results: u64,
    /// Page size when the client gives no `count`.
    pub default_count: u64,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// `bulk.maxOperations`.
    pub bulk_max_operations: usize,
    /// `bulk.maxPayloadSize`, in bytes.
    pub bulk_max_payload_bytes: usize,
    /// PATCH answers 200 with the resource (true, what Okta and Entra expect) or 204 (false).
    pub patch_returns_resource: bool,
}

impl Default for ScimSettings {
    fn default() -> Self {
        ScimSettings {
            max_results: 1000,
            default_count: 100,
            max_body_bytes: 1024 * 1024,
            bulk_max_operations: 1000,
            bulk_max_payload_bytes: 1024 * 1024,
            patch_returns_resource: true,
        }
    }
}

/// OpenID Connect settings of the admin side. Without them only the static operator token
/// reaches the admin API, and `/admin/login` explains what to configure.
#[derive(Clone)]
pub struct OidcSettings {
    /// The OpenID Provider's issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// The `aud` an access token must carry to be accepted as a bearer (default: the client id).
    pub audience: String,
    /// Scopes asked for at login (`openid` is always included).
    pub scopes: Vec<String>,
    /// The claim holding roles or groups (`roles`, `groups`…): a string array or a
    /// space-separated string.
    pub roles_claim: String,
    /// The claim value that makes a user an operator.
    pub operator_role: String,
    /// Claim values `<prefix><tenant slug>` make a user an admin of that tenant.
    pub tenant_admin_prefix: String,
}

impl OidcSettings {
    /// Settings for `issuer` and `client_id` with every default filled in.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        let client_id = client_id.into();
        OidcSettings {
            issuer: issuer.into(),
            audience: client_id.clone(),
            client_id,
            client_secret: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            roles_claim: "roles".into(),
            operator_role: "seatbridge-operator".into(),
            tenant_admin_prefix: "seatbridge-tenant-admin:".into(),
        }
    }
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .field("roles_claim", &self.roles_claim)
            .field("operator_role", &self.operator_role)
            .field("tenant_admin_prefix", &self.tenant_admin_prefix)
            .finish()
    }
}

/// A request budget per key (a SCIM token, an admin principal, a client IP): a token bucket
/// refilled at `per_second`, holding up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Everything the server needs to run.
#[derive(Clone)]
pub struct Config {
    pub listen: String,
    pub database_url: String,
    /// Public base URL (e.g. `https://scim.example.com`) used in `meta.location`; when unset,
    /// the request's scheme and host are used.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// Pool size; `None`: [`crate::store::default_pool_size`] for the database.
    pub db_max_connections: Option<u32>,
    pub db_busy_timeout: Duration,
    /// PostgreSQL only: the longest one statement may run (see [`DbSettings::statement_timeout`]).
    pub db_statement_timeout: Duration,
    /// SQLite page cache per connection, pooled and point-read, in KiB
    /// (see [`DbSettings::sqlite_cache_kib`]).
    pub sqlite_cache_kib: u32,
    /// Static bearer token of the operator API (until OIDC guards it); `None` disables it.
    pub operator_token: Option<String>,
    /// Bearer token product services use for `/api/v1/entitlements/check`; `None` disables it.
    pub service_token: Option<String>,
    /// How long an entitlement cache entry may be served before it is re-read.
    pub entitlement_ttl: Duration,
    /// Users the entitlement check indexes in memory, over all tenants (0: none).
    pub check_index_users: usize,
    /// Directory of the license-signing key file (`license-keys.json`, mode 0600).
    pub key_dir: std::path::PathBuf,
    /// A signing key given directly (base64url Ed25519 secret); overrides `key_dir`.
    pub signing_key: Option<String>,
    /// How often the license sweeper looks for expired licenses.
    pub sweep_interval: Duration,
    /// Outbound delivery: attempts, backoff, timeouts.
    pub relay: crate::events::relay::RelaySettings,
    /// Secrets of the Standard Webhooks billing endpoint (several while rotating).
    pub billing_webhook_secrets: Vec<String>,
    /// Secrets of the Stripe endpoint (several while rotating).
    pub stripe_webhook_secrets: Vec<String>,
    pub scim: ScimSettings,
    /// The admin side's OpenID Provider; `None` disables browser login and JWT bearers.
    pub oidc: Option<OidcSettings>,
    /// Secret the admin session cookie is encrypted with (at least 32 bytes). Instances behind
    /// one load balancer must share it; when unset, each process picks a random one and
    /// sessions end at restart.
    pub session_secret: Option<String>,
    /// How long an admin session lasts after login.
    pub session_ttl: Duration,
    /// Bearer token `/metrics` asks for; `None` leaves it open (bind it to an internal network).
    pub metrics_token: Option<String>,
    /// Per-token SCIM rate limit (generous bursts, for an IdP's initial sync); `None` is unlimited.
    pub scim_rate_limit: Option<RateLimit>,
    /// Admin rate limit, per principal on `/api/v1` and per client IP on `/admin/login` and
    /// `/admin/callback`; `None` is unlimited.
    pub admin_rate_limit: Option<RateLimit>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.into(),
            database_url: DEFAULT_DATABASE_URL.into(),
            public_url: None,
            log_format: LogFormat::Text,
            db_max_connections: None,
            db_busy_timeout: Duration::from_secs(5),
            db_statement_timeout: Duration::from_secs(DEFAULT_DB_STATEMENT_TIMEOUT_SECS),
            sqlite_cache_kib: DEFAULT_SQLITE_CACHE_KIB,
            operator_token: None,
            service_token: None,
            entitlement_ttl: Duration::from_secs(5),
            check_index_users: crate::entitlements::DEFAULT_INDEX_USERS,
            key_dir: "seatbridge-keys".into(),
            signing_key: None,
            sweep_interval: Duration::from_secs(60),
            relay: Default::default(),
            billing_webhook_secrets: Vec::new(),
            stripe_webhook_secrets: Vec::new(),
            scim: ScimSettings::default(),
            oidc: None,
            session_secret: None,
            session_ttl: Duration::from_secs(8 * 3600),
            metrics_token: None,
            scim_rate_limit: None,
            admin_rate_limit: None,
        }
    }
}

impl Config {
    /// Pool settings derived from this configuration.
    pub fn db_settings(&self) -> DbSettings {
        DbSettings {
            url: self.database_url.clone(),
            max_connections: self
                .db_max_connections
                .unwrap_or_else(|| crate::store::default_pool_size(&self.database_url)),
            busy_timeout: self.db_busy_timeout,
            sqlite_cache_kib: self.sqlite_cache_kib,
            statement_timeout: self.db_statement_timeout,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("db_max_connections", &self.db_max_connections)
            .field("sqlite_cache_kib", &self.sqlite_cache_kib)
            .field("check_index_users", &self.check_index_users)
            .field("db_statement_timeout", &self.db_statement_timeout)
            .field("operator_token", &self.operator_token.as_ref().map(|_| "***"))
            .field("service_token", &self.service_token.as_ref().map(|_| "***"))
            .field("key_dir", &self.key_dir)
            .field("signing_key", &self.signing_key.as_ref().map(|_| "***"))
            .field("billing_webhook_secrets", &self.billing_webhook_secrets.len())
            .field("stripe_webhook_secrets", &self.stripe_webhook_secrets.len())
            .field("scim", &self.scim)
            .field("oidc", &self.oidc)
            .field("session_secret", &self.session_secret.as_ref().map(|_| "***"))
            .field("session_ttl", &self.session_ttl)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("scim_rate_limit", &self.scim_rate_limit)
            .field("admin_rate_limit", &self.admin_rate_limit)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
        assert!(!format!(
            "{:?}",
            Config {
                database_url: "postgres://u:pw@h/db".into(),
                ..Config::default()
            }
        )
        .contains("pw"));
    }
}
