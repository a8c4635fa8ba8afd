//! The decision log, read from a real process's JSON output: one line per decision with the
//! fields operators need, never the token, and switchable and sampled by configuration.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_issuer::FakeIssuer;
use crate::helpers::{Backend, ProcessApp, TestDatabase, ask, base_config, set};

fn decision_lines(app: &ProcessApp) -> Vec<Value> {
    std::fs::read_to_string(&app.log)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "poolgate::decision")
        .collect()
}

#[tokio::test]
async fn every_decision_is_logged_as_json_without_the_token() {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let app = ProcessApp::start(&base_config(&issuer, &db.url)).await;
    let client = app.client();
    let token = issuer.token("wallet", "wil", &[], json!({}));
    assert_eq!(client.check(&token, ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))).await.outcome(), "allow");
    assert_eq!(client.check(&token, ask("read", "Wallet", "w-2", json!({ "owner": "bob" }))).await.outcome(), "deny");
    let expired = issuer.token("wallet", "wil", &[], json!({ "exp": 1 }));
    client.check(&expired, ask("read", "Wallet", "w-1", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let lines = decision_lines(&app);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let allow = &lines[0]["fields"];
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["pool"], "wallet");
    assert_eq!(allow["sub"], "wil");
    assert_eq!(allow["action"], "read");
    assert_eq!(allow["resource_type"], "Wallet");
    assert_eq!(allow["resource_id"], "w-1");
    assert!(allow["determining_policies"].as_str().unwrap().contains("wallet.read-own-wallet"));
    assert!(allow["latency_us"].is_u64());
    assert!(lines[0]["timestamp"].is_string());
    assert!(lines[0]["spans"][0]["request_id"].is_string(), "{}", lines[0]);
    assert_eq!(lines[1]["fields"]["decision"], "deny");
    assert_eq!(lines[2]["fields"]["decision"], "error");
    assert_eq!(lines[2]["fields"]["error"], "token_expired");

    let log = std::fs::read_to_string(&app.log).unwrap();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature) && !log.contains(expired.rsplit('.').next().unwrap()), "a token was logged");
}

#[tokio::test]
async fn the_decision_log_can_be_sampled_or_switched_off() {
    let issuer = FakeIssuer::start();
    let token = issuer.token("wallet", "wil", &[], json!({}));
    for (enabled, rate, expected) in [(true, 0.5, 5), (false, 1.0, 0)] {
        let db = TestDatabase::create(&Backend::Sqlite).await;
        let mut config = base_config(&issuer, &db.url);
        set(&mut config, &["decision_log", "enabled"], enabled);
        set(&mut config, &["decision_log", "sample_rate"], rate);
        let app = ProcessApp::start(&config).await;
        let client = app.client();
        for _ in 0..10 {
            client.check(&token, ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(decision_lines(&app).len(), expected, "enabled {enabled}, rate {rate}");
    }
}
