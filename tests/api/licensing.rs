//! The license engine through the SCIM API: seats, pools, tier gates, expiry, usage caps, the
//! audit chain — on the real server and database.

use reqwest::Method;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;

use crate::helpers::*;

fn okta_active(active: bool) -> serde_json::Value {
    TestApp::patch_body(json!([{"op":"replace","value":{"active":active}}]))
}

#[tokio::test]
async fn the_seat_limit_refuses_new_users_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.tenant("small", "team", 2).await;
    for name in ["a", "b"] {
        let (status, body) = t.create_user(name, true).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body[SEATBRIDGE]["entitled"], json!(true));
        assert_eq!(body[SEATBRIDGE]["entitlementReason"], "seat_assigned");
        assert_eq!(body["active"], json!(true));
    }
    let (status, body) = t.create_user("c", true).await;
    assert_scim_error(status, &body, 403, None);
    assert_eq!(body["code"], "SEAT_LIMIT_REACHED");
    assert_eq!(
        body["detail"],
        "seat limit reached: 2 of 2 seats in use on plan team; remove or deactivate a user, or raise the seat count"
    );
    let (_, list) = t.get("/Users").await;
    assert_eq!(list["totalResults"], json!(2), "the refused user was not written");

    // An inactive user needs no seat.
    let (status, body) = t.create_user("dormant", false).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body[SEATBRIDGE]["entitled"], json!(false));
    assert_eq!(body[SEATBRIDGE]["entitlementReason"], "inactive");
}

#[tokio::test]
async fn reactivation_needs_a_seat_in_every_idp_shape_and_deactivation_frees_one_at_once() {
    let app = TestApp::spawn().await;
    let t = app.tenant("react", "team", 1).await;
    let (_, holder) = t.create_user("holder", true).await;
    let (_, dormant) = t.create_user("dormant", false).await;
    let holder = holder["id"].as_str().unwrap().to_string();
    let dormant = dormant["id"].as_str().unwrap().to_string();

    let entra = TestApp::patch_body(json!([{"op":"Replace","path":"active","value":"True"}]));
    for body in [okta_active(true), entra] {
        let (status, err) = t.patch(&format!("/Users/{dormant}"), body).await;
        assert_scim_error(status, &err, 403, None);
        assert_eq!(err["code"], "SEAT_LIMIT_REACHED");
    }
    let (_, current) = t.get(&format!("/Users/{dormant}")).await;
    let mut put = current.clone();
    put["active"] = json!(true);
    let (status, err) = t.put(&format!("/Users/{dormant}"), put.clone()).await;
    assert_scim_error(status, &err, 403, None);
    let (_, still) = t.get(&format!("/Users/{dormant}")).await;
    assert_eq!(
        (still["active"].clone(), still["meta"]["version"].clone()),
        (json!(false), current["meta"]["version"].clone())
    );

    // A profile update of the seat holder never needs a new seat.
    let (status, body) = t
        .patch(
            &format!("/Users/{holder}"),
            TestApp::patch_body(json!([{"op":"replace","path":"title","value":"Boss"}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[SEATBRIDGE]["entitled"], json!(true));

    // Deactivating the holder frees the seat for the next request.
    let (status, body) = t.patch(&format!("/Users/{holder}"), okta_active(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], json!(false), "SCIM active is what the IdP set");
    assert_eq!(body[SEATBRIDGE]["entitled"], json!(false));
    let (status, body) = t.put(&format!("/Users/{dormant}"), put).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[SEATBRIDGE]["entitled"], json!(true));

    // DELETE frees the seat too.
    assert_eq!(t.delete(&format!("/Users/{dormant}")).await, 204);
    let (status, _) = t.create_user("next", true).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn concurrent_creates_never_exceed_the_seat_count() {
    let app = TestApp::spawn().await;
    let t = app.tenant("rush", "team", 10).await;
    let names: Vec<String> = (0..64).map(|i| format!("rush{i}")).collect();
    let attempts = names.iter().map(|n| t.create_user(n, true));
    let results = futures_util::future::join_all(attempts).await;
    let admitted = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == 403 && b["code"] == "SEAT_LIMIT_REACHED")
        .count();
    assert_eq!(
        (admitted, refused),
        (10, 54),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(t.entitled().await, 10);
}

/// Runs `requests` while, on PostgreSQL, the test holds the tenant's row lock for 2 s: creates
/// sent meanwhile all queue behind the first, so they are written in batches whatever the
/// machine's speed. (SQLite: `requests` alone.)
async fn while_tenant_locked<F: std::future::Future>(app: &TestApp, tenant_id: &str, requests: F) -> F::Output {
    if !app.config.database_url.starts_with("postgres") {
        return requests.await;
    }
    let lock = app.db.begin().await.unwrap();
    lock.execute_unprepared(&format!("SELECT id FROM tenants WHERE id = '{tenant_id}' FOR UPDATE"))
        .await
        .unwrap();
    let release = async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        lock.rollback().await.unwrap();
    };
    tokio::join!(requests, release).0
}

/// Creates that arrive together (on PostgreSQL written in shared transactions, see
/// `provisioning::batch`) each get the answer they would get alone: a seat while one is free,
/// 403 after, 409 for a `userName` taken in any case; every refusal is audited in an intact chain,
/// and nothing of a batch rolled back for a duplicate stays.
#[tokio::test]
async fn creates_arriving_together_get_the_answers_they_would_get_alone() {
    let app = TestApp::spawn().await;
    let t = app.tenant("crowd", "team", 20).await;
    let mut names: Vec<String> = (0..40).map(|i| format!("crowd{i}")).collect();
    names.extend((0..8).map(|i| format!("CROWD{i}")));
    let creates = futures_util::future::join_all(names.iter().map(|n| t.create_user(n, true)));
    let results = while_tenant_locked(&app, &t.tenant_id, creates).await;
    let with = |status: u16| results.iter().filter(|(s, _)| *s == status).count();
    let (created, refused, taken) = (with(201), with(403), with(409));
    assert_eq!((created, created + refused + taken), (20, 48), "{results:?}");
    for (status, body) in &results {
        match status {
            403 => assert_eq!(body["code"], "SEAT_LIMIT_REACHED", "{body}"),
            409 => assert_eq!(body["scimType"], "uniqueness", "{body}"),
            _ => {}
        }
    }
    assert_eq!(t.entitled().await, 20);
    let (_, list) = t.get("/Users?count=100").await;
    assert_eq!(list["totalResults"], json!(20));
    let mut seen: Vec<String> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_lowercase())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "one user per name: {seen:?}");

    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert_eq!(
        (check.entries, check.broken_at.clone()),
        ((created + refused) as u64, None),
        "{check:?}"
    );

    let created_ids: Vec<String> = results
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, u)| u["id"].as_str().unwrap().to_string())
        .collect();
    // The proof that creates were written together: fewer transactions than users.
    if let Some(transactions) = writing_transactions(&app, "users", "id", &created_ids).await {
        assert!(transactions < 20, "{transactions} transactions for 20 creates");
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("seatbridge_write_batches_total{outcome=\"committed\"}"),
            "{metrics}"
        );
        assert!(metrics.contains("seatbridge_batched_writes_total"), "{metrics}");
    }
}

/// A create that fails in the database (here a trigger refuses one userName) fails alone: on
/// PostgreSQL its batch is rolled back and every create of it runs again alone, so the others
/// still land, once, with an intact audit chain, and nothing of the failed one stays.
#[tokio::test]
async fn a_create_failing_in_the_database_fails_alone() {
    let app = TestApp::spawn().await;
    let t = app.tenant("faulty", "team", 100).await;
    let postgres = app.config.database_url.starts_with("postgres");
    if postgres {
        app.sql(
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.user_name = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_boom BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
        )
        .await;
    } else {
        app.sql(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON users WHEN NEW.user_name = 'boom' \
             BEGIN SELECT RAISE(FAIL, 'boom refused'); END",
        )
        .await;
    }
    // `lead` is written first, alone, waiting for the lock; the 29 sent after it queue behind
    // it and form one batch with `boom` in it.
    let names: Vec<String> = (0..29)
        .map(|i| {
            if i == 14 {
                "boom".to_string()
            } else {
                format!("fine{i}")
            }
        })
        .collect();
    let rest = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        futures_util::future::join_all(names.iter().map(|n| t.create_user(n, true))).await
    };
    let ((lead, _), results) = while_tenant_locked(&app, &t.tenant_id, async {
        tokio::join!(t.create_user("lead", true), rest)
    })
    .await;
    assert_eq!(lead, 201);
    for (name, (status, body)) in names.iter().zip(&results) {
        if name == "boom" {
            assert!(*status >= 400 && body["schemas"][0] == ERROR, "{status} {body}");
        } else {
            assert_eq!(*status, 201, "{name}: {body}");
        }
    }
    let (_, list) = t.get("/Users?count=100").await;
    assert_eq!(list["totalResults"], json!(29));
    let (_, boom) = t.get("/Users?filter=userName%20eq%20%22boom%22").await;
    assert_eq!(boom["totalResults"], json!(0));
    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert_eq!((check.entries, check.broken_at.clone()), (29, None), "{check:?}");
    if postgres {
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("seatbridge_write_batches_total{outcome=\"rolled_back\"}"),
            "{metrics}"
        );
    }
}

/// How many PostgreSQL transactions last wrote the rows of `table` whose `column` is one of
/// `ids` (their `xmin`): fewer than the writes proves they were written in batches. `None` on
/// SQLite.
async fn writing_transactions(app: &TestApp, table: &str, column: &str, ids: &[String]) -> Option<i64> {
    if !app.config.database_url.starts_with("postgres") {
        return None;
    }
    let list = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT count(DISTINCT xmin::text) FROM {table} WHERE {column} IN ({list})");
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    Some(row.try_get_by_index(0).unwrap())
}

/// The tenant's outbox, in order: (event type, payload).
async fn outbox_events(app: &TestApp, tenant_id: &str) -> Vec<(String, String)> {
    let sql = format!("SELECT event_type, payload FROM outbox_events WHERE tenant_id = '{tenant_id}' ORDER BY id");
    let backend = app.db.get_database_backend();
    app.db
        .query_all_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap()))
        .collect()
}

/// Users `prefix0…` of `t`, `n` of them, active or not; their ids.
async fn users_named(t: &TenantClient<'_>, prefix: &str, n: usize, active: bool) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = t.create_user(&format!("{prefix}{i}"), active).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids
}

/// PATCHes, PUTs and DELETEs that arrive together (on PostgreSQL written in shared transactions,
/// see `provisioning::batch`) each get the answer they would get alone: deactivations and
/// deletes free seats, reactivations take them, a stale `If-Match`, an unknown id and a PATCH
/// that cannot apply are
/// refused without a write and without harming the rest; every write is in an intact audit
/// chain and has its event, in order.
#[tokio::test]
async fn updates_arriving_together_get_the_answers_they_would_get_alone() {
    let app = TestApp::spawn().await;
    // Room for every reactivation even before any deactivation: the answers do not depend on
    // the order the requests arrive in.
    let t = app.tenant("movers", "team", 13).await;
    let active = users_named(&t, "a", 7, true).await;
    let inactive = users_named(&t, "b", 6, false).await;
    let t = &t;
    let patch = |id: &String, active: bool| {
        let path = format!("/Users/{id}");
        async move { t.patch(&path, okta_active(active)).await }
    };
    let stale = async {
        let resp = app
            .client
            .patch(app.url(&format!("/Users/{}", active[3])))
            .bearer_auth(&t.token)
            .header("content-type", SCIM)
            .header("If-Match", "W/\"99\"")
            .body(okta_active(false).to_string())
            .send()
            .await
            .unwrap();
        parts(resp).await
    };
    let unknown = t.patch("/Users/no-such-user", okta_active(false));
    let (a4, a5, a6) = (
        format!("/Users/{}", active[4]),
        format!("/Users/{}", active[5]),
        format!("/Users/{}", active[6]),
    );
    let unappliable = t.patch(&a4, TestApp::patch_body(json!([{"op":"remove","path":"userName"}])));
    let renamed = t.put(
        &a5,
        json!({"schemas":[USER],"userName":"a5","displayName":"Moved","active":true}),
    );
    let deleted = t.delete(&a6);
    let requests = async {
        let deactivations = futures_util::future::join_all(active[..3].iter().map(|id| patch(id, false)));
        let reactivations = futures_util::future::join_all(inactive.iter().map(|id| patch(id, true)));
        tokio::join!(
            deactivations,
            reactivations,
            stale,
            unknown,
            unappliable,
            renamed,
            deleted
        )
    };
    let (deactivations, reactivations, stale, unknown, unappliable, renamed, deleted) =
        while_tenant_locked(&app, &t.tenant_id, requests).await;
    for (status, body) in deactivations.iter().chain(&reactivations) {
        assert_eq!(*status, 200, "{body}");
    }
    assert!(deactivations
        .iter()
        .all(|(_, u)| u["active"] == json!(false) && u[SEATBRIDGE]["entitled"] == json!(false)));
    assert!(reactivations
        .iter()
        .all(|(_, u)| u["active"] == json!(true) && u[SEATBRIDGE]["entitled"] == json!(true)));
    assert_eq!(stale.0, 412, "{}", stale.1);
    assert_eq!(unknown.0, 404, "{}", unknown.1);
    assert_eq!(unappliable.0, 400, "{}", unappliable.1);
    assert_eq!(
        (renamed.0, &renamed.1["displayName"]),
        (200, &json!("Moved")),
        "{}",
        renamed.1
    );
    assert_eq!(deleted, 204);
    assert_eq!(t.get(&a6).await.0, 404);
    assert_eq!(t.entitled().await, 3 + 6);
    let (_, a3) = t.get(&format!("/Users/{}", active[3])).await;
    assert_eq!(
        (&a3["active"], &a3["meta"]["version"]),
        (&json!(true), &json!("W/\"1\"")),
        "{a3}"
    );

    // 13 creates, 3 deactivations, 6 reactivations, 1 replace, 1 delete; the refused writes
    // left nothing.
    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert_eq!((check.entries, check.broken_at.clone()), (24, None), "{check:?}");
    let types: Vec<String> = outbox_events(&app, &t.tenant_id)
        .await
        .into_iter()
        .map(|(ty, _)| ty)
        .collect();
    let count = |ty: &str| types.iter().filter(|t| **t == ty).count();
    assert_eq!(
        (
            count("user.deprovisioned"),
            count("user.reprovisioned"),
            count("user.updated")
        ),
        (3 + 1, 6, 1),
        "{types:?}"
    );

    let written: Vec<String> = active[..3]
        .iter()
        .chain(&inactive)
        .chain([&active[5]])
        .cloned()
        .collect();
    if let Some(transactions) = writing_transactions(&app, "users", "id", &written).await {
        assert!(transactions < 10, "{transactions} transactions for 10 updates");
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("seatbridge_write_batches_total{outcome=\"committed\"}"),
            "{metrics}"
        );
    }
}

/// A write of a batch that hands a freed seat to a waiting user comes before a later write of
/// that user in the same batch, which starts from the user as the handover left it (not as the
/// batch read it ahead): one more version, and its own event after the handover's.
#[tokio::test]
async fn a_later_write_in_a_batch_starts_from_the_seat_an_earlier_one_handed_over() {
    let app = TestApp::spawn().await;
    let t = app.tenant("handover", "team", 3).await;
    let ids = users_named(&t, "h", 3, true).await;
    let fewer = seatbridge::licensing::LicenseUpdate {
        seats: Some(2),
        policy: Some(seatbridge::license::Policy::DeactivateNewest),
        ..Default::default()
    };
    seatbridge::licensing::update_license(&app.db, "handover", &fewer, "test", false)
        .await
        .unwrap();
    let (_, waiting) = t.get(&format!("/Users/{}", ids[2])).await;
    assert_eq!(waiting[SEATBRIDGE]["entitlementReason"], "seat_reduction", "{waiting}");
    let version = |u: &serde_json::Value| -> i64 {
        u["meta"]["version"]
            .as_str()
            .unwrap()
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse()
            .unwrap()
    };
    let before = version(&waiting);

    // `h0`'s write waits for the lock alone; `h1`'s deactivation, then `h2`'s rename, queue
    // behind it in that order and form the next batch.
    let t = &t;
    let after = |ms: u64, path: String, ops: serde_json::Value| async move {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        t.patch(&path, TestApp::patch_body(ops)).await
    };
    let requests = async {
        tokio::join!(
            after(
                0,
                format!("/Users/{}", ids[0]),
                json!([{"op":"replace","value":{"displayName":"Lead"}}])
            ),
            after(
                300,
                format!("/Users/{}", ids[1]),
                json!([{"op":"replace","value":{"active":false}}])
            ),
            after(
                600,
                format!("/Users/{}", ids[2]),
                json!([{"op":"replace","value":{"displayName":"Next"}}])
            ),
        )
    };
    let (lead, freed, renamed) = while_tenant_locked(&app, &t.tenant_id, requests).await;
    assert_eq!((lead.0, freed.0), (200, 200), "{} {}", lead.1, freed.1);
    assert_eq!(renamed.0, 200, "{}", renamed.1);
    assert_eq!(renamed.1[SEATBRIDGE]["entitled"], json!(true), "{}", renamed.1);
    assert_eq!(renamed.1["displayName"], "Next");
    assert_eq!(
        version(&renamed.1),
        before + 2,
        "the handover, then the rename: {}",
        renamed.1
    );

    let of_h2: Vec<String> = outbox_events(&app, &t.tenant_id)
        .await
        .into_iter()
        .filter(|(_, payload)| payload.contains(&ids[2]))
        .map(|(ty, _)| ty)
        .collect();
    assert_eq!(
        of_h2,
        [
            "user.provisioned",
            "user.deprovisioned",
            "user.reprovisioned",
            "user.updated"
        ],
        "{of_h2:?}"
    );
}

/// Group PATCHes that arrive together (on PostgreSQL written in shared transactions) each get
/// the answer they would get alone: each adds its member, one naming a member that does not
/// exist is refused without harming the rest, and one that removes a member before failing on
/// a missing one changes nothing (on PostgreSQL its batch rolls back and each PATCH runs again
/// alone).
#[tokio::test]
async fn group_patches_arriving_together_get_the_answers_they_would_get_alone() {
    let app = TestApp::spawn().await;
    let t = app.tenant("crews", "team", 100).await;
    let ids = users_named(&t, "g", 12, true).await;
    let (status, group) = t
        .post(
            "/Groups",
            json!({"schemas":[GROUP],"displayName":"Crew","members":[{"value": ids[0]}]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let path = format!("/Groups/{}", group["id"].as_str().unwrap());
    let t = &t;
    let send = |ms: u64, ops: serde_json::Value| {
        let path = path.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            t.patch(&path, TestApp::patch_body(ops)).await
        }
    };
    let add = |ms: u64, id: &str| send(ms, json!([{"op":"add","path":"members","value":[{"value": id}]}]));
    let members = || async {
        let (_, g) = t.get(&path).await;
        let mut values: Vec<String> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_string())
            .collect();
        values.sort();
        values
    };

    // `g1` waits for the lock alone; the rest queue behind it and form one batch.
    let requests = async {
        let rest = futures_util::future::join_all(ids[2..11].iter().map(|id| add(300, id)));
        tokio::join!(add(0, &ids[1]), rest, add(300, "no-such-user"))
    };
    let (lead, added, unknown) = while_tenant_locked(&app, &t.tenant_id, requests).await;
    for (status, body) in added.iter().chain([&lead]) {
        assert_eq!(*status, 204, "{body}");
    }
    assert_eq!(
        (unknown.0, &unknown.1["scimType"]),
        (400, &json!("invalidValue")),
        "{}",
        unknown.1
    );
    let mut expected: Vec<String> = ids[..11].to_vec();
    expected.sort();
    assert_eq!(members().await, expected);
    if let Some(transactions) = writing_transactions(&app, "group_members", "member_id", &ids[2..11]).await {
        assert!(transactions < 9, "{transactions} transactions for 9 member adds");
    }

    // A PATCH that removes `g0`, then names a member that does not exist: nothing of it stays.
    let remove_then_fail = json!([
        {"op":"remove","path":format!("members[value eq \"{}\"]", ids[0])},
        {"op":"add","path":"members","value":[{"value":"no-such-user"}]}
    ]);
    let requests = async { tokio::join!(add(0, &ids[1]), add(300, &ids[11]), send(300, remove_then_fail)) };
    let (again, last, failed) = while_tenant_locked(&app, &t.tenant_id, requests).await;
    assert_eq!((again.0, last.0), (204, 204), "{} {}", again.1, last.1);
    assert_eq!(failed.0, 400, "{}", failed.1);
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(members().await, expected, "g0 is still a member");

    // 12 user creates, the group's, 12 member adds (one of them `g1` again: still a PATCH of
    // the group); nothing of the refused ones.
    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert_eq!((check.entries, check.broken_at.clone()), (25, None), "{check:?}");
}

/// Group creates, PUTs and DELETEs that arrive together (on PostgreSQL written in shared
/// transactions) each get the answer they would get alone: the creates and the replace land with
/// their members, the delete takes its group's memberships, a stale `If-Match` and an unknown id
/// are refused without harming the rest; a create naming a member that does not exist is
/// refused after its group row was written, so its batch rolls back and every write runs
/// again alone, landing once.
#[tokio::test]
async fn group_writes_arriving_together_get_the_answers_they_would_get_alone() {
    let app = TestApp::spawn().await;
    let t = app.tenant("squads", "team", 100).await;
    let ids = users_named(&t, "s", 4, true).await;
    let t = &t;
    let group = |name: &str, members: &[&String]| {
        let members: Vec<_> = members.iter().map(|id| json!({"value": id})).collect();
        json!({"schemas":[GROUP],"displayName":name,"members":members})
    };
    let (_, kept) = t.post("/Groups", group("Kept", &[&ids[0]])).await;
    let (_, gone) = t.post("/Groups", group("Gone", &[&ids[0], &ids[1]])).await;
    let (_, guarded) = t.post("/Groups", group("Guarded", &[])).await;
    let path = |g: &serde_json::Value| format!("/Groups/{}", g["id"].as_str().unwrap());
    let (kept_path, gone_path, guarded_path) = (path(&kept), path(&gone), path(&guarded));
    let stale_put = async {
        let resp = app
            .client
            .put(app.url(&guarded_path))
            .bearer_auth(&t.token)
            .header("content-type", SCIM)
            .header("If-Match", "W/\"99\"")
            .body(group("Renamed", &[]).to_string())
            .send()
            .await
            .unwrap();
        parts(resp).await
    };

    let creates = |prefix: &'static str| {
        let groups: Vec<_> = (0..6).map(|i| group(&format!("{prefix}{i}"), &[&ids[i % 4]])).collect();
        futures_util::future::join_all(groups.into_iter().map(|g| t.post("/Groups", g)))
    };
    let requests = async {
        tokio::join!(
            creates("New"),
            t.put(&kept_path, group("Kept again", &[&ids[2], &ids[3]])),
            t.delete(&gone_path),
            t.delete("/Groups/no-such-group"),
            stale_put
        )
    };
    let (created, replaced, deleted, unknown, stale) = while_tenant_locked(&app, &t.tenant_id, requests).await;
    for (status, body) in &created {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(body["members"].as_array().map(Vec::len), Some(1), "{body}");
    }
    assert_eq!(replaced.0, 200, "{}", replaced.1);
    let mut members: Vec<&str> = replaced.1["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    members.sort();
    let mut want = vec![ids[2].as_str(), ids[3].as_str()];
    want.sort();
    assert_eq!((members, &replaced.1["displayName"]), (want, &json!("Kept again")));
    assert_eq!((deleted, unknown), (204, 404));
    assert_eq!(t.get(&gone_path).await.0, 404);
    assert_eq!(stale.0, 412, "{}", stale.1);
    assert_eq!(t.get(&guarded_path).await.1["displayName"], json!("Guarded"));
    // `s1` left "Gone" with its delete, and is in "New1" and "New5".
    let (_, s1) = t.get(&format!("/Users/{}", ids[1])).await;
    assert_eq!(s1["groups"].as_array().map(Vec::len), Some(2), "{s1}");
    let new_names: Vec<String> = (0..6).map(|i| format!("New{i}")).collect();
    if let Some(transactions) = writing_transactions(&app, "groups", "display_name", &new_names).await {
        assert!(transactions < 6, "{transactions} transactions for 6 group creates");
    }

    // Again, with a create that names no user: refused after its group row was written.
    let (status, gone) = t.post("/Groups", group("Gone", &[&ids[0]])).await;
    assert_eq!(status, 201, "{gone}");
    let gone_path = path(&gone);
    let bad = json!({"schemas":[GROUP],"displayName":"Bad","members":[{"value":"nobody"}]});
    let requests = async { tokio::join!(creates("Newer"), t.delete(&gone_path), t.post("/Groups", bad)) };
    let (created, deleted, bad) = while_tenant_locked(&app, &t.tenant_id, requests).await;
    assert!(created.iter().all(|(s, _)| *s == 201), "{created:?}");
    assert_eq!(deleted, 204);
    assert_eq!((bad.0, &bad.1["scimType"]), (400, &json!("invalidValue")), "{}", bad.1);
    let (_, all) = t.get("/Groups?count=100").await;
    let names: Vec<&str> = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(all["totalResults"], json!(2 + 6 + 6), "{names:?}");
    assert!(!names.contains(&"Bad") && !names.contains(&"Gone"), "{names:?}");

    // 4 users, 3 groups, 6 creates, a replace, a delete, a create, 6 creates, a delete; the
    // refused writes left nothing.
    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert_eq!(
        (check.entries, check.broken_at.clone()),
        (4 + 3 + 6 + 2 + 1 + 6 + 1, None),
        "{check:?}"
    );
    let types: Vec<String> = outbox_events(&app, &t.tenant_id)
        .await
        .into_iter()
        .map(|(ty, _)| ty)
        .collect();
    let count = |ty: &str| types.iter().filter(|t| **t == ty).count();
    assert_eq!(
        (count("group.created"), count("group.updated"), count("group.deleted")),
        (3 + 6 + 1 + 6, 1, 2),
        "{types:?}"
    );
}

/// An update that fails in the database (a PUT taking another user's `userName`) answers 409
/// and fails alone: on PostgreSQL its batch is rolled back and each of its writes runs again
/// alone, so the others land once, with an intact audit chain.
#[tokio::test]
async fn an_update_failing_in_the_database_fails_alone() {
    let app = TestApp::spawn().await;
    let t = app.tenant("clash", "team", 100).await;
    let ids = users_named(&t, "c", 10, true).await;
    let t = &t;
    let rename = |id: &String, name: &str| {
        let (path, body) = (
            format!("/Users/{id}"),
            json!({"schemas":[USER],"userName":name,"active":true}),
        );
        async move { t.put(&path, body).await }
    };
    let requests = async {
        let moves = futures_util::future::join_all(
            ids[..9]
                .iter()
                .enumerate()
                .map(|(i, id)| rename(id, &format!("moved{i}"))),
        );
        // Taken before the batch, and renamed by nothing in it.
        tokio::join!(moves, rename(&ids[9], "C0"))
    };
    let (moves, clash) = while_tenant_locked(&app, &t.tenant_id, requests).await;
    for (status, body) in &moves {
        assert_eq!(*status, 200, "{body}");
    }
    // `c0` may have been renamed first: then the name was free.
    let c0_moved_first = clash.0 == 200;
    if !c0_moved_first {
        assert_eq!(
            (clash.0, &clash.1["scimType"]),
            (409, &json!("uniqueness")),
            "{}",
            clash.1
        );
    }
    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    let expected = 10 + 9 + u64::from(c0_moved_first);
    assert_eq!((check.entries, check.broken_at.clone()), (expected, None), "{check:?}");
    let (_, list) = t.get("/Users?filter=userName%20sw%20%22moved%22").await;
    assert_eq!(list["totalResults"], json!(9));
}

#[tokio::test]
async fn seat_pools_are_enforced_separately() {
    let app = TestApp::spawn().await;
    app.sql(r#"UPDATE plans SET seat_pools = '{"viewer": 2}' WHERE name = 'team'"#)
        .await;
    let t = app.tenant("pools", "team", 1).await;
    let viewer = |name: &str| json!({"schemas":[USER, SEATBRIDGE],"userName":name,"active":true, SEATBRIDGE: {"seatType":"viewer"}});
    assert_eq!(t.create_user("full1", true).await.0, 201);
    assert_eq!(t.create_user("full2", true).await.0, 403);
    let (status, v1) = t.post("/Users", viewer("v1")).await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(v1[SEATBRIDGE]["seatType"], "viewer");
    assert_eq!(v1[SEATBRIDGE]["seatPool"], "viewer");
    assert_eq!(t.post("/Users", viewer("v2")).await.0, 201);
    let (status, err) = t.post("/Users", viewer("v3")).await;
    assert_scim_error(status, &err, 403, None);
    assert!(
        err["detail"].as_str().unwrap().contains("2 of 2 'viewer' seats"),
        "{err}"
    );

    // Moving a viewer to the full pool needs a full seat: refused while it is taken.
    let id = v1["id"].as_str().unwrap();
    let to_full =
        TestApp::patch_body(json!([{"op":"replace","path":format!("{SEATBRIDGE}:seatType"),"value":"default"}]));
    let (status, _) = t.patch(&format!("/Users/{id}"), to_full).await;
    assert_eq!(status, 403);

    // A seat type the plan lacks: the identity is provisioned, without a seat.
    let (status, body) = t
        .post(
            "/Users",
            json!({"schemas":[USER],"userName":"x","active":true, SEATBRIDGE: {"seatType":"admin"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["active"], json!(true));
    assert_eq!(body[SEATBRIDGE]["entitled"], json!(false));
    assert_eq!(body[SEATBRIDGE]["entitlementReason"], "unknown_seat_type");
}

#[tokio::test]
async fn tier_gates_name_the_missing_entitlement() {
    let app = TestApp::spawn().await;
    let t = app.tenant("freebie", "free", 5).await;
    for (method, path, body) in [
        (Method::GET, "/Groups", None),
        (
            Method::POST,
            "/Groups",
            Some(json!({"schemas":[GROUP],"displayName":"g"})),
        ),
    ] {
        let (status, err) = t.send(method, path, body).await;
        assert_scim_error(status, &err, 403, None);
        assert_eq!(err["code"], "FEATURE_NOT_IN_PLAN");
        assert!(err["detail"].as_str().unwrap().contains("'scim.groups'"), "{err}");
    }
    let (status, err) = t
        .post(
            "/Users",
            json!({"schemas":[USER, ENTERPRISE],"userName":"e", ENTERPRISE: {"department":"x"}}),
        )
        .await;
    assert_scim_error(status, &err, 403, None);
    assert!(err["detail"].as_str().unwrap().contains("'scim.enterprise'"), "{err}");
    assert_eq!(t.create_user("plain", true).await.0, 201);
}

#[tokio::test]
async fn expiry_grace_and_suspension_stop_new_seats() {
    let app = TestApp::spawn().await;
    let t = app.tenant("lapsing", "team", 5).await;
    let (_, holder) = t.create_user("holder", true).await;
    let holder = holder["id"].as_str().unwrap().to_string();

    // Expired yesterday; team has 7 grace days: existing users keep access, nobody new gets in.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    t.set_license(&format!("expires_at = '{yesterday}'")).await;
    let (status, err) = t.create_user("late", true).await;
    assert_scim_error(status, &err, 403, None);
    assert_eq!(err["code"], "LICENSE_IN_GRACE");
    let (status, body) = t
        .patch(
            &format!("/Users/{holder}"),
            TestApp::patch_body(json!([{"op":"replace","path":"title","value":"x"}])),
        )
        .await;
    assert_eq!((status, body[SEATBRIDGE]["entitled"].clone()), (200, json!(true)));

    let long_ago = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    t.set_license(&format!("expires_at = '{long_ago}'")).await;
    let (_, err) = t.create_user("later", true).await;
    assert_eq!(err["code"], "LICENSE_EXPIRED");
    assert!(err["detail"].as_str().unwrap().contains("renewed"), "{err}");

    t.set_license("expires_at = NULL, status = 'suspended'").await;
    let (_, err) = t.create_user("suspended", true).await;
    assert_eq!(err["code"], "LICENSE_SUSPENDED");
    // Inactive users can still be provisioned: they need no seat.
    assert_eq!(t.create_user("parked", false).await.0, 201);
}

#[tokio::test]
async fn usage_caps_count_provisioning_operations() {
    let app = TestApp::spawn().await;
    let t = app.tenant("metered", "team", 100).await;
    t.set_license("usage_cap = 3, usage_period = 'month'").await;
    for name in ["a", "b", "c"] {
        assert_eq!(t.create_user(name, true).await.0, 201);
    }
    let (status, err) = t.create_user("d", true).await;
    assert_scim_error(status, &err, 403, None);
    assert_eq!(err["code"], "USAGE_CAP_REACHED");
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .contains("3 of 3 provisioning operations this month"),
        "{err}"
    );
}

#[tokio::test]
async fn every_write_and_refusal_is_in_a_verifiable_audit_chain() {
    let app = TestApp::spawn().await;
    let t = app.tenant("audited", "team", 1).await;
    let (_, a) = t.create_user("a", true).await;
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(t.create_user("b", true).await.0, 403);
    t.patch(&format!("/Users/{id}"), okta_active(false)).await;

    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert_eq!((check.entries, check.broken_at.clone()), (3, None), "{check:?}");
    let rows = seatbridge::store::audit::page(&app.db, &t.tenant_id, 0, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["scim.user.create", "provisioning.refused", "scim.user.update"]
    );
    assert!(rows[0].actor.starts_with("token:"));
    assert!(rows[1].after.as_deref().unwrap().contains("SEAT_LIMIT_REACHED"));
    assert!(rows[2].request_id.is_some());

    // Editing a row breaks the chain at that row.
    app.sql(&format!(
        "UPDATE audit_log SET actor = 'someone-else' WHERE tenant_id = '{}' AND seq = 2",
        t.tenant_id
    ))
    .await;
    let check = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert_eq!(check.broken_at.map(|b| b.0), Some(2));
}

#[tokio::test]
async fn discovery_tells_each_tenant_the_truth_about_its_plan() {
    let app = TestApp::spawn().await;
    let free = app.tenant("free-disco", "free", 5).await;
    let (_, types) = free.get("/ResourceTypes").await;
    let ids: Vec<&str> = types["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["User"]);
    let exts: Vec<&str> = types["Resources"][0]["schemaExtensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["schema"].as_str().unwrap())
        .collect();
    assert_eq!(exts, vec![SEATBRIDGE]);
    let (_, schemas) = free.get("/Schemas").await;
    assert_eq!(schemas["totalResults"], json!(2));
    let (status, _) = free.get("/ResourceTypes/Group").await;
    assert_eq!(status, 404);

    let (_, types) = app.get("/ResourceTypes").await;
    assert_eq!(types["totalResults"], json!(2), "the enterprise tenant sees everything");
}

#[tokio::test]
async fn bulk_operations_pass_the_same_seat_check() {
    let app = TestApp::spawn().await;
    let t = app.tenant("bulky", "team", 1).await;
    let ops: Vec<_> = ["x", "y"]
        .iter()
        .map(|n| json!({"method":"POST","path":"/Users","bulkId":n,"data":{"schemas":[USER],"userName":n,"active":true}}))
        .collect();
    let (status, resp) = t
        .post(
            "/Bulk",
            json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":ops}),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["Operations"][0]["status"], "201");
    assert_eq!(resp["Operations"][1]["status"], "403");
    assert_eq!(resp["Operations"][1]["response"]["code"], "SEAT_LIMIT_REACHED");
}
