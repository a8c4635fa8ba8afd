//! Many replicas, one database: a change made with plain SQL reaches every replica's cache
//! within a second, through LISTEN/NOTIFY on PostgreSQL and `data_version` polling on SQLite,
//! including after the listener's connection is killed; an unreachable database is a `503`.
//!
//! Run with `--nocapture` to see the measured propagation times.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_issuer::FakeIssuer;
use crate::helpers::{
    Backend, ProcessApp, TestApp, TestDatabase, ask, base_config, eventually, postgres_url, set, spawn_app,
};

const CHANGES: usize = 20;
const DEADLINE: Duration = Duration::from_secs(1);

fn stock_update() -> Value {
    ask("update", "Stock", "sku-1", json!({ "org_id": "o1" }))
}

/// How long until every replica answers `expected`; panics past two seconds.
async fn propagation(replicas: &[TestApp], token: &str, body: &Value, expected: &str) -> Duration {
    let started = Instant::now();
    for replica in replicas {
        let left = Duration::from_secs(2).saturating_sub(started.elapsed());
        let arrived = eventually(left, || async { replica.check(token, body.clone()).await.outcome() == expected });
        assert!(arrived.await, "no `{expected}` after 2 s");
    }
    started.elapsed()
}

/// Toggles a flag `CHANGES` times and reports median and max propagation to all replicas.
async fn toggle_flag(label: &str, db: &TestDatabase, replicas: &[TestApp], token: &str) {
    let mut times = Vec::with_capacity(CHANGES);
    for n in 0..CHANGES {
        let (sql, expected) = if n % 2 == 0 {
            (
                "INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')",
                "allow",
            )
        } else {
            ("DELETE FROM principal_flags WHERE pool = 'merchant' AND subject = 'mia'", "deny")
        };
        db.execute(sql).await;
        times.push(propagation(replicas, token, &stock_update(), expected).await);
    }
    times.sort();
    let (median, max) = (times[CHANGES / 2], times[CHANGES - 1]);
    eprintln!("{label}: propagation over {CHANGES} changes: median {median:?}, max {max:?}");
    assert!(max < DEADLINE, "{label}: slowest change took {max:?}");
}

async fn warm(replicas: &[TestApp], token: &str) {
    for replica in replicas {
        assert_eq!(replica.check(token, stock_update()).await.outcome(), "deny");
    }
}

#[tokio::test]
async fn two_replicas_on_postgres_converge_within_a_second_even_after_the_listener_is_killed() {
    let _serial = crate::serial().await;
    let Some(url) = postgres_url() else { return };
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Postgres(url)).await;
    let mut config = base_config(&issuer, &db.url);
    set(&mut config, &["cache", "flags_ttl"], "1h");
    let replicas = [spawn_app(&config).await, spawn_app(&config).await];
    let token = issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
    warm(&replicas, &token).await;

    toggle_flag("postgres", &db, &replicas, &token).await;

    db.execute("INSERT INTO principals (pool, subject, disabled) VALUES ('merchant', 'mia', TRUE)").await;
    let took = propagation(&replicas, &token, &stock_update(), "principal_disabled").await;
    assert!(took < DEADLINE, "disable took {took:?}");
    db.execute("DELETE FROM principals WHERE subject = 'mia'").await;
    propagation(&replicas, &token, &stock_update(), "deny").await;

    // Kill both listeners' connections; the change below happens while they reconnect.
    let killed = db
        .count(&format!(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND query LIKE 'LISTEN%') AS killed",
            db.name().unwrap()
        ))
        .await;
    assert_eq!(killed, 2, "one listener per replica");
    db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
        .await;
    let took = propagation(&replicas, &token, &stock_update(), "allow").await;
    assert!(took < DEADLINE, "after the listeners were killed: {took:?}");
    db.execute("DELETE FROM principal_flags WHERE pool = 'merchant' AND subject = 'mia'").await;
    propagation(&replicas, &token, &stock_update(), "deny").await;
    toggle_flag("postgres after reconnect", &db, &replicas, &token).await;
}

#[tokio::test]
async fn two_processes_on_one_sqlite_file_converge_within_a_second() {
    let _serial = crate::serial().await;
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut config = base_config(&issuer, &db.url);
    set(&mut config, &["cache", "flags_ttl"], "1h");
    let first = ProcessApp::start(&config).await;
    let second = ProcessApp::start(&config).await;
    let replicas = [first.client(), second.client()];
    let token = issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
    warm(&replicas, &token).await;

    toggle_flag("sqlite", &db, &replicas, &token).await;

    db.execute(&format!(
        "INSERT INTO revoked_tokens (pool, jti, expires_at) VALUES ('merchant', 'jti-mia', {})",
        crate::fake_issuer::now() + 600
    ))
    .await;
    let revoked = issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1", "jti": "jti-mia" }));
    let took = propagation(&replicas, &revoked, &stock_update(), "token_revoked").await;
    assert!(took < DEADLINE, "revocation took {took:?}");
}

#[tokio::test]
async fn an_unreachable_postgres_gives_503_never_an_allow_and_recovers() {
    let _serial = crate::serial().await;
    let Some(url) = postgres_url() else { return };
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Postgres(url)).await;
    let mut config = base_config(&issuer, &db.url);
    set(&mut config, &["cache", "flags_ttl"], "1h");
    set(&mut config, &["database", "acquire_timeout"], "500ms");
    let app = spawn_app(&config).await;
    db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
        .await;
    let token = issuer.token("merchant", "mia", &["merchant"], json!({ "custom:org_id": "o1" }));
    assert_eq!(app.check(&token, stock_update()).await.outcome(), "allow");

    // `max` holds the flag too, but was never asked about: nothing of his is cached.
    db.execute("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'max', 'can_manage_stock')")
        .await;
    let uncached = issuer.token("merchant", "max", &["merchant"], json!({ "custom:org_id": "o1" }));

    db.set_reachable(false).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let asked = Instant::now();
        let answer = app.check(&uncached, stock_update()).await;
        assert!(asked.elapsed() < Duration::from_secs(2), "an answer took {:?}", asked.elapsed());
        assert_eq!((answer.status.as_u16(), answer.outcome()), (503, "database_unavailable"), "{}", answer.body);
    }
    // The cached principal is flushed as soon as the change listener loses the database.
    let cached = app.check(&token, stock_update()).await;
    assert_eq!((cached.status.as_u16(), cached.outcome()), (503, "database_unavailable"), "{}", cached.body);
    assert_eq!(app.get("/readyz").await.status, 503);

    db.set_reachable(true).await;
    let replicas = std::slice::from_ref(&app);
    let took = propagation(replicas, &token, &stock_update(), "allow").await;
    assert!(took < DEADLINE, "recovery took {took:?}");
    assert_eq!(app.check(&uncached, stock_update()).await.outcome(), "allow");
}
