//! Discovery endpoints (RFC 7644 §4): ServiceProviderConfig, ResourceTypes, Schemas — served
//! from the documents in `scim-schemas/`, with limits filled in from configuration so the
//! advertisement is always the truth.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::ScimError;
use super::http::{base_url, check_accept, scim_response};
use super::list::list_response;
use super::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA};
use crate::app::AppState;
use crate::auth::Tenant;
use crate::license::Plan;

/// What the tenant's plan lets it see: Groups need `scim.groups`, the enterprise extension
/// `scim.enterprise`. Discovery tells each tenant the truth about its own plan.
fn visible(plan: &Plan, schema_or_type: &str) -> bool {
    match schema_or_type {
        GROUP_SCHEMA | "Group" => plan.has_feature("scim.groups"),
        ENTERPRISE_USER_SCHEMA => plan.has_feature("scim.enterprise"),
        _ => true,
    }
}

/// Schema documents the plan allows.
fn schemas_for(plan: &Plan, docs: &[Value]) -> Vec<Value> {
    docs.iter().filter(|d| visible(plan, doc_id(d))).cloned().collect()
}

/// Resource types the plan allows, with only the extensions it allows.
fn resource_types_for(plan: &Plan, docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .filter(|d| visible(plan, doc_id(d)))
        .map(|d| {
            let mut d = d.clone();
            if let Some(exts) = d.get_mut("schemaExtensions").and_then(Value::as_array_mut) {
                exts.retain(|e| visible(plan, e.get("schema").and_then(Value::as_str).unwrap_or_default()));
            }
            d
        })
        .collect()
}

async fn plan_of(req: &HttpRequest, state: &AppState, tenant: &Tenant) -> Result<Plan, ScimError> {
    super::http::service(req, state, tenant, None).plan(tenant).await
}

fn with_location(mut doc: Value, location: String) -> Value {
    if let Some(meta) = doc.get_mut("meta") {
        meta["location"] = json!(location);
    }
    doc
}

/// GET /ServiceProviderConfig.
pub async fn service_provider_config(
    req: HttpRequest,
    state: web::Data<AppState>,
    _tenant: Tenant,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let s = &state.config.scim;
    let mut doc = state.schemas.service_provider_config.clone();
    doc["bulk"] =
        json!({"supported": true, "maxOperations": s.bulk_max_operations, "maxPayloadSize": s.bulk_max_payload_bytes});
    doc["filter"] = json!({"supported": true, "maxResults": s.max_results});
    let doc = with_location(doc, format!("{}/ServiceProviderConfig", base_url(&req, &state)));
    Ok(scim_response(StatusCode::OK, &doc))
}

fn documents_response(
    req: &HttpRequest,
    state: &AppState,
    docs: &[Value],
    endpoint: &str,
    id_of: fn(&Value) -> &str,
) -> HttpResponse {
    let base = base_url(req, state);
    let items: Vec<Value> = docs
        .iter()
        .map(|d| with_location(d.clone(), format!("{base}/{endpoint}/{}", id_of(d))))
        .collect();
    let total = items.len() as u64;
    scim_response(StatusCode::OK, &list_response(total, 1, items))
}

fn document_response(
    req: &HttpRequest,
    state: &AppState,
    docs: &[Value],
    endpoint: &str,
    id: &str,
) -> Result<HttpResponse, ScimError> {
    let doc = docs
        .iter()
        .find(|d| {
            d.get("id")
                .and_then(Value::as_str)
                .is_some_and(|x| x.eq_ignore_ascii_case(id))
        })
        .ok_or_else(|| ScimError::NotFound(format!("no {endpoint} entry '{id}'")))?;
    let doc = with_location(doc.clone(), format!("{}/{endpoint}/{id}", base_url(req, state)));
    Ok(scim_response(StatusCode::OK, &doc))
}

fn doc_id(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// GET /ResourceTypes: the types this tenant's plan allows.
pub async fn resource_types(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: Tenant,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let docs = resource_types_for(
        &plan_of(&req, &state, &tenant).await?,
        &state.schemas.resource_type_documents,
    );
    Ok(documents_response(&req, &state, &docs, "ResourceTypes", doc_id))
}

/// GET /ResourceTypes/{id}.
pub async fn resource_type(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let docs = resource_types_for(
        &plan_of(&req, &state, &tenant).await?,
        &state.schemas.resource_type_documents,
    );
    document_response(&req, &state, &docs, "ResourceTypes", &id)
}

/// GET /Schemas: the schemas this tenant's plan allows.
pub async fn schemas(req: HttpRequest, state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let docs = schemas_for(&plan_of(&req, &state, &tenant).await?, &state.schemas.schema_documents);
    Ok(documents_response(&req, &state, &docs, "Schemas", doc_id))
}

/// GET /Schemas/{id}.
pub async fn schema(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let docs = schemas_for(&plan_of(&req, &state, &tenant).await?, &state.schemas.schema_documents);
    document_response(&req, &state, &docs, "Schemas", &id)
}
