//! User CRUD, uniqueness, ETags, projection, pagination, tenant isolation.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn user_name_is_unique_per_tenant_ignoring_case() {
    let app = TestApp::spawn().await;
    app.create_user("Alice@Example.com").await;
    let (status, body) = app
        .post("/Users", json!({"schemas":[USER],"userName":"alice@example.com"}))
        .await;
    assert_scim_error(status, &body, 409, Some("uniqueness"));
    // The same userName in another tenant is fine.
    let other = app.other_tenant("globex").await;
    let resp = app
        .request_as(
            &other,
            Method::POST,
            "/Users",
            Some(json!({"schemas":[USER],"userName":"alice@example.com"})),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 201);
}

#[tokio::test]
async fn other_tenants_resources_are_invisible() {
    let app = TestApp::spawn().await;
    let id = app.create_user("secret@acme.com").await;
    let other = app.other_tenant("globex").await;
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = parts(app.request_as(&other, method, &format!("/Users/{id}"), None).await).await;
        assert_scim_error(status, &body, 404, None);
    }
    let (status, body) = parts(
        app.request_as(
            &other,
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(TestApp::patch_body(
                json!([{"op":"replace","path":"active","value":false}]),
            )),
        )
        .await,
    )
    .await;
    assert_scim_error(status, &body, 404, None);
    let (_, list) = parts(
        app.request_as(&other, Method::GET, "/Users?filter=userName%20pr", None)
            .await,
    )
    .await;
    assert_eq!(list["totalResults"], json!(0));
    let (_, mine) = app.get(&format!("/Users/{id}")).await;
    assert_eq!(mine["active"], json!(true), "nothing changed");
}

#[tokio::test]
async fn etags_guard_writes_and_reads() {
    let app = TestApp::spawn().await;
    let id = app.create_user("etag@example.com").await;
    let resp = app.request(Method::GET, &format!("/Users/{id}"), None).await;
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, "W/\"1\"");
    let (_, body) = parts(resp).await;
    assert_eq!(body["meta"]["version"], etag);

    let resp = app
        .client
        .get(app.url(&format!("/Users/{id}")))
        .bearer_auth(&app.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 304);

    let patch = TestApp::patch_body(json!([{"op":"replace","path":"displayName","value":"E"}]));
    let stale = app
        .client
        .patch(app.url(&format!("/Users/{id}")))
        .bearer_auth(&app.token)
        .header("content-type", SCIM)
        .header("if-match", "W/\"7\"")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    let (status, body) = parts(stale).await;
    assert_scim_error(status, &body, 412, None);

    let fresh = app
        .client
        .patch(app.url(&format!("/Users/{id}")))
        .bearer_auth(&app.token)
        .header("content-type", SCIM)
        .header("if-match", &etag)
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.headers()["etag"], "W/\"2\"");

    // A PATCH that changes nothing keeps the version.
    let (_, same) = app.patch(&format!("/Users/{id}"), patch).await;
    assert_eq!(same["meta"]["version"], "W/\"2\"");
}

#[tokio::test]
async fn attributes_and_excluded_attributes_apply_to_reads() {
    let app = TestApp::spawn().await;
    let (_, user) = app
        .post("/Users", json!({"schemas":[USER],"userName":"p@example.com","displayName":"P","title":"CTO","name":{"givenName":"P","familyName":"Q"}}))
        .await;
    let id = user["id"].as_str().unwrap();
    let (_, got) = app
        .get(&format!("/Users/{id}?attributes=displayName,name.familyName"))
        .await;
    assert_eq!(got["displayName"], "P");
    assert_eq!(got["userName"], "p@example.com", "returned:always survives");
    assert_eq!(got["name"], json!({"familyName":"Q"}));
    assert!(got.get("title").is_none() && got.get("meta").is_none());
    let (_, got) = app
        .get(&format!(
            "/Users?excludedAttributes=title,meta&filter=id%20eq%20%22{id}%22"
        ))
        .await;
    let r = &got["Resources"][0];
    assert!(r.get("title").is_none() && r.get("meta").is_none());
    assert_eq!(r["displayName"], "P");
}

#[tokio::test]
async fn pages_are_stable_and_sortable() {
    let app = TestApp::spawn().await;
    for name in ["carol", "alice", "erin", "bob", "dave"] {
        app.create_user(name).await;
    }
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let (_, page) = app.get(&format!("/Users?startIndex={start}&count=2")).await;
        assert_eq!(page["totalResults"], json!(5));
        assert_eq!(page["startIndex"], json!(start));
        for r in page["Resources"].as_array().unwrap() {
            seen.push(r["userName"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        seen,
        vec!["carol", "alice", "erin", "bob", "dave"],
        "creation order by default"
    );
    let (_, sorted) = app.get("/Users?sortBy=userName&sortOrder=descending&count=3").await;
    let names: Vec<&str> = sorted["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["erin", "dave", "carol"]);
    assert_eq!(sorted["itemsPerPage"], json!(3));
    let (_, capped) = app.get("/Users?count=100000").await;
    assert_eq!(capped["itemsPerPage"], json!(5));
}

/// Every page, in either order, is its slice of the whole list, groups included, whether it
/// continues a walk or not.
#[tokio::test]
async fn every_page_is_its_slice_of_the_whole_list_in_either_order() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 1..=7 {
        ids.push(app.create_user(&format!("p{i}")).await);
    }
    app.create_group("odd", &[&ids[0], &ids[2], &ids[4], &ids[6]]).await;
    for order in ["", "&sortOrder=descending"] {
        let (_, all) = app.get(&format!("/Users?count=100{order}")).await;
        let all = all["Resources"].as_array().unwrap().clone();
        assert_eq!(all.len(), 7, "{order}");
        // From the last page back (each page a jump), then forward (a walk).
        for start in (1..=8usize).rev().chain([1, 4, 7]) {
            let (status, page) = app.get(&format!("/Users?startIndex={start}&count=3{order}")).await;
            assert_eq!(status, 200);
            let want: Vec<&Value> = all.iter().skip(start - 1).take(3).collect();
            let got: Vec<&Value> = page["Resources"].as_array().unwrap().iter().collect();
            assert_eq!(got, want, "startIndex={start}{order}");
            assert_eq!(page["totalResults"], json!(7));
            assert_eq!(page["itemsPerPage"], json!(want.len()));
        }
    }
}

/// An IdP walks a list with startIndex 1, 3, 5, …; a user deleted from a page already served
/// must not make the walk skip the next user, as `OFFSET` would (rows shift left by one).
#[tokio::test]
async fn a_walk_through_pages_continues_after_the_last_user_served() {
    let app = TestApp::spawn().await;
    let pages_started = |start: &'static str| {
        let app = &app;
        async move {
            let body = app.metrics().await;
            let series = format!("seatbridge_list_pages_total{{start=\"{start}\"}} ");
            body.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .map_or(0, |n| n.trim().parse::<u64>().unwrap())
        }
    };
    let (keyset_before, offset_before) = (pages_started("keyset").await, pages_started("offset").await);
    let mut ids = Vec::new();
    for i in 1..=6 {
        ids.push(app.create_user(&format!("u{i}")).await);
    }
    let names = |page: &Value| -> Vec<String> {
        page["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect()
    };
    for filter in ["", "&filter=userName%20sw%20%22u%22"] {
        let (_, first) = app.get(&format!("/Users?startIndex=1&count=2{filter}")).await;
        assert_eq!(names(&first), ["u1", "u2"], "{filter}");
    }
    assert_eq!(app.delete(&format!("/Users/{}", ids[0])).await, 204);
    for filter in ["", "&filter=userName%20sw%20%22u%22"] {
        let (_, second) = app.get(&format!("/Users?startIndex=3&count=2{filter}")).await;
        assert_eq!(names(&second), ["u3", "u4"], "continues after u2 {filter}");
        assert_eq!(second["startIndex"], json!(3));
        assert_eq!(second["totalResults"], json!(5));
        let (_, third) = app.get(&format!("/Users?startIndex=5&count=2{filter}")).await;
        assert_eq!(names(&third), ["u5", "u6"], "{filter}");
    }
    // A page no walk reached counts rows in the list as it is now.
    let (_, jump) = app.get("/Users?startIndex=2&count=2").await;
    assert_eq!(names(&jump), ["u3", "u4"]);
    // Four pages continued a walk and one jumped (the counters are shared by the tests of this
    // process, so they can only have grown more).
    assert!(pages_started("keyset").await >= keyset_before + 4);
    assert!(pages_started("offset").await > offset_before);
    // Sorted lists page by position: after a deletion, the next page shifts.
    let (_, sorted) = app.get("/Users?sortBy=userName&startIndex=1&count=2").await;
    assert_eq!(names(&sorted), ["u2", "u3"]);
    assert_eq!(app.delete(&format!("/Users/{}", ids[1])).await, 204);
    let (_, sorted) = app.get("/Users?sortBy=userName&startIndex=3&count=2").await;
    assert_eq!(names(&sorted), ["u5", "u6"]);
}

#[tokio::test]
async fn delete_removes_user_and_memberships() {
    let app = TestApp::spawn().await;
    let id = app.create_user("gone@example.com").await;
    let gid = app.create_group("team", &[&id]).await;
    assert_eq!(app.delete(&format!("/Users/{id}")).await, 204);
    let (status, body) = app.get(&format!("/Users/{id}")).await;
    assert_scim_error(status, &body, 404, None);
    let (_, group) = app.get(&format!("/Groups/{gid}")).await;
    assert!(group.get("members").is_none(), "{group}");
    assert_eq!(app.delete(&format!("/Users/{id}")).await, 404);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/Users"))
        .bearer_auth(&app.token)
        .header("x-request-id", "okta-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "okta-abc-123");
    let resp = app.request(Method::GET, "/Users", None).await;
    assert_eq!(resp.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn concurrent_creates_of_one_user_name_yield_exactly_one_user() {
    let app = TestApp::spawn().await;
    let attempts = (0..12).map(|i| {
        let body =
            json!({"schemas":[USER],"userName": if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" }});
        app.post("/Users", body)
    });
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let conflicts = results
        .iter()
        .filter(|(s, b)| *s == 409 && b["scimType"] == "uniqueness")
        .count();
    assert_eq!((created, conflicts), (1, 11), "{results:?}");
    let (_, list) = app.get("/Users").await;
    assert_eq!(list["totalResults"], json!(1));
}

#[tokio::test]
async fn patch_no_content_still_answers_200_when_attributes_are_asked() {
    let app = TestApp::spawn_with(|c| c.scim.patch_returns_resource = false).await;
    let id = app.create_user("quiet").await;
    let set_title = |t: &str| TestApp::patch_body(json!([{"op":"replace","path":"title","value":t}]));
    let (status, body) = app.patch(&format!("/Users/{id}"), set_title("a")).await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, body) = app
        .patch(&format!("/Users/{id}?attributes=title"), set_title("b"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "b");
    assert!(body.get("meta").is_none());
}

/// The reverse `groups` attribute: GET by id reads it in the same statement as the user, lists
/// read it per page; both give every direct group, ordered by display name.
#[tokio::test]
async fn a_users_groups_read_the_same_by_id_and_in_lists() {
    let app = TestApp::spawn().await;
    let member = app.create_user("member").await;
    let loner = app.create_user("loner").await;
    let zeta = app.create_group("Zeta \"quoted\" ünïcode", &[&member]).await;
    let alpha = app.create_group("alpha", &[&member]).await;
    app.create_group("empty", &[]).await;

    let (status, by_id) = app.get(&format!("/Users/{member}")).await;
    assert_eq!(status, 200);
    let group_ref = |id: &str| format!("{}/Groups/{id}", app.url(""));
    let want = json!([
        {"value": alpha, "display": "alpha", "type": "direct", "$ref": group_ref(&alpha)},
        {"value": zeta, "display": "Zeta \"quoted\" ünïcode", "type": "direct", "$ref": group_ref(&zeta)},
    ]);
    assert_eq!(by_id["groups"], want);
    let (_, list) = app.get("/Users?filter=userName%20eq%20%22member%22").await;
    assert_eq!(list["Resources"][0]["groups"], want);

    let (_, alone) = app.get(&format!("/Users/{loner}")).await;
    assert!(alone.get("groups").is_none(), "{alone}");
    let (_, without) = app.get(&format!("/Users/{member}?excludedAttributes=groups")).await;
    assert!(without.get("groups").is_none(), "{without}");
    let (status, body) = app.get("/Users/00000000-0000-7000-8000-000000000000").await;
    assert_scim_error(status, &body, 404, None);
}

/// Unfiltered pages in id order read their users' groups for the whole page at once (the range
/// of its ids): every user of every page, in either order and however the page starts, gets
/// what GET by id gives, a user in no group none.
#[tokio::test]
async fn unfiltered_pages_give_each_user_the_groups_a_get_gives() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(app.create_user(&format!("p{i}")).await);
    }
    // A group whose id lies among the users' ids, itself a member of another group.
    let inner = app.create_group("inner", &[&ids[0]]).await;
    for i in 3..8 {
        ids.push(app.create_user(&format!("p{i}")).await);
    }
    app.create_group("Outer", &[&ids[3], &inner, &ids[0]]).await;
    app.create_group("b-side", &[&ids[7], &ids[3], &ids[1]]).await;
    let mut by_id = std::collections::HashMap::new();
    for id in &ids {
        let (_, user) = app.get(&format!("/Users/{id}")).await;
        by_id.insert(id.clone(), user.get("groups").cloned());
    }
    assert!(by_id.values().filter(|g| g.is_some()).count() == 4, "{by_id:?}");

    for query in [
        "count=100",
        "count=3",
        "count=3&startIndex=4",
        "count=3&startIndex=7",
        "count=3&startIndex=2&sortOrder=descending",
        "count=100&sortOrder=descending",
    ] {
        let (status, page) = app.get(&format!("/Users?{query}")).await;
        assert_eq!(status, 200, "{page}");
        let listed = page["Resources"].as_array().unwrap();
        assert!(!listed.is_empty(), "{query}: {page}");
        for user in listed {
            let id = user["id"].as_str().unwrap();
            let want = by_id.get(id).cloned().flatten();
            assert_eq!(user.get("groups").cloned(), want, "{query}: {user}");
        }
    }
    // Continuing a walk (after the first page's last id) reads the same.
    let (_, first) = app.get("/Users?count=4").await;
    let (_, second) = app.get("/Users?count=4&startIndex=5").await;
    for user in first["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["Resources"].as_array().unwrap())
    {
        let want = by_id.get(user["id"].as_str().unwrap()).cloned().flatten();
        assert_eq!(user.get("groups").cloned(), want, "{user}");
    }
}

/// `totalResults` of a filtered list comes from the page when the page ends the list, and from
/// a count otherwise; every position must give the same total.
#[tokio::test]
async fn filtered_totals_are_right_at_every_position() {
    let app = TestApp::spawn().await;
    for i in 1..=5 {
        app.create_user(&format!("match{i}")).await;
    }
    app.create_user("other").await;
    let filter = "filter=userName%20sw%20%22match%22";
    for (start, count, items) in [
        (1, 2, 2),
        (5, 2, 1),
        (4, 10, 2),
        (6, 2, 0),
        (99, 2, 0),
        (1, 10, 5),
        (1, 0, 0),
    ] {
        let (status, page) = app
            .get(&format!("/Users?{filter}&startIndex={start}&count={count}"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            (page["totalResults"].clone(), page["itemsPerPage"].clone()),
            (json!(5), json!(items)),
            "startIndex={start} count={count}: {page}"
        );
    }
    let (_, none) = app.get("/Users?filter=userName%20eq%20%22nobody%22").await;
    assert_eq!(none["totalResults"], json!(0));
    let (_, one) = app.get("/Users?filter=userName%20eq%20%22match3%22").await;
    assert_eq!(
        (one["totalResults"].clone(), one["itemsPerPage"].clone()),
        (json!(1), json!(1))
    );
}

/// E-mail filters read an index kept beside the document; updates that leave `emails` alone
/// skip rewriting it, and every update that changes them rewrites it.
#[tokio::test]
async fn email_filters_follow_every_kind_of_update() {
    async fn found(app: &TestApp, email: &str) -> u64 {
        let (_, page) = app
            .get(&format!("/Users?filter=emails%5Bvalue%20eq%20%22{email}%22%5D"))
            .await;
        page["totalResults"].as_u64().unwrap()
    }
    async fn patch(app: &TestApp, id: &str, ops: Value) {
        let (status, body) = app
            .patch(
                &format!("/Users/{id}"),
                json!({"schemas": [PATCH_OP], "Operations": ops}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let app = TestApp::spawn().await;
    let (status, user) = app
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "mail", "emails": [{"value": "one@x.com", "primary": true}]}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap();
    patch(&app, id, json!([{"op": "replace", "value": {"active": false}}])).await;
    assert_eq!(found(&app, "one@x.com").await, 1, "unchanged e-mails stay indexed");
    patch(
        &app,
        id,
        json!([{"op": "replace", "path": "emails", "value": [{"value": "two@x.com"}]}]),
    )
    .await;
    assert_eq!((found(&app, "one@x.com").await, found(&app, "two@x.com").await), (0, 1));
    let (status, _) = app
        .put(&format!("/Users/{id}"), json!({"schemas": [USER], "userName": "mail"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(found(&app, "two@x.com").await, 0, "a PUT without e-mails drops them");
}
