//! Stage 1 through HTTP: the rules a genuine token is judged by (its client, its kind, the
//! leeway, a cached verification's expiry). Crafted tokens are in `attack.rs`.

use serde_json::{Value, json};

use crate::fake_issuer::now;
use crate::helpers::{Answer, Backend, HttpConnection, World, ask, set};

fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

fn assert_rejected(answer: &Answer, code: &str, label: &str) {
    assert_eq!(answer.status, 401, "{label}: {}", answer.body);
    assert_eq!(answer.body["error"], code, "{label}: {}", answer.body);
    assert!(answer.body["message"].is_string(), "{label}");
    assert_eq!(answer.headers["www-authenticate"], r#"Bearer error="invalid_token""#, "{label}");
}

#[tokio::test]
async fn access_tokens_are_checked_by_client_id_not_aud() {
    let world = World::start().await;
    let good = world.issuer.access_claims("wallet", "wil", "");
    assert_eq!(world.app.check(&world.issuer.sign("wallet", &good), wallet_read()).await.outcome(), "allow");
    let mut other = good.clone();
    other.insert("client_id".into(), json!("other-client"));
    assert_rejected(
        &world.app.check(&world.issuer.sign("wallet", &other), wallet_read()).await,
        "client_not_allowed",
        "client_id",
    );
    let mut missing = good.clone();
    missing.remove("client_id");
    missing.insert("aud".into(), json!(crate::fake_issuer::CLIENT_ID));
    assert_rejected(
        &world.app.check(&world.issuer.sign("wallet", &missing), wallet_read()).await,
        "invalid_claims",
        "no client_id",
    );
}

#[tokio::test]
async fn a_pool_accepts_only_its_configured_token_use() {
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["pools", "wallet", "token_use"], vec!["access"]);
    })
    .await;
    let id = world.issuer.token("wallet", "wil", &[], json!({}));
    assert_rejected(&world.app.check(&id, wallet_read()).await, "wrong_token_use", "id token on access-only pool");
    let access = world.issuer.sign("wallet", &world.issuer.access_claims("wallet", "wil", ""));
    assert_eq!(world.app.check(&access, wallet_read()).await.outcome(), "allow");
}

#[tokio::test]
async fn leeway_tolerates_that_much_skew_and_no_more() {
    let world = World::start_with(&Backend::Sqlite, |config| set(config, &["pools", "wallet", "leeway"], "30s")).await;
    let with_exp = |offset: i64| {
        let mut claims = world.issuer.id_claims("wallet", "wil");
        claims.insert("exp".into(), json!(now() as i64 + offset));
        world.issuer.sign("wallet", &claims)
    };
    assert_eq!(world.app.check(&with_exp(-20), wallet_read()).await.outcome(), "allow");
    assert_rejected(&world.app.check(&with_exp(-40), wallet_read()).await, "token_expired", "past leeway");
}

#[tokio::test]
async fn a_cached_verification_still_expires_with_its_token() {
    let world = World::start().await;
    let mut claims = world.issuer.id_claims("wallet", "wil");
    claims.insert("exp".into(), json!(now() + 2));
    let token = world.issuer.sign("wallet", &claims);
    assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "allow");
    let expired = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        world.app.check(&token, wallet_read()).await.outcome() == "token_expired"
    });
    assert!(expired.await, "the cached verification outlived its token");
    assert_rejected(&world.app.check(&token, wallet_read()).await, "token_expired", "cached, then expired");
}

#[tokio::test]
async fn a_refused_token_leaves_the_connection_open_for_the_next_request() {
    let world = World::start().await;
    let address = world.app.address.trim_start_matches("http://").parse().unwrap();
    let mut connection = HttpConnection::open(address).await.unwrap();
    let body = wallet_read().to_string();
    let request = |token: &str| {
        format!(
            "POST /v1/check HTTP/1.1\r\nHost: poolgate\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let refused = connection.exchange(&request("not.a.token")).await.unwrap();
    assert_eq!((refused.status, refused.closing), (401, false));
    let valid = world.issuer.token("wallet", "wil", &[], json!({}));
    let allowed = connection.exchange(&request(&valid)).await.unwrap();
    assert_eq!(allowed.status, 200, "{}", String::from_utf8_lossy(&allowed.body));
}
