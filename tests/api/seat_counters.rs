//! The per-pool user counters (`user_counts`) that seat checks, list totals and seat usage read.
//! Every test of this binary also checks them against a full recount when its `TestApp` drops
//! (helpers.rs); these tests drive each seat path on purpose, the migration's backfill, and the
//! operator's check-and-repair command.

use serde_json::{json, Value};

use seatbridge::license::Policy;
use seatbridge::licensing::{self, LicenseUpdate};
use seatbridge::store::user_counts::{self, PoolCount};

use crate::cli::seatbridge;
use crate::helpers::*;

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

async fn assert_consistent(app: &TestApp) {
    let drift = user_counts::drift(&app.db).await.expect("drift");
    assert!(drift.is_empty(), "counters differ from a recount: {drift:?}");
}

async fn pool(app: &TestApp, tenant_id: &str, seat_type: &str) -> PoolCount {
    user_counts::pools(&app.db, tenant_id)
        .await
        .expect("pools")
        .into_iter()
        .find(|p| p.seat_type == seat_type)
        .unwrap_or(PoolCount {
            seat_type: seat_type.into(),
            users: 0,
            active: 0,
            entitled: 0,
            waiting: 0,
        })
}

fn deactivate() -> Value {
    TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}]))
}

fn activate() -> Value {
    TestApp::patch_body(json!([{"op":"replace","value":{"active":true}}]))
}

#[tokio::test]
async fn counters_follow_every_seat_path() {
    let app = TestApp::spawn().await;
    app.sql(r#"UPDATE plans SET seat_pools = '{"viewer": 1}' WHERE name = 'team'"#)
        .await;
    let t = app.tenant("counted", "team", 3).await;
    let tid = t.tenant_id.clone();

    // Creates: two active (seated), one inactive; a fourth and fifth fill and overflow the pool.
    let a = id_of(&t.create_user("a", true).await.1);
    let b = id_of(&t.create_user("b", true).await.1);
    let c = id_of(&t.create_user("c", false).await.1);
    let d = id_of(&t.create_user("d", true).await.1);
    let (status, _) = t.create_user("e", true).await;
    assert_eq!(status, 403, "the fourth seat does not exist");
    let default = pool(&app, &tid, "default").await;
    assert_eq!(
        (default.users, default.active, default.entitled, default.waiting),
        (4, 3, 3, 0),
        "a refused create left nothing counted"
    );
    assert_consistent(&app).await;

    // Deactivate, reactivate, delete.
    assert_eq!(t.patch(&format!("/Users/{a}"), deactivate()).await.0, 200);
    assert_eq!(pool(&app, &tid, "default").await.entitled, 2);
    assert_eq!(t.patch(&format!("/Users/{c}"), activate()).await.0, 200);
    assert_eq!(t.delete(&format!("/Users/{d}")).await, 204);
    let default = pool(&app, &tid, "default").await;
    assert_eq!((default.users, default.active, default.entitled), (3, 2, 2));
    assert_consistent(&app).await;

    // A seat mapping moves b to the viewer pool; the default pool frees a seat.
    let (_, g) = t
        .post(
            "/Groups",
            json!({"schemas":[GROUP],"displayName":"Viewers","members":[{"value": b}]}),
        )
        .await;
    let _viewers = id_of(&g);
    licensing::set_seat_mapping(&app.db, "counted", "viewers", Some("viewer"), 0, "test", false)
        .await
        .expect("mapping");
    assert_eq!(pool(&app, &tid, "viewer").await.entitled, 1);
    assert_eq!(pool(&app, &tid, "default").await.entitled, 1);
    assert_consistent(&app).await;

    // An admin hold takes c's seat; it is not waiting (nobody hands it a seat).
    licensing::set_hold(&app.db, "counted", &c, true, "test")
        .await
        .expect("hold");
    let default = pool(&app, &tid, "default").await;
    assert_eq!((default.active, default.entitled, default.waiting), (1, 0, 0));
    // The IdP toggling a held user changes `active` alone (the hold stays).
    assert_eq!(t.patch(&format!("/Users/{c}"), deactivate()).await.0, 200);
    assert_eq!(pool(&app, &tid, "default").await.active, 0);
    assert_eq!(t.patch(&format!("/Users/{c}"), activate()).await.0, 200);
    let default = pool(&app, &tid, "default").await;
    assert_eq!((default.active, default.entitled, default.waiting), (1, 0, 0));
    licensing::set_hold(&app.db, "counted", &c, false, "test")
        .await
        .expect("release");
    assert_eq!(pool(&app, &tid, "default").await.entitled, 1);

    // A license that shrinks to nothing makes the active users wait; renewal reseats them.
    let shrink = LicenseUpdate {
        seats: Some(0),
        policy: Some(Policy::DeactivateNewest),
        ..Default::default()
    };
    licensing::update_license(&app.db, "counted", &shrink, "test", false)
        .await
        .expect("shrink");
    let default = pool(&app, &tid, "default").await;
    assert_eq!((default.entitled, default.waiting), (0, 1));
    // Deactivating a waiting user changes only `active`: it leaves the line.
    assert_eq!(t.patch(&format!("/Users/{c}"), deactivate()).await.0, 200);
    let default = pool(&app, &tid, "default").await;
    assert_eq!((default.active, default.entitled, default.waiting), (0, 0, 0));
    let grow = LicenseUpdate {
        seats: Some(5),
        ..Default::default()
    };
    licensing::update_license(&app.db, "counted", &grow, "test", false)
        .await
        .expect("grow");
    assert_eq!(t.patch(&format!("/Users/{c}"), activate()).await.0, 200);
    let default = pool(&app, &tid, "default").await;
    assert_eq!((default.entitled, default.waiting), (1, 0));
    assert_consistent(&app).await;

    // The list total comes from the counters when there is no filter; a filter counts.
    let (_, all) = t.get("/Users?count=1").await;
    assert_eq!(all["totalResults"], 3, "{all}");
    let (_, active) = t.get("/Users?filter=active%20eq%20true&count=1").await;
    assert_eq!(active["totalResults"], 2, "{active}");
}

#[tokio::test]
async fn the_migration_counts_existing_users_and_can_be_rolled_back() {
    use migration::{Migrator, MigratorTrait};
    let app = TestApp::spawn().await;
    let t = app.tenant("before", "team", 2).await;
    for (name, active) in [("x", true), ("y", true), ("z", true), ("w", false)] {
        t.create_user(name, active).await;
    }
    // Roll back the counters (table and triggers) and the waiting-line index after them, write
    // behind their back, and re-apply.
    Migrator::down(&app.db, Some(2)).await.expect("down");
    app.sql("UPDATE users SET active = true WHERE user_name = 'w'").await;
    Migrator::up(&app.db, None).await.expect("up");

    let default = pool(&app, &t.tenant_id, "default").await;
    assert_eq!(
        (default.users, default.active, default.entitled, default.waiting),
        (3, 3, 2, 1),
        "x and y seated, z refused (2 seats), w activated in SQL and waiting"
    );
    assert_consistent(&app).await;
}

#[tokio::test]
async fn check_counts_reports_drift_and_repairs_it() {
    let app = TestApp::spawn().await;
    let t = app.tenant("drifted", "team", 5).await;
    t.create_user("one", true).await;
    t.create_user("two", true).await;
    let url = app.config.database_url.clone();

    let (ok, out, _) = seatbridge(&url, &["db", "check-counts"]);
    assert!(ok, "{out}");
    assert!(out.contains(r#""consistent":true"#), "{out}");

    // Counters changed behind the triggers' back (as a partial restore could).
    app.sql(&format!(
        "UPDATE user_counts SET entitled = 7 WHERE tenant_id = '{}'",
        t.tenant_id
    ))
    .await;
    let (ok, out, err) = seatbridge(&url, &["db", "check-counts"]);
    assert!(!ok, "drift must fail the check: {out}");
    assert!(out.contains(r#""entitled":7"#), "{out}");
    assert!(err.contains("check-counts --repair"), "says what to do: {err}");

    let (ok, out, err) = seatbridge(&url, &["db", "check-counts", "--repair"]);
    assert!(ok, "{err}");
    assert!(out.contains(r#""repaired_pools":1"#), "{out}");
    assert_consistent(&app).await;
    assert_eq!(pool(&app, &t.tenant_id, "default").await.entitled, 2);
}

#[tokio::test]
async fn deleting_a_tenant_takes_its_counters_with_it() {
    let app = TestApp::spawn().await;
    let gone = app.tenant("gone", "team", 5).await;
    let stays = app.tenant("stays", "team", 5).await;
    for t in [&gone, &stays] {
        t.create_user("one", true).await;
        t.create_user("two", false).await;
    }
    // An operator's offboarding: users and counters go by cascade, in either order.
    app.sql(&format!("DELETE FROM tenants WHERE id = '{}'", gone.tenant_id))
        .await;
    assert!(user_counts::pools(&app.db, &gone.tenant_id)
        .await
        .expect("pools")
        .is_empty());
    let kept = pool(&app, &stays.tenant_id, "default").await;
    assert_eq!((kept.users, kept.active, kept.entitled), (2, 1, 1));
    assert_consistent(&app).await;
}
