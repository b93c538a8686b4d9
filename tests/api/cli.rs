//! The CLI against a real database: tenant, token, plan and license commands.

use std::process::Command;

use serde_json::Value;

pub fn seatbridge(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_seatbridge"))
        .args(args)
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run seatbridge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tenant_token_plan_and_license_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());

    let (ok, out, err) = seatbridge(
        &db,
        &[
            "plan",
            "set",
            "starter",
            "--seats-default",
            "10",
            "--features",
            "scim.users,scim.groups",
            "--grace-days",
            "3",
        ],
    );
    assert!(ok, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["features"], serde_json::json!(["scim.users", "scim.groups"]));
    let (_, out, _) = seatbridge(&db, &["plan", "list"]);
    let plans: Value = serde_json::from_str(&out).unwrap();
    assert!(plans.as_array().unwrap().iter().any(|p| p["name"] == "starter"));

    let (ok, out, err) = seatbridge(
        &db,
        &[
            "tenant",
            "create",
            "acme",
            "--plan",
            "starter",
            "--seats",
            "5",
            "--expires",
            "2030-01-01T00:00:00Z",
        ],
    );
    assert!(ok, "{err}");
    let tenant: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["license"]["seats"], 5);

    let (ok, _, err) = seatbridge(&db, &["tenant", "create", "acme", "--plan", "starter", "--seats", "5"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = seatbridge(&db, &["tenant", "create", "other", "--plan", "nope", "--seats", "5"]);
    assert!(
        !ok && err.contains("unknown plan 'nope'") && err.contains("plan set"),
        "{err}"
    );

    let (ok, out, err) = seatbridge(&db, &["license", "set", "acme", "--seats", "9", "--expires", "never"]);
    assert!(ok, "{err}");
    let license: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (license["seats"].as_i64(), license["version"].as_i64()),
        (Some(9), Some(2))
    );
    assert!(license["expires_at"].is_null());

    let (ok, out, err) = seatbridge(&db, &["token", "create", "--tenant", "acme", "--name", "okta"]);
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("sbt_"));
    let token_id = err.split_whitespace().nth(2).unwrap().to_string();
    let (ok, _, err) = seatbridge(&db, &["token", "revoke", &token_id]);
    assert!(ok, "{err}");
    let (ok, _, err) = seatbridge(&db, &["token", "revoke", &token_id]);
    assert!(!ok && err.contains("no active token"), "{err}");

    let (ok, _, err) = seatbridge(&db, &["license", "set", "acme", "--expires", "soon"]);
    assert!(!ok && err.contains("RFC 3339"), "{err}");
    let (ok, out, err) = seatbridge(&db, &["license", "set", "acme", "--seats", "1", "--dry-run"]);
    assert!(ok, "{err}");
    let dry: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((dry["dry_run"].as_bool(), dry["seats"].as_i64()), (Some(true), Some(1)));
    let (ok, _, err) = seatbridge(
        &db,
        &["license", "set", "acme", "--seats", "2", "--expected-version", "1"],
    );
    assert!(!ok && err.contains("stale update"), "{err}");

    let (ok, out, err) = seatbridge(&db, &["audit", "verify", "--tenant", "acme"]);
    assert!(ok, "{err}");
    let verified: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verified["intact"], true);
    let (ok, out, _) = seatbridge(&db, &["audit", "export", "--tenant", "acme"]);
    assert!(ok);
    let actions: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        actions,
        vec!["tenant.create", "license.set", "token.create", "token.revoke"]
    );

    let (ok, out, err) = seatbridge(
        &db,
        &["webhook", "add", "--tenant", "acme", "--url", "http://127.0.0.1:9/hook"],
    );
    assert!(ok && out.trim().starts_with("whsec_"), "{err}");
    let (ok, _, _) = seatbridge(&db, &["license", "set", "acme", "--seats", "3"]);
    assert!(ok);
    let (ok, out, err) = seatbridge(&db, &["events", "list", "--tenant", "acme"]);
    assert!(ok, "{err}");
    let deliveries: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(deliveries[0]["event_type"], "license.changed");
    assert_eq!(deliveries[0]["status"], "pending");
    let (ok, _, err) = seatbridge(&db, &["events", "retry"]);
    assert!(!ok && err.contains("delivery id"), "{err}");
    let (ok, _, err) = seatbridge(&db, &["webhook", "add", "--tenant", "acme", "--url", "ftp://x"]);
    assert!(!ok && err.contains("http(s)"), "{err}");
    let (ok, _, err) = seatbridge(&db, &["billing-plan", "set", "stripe", "price_1", "platinum"]);
    assert!(!ok && err.contains("unknown plan"), "{err}");
    let (ok, _, err) = seatbridge(&db, &["billing-plan", "set", "stripe", "price_1", "starter"]);
    assert!(ok, "{err}");
}

/// A command on a database that is already current says nothing about migrations (the first
/// one migrates and logs it); and its text logs carry no colour codes when stderr is a pipe.
#[test]
fn commands_on_a_current_database_do_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_seatbridge"))
            .args(args)
            .env("DATABASE_URL", &db)
            .env("RUST_LOG", "info")
            .output()
            .expect("run seatbridge");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run(&["plan", "list"]);
    assert!(first.contains("Applying migration"), "{first}");
    assert!(!first.contains('\u{1b}'), "no escape codes on a pipe: {first:?}");
    let second = run(&["plan", "list"]);
    assert!(!second.contains("migration"), "{second}");
}
