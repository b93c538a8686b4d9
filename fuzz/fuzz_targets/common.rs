//! Shared fixtures and invariants for the fuzz targets.

#![allow(dead_code)]

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use seatbridge::scim::resource::ResourceMeta;
use seatbridge::scim::schema::{
    AttributeDef, Mutability, ResourceTypeDef, SchemaRegistry, ENTERPRISE_USER_SCHEMA, SEATBRIDGE_USER_SCHEMA,
};
use serde_json::{json, Value};

/// The built-in registry, loaded once per process.
pub fn registry() -> &'static SchemaRegistry {
    static REGISTRY: OnceLock<SchemaRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| match SchemaRegistry::builtin() {
        Ok(reg) => reg,
        Err(e) => panic!("built-in schemas must load: {e}"),
    })
}

/// A stored (already normalized) user document with multi-valued, complex and extension data.
pub fn stored_user() -> Value {
    json!({
        "userName": "bjensen",
        "externalId": "701984",
        "name": {"givenName": "Barbara", "middleName": "Jane", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"}],
        "roles": [{"value": "admin"}],
        ENTERPRISE_USER_SCHEMA: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        },
        SEATBRIDGE_USER_SCHEMA: {"seatType": "pro"}
    })
}

/// A stored group document (members are never part of it).
pub fn stored_group() -> Value {
    json!({"displayName": "Tour Guides", "externalId": "g-1"})
}

pub fn meta() -> ResourceMeta {
    let t = Utc.timestamp_opt(1_700_000_000, 0).single().unwrap_or_default();
    ResourceMeta {
        id: "2819c223-7f76-453a-919d-413861904646".into(),
        created: t,
        last_modified: t,
        version: 3,
        location: "https://example.com/scim/v2/Users/2819c223-7f76-453a-919d-413861904646".into(),
    }
}

/// A canonical document holds nothing the client may not write: no read-only or write-only
/// attribute (group `members` excepted: they are split off by the caller), no read-only
/// sub-attribute, and extension blocks only under their exact schema id.
pub fn assert_canonical(rt: &ResourceTypeDef, doc: &Value) {
    let Some(obj) = doc.as_object() else {
        panic!("normalized document is not an object: {doc}");
    };
    for (key, value) in obj {
        if let Some(ext) = rt.extensions.iter().find(|e| e.id == *key) {
            let Some(block) = value.as_object() else {
                panic!("extension block {key} is not an object: {value}");
            };
            assert!(!block.is_empty(), "empty extension block {key}");
            for (k, v) in block {
                let Some(def) = ext.attributes.iter().find(|a| a.name == *k) else {
                    panic!("unknown or non-canonical key {key}:{k} in {doc}");
                };
                assert_writable(def, v, &format!("{key}:{k}"), doc);
            }
            continue;
        }
        let Some(def) = rt.core.attributes.iter().find(|a| a.name == *key) else {
            panic!("unknown or non-canonical key '{key}' in {doc}");
        };
        assert_writable(def, value, key, doc);
    }
}

fn assert_writable(def: &AttributeDef, value: &Value, path: &str, doc: &Value) {
    let exempt = def.name == "members";
    assert!(
        exempt || !matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly),
        "{:?} attribute '{path}' in normalized document {doc}",
        def.mutability
    );
    assert!(!value.is_null(), "null stored for '{path}' in {doc}");
    let items: Vec<&Value> = match value {
        Value::Array(items) => {
            assert!(def.multi_valued, "array for single-valued '{path}' in {doc}");
            assert!(!items.is_empty(), "empty array stored for '{path}' in {doc}");
            items.iter().collect()
        }
        single => {
            assert!(
                !def.multi_valued,
                "multi-valued '{path}' stored as a single value in {doc}"
            );
            vec![single]
        }
    };
    for item in items {
        if let Value::Object(sub_obj) = item {
            for k in sub_obj.keys() {
                let Some(sub) = def.sub_attributes.iter().find(|s| s.name == *k) else {
                    panic!("unknown or non-canonical sub-attribute {path}.{k} in {doc}");
                };
                assert!(
                    sub.mutability != Mutability::ReadOnly,
                    "read-only sub-attribute {path}.{k} in normalized document {doc}"
                );
            }
        }
    }
}
