//! Bulk operations (RFC 7644 §3.7). Each operation runs in its own transaction through the same
//! provisioning calls as single requests; `bulkId:` references are resolved as operations
//! complete, in whatever order the references allow.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::error::ScimError;
use super::http::{base_url, check_accept, read_json, scim_response, service};
use super::resource::etag;
use super::schema::{ResourceKind, BULK_REQUEST_SCHEMA, BULK_RESPONSE_SCHEMA};
use crate::app::AppState;
use crate::auth::Tenant;
use crate::provisioning::{Precondition, Provisioning};

/// One parsed bulk operation.
#[derive(Debug, Clone)]
struct BulkOp {
    method: String,
    path: String,
    bulk_id: Option<String>,
    version: Option<String>,
    data: Option<Value>,
}

/// POST /Bulk.
pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: Tenant,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    check_accept(&req)?;
    let limits = &state.config.scim;
    let body = read_json(&req, payload, limits.bulk_max_payload_bytes).await?;
    let (ops, fail_on_errors) = parse_request(&body, limits.bulk_max_operations)?;
    let svc = service(&req, &state, &tenant, None);
    let base = base_url(&req, &state);
    let results = execute(&svc, &tenant, &ops, fail_on_errors, &base).await;
    let mut body = json!({"schemas": [BULK_RESPONSE_SCHEMA]});
    // Moved in: `json!` would deep-copy every operation's response (see `list_response`).
    body["Operations"] = Value::Array(results);
    Ok(scim_response(StatusCode::OK, &body))
}

fn parse_request(body: &Value, max_operations: usize) -> Result<(Vec<BulkOp>, Option<usize>), ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::InvalidSyntax("the bulk request must be a JSON object".into()))?;
    let schemas_ok = obj
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|u| u.as_str() == Some(BULK_REQUEST_SCHEMA)));
    if !schemas_ok {
        return Err(ScimError::InvalidSyntax(format!(
            "'schemas' must contain '{BULK_REQUEST_SCHEMA}'"
        )));
    }
    let fail_on_errors = match obj.get("failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| ScimError::InvalidValue("'failOnErrors' must be a positive integer".into()))?,
        ),
    };
    let raw_ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| ScimError::InvalidSyntax("'Operations' must be an array".into()))?;
    if raw_ops.len() > max_operations {
        return Err(ScimError::PayloadTooLarge(format!(
            "the bulk request has {} operations; the maximum is {max_operations}",
            raw_ops.len()
        )));
    }
    let ops = raw_ops.iter().map(parse_op).collect::<Result<Vec<_>, _>>()?;
    Ok((ops, fail_on_errors))
}

fn parse_op(v: &Value) -> Result<BulkOp, ScimError> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let method = text("method")
        .ok_or_else(|| ScimError::InvalidSyntax("every bulk operation needs a 'method'".into()))?
        .to_ascii_uppercase();
    if !matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(ScimError::InvalidSyntax(format!("unsupported bulk method '{method}'")));
    }
    let path = text("path").ok_or_else(|| ScimError::InvalidSyntax("every bulk operation needs a 'path'".into()))?;
    let bulk_id = text("bulkId");
    if method == "POST" && bulk_id.is_none() {
        return Err(ScimError::InvalidSyntax("a bulk POST needs a 'bulkId'".into()));
    }
    Ok(BulkOp {
        method,
        path,
        bulk_id,
        version: text("version"),
        data: v.get("data").cloned(),
    })
}

/// Runs the operations, deferring those that reference a bulkId not yet created.
async fn execute(
    svc: &Provisioning<'_>,
    tenant: &Tenant,
    ops: &[BulkOp],
    fail_on_errors: Option<usize>,
    base: &str,
) -> Vec<Value> {
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut errors = 0usize;
    loop {
        let mut progressed = false;
        for (i, op) in ops.iter().enumerate() {
            if results[i].is_some() || fail_on_errors.is_some_and(|max| errors >= max) {
                continue;
            }
            let Some(op) = resolve_refs(op, &ids) else { continue };
            progressed = true;
            let outcome = run_op(svc, tenant, &op, base).await;
            let result = match outcome {
                Ok((status, id, version)) => {
                    if let (Some(bulk_id), Some(id)) = (&op.bulk_id, &id) {
                        ids.insert(bulk_id.clone(), id.clone());
                    }
                    success(&op, status, id, version, base)
                }
                Err(e) => {
                    errors += 1;
                    failure(&op, &e)
                }
            };
            results[i] = Some(result);
        }
        if !progressed {
            break;
        }
    }
    let stopped = fail_on_errors.is_some_and(|max| errors >= max);
    ops.iter()
        .zip(results)
        .filter_map(|(op, r)| match r {
            Some(r) => Some(r),
            // Skipped after failOnErrors was reached: not reported (RFC 7644 §3.7.3).
            None if stopped => None,
            None => Some(failure(
                op,
                &ScimError::InvalidValue("this operation references a bulkId that was never created".into()),
            )),
        })
        .collect()
}

async fn run_op(
    svc: &Provisioning<'_>,
    tenant: &Tenant,
    op: &BulkOp,
    _base: &str,
) -> Result<(StatusCode, Option<String>, Option<i64>), ScimError> {
    let (kind, id) = parse_path(&op.path)?;
    let data = || {
        op.data
            .as_ref()
            .ok_or_else(|| ScimError::InvalidSyntax(format!("{} {} needs 'data'", op.method, op.path)))
    };
    let pre = op.version.as_deref().map_or(Precondition::None, Precondition::IfMatch);
    let need_id = || {
        id.clone()
            .ok_or_else(|| ScimError::InvalidPath(format!("{} needs a resource id in the path", op.method)))
    };
    let stored = match (op.method.as_str(), kind) {
        ("POST", _) if id.is_some() => {
            return Err(ScimError::InvalidPath(
                "POST goes to the collection, not to an id".into(),
            ))
        }
        ("POST", ResourceKind::User) => svc.create_user(tenant, data()?).await?,
        ("POST", ResourceKind::Group) => svc.create_group(tenant, data()?).await?,
        ("PUT", ResourceKind::User) => svc.replace_user(tenant, &need_id()?, data()?, pre).await?,
        ("PUT", ResourceKind::Group) => svc.replace_group(tenant, &need_id()?, data()?, pre).await?,
        ("PATCH", ResourceKind::User) => svc.patch_user(tenant, &need_id()?, data()?, pre).await?,
        ("PATCH", ResourceKind::Group) => svc.patch_group(tenant, &need_id()?, data()?, pre).await?,
        (_, ResourceKind::User) => {
            svc.delete_user(tenant, &need_id()?, pre).await?;
            return Ok((StatusCode::NO_CONTENT, id, None));
        }
        (_, ResourceKind::Group) => {
            svc.delete_group(tenant, &need_id()?, pre).await?;
            return Ok((StatusCode::NO_CONTENT, id, None));
        }
    };
    let status = if op.method == "POST" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Some(stored.id), Some(stored.version)))
}

/// `/Users`, `/Users/{id}`, `/Groups/{id}` (leading slash optional).
fn parse_path(path: &str) -> Result<(ResourceKind, Option<String>), ScimError> {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let kind = match parts.next() {
        Some("Users") => ResourceKind::User,
        Some("Groups") => ResourceKind::Group,
        _ => {
            return Err(ScimError::InvalidPath(format!(
                "bulk path '{path}' must start with /Users or /Groups"
            )))
        }
    };
    let id = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    if id.as_deref().is_some_and(|s| s.contains('/')) {
        return Err(ScimError::InvalidPath(format!(
            "bulk path '{path}' is not a resource path"
        )));
    }
    Ok((kind, id))
}

/// Replaces every `bulkId:x` in the path and data; `None` while some reference is unresolved.
fn resolve_refs(op: &BulkOp, ids: &HashMap<String, String>) -> Option<BulkOp> {
    let mut unresolved = false;
    let path = replace_ref(&op.path, ids, &mut unresolved);
    let data = op.data.as_ref().map(|d| replace_in_value(d, ids, &mut unresolved));
    (!unresolved).then(|| BulkOp {
        path,
        data,
        ..op.clone()
    })
}

fn replace_ref(text: &str, ids: &HashMap<String, String>, unresolved: &mut bool) -> String {
    let Some(pos) = text.find("bulkId:") else {
        return text.to_string();
    };
    let key = &text[pos + "bulkId:".len()..];
    match ids.get(key) {
        Some(id) => format!("{}{id}", &text[..pos]),
        None => {
            *unresolved = true;
            text.to_string()
        }
    }
}

fn replace_in_value(v: &Value, ids: &HashMap<String, String>, unresolved: &mut bool) -> Value {
    match v {
        Value::String(s) if s.starts_with("bulkId:") => Value::String(replace_ref(s, ids, unresolved)),
        Value::Array(items) => Value::Array(items.iter().map(|i| replace_in_value(i, ids, unresolved)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), replace_in_value(x, ids, unresolved)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn success(op: &BulkOp, status: StatusCode, id: Option<String>, version: Option<i64>, base: &str) -> Value {
    let mut r = json!({"method": op.method, "status": status.as_u16().to_string()});
    if let Some(b) = &op.bulk_id {
        r["bulkId"] = json!(b);
    }
    if let (Some(id), Ok((kind, _))) = (id, parse_path(&op.path)) {
        r["location"] = json!(format!("{base}/{}/{id}", kind.endpoint()));
    }
    if let Some(v) = version {
        r["version"] = json!(etag(v));
    }
    r
}

fn failure(op: &BulkOp, e: &ScimError) -> Value {
    let mut r = json!({"method": op.method, "status": e.status().as_u16().to_string(), "response": e.body()});
    if let Some(b) = &op.bulk_id {
        r["bulkId"] = json!(b);
    }
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bulk_refs_resolve_in_paths_and_data() {
        let ids = HashMap::from([("u1".to_string(), "abc".to_string())]);
        let op = BulkOp {
            method: "POST".into(),
            path: "/Groups".into(),
            bulk_id: Some("g".into()),
            version: None,
            data: Some(json!({"members":[{"value":"bulkId:u1"}]})),
        };
        let resolved = resolve_refs(&op, &ids).unwrap();
        assert_eq!(resolved.data.unwrap()["members"][0]["value"], "abc");
        let pending = BulkOp {
            data: Some(json!({"members":[{"value":"bulkId:u2"}]})),
            ..op
        };
        assert!(resolve_refs(&pending, &ids).is_none());
    }

    #[test]
    fn too_many_operations_is_413() {
        let ops: Vec<Value> = (0..3)
            .map(|i| json!({"method":"POST","path":"/Users","bulkId":i.to_string(),"data":{}}))
            .collect();
        let body = json!({"schemas":[BULK_REQUEST_SCHEMA],"Operations":ops});
        assert!(matches!(parse_request(&body, 2), Err(ScimError::PayloadTooLarge(_))));
        assert!(parse_request(&body, 3).is_ok());
    }

    #[test]
    fn paths_are_checked() {
        assert!(parse_path("/Users/1").is_ok());
        assert!(parse_path("/Nope").is_err());
        assert!(parse_path("/Users/1/x").is_err());
    }
}
