//! A fake Cognito issuer on port 0: serves one JWKS per pool, counts fetches, can fail on
//! demand, and signs real RS256 tokens with the pools' keys.
#![allow(dead_code, reason = "shared by two test binaries, each using a part")]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use poolgate::dev::SigningKey;
use serde_json::{Map, Value, json};

/// The pools the tests configure, with their Cedar namespaces' default names.
pub const POOLS: [&str; 3] = ["admin", "merchant", "wallet"];
/// The one app client every test pool allows.
pub const CLIENT_ID: &str = "test-client";

/// Keys are slow to generate, so the test binary makes them once.
pub static KEYS: LazyLock<HashMap<&'static str, SigningKey>> = LazyLock::new(|| {
    ["admin", "merchant", "wallet", "foreign", "rotated"]
        .into_iter()
        .map(|name| (name, SigningKey::generate(&format!("kid-{name}")).unwrap()))
        .collect()
});

/// How the JWKS endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serves the current key sets.
    Normal,
    /// Answers 500.
    Down,
    /// Answers 200 with a body that is not a JWKS.
    Garbage,
    /// Never answers within any sane timeout.
    Hang,
}

struct State {
    jwks: Mutex<HashMap<String, Vec<Value>>>,
    hits: HashMap<String, AtomicUsize>,
    mode: Mutex<Mode>,
}

/// A running fake issuer.
pub struct FakeIssuer {
    base: String,
    state: Arc<State>,
}

impl FakeIssuer {
    /// Starts the issuer; each pool's JWKS holds that pool's key.
    pub fn start() -> Self {
        let jwks = POOLS.iter().map(|pool| (pool.to_string(), vec![KEYS[pool].jwk()])).collect();
        let hits = POOLS.iter().map(|pool| (pool.to_string(), AtomicUsize::new(0))).collect();
        let state = Arc::new(State { jwks: Mutex::new(jwks), hits, mode: Mutex::new(Mode::Normal) });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route("/{pool}/.well-known/jwks.json", web::get().to(serve_jwks))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { base, state }
    }

    /// The `iss` of `pool`'s tokens.
    pub fn issuer(&self, pool: &str) -> String {
        format!("{}/{pool}", self.base)
    }

    /// How many times `pool`'s JWKS was requested.
    pub fn hits(&self, pool: &str) -> usize {
        self.state.hits[pool].load(Ordering::SeqCst)
    }

    /// Total JWKS requests over all pools.
    pub fn total_hits(&self) -> usize {
        POOLS.iter().map(|pool| self.hits(pool)).sum()
    }

    /// Changes how the endpoint answers.
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Replaces `pool`'s published keys.
    pub fn publish(&self, pool: &str, keys: &[&str]) {
        let jwks = keys.iter().map(|key| KEYS[key].jwk()).collect();
        self.state.jwks.lock().unwrap().insert(pool.to_owned(), jwks);
    }

    /// Valid ID-token claims for `sub` in `pool`, expiring in five minutes.
    pub fn id_claims(&self, pool: &str, sub: &str) -> Map<String, Value> {
        let now = now();
        let claims = json!({
            "iss": self.issuer(pool),
            "sub": sub,
            "aud": CLIENT_ID,
            "token_use": "id",
            "iat": now,
            "auth_time": now,
            "exp": now + 300,
            "email": format!("{sub}@example.com"),
        });
        claims.as_object().unwrap().clone()
    }

    /// Valid access-token claims for `sub` in `pool`.
    pub fn access_claims(&self, pool: &str, sub: &str, scope: &str) -> Map<String, Value> {
        let now = now();
        let claims = json!({
            "iss": self.issuer(pool),
            "sub": sub,
            "client_id": CLIENT_ID,
            "token_use": "access",
            "scope": scope,
            "iat": now,
            "auth_time": now,
            "exp": now + 300,
        });
        claims.as_object().unwrap().clone()
    }

    /// Signs `claims` with `pool`'s own key.
    pub fn sign(&self, pool: &str, claims: &Map<String, Value>) -> String {
        KEYS[pool].sign(claims).unwrap()
    }

    /// An ID token of `pool` for `sub` in `groups`, plus `extra` claims.
    pub fn token(&self, pool: &str, sub: &str, groups: &[&str], extra: Value) -> String {
        let mut claims = self.id_claims(pool, sub);
        if !groups.is_empty() {
            claims.insert("cognito:groups".into(), json!(groups));
        }
        claims.extend(extra.as_object().cloned().unwrap_or_default());
        self.sign(pool, &claims)
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn serve_jwks(pool: web::Path<String>, state: web::Data<State>) -> HttpResponse {
    let Some(hits) = state.hits.get(pool.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    hits.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Normal => {
            let keys = state.jwks.lock().unwrap().get(pool.as_str()).cloned().unwrap_or_default();
            HttpResponse::Ok().json(json!({ "keys": keys }))
        }
        Mode::Down => HttpResponse::InternalServerError().finish(),
        Mode::Garbage => HttpResponse::Ok().body("<html>not a key set</html>"),
        // Never answers: the client's own timeout has to end the wait.
        Mode::Hang => std::future::pending::<HttpResponse>().await,
    }
}
