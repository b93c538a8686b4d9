//! Signed license tokens: issued by the server, verified offline with the JWKS.

use serde_json::Value;

use seatbridge::license::token::{self, TenantLicenseClaims, TokenError, UserEntitlementClaims};

use crate::helpers::*;

async fn fetch(app: &TestApp, path: &str) -> (u16, Value) {
    parts(
        app.client
            .get(format!("{}{path}", app.base))
            .bearer_auth("svc")
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn products_verify_license_and_user_tokens_offline() {
    let app = TestApp::spawn_with(|c| c.service_token = Some("svc".into())).await;
    let t = app.tenant("offline", "team", 1).await;
    let (_, alice) = t.create_user("alice", true).await;
    t.create_user("bob", false).await;

    let (status, jwks) = fetch(&app, "/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");

    let now = chrono::Utc::now();
    let (status, issued) = fetch(&app, "/api/v1/licenses/token?tenant=offline").await;
    assert_eq!(status, 200, "{issued}");
    let jws = issued["token"].as_str().unwrap();
    let claims: TenantLicenseClaims = token::verify(jws, &jwks, &app.base, TenantLicenseClaims::TYP, now, 60).unwrap();
    assert_eq!(
        (claims.plan.as_str(), claims.seats, claims.license_status.as_str()),
        ("team", 1, "active")
    );
    assert!(claims.features.contains(&"scim.groups".to_string()));

    let (_, issued) = fetch(&app, "/api/v1/entitlements/token?tenant=offline&user=alice").await;
    let user: UserEntitlementClaims = token::verify(
        issued["token"].as_str().unwrap(),
        &jwks,
        &app.base,
        UserEntitlementClaims::TYP,
        now,
        60,
    )
    .unwrap();
    assert_eq!(
        (user.sub.as_str(), user.entitled),
        (alice["id"].as_str().unwrap(), true)
    );
    let (_, issued) = fetch(&app, "/api/v1/entitlements/token?tenant=offline&user=bob").await;
    let bob: UserEntitlementClaims = token::verify(
        issued["token"].as_str().unwrap(),
        &jwks,
        &app.base,
        UserEntitlementClaims::TYP,
        now,
        60,
    )
    .unwrap();
    assert_eq!((bob.entitled, bob.reason.as_str()), (false, "inactive"));

    // Tampering with the payload breaks the signature; a later time expires the token.
    let mut parts_of: Vec<String> = jws.split('.').map(str::to_string).collect();
    let payload = String::from_utf8(base64_decode(&parts_of[1]))
        .unwrap()
        .replace("\"seats\":1", "\"seats\":999");
    parts_of[1] = base64_encode(payload.as_bytes());
    let forged = parts_of.join(".");
    let err =
        token::verify::<TenantLicenseClaims>(&forged, &jwks, &app.base, TenantLicenseClaims::TYP, now, 60).unwrap_err();
    assert!(matches!(err, TokenError::BadSignature), "{err:?}");
    let later = now + chrono::Duration::days(2);
    let err =
        token::verify::<TenantLicenseClaims>(jws, &jwks, &app.base, TenantLicenseClaims::TYP, later, 60).unwrap_err();
    assert!(matches!(err, TokenError::Expired { .. }), "{err:?}");
    // Another deployment's keys do not verify this deployment's tokens.
    let stranger = token::KeyRing::generate(now).jwks(now);
    assert!(
        token::verify::<TenantLicenseClaims>(jws, &stranger, &app.base, TenantLicenseClaims::TYP, now, 60).is_err()
    );

    let (status, _) = parts(
        app.client
            .get(format!("{}/api/v1/licenses/token?tenant=offline", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        fetch(&app, "/api/v1/entitlements/token?tenant=offline&user=nobody")
            .await
            .0,
        404
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
