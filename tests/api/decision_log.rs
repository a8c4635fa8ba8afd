//! The decision log, read from a real process's output: one JSON record per answer in the
//! documented schema, never the token, independent of `log.filter`, switchable and sampled, and
//! complete after a graceful shutdown under load. Request ids are echoed.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_issuer::FakeIssuer;
use crate::helpers::{Backend, ProcessApp, TestDatabase, World, ask, base_config, eventually, repo_path, set};

/// The record's fields, as `docs/decision-log.md` documents them.
const FIELDS: [&str; 12] = [
    "time",
    "request_id",
    "pool",
    "sub",
    "action",
    "resource_type",
    "resource_id",
    "decision",
    "determining_policies",
    "error",
    "policy_version",
    "latency_us",
];

fn records(app: &ProcessApp) -> Vec<Value> {
    std::fs::read_to_string(&app.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}")))
        .collect()
}

async fn records_eventually(app: &ProcessApp, count: usize) -> Vec<Value> {
    eventually(Duration::from_secs(5), || async { records(app).len() >= count }).await;
    records(app)
}

fn process_config(issuer: &FakeIssuer, db: &TestDatabase) -> toml::Table {
    let mut config = base_config(issuer, &db.url);
    set(&mut config, &["decision_log", "sink"], "stdout");
    config
}

#[tokio::test]
async fn every_answer_is_one_record_in_the_documented_schema_without_the_token() {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let app = ProcessApp::start(&process_config(&issuer, &db)).await;
    let client = app.client();
    let token = issuer.token("wallet", "wil", &[], json!({}));
    assert_eq!(client.check(&token, ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))).await.outcome(), "allow");
    assert_eq!(client.check(&token, ask("read", "Wallet", "w-2", json!({ "owner": "bob" }))).await.outcome(), "deny");
    let expired = issuer.token("wallet", "wil", &[], json!({ "exp": 1 }));
    client.check(&expired, ask("read", "Wallet", "w-1", json!({}))).await;

    let lines = records_eventually(&app, 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        let mut keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut documented = FIELDS.to_vec();
        documented.sort();
        assert_eq!(keys, documented, "{line}");
        assert!(humantime::parse_rfc3339(line["time"].as_str().unwrap()).is_ok(), "{line}");
        assert!(line["latency_us"].is_u64() && line["policy_version"].as_str().unwrap().len() == 64, "{line}");
        assert!(!line["request_id"].as_str().unwrap().is_empty(), "{line}");
    }
    let allow = &lines[0];
    assert_eq!(
        (&allow["decision"], &allow["pool"], &allow["sub"], &allow["action"]),
        (&json!("allow"), &json!("wallet"), &json!("wil"), &json!("read"))
    );
    assert_eq!((&allow["resource_type"], &allow["resource_id"]), (&json!("Wallet"), &json!("w-1")));
    assert_eq!(allow["determining_policies"], json!(["wallet.read-own-wallet"]));
    assert_eq!(allow["error"], Value::Null);
    assert_eq!((&lines[1]["decision"], &lines[1]["determining_policies"]), (&json!("deny"), &json!([])));
    let refused = &lines[2];
    assert_eq!((&refused["decision"], &refused["error"]), (&json!("error"), &json!("token_expired")));
    assert_eq!((&refused["pool"], &refused["sub"], &refused["action"]), (&Value::Null, &Value::Null, &Value::Null));

    let output = std::fs::read_to_string(&app.stdout).unwrap() + &std::fs::read_to_string(&app.log).unwrap();
    for secret in [&token, &expired] {
        assert!(!output.contains(secret.rsplit('.').next().unwrap()), "a token was logged");
    }
}

#[tokio::test]
async fn the_documented_schema_names_every_field_of_a_record() {
    let doc = std::fs::read_to_string(repo_path("docs/decision-log.md")).unwrap();
    for field in FIELDS {
        assert!(doc.contains(&format!("| `{field}` |")), "docs/decision-log.md does not document `{field}`");
    }
}

#[tokio::test]
async fn quieting_the_diagnostic_log_keeps_the_decision_log() {
    let issuer = FakeIssuer::start();
    let token = issuer.token("wallet", "wil", &[], json!({}));
    for filter in ["warn", "off"] {
        let db = TestDatabase::create(&Backend::Sqlite).await;
        let mut config = process_config(&issuer, &db);
        set(&mut config, &["log", "filter"], filter);
        let app = ProcessApp::start(&config).await;
        for _ in 0..3 {
            app.client().check(&token, ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))).await;
        }
        assert_eq!(records_eventually(&app, 3).await.len(), 3, "log.filter = {filter}");
    }
}

#[tokio::test]
async fn the_decision_log_can_be_sampled_or_switched_off() {
    let issuer = FakeIssuer::start();
    let token = issuer.token("wallet", "wil", &[], json!({}));
    for (enabled, rate, expected) in [(true, 0.5, 5), (false, 1.0, 0)] {
        let db = TestDatabase::create(&Backend::Sqlite).await;
        let mut config = process_config(&issuer, &db);
        set(&mut config, &["decision_log", "enabled"], enabled);
        set(&mut config, &["decision_log", "sample_rate"], rate);
        let mut app = ProcessApp::start(&config).await;
        for _ in 0..10 {
            app.client().check(&token, ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))).await;
        }
        // After a graceful stop every kept record has been written.
        app.signal("TERM");
        assert!(app.wait(Duration::from_secs(10)).is_some_and(|status| status.success()));
        assert_eq!(records(&app).len(), expected, "enabled {enabled}, rate {rate}");
    }
}

#[tokio::test]
async fn no_record_is_lost_on_a_graceful_shutdown_under_load() {
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut app = ProcessApp::start(&process_config(&issuer, &db)).await;
    let token = issuer.token("wallet", "wil", &[], json!({}));
    let client = reqwest::Client::new();
    let url = format!("{}/v1/check", app.address);
    let body = ask("read", "Wallet", "w-1", json!({ "owner": "wil" }));
    // 16 callers send until the server goes away; each answer names its request id.
    let callers: Vec<_> = (0..16)
        .map(|caller| {
            let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                for n in 0.. {
                    let id = format!("caller{caller}-{n}");
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("x-request-id", &id)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send();
                    match sent.await {
                        Ok(response) if response.status() == 200 => answered.push(id),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                answered
            })
        })
        .collect();
    let under_load = eventually(Duration::from_secs(10), || async { records(&app).len() >= 500 }).await;
    assert!(under_load, "fewer than 500 records under load");
    app.signal("TERM");
    assert!(app.wait(Duration::from_secs(10)).is_some_and(|status| status.success()), "no graceful exit");
    let mut answered = Vec::new();
    for caller in callers {
        answered.extend(caller.await.unwrap());
    }
    let logged: HashSet<String> =
        records(&app).iter().map(|record| record["request_id"].as_str().unwrap().to_owned()).collect();
    let missing: Vec<&String> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(answered.len() >= 500, "only {} answers", answered.len());
    assert!(missing.is_empty(), "{} of {} answered decisions have no record", missing.len(), answered.len());
}

#[tokio::test]
async fn the_request_id_is_taken_from_the_caller_or_made_and_always_echoed() {
    let world = World::start().await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    let url = format!("{}/v1/check", world.app.address);
    let body = ask("read", "Wallet", "w-1", json!({ "owner": "wil" }));
    let given = world
        .app
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("x-request-id", "trace-42")
        .header("content-type", "application/json")
        .body(body.to_string());
    let given = given.send().await.unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-42");
    let made = world
        .app
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let first = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    let again = world
        .app
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(!first.is_empty() && first != again.headers()["x-request-id"].to_str().unwrap());
    // An unusable id (too long, or not visible ASCII) is replaced, and refusals echo too.
    let long = "x".repeat(129);
    let replaced = world
        .app
        .client
        .post(&url)
        .header("x-request-id", &long)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 401);
    let echoed = replaced.headers()["x-request-id"].to_str().unwrap();
    assert!(!echoed.is_empty() && echoed != long);
}
