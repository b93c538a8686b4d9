//! `/metrics` in Prometheus text format: requests by route pattern, refusals by code, seat
//! gauges per tenant and pool, outbox backlog; and `/readyz` on the migration state.

use crate::helpers::{parts, TestApp};

async fn scrape(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut req = app.client.get(format!("{}/metrics", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_requests_refusals_and_seats() {
    let app = TestApp::spawn().await;
    let t = app.tenant("metered", "team", 1).await;
    let (status, user) = t.create_user("a@metered.test", true).await;
    assert_eq!(status, 201);
    assert_eq!(t.create_user("b@metered.test", true).await.0, 403);
    let id = user["id"].as_str().unwrap();
    assert_eq!(t.get(&format!("/Users/{id}")).await.0, 200);

    // Seat gauges follow the usage snapshots (within seconds of a change).
    let mut body = String::new();
    for _ in 0..100 {
        body = scrape(&app, None).await.1;
        if body.contains(r#"seatbridge_seats_in_use{tenant="metered",pool="default"} 1"#) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        body.contains(r#"seatbridge_seats_in_use{tenant="metered",pool="default"} 1"#),
        "{body}"
    );
    assert!(body.contains(r#"seatbridge_seats_limit{tenant="metered",pool="default"} 1"#));
    let requests: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("seatbridge_http_requests_total{"))
        .collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"route="/scim/v2/Users""#) && l.contains(r#"status="403""#)),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|l| l.contains(r#"route="/scim/v2/Users/{id}""#)),
        "ids never become labels: {requests:?}"
    );
    assert!(!body.contains(id), "no resource id in any label");
    assert!(body.contains(r#"seatbridge_refusals_total{code="SEAT_LIMIT_REACHED"}"#));
    assert!(body.contains("seatbridge_http_request_duration_seconds_bucket{"));
    assert!(body.contains("seatbridge_outbox_pending_deliveries "));
    assert!(body.contains("seatbridge_outbox_oldest_pending_seconds "));
    assert!(!body.contains(&t.token), "no secret in the metrics");
}

#[tokio::test]
async fn a_metrics_token_guards_the_endpoint() {
    let app = TestApp::spawn_with(|c| c.metrics_token = Some("scraper-secret".into())).await;
    assert_eq!(scrape(&app, None).await.0, 401);
    assert_eq!(scrape(&app, Some("wrong")).await.0, 401);
    let (status, body) = scrape(&app, Some("scraper-secret")).await;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE"), "{body}");
}

#[tokio::test]
async fn readyz_tells_pending_from_newer_migrations() {
    let app = TestApp::spawn().await;
    let readyz = || async { parts(app.client.get(format!("{}/readyz", app.base)).send().await.unwrap()).await };
    assert_eq!(readyz().await, (200, serde_json::json!({"status": "ready"})));

    // A newer release migrated the database: this binary is not ready, and says why.
    app.sql("INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29991231_000001_future', 0)")
        .await;
    let (status, body) = readyz().await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "database is newer than this binary", "{body}");
    assert_eq!(
        body["unknown_migrations"],
        serde_json::json!(["m29991231_000001_future"])
    );
    app.sql("DELETE FROM seaql_migrations WHERE version = 'm29991231_000001_future'")
        .await;

    // One of this binary's migrations missing: pending.
    app.sql("DELETE FROM seaql_migrations WHERE version = 'm20261125_000008_add_waiting_index'")
        .await;
    assert_eq!(
        readyz().await,
        (503, serde_json::json!({"status": "migrations pending"}))
    );
}
