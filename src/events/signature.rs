//! Webhook signatures: Stripe's `Stripe-Signature` scheme and Standard Webhooks
//! (<https://www.standardwebhooks.com/>), both HMAC-SHA256 with a replay window.
//!
//! Secrets are lists so they can be rotated: add the new secret, switch the sender, remove the
//! old one. Comparisons are constant-time.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from now (both directions), in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature header {0}")]
    Missing(&'static str),
    #[error("malformed signature header: {0}")]
    Malformed(String),
    #[error("timestamp outside the {TOLERANCE_SECS}-second tolerance (replayed or clock skew)")]
    Stale,
    #[error("no signature matches any configured secret")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn fresh(timestamp: i64, now: i64) -> Result<(), SignatureError> {
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Verifies `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"{t}.{body}"`.
pub fn verify_stripe(header: Option<&str>, body: &[u8], secrets: &[String], now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing("Stripe-Signature"))?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => {
                signatures.push(hex::decode(sig).map_err(|_| SignatureError::Malformed("v1 is not hex".into()))?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| SignatureError::Malformed("no t= timestamp".into()))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1= signature".into()));
    }
    fresh(timestamp, now)?;
    let t = timestamp.to_string();
    let matches = secrets.iter().any(|secret| {
        let expected = hmac(secret.as_bytes(), &[t.as_bytes(), b".", body]);
        signatures.iter().any(|s| bool::from(s.as_slice().ct_eq(&expected)))
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs a Stripe-style header (used by tests and the benchmark to play Stripe).
pub fn sign_stripe(body: &[u8], secret: &str, timestamp: i64) -> String {
    let t = timestamp.to_string();
    format!(
        "t={t},v1={}",
        hex::encode(hmac(secret.as_bytes(), &[t.as_bytes(), b".", body]))
    )
}

/// The key bytes of a Standard Webhooks secret (`whsec_<base64>`; a bare string is used as is).
fn standard_key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(b64) => STANDARD.decode(b64).unwrap_or_else(|_| b64.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// The `webhook-signature` value for a message: `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`.
pub fn sign_standard(id: &str, timestamp: i64, body: &[u8], secret: &str) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(&standard_key(secret), &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// Verifies Standard Webhooks headers. `signature` may hold several space-separated
/// signatures (sender-side rotation); any match with any secret passes.
pub fn verify_standard(
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let id = id.ok_or(SignatureError::Missing("webhook-id"))?;
    let ts = timestamp.ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("webhook-signature"))?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let ts: i64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed("webhook-timestamp is not a number".into()))?;
    fresh(ts, now)?;
    let given: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    if given.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature".into()));
    }
    let t = ts.to_string();
    let matches = secrets.iter().any(|secret| {
        let expected = hmac(&standard_key(secret), &[id.as_bytes(), b".", t.as_bytes(), b".", body]);
        given.iter().any(|g| bool::from(g.as_slice().ct_eq(&expected)))
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A new Standard Webhooks secret: `whsec_` + base64 of 24 random bytes.
pub fn new_standard_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn stripe_round_trip_rotation_staleness_and_tampering() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign_stripe(body, "whsec_new", NOW);
        let secrets = vec!["whsec_old".to_string(), "whsec_new".to_string()];
        assert_eq!(verify_stripe(Some(&header), body, &secrets, NOW + 10), Ok(()));
        assert_eq!(
            verify_stripe(Some(&header), b"{}", &secrets, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(Some(&header), body, &secrets, NOW + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_stripe(Some(&header), body, &["x".into()], NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(None, body, &secrets, NOW),
            Err(SignatureError::Missing("Stripe-Signature"))
        );
        assert!(matches!(
            verify_stripe(Some("t=1"), body, &secrets, NOW),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify_stripe(Some(&header), body, &[], NOW),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn standard_webhooks_round_trip_and_spec_vector() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let sig = sign_standard(id, 1614265330, body, secret);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let secrets = vec![secret.to_string()];
        let ok = verify_standard(
            Some(id),
            Some("1614265330"),
            Some(&format!("v1,bad= {sig}")),
            body,
            &secrets,
            1614265330,
        );
        assert_eq!(ok, Ok(()));
        let stale = verify_standard(
            Some(id),
            Some("1614265330"),
            Some(&sig),
            body,
            &secrets,
            1614265330 + 600,
        );
        assert_eq!(stale, Err(SignatureError::Stale));
        let other_id = verify_standard(
            Some("msg_x"),
            Some("1614265330"),
            Some(&sig),
            body,
            &secrets,
            1614265330,
        );
        assert_eq!(other_id, Err(SignatureError::Mismatch));
        assert!(new_standard_secret().starts_with("whsec_"));
    }
}
