//! Hot reload: a valid change to `policies/` takes effect without a restart, an invalid one
//! keeps the old set serving, and `SIGHUP` reloads a process whose file watching is off.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    Backend, ProcessApp, TestApp, TestDatabase, World, ask, base_config, copy_policies, eventually, set,
};

/// Wallet reads now also need the `can_read` flag.
const STRICTER_WALLET: &str = r#"
@id("wallet.read-own-wallet-with-flag")
permit (principal, action == Wallet::Action::"read", resource is Wallet::Wallet)
when { resource.owner == principal.sub && principal.flags.contains("can_read") };
"#;

fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

async fn version(app: &TestApp) -> String {
    app.get("/readyz").await.body["policy_version"].as_str().unwrap().to_owned()
}

async fn wait_for_version_change(app: &TestApp, old: &str) -> String {
    let changed = eventually(Duration::from_secs(5), || async { version(app).await != old });
    assert!(changed.await, "no reload after 5 s");
    version(app).await
}

/// `poolgate_policy_reloads_total{result}`.
async fn reloads(app: &TestApp, result: &str) -> f64 {
    let metrics = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    let series = format!(r#"poolgate_policy_reloads_total{{result="{result}"}} "#);
    metrics.lines().find_map(|line| line.strip_prefix(&series)).and_then(|n| n.parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn a_valid_change_is_picked_up_and_an_invalid_one_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    let policies = dir.path().display().to_string();
    let world = World::start_with(&Backend::Sqlite, |config| set(config, &["policies", "dir"], policies)).await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    let first = world.app.check(&token, wallet_read()).await;
    assert_eq!(first.outcome(), "allow");
    let v1 = first.body["policy_version"].as_str().unwrap().to_owned();
    assert_eq!(v1, version(&world.app).await);

    std::fs::write(dir.path().join("wallet.cedar"), STRICTER_WALLET).unwrap();
    let v2 = wait_for_version_change(&world.app, &v1).await;
    let answer = world.app.check(&token, wallet_read()).await;
    assert_eq!(answer.outcome(), "deny", "{}", answer.body);
    assert_eq!(answer.body["policy_version"], v2.as_str());

    std::fs::write(dir.path().join("broken.cedar"), "permit (principal, action, resource) when { ;").unwrap();
    let refused = eventually(Duration::from_secs(5), || async { reloads(&world.app, "refused").await >= 1.0 });
    assert!(refused.await, "the invalid change was never tried");
    assert_eq!(version(&world.app).await, v2, "the invalid change was not swapped in");
    assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "deny");
}

#[tokio::test]
async fn sighup_reloads_the_policies() {
    let issuer = crate::fake_issuer::FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    copy_policies(dir.path());
    let mut config = base_config(&issuer, &db.url);
    set(&mut config, &["policies", "dir"], dir.path().display().to_string());
    set(&mut config, &["policies", "watch"], false);
    let process = ProcessApp::start(&config).await;
    let app = process.client();
    let token = issuer.token("wallet", "wil", &[], json!({}));
    assert_eq!(app.check(&token, wallet_read()).await.outcome(), "allow");
    let v1 = version(&app).await;

    std::fs::write(dir.path().join("wallet.cedar"), STRICTER_WALLET).unwrap();
    // Nothing can be awaited: this checks that nothing happens within twice the debounce time.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(version(&app).await, v1, "file watching is off");
    assert_eq!(reloads(&app, "ok").await + reloads(&app, "refused").await, 0.0, "no reload was tried");

    process.signal("HUP");
    wait_for_version_change(&app, &v1).await;
    assert_eq!(app.check(&token, wallet_read()).await.outcome(), "deny");
}

#[tokio::test]
async fn sigterm_stops_the_server_with_exit_code_zero() {
    let issuer = crate::fake_issuer::FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut process = ProcessApp::start(&base_config(&issuer, &db.url)).await;
    let app = process.client();
    let token = issuer.token("wallet", "wil", &[], json!({}));
    assert_eq!(app.check(&token, wallet_read()).await.outcome(), "allow");
    process.signal("TERM");
    let status = process.wait(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(app.client.get(format!("{}/healthz", app.address)).send().await.is_err(), "no longer listening");
}
