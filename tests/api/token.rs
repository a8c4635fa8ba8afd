//! Stage 1 through HTTP: every rejection is a `401` with a stable code and
//! `WWW-Authenticate: Bearer error="invalid_token"`, and never an allow.

use serde_json::{Value, json};

use crate::fake_issuer::{KEYS, now};
use crate::helpers::{Answer, Backend, World, ask, set};

fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

fn assert_rejected(answer: &Answer, code: &str, label: &str) {
    assert_eq!(answer.status, 401, "{label}: {}", answer.body);
    assert_eq!(answer.body["error"], code, "{label}: {}", answer.body);
    assert!(answer.body["message"].is_string(), "{label}");
    assert_eq!(answer.headers["www-authenticate"], r#"Bearer error="invalid_token""#, "{label}");
}

/// (label, mutation of valid wallet ID-token claims, expected code)
type ClaimCase = (&'static str, fn(&mut serde_json::Map<String, Value>), &'static str);

#[tokio::test]
async fn each_claim_problem_has_its_own_code() {
    let world = World::start().await;
    let cases: Vec<ClaimCase> = vec![
        (
            "expired",
            |c| {
                c.insert("exp".into(), json!(now() - 10));
            },
            "token_expired",
        ),
        (
            "exp is now",
            |c| {
                c.insert("exp".into(), json!(now()));
            },
            "token_expired",
        ),
        (
            "exp missing",
            |c| {
                c.remove("exp");
            },
            "invalid_claims",
        ),
        (
            "exp a string",
            |c| {
                c.insert("exp".into(), json!((now() + 300).to_string()));
            },
            "invalid_claims",
        ),
        (
            "exp null",
            |c| {
                c.insert("exp".into(), Value::Null);
            },
            "invalid_claims",
        ),
        (
            "nbf in the future",
            |c| {
                c.insert("nbf".into(), json!(now() + 30));
            },
            "token_not_yet_valid",
        ),
        (
            "nbf a string",
            |c| {
                c.insert("nbf".into(), json!("0"));
            },
            "invalid_claims",
        ),
        (
            "iat in the future",
            |c| {
                c.insert("iat".into(), json!(now() + 30));
            },
            "issued_in_future",
        ),
        (
            "iat a bool",
            |c| {
                c.insert("iat".into(), json!(true));
            },
            "invalid_claims",
        ),
        (
            "token_use unknown",
            |c| {
                c.insert("token_use".into(), json!("refresh"));
            },
            "wrong_token_use",
        ),
        (
            "token_use missing",
            |c| {
                c.remove("token_use");
            },
            "invalid_claims",
        ),
        (
            "aud not allowed",
            |c| {
                c.insert("aud".into(), json!("other-client"));
            },
            "client_not_allowed",
        ),
        (
            "aud missing",
            |c| {
                c.remove("aud");
            },
            "invalid_claims",
        ),
        (
            "aud a number",
            |c| {
                c.insert("aud".into(), json!(5));
            },
            "invalid_claims",
        ),
        (
            "sub missing",
            |c| {
                c.remove("sub");
            },
            "invalid_claims",
        ),
        (
            "sub empty",
            |c| {
                c.insert("sub".into(), json!(""));
            },
            "invalid_claims",
        ),
        (
            "groups a string",
            |c| {
                c.insert("cognito:groups".into(), json!("admins"));
            },
            "invalid_claims",
        ),
        (
            "groups numbers",
            |c| {
                c.insert("cognito:groups".into(), json!([1, 2]));
            },
            "invalid_claims",
        ),
        (
            "groups null",
            |c| {
                c.insert("cognito:groups".into(), Value::Null);
            },
            "invalid_claims",
        ),
        (
            "email a number",
            |c| {
                c.insert("email".into(), json!(1));
            },
            "invalid_claims",
        ),
    ];
    for (label, mutate, code) in cases {
        let mut claims = world.issuer.id_claims("wallet", "wil");
        mutate(&mut claims);
        let token = world.issuer.sign("wallet", &claims);
        assert_rejected(&world.app.check(&token, wallet_read()).await, code, label);
    }
    // The untouched claims are accepted, so each case above fails for its own reason.
    let fine = world.issuer.sign("wallet", &world.issuer.id_claims("wallet", "wil"));
    assert_eq!(world.app.check(&fine, wallet_read()).await.outcome(), "allow");
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
async fn structural_problems_are_rejected_before_any_key_fetch() {
    let world = World::start().await;
    let before = world.issuer.total_hits();
    let valid = world.issuer.token("wallet", "wil", &[], json!({}));
    let key = &KEYS["wallet"];
    let payload = json!(world.issuer.id_claims("wallet", "wil")).to_string();
    let signed = |header: Value| key.sign_parts(&header.to_string(), &payload).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("two segments", "a.b".into(), "malformed_token"),
        ("five segments (JWE)", "a.b.c.d.e".into(), "malformed_token"),
        ("garbage", "not a token".into(), "malformed_token"),
        ("alg none", signed(json!({"alg": "none", "kid": "kid-wallet"})), "unsupported_algorithm"),
        ("alg HS256", signed(json!({"alg": "HS256", "kid": "kid-wallet"})), "unsupported_algorithm"),
        ("alg missing", signed(json!({"kid": "kid-wallet"})), "unsupported_algorithm"),
        (
            "jku header",
            signed(json!({"alg": "RS256", "kid": "kid-wallet", "jku": "http://127.0.0.1:1/"})),
            "malformed_token",
        ),
        ("jwk header", signed(json!({"alg": "RS256", "kid": "kid-wallet", "jwk": key.jwk()})), "malformed_token"),
        (
            "x5u header",
            signed(json!({"alg": "RS256", "kid": "kid-wallet", "x5u": "http://127.0.0.1:1/"})),
            "malformed_token",
        ),
        ("x5c header", signed(json!({"alg": "RS256", "kid": "kid-wallet", "x5c": ["MII"]})), "malformed_token"),
        ("crit header", signed(json!({"alg": "RS256", "kid": "kid-wallet", "crit": ["exp"]})), "malformed_token"),
        ("kid missing", signed(json!({"alg": "RS256"})), "malformed_token"),
        ("kid a number", signed(json!({"alg": "RS256", "kid": 7})), "malformed_token"),
        (
            "unknown issuer",
            world.issuer.token("wallet", "wil", &[], json!({"iss": "https://evil.example/wallet"})),
            "unknown_issuer",
        ),
        (
            "issuer trailing slash",
            world.issuer.token("wallet", "wil", &[], json!({"iss": format!("{}/", world.issuer.issuer("wallet"))})),
            "unknown_issuer",
        ),
    ];
    for (label, token, code) in cases {
        assert_rejected(&world.app.check(&token, wallet_read()).await, code, label);
    }
    let oversized = format!("{valid}{}", "A".repeat(8 * 1024));
    assert_rejected(&world.app.check(&oversized, wallet_read()).await, "token_too_large", "oversized");
    assert_eq!(world.issuer.total_hits(), before, "no rejection above may fetch keys");
}

#[tokio::test]
async fn missing_or_non_bearer_credentials_are_missing_token() {
    let world = World::start().await;
    let answer = world.app.post("/v1/check", None, wallet_read()).await;
    assert_rejected(&answer, "missing_token", "no header");
    let response = world
        .app
        .client
        .post(format!("{}/v1/check", world.app.address))
        .header("Authorization", "Basic d2lsOnB3")
        .body(wallet_read().to_string())
        .send()
        .await
        .unwrap();
    assert_rejected(&crate::helpers::read(response).await, "missing_token", "basic auth");
}

#[tokio::test]
async fn signatures_must_come_from_the_pools_own_key() {
    let world = World::start().await;
    let claims = world.issuer.id_claims("wallet", "wil");
    // A foreign key under the wallet pool's kid.
    let forged = KEYS["foreign"]
        .sign_parts(&json!({"alg": "RS256", "kid": "kid-wallet"}).to_string(), &json!(claims).to_string())
        .unwrap();
    assert_rejected(&world.app.check(&forged, wallet_read()).await, "invalid_signature", "foreign key");
    // Claims tampered with after signing.
    let valid = world.issuer.sign("wallet", &claims);
    let mut parts: Vec<&str> = valid.split('.').collect();
    let mut richer = claims.clone();
    richer.insert("cognito:groups".into(), json!(["admins"]));
    let tampered_payload = base64_url(&json!(richer).to_string());
    parts[1] = &tampered_payload;
    assert_rejected(&world.app.check(&parts.join("."), wallet_read()).await, "invalid_signature", "tampered");
    // The admin pool's key (and kid) with the wallet pool's issuer: keys are per pool.
    let cross = KEYS["admin"].sign(&claims).unwrap();
    assert_rejected(&world.app.check(&cross, wallet_read()).await, "unknown_key", "other pool's kid");
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn a_cached_verification_still_expires_with_its_token() {
    let world = World::start().await;
    let mut claims = world.issuer.id_claims("wallet", "wil");
    claims.insert("exp".into(), json!(now() + 2));
    let token = world.issuer.sign("wallet", &claims);
    assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "allow");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_rejected(&world.app.check(&token, wallet_read()).await, "token_expired", "cached, then expired");
}
