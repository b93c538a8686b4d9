//! Which identity provider is behind a SCIM request. Used to show a tenant admin who pushes
//! to their tenant and to explain refused requests; never to change behaviour.

use serde::Serialize;
use serde_json::Value;

/// A SCIM client family, detected from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Idp {
    Okta,
    Entra,
    OneLogin,
    JumpCloud,
    Other,
}

impl Idp {
    /// Detects the client from its `User-Agent` and the query string. Entra ID sends a
    /// `Microsoft.Identity` or `Azure AD` agent on most tenants, and opts into the fixed SCIM
    /// behaviour with `?aadOptscim062020`; Okta's agent names itself.
    pub fn detect(user_agent: Option<&str>, query: &str) -> Idp {
        let ua = user_agent.unwrap_or("").to_ascii_lowercase();
        if ua.contains("okta") {
            Idp::Okta
        } else if ua.contains("microsoft")
            || ua.contains("azure")
            || ua.contains("entra")
            || query.to_ascii_lowercase().contains("aadoptscim")
        {
            Idp::Entra
        } else if ua.contains("onelogin") {
            Idp::OneLogin
        } else if ua.contains("jumpcloud") {
            Idp::JumpCloud
        } else {
            Idp::Other
        }
    }

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Idp::Okta => "okta",
            Idp::Entra => "entra",
            Idp::OneLogin => "onelogin",
            Idp::JumpCloud => "jumpcloud",
            Idp::Other => "other",
        }
    }
}

/// What a SCIM request asked for, kept with a refusal so an admin can see who sent what:
/// the client and the shape of the operation, never its attribute values (beyond `active`).
#[derive(Debug, Clone, Serialize)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    pub idp: Idp,
    pub user_agent: Option<String>,
    pub op: String,
}

/// A one-line description of a write: `create (active=true)`, `PATCH replace active=false;
/// add members ×3`, `replace (active=false)`.
pub fn op_shape(method: &str, body: &Value) -> String {
    let active = |v: &Value| v.get("active").map(|a| format!("active={a}"));
    match method {
        "POST" => format!("create ({})", active(body).unwrap_or_else(|| "active absent".into())),
        "PUT" => format!("replace ({})", active(body).unwrap_or_else(|| "active absent".into())),
        "PATCH" => {
            let ops = body
                .get("Operations")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let parts: Vec<String> = ops.iter().take(10).map(patch_op_shape).collect();
            let more = if ops.len() > 10 {
                format!("; … {} more", ops.len() - 10)
            } else {
                String::new()
            };
            format!("PATCH {}{more}", parts.join("; "))
        }
        other => other.to_string(),
    }
}

fn patch_op_shape(op: &Value) -> String {
    let name = op.get("op").and_then(Value::as_str).unwrap_or("?").to_ascii_lowercase();
    let value = op.get("value");
    match op.get("path").and_then(Value::as_str) {
        Some(path) if path.eq_ignore_ascii_case("active") => {
            format!("{name} active={}", value.map_or("null".into(), Value::to_string))
        }
        Some(path) => match value.and_then(Value::as_array) {
            Some(items) => format!("{name} {path} ×{}", items.len()),
            None => format!("{name} {path}"),
        },
        None => {
            let keys: Vec<String> = value
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            if k == "active" {
                                format!("active={v}")
                            } else {
                                k.clone()
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("{name} {{{}}}", keys.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn op_shapes_name_the_operation_not_the_data() {
        assert_eq!(
            op_shape("POST", &json!({"userName": "a", "active": true})),
            "create (active=true)"
        );
        assert_eq!(op_shape("PUT", &json!({"userName": "a"})), "replace (active absent)");
        let okta = json!({"Operations": [{"op": "replace", "value": {"active": true, "name": {"givenName": "x"}}}]});
        assert_eq!(op_shape("PATCH", &okta), "PATCH replace {active=true, name}");
        let entra = json!({"Operations": [
            {"op": "Replace", "path": "active", "value": "True"},
            {"op": "Add", "path": "members", "value": [{"value": "1"}, {"value": "2"}]}
        ]});
        assert_eq!(
            op_shape("PATCH", &entra),
            "PATCH replace active=\"True\"; add members ×2"
        );
    }

    #[test]
    fn known_clients_are_recognised() {
        assert_eq!(Idp::detect(Some("Okta SCIM Client 1.0.0"), ""), Idp::Okta);
        assert_eq!(Idp::detect(Some("Microsoft.Identity.Provisioning"), ""), Idp::Entra);
        assert_eq!(Idp::detect(None, "aadOptscim062020"), Idp::Entra);
        assert_eq!(Idp::detect(Some("OneLogin-SCIM"), ""), Idp::OneLogin);
        assert_eq!(Idp::detect(Some("JumpCloud SCIM"), ""), Idp::JumpCloud);
        assert_eq!(Idp::detect(Some("curl/8.0"), ""), Idp::Other);
        assert_eq!(Idp::detect(None, ""), Idp::Other);
    }
}
