//! Crash safety: a seatbridge process killed with SIGKILL in the middle of concurrent writes
//! loses no acknowledged write, invents none, and leaves seats, users and the audit chain
//! consistent; a new process on the same database starts cleanly.
//!
//! Each writer works on its own users, one request at a time, so the answers it got tell
//! exactly what the database must hold: the last acknowledged state of every user, except
//! where a request was cut off by the kill (then either outcome is allowed). A server that
//! acknowledged before committing, or committed half a write, fails these checks.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::helpers::{client, parts, TestApp, GROUP, SCIM, SEATBRIDGE, USER};

const OPERATOR: &str = "crash-safety-operator-token";
const SEATS: i64 = 6;
const WRITERS: usize = 6;
/// Acknowledged writes, and time, to wait for before the kill, so it lands in the middle of
/// the load.
const ACKS_BEFORE_KILL: usize = 100;
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(800);

/// What a writer learned about one of its users from acknowledged answers.
#[derive(Debug)]
struct Known {
    id: String,
    user_name: String,
    /// `active` as of the last acknowledged write.
    active: bool,
    /// A later `active` write whose answer never came: either value may have been committed.
    active_in_doubt: Option<bool>,
    /// An acknowledged add to the shared group.
    in_group: bool,
}

/// Everything one writer was told.
#[derive(Debug, Default)]
struct Journal {
    users: Vec<Known>,
    /// Creates refused with 403 (no seat): they must have left nothing behind.
    refused_creates: Vec<String>,
    /// Creates whose answer never came (or was a 5xx): they may or may not exist.
    creates_in_doubt: Vec<String>,
}

struct Writer {
    client: Client,
    base: String,
    token: String,
    group: String,
}

impl Writer {
    async fn send(&self, method: Method, path: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .client
            .request(method, format!("{}/scim/v2{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", SCIM)
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Writes until told to stop or the server goes away; answers what it was told.
    async fn run(self, me: usize, stop: Arc<AtomicBool>, acks: Arc<AtomicUsize>) -> Journal {
        let mut j = Journal::default();
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let roll = rand::random_range(0..10);
            let alive = if j.users.is_empty() || roll < 4 {
                self.create(&mut j, format!("w{me}-{n}@crash.example")).await
            } else {
                let i = rand::random_range(0..j.users.len());
                if roll < 8 {
                    self.toggle(&mut j.users[i]).await
                } else {
                    self.add_to_group(&mut j.users[i]).await
                }
            };
            match alive {
                Some(true) => {
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                Some(false) => {}
                // The connection failed: the server is gone.
                None => break,
            }
        }
        j
    }

    /// `Some(true)` when acknowledged, `Some(false)` when answered in doubt, `None` when the
    /// server did not answer.
    async fn create(&self, j: &mut Journal, user_name: String) -> Option<bool> {
        let body = json!({"schemas": [USER], "userName": user_name, "active": true});
        match self.send(Method::POST, "/Users", body).await {
            Ok((201, body)) => {
                assert_eq!(body["userName"], user_name.as_str(), "{body}");
                assert_eq!(
                    body[SEATBRIDGE]["entitled"], true,
                    "a created active user holds a seat: {body}"
                );
                j.users.push(Known {
                    id: body["id"].as_str().expect("id").to_string(),
                    user_name,
                    active: true,
                    active_in_doubt: None,
                    in_group: false,
                });
                Some(true)
            }
            Ok((403, body)) => {
                assert!(body["detail"].is_string(), "{body}");
                j.refused_creates.push(user_name);
                Some(true)
            }
            Ok((status, body)) => {
                assert!(status >= 500, "unexpected answer to a create: {status} {body}");
                j.creates_in_doubt.push(user_name);
                Some(false)
            }
            Err(_) => {
                j.creates_in_doubt.push(user_name);
                None
            }
        }
    }

    /// Deactivates an active user, or reactivates an inactive one (which needs a free seat).
    async fn toggle(&self, u: &mut Known) -> Option<bool> {
        let target = !u.active;
        let body = TestApp::patch_body(json!([{"op": "replace", "path": "active", "value": target}]));
        match self.send(Method::PATCH, &format!("/Users/{}", u.id), body).await {
            Ok((200, body)) => {
                assert_eq!(body["active"], target, "{body}");
                u.active = target;
                u.active_in_doubt = None;
                Some(true)
            }
            Ok((403, body)) => {
                assert!(target, "only a reactivation can be refused: {body}");
                u.active_in_doubt = None;
                Some(true)
            }
            Ok((status, body)) => {
                assert!(status >= 500, "unexpected answer to a PATCH: {status} {body}");
                u.active_in_doubt = Some(target);
                Some(false)
            }
            Err(_) => {
                u.active_in_doubt = Some(target);
                None
            }
        }
    }

    async fn add_to_group(&self, u: &mut Known) -> Option<bool> {
        let body = TestApp::patch_body(json!([{"op": "add", "path": "members", "value": [{"value": u.id}]}]));
        match self.send(Method::PATCH, &format!("/Groups/{}", self.group), body).await {
            Ok((200 | 204, _)) => {
                u.in_group = true;
                Some(true)
            }
            Ok((status, body)) => {
                assert!(status >= 500, "unexpected answer to a group PATCH: {status} {body}");
                Some(false)
            }
            Err(_) => None,
        }
    }
}

/// Every user of the tenant, read through SCIM from `base`.
async fn all_users(client: &Client, base: &str, token: &str) -> Vec<Value> {
    let mut users = Vec::new();
    loop {
        let url = format!("{base}/scim/v2/Users?startIndex={}&count=500", users.len() + 1);
        let (status, page) = parts(client.get(url).bearer_auth(token).send().await.expect("list")).await;
        assert_eq!(status, 200, "{page}");
        let resources = page["Resources"].as_array().cloned().unwrap_or_default();
        let total = page["totalResults"].as_u64().expect("totalResults") as usize;
        users.extend(resources);
        if users.len() >= total {
            return users;
        }
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .expect("count query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count")
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_and_seats_stay_consistent() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("crashy", "team", SEATS).await;
    let (status, group) = tenant
        .post("/Groups", json!({"schemas": [GROUP], "displayName": "everyone"}))
        .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().expect("group id").to_string();
    let env = [("SEATBRIDGE_OPERATOR_TOKEN", OPERATOR), ("SEATBRIDGE_SCIM_RATE", "0")];
    let mut server = app.second_process_with(&env).await;

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|me| {
            let writer = Writer {
                client: Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client"),
                base: server.base.clone(),
                token: tenant.token.clone(),
                group: group_id.clone(),
            };
            tokio::spawn(writer.run(me, stop.clone(), acks.clone()))
        })
        .collect();

    // Kill in the middle of the load: after enough acknowledged writes, at a random moment.
    let started = Instant::now();
    while (acks.load(Ordering::SeqCst) < ACKS_BEFORE_KILL || started.elapsed() < LOAD_BEFORE_KILL)
        && started.elapsed() < Duration::from_secs(8)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..200))).await;
    server.kill();
    stop.store(true, Ordering::SeqCst);
    let mut journals = Vec::new();
    for w in writers {
        journals.push(w.await.expect("writer"));
    }
    let acked = acks.load(Ordering::SeqCst);
    assert!(
        acked >= 20,
        "the load barely ran before the kill ({acked} acknowledged writes)"
    );

    let restarted = app.second_process_with(&env).await;
    let client = client();
    let ready = client
        .get(format!("{}/readyz", restarted.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "the restarted server is ready");

    let users = all_users(&client, &restarted.base, &tenant.token).await;
    let by_id: HashMap<&str, &Value> = users.iter().map(|u| (u["id"].as_str().expect("id"), u)).collect();
    let (status, group) = parts(
        client
            .get(format!("{}/scim/v2/Groups/{group_id}", restarted.base))
            .bearer_auth(&tenant.token)
            .send()
            .await
            .expect("group"),
    )
    .await;
    assert_eq!(status, 200, "{group}");
    let members: HashSet<&str> = group["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default();

    // Every acknowledged write is there, as acknowledged.
    let mut may_exist: HashSet<&str> = HashSet::new();
    let mut in_doubt = 0;
    for j in &journals {
        in_doubt += j.creates_in_doubt.len() + j.users.iter().filter(|u| u.active_in_doubt.is_some()).count();
        for u in &j.users {
            may_exist.insert(&u.user_name);
            let found = by_id
                .get(u.id.as_str())
                .unwrap_or_else(|| panic!("acknowledged create of {} ({}) is lost", u.user_name, u.id));
            assert_eq!(found["userName"], u.user_name.as_str(), "{found}");
            let active = found["active"].as_bool().expect("active");
            assert!(
                active == u.active || Some(active) == u.active_in_doubt,
                "{}: active is {active}, acknowledged {} (in doubt: {:?})",
                u.user_name,
                u.active,
                u.active_in_doubt
            );
            if u.in_group {
                assert!(
                    members.contains(u.id.as_str()),
                    "acknowledged group add of {} is lost",
                    u.user_name
                );
            }
        }
        may_exist.extend(j.creates_in_doubt.iter().map(String::as_str));
    }
    // …and nothing else: refused creates left nothing, and no user came from nowhere.
    let refused: HashSet<&str> = journals
        .iter()
        .flat_map(|j| j.refused_creates.iter().map(String::as_str))
        .collect();
    for u in &users {
        let name = u["userName"].as_str().expect("userName");
        assert!(!refused.contains(name), "a refused create left {name} behind");
        assert!(may_exist.contains(name), "{name} exists but was never written");
    }

    // Seats: only active users hold one, never more than the license has, and the seat counts
    // the API reports are the users table's.
    let entitled = users.iter().filter(|u| u[SEATBRIDGE]["entitled"] == true).count();
    for u in &users {
        if u[SEATBRIDGE]["entitled"] == true {
            assert_eq!(u["active"], true, "an inactive user holds a seat: {u}");
        }
    }
    assert!(
        entitled as i64 <= SEATS,
        "{entitled} users hold seats; the license has {SEATS}"
    );
    let seats: Value = client
        .get(format!("{}/api/v1/tenants/crashy/seats", restarted.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("seats")
        .json()
        .await
        .expect("seats json");
    let pools = seats["pools"].as_array().expect("pools");
    let in_use: i64 = pools.iter().map(|p| p["in_use"].as_i64().expect("in_use")).sum();
    assert_eq!(in_use, entitled as i64, "{seats}");
    for p in pools {
        if let Some(limit) = p["limit"].as_i64() {
            assert!(p["in_use"].as_i64().expect("in_use") <= limit, "{seats}");
        }
    }
    let tid = &tenant.tenant_id;
    let rows = count(
        &app,
        &format!("SELECT COUNT(*) FROM users WHERE tenant_id = '{tid}' AND entitled"),
    )
    .await;
    assert_eq!(rows, entitled as i64, "the users table and SCIM agree on seats");
    // The seat counters (which the seats endpoint above read) match a full recount.
    let drift = seatbridge::store::user_counts::drift(&app.db).await.expect("drift");
    assert!(drift.is_empty(), "seat counters differ after the kill: {drift:?}");

    // The audit chain is intact, and every user's creation is in it (same transaction).
    let chain: Value = client
        .get(format!("{}/api/v1/tenants/crashy/audit/verify", restarted.base))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("verify json");
    assert_eq!(chain["ok"], true, "{chain}");
    let creates = count(
        &app,
        &format!("SELECT COUNT(*) FROM audit_log WHERE tenant_id = '{tid}' AND action = 'scim.user.create'"),
    )
    .await;
    assert_eq!(creates, users.len() as i64, "one audit entry per created user");

    // The restarted server takes writes.
    let (status, body) = parts(
        client
            .post(format!("{}/scim/v2/Users", restarted.base))
            .bearer_auth(&tenant.token)
            .header("content-type", SCIM)
            .body(json!({"schemas": [USER], "userName": "after-restart@crash.example", "active": false}).to_string())
            .send()
            .await
            .expect("create after restart"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    eprintln!(
        "crash safety: {acked} acknowledged writes, {in_doubt} in doubt at the kill, {} users, {entitled} seated",
        users.len()
    );
}
