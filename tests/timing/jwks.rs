//! Key fetching with real HTTP: start-up, the unknown-kid cooldown, coalesced fetches, outages,
//! staleness and rotation.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::fake_issuer::{KEYS, Mode};
use crate::helpers::{Backend, World, ask, eventually, set};

fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

#[tokio::test]
async fn every_pool_is_fetched_once_at_start_up() {
    let _serial = crate::serial().await;
    let world = World::start().await;
    for pool in crate::fake_issuer::POOLS {
        assert_eq!(world.issuer.hits(pool), 1, "{pool}");
    }
    let ready = world.app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["pools"]["wallet"], "ok");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_cooldown() {
    let _serial = crate::serial().await;
    let world = World::start().await;
    let claims = json!(world.issuer.id_claims("wallet", "wil")).to_string();
    let tokens: Vec<String> = (0..200)
        .map(|n| {
            KEYS["foreign"]
                .sign_parts(&json!({"alg": "RS256", "kid": format!("forged-{n}")}).to_string(), &claims)
                .unwrap()
        })
        .collect();
    let answers = join_all(tokens.iter().map(|token| world.app.check(token, wallet_read()))).await;
    for answer in &answers {
        assert_eq!((answer.status.as_u16(), answer.outcome()), (401, "unknown_key"), "{}", answer.body);
    }
    assert_eq!(world.issuer.hits("wallet"), 2, "start-up fetch plus one refetch");
    assert_eq!(world.issuer.hits("admin"), 1, "other pools are untouched");
}

#[tokio::test]
async fn a_rotated_in_key_works_on_its_first_request() {
    let _serial = crate::serial().await;
    let world = World::start().await;
    world.issuer.publish("wallet", &["wallet", "rotated"]);
    let token = KEYS["rotated"].sign(&world.issuer.id_claims("wallet", "wil")).unwrap();
    assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "allow");
    assert_eq!(world.issuer.hits("wallet"), 2);
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_endpoint_is_down() {
    let _serial = crate::serial().await;
    let world = World::start_with(&Backend::Sqlite, |config| set(config, &["jwks", "refresh_interval"], "200ms")).await;
    // max_stale (1h by default) outlives the outage, so the old keys keep serving.
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    for mode in [Mode::Down, Mode::Garbage] {
        world.issuer.set_mode(mode);
        let hits = world.issuer.hits("wallet");
        let retried = eventually(Duration::from_secs(3), || async { world.issuer.hits("wallet") > hits + 1 }).await;
        assert!(retried, "the background refresh kept trying");
        assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "allow", "{mode:?}");
    }
}

#[tokio::test]
async fn keys_older_than_max_stale_stop_serving() {
    let _serial = crate::serial().await;
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["jwks", "refresh_interval"], "1s");
        set(config, &["jwks", "max_stale"], "1s");
        set(config, &["jwks", "unknown_kid_cooldown"], "200ms");
    })
    .await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    world.issuer.set_mode(Mode::Down);
    let stale = eventually(Duration::from_secs(5), || async {
        world.app.check(&token, wallet_read()).await.outcome() == "jwks_unavailable"
    })
    .await;
    assert!(stale, "the keys kept serving past max_stale");
    let answer = world.app.check(&token, wallet_read()).await;
    assert_eq!((answer.status.as_u16(), answer.outcome()), (503, "jwks_unavailable"), "{}", answer.body);
    assert_eq!(world.app.get("/readyz").await.status, 503);

    // Once the endpoint is back, a request refetches (within its cooldown budget) and is served.
    world.issuer.set_mode(Mode::Normal);
    let served = eventually(Duration::from_secs(3), || async {
        world.app.check(&token, wallet_read()).await.outcome() == "allow"
    })
    .await;
    assert!(served, "no refetch once the endpoint was back");
}

#[tokio::test]
async fn a_pool_without_keys_answers_503_until_its_keys_arrive() {
    let _serial = crate::serial().await;
    let issuer = crate::fake_issuer::FakeIssuer::start();
    issuer.set_mode(Mode::Down);
    let db = crate::helpers::TestDatabase::create(&Backend::Sqlite).await;
    let mut config = crate::helpers::base_config(&issuer, &db.url);
    set(&mut config, &["jwks", "unknown_kid_cooldown"], "300ms");
    let app = crate::helpers::spawn_app(&config).await;
    let token = issuer.token("wallet", "wil", &[], json!({}));

    let answer = app.check(&token, wallet_read()).await;
    assert_eq!((answer.status.as_u16(), answer.outcome()), (503, "jwks_unavailable"), "{}", answer.body);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["pools"]["wallet"], "no signing keys");

    issuer.set_mode(Mode::Normal);
    let ready = eventually(Duration::from_secs(3), || async { app.get("/readyz").await.status == 200 }).await;
    assert!(ready, "/readyz stayed 503 after the keys came back");
    assert_eq!(app.check(&token, wallet_read()).await.outcome(), "allow");
}

#[tokio::test]
async fn concurrent_requests_share_one_fetch_when_keys_are_missing() {
    let _serial = crate::serial().await;
    let issuer = crate::fake_issuer::FakeIssuer::start();
    issuer.set_mode(Mode::Down);
    let db = crate::helpers::TestDatabase::create(&Backend::Sqlite).await;
    let mut config = crate::helpers::base_config(&issuer, &db.url);
    set(&mut config, &["jwks", "unknown_kid_cooldown"], "1h");
    let app = crate::helpers::spawn_app(&config).await;
    let hits_at_start = issuer.hits("wallet");
    issuer.set_mode(Mode::Normal);
    let token = issuer.token("wallet", "wil", &[], json!({}));
    let answers = join_all((0..20).map(|_| app.check(&token, wallet_read()))).await;
    assert!(answers.iter().all(|a| a.outcome() == "allow"), "every request got the fetched keys");
    assert_eq!(issuer.hits("wallet"), hits_at_start + 1);
}

#[tokio::test]
async fn a_hanging_endpoint_is_abandoned_after_the_fetch_timeout() {
    let _serial = crate::serial().await;
    let issuer = crate::fake_issuer::FakeIssuer::start();
    issuer.set_mode(Mode::Hang);
    let db = crate::helpers::TestDatabase::create(&Backend::Sqlite).await;
    let mut config = crate::helpers::base_config(&issuer, &db.url);
    set(&mut config, &["jwks", "fetch_timeout"], "300ms");
    let started = Instant::now();
    let app = crate::helpers::spawn_app(&config).await;
    assert!(started.elapsed() < Duration::from_secs(3), "start-up waited {:?}", started.elapsed());
    let token = issuer.token("wallet", "wil", &[], json!({}));
    let asked = Instant::now();
    let answer = app.check(&token, wallet_read()).await;
    assert_eq!(answer.status, 503);
    assert!(asked.elapsed() < Duration::from_secs(3), "request waited {:?}", asked.elapsed());
}

#[tokio::test]
async fn a_request_that_outlives_the_request_timeout_is_answered_503() {
    let _serial = crate::serial().await;
    let issuer = crate::fake_issuer::FakeIssuer::start();
    issuer.set_mode(Mode::Hang);
    let db = crate::helpers::TestDatabase::create(&Backend::Sqlite).await;
    let mut config = crate::helpers::base_config(&issuer, &db.url);
    set(&mut config, &["jwks", "fetch_timeout"], "3s");
    set(&mut config, &["server", "request_timeout"], "500ms");
    // Start-up waits for the hanging fetch; give it a pool that is not fetched over HTTP.
    set(&mut config, &["pools", "admin", "jwks_file"], "/nonexistent/jwks.json");
    let started = Instant::now();
    let app = tokio::time::timeout(Duration::from_secs(20), crate::helpers::spawn_app(&config)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(2900), "start-up waited for the fetch timeout");
    let token = issuer.token("wallet", "wil", &[], json!({}));
    let asked = Instant::now();
    let answer = app.check(&token, wallet_read()).await;
    assert_eq!((answer.status.as_u16(), answer.outcome()), (503, "timeout"), "{}", answer.body);
    assert!(asked.elapsed() < Duration::from_secs(2), "answered after {:?}", asked.elapsed());
}

#[tokio::test]
async fn a_cached_token_stops_working_once_its_key_is_rotated_out() {
    let _serial = crate::serial().await;
    let world = World::start_with(&Backend::Sqlite, |config| set(config, &["jwks", "refresh_interval"], "200ms")).await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "allow");
    assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "allow", "served from the cache");
    world.issuer.publish("wallet", &["rotated"]);
    let hits = world.issuer.hits("wallet");
    let refreshed = eventually(Duration::from_secs(3), || async { world.issuer.hits("wallet") > hits + 1 }).await;
    assert!(refreshed, "the background refresh did not run");
    let answer = world.app.check(&token, wallet_read()).await;
    assert_eq!((answer.status.as_u16(), answer.outcome()), (401, "unknown_key"), "{}", answer.body);
}
