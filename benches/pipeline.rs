//! In-process benchmarks of the decision path, stage by stage, each reported next to a baseline
//! measured in the same run: one bare RS256 verification with jsonwebtoken, the physical cost
//! every uncached token pays.
//!
//! `cargo bench --bench pipeline` prints criterion's estimates; compare each group's median to
//! `baseline/rs256_verify`. `cargo bench --bench pipeline -- 'baseline|filter'` runs the list
//! filtering ones next to it: building a plan, and a search of a 10,000-row SQLite table
//! against 10,000 single decisions on the same rows.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark that cannot set up should stop at the failing line"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poolgate::decision::{AccessRequest, Decider, PolicySources, ResourceRef, entities};
use poolgate::dev::SigningKey;
use poolgate::filter::{Dialect, FilterQuestion, Plan, ResourceMapping, SearchDb, search_all};
use poolgate::metrics::Metrics;
use poolgate::principal::{self, store::PrincipalStore};
use poolgate::token::Verifier;
use serde_json::{Map, Value, json};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    key: SigningKey,
    token: String,
    decider: Decider,
    store: PrincipalStore,
    warm: Verifier,
    cold: Verifier,
    ask: AccessRequest,
    search_db: SearchDb,
    stock: ResourceMapping,
    _dir: tempfile::TempDir,
}

/// Rows in the benchmark's `stock` table; one in ten belongs to the principal's organisation.
const ROWS: usize = 10_000;

fn row(index: usize) -> (String, String) {
    (format!("sku-{index:05}"), format!("o{}", index % 10))
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SigningKey::generate("bench-key").expect("key");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [key.jwk()] }).to_string()).expect("jwks");
    let config = dir.path().join("poolgate.toml");
    let toml = format!(
        "[database]\nurl = \"sqlite://{}/bench.db\"\n[policies]\ndir = \"{}/policies\"\n\
         [pools.merchant]\nissuer = \"https://bench/merchant\"\njwks_file = \"{}\"\ntoken_use = [\"id\"]\n\
         client_ids = [\"c\"]\nattributes = {{ org_id = \"custom:org_id\" }}\n\
         [pools.admin]\nissuer = \"https://bench/admin\"\njwks_file = \"{}\"\ntoken_use = [\"id\"]\nclient_ids = [\"c\"]\n\
         [pools.wallet]\nissuer = \"https://bench/wallet\"\njwks_file = \"{}\"\ntoken_use = [\"id\"]\nclient_ids = [\"c\"]\n\
         [resources.Stock]\ntable = \"stock\"\nattributes = {{ org_id = {{ column = \"org_id\", nullable = false }} }}\n",
        dir.path().display(),
        env!("CARGO_MANIFEST_DIR"),
        jwks.display(),
        jwks.display(),
        jwks.display()
    );
    std::fs::write(&config, toml).expect("config");
    let settings = poolgate::config::load(Some(&config)).expect("settings");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims: Map<String, Value> = json!({
        "iss": "https://bench/merchant", "sub": "mia", "aud": "c", "token_use": "id",
        "iat": now, "exp": now + 3600, "cognito:groups": ["merchant"], "custom:org_id": "o1",
    })
    .as_object()
    .cloned()
    .expect("claims");
    let token = key.sign(&claims).expect("token");
    let decider = Decider::load(&PolicySources::from(&settings)).expect("policies");
    let (store, warm, cold, search_db) = runtime.block_on(async {
        let db = poolgate::db::connect(&settings.database).await.expect("db");
        poolgate::db::migrate(&db, &settings.database).await.expect("migrate");
        sqlx::query("CREATE TABLE stock (id TEXT PRIMARY KEY, org_id TEXT NOT NULL)")
            .execute(&db)
            .await
            .expect("table");
        let mut insert = db.begin().await.expect("transaction");
        for index in 0..ROWS {
            let (id, org) = row(index);
            sqlx::query("INSERT INTO stock (id, org_id) VALUES ($1, $2)")
                .bind(id)
                .bind(org)
                .execute(&mut *insert)
                .await
                .expect("row");
        }
        insert.commit().await.expect("commit");
        let search_db = SearchDb::new(db.clone(), Dialect::Sqlite, settings.database.query_timeout);
        sqlx::query("INSERT INTO principal_flags (pool, subject, flag) VALUES ('merchant', 'mia', 'can_manage_stock')")
            .execute(&db)
            .await
            .expect("grant");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let store = PrincipalStore::new(db, &settings, Arc::clone(&metrics));
        let warm = Verifier::start(&settings, Arc::clone(&metrics)).await.expect("verifier");
        let mut uncached = settings.clone();
        uncached.cache.tokens_capacity = 0;
        let cold = Verifier::start(&uncached, Arc::clone(&metrics)).await.expect("verifier");
        (store, warm, cold, search_db)
    });
    let stock = settings.resources.get("Stock").and_then(|stock| stock.mapping.clone()).expect("mapping");
    let ask: AccessRequest = serde_json::from_value(
        json!({ "action": "update", "resource": { "type": "Stock", "id": "sku-1", "attributes": { "org_id": "o1" } } }),
    )
    .expect("ask");
    Fixture { runtime, key, token, decider, store, warm, cold, ask, search_db, stock, _dir: dir }
}

fn pipeline(c: &mut Criterion) {
    let f = fixture();
    let public =
        DecodingKey::from_rsa_components(f.key.jwk()["n"].as_str().expect("n"), f.key.jwk()["e"].as_str().expect("e"))
            .expect("public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    c.bench_function("baseline/rs256_verify", |b| {
        b.iter(|| jsonwebtoken::decode::<Map<String, Value>>(black_box(&f.token), &public, &validation).expect("valid"))
    });
    c.bench_function("token/verify_uncached", |b| {
        b.iter(|| f.runtime.block_on(f.cold.verify(black_box(&f.token))).expect("verified"))
    });
    c.bench_function("token/verify_cached", |b| {
        b.iter(|| f.runtime.block_on(f.warm.verify(black_box(&f.token))).expect("verified"))
    });
    let verified = f.runtime.block_on(f.warm.verify(&f.token)).expect("verified");
    c.bench_function("principal/resolve_warm", |b| {
        b.iter(|| f.runtime.block_on(principal::resolve(&f.store, black_box(&verified))).expect("principal"))
    });
    let principal = f.runtime.block_on(principal::resolve(&f.store, &verified)).expect("principal");
    let schema = f.decider.schema();
    c.bench_function("decision/principal_entity", |b| {
        b.iter(|| f.decider.principal_entity(black_box(&principal)).expect("entity"))
    });
    let entity = f.decider.principal_entity(&principal).expect("entity");
    c.bench_function("decision/cedar_input", |b| {
        b.iter(|| {
            entities::cedar_input(entity.clone(), &principal.namespace, black_box(&f.ask), schema, None).expect("input")
        })
    });
    c.bench_function("decision/cedar", |b| {
        b.iter(|| {
            let decision = f.decider.decide(black_box(&principal), black_box(&f.ask)).expect("decision");
            assert!(decision.allow);
        })
    });
    c.bench_function("check/whole_warm", |b| {
        b.iter(|| {
            f.runtime.block_on(async {
                let token = f.warm.verify(black_box(&f.token)).await.expect("verified");
                let principal = principal::resolve(&f.store, &token).await.expect("principal");
                f.decider.decide(&principal, &f.ask).expect("decision")
            })
        })
    });
    let batch: Vec<AccessRequest> = (0..100).map(|_| f.ask.clone()).collect();
    c.bench_function("decision/batch_100", |b| {
        b.iter(|| f.decider.decide_all(black_box(&principal), black_box(&batch)).expect("decisions"))
    });
}

fn filter(c: &mut Criterion) {
    let f = fixture();
    let verified = f.runtime.block_on(f.warm.verify(&f.token)).expect("verified");
    let principal = f.runtime.block_on(principal::resolve(&f.store, &verified)).expect("principal");
    let context = Map::new();
    let question = FilterQuestion { action: "update", resource_type: "Stock", context: &context };
    c.bench_function("filter/plan", |b| {
        b.iter(|| {
            let planned =
                poolgate::filter::plan(&f.decider, black_box(&principal), Some(&f.stock), &question).expect("plan");
            assert!(matches!(planned.plan, Plan::Conditional { .. }));
        })
    });
    let mut group = c.benchmark_group("filter");
    group.sample_size(10);
    group.bench_function("search_10k", |b| {
        b.iter(|| {
            let found = f
                .runtime
                .block_on(search_all(&f.search_db, &f.decider, black_box(&principal), &f.stock, &question, ROWS))
                .expect("search");
            assert_eq!(found.ids.len(), ROWS / 10);
        })
    });
    let asks: Vec<AccessRequest> = (0..ROWS)
        .map(|index| {
            let (id, org) = row(index);
            let attributes = json!({ "org_id": org }).as_object().cloned().expect("attributes");
            AccessRequest {
                action: "update".into(),
                resource: ResourceRef { type_name: "Stock".into(), id, attributes },
                context: Map::new(),
            }
        })
        .collect();
    group.bench_function("check_x10k", |b| {
        b.iter(|| {
            let allowed =
                asks.iter().filter(|ask| f.decider.decide(black_box(&principal), ask).expect("decision").allow).count();
            assert_eq!(allowed, ROWS / 10);
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline, filter);
criterion_main!(benches);
