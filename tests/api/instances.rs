//! Two seatbridge processes on one database: seat decisions stay atomic across them, and an
//! entitlement change on one is seen by the other's cache.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn concurrent_creates_on_two_processes_never_exceed_the_seats() {
    let app = TestApp::spawn().await;
    let t = app.tenant("shared", "team", 10).await;
    let other = app.second_process().await;
    let names: Vec<String> = (0..64).map(|i| format!("both{i}")).collect();
    let requests = names.iter().enumerate().map(|(i, name)| {
        let base = if i % 2 == 0 {
            app.base.clone()
        } else {
            other.base.clone()
        };
        let req = app
            .client
            .post(format!("{base}/scim/v2/Users"))
            .bearer_auth(&t.token)
            .header("content-type", SCIM)
            .body(json!({"schemas":[USER],"userName":name,"active":true}).to_string());
        async move { req.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let admitted = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 403).count();
    assert_eq!((admitted, refused), (10, 54), "{statuses:?}");
    assert_eq!(t.entitled().await, 10);
}

#[tokio::test]
async fn a_change_in_one_process_reaches_the_other_process_cache() {
    let app = TestApp::spawn_with(|c| {
        c.service_token = Some("svc".into());
        // Long enough that only an invalidation (not expiry) can explain a fresh answer.
        c.entitlement_ttl = std::time::Duration::from_secs(300);
    })
    .await;
    let t = app.tenant("synced", "team", 5).await;
    let other = app.second_process().await;
    let (_, user) = t.create_user("carol", true).await;
    let id = user["id"].as_str().unwrap().to_string();
    let check = |base: String| {
        let (app, id) = (&app, id.clone());
        async move { app.check_at(&base, "synced", &id).await }
    };
    assert_eq!(
        check(other.base.clone()).await["allowed"],
        json!(true),
        "warms the second instance's cache"
    );
    let postgres = app.config.database_url.starts_with("postgres");
    if postgres {
        app.wait_for_index(&other.base, "synced", 1).await;
    }
    t.patch(
        &format!("/Users/{id}"),
        TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}])),
    )
    .await;
    // SQLite has no cross-process notification; there the TTL bounds staleness instead.
    if postgres {
        let mut seen = false;
        for _ in 0..100 {
            if check(other.base.clone()).await["allowed"] == json!(false) {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(seen, "the second instance never saw the deactivation");
        // It re-read the user the write named, and kept its index of the tenant.
        let gauge = TestApp::index_gauge("synced", 1);
        assert!(
            app.metrics_of(&other.base).await.lines().any(|l| l == gauge),
            "the second instance dropped its index"
        );
    }
    assert_eq!(
        check(app.base.clone()).await["allowed"],
        json!(false),
        "the writing instance sees it at once"
    );
}

/// An instance heard committing a write of a tenant's users whose ids never follow (it died in
/// between): the others keep answering from their index for a second, then drop it, count the
/// drop, and read users until it is rebuilt. (PostgreSQL: SQLite has no such notifications.)
#[tokio::test]
async fn a_write_whose_users_are_never_named_drops_the_index_after_a_second() {
    let app = TestApp::spawn_with(|c| {
        c.service_token = Some("svc".into());
        c.entitlement_ttl = std::time::Duration::from_secs(300);
    })
    .await;
    if !app.config.database_url.starts_with("postgres") {
        return;
    }
    let t = app.tenant("ghosted", "team", 5).await;
    let (_, user) = t.create_user("dana", true).await;
    let id = user["id"].as_str().unwrap();
    let allowed = || async { app.check_at(&app.base, "ghosted", id).await["allowed"].clone() };
    assert_eq!(allowed().await, json!(true));
    app.wait_for_index(&app.base, "ghosted", 1).await;

    app.sql(&format!(
        "SELECT pg_notify('seatbridge_entitlements', 'users:{}@an-instance-that-died')",
        t.tenant_id
    ))
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(allowed().await, json!(true));
    let kept = TestApp::index_gauge("ghosted", 1);
    assert!(
        app.metrics().await.lines().any(|l| l == kept),
        "dropped before the ids were due"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    assert_eq!(allowed().await, json!(true), "answered by a read");
    let metrics = app.metrics().await;
    assert!(
        metrics.lines().any(|l| l == TestApp::index_gauge("ghosted", 0)),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("seatbridge_check_index_drops_total{reason=\"ids_never_came\"}")),
        "{metrics}"
    );
}
