//! Stage 3 through HTTP with the repository's policies: what the answer reports, deny when a
//! policy errors, batches, permissions, and `400` for questions the schema does not allow.
//! The seed scenario's matrix is in `policy_matrix.rs`.

use serde_json::{Value, json};

use crate::helpers::{Backend, World, ask, repo_path, set};

#[tokio::test]
async fn groups_and_flags_are_reported_in_the_answer() {
    let world = World::start().await;
    world.db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('admin', 'ada', 'can_add_user')").await;
    let token = world.issuer.token("admin", "ada", &["admins", "support"], json!({}));
    let answer = world.app.check(&token, ask("create", "Account", "a", json!({}))).await;
    assert_eq!(answer.outcome(), "allow");
    assert_eq!(answer.body["principal"]["groups"], json!(["admins", "support"]));
    assert_eq!(answer.body["principal"]["flags"], json!(["can_add_user"]));
    assert_eq!(answer.body["errors"], json!([]));
}

#[tokio::test]
async fn access_token_scopes_reach_the_policies() {
    let world = World::start().await;
    let with_scope = world.issuer.sign("wallet", &world.issuer.access_claims("wallet", "wil", "openid write:recharge"));
    let without = world.issuer.sign("wallet", &world.issuer.access_claims("wallet", "wil", "openid"));
    let recharge = ask("recharge", "Wallet", "w-1", json!({ "owner": "wil" }));
    assert_eq!(world.app.check(&with_scope, recharge.clone()).await.outcome(), "allow");
    assert_eq!(world.app.check(&without, recharge).await.outcome(), "deny");
}

#[tokio::test]
async fn questions_the_schema_does_not_allow_are_invalid_requests() {
    let world = World::start().await;
    let token = world.issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
    let bad = [
        ask("fly", "Stock", "sku-1", json!({ "org_id": "o1" })),
        ask("read", "Spaceship", "sku-1", json!({})),
        ask("read", "Admin::Account", "a", json!({})),
        ask("read", "Account", "a", json!({})),
        ask("read", "Stock", "sku-1", json!({})),
        ask("read", "Stock", "sku-1", json!({ "org_id": 7 })),
        ask("read", "Stock", "sku-1", json!({ "org_id": "o1", "extra": true })),
        json!({ "action": "read" }),
        json!({ "resource": { "type": "Stock", "id": "x" } }),
        json!({ "action": "read", "resource": { "type": "Stock", "id": "x", "attributes": { "org_id": "o1" } }, "token": "t" }),
        json!([1, 2]),
    ];
    for body in bad {
        let answer = world.app.check(&token, body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert_eq!(answer.outcome(), "invalid_request", "{body}");
    }
}

#[tokio::test]
async fn ids_with_cedar_syntax_are_opaque_strings() {
    let world = World::start().await;
    let sneaky = r#"w" || true || ""#;
    let token = world.issuer.token("wallet", sneaky, &[], json!({}));
    let mine = world.app.check(&token, ask("read", "Wallet", sneaky, json!({ "owner": sneaky }))).await;
    assert_eq!(mine.outcome(), "allow");
    let other = world.app.check(&token, ask("read", "Wallet", sneaky, json!({ "owner": "wil" }))).await;
    assert_eq!(other.outcome(), "deny");
}

#[tokio::test]
async fn batch_answers_each_item_in_order_and_limits_its_size() {
    let world = World::start().await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    let mine = ask("read", "Wallet", "w-1", json!({ "owner": "wil" }));
    let theirs = ask("read", "Wallet", "w-2", json!({ "owner": "bob" }));
    let answer = world.app.post("/v1/check/batch", Some(&token), json!({ "items": [mine, theirs, mine] })).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let decisions: Vec<&str> =
        answer.body["results"].as_array().unwrap().iter().map(|r| r["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["allow", "deny", "allow"]);
    assert_eq!(answer.body["principal"]["sub"], "wil");

    let too_many: Vec<Value> = (0..101).map(|_| mine.clone()).collect();
    let answer = world.app.post("/v1/check/batch", Some(&token), json!({ "items": too_many })).await;
    assert_eq!((answer.status.as_u16(), answer.outcome()), (400, "invalid_request"));
    let answer = world.app.post("/v1/check/batch", Some(&token), json!({ "items": [] })).await;
    assert_eq!(answer.status, 400);
    let answer = world
        .app
        .post("/v1/check/batch", Some(&token), json!({ "items": [mine, ask("fly", "Wallet", "w", json!({}))] }))
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["message"].as_str().unwrap().contains("items[1]"), "{}", answer.body);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let world = World::start().await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));
    let huge = ask("read", "Wallet", &"x".repeat(70_000), json!({ "owner": "wil" }));
    let answer = world.app.check(&token, huge).await;
    assert_eq!((answer.status.as_u16(), answer.outcome()), (413, "payload_too_large"));
}

/// A policy folder whose `forbid` errors at run time (integer overflow) next to a `permit`
/// that matches: Cedar would skip the forbid and allow; poolgate must deny.
#[tokio::test]
async fn a_forbid_that_errors_turns_the_answer_into_deny() {
    let dir = tempfile::tempdir().unwrap();
    // Every configured pool needs its User type; only Wallet gets a resource and an action.
    let user = |namespace: &str, extra: &str| {
        format!(
            "namespace {namespace} {{ entity Group; entity User in [Group] {{ sub: String, pool: String, \
             token_use: String, email?: String, flags: Set<String>, scopes: Set<String>, {extra} }}; {} }}",
            if namespace == "Wallet" {
                "entity Wallet { owner: String, balance: Long }; \
                 action read appliesTo { principal: User, resource: Wallet };"
            } else {
                ""
            }
        )
    };
    let schema = [user("Wallet", ""), user("Admin", ""), user("Merchant", "org_id?: String,")].join("\n");
    std::fs::write(dir.path().join("schema.cedarschema"), schema).unwrap();
    std::fs::write(
        dir.path().join("wallet.cedar"),
        r#"@id("permit-all-reads")
           permit (principal, action == Wallet::Action::"read", resource);
           @id("forbid-overdrawn")
           forbid (principal, action, resource is Wallet::Wallet)
           when { resource.balance + 9223372036854775807 < 0 };"#,
    )
    .unwrap();
    let policies = dir.path().display().to_string();
    let world = World::start_with(&Backend::Sqlite, |config| set(config, &["policies", "dir"], policies)).await;
    let token = world.issuer.token("wallet", "wil", &[], json!({}));

    let calm = world.app.check(&token, ask("read", "Wallet", "w", json!({ "owner": "wil", "balance": -5 }))).await;
    assert_eq!(calm.outcome(), "allow", "{}", calm.body);

    let overflow = world.app.check(&token, ask("read", "Wallet", "w", json!({ "owner": "wil", "balance": 1 }))).await;
    assert_eq!(overflow.status, 200);
    assert_eq!(overflow.outcome(), "deny", "{}", overflow.body);
    let errors = overflow.body["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e.as_str().unwrap().contains("forbid-overdrawn")), "{}", overflow.body);
    assert_eq!(overflow.body["determining_policies"], json!([]));
}

#[tokio::test]
async fn the_shipped_policies_validate_against_the_schema() {
    let bundle = poolgate::decision::policies::load(&repo_path("policies"), &Default::default());
    assert!(bundle.is_ok(), "{}", bundle.err().map(|e| e.to_string()).unwrap_or_default());
}

#[tokio::test]
async fn permissions_lists_the_allowed_actions_per_resource() {
    let world = World::start().await;
    world.db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('admin', 'ada', 'can_add_user')").await;
    world
        .db
        .execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
        .await;
    let list = |token: String, resources: Value| {
        let app = &world.app;
        async move { app.post("/v1/permissions", Some(&token), json!({ "resources": resources })).await }
    };
    let actions = |answer: &crate::helpers::Answer, index: usize| -> Vec<String> {
        answer.body["resources"][index]["allowed_actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };

    let ada =
        list(world.issuer.token("admin", "ada", &["admins"], json!({})), json!([{ "type": "Account", "id": "a" }]))
            .await;
    assert_eq!(ada.status, 200, "{}", ada.body);
    assert_eq!(actions(&ada, 0), ["create", "delete", "read", "update"]);
    let sam =
        list(world.issuer.token("admin", "sam", &["support"], json!({})), json!([{ "type": "Account", "id": "a" }]))
            .await;
    assert_eq!(actions(&sam, 0), ["read"]);

    let mia = world.issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
    let stock = json!([
        { "type": "Stock", "id": "mine", "attributes": { "org_id": "o1" } },
        { "type": "Stock", "id": "theirs", "attributes": { "org_id": "o2" } },
    ]);
    let answer = list(mia.clone(), stock).await;
    assert_eq!(actions(&answer, 0), ["read", "update"]);
    assert!(actions(&answer, 1).is_empty());
    assert_eq!(answer.body["resources"][1]["id"], "theirs");

    for bad in [
        json!([{ "type": "Spaceship", "id": "x" }]),
        json!([]),
        json!(
            (0..101)
                .map(|n| json!({ "type": "Stock", "id": n.to_string(), "attributes": { "org_id": "o1" } }))
                .collect::<Vec<_>>()
        ),
    ] {
        let answer = list(mia.clone(), bad).await;
        assert_eq!((answer.status.as_u16(), answer.outcome()), (400, "invalid_request"), "{}", answer.body);
    }
}
