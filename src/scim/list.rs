//! List and search parameters (RFC 7644 §3.4.2, §3.4.3) and the ListResponse shape.

use serde_json::{json, Value};

use super::error::ScimError;
use super::filter::{parse_filter, parse_patch_path, AttrPath, Filter};
use super::schema::{LIST_RESPONSE_SCHEMA, SEARCH_REQUEST_SCHEMA};
use crate::config::ScimSettings;

/// A validated list request, from a query string or a `/.search` body.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    /// 1-based.
    pub start_index: u64,
    /// Already capped at the configured maximum.
    pub count: u64,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

/// The raw parameters before validation.
#[derive(Debug, Default)]
struct RawParams {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl ListRequest {
    /// Parses `?filter=…&sortBy=…&startIndex=…` (parameter names are matched case-insensitively).
    pub fn from_query(query: &str, settings: &ScimSettings) -> Result<Self, ScimError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ScimError::InvalidSyntax(format!("malformed query string: {e}")))?;
        let mut raw = RawParams::default();
        for (k, v) in pairs {
            let int = |v: &str, name: &str| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ScimError::InvalidValue(format!("'{name}' must be an integer, got '{v}'")))
            };
            match k.to_ascii_lowercase().as_str() {
                "filter" => raw.filter = Some(v),
                "sortby" => raw.sort_by = Some(v),
                "sortorder" => raw.sort_order = Some(v),
                "startindex" => raw.start_index = Some(int(&v, "startIndex")?),
                "count" => raw.count = Some(int(&v, "count")?),
                "attributes" => raw.attributes = Some(v),
                "excludedattributes" => raw.excluded_attributes = Some(v),
                _ => {}
            }
        }
        Self::validate(raw, settings)
    }

    /// Parses a SearchRequest body (RFC 7644 §3.4.3).
    pub fn from_search_body(body: &Value, settings: &ScimSettings) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::InvalidSyntax("the search request must be a JSON object".into()))?;
        let schemas_ok = obj
            .get("schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|u| u.as_str() == Some(SEARCH_REQUEST_SCHEMA)));
        if !schemas_ok {
            return Err(ScimError::InvalidSyntax(format!(
                "'schemas' must contain '{SEARCH_REQUEST_SCHEMA}'"
            )));
        }
        let get = |name: &str| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| ScimError::InvalidValue(format!("'{name}' must be a list of strings"))),
                Some(_) => Err(ScimError::InvalidValue(format!("'{name}' must be a string"))),
            }
        };
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::InvalidValue(format!("'{name}' must be an integer"))),
            }
        };
        let raw = RawParams {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
        };
        Self::validate(raw, settings)
    }

    fn validate(raw: RawParams, settings: &ScimSettings) -> Result<Self, ScimError> {
        let filter = match raw.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => Some(parse_filter(f).map_err(|e| ScimError::InvalidFilter(e.to_string()))?),
        };
        let sort_by = match raw.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                let p =
                    parse_patch_path(s).map_err(|e| ScimError::InvalidValue(format!("invalid sortBy '{s}': {e}")))?;
                if p.filter.is_some() {
                    return Err(ScimError::InvalidValue("sortBy cannot contain a filter".into()));
                }
                Some(p.attr)
            }
        };
        let descending = match raw.sort_order.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(o) if o.eq_ignore_ascii_case("ascending") => false,
            Some(o) if o.eq_ignore_ascii_case("descending") => true,
            Some(o) => {
                return Err(ScimError::InvalidValue(format!(
                    "sortOrder must be 'ascending' or 'descending', got '{o}'"
                )))
            }
        };
        // RFC 7644 §3.4.2.4: startIndex < 1 means 1, a negative count means 0.
        let start_index = u64::try_from(raw.start_index.unwrap_or(1).max(1)).unwrap_or(1);
        let count = raw
            .count
            .map(|c| u64::try_from(c.max(0)).unwrap_or(0))
            .unwrap_or(settings.default_count)
            .min(settings.max_results);
        Ok(ListRequest {
            filter,
            sort_by,
            descending,
            start_index,
            count,
            attributes: raw.attributes,
            excluded_attributes: raw.excluded_attributes,
        })
    }
}

/// The ListResponse body (RFC 7644 §3.4.2). `itemsPerPage` is the number actually returned.
pub fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    let mut body = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start_index,
    });
    // Moved in, not through `json!`: the macro serializes an interpolated `Vec<Value>` into a
    // new tree, a deep copy of every resource of the page (seen in the list profile).
    body["Resources"] = Value::Array(resources);
    body
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn list_responses_keep_rfc_order_and_every_resource() {
        let r = list_response(7, 3, vec![json!({"id": "a"}), json!({"id": "b"})]);
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["schemas", "totalResults", "itemsPerPage", "startIndex", "Resources"]
        );
        assert_eq!(r["itemsPerPage"], json!(2));
        assert_eq!(r["Resources"], json!([{"id": "a"}, {"id": "b"}]));
    }

    #[test]
    fn okta_test_connection_query() {
        let r = ListRequest::from_query("startIndex=1&count=2", &ScimSettings::default()).unwrap();
        assert_eq!((r.start_index, r.count), (1, 2));
        assert!(r.filter.is_none());
    }

    #[test]
    fn count_is_capped_and_negatives_clamped() {
        let s = ScimSettings::default();
        assert_eq!(
            ListRequest::from_query("count=100000", &s).unwrap().count,
            s.max_results
        );
        assert_eq!(ListRequest::from_query("count=-5&startIndex=-3", &s).unwrap().count, 0);
        assert_eq!(ListRequest::from_query("startIndex=0", &s).unwrap().start_index, 1);
    }

    #[test]
    fn bad_parameters_are_400s() {
        let s = ScimSettings::default();
        assert!(matches!(
            ListRequest::from_query("count=abc", &s),
            Err(ScimError::InvalidValue(_))
        ));
        assert!(matches!(
            ListRequest::from_query("filter=userName%20eq", &s),
            Err(ScimError::InvalidFilter(_))
        ));
        assert!(matches!(
            ListRequest::from_query("sortOrder=sideways", &s),
            Err(ScimError::InvalidValue(_))
        ));
    }

    #[test]
    fn search_body_is_parsed() {
        let body = json!({"schemas":[SEARCH_REQUEST_SCHEMA],"filter":"userName sw \"a\"","attributes":["userName"],"count":5,"sortBy":"userName","sortOrder":"descending"});
        let r = ListRequest::from_search_body(&body, &ScimSettings::default()).unwrap();
        assert!(r.filter.is_some() && r.descending);
        assert_eq!(r.attributes.as_deref(), Some("userName"));
        assert!(ListRequest::from_search_body(&json!({"filter":"x pr"}), &ScimSettings::default()).is_err());
    }
}
