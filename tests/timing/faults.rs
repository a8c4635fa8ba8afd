//! Database faults on PostgreSQL, injected by a TCP proxy between poolgate and the server (its
//! connection pool and its change listener both go through it): a database killed, frozen or
//! slowed is a `503` within a bounded time for every request, a hundred at once, never an allow;
//! and once the database is back the first allow comes within a second.
//!
//! `cache.flags_ttl` is an hour here, so principals cached before the fault can only be refused
//! because the change listener noticed the fault and flushed the caches: at once for a killed
//! server (the connection ends; a listener still reconnecting flushes every 250 ms), within two
//! heartbeats for a frozen or slowed one (silence, then a `SELECT 1` that does not answer in
//! time).
//!
//! Every run uses the shipped timeouts (`database.acquire_timeout`, `database.query_timeout`,
//! `server.request_timeout`). Run with `--nocapture` to see the measured latencies.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use toml::Table;

use crate::fake_issuer::FakeIssuer;
use crate::helpers::{Backend, TestApp, TestDatabase, ask, base_config, eventually, postgres_url, set, spawn_app};
use crate::proxy::{Fault, FaultProxy};

/// Distinct subjects per burst, so each needs its own database lookup.
const COLD: usize = 50;
/// Subjects looked up before the fault; each is asked about [`WARM_REPEATS`] times per burst.
const WARM: usize = 10;
const WARM_REPEATS: usize = 5;
/// The longest any answer may take during a fault: `database.query_timeout` (2 s by default),
/// which bounds a lookup, connection wait included, plus 1 s for scheduling a hundred
/// concurrent requests on a shared two-core machine. It is below `server.request_timeout`
/// (5 s), so a database fault is reported as such rather than as a timeout.
const ANSWER_BOUND: Duration = Duration::from_secs(3);
/// How soon after the database's return the first allow must come.
const RECOVERY_BOUND: Duration = Duration::from_secs(1);
/// When cached principals are asked about after the server is killed: the listener sees its
/// connection end, or, if it was not connected yet, flushes again after its next failed attempt
/// (every 250 ms).
const LOSS_NOTICED: Duration = Duration::from_millis(600);
/// When they are asked about after a connection goes silent: one heartbeat of silence, then
/// one heartbeat for the `SELECT 1` to fail, plus scheduling.
const SILENCE_NOTICED: Duration = Duration::from_millis(2500);

fn stock_update() -> Value {
    ask("update", "Stock", "sku-1", json!({ "org_id": "o1" }))
}

/// A poolgate whose database sits behind a [`FaultProxy`], with subjects that may update stock.
struct Rig {
    issuer: FakeIssuer,
    proxy: FaultProxy,
    app: TestApp,
    warm: Vec<String>,
    _db: TestDatabase,
}

impl Rig {
    /// `None` (and a notice) when no PostgreSQL server is configured.
    async fn start() -> Option<Self> {
        let admin_url = postgres_url()?;
        let db = TestDatabase::create(&Backend::Postgres(admin_url)).await;
        let mut url = reqwest::Url::parse(&db.url).unwrap();
        let upstream = (url.host_str().unwrap().to_owned(), url.port().unwrap_or(5432));
        let upstream = tokio::net::lookup_host(upstream).await.unwrap().next().unwrap();
        let proxy = FaultProxy::start(upstream).await;
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.port())).unwrap();

        let issuer = FakeIssuer::start();
        let mut config: Table = base_config(&issuer, url.as_str());
        set(&mut config, &["cache", "flags_ttl"], "1h");
        let app = spawn_app(&config).await;

        // Everyone who will be asked about holds the flag: an answer read from the database
        // would be an allow, so a refusal can only come from the fault.
        let subjects = (0..WARM)
            .map(|n| format!("warm-{n}"))
            .chain((0..COLD * 2).map(|n| format!("cold-{n}")))
            .chain((0..2).map(|n| format!("fresh-{n}")));
        let rows: Vec<String> =
            subjects.map(|subject| format!("('merchant', '{subject}', 'can_manage_stock')")).collect();
        db.execute(&format!("INSERT INTO principal_flags (pool, subject, flag) VALUES {}", rows.join(", "))).await;

        let rig = Self {
            warm: (0..WARM).map(|n| rig_token(&issuer, &format!("warm-{n}"))).collect(),
            issuer,
            proxy,
            app,
            _db: db,
        };
        for token in &rig.warm {
            assert_eq!(rig.app.check(token, stock_update()).await.outcome(), "allow");
        }
        Some(rig)
    }

    fn token(&self, subject: &str) -> String {
        rig_token(&self.issuer, subject)
    }

    /// Asks about `cold`, never-seen subjects, at once, and about the cached ones, each
    /// `WARM_REPEATS` times, after `noticed`; asserts that every answer is a `503` within
    /// [`ANSWER_BOUND`], and so is `/readyz`.
    async fn burst(&self, label: &str, cold: &[String], noticed: Duration) {
        let warm: Vec<String> = self.warm.iter().cycle().take(WARM * WARM_REPEATS).cloned().collect();
        let (cold, warm) = tokio::join!(self.ask_all(cold, Duration::ZERO), self.ask_all(&warm, noticed));
        let answers: Vec<_> = cold.into_iter().chain(warm).collect();

        let allows = answers.iter().filter(|(_, outcome, _)| outcome == "allow").count();
        assert_eq!(allows, 0, "{label}: allowed while the database was unreachable");
        for (status, outcome, _) in &answers {
            assert!(
                *status == 503 && (outcome == "database_unavailable" || outcome == "timeout"),
                "{label}: answered {status} {outcome}"
            );
        }
        let mut times: Vec<Duration> = answers.iter().map(|(_, _, took)| *took).collect();
        times.sort();
        let (median, slowest) = (times[times.len() / 2], times[times.len() - 1]);
        eprintln!("{label}: {} answers, all 503; median {median:?}, slowest {slowest:?}", answers.len());
        assert!(slowest <= ANSWER_BOUND, "{label}: an answer took {slowest:?}");

        let asked = Instant::now();
        assert_eq!(self.app.get("/readyz").await.status, 503, "{label}: ready without a database");
        assert!(asked.elapsed() <= ANSWER_BOUND, "{label}: /readyz took {:?}", asked.elapsed());
    }

    /// After `delay`, asks about each token at once: (status, outcome, time taken) per answer.
    async fn ask_all(&self, tokens: &[String], delay: Duration) -> Vec<(u16, String, Duration)> {
        tokio::time::sleep(delay).await;
        join_all(tokens.iter().map(|token| async move {
            let asked = Instant::now();
            let answer = self.app.check(token, stock_update()).await;
            (answer.status.as_u16(), answer.outcome().to_owned(), asked.elapsed())
        }))
        .await
    }

    /// Ends the fault and measures until a cached principal is allowed again; then a subject
    /// never seen before is allowed too.
    async fn recover(&self, label: &str, fresh_subject: &str) {
        self.proxy.set(Fault::Pass);
        let started = Instant::now();
        let recovered = eventually(RECOVERY_BOUND, || async {
            self.app.check(&self.warm[0], stock_update()).await.outcome() == "allow"
        });
        assert!(recovered.await, "{label}: still refused after {:?}", started.elapsed());
        let took = started.elapsed();
        eprintln!("{label}: first allow {took:?} after the database came back");
        assert_eq!(self.app.check(&self.token(fresh_subject), stock_update()).await.outcome(), "allow");
    }

    fn cold_tokens(&self, range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|n| self.token(&format!("cold-{n}"))).collect()
    }
}

fn rig_token(issuer: &FakeIssuer, subject: &str) -> String {
    issuer.token("merchant", subject, &["merchant"], json!({ "custom:org_id": "o1" }))
}

#[tokio::test]
async fn a_killed_database_is_503_within_the_bound_and_recovers_within_a_second_twice() {
    let _serial = crate::serial().await;
    let Some(rig) = Rig::start().await else { return };
    rig.proxy.set(Fault::Down);
    rig.burst("killed", &rig.cold_tokens(0..COLD), LOSS_NOTICED).await;
    rig.recover("killed", "fresh-0").await;

    // A second outage, with the connections opened during the recovery, behaves the same.
    rig.proxy.set(Fault::Down);
    rig.burst("killed again", &rig.cold_tokens(COLD..COLD * 2), LOSS_NOTICED).await;
    rig.recover("killed again", "fresh-1").await;
}

#[tokio::test]
async fn a_frozen_database_is_503_within_the_bound_and_recovers_within_a_second() {
    let _serial = crate::serial().await;
    let Some(rig) = Rig::start().await else { return };
    rig.proxy.set(Fault::Stall);
    rig.burst("frozen", &rig.cold_tokens(0..COLD), SILENCE_NOTICED).await;
    rig.recover("frozen", "fresh-0").await;
}

#[tokio::test]
async fn a_slowed_database_is_503_within_the_bound_and_recovers_within_a_second() {
    let _serial = crate::serial().await;
    // 1.5 s each way: a lookup (connection check and two queries) would take over 6 s, and
    // answer allow; poolgate gives up at `database.query_timeout` instead. The listener's
    // heartbeat cannot answer within its second either, so the caches are flushed.
    let Some(rig) = Rig::start().await else { return };
    rig.proxy.set(Fault::Slow(Duration::from_millis(1500)));
    rig.burst("slowed", &rig.cold_tokens(0..COLD), SILENCE_NOTICED).await;
    rig.recover("slowed", "fresh-0").await;
}

#[tokio::test]
async fn a_query_timeout_of_zero_is_refused_at_start() {
    let _serial = crate::serial().await;
    let issuer = FakeIssuer::start();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut config = base_config(&issuer, &db.url);
    set(&mut config, &["database", "query_timeout"], "0s");
    let error = crate::helpers::try_spawn_app(&config).await.err().expect("started with no time for queries");
    assert!(error.to_string().contains("database.query_timeout"), "{error}");
}
