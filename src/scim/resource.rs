//! Resource documents: validating client input against the schema, and rendering stored
//! documents back to SCIM JSON.
//!
//! A *document* is the canonical, stored form of a resource: attribute names exactly as the
//! schema spells them, extension attributes under their schema URN, values type-checked, and
//! nothing the client may not write (`id`, `meta`, read-only attributes, `password`).

use chrono::{DateTime, Utc};

/// RFC 3339 with millisecond precision and `Z`, the form used in `meta` and in stored documents.
pub use super::json_out::format_datetime;
use serde_json::{Map, Value};
use validator::ValidateEmail;

use super::error::ScimError;
use super::schema::{AttrType, AttributeDef, Mutability, ResourceTypeDef, SchemaDef};

/// Validates a POST/PUT body's `schemas` list: it must be a list of strings naming the resource's
/// core schema; unknown IETF schema URNs are refused, vendor URIs are tolerated.
pub fn check_schemas(rt: &ResourceTypeDef, input: &Value) -> Result<(), ScimError> {
    let Some(schemas) = input.get("schemas") else {
        return Ok(());
    };
    let list = schemas
        .as_array()
        .ok_or_else(|| ScimError::InvalidSyntax("'schemas' must be an array of schema URIs".into()))?;
    let mut has_core = false;
    for uri in list {
        let uri = uri
            .as_str()
            .ok_or_else(|| ScimError::InvalidSyntax("'schemas' must be an array of schema URIs".into()))?;
        if !rt.accepts_schema_uri(uri) {
            return Err(ScimError::InvalidValue(format!(
                "unknown schema '{uri}' for resource type {}",
                rt.kind.name()
            )));
        }
        has_core |= uri.eq_ignore_ascii_case(&rt.core.id);
    }
    if has_core {
        Ok(())
    } else {
        Err(ScimError::InvalidValue(format!(
            "'schemas' must contain '{}'",
            rt.core.id
        )))
    }
}

/// Turns client JSON (a POST/PUT body, or a document after PATCH) into a canonical document.
///
/// Unknown attributes and vendor-namespaced blocks are ignored (IdPs send plenty); read-only
/// attributes are dropped; `null` and empty arrays mean "unassigned"; wrong types are refused.
pub fn normalize_resource(rt: &ResourceTypeDef, input: &Value) -> Result<Value, ScimError> {
    let obj = input
        .as_object()
        .ok_or_else(|| ScimError::InvalidSyntax("the resource must be a JSON object".into()))?;
    let mut out = Map::new();
    for (key, value) in obj {
        // `get`, not `[..4]`: a key may start with a multi-byte character (a panic, found by
        // conformance/http-fuzz).
        if key.len() > 4 && key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
            normalize_urn_key(rt, key, value, &mut out)?;
            continue;
        }
        if let Some(def) = rt.core.attribute(key) {
            put_normalized(&mut out, def, value, &def.name)?;
        }
    }
    check_required(&rt.core.attributes, &out, "")?;
    for ext in &rt.extensions {
        if let Some(Value::Object(ext_obj)) = out.get(&ext.id) {
            check_required(&ext.attributes, ext_obj, &ext.id)?;
        }
    }
    Ok(Value::Object(out))
}

/// A key that starts with `urn:` is either a whole extension block
/// (`"urn:…:enterprise:2.0:User": {…}`) or one attribute with its schema prefix
/// (`"urn:…:enterprise:2.0:User:department": "x"`, as PATCH value maps carry).
fn normalize_urn_key(
    rt: &ResourceTypeDef,
    key: &str,
    value: &Value,
    out: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    if let Some((schema, is_core)) = rt.schema_by_urn(key) {
        let block = value
            .as_object()
            .ok_or_else(|| ScimError::InvalidSyntax(format!("'{key}' must be a JSON object")))?;
        if is_core {
            for (k, v) in block {
                if let Some(def) = schema.attribute(k) {
                    put_normalized(out, def, v, &def.name)?;
                }
            }
            return Ok(());
        }
        let mut target = take_block(out, schema);
        for (k, v) in block {
            if let Some(def) = schema.attribute(k) {
                put_normalized(&mut target, def, v, &format!("{}:{}", schema.id, def.name))?;
            }
        }
        put_block(out, schema, target);
        return Ok(());
    }
    if let Some((urn, attr)) = key.rsplit_once(':') {
        if let Some((schema, is_core)) = rt.schema_by_urn(urn) {
            let attr_name = attr.split('.').next().unwrap_or(attr);
            // Same rule as for unprefixed keys: read-only and write-only attributes are dropped
            // (without it, `…:core:2.0:User:password` was stored; found by `fuzz/`).
            if let Some(def) = schema.attribute(attr_name).filter(|d| is_client_stored(d)) {
                // Dotted sub-attribute keys (`…:manager.value`) are rebuilt as nested objects.
                let nested = nest_dotted(attr, value);
                let Some(v) = first_value(&nested) else { return Ok(()) };
                if is_core {
                    merge_normalized(out, def, v)?;
                } else {
                    let mut target = take_block(out, schema);
                    merge_normalized(&mut target, def, v)?;
                    put_block(out, schema, target);
                }
            }
            return Ok(());
        }
    }
    if key.to_ascii_lowercase().starts_with("urn:ietf:params:scim:schemas:") {
        return Err(ScimError::InvalidValue(format!("unknown schema or attribute '{key}'")));
    }
    Ok(())
}

fn first_value(v: &Value) -> Option<&Value> {
    v.as_object().and_then(|o| o.values().next())
}

/// `("name.givenName", "x")` → `{"name": {"givenName": "x"}}`.
fn nest_dotted(key: &str, value: &Value) -> Value {
    match key.split_once('.') {
        Some((head, rest)) => {
            let mut m = Map::new();
            m.insert(head.to_string(), nest_dotted(rest, value));
            Value::Object(m)
        }
        None => {
            let mut m = Map::new();
            m.insert(key.to_string(), value.clone());
            Value::Object(m)
        }
    }
}

/// Takes the extension's block out of the document (to be put back with `put_block`), so it can
/// be edited while the rest of the document is borrowed.
fn take_block(out: &mut Map<String, Value>, schema: &SchemaDef) -> Map<String, Value> {
    match out.remove(&schema.id) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn put_block(out: &mut Map<String, Value>, schema: &SchemaDef, block: Map<String, Value>) {
    if !block.is_empty() {
        out.insert(schema.id.clone(), Value::Object(block));
    }
}

/// Merges a normalized value into `target`, combining complex values key by key (so that
/// `name.givenName` and `name.familyName` given separately both survive).
fn merge_normalized(target: &mut Map<String, Value>, def: &AttributeDef, value: &Value) -> Result<(), ScimError> {
    let path = def.name.clone();
    match (normalize_value(def, value, &path)?, target.get_mut(&def.name)) {
        (Some(Value::Object(new)), Some(Value::Object(existing))) if !def.multi_valued => {
            existing.extend(new);
        }
        (Some(v), _) => {
            target.insert(def.name.clone(), v);
        }
        (None, _) => {
            target.remove(&def.name);
        }
    }
    Ok(())
}

fn put_normalized(
    out: &mut Map<String, Value>,
    def: &AttributeDef,
    value: &Value,
    path: &str,
) -> Result<(), ScimError> {
    if !is_client_stored(def) {
        return Ok(());
    }
    if let Some(v) = normalize_value(def, value, path)? {
        out.insert(def.name.clone(), v);
    }
    Ok(())
}

/// May a client-supplied value of this attribute be stored? Read-only attributes are the
/// server's, write-only ones (`password`) are never kept; group `members` are split off by the
/// caller.
fn is_client_stored(def: &AttributeDef) -> bool {
    !matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly) || def.name == "members"
}

/// Validates one attribute value against its definition. `Ok(None)` means "unassigned".
pub fn normalize_value(def: &AttributeDef, value: &Value, path: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = normalize_single(def, item, path)? {
                out.push(v);
            }
        }
        if def.has_primary() {
            check_single_primary(&out, path)?;
        }
        return Ok(if out.is_empty() { None } else { Some(Value::Array(out)) });
    }
    if value.is_array() {
        return Err(ScimError::InvalidValue(format!(
            "attribute '{path}' is single-valued, not an array"
        )));
    }
    normalize_single(def, value, path)
}

fn check_single_primary(items: &[Value], path: &str) -> Result<(), ScimError> {
    let primaries = items
        .iter()
        .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(ScimError::InvalidValue(format!(
            "at most one value of '{path}' may be primary"
        )));
    }
    Ok(())
}

fn normalize_single(def: &AttributeDef, value: &Value, path: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    match def.attr_type {
        AttrType::Complex => normalize_complex(def, value, path),
        AttrType::Boolean => parse_bool(value)
            .map(|b| Some(Value::Bool(b)))
            .ok_or_else(|| type_error(path, "a boolean")),
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(value.clone())),
            _ => Err(type_error(path, "an integer")),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(Some(value.clone())),
            _ => Err(type_error(path, "a number")),
        },
        AttrType::DateTime => {
            let s = value
                .as_str()
                .ok_or_else(|| type_error(path, "an RFC 3339 dateTime string"))?;
            let parsed =
                DateTime::parse_from_rfc3339(s).map_err(|_| type_error(path, "an RFC 3339 dateTime string"))?;
            Ok(Some(Value::String(format_datetime(&parsed.with_timezone(&Utc)))))
        }
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            let s = value.as_str().ok_or_else(|| type_error(path, "a string"))?;
            if path.eq_ignore_ascii_case("emails.value") && !s.validate_email() {
                return Err(ScimError::InvalidValue(format!("'{s}' is not a valid email address")));
            }
            Ok(Some(value.clone()))
        }
    }
}

fn normalize_complex(def: &AttributeDef, value: &Value, path: &str) -> Result<Option<Value>, ScimError> {
    let obj = value.as_object().ok_or_else(|| type_error(path, "a JSON object"))?;
    let mut out = Map::new();
    for (k, v) in obj {
        let Some(sub) = def.sub_attribute(k) else { continue };
        // `members.display` and `manager.displayName` are read-only: the server fills them in.
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        let sub_path = format!("{path}.{}", sub.name);
        if let Some(v) = normalize_single(sub, v, &sub_path)? {
            out.insert(sub.name.clone(), v);
        }
    }
    check_required(&def.sub_attributes, &out, path)?;
    Ok(if out.is_empty() { None } else { Some(Value::Object(out)) })
}

fn check_required(defs: &[AttributeDef], obj: &Map<String, Value>, prefix: &str) -> Result<(), ScimError> {
    for def in defs
        .iter()
        .filter(|d| d.required && d.mutability != Mutability::ReadOnly)
    {
        if !obj.contains_key(&def.name) {
            let name = if prefix.is_empty() {
                def.name.clone()
            } else {
                format!("{prefix}.{}", def.name)
            };
            return Err(ScimError::InvalidValue(format!(
                "required attribute '{name}' is missing"
            )));
        }
    }
    Ok(())
}

/// Booleans as JSON booleans, or as the strings `"True"`/`"False"` that Entra ID sends.
pub fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn type_error(path: &str, expected: &str) -> ScimError {
    ScimError::InvalidValue(format!("attribute '{path}' must be {expected}"))
}

/// Refuses a change to any attribute whose mutability is `immutable` once it has a value
/// (RFC 7643 §7), comparing the stored document with the proposed one.
pub fn check_immutable(rt: &ResourceTypeDef, old: &Value, new: &Value) -> Result<(), ScimError> {
    let schemas = std::iter::once((None, &rt.core)).chain(rt.extensions.iter().map(|e| (Some(e.id.as_str()), e)));
    for (urn, schema) in schemas {
        let (old_obj, new_obj) = match urn {
            None => (Some(old), Some(new)),
            Some(u) => (old.get(u), new.get(u)),
        };
        for def in schema
            .attributes
            .iter()
            .filter(|d| d.mutability == Mutability::Immutable)
        {
            let before = old_obj.and_then(|o| o.get(&def.name));
            let after = new_obj.and_then(|o| o.get(&def.name));
            if before.is_some() && before != after {
                return Err(ScimError::Mutability(format!("attribute '{}' is immutable", def.name)));
            }
        }
    }
    Ok(())
}

/// Server-maintained facts about a stored resource, rendered as `id` and `meta`.
#[derive(Debug, Clone)]
pub struct ResourceMeta {
    pub id: String,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: i64,
    /// Absolute URL of the resource.
    pub location: String,
}

/// The weak entity tag for a resource version, as used in `meta.version` and `ETag`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Renders a stored document as a full SCIM resource (before projection).
/// `schemas` lists the core schema plus every extension present in the document. Takes the
/// document by value: copying it was a deep clone of every attribute per resource rendered.
pub fn render(rt: &ResourceTypeDef, doc: Value, meta: &ResourceMeta) -> Value {
    let mut out = Map::new();
    let mut schemas = vec![Value::String(rt.core.id.clone())];
    schemas.extend(
        rt.extensions
            .iter()
            .filter(|e| doc.get(&e.id).is_some())
            .map(|e| Value::String(e.id.clone())),
    );
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::String(meta.id.clone()));
    if let Value::Object(obj) = doc {
        // `id` and `schemas` are the server's, whatever a document holds.
        out.extend(obj.into_iter().filter(|(k, _)| k != "id" && k != "schemas"));
    }
    out.insert(
        "meta".into(),
        serde_json::json!({
            "resourceType": rt.kind.name(),
            "created": format_datetime(&meta.created),
            "lastModified": format_datetime(&meta.last_modified),
            "location": meta.location,
            "version": etag(meta.version),
        }),
    );
    Value::Object(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::scim::schema::{SchemaRegistry, ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    fn reg() -> SchemaRegistry {
        SchemaRegistry::builtin().unwrap()
    }

    #[test]
    fn canonicalizes_names_and_drops_read_only_and_password() {
        let r = reg();
        let doc = normalize_resource(
            &r.user,
            &json!({"schemas":[USER_SCHEMA], "USERNAME":"bjensen", "id":"x", "meta":{"created":"x"},
                    "password":"secret", "groups":[{"value":"g"}], "roles": [], "Name":{"GivenName":"Barbara"}}),
        )
        .unwrap();
        assert_eq!(doc, json!({"userName":"bjensen", "name":{"givenName":"Barbara"}}));
    }

    #[test]
    fn required_user_name_is_enforced() {
        let err = normalize_resource(&reg().user, &json!({"displayName":"x"})).unwrap_err();
        assert!(matches!(err, ScimError::InvalidValue(_)), "{err:?}");
    }

    #[test]
    fn entra_boolean_strings_are_accepted() {
        let doc = normalize_resource(&reg().user, &json!({"userName":"a","active":"False"})).unwrap();
        assert_eq!(doc["active"], json!(false));
    }

    #[test]
    fn wrong_types_are_invalid_value() {
        let r = reg();
        for body in [
            json!({"userName": 5}),
            json!({"userName":"a","active":"maybe"}),
            json!({"userName":"a","name":"x"}),
        ] {
            assert!(
                matches!(normalize_resource(&r.user, &body), Err(ScimError::InvalidValue(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn invalid_email_is_refused() {
        let err = normalize_resource(
            &reg().user,
            &json!({"userName":"a","emails":[{"value":"not-an-email"}]}),
        );
        assert!(matches!(err, Err(ScimError::InvalidValue(_))));
    }

    #[test]
    fn two_primaries_are_refused() {
        let body =
            json!({"userName":"a","emails":[{"value":"a@x.com","primary":true},{"value":"b@x.com","primary":true}]});
        assert!(matches!(
            normalize_resource(&reg().user, &body),
            Err(ScimError::InvalidValue(_))
        ));
    }

    #[test]
    fn extension_blocks_and_prefixed_keys_land_under_the_urn() {
        let r = reg();
        let doc = normalize_resource(
            &r.user,
            &json!({"userName":"a",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber":"7"},
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"R&D",
                    "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName":"Bo"}),
        )
        .unwrap();
        assert_eq!(
            doc[ENTERPRISE_USER_SCHEMA],
            json!({"employeeNumber":"7","department":"R&D"})
        );
        assert_eq!(doc["name"], json!({"givenName":"Bo"}));
    }

    #[test]
    fn vendor_blocks_are_ignored_but_unknown_ietf_blocks_refused() {
        let r = reg();
        let ok = normalize_resource(
            &r.group,
            &json!({"displayName":"g",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group": {"x":1}}),
        );
        assert!(ok.is_ok());
        let bad = normalize_resource(
            &r.group,
            &json!({"displayName":"g","urn:ietf:params:scim:schemas:extension:nope:2.0:Group":{}}),
        );
        assert!(matches!(bad, Err(ScimError::InvalidValue(_))));
    }

    #[test]
    fn check_schemas_requires_core_and_tolerates_vendor_uris() {
        let r = reg();
        assert!(check_schemas(
            &r.group,
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"]})
        )
        .is_ok());
        assert!(check_schemas(
            &r.group,
            &json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]})
        )
        .is_err());
        assert!(check_schemas(&r.group, &json!({"schemas":"x"})).is_err());
    }

    #[test]
    fn immutable_member_value_cannot_change_but_may_be_set() {
        let r = reg();
        // Group core has no immutable top-level attribute: any change passes.
        assert!(check_immutable(&r.group, &json!({"displayName":"a"}), &json!({"displayName":"b"})).is_ok());
    }

    /// Found by `fuzz/` (target `resource`): a schema-prefixed key bypassed the rule that
    /// read-only and write-only attributes are dropped, so the password was stored, and the
    /// document changed when normalized again.
    #[test]
    fn fuzz_regression_prefixed_keys_cannot_store_read_only_or_write_only_attributes() {
        let r = reg();
        for key in [
            "urn:ietf:params:scim:schemas:core:2.0:User:password",
            "urn:ietf:params:scim:schemas:extension:seatbridge:2.0:User:entitled",
            "urn:ietf:params:scim:schemas:core:2.0:User:groups",
        ] {
            let input = json!({"userName": "a", key: true});
            let doc = normalize_resource(&r.user, &input).unwrap();
            assert_eq!(doc, json!({"userName": "a"}), "{key}");
            assert_eq!(normalize_resource(&r.user, &doc).unwrap(), doc);
        }
        // Writable attributes still go through the prefixed form.
        let doc = normalize_resource(
            &r.user,
            &json!({"userName": "a", "urn:ietf:params:scim:schemas:extension:seatbridge:2.0:User:seatType": "pro"}),
        )
        .unwrap();
        assert_eq!(
            doc[crate::scim::schema::SEATBRIDGE_USER_SCHEMA],
            json!({"seatType": "pro"})
        );
    }

    /// A key whose fourth byte is inside a multi-byte character (`"abcé"`) must not panic.
    #[test]
    fn fuzz_regression_multibyte_key_prefix_does_not_panic() {
        let doc = normalize_resource(&reg().user, &json!({"userName": "a", "abc\u{e9}x": 1, "\u{e9}rn:x": 1})).unwrap();
        assert_eq!(doc, json!({"userName": "a"}));
    }

    #[test]
    fn render_lists_present_extensions_and_meta() {
        let r = reg();
        let now = Utc::now();
        let meta = ResourceMeta {
            id: "1".into(),
            created: now,
            last_modified: now,
            version: 3,
            location: "http://h/Users/1".into(),
        };
        let out = render(
            &r.user,
            json!({"userName":"a", ENTERPRISE_USER_SCHEMA: {"department":"x"}}),
            &meta,
        );
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        assert_eq!(out["meta"]["version"], "W/\"3\"");
        assert_eq!(out["meta"]["resourceType"], "User");
    }
}
