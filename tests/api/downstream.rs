//! The downstream SCIM connector against a real third-party SCIM server: `scim2-server` (PyPI),
//! run by tests/support/scim2-server.sh, which installs it in tests/support/.venv on first use
//! (python3 with venv and access to PyPI needed; without them these tests fail, saying so).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use seatbridge::license::Policy;
use seatbridge::licensing::{self, LicenseUpdate};
use seatbridge::store::events::{add_endpoint, list_deliveries};

use crate::helpers::*;

const DOWNSTREAM_TOKEN: &str = "downstream-secret";

/// A scim2-server process on a free loopback port, killed on drop.
struct ScimServer {
    base: String,
    child: Child,
    client: reqwest::Client,
    log: tempfile::NamedTempFile,
}

impl ScimServer {
    async fn start() -> ScimServer {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/scim2-server.sh");
        let child = Command::new("bash")
            .arg(script)
            .args(["--port", &port.to_string(), "--bearer-token", DOWNSTREAM_TOKEN])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("bash runs tests/support/scim2-server.sh");
        let mut server = ScimServer {
            base: format!("http://127.0.0.1:{port}/v2"),
            child,
            client: client(),
            log,
        };
        server.wait_until_up().await;
        server
    }

    /// Waits for the server to answer; the first run also installs it (a few seconds).
    async fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if let Ok(r) = self
                .request(reqwest::Method::GET, "/ServiceProviderConfig")
                .send()
                .await
            {
                assert!(r.status().is_success(), "scim2-server answered {}", r.status());
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "scim2-server could not be installed or started ({status}); it needs python3 with venv \
                     and PyPI (see tests/support/scim2-server.sh). Its output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "scim2-server did not answer on {} in time. Its output:\n{}",
            self.base,
            self.output()
        );
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(DOWNSTREAM_TOKEN)
    }

    /// The resources of `endpoint` (`Users` or `Groups`) downstream.
    async fn list(&self, endpoint: &str) -> Vec<Value> {
        let body: Value = self
            .request(reqwest::Method::GET, &format!("/{endpoint}?count=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["Resources"].as_array().cloned().unwrap_or_default()
    }

    /// The downstream copy of a seatbridge user or group (matched by externalId).
    async fn copy_of(&self, endpoint: &str, seatbridge_id: &str) -> Option<Value> {
        self.list(endpoint)
            .await
            .into_iter()
            .find(|r| r["externalId"] == seatbridge_id)
    }

    /// Creates a resource directly downstream, as the product itself would have.
    async fn create(&self, endpoint: &str, body: Value) -> Value {
        let resp = self
            .request(reqwest::Method::POST, &format!("/{endpoint}"))
            .header("content-type", SCIM)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// Waits (10 s at most) until the copy of `seatbridge_id` satisfies `pred` (`None`: no
    /// copy), and returns it; on timeout shows the copy and the tenant's deliveries.
    async fn wait_for(
        &self,
        app: &TestApp,
        endpoint: &str,
        seatbridge_id: &str,
        what: &str,
        pred: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let copy = self.copy_of(endpoint, seatbridge_id).await;
            if pred(copy.as_ref()) {
                return copy;
            }
            if Instant::now() > deadline {
                let deliveries = list_deliveries(&app.db, None, None, None, 50).await.unwrap();
                panic!("downstream: {what} did not happen; copy: {copy:?}; deliveries: {deliveries:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.relay.base_backoff = Duration::from_millis(50);
        c.relay.poll = Duration::from_millis(50);
        c.relay.max_attempts = 3;
    })
    .await
}

/// A tenant on the team plan (users and groups) whose events go to `scim`.
async fn mirrored_tenant<'a>(app: &'a TestApp, scim: &ScimServer, slug: &str, seats: i64) -> TenantClient<'a> {
    let t = app.tenant(slug, "team", seats).await;
    add_endpoint(&app.db, &t.tenant_id, "scim", &scim.base, DOWNSTREAM_TOKEN, "*")
        .await
        .unwrap();
    t
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap().to_string()
}

fn active(copy: Option<&Value>, want: bool) -> bool {
    copy.is_some_and(|c| c["active"] == json!(want))
}

#[tokio::test]
async fn users_with_access_and_groups_are_mirrored_to_a_real_scim_server() {
    let scim = ScimServer::start().await;
    let app = app().await;
    let t = mirrored_tenant(&app, &scim, "mirrored", 2).await;

    let (status, bob) = t.create_user("bob", false).await;
    assert_eq!(status, 201, "{bob}");
    let (status, ann) = t
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "ann", "active": true, "displayName": "Ann Example",
                   "name": {"givenName": "Ann", "familyName": "Example"}, "title": "Engineer",
                   "emails": [{"value": "ann@example.com", "type": "work", "primary": true}]}),
        )
        .await;
    assert_eq!(status, 201, "{ann}");
    let (ann, bob) = (id(&ann), id(&bob));

    let copy = scim
        .wait_for(&app, "Users", &ann, "ann created", |c| active(c, true))
        .await
        .unwrap();
    assert_eq!(copy["userName"], "ann");
    assert_eq!(copy["displayName"], "Ann Example");
    assert_eq!(copy["name"]["familyName"], "Example");
    assert_eq!(copy["emails"][0]["value"], "ann@example.com");
    assert_eq!(copy["title"], "Engineer");
    // Bob's event came first (one endpoint's events go out in order): a user without access is
    // never created downstream.
    assert!(scim.copy_of("Users", &bob).await.is_none());
    assert_eq!(scim.list("Users").await.len(), 1);

    // Okta deactivates, then reactivates.
    let set_active = |on: bool| TestApp::patch_body(json!([{"op": "replace", "value": {"active": on}}]));
    t.patch(&format!("/Users/{ann}"), set_active(false)).await;
    scim.wait_for(&app, "Users", &ann, "ann deactivated", |c| active(c, false))
        .await;
    t.patch(&format!("/Users/{ann}"), set_active(true)).await;
    scim.wait_for(&app, "Users", &ann, "ann reactivated", |c| active(c, true))
        .await;

    // Profile changes follow, removals too.
    let (status, body) = t
        .patch(
            &format!("/Users/{ann}"),
            TestApp::patch_body(json!([{"op": "replace", "path": "displayName", "value": "Ann Z"},
                                       {"op": "remove", "path": "title"}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let copy = scim
        .wait_for(&app, "Users", &ann, "ann renamed", |c| {
            c.is_some_and(|c| c["displayName"] == "Ann Z")
        })
        .await
        .unwrap();
    assert!(copy.get("title").is_none(), "{copy}");
    assert_eq!(copy["active"], json!(true));

    // Groups: created, renamed, deleted.
    let group = app_group(&t, "Engineers").await;
    scim.wait_for(&app, "Groups", &group, "group created", |c| {
        c.is_some_and(|c| c["displayName"] == "Engineers")
    })
    .await;
    let (status, body) = t
        .patch(
            &format!("/Groups/{group}"),
            TestApp::patch_body(json!([{"op": "replace", "path": "displayName", "value": "Builders"}])),
        )
        .await;
    assert!(status == 200 || status == 204, "{body}");
    scim.wait_for(&app, "Groups", &group, "group renamed", |c| {
        c.is_some_and(|c| c["displayName"] == "Builders")
    })
    .await;
    assert_eq!(t.delete(&format!("/Groups/{group}")).await, 204);
    scim.wait_for(&app, "Groups", &group, "group deleted", |c| c.is_none())
        .await;

    // Deleting the user deletes its copy.
    assert_eq!(t.delete(&format!("/Users/{ann}")).await, 204);
    scim.wait_for(&app, "Users", &ann, "ann deleted", |c| c.is_none()).await;
    assert!(scim.list("Users").await.is_empty());

    let failed: Vec<_> = list_deliveries(&app.db, Some(&t.tenant_id), None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.last_error.is_some() || d.status == "dead")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

/// The member values of a downstream group copy, sorted.
fn members(copy: Option<&Value>) -> Vec<String> {
    let mut values: Vec<String> = copy
        .and_then(|c| c["members"].as_array())
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    values.sort();
    values
}

#[tokio::test]
async fn group_memberships_of_users_with_access_are_mirrored() {
    let scim = ScimServer::start().await;
    let app = app().await;
    let t = mirrored_tenant(&app, &scim, "members", 2).await;

    let ann = id(&t.create_user("ann", true).await.1);
    let bob = id(&t.create_user("bob", true).await.1);
    // Carl has no access: no copy downstream, so no membership either.
    let carl = id(&t.create_user("carl", false).await.1);
    let copy_id = |c: Option<Value>| c.and_then(|c| c["id"].as_str().map(str::to_string)).unwrap();
    let ann_copy = copy_id(
        scim.wait_for(&app, "Users", &ann, "ann created", |c| active(c, true))
            .await,
    );
    let bob_copy = copy_id(
        scim.wait_for(&app, "Users", &bob, "bob created", |c| active(c, true))
            .await,
    );

    let (status, body) = t
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Engineers",
                   "members": [{"value": ann, "type": "User"}, {"value": carl, "type": "User"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let group = id(&body);
    scim.wait_for(&app, "Groups", &group, "group created with ann", |c| {
        members(c) == vec![ann_copy.clone()]
    })
    .await;

    let mut both = vec![ann_copy.clone(), bob_copy.clone()];
    both.sort();
    let (status, body) = t
        .patch(
            &format!("/Groups/{group}"),
            TestApp::patch_body(json!([{"op": "add", "path": "members", "value": [{"value": bob}]}])),
        )
        .await;
    assert!(status == 200 || status == 204, "{body}");
    scim.wait_for(&app, "Groups", &group, "bob added", |c| members(c) == both)
        .await;

    let (status, body) = t
        .patch(
            &format!("/Groups/{group}"),
            TestApp::patch_body(json!([{"op": "remove", "path": format!("members[value eq \"{ann}\"]")}])),
        )
        .await;
    assert!(status == 200 || status == 204, "{body}");
    scim.wait_for(&app, "Groups", &group, "ann removed", |c| {
        members(c) == vec![bob_copy.clone()]
    })
    .await;

    let failed: Vec<_> = list_deliveries(&app.db, Some(&t.tenant_id), None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.last_error.is_some() || d.status == "dead")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

async fn app_group(t: &TenantClient<'_>, name: &str) -> String {
    let (status, body) = t
        .post("/Groups", json!({"schemas": [GROUP], "displayName": name}))
        .await;
    assert_eq!(status, 201, "{body}");
    id(&body)
}

#[tokio::test]
async fn existing_accounts_are_adopted_and_license_cuts_deactivate_downstream() {
    let scim = ScimServer::start().await;
    // The product already has accounts: one unclaimed, one claimed by something else.
    let carol_before = scim
        .create(
            "Users",
            json!({"schemas": [USER], "userName": "carol", "nickName": "kept"}),
        )
        .await;
    scim.create(
        "Users",
        json!({"schemas": [USER], "userName": "dave", "externalId": "someone-else"}),
    )
    .await;
    let app = app().await;
    let t = mirrored_tenant(&app, &scim, "licensed", 2).await;

    let carol = id(&t.create_user("carol", true).await.1);
    let copy = scim
        .wait_for(&app, "Users", &carol, "carol adopted", |c| active(c, true))
        .await
        .unwrap();
    assert_eq!(
        copy["id"], carol_before["id"],
        "the existing account is adopted, not duplicated"
    );
    assert_eq!(
        copy["nickName"], "kept",
        "attributes seatbridge does not manage are left alone"
    );

    // An account claimed by another externalId is not taken over: the delivery fails visibly.
    t.create_user("dave", true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let dead = list_deliveries(&app.db, Some(&t.tenant_id), Some("dead"), None, 10)
            .await
            .unwrap();
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let error = dead[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("taken downstream") && error.contains("someone-else"),
        "{error}"
    );

    // The billing system cuts the seats to zero: carol loses access, and so her account.
    let update = LicenseUpdate {
        seats: Some(0),
        policy: Some(Policy::DeactivateNewest),
        ..Default::default()
    };
    let report = licensing::update_license(&app.db, "licensed", &update, "test", false)
        .await
        .unwrap();
    assert_eq!(report.deentitled.len(), 2, "{report:?}");
    scim.wait_for(&app, "Users", &carol, "carol deactivated", |c| active(c, false))
        .await;
    assert_eq!(scim.list("Users").await.len(), 2, "no account was created or deleted");
}
