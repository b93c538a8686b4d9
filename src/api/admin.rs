//! The admin API behind OIDC: tenants and their overview, seat-usage history, users (with
//! admin holds), SCIM tokens and the audit log. Tenant admins reach only their tenants;
//! lists page with opaque cursors.

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::cursor;
use super::openapi::{Conflict, Problems};
use super::operator::{load_for, pools_json};
use super::ApiError;
use crate::admin::Principal;
use crate::app::AppState;
use crate::license::effective_status;
use crate::licensing::{self, NewTenant};
use crate::store::entities::{scim_token, user};
use crate::store::users::UserStatus;
use crate::store::{self, tenants, users};
use crate::{audit, auth};

fn page_limit(limit: Option<u64>) -> u64 {
    limit.unwrap_or(50).clamp(1, 500)
}

fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<crate::app::RequestId>().map(|r| r.0.clone())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<u64>,
}

fn tenant_item(t: &store::entities::tenant::Model, l: Option<&store::entities::license::Model>) -> Value {
    json!({"slug": t.slug, "name": t.name, "plan": l.map(|l| &l.plan_name), "seats": l.map(|l| l.seats),
           "status": l.map(|l| &l.status), "expires_at": l.and_then(|l| l.expires_at)})
}

/// GET /tenants: every tenant for operators, one's own for tenant admins.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
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
                let next = cursor::encode(&[&t.slug]);
                return Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next})));
            }
        }
        if (rows.len() as u64) < limit {
            return Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})));
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TenantBody {
    slug: String,
    name: Option<String>,
    plan: String,
    seats: i64,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// POST /tenants (operators).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = TenantBody, responses((status = 201, description = "Created", body = serde_json::Value), Problems, Conflict), security(("bearer" = []), ("session" = [])))]
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
#[utoipa::path(get, path = "/api/v1/tenants/{slug}", tag = "tenants", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
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
    let (total, active, entitled) = users::counts(&state.db, &tenant.id).await?;
    let idp = tenants::last_used_token(&state.db, &tenant.id).await?.map(|t| {
        json!({"kind": t.last_idp.as_deref().unwrap_or("other"), "user_agent": t.last_user_agent,
               "last_seen_at": t.last_used_at, "token": t.name})
    });
    let status = effective_status(&license, &plan, store::now());
    Ok(HttpResponse::Ok().json(json!({
        "slug": tenant.slug, "name": tenant.name,
        "license": {"plan": license_row.plan_name, "seats": license_row.seats, "starts_at": license_row.starts_at,
                    "expires_at": license_row.expires_at, "status": status.as_str(), "policy": license_row.policy,
                    "version": license_row.version, "usage_cap": license_row.usage_cap,
                    "usage_period": license_row.usage_period, "grace_days": plan.grace_days},
        "pools": pools_json(&pools),
        "users": {"total": total, "active": active, "entitled": entitled},
        "idp": idp,
        "features": plan.features,
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    days: Option<i64>,
}

/// GET /tenants/{slug}/seats/history?days=30: one point per day and pool, oldest first.
/// Today's point is live, so the chart ends at what the gauges show.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/seats/history", tag = "seats", params(("slug" = String, Path), HistoryQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
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
    let mut items: Vec<Value> = store::admin::snapshots_since(&state.db, &tenant.id, &since)
        .await?
        .into_iter()
        .filter(|s| s.day != today)
        .map(|s| json!({"day": s.day, "seat_type": s.seat_type, "in_use": s.in_use, "waiting": s.waiting, "limit": s.seat_limit}))
        .collect();
    let (license, plan) = (tenants::license_to_domain(&license), tenants::plan_to_domain(&plan));
    for pool in licensing::seat_pools(&state.db, &tenant.id, &license, &plan).await? {
        items.push(json!({"day": today, "seat_type": pool.seat_type, "in_use": pool.in_use,
                          "waiting": pool.waiting, "limit": pool.limit}));
    }
    Ok(HttpResponse::Ok().json(json!({"tenant": tenant.slug, "items": items})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    q: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

fn user_item(u: &user::Model) -> Value {
    json!({"id": u.id, "userName": u.user_name, "displayName": u.display_name, "externalId": u.external_id,
           "active": u.active, "entitled": u.entitled, "seat_type": u.seat_type,
           "entitlement_reason": u.entitlement_reason, "entitlement_updated": u.entitlement_updated,
           "created": u.created_at, "updated": u.updated_at})
}

/// GET /tenants/{slug}/users?q=&status=&cursor=&limit=.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/users", tag = "users", params(("slug" = String, Path), UsersQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
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
    let next = rows
        .last()
        .filter(|_| rows.len() as u64 == limit)
        .map(|u| cursor::encode(&[&u.user_name_norm, &u.id]));
    let items: Vec<Value> = rows.iter().map(user_item).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next})))
}

/// POST /tenants/{slug}/users/{id}/deprovision: take the seat away and hold it.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/users/{id}/deprovision", tag = "users", params(("slug" = String, Path), ("id" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn deprovision_user(
    p: Principal,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    set_hold(p, state, path.into_inner(), true).await
}

/// POST /tenants/{slug}/users/{id}/reactivate: release a hold (409 when no seat is free).
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/users/{id}/reactivate", tag = "users", params(("slug" = String, Path), ("id" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems, Conflict), security(("bearer" = []), ("session" = [])))]
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

fn token_item(t: &scim_token::Model) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": t.created_at, "last_used_at": t.last_used_at,
           "revoked_at": t.revoked_at, "last_idp": t.last_idp, "last_user_agent": t.last_user_agent})
}

/// GET /tenants/{slug}/tokens: never the secrets (only their hashes are stored).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/tokens", tag = "tokens", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_tokens(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let items: Vec<Value> = tenants::list_tokens(&state.db, &tenant.id)
        .await?
        .iter()
        .map(token_item)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenBody {
    name: String,
}

/// POST /tenants/{slug}/tokens: the secret is in this answer and never again.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/tokens", tag = "tokens", params(("slug" = String, Path)), request_body = TokenBody, responses((status = 201, description = "Created; the secret is in this answer only", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn create_token(
    req: HttpRequest,
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    body: web::Json<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::BadRequest(
            "a token needs a name of 1 to 100 characters".into(),
        ));
    }
    let (row, secret) = auth::issue_token(&state.db, &tenant.id, name, &p.actor(), request_id(&req).as_deref()).await?;
    let mut item = token_item(&row);
    item["token"] = json!(secret);
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
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    cursor: Option<String>,
    limit: Option<u64>,
    action: Option<String>,
    #[serde(default)]
    refused: bool,
}

/// GET /tenants/{slug}/audit: newest first; `refused=true` shows only refused SCIM requests,
/// each with what was asked (`request`) and why it was refused.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/audit", tag = "audit", params(("slug" = String, Path), AuditQuery), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn list_audit(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| cursor::decode(c, 1))
        .transpose()?
        .map(|v| {
            v[0].parse::<i64>()
                .map_err(|_| ApiError::BadRequest("invalid cursor".into()))
        })
        .transpose()?;
    let action = if q.refused {
        Some("provisioning.refused")
    } else {
        q.action.as_deref()
    };
    let limit = page_limit(q.limit);
    let rows = store::audit::page_desc(&state.db, &tenant.id, before, action, limit).await?;
    let next = rows
        .last()
        .filter(|_| rows.len() as u64 == limit)
        .map(|e| cursor::encode(&[&e.seq.to_string()]));
    let items: Vec<Value> = rows
        .iter()
        .map(|e| {
            let mut v = audit::to_json(e);
            let request = v["after"].get("request").cloned().unwrap_or(Value::Null);
            v["request"] = request;
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next})))
}

/// GET /tenants/{slug}/audit/verify: walks the hash chain.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/audit/verify", tag = "audit", params(("slug" = String, Path)), responses((status = 200, description = "OK", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
pub async fn verify_audit(
    p: Principal,
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, _, _) = load_for(&p, &state, &slug).await?;
    let v = audit::verify(&state.db, &tenant.id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "ok": v.broken_at.is_none(), "entries": v.entries,
        "broken_at": v.broken_at.map(|(seq, why)| json!({"seq": seq, "reason": why})),
    })))
}

/// GET /tenants/{slug}/audit/export: the whole chain as JSON lines, oldest first.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/audit/export", tag = "audit", params(("slug" = String, Path)), responses((status = 200, description = "JSON lines (application/x-ndjson)", body = serde_json::Value), Problems), security(("bearer" = []), ("session" = [])))]
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
