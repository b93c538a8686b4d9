//! License changes, dry runs, the sweeper and renewal, observed through the SCIM API.

use serde_json::json;

use seatbridge::license::{LicenseStatus, Policy};
use seatbridge::licensing::{self, LicenseUpdate, LicensingError};

use crate::helpers::*;

async fn tenant_with_users<'a>(
    app: &'a TestApp,
    slug: &str,
    seats: i64,
    users: usize,
) -> (TenantClient<'a>, Vec<String>) {
    let t = app.tenant(slug, "team", seats).await;
    let mut ids = Vec::new();
    for i in 0..users {
        let (status, body) = t.create_user(&format!("{slug}{i}"), true).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    (t, ids)
}

fn ids_of(list: &[licensing::UserChange]) -> Vec<String> {
    list.iter().map(|u| u.id.clone()).collect()
}

#[tokio::test]
async fn a_dry_run_reports_exactly_what_the_real_run_does() {
    let app = TestApp::spawn().await;
    let (t, ids) = tenant_with_users(&app, "shrink", 5, 5).await;
    let update = LicenseUpdate {
        seats: Some(3),
        policy: Some(Policy::DeactivateNewest),
        ..Default::default()
    };

    let dry = licensing::update_license(&app.db, "shrink", &update, "test", true)
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        ids_of(&dry.deentitled),
        vec![ids[4].clone(), ids[3].clone()],
        "newest first"
    );
    assert_eq!(t.entitled().await, 5, "a dry run changes nothing");

    let real = licensing::update_license(&app.db, "shrink", &update, "test", false)
        .await
        .unwrap();
    assert_eq!(
        (real.deentitled.clone(), real.reentitled.clone()),
        (dry.deentitled.clone(), dry.reentitled.clone())
    );
    assert_eq!((real.version, dry.version), (2, 2));
    assert_eq!(t.entitled().await, 3);
    let (_, newest) = t.get(&format!("/Users/{}", ids[4])).await;
    assert_eq!(newest["active"], json!(true), "the IdP's active is never touched");
    assert_eq!(newest[SEATBRIDGE]["entitled"], json!(false));
    assert_eq!(newest[SEATBRIDGE]["entitlementReason"], "seat_reduction");

    // A freed seat goes to the user who has waited longest; both lost their seat in the same
    // change, so creation order decides.
    let (status, _) = t
        .patch(
            &format!("/Users/{}", ids[0]),
            TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}])),
        )
        .await;
    assert_eq!(status, 200);
    let (_, older) = t.get(&format!("/Users/{}", ids[3])).await;
    let (_, newer) = t.get(&format!("/Users/{}", ids[4])).await;
    assert_eq!(older[SEATBRIDGE]["entitled"], json!(true));
    assert_eq!(newer[SEATBRIDGE]["entitled"], json!(false));
    assert_eq!(t.entitled().await, 3);
}

#[tokio::test]
async fn block_new_keeps_everyone_and_refuses_newcomers() {
    let app = TestApp::spawn().await;
    let (t, _) = tenant_with_users(&app, "blocky", 4, 4).await;
    let report = licensing::update_license(
        &app.db,
        "blocky",
        &LicenseUpdate {
            seats: Some(2),
            ..Default::default()
        },
        "test",
        false,
    )
    .await
    .unwrap();
    assert!(report.deentitled.is_empty());
    assert_eq!(report.policy, "block_new");
    assert_eq!(t.entitled().await, 4);
    let (status, err) = t.create_user("newcomer", true).await;
    assert_eq!((status, err["code"].clone()), (403, json!("SEAT_LIMIT_REACHED")));
    assert!(err["detail"].as_str().unwrap().contains("4 of 2 seats"), "{err}");
}

#[tokio::test]
async fn expiry_deentitles_everyone_and_renewal_reseats_oldest_first() {
    let app = TestApp::spawn().await;
    let (t, ids) = tenant_with_users(&app, "lapse", 5, 5).await;

    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    t.set_license(&format!("expires_at = '{yesterday}'")).await;
    let sweep = licensing::sweep_once(&app.db).await.unwrap();
    assert_eq!(sweep.transitions, vec![("lapse".to_string(), "grace".to_string())]);
    assert_eq!((sweep.deentitled, t.entitled().await), (0, 5), "grace keeps access");

    let long_ago = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    t.set_license(&format!("expires_at = '{long_ago}'")).await;
    let sweep = licensing::sweep_once(&app.db).await.unwrap();
    assert_eq!(sweep.transitions, vec![("lapse".to_string(), "expired".to_string())]);
    assert_eq!(sweep.deentitled, 5);
    let (_, user) = t.get(&format!("/Users/{}", ids[0])).await;
    assert_eq!(user["active"], json!(true));
    assert_eq!(user[SEATBRIDGE]["entitlementReason"], "license_expired");
    assert!(
        licensing::sweep_once(&app.db).await.unwrap().transitions.is_empty(),
        "a second sweep has nothing to do"
    );

    let renewal = LicenseUpdate {
        expires_at: Some(None),
        seats: Some(3),
        ..Default::default()
    };
    let report = licensing::update_license(&app.db, "lapse", &renewal, "billing", false)
        .await
        .unwrap();
    assert_eq!(report.status, "active");
    assert_eq!(
        ids_of(&report.reentitled),
        ids[..3].to_vec(),
        "oldest first, up to the seat count"
    );
    assert_eq!(t.entitled().await, 3);
    let chain = seatbridge::audit::verify(&app.db, &t.tenant_id).await.unwrap();
    assert!(chain.broken_at.is_none());
}

#[tokio::test]
async fn stale_and_invalid_updates_are_refused() {
    let app = TestApp::spawn().await;
    app.tenant("versioned", "team", 5).await;
    let stale = LicenseUpdate {
        seats: Some(9),
        expected_version: Some(7),
        ..Default::default()
    };
    let err = licensing::update_license(&app.db, "versioned", &stale, "test", false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LicensingError::StaleVersion {
                expected: 7,
                current: 1
            }
        ),
        "{err}"
    );
    let bad = LicenseUpdate {
        status: Some(LicenseStatus::Expired),
        ..Default::default()
    };
    assert!(matches!(
        licensing::update_license(&app.db, "versioned", &bad, "t", false).await,
        Err(LicensingError::Invalid(_))
    ));
    let unknown = LicenseUpdate {
        plan: Some("platinum".into()),
        ..Default::default()
    };
    let err = licensing::update_license(&app.db, "versioned", &unknown, "t", false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("known plans: enterprise, free, team"), "{err}");
    let fresh = LicenseUpdate {
        seats: Some(9),
        expected_version: Some(1),
        ..Default::default()
    };
    assert_eq!(
        licensing::update_license(&app.db, "versioned", &fresh, "t", false)
            .await
            .unwrap()
            .version,
        2
    );
}

#[tokio::test]
async fn suspension_deentitles_and_reinstatement_restores() {
    let app = TestApp::spawn().await;
    let (t, _) = tenant_with_users(&app, "paused", 3, 3).await;
    let suspend = LicenseUpdate {
        status: Some(LicenseStatus::Suspended),
        ..Default::default()
    };
    let report = licensing::update_license(&app.db, "paused", &suspend, "billing", false)
        .await
        .unwrap();
    assert_eq!(report.deentitled.len(), 3);
    assert!(report.deentitled.iter().all(|u| u.reason == "license_suspended"));
    let reinstate = LicenseUpdate {
        status: Some(LicenseStatus::Active),
        ..Default::default()
    };
    let report = licensing::update_license(&app.db, "paused", &reinstate, "billing", false)
        .await
        .unwrap();
    assert_eq!(report.reentitled.len(), 3);
    assert_eq!(t.entitled().await, 3);
}
