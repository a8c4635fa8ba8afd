//! Token lifecycle: paired mode, scopes, `max_token_age`, alternative issuers, and the account
//! switches operators set with SQL (disable, global sign-out, token revocation, registration).

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_issuer::now;
use crate::helpers::{Answer, Backend, World, ask, backends, eventually, repo_path, set};

fn wallet_read() -> Value {
    ask("read", "Wallet", "w-1", json!({ "owner": "wil" }))
}

fn wallet_recharge() -> Value {
    ask("recharge", "Wallet", "w-1", json!({ "owner": "wil" }))
}

async fn check_pair(world: &World, access: &str, id: &str, body: Value) -> Answer {
    let request = world
        .app
        .client
        .post(format!("{}/v1/check", world.app.address))
        .header("Authorization", format!("Bearer {access}"))
        .header("X-Id-Token", id)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    crate::helpers::read(request.send().await.unwrap()).await
}

fn assert_code(answer: &Answer, status: u16, code: &str, label: &str) {
    assert_eq!((answer.status.as_u16(), answer.outcome()), (status, code), "{label}: {}", answer.body);
    if status == 401 {
        assert_eq!(answer.headers["www-authenticate"], r#"Bearer error="invalid_token""#, "{label}");
    }
}

#[tokio::test]
async fn a_matching_pair_joins_the_access_tokens_scopes_with_the_id_tokens_profile() {
    let world = World::start().await;
    let mut access = world.issuer.access_claims("merchant", "mia", "write:recharge");
    access.insert("origin_jti".into(), json!("sign-in-1"));
    access.insert("cognito:groups".into(), json!(["merchant"]));
    let mut id = world.issuer.id_claims("merchant", "mia");
    id.insert("origin_jti".into(), json!("sign-in-1"));
    id.insert("custom:org_id".into(), json!("o1"));
    id.insert("cognito:groups".into(), json!(["merchant"]));
    let (access, id) = (world.issuer.sign("merchant", &access), world.issuer.sign("merchant", &id));

    // `org_id` exists only in the ID token: the read is allowed only because the pair is joined.
    let read = ask("read", "Stock", "sku-1", json!({ "org_id": "o1" }));
    let answer = check_pair(&world, &access, &id, read.clone()).await;
    assert_eq!(answer.outcome(), "allow", "{}", answer.body);
    assert_eq!(world.app.check(&access, read).await.outcome(), "deny", "the access token alone lacks org_id");
}

#[tokio::test]
async fn every_pair_mismatch_is_token_pair_mismatch() {
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["pools", "wallet", "client_ids"], vec![crate::fake_issuer::CLIENT_ID, "second-client"]);
    })
    .await;
    let issuer = &world.issuer;
    let pair = |pool: &str, sub: &str, origin: &str| {
        let mut claims = issuer.id_claims(pool, sub);
        claims.insert("origin_jti".into(), json!(origin));
        issuer.sign(pool, &claims)
    };
    let mut access = issuer.access_claims("wallet", "wil", "write:recharge");
    access.insert("origin_jti".into(), json!("sign-in-1"));
    let access = issuer.sign("wallet", &access);

    assert_eq!(
        check_pair(&world, &access, &pair("wallet", "wil", "sign-in-1"), wallet_recharge()).await.outcome(),
        "allow"
    );
    let cases = [
        ("other sub", pair("wallet", "bob", "sign-in-1")),
        ("other sign-in", pair("wallet", "wil", "sign-in-2")),
        ("other pool", pair("admin", "wil", "sign-in-1")),
        ("other client", {
            let mut claims = issuer.id_claims("wallet", "wil");
            claims.insert("origin_jti".into(), json!("sign-in-1"));
            claims.insert("aud".into(), json!("second-client"));
            issuer.sign("wallet", &claims)
        }),
    ];
    for (label, id) in cases {
        assert_code(&check_pair(&world, &access, &id, wallet_recharge()).await, 401, "token_pair_mismatch", label);
    }
    // The roles are fixed: an ID token as bearer, or an access token as X-Id-Token, is refused.
    let id = pair("wallet", "wil", "sign-in-1");
    assert_code(&check_pair(&world, &id, &id, wallet_recharge()).await, 401, "wrong_token_use", "id as bearer");
    assert_code(
        &check_pair(&world, &access, &access, wallet_recharge()).await,
        401,
        "wrong_token_use",
        "access beside",
    );
    // A bad X-Id-Token fails the request even when the bearer is fine.
    assert_code(
        &check_pair(&world, &access, "garbage", wallet_recharge()).await,
        401,
        "malformed_token",
        "garbage beside",
    );
}

#[tokio::test]
async fn max_token_age_rejects_old_sign_ins_whatever_their_expiry() {
    let world =
        World::start_with(&Backend::Sqlite, |config| set(config, &["pools", "wallet", "max_token_age"], "1h")).await;
    let signed_in = |ago: u64| {
        let mut claims = world.issuer.id_claims("wallet", "wil");
        claims.insert("auth_time".into(), json!(now() - ago));
        world.issuer.sign("wallet", &claims)
    };
    assert_eq!(world.app.check(&signed_in(3000), wallet_read()).await.outcome(), "allow");
    assert_code(&world.app.check(&signed_in(4000), wallet_read()).await, 401, "token_too_old", "two hours");
    let mut no_times = world.issuer.id_claims("wallet", "wil");
    no_times.remove("auth_time");
    no_times.remove("iat");
    let answer = world.app.check(&world.issuer.sign("wallet", &no_times), wallet_read()).await;
    assert_code(&answer, 401, "invalid_claims", "no sign-in time");
}

#[tokio::test]
async fn alternative_issuers_are_accepted_only_where_listed() {
    let alternative = "https://issuer.cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Wallet";
    let token_from = |world: &World| world.issuer.token("wallet", "wil", &[], json!({ "iss": alternative }));

    let plain = World::start().await;
    assert_code(&plain.app.check(&token_from(&plain), wallet_read()).await, 401, "unknown_issuer", "unlisted");

    let listing = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["pools", "wallet", "alternative_issuers"], vec![alternative]);
    })
    .await;
    assert_eq!(listing.app.check(&token_from(&listing), wallet_read()).await.outcome(), "allow");
    let primary = listing.issuer.token("wallet", "wil", &[], json!({}));
    assert_eq!(listing.app.check(&primary, wallet_read()).await.outcome(), "allow");
}

#[tokio::test]
async fn operators_disable_sign_out_and_revoke_with_plain_sql() {
    for backend in backends() {
        // A long cache TTL: every change below must arrive through coherence, not expiry.
        let world = World::start_with(&backend, |config| set(config, &["cache", "flags_ttl"], "1h")).await;
        let token = |sub: &str, extra: Value| world.issuer.token("wallet", sub, &[], extra);
        let read = |owner: &str| ask("read", "Wallet", "w-1", json!({ "owner": owner }));
        let wil = token("wil", json!({ "jti": "jti-wil", "origin_jti": "origin-wil" }));
        let ann = token("ann", json!({ "jti": "jti-ann", "origin_jti": "origin-ann" }));
        let old = token("old", json!({ "auth_time": now() - 600 }));
        let fresh = token("old", json!({ "auth_time": now() }));
        for (token, owner) in [(&wil, "wil"), (&ann, "ann"), (&old, "old"), (&fresh, "old")] {
            assert_eq!(world.app.check(token, read(owner)).await.outcome(), "allow", "{backend:?} warm-up");
        }

        world.db.execute("INSERT INTO principals (pool, subject, disabled) VALUES ('wallet', 'wil', TRUE)").await;
        world
            .db
            .execute(&format!(
                "INSERT INTO revoked_tokens (pool, jti, expires_at) VALUES ('wallet', 'origin-ann', {})",
                now() + 600
            ))
            .await;
        world
            .db
            .execute(&format!(
                "INSERT INTO principals (pool, subject, tokens_valid_after) VALUES ('wallet', 'old', {})",
                now() - 60
            ))
            .await;
        let arrived = eventually(Duration::from_secs(3), || async {
            world.app.check(&wil, read("wil")).await.outcome() == "principal_disabled"
                && world.app.check(&ann, read("ann")).await.outcome() == "token_revoked"
                && world.app.check(&old, read("old")).await.outcome() == "token_revoked"
        });
        assert!(arrived.await, "{backend:?}: the switches did not arrive");
        assert_code(&world.app.check(&wil, read("wil")).await, 401, "principal_disabled", "disabled");
        assert_code(&world.app.check(&ann, read("ann")).await, 401, "token_revoked", "origin_jti revoked");
        assert_code(&world.app.check(&old, read("old")).await, 401, "token_revoked", "signed in before sign-out");
        assert_eq!(world.app.check(&fresh, read("old")).await.outcome(), "allow", "{backend:?}: signed in after");

        // Undoing is just as immediate.
        world.db.execute("UPDATE principals SET disabled = FALSE WHERE pool = 'wallet' AND subject = 'wil'").await;
        world.db.execute("DELETE FROM revoked_tokens WHERE jti = 'origin-ann'").await;
        let undone = eventually(Duration::from_secs(3), || async {
            world.app.check(&wil, read("wil")).await.outcome() == "allow"
                && world.app.check(&ann, read("ann")).await.outcome() == "allow"
        });
        assert!(undone.await, "{backend:?}: undoing did not arrive");
        assert_eq!(world.app.check(&wil, read("wil")).await.outcome(), "allow", "{backend:?}");
        assert_eq!(world.app.check(&ann, read("ann")).await.outcome(), "allow", "{backend:?}");
    }
}

#[tokio::test]
async fn a_revoked_jti_rejects_the_token_and_expired_revocations_are_purged() {
    for backend in backends() {
        let world = World::start_with(&backend, |config| set(config, &["database", "purge_interval"], "300ms")).await;
        let token = world.issuer.token("wallet", "wil", &[], json!({ "jti": "jti-1" }));
        world
            .db
            .execute(&format!(
                "INSERT INTO revoked_tokens (pool, jti, expires_at) VALUES ('wallet', 'jti-1', {})",
                now() + 600
            ))
            .await;
        world
            .db
            .execute(&format!(
                "INSERT INTO revoked_tokens (pool, jti, expires_at) VALUES ('wallet', 'gone', {})",
                now() - 1
            ))
            .await;
        // Same jti, other pool: no effect there.
        world
            .db
            .execute(&format!(
                "INSERT INTO revoked_tokens (pool, jti, expires_at) VALUES ('admin', 'jti-2', {})",
                now() + 600
            ))
            .await;
        let arrived = eventually(Duration::from_secs(3), || async {
            world.app.check(&token, wallet_read()).await.outcome() == "token_revoked"
                && world.db.count("SELECT COUNT(*) FROM revoked_tokens").await == 2
        });
        assert!(arrived.await, "{backend:?}: the revocation or the purge did not happen");
        assert_code(&world.app.check(&token, wallet_read()).await, 401, "token_revoked", "jti");
        let other = world.issuer.token("wallet", "wil", &[], json!({ "jti": "jti-2" }));
        assert_eq!(world.app.check(&other, wallet_read()).await.outcome(), "allow", "{backend:?}");
        assert_eq!(world.db.count("SELECT COUNT(*) FROM revoked_tokens").await, 2, "{backend:?}: expired row purged");
    }
}

#[tokio::test]
async fn require_registered_denies_subjects_without_a_principals_row() {
    for backend in backends() {
        let world =
            World::start_with(&backend, |config| set(config, &["pools", "wallet", "require_registered"], true)).await;
        let token = world.issuer.token("wallet", "wil", &[], json!({}));
        assert_code(&world.app.check(&token, wallet_read()).await, 401, "principal_not_registered", "no row");
        world.db.execute("INSERT INTO principals (pool, subject) VALUES ('wallet', 'wil')").await;
        let registered = eventually(Duration::from_secs(3), || async {
            world.app.check(&token, wallet_read()).await.outcome() == "allow"
        });
        assert!(registered.await, "{backend:?}: the registration did not arrive");
        assert_eq!(world.app.check(&token, wallet_read()).await.outcome(), "allow", "{backend:?}");
        // Other pools do not require it.
        let ada = world.issuer.token("admin", "ada", &["admins"], json!({}));
        assert_eq!(world.app.check(&ada, ask("read", "Account", "a", json!({}))).await.outcome(), "allow");
    }
}

/// Runs `poolgate migrate` against `db` with `data` as the data-migrations folder.
fn migrate(db: &crate::helpers::TestDatabase, data: &std::path::Path) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("poolgate.toml");
    let toml = format!(
        "[database]\nurl = \"{}\"\ndata_migrations = \"{}\"\n\
         [pools.wallet]\nissuer = \"https://i/wallet\"\ntoken_use = [\"id\"]\nclient_ids = [\"c\"]\n",
        db.url,
        data.display()
    );
    std::fs::write(&config, toml).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"))
        .args(["migrate", "--config", config.to_str().unwrap()])
        .env_remove("POOLGATE_CONFIG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn migrate_applies_the_operators_data_migrations_on_every_backend() {
    for backend in backends() {
        let db = crate::helpers::TestDatabase::create(&backend).await;
        for _ in 0..2 {
            let out = migrate(&db, &repo_path("examples/data-migrations"));
            assert!(out.status.success(), "{backend:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let granted = db.count("SELECT COUNT(*) FROM principal_flags WHERE flag = 'can_manage_stock'").await;
        assert_eq!(granted, 1, "{backend:?}: applied once, even when migrate runs twice");
    }
}

#[tokio::test]
async fn data_migrations_with_small_versions_are_refused() {
    let db = crate::helpers::TestDatabase::create(&Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_clash.sql"), "SELECT 1;").unwrap();
    let out = migrate(&db, dir.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("below 1000000000"), "{stderr}");
}
