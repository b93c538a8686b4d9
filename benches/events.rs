//! Billing webhook → entitlement latency, license-driven deprovisioning throughput, and outbox
//! delivery throughput.
//!
//! Run: `cargo bench --bench events` (release). SQLite always; PostgreSQL too when
//! `TEST_POSTGRES_URL` names a server (a fresh database is created there). The load generator
//! and the receiver share the machine's cores with the server. Under `cargo test` a small smoke
//! run only proves the benchmark still works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DbBackend};
use serde_json::{json, Value};

use seatbridge::app::Application;
use seatbridge::config::Config;
use seatbridge::events::signature::sign_standard;
use seatbridge::license::Policy;
use seatbridge::licensing::{self, LicenseUpdate};
use seatbridge::store::{self, tenants};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Sizes {
    webhook_events: usize,
    deprovision_users: usize,
    outbox_events: usize,
}

fn pct(sorted: &[u128], p: f64) -> u128 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn fresh_pg(server: &str) -> String {
    let admin = Database::connect(server).await.unwrap();
    let name = format!("sb_bench_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (prefix, _) = server.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

async fn start(database_url: String, dir: &std::path::Path) -> (String, Config) {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        database_url,
        key_dir: dir.join("keys"),
        service_token: Some("svc".into()),
        billing_webhook_secrets: vec![SECRET.into()],
        entitlement_ttl: Duration::from_secs(3600),
        ..Config::default()
    };
    let app = Application::build(config.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    (base, config)
}

/// Inserts `n` active, entitled users directly (seeding 10k users over HTTP is not what is measured).
async fn seed_users(db: &sea_orm::DatabaseConnection, tenant_id: &str, n: usize, prefix: &str) {
    let ts = "2026-11-25T00:00:00+00:00";
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => format!(
            "INSERT INTO users (id, tenant_id, user_name, user_name_norm, active, doc, version, created_at, updated_at, entitled, seat_type, entitlement_reason, seat_since) \
             SELECT '{prefix}' || lpad(i::text, 8, '0'), '{tenant_id}', 'u' || i, 'u' || i, true, '{{\"userName\":\"u' || i || '\"}}', 1, '{ts}', '{ts}', true, 'default', 'seat_assigned', '{ts}' \
             FROM generate_series(1, {n}) AS i"
        ),
        _ => format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             INSERT INTO users (id, tenant_id, user_name, user_name_norm, active, doc, version, created_at, updated_at, entitled, seat_type, entitlement_reason, seat_since) \
             SELECT '{prefix}' || printf('%08d', i), '{tenant_id}', 'u' || i, 'u' || i, 1, json_object('userName', 'u' || i), 1, '{ts}', '{ts}', 1, 'default', 'seat_assigned', '{ts}' FROM s"
        ),
    };
    db.execute_unprepared(&sql).await.unwrap();
}

async fn tenant(db: &sea_orm::DatabaseConnection, slug: &str, seats: i64) -> String {
    let t = tenants::insert_tenant(db, slug, slug).await.unwrap();
    tenants::put_license(
        db,
        &t.id,
        tenants::LicenseFields {
            plan_name: "enterprise".into(),
            seats,
            expires_at: None,
        },
    )
    .await
    .unwrap();
    t.id
}

async fn webhook_latency(
    base: &str,
    db: &sea_orm::DatabaseConnection,
    client: &reqwest::Client,
    events: usize,
) -> String {
    let tenant_id = tenant(db, "hooked", 1).await;
    seed_users(db, &tenant_id, 1, "00000000-0000-7000-8000-").await;
    let user = "00000000-0000-7000-8000-00000001";
    licensing::update_license(
        db,
        "hooked",
        &LicenseUpdate {
            policy: Some(Policy::DeactivateNewest),
            ..Default::default()
        },
        "bench",
        false,
    )
    .await
    .unwrap();
    let check = format!("{base}/api/v1/entitlements/check?tenant=hooked&user={user}");
    let mut lat = Vec::with_capacity(events);
    for i in 0..events {
        let seats = if i % 2 == 0 { 0 } else { 1 };
        let body = json!({"tenant": "hooked", "seats": seats, "version": 100 + i as i64}).to_string();
        let id = format!("msg_{i}");
        let ts = chrono::Utc::now().timestamp();
        let t0 = Instant::now();
        let r = client
            .post(format!("{base}/webhooks/billing/generic"))
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sign_standard(&id, ts, body.as_bytes(), SECRET))
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        loop {
            let v: Value = client
                .get(&check)
                .bearer_auth("svc")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if v["allowed"] == json!(seats == 1) {
                break;
            }
        }
        lat.push(t0.elapsed().as_micros());
    }
    lat.sort_unstable();
    format!(
        "webhook received → entitlement check changed: p50 {:.2} ms, p99 {:.2} ms over {events} events",
        pct(&lat, 0.5) as f64 / 1000.0,
        pct(&lat, 0.99) as f64 / 1000.0
    )
}

async fn deprovisioning(db: &sea_orm::DatabaseConnection, users: usize) -> String {
    let tenant_id = tenant(db, "large", users as i64).await;
    seed_users(db, &tenant_id, users, "00000000-0000-7000-9000-").await;
    let update = LicenseUpdate {
        seats: Some(0),
        policy: Some(Policy::DeactivateNewest),
        ..Default::default()
    };
    let t0 = Instant::now();
    let report = licensing::update_license(db, "large", &update, "bench", false)
        .await
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(report.deentitled.len(), users);
    format!(
        "license-driven deprovisioning: {users} users in {secs:.2} s = {:.0} users/s (one transaction)",
        users as f64 / secs
    )
}

async fn outbox_delivery(db: &sea_orm::DatabaseConnection, events: usize) -> String {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
    let server = actix_web::HttpServer::new(move || {
        let counter = counter.clone();
        actix_web::App::new().default_service(actix_web::web::to(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { actix_web::HttpResponse::Ok().finish() }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let tenant_id = tenant(db, "relayed", 10).await;
    store::events::add_endpoint(db, &tenant_id, "webhook", &url, SECRET, "*")
        .await
        .unwrap();
    let t0 = Instant::now();
    let tx = store::begin_write(db).await.unwrap();
    for i in 0..events {
        seatbridge::events::emit(&tx, &tenant_id, "user.updated", json!({"i": i}))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    while received.load(Ordering::SeqCst) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    format!(
        "outbox delivery to a local receiver: {events} events in {secs:.2} s = {:.0} events/s (one endpoint, in order)",
        events as f64 / secs
    )
}

async fn run(label: &str, database_url: String, sizes: &Sizes) {
    let dir = tempfile::tempdir().unwrap();
    let (base, config) = start(database_url, dir.path()).await;
    let db = store::connect(&config.db_settings()).await.unwrap();
    let client = reqwest::Client::new();
    println!(
        "[{label}] {}",
        webhook_latency(&base, &db, &client, sizes.webhook_events).await
    );
    println!("[{label}] {}", deprovisioning(&db, sizes.deprovision_users).await);
    println!("[{label}] {}", outbox_delivery(&db, sizes.outbox_events).await);
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            webhook_events: 1_000,
            deprovision_users: 10_000,
            outbox_events: 2_000,
        }
    } else {
        Sizes {
            webhook_events: 10,
            deprovision_users: 100,
            outbox_events: 20,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    run(
        "SQLite",
        format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display()),
        &sizes,
    )
    .await;
    if let Ok(server) = std::env::var("TEST_POSTGRES_URL") {
        if full && !server.is_empty() {
            run("PostgreSQL", fresh_pg(&server).await, &sizes).await;
        }
    }
}
