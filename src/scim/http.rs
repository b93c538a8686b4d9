//! The SCIM HTTP endpoints under `/scim/v2`. Handlers are thin: authenticate (the [`Tenant`]
//! extractor), parse and validate, call [`Provisioning`], render.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::Value;

use super::error::ScimError;
use super::list::ListRequest;
use super::projection::Projection;
use super::render::{resource_bytes, ListBody};
use super::resource::etag;
use super::schema::{ResourceKind, ResourceTypeDef};
use super::{bulk, discovery, SCIM_CONTENT_TYPE};
use crate::app::AppState;
use crate::auth::Tenant;
use crate::provisioning::{etag_matches, Actor, Precondition, Provisioning, StoredResource};
use crate::store::listing::ListQuery;

/// Mounts the SCIM routes; the caller puts them under `/scim/v2`.
///
/// actix tries resources in order, and each pattern with a `{…}` segment costs a regex run even
/// when it cannot match: the resource routes, where the traffic is, come first, so a
/// `GET /Users/{id}` runs one regex instead of three (6 % of the CPU under load, perf).
/// `/Users/.search` stays before `/Users/{id}`, which would take it as an id.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let base = format!("/{}", kind.endpoint());
        cfg.service(
            resource(&format!("{base}/.search"))
                .app_data(web::Data::new(kind))
                .route(web::post().to(search)),
        )
        .service(
            resource(&base)
                .app_data(web::Data::new(kind))
                .route(web::get().to(list))
                .route(web::post().to(create)),
        )
        .service(
            resource(&format!("{base}/{{id}}"))
                .app_data(web::Data::new(kind))
                .route(web::get().to(get))
                .route(web::put().to(replace))
                .route(web::patch().to(patch))
                .route(web::delete().to(delete)),
        );
    }
    cfg.service(resource("/ServiceProviderConfig").route(web::get().to(discovery::service_provider_config)))
        .service(resource("/ResourceTypes").route(web::get().to(discovery::resource_types)))
        .service(resource("/ResourceTypes/{id}").route(web::get().to(discovery::resource_type)))
        .service(resource("/Schemas").route(web::get().to(discovery::schemas)))
        .service(resource("/Schemas/{id}").route(web::get().to(discovery::schema)))
        .service(resource("/.search").route(web::post().to(search_root)))
        .service(resource("/Bulk").route(web::post().to(bulk::handle)))
        .service(web::resource("/Me").to(|| async {
            // Tokens identify a tenant, not a user, so there is no "me" (RFC 7644 §3.11).
            Err::<HttpResponse, _>(ScimError::NotImplemented(
                "/Me is not supported: SCIM tokens identify a tenant, not a user".into(),
            ))
        }));
}

/// A resource whose unsupported methods answer 405 with a SCIM body.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|req: HttpRequest| async move {
        Err::<HttpResponse, _>(ScimError::MethodNotAllowed(format!(
            "{} is not allowed on {}",
            req.method(),
            req.path()
        )))
    }))
}

/// Answer for unknown paths under `/scim/v2`.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ScimError> {
    Err(ScimError::NotFound(format!("no SCIM endpoint at {}", req.path())))
}

/// The provisioning service acting for this request's token; `body` (of a write) describes
/// the operation in the audit entry of a refusal.
pub fn service<'a>(req: &HttpRequest, state: &'a AppState, tenant: &Tenant, body: Option<&Value>) -> Provisioning<'a> {
    let request_id = req.extensions().get::<crate::app::RequestId>().map(|r| r.0.clone());
    let client = crate::auth::Client::of(req);
    let method = req.method().as_str();
    let request = crate::scim::client::RequestInfo {
        method: method.to_string(),
        path: req.path().to_string(),
        idp: client.idp,
        user_agent: client.user_agent,
        op: body.map_or_else(|| method.to_string(), |b| crate::scim::client::op_shape(method, b)),
    };
    Provisioning::new(
        &state.db,
        &state.reads,
        &state.schemas,
        Actor::scim(tenant, request_id, Some(request)),
    )
    .with_signals(&state.signals)
    .with_batcher(state.batcher.as_ref())
}

/// `{public_url or scheme://host}/scim/v2`.
pub fn base_url(req: &HttpRequest, state: &AppState) -> String {
    format!("{}/scim/v2", crate::app::public_base(req, state))
}

/// Refuses requests whose `Accept` header rules out JSON (406).
pub fn check_accept(req: &HttpRequest) -> Result<(), ScimError> {
    let Some(accept) = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(
            media.as_str(),
            "" | "*/*" | "application/*" | "application/json" | "application/scim+json"
        )
    });
    if ok {
        Ok(())
    } else {
        Err(ScimError::NotAcceptable(format!(
            "this server produces {SCIM_CONTENT_TYPE}; the Accept header '{accept}' rules it out"
        )))
    }
}

/// Reads a JSON body: content type must be JSON (415), size within the limit (413), and the
/// text must parse (400 `invalidSyntax`).
pub async fn read_json(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Value, ScimError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if ct != SCIM_CONTENT_TYPE && ct != "application/json" {
            return Err(ScimError::UnsupportedMediaType(format!(
                "send the body as {SCIM_CONTENT_TYPE} (got '{ct}')"
            )));
        }
    }
    let too_large = || ScimError::PayloadTooLarge(format!("request body exceeds the {limit}-byte limit"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ScimError::InvalidSyntax(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ScimError::InvalidSyntax("the request body is empty".into()));
    }
    serde_json::from_slice(&body).map_err(|e| ScimError::InvalidSyntax(format!("the body is not valid JSON: {e}")))
}

/// A SCIM JSON response.
pub fn scim_response(status: StatusCode, body: &Value) -> HttpResponse {
    scim_bytes_response(status, json_bytes(body))
}

/// A SCIM response whose JSON is already written.
fn scim_bytes_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE)))
        .body(body)
}

/// Serializes straight to bytes (`Value`'s `Display` goes through `fmt::Write`, which showed up
/// in profiles of large list responses). Serializing a `Value` cannot fail.
fn json_bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

fn single_response(status: StatusCode, body: Vec<u8>, version: i64, location: Option<&str>) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE)));
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        resp.insert_header((header::ETAG, v));
    }
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        resp.insert_header((header::LOCATION, loc));
    }
    resp.body(body)
}

/// What every write handler reads before calling the service: the checked JSON body, the
/// resource type and the requested projection.
struct WriteInput<'a> {
    body: Value,
    rt: &'a ResourceTypeDef,
    projection: Projection,
}

async fn write_input<'a>(
    req: &HttpRequest,
    state: &'a AppState,
    kind: ResourceKind,
    payload: web::Payload,
) -> Result<WriteInput<'a>, ScimError> {
    check_accept(req)?;
    let body = read_json(req, payload, state.config.scim.max_body_bytes).await?;
    let rt = state.schemas.resource_type(kind);
    let projection = query_projection(req, rt)?;
    Ok(WriteInput { body, rt, projection })
}

fn precondition(req: &HttpRequest) -> Result<Precondition<'_>, ScimError> {
    match req.headers().get(header::IF_MATCH) {
        None => Ok(Precondition::None),
        Some(v) => v
            .to_str()
            .map(Precondition::IfMatch)
            .map_err(|_| ScimError::InvalidVersion("If-Match is not a valid entity tag".into())),
    }
}

fn query_projection(req: &HttpRequest, rt: &ResourceTypeDef) -> Result<Projection, ScimError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Projection::parse(rt, get("attributes"), get("excludedAttributes"))
}

/// The attribute that is expensive to load for a kind (`groups` of users, `members` of groups).
fn related_attr(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "groups",
        ResourceKind::Group => "members",
    }
}

async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let rt = state.schemas.resource_type(**kind);
    let projection = query_projection(&req, rt)?;
    let svc = service(&req, &state, &tenant, None);
    let with_related = projection.wants(rt, related_attr(**kind));
    let stored = match **kind {
        ResourceKind::User => svc.get_user(&tenant, &id, with_related).await?,
        ResourceKind::Group => svc.get_group(&tenant, &id, with_related).await?,
    };
    if let Some(inm) = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        if etag_matches(inm, stored.version) {
            return Ok(HttpResponse::NotModified()
                .insert_header((header::ETAG, etag(stored.version)))
                .finish());
        }
    }
    let version = stored.version;
    let body = resource_bytes(rt, stored, &base_url(&req, &state), &projection);
    Ok(single_response(StatusCode::OK, body, version, None))
}

async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    tenant: Tenant,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    let WriteInput { body, rt, projection } = write_input(&req, &state, **kind, payload).await?;
    let svc = service(&req, &state, &tenant, Some(&body));
    let stored = match **kind {
        ResourceKind::User => svc.create_user(&tenant, &body).await?,
        ResourceKind::Group => svc.create_group(&tenant, &body).await?,
    };
    tracing::info!(resource = rt.kind.name(), id = %stored.id, "created");
    let version = stored.version;
    let base = base_url(&req, &state);
    let location = format!("{base}/{}/{}", rt.kind.endpoint(), stored.id);
    let body = resource_bytes(rt, stored, &base, &projection);
    Ok(single_response(StatusCode::CREATED, body, version, Some(&location)))
}

async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    tenant: Tenant,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    let WriteInput { body, rt, projection } = write_input(&req, &state, **kind, payload).await?;
    let pre = precondition(&req)?;
    let svc = service(&req, &state, &tenant, Some(&body));
    let stored = match **kind {
        ResourceKind::User => svc.replace_user(&tenant, &id, &body, pre).await?,
        ResourceKind::Group => svc.replace_group(&tenant, &id, &body, pre).await?,
    };
    tracing::info!(resource = rt.kind.name(), id = %stored.id, "replaced");
    let version = stored.version;
    let body = resource_bytes(rt, stored, &base_url(&req, &state), &projection);
    Ok(single_response(StatusCode::OK, body, version, None))
}

async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    tenant: Tenant,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    let WriteInput { body, rt, projection } = write_input(&req, &state, **kind, payload).await?;
    let pre = precondition(&req)?;
    let svc = service(&req, &state, &tenant, Some(&body));
    let stored = match **kind {
        ResourceKind::User => svc.patch_user(&tenant, &id, &body, pre).await?,
        ResourceKind::Group => svc.patch_group(&tenant, &id, &body, pre).await?,
    };
    tracing::info!(resource = rt.kind.name(), id = %stored.id, "patched");
    // RFC 7644 §3.5.2: a 200 carries the entire resource, a 204 nothing, and "attributes" in
    // the request asks for a 200. Groups answer 204 otherwise: echoing 50,000 members for a
    // one-member change would make every member change cost the size of the group.
    let attributes_asked = serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .unwrap_or_default()
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("attributes"));
    let no_content = !state.config.scim.patch_returns_resource || **kind == ResourceKind::Group;
    if no_content && !attributes_asked {
        return Ok(HttpResponse::NoContent()
            .insert_header((header::ETAG, etag(stored.version)))
            .finish());
    }
    let version = stored.version;
    let stored = match **kind {
        ResourceKind::User if projection.wants(rt, "groups") => svc.get_user(&tenant, &id, true).await?,
        ResourceKind::Group if projection.wants(rt, "members") => svc.get_group(&tenant, &id, true).await?,
        _ => stored,
    };
    let body = resource_bytes(rt, stored, &base_url(&req, &state), &projection);
    Ok(single_response(StatusCode::OK, body, version, None))
}

async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    let pre = precondition(&req)?;
    let svc = service(&req, &state, &tenant, None);
    match **kind {
        ResourceKind::User => svc.delete_user(&tenant, &id, pre).await?,
        ResourceKind::Group => svc.delete_group(&tenant, &id, pre).await?,
    }
    tracing::info!(resource = kind.name(), id = %id, "deleted");
    Ok(HttpResponse::NoContent().finish())
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    tenant: Tenant,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let request = ListRequest::from_query(req.query_string(), &state.config.scim)?;
    run_list(&req, &state, **kind, &tenant, request).await
}

async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    kind: web::Data<ResourceKind>,
    tenant: Tenant,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let body = read_json(&req, payload, state.config.scim.max_body_bytes).await?;
    let request = ListRequest::from_search_body(&body, &state.config.scim)?;
    run_list(&req, &state, **kind, &tenant, request).await
}

fn store_query(request: &ListRequest, offset: u64, limit: u64) -> ListQuery {
    ListQuery {
        filter: request.filter.clone(),
        sort_by: request.sort_by.clone(),
        descending: request.descending,
        offset,
        limit,
    }
}

async fn list_kind(
    svc: &Provisioning<'_>,
    tenant: &Tenant,
    kind: ResourceKind,
    q: &ListQuery,
    with_related: bool,
) -> Result<(u64, Vec<StoredResource>), ScimError> {
    match kind {
        ResourceKind::User => svc.list_users(tenant, q, with_related).await,
        ResourceKind::Group => svc.list_groups(tenant, q, with_related).await,
    }
}

async fn run_list(
    req: &HttpRequest,
    state: &AppState,
    kind: ResourceKind,
    tenant: &Tenant,
    request: ListRequest,
) -> Result<HttpResponse, ScimError> {
    let rt = state.schemas.resource_type(kind);
    let projection = Projection::parse(
        rt,
        request.attributes.as_deref(),
        request.excluded_attributes.as_deref(),
    )?;
    let svc = service(req, state, tenant, None);
    let q = store_query(&request, request.start_index - 1, request.count);
    let (total, rows) = list_kind(&svc, tenant, kind, &q, projection.wants(rt, related_attr(kind))).await?;
    let base = base_url(req, state);
    let mut body = ListBody::new(total, request.start_index, rows.len());
    for row in rows {
        body.push(rt, row, &base, &projection);
    }
    Ok(scim_bytes_response(StatusCode::OK, body.finish()))
}

/// POST /.search: searches Users then Groups as one result list (RFC 7644 §3.4.3). A filter
/// naming an attribute one type lacks simply matches nothing of that type.
async fn search_root(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: Tenant,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let body = read_json(&req, payload, state.config.scim.max_body_bytes).await?;
    let request = ListRequest::from_search_body(&body, &state.config.scim)?;
    let svc = service(&req, &state, &tenant, None);
    let base = base_url(&req, &state);
    let mut offset = request.start_index - 1;
    let mut remaining = request.count;
    let mut total = 0;
    let mut found = Vec::new();
    for kind in [ResourceKind::User, ResourceKind::Group] {
        let rt = state.schemas.resource_type(kind);
        let projection = Projection::parse(
            rt,
            request.attributes.as_deref(),
            request.excluded_attributes.as_deref(),
        )?;
        let q = store_query(&request, offset, remaining);
        let (n, rows) = match list_kind(&svc, &tenant, kind, &q, projection.wants(rt, related_attr(kind))).await {
            Ok(found) => found,
            Err(ScimError::InvalidFilter(_)) if request.filter.is_some() => (0, Vec::new()),
            Err(e) => return Err(e),
        };
        total += n;
        offset = offset.saturating_sub(n);
        remaining = remaining.saturating_sub(rows.len() as u64);
        found.push((rt, projection, rows));
    }
    let mut body = ListBody::new(
        total,
        request.start_index,
        found.iter().map(|(_, _, rows)| rows.len()).sum(),
    );
    for (rt, projection, rows) in found {
        for row in rows {
            body.push(rt, row, &base, &projection);
        }
    }
    Ok(scim_bytes_response(StatusCode::OK, body.finish()))
}
