//! Entitlement-check throughput and latency, from the in-memory cache, over real HTTP.
//!
//! Run: `cargo bench --bench entitlements` (release build). It starts seatbridge on a fresh
//! SQLite database in a temp dir, seeds one tenant with 1,000 users, warms the cache, then
//! drives `GET /api/v1/entitlements/check` from 32 concurrent keep-alive connections for 10 s
//! (the load generator shares the machine's cores with the server). It also times the cache
//! lookup in-process, without HTTP. Results go to stdout; copy them into bench/RESULTS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use seatbridge::app::Application;
use seatbridge::auth::{generate_token, hash_token};
use seatbridge::config::Config;
use seatbridge::entitlements::{CheckRow, EntitlementCache, UserIndex, DEFAULT_INDEX_USERS};
use seatbridge::store::{self, tenants};

const CONNECTIONS: usize = 32;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then a short smoke run
    // only proves the benchmark still works.
    let full = std::env::args().any(|a| a == "--bench");
    let (users, seconds, rounds): (usize, u64, usize) = if full { (1_000, 10, 200_000) } else { (20, 1, 1_000) };
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display()),
        key_dir: dir.path().join("keys"),
        service_token: Some("bench".into()),
        entitlement_ttl: Duration::from_secs(3600),
        ..Config::default()
    };
    let app = Application::build(config.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let db = store::connect(&config.db_settings()).await.unwrap();
    let t = tenants::insert_tenant(&db, "bench", "bench").await.unwrap();
    let seats = tenants::LicenseFields {
        plan_name: "enterprise".into(),
        seats: 100_000,
        expires_at: None,
    };
    tenants::put_license(&db, &t.id, seats).await.unwrap();
    let token = generate_token();
    tenants::insert_token(&db, &t.id, "bench", &hash_token(&token))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    for i in 0..users {
        let body = serde_json::json!({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":format!("user{i}"),"active":true});
        let r = client
            .post(format!("{base}/scim/v2/Users"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    // In-process: the cache lookup alone, once the tenant is indexed.
    let cache = Arc::new(EntitlementCache::new(Duration::from_secs(3600), DEFAULT_INDEX_USERS));
    cache.check(&db, &db, "bench", "user0", Some("sso")).await.unwrap();
    while !cache.is_indexed(&t.id) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    for i in 0..rounds {
        let r = cache
            .check(&db, &db, "bench", &format!("user{}", i % users), Some("sso"))
            .await
            .unwrap();
        assert!(r.allowed);
    }
    let per = started.elapsed().as_nanos() as f64 / rounds as f64;
    println!(
        "in-process cache check: {:.0} ns/check ({:.0} checks/s on one core)",
        per,
        1e9 / per
    );

    index_memory(if full { 1_000_000 } else { 1_000 });

    // Over HTTP.
    let urls: Arc<Vec<String>> = Arc::new(
        (0..users)
            .map(|i| format!("{base}/api/v1/entitlements/check?tenant=bench&user=user{i}&feature=sso"))
            .collect(),
    );
    for u in urls.iter() {
        client.get(u).bearer_auth("bench").send().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let client = client.clone();
        let urls = urls.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut i = c;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let r = client
                    .get(&urls[i % urls.len()])
                    .bearer_auth("bench")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                r.bytes().await.unwrap();
                lat.push(t0.elapsed().as_micros() as u64);
                i += CONNECTIONS;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let label = if full { "" } else { " [smoke run]" };
    println!(
        "HTTP /api/v1/entitlements/check: {} requests in {seconds} s = {:.0} req/s; p50 {} µs, p99 {} µs, max {} µs ({CONNECTIONS} connections, {users} users){label}",
        all.len(),
        all.len() as f64 / seconds as f64,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0)
    );
}

/// What the check index takes per user, for `n` users with UUIDv7 ids and names like the
/// harness's (`u123456`): grown one user at a time, and sized once for them as a build does.
fn index_memory(n: usize) {
    let rows: Vec<CheckRow> = (0..n)
        .map(|i| CheckRow {
            id: uuid::Uuid::now_v7().to_string(),
            name_norm: format!("u{i}"),
            active: true,
            entitled: true,
            seat_type: "default".into(),
            reason: "seat_assigned".into(),
        })
        .collect();
    let text: usize = rows.iter().map(|r| r.id.len() + r.name_norm.len()).sum();
    for (how, mut index) in [
        ("grown", UserIndex::default()),
        ("sized", UserIndex::with_capacity(n, text)),
    ] {
        rows.iter().for_each(|r| index.upsert(r).unwrap());
        println!(
            "check index, {how}: {} users in {:.1} MiB, {:.0} bytes a user",
            index.len(),
            index.memory() as f64 / (1 << 20) as f64,
            index.memory() as f64 / n as f64
        );
    }
}
