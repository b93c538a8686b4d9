//! The `seatbridge` command line (see design.md "CLI").

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::app::{Application, StartError};
use crate::audit;
use crate::auth::{issue_token, revoke_token};
use crate::config::{Config, LogFormat, OidcSettings, DEFAULT_DATABASE_URL, DEFAULT_LISTEN};
use crate::license::{LicenseStatus, Policy};
use crate::licensing::{self, LicenseUpdate, LicensingError};
use crate::store::{self, tenants, StoreError};
use crate::telemetry;

/// seatbridge — a SCIM 2.0 provisioning bridge that enforces software licenses.
#[derive(Debug, Parser)]
#[command(name = "seatbridge", version, about)]
pub struct Cli {
    /// Database URL: sqlite://FILE?mode=rwc (default) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (applies migrations first).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage the plan catalog.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's license.
    #[command(subcommand)]
    License(LicenseCommand),
    /// Manage SCIM bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Map IdP groups to seat types.
    #[command(subcommand, name = "seat-map")]
    SeatMap(SeatMapCommand),
    /// Manage the license-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Outbound webhook endpoints of a tenant.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Inspect and re-drive event deliveries.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Map billing price/product ids to plans.
    #[command(subcommand, name = "billing-plan")]
    BillingPlan(BillingPlanCommand),
    /// Grant admin-side roles in the database (beside the ID-token roles claim).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
}

/// `db …`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Compare the per-pool user counters (seat checks read them) with a full recount of the
    /// users table; exits non-zero on a difference unless `--repair` rebuilt them.
    CheckCounts {
        /// Rebuild the counters from the users table when they differ.
        #[arg(long)]
        repair: bool,
    },
}

/// `admin …`. A principal is an e-mail address or an OIDC subject (`sub`).
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make a principal an operator (`--operator`) or an admin of a tenant (`--tenant SLUG`).
    Grant {
        principal: String,
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        operator: bool,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Take a role away again.
    Revoke {
        principal: String,
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        operator: bool,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List the grants as JSON lines.
    List,
}

/// `webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Send the tenant's events to URL. `--kind webhook` (default) signs them per Standard
    /// Webhooks and prints the signing secret once; `--kind scim` mirrors users with access and
    /// groups to the product's SCIM base URL, authenticating with `--token`.
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "webhook", value_parser = ["webhook", "scim"])]
        kind: String,
        /// Bearer token of the downstream SCIM endpoint (`--kind scim`).
        #[arg(long, env = "SEATBRIDGE_DOWNSTREAM_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Comma-separated event types, or `*` for all.
        #[arg(long, default_value = "*")]
        events: String,
    },
}

/// `events …`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Recent deliveries, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Dead-lettered deliveries.
    DeadLetters {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Put a delivery (by id) or every dead letter (of a tenant) back in line.
    Retry {
        id: Option<i64>,
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `billing-plan …`.
#[derive(Debug, Subcommand)]
pub enum BillingPlanCommand {
    /// Billing PRICE_OR_PRODUCT_ID of PROVIDER (e.g. stripe) means PLAN.
    Set {
        provider: String,
        external_id: String,
        plan: String,
    },
}

/// `keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key; the old public key stays in the JWKS until every token it
    /// signed has expired. Restart (or roll) every instance afterwards.
    Rotate {
        #[arg(long, env = "SEATBRIDGE_KEY_DIR", default_value = "seatbridge-keys")]
        key_dir: std::path::PathBuf,
    },
}

/// `seat-map …`.
#[derive(Debug, Subcommand)]
pub enum SeatMapCommand {
    /// Members of GROUP (id or displayName) take seats of SEAT_TYPE; prints who moves.
    Set {
        slug: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        seat_type: String,
        /// Higher wins when a user is in several mapped groups.
        #[arg(long, default_value_t = 0)]
        priority: i32,
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove a group's mapping; its members return to their other mappings or the default pool.
    Remove {
        slug: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        dry_run: bool,
    },
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SEATBRIDGE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Public base URL used in `meta.location` (e.g. https://scim.example.com).
    #[arg(long, env = "SEATBRIDGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Log format.
    #[arg(long, env = "SEATBRIDGE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Largest page a list returns (filter.maxResults).
    #[arg(long, env = "SEATBRIDGE_MAX_RESULTS", default_value_t = 1000)]
    pub max_results: u64,
    /// Largest request body in bytes.
    #[arg(long, env = "SEATBRIDGE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Answer PATCH with 204 No Content instead of 200 and the resource.
    #[arg(long, env = "SEATBRIDGE_PATCH_NO_CONTENT")]
    pub patch_no_content: bool,
    /// Bearer token for the operator API (/api/v1/plans, /api/v1/tenants/…); unset disables it.
    #[arg(long, env = "SEATBRIDGE_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Bearer token product services send to /api/v1/entitlements/check; unset disables it.
    #[arg(long, env = "SEATBRIDGE_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,
    /// Directory of the license-signing key file (created with mode 0600 on first start).
    #[arg(long, env = "SEATBRIDGE_KEY_DIR", default_value = "seatbridge-keys")]
    pub key_dir: std::path::PathBuf,
    /// License-signing key (base64url Ed25519 secret) instead of the key file.
    #[arg(long, env = "SEATBRIDGE_LICENSE_SIGNING_KEY", hide_env_values = true)]
    pub signing_key: Option<String>,
    /// Secrets of POST /webhooks/billing/generic (Standard Webhooks; comma-separated to rotate).
    #[arg(
        long,
        env = "SEATBRIDGE_BILLING_WEBHOOK_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub billing_webhook_secrets: Vec<String>,
    /// Stripe endpoint secrets of POST /webhooks/billing/stripe (comma-separated to rotate).
    #[arg(
        long,
        env = "SEATBRIDGE_STRIPE_WEBHOOK_SECRETS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub stripe_webhook_secrets: Vec<String>,
    /// Seconds between license sweeps (expiry → grace → expired).
    #[arg(long, env = "SEATBRIDGE_SWEEP_SECONDS", default_value_t = 60)]
    pub sweep_seconds: u64,
    /// Create a demo tenant and print its SCIM base URL and a bearer token.
    #[arg(long)]
    pub demo: bool,
    /// Issuer URL of the admin side's OpenID Provider; unset disables browser login.
    #[arg(long, env = "SEATBRIDGE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Client id registered for seatbridge at the provider.
    #[arg(long, env = "SEATBRIDGE_OIDC_CLIENT_ID", default_value = "seatbridge")]
    pub oidc_client_id: String,
    /// Client secret (confidential client, client_secret_basic).
    #[arg(long, env = "SEATBRIDGE_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The `aud` of access tokens accepted as bearers (default: the client id).
    #[arg(long, env = "SEATBRIDGE_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// Scopes asked for at login, comma-separated.
    #[arg(
        long,
        env = "SEATBRIDGE_OIDC_SCOPES",
        value_delimiter = ',',
        default_value = "openid,profile,email"
    )]
    pub oidc_scopes: Vec<String>,
    /// Claim holding the user's roles or groups.
    #[arg(long, env = "SEATBRIDGE_OIDC_ROLES_CLAIM", default_value = "roles")]
    pub oidc_roles_claim: String,
    /// Claim value that makes a user an operator.
    #[arg(long, env = "SEATBRIDGE_OIDC_OPERATOR_ROLE", default_value = "seatbridge-operator")]
    pub oidc_operator_role: String,
    /// Claim values `<prefix><slug>` make a user an admin of tenant `slug`.
    #[arg(
        long,
        env = "SEATBRIDGE_OIDC_TENANT_ADMIN_PREFIX",
        default_value = "seatbridge-tenant-admin:"
    )]
    pub oidc_tenant_admin_prefix: String,
    /// Secret (≥ 32 characters) the admin session cookie is encrypted with; share it between
    /// instances. Unset: a random key per process.
    #[arg(long, env = "SEATBRIDGE_SESSION_KEY", hide_env_values = true)]
    pub session_key: Option<String>,
    /// Hours an admin session lasts.
    #[arg(long, env = "SEATBRIDGE_SESSION_HOURS", default_value_t = 8)]
    pub session_hours: u64,
    /// Bearer token GET /metrics asks for; unset leaves it open.
    #[arg(long, env = "SEATBRIDGE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// SCIM requests per second per token, sustained (0 = no limit).
    #[arg(long, env = "SEATBRIDGE_SCIM_RATE", default_value_t = 100)]
    pub scim_rate: u32,
    /// SCIM requests per token allowed in a burst above the rate (an IdP's initial sync).
    #[arg(long, env = "SEATBRIDGE_SCIM_BURST", default_value_t = 2000)]
    pub scim_burst: u32,
    /// Admin API requests per second per principal, and admin logins per second per client IP,
    /// sustained (0 = no limit).
    #[arg(long, env = "SEATBRIDGE_ADMIN_RATE", default_value_t = 20)]
    pub admin_rate: u32,
    /// Admin requests per principal (or logins per client IP) allowed in a burst above the rate.
    #[arg(long, env = "SEATBRIDGE_ADMIN_BURST", default_value_t = 200)]
    pub admin_burst: u32,
    /// Connections in the database pool. Default: 16 on PostgreSQL; on SQLite twice the CPU
    /// cores (reads by key and writes have connections of their own there; see
    /// `store::default_pool_size`).
    #[arg(long, env = "SEATBRIDGE_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// SQLite only: page cache of each pooled connection, in KiB. The kernel caches the file
    /// once for all connections; a larger value multiplies memory by the pool size.
    #[arg(long, env = "SEATBRIDGE_SQLITE_CACHE_KIB", default_value_t = crate::config::DEFAULT_SQLITE_CACHE_KIB)]
    pub sqlite_cache_kib: u32,
    /// PostgreSQL only: the longest one statement may run, in seconds (0 = no limit). A request
    /// whose query runs longer gets a 503; migrations are not limited.
    #[arg(long, env = "SEATBRIDGE_DB_STATEMENT_TIMEOUT_SECS", default_value_t = crate::config::DEFAULT_DB_STATEMENT_TIMEOUT_SECS)]
    pub db_statement_timeout_secs: u64,
    /// Users the entitlement check keeps in memory, over all tenants (about 80 bytes each);
    /// a tenant that does not fit is checked by reading the user. 0 turns the index off.
    #[arg(long, env = "SEATBRIDGE_CHECK_INDEX_USERS", default_value_t = crate::entitlements::DEFAULT_INDEX_USERS)]
    pub check_index_users: usize,
}

/// `plan …`.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// List plans as JSON.
    List,
    /// Create or update a plan.
    Set {
        name: String,
        #[arg(long)]
        seats_default: i64,
        /// Comma-separated features, e.g. scim.users,scim.groups.
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        #[arg(long, default_value_t = 0)]
        grace_days: i64,
        /// Extra seat pools, e.g. `viewer=200,guest=unlimited`.
        #[arg(long, value_delimiter = ',')]
        pools: Vec<String>,
        /// Overage allowance: 1.0 = none, 1.25 = a quarter more seats than licensed.
        #[arg(long, default_value_t = 1.0)]
        overage: f64,
    },
}

/// `tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with a license; prints the tenant as JSON.
    Create {
        slug: String,
        #[arg(long)]
        plan: String,
        #[arg(long)]
        seats: i64,
        /// License expiry (RFC 3339); omit for a perpetual license.
        #[arg(long)]
        expires: Option<String>,
        /// Display name (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
    },
}

/// `license …`.
#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Change a tenant's license; users gain or lose seats by the tenant's policy. Prints what
    /// changed (with --dry-run: what would change, without changing anything).
    Set {
        slug: String,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        seats: Option<i64>,
        /// RFC 3339 timestamp, or `never`.
        #[arg(long)]
        expires: Option<String>,
        /// `active` or `suspended`.
        #[arg(long)]
        status: Option<String>,
        /// `block_new` or `deactivate_newest`.
        #[arg(long)]
        policy: Option<String>,
        /// Provisioning operations allowed per --usage-period, or `none`.
        #[arg(long)]
        usage_cap: Option<String>,
        /// `day` or `month`.
        #[arg(long)]
        usage_period: Option<String>,
        /// Refuse unless the license is at this version.
        #[arg(long)]
        expected_version: Option<i64>,
        /// Report who would lose or gain a seat, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a tenant's hash chain; exits non-zero when it is broken.
    Verify {
        #[arg(long)]
        tenant: String,
    },
    /// Write a tenant's audit log as JSON lines to stdout.
    Export {
        #[arg(long)]
        tenant: String,
    },
}

/// `token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a SCIM bearer token; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

/// A command failed; the message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("database error: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("server stopped with an error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sea_orm::DbErr> for CliError {
    fn from(e: sea_orm::DbErr) -> Self {
        CliError::Store(e.into())
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve(cli.database_url, *args).await,
        Command::Keys(c) => keys(c),
        command => {
            telemetry::init(LogFormat::Text);
            let db = open(&cli.database_url).await?;
            match command {
                Command::Migrate => {
                    println!("migrations applied");
                    Ok(())
                }
                Command::Plan(c) => plan(&db, c).await,
                Command::Tenant(c) => tenant(&db, c).await,
                Command::License(c) => license(&db, c).await,
                Command::Token(c) => token(&db, c).await,
                Command::Audit(c) => audit_command(&db, c).await,
                Command::SeatMap(c) => seat_map(&db, c).await,
                Command::Webhook(c) => webhook(&db, c).await,
                Command::Events(c) => events_command(&db, c).await,
                Command::Admin(c) => admin_command(&db, c).await,
                Command::Db(DbCommand::CheckCounts { repair }) => check_counts(&db, repair).await,
                Command::BillingPlan(BillingPlanCommand::Set {
                    provider,
                    external_id,
                    plan,
                }) => {
                    require_plan(&db, &plan).await?;
                    store::events::put_billing_plan(&db, &provider, &external_id, &plan).await?;
                    println!(
                        "{}",
                        json!({"provider": provider, "external_id": external_id, "plan": plan})
                    );
                    Ok(())
                }
                Command::Serve(_) | Command::Keys(_) => Ok(()),
            }
        }
    }
}

async fn open(url: &str) -> Result<DatabaseConnection, CliError> {
    let config = Config {
        database_url: url.to_string(),
        ..Config::default()
    };
    open_with(&config.db_settings()).await
}

/// Connects with these pool settings and applies pending migrations.
async fn open_with(settings: &store::DbSettings) -> Result<DatabaseConnection, CliError> {
    let db = store::connect(settings).await.map_err(|source| StartError::Database {
        url: crate::config::redact_url(&settings.url),
        source,
    })?;
    store::migrate(&db).await.map_err(StartError::Migrate)?;
    Ok(db)
}

async fn serve(database_url: String, args: ServeArgs) -> Result<(), CliError> {
    telemetry::init(args.log_format);
    let mut config = Config {
        listen: args.listen,
        database_url,
        public_url: args.public_url,
        log_format: args.log_format,
        ..Config::default()
    };
    config.scim.max_results = args.max_results.max(1);
    config.scim.max_body_bytes = args.max_body_bytes;
    config.scim.patch_returns_resource = !args.patch_no_content;
    config.sweep_interval = std::time::Duration::from_secs(args.sweep_seconds.max(1));
    config.operator_token = args.operator_token.filter(|t| !t.is_empty());
    config.key_dir = args.key_dir;
    config.billing_webhook_secrets = args
        .billing_webhook_secrets
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    config.stripe_webhook_secrets = args
        .stripe_webhook_secrets
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    config.signing_key = args.signing_key.filter(|k| !k.is_empty());
    config.service_token = args.service_token.filter(|t| !t.is_empty());
    config.oidc = args.oidc_issuer.filter(|i| !i.is_empty()).map(|issuer| {
        let mut o = OidcSettings::new(issuer, args.oidc_client_id);
        o.client_secret = args.oidc_client_secret.filter(|s| !s.is_empty());
        if let Some(aud) = args.oidc_audience.filter(|a| !a.is_empty()) {
            o.audience = aud;
        }
        o.scopes = args.oidc_scopes.into_iter().filter(|s| !s.is_empty()).collect();
        o.roles_claim = args.oidc_roles_claim;
        o.operator_role = args.oidc_operator_role;
        o.tenant_admin_prefix = args.oidc_tenant_admin_prefix;
        o
    });
    config.session_secret =
        match args.session_key.filter(|k| !k.is_empty()) {
            Some(k) if k.len() < 32 => return Err(CliError::Usage(
                "SEATBRIDGE_SESSION_KEY is too short: use at least 32 random characters (e.g. `openssl rand -hex 32`)"
                    .into(),
            )),
            k => k,
        };
    config.session_ttl = std::time::Duration::from_secs(args.session_hours.max(1) * 3600);
    config.metrics_token = args.metrics_token.filter(|t| !t.is_empty());
    config.scim_rate_limit = (args.scim_rate > 0).then_some(crate::config::RateLimit {
        per_second: args.scim_rate,
        burst: args.scim_burst.max(1),
    });
    config.admin_rate_limit = (args.admin_rate > 0).then_some(crate::config::RateLimit {
        per_second: args.admin_rate,
        burst: args.admin_burst.max(1),
    });
    config.db_max_connections = args.db_max_connections.map(|n| n.max(1));
    config.sqlite_cache_kib = args.sqlite_cache_kib;
    config.check_index_users = args.check_index_users;
    config.db_statement_timeout = std::time::Duration::from_secs(args.db_statement_timeout_secs);
    tracing::info!(config = ?config, "starting seatbridge");
    let db = open_with(&config.db_settings()).await?;
    let demo = if args.demo { Some(create_demo(&db).await?) } else { None };
    let app = Application::build_with_db(config.clone(), db).await?;
    let base = match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let host = config.listen.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            let host = if host == "0.0.0.0" { "127.0.0.1" } else { host };
            format!("http://{host}:{}", app.port())
        }
    };
    tracing::info!(port = app.port(), "listening");
    if let Some(token) = demo {
        println!("seatbridge demo tenant is ready");
        println!("  SCIM base URL: {base}/scim/v2");
        println!("  Bearer token:  {token}");
        println!("  try: curl -H 'Authorization: Bearer {token}' {base}/scim/v2/Users");
    }
    app.run_until_stopped().await?;
    Ok(())
}

/// Creates (once) the `demo` tenant on the `team` plan and a fresh token for it.
async fn create_demo(db: &DatabaseConnection) -> Result<String, CliError> {
    let tenant = match tenants::find_by_slug(db, "demo").await? {
        Some(t) => t,
        None => {
            let t = tenants::insert_tenant(db, "demo", "Demo tenant").await?;
            tenants::put_license(
                db,
                &t.id,
                tenants::LicenseFields {
                    plan_name: "team".into(),
                    seats: 25,
                    expires_at: None,
                },
            )
            .await?;
            t
        }
    };
    let (_, token) = issue_token(db, &tenant.id, "demo", "cli", None).await?;
    Ok(token)
}

async fn plan(db: &DatabaseConnection, c: PlanCommand) -> Result<(), CliError> {
    match c {
        PlanCommand::List => {
            let plans: Vec<_> = tenants::list_plans(db)
                .await?
                .iter()
                .map(|p| plan_json(&tenants::plan_to_domain(p)))
                .collect();
            println!("{}", serde_json::to_string_pretty(&plans).unwrap_or_default());
        }
        PlanCommand::Set {
            name,
            seats_default,
            features,
            grace_days,
            pools,
            overage,
        } => {
            let spec = licensing::PlanSpec {
                features: features
                    .into_iter()
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect(),
                seats_default,
                seat_pools: parse_pools(&pools)?,
                grace_days,
                overage,
            };
            let plan = licensing::set_plan(db, &name, &spec, "cli")
                .await
                .map_err(licensing_error)?;
            println!("{}", plan_json(&plan));
        }
    }
    Ok(())
}

/// `viewer=200` → ("viewer", Some(200)); `guest=unlimited` → ("guest", None).
fn parse_pools(items: &[String]) -> Result<std::collections::BTreeMap<String, Option<i64>>, CliError> {
    items
        .iter()
        .filter(|i| !i.trim().is_empty())
        .map(|item| {
            let (name, count) = item.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("--pools '{item}' must look like viewer=200 or guest=unlimited"))
            })?;
            let count = match count.trim() {
                "unlimited" => None,
                n => Some(
                    n.parse::<i64>()
                        .map_err(|_| CliError::Usage(format!("--pools '{item}': '{n}' is not a number")))?,
                ),
            };
            Ok((name.trim().to_string(), count))
        })
        .collect()
}

fn plan_json(p: &crate::license::Plan) -> serde_json::Value {
    json!({"name": p.name, "features": p.features, "seats_default": p.seats_default, "seat_pools": p.seat_pools,
           "grace_days": p.grace_days, "overage": p.overage})
}

fn licensing_error(e: LicensingError) -> CliError {
    match e {
        LicensingError::Store(s) => CliError::Store(s),
        LicensingError::NoTenant(t) => CliError::Usage(format!(
            "no tenant '{t}'; create it with `seatbridge tenant create {t} --plan … --seats …`"
        )),
        LicensingError::UnknownPlan { name, known } => CliError::Usage(format!(
            "unknown plan '{name}'; known plans: {known}. Create it with `seatbridge plan set {name} --seats-default N --features …`"
        )),
        LicensingError::Exists(t) => CliError::Usage(format!(
            "tenant '{t}' already exists; change its license with `seatbridge license set {t} …`"
        )),
        other => CliError::Usage(other.to_string()),
    }
}

fn parse_expiry(text: &str) -> Result<Option<DateTime<Utc>>, CliError> {
    if text.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            CliError::Usage(format!(
                "--expires '{text}' is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z) or 'never'"
            ))
        })
}

async fn require_plan(db: &DatabaseConnection, name: &str) -> Result<(), CliError> {
    if tenants::find_plan(db, name).await?.is_none() {
        let known: Vec<String> = tenants::list_plans(db).await?.into_iter().map(|p| p.name).collect();
        return Err(CliError::Usage(format!(
            "unknown plan '{name}'; known plans: {}. Create it with `seatbridge plan set {name} --seats-default N --features …`",
            known.join(", ")
        )));
    }
    Ok(())
}

async fn tenant(db: &DatabaseConnection, c: TenantCommand) -> Result<(), CliError> {
    let TenantCommand::Create {
        slug,
        plan,
        seats,
        expires,
        name,
    } = c;
    let expires_at = expires.as_deref().map(parse_expiry).transpose()?.flatten();
    let new = licensing::NewTenant {
        slug,
        name,
        plan,
        seats,
        expires_at,
    };
    let (t, l) = licensing::create_tenant(db, &new, "cli")
        .await
        .map_err(licensing_error)?;
    println!(
        "{}",
        json!({"id": t.id, "slug": t.slug, "name": t.name, "license": {"plan": l.plan_name, "seats": l.seats,
               "expires_at": l.expires_at, "status": l.status, "version": l.version}})
    );
    Ok(())
}

async fn license(db: &DatabaseConnection, c: LicenseCommand) -> Result<(), CliError> {
    let LicenseCommand::Set {
        slug,
        plan,
        seats,
        expires,
        status,
        policy,
        usage_cap,
        usage_period,
        expected_version,
        dry_run,
    } = c;
    let parse_status = |s: &str| {
        s.parse::<LicenseStatus>()
            .map_err(|e| CliError::Usage(format!("--status: {e} (use active or suspended)")))
    };
    let update = LicenseUpdate {
        plan,
        seats,
        expires_at: expires.as_deref().map(parse_expiry).transpose()?,
        status: status.as_deref().map(parse_status).transpose()?,
        policy: policy
            .as_deref()
            .map(|p| p.parse::<Policy>().map_err(CliError::Usage))
            .transpose()?,
        usage_cap: usage_cap
            .as_deref()
            .map(|c| match c {
                "none" => Ok(None),
                n => n
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| CliError::Usage(format!("--usage-cap '{n}' is not a number or 'none'"))),
            })
            .transpose()?,
        usage_period,
        expected_version,
        ..Default::default()
    };
    let report = licensing::update_license(db, &slug, &update, "cli", dry_run)
        .await
        .map_err(licensing_error)?;
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    Ok(())
}

fn keys(c: KeysCommand) -> Result<(), CliError> {
    use crate::license::token::{KeyRing, MAX_TOKEN_TTL_SECS};
    let KeysCommand::Rotate { key_dir } = c;
    let key_error =
        |e: crate::license::token::TokenError| CliError::Usage(format!("license keys in {}: {e}", key_dir.display()));
    let mut ring = KeyRing::load_or_create(&key_dir).map_err(key_error)?;
    let old = ring.active().kid().to_string();
    ring.rotate(chrono::Utc::now(), chrono::Duration::seconds(MAX_TOKEN_TTL_SECS));
    ring.save(&key_dir).map_err(key_error)?;
    println!(
        "{}",
        json!({"active_kid": ring.active().kid(), "retired_kid": old, "retired_kept_for_secs": MAX_TOKEN_TTL_SECS})
    );
    Ok(())
}

async fn tenant_id_of(db: &DatabaseConnection, slug: &str) -> Result<String, CliError> {
    Ok(tenants::find_by_slug(db, slug)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no tenant '{slug}'")))?
        .id)
}

async fn webhook(db: &DatabaseConnection, c: WebhookCommand) -> Result<(), CliError> {
    let WebhookCommand::Add {
        tenant,
        url,
        events,
        kind,
        token,
    } = c;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(CliError::Usage(format!("--url '{url}' must be an http(s) URL")));
    }
    let tenant_id = tenant_id_of(db, &tenant).await?;
    let types = if events.trim() == "*" {
        "*".to_string()
    } else {
        json!(events
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect::<Vec<_>>())
        .to_string()
    };
    if kind == "scim" {
        let token = token
            .ok_or_else(|| CliError::Usage("--kind scim needs --token (the product's SCIM bearer token)".into()))?;
        let id = store::events::add_endpoint(db, &tenant_id, "scim", &url, &token, &types).await?;
        println!("{}", json!({"endpoint": id, "kind": "scim", "url": url}));
        return Ok(());
    }
    let secret = crate::events::signature::new_standard_secret();
    let id = store::events::add_endpoint(db, &tenant_id, "webhook", &url, &secret, &types).await?;
    eprintln!("endpoint {id}; the signing secret below is shown only once:");
    println!("{secret}");
    Ok(())
}

async fn events_command(db: &DatabaseConnection, c: EventsCommand) -> Result<(), CliError> {
    match c {
        EventsCommand::List { tenant, status, limit } => {
            let tenant_id = match tenant {
                Some(t) => Some(tenant_id_of(db, &t).await?),
                None => None,
            };
            let rows = store::events::list_deliveries(db, tenant_id.as_deref(), status.as_deref(), None, limit).await?;
            println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        }
        EventsCommand::DeadLetters { tenant } => {
            let tenant_id = match tenant {
                Some(t) => Some(tenant_id_of(db, &t).await?),
                None => None,
            };
            let rows = store::events::list_deliveries(db, tenant_id.as_deref(), Some("dead"), None, 1000).await?;
            println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        }
        EventsCommand::Retry { id, tenant } => {
            if id.is_none() && tenant.is_none() {
                return Err(CliError::Usage(
                    "give a delivery id, or --tenant SLUG to retry all its dead letters".into(),
                ));
            }
            let tenant_id = match tenant {
                Some(t) => Some(tenant_id_of(db, &t).await?),
                None => None,
            };
            let n = store::events::redrive(db, id, tenant_id.as_deref()).await?;
            println!("{}", json!({"requeued": n}));
        }
    }
    Ok(())
}

async fn seat_map(db: &DatabaseConnection, c: SeatMapCommand) -> Result<(), CliError> {
    let report = match c {
        SeatMapCommand::Set {
            slug,
            group,
            seat_type,
            priority,
            dry_run,
        } => licensing::set_seat_mapping(db, &slug, &group, Some(&seat_type), priority, "cli", dry_run).await,
        SeatMapCommand::Remove { slug, group, dry_run } => {
            licensing::set_seat_mapping(db, &slug, &group, None, 0, "cli", dry_run).await
        }
    }
    .map_err(licensing_error)?;
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    Ok(())
}

async fn check_counts(db: &DatabaseConnection, repair: bool) -> Result<(), CliError> {
    let drift = store::user_counts::drift(db).await?;
    for d in &drift {
        println!(
            "{}",
            json!({"tenant_id": d.tenant_id, "seat_type": d.seat_type,
                   "counted": {"users": d.actual[0], "active": d.actual[1], "entitled": d.actual[2], "waiting": d.actual[3]},
                   "recorded": {"users": d.recorded[0], "active": d.recorded[1], "entitled": d.recorded[2], "waiting": d.recorded[3]}})
        );
    }
    match (drift.is_empty(), repair) {
        (true, _) => {
            println!("{}", json!({"consistent": true}));
            Ok(())
        }
        (false, true) => {
            store::user_counts::rebuild(db).await?;
            println!("{}", json!({"consistent": true, "repaired_pools": drift.len()}));
            Ok(())
        }
        (false, false) => Err(CliError::Usage(format!(
            "{} seat pool counters differ from the users table; run `seatbridge db check-counts --repair`",
            drift.len()
        ))),
    }
}

async fn audit_command(db: &DatabaseConnection, c: AuditCommand) -> Result<(), CliError> {
    let slug = match &c {
        AuditCommand::Verify { tenant } | AuditCommand::Export { tenant } => tenant.clone(),
    };
    let t = tenants::find_by_slug(db, &slug)
        .await?
        .ok_or_else(|| CliError::Usage(format!("no tenant '{slug}'")))?;
    match c {
        AuditCommand::Verify { .. } => {
            let v = audit::verify(db, &t.id).await?;
            match v.broken_at {
                None => println!("{}", json!({"tenant": slug, "entries": v.entries, "intact": true})),
                Some((seq, why)) => {
                    println!(
                        "{}",
                        json!({"tenant": slug, "entries_verified": v.entries, "intact": false, "broken_at": seq, "problem": why})
                    );
                    return Err(CliError::Usage(format!(
                        "the audit chain of '{slug}' is broken at entry {seq}: {why}"
                    )));
                }
            }
        }
        AuditCommand::Export { .. } => {
            let mut after = 0;
            loop {
                let page = store::audit::page(db, &t.id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    println!("{}", audit::to_json(e));
                }
            }
        }
    }
    Ok(())
}

async fn token(db: &DatabaseConnection, c: TokenCommand) -> Result<(), CliError> {
    match c {
        TokenCommand::Create { tenant, name } => {
            let t = tenants::find_by_slug(db, &tenant)
                .await?
                .ok_or_else(|| CliError::Usage(format!("no tenant '{tenant}'; list or create tenants first")))?;
            let (row, secret) = issue_token(db, &t.id, &name, "cli", None).await?;
            eprintln!(
                "token id {} for tenant {tenant}; the secret below is shown only once:",
                row.id
            );
            println!("{secret}");
        }
        TokenCommand::Revoke { id } => {
            if revoke_token(db, &id, None, "cli", None).await?.is_none() {
                return Err(CliError::Usage(format!("no active token with id '{id}'")));
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}

async fn admin_command(db: &DatabaseConnection, c: AdminCommand) -> Result<(), CliError> {
    let (principal, operator, tenant, grant) = match c {
        AdminCommand::List => {
            for g in store::admin::list(db).await? {
                let slug = match &g.tenant_id {
                    Some(id) => tenants::find(db, id).await?.map(|t| t.slug),
                    None => None,
                };
                println!(
                    "{}",
                    json!({"principal": g.principal, "role": g.role, "tenant": slug, "created_at": g.created_at})
                );
            }
            return Ok(());
        }
        AdminCommand::Grant {
            principal,
            operator,
            tenant,
        } => (principal, operator, tenant, true),
        AdminCommand::Revoke {
            principal,
            operator,
            tenant,
        } => (principal, operator, tenant, false),
    };
    let tenant_id = match tenant.as_deref() {
        Some(slug) if !operator => Some(
            tenants::find_by_slug(db, slug)
                .await?
                .ok_or_else(|| CliError::Usage(format!("no tenant '{slug}'")))?
                .id,
        ),
        _ => None,
    };
    let role = if operator { "operator" } else { "tenant_admin" };
    let tx = store::begin_write(db).await?;
    let changed = if grant {
        store::admin::grant(&tx, &principal, role, tenant_id.as_deref()).await?;
        true
    } else {
        store::admin::revoke(&tx, &principal, role, tenant_id.as_deref()).await?
    };
    if !changed {
        return Err(CliError::Usage(format!(
            "{principal} has no such grant; see `seatbridge admin list`"
        )));
    }
    // A tenant admin's grant is part of that tenant's history; operators span all tenants.
    if let Some(tenant_id) = &tenant_id {
        let event = audit::Event {
            actor: "cli",
            action: if grant { "admin.grant" } else { "admin.revoke" },
            target: &format!("Admin/{}", principal.to_lowercase()),
            before: None,
            after: Some(json!({"role": role})),
            request_id: None,
        };
        audit::append(&tx, tenant_id, event).await?;
    }
    tx.commit().await?;
    tracing::info!(%principal, role, grant, "admin role changed");
    let (verb, prep) = if grant { ("granted", "to") } else { ("revoked", "from") };
    println!("{verb} {role} {prep} {principal}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_validated() {
        use crate::licensing::valid_slug;
        assert!(valid_slug("acme-1"));
        assert!(!valid_slug("Acme"));
        assert!(!valid_slug("-x"));
        assert!(!valid_slug(""));
    }

    #[test]
    fn expiry_accepts_rfc3339_or_never() {
        assert!(parse_expiry("never").unwrap_or(Some(Utc::now())).is_none());
        assert!(parse_expiry("2027-01-31T00:00:00Z").is_ok());
        assert!(parse_expiry("tomorrow").is_err());
    }
}
