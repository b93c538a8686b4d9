//! The admin API behind OIDC: tenants and their overview, seat-usage history, users (with
//! admin holds), SCIM tokens and the audit log. Tenant admins reach only their tenants;
//! lists page with opaque cursors.

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cursor;
use super::openapi::{Conflict, Problems};
use super::operator::load_for;
use super::ApiError;
use crate::admin::Principal;
use crate::app::AppState;
use crate::license::effective_status;
use crate::licensing::{self, NewTenant};
use crate::store::entities::{scim_token, user};
use crate::store::users::UserStatus;
use crate::store::{self, tenants, user_counts, users};
use crate::{audit, auth};

/// Page sizes are signed 64-bit in the OpenAPI document (`format: int64`), so a larger value is
/// a 400 from the query parser, as the document says; anything in range is clamped to 1–500.
fn page_limit(limit: Option<i64>) -> u64 {
    limit.unwrap_or(50).clamp(1, 500).unsigned_abs()
}

fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<crate::app::RequestId>().map(|r| r.0.clone())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size: default 50; values outside 1–500 are clamped into that range.
    limit: Option<i64>,
}

/// A tenant as lists show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantItem {
    slug: String,
    name: String,
    plan: Option<String>,
    seats: Option<i64>,
    /// `active`, `grace`, `expired` or `suspended`, as last stored.
    status: Option<String>,
    /// `null`: perpetual.
    expires_at: Option<DateTime<Utc>>,
}

/// A page of tenants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantPage {
    items: Vec<TenantItem>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

fn tenant_item(t: &store::entities::tenant::Model, l: Option<&store::entities::license::Model>) -> TenantItem {
    TenantItem {
        slug: t.slug.clone(),
        name: t.name.clone(),
        plan: l.map(|l| l.plan_name.clone()),
        seats: l.map(|l| l.seats),
        status: l.map(|l| l.status.clone()),
        expires_at: l.and_then(|l| l.expires_at),
    }
}

/// GET /tenants: every tenant for operators, one's own for tenant admins.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageQuery), responses((status = 200, description = "OK", body = TenantPage), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_tenants(
    p: Principal,
    state: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(q.limit);
    let mut after = q
        .cursor
        .as_deref()
        .map(|c| cursor::decode(c, 1))
        .transpose()?
        .map(|v| v[0].clone());
    let mut items = Vec::new();
    // A tenant admin's few tenants are picked out of the slug order; operators see every row.
    loop {
        let rows = tenants::list_page(&state.db, after.as_deref(), limit).await?;
        for t in &rows {
            after = Some(t.slug.clone());
            if p.require_tenant(&t.slug).is_err() {
                continue;
            }
            let license = tenants::find_license(&state.db, &t.id).await?;
            items.push(tenant_item(t, license.as_ref()));
            if items.len() as u64 == limit {
                let next_cursor = Some(cursor::encode(&[&t.slug]));
                return Ok(HttpResponse::Ok().json(TenantPage { items, next_cursor }));
            }
        }
        if (rows.len() as u64) < limit {
            return Ok(HttpResponse::Ok().json(TenantPage {
                items,
                next_cursor: None,
            }));
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TenantBody {
    /// 1-63 lowercase letters, digits or `-`, not starting with `-`.
    // As `licensing::valid_slug`.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*$")]
    slug: String,
    /// Display name; the slug when absent.
    name: Option<String>,
    /// The name of an existing plan.
    plan: String,
    /// Size of the default pool: 0 or more.
    #[schema(minimum = 0)]
    seats: i64,
    /// An RFC 3339 date-time; absent or `null`: perpetual.
    // The pattern repeats the shape of `format` for tools that skip `format` on a nullable string.
    #[schema(
        value_type = Option<String>,
        format = DateTime,
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
    )]
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// POST /tenants (operators).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = TenantBody, responses((status = 201, description = "Created", body = TenantItem), Problems, Conflict), security(("bearer" = []), ("session" = [])))]
pub async fn create_tenant(
    p: Principal,
    state: web::Data<AppState>,
    body: web::Json<TenantBody>,
) -> Result<HttpResponse, ApiError> {
    p.require_operator("creating a tenant")?;
    let b = body.into_inner();
    let new = NewTenant {
        slug: b.slug,
        name: b.name,
        plan: b.plan,
        seats: b.seats,
        expires_at: b.expires_at,
    };
    let (t, l) = licensing::create_tenant(&state.db, &new, &p.actor()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/tenants/{}", t.slug)))
        .json(tenant_item(&t, Some(&l))))
}

/// GET /tenants/{slug}: what the dashboard shows.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}", tag = "tenants", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = Overview), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn overview(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, license_row, plan_row) = load_for(&p, &state, &slug).await?;
    let (license, plan) = (
        tenants::license_to_domain(&license_row),
        tenants::plan_to_domain(&plan_row),
    );
    let pools = licensing::seat_pools(&state.db, &tenant.id, &license, &plan).await?;
    let (total, active, entitled) = user_counts::totals(&state.db, &tenant.id).await?;
    let idp = tenants::last_used_token(&state.db, &tenant.id).await?.map(|t| IdpView {
        kind: t.last_idp.unwrap_or_else(|| "other".into()),
        user_agent: t.last_user_agent,
        last_seen_at: t.last_used_at,
        token: t.name,
    });
    let status = effective_status(&license, &plan, store::now());
    Ok(HttpResponse::Ok().json(Overview {
        slug: tenant.slug,
        name: tenant.name,
        license: LicenseView {
            plan: license_row.plan_name,
            seats: license_row.seats,
            starts_at: license_row.starts_at,
            expires_at: license_row.expires_at,
            status: status.as_str().to_string(),
            policy: license_row.policy,
            version: license_row.version,
            usage_cap: license_row.usage_cap,
            usage_period: license_row.usage_period,
            grace_days: plan.grace_days,
        },
        pools,
        users: UserCounts {
            total,
            active,
            entitled,
        },
        idp,
        features: plan.features,
    }))
}

/// What a tenant's dashboard shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overview {
    slug: String,
    name: String,
    license: LicenseView,
    pools: Vec<store::admin::PoolSnapshot>,
    users: UserCounts,
    /// Which IdP pushes to this tenant, and when it last did; `null` before the first push.
    idp: Option<IdpView>,
    features: Vec<String>,
}

/// A license with its status as of now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LicenseView {
    plan: String,
    seats: i64,
    starts_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// `active`, `grace`, `expired` or `suspended`.
    status: String,
    /// `block_new` or `deactivate_newest`.
    policy: String,
    version: i64,
    usage_cap: Option<i64>,
    usage_period: Option<String>,
    grace_days: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserCounts {
    total: i64,
    active: i64,
    entitled: i64,
}

/// The SCIM client that last used one of the tenant's tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdpView {
    /// `okta`, `entra`, `onelogin`, `jumpcloud` or `other`.
    kind: String,
    user_agent: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
    /// The name of the token it used.
    token: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    days: Option<i64>,
}

/// GET /tenants/{slug}/seats/history?days=30: one point per day and pool, oldest first.
/// Today's point is live, so the chart ends at what the gauges show.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/seats/history", tag = "seats", params(("slug" = String, Path), HistoryQuery), responses((status = 200, description = "OK", body = History), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn seat_history(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, license, plan) = load_for(&p, &state, &slug).await?;
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let today = store::now().date_naive();
    let since = (today - chrono::Days::new(u64::try_from(days - 1).unwrap_or(0))).to_string();
    let today = today.to_string();
    let mut items: Vec<HistoryPoint> = store::admin::snapshots_since(&state.db, &tenant.id, &since)
        .await?
        .into_iter()
        .filter(|s| s.day != today)
        .map(|s| HistoryPoint {
            day: s.day,
            pool: store::admin::PoolSnapshot {
                seat_type: s.seat_type,
                in_use: s.in_use,
                waiting: s.waiting,
                limit: s.seat_limit,
            },
        })
        .collect();
    let (license, plan) = (tenants::license_to_domain(&license), tenants::plan_to_domain(&plan));
    for pool in licensing::seat_pools(&state.db, &tenant.id, &license, &plan).await? {
        items.push(HistoryPoint {
            day: today.clone(),
            pool,
        });
    }
    Ok(HttpResponse::Ok().json(History {
        tenant: tenant.slug,
        items,
    }))
}

/// Seat usage over time: one point per day and pool, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    tenant: String,
    items: Vec<HistoryPoint>,
}

/// A pool's numbers at the end of a day (today: now).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPoint {
    /// `YYYY-MM-DD`, UTC.
    day: String,
    #[serde(flatten)]
    pool: store::admin::PoolSnapshot,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    q: Option<String>,
    /// `all` (default), `active`, `inactive`, `entitled` or `waiting`.
    #[param(pattern = "^(all|active|inactive|entitled|waiting)$")]
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size: default 50; values outside 1–500 are clamped into that range.
    limit: Option<i64>,
}

/// A user as the admin side shows it: the IdP's `active` beside the license's verdict.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserItem {
    id: String,
    #[serde(rename = "userName")]
    user_name: String,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    /// What the IdP set.
    active: bool,
    /// Whether the user holds a seat.
    entitled: bool,
    seat_type: String,
    /// `seat_assigned`, `inactive`, `seat_limit`, `license_expired`, `manual` (an admin hold)…
    entitlement_reason: String,
    entitlement_updated: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

/// A page of users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    items: Vec<UserItem>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

fn user_item(u: &user::Model) -> UserItem {
    UserItem {
        id: u.id.clone(),
        user_name: u.user_name.clone(),
        display_name: u.display_name.clone(),
        external_id: u.external_id.clone(),
        active: u.active,
        entitled: u.entitled,
        seat_type: u.seat_type.clone(),
        entitlement_reason: u.entitlement_reason.clone(),
        entitlement_updated: u.entitlement_updated,
        created: u.created_at,
        updated: u.updated_at,
    }
}

/// GET /tenants/{slug}/users?q=&status=&cursor=&limit=.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/users", tag = "users", params(("slug" = String, Path), UsersQuery), responses((status = 200, description = "OK", body = UserPage), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_users(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    q: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let status = match q.status.as_deref().unwrap_or("all") {
        "all" => UserStatus::All,
        "active" => UserStatus::Active,
        "inactive" => UserStatus::Inactive,
        "entitled" => UserStatus::Entitled,
        "waiting" => UserStatus::Waiting,
        other => {
            return Err(ApiError::BadRequest(format!(
                "status '{other}' must be all, active, inactive, entitled or waiting"
            )))
        }
    };
    let after = q
        .cursor
        .as_deref()
        .map(|c| cursor::decode(c, 2))
        .transpose()?
        .map(|v| (v[0].clone(), v[1].clone()));
    let limit = page_limit(q.limit);
    let rows = users::admin_page(&state.db, &tenant.id, q.q.as_deref(), status, after, limit).await?;
    let next_cursor = rows
        .last()
        .filter(|_| rows.len() as u64 == limit)
        .map(|u| cursor::encode(&[&u.user_name_norm, &u.id]));
    let items = rows.iter().map(user_item).collect();
    Ok(HttpResponse::Ok().json(UserPage { items, next_cursor }))
}

/// POST /tenants/{slug}/users/{id}/deprovision: take the seat away and hold it.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/users/{id}/deprovision", tag = "users", params(("slug" = String, Path), ("id" = String, Path)), responses((status = 200, description = "OK", body = UserItem), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn deprovision_user(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    set_hold(p, state, path.into_inner(), true).await
}

/// POST /tenants/{slug}/users/{id}/reactivate: release a hold (409 when no seat is free).
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/users/{id}/reactivate", tag = "users", params(("slug" = String, Path), ("id" = String, Path)), responses((status = 200, description = "OK", body = UserItem), Problems, Conflict), security(("bearer" = []), ("session" = [])))]
pub async fn reactivate_user(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    set_hold(p, state, path.into_inner(), false).await
}

async fn set_hold(
    p: Principal,
    state: web::Data<AppState>,
    (slug, id): (String, String),
    hold: bool,
) -> Result<HttpResponse, ApiError> {
    p.require_tenant(&slug)?;
    let row = licensing::set_hold(&state.db, &slug, &id, hold, &p.actor()).await?;
    state.signals.committed(&row.tenant_id);
    Ok(HttpResponse::Ok().json(user_item(&row)))
}

/// A SCIM token. Only its hash is stored: `token` (the secret) is in the create answer alone.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenItem {
    id: String,
    name: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    /// The IdP detected on the last use: `okta`, `entra`, `onelogin`, `jumpcloud` or `other`.
    last_idp: Option<String>,
    last_user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// A tenant's tokens, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    items: Vec<TokenItem>,
}

fn token_item(t: &scim_token::Model) -> TokenItem {
    TokenItem {
        id: t.id.clone(),
        name: t.name.clone(),
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
        last_idp: t.last_idp.clone(),
        last_user_agent: t.last_user_agent.clone(),
        token: None,
    }
}

/// GET /tenants/{slug}/tokens: never the secrets (only their hashes are stored).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/tokens", tag = "tokens", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = TokenList), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_tokens(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let items = tenants::list_tokens(&state.db, &tenant.id)
        .await?
        .iter()
        .map(token_item)
        .collect();
    Ok(HttpResponse::Ok().json(TokenList { items }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenBody {
    /// 1 to 100 characters once leading and trailing white space is trimmed.
    // As `create_token` checks it.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
}

/// POST /tenants/{slug}/tokens: the secret is in this answer and never again.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/tokens", tag = "tokens", params(("slug" = String, Path)), request_body = TokenBody, responses((status = 201, description = "Created; the secret is in this answer only", body = TokenItem), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn create_token(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    body: web::Json<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "a token needs a name of 1 to 100 characters".into(),
        ));
    }
    let (row, secret) = auth::issue_token(&state.db, &tenant.id, name, &p.actor(), request_id(&req).as_deref()).await?;
    let item = TokenItem {
        token: Some(secret),
        ..token_item(&row)
    };
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(item))
}

/// DELETE /tenants/{slug}/tokens/{id}.
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/tokens/{id}", tag = "tokens", params(("slug" = String, Path), ("id" = String, Path)), responses((status = 204, description = "Revoked"), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn revoke_token(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (slug, id) = path.into_inner();
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    auth::revoke_token(
        &state.db,
        &id,
        Some(&tenant.id),
        &p.actor(),
        request_id(&req).as_deref(),
    )
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("no active token '{id}' in tenant '{slug}'")))?;
    state.signals.committed(&tenant.id);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size: default 50; values outside 1–500 are clamped into that range.
    limit: Option<i64>,
    action: Option<String>,
    #[serde(default)]
    refused: bool,
}

/// GET /tenants/{slug}/audit: newest first; `refused=true` shows only refused SCIM requests,
/// each with what was asked (`request`) and why it was refused.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/audit", tag = "audit", params(("slug" = String, Path), AuditQuery), responses((status = 200, description = "OK", body = AuditPage), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_audit(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let before = q.cursor.as_deref().map(cursor::decode_id).transpose()?;
    let action = if q.refused {
        Some("provisioning.refused")
    } else {
        q.action.as_deref()
    };
    let limit = page_limit(q.limit);
    let rows = store::audit::page_desc(&state.db, &tenant.id, before, action, limit).await?;
    let next_cursor = rows
        .last()
        .filter(|_| rows.len() as u64 == limit)
        .map(|e| cursor::encode(&[&e.seq.to_string()]));
    let items = rows
        .iter()
        .map(|e| {
            let mut v = audit::to_json(e);
            let request = v["after"].get("request").cloned().unwrap_or(Value::Null);
            v["request"] = request;
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuditPage { items, next_cursor }))
}

/// A page of audit entries, newest first. Each entry has `seq`, `at`, `actor`, `action`,
/// `target`, `before`, `after`, `request_id`, `prev_hash`, `hash`; a refused SCIM request
/// also `request` (method, path, idp, user_agent, op).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    items: Vec<Value>,
    /// Pass back as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// The result of walking a tenant's hash chain.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChainCheck {
    ok: bool,
    entries: u64,
    /// The first entry that does not fit the chain.
    broken_at: Option<BrokenAt>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BrokenAt {
    seq: i64,
    reason: String,
}

/// GET /tenants/{slug}/audit/verify: walks the hash chain.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/audit/verify", tag = "audit", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = ChainCheck), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn verify_audit(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let v = audit::verify(&state.db, &tenant.id).await?;
    Ok(HttpResponse::Ok().json(ChainCheck {
        ok: v.broken_at.is_none(),
        entries: v.entries,
        broken_at: v.broken_at.map(|(seq, reason)| BrokenAt { seq, reason }),
    }))
}

/// GET /tenants/{slug}/audit/export: the whole chain as JSON lines, oldest first.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/audit/export", tag = "audit", params(("slug" = String, Path)), responses((status = 200, description = "The chain as JSON lines, oldest first", body = String, content_type = "application/x-ndjson"), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn export_audit(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let mut out = String::new();
    let mut after = 0;
    loop {
        let page = store::audit::page(&state.db, &tenant.id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            out.push_str(&audit::to_json(e).to_string());
            out.push('\n');
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"audit-{}.jsonl\"", tenant.slug),
        ))
        .body(out))
}
