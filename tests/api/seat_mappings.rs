//! Seat types from IdP groups: a mapped group moves its members' seats between pools,
//! atomically with the group change.

use serde_json::{json, Value};

use seatbridge::licensing;

use crate::helpers::*;

async fn seat(t: &TenantClient<'_>, id: &str) -> (String, bool) {
    let (_, u) = t.get(&format!("/Users/{id}")).await;
    (
        u[SEATBRIDGE]["seatPool"].as_str().unwrap().to_string(),
        u[SEATBRIDGE]["entitled"] == json!(true),
    )
}

fn add(id: &str) -> Value {
    TestApp::patch_body(json!([{"op":"add","path":"members","value":[{"value":id}]}]))
}

fn remove(id: &str) -> Value {
    TestApp::patch_body(json!([{"op":"remove","path":format!("members[value eq \"{id}\"]")}]))
}

#[tokio::test]
async fn group_pushes_move_seats_between_pools_or_are_refused() {
    let app = TestApp::spawn().await;
    app.sql(r#"UPDATE plans SET seat_pools = '{"viewer": 2}' WHERE name = 'team'"#)
        .await;
    let t = app.tenant("mapped", "team", 1).await;
    let id_of = |v: &Value| v["id"].as_str().unwrap().to_string();
    let u1 = id_of(&t.create_user("u1", true).await.1);
    let (_, g) = t
        .post("/Groups", json!({"schemas":[GROUP],"displayName":"Viewers"}))
        .await;
    let viewers = id_of(&g);
    let report = licensing::set_seat_mapping(&app.db, "mapped", "viewers", Some("viewer"), 0, "test", false)
        .await
        .unwrap();
    assert!(report.deentitled.is_empty());

    // Joining the mapped group moves u1's seat to the viewer pool and frees the default seat.
    assert_eq!(t.patch(&format!("/Groups/{viewers}"), add(&u1)).await.0, 204);
    assert_eq!(seat(&t, &u1).await, ("viewer".to_string(), true));
    let u2 = id_of(&t.create_user("u2", true).await.1);
    assert_eq!(t.patch(&format!("/Groups/{viewers}"), add(&u2)).await.0, 204);
    let u3 = id_of(&t.create_user("u3", true).await.1);
    assert_eq!(seat(&t, &u3).await, ("default".to_string(), true));

    // The viewer pool is full (2 of 2): pushing u3 into the group is refused, nothing changes.
    let (status, err) = t.patch(&format!("/Groups/{viewers}"), add(&u3)).await;
    assert_scim_error(status, &err, 403, None);
    assert!(
        err["detail"].as_str().unwrap().contains("2 of 2 'viewer' seats"),
        "{err}"
    );
    let (_, group) = t.get(&format!("/Groups/{viewers}")).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 2);
    assert_eq!(seat(&t, &u3).await, ("default".to_string(), true));

    // Leaving the group needs a default seat, which u3 holds: refused too.
    let (status, _) = t.patch(&format!("/Groups/{viewers}"), remove(&u1)).await;
    assert_eq!(status, 403);
    // Once u3 is deactivated, u1 can move back.
    t.patch(
        &format!("/Users/{u3}"),
        TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}])),
    )
    .await;
    assert_eq!(t.patch(&format!("/Groups/{viewers}"), remove(&u1)).await.0, 204);
    assert_eq!(seat(&t, &u1).await, ("default".to_string(), true));

    // An explicit seatType from the IdP beats the mapping.
    let (_, pinned) = t
        .post(
            "/Users",
            json!({"schemas":[USER],"userName":"pinned","active":false, SEATBRIDGE: {"seatType":"default"}}),
        )
        .await;
    let pinned = id_of(&pinned);
    assert_eq!(t.patch(&format!("/Groups/{viewers}"), add(&pinned)).await.0, 204);
    assert_eq!(seat(&t, &pinned).await.0, "default");
}

#[tokio::test]
async fn mapping_changes_move_existing_members_with_a_matching_dry_run() {
    let app = TestApp::spawn().await;
    app.sql(r#"UPDATE plans SET seat_pools = '{"viewer": 1}' WHERE name = 'team'"#)
        .await;
    let t = app.tenant("remap", "team", 5).await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(t.create_user(name, true).await.1["id"].as_str().unwrap().to_string());
    }
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let (status, _) = t
        .post(
            "/Groups",
            json!({"schemas":[GROUP],"displayName":"Readers","members":members}),
        )
        .await;
    assert_eq!(status, 201);

    let dry = licensing::set_seat_mapping(&app.db, "remap", "Readers", Some("viewer"), 0, "test", true)
        .await
        .unwrap();
    assert_eq!(
        seat(&t, &ids[0]).await,
        ("default".to_string(), true),
        "a dry run moves nobody"
    );
    let real = licensing::set_seat_mapping(&app.db, "remap", "Readers", Some("viewer"), 0, "test", false)
        .await
        .unwrap();
    assert_eq!(real.deentitled, dry.deentitled);
    // One viewer seat: the longest-seated member keeps access, the others wait in the new pool.
    let moved_out: Vec<&str> = real.deentitled.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(moved_out, vec![ids[1].as_str(), ids[2].as_str()]);
    assert_eq!(seat(&t, &ids[0]).await, ("viewer".to_string(), true));
    assert_eq!(seat(&t, &ids[2]).await, ("viewer".to_string(), false));

    let back = licensing::set_seat_mapping(&app.db, "remap", "Readers", None, 0, "test", false)
        .await
        .unwrap();
    assert_eq!(back.reentitled.len(), 2, "{back:?}");
    for id in &ids {
        assert_eq!(seat(&t, id).await, ("default".to_string(), true));
    }
    let err = licensing::set_seat_mapping(&app.db, "remap", "Readers", Some("gold"), 0, "t", false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("known seat types: default, viewer"), "{err}");
    assert!(seatbridge::audit::verify(&app.db, &t.tenant_id)
        .await
        .unwrap()
        .broken_at
        .is_none());
}
