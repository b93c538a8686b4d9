//! Per-token SCIM rate limits: a burst passes, the next request gets a SCIM-shaped 429 with
//! `Retry-After`, and other tokens keep their own budget.

use reqwest::Method;

use crate::helpers::{assert_scim_error, parts, TestApp};
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
