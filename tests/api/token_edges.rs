//! Two token edges through HTTP: an ID token's list of audiences must name allowed clients
//! only, and a key-set refresh that is not a valid JWKS keeps the last good keys and counts as
//! a failed fetch. The broken key sets are served by a small JWKS endpoint of this file, since
//! the fake issuer only publishes well-formed keys.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use toml::Table;

use crate::fake_issuer::{CLIENT_ID, KEYS};
use crate::helpers::{Answer, Backend, TestApp, World, ask, eventually, set};

fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

fn assert_refused(answer: &Answer, code: &str, label: &str) {
    assert_eq!((answer.status.as_u16(), answer.outcome()), (401, code), "{label}: {}", answer.body);
}

/// A wallet ID token whose `aud` is `aud`.
fn with_audience(world: &World, aud: Value) -> String {
    let mut claims = world.issuer.id_claims("wallet", "wil");
    claims.insert("aud".into(), aud);
    world.issuer.sign("wallet", &claims)
}

#[tokio::test]
async fn an_audience_list_with_one_foreign_client_is_refused() {
    let world = World::start().await;
    for aud in [json!([CLIENT_ID, "foreign-client"]), json!(["foreign-client", CLIENT_ID])] {
        let answer = world.app.check(&with_audience(&world, aud.clone()), wallet_read()).await;
        assert_refused(&answer, "client_not_allowed", &aud.to_string());
    }
}

#[tokio::test]
async fn an_audience_list_of_allowed_clients_only_is_accepted() {
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["pools", "wallet", "client_ids"], vec![CLIENT_ID, "second-client"]);
    })
    .await;
    for aud in [json!([CLIENT_ID]), json!([CLIENT_ID, "second-client"]), json!(["second-client", CLIENT_ID])] {
        let answer = world.app.check(&with_audience(&world, aud.clone()), wallet_read()).await;
        assert_eq!(answer.outcome(), "allow", "{aud}: {}", answer.body);
    }
    let answer = world.app.check(&with_audience(&world, json!(["second-client", "third-client"])), wallet_read()).await;
    assert_refused(&answer, "client_not_allowed", "one of two is allowed");
}

#[tokio::test]
async fn an_empty_audience_list_is_refused() {
    let world = World::start().await;
    assert_refused(&world.app.check(&with_audience(&world, json!([])), wallet_read()).await, "invalid_claims", "[]");
    let mixed = with_audience(&world, json!([CLIENT_ID, 7]));
    assert_refused(&world.app.check(&mixed, wallet_read()).await, "invalid_claims", "a number in the list");
}

/// A JWKS endpoint on port 0 that serves whatever document it is given, and counts requests.
struct JwksEndpoint {
    url: String,
    document: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

impl JwksEndpoint {
    fn start(document: Value) -> Self {
        let document = Arc::new(Mutex::new(document));
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/jwks.json", listener.local_addr().unwrap().port());
        let (served, counted) = (Arc::clone(&document), Arc::clone(&hits));
        let server = HttpServer::new(move || {
            let (served, counted) = (Arc::clone(&served), Arc::clone(&counted));
            App::new().route(
                "/jwks.json",
                web::get().to(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().unwrap().to_string();
                    async move { HttpResponse::Ok().content_type("application/json").body(body) }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { url, document, hits }
    }

    fn serve(&self, document: Value) {
        *self.document.lock().unwrap() = document;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The wallet pool's good key set: its own key.
fn good_key_set() -> Value {
    json!({ "keys": [KEYS["wallet"].jwk()] })
}

/// Documents that parse as JSON but are not a valid JWKS; each breaks the known key's entry.
fn broken_key_sets() -> Vec<(&'static str, Value)> {
    let mut alg_a_number = KEYS["wallet"].jwk();
    alg_a_number["alg"] = json!(256);
    let mut without_n = KEYS["wallet"].jwk();
    without_n.as_object_mut().unwrap().remove("n");
    vec![
        ("alg a number", json!({ "keys": [alg_a_number, KEYS["rotated"].jwk()] })),
        ("keys not an array", json!({ "keys": KEYS["wallet"].jwk() })),
        ("a key without n", json!({ "keys": [without_n, KEYS["rotated"].jwk()] })),
    ]
}

/// A world whose wallet pool fetches its keys from `endpoint`, with `edit` applied.
async fn world_with_endpoint(endpoint: &JwksEndpoint, edit: impl FnOnce(&mut Table)) -> World {
    let url = endpoint.url.clone();
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["pools", "wallet", "jwks_uri"], url);
        edit(config);
    })
    .await;
    assert_eq!(failed_fetches(&world.app).await, 0.0, "start-up fetched the good keys");
    world
}

/// `poolgate_jwks_fetches_total{pool="wallet",result="error"}` from `GET /metrics`.
async fn failed_fetches(app: &TestApp) -> f64 {
    let page = app.get("/metrics").await;
    let text = page.body["raw"].as_str().unwrap_or_default().to_owned();
    let series = r#"poolgate_jwks_fetches_total{pool="wallet",result="error"}"#;
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// A wallet token signed with the known key, never seen before (so never served from the
/// verified-token cache).
fn fresh_known_token(world: &World, label: &str) -> String {
    world.issuer.token("wallet", "wil", &[], json!({ "jti": format!("{label}-{}", uuid::Uuid::new_v4()) }))
}

#[tokio::test]
async fn a_broken_key_set_on_the_background_refresh_keeps_the_last_good_keys() {
    let endpoint = JwksEndpoint::start(good_key_set());
    let world = world_with_endpoint(&endpoint, |config| set(config, &["jwks", "refresh_interval"], "100ms")).await;
    assert_eq!(world.app.check(&fresh_known_token(&world, "before"), wallet_read()).await.outcome(), "allow");
    for (label, document) in broken_key_sets() {
        let failed = failed_fetches(&world.app).await;
        endpoint.serve(document);
        assert!(
            eventually(Duration::from_secs(5), || async { failed_fetches(&world.app).await > failed }).await,
            "{label}: the refresh was not counted as a failed fetch"
        );
        let answer = world.app.check(&fresh_known_token(&world, label), wallet_read()).await;
        assert_eq!(answer.outcome(), "allow", "{label}: {}", answer.body);
        let ready = world.app.get("/readyz").await;
        assert_eq!((ready.status.as_u16(), &ready.body["pools"]["wallet"]), (200, &json!("ok")), "{label}");
    }
    // A valid document is taken again, key rotation included.
    endpoint.serve(json!({ "keys": [KEYS["rotated"].jwk()] }));
    let rotated = KEYS["rotated"].sign(&world.issuer.id_claims("wallet", "wil")).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            world.app.check(&rotated, wallet_read()).await.outcome() == "allow"
        })
        .await,
        "the rotated key was never picked up"
    );
}

#[tokio::test]
async fn a_broken_key_set_fetched_for_an_unknown_kid_keeps_the_last_good_keys() {
    let endpoint = JwksEndpoint::start(good_key_set());
    let world = world_with_endpoint(&endpoint, |config| set(config, &["jwks", "unknown_kid_cooldown"], "200ms")).await;
    // Signed by a key the wallet pool does not know yet: each try may refetch, once per cooldown.
    let unknown_kid = KEYS["rotated"].sign(&world.issuer.id_claims("wallet", "wil")).unwrap();
    for (label, document) in broken_key_sets() {
        let (failed, hits) = (failed_fetches(&world.app).await, endpoint.hits());
        endpoint.serve(document);
        let refetched = eventually(Duration::from_secs(5), || async {
            let answer = world.app.check(&unknown_kid, wallet_read()).await;
            assert_refused(&answer, "unknown_key", label);
            endpoint.hits() > hits
        })
        .await;
        assert!(refetched, "{label}: the unknown kid never caused a refetch");
        assert!(failed_fetches(&world.app).await > failed, "{label}: not counted as a failed fetch");
        let answer = world.app.check(&fresh_known_token(&world, label), wallet_read()).await;
        assert_eq!(answer.outcome(), "allow", "{label}: {}", answer.body);
    }
    assert_eq!(world.app.get("/readyz").await.status, 200);
}
