//! Regressions found by the HTTP fuzzer (conformance/http-fuzz): each request here once made the
//! server panic or answer 5xx. They must get a 4xx or a success, and the server must stay up.

use serde_json::json;

use crate::helpers::*;

/// Keys of four or more bytes whose byte 4 falls inside a multi-byte character: the `urn:` check
/// in `normalize_resource` sliced `key[..4]` and panicked (the worker died, the connection closed
/// without an answer).
#[tokio::test]
async fn attribute_keys_with_multibyte_characters_do_not_panic() {
    let app = TestApp::spawn().await;
    let keys = ["abcé", "㒒୘₨㲏", "😀x", "urnü:x", "ur\u{e9}n:core"];
    for (i, key) in keys.iter().enumerate() {
        let mut user = json!({"schemas": [USER], "userName": format!("mb{i}@example.com")});
        user[*key] = json!("x");
        let (status, body) = app.post("/Users", user.clone()).await;
        assert_eq!(status, 201, "POST /Users with key {key:?}: {body}");
        let id = body["id"].as_str().unwrap().to_string();
        let (status, body) = app.put(&format!("/Users/{id}"), user).await;
        assert_eq!(status, 200, "PUT /Users with key {key:?}: {body}");

        let mut group = json!({"schemas": [GROUP], "displayName": format!("mb group {i}")});
        group[*key] = json!({"a": 1});
        let (status, body) = app.post("/Groups", group).await;
        assert_eq!(status, 201, "POST /Groups with key {key:?}: {body}");

        let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "value": {*key: "x"}}]});
        let (status, body) = app.patch(&format!("/Users/{id}"), patch).await;
        assert!(status < 500, "PATCH with value key {key:?}: {status} {body}");
    }
    // A real schema URN key still works.
    let (status, body) = app
        .post(
            "/Users",
            json!({"schemas": [USER, ENTERPRISE], "userName": "urn@example.com",
                   ENTERPRISE: {"department": "Mines"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[ENTERPRISE]["department"], "Mines");
    let (status, _) = app.get("/ServiceProviderConfig").await;
    assert_eq!(status, 200, "the server is still up");
}
