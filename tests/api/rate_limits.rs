//! Rate limits. Per SCIM token: a burst passes, the next request gets a SCIM-shaped 429 with
//! `Retry-After`, and other tokens keep their own budget. Per admin principal on `/api/v1` and
//! per client address on the login: the same, as RFC 9457 problems (HTML pages on the login).

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_scim_error, parts, AdminApp, TestApp};
use seatbridge::config::RateLimit;

#[tokio::test]
async fn a_token_over_its_budget_gets_429_and_others_do_not() {
    let app = TestApp::spawn_with(|c| {
        c.scim_rate_limit = Some(RateLimit {
            per_second: 1,
            burst: 3,
        })
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.request(Method::GET, "/Users", None).await.status(), 200);
    }
    let resp = app.request(Method::GET, "/Users", None).await;
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, body) = parts(resp).await;
    assert_scim_error(status, &body, 429, None);
    assert!(body["detail"].as_str().unwrap().contains("bursts of 3"), "{body}");

    let other = app.other_tenant("other").await;
    assert_eq!(
        app.request_as(&other, Method::GET, "/Users", None).await.status(),
        200,
        "budgets are per token"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        app.request(Method::GET, "/Users", None).await.status(),
        200,
        "the budget refills"
    );
}

const OPERATOR: &str = "rate-limit-operator-token";

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("request sent").status().as_u16()
}

#[tokio::test]
async fn an_admin_over_its_budget_gets_a_429_problem_and_logins_are_limited_per_address() {
    let app = TestApp::spawn_with(|c| {
        c.operator_token = Some(OPERATOR.into());
        c.service_token = Some("rate-limit-service-token".into());
        c.admin_rate_limit = Some(RateLimit {
            per_second: 1,
            burst: 3,
        });
    })
    .await;
    let api = |path: &str| {
        app.client
            .get(format!("{}/api/v1{path}", app.base))
            .bearer_auth(OPERATOR)
    };
    for _ in 0..3 {
        assert_eq!(status_of(api("/tenants")).await, 200);
    }
    let resp = api("/tenants").send().await.unwrap();
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let (status, body) = parts(resp).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["status"], 429, "{body}");
    assert_eq!(body["title"], "Too Many Requests", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("bursts of 3"), "{body}");

    // Service-to-service product checks and SCIM have budgets of their own.
    for _ in 0..5 {
        let check = app
            .client
            .get(format!(
                "{}/api/v1/entitlements/check?tenant=acme&user=nobody",
                app.base
            ))
            .bearer_auth("rate-limit-service-token");
        assert_ne!(status_of(check).await, 429, "product checks are not admin requests");
    }
    assert_eq!(app.request(Method::GET, "/Users", None).await.status(), 200);

    // The login is keyed by the client's address: its own budget, an HTML page over it.
    let login = || app.client.get(format!("{}/admin/login", app.base));
    for _ in 0..3 {
        assert_eq!(status_of(login()).await, 503, "login is not configured here");
    }
    let resp = login().send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        status_of(app.client.get(format!("{}/admin/callback?code=x&state=y", app.base))).await,
        429,
        "the callback shares the address's budget"
    );

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("seatbridge_admin_rate_limited_total{scope=\"api\"}")
            && metrics.contains("seatbridge_admin_rate_limited_total{scope=\"login\"}"),
        "{metrics}"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(status_of(api("/tenants")).await, 200, "the budget refills");
}

#[tokio::test]
async fn admin_budgets_are_per_principal() {
    let a = AdminApp::spawn_with(|c| {
        c.operator_token = Some(OPERATOR.into());
        c.admin_rate_limit = Some(RateLimit {
            per_second: 1,
            burst: 2,
        });
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let token = |sub: &str| {
        a.op.sign(
            json!({"iss": a.op.issuer, "aud": "seatbridge-api", "sub": sub, "email": format!("{sub}@example.test"),
                   "iat": now, "exp": now + 300, "roles": ["seatbridge-operator"]}),
            "current",
        )
    };
    let (alice, bob) = (token("alice").await, token("bob").await);
    let get = |bearer: &str| a.app.client.get(a.api("/tenants")).bearer_auth(bearer.to_string());
    assert_eq!(status_of(get(&alice)).await, 200);
    assert_eq!(status_of(get(&alice)).await, 200);
    let (status, body) = parts(get(&alice).send().await.unwrap()).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("alice"), "{body}");
    assert_eq!(
        status_of(get(&bob)).await,
        200,
        "another admin has a budget of their own"
    );
    assert_eq!(status_of(get(OPERATOR)).await, 200, "so has the operator token");
    let alice_again = token("alice").await;
    assert_eq!(
        status_of(get(&alice_again)).await,
        429,
        "a fresh token of the same subject shares its budget"
    );
}
