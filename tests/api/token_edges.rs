//! Token edges through HTTP: an ID token's list of audiences must name allowed clients only
//! (OpenID Connect Core 1.0 §3.1.3.7).

use serde_json::{Value, json};

use crate::fake_issuer::CLIENT_ID;
use crate::helpers::{Answer, Backend, World, ask, set};

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
