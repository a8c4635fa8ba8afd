//! Stage 2 on both backends: flags written with plain SQL change the principal, and therefore
//! the decision, once the flag cache expires; a database that cannot answer is a `503`, never an
//! allow.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{World, ask, backends};

fn stock_update() -> Value {
    ask("update", "Stock", "sku-1", json!({ "org_id": "o1" }))
}

#[tokio::test]
async fn a_flag_granted_by_sql_allows_after_the_cache_ttl_and_revoking_denies_again() {
    for backend in backends() {
        let world = World::start_with(&backend, |_| {}).await;
        let token = world.issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
        assert_eq!(world.app.check(&token, stock_update()).await.outcome(), "deny", "{backend:?}");

        world
            .db
            .execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
            .await;
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let answer = world.app.check(&token, stock_update()).await;
        assert_eq!(answer.outcome(), "allow", "{backend:?}: {}", answer.body);
        assert_eq!(answer.body["principal"]["flags"], json!(["can_manage_stock"]));

        world.db.execute("DELETE FROM principal_flags WHERE pool = 'merchant' AND subject = 'mia'").await;
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(world.app.check(&token, stock_update()).await.outcome(), "deny", "{backend:?}");
    }
}

#[tokio::test]
async fn flags_belong_to_one_pool_and_subject() {
    for backend in backends() {
        let world = World::start_with(&backend, |_| {}).await;
        // The same subject in another pool, and another subject in this pool, hold the flag.
        world
            .db
            .execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('admin', 'mia', 'can_manage_stock')")
            .await;
        world
            .db
            .execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'max', 'can_manage_stock')")
            .await;
        let token = world.issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
        let answer = world.app.check(&token, stock_update()).await;
        assert_eq!(answer.outcome(), "deny", "{backend:?}");
        assert_eq!(answer.body["principal"]["flags"], json!([]));
    }
}

#[tokio::test]
async fn a_failing_database_gives_503_and_never_an_allow_then_recovers() {
    for backend in backends() {
        let world = World::start_with(&backend, |_| {}).await;
        world
            .db
            .execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
            .await;
        let token = world.issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
        // Break the flag query the way an outage would: the table is gone.
        world.db.execute("ALTER TABLE principal_flags RENAME TO principal_flags_away").await;
        tokio::time::sleep(Duration::from_millis(1300)).await;
        for _ in 0..5 {
            let answer = world.app.check(&token, stock_update()).await;
            assert_eq!(
                (answer.status.as_u16(), answer.outcome()),
                (503, "database_unavailable"),
                "{backend:?}: {}",
                answer.body
            );
        }
        world.db.execute("ALTER TABLE principal_flags_away RENAME TO principal_flags").await;
        assert_eq!(world.app.check(&token, stock_update()).await.outcome(), "allow", "{backend:?}");
    }
}
