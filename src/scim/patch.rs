//! The PATCH engine (RFC 7644 §3.5.2), including the shapes Okta and Entra ID really send.
//!
//! It edits a canonical resource document (see `resource`) in memory. Group `members` are never
//! part of that document: operations on them come back as [`MemberChange`]s that the store
//! applies row by row, so a change to a 50,000-member group touches only the rows it names.
//!
//! The engine only *places* values, under the attribute names the schema spells; the caller runs
//! `normalize_resource` and `check_immutable` afterwards, which type-check what was placed.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{parse_patch_path, AttrPath, CompValue, CompareOp, Filter, PatchPath};
use super::resource::parse_bool;
use super::schema::{AttrType, AttributeDef, Mutability, ResourceKind, ResourceTypeDef, SchemaDef, PATCH_OP_SCHEMA};

/// The three PATCH operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

/// One parsed operation of a PatchOp request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A reference to a group member as sent by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// The member's resource id.
    pub value: String,
    /// `User` or `Group` when the client said so.
    pub kind: Option<String>,
}

/// A change to a group's member list, applied by the store without loading the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<MemberRef>),
    Remove(Vec<String>),
    RemoveAll,
    ReplaceAll(Vec<MemberRef>),
}

/// What applying a PATCH produced besides the edited document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchOutcome {
    /// Member changes in request order (groups only).
    pub member_changes: Vec<MemberChange>,
}

/// The most operations one PatchOp request may carry; more is refused with `tooMany`.
pub const MAX_PATCH_OPERATIONS: usize = 1000;

impl PatchOpKind {
    /// The operation name as RFC 7644 spells it.
    pub fn name(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }

    /// Parses an operation name, ignoring case (Entra sends `Add`, `Replace`, `Remove`).
    pub fn parse(name: &str) -> Option<Self> {
        [PatchOpKind::Add, PatchOpKind::Remove, PatchOpKind::Replace]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// The group attribute that is kept out of the document and reported as [`MemberChange`]s.
const MEMBERS: &str = "members";
/// The sub-attribute that identifies a referenced resource (`members.value`, `manager.value`).
const VALUE: &str = "value";
/// The sub-attribute that marks the preferred value of a multi-valued attribute.
const PRIMARY: &str = "primary";
/// Prefix of every IETF-registered SCIM URN; other URIs in value maps belong to vendors.
const IETF_SCIM_PREFIX: &str = "urn:ietf:params:scim:";

// ------------------------------------------------------------------------------------------------
// Parsing the request
// ------------------------------------------------------------------------------------------------

/// Parses a PatchOp request body (RFC 7644 §3.5.2) into its operations.
///
/// Lenient where real clients differ from the RFC: the `Operations` key and the `op` names are
/// matched ignoring case, and an empty `path` counts as no path. Each `path` is parsed here, so
/// a bad path is refused before anything is applied.
pub fn parse_patch_request(body: &Value) -> Result<Vec<PatchOperation>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| syntax("the PATCH request body must be a JSON object"))?;
    check_patch_schemas(obj)?;
    let ops = get_ignore_case(obj, "Operations")
        .ok_or_else(|| syntax("the PATCH request has no 'Operations'"))?
        .as_array()
        .ok_or_else(|| syntax("'Operations' must be an array"))?;
    if ops.is_empty() {
        return Err(syntax("'Operations' must contain at least one operation"));
    }
    if ops.len() > MAX_PATCH_OPERATIONS {
        return Err(ScimError::TooMany(format!(
            "a PATCH request may carry at most {MAX_PATCH_OPERATIONS} operations, got {}",
            ops.len()
        )));
    }
    ops.iter().enumerate().map(|(i, op)| parse_operation(i, op)).collect()
}

fn check_patch_schemas(obj: &Map<String, Value>) -> Result<(), ScimError> {
    let listed = get_ignore_case(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|uris| {
            uris.iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_SCHEMA)))
        });
    if listed {
        Ok(())
    } else {
        Err(syntax(format!(
            "'schemas' must be an array containing '{PATCH_OP_SCHEMA}'"
        )))
    }
}

fn parse_operation(index: usize, op: &Value) -> Result<PatchOperation, ScimError> {
    let at = format!("Operations[{index}]");
    let obj = op
        .as_object()
        .ok_or_else(|| syntax(format!("{at} must be a JSON object")))?;
    let kind = get_ignore_case(obj, "op")
        .and_then(Value::as_str)
        .and_then(PatchOpKind::parse)
        .ok_or_else(|| syntax(format!("{at}: 'op' must be one of 'add', 'remove' or 'replace'")))?;
    let path = match get_ignore_case(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => Some(parse_path_text(text.trim()).map_err(|e| prefix_error(&at, e))?),
        Some(_) => return Err(ScimError::InvalidPath(format!("{at}: 'path' must be a string"))),
    };
    let value = get_ignore_case(obj, "value").cloned();
    match kind {
        PatchOpKind::Remove if path.is_none() => Err(ScimError::NoTarget(format!("{at}: 'remove' requires a 'path'"))),
        PatchOpKind::Add | PatchOpKind::Replace if value.is_none() => {
            Err(syntax(format!("{at}: '{}' requires a 'value'", kind.name())))
        }
        _ => Ok(PatchOperation { op: kind, path, value }),
    }
}

/// Parses a path, turning the parser's complaint into `invalidPath`.
fn parse_path_text(text: &str) -> Result<PatchPath, ScimError> {
    parse_patch_path(text).map_err(|e| {
        ScimError::InvalidPath(format!(
            "invalid path '{text}' at position {}: {}",
            e.position, e.message
        ))
    })
}

/// Prefixes an error's detail with the operation it came from (`Operations[3]: …`), so a
/// client with a long request can tell which operation was refused.
fn prefix_error(at: &str, err: ScimError) -> ScimError {
    let prefixed = |msg: String| format!("{at}: {msg}");
    match err {
        ScimError::InvalidFilter(msg) => ScimError::InvalidFilter(prefixed(msg)),
        ScimError::InvalidPath(msg) => ScimError::InvalidPath(prefixed(msg)),
        ScimError::InvalidValue(msg) => ScimError::InvalidValue(prefixed(msg)),
        ScimError::InvalidSyntax(msg) => ScimError::InvalidSyntax(prefixed(msg)),
        ScimError::NoTarget(msg) => ScimError::NoTarget(prefixed(msg)),
        ScimError::Mutability(msg) => ScimError::Mutability(prefixed(msg)),
        other => other,
    }
}

// ------------------------------------------------------------------------------------------------
// Applying operations
// ------------------------------------------------------------------------------------------------

/// Applies `ops` in order to the canonical document `doc` (RFC 7644 §3.5.2.1–3).
///
/// Values are written under their canonical attribute names but not type-checked: the caller
/// runs `normalize_resource` and `check_immutable` on the result. On error the document may be
/// partly edited and must be discarded. Group `members` are not written to the document but
/// returned as [`PatchOutcome::member_changes`].
pub fn apply_patch(rt: &ResourceTypeDef, doc: &mut Value, ops: &[PatchOperation]) -> Result<PatchOutcome, ScimError> {
    if doc.is_null() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(doc) = doc else {
        return Err(syntax("the resource must be a JSON object"));
    };
    let mut patcher = Patcher {
        rt,
        outcome: PatchOutcome::default(),
    };
    for (index, op) in ops.iter().enumerate() {
        patcher
            .apply(doc, op)
            .map_err(|e| prefix_error(&format!("Operations[{index}]"), e))?;
    }
    Ok(patcher.outcome)
}

/// What a path addresses once resolved against the schema.
enum Target<'r, 'p> {
    /// A whole schema block named by its URN (`"path": "urn:…:enterprise:2.0:User"`).
    Schema(&'r SchemaDef),
    /// A group's `members`, which never live in the document.
    Members { filter: Option<&'p Filter>, has_sub: bool },
    /// An attribute, or part of one.
    Attr(AttrTarget<'r, 'p>),
}

/// An attribute addressed by a path: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Clone, Copy)]
struct AttrTarget<'r, 'p> {
    /// The extension whose block holds the attribute; `None` for core attributes.
    ext: Option<&'r SchemaDef>,
    attr: &'r AttributeDef,
    filter: Option<&'p Filter>,
    sub: Option<&'r AttributeDef>,
}

impl AttrTarget<'_, '_> {
    fn is_read_only(&self) -> bool {
        self.attr.mutability == Mutability::ReadOnly || self.sub.is_some_and(|s| s.mutability == Mutability::ReadOnly)
    }

    /// The path as the error messages show it, in canonical spelling.
    fn describe(&self) -> String {
        let mut out = match self.ext {
            Some(ext) => format!("{}:{}", ext.id, self.attr.name),
            None => self.attr.name.clone(),
        };
        if let Some(filter) = self.filter {
            out.push_str(&format!("[{filter}]"));
        }
        if let Some(sub) = self.sub {
            out.push('.');
            out.push_str(&sub.name);
        }
        out
    }
}

/// Applies operations for one resource type, collecting member changes on the way.
struct Patcher<'r> {
    rt: &'r ResourceTypeDef,
    outcome: PatchOutcome,
}

impl<'r> Patcher<'r> {
    fn apply(&mut self, doc: &mut Map<String, Value>, op: &PatchOperation) -> Result<(), ScimError> {
        match &op.path {
            Some(path) => self.apply_path(doc, op.op, path, op.value.as_ref()),
            None if op.op == PatchOpKind::Remove => Err(ScimError::NoTarget("'remove' requires a 'path'".into())),
            None => {
                let map = require_value(op.op, op.value.as_ref())?.as_object().ok_or_else(|| {
                    syntax(format!(
                        "'{}' without a 'path' requires a JSON object 'value'",
                        op.op.name()
                    ))
                })?;
                self.apply_value_map(doc, op.op, map, None)
            }
        }
    }

    /// An operation with an explicit path: read-only targets are refused.
    fn apply_path(
        &mut self,
        doc: &mut Map<String, Value>,
        kind: PatchOpKind,
        path: &PatchPath,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let target = self.resolve(path)?;
        if let Target::Attr(t) = &target {
            if t.is_read_only() {
                return Err(ScimError::Mutability(format!(
                    "attribute '{}' is read-only",
                    t.describe()
                )));
            }
        }
        self.execute(doc, kind, &target, value)
    }

    /// A path-less add/replace: each key of the value map is applied as its own operation with
    /// that key as the path. `scope` is the schema of an enclosing URN block, if any.
    ///
    /// Keys naming read-only attributes are skipped rather than refused, because clients echo
    /// them back (Okta's group rename sends the group's own `id`). Unknown vendor URIs are
    /// skipped too; anything else unknown is an error, so typos do not vanish silently.
    fn apply_value_map(
        &mut self,
        doc: &mut Map<String, Value>,
        kind: PatchOpKind,
        map: &Map<String, Value>,
        scope: Option<&'r SchemaDef>,
    ) -> Result<(), ScimError> {
        for (key, value) in map {
            // Clients echo `schemas` inside extension values too; it is not an attribute.
            if scope.is_some() && key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if scope.is_none() {
                if let Some((schema, _)) = self.rt.schema_by_urn(key) {
                    self.apply_schema_block(doc, kind, schema, Some(value))?;
                    continue;
                }
            }
            let text = match scope {
                Some(schema) => format!("{}:{key}", schema.id),
                None => key.clone(),
            };
            let vendor = is_vendor_key(&text);
            let path = match parse_path_text(&text) {
                Ok(path) => path,
                Err(_) if vendor => continue,
                Err(e) => return Err(e),
            };
            let target = match self.resolve(&path) {
                Ok(target) => target,
                Err(_) if vendor => continue,
                Err(e) => return Err(e),
            };
            if matches!(&target, Target::Attr(t) if t.is_read_only()) {
                continue;
            }
            self.execute(doc, kind, &target, Some(value))?;
        }
        Ok(())
    }

    fn resolve<'p>(&self, path: &'p PatchPath) -> Result<Target<'r, 'p>, ScimError> {
        resolve_target(self.rt, path)
    }

    fn execute(
        &mut self,
        doc: &mut Map<String, Value>,
        kind: PatchOpKind,
        target: &Target<'r, '_>,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        match target {
            Target::Schema(schema) => self.apply_schema_block(doc, kind, schema, value),
            Target::Members { filter, has_sub } => self.apply_members(kind, *filter, *has_sub, value),
            Target::Attr(t) => match kind {
                PatchOpKind::Add => add(doc, t, require_value(kind, value)?),
                PatchOpKind::Replace => match require_value(kind, value)? {
                    // RFC 7643 §2.5: assigning null unassigns the attribute.
                    Value::Null => remove(doc, t, None),
                    v => replace(doc, t, v),
                },
                PatchOpKind::Remove => remove(doc, t, value),
            },
        }
    }

    /// A whole schema block: `remove` drops an extension; add/replace apply each inner key.
    fn apply_schema_block(
        &mut self,
        doc: &mut Map<String, Value>,
        kind: PatchOpKind,
        schema: &'r SchemaDef,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let is_core = schema.id.eq_ignore_ascii_case(&self.rt.core.id);
        let unassign =
            kind == PatchOpKind::Remove || (kind == PatchOpKind::Replace && value.is_some_and(Value::is_null));
        if unassign {
            if is_core {
                return Err(ScimError::InvalidPath(format!(
                    "the core schema '{}' cannot be removed",
                    schema.id
                )));
            }
            doc.shift_remove(&schema.id);
            return Ok(());
        }
        match require_value(kind, value)? {
            Value::Null => Ok(()),
            Value::Object(block) => self.apply_value_map(doc, kind, block, Some(schema)),
            _ => Err(ScimError::InvalidValue(format!(
                "'{}' must be a JSON object",
                schema.id
            ))),
        }
    }

    /// Turns an operation on group `members` into a [`MemberChange`].
    fn apply_members(
        &mut self,
        kind: PatchOpKind,
        filter: Option<&Filter>,
        has_sub: bool,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        if has_sub {
            return Err(ScimError::Mutability(
                "sub-attributes of 'members' cannot be modified; add or remove the member instead".into(),
            ));
        }
        let change = match (kind, filter) {
            (PatchOpKind::Remove, Some(filter)) => Some(MemberChange::Remove(member_ids_from_filter(filter)?)),
            (_, Some(_)) => {
                return Err(ScimError::InvalidPath(
                    "a filter on 'members' is only supported with 'remove'".into(),
                ))
            }
            (PatchOpKind::Add, None) => {
                let refs = member_refs(require_value(kind, value)?)?;
                (!refs.is_empty()).then_some(MemberChange::Add(refs))
            }
            (PatchOpKind::Replace, None) => {
                let refs = member_refs(require_value(kind, value)?)?;
                Some(if refs.is_empty() {
                    MemberChange::RemoveAll
                } else {
                    MemberChange::ReplaceAll(refs)
                })
            }
            (PatchOpKind::Remove, None) => match value {
                None | Some(Value::Null) => Some(MemberChange::RemoveAll),
                // Entra removes members by listing them in `value` instead of using a filter.
                Some(listed) => {
                    let ids: Vec<String> = member_refs(listed)?.into_iter().map(|r| r.value).collect();
                    (!ids.is_empty()).then_some(MemberChange::Remove(ids))
                }
            },
        };
        self.outcome.member_changes.extend(change);
        Ok(())
    }
}

/// Resolves a parsed path against the schema: canonical names, extension, and the checks that do
/// not depend on the document (unknown names, filters on single-valued attributes).
fn resolve_target<'r, 'p>(rt: &'r ResourceTypeDef, path: &'p PatchPath) -> Result<Target<'r, 'p>, ScimError> {
    if let Some(schema) = whole_schema(rt, path) {
        return Ok(Target::Schema(schema));
    }
    if path.attr.sub_attr.is_some() && (path.filter.is_some() || path.sub_attr.is_some()) {
        return Err(ScimError::InvalidPath(format!(
            "a filter cannot follow the sub-attribute in '{}'",
            attr_path_text(&path.attr)
        )));
    }
    let resolved = rt
        .resolve(&path.attr)
        .map_err(|e| ScimError::InvalidPath(e.to_string()))?;
    let sub = match &path.sub_attr {
        Some(name) => Some(resolved.attr.sub_attribute(name).ok_or_else(|| {
            ScimError::InvalidPath(format!(
                "attribute '{}' has no sub-attribute '{name}'",
                resolved.attr.name
            ))
        })?),
        None => resolved.sub,
    };
    let filter = path.filter.as_ref();
    if filter.is_some() && !resolved.attr.multi_valued {
        return Err(ScimError::InvalidPath(format!(
            "attribute '{}' is single-valued and cannot be filtered",
            resolved.attr.name
        )));
    }
    if rt.kind == ResourceKind::Group && resolved.extension.is_none() && resolved.attr.name == MEMBERS {
        return Ok(Target::Members {
            filter,
            has_sub: sub.is_some(),
        });
    }
    Ok(Target::Attr(AttrTarget {
        ext: resolved.extension,
        attr: resolved.attr,
        filter,
        sub,
    }))
}

/// A path that is exactly a schema URN. Parsers split such a URN at its last colon
/// (`urn:…:2.0` + `User`), so the pieces are joined back before looking the URN up.
fn whole_schema<'r>(rt: &'r ResourceTypeDef, path: &PatchPath) -> Option<&'r SchemaDef> {
    if path.filter.is_some() || path.sub_attr.is_some() {
        return None;
    }
    let text = attr_path_text(&path.attr);
    if !text.contains(':') {
        return None;
    }
    rt.schema_by_urn(&text).map(|(schema, _)| schema)
}

fn attr_path_text(path: &AttrPath) -> String {
    let mut text = match &path.urn {
        Some(urn) => format!("{urn}:{}", path.name),
        None => path.name.clone(),
    };
    if let Some(sub) = &path.sub_attr {
        text.push('.');
        text.push_str(sub);
    }
    text
}

/// Is this value-map key a URI outside the IETF SCIM namespace (e.g. an Entra or Okta
/// extension this server does not host)? Such keys are ignored, like in POST bodies.
fn is_vendor_key(key: &str) -> bool {
    key.contains(':') && !key.to_ascii_lowercase().starts_with(IETF_SCIM_PREFIX)
}

fn require_value(kind: PatchOpKind, value: Option<&Value>) -> Result<&Value, ScimError> {
    value.ok_or_else(|| syntax(format!("'{}' requires a 'value'", kind.name())))
}

// ------------------------------------------------------------------------------------------------
// add / replace / remove on one attribute
// ------------------------------------------------------------------------------------------------

/// How values are written into an existing complex value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Merge the given sub-attributes into the element (add).
    Merge,
    /// Replace the element with the given value (replace).
    Overwrite,
}

/// RFC 7644 §3.5.2.1.
fn add(doc: &mut Map<String, Value>, t: &AttrTarget, value: &Value) -> Result<(), ScimError> {
    if value.is_null() {
        // Adding "no value" changes nothing.
        return Ok(());
    }
    with_container(doc, t.ext, |c| {
        let name = t.attr.name.as_str();
        match (t.attr.multi_valued, t.filter, t.sub) {
            (true, None, None) => {
                with_items(c, name, |items| append_items(t.attr, items, value));
                Ok(())
            }
            (true, _, _) => with_items(c, name, |items| write_matching(t, items, Write::Merge, value)),
            (false, _, Some(sub)) => {
                with_object(c, name, |obj| set_or_unset(obj, &sub.name, value));
                Ok(())
            }
            (false, _, None) => {
                set_single(c, t.attr, value);
                Ok(())
            }
        }
    })
}

/// RFC 7644 §3.5.2.3. A `null` value never gets here: it is routed to [`remove`].
fn replace(doc: &mut Map<String, Value>, t: &AttrTarget, value: &Value) -> Result<(), ScimError> {
    with_container(doc, t.ext, |c| {
        let name = t.attr.name.as_str();
        match (t.attr.multi_valued, t.filter, t.sub) {
            (true, None, None) => {
                let items: Vec<Value> = value_list(value)
                    .into_iter()
                    .map(|v| canonical_element(t.attr, v))
                    .collect();
                put_items(c, name, items);
                Ok(())
            }
            (true, _, _) => with_items(c, name, |items| write_matching(t, items, Write::Overwrite, value)),
            (false, _, Some(sub)) => {
                with_object(c, name, |obj| set_or_unset(obj, &sub.name, value));
                Ok(())
            }
            // Replacing a complex attribute replaces the sub-attributes given and keeps the
            // others (RFC 7644 §3.5.2.3), which is exactly the merge `add` does.
            (false, _, None) => {
                set_single(c, t.attr, value);
                Ok(())
            }
        }
    })
}

/// RFC 7644 §3.5.2.2. Removing something that is not there is not an error.
fn remove(doc: &mut Map<String, Value>, t: &AttrTarget, value: Option<&Value>) -> Result<(), ScimError> {
    with_container(doc, t.ext, |c| {
        let name = t.attr.name.as_str();
        match (t.attr.multi_valued, t.filter, t.sub) {
            (true, None, None) => match value {
                // Entra removes single values by listing them (`"path":"emails","value":[…]`):
                // only those go, not the whole attribute.
                Some(listed) if !listed.is_null() => with_items(c, name, |items| remove_listed(t.attr, items, listed)),
                _ => {
                    c.shift_remove(name);
                }
            },
            (true, _, sub) => with_items(c, name, |items| {
                let selected = select(t, items);
                match sub {
                    Some(sub) => {
                        for &i in &selected {
                            if let Some(obj) = items.get_mut(i).and_then(Value::as_object_mut) {
                                obj.shift_remove(&sub.name);
                            }
                        }
                        // An element with nothing left in it carries no information.
                        items.retain(|item| item.as_object().is_none_or(|o| !o.is_empty()));
                    }
                    None => remove_indices(items, &selected),
                }
            }),
            (false, _, Some(sub)) => with_object(c, name, |obj| {
                obj.shift_remove(&sub.name);
            }),
            (false, _, None) => {
                c.shift_remove(name);
            }
        }
        Ok(())
    })
}

/// Sets a single-valued attribute. Complex values are merged into the existing value; a bare
/// string for a complex attribute with a `value` sub-attribute is its id (Entra sends
/// `manager` this way) and becomes the whole value, so a stale `$ref` does not survive.
fn set_single(c: &mut Map<String, Value>, attr: &AttributeDef, value: &Value) {
    if attr.attr_type != AttrType::Complex {
        c.insert(attr.name.clone(), value.clone());
        return;
    }
    match value {
        Value::Object(given) => with_object(c, &attr.name, |obj| {
            for (key, v) in given {
                set_or_unset(obj, &canonical_sub_name(attr, key), v);
            }
        }),
        Value::String(id) if attr.sub_attribute(VALUE).is_some() => {
            let mut reference = Map::new();
            reference.insert(VALUE.to_string(), Value::String(id.clone()));
            c.insert(attr.name.clone(), Value::Object(reference));
        }
        // A wrong type is placed as is; `normalize_resource` refuses it with a clear message.
        other => {
            c.insert(attr.name.clone(), other.clone());
        }
    }
}

/// Appends values to a multi-valued attribute, skipping exact duplicates. A new primary value
/// demotes the previous one, so the "at most one primary" rule holds after the add.
fn append_items(attr: &AttributeDef, items: &mut Vec<Value>, value: &Value) {
    for item in value_list(value) {
        let item = canonical_element(attr, item);
        if items.contains(&item) {
            continue;
        }
        items.push(item);
        let written = [items.len() - 1];
        demote_other_primaries(attr, items, &written);
    }
}

/// Writes `value` into the elements selected by the target's filter (all elements when there is
/// none): into the sub-attribute when the path names one, else into the element itself.
///
/// When nothing matches and the filter is only `eq` comparisons joined by `and`, a new element
/// is built from them. That is how Entra sets a work email on a user who has none:
/// `add emails[type eq "work"].value`. Replacing whole elements never creates one.
fn write_matching(t: &AttrTarget, items: &mut Vec<Value>, mode: Write, value: &Value) -> Result<(), ScimError> {
    let mut selected = select(t, items);
    if selected.is_empty() {
        let creatable = t.sub.is_some() || mode == Write::Merge;
        let seed = if creatable {
            element_from_eq_filter(t.attr, t.filter)
        } else {
            None
        };
        let Some(seed) = seed else {
            return Err(ScimError::NoTarget(format!("no value matches '{}'", t.describe())));
        };
        // The seed is completed with a merge: its filter values stay unless overwritten.
        let mut created = Value::Object(seed);
        write_element(t, &mut created, Write::Merge, value)?;
        items.push(created);
        selected.push(items.len() - 1);
    } else {
        for &i in &selected {
            if let Some(item) = items.get_mut(i) {
                write_element(t, item, mode, value)?;
            }
        }
    }
    demote_other_primaries(t.attr, items, &selected);
    Ok(())
}

fn write_element(t: &AttrTarget, item: &mut Value, mode: Write, value: &Value) -> Result<(), ScimError> {
    if let Some(sub) = t.sub {
        if !item.is_object() {
            *item = Value::Object(Map::new());
        }
        if let Some(obj) = item.as_object_mut() {
            set_or_unset(obj, &sub.name, value);
        }
        return Ok(());
    }
    match (mode, value, item.as_object_mut()) {
        (Write::Merge, Value::Object(given), Some(obj)) => {
            for (key, v) in given {
                set_or_unset(obj, &canonical_sub_name(t.attr, key), v);
            }
            Ok(())
        }
        (Write::Merge, _, _) if t.attr.attr_type == AttrType::Complex => Err(ScimError::InvalidValue(format!(
            "'add' to '{}' needs a JSON object value",
            t.describe()
        ))),
        _ => {
            *item = canonical_element(t.attr, value);
            Ok(())
        }
    }
}

/// Removes the listed values from a multi-valued attribute. Elements are identified by their
/// `value` sub-attribute when the listed element has one, else by equality.
fn remove_listed(attr: &AttributeDef, items: &mut Vec<Value>, listed: &Value) {
    for item in value_list(listed) {
        let item = canonical_element(attr, item);
        match item.get(VALUE) {
            Some(id) => items.retain(|existing| existing.get(VALUE) != Some(id)),
            None => items.retain(|existing| *existing != item),
        }
    }
}

fn remove_indices(items: &mut Vec<Value>, indices: &[usize]) {
    let mut index = 0;
    items.retain(|_| {
        let keep = !indices.contains(&index);
        index += 1;
        keep
    });
}

/// The indices of the elements the target's filter selects; all of them without a filter.
fn select(t: &AttrTarget, items: &[Value]) -> Vec<usize> {
    let Some(filter) = t.filter else {
        return (0..items.len()).collect();
    };
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| element_matches(t.attr, filter, item))
        .map(|(i, _)| i)
        .collect()
}

/// Evaluates a value-path filter against one element, with the case sensitivity the schema
/// gives the element's sub-attributes (e.g. `members.value` is caseExact, `emails.type` not).
fn element_matches(attr: &AttributeDef, filter: &Filter, item: &Value) -> bool {
    let case_exact = |path: &AttrPath| sub_attr_case_exact(attr, path);
    if item.is_object() {
        filter.matches(item, &case_exact)
    } else {
        // Elements of a simple multi-valued attribute are addressed as `value` (RFC 7644 §3.5.2).
        let mut wrapper = Map::new();
        wrapper.insert(VALUE.to_string(), item.clone());
        filter.matches(&Value::Object(wrapper), &case_exact)
    }
}

fn sub_attr_case_exact(attr: &AttributeDef, path: &AttrPath) -> bool {
    if attr.sub_attributes.is_empty() {
        return attr.case_exact;
    }
    // Element-relative (`type`), or spelled out in full (`emails.type`).
    let name = match &path.sub_attr {
        Some(sub) if path.name.eq_ignore_ascii_case(&attr.name) => sub,
        _ => &path.name,
    };
    attr.sub_attribute(name).is_some_and(|s| s.case_exact)
}

/// Builds a new element from a filter made only of `eq` comparisons joined by `and`
/// (`type eq "work"` → `{"type": "work"}`); no filter gives an empty element.
fn element_from_eq_filter(attr: &AttributeDef, filter: Option<&Filter>) -> Option<Map<String, Value>> {
    let mut element = Map::new();
    match filter {
        Some(filter) if !collect_eq_pairs(attr, filter, &mut element) => None,
        _ => Some(element),
    }
}

fn collect_eq_pairs(attr: &AttributeDef, filter: &Filter, out: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::And(left, right) => collect_eq_pairs(attr, left, out) && collect_eq_pairs(attr, right, out),
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.urn.is_none() && path.sub_attr.is_none() => {
            let (Some(sub), Some(value)) = (attr.sub_attribute(&path.name), comp_value_json(value)) else {
                return false;
            };
            out.insert(sub.name.clone(), value);
            true
        }
        _ => false,
    }
}

fn comp_value_json(value: &CompValue) -> Option<Value> {
    match value {
        CompValue::Null => None,
        CompValue::Bool(b) => Some(Value::Bool(*b)),
        CompValue::Number(n) => Some(Value::Number(n.clone())),
        CompValue::String(s) => Some(Value::String(s.clone())),
    }
}

/// If one of the `written` elements is now primary, no other element may stay primary.
fn demote_other_primaries(attr: &AttributeDef, items: &mut [Value], written: &[usize]) {
    if !attr.has_primary() || !written.iter().any(|&i| items.get(i).is_some_and(is_primary)) {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if written.contains(&i) || !is_primary(item) {
            continue;
        }
        if let Some(obj) = item.as_object_mut() {
            obj.insert(PRIMARY.to_string(), Value::Bool(false));
        }
    }
}

fn is_primary(item: &Value) -> bool {
    item.get(PRIMARY).and_then(parse_bool) == Some(true)
}

// ------------------------------------------------------------------------------------------------
// Group members
// ------------------------------------------------------------------------------------------------

/// The members listed in a value: an array of `{"value": id, "type": …}` or one such object.
fn member_refs(value: &Value) -> Result<Vec<MemberRef>, ScimError> {
    value_list(value).into_iter().map(member_ref).collect()
}

fn member_ref(item: &Value) -> Result<MemberRef, ScimError> {
    let invalid = || {
        ScimError::InvalidValue(
            "each member must be an object with a non-empty string 'value' (the member's id)".into(),
        )
    };
    let obj = item.as_object().ok_or_else(invalid)?;
    let id = get_ignore_case(obj, VALUE)
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(invalid)?;
    let kind = match get_ignore_case(obj, "type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.clone()),
        Some(_) => return Err(ScimError::InvalidValue("a member's 'type' must be a string".into())),
    };
    Ok(MemberRef {
        value: id.to_string(),
        kind,
    })
}

/// The ids named by a members filter: `value eq "a"`, or several joined by `or`.
fn member_ids_from_filter(filter: &Filter) -> Result<Vec<String>, ScimError> {
    let mut ids = Vec::new();
    if collect_member_ids(filter, &mut ids) {
        Ok(ids)
    } else {
        Err(ScimError::InvalidFilter(
            "only 'value eq' filters (optionally joined by 'or') are supported on members".into(),
        ))
    }
}

fn collect_member_ids(filter: &Filter, out: &mut Vec<String>) -> bool {
    match filter {
        Filter::Or(left, right) => collect_member_ids(left, out) && collect_member_ids(right, out),
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: CompValue::String(id),
        } if path.urn.is_none() && path.sub_attr.is_none() && path.name.eq_ignore_ascii_case(VALUE) => {
            out.push(id.clone());
            true
        }
        _ => false,
    }
}

// ------------------------------------------------------------------------------------------------
// Small JSON helpers
// ------------------------------------------------------------------------------------------------

/// Runs `f` on the map that holds the attribute: the document itself, or the extension's block,
/// which is created on demand and dropped again when left empty.
fn with_container<R>(
    doc: &mut Map<String, Value>,
    ext: Option<&SchemaDef>,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    match ext {
        None => f(doc),
        Some(ext) => with_object(doc, &ext.id, f),
    }
}

/// Runs `f` on the object stored under `key` (an empty one when absent), then stores it back in
/// place, or removes the key when the object ended up empty.
fn with_object<R>(map: &mut Map<String, Value>, key: &str, f: impl FnOnce(&mut Map<String, Value>) -> R) -> R {
    let mut obj = match map.get_mut(key).map(Value::take) {
        Some(Value::Object(obj)) => obj,
        _ => Map::new(),
    };
    let result = f(&mut obj);
    if obj.is_empty() {
        map.shift_remove(key);
    } else {
        map.insert(key.to_string(), Value::Object(obj));
    }
    result
}

/// Runs `f` on the elements of the multi-valued attribute `key` (a stray single value counts as
/// one element), then stores them back in place, or removes the key when none are left.
fn with_items<R>(map: &mut Map<String, Value>, key: &str, f: impl FnOnce(&mut Vec<Value>) -> R) -> R {
    let mut items = match map.get_mut(key).map(Value::take) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(single) => vec![single],
    };
    let result = f(&mut items);
    put_items(map, key, items);
    result
}

fn put_items(map: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if items.is_empty() {
        map.shift_remove(key);
    } else {
        map.insert(key.to_string(), Value::Array(items));
    }
}

/// Sets `key`, or removes it when the value is `null` (null means unassigned, RFC 7643 §2.5).
fn set_or_unset(obj: &mut Map<String, Value>, key: &str, value: &Value) {
    if value.is_null() {
        obj.shift_remove(key);
    } else {
        obj.insert(key.to_string(), value.clone());
    }
}

/// The elements of a value that may be one element or an array of them; `null` is none.
fn value_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    }
}

/// An element with its sub-attribute keys spelled as the schema spells them
/// (`{"Value": …}` → `{"value": …}`). Unknown keys are kept; normalization drops them.
fn canonical_element(attr: &AttributeDef, value: &Value) -> Value {
    match value {
        Value::Object(obj) if attr.attr_type == AttrType::Complex => Value::Object(
            obj.iter()
                .map(|(key, v)| (canonical_sub_name(attr, key), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn canonical_sub_name(attr: &AttributeDef, key: &str) -> String {
    attr.sub_attribute(key)
        .map_or_else(|| key.to_string(), |sub| sub.name.clone())
}

/// Looks a key up ignoring case (clients send `Operations`, `operations`, `Op`, …).
fn get_ignore_case<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key)
        .or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::InvalidSyntax(detail.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::scim::resource::{check_immutable, normalize_resource};
    use crate::scim::schema::{SchemaRegistry, ENTERPRISE_USER_SCHEMA, SEATBRIDGE_USER_SCHEMA};
    use serde_json::json;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    fn reg() -> SchemaRegistry {
        SchemaRegistry::builtin().unwrap()
    }

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    /// Parses `ops` as a request and applies it to `doc`.
    fn try_patch(rt: &ResourceTypeDef, doc: Value, ops: Value) -> Result<(Value, PatchOutcome), ScimError> {
        let ops = parse_patch_request(&body(ops))?;
        let mut doc = doc;
        let outcome = apply_patch(rt, &mut doc, &ops)?;
        Ok((doc, outcome))
    }

    fn patch_user(doc: Value, ops: Value) -> Value {
        try_patch(&reg().user, doc, ops).unwrap().0
    }

    fn user_error(doc: Value, ops: Value) -> ScimError {
        try_patch(&reg().user, doc, ops).unwrap_err()
    }

    /// Applies a group PATCH; returns the document and the member changes.
    fn patch_group(doc: Value, ops: Value) -> (Value, Vec<MemberChange>) {
        let (doc, outcome) = try_patch(&reg().group, doc, ops).unwrap();
        (doc, outcome.member_changes)
    }

    fn group_error(ops: Value) -> ScimError {
        try_patch(&reg().group, json!({"displayName": "g"}), ops).unwrap_err()
    }

    fn member(id: &str, kind: Option<&str>) -> MemberRef {
        MemberRef {
            value: id.into(),
            kind: kind.map(str::to_string),
        }
    }

    /// A user as stored, with two emails, a work address and an enterprise block.
    fn barbara() -> Value {
        json!({
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "middleName": "Jane", "familyName": "Jensen"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"}],
            ENT: {"department": "Tour Operations", "employeeNumber": "701984"}
        })
    }

    #[test]
    fn schemas_echoed_inside_an_extension_value_is_ignored() {
        for op in ["add", "replace"] {
            let doc = patch_user(
                barbara(),
                json!([{"op": op, "path": ENT, "value": {"schemas": [ENT], "employeeNumber": "10"}}]),
            );
            assert_eq!(doc[ENT]["employeeNumber"], "10");
            assert!(doc[ENT].get("schemas").is_none());
        }
        let doc = patch_user(
            barbara(),
            json!([{"op": "add", "value": {ENT: {"schemas": [ENT], "costCenter": "4"}}}]),
        );
        assert_eq!(doc[ENT]["costCenter"], "4");
    }

    // ---- parse_patch_request ----------------------------------------------------------------

    #[test]
    fn parses_ops_in_any_case() {
        let ops = parse_patch_request(&json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [
                {"op": "Add", "path": "nickName", "value": "Babs"},
                {"op": "Replace", "path": "title", "value": "Boss"},
                {"op": "REMOVE", "path": "locale"}
            ]
        }))
        .unwrap();
        let kinds: Vec<_> = ops.iter().map(|o| o.op).collect();
        assert_eq!(kinds, [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove]);
        assert_eq!(ops[0].path.as_ref().unwrap().attr.name, "nickName");
        assert_eq!(ops[0].value, Some(json!("Babs")));
        assert_eq!(ops[2].value, None);
    }

    #[test]
    fn operations_key_is_matched_ignoring_case() {
        let ops = parse_patch_request(&json!({
            "schemas": [PATCH_OP_SCHEMA],
            "operations": [{"op": "replace", "value": {"active": false}}]
        }))
        .unwrap();
        assert_eq!(ops.len(), 1);
        assert!(ops[0].path.is_none());
    }

    #[test]
    fn request_envelope_errors_are_invalid_syntax() {
        let op = json!([{"op": "add", "path": "nickName", "value": "x"}]);
        for bad in [
            json!([]),
            json!({"Operations": op}),
            json!({"schemas": PATCH_OP_SCHEMA, "Operations": op}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": op}),
            json!({"schemas": [PATCH_OP_SCHEMA]}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": {}}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": []}),
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ["add"]}),
        ] {
            let err = parse_patch_request(&bad).unwrap_err();
            assert!(matches!(err, ScimError::InvalidSyntax(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn more_than_a_thousand_operations_is_too_many() {
        let op = json!({"op": "add", "path": "nickName", "value": "x"});
        let ops = vec![op; MAX_PATCH_OPERATIONS];
        assert_eq!(
            parse_patch_request(&body(json!(ops.clone()))).unwrap().len(),
            MAX_PATCH_OPERATIONS
        );
        let mut too_many = ops;
        too_many.push(json!({"op": "remove", "path": "nickName"}));
        let err = parse_patch_request(&body(json!(too_many))).unwrap_err();
        assert!(matches!(err, ScimError::TooMany(_)), "{err:?}");
    }

    #[test]
    fn unknown_or_missing_op_is_invalid_syntax() {
        for op in [
            json!({"op": "patch", "path": "nickName", "value": "x"}),
            json!({"op": "copy", "path": "nickName"}),
            json!({"op": 1, "path": "nickName", "value": "x"}),
            json!({"path": "nickName", "value": "x"}),
        ] {
            let err = parse_patch_request(&body(json!([op]))).unwrap_err();
            assert!(matches!(err, ScimError::InvalidSyntax(_)), "{op}: {err:?}");
        }
    }

    #[test]
    fn bad_path_is_invalid_path_with_the_parser_message() {
        let err = parse_patch_request(&body(json!([
            {"op": "add", "path": "nickName", "value": "x"},
            {"op": "remove", "path": "emails[type eq \"work\""}
        ])))
        .unwrap_err();
        let ScimError::InvalidPath(msg) = err else {
            panic!("{err:?}")
        };
        assert!(
            msg.starts_with("Operations[1]: invalid path 'emails[type eq \"work\"'"),
            "{msg}"
        );
        let err = parse_patch_request(&body(json!([{"op": "add", "path": 5, "value": "x"}]))).unwrap_err();
        assert!(matches!(err, ScimError::InvalidPath(_)), "{err:?}");
    }

    #[test]
    fn remove_without_path_is_no_target() {
        let err = parse_patch_request(&body(json!([{"op": "remove"}]))).unwrap_err();
        assert!(matches!(err, ScimError::NoTarget(_)), "{err:?}");
        let err = parse_patch_request(&body(json!([{"op": "remove", "path": ""}]))).unwrap_err();
        assert!(matches!(err, ScimError::NoTarget(_)), "{err:?}");
    }

    #[test]
    fn add_or_replace_without_value_is_invalid_syntax() {
        for op in [json!({"op": "add", "path": "nickName"}), json!({"op": "replace"})] {
            let err = parse_patch_request(&body(json!([op]))).unwrap_err();
            assert!(matches!(err, ScimError::InvalidSyntax(_)), "{op}: {err:?}");
        }
        // An explicit null is a value: replace with null unassigns.
        let ops = parse_patch_request(&body(json!([{"op": "replace", "path": "nickName", "value": null}]))).unwrap();
        assert_eq!(ops[0].value, Some(Value::Null));
    }

    // ---- RFC 7644 §3.5.2 examples -------------------------------------------------------------

    #[test]
    fn rfc_add_member() {
        let (doc, changes) = patch_group(
            json!({"displayName": "Tour Guides"}),
            json!([{
                "op": "add",
                "path": "members",
                "value": [{
                    "display": "Babs Jensen",
                    "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
                    "value": "2819c223-7f76-453a-919d-413861904646"
                }]
            }]),
        );
        assert_eq!(
            changes,
            [MemberChange::Add(vec![member(
                "2819c223-7f76-453a-919d-413861904646",
                None
            )])]
        );
        assert_eq!(doc, json!({"displayName": "Tour Guides"}));
    }

    #[test]
    fn rfc_add_emails_and_nickname_without_path() {
        let doc = patch_user(
            json!({"userName": "bjensen"}),
            json!([{
                "op": "add",
                "value": {
                    "emails": [{"value": "babs@jensen.org", "type": "home"}],
                    "nickname": "Babs"
                }
            }]),
        );
        assert_eq!(
            doc,
            json!({"userName": "bjensen", "emails": [{"value": "babs@jensen.org", "type": "home"}], "nickName": "Babs"})
        );
    }

    #[test]
    fn rfc_add_emails_with_path_appends() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "babs@example.net", "type": "other"}]}]),
        );
        assert_eq!(doc["emails"].as_array().unwrap().len(), 3);
        assert_eq!(doc["emails"][2], json!({"value": "babs@example.net", "type": "other"}));
    }

    #[test]
    fn rfc_replace_name_keeps_other_sub_attributes() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "replace", "path": "name", "value": {"givenName": "Babs", "familyName": "Jensen-Smith"}}]),
        );
        assert_eq!(
            doc["name"],
            json!({"givenName": "Babs", "middleName": "Jane", "familyName": "Jensen-Smith"})
        );
    }

    #[test]
    fn rfc_replace_emails_without_path_replaces_the_whole_list() {
        let doc = patch_user(
            barbara(),
            json!([{
                "op": "replace",
                "value": {
                    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
                    "nickname": "Babs"
                }
            }]),
        );
        assert_eq!(
            doc["emails"],
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
        );
        assert_eq!(doc["nickName"], "Babs");
    }

    #[test]
    fn rfc_replace_all_members() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{
                "op": "replace",
                "path": "members",
                "value": [
                    {"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "2819c223"},
                    {"display": "James Smith", "value": "08e1d05d", "type": "User"}
                ]
            }]),
        );
        assert_eq!(
            changes,
            [MemberChange::ReplaceAll(vec![
                member("2819c223", None),
                member("08e1d05d", Some("User"))
            ])]
        );
    }

    #[test]
    fn rfc_remove_all_members() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{"op": "remove", "path": "members"}]),
        );
        assert_eq!(changes, [MemberChange::RemoveAll]);
    }

    #[test]
    fn rfc_remove_one_filtered_member() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{"op": "remove", "path": "members[value eq \"2819c223-7f76-...413861904646\"]"}]),
        );
        assert_eq!(
            changes,
            [MemberChange::Remove(vec!["2819c223-7f76-...413861904646".into()])]
        );
    }

    #[test]
    fn rfc_remove_filtered_emails() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
        );
        assert_eq!(doc["emails"], json!([{"value": "babs@jensen.org", "type": "home"}]));
    }

    #[test]
    fn rfc_replace_street_address_of_work_address() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]),
        );
        assert_eq!(
            doc["addresses"],
            json!([{"type": "work", "streetAddress": "1010 Broadway Ave", "locality": "Hollywood"}])
        );
    }

    #[test]
    fn rfc_replace_whole_filtered_element() {
        let doc = patch_user(
            barbara(),
            json!([{
                "op": "replace",
                "path": "addresses[type eq \"work\"]",
                "value": {"type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
                          "region": "CA", "postalCode": "91608", "country": "US", "primary": true}
            }]),
        );
        assert_eq!(doc["addresses"][0]["streetAddress"], "911 Universal City Plaza");
        assert_eq!(doc["addresses"][0]["postalCode"], "91608");
    }

    // ---- path-less value maps -------------------------------------------------------------------

    #[test]
    fn entra_pathless_replace_with_dotted_keys() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "Replace", "value": {"displayName": "Babs J", "name.givenName": "Babs", "NAME.FAMILYNAME": "J"}}]),
        );
        assert_eq!(doc["displayName"], "Babs J");
        assert_eq!(
            doc["name"],
            json!({"givenName": "Babs", "middleName": "Jane", "familyName": "J"})
        );
    }

    #[test]
    fn pathless_urn_prefixed_attribute_lands_in_the_extension_block() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([{"op": "add", "value": {
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "boss-id"
            }}]),
        );
        assert_eq!(doc[ENT], json!({"department": "R&D", "manager": {"value": "boss-id"}}));
    }

    #[test]
    fn pathless_extension_block_applies_each_inner_key() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "replace", "value": {
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x", "Manager": {"Value": "m1"}}
            }}]),
        );
        assert_eq!(
            doc[ENT],
            json!({"department": "x", "employeeNumber": "701984", "manager": {"value": "m1"}})
        );
    }

    #[test]
    fn okta_group_rename_ignores_the_echoed_id() {
        let (doc, changes) = patch_group(
            json!({"displayName": "Old", "externalId": "okta-1"}),
            json!([{"op": "replace", "value": {"id": "0b8c4c5e-7f9a-4a6a-9f7e-2a9c0f1d6e3b", "displayName": "New"}}]),
        );
        assert_eq!(doc, json!({"displayName": "New", "externalId": "okta-1"}));
        assert!(changes.is_empty());
    }

    #[test]
    fn pathless_read_only_keys_are_ignored() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([{"op": "replace", "value": {
                "id": "x",
                "meta": {"created": "2020-01-01T00:00:00Z"},
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "groups": [{"value": "g1"}],
                "urn:ietf:params:scim:schemas:extension:seatbridge:2.0:User:entitled": true,
                "displayName": "A"
            }}]),
        );
        assert_eq!(doc, json!({"userName": "a", "displayName": "A"}));
    }

    #[test]
    fn pathless_vendor_keys_are_ignored() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([{"op": "add", "value": {
                "urn:okta:custom:profile:costCode": "x",
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User": {"a": 1},
                "title": "Dev"
            }}]),
        );
        assert_eq!(doc, json!({"userName": "a", "title": "Dev"}));
    }

    #[test]
    fn pathless_unknown_keys_are_invalid_path() {
        for value in [
            json!({"shoeSize": "9"}),
            json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize": "9"}),
            json!({"urn:ietf:params:scim:schemas:extension:nope:2.0:User:x": "9"}),
            json!({ENT: {"shoeSize": "9"}}),
        ] {
            let err = user_error(json!({"userName": "a"}), json!([{"op": "add", "value": value}]));
            assert!(matches!(err, ScimError::InvalidPath(_)), "{value}: {err:?}");
        }
    }

    #[test]
    fn pathless_value_must_be_an_object() {
        for op in [
            json!({"op": "add", "value": "x"}),
            json!({"op": "replace", "value": [1]}),
            json!({"op": "replace", "value": null}),
        ] {
            let err = user_error(json!({"userName": "a"}), json!([op]));
            assert!(matches!(err, ScimError::InvalidSyntax(_)), "{op}: {err:?}");
        }
    }

    #[test]
    fn pathless_null_unassigns_on_replace_and_is_ignored_on_add() {
        let doc = patch_user(
            json!({"userName": "a", "nickName": "n", "title": "t"}),
            json!([{"op": "replace", "value": {"nickName": null}}, {"op": "add", "value": {"title": null}}]),
        );
        assert_eq!(doc, json!({"userName": "a", "title": "t"}));
    }

    // ---- add with a path ------------------------------------------------------------------------

    #[test]
    fn paths_are_written_with_canonical_names() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([
                {"op": "replace", "path": "NAME.givenname", "value": "B"},
                {"op": "add", "path": "DISPLAYNAME", "value": "D"},
                {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:title", "value": "T"},
                {"op": "add", "path": "EMAILS", "value": {"Value": "a@x.com", "TYPE": "work"}}
            ]),
        );
        assert_eq!(
            doc,
            json!({"userName": "a", "name": {"givenName": "B"}, "displayName": "D", "title": "T",
                   "emails": [{"value": "a@x.com", "type": "work"}]})
        );
    }

    #[test]
    fn add_merges_into_complex_single_valued() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "add", "path": "name", "value": {"honorificPrefix": "Ms."}}]),
        );
        assert_eq!(
            doc["name"],
            json!({"givenName": "Barbara", "middleName": "Jane", "familyName": "Jensen", "honorificPrefix": "Ms."})
        );
    }

    #[test]
    fn add_merges_into_enterprise_manager() {
        let doc = patch_user(
            json!({"userName": "a", ENT: {"manager": {"value": "m1"}}}),
            json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                    "value": {"$ref": "https://example.com/v2/Users/m1"}}]),
        );
        assert_eq!(
            doc[ENT]["manager"],
            json!({"value": "m1", "$ref": "https://example.com/v2/Users/m1"})
        );
    }

    #[test]
    fn entra_manager_as_bare_id_string() {
        let doc = patch_user(
            json!({"userName": "a", ENT: {"manager": {"value": "old", "$ref": "https://example.com/v2/Users/old"}}}),
            json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                    "value": "26118915-6090-4610-87a4-49d0767b5ab2"}]),
        );
        assert_eq!(
            doc[ENT]["manager"],
            json!({"value": "26118915-6090-4610-87a4-49d0767b5ab2"})
        );
    }

    #[test]
    fn add_sub_attribute_creates_the_parent() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([{"op": "add", "path": "name.givenName", "value": "Bo"}]),
        );
        assert_eq!(doc["name"], json!({"givenName": "Bo"}));
    }

    #[test]
    fn add_single_element_and_skip_duplicates() {
        let doc = patch_user(
            barbara(),
            json!([
                {"op": "add", "path": "emails", "value": {"value": "babs@jensen.org", "type": "home"}},
                {"op": "add", "path": "phoneNumbers", "value": {"value": "555-1234", "type": "work"}},
                {"op": "add", "path": "phoneNumbers", "value": [{"value": "555-1234", "type": "work"}]}
            ]),
        );
        assert_eq!(doc["emails"].as_array().unwrap().len(), 2);
        assert_eq!(doc["phoneNumbers"], json!([{"value": "555-1234", "type": "work"}]));
    }

    #[test]
    fn added_primary_demotes_the_previous_primary() {
        for primary in [json!(true), json!("True")] {
            let doc = patch_user(
                barbara(),
                json!([{"op": "add", "path": "emails", "value": [{"value": "new@example.com", "type": "other", "primary": primary}]}]),
            );
            assert_eq!(doc["emails"][0]["primary"], json!(false));
            assert!(doc["emails"][1].get("primary").is_none());
            assert_eq!(doc["emails"][2]["primary"], primary);
            // normalize_resource accepts the result: exactly one primary, as a boolean.
            let normalized = normalize_resource(&reg().user, &doc).unwrap();
            assert_eq!(normalized["emails"][2]["primary"], json!(true));
        }
    }

    #[test]
    fn entra_add_work_email_value_creates_the_element() {
        let doc = patch_user(
            json!({"userName": "a", "emails": [{"value": "a@home.org", "type": "home"}]}),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@work.com"}]),
        );
        assert_eq!(
            doc["emails"],
            json!([{"value": "a@home.org", "type": "home"}, {"type": "work", "value": "a@work.com"}])
        );
    }

    #[test]
    fn entra_add_work_email_value_updates_the_existing_element() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "barbara@example.com"}]),
        );
        assert_eq!(
            doc["emails"][0],
            json!({"value": "barbara@example.com", "type": "work", "primary": true})
        );
        assert_eq!(doc["emails"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn entra_add_phone_with_two_eq_conditions_creates_the_element() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\" and primary eq true].value", "value": "+1 555 0100"}]),
        );
        assert_eq!(
            doc["phoneNumbers"],
            json!([{"type": "mobile", "primary": true, "value": "+1 555 0100"}])
        );
    }

    #[test]
    fn add_value_path_without_sub_attribute_merges_into_matches() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"display": "Home", "primary": true}}]),
        );
        assert_eq!(
            doc["emails"][1],
            json!({"value": "babs@jensen.org", "type": "home", "display": "Home", "primary": true})
        );
        assert_eq!(doc["emails"][0]["primary"], json!(false));
    }

    #[test]
    fn add_value_path_that_cannot_create_is_no_target() {
        let err = user_error(
            barbara(),
            json!([{"op": "add", "path": "emails[value co \"nobody\"].display", "value": "x"}]),
        );
        assert!(matches!(err, ScimError::NoTarget(_)), "{err:?}");
    }

    // ---- replace with a path --------------------------------------------------------------------

    #[test]
    fn replace_sets_single_valued_and_replaces_multi_valued() {
        let doc = patch_user(
            barbara(),
            json!([
                {"op": "replace", "path": "userName", "value": "babs"},
                {"op": "replace", "path": "emails", "value": [{"value": "only@example.com"}]}
            ]),
        );
        assert_eq!(doc["userName"], "babs");
        assert_eq!(doc["emails"], json!([{"value": "only@example.com"}]));
    }

    #[test]
    fn replace_primary_through_a_value_path_demotes_others() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
        );
        assert_eq!(doc["emails"][0]["primary"], json!(false));
        assert_eq!(doc["emails"][1]["primary"], json!(true));
        normalize_resource(&reg().user, &doc).unwrap();
    }

    #[test]
    fn replace_value_path_with_sub_attribute_creates_on_eq_filter() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([{"op": "replace", "path": "addresses[type eq \"work\"].locality", "value": "Oslo"}]),
        );
        assert_eq!(doc["addresses"], json!([{"type": "work", "locality": "Oslo"}]));
    }

    #[test]
    fn replace_value_path_without_match_is_no_target_otherwise() {
        for path in [
            "addresses[type eq \"home\"]",
            "emails[value sw \"zz\"].type",
            "emails[type eq \"x\" or type eq \"y\"].value",
        ] {
            let err = user_error(
                barbara(),
                json!([{"op": "replace", "path": path, "value": {"type": "home"}}]),
            );
            assert!(matches!(err, ScimError::NoTarget(_)), "{path}: {err:?}");
        }
    }

    #[test]
    fn replace_with_null_removes() {
        let doc = patch_user(
            barbara(),
            json!([
                {"op": "replace", "path": "name.middleName", "value": null},
                {"op": "replace", "path": "addresses", "value": null}
            ]),
        );
        assert_eq!(doc["name"], json!({"givenName": "Barbara", "familyName": "Jensen"}));
        assert!(doc.get("addresses").is_none());
    }

    #[test]
    fn entra_replace_active_with_string_false() {
        let doc = patch_user(
            json!({"userName": "a", "active": true}),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        );
        let normalized = normalize_resource(&reg().user, &doc).unwrap();
        assert_eq!(normalized["active"], json!(false));
    }

    #[test]
    fn okta_deactivate_without_path() {
        let doc = patch_user(
            json!({"userName": "a", "active": true}),
            json!([{"op": "replace", "value": {"active": false}}]),
        );
        assert_eq!(normalize_resource(&reg().user, &doc).unwrap()["active"], json!(false));
    }

    // ---- remove ---------------------------------------------------------------------------------

    #[test]
    fn remove_attribute_and_sub_attribute() {
        let doc = patch_user(
            barbara(),
            json!([
                {"op": "remove", "path": "name.middleName"},
                {"op": "remove", "path": "addresses"},
                {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}
            ]),
        );
        assert_eq!(doc["name"], json!({"givenName": "Barbara", "familyName": "Jensen"}));
        assert!(doc.get("addresses").is_none());
        assert_eq!(doc[ENT], json!({"employeeNumber": "701984"}));
    }

    #[test]
    fn removing_the_last_filtered_element_drops_the_attribute() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "remove", "path": "addresses[type eq \"work\"]"}]),
        );
        assert!(doc.get("addresses").is_none());
    }

    #[test]
    fn remove_sub_attribute_of_filtered_elements() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
        );
        assert_eq!(
            doc["emails"][0],
            json!({"value": "bjensen@example.com", "type": "work"})
        );
    }

    #[test]
    fn entra_remove_listed_values_only() {
        let doc = patch_user(
            barbara(),
            json!([{"op": "Remove", "path": "emails", "value": [{"value": "babs@jensen.org"}]}]),
        );
        assert_eq!(
            doc["emails"],
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
        );
        let doc = patch_user(
            json!({"userName": "a", "roles": [{"value": "r1"}, {"display": "no id"}]}),
            json!([{"op": "remove", "path": "roles", "value": [{"value": "r1"}, {"display": "no id"}]}]),
        );
        assert!(doc.get("roles").is_none());
    }

    #[test]
    fn remove_without_value_removes_the_whole_attribute() {
        let doc = patch_user(barbara(), json!([{"op": "remove", "path": "emails"}]));
        assert!(doc.get("emails").is_none());
    }

    #[test]
    fn removing_what_is_absent_is_a_no_op() {
        let before = json!({"userName": "a"});
        let doc = patch_user(
            before.clone(),
            json!([
                {"op": "remove", "path": "nickName"},
                {"op": "remove", "path": "name.givenName"},
                {"op": "remove", "path": "emails[type eq \"work\"]"},
                {"op": "remove", "path": "emails[type eq \"work\"].value"},
                {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"}
            ]),
        );
        assert_eq!(doc, before);
    }

    #[test]
    fn emptied_extension_block_is_dropped() {
        let doc = patch_user(
            json!({"userName": "a", ENT: {"department": "x"}}),
            json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]),
        );
        assert_eq!(doc, json!({"userName": "a"}));
    }

    #[test]
    fn whole_extension_urn_as_path() {
        let doc = patch_user(
            json!({"userName": "a"}),
            json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                    "value": {"department": "x", "costCenter": "4130"}}]),
        );
        assert_eq!(doc[ENT], json!({"department": "x", "costCenter": "4130"}));
        let doc = patch_user(doc, json!([{"op": "remove", "path": ENT}]));
        assert_eq!(doc, json!({"userName": "a"}));
    }

    // ---- path errors ----------------------------------------------------------------------------

    #[test]
    fn read_only_paths_are_mutability_errors() {
        for op in [
            json!({"op": "replace", "path": "id", "value": "x"}),
            json!({"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}),
            json!({"op": "add", "path": "groups", "value": [{"value": "g1"}]}),
            json!({"op": "remove", "path": "groups"}),
            json!({"op": "replace", "path": "schemas", "value": []}),
            json!({"op": "replace", "path": format!("{SEATBRIDGE_USER_SCHEMA}:entitled"), "value": true}),
            json!({"op": "replace", "path": format!("{ENT}:manager.displayName"), "value": "Boss"}),
        ] {
            let err = user_error(barbara(), json!([op]));
            assert!(matches!(err, ScimError::Mutability(_)), "{op}: {err:?}");
        }
    }

    #[test]
    fn unknown_attributes_are_invalid_path() {
        for path in [
            "shoeSize",
            "name.nope",
            "emails[type eq \"work\"].nope",
            "urn:ietf:params:scim:schemas:extension:nope:2.0:User:x",
        ] {
            let err = user_error(barbara(), json!([{"op": "replace", "path": path, "value": "x"}]));
            assert!(matches!(err, ScimError::InvalidPath(_)), "{path}: {err:?}");
        }
    }

    #[test]
    fn filters_on_single_valued_attributes_are_invalid_path() {
        for op in [
            json!({"op": "remove", "path": "name[givenName eq \"Barbara\"]"}),
            json!({"op": "replace", "path": "userName[value eq \"bjensen\"]", "value": "x"}),
            json!({"op": "add", "path": format!("{ENT}:manager[value eq \"m\"].value"), "value": "x"}),
        ] {
            let err = user_error(barbara(), json!([op]));
            assert!(matches!(err, ScimError::InvalidPath(_)), "{op}: {err:?}");
        }
    }

    #[test]
    fn errors_name_the_failing_operation() {
        let err = user_error(
            barbara(),
            json!([{"op": "add", "path": "title", "value": "x"}, {"op": "add", "path": "shoeSize", "value": "9"}]),
        );
        let ScimError::InvalidPath(msg) = err else {
            panic!("{err:?}")
        };
        assert!(msg.starts_with("Operations[1]: "), "{msg}");
        let err = user_error(
            barbara(),
            json!([{"op": "replace", "path": "meta.created", "value": "x"}]),
        );
        assert_eq!(
            err,
            ScimError::Mutability("Operations[0]: attribute 'meta.created' is read-only".into())
        );
        let err = user_error(
            barbara(),
            json!([{"op": "replace", "path": "emails[value sw \"zz\"].type", "value": "x"}]),
        );
        assert_eq!(
            err,
            ScimError::NoTarget("Operations[0]: no value matches 'emails[value sw \"zz\"].type'".into())
        );
    }

    #[test]
    fn filters_use_the_schema_case_exactness() {
        let r = reg();
        let emails = r.user.core.attribute("emails").unwrap();
        let members = r.group.core.attribute("members").unwrap();
        let filter = crate::scim::filter::parse_filter("type eq \"WORK\"").unwrap();
        assert!(element_matches(emails, &filter, &json!({"type": "work"})));
        let filter = crate::scim::filter::parse_filter("value eq \"ABC\"").unwrap();
        assert!(!element_matches(members, &filter, &json!({"value": "abc"})));
        assert!(element_matches(members, &filter, &json!({"value": "ABC"})));
        // Through a whole PATCH: `emails.type` is not caseExact.
        let doc = patch_user(barbara(), json!([{"op": "remove", "path": "emails[TYPE eq \"HOME\"]"}]));
        assert_eq!(doc["emails"].as_array().unwrap().len(), 1);
    }

    // ---- group members --------------------------------------------------------------------------

    #[test]
    fn okta_add_member_with_display() {
        let (doc, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{"op": "add", "path": "members", "value": [{"value": "00u1", "display": "Ann"}]}]),
        );
        assert_eq!(changes, [MemberChange::Add(vec![member("00u1", None)])]);
        assert!(doc.get("members").is_none());
    }

    #[test]
    fn okta_remove_member_by_filter() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{"op": "remove", "path": "members[value eq \"00u1\"]"}]),
        );
        assert_eq!(changes, [MemberChange::Remove(vec!["00u1".into()])]);
    }

    #[test]
    fn remove_members_with_or_filter() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\" or VALUE eq \"c\"]"}]),
        );
        assert_eq!(
            changes,
            [MemberChange::Remove(vec!["a".into(), "b".into(), "c".into()])]
        );
    }

    #[test]
    fn entra_remove_members_listed_in_value() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{"op": "Remove", "path": "members", "value": [{"value": "id"}]}]),
        );
        assert_eq!(changes, [MemberChange::Remove(vec!["id".into()])]);
    }

    #[test]
    fn entra_add_members_with_capitalised_op() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}, {"value": "g2", "type": "Group"}]}]),
        );
        assert_eq!(
            changes,
            [MemberChange::Add(vec![member("u1", None), member("g2", Some("Group"))])]
        );
    }

    #[test]
    fn replace_members_with_nothing_removes_all() {
        for value in [json!([]), Value::Null] {
            let (_, changes) = patch_group(
                json!({"displayName": "g"}),
                json!([{"op": "replace", "path": "members", "value": value}]),
            );
            assert_eq!(changes, [MemberChange::RemoveAll], "{value}");
        }
    }

    #[test]
    fn pathless_members_become_member_changes() {
        let (doc, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([
                {"op": "add", "value": {"members": [{"value": "u1"}]}},
                {"op": "replace", "value": {"displayName": "h", "members": [{"value": "u2", "type": "User"}]}}
            ]),
        );
        assert_eq!(
            changes,
            [
                MemberChange::Add(vec![member("u1", None)]),
                MemberChange::ReplaceAll(vec![member("u2", Some("User"))])
            ]
        );
        assert_eq!(doc, json!({"displayName": "h"}));
    }

    #[test]
    fn member_changes_keep_request_order() {
        let (_, changes) = patch_group(
            json!({"displayName": "g"}),
            json!([
                {"op": "remove", "path": "members"},
                {"op": "add", "path": "members", "value": {"value": "u1"}},
                {"op": "remove", "path": "members[value eq \"u0\"]"}
            ]),
        );
        assert_eq!(
            changes,
            [
                MemberChange::RemoveAll,
                MemberChange::Add(vec![member("u1", None)]),
                MemberChange::Remove(vec!["u0".into()])
            ]
        );
    }

    #[test]
    fn other_member_filters_are_invalid_filter() {
        for path in [
            "members[type eq \"Group\"]",
            "members[value ne \"a\"]",
            "members[value eq \"a\" and type eq \"User\"]",
        ] {
            let err = group_error(json!([{"op": "remove", "path": path}]));
            let ScimError::InvalidFilter(msg) = &err else {
                panic!("{path}: {err:?}")
            };
            assert!(msg.contains("only 'value eq' filters"), "{msg}");
        }
    }

    #[test]
    fn members_need_a_string_value() {
        for value in [
            json!([{"display": "x"}]),
            json!([{"value": 5}]),
            json!(["u1"]),
            json!([{"value": ""}]),
        ] {
            let err = group_error(json!([{"op": "add", "path": "members", "value": value}]));
            assert!(matches!(err, ScimError::InvalidValue(_)), "{value}: {err:?}");
        }
    }

    #[test]
    fn member_sub_attributes_and_filtered_adds_are_refused() {
        let err = group_error(json!([{"op": "replace", "path": "members[value eq \"a\"].display", "value": "x"}]));
        assert!(matches!(err, ScimError::Mutability(_)), "{err:?}");
        let err = group_error(json!([{"op": "add", "path": "members[value eq \"a\"]", "value": {"value": "a"}}]));
        assert!(matches!(err, ScimError::InvalidPath(_)), "{err:?}");
    }

    // ---- end to end with normalize_resource -----------------------------------------------------

    #[test]
    fn entra_user_update_normalizes_to_what_the_admin_expects() {
        let r = reg();
        let old = normalize_resource(&r.user, &json!({"userName": "a@contoso.com", "active": true})).unwrap();
        let mut doc = old.clone();
        let ops = parse_patch_request(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Add", "path": "displayName", "value": "Ann Example"},
                {"op": "Add", "path": "name.givenName", "value": "Ann"},
                {"op": "Add", "path": "name.familyName", "value": "Example"},
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ann@contoso.com"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
                {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-1"},
                {"op": "Add", "path": "roles", "value": [{"primary": "True", "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]},
                {"op": "Replace", "path": "active", "value": "False"}
            ]
        }))
        .unwrap();
        apply_patch(&r.user, &mut doc, &ops).unwrap();
        let new = normalize_resource(&r.user, &doc).unwrap();
        check_immutable(&r.user, &old, &new).unwrap();
        assert_eq!(
            new,
            json!({
                "userName": "a@contoso.com",
                "active": false,
                "displayName": "Ann Example",
                "name": {"givenName": "Ann", "familyName": "Example"},
                "emails": [{"type": "work", "value": "ann@contoso.com"}],
                "phoneNumbers": [{"type": "mobile", "value": "+1 555 0100"}],
                "addresses": [{"type": "work", "locality": "Redmond"}],
                ENT: {"department": "Sales", "manager": {"value": "mgr-1"}},
                "roles": [{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]
            })
        );
    }

    #[test]
    fn okta_user_replace_normalizes() {
        let r = reg();
        let (doc, _) = try_patch(
            &r.user,
            barbara(),
            json!([{"op": "replace", "value": {
                "id": "ignored", "userName": "bjensen", "name": {"givenName": "Barb"},
                "emails": [{"value": "barb@example.com", "type": "work", "primary": true}],
                "active": true
            }}]),
        )
        .unwrap();
        let new = normalize_resource(&r.user, &doc).unwrap();
        assert_eq!(
            new["name"],
            json!({"givenName": "Barb", "middleName": "Jane", "familyName": "Jensen"})
        );
        assert_eq!(
            new["emails"],
            json!([{"value": "barb@example.com", "type": "work", "primary": true}])
        );
        assert_eq!(new["active"], json!(true));
        assert_eq!(new[ENT]["department"], "Tour Operations");
    }

    #[test]
    fn ops_apply_in_order_and_null_doc_is_an_empty_object() {
        let r = reg();
        let ops = parse_patch_request(&body(json!([
            {"op": "add", "path": "nickName", "value": "a"},
            {"op": "replace", "path": "nickName", "value": "b"},
            {"op": "add", "path": "title", "value": "t"},
            {"op": "remove", "path": "title"}
        ])))
        .unwrap();
        let mut doc = Value::Null;
        apply_patch(&r.user, &mut doc, &ops).unwrap();
        assert_eq!(doc, json!({"nickName": "b"}));
        let mut not_object = json!([1]);
        assert!(matches!(
            apply_patch(&r.user, &mut not_object, &ops),
            Err(ScimError::InvalidSyntax(_))
        ));
    }

    // ---- properties -----------------------------------------------------------------------------

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const PATHS: &[&str] = &[
            "",
            "id",
            "meta.created",
            "groups",
            "members",
            "members[value eq \"a\"]",
            "members[type eq \"User\"]",
            "members.display",
            "displayName",
            "name",
            "name.givenName",
            "emails",
            "emails.value",
            "emails[type eq \"work\"]",
            "emails[type eq \"work\"].value",
            "emails[value co \"@\"].primary",
            "addresses[type eq \"work\" and primary eq true].locality",
            "roles",
            "active",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ];

        fn values() -> Vec<Value> {
            vec![
                Value::Null,
                json!("x"),
                json!(true),
                json!("True"),
                json!(7),
                json!([]),
                json!([{"value": "a@x.com", "type": "work", "primary": true}]),
                json!({"value": "b@x.com", "primary": "true"}),
                json!({"givenName": "G", "department": "D", "id": "i", "members": [{"value": "m"}]}),
                json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}}),
                json!([[1], {"display": "d"}]),
            ]
        }

        fn operation() -> impl Strategy<Value = Value> {
            let kinds = prop::sample::select(vec!["add", "Replace", "REMOVE"]);
            let paths = prop::sample::select(PATHS.to_vec());
            let values = prop::option::of(prop::sample::select(values()));
            (kinds, paths, values).prop_map(|(op, path, value)| {
                let mut obj = json!({"op": op});
                if !path.is_empty() {
                    obj["path"] = json!(path);
                }
                if let Some(v) = value {
                    obj["value"] = v;
                }
                obj
            })
        }

        proptest! {
            /// Whatever the operations, the engine neither panics nor writes server-owned keys.
            #[test]
            fn never_panics_nor_writes_server_owned_keys(ops in prop::collection::vec(operation(), 1..6)) {
                let r = reg();
                for (rt, doc) in [(&r.user, barbara()), (&r.group, json!({"displayName": "g"}))] {
                    if let Ok((doc, _)) = try_patch(rt, doc, json!(ops.clone())) {
                        let obj = doc.as_object().unwrap();
                        for key in ["id", "meta", "schemas", "groups", "members"] {
                            prop_assert!(!obj.contains_key(key), "{key} in {doc}");
                        }
                    }
                }
            }
        }
    }
}
