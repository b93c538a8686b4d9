//! Bad input gets an RFC 7644 §3.12 error, never a 500, and writes nothing.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn missing_or_bad_tokens_are_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/Users")).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"scim\"");
    let (status, body) = parts(resp).await;
    assert_scim_error(status, &body, 401, None);
    let (status, body) = parts(app.request_as("sbt_wrong", Method::GET, "/Users", None).await).await;
    assert_scim_error(status, &body, 401, None);
    let resp = app
        .client
        .get(app.url("/Users"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn malformed_bodies_are_400_and_write_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        ("{not json", "invalidSyntax"),
        ("[1,2]", "invalidSyntax"),
        (
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":42}"#,
            "invalidValue",
        ),
        (
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"displayName":"no userName"}"#,
            "invalidValue",
        ),
        (
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","emails":[{"value":"not-an-email"}]}"#,
            "invalidValue",
        ),
        (
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","active":"perhaps"}"#,
            "invalidValue",
        ),
        (
            r#"{"schemas":["urn:ietf:params:scim:schemas:extension:unknown:2.0:User"],"userName":"x"}"#,
            "invalidValue",
        ),
        (
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","name":{"givenName":["a"]}}"#,
            "invalidValue",
        ),
    ];
    for (body, scim_type) in cases {
        let resp = app
            .client
            .post(app.url("/Users"))
            .bearer_auth(&app.token)
            .header("content-type", SCIM)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, err) = parts(resp).await;
        assert_scim_error(status, &err, 400, Some(scim_type));
    }
    let (_, list) = app.get("/Users").await;
    assert_eq!(list["totalResults"], json!(0));
}

#[tokio::test]
async fn media_types_methods_and_sizes_are_checked() {
    let app = TestApp::spawn_with(|c| c.scim.max_body_bytes = 2048).await;
    let resp = app
        .client
        .post(app.url("/Users"))
        .bearer_auth(&app.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, body) = parts(resp).await;
    assert_scim_error(status, &body, 415, None);

    let resp = app
        .client
        .get(app.url("/Users"))
        .bearer_auth(&app.token)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let (status, body) = parts(resp).await;
    assert_scim_error(status, &body, 406, None);

    let big = json!({"schemas":[USER],"userName":"x","displayName":"y".repeat(5000)});
    let (status, body) = app.post("/Users", big).await;
    assert_scim_error(status, &body, 413, None);

    let (status, body) = parts(app.request(Method::DELETE, "/Users", None).await).await;
    assert_scim_error(status, &body, 405, None);

    let (status, body) = app.get("/Nope").await;
    assert_scim_error(status, &body, 404, None);
}

#[tokio::test]
async fn bad_patches_are_refused_with_the_right_type() {
    let app = TestApp::spawn().await;
    let id = app.create_user("patchy").await;
    let path = format!("/Users/{id}");
    let cases = [
        (
            json!({"Operations":[{"op":"replace","path":"title","value":"x"}]}),
            "invalidSyntax",
        ),
        (
            TestApp::patch_body(json!([{"op":"frobnicate","path":"title","value":"x"}])),
            "invalidSyntax",
        ),
        (TestApp::patch_body(json!([{"op":"remove"}])), "noTarget"),
        (
            TestApp::patch_body(json!([{"op":"replace","path":"emails[type eq","value":"x"}])),
            "invalidPath",
        ),
        (
            TestApp::patch_body(json!([{"op":"replace","path":"nosuch","value":"x"}])),
            "invalidPath",
        ),
        (
            TestApp::patch_body(json!([{"op":"replace","path":"id","value":"x"}])),
            "mutability",
        ),
        (
            TestApp::patch_body(json!([{"op":"remove","path":"userName"}])),
            "invalidValue",
        ),
        (
            TestApp::patch_body(json!([{"op":"replace","path":"active","value":"maybe"}])),
            "invalidValue",
        ),
    ];
    for (body, scim_type) in cases {
        let (status, err) = app.patch(&path, body.clone()).await;
        assert_scim_error(status, &err, 400, Some(scim_type));
    }
    let (_, user) = app.get(&path).await;
    assert_eq!(user["meta"]["version"], "W/\"1\"", "no failed PATCH wrote anything");
}

#[tokio::test]
async fn me_is_not_implemented() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/Me").await;
    assert_scim_error(status, &body, 501, None);
}
