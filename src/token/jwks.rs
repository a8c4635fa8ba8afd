//! Stage 1d: each pool's signing keys, fetched, checked and cached.
//!
//! Keys live in a moka cache, one entry per pool. Fetches happen in three places only:
//! at start-up and on the background refresh ([`Jwks::refresh`]), and on the request path when a
//! pool has no keys yet or a token names an unknown `kid` ([`Jwks::key`]). Request-path fetches
//! are limited to one per pool per `unknown_kid_cooldown`, so forged `kid`s cannot flood the
//! identity provider, and run through moka's per-key `and_compute_with`, so concurrent callers
//! wait for one fetch instead of starting their own. A failed fetch keeps the last good keys,
//! which serve until they are `max_stale` old.
//!
//! INVARIANT: this is the only module that makes HTTP requests, and it only ever fetches the
//! configured `jwks_uri` of a pool; nothing in a token can name a URL to fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jsonwebtoken::DecodingKey;
use moka::future::Cache;
use moka::ops::compute::Op;
use serde::Deserialize;

use crate::config::{JwksSettings, JwksSource, PoolSettings};
use crate::metrics::Metrics;
use crate::token::TokenError;

/// Largest JWKS document accepted, in bytes.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The verified-usable keys of one pool at one moment.
#[derive(Debug)]
pub struct KeySet {
    keys: HashMap<String, Result<Arc<DecodingKey>, String>>,
    fetched_at: Instant,
}

/// Why a pool's key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The endpoint or file could not be read.
    #[error("cannot read the key set: {0}")]
    Unreachable(String),
    /// The document is not a JWKS.
    #[error("the key set is not a valid JWKS: {0}")]
    Invalid(String),
}

/// Per-pool key sets and the means to fetch them.
pub struct Jwks {
    cache: Cache<String, Arc<KeySet>>,
    sources: HashMap<String, JwksSource>,
    last_request_fetch: Mutex<HashMap<String, Instant>>,
    client: reqwest::Client,
    settings: JwksSettings,
    metrics: Arc<Metrics>,
}

/// Who asked for a fetch: the background refresher always fetches; a request only within the
/// pool's cooldown budget, and only if nobody refreshed the set since the request looked at it.
#[derive(Clone, Copy)]
enum Trigger {
    Background,
    Request { seen: Option<Instant> },
}

impl Jwks {
    /// Prepares the key store; fetches nothing yet.
    pub fn new(settings: &JwksSettings, pools: &[PoolSettings], metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            .connect_timeout(settings.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            cache: Cache::builder().max_capacity(pools.len() as u64 + 1).build(),
            sources: pools.iter().map(|pool| (pool.name.clone(), pool.jwks.clone())).collect(),
            last_request_fetch: Mutex::new(HashMap::new()),
            client,
            settings: settings.clone(),
            metrics,
        })
    }

    /// Returns the key named `kid` in `pool`'s key set.
    pub async fn key(&self, pool: &str, kid: &str) -> Result<Arc<DecodingKey>, TokenError> {
        let cached = self.cache.get(pool).await;
        if let Some(set) = cached.as_ref().filter(|set| self.is_fresh(set))
            && let Some(found) = set.keys.get(kid)
        {
            return found.clone().map_err(|_| TokenError::UnknownKey);
        }
        // Missing, stale, or no such kid: one coalesced refetch within the cooldown budget.
        let seen = cached.as_ref().map(|set| set.fetched_at);
        self.fetch_into_cache(pool, Trigger::Request { seen }).await;
        match self.usable(pool).await {
            Some(set) => match set.keys.get(kid) {
                Some(found) => found.clone().map_err(|_| TokenError::UnknownKey),
                None => Err(TokenError::UnknownKey),
            },
            None => Err(TokenError::KeysUnavailable { pool: pool.to_owned() }),
        }
    }

    /// Fetches `pool`'s key set now, keeping the old one on failure. Used at start-up and by
    /// the background refresher.
    pub async fn refresh(&self, pool: &str) {
        self.fetch_into_cache(pool, Trigger::Background).await;
    }

    /// Fetches every pool's key set concurrently.
    pub async fn refresh_all(&self) {
        join_all(self.sources.keys().map(|pool| self.refresh(pool))).await;
    }

    /// Whether `pool` has a key set that is not older than `max_stale`.
    pub async fn is_ready(&self, pool: &str) -> bool {
        self.usable(pool).await.is_some()
    }

    /// How long the background refresher waits before the next fetch of `pool`: the refresh
    /// interval when keys are loaded, the cooldown while they are missing or stale.
    pub async fn next_refresh_in(&self, pool: &str) -> Duration {
        if self.is_ready(pool).await { self.settings.refresh_interval } else { self.settings.unknown_kid_cooldown }
    }

    async fn usable(&self, pool: &str) -> Option<Arc<KeySet>> {
        self.cache.get(pool).await.filter(|set| self.is_fresh(set))
    }

    fn is_fresh(&self, set: &KeySet) -> bool {
        set.fetched_at.elapsed() <= self.settings.max_stale
    }

    async fn fetch_into_cache(&self, pool: &str, trigger: Trigger) {
        let Some(source) = self.sources.get(pool) else {
            return;
        };
        self.cache
            .entry_by_ref(pool)
            .and_compute_with(|current| async move {
                if let Trigger::Request { seen } = trigger {
                    // Someone refreshed since this request looked: their keys are the answer.
                    if current.as_ref().map(|entry| entry.value().fetched_at) != seen {
                        return Op::Nop;
                    }
                    if !self.claim_request_fetch(pool) {
                        return Op::Nop;
                    }
                }
                let fetched = self.fetch(source).await;
                let result = if fetched.is_ok() { "ok" } else { "error" };
                self.metrics.jwks_fetches.with_label_values(&[pool, result]).inc();
                match fetched {
                    Ok(set) => {
                        tracing::info!(pool, keys = set.keys.len(), "fetched signing keys");
                        Op::Put(Arc::new(set))
                    }
                    Err(err) => {
                        tracing::warn!(pool, error = %err, "signing key fetch failed; keeping the last good keys");
                        Op::Nop
                    }
                }
            })
            .await;
    }

    /// Takes the pool's request-fetch slot if the cooldown has passed.
    fn claim_request_fetch(&self, pool: &str) -> bool {
        let Ok(mut last) = self.last_request_fetch.lock() else {
            return false;
        };
        let now = Instant::now();
        match last.get(pool) {
            Some(at) if now.duration_since(*at) < self.settings.unknown_kid_cooldown => false,
            _ => {
                last.insert(pool.to_owned(), now);
                true
            }
        }
    }

    async fn fetch(&self, source: &JwksSource) -> Result<KeySet, FetchError> {
        let body = match source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|err| FetchError::Unreachable(format!("{}: {err}", path.display())))?,
            JwksSource::Url(url) => self.download(url).await?,
        };
        parse_key_set(&body)
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let unreachable = |err: reqwest::Error| FetchError::Unreachable(err.without_url().to_string());
        let mut response = self.client.get(url).send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(FetchError::Unreachable(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::Invalid("larger than 1 MiB".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Parses a JWKS. Keys without a `kid` are ignored; keys that are not usable for RS256
/// signatures are remembered as unusable, so a token naming them fails without a refetch.
pub fn parse_key_set(body: &[u8]) -> Result<KeySet, FetchError> {
    let document: JwksDocument = serde_json::from_slice(body).map_err(|err| FetchError::Invalid(err.to_string()))?;
    let mut keys = HashMap::with_capacity(document.keys.len());
    for jwk in document.keys {
        let Some(kid) = jwk.get("kid").and_then(|kid| kid.as_str()) else {
            continue;
        };
        keys.insert(kid.to_owned(), rsa_signing_key(&jwk).map(Arc::new));
    }
    Ok(KeySet { keys, fetched_at: Instant::now() })
}

/// The checks jsonwebtoken leaves to us: `kty` RSA, `use` `sig` and `alg` RS256 when present,
/// non-empty modulus and exponent.
fn rsa_signing_key(jwk: &serde_json::Map<String, serde_json::Value>) -> Result<DecodingKey, String> {
    let field = |name: &str| jwk.get(name).map(|value| value.as_str().ok_or(format!("`{name}` is not a string")));
    if field("kty").transpose()? != Some("RSA") {
        return Err("`kty` is not RSA".into());
    }
    if !matches!(field("use").transpose()?, None | Some("sig")) {
        return Err("`use` is not sig".into());
    }
    if !matches!(field("alg").transpose()?, None | Some("RS256")) {
        return Err("`alg` is not RS256".into());
    }
    match (field("n").transpose()?, field("e").transpose()?) {
        (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => {
            DecodingKey::from_rsa_components(n, e).map_err(|err| err.to_string())
        }
        _ => Err("`n` or `e` is missing".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usable(body: &str, kid: &str) -> bool {
        parse_key_set(body.as_bytes()).ok().and_then(|set| set.keys.get(kid).map(Result::is_ok)).unwrap_or(false)
    }

    #[test]
    fn only_rsa_signing_keys_for_rs256_are_usable() {
        let key = |extra: &str| format!(r#"{{"keys":[{{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB"{extra}}}]}}"#);
        assert!(usable(&key(""), "k"));
        assert!(usable(&key(r#","use":"sig","alg":"RS256""#), "k"));
        assert!(!usable(&key(r#","use":"enc""#), "k"));
        assert!(!usable(&key(r#","alg":"RS512""#), "k"));
        assert!(!usable(&key(r#","alg":null"#), "k"));
        assert!(!usable(r#"{"keys":[{"kid":"k","kty":"EC","n":"AQAB","e":"AQAB"}]}"#, "k"));
        assert!(!usable(r#"{"keys":[{"kid":"k","kty":"RSA","n":"","e":"AQAB"}]}"#, "k"));
    }

    #[test]
    fn documents_that_are_not_a_jwks_are_rejected() {
        for body in ["", "[]", "{}", r#"{"keys":{}}"#, "<html>"] {
            assert!(parse_key_set(body.as_bytes()).is_err(), "{body}");
        }
    }
}
