//! The admin session: a private (AES-256-GCM encrypted and authenticated) cookie holding who
//! logged in, the roles their ID token carried, a CSRF token and an absolute expiry. Nothing
//! is stored server-side, so any instance sharing `SEATBRIDGE_SESSION_KEY` can serve it.

use actix_web::cookie::{Cookie, CookieJar, Key, SameSite};
use actix_web::HttpRequest;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha512};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "sb_admin";
/// Name of the short-lived cookie that carries a login in progress (state, nonce, PKCE).
pub const LOGIN_COOKIE: &str = "sb_login";

/// A logged-in admin, as stored in the session cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Role values from the ID token's roles claim at login.
    pub roles: Vec<String>,
    /// Sent back by the UI in `X-CSRF-Token` on every state-changing request.
    pub csrf: String,
    /// Unix seconds after which the session is void.
    pub expires_at: i64,
    /// The raw ID token, for `id_token_hint` at RP-initiated logout.
    pub id_token: String,
}

/// A login in progress: what the callback must see again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub expires_at: i64,
}

/// Seals and opens the admin cookies.
pub struct Sealer {
    key: Key,
    secure: bool,
}

impl Sealer {
    /// A sealer keyed by `secret` (stretched to 64 bytes with SHA-512), or by a random key.
    /// `secure` marks cookies `Secure` (when the public URL is https).
    pub fn new(secret: Option<&str>, secure: bool) -> Self {
        let key = match secret {
            Some(s) => Key::from(&Sha512::digest(s.as_bytes())[..]),
            None => Key::generate(),
        };
        Sealer { key, secure }
    }

    /// An encrypted cookie carrying `value` as JSON.
    pub fn seal<T: Serialize>(&self, name: &'static str, value: &T, max_age_secs: i64) -> Cookie<'static> {
        let json = serde_json::to_string(value).unwrap_or_default();
        let mut jar = CookieJar::new();
        jar.private_mut(&self.key)
            .add(self.base(Cookie::new(name, json), max_age_secs));
        jar.get(name).cloned().unwrap_or_else(|| Cookie::new(name, ""))
    }

    /// The value of an encrypted cookie; `None` when absent, tampered with, or not ours.
    pub fn open<T: DeserializeOwned>(&self, req: &HttpRequest, name: &str) -> Option<T> {
        let raw = req.cookie(name)?;
        let mut jar = CookieJar::new();
        jar.add_original(raw);
        let plain = jar.private(&self.key).get(name)?;
        serde_json::from_str(plain.value()).ok()
    }

    /// A cookie that deletes `name` in the browser.
    pub fn clear(&self, name: &'static str) -> Cookie<'static> {
        let mut c = self.base(Cookie::new(name, ""), 0);
        c.make_removal();
        c
    }

    fn base(&self, mut c: Cookie<'static>, max_age_secs: i64) -> Cookie<'static> {
        c.set_path("/");
        c.set_http_only(true);
        c.set_secure(self.secure);
        // Lax: the cookie rides along the OP's top-level redirect back to the callback, but
        // not on cross-site POSTs.
        c.set_same_site(SameSite::Lax);
        c.set_max_age(actix_web::cookie::time::Duration::seconds(max_age_secs.max(0)));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/admin/".into(),
            expires_at: 1,
        }
    }

    #[test]
    fn sealed_cookies_open_only_with_the_same_key_and_untampered() {
        let a = Sealer::new(Some("a secret of at least thirty-two bytes"), true);
        let cookie = a.seal(LOGIN_COOKIE, &pending(), 600);
        assert!(cookie.secure().unwrap_or(false));
        assert!(cookie.http_only().unwrap_or(false));
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        assert!(!cookie.value().contains("pkce"), "the value is encrypted");

        let req = TestRequest::default().cookie(cookie.clone()).to_http_request();
        let back: Option<PendingLogin> = a.open(&req, LOGIN_COOKIE);
        assert_eq!(back.map(|p| p.nonce), Some("n".to_string()));

        let other = Sealer::new(Some("another secret of thirty-two bytes!!"), true);
        assert!(other.open::<PendingLogin>(&req, LOGIN_COOKIE).is_none());

        let mut value = cookie.value().to_string();
        let flipped = if value.ends_with('A') { 'B' } else { 'A' };
        value.pop();
        value.push(flipped);
        let tampered = TestRequest::default()
            .cookie(Cookie::new(LOGIN_COOKIE, value))
            .to_http_request();
        assert!(a.open::<PendingLogin>(&tampered, LOGIN_COOKIE).is_none());
    }
}
