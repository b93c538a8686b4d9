//! Which identity provider is behind a SCIM request. Used to show a tenant admin who pushes
//! to their tenant and to explain refused requests; never to change behaviour.

use serde::Serialize;

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

#[cfg(test)]
mod tests {
    use super::*;

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
