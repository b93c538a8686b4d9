//! The admin side against a real OpenID Provider (`oidc-provider`): login with PKCE, state and
//! nonce; sessions, CSRF and logout; JWT bearers; roles and tenant isolation; the admin API.

use reqwest::{Client, Method};
use serde_json::{json, Value};

use crate::helpers::{client, client_builder, AdminApp, SCIM, USER};

async fn call(client: &Client, method: Method, url: &str, csrf: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = client.request(method, url);
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn an_operator_logs_in_and_sees_live_seat_usage() {
    let a = AdminApp::spawn().await;
    let t = a.app.tenant("globex", "team", 5).await;
    for name in ["ada", "bob", "cy"] {
        assert_eq!(t.create_user(&format!("{name}@globex.test"), true).await.0, 201);
    }
    let (browser, _) = a.login("operator@example.test").await;

    let (status, me) = call(&browser, Method::GET, &a.api("/me"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["operator"], true);
    assert_eq!(me["email"], "operator@example.test");

    let (_, list) = call(&browser, Method::GET, &a.api("/tenants"), None, None).await;
    let slugs: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["acme", "globex"]);

    let (status, o) = call(&browser, Method::GET, &a.api("/tenants/globex"), None, None).await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["pools"][0]["seat_type"], "default");
    assert_eq!(o["pools"][0]["in_use"], 3);
    assert_eq!(o["pools"][0]["limit"], 5);
    assert_eq!(o["users"]["total"], 3);
    assert_eq!(o["license"]["status"], "active");

    let (_, h) = call(
        &browser,
        Method::GET,
        &a.api("/tenants/globex/seats/history?days=7"),
        None,
        None,
    )
    .await;
    let today = h["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["in_use"], 3, "the chart ends at the live numbers: {h}");

    let (_, page1) = call(
        &browser,
        Method::GET,
        &a.api("/tenants/globex/users?limit=2"),
        None,
        None,
    )
    .await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = call(
        &browser,
        Method::GET,
        &a.api(&format!("/tenants/globex/users?limit=2&cursor={cursor}")),
        None,
        None,
    )
    .await;
    assert_eq!(page2["items"][0]["userName"], "cy@globex.test");
    assert!(page2["next_cursor"].is_null());
    let (_, found) = call(&browser, Method::GET, &a.api("/tenants/globex/users?q=BO"), None, None).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);

    // The UI and its security headers.
    let ui = browser.get(format!("{}/admin/", a.app.base)).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    let csp = ui.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(ui.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn a_tenant_admin_never_reaches_another_tenant() {
    let a = AdminApp::spawn().await;
    let globex = a.app.tenant("globex", "team", 5).await;
    let (uid_status, user) = globex.create_user("secret@globex.test", true).await;
    assert_eq!(uid_status, 201);
    let globex_user = user["id"].as_str().unwrap().to_string();
    let (browser, csrf) = a.login("admin-acme@example.test").await;

    let (_, me) = call(&browser, Method::GET, &a.api("/me"), None, None).await;
    assert_eq!(me["operator"], false);
    assert_eq!(me["tenants"], json!(["acme"]));
    let (_, list) = call(&browser, Method::GET, &a.api("/tenants"), None, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        call(&browser, Method::GET, &a.api("/tenants/acme"), None, None).await.0,
        200
    );

    let (_, unknown) = call(&browser, Method::GET, &a.api("/tenants/nope"), None, None).await;
    let reads = [
        "",
        "/license",
        "/seats",
        "/seats/history",
        "/users",
        "/tokens",
        "/audit",
        "/audit/verify",
        "/audit/export",
        "/seat-mappings",
        "/endpoints",
    ];
    for path in reads {
        let (status, body) = call(
            &browser,
            Method::GET,
            &a.api(&format!("/tenants/globex{path}")),
            None,
            None,
        )
        .await;
        assert_eq!(status, 404, "GET /tenants/globex{path} → {status} {body}");
        assert_eq!(body["title"], unknown["title"]);
        assert!(!body.to_string().contains("secret@globex"), "nothing leaks");
    }
    let writes = [
        (Method::POST, "/tokens".to_string(), Some(json!({"name": "x"}))),
        (Method::DELETE, "/tokens/some-id".to_string(), None),
        (Method::POST, format!("/users/{globex_user}/deprovision"), None),
        (Method::POST, format!("/users/{globex_user}/reactivate"), None),
        (Method::PUT, "/license".to_string(), Some(json!({"seats": 1}))),
        (
            Method::PUT,
            "/seat-mappings/admins".to_string(),
            Some(json!({"seat_type": "default"})),
        ),
    ];
    for (method, path, body) in writes {
        let (status, _) = call(
            &browser,
            method.clone(),
            &a.api(&format!("/tenants/globex{path}")),
            Some(&csrf),
            body,
        )
        .await;
        assert_eq!(status, 404, "{method} /tenants/globex{path}");
    }
    // Their own tenant, but operator work.
    let (status, body) = call(
        &browser,
        Method::PUT,
        &a.api("/tenants/acme/license"),
        Some(&csrf),
        Some(json!({"seats": 1})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = call(
        &browser,
        Method::POST,
        &a.api("/tenants"),
        Some(&csrf),
        Some(json!({"slug": "x", "plan": "team", "seats": 1})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&browser, Method::GET, &a.api("/events/dead-letters"), None, None).await;
    assert_eq!(status, 403);
    assert_eq!(globex.entitled().await, 1, "nothing changed in the other tenant");
}

#[tokio::test]
async fn tokens_are_shown_once_need_csrf_and_revoke_at_once() {
    let a = AdminApp::spawn().await;
    let (browser, csrf) = a.login("admin-acme@example.test").await;
    let url = a.api("/tenants/acme/tokens");

    let (status, body) = call(&browser, Method::POST, &url, None, Some(json!({"name": "okta"}))).await;
    assert_eq!(status, 403, "a cookie alone cannot change state: {body}");
    let (status, _) = call(
        &browser,
        Method::POST,
        &url,
        Some("wrong"),
        Some(json!({"name": "okta"})),
    )
    .await;
    assert_eq!(status, 403);

    let (status, created) = call(&browser, Method::POST, &url, Some(&csrf), Some(json!({"name": "okta"}))).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sbt_"));
    let id = created["id"].as_str().unwrap().to_string();

    let scim = |token: String| {
        let c = client();
        let u = a.app.url("/Users");
        async move {
            c.get(u)
                .bearer_auth(token)
                .header("user-agent", "Okta SCIM Client 1.0.0")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(scim(secret.clone()).await, 200);
    let (_, list) = call(&browser, Method::GET, &url, None, None).await;
    assert!(!list.to_string().contains(&secret), "the secret is never listed");
    let row = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(row["last_used_at"].is_string());
    assert_eq!(row["last_idp"], "okta");

    let (status, _) = call(&browser, Method::DELETE, &format!("{url}/{id}"), Some(&csrf), None).await;
    assert_eq!(status, 204);
    assert_eq!(scim(secret).await, 401, "revoked at once");
    let (_, audit) = call(
        &browser,
        Method::GET,
        &a.api("/tenants/acme/audit?action=token.revoke"),
        None,
        None,
    )
    .await;
    assert_eq!(audit["items"][0]["actor"], "admin:admin-acme@example.test");
    let (_, verified) = call(&browser, Method::GET, &a.api("/tenants/acme/audit/verify"), None, None).await;
    assert_eq!(verified["ok"], true);
}

#[tokio::test]
async fn access_tokens_are_checked_against_the_providers_keys() {
    let a = AdminApp::spawn().await;
    let good = |roles: Value| {
        json!({"iss": a.op.issuer, "aud": "seatbridge-api", "sub": "svc-1", "email": "svc@example.test",
               "iat": now(), "exp": now() + 300, "roles": roles})
    };
    let get = |token: String| {
        let c = client();
        let u = a.api("/tenants");
        async move { c.get(u).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        get(a.op.sign(good(json!(["seatbridge-operator"])), "current").await).await,
        200
    );

    let mut expired = good(json!(["seatbridge-operator"]));
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = good(json!(["seatbridge-operator"]));
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = good(json!(["seatbridge-operator"]));
    wrong_iss["iss"] = json!("http://evil.example");
    for (what, token) in [
        ("expired", a.op.sign(expired, "current").await),
        ("wrong audience", a.op.sign(wrong_aud, "current").await),
        ("wrong issuer", a.op.sign(wrong_iss, "current").await),
        (
            "forged",
            a.op.sign(good(json!(["seatbridge-operator"])), "foreign").await,
        ),
        ("garbage", "not.a.jwt".to_string()),
    ] {
        assert_eq!(get(token).await, 401, "{what}");
    }
    // A token without roles authenticates but sees nothing.
    let c = client();
    let (status, body) = call(&c, Method::GET, &a.api("/tenants"), None, None).await;
    assert_eq!(status, 401, "{body}");
    let none = a.op.sign(good(json!([])), "current").await;
    let list: Value = c
        .get(a.api("/tenants"))
        .bearer_auth(none)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));

    // Key rotation: a token signed with a key seatbridge has not seen makes it re-read the JWKS.
    a.op.control("/test/rotate", json!({})).await;
    assert_eq!(
        get(a.op.sign(good(json!(["seatbridge-operator"])), "current").await).await,
        200
    );
}

#[tokio::test]
async fn tampered_id_tokens_are_refused_at_the_callback() {
    let a = AdminApp::spawn().await;
    for mode in ["expired", "wrong_aud", "no_nonce", "bad_nonce", "forged", "wrong_iss"] {
        let (browser, action) = a.start_login().await;
        a.op.control("/test/tamper-next-id-token", json!({"mode": mode})).await;
        let landed = a.submit_login(&browser, &action, "operator@example.test").await;
        assert_eq!(landed.status(), 401, "{mode}: {}", landed.url());
        assert_eq!(landed.url().path(), "/admin/callback");
        let html = landed.text().await.unwrap();
        assert!(html.contains("ID token was refused"), "{mode}: {html}");
        let (status, _) = call(&browser, Method::GET, &a.api("/me"), None, None).await;
        assert_eq!(status, 401, "{mode}: no session was created");
    }
}

#[tokio::test]
async fn forged_callbacks_and_tampered_cookies_are_refused() {
    let a = AdminApp::spawn().await;
    // A callback with a state the login did not start.
    let (browser, _) = a.start_login().await;
    let resp = browser
        .get(format!("{}/admin/callback?code=abc&state=forged", a.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A callback with no login in progress at all.
    let resp = client()
        .get(format!("{}/admin/callback?code=abc&state=x", a.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // A session cookie with one character changed is no session at all.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = client_builder().cookie_provider(jar.clone()).build().unwrap();
    let (browser, action) = a.start_login_in(browser).await;
    assert_eq!(
        a.submit_login(&browser, &action, "operator@example.test")
            .await
            .status(),
        200
    );
    let base: reqwest::Url = a.app.base.parse().unwrap();
    use reqwest::cookie::CookieStore;
    let cookies = jar.cookies(&base).unwrap().to_str().unwrap().to_string();
    let session = cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("sb_admin="))
        .expect("session cookie")
        .to_string();
    let with_cookie = |value: String| {
        let c = client();
        let u = a.api("/me");
        async move {
            c.get(u)
                .header("cookie", format!("sb_admin={value}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(with_cookie(session.clone()).await, 200);
    let mut tampered = session.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(with_cookie(tampered).await, 401);
    assert_eq!(with_cookie(session[..session.len() / 2].to_string()).await, 401);
}

#[tokio::test]
async fn logout_ends_the_session_here_and_at_the_provider() {
    let a = AdminApp::spawn().await;
    let (browser, csrf) = a.login("operator@example.test").await;
    let stale = browser
        .post(format!("{}/admin/logout", a.app.base))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 403);
    assert_eq!(call(&browser, Method::GET, &a.api("/me"), None, None).await.0, 200);

    let out = browser
        .post(format!("{}/admin/logout", a.app.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(
        out.url().path(),
        "/admin/",
        "back from the provider's end-session endpoint"
    );
    assert_eq!(call(&browser, Method::GET, &a.api("/me"), None, None).await.0, 401);
    // The provider's session ended too: the next login shows its form again.
    let (_, action) = a.start_login().await;
    assert!(action.contains("/interaction/"));
}

#[tokio::test]
async fn refused_requests_explain_themselves_and_admins_can_hold_seats() {
    let a = AdminApp::spawn().await;
    let t = a.app.tenant("globex", "team", 1).await;
    let create = |name: &str| {
        let body = json!({"schemas": [USER], "userName": name, "active": true});
        a.app
            .client
            .post(a.app.url("/Users"))
            .bearer_auth(&t.token)
            .header("content-type", SCIM)
            .header("user-agent", "Okta SCIM Client 1.0.0")
            .body(body.to_string())
            .send()
    };
    let first: Value = create("ada@globex.test").await.unwrap().json().await.unwrap();
    assert_eq!(create("bob@globex.test").await.unwrap().status(), 403);

    let (browser, csrf) = a.login("operator@example.test").await;
    let (_, audit) = call(
        &browser,
        Method::GET,
        &a.api("/tenants/globex/audit?refused=true"),
        None,
        None,
    )
    .await;
    let refusal = &audit["items"][0];
    assert_eq!(refusal["after"]["code"], "SEAT_LIMIT_REACHED");
    assert_eq!(refusal["request"]["idp"], "okta");
    assert_eq!(refusal["request"]["method"], "POST");
    assert_eq!(refusal["request"]["path"], "/scim/v2/Users");
    assert_eq!(refusal["request"]["op"], "create (active=true)");
    let (_, o) = call(&browser, Method::GET, &a.api("/tenants/globex"), None, None).await;
    assert_eq!(o["idp"]["kind"], "okta");
    assert!(o["idp"]["last_seen_at"].is_string());

    // A hold frees the seat (the next create gets it) and outlasts IdP writes.
    let ada = first["id"].as_str().unwrap();
    let (status, held) = call(
        &browser,
        Method::POST,
        &a.api(&format!("/tenants/globex/users/{ada}/deprovision")),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["entitled"], false);
    assert_eq!(held["entitlement_reason"], "manual");
    assert_eq!(held["active"], true, "the IdP's active is untouched");
    assert_eq!(create("bob@globex.test").await.unwrap().status(), 201);
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "Operations": [{"op": "replace", "value": {"active": true, "displayName": "Ada"}}]});
    let (_, after) = t.patch(&format!("/Users/{ada}"), patch).await;
    assert_eq!(
        after[crate::helpers::SEATBRIDGE]["entitlementReason"],
        "manual",
        "{after}"
    );
    let (status, body) = call(
        &browser,
        Method::POST,
        &a.api(&format!("/tenants/globex/users/{ada}/reactivate")),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, 409, "no free seat: {body}");
    assert!(body["detail"].as_str().unwrap().contains("seat"), "{body}");
}

#[tokio::test]
async fn database_grants_add_roles_and_take_effect_at_once() {
    let a = AdminApp::spawn().await;
    a.app.tenant("globex", "team", 5).await;
    let db = a.app.config.database_url.clone();
    let (browser, _) = a.login("nobody@example.test").await;
    let overview = a.api("/tenants/globex");
    assert_eq!(call(&browser, Method::GET, &overview, None, None).await.0, 404);

    let (ok, _, err) = crate::cli::seatbridge(&db, &["admin", "grant", "Nobody@Example.test", "--tenant", "globex"]);
    assert!(ok, "{err}");
    assert_eq!(call(&browser, Method::GET, &overview, None, None).await.0, 200);
    let (ok, out, _) = crate::cli::seatbridge(&db, &["admin", "list"]);
    assert!(ok && out.contains("\"tenant\":\"globex\""), "{out}");

    let (ok, _, err) = crate::cli::seatbridge(&db, &["admin", "revoke", "nobody@example.test", "--tenant", "globex"]);
    assert!(ok, "{err}");
    assert_eq!(call(&browser, Method::GET, &overview, None, None).await.0, 404);
    let (ok, _, err) = crate::cli::seatbridge(&db, &["admin", "revoke", "nobody@example.test", "--operator"]);
    assert!(!ok && err.contains("no such grant"), "{err}");

    // E-mail grants need an address the provider has not marked unverified.
    let (ok, _, err) = crate::cli::seatbridge(&db, &["admin", "grant", "mallory@example.test", "--operator"]);
    assert!(ok, "{err}");
    let token = |verified: bool| {
        a.op.sign(
            json!({"iss": a.op.issuer, "aud": "seatbridge-api", "sub": "mallory-sub", "exp": now() + 300,
                   "email": "mallory@example.test", "email_verified": verified}),
            "current",
        )
    };
    let tenants_seen = |token: String| {
        let c = client();
        let u = a.api("/tenants");
        async move {
            let v: Value = c.get(u).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            v["items"].as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(tenants_seen(token(false).await).await, 0);
    assert_eq!(tenants_seen(token(true).await).await, 2);

    // The API describes itself.
    let doc: Value = client()
        .get(a.api("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/v1/tenants/{slug}/audit"]["get"].is_object());
}
