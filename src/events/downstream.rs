//! The downstream SCIM connector: mirrors a tenant's users with access, and its groups, to the
//! product's own SCIM service (an endpoint of kind `scim`: its URL is the SCIM base URL, its
//! secret the bearer token).
//!
//! The product's copy of a seatbridge user or group is the resource whose `externalId` is the
//! seatbridge id, so every delivery is idempotent: it looks the copy up, then creates, updates,
//! deactivates or deletes it as the event requires. Users without access are never created
//! downstream; a user who loses access is deactivated (`active: false`), and deleted only when
//! the user is deleted here. Group memberships are mirrored for users: a member is the copy of a
//! seatbridge user, so members without a downstream copy (users who never had access) are left
//! out, and nested groups are not mirrored.
//!
//! Every error is retried by the relay with backoff and, after the last attempt, dead-lettered:
//! transport errors, timeouts, 429 and 5xx, and refusals of the downstream service (4xx), whose
//! SCIM `scimType` and `detail` are kept as the delivery's last error.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::relay::RelaySettings;
use super::types;
use crate::store::events::Claimed;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";

/// The user profile attributes mirrored from an event's `data.user.profile`. Downstream values
/// of these are replaced, and removed when the profile no longer has them; other attributes of
/// the product's copy are left alone.
const PROFILE: [&str; 7] = super::PROFILE_ATTRIBUTES;

/// Applies one event to the downstream SCIM service. `Ok` when the downstream state matches the
/// event (including events that need nothing downstream); `Err` to retry later.
pub async fn deliver(client: &reqwest::Client, settings: &RelaySettings, c: &Claimed) -> Result<(), String> {
    let event: Value =
        serde_json::from_str(&c.payload).map_err(|e| format!("event {} has an unreadable payload: {e}", c.event_id))?;
    let scim = Scim {
        client,
        base: c.url.trim_end_matches('/'),
        token: &c.secret,
        timeout: settings.timeout,
    };
    let data = &event["data"];
    match c.event_type.as_str() {
        types::USER_PROVISIONED | types::USER_REPROVISIONED | types::USER_UPDATED | types::USER_DEPROVISIONED => {
            sync_user(&scim, data).await
        }
        types::GROUP_CREATED | types::GROUP_UPDATED => sync_group(&scim, data).await,
        types::GROUP_DELETED => delete_copy(&scim, Kind::Group, id_of(&data["group"])?).await,
        _ => Ok(()),
    }
}

/// A user event: delete the copy of a deleted user, upsert a user with access, deactivate a
/// user without access (when it has a copy at all).
async fn sync_user(scim: &Scim<'_>, data: &Value) -> Result<(), String> {
    let user = &data["user"];
    let id = id_of(user)?;
    if data["deleted"] == json!(true) {
        return delete_copy(scim, Kind::User, id).await;
    }
    if data["access"] == json!(true) {
        return upsert(scim, Kind::User, &wanted_user(user)?, &PROFILE).await;
    }
    match scim.find(Kind::User, "externalId", id).await? {
        Some(copy) if copy["active"] != json!(false) => {
            let op = json!({"op": "replace", "path": "active", "value": false});
            scim.patch(Kind::User, &copy, vec![op]).await
        }
        _ => Ok(()),
    }
}

/// A group created or changed: upsert its copy (display name and externalId), then apply the
/// event's member list or member changes to it.
async fn sync_group(scim: &Scim<'_>, data: &Value) -> Result<(), String> {
    let group = &data["group"];
    let id = id_of(group)?;
    let mut wanted = Map::new();
    wanted.insert("externalId".into(), json!(id));
    if let Some(name) = group.get("displayName").filter(|v| v.is_string()) {
        wanted.insert("displayName".into(), name.clone());
    }
    upsert(scim, Kind::Group, &wanted, &[]).await?;
    sync_members(scim, id, &member_edits(data)).await
}

/// One edit of a group's member list, in seatbridge ids, as an event reports it.
#[derive(Debug, PartialEq)]
enum MemberEdit<'a> {
    /// The whole list (`memberIds` of a create or a PUT, `replaceWith` of a PATCH).
    Replace(&'a [Value]),
    Add(&'a [Value]),
    Remove(&'a [Value]),
    RemoveAll,
}

/// The member edits of a group event: its whole member list, else its member changes in order.
fn member_edits(data: &Value) -> Vec<MemberEdit<'_>> {
    if let Some(ids) = data["memberIds"].as_array() {
        return vec![MemberEdit::Replace(ids)];
    }
    let changes = data["memberChanges"].as_array().map(Vec::as_slice).unwrap_or_default();
    changes.iter().filter_map(member_edit).collect()
}

fn member_edit(change: &Value) -> Option<MemberEdit<'_>> {
    if let Some(ids) = change["add"].as_array() {
        Some(MemberEdit::Add(ids))
    } else if let Some(ids) = change["remove"].as_array() {
        Some(MemberEdit::Remove(ids))
    } else if let Some(ids) = change["replaceWith"].as_array() {
        Some(MemberEdit::Replace(ids))
    } else if change["removeAll"] == json!(true) {
        Some(MemberEdit::RemoveAll)
    } else {
        None
    }
}

/// Applies member edits to the group copy (which exists by now): works out the member list the
/// edits lead to, from the copy's current one, and patches the difference, so a retried
/// delivery sends nothing twice. Members are users' copies, by their downstream id; seatbridge
/// ids without a user copy downstream are skipped: users without access, and member groups
/// (nested groups are not mirrored).
async fn sync_members(scim: &Scim<'_>, group_id: &str, edits: &[MemberEdit<'_>]) -> Result<(), String> {
    if edits.is_empty() {
        return Ok(());
    }
    let copy = scim
        .find(Kind::Group, "externalId", group_id)
        .await?
        .ok_or_else(|| format!("the copy of group {group_id} is missing downstream"))?;
    let current = member_values(&copy);
    let mut wanted = current.clone();
    for edit in edits {
        match edit {
            MemberEdit::Replace(ids) => wanted = user_copies(scim, ids).await?,
            MemberEdit::Add(ids) => wanted.extend(user_copies(scim, ids).await?),
            MemberEdit::Remove(ids) => {
                let gone: HashSet<String> = user_copies(scim, ids).await?.into_iter().collect();
                wanted.retain(|m| !gone.contains(m));
            }
            MemberEdit::RemoveAll => wanted.clear(),
        }
    }
    scim.patch(Kind::Group, &copy, member_ops(&current, &wanted)).await
}

/// The `value`s of a downstream group's members.
fn member_values(group: &Value) -> Vec<String> {
    let members = group["members"].as_array().map(Vec::as_slice).unwrap_or_default();
    members
        .iter()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect()
}

/// The downstream ids of the copies of the seatbridge users `ids`; users without one are
/// skipped. One lookup per member.
async fn user_copies(scim: &Scim<'_>, ids: &[Value]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for id in ids.iter().filter_map(Value::as_str) {
        if let Some(copy) = scim.find(Kind::User, "externalId", id).await? {
            out.extend(copy["id"].as_str().map(str::to_string));
        }
    }
    Ok(out)
}

/// PATCH operations that turn the member list `current` into `wanted` (downstream ids): one
/// `remove` per member that goes (or of all members when none stay) and one `add` of the
/// members that come.
fn member_ops(current: &[String], wanted: &[String]) -> Vec<Value> {
    let now: HashSet<&str> = current.iter().map(String::as_str).collect();
    let then: HashSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut ops = Vec::new();
    if then.is_empty() && !now.is_empty() {
        ops.push(json!({"op": "remove", "path": "members"}));
    } else {
        let mut gone: Vec<&str> = now.difference(&then).copied().collect();
        gone.sort_unstable();
        for id in gone {
            // A SCIM filter's string value is a JSON string literal.
            let path = format!("members[value eq {}]", Value::from(id));
            ops.push(json!({"op": "remove", "path": path}));
        }
    }
    let mut seen = HashSet::new();
    let added: Vec<Value> = wanted
        .iter()
        .filter(|id| !now.contains(id.as_str()) && seen.insert(id.as_str()))
        .map(|id| json!({"value": id}))
        .collect();
    if !added.is_empty() {
        ops.push(json!({"op": "add", "path": "members", "value": added}));
    }
    ops
}

/// The attributes a user with access has downstream: its userName, the seatbridge id as
/// externalId, active, and the profile attributes it has.
fn wanted_user(user: &Value) -> Result<Map<String, Value>, String> {
    let user_name = user["userName"].as_str().ok_or("the event's user has no userName")?;
    let mut wanted = Map::new();
    wanted.insert("userName".into(), json!(user_name));
    wanted.insert("externalId".into(), json!(id_of(user)?));
    wanted.insert("active".into(), json!(true));
    if let Some(profile) = user["profile"].as_object() {
        for key in PROFILE {
            if let Some(v) = profile.get(key).filter(|v| !v.is_null()) {
                wanted.insert(key.into(), v.clone());
            }
        }
    }
    Ok(wanted)
}

/// Makes the copy whose externalId is `wanted["externalId"]` have the `wanted` attributes, and
/// none of the `managed` attributes it does not list: creates it when missing (adopting an
/// unclaimed resource with the same userName or displayName when creation conflicts), else
/// patches what differs.
async fn upsert(scim: &Scim<'_>, kind: Kind, wanted: &Map<String, Value>, managed: &[&str]) -> Result<(), String> {
    let id = wanted["externalId"].as_str().ok_or("nothing to match the copy by")?;
    let copy = match scim.find(kind, "externalId", id).await? {
        Some(copy) => copy,
        None => match scim.create(kind, wanted).await? {
            Created::Done => return Ok(()),
            Created::Conflict(error) => adopt(scim, kind, wanted, error).await?,
        },
    };
    scim.patch(kind, &copy, changes(wanted, &copy, managed)).await
}

/// After a uniqueness conflict on create: the resource holding the same unique name, if it is
/// not claimed by another seatbridge resource (no externalId, or ours). A resource with another
/// externalId is never taken over: it may belong to someone else who had the name before.
async fn adopt(scim: &Scim<'_>, kind: Kind, wanted: &Map<String, Value>, error: String) -> Result<Value, String> {
    let attr = kind.unique_attribute();
    let name = wanted.get(attr).and_then(Value::as_str).ok_or(error.clone())?;
    let holder = scim.find(kind, attr, name).await?.ok_or(error)?;
    match holder.get("externalId").and_then(Value::as_str) {
        None | Some("") => Ok(holder),
        Some(other) if Some(other) == wanted["externalId"].as_str() => Ok(holder),
        Some(other) => Err(format!(
            "{attr} '{name}' is taken downstream by a {} with externalId '{other}'; not taking it over",
            kind.noun()
        )),
    }
}

/// Deletes the copy of a seatbridge resource, if there is one.
async fn delete_copy(scim: &Scim<'_>, kind: Kind, id: &str) -> Result<(), String> {
    match scim.find(kind, "externalId", id).await? {
        Some(copy) => scim.delete(kind, &copy).await,
        None => Ok(()),
    }
}

/// PATCH operations that turn `copy` into `wanted`: one `replace` of the attributes that differ,
/// and a `remove` for each `managed` attribute the copy has and `wanted` does not.
fn changes(wanted: &Map<String, Value>, copy: &Value, managed: &[&str]) -> Vec<Value> {
    let differing: Map<String, Value> = wanted
        .iter()
        .filter(|(k, v)| copy.get(k.as_str()) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut ops = Vec::new();
    if !differing.is_empty() {
        ops.push(json!({"op": "replace", "value": differing}));
    }
    for key in managed {
        if !wanted.contains_key(*key) && copy.get(*key).is_some_and(|v| !v.is_null()) {
            ops.push(json!({"op": "remove", "path": key}));
        }
    }
    ops
}

/// The seatbridge id of an event's user or group.
fn id_of(resource: &Value) -> Result<&str, String> {
    resource["id"]
        .as_str()
        .ok_or_else(|| "the event names no user or group id".to_string())
}

/// The resource types mirrored downstream.
#[derive(Debug, Clone, Copy)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    fn schema(self) -> &'static str {
        match self {
            Kind::User => "urn:ietf:params:scim:schemas:core:2.0:User",
            Kind::Group => "urn:ietf:params:scim:schemas:core:2.0:Group",
        }
    }

    /// The attribute a uniqueness conflict on create is about.
    fn unique_attribute(self) -> &'static str {
        match self {
            Kind::User => "userName",
            Kind::Group => "displayName",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
        }
    }
}

/// The outcome of a create.
enum Created {
    Done,
    /// 409: a resource with the same unique attribute exists; the SCIM error.
    Conflict(String),
}

/// A SCIM client for one endpoint.
struct Scim<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    token: &'a str,
    timeout: Duration,
}

impl Scim<'_> {
    /// The first resource of `kind` whose `attr` equals `value`, by a filtered GET. Results are
    /// checked too, so a server that ignores filters cannot make us touch the wrong resource.
    async fn find(&self, kind: Kind, attr: &str, value: &str) -> Result<Option<Value>, String> {
        // A SCIM filter's string value is a JSON string literal.
        let filter = format!("{attr} eq {}", Value::from(value));
        let path = format!("/{}?filter={}", kind.endpoint(), encode(&filter));
        let (status, text) = self.send(Method::GET, &path, None).await?;
        if !status.is_success() {
            return Err(refusal("GET", &path, status, &text));
        }
        let list: Value =
            serde_json::from_str(&text).map_err(|e| format!("GET {path}: not a SCIM list response: {e}"))?;
        let matches = |r: &&Value| {
            r.get(attr).and_then(Value::as_str).is_some_and(|v| match attr {
                "externalId" => v == value,
                _ => v.eq_ignore_ascii_case(value),
            })
        };
        Ok(list["Resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(matches))
            .cloned())
    }

    /// POST a new resource with `attrs`.
    async fn create(&self, kind: Kind, attrs: &Map<String, Value>) -> Result<Created, String> {
        let mut body = Map::new();
        body.insert("schemas".into(), json!([kind.schema()]));
        body.extend(attrs.iter().map(|(k, v)| (k.clone(), v.clone())));
        let path = format!("/{}", kind.endpoint());
        let (status, text) = self.send(Method::POST, &path, Some(Value::Object(body))).await?;
        match status {
            s if s.is_success() => Ok(Created::Done),
            StatusCode::CONFLICT => Ok(Created::Conflict(refusal("POST", &path, status, &text))),
            _ => Err(refusal("POST", &path, status, &text)),
        }
    }

    /// PATCH `resource` with `ops`; nothing to send when there are none.
    async fn patch(&self, kind: Kind, resource: &Value, ops: Vec<Value>) -> Result<(), String> {
        if ops.is_empty() {
            return Ok(());
        }
        let path = location(kind, resource)?;
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        let (status, text) = self.send(Method::PATCH, &path, Some(body)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(refusal("PATCH", &path, status, &text))
        }
    }

    /// DELETE `resource`; one already gone (404) is fine.
    async fn delete(&self, kind: Kind, resource: &Value) -> Result<(), String> {
        let path = location(kind, resource)?;
        let (status, text) = self.send(Method::DELETE, &path, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(refusal("DELETE", &path, status, &text))
        }
    }

    /// One authenticated request to `base + path`; transport errors and timeouts are `Err`.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, String), String> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .timeout(self.timeout)
            .header(ACCEPT, SCIM_JSON);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, SCIM_JSON).body(body.to_string());
        }
        let response = request.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{method} {path}: reading the response: {e}"))?;
        Ok((status, text))
    }
}

/// The path of a downstream resource, from its `id`.
fn location(kind: Kind, resource: &Value) -> Result<String, String> {
    let id = resource["id"]
        .as_str()
        .ok_or_else(|| format!("the downstream service returned a {} without an id", kind.noun()))?;
    Ok(format!("/{}/{}", kind.endpoint(), encode(id)))
}

/// Describes a refused request: status, and the SCIM error's `scimType` and `detail` (or the
/// start of the body when it is not a SCIM error).
fn refusal(method: &str, path: &str, status: StatusCode, text: &str) -> String {
    let reason = match serde_json::from_str::<Value>(text) {
        Ok(error) if error.get("detail").is_some() || error.get("scimType").is_some() => {
            let scim_type = error["scimType"].as_str().map(|t| format!("{t}: ")).unwrap_or_default();
            format!("{scim_type}{}", error["detail"].as_str().unwrap_or_default())
        }
        _ => text.chars().take(200).collect(),
    };
    format!("{method} {path} answered {status}: {reason}")
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for a query value or a path
/// segment).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_ids_are_percent_encoded() {
        let filter = format!("externalId eq {}", Value::from("a \"b\"/c"));
        assert_eq!(encode(&filter), "externalId%20eq%20%22a%20%5C%22b%5C%22%2Fc%22");
        assert_eq!(encode("0193-ab_c.d~"), "0193-ab_c.d~");
    }

    #[test]
    fn changes_replace_what_differs_and_remove_what_is_gone() {
        let wanted = wanted_user(&json!({"id": "u1", "userName": "ann",
            "profile": {"displayName": "Ann", "title": null}}))
        .unwrap();
        let copy = json!({"id": "x", "userName": "ann", "externalId": "u1", "active": false,
                          "displayName": "Ann", "title": "CEO", "nickName": "kept"});
        let ops = changes(&wanted, &copy, &PROFILE);
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "value": {"active": true}}),
                json!({"op": "remove", "path": "title"}),
            ]
        );
        let same = json!({"userName": "ann", "externalId": "u1", "active": true, "displayName": "Ann"});
        assert!(changes(&wanted, &same, &PROFILE).is_empty());
    }

    #[test]
    fn member_edits_follow_the_event() {
        let ids = vec![json!("u1")];
        let created = json!({"group": {"id": "g"}, "members": 1, "memberIds": ["u1"]});
        assert_eq!(member_edits(&created), vec![MemberEdit::Replace(&ids)]);
        let patched = json!({"group": {"id": "g"}, "memberChanges": [
            {"add": ["u1"]}, {"remove": ["u1"]}, {"removeAll": true}, {"replaceWith": ["u1"]}]});
        assert_eq!(
            member_edits(&patched),
            vec![
                MemberEdit::Add(&ids),
                MemberEdit::Remove(&ids),
                MemberEdit::RemoveAll,
                MemberEdit::Replace(&ids)
            ]
        );
        assert!(member_edits(&json!({"group": {"id": "g"}, "members": 3})).is_empty());
    }

    #[test]
    fn member_ops_patch_only_the_difference() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            member_ops(&s(&["a", "b"]), &s(&["b", "c", "c"])),
            vec![
                json!({"op": "remove", "path": "members[value eq \"a\"]"}),
                json!({"op": "add", "path": "members", "value": [{"value": "c"}]}),
            ]
        );
        assert_eq!(
            member_ops(&s(&["a"]), &[]),
            vec![json!({"op": "remove", "path": "members"})]
        );
        assert!(member_ops(&s(&["a", "b"]), &s(&["b", "a"])).is_empty());
        assert!(member_ops(&[], &[]).is_empty());
    }

    #[test]
    fn refusals_carry_the_scim_detail() {
        let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":"bad email"}"#;
        assert_eq!(
            refusal("POST", "/Users", StatusCode::BAD_REQUEST, body),
            "POST /Users answered 400 Bad Request: invalidValue: bad email"
        );
        assert_eq!(
            refusal("GET", "/Users", StatusCode::BAD_GATEWAY, "<html>"),
            "GET /Users answered 502 Bad Gateway: <html>"
        );
    }
}
