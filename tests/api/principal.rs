//! Stage 2: flags written with plain SQL change the principal, and therefore the decision, once
//! the flag cache expires even with no change watcher to flush it; a database that cannot answer
//! is a `503`, never an allow. (Coherence, the watcher's prompt flush, is tested in
//! `lifecycle.rs` and, for its timing, in `tests/timing/coherence.rs`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, World, ask, backends, eventually, set};

fn stock_update() -> Value {
    ask("update", "Stock", "sku-1", json!({ "org_id": "o1" }))
}

#[tokio::test]
async fn a_flag_change_reaches_a_cached_principal_when_the_cache_ttl_expires() {
    // SQLite's change poll is pushed out to an hour, so only the 1 s TTL can refresh the cache.
    let world = World::start_with(&Backend::Sqlite, |config| {
        set(config, &["database", "change_poll_interval"], "1h");
        set(config, &["cache", "flags_ttl"], "1s");
    })
    .await;
    let token = world.issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
    assert_eq!(world.app.check(&token, stock_update()).await.outcome(), "deny");

    world
        .db
        .execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
        .await;
    assert_eq!(world.app.check(&token, stock_update()).await.outcome(), "deny", "still the cached principal");
    let granted = eventually(Duration::from_secs(5), || async {
        world.app.check(&token, stock_update()).await.outcome() == "allow"
    });
    assert!(granted.await, "the grant never arrived");
    let answer = world.app.check(&token, stock_update()).await;
    assert_eq!(answer.body["principal"]["flags"], json!(["can_manage_stock"]));

    world.db.execute("DELETE FROM principal_flags WHERE pool = 'merchant' AND subject = 'mia'").await;
    assert_eq!(world.app.check(&token, stock_update()).await.outcome(), "allow", "still the cached principal");
    let revoked = eventually(Duration::from_secs(5), || async {
        world.app.check(&token, stock_update()).await.outcome() == "deny"
    });
    assert!(revoked.await, "the revocation never arrived");
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
        let failing = eventually(Duration::from_secs(5), || async {
            world.app.check(&token, stock_update()).await.outcome() == "database_unavailable"
        });
        assert!(failing.await, "{backend:?}: the outage never showed");
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
