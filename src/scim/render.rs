//! Stored resources as SCIM JSON: `$ref`s, `meta`, the projection, and the response bytes.
//!
//! A read of a user leaves its document as the stored JSON text ([`Document::Stored`]). When
//! no `attributes`/`excludedAttributes` are asked for and the text holds only attributes that
//! are returned by default, the response is written from that text directly: each stored
//! attribute's JSON is copied as it is, and only the attributes the server adds are serialized.
//! Parsing a hundred documents into `serde_json::Value` trees and serializing them again was most
//! of a list page's CPU (allocation, `IndexMap` inserts and hashing: half the profile). Anything
//! else takes the tree path ([`render_stored`]); a unit test holds the two to the same output.

use std::fmt;
use std::io::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::json_out::{is_plain, write_datetime, write_str, write_value};
use super::projection::Projection;
use super::resource::{render, ResourceMeta};
use super::schema::{AttributeDef, ResourceTypeDef, Returned, LIST_RESPONSE_SCHEMA};
use crate::provisioning::{merge_attribute, Added, Addition, Document, StoredResource};

/// Renders a stored resource as a tree: `$ref`s, `meta`, then the projection.
pub fn render_stored(rt: &ResourceTypeDef, stored: StoredResource, base: &str, projection: &Projection) -> Value {
    let meta = meta_of(rt, &stored, base);
    let mut doc = stored.doc.into_value();
    add_refs(&mut doc, "members", base);
    add_refs(&mut doc, "groups", base);
    projection.apply(rt, render(rt, doc, &meta))
}

/// The JSON of one resource, as a single-resource response carries it.
pub fn resource_bytes(rt: &ResourceTypeDef, stored: StoredResource, base: &str, projection: &Projection) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_resource(&mut out, rt, stored, base, projection);
    out
}

/// A ListResponse (RFC 7644 §3.4.2), written as its resources are pushed, keys in the RFC's
/// order. Its head comes first, so the page is written into one buffer, never copied.
pub struct ListBody {
    out: Vec<u8>,
    /// Resources still to come (`itemsPerPage` promised them).
    expected: usize,
}

impl ListBody {
    /// A body for `items` resources (its `itemsPerPage`) of `total` from `start_index`. A
    /// stored user renders to 600–900 bytes: the buffer is sized for the page at once.
    pub fn new(total: u64, start_index: u64, items: usize) -> Self {
        let mut out = Vec::with_capacity(256 + items.saturating_mul(1024));
        let _ = write!(
            out,
            "{{\"schemas\":[\"{LIST_RESPONSE_SCHEMA}\"],\"totalResults\":{total},\"itemsPerPage\":{items},\"startIndex\":{start_index},\"Resources\":["
        );
        ListBody { out, expected: items }
    }

    pub fn push(&mut self, rt: &ResourceTypeDef, stored: StoredResource, base: &str, projection: &Projection) {
        if self.out.last() != Some(&b'[') {
            self.out.push(b',');
        }
        write_resource(&mut self.out, rt, stored, base, projection);
        self.expected = self.expected.saturating_sub(1);
    }

    /// The finished response body.
    pub fn finish(mut self) -> Vec<u8> {
        debug_assert_eq!(
            self.expected, 0,
            "itemsPerPage promised more resources than were pushed"
        );
        self.out.extend_from_slice(b"]}");
        self.out
    }
}

/// Appends one resource's JSON: from the stored text when it can be copied, else as a tree.
fn write_resource(
    out: &mut Vec<u8>,
    rt: &ResourceTypeDef,
    stored: StoredResource,
    base: &str,
    projection: &Projection,
) {
    if let (Document::Stored { text, added }, true) = (&stored.doc, projection.is_default()) {
        let start = out.len();
        let meta = meta_of(rt, &stored, base);
        if write_from_text(out, rt, text, added, &meta, base).is_some() {
            return;
        }
        out.truncate(start);
    }
    write_value(out, &render_stored(rt, stored, base, projection));
}

fn meta_of(rt: &ResourceTypeDef, stored: &StoredResource, base: &str) -> ResourceMeta {
    ResourceMeta {
        location: format!("{base}/{}/{}", rt.kind.endpoint(), stored.id),
        id: stored.id.clone(),
        created: stored.created,
        last_modified: stored.last_modified,
        version: stored.version,
    }
}

/// Writes what [`render_stored`] with the default projection would give, from the stored text.
/// `None` (with `out` partly written) when the text holds anything the tree path would change:
/// an attribute not returned by default, one spelled differently from the schema, `id`, `meta`,
/// `schemas`, a repeated key, an escaped key, or an extension block with an unknown attribute.
fn write_from_text(
    out: &mut Vec<u8>,
    rt: &ResourceTypeDef,
    text: &str,
    added: &Added,
    meta: &ResourceMeta,
    base: &str,
) -> Option<()> {
    let Members(members) = serde_json::from_str(text).ok()?;
    let added_to = |key: &str| added.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    for (i, (key, raw)) in members.iter().enumerate() {
        if members[..i].iter().any(|(k, _)| k == key) || !copies_as_stored(rt, key, raw, added_to(key).is_some()) {
            return None;
        }
    }
    let present = |id: &str| added_to(id).is_some() || members.iter().any(|(k, _)| *k == id);
    out.extend_from_slice(b"{\"schemas\":[");
    write_str(out, &rt.core.id);
    for ext in rt.extensions.iter().filter(|e| present(&e.id)) {
        out.push(b',');
        write_str(out, &ext.id);
    }
    out.extend_from_slice(b"],\"id\":");
    write_str(out, &meta.id);
    for (key, raw) in &members {
        out.push(b',');
        write_str(out, key);
        out.push(b':');
        match added_to(key) {
            Some(over) => {
                let mut value = serde_json::from_str(raw.get()).ok()?;
                merge_attribute(&mut value, over.to_value());
                write_attribute(out, key, &value, base);
            }
            None if is_ref_list(key) => write_ref_list(out, key, &serde_json::from_str(raw.get()).ok()?, base),
            None => out.extend_from_slice(raw.get().as_bytes()),
        }
    }
    for (key, addition) in added.iter().filter(|(k, _)| !members.iter().any(|(m, _)| m == k)) {
        out.push(b',');
        write_str(out, key);
        out.push(b':');
        write_addition(out, addition, base);
    }
    write_meta(out, rt, meta);
    out.push(b'}');
    Some(())
}

/// Writes what the tree path makes of an addition: [`Addition::to_value`], with `$ref`s.
fn write_addition(out: &mut Vec<u8>, addition: &Addition, base: &str) {
    match addition {
        Addition::Groups(groups) => {
            out.push(b'[');
            for (i, g) in groups.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"value\":");
                write_str(out, &g.id);
                out.extend_from_slice(b",\"display\":");
                write_str(out, &g.display_name);
                out.extend_from_slice(b",\"type\":\"direct\",\"$ref\":");
                write_ref(out, base, ("Groups", &g.id));
                out.push(b'}');
            }
            out.push(b']');
        }
        Addition::Verdict(v) => {
            out.extend_from_slice(b"{\"seatPool\":");
            write_str(out, &v.seat_pool);
            out.extend_from_slice(if v.entitled {
                b",\"entitled\":true,\"entitlementReason\":"
            } else {
                b",\"entitled\":false,\"entitlementReason\":"
            });
            write_str(out, &v.reason);
            if let Some(t) = &v.updated {
                out.extend_from_slice(b",\"entitlementUpdated\":");
                write_datetime(out, t);
            }
            out.push(b'}');
        }
    }
}

/// `,"meta":{…}` with the members and order [`render`] gives it.
fn write_meta(out: &mut Vec<u8>, rt: &ResourceTypeDef, meta: &ResourceMeta) {
    out.extend_from_slice(b",\"meta\":{\"resourceType\":");
    write_str(out, rt.kind.name());
    out.extend_from_slice(b",\"created\":");
    write_datetime(out, &meta.created);
    out.extend_from_slice(b",\"lastModified\":");
    write_datetime(out, &meta.last_modified);
    out.extend_from_slice(b",\"location\":");
    write_str(out, &meta.location);
    // The entity tag `W/"7"` as a JSON string (`etag` with its quotes escaped).
    let _ = write!(out, ",\"version\":\"W/\\\"{}\\\"\"}}", meta.version);
}

/// Would the default projection keep this stored attribute exactly as it is?
fn copies_as_stored(rt: &ResourceTypeDef, key: &str, raw: &RawValue, merged: bool) -> bool {
    if let Some(def) = rt.core.attribute(key) {
        return def.name == key && shown(def);
    }
    if let Some(ext) = rt.extension(key) {
        if ext.id != key {
            return false;
        }
        // The tree path drops a block that is not an object, and unknown or hidden attributes
        // in it, and then the block if it became empty (unless the server adds to it).
        let Ok(Members(attrs)) = serde_json::from_str::<Members>(raw.get()) else {
            return false;
        };
        return (merged || !attrs.is_empty())
            && attrs
                .iter()
                .all(|(k, _)| ext.attributes.iter().any(|d| d.name == *k && shown(d)));
    }
    !matches!(key, "id" | "meta" | "schemas") && rt.common.iter().any(|d| d.name == key && shown(d))
}

fn shown(def: &AttributeDef) -> bool {
    !matches!(def.returned, Returned::Never | Returned::Request)
}

fn is_ref_list(key: &str) -> bool {
    key == "members" || key == "groups"
}

/// Writes an attribute's value; `members` and `groups` with their `$ref`s.
fn write_attribute(out: &mut Vec<u8>, key: &str, value: &Value, base: &str) {
    if is_ref_list(key) {
        write_ref_list(out, key, value, base);
    } else {
        write_value(out, value);
    }
}

/// Writes a `members`/`groups` list as [`add_ref_values`] would make it (`$ref` in place if
/// the element has one, else last), straight from the value: copying the list and inserting
/// into each element's map cost a list page 5 % of its instructions (callgrind).
fn write_ref_list(out: &mut Vec<u8>, attr: &str, value: &Value, base: &str) {
    let Some(items) = value.as_array() else {
        write_value(out, value);
        return;
    };
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (Some(fields), Some(target)) = (item.as_object(), ref_target(item, attr)) else {
            write_value(out, item);
            continue;
        };
        out.push(b'{');
        let mut has_ref = false;
        for (j, (k, v)) in fields.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            if k == "$ref" {
                has_ref = true;
                write_ref(out, base, target);
            } else {
                write_value(out, v);
            }
        }
        if !has_ref {
            if !fields.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"$ref\":");
            write_ref(out, base, target);
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// Writes the `$ref` [`ref_of`] makes, as a JSON string, without building it first.
fn write_ref(out: &mut Vec<u8>, base: &str, (endpoint, id): (&str, &str)) {
    if !(is_plain(base) && is_plain(id)) {
        write_str(out, &format!("{base}/{endpoint}/{id}"));
        return;
    }
    out.push(b'"');
    for part in [base, "/", endpoint, "/", id] {
        out.extend_from_slice(part.as_bytes());
    }
    out.push(b'"');
}

/// Fills `$ref` of group members / user groups from the element's id and type.
fn add_refs(doc: &mut Value, attr: &str, base: &str) {
    if let Some(items) = doc.get_mut(attr) {
        add_ref_values(items, attr, base);
    }
}

fn add_ref_values(items: &mut Value, attr: &str, base: &str) {
    let Some(items) = items.as_array_mut() else {
        return;
    };
    for item in items {
        if let Some(href) = ref_of(item, attr, base) {
            item["$ref"] = Value::String(href);
        }
    }
}

/// The `$ref` of a member or group element: from its id and type (`None` without an id).
fn ref_of(item: &Value, attr: &str, base: &str) -> Option<String> {
    ref_target(item, attr).map(|(endpoint, id)| format!("{base}/{endpoint}/{id}"))
}

/// The endpoint and id a member or group element refers to (`None` without an id). The
/// element's few members are searched in order: cheaper than hashing each key (`IndexMap`).
fn ref_target<'a>(item: &'a Value, attr: &str) -> Option<(&'static str, &'a str)> {
    let fields = item.as_object()?;
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).and_then(|(_, v)| v.as_str());
    let id = field("value")?;
    let endpoint = match field("type") {
        Some("direct") if attr == "groups" => "Groups",
        Some("Group") => "Groups",
        _ => "Users",
    };
    Some((endpoint, id))
}

/// The members of a JSON object, in order, each value left as its JSON text. Keys must be
/// unescaped (they borrow from the text); an escaped key fails, and the caller takes the tree path.
struct Members<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(member) = map.next_entry::<&'de str, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::provisioning::Verdict;
    use crate::scim::schema::{ResourceKind, SchemaRegistry, ENTERPRISE_USER_SCHEMA, SEATBRIDGE_USER_SCHEMA};
    use crate::store::users::GroupRef;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    const BASE: &str = "https://sb.example/scim/v2/t";

    /// `added`, given as the JSON the tree path shows, as typed additions.
    fn stored(text: &str, added: Value) -> StoredResource {
        let added = added
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let addition = addition(k, v);
                assert_eq!(&addition.to_value(), v, "the test's {k} is not what the server adds");
                (&*k.clone().leak(), addition)
            })
            .collect();
        StoredResource {
            id: "0193-id".into(),
            doc: Document::Stored {
                text: text.into(),
                added,
            },
            created: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            last_modified: Utc.with_ymd_and_hms(2026, 2, 3, 4, 5, 6).unwrap(),
            version: 7,
        }
    }

    fn addition(key: &str, v: &Value) -> Addition {
        let text = |v: &Value| v.as_str().unwrap().to_string();
        match key {
            "groups" => Addition::Groups(
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|g| GroupRef {
                        id: text(&g["value"]),
                        display_name: text(&g["display"]),
                    })
                    .collect(),
            ),
            SEATBRIDGE_USER_SCHEMA => Addition::Verdict(Verdict {
                seat_pool: text(&v["seatPool"]),
                entitled: v["entitled"].as_bool().unwrap(),
                reason: text(&v["entitlementReason"]),
                updated: v.get("entitlementUpdated").map(|t| {
                    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
                        .unwrap()
                        .with_timezone(&Utc)
                }),
            }),
            other => panic!("the server adds no {other}"),
        }
    }

    fn verdict() -> Value {
        json!({SEATBRIDGE_USER_SCHEMA: {"seatPool": "standard", "entitled": true, "entitlementReason": "seat"}})
    }

    /// Both paths, for the default projection: (written from the text?, bytes, tree).
    fn both(kind: ResourceKind, text: &str, added: Value) -> (bool, Value, Value) {
        let reg = SchemaRegistry::builtin().unwrap();
        let rt = reg.resource_type(kind);
        let projection = Projection::default();
        let meta = meta_of(rt, &stored(text, added.clone()), BASE);
        let Document::Stored { added: added_map, .. } = stored(text, added.clone()).doc else {
            unreachable!()
        };
        let direct = write_from_text(&mut Vec::new(), rt, text, &added_map, &meta, BASE).is_some();
        let bytes = resource_bytes(rt, stored(text, added.clone()), BASE, &projection);
        let tree = render_stored(rt, stored(text, added), BASE, &projection);
        (direct, serde_json::from_slice(&bytes).expect("valid JSON"), tree)
    }

    #[test]
    fn users_written_from_their_text_match_the_tree_path() {
        let cases = [
            (
                json!({"userName": "ann", "name": {"givenName": "Ann"}, "emails": [{"value": "a@x", "primary": true}],
                       ENTERPRISE_USER_SCHEMA: {"department": "R&D"}, SEATBRIDGE_USER_SCHEMA: {"seatType": "pro"}}),
                json!({"groups": [{"value": "g1", "display": "Eng", "type": "direct"}],
                       SEATBRIDGE_USER_SCHEMA: {"seatPool": "pro", "entitled": false, "entitlementReason": "no_seat",
                                                "entitlementUpdated": "2026-01-01T00:00:00.000Z"}}),
            ),
            (
                json!({"userName": "bo", "active": false, "externalId": "x-1"}),
                verdict(),
            ),
            (
                json!({"userName": "cy"}),
                json!({"groups": [{"value": "g1", "display": "Eng \"core\"\n", "type": "direct"},
                                  {"value": "g2", "display": "Ops", "type": "direct"}],
                       SEATBRIDGE_USER_SCHEMA: {"seatPool": "standard", "entitled": false, "entitlementReason": "inactive",
                                                "entitlementUpdated": "2026-03-04T05:06:07.089Z"}}),
            ),
            (
                json!({"userName": "quote\"slash\\ \u{e9}\u{1F600}\n", "displayName": "</script>"}),
                verdict(),
            ),
            (
                json!({"userName": "n", "x509Certificates": [{"value": "MIIB"}], "title": 1.5e300}),
                verdict(),
            ),
        ];
        for (doc, added) in cases {
            let (direct, bytes, tree) = both(ResourceKind::User, &doc.to_string(), added);
            assert!(direct, "{doc} should be written from its text");
            assert_eq!(bytes, tree, "{doc}");
            assert_eq!(bytes["schemas"][0], json!(crate::scim::schema::USER_SCHEMA));
            assert_eq!(bytes["meta"]["version"], json!("W/\"7\""));
        }
    }

    #[test]
    fn what_the_tree_path_would_change_is_not_copied() {
        let cases = [
            // `password` was stored by an early version; it is never returned.
            json!({"userName": "a", "password": "hunter2"}),
            json!({"userName": "a", "id": "forged"}),
            json!({"userName": "a", "meta": {"version": "W/\"1\""}}),
            json!({"userName": "a", "schemas": ["urn:x"]}),
            json!({"username": "a"}),
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {}}),
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: {"department": "x", "secret": "y"}}),
            json!({"userName": "a", ENTERPRISE_USER_SCHEMA: "not an object"}),
            json!({"userName": "a", "urn:example:unknown": {"k": "v"}}),
        ];
        for doc in cases {
            let (direct, bytes, tree) = both(ResourceKind::User, &doc.to_string(), verdict());
            assert!(!direct, "{doc} must take the tree path");
            assert_eq!(bytes, tree, "{doc}");
            assert!(bytes.get("password").is_none() && bytes["id"] == json!("0193-id"));
        }
        for text in [
            r#"{"userName":"a","userName":"b"}"#,
            r#"{"user\u004eame":"a"}"#,
            "not json",
            "[1]",
        ] {
            let (direct, bytes, tree) = both(ResourceKind::User, text, verdict());
            assert!(!direct, "{text} must take the tree path");
            assert_eq!(bytes, tree, "{text}");
        }
    }

    #[test]
    fn group_members_get_their_refs() {
        let doc = json!({"displayName": "Eng", "members": [{"value": "u1", "type": "User"}, {"value": "g2", "type": "Group"}]});
        let (direct, bytes, tree) = both(ResourceKind::Group, &doc.to_string(), json!({}));
        assert!(direct);
        assert_eq!(bytes, tree);
        assert_eq!(bytes["members"][0]["$ref"], json!(format!("{BASE}/Users/u1")));
        assert_eq!(bytes["members"][1]["$ref"], json!(format!("{BASE}/Groups/g2")));
    }

    #[test]
    fn ref_lists_are_written_byte_for_byte_as_the_tree_path_makes_them() {
        let list = json!([
            {"value": "u1", "type": "User", "display": "A"},
            {"$ref": "stale", "value": "g2", "type": "Group"},
            {"value": "g3", "type": "direct"},
            {"display": "no id"},
            {},
            "odd",
            {"value": 5}
        ]);
        for attr in ["members", "groups"] {
            let mut out = Vec::new();
            write_ref_list(&mut out, attr, &list, BASE);
            let mut tree = list.clone();
            add_ref_values(&mut tree, attr, BASE);
            assert_eq!(String::from_utf8(out).unwrap(), tree.to_string(), "{attr}");
        }
        let mut out = Vec::new();
        write_ref_list(&mut out, "groups", &json!("not a list"), BASE);
        assert_eq!(out, b"\"not a list\"");
    }

    #[test]
    fn a_projection_takes_the_tree_path() {
        let reg = SchemaRegistry::builtin().unwrap();
        let rt = reg.resource_type(ResourceKind::User);
        let projection = Projection::parse(rt, Some("userName"), None).unwrap();
        let text = json!({"userName": "a", "displayName": "A"}).to_string();
        let bytes = resource_bytes(rt, stored(&text, verdict()), BASE, &projection);
        let out: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(out["userName"], "a");
        assert!(out.get("displayName").is_none());
    }

    #[test]
    fn list_bodies_keep_rfc_order_and_count_what_they_hold() {
        let reg = SchemaRegistry::builtin().unwrap();
        let rt = reg.resource_type(ResourceKind::User);
        let mut body = ListBody::new(9, 3, 2);
        for name in ["a", "b"] {
            let text = json!({ "userName": name }).to_string();
            body.push(rt, stored(&text, verdict()), BASE, &Projection::default());
        }
        let out: Value = serde_json::from_slice(&body.finish()).unwrap();
        let keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["schemas", "totalResults", "itemsPerPage", "startIndex", "Resources"]
        );
        assert_eq!(
            (out["totalResults"].clone(), out["itemsPerPage"].clone()),
            (json!(9), json!(2))
        );
        assert_eq!(out["Resources"][1]["userName"], "b");
        let empty: Value = serde_json::from_slice(&ListBody::new(0, 1, 0).finish()).unwrap();
        assert_eq!(empty["Resources"], json!([]));
    }
}
