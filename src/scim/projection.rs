//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) combined with each attribute's
//! `returned` characteristic (RFC 7643 §7).

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{parse_patch_path, AttrPath};
use super::schema::{AttributeDef, ResourceTypeDef, Returned};

/// One attribute named in `attributes`/`excludedAttributes`, in canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    /// Extension URN, or `None` for core/common attributes.
    urn: Option<String>,
    attr: String,
    sub: Option<String>,
}

/// Which attributes a response carries.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    attributes: Vec<Named>,
    excluded: Vec<Named>,
}

impl Projection {
    /// Parses the comma-separated lists. Names the schema does not know are ignored: a client
    /// asking for an attribute we do not have simply does not get it.
    pub fn parse(rt: &ResourceTypeDef, attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        Ok(Projection {
            attributes: parse_list(rt, attributes)?,
            excluded: parse_list(rt, excluded)?,
        })
    }

    /// Builds a projection from already-split lists (the `/.search` body form).
    pub fn from_lists(rt: &ResourceTypeDef, attributes: &[String], excluded: &[String]) -> Result<Self, ScimError> {
        Self::parse(rt, Some(&attributes.join(",")), Some(&excluded.join(",")))
    }

    /// Does the response need this top-level core attribute at all? Lets callers skip loading
    /// expensive attributes (`members`, `groups`) nobody will see.
    pub fn wants(&self, rt: &ResourceTypeDef, attr: &str) -> bool {
        let Some(def) = rt.core.attribute(attr) else {
            return false;
        };
        self.keeps(def, None).is_some()
    }

    /// True when neither `attributes` nor `excludedAttributes` names anything: every attribute
    /// returned by default is shown.
    pub fn is_default(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Applies the projection to a rendered resource.
    pub fn apply(&self, rt: &ResourceTypeDef, resource: Value) -> Value {
        let Value::Object(obj) = resource else { return resource };
        if self.is_default() {
            return apply_default(rt, obj);
        }
        self.apply_lists(rt, obj)
    }

    /// [`Self::apply`] when `attributes` or `excludedAttributes` name something.
    fn apply_lists(&self, rt: &ResourceTypeDef, obj: Map<String, Value>) -> Value {
        let mut out = Map::with_capacity(obj.len());
        for (key, value) in obj {
            if key == "schemas" || key == "id" {
                out.insert(key, value);
                continue;
            }
            if let Some(ext) = rt.extension(&key) {
                let names_block = |list: &[Named]| list.iter().any(|n| n.urn.is_none() && n.attr == ext.id);
                if self.attributes.is_empty() && names_block(&self.excluded) {
                    continue;
                }
                if let Value::Object(ext_obj) = value {
                    let kept = if names_block(&self.attributes) {
                        Projection::default().filter_object(&ext.attributes, Some(&ext.id), ext_obj)
                    } else {
                        self.filter_object(&ext.attributes, Some(&ext.id), ext_obj)
                    };
                    if !kept.is_empty() {
                        out.insert(key, Value::Object(kept));
                    }
                }
                continue;
            }
            let def = rt
                .core
                .attribute(&key)
                .or_else(|| rt.common.iter().find(|d| d.name == key));
            if let Some(def) = def {
                if let Some(v) = self.project_value(def, None, value) {
                    out.insert(key, v);
                }
            }
        }
        Value::Object(out)
    }

    fn filter_object(&self, defs: &[AttributeDef], urn: Option<&str>, obj: Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in obj {
            if let Some(def) = defs.iter().find(|d| d.name == key) {
                if let Some(v) = self.project_value(def, urn, value) {
                    out.insert(key, v);
                }
            }
        }
        out
    }

    /// Keeps, trims or drops one attribute value.
    fn project_value(&self, def: &AttributeDef, urn: Option<&str>, value: Value) -> Option<Value> {
        match self.keeps(def, urn)? {
            Keep::Whole => Some(value),
            Keep::Subs(subs) => trim_subs(def, value, &subs),
            Keep::AllBut(subs) => drop_subs(value, &subs),
        }
    }

    fn keeps(&self, def: &AttributeDef, urn: Option<&str>) -> Option<Keep> {
        match def.returned {
            Returned::Never => return None,
            Returned::Always => return Some(Keep::Whole),
            _ => {}
        }
        let same = |n: &Named| n.attr == def.name && n.urn.as_deref() == urn;
        if !self.attributes.is_empty() {
            let named: Vec<&Named> = self.attributes.iter().filter(|n| same(n)).collect();
            if named.is_empty() {
                return None;
            }
            if named.iter().any(|n| n.sub.is_none()) {
                return Some(Keep::Whole);
            }
            return Some(Keep::Subs(named.iter().filter_map(|n| n.sub.clone()).collect()));
        }
        if def.returned == Returned::Request {
            return None;
        }
        let excluded: Vec<&Named> = self.excluded.iter().filter(|n| same(n)).collect();
        if excluded.iter().any(|n| n.sub.is_none()) {
            return None;
        }
        if excluded.is_empty() {
            Some(Keep::Whole)
        } else {
            Some(Keep::AllBut(excluded.iter().filter_map(|n| n.sub.clone()).collect()))
        }
    }
}

/// [`Projection::apply`] with neither list (nearly every IdP read): drops what is returned
/// `never` or only on `request`, and what the schema does not know, in place, instead of
/// rebuilding every map of the resource (its hashing showed in the list profile). The result
/// is the same as [`Projection::apply_lists`] with empty lists, which a test checks.
fn apply_default(rt: &ResourceTypeDef, mut obj: Map<String, Value>) -> Value {
    let shown = |def: &AttributeDef| !matches!(def.returned, Returned::Never | Returned::Request);
    obj.retain(|key, value| {
        if key == "schemas" || key == "id" {
            return true;
        }
        if let Some(ext) = rt.extension(key) {
            let Value::Object(ext_obj) = value else { return false };
            ext_obj.retain(|k, _| ext.attributes.iter().find(|d| d.name == *k).is_some_and(shown));
            return !ext_obj.is_empty();
        }
        rt.core
            .attribute(key)
            .or_else(|| rt.common.iter().find(|d| d.name == *key))
            .is_some_and(shown)
    });
    Value::Object(obj)
}

enum Keep {
    Whole,
    Subs(Vec<String>),
    AllBut(Vec<String>),
}

/// Keeps only the named sub-attributes (plus those returned `always`) of a complex value.
fn trim_subs(def: &AttributeDef, value: Value, subs: &[String]) -> Option<Value> {
    let keep =
        |k: &str| subs.iter().any(|s| s == k) || def.sub_attribute(k).is_some_and(|d| d.returned == Returned::Always);
    let trim = |v: Value| match v {
        Value::Object(o) => {
            let m: Map<String, Value> = o.into_iter().filter(|(k, _)| keep(k)).collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        other => Some(other),
    };
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.into_iter().filter_map(trim).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => trim(other),
    }
}

fn drop_subs(value: Value, subs: &[String]) -> Option<Value> {
    let strip = |v: Value| match v {
        Value::Object(o) => Value::Object(o.into_iter().filter(|(k, _)| !subs.iter().any(|s| s == k)).collect()),
        other => other,
    };
    Some(match value {
        Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
        other => strip(other),
    })
}

fn parse_list(rt: &ResourceTypeDef, list: Option<&str>) -> Result<Vec<Named>, ScimError> {
    let mut out = Vec::new();
    for item in list.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let path = parse_patch_path(item)
            .map_err(|e| ScimError::InvalidPath(format!("invalid attribute name '{item}': {e}")))?;
        if let Some(named) = canonical(rt, &path.attr) {
            out.push(named);
        }
    }
    Ok(out)
}

fn canonical(rt: &ResourceTypeDef, path: &AttrPath) -> Option<Named> {
    // A bare extension URN (`attributes=urn:…:enterprise:2.0:User`) names the whole block,
    // which the parser splits at its last colon.
    if path.sub_attr.is_none() {
        if let Some(urn) = &path.urn {
            if let Some(ext) = rt.extension(&format!("{urn}:{}", path.name)) {
                return Some(Named {
                    urn: None,
                    attr: ext.id.clone(),
                    sub: None,
                });
            }
        }
    }
    let resolved = rt.resolve(path).ok()?;
    Some(Named {
        urn: resolved.extension.map(|e| e.id.clone()),
        attr: resolved.attr.name.clone(),
        sub: resolved.sub.map(|s| s.name.clone()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::scim::schema::{SchemaRegistry, ENTERPRISE_USER_SCHEMA};
    use serde_json::json;

    fn user() -> Value {
        json!({"schemas":["s"], "id":"1", "userName":"bjensen", "displayName":"Babs",
               "name":{"givenName":"Barbara","familyName":"Jensen"},
               "emails":[{"value":"b@x.com","type":"work","primary":true}],
               ENTERPRISE_USER_SCHEMA: {"department":"R&D","employeeNumber":"7"},
               "meta":{"resourceType":"User"}})
    }

    #[test]
    fn the_default_projection_matches_the_general_one() {
        let reg = SchemaRegistry::builtin().unwrap();
        let mut with_extras = user();
        with_extras["password"] = json!("secret");
        with_extras["unknownAttr"] = json!(1);
        with_extras["groups"] = json!([{"value": "g", "display": "G", "type": "direct"}]);
        with_extras[ENTERPRISE_USER_SCHEMA]["unknownSub"] = json!("x");
        let mut only_unknown_in_extension = user();
        only_unknown_in_extension[ENTERPRISE_USER_SCHEMA] = json!({"nope": 1});
        let mut extension_not_an_object = user();
        extension_not_an_object[ENTERPRISE_USER_SCHEMA] = json!("text");
        let group = json!({"schemas": ["s"], "id": "g", "displayName": "G",
                           "members": [{"value": "1", "type": "User"}], "meta": {"resourceType": "Group"}, "x": 1});
        let cases = [
            (&reg.user, user()),
            (&reg.user, with_extras),
            (&reg.user, only_unknown_in_extension),
            (&reg.user, extension_not_an_object),
            (&reg.group, group),
            (&reg.user, json!("not an object")),
        ];
        for (rt, doc) in cases {
            let general = match doc.clone() {
                Value::Object(obj) => Projection::default().apply_lists(rt, obj),
                other => other,
            };
            let fast = Projection::default().apply(rt, doc.clone());
            assert_eq!(fast, general, "{doc}");
            let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
            assert_eq!(keys(&fast), keys(&general), "same order: {doc}");
        }
        assert!(Projection::default()
            .apply(&reg.user, with_password())
            .get("password")
            .is_none());
    }

    fn with_password() -> Value {
        let mut u = user();
        u["password"] = json!("secret");
        u
    }

    #[test]
    fn attributes_keep_only_named_plus_always() {
        let reg = SchemaRegistry::builtin().unwrap();
        let p = Projection::parse(&reg.user, Some("displayName,NAME.givenName"), None).unwrap();
        let out = p.apply(&reg.user, user());
        assert_eq!(
            out,
            json!({"schemas":["s"],"id":"1","userName":"bjensen","displayName":"Babs","name":{"givenName":"Barbara"}})
        );
    }

    #[test]
    fn excluded_attributes_drop_named_but_never_always() {
        let reg = SchemaRegistry::builtin().unwrap();
        let p = Projection::parse(
            &reg.user,
            None,
            Some("userName,emails.type,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
        )
        .unwrap();
        let out = p.apply(&reg.user, user());
        assert_eq!(out["userName"], "bjensen");
        assert_eq!(out["emails"], json!([{"value":"b@x.com","primary":true}]));
        assert!(out.get("meta").is_none());
        assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"employeeNumber":"7"}));
    }

    #[test]
    fn whole_extension_can_be_requested_by_urn() {
        let reg = SchemaRegistry::builtin().unwrap();
        let p = Projection::parse(&reg.user, Some(ENTERPRISE_USER_SCHEMA), None).unwrap();
        let out = p.apply(&reg.user, user());
        assert_eq!(out[ENTERPRISE_USER_SCHEMA]["department"], "R&D");
        assert!(out.get("displayName").is_none());
    }

    #[test]
    fn wants_tells_callers_to_skip_members() {
        let reg = SchemaRegistry::builtin().unwrap();
        assert!(!Projection::parse(&reg.group, None, Some("members"))
            .unwrap()
            .wants(&reg.group, "members"));
        assert!(Projection::default().wants(&reg.group, "members"));
        assert!(!Projection::parse(&reg.group, Some("displayName"), None)
            .unwrap()
            .wants(&reg.group, "members"));
    }
}
