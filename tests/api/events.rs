//! Billing webhooks in and product webhooks out, with real HTTP on both sides.

use std::time::Duration;

use serde_json::{json, Value};

use seatbridge::events::signature::{sign_standard, sign_stripe, verify_standard};

use crate::helpers::*;

const BILLING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STRIPE_SECRET: &str = "whsec_stripe_test";

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.billing_webhook_secrets = vec![BILLING_SECRET.into()];
        c.stripe_webhook_secrets = vec![STRIPE_SECRET.into()];
        c.service_token = Some("svc".into());
        c.operator_token = Some("op".into());
        c.relay.base_backoff = Duration::from_millis(50);
        c.relay.max_attempts = 3;
        c.relay.poll = Duration::from_millis(50);
    })
    .await
}

async fn generic(app: &TestApp, id: &str, ts: i64, body: &Value, secret: &str) -> (u16, Value) {
    let text = body.to_string();
    let resp = app
        .client
        .post(format!("{}/webhooks/billing/generic", app.base))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign_standard(id, ts, text.as_bytes(), secret))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    parts(resp).await
}

async fn stripe(app: &TestApp, event: &Value) -> (u16, Value) {
    let text = event.to_string();
    let resp = app
        .client
        .post(format!("{}/webhooks/billing/stripe", app.base))
        .header(
            "stripe-signature",
            sign_stripe(text.as_bytes(), STRIPE_SECRET, chrono::Utc::now().timestamp()),
        )
        .body(text)
        .send()
        .await
        .unwrap();
    parts(resp).await
}

async fn allowed(app: &TestApp, tenant: &str, user: &str) -> Value {
    app.check_at(&app.base, tenant, user).await
}

#[tokio::test]
async fn generic_billing_webhooks_apply_exactly_once_and_in_order() {
    let app = app().await;
    let t = app.tenant("billed", "team", 5).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            t.create_user(&format!("b{i}"), true).await.1["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    t.set_license("policy = 'deactivate_newest'").await;
    let now = chrono::Utc::now().timestamp();
    let shrink = json!({"tenant":"billed","seats":1,"version":5});

    let (status, body) = generic(&app, "msg_1", now, &shrink, BILLING_SECRET).await;
    assert_eq!((status, body["status"].clone()), (200, json!("applied")), "{body}");
    // The very next check already sees it.
    assert_eq!(allowed(&app, "billed", &ids[2]).await["reason"], "seat_reduction");
    assert_eq!(allowed(&app, "billed", &ids[0]).await["allowed"], json!(true));
    assert_eq!(t.entitled().await, 1);

    let (_, body) = generic(&app, "msg_1", now, &shrink, BILLING_SECRET).await;
    assert_eq!(body["status"], "duplicate");
    let older = json!({"tenant":"billed","seats":50,"version":4});
    let (_, body) = generic(&app, "msg_0", now, &older, BILLING_SECRET).await;
    assert_eq!(body["status"], "ignored_stale");
    assert_eq!(t.entitled().await, 1, "a stale event changes nothing");

    let grow = json!({"tenant":"billed","seats":3,"version":6,"expires_at":null});
    let (_, body) = generic(&app, "msg_2", now, &grow, BILLING_SECRET).await;
    assert_eq!(body["status"], "applied");
    assert_eq!(t.entitled().await, 3);

    let (status, _) = generic(&app, "msg_3", now, &grow, "whsec_wrongwrongwrongwrong").await;
    assert_eq!(status, 401);
    let (status, _) = generic(&app, "msg_4", now - 3600, &grow, BILLING_SECRET).await;
    assert_eq!(status, 401, "an old timestamp is a replay");
    let (status, body) = generic(&app, "msg_5", now, &json!({"tenant":"billed"}), BILLING_SECRET).await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = generic(
        &app,
        "msg_6",
        now,
        &json!({"tenant":"nobody","version":1}),
        BILLING_SECRET,
    )
    .await;
    assert_eq!(body["status"], "ignored_unmapped");
}

#[tokio::test]
async fn stripe_events_drive_plan_seats_and_expiry() {
    let app = app().await;
    let t = app.tenant("striped", "free", 1).await;
    let (status, _) = t.create_user("s0", true).await;
    assert_eq!(status, 201);
    seatbridge::store::events::put_billing_plan(&app.db, "stripe", "price_team", "team")
        .await
        .unwrap();
    let period_end = chrono::Utc::now().timestamp() + 30 * 86400;
    let created = chrono::Utc::now().timestamp();
    let sub = |id: &str, created: i64, quantity: i64| {
        json!({"id": id, "type": "customer.subscription.updated", "created": created, "data": {"object": {
            "customer": "cus_42", "status": "active", "current_period_end": period_end,
            "metadata": {"seatbridge_tenant": "striped"},
            "items": {"data": [{"quantity": quantity, "price": {"id": "price_team", "product": "prod_team"}}]}}}})
    };
    let (status, body) = stripe(&app, &sub("evt_1", created, 3)).await;
    assert_eq!((status, body["status"].clone()), (200, json!("applied")), "{body}");
    assert_eq!(t.create_user("s1", true).await.0, 201);
    assert_eq!(t.create_user("s2", true).await.0, 201);
    assert_eq!(t.create_user("s3", true).await.1["code"], "SEAT_LIMIT_REACHED");
    let (_, groups) = t.get("/Groups").await;
    assert_eq!(groups["totalResults"], json!(0), "the team plan brought scim.groups");

    let (_, body) = stripe(&app, &sub("evt_0", created - 10, 1)).await;
    assert_eq!(body["status"], "ignored_stale");
    let (_, body) = stripe(&app, &sub("evt_1", created, 3)).await;
    assert_eq!(body["status"], "duplicate");

    // Payment fails: the license enters its grace period; invoice events find the tenant by customer.
    let failed = json!({"id":"evt_2","type":"invoice.payment_failed","created":created + 5,"data":{"object":{"customer":"cus_42"}}});
    assert_eq!(stripe(&app, &failed).await.1["status"], "applied");
    assert_eq!(t.create_user("s4", true).await.1["code"], "LICENSE_IN_GRACE");
    let paid = json!({"id":"evt_3","type":"invoice.paid","created":created + 6,"data":{"object":{"customer":"cus_42",
        "lines":{"data":[{"period":{"end": period_end}}]}}}});
    assert_eq!(stripe(&app, &paid).await.1["status"], "applied");
    t.delete(&format!(
        "/Users/{}",
        t.get("/Users?filter=userName%20eq%20%22s0%22").await.1["Resources"][0]["id"]
            .as_str()
            .unwrap()
    ))
    .await;
    assert_eq!(t.create_user("s4", true).await.0, 201);

    let unmapped = json!({"id":"evt_4","type":"customer.subscription.updated","created":created + 7,"data":{"object":{
        "customer":"cus_42","status":"active","items":{"data":[{"quantity":1,"price":{"id":"price_unknown"}}]}}}});
    let (_, body) = stripe(&app, &unmapped).await;
    assert_eq!(body["status"], "ignored_unmapped");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("billing-plan set stripe price_unknown"),
        "{body}"
    );
    let resp = app
        .client
        .post(format!("{}/webhooks/billing/stripe", app.base))
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn product_webhooks_arrive_signed_once_and_in_order_despite_failures() {
    let app = app().await;
    let t = app.tenant("hooked", "team", 1).await;
    let receiver = Receiver::start(2).await;
    let (status, created) = parts(
        app.client
            .post(format!("{}/api/v1/tenants/hooked/endpoints", app.base))
            .bearer_auth("op")
            .json(&json!({"url": receiver.url}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    let (_, listed) = parts(
        app.client
            .get(format!("{}/api/v1/tenants/hooked/endpoints", app.base))
            .bearer_auth("op")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed[0]["url"], receiver.url.as_str());
    assert!(listed[0].get("secret").is_none(), "secrets are never listed");

    let (_, a) = t.create_user("a", true).await;
    let a = a["id"].as_str().unwrap().to_string();
    assert_eq!(t.create_user("b", true).await.0, 403);
    t.patch(
        &format!("/Users/{a}"),
        TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}])),
    )
    .await;
    t.patch(
        &format!("/Users/{a}"),
        TestApp::patch_body(json!([{"op":"replace","value":{"active":true}}])),
    )
    .await;

    let want = [
        "user.provisioned",
        "seat.limit_reached",
        "user.deprovisioned",
        "user.reprovisioned",
    ];
    receiver.wait_for(10, |got| got.len() >= want.len() + 2).await;
    let got = receiver.bodies();
    // The first delivery failed twice and was retried; after that each event came once.
    let (first, rest) = got.split_at(3);
    assert!(first.iter().all(|(id, _)| id == &first[0].0), "{got:?}");
    let mut ids: Vec<&str> = rest.iter().map(|(id, _)| id.as_str()).collect();
    ids.insert(0, &first[0].0);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "no duplicates after success");
    let types: Vec<&str> = std::iter::once(&first[0])
        .chain(rest.iter())
        .map(|(_, b)| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, want, "in order");
    assert_eq!(rest[1].1["data"]["reason"], "inactive");
    assert_eq!(rest[1].1["data"]["access"], json!(false));

    // Signatures verify with the endpoint's secret.
    let raw = receiver.received.lock().unwrap().last().cloned().unwrap();
    let h = |n: &str| raw.0.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let ok = verify_standard(
        h("webhook-id").as_deref(),
        h("webhook-timestamp").as_deref(),
        h("webhook-signature").as_deref(),
        raw.1.as_bytes(),
        &[secret],
        chrono::Utc::now().timestamp(),
    );
    assert_eq!(ok, Ok(()));
}

#[tokio::test]
async fn dead_letters_can_be_redriven() {
    let app = app().await;
    let t = app.tenant("deadly", "team", 5).await;
    let receiver = Receiver::start(100).await;
    seatbridge::store::events::add_endpoint(
        &app.db,
        &t.tenant_id,
        "webhook",
        &receiver.url,
        "whsec_x",
        "[\"user.provisioned\"]",
    )
    .await
    .unwrap();
    t.create_user("d", true).await;
    receiver.wait_for(10, |got| got.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dead: Value = app
        .client
        .get(format!("{}/api/v1/events/dead-letters?tenant=deadly", app.base))
        .bearer_auth("op")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        dead["items"].as_array().unwrap().len(),
        1,
        "dead-lettered after max_attempts (3): {dead}"
    );
    assert_eq!(dead["items"][0]["attempts"], json!(3));
    assert!(
        dead["items"][0]["last_error"].as_str().unwrap().contains("500"),
        "{dead}"
    );
    assert!(dead["next_cursor"].is_null());
    assert_eq!(receiver.bodies().len(), 3);

    receiver.fail_next(0);
    let redriven: Value = app
        .client
        .post(format!("{}/api/v1/events/dead-letters/retry?tenant=deadly", app.base))
        .bearer_auth("op")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(redriven["requeued"], json!(1));

    receiver.wait_for(10, |got| got.len() == 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered =
        seatbridge::store::events::list_deliveries(&app.db, Some(&t.tenant_id), Some("delivered"), None, 10)
            .await
            .unwrap();
    assert_eq!(delivered.len(), 1);
}

#[tokio::test]
async fn two_processes_deliver_each_event_exactly_once() {
    let app = app().await;
    let t = app.tenant("twice", "team", 100).await;
    let receiver = Receiver::start(0).await;
    seatbridge::store::events::add_endpoint(&app.db, &t.tenant_id, "webhook", &receiver.url, "whsec_y", "*")
        .await
        .unwrap();
    let other = app.second_process().await;
    let names: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    let creates = names.iter().enumerate().map(|(i, n)| {
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
            .body(json!({"schemas":[USER],"userName":n,"active":true}).to_string());
        async move { req.send().await.unwrap().status().as_u16() }
    });
    assert!(futures_util::future::join_all(creates).await.iter().all(|s| *s == 201));
    receiver.wait_for(15, |got| got.len() >= 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.bodies();
    let mut ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 30, "each of the 30 events exactly once");
    let in_arrival_order = ids.clone();
    ids.sort_by_key(|id| id.trim_start_matches("sb_evt_").parse::<i64>().unwrap_or(0));
    assert_eq!(in_arrival_order, ids, "in event order");
}

/// Inserts `n` active, entitled users straight into the database.
async fn seed_users(app: &TestApp, tenant_id: &str, n: usize) {
    let ts = "2026-11-25T00:00:00+00:00";
    let sql = if app.config.database_url.starts_with("postgres") {
        format!(
            "INSERT INTO users (id, tenant_id, user_name, user_name_norm, active, doc, version, created_at, updated_at, entitled, seat_type, entitlement_reason, seat_since) \
             SELECT '00000000-0000-7000-8000-' || lpad(i::text, 12, '0'), '{tenant_id}', 'u' || i, 'u' || i, true, '{{}}', 1, '{ts}', '{ts}', true, 'default', 'seat_assigned', '{ts}' \
             FROM generate_series(1, {n}) AS i"
        )
    } else {
        format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             INSERT INTO users (id, tenant_id, user_name, user_name_norm, active, doc, version, created_at, updated_at, entitled, seat_type, entitlement_reason, seat_since) \
             SELECT '00000000-0000-7000-8000-' || printf('%012d', i), '{tenant_id}', 'u' || i, 'u' || i, 1, '{{}}', 1, '{ts}', '{ts}', 1, 'default', 'seat_assigned', '{ts}' FROM s"
        )
    };
    app.sql(&sql).await;
}

async fn entitled_count(app: &TestApp, tenant_id: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            format!("SELECT COUNT(*) FROM users WHERE tenant_id = '{tenant_id}' AND entitled = true"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn a_crash_mid_deprovisioning_leaves_nothing_half_done_and_the_retry_completes() {
    let app = TestApp::spawn_with(|c| c.billing_webhook_secrets = vec![BILLING_SECRET.into()]).await;
    let t = app.tenant("crashy", "team", 3000).await;
    t.set_license("policy = 'deactivate_newest'").await;
    seed_users(&app, &t.tenant_id, 3000).await;
    let victim = app
        .second_process_with(&[("SEATBRIDGE_BILLING_WEBHOOK_SECRETS", BILLING_SECRET)])
        .await;
    let body = json!({"tenant":"crashy","seats":0,"version":9}).to_string();
    let ts = chrono::Utc::now().timestamp();
    let send = |base: String| {
        app.client
            .post(format!("{base}/webhooks/billing/generic"))
            .header("webhook-id", "msg_big")
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                sign_standard("msg_big", ts, body.as_bytes(), BILLING_SECRET),
            )
            .body(body.clone())
            .send()
    };
    // Kill the process while it works on the change.
    let in_flight = tokio::spawn(send(victim.base.clone()));
    tokio::time::sleep(Duration::from_millis(40)).await;
    drop(victim);
    let _ = in_flight.await;
    let seen = entitled_count(&app, &t.tenant_id).await;
    assert!(
        seen == 3000 || seen == 0,
        "a half-applied change: {seen} users still entitled"
    );

    // The billing system retries the same event; it completes (or is recognised as done).
    let (status, answer) = parts(send(app.base.clone()).await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["status"] == "applied" || answer["status"] == "duplicate",
        "{answer}"
    );
    assert_eq!(entitled_count(&app, &t.tenant_id).await, 0);
    let (_, again) = parts(send(app.base.clone()).await.unwrap()).await;
    assert_eq!(again["status"], "duplicate");
}

#[tokio::test]
async fn deliveries_page_newest_first_with_cursors() {
    let app = app().await;
    let t = app.tenant("paged", "team", 5).await;
    let receiver = Receiver::start(100).await;
    seatbridge::store::events::add_endpoint(
        &app.db,
        &t.tenant_id,
        "webhook",
        &receiver.url,
        "whsec_x",
        "[\"user.provisioned\"]",
    )
    .await
    .unwrap();
    for name in ["a", "b", "c"] {
        t.create_user(name, true).await;
    }
    receiver.wait_for(10, |got| got.len() >= 3).await;
    // Deliveries page newest first with a cursor.
    let page = |cursor: Option<String>| {
        let url = format!(
            "{}/api/v1/events/deliveries?tenant=paged&limit=2{}",
            app.base,
            cursor.map(|c| format!("&cursor={c}")).unwrap_or_default()
        );
        let c = app.client.clone();
        async move {
            c.get(url)
                .bearer_auth("op")
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = page(None).await;
    let ids: Vec<i64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "newest first");
    let second = page(first["next_cursor"].as_str().map(str::to_string)).await;
    let next_ids: Vec<i64> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert!(
        !next_ids.is_empty() && next_ids.iter().all(|id| *id < ids[1]),
        "{second}"
    );
}
