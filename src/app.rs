//! Building the actix application. Tests start the real server through [`Application::build`]
//! on port 0, exactly as `seatbridge serve` does.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};
use sea_orm::DatabaseConnection;
use tracing::Instrument;

use crate::auth::TokenUsage;
use crate::config::Config;
use crate::entitlements::EntitlementCache;
use crate::events::Signals;
use crate::license::token::KeyRing;
use crate::rate_limit::KeyedLimiter;
use crate::scim::schema::SchemaRegistry;
use crate::{scim, store};

/// Shared state of every request.
pub struct AppState {
    pub db: DatabaseConnection,
    /// Reads of one indexed row, without the pool's thread hop on SQLite.
    pub reads: store::PointReads,
    pub schemas: Arc<SchemaRegistry>,
    pub config: Arc<Config>,
    pub token_usage: TokenUsage,
    /// In-memory entitlement views for product checks.
    pub entitlements: Arc<EntitlementCache>,
    /// Told about committed changes: the entitlement cache and the outbox relay.
    pub signals: Signals,
    /// Keys that sign license tokens (the public halves are served as a JWKS).
    pub keys: Arc<KeyRing>,
    /// OIDC login, sessions and JWT bearers of the admin side.
    pub admin: crate::admin::Admin,
    /// Queues user writes per tenant and writes them in batches (PostgreSQL only).
    pub batcher: Option<crate::provisioning::WriteBatcher>,
    /// Per-token SCIM request budgets; `None` when unlimited.
    pub scim_limiter: Option<KeyedLimiter>,
    /// Admin budgets, per principal on `/api/v1` and per client IP on the login; `None` when
    /// unlimited.
    pub admin_limiter: Option<KeyedLimiter>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not open the database ({url}): {source}. Check DATABASE_URL / --database-url")]
    Database { url: String, source: sea_orm::DbErr },
    #[error("could not apply database migrations: {0}")]
    Migrate(sea_orm::DbErr),
    #[error("could not listen on {addr}: {source}. Pick another address with --listen / SEATBRIDGE_LISTEN")]
    Listen { addr: String, source: std::io::Error },
    #[error(transparent)]
    Schemas(#[from] scim::schema::SchemaLoadError),
    #[error("license signing keys: {0}")]
    Keys(#[from] crate::license::token::TokenError),
    #[error("OpenID Connect: {0}")]
    Oidc(#[from] crate::admin::OidcError),
    #[error("could not start a thread ({what}): {source}. Check the process's thread limit (ulimit -u)")]
    Thread { what: &'static str, source: std::io::Error },
}

/// A bound, ready-to-run server, with its background tasks (license sweeper, entitlement
/// change listener) beside it.
pub struct Application {
    port: u16,
    server: Server,
    db: DatabaseConnection,
    sweep_interval: std::time::Duration,
    signals: Signals,
    relay: crate::events::relay::RelaySettings,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let db = store::connect(&config.db_settings())
            .await
            .map_err(|source| StartError::Database {
                url: crate::config::redact_url(&config.database_url),
                source,
            })?;
        store::migrate(&db).await.map_err(StartError::Migrate)?;
        Self::build_with_db(config, db).await
    }

    /// Binds the listener over an already migrated database.
    pub async fn build_with_db(config: Config, db: DatabaseConnection) -> Result<Self, StartError> {
        let listener = TcpListener::bind(&config.listen).map_err(|source| StartError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Listen {
                addr: config.listen.clone(),
                source,
            })?
            .port();
        let reads = store::PointReads::new(&db, &config.db_settings())
            .await
            .map_err(|source| StartError::Database {
                url: crate::config::redact_url(&config.database_url),
                source,
            })?;
        let sweep_interval = config.sweep_interval;
        let entitlements = Arc::new(EntitlementCache::new(config.entitlement_ttl, config.check_index_users));
        let signals = Signals::new(entitlements.clone()).with_peers(&db);
        let relay = config.relay.clone();
        let keys = Arc::new(match &config.signing_key {
            Some(secret) => KeyRing::from_env_secret(secret)?,
            None => KeyRing::load_or_create(&config.key_dir)?,
        });
        let admin = crate::admin::Admin::new(&config)?;
        let (scim_limit, admin_limit) = (config.scim_rate_limit, config.admin_rate_limit);
        crate::metrics::handle();
        let schemas = Arc::new(SchemaRegistry::builtin()?);
        let batcher = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => Some(
                crate::provisioning::WriteBatcher::start(db.clone(), reads.clone(), schemas.clone(), signals.clone())
                    .map_err(|source| StartError::Thread {
                    what: "write batches",
                    source,
                })?,
            ),
            _ => None,
        };
        let state = web::Data::new(AppState {
            db: db.clone(),
            reads,
            schemas,
            batcher,
            config: Arc::new(config),
            token_usage: TokenUsage::default(),
            entitlements: entitlements.clone(),
            signals: signals.clone(),
            keys,
            admin,
            scim_limiter: scim_limit.map(KeyedLimiter::new),
            admin_limiter: admin_limit.map(KeyedLimiter::new),
        });
        let server = HttpServer::new(move || App::new().configure(|cfg| configure(cfg, state.clone())))
            .listen(listener)
            .map_err(|source| StartError::Listen {
                addr: "listener".into(),
                source,
            })?
            .shutdown_timeout(30)
            .run();
        Ok(Application {
            port,
            server,
            db,
            sweep_interval,
            signals,
            relay,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until the server stops, with the background jobs (sweeper, entitlement listener,
    /// usage snapshots, outbox relay) alongside.
    ///
    /// SIGTERM starts a graceful shutdown: the listener closes at once, requests in flight get
    /// up to 30 s to finish (SIGINT and SIGQUIT skip that wait). Then the relay records the
    /// deliveries it is sending and stops, and the other jobs are dropped where they are: each
    /// round of theirs is one transaction, rolled back when cut and redone by the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application {
            server,
            db,
            sweep_interval,
            signals,
            relay: relay_settings,
            ..
        } = self;
        let (stop_relay, relay_stop) = tokio::sync::watch::channel(false);
        let relay_grace = relay_settings.timeout + RELAY_STOP_MARGIN;
        let relay = crate::events::relay::run(db.clone(), signals.outbox.clone(), relay_settings, relay_stop);
        tokio::pin!(relay);
        let result = tokio::select! {
            result = server => result,
            () = crate::licensing::run_sweeper(db.clone(), sweep_interval, signals.clone()) => Ok(()),
            () = crate::entitlements::listen_for_changes(db.clone(), signals.entitlements.clone()) => Ok(()),
            () = crate::licensing::run_usage_snapshots(db.clone(), signals.clone(), USAGE_SNAPSHOT_EVERY) => Ok(()),
            () = crate::metrics::run_upkeep(crate::metrics::UPKEEP_EVERY) => Ok(()),
            () = &mut relay => Ok(()),
        };
        let _ = stop_relay.send(true);
        if tokio::time::timeout(relay_grace, relay).await.is_err() {
            tracing::warn!("the outbox relay did not stop in time; its leased deliveries are retried after the lease");
        }
        tracing::info!("stopped");
        result
    }
}

/// How long the relay may take beyond one delivery's timeout to record what it sent.
const RELAY_STOP_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How often changed tenants get a fresh seat-usage snapshot.
const USAGE_SNAPSHOT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The route table: SCIM under `/scim/v2`, health endpoints at the root.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    cfg.app_data(state)
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(crate::metrics::render))
        .route("/.well-known/jwks.json", web::get().to(crate::api::jwks))
        .service(
            web::scope("/webhooks/billing")
                .wrap(from_fn(request_context))
                .configure(crate::events::inbound::configure),
        )
        .service(
            web::scope("/api/v1")
                .wrap(from_fn(request_context))
                .app_data(web::JsonConfig::default().limit(1024 * 1024).error_handler(|e, _| {
                    use actix_web::error::JsonPayloadError;
                    match e {
                        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                            crate::api::ApiError::PayloadTooLarge(e.to_string()).into()
                        }
                        e => crate::api::ApiError::BadRequest(format!("invalid JSON body: {e}")).into(),
                    }
                }))
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|e, _| crate::api::ApiError::BadRequest(format!("invalid query: {e}")).into()),
                )
                // A path segment that cannot be the id it stands for (`/deliveries/x/retry`)
                // names nothing: a 404 problem document, like any other unknown resource.
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|e, _| crate::api::ApiError::NotFound(format!("no such resource: {e}")).into()),
                )
                .configure(crate::api::configure),
        )
        .service(
            web::scope("/admin")
                .wrap(from_fn(request_context))
                .app_data(web::FormConfig::default().limit(16 * 1024))
                .configure(crate::admin::configure),
        )
        .service(
            web::scope("/scim/v2")
                .wrap(from_fn(request_context))
                .configure(scim::http::configure)
                .default_service(web::to(scim::http::not_found)),
        );
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    use store::MigrationState;
    match store::migration_state(&state.db).await {
        Ok(MigrationState::Current) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Ok(MigrationState::Pending) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "migrations pending"}))
        }
        Ok(MigrationState::Newer(unknown)) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "database is newer than this binary", "unknown_migrations": unknown})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "database unreachable"}))
        }
    }
}

/// The scheme and host this server is reached at: `SEATBRIDGE_PUBLIC_URL`, else the request's
/// own. Used for `meta.location`, token issuers and OIDC redirect URIs.
pub fn public_base(req: &actix_web::HttpRequest, state: &AppState) -> String {
    match &state.config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// The id of the current request, for handlers that record it (e.g. in the audit log).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request in flight for the point reads (`store::read_snapshots`): they may hold a read
/// snapshot while it lasts, and once it has ended (answered, failed or dropped) a timer on this
/// worker gives that snapshot up if no later request does.
struct ReadScope(crate::store::read_snapshots::RequestScope);

impl ReadScope {
    fn enter() -> Self {
        ReadScope(crate::store::read_snapshots::RequestScope::enter())
    }
}

impl Drop for ReadScope {
    fn drop(&mut self) {
        // Only ever made in the middleware below, on an actix worker: spawning is possible.
        if let Some(release) = crate::store::read_snapshots::releaser() {
            actix_web::rt::spawn(release);
        }
    }
}

/// Gives every request an id (the client's `X-Request-Id` when it is sane, else a new UUID),
/// a tracing span carrying it and the tenant, and one log line with status and latency.
async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let _reads = ReadScope::enter();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
        tenant = tracing::field::Empty,
    );
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let started = Instant::now();
    let method = req.method().clone();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    span.in_scope(|| tracing::info!(status, elapsed_ms = elapsed * 1000.0, "handled"));
    // The route pattern, not the path: ids would make one time series per resource.
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    crate::metrics::request(route, method.as_str(), status, elapsed);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    Ok(res)
}
