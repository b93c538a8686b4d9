//! The operator API and the product entitlement check, over real HTTP.

use serde_json::{json, Value};

use crate::helpers::*;

const OPERATOR: &str = "op-secret";
const SERVICE: &str = "svc-secret";

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.operator_token = Some(OPERATOR.into());
        c.service_token = Some(SERVICE.into());
    })
    .await
}

async fn api(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, format!("{}/api/v1{path}", app.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    parts(req.send().await.unwrap()).await
}

/// The raw response of an operator request without a body (for tests that read headers).
async fn operator_request(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::Response {
    app.client
        .request(method, format!("{}/api/v1{path}", app.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
}

async fn check(app: &TestApp, tenant: &str, user: &str, feature: &str) -> Value {
    let (status, body) = api(
        app,
        reqwest::Method::GET,
        &format!("/entitlements/check?tenant={tenant}&user={user}&feature={feature}"),
        SERVICE,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn entitlement_checks_follow_every_change_at_once() {
    let app = app().await;
    let t = app.tenant("prod", "team", 1).await;
    let (_, alice) = t.create_user("alice@prod.io", true).await;
    let id = alice["id"].as_str().unwrap().to_string();

    let ok = check(&app, "prod", "ALICE@prod.io", "scim.groups").await;
    assert_eq!(
        (ok["allowed"].clone(), ok["reason"].clone()),
        (json!(true), json!("ok"))
    );
    assert_eq!(ok["user"], id.as_str());
    let missing = check(&app, "prod", "alice@prod.io", "audit.export").await;
    assert_eq!(
        (missing["allowed"].clone(), missing["reason"].clone()),
        (json!(false), json!("feature_not_in_plan"))
    );

    // Deactivation through SCIM is visible to the very next check (cache invalidated).
    t.patch(
        &format!("/Users/{id}"),
        TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}])),
    )
    .await;
    let off = check(&app, "prod", &id, "").await;
    assert_eq!(
        (off["allowed"].clone(), off["reason"].clone()),
        (json!(false), json!("inactive"))
    );

    // A license suspension through the operator API, likewise.
    t.patch(
        &format!("/Users/{id}"),
        TestApp::patch_body(json!([{"op":"replace","value":{"active":true}}])),
    )
    .await;
    assert_eq!(check(&app, "prod", &id, "").await["allowed"], json!(true));
    let (status, report) = api(
        &app,
        reqwest::Method::PUT,
        "/tenants/prod/license",
        OPERATOR,
        Some(json!({"status":"suspended"})),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["deentitled"][0]["id"], id.as_str());
    let off = check(&app, "prod", &id, "").await;
    assert_eq!(off["reason"], "license_suspended");

    assert_eq!(check(&app, "nope", "x", "").await["reason"], "unknown_tenant");
    assert_eq!(check(&app, "prod", "ghost", "").await["reason"], "unknown_user");
    let (status, body) = api(
        &app,
        reqwest::Method::GET,
        "/entitlements/check?tenant=prod&user=x",
        "wrong",
        None,
    )
    .await;
    assert_eq!((status, body["status"].clone()), (401, json!(401)));
}

#[tokio::test]
async fn operators_manage_plans_and_licenses_with_dry_runs() {
    let app = app().await;
    let (status, _) = api(&app, reqwest::Method::GET, "/plans", "not-it", None).await;
    assert_eq!(status, 401);
    let spec = json!({"features":["scim.users","scim.groups"],"seats_default":10,"seat_pools":{"viewer":3},"grace_days":2,"overage":1.5});
    let (status, plan) = api(&app, reqwest::Method::PUT, "/plans/growth", OPERATOR, Some(spec)).await;
    assert_eq!(status, 200, "{plan}");
    let (status, err) = api(
        &app,
        reqwest::Method::PUT,
        "/plans/bad",
        OPERATOR,
        Some(json!({"features":["x"],"seats_default":-1})),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(err["detail"].as_str().unwrap().contains("seats_default"), "{err}");
    let (status, _) = api(
        &app,
        reqwest::Method::PUT,
        "/plans/bad",
        OPERATOR,
        Some(json!({"features":"x"})),
    )
    .await;
    assert_eq!(status, 400);

    let t = app.tenant("growing", "growth", 2).await;
    for i in 0..3 {
        assert_eq!(
            t.create_user(&format!("g{i}"), true).await.0,
            201,
            "overage 1.5 on 2 seats admits 3"
        );
    }
    let (_, seats) = api(&app, reqwest::Method::GET, "/tenants/growing/seats", OPERATOR, None).await;
    assert_eq!(
        seats["pools"][0],
        json!({"seat_type":"default","in_use":3,"waiting":0,"limit":3})
    );
    assert_eq!(seats["pools"][1]["seat_type"], "viewer");

    let body = json!({"seats": 1, "policy": "deactivate_newest", "version": 1});
    let (_, dry) = api(
        &app,
        reqwest::Method::PUT,
        "/tenants/growing/license?dry_run=true",
        OPERATOR,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (dry["dry_run"].clone(), dry["deentitled"].as_array().unwrap().len()),
        (json!(true), 2)
    );
    let (_, real) = api(
        &app,
        reqwest::Method::PUT,
        "/tenants/growing/license",
        OPERATOR,
        Some(body.clone()),
    )
    .await;
    assert_eq!(real["deentitled"], dry["deentitled"]);
    let (status, stale) = api(
        &app,
        reqwest::Method::PUT,
        "/tenants/growing/license",
        OPERATOR,
        Some(body),
    )
    .await;
    assert_eq!(status, 409, "{stale}");
    let (status, lic) = api(&app, reqwest::Method::GET, "/tenants/growing/license", OPERATOR, None).await;
    assert_eq!(
        (status, lic["version"].clone(), lic["policy"].clone()),
        (200, json!(2), json!("deactivate_newest"))
    );
    let (status, _) = api(&app, reqwest::Method::GET, "/tenants/nobody/license", OPERATOR, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = app().await;
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/tenants", "GET, POST"),
        (reqwest::Method::DELETE, "/plans", "GET"),
        (reqwest::Method::POST, "/tenants/acme/seat-mappings/g", "PUT, DELETE"),
    ] {
        let resp = operator_request(&app, method.clone(), path).await;
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let (status, body) = parts(resp).await;
        assert_eq!(
            (status, body["status"].as_u64()),
            (405, Some(405)),
            "{method} {path}: {body}"
        );
    }
    // An unknown path stays 404.
    let (status, _) = api(&app, reqwest::Method::GET, "/nowhere", OPERATOR, None).await;
    assert_eq!(status, 404);
}

/// Found by schemathesis: every answer of /api/v1 is a problem document in the shape the
/// OpenAPI document gives, including ids that cannot parse and page sizes past `int64`.
#[tokio::test]
async fn malformed_path_ids_and_page_sizes_answer_problem_documents() {
    let app = app().await;
    for (method, path, want) in [
        (
            reqwest::Method::POST,
            "/events/deliveries/9223372036854775808/retry",
            404,
        ),
        (reqwest::Method::POST, "/events/deliveries/not-a-number/retry", 404),
        (reqwest::Method::GET, "/tenants?limit=9223372036854775808", 400),
        (reqwest::Method::GET, "/tenants?limit=-3", 200),
    ] {
        let resp = operator_request(&app, method.clone(), path).await;
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        let (status, body) = parts(resp).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        if want == 200 {
            assert!(body["items"].is_array(), "clamped to 1: {body}");
        } else {
            assert_eq!(content_type, "application/problem+json", "{method} {path}");
            assert_eq!(body["status"].as_u64(), Some(u64::from(want)), "{body}");
        }
    }
}

/// A token name is 1 to 100 characters, as the document says; not bytes.
#[tokio::test]
async fn token_names_are_counted_in_characters() {
    let app = app().await;
    let path = "/tenants/acme/tokens";
    for (name, want) in [("é".repeat(100), 201), ("é".repeat(101), 400), ("   ".to_string(), 400)] {
        let (status, body) = api(
            &app,
            reqwest::Method::POST,
            path,
            OPERATOR,
            Some(json!({ "name": name })),
        )
        .await;
        assert_eq!(status, want, "{} characters: {body}", name.chars().count());
    }
}

async fn set_seats(app: &TestApp, slug: &str, seats: i64) -> Value {
    let (status, report) = api(
        app,
        reqwest::Method::PUT,
        &format!("/tenants/{slug}/license"),
        OPERATOR,
        Some(json!({ "seats": seats, "policy": "deactivate_newest" })),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    report
}

#[tokio::test]
async fn an_indexed_tenant_follows_every_scim_write_without_starting_over() {
    let app = app().await;
    let t = app.tenant("indexed", "team", 3).await;
    let mut ids = std::collections::HashMap::new();
    for (name, active) in [("alice", true), ("bob", true), ("carol", true), ("dave", false)] {
        let (status, user) = t.create_user(name, active).await;
        assert_eq!(status, 201, "{user}");
        ids.insert(name, user["id"].as_str().unwrap().to_string());
    }
    // Down to two seats: one of the three waits for a seat.
    let report = set_seats(&app, "indexed", 2).await;
    let waiting = report["deentitled"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"))
        .to_string();
    assert_eq!(check(&app, "indexed", &waiting, "").await["reason"], "seat_reduction");
    app.wait_for_index(&app.base, "indexed", 4).await;

    // A deactivation frees a seat, which goes to the waiting user in the same write.
    let leaving = ["alice", "bob", "carol"]
        .into_iter()
        .find(|n| ids[n] != waiting && *n != "bob")
        .unwrap();
    t.patch(
        &format!("/Users/{}", ids[leaving]),
        TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}])),
    )
    .await;
    assert_eq!(check(&app, "indexed", leaving, "").await["reason"], "inactive");
    let promoted = check(&app, "indexed", &waiting, "").await;
    assert_eq!(
        (promoted["allowed"].clone(), promoted["user"].clone()),
        (json!(true), json!(waiting))
    );

    // A rename: the new name finds the user, the old one no longer does.
    let (status, body) = t
        .patch(
            &format!("/Users/{}", ids["bob"]),
            TestApp::patch_body(json!([{"op":"replace","path":"userName","value":"robert"}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(check(&app, "indexed", "robert", "").await["user"], ids["bob"].as_str());
    assert_eq!(check(&app, "indexed", "bob", "").await["reason"], "unknown_user");

    // A delete and a create.
    assert_eq!(check(&app, "indexed", "dave", "").await["reason"], "inactive");
    assert_eq!(t.delete(&format!("/Users/{}", ids["dave"])).await, 204);
    assert_eq!(check(&app, "indexed", "dave", "").await["reason"], "unknown_user");
    assert_eq!(check(&app, "indexed", &ids["dave"], "").await["reason"], "unknown_user");
    let (status, erin) = t.create_user("erin", false).await;
    assert_eq!(status, 201, "{erin}");
    let erin_check = check(&app, "indexed", "erin", "").await;
    assert_eq!(
        (erin_check["reason"].clone(), erin_check["user"].clone()),
        (json!("inactive"), erin["id"].clone())
    );

    // Concurrent writes, whose users are applied together.
    let names: Vec<String> = (0..12).map(|i| format!("burst{i}")).collect();
    let created = futures_util::future::join_all(names.iter().map(|n| t.create_user(n, false))).await;
    assert!(created.iter().all(|(status, _)| *status == 201), "{created:?}");
    for (name, (_, user)) in names.iter().zip(&created) {
        assert_eq!(check(&app, "indexed", name, "").await["user"], user["id"], "{name}");
    }

    // All of it applied to the index, which was never dropped: on PostgreSQL this process
    // hears its own writes' NOTIFY too, and must not start over for them.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.wait_for_index(&app.base, "indexed", 16).await;

    // A license change starts over, with the new entitlements.
    let report = set_seats(&app, "indexed", 1).await;
    let lost = report["deentitled"][0]["id"]
        .as_str()
        .expect("one user lost a seat")
        .to_string();
    assert_eq!(check(&app, "indexed", &lost, "").await["reason"], "seat_reduction");
    app.wait_for_index(&app.base, "indexed", 16).await;
}
