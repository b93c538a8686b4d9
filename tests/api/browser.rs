//! The admin console in headless Chromium (Debian's, driven by playwright-core): log in
//! through the real OpenID Provider, read the dashboard after SCIM creates (a full pool warns),
//! create and revoke a token, preview a downgrade, read why a create was refused. Screenshots
//! land in `target/tmp/browser-shots/`.

use crate::helpers::AdminApp;

#[tokio::test]
async fn an_operator_uses_the_console_in_a_real_browser() {
    let a = AdminApp::spawn().await;
    let t = a.app.tenant("globex", "team", 3).await;
    // So that the previewed downgrade takes seats away.
    t.set_license("policy = 'deactivate_newest'").await;
    for name in ["ada", "bob", "cy"] {
        assert_eq!(t.create_user(&format!("{name}@globex.test"), true).await.0, 201);
    }
    assert_eq!(t.create_user("dee@globex.test", true).await.0, 403, "the pool is full");
    let shots = concat!(env!("CARGO_TARGET_TMPDIR"), "/browser-shots");
    let _ = std::fs::remove_dir_all(shots);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/browser/admin.mjs");
    // Async, so the server on this test's runtime keeps answering while the browser runs.
    let out = tokio::process::Command::new("node")
        .arg(script)
        .env("BASE_URL", &a.app.base)
        .env("LOGIN", "operator@example.test")
        .env("TENANT", "globex")
        .env("EXPECT_IN_USE", "3")
        .env("EXPECT_LIMIT", "3")
        .env("EXPECT_WARNING", "1")
        .env("EXPECT_REFUSAL", "SEAT_LIMIT_REACHED")
        .env("DOWNGRADE_SEATS", "1")
        .env("SHOTS_DIR", shots)
        .output()
        .await
        .expect("node runs tests/support/browser/admin.mjs (run tests/support/install-browser-peers.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "browser run failed (screenshots in {shots}):\n{stdout}\n{stderr}"
    );
    // The preview changed nothing.
    assert_eq!(t.entitled().await, 3);
}
