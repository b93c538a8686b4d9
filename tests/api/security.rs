//! The security review, as tests: tenant isolation on every route, tokens at rest, secrets in
//! logs, browser-facing headers and CORS, and request size limits.
//!
//! What other files already cover is not repeated here: a tenant admin naming another tenant's
//! slug (`admin.rs`), GET/PATCH/DELETE of a foreign user (`users.rs`), a foreign group member on
//! PATCH (`groups.rs`), 401s (`errors.rs`) and a 413 with a declared length (`errors.rs`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use seatbridge::store::entities::{audit_entry, scim_token};
use seatbridge::store::tenants;

use crate::helpers::*;

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

async fn scim_as(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    parts(app.request_as(token, method, path, body).await).await
}

/// A GET of `path` (under `/scim/v2`) with `filter` properly encoded.
async fn filtered(app: &TestApp, token: &str, path: &str, filter: &str) -> (u16, Value) {
    let resp = app
        .client
        .get(app.url(path))
        .query(&[("filter", filter)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    parts(resp).await
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

async fn audit_count(app: &TestApp, slug: &str) -> usize {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let tenant = tenants::find_by_slug(&app.db, slug).await.unwrap().unwrap();
    audit_entry::Entity::find()
        .filter(audit_entry::Column::TenantId.eq(tenant.id))
        .all(&app.db)
        .await
        .unwrap()
        .len()
}

/// The SCIM routes of `src/scim/http.rs`, each with another tenant's token:
///
/// | route | covered by |
/// |---|---|
/// | `GET/PUT/PATCH/DELETE /Users/{id}`, `/Groups/{id}` | 404, exactly like an unknown id |
/// | `GET /Users`, `GET /Groups` (list, `filter`) | counts and ids only of the caller's tenant |
/// | `POST /Users/.search`, `/Groups/.search`, `/.search` | the same filters, as POST bodies |
/// | `POST /Users`, `POST /Groups` | a foreign member is refused; a user name taken elsewhere is free |
/// | `POST /Bulk` | every operation on a foreign id fails |
/// | `/ServiceProviderConfig`, `/ResourceTypes[/{id}]`, `/Schemas[/{id}]`, `/Me` | hold no tenant data |
#[tokio::test]
async fn every_scim_route_hides_another_tenants_resources() {
    let app = TestApp::spawn().await;
    let (status, alice) = app
        .post(
            "/Users",
            json!({"schemas":[USER],"userName":"alice@acme.test","externalId":"ext-alice","active":true,
                   "emails":[{"value":"alice@acme.test","type":"work","primary":true}]}),
        )
        .await;
    assert_eq!(status, 201, "{alice}");
    let a_user = alice["id"].as_str().unwrap().to_string();
    let a_group = app.create_group("Acme Engineering", &[&a_user]).await;
    let a_audit = audit_count(&app, "acme").await;

    // Tenant B has resources of its own, so "nothing found" cannot come from an empty tenant.
    let b = app.other_tenant("globex").await;
    let (status, bob) = scim_as(
        &app,
        &b,
        Method::POST,
        "/Users",
        Some(json!({"schemas":[USER],"userName":"bob@globex.test","active":true})),
    )
    .await;
    assert_eq!(status, 201, "{bob}");
    let b_user = bob["id"].as_str().unwrap().to_string();
    let (status, bgroup) = scim_as(
        &app,
        &b,
        Method::POST,
        "/Groups",
        Some(json!({"schemas":[GROUP],"displayName":"Globex","members":[{"value": b_user}]})),
    )
    .await;
    assert_eq!(status, 201, "{bgroup}");
    let b_group = bgroup["id"].as_str().unwrap().to_string();

    // Reads and writes of A's ids: 404, the same answer an unknown id gets.
    let unknown = [
        scim_as(&app, &b, Method::GET, "/Users/no-such-id", None).await.1,
        scim_as(&app, &b, Method::GET, "/Groups/no-such-id", None).await.1,
    ];
    let user_put = json!({"schemas":[USER],"userName":"alice@acme.test","active":false});
    let group_put = json!({"schemas":[GROUP],"displayName":"Taken over","members":[]});
    let user_patch = TestApp::patch_body(json!([{"op":"replace","path":"active","value":false}]));
    let group_patch = TestApp::patch_body(json!([{"op":"remove","path":"members"}]));
    for (path, put, patch) in [
        (format!("/Users/{a_user}"), &user_put, &user_patch),
        (format!("/Groups/{a_group}"), &group_put, &group_patch),
    ] {
        for (method, body) in [
            (Method::GET, None),
            (Method::PUT, Some(put.clone())),
            (Method::PATCH, Some(patch.clone())),
            (Method::DELETE, None),
        ] {
            let (status, err) = scim_as(&app, &b, method.clone(), &path, body).await;
            assert_scim_error(status, &err, 404, None);
            assert!(
                !err.to_string().contains("alice") && !err.to_string().contains("Acme"),
                "{method} {path}: {err}"
            );
            assert_eq!(
                err["detail"]
                    .as_str()
                    .map(|d| d.replace(&a_user, "ID").replace(&a_group, "ID")),
                unknown[path.starts_with("/Groups") as usize]["detail"]
                    .as_str()
                    .map(|d| d.replace("no-such-id", "ID")),
                "{method} {path}: a foreign id reads like an unknown one"
            );
        }
    }

    // Filters, as GET and as POST /.search, on every indexed and JSON-read attribute.
    let user_filters = [
        r#"userName eq "alice@acme.test""#.to_string(),
        format!(r#"id eq "{a_user}""#),
        r#"externalId eq "ext-alice""#.into(),
        r#"emails[value eq "alice@acme.test"]"#.into(),
        r#"emails.value co "acme""#.into(),
        r#"emails[type eq "work" and primary eq true]"#.into(),
        r#"userName sw "alice""#.into(),
        format!(r#"groups.value eq "{a_group}""#),
    ];
    let group_filters = [
        r#"displayName eq "Acme Engineering""#.to_string(),
        format!(r#"id eq "{a_group}""#),
        format!(r#"members[value eq "{a_user}"]"#),
        format!(r#"members.value eq "{a_user}""#),
    ];
    for (endpoint, filters) in [("/Users", &user_filters[..]), ("/Groups", &group_filters[..])] {
        for f in filters {
            let (status, list) = filtered(&app, &b, endpoint, f).await;
            assert_eq!(status, 200, "{endpoint}?filter={f}: {list}");
            assert_eq!(list["totalResults"], 0, "{endpoint}?filter={f}: {list}");
            for search in [format!("{endpoint}/.search"), "/.search".to_string()] {
                let (status, list) = scim_as(
                    &app,
                    &b,
                    Method::POST,
                    &search,
                    Some(json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter": f})),
                )
                .await;
                assert_eq!(status, 200, "{search} {f}: {list}");
                assert_eq!(list["totalResults"], 0, "{search} {f}: {list}");
            }
        }
    }
    // Unfiltered lists count only B's own resources.
    let (_, users) = scim_as(&app, &b, Method::GET, "/Users?count=1000", None).await;
    assert_eq!(
        (users["totalResults"].clone(), ids(&users)),
        (json!(1), vec![b_user.clone()])
    );
    let (_, groups) = scim_as(&app, &b, Method::GET, "/Groups", None).await;
    assert_eq!(
        (groups["totalResults"].clone(), ids(&groups)),
        (json!(1), vec![b_group.clone()])
    );
    let (_, all) = scim_as(
        &app,
        &b,
        Method::POST,
        "/.search",
        Some(json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"count":1000})),
    )
    .await;
    assert_eq!(all["totalResults"], 2, "{all}");
    let (_, members) = scim_as(&app, &b, Method::GET, &format!("/Groups/{b_group}"), None).await;
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1), "{members}");

    // A's user cannot be pulled into B's groups, by POST, PUT or Bulk.
    let foreign_member = json!([{"value": a_user}]);
    let (status, err) = scim_as(
        &app,
        &b,
        Method::POST,
        "/Groups",
        Some(json!({"schemas":[GROUP],"displayName":"Stolen","members": foreign_member})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));
    let (status, err) = scim_as(
        &app,
        &b,
        Method::PUT,
        &format!("/Groups/{b_group}"),
        Some(json!({"schemas":[GROUP],"displayName":"Globex","members": foreign_member})),
    )
    .await;
    assert_scim_error(status, &err, 400, Some("invalidValue"));

    let bulk = json!({"schemas":[BULK],"Operations":[
        {"method":"PUT","path":format!("/Users/{a_user}"),"data":user_put},
        {"method":"PATCH","path":format!("/Users/{a_user}"),"data":user_patch},
        {"method":"DELETE","path":format!("/Users/{a_user}")},
        {"method":"PUT","path":format!("/Groups/{a_group}"),"data":group_put},
        {"method":"PATCH","path":format!("/Groups/{a_group}"),"data":group_patch},
        {"method":"DELETE","path":format!("/Groups/{a_group}")},
        {"method":"POST","path":"/Groups","bulkId":"g","data":{"schemas":[GROUP],"displayName":"Bulk stolen","members":foreign_member}},
        {"method":"PATCH","path":format!("/Groups/{b_group}"),"data":TestApp::patch_body(json!([{"op":"add","path":"members","value":foreign_member}]))}
    ]});
    let (status, resp) = scim_as(&app, &b, Method::POST, "/Bulk", Some(bulk)).await;
    assert_eq!(status, 200, "{resp}");
    let statuses: Vec<&str> = resp["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        statuses,
        ["404", "404", "404", "404", "404", "404", "400", "400"],
        "{resp}"
    );

    // Discovery holds no tenant data; /Me is not implemented for anyone.
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ] {
        let (status, body) = scim_as(&app, &b, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(!text.contains(&a_user) && !text.contains("alice"), "{path}: {text}");
    }
    assert_eq!(scim_as(&app, &b, Method::GET, "/Me", None).await.0, 501);

    // A user name taken in A is free in B (uniqueness errors reveal nothing across tenants),
    // and B's filter then finds B's user only.
    let (status, twin) = scim_as(
        &app,
        &b,
        Method::POST,
        "/Users",
        Some(json!({"schemas":[USER],"userName":"ALICE@acme.test","externalId":"ext-alice"})),
    )
    .await;
    assert_eq!(status, 201, "{twin}");
    let (_, found) = filtered(&app, &b, "/Users", r#"userName eq "alice@acme.test""#).await;
    assert_eq!(ids(&found), vec![twin["id"].as_str().unwrap().to_string()]);

    // A is untouched, and B's probes left nothing in A's audit chain.
    let (_, user) = app.get(&format!("/Users/{a_user}")).await;
    assert_eq!(
        (user["active"].clone(), user["meta"]["version"].clone()),
        (json!(true), json!("W/\"1\""))
    );
    let (_, group) = app.get(&format!("/Groups/{a_group}")).await;
    assert_eq!(group["displayName"], "Acme Engineering");
    assert_eq!(group["members"][0]["value"], a_user.as_str());
    let (_, mine) = app.get("/Users").await;
    assert_eq!(mine["totalResults"], 1);
    assert_eq!(
        audit_count(&app, "acme").await,
        a_audit,
        "B's refusals are not A's business"
    );
}

/// The product API takes one deployment-wide service token, so isolation there means: a tenant's
/// SCIM token opens nothing outside SCIM, and a check names the tenant it answers for, never
/// resolving a user of another tenant, by name or by id.
#[tokio::test]
async fn product_api_and_credentials_never_cross_tenants_or_planes() {
    let app = TestApp::spawn_with(|c| {
        c.service_token = Some("svc-token-for-products".into());
        c.operator_token = Some("operator-token-for-automation".into());
    })
    .await;
    let a_user = app.create_user("alice@acme.test").await;
    app.create_user("shared@example.test").await;
    let globex = app.tenant("globex", "team", 5).await;
    let (_, shared_b) = globex.create_user("shared@example.test", false).await;
    let shared_b = shared_b["id"].as_str().unwrap().to_string();

    let api = |path: &str, token: &str| {
        let req = app.client.get(format!("{}{path}", app.base)).bearer_auth(token);
        async move { parts(req.send().await.unwrap()).await }
    };
    // SCIM tokens are not product, admin or metrics credentials.
    for token in [app.token.as_str(), globex.token.as_str()] {
        for path in [
            "/api/v1/entitlements/check?tenant=acme&user=alice@acme.test",
            "/api/v1/entitlements/token?tenant=acme&user=alice@acme.test",
            "/api/v1/licenses/token?tenant=acme",
            "/api/v1/me",
            "/api/v1/tenants",
            "/api/v1/tenants/acme",
            "/api/v1/tenants/globex/tokens",
            "/api/v1/events/deliveries",
        ] {
            let (status, body) = api(path, token).await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(!body.to_string().contains("alice"), "{path}: {body}");
        }
    }
    // Product and operator tokens are not SCIM tokens.
    for token in ["svc-token-for-products", "operator-token-for-automation"] {
        let (status, body) = scim_as(&app, token, Method::GET, "/Users", None).await;
        assert_scim_error(status, &body, 401, None);
    }

    // Asked about tenant B, a check never resolves A's user, by name or by id.
    for key in ["alice@acme.test", a_user.as_str()] {
        let (status, check) = api(
            &format!("/api/v1/entitlements/check?tenant=globex&user={key}"),
            "svc-token-for-products",
        )
        .await;
        assert_eq!(status, 200, "{check}");
        assert_eq!(
            (check["allowed"].clone(), check["reason"].clone()),
            (json!(false), json!("unknown_user"))
        );
        assert!(!check.to_string().contains(&a_user), "{check}");
        let (status, _) = api(
            &format!("/api/v1/entitlements/token?tenant=globex&user={key}"),
            "svc-token-for-products",
        )
        .await;
        assert_eq!(status, 404);
    }
    // The same user name in both tenants: each answer is about its own tenant's user.
    let (_, in_a) = api(
        "/api/v1/entitlements/check?tenant=acme&user=shared@example.test",
        "svc-token-for-products",
    )
    .await;
    let (_, in_b) = api(
        "/api/v1/entitlements/check?tenant=globex&user=shared@example.test",
        "svc-token-for-products",
    )
    .await;
    assert_eq!(in_a["allowed"], true, "{in_a}");
    assert_eq!(
        (in_b["allowed"].clone(), in_b["reason"].clone()),
        (json!(false), json!("inactive"))
    );
    assert_eq!(in_b["user"], shared_b.as_str(), "{in_b}");
}

/// Admin API, tenant admin of B with an OIDC access token, naming B's own slug but A's ids:
/// the ids are looked up inside the named tenant (admin.rs covers naming A's slug).
#[tokio::test]
async fn a_tenant_admin_cannot_reach_another_tenants_ids_through_their_own_tenant() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let a = AdminApp::spawn().await;
    let app = &a.app;
    let a_user = app.create_user("alice@acme.test").await;
    let acme = tenants::find_by_slug(&app.db, "acme").await.unwrap().unwrap();
    let a_token_id = scim_token::Entity::find()
        .filter(scim_token::Column::TenantId.eq(acme.id))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .id;
    app.tenant("globex", "team", 5).await;
    let now = chrono::Utc::now().timestamp();
    let jwt =
        a.op.sign(
            json!({"iss": a.op.issuer, "aud": "seatbridge-api", "sub": "globex-admin", "iat": now, "exp": now + 300,
                   "roles": ["seatbridge-tenant-admin:globex"]}),
            "current",
        )
        .await;
    let call = |method: Method, path: &str| {
        let req = app.client.request(method, a.api(path)).bearer_auth(&jwt);
        async move { parts(req.send().await.unwrap()).await }
    };
    assert_eq!(call(Method::GET, "/tenants/globex").await.0, 200);
    for (method, path) in [
        (Method::POST, format!("/tenants/globex/users/{a_user}/deprovision")),
        (Method::POST, format!("/tenants/globex/users/{a_user}/reactivate")),
        (Method::DELETE, format!("/tenants/globex/tokens/{a_token_id}")),
    ] {
        let (status, body) = call(method.clone(), &path).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    for path in [
        "/tenants/globex/users?q=alice",
        "/tenants/globex/users?status=all",
        "/tenants/globex/tokens",
        "/tenants/globex/audit",
    ] {
        let (status, body) = call(Method::GET, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains(&a_user) && !text.contains(&a_token_id) && !text.contains("alice"),
            "{path}: {text}"
        );
    }
    // A's token still works and A's user still holds its seat.
    let (_, user) = app.get(&format!("/Users/{a_user}")).await;
    assert_eq!(user[SEATBRIDGE]["entitled"], true, "{user}");
}

/// Tokens at rest: only the SHA-256 is stored, for tokens issued by every path (admin API,
/// CLI), and the stored hash is not itself a credential.
///
/// Comparison: `auth.rs` hashes the presented token with SHA-256 and looks the hash up (an
/// index, or the in-memory token cache keyed by the hash), then compares the stored hash with
/// `subtle::ConstantTimeEq`. Any timing difference of the lookup depends on the hash, not on
/// the secret: an attacker cannot steer SHA-256 outputs, so learning "how many leading hash
/// bytes matched" tells nothing about the token. Both properties hold.
#[tokio::test]
async fn tokens_are_stored_only_as_sha256_hashes() {
    use sea_orm::{ConnectionTrait, EntityTrait};
    let app = TestApp::spawn_with(|c| c.operator_token = Some("operator-token-for-automation".into())).await;
    let resp = app
        .client
        .post(format!("{}/api/v1/tenants/acme/tokens", app.base))
        .bearer_auth("operator-token-for-automation")
        .json(&json!({"name": "okta"}))
        .send()
        .await
        .unwrap();
    let (status, issued) = parts(resp).await;
    assert_eq!(status, 201, "{issued}");
    let api_token = issued["token"].as_str().unwrap().to_string();
    let (ok, out, err) = crate::cli::seatbridge(
        &app.config.database_url,
        &["token", "create", "--tenant", "acme", "--name", "cli"],
    );
    assert!(ok, "{err}");
    let cli_token = out
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| w.starts_with("sbt_"))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_string();
    let tokens = [app.token.clone(), api_token, cli_token];
    for t in &tokens {
        assert_eq!(scim_as(&app, t, Method::GET, "/Users", None).await.0, 200);
    }

    let rows = scim_token::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(rows.len(), 3);
    for t in &tokens {
        let secret_part = t.trim_start_matches("sbt_");
        let hash = seatbridge::auth::hash_token(t);
        assert_eq!(
            rows.iter().filter(|r| r.token_hash == hash).count(),
            1,
            "stored as SHA-256"
        );
        for r in &rows {
            let fields = format!("{r:?}");
            assert!(
                !fields.contains(secret_part),
                "plaintext token in scim_tokens: {fields}"
            );
        }
    }
    // Not in any table either (audit entries, outbox, …).
    let haystack = if app.config.database_url.starts_with("sqlite:") {
        let path = app
            .config
            .database_url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
            .to_string();
        let mut bytes = Vec::new();
        for file in [path.clone(), format!("{path}-wal")] {
            bytes.extend(std::fs::read(&file).unwrap_or_default());
        }
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        let mut text = String::new();
        let tables = app
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            ))
            .await
            .unwrap();
        for t in tables {
            let name: String = t.try_get_by_index(0).unwrap();
            let rows = app
                .db
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!("SELECT CAST(t AS text) FROM \"{name}\" t"),
                ))
                .await
                .unwrap();
            for r in rows {
                text.push_str(&r.try_get_by_index::<String>(0).unwrap());
                text.push('\n');
            }
        }
        text
    };
    assert!(haystack.len() > 1000, "the database was read");
    for t in &tokens {
        assert!(
            !haystack.contains(t.trim_start_matches("sbt_")),
            "a plaintext token is stored in the database"
        );
    }

    // What the database holds does not authenticate, and nor does a near miss.
    let stored = &rows[0].token_hash;
    let mut near = tokens[0].clone();
    let last = if near.ends_with('0') { "1" } else { "0" };
    near.replace_range(near.len() - 1.., last);
    for wrong in [stored.clone(), format!("sbt_{stored}"), near] {
        let (status, body) = scim_as(&app, &wrong, Method::GET, "/Users", None).await;
        assert_scim_error(status, &body, 401, None);
    }
}

/// A real `seatbridge serve` process at `RUST_LOG=trace` with JSON logs, driven through every
/// path that handles a secret; its captured stdout and stderr must hold none of them.
#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let op = OpenIdProvider::start(&base);
    let receiver = Receiver::start(0).await;

    let random = |prefix: &str| {
        format!(
            "{prefix}{}",
            seatbridge::auth::generate_token().trim_start_matches("sbt_")
        )
    };
    let operator_token = random("op-");
    let service_token = random("svc-");
    let metrics_token = random("metrics-");
    let session_key = random("session-");
    let billing_secret = seatbridge::events::signature::new_standard_secret();
    let stripe_secret = random("whsec_stripe");
    let downstream_token = random("downstream-");
    let signing_key = seatbridge::license::token::KeyRing::generate(chrono::Utc::now())
        .active()
        .secret_b64url();
    let client_secret = "seatbridge-test-secret"; // registered at the test provider

    let stdout = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_seatbridge"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &app.config.database_url)
        .env("SEATBRIDGE_KEY_DIR", dir.path().join("keys"))
        .env("RUST_LOG", "trace")
        .env("SEATBRIDGE_LOG_FORMAT", "json")
        .env("SEATBRIDGE_OPERATOR_TOKEN", &operator_token)
        .env("SEATBRIDGE_SERVICE_TOKEN", &service_token)
        .env("SEATBRIDGE_METRICS_TOKEN", &metrics_token)
        .env("SEATBRIDGE_SESSION_KEY", &session_key)
        .env("SEATBRIDGE_BILLING_WEBHOOK_SECRETS", &billing_secret)
        .env("SEATBRIDGE_STRIPE_WEBHOOK_SECRETS", &stripe_secret)
        .env("SEATBRIDGE_LICENSE_SIGNING_KEY", &signing_key)
        .env("SEATBRIDGE_OIDC_ISSUER", &op.issuer)
        .env("SEATBRIDGE_OIDC_CLIENT_ID", "seatbridge")
        .env("SEATBRIDGE_OIDC_CLIENT_SECRET", client_secret)
        .env("SEATBRIDGE_OIDC_AUDIENCE", "seatbridge-api")
        .env("SEATBRIDGE_OIDC_SCOPES", "openid,profile,email,roles")
        .env("SEATBRIDGE_SCIM_RATE", "0")
        .env("SEATBRIDGE_ADMIN_RATE", "0")
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut guard = Kill(child);
    let http = client();
    let mut up = false;
    for _ in 0..1200 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "seatbridge did not come up");
    let mut secrets: Vec<(&str, String)> = vec![
        ("operator token", operator_token.clone()),
        ("service token", service_token.clone()),
        ("metrics token", metrics_token.clone()),
        ("session key", session_key.clone()),
        ("billing webhook secret", billing_secret.clone()),
        (
            "billing webhook secret (key part)",
            billing_secret.trim_start_matches("whsec_").to_string(),
        ),
        ("Stripe webhook secret", stripe_secret.clone()),
        ("downstream SCIM token", downstream_token.clone()),
        ("license signing key", signing_key.clone()),
        ("OIDC client secret", client_secret.to_string()),
    ];

    // Operator automation: tokens and webhook endpoints (secrets shown once, in the answer).
    let op_call = |method: Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(&operator_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { parts(req.send().await.unwrap()).await }
    };
    let (status, issued) = op_call(Method::POST, "/tenants/acme/tokens", Some(json!({"name": "okta"}))).await;
    assert_eq!(status, 201, "{issued}");
    let scim_token = issued["token"].as_str().unwrap().to_string();
    secrets.push(("SCIM token (operator API)", scim_token.clone()));
    let (status, endpoint) = op_call(
        Method::POST,
        "/tenants/acme/endpoints",
        Some(json!({"url": receiver.url})),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let endpoint_secret = endpoint["secret"].as_str().unwrap().to_string();
    secrets.push(("outbound webhook secret", endpoint_secret.clone()));
    secrets.push((
        "outbound webhook secret (key part)",
        endpoint_secret.trim_start_matches("whsec_").to_string(),
    ));
    let (status, body) = op_call(
        Method::POST,
        "/tenants/acme/endpoints",
        Some(json!({"url": receiver.url.replace("/hook", "/scim"), "kind": "scim", "token": downstream_token})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // SCIM with the token, and failed authentications.
    let scim = |token: &str, method: Method, path: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}/scim/v2{path}")).bearer_auth(token);
        if let Some(b) = body {
            req = req.header("content-type", SCIM).body(b.to_string());
        }
        async move { parts(req.send().await.unwrap()).await }
    };
    let (status, user) = scim(
        &scim_token,
        Method::POST,
        "/Users",
        Some(
            json!({"schemas":[USER],"userName":"logged@acme.test","active":true,"password":"user-password-0123456789"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    secrets.push(("SCIM user password", "user-password-0123456789".into()));
    let id = user["id"].as_str().unwrap();
    let (status, _) = scim(
        &scim_token,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(TestApp::patch_body(
            json!([{"op":"replace","path":"title","value":"x"}]),
        )),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(scim(&scim_token, Method::GET, "/Users", None).await.0, 200);
    let wrong = seatbridge::auth::generate_token();
    assert_eq!(scim(&wrong, Method::GET, "/Users", None).await.0, 401);
    secrets.push(("wrong SCIM token", wrong));
    let garbage = random("Garbage-credential-");
    let resp = http
        .get(format!("{base}/scim/v2/Users"))
        .header("authorization", format!("Basic {garbage}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    secrets.push(("malformed Authorization value", garbage));

    // Billing webhooks, signed and forged.
    let now = chrono::Utc::now().timestamp();
    let body = json!({"tenant":"acme","seats":900,"version":7}).to_string();
    let signature = seatbridge::events::signature::sign_standard("evt_1", now, body.as_bytes(), &billing_secret);
    let forged_secret = seatbridge::events::signature::new_standard_secret();
    let forged = seatbridge::events::signature::sign_standard("evt_2", now, body.as_bytes(), &forged_secret);
    for (id, sig, want) in [("evt_1", &signature, 200), ("evt_2", &forged, 401)] {
        let resp = http
            .post(format!("{base}/webhooks/billing/generic"))
            .header("webhook-id", id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", sig.as_str())
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want, "{:?}", resp.text().await);
    }
    secrets.push(("webhook signature", signature.trim_start_matches("v1,").to_string()));
    let stripe_body = json!({"id":"evt_s1","type":"customer.created","created":now,"data":{"object":{}}}).to_string();
    let stripe_sig = seatbridge::events::signature::sign_stripe(stripe_body.as_bytes(), &stripe_secret, now);
    let resp = http
        .post(format!("{base}/webhooks/billing/stripe"))
        .header("stripe-signature", &stripe_sig)
        .header("content-type", "application/json")
        .body(stripe_body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);

    // Product and metrics endpoints.
    let resp = http
        .get(format!(
            "{base}/api/v1/entitlements/check?tenant=acme&user=logged@acme.test"
        ))
        .bearer_auth(&service_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for (token, want) in [(metrics_token.as_str(), 200), ("not-the-metrics-token-at-all", 401)] {
        let resp = http
            .get(format!("{base}/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want);
    }

    // The admin side: a browser login through the provider, the session cookie and CSRF token,
    // and OIDC access tokens as bearers (a good one and a forged one).
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = client_builder().cookie_provider(jar.clone()).build().unwrap();
    let page = browser
        .get(format!("{base}/admin/login?return_to=/admin/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the provider shows its login form");
    let cookies_of = |jar: &reqwest::cookie::Jar| {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = base.parse().unwrap();
        jar.cookies(&url)
            .and_then(|h| h.to_str().ok().map(str::to_string))
            .unwrap_or_default()
            .split("; ")
            .filter_map(|kv| kv.split_once('=').map(|(_, v)| v.to_string()))
            .filter(|v| v.len() >= 16)
            .collect::<Vec<_>>()
    };
    for v in cookies_of(&jar) {
        secrets.push(("cookie (login)", v));
    }
    let html = page.text().await.unwrap();
    let action = html
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let landed = browser
        .post(&action)
        .form(&[
            ("prompt", "login"),
            ("login", "operator@example.test"),
            ("password", "any"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.url().path().starts_with("/admin/"), "{}", landed.url());
    for v in cookies_of(&jar) {
        secrets.push(("cookie (session)", v));
    }
    let me: Value = browser
        .get(format!("{base}/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = me["csrf_token"].as_str().unwrap().to_string();
    let resp = browser
        .post(format!("{base}/api/v1/tenants/acme/tokens"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "from the console"}))
        .send()
        .await
        .unwrap();
    let (status, issued) = parts(resp).await;
    assert_eq!(status, 201, "{issued}");
    secrets.push(("CSRF token", csrf));
    secrets.push(("SCIM token (console)", issued["token"].as_str().unwrap().to_string()));
    let claims = json!({"iss": op.issuer, "aud": "seatbridge-api", "sub": "automation", "iat": now, "exp": now + 300,
                        "roles": ["seatbridge-operator"]});
    let jwt = op.sign(claims.clone(), "current").await;
    let forged_jwt = op.sign(claims, "foreign").await;
    for (token, want) in [(&jwt, 200), (&forged_jwt, 401)] {
        let resp = http
            .get(format!("{base}/api/v1/tenants"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want);
    }
    // A JWT's header and claims are not secret; its signature is what makes it a credential.
    secrets.push(("access token signature", jwt.rsplit('.').next().unwrap().to_string()));
    secrets.push((
        "forged access token signature",
        forged_jwt.rsplit('.').next().unwrap().to_string(),
    ));

    // Let the relay deliver (with the downstream token and the endpoint secret) before reading.
    receiver.wait_for(30, |got| !got.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = guard.0.kill();
    let _ = guard.0.wait();

    let logs = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
        + &std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    assert!(
        logs.lines().count() > 50,
        "the process logged at trace level: {}",
        logs.lines().count()
    );
    // JSON lines with the request id and the tenant, as the operations docs promise.
    assert!(
        logs.lines().any(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["fields"]["message"] == "handled"
                    && v["span"]["tenant"] == "acme"
                    && v["span"]["request_id"].as_str().is_some_and(|r| !r.is_empty())
            })
        }),
        "request log lines carry request_id and tenant"
    );
    for (what, secret) in &secrets {
        assert!(secret.len() >= 12, "{what} is long enough to search for");
        if let Some(line) = logs.lines().find(|l| l.contains(secret.as_str())) {
            panic!("the {what} appears in the logs: {line}");
        }
    }
}

/// The admin UI's headers beyond what admin.rs asserts (CSP script-src/frame-ancestors and
/// nosniff on `/admin/`), and CORS: off everywhere, so no browser on another origin may read
/// an answer.
#[tokio::test]
async fn admin_pages_carry_security_headers_and_cors_is_off() {
    let app = TestApp::spawn_with(|c| {
        c.service_token = Some("svc-token-for-products".into());
        c.operator_token = Some("operator-token-for-automation".into());
    })
    .await;
    for path in [
        "/admin/",
        "/admin/assets/app.js",
        "/admin/assets/app.css",
        "/admin/anything",
    ] {
        let resp = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin", "{path}");
        assert!(h.contains_key("permissions-policy"), "{path}");
        assert!(h.contains_key("cache-control"), "{path}");
    }
    // The login error page (no provider configured here) is an admin page too.
    let resp = app
        .client
        .get(format!("{}/admin/login", app.base))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error() || resp.status().is_server_error());
    let h = resp.headers();
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["cache-control"], "no-store");

    let origin = "https://evil.example";
    let cors_headers = |h: &reqwest::header::HeaderMap| -> Vec<String> {
        h.keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    };
    let targets = [
        ("/scim/v2/Users", app.token.as_str()),
        ("/scim/v2/ServiceProviderConfig", app.token.as_str()),
        (
            "/api/v1/entitlements/check?tenant=acme&user=x",
            "svc-token-for-products",
        ),
        ("/api/v1/tenants", "operator-token-for-automation"),
        ("/api/v1/me", "operator-token-for-automation"),
        ("/admin/", ""),
        ("/admin/login", ""),
    ];
    for (path, token) in targets {
        let url = format!("{}{path}", app.base);
        for method in ["GET", "POST", "PUT", "DELETE"] {
            let resp = app
                .client
                .request(Method::OPTIONS, &url)
                .header("origin", origin)
                .header("access-control-request-method", method)
                .header("access-control-request-headers", "authorization, content-type")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            assert!(
                cors_headers(resp.headers()).is_empty(),
                "preflight {method} {path} → {status} {:?}",
                resp.headers()
            );
            assert_ne!(status.as_u16(), 500, "preflight {method} {path}");
        }
        let mut req = app.client.get(&url).header("origin", origin);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        // `/admin/login` answers 503 here: no OpenID Provider is configured.
        let expected = if path == "/admin/login" { 503 } else { 200 };
        assert_eq!(resp.status().as_u16(), expected, "GET {path}");
        assert!(
            cors_headers(resp.headers()).is_empty(),
            "GET {path}: {:?}",
            resp.headers()
        );
    }
}

/// Sends raw bytes and answers the status and the whole answer text; `None` when the server
/// closed the connection without an answer. For requests a well-behaved client will not send:
/// chunked bodies, oversized heads.
async fn raw_http(base: &str, request: Vec<u8>) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The server may answer and close before reading everything; the answer is what counts.
    let _ = stream.write_all(&request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    Some((status, text))
}

fn body_of(raw: &str) -> Value {
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::String(body.to_string()))
}

/// Oversize bodies get 413 in the shape of their API (SCIM error or problem document), whether
/// the size is declared or only seen while streaming; oversize heads are refused with 431 and
/// the server carries on. Nothing is written.
#[tokio::test]
async fn oversize_requests_are_refused_cleanly() {
    let app = TestApp::spawn_with(|c| {
        c.scim.max_body_bytes = 4096;
        c.scim.bulk_max_payload_bytes = 8192;
        c.operator_token = Some("operator-token-for-automation".into());
        c.billing_webhook_secrets = vec![seatbridge::events::signature::new_standard_secret()];
    })
    .await;
    let id = app.create_user("sized@acme.test").await;
    let gid = app.create_group("sized", &[]).await;
    let big = "y".repeat(10_000);
    let huge = "z".repeat(2 * 1024 * 1024);

    // Declared sizes, on every SCIM route with a body.
    let user = json!({"schemas":[USER],"userName":"big@acme.test","displayName": big});
    let cases = [
        (Method::POST, "/Users".to_string(), user.clone()),
        (Method::PUT, format!("/Users/{id}"), user.clone()),
        (
            Method::PATCH,
            format!("/Users/{id}"),
            TestApp::patch_body(json!([{"op":"replace","path":"displayName","value": big}])),
        ),
        (
            Method::POST,
            "/Groups".to_string(),
            json!({"schemas":[GROUP],"displayName": big}),
        ),
        (
            Method::PATCH,
            format!("/Groups/{gid}"),
            TestApp::patch_body(json!([{"op":"replace","path":"displayName","value": big}])),
        ),
        (
            Method::POST,
            "/Users/.search".to_string(),
            json!({"filter": format!("userName eq \"{big}\"")}),
        ),
        (
            Method::POST,
            "/.search".to_string(),
            json!({"filter": format!("userName eq \"{big}\"")}),
        ),
        (
            Method::POST,
            "/Bulk".to_string(),
            json!({"schemas":[BULK],"Operations":[{"method":"POST","path":"/Users","data":{"schemas":[USER],"userName":"b","displayName": huge}}]}),
        ),
    ];
    for (method, path, body) in cases {
        let (status, err) = parts(app.request(method.clone(), &path, Some(body)).await).await;
        assert_scim_error(status, &err, 413, None);
        assert!(
            err.to_string().len() < 1000,
            "{method} {path}: the error does not echo the body"
        );
    }

    // A chunked body (no Content-Length) is counted as it streams.
    let chunk = format!("{{\"schemas\":[\"{USER}\"],\"userName\":\"chunked\",\"displayName\":\"{big}\"}}");
    let mut request = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: {SCIM}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.token
    )
    .into_bytes();
    for piece in chunk.as_bytes().chunks(1000) {
        request.extend(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend(piece);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    let (status, raw) = raw_http(&app.base, request).await.expect("an answer");
    assert_scim_error(status, &body_of(&raw), 413, None);

    let (_, list) = app.get("/Users").await;
    assert_eq!(list["totalResults"], 1, "nothing was written");
    let (_, group) = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(group["displayName"], "sized");

    // The JSON API answers problem documents, and the billing webhooks refuse before verifying.
    let huge_json = json!({"slug": "huge", "plan": "team", "seats": 1, "name": huge}).to_string();
    for (path, token) in [
        ("/api/v1/tenants", "operator-token-for-automation"),
        ("/api/v1/plans/huge", "operator-token-for-automation"),
        ("/webhooks/billing/generic", ""),
        ("/webhooks/billing/stripe", ""),
    ] {
        let method = if path.contains("/plans/") {
            Method::PUT
        } else {
            Method::POST
        };
        let mut req = app
            .client
            .request(method, format!("{}{path}", app.base))
            .header("content-type", "application/json")
            .body(huge_json.clone());
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (status, problem) = parts(resp).await;
        assert_eq!(status, 413, "{path}: {problem}");
        assert_eq!(ct, "application/problem+json", "{path}");
        assert_eq!(problem["status"], 413, "{path}: {problem}");
    }
    let (status, tenant) = parts(
        app.client
            .get(format!("{}/api/v1/tenants/huge", app.base))
            .bearer_auth("operator-token-for-automation")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{tenant}");

    // Heads: a long but acceptable token is just a wrong token. Above actix-http's limits (a
    // 128 KiB head, 96 header fields) the answer is 431 and the connection closes; a reset that
    // overtakes the answer is clean too. Either way the server carries on.
    let long_token = format!("sbt_{}", "a".repeat(8000));
    let (status, err) = scim_as(&app, &long_token, Method::GET, "/Users", None).await;
    assert_scim_error(status, &err, 401, None);
    let head = |line: &str, extra: &str| {
        format!(
            "{line}\r\nHost: x\r\nAuthorization: Bearer {}\r\n{extra}Connection: close\r\n\r\n",
            app.token
        )
    };
    let cases = [
        (
            "a 160 KiB header",
            head(
                "GET /scim/v2/Users HTTP/1.1",
                &format!("X-Filler: {}\r\n", "h".repeat(160 * 1024)),
            ),
        ),
        (
            "100 header fields",
            head(
                "GET /scim/v2/Users HTTP/1.1",
                &(0..100).map(|i| format!("X-H{i}: v\r\n")).collect::<String>(),
            ),
        ),
        (
            "a 160 KiB URL",
            head(
                &format!("GET /scim/v2/Users?filter={} HTTP/1.1", "a".repeat(160 * 1024)),
                "",
            ),
        ),
    ];
    for (what, request) in cases {
        if let Some((status, raw)) = raw_http(&app.base, request.into_bytes()).await {
            assert_eq!(status, 431, "{what}: {}", raw.lines().next().unwrap_or_default());
        }
        assert_eq!(app.get("/Users").await.0, 200, "after {what}");
    }
    assert_eq!(app.get("/Users").await.0, 200, "the server carries on");
}
