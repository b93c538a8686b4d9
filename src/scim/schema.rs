//! SCIM schema definitions (RFC 7643 §7) loaded from the documents in `scim-schemas/`.
//!
//! The same documents are served by `/Schemas` and drive input validation, PATCH and projection,
//! so what the server advertises and what it enforces cannot drift apart.

use serde::Deserialize;
use serde_json::Value;

use super::filter::AttrPath;

/// URN of the core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// URN of the core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// URN of the enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// URN of seatbridge's own User extension carrying the license verdict.
pub const SEATBRIDGE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:seatbridge:2.0:User";
/// URN of list responses.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// URN of PATCH requests.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// URN of `/.search` requests.
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// URN of bulk requests.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// URN of bulk responses.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// URN of error responses.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Prefix of schema URNs registered by the IETF: an unknown one of these in `schemas` is a
/// client error, while vendor URIs (e.g. Entra's ADSCIM group schema) are tolerated.
const IETF_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:";

/// The data type of an attribute (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

/// When an attribute may be written (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// When an attribute is returned (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// Uniqueness of an attribute's values (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

/// One attribute definition with its characteristics.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDef {
    pub name: String,
    #[serde(rename = "type")]
    pub attr_type: AttrType,
    pub multi_valued: bool,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    #[serde(default = "default_uniqueness")]
    pub uniqueness: Uniqueness,
    #[serde(default)]
    pub sub_attributes: Vec<AttributeDef>,
}

fn default_uniqueness() -> Uniqueness {
    Uniqueness::None
}

impl AttributeDef {
    /// Finds a sub-attribute by name, ignoring case as RFC 7643 §2.1 requires.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        find_attr(&self.sub_attributes, name)
    }

    /// True for multi-valued complex attributes that carry a `primary` flag.
    pub fn has_primary(&self) -> bool {
        self.multi_valued && self.sub_attribute("primary").is_some()
    }
}

fn find_attr<'a>(attrs: &'a [AttributeDef], name: &str) -> Option<&'a AttributeDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// A schema document (core or extension).
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaDef {
    pub id: String,
    pub name: String,
    pub attributes: Vec<AttributeDef>,
}

impl SchemaDef {
    /// Finds a top-level attribute by name, ignoring case.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        find_attr(&self.attributes, name)
    }
}

/// The two resource types this server hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    /// The `meta.resourceType` value and the resource type id.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }

    /// The endpoint path segment (`Users` / `Groups`).
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }
}

/// A resource type: its core schema and the extensions it accepts.
#[derive(Debug, Clone)]
pub struct ResourceTypeDef {
    pub kind: ResourceKind,
    pub core: SchemaDef,
    pub extensions: Vec<SchemaDef>,
    /// Attributes common to all resources (`id`, `meta`, `schemas`), RFC 7643 §3.1.
    pub common: Vec<AttributeDef>,
}

/// Where an attribute lives in a resource document.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttr<'a> {
    /// `None` for core and common attributes, else the extension schema (stored under its URN).
    pub extension: Option<&'a SchemaDef>,
    pub attr: &'a AttributeDef,
    pub sub: Option<&'a AttributeDef>,
}

impl ResolvedAttr<'_> {
    /// The attribute whose characteristics apply to the addressed value.
    pub fn leaf(&self) -> &AttributeDef {
        self.sub.unwrap_or(self.attr)
    }

    /// True when the addressed value is (part of) a common attribute such as `id` or `meta`.
    pub fn is_common(&self) -> bool {
        self.extension.is_none() && matches!(self.attr.name.as_str(), "id" | "meta" | "schemas")
    }
}

/// Why an attribute path could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown schema '{0}'")]
    UnknownSchema(String),
    #[error("unknown attribute '{0}'")]
    UnknownAttribute(String),
    #[error("attribute '{0}' has no sub-attribute '{1}'")]
    UnknownSubAttribute(String, String),
}

impl ResourceTypeDef {
    /// Finds the schema (core or extension) with this URN, ignoring case.
    pub fn schema_by_urn(&self, urn: &str) -> Option<(&SchemaDef, bool)> {
        if self.core.id.eq_ignore_ascii_case(urn) {
            return Some((&self.core, true));
        }
        self.extensions
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
            .map(|s| (s, false))
    }

    /// Finds the extension schema with this URN, ignoring case.
    pub fn extension(&self, urn: &str) -> Option<&SchemaDef> {
        self.extensions.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Is this URN one the client may list in `schemas` without being refused?
    pub fn accepts_schema_uri(&self, uri: &str) -> bool {
        self.schema_by_urn(uri).is_some() || !uri.to_ascii_lowercase().starts_with(IETF_SCHEMA_PREFIX)
    }

    /// Resolves an attribute path against the schemas of this resource type.
    ///
    /// Without a URN, core and common attributes are searched first, then extensions (clients such
    /// as Entra sometimes omit the prefix for extension attributes, and names do not collide).
    pub fn resolve(&self, path: &AttrPath) -> Result<ResolvedAttr<'_>, ResolveError> {
        let (extension, attr) = match &path.urn {
            Some(urn) => {
                let (schema, is_core) = self
                    .schema_by_urn(urn)
                    .ok_or_else(|| ResolveError::UnknownSchema(urn.clone()))?;
                let attr = schema
                    .attribute(&path.name)
                    .or_else(|| {
                        if is_core {
                            find_attr(&self.common, &path.name)
                        } else {
                            None
                        }
                    })
                    .ok_or_else(|| ResolveError::UnknownAttribute(path.name.clone()))?;
                (if is_core { None } else { Some(schema) }, attr)
            }
            None => self.resolve_unprefixed(&path.name)?,
        };
        let sub = match &path.sub_attr {
            None => None,
            Some(sub_name) => Some(
                attr.sub_attribute(sub_name)
                    .ok_or_else(|| ResolveError::UnknownSubAttribute(attr.name.clone(), sub_name.clone()))?,
            ),
        };
        Ok(ResolvedAttr { extension, attr, sub })
    }

    fn resolve_unprefixed(&self, name: &str) -> Result<(Option<&SchemaDef>, &AttributeDef), ResolveError> {
        if let Some(attr) = self.core.attribute(name).or_else(|| find_attr(&self.common, name)) {
            return Ok((None, attr));
        }
        self.extensions
            .iter()
            .find_map(|s| s.attribute(name).map(|a| (Some(s), a)))
            .ok_or_else(|| ResolveError::UnknownAttribute(name.to_string()))
    }
}

/// Every schema and resource type the server knows, plus the raw documents it serves.
#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    pub user: ResourceTypeDef,
    pub group: ResourceTypeDef,
    /// The schema documents as served by `/Schemas`.
    pub schema_documents: Vec<Value>,
    /// The resource type documents as served by `/ResourceTypes`.
    pub resource_type_documents: Vec<Value>,
    /// The `/ServiceProviderConfig` template; numbers are filled in from configuration.
    pub service_provider_config: Value,
}

/// A built-in schema document failed to load: a packaging bug, reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error("built-in SCIM schema document {file} is invalid: {source}")]
pub struct SchemaLoadError {
    file: &'static str,
    source: serde_json::Error,
}

const USER_JSON: &str = include_str!("../../scim-schemas/User.json");
const GROUP_JSON: &str = include_str!("../../scim-schemas/Group.json");
const ENTERPRISE_JSON: &str = include_str!("../../scim-schemas/EnterpriseUser.json");
const SEATBRIDGE_JSON: &str = include_str!("../../scim-schemas/SeatbridgeUser.json");
const RESOURCE_TYPES_JSON: &str = include_str!("../../scim-schemas/ResourceTypes.json");
const SPC_JSON: &str = include_str!("../../scim-schemas/ServiceProviderConfig.json");

fn parse<T: serde::de::DeserializeOwned>(file: &'static str, text: &str) -> Result<T, SchemaLoadError> {
    serde_json::from_str(text).map_err(|source| SchemaLoadError { file, source })
}

impl SchemaRegistry {
    /// Loads the documents compiled into the binary from `scim-schemas/`.
    pub fn builtin() -> Result<Self, SchemaLoadError> {
        let files = [
            ("User.json", USER_JSON),
            ("Group.json", GROUP_JSON),
            ("EnterpriseUser.json", ENTERPRISE_JSON),
            ("SeatbridgeUser.json", SEATBRIDGE_JSON),
        ];
        let schema_documents = files
            .iter()
            .map(|(file, text)| parse::<Value>(file, text))
            .collect::<Result<Vec<_>, _>>()?;
        let user: SchemaDef = parse(files[0].0, files[0].1)?;
        let group: SchemaDef = parse(files[1].0, files[1].1)?;
        let enterprise: SchemaDef = parse(files[2].0, files[2].1)?;
        let seatbridge: SchemaDef = parse(files[3].0, files[3].1)?;
        let common = parse::<Vec<AttributeDef>>("common attributes", COMMON_ATTRIBUTES)?;
        Ok(SchemaRegistry {
            user: ResourceTypeDef {
                kind: ResourceKind::User,
                core: user,
                extensions: vec![enterprise, seatbridge],
                common: common.clone(),
            },
            group: ResourceTypeDef {
                kind: ResourceKind::Group,
                core: group,
                extensions: vec![],
                common,
            },
            schema_documents,
            resource_type_documents: parse("ResourceTypes.json", RESOURCE_TYPES_JSON)?,
            service_provider_config: parse("ServiceProviderConfig.json", SPC_JSON)?,
        })
    }

    /// The resource type definition for a kind.
    pub fn resource_type(&self, kind: ResourceKind) -> &ResourceTypeDef {
        match kind {
            ResourceKind::User => &self.user,
            ResourceKind::Group => &self.group,
        }
    }
}

/// RFC 7643 §3.1 common attributes, described like schema attributes so that filters, sorting
/// and projection treat them uniformly.
const COMMON_ATTRIBUTES: &str = r#"[
  {"name":"id","type":"string","multiValued":false,"required":false,"caseExact":true,
   "mutability":"readOnly","returned":"always","uniqueness":"server"},
  {"name":"schemas","type":"reference","multiValued":true,"required":false,"caseExact":false,
   "mutability":"readOnly","returned":"always","uniqueness":"none"},
  {"name":"meta","type":"complex","multiValued":false,"required":false,"caseExact":false,
   "mutability":"readOnly","returned":"default","uniqueness":"none","subAttributes":[
    {"name":"resourceType","type":"string","multiValued":false,"caseExact":true,"mutability":"readOnly","returned":"default"},
    {"name":"created","type":"dateTime","multiValued":false,"caseExact":false,"mutability":"readOnly","returned":"default"},
    {"name":"lastModified","type":"dateTime","multiValued":false,"caseExact":false,"mutability":"readOnly","returned":"default"},
    {"name":"location","type":"reference","multiValued":false,"caseExact":true,"mutability":"readOnly","returned":"default"},
    {"name":"version","type":"string","multiValued":false,"caseExact":true,"mutability":"readOnly","returned":"default"}
  ]}
]"#;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn path(urn: Option<&str>, name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: urn.map(str::to_string),
            name: name.to_string(),
            sub_attr: sub.map(str::to_string),
        }
    }

    #[test]
    fn builtin_documents_load() {
        let reg = SchemaRegistry::builtin().unwrap();
        assert_eq!(reg.schema_documents.len(), 4);
        assert_eq!(reg.resource_type_documents.len(), 2);
        assert!(reg.user.core.attribute("USERNAME").is_some());
    }

    #[test]
    fn resolves_case_insensitively_with_and_without_urn() {
        let reg = SchemaRegistry::builtin().unwrap();
        let r = reg.user.resolve(&path(None, "name", Some("GIVENNAME"))).unwrap();
        assert_eq!(r.leaf().name, "givenName");
        let r = reg.user.resolve(&path(Some(USER_SCHEMA), "userName", None)).unwrap();
        assert!(r.extension.is_none());
        let r = reg
            .user
            .resolve(&path(
                Some("URN:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                "manager",
                Some("value"),
            ))
            .unwrap();
        assert_eq!(r.extension.unwrap().id, ENTERPRISE_USER_SCHEMA);
        let r = reg.user.resolve(&path(None, "employeeNumber", None)).unwrap();
        assert_eq!(r.extension.unwrap().id, ENTERPRISE_USER_SCHEMA);
        let r = reg.user.resolve(&path(None, "meta", Some("lastModified"))).unwrap();
        assert!(r.is_common());
    }

    #[test]
    fn unknown_paths_are_errors() {
        let reg = SchemaRegistry::builtin().unwrap();
        assert!(matches!(
            reg.user.resolve(&path(None, "nope", None)),
            Err(ResolveError::UnknownAttribute(_))
        ));
        assert!(matches!(
            reg.user.resolve(&path(Some("urn:x:y"), "a", None)),
            Err(ResolveError::UnknownSchema(_))
        ));
        assert!(matches!(
            reg.user.resolve(&path(None, "name", Some("nope"))),
            Err(ResolveError::UnknownSubAttribute(_, _))
        ));
    }

    #[test]
    fn vendor_schema_uris_are_tolerated_but_unknown_ietf_ones_are_not() {
        let reg = SchemaRegistry::builtin().unwrap();
        assert!(reg
            .group
            .accepts_schema_uri("http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"));
        assert!(!reg
            .group
            .accepts_schema_uri("urn:ietf:params:scim:schemas:extension:foo:2.0:Group"));
        assert!(reg.user.accepts_schema_uri(ENTERPRISE_USER_SCHEMA));
    }
}
