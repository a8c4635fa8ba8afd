//! Stage 1d: each pool's signing keys, fetched, checked and cached.
//!
//! Keys live in a moka cache, one entry per pool. Fetches happen in three places only:
//! at start-up and on the background refresh ([`Jwks::refresh`]), and on the request path when a
//! pool has no keys yet or a token names an unknown `kid` ([`Jwks::key`]). Request-path fetches
//! are limited to one per pool per `unknown_kid_cooldown`, so forged `kid`s cannot flood the
//! identity provider, and run through moka's per-key `and_compute_with`, so concurrent callers
//! wait for one fetch instead of starting their own. A failed fetch keeps the last good keys,
//! which serve until they are `max_stale` old; a document that is not a valid JWKS (see
//! [`parse_key_set`]) is a failed fetch like an unreachable endpoint, counted as
//! `poolgate_jwks_fetches_total{result="error"}`.
//!
//! INVARIANT: this is the only module that makes HTTP requests, and it only ever fetches the
//! configured `jwks_uri` of a pool; nothing in a token can name a URL to fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse, RSAKeyParameters};
use moka::future::Cache;
use moka::ops::compute::Op;
use serde::Deserialize;
use serde_json::Value;

use crate::config::JwksSettings;
use crate::config::pool::{JwksSource, PoolSettings};
use crate::metrics::Metrics;
use crate::token::error::TokenError;

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

/// A JWKS as jsonwebtoken's `JwkSet` reads it, with each entry kept as JSON so it can be read
/// as a [`Jwk`] one at a time (the error then names the entry).
#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

/// Parses a JWKS, all or nothing: a document that is not a valid JWKS is an error, and the
/// caller keeps the last good keys.
///
/// Valid means:
/// - a JSON object whose `keys` member is an array (an empty array is a valid, empty set);
/// - every entry reads as jsonwebtoken's [`Jwk`], as in its `JwkSet`: an object whose `kid`,
///   `use`, `alg`, `key_ops` and `x5*` members, when present, have their JSON types (an `alg`
///   that is a number, a `kid` that is not a string, an entry that is not an object all fail);
/// - every entry has a string `kty` (RFC 7517 §4.1), which jsonwebtoken would otherwise file
///   under its catch-all `AlgorithmParameters::Other`;
/// - every entry with `kty` `RSA`, the one key type poolgate uses, reads as jsonwebtoken's
///   [`RSAKeyParameters`]: a missing or non-string `n` or `e` fails the document.
///
/// Within a valid document, each key is judged on its own: entries without a `kid` are
/// ignored; well-formed keys that are not usable for RS256 signatures (another `kty` or an
/// incomplete key of another type, `use` other than `sig`, `alg` other than RS256, a null `use`
/// or `alg`, an empty or undecodable modulus or exponent) are remembered as unusable, so a token
/// naming them fails without a refetch.
pub fn parse_key_set(body: &[u8]) -> Result<KeySet, FetchError> {
    let document: JwksDocument = serde_json::from_slice(body).map_err(|err| FetchError::Invalid(err.to_string()))?;
    let mut keys = HashMap::with_capacity(document.keys.len());
    for (index, entry) in document.keys.iter().enumerate() {
        let jwk = well_formed(entry).map_err(|reason| FetchError::Invalid(format!("key {index}: {reason}")))?;
        let Some(kid) = &jwk.common.key_id else {
            continue;
        };
        keys.insert(kid.clone(), rsa_signing_key(&jwk, entry).map(Arc::new));
    }
    Ok(KeySet { keys, fetched_at: Instant::now() })
}

/// Reads one entry as a [`Jwk`], refusing what jsonwebtoken's catch-all variant would let
/// through: a missing or non-string `kty`, and an RSA key without string `n` and `e`.
fn well_formed(entry: &Value) -> Result<Jwk, String> {
    let jwk = Jwk::deserialize(entry).map_err(|err| err.to_string())?;
    if let AlgorithmParameters::Other(other) = &jwk.algorithm {
        match other.fields.get("kty") {
            Some(Value::String(kty)) if kty == "RSA" => {
                // Let jsonwebtoken say which RSA parameter is missing or of the wrong type.
                let reason = RSAKeyParameters::deserialize(entry).err().map(|err| err.to_string());
                return Err(reason.unwrap_or_else(|| "the RSA parameters are unreadable".into()));
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err("`kty` is not a string".into()),
            None => return Err("`kty` is missing".into()),
        }
    }
    Ok(jwk)
}

/// The checks jsonwebtoken leaves to us: `kty` RSA, `use` `sig` and `alg` RS256 when present,
/// non-empty modulus and exponent. jsonwebtoken reads a null `use` or `alg` as absent; `entry`,
/// the raw JSON, tells them apart, and a null one makes the key unusable.
fn rsa_signing_key(jwk: &Jwk, entry: &Value) -> Result<DecodingKey, String> {
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return Err("`kty` is not RSA".into());
    };
    let null = |name: &str| entry.get(name).is_some_and(Value::is_null);
    if null("use") || !matches!(jwk.common.public_key_use, None | Some(PublicKeyUse::Signature)) {
        return Err("`use` is not sig".into());
    }
    if null("alg") || !matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256)) {
        return Err("`alg` is not RS256".into());
    }
    if rsa.n.is_empty() || rsa.e.is_empty() {
        return Err("`n` or `e` is empty".into());
    }
    DecodingKey::from_rsa_components(&rsa.n, &rsa.e).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A usable RSA signing key (a toy modulus: jsonwebtoken checks only its encoding here).
    const GOOD: &str = r#"{"kid":"good","kty":"RSA","use":"sig","alg":"RS256","n":"AQAB","e":"AQAB"}"#;

    /// `None` if the document is refused; else whether `kid` is in it and usable.
    fn judged(body: &str, kid: &str) -> Option<bool> {
        parse_key_set(body.as_bytes()).ok().map(|set| set.keys.get(kid).is_some_and(Result::is_ok))
    }

    fn beside_good(entry: &str) -> String {
        format!(r#"{{"keys":[{GOOD},{entry}]}}"#)
    }

    #[test]
    fn only_rsa_signing_keys_for_rs256_are_usable() {
        let key = |extra: &str| beside_good(&format!(r#"{{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB"{extra}}}"#));
        assert_eq!(judged(&key(""), "k"), Some(true));
        assert_eq!(judged(&key(r#","use":"sig","alg":"RS256""#), "k"), Some(true));
        // Well-formed but not for RS256 signatures: skipped one by one, the document stands.
        for extra in [r#","use":"enc""#, r#","use":"other""#, r#","alg":"RS512""#, r#","alg":"RSA-OAEP""#] {
            assert_eq!(judged(&key(extra), "k"), Some(false), "{extra}");
        }
        assert_eq!(judged(&key(r#","alg":"XX1""#), "k"), Some(false), "an alg jsonwebtoken does not know");
        assert_eq!(judged(&key(r#","alg":null"#), "k"), Some(false));
        assert_eq!(judged(&key(r#","use":null"#), "k"), Some(false));
        assert_eq!(judged(&beside_good(r#"{"kid":"k","kty":"EC","n":"AQAB","e":"AQAB"}"#), "k"), Some(false));
        assert_eq!(judged(&beside_good(r#"{"kid":"k","kty":"RSA","n":"","e":"AQAB"}"#), "k"), Some(false));
        assert_eq!(judged(&beside_good(r#"{"kid":"k","kty":"RSA","n":"!!","e":"AQAB"}"#), "k"), Some(false));
        for body in [key(""), key(r#","use":"enc""#)] {
            assert_eq!(judged(&body, "good"), Some(true), "the good key beside it stays usable");
        }
    }

    #[test]
    fn keys_of_other_types_and_keys_without_kid_are_skipped() {
        let others = [
            r#"{"kid":"ec","kty":"EC","crv":"P-256","x":"AQAB","y":"AQAB","use":"sig","alg":"ES256"}"#,
            r#"{"kid":"ec-odd","kty":"EC","crv":"secp256k1","x":"AQAB","y":"AQAB"}"#,
            r#"{"kid":"oct","kty":"oct","k":"AQAB"}"#,
            r#"{"kid":"okp","kty":"OKP","crv":"Ed25519","x":"AQAB"}"#,
            r#"{"kid":"future","kty":"AKP","alg":"ML-DSA-44","pub":"AQAB"}"#,
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#,
        ];
        let body = format!(r#"{{"keys":[{GOOD},{}]}}"#, others.join(","));
        let set = parse_key_set(body.as_bytes());
        assert!(set.is_ok(), "{:?}", set.err());
        for kid in ["ec", "ec-odd", "oct", "okp", "future"] {
            assert_eq!(judged(&body, kid), Some(false), "{kid}");
        }
        assert_eq!(judged(&body, "good"), Some(true));
        assert_eq!(set.map(|set| set.keys.len()).ok(), Some(6), "the entry without a kid is left out");
    }

    #[test]
    fn an_entry_that_is_not_a_well_formed_jwk_fails_the_whole_document() {
        let broken = [
            r#"{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB","alg":256}"#,
            r#"{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB","alg":["RS256"]}"#,
            r#"{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB","use":5}"#,
            r#"{"kid":7,"kty":"RSA","n":"AQAB","e":"AQAB"}"#,
            r#"{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB","key_ops":"verify"}"#,
            r#"{"kid":"k","kty":"RSA","n":"AQAB","e":"AQAB","x5c":"MII"}"#,
            r#"{"kid":"k","kty":"RSA","e":"AQAB"}"#,
            r#"{"kid":"k","kty":"RSA","n":"AQAB"}"#,
            r#"{"kid":"k","kty":"RSA","n":5,"e":"AQAB"}"#,
            r#"{"kid":"k","kty":"RSA","n":null,"e":"AQAB"}"#,
            r#"{"kid":"k","n":"AQAB","e":"AQAB"}"#,
            r#"{"kid":"k","kty":1,"n":"AQAB","e":"AQAB"}"#,
            r#""k""#,
            "null",
            "[]",
        ];
        for entry in broken {
            let body = beside_good(entry);
            assert!(matches!(parse_key_set(body.as_bytes()), Err(FetchError::Invalid(_))), "{body}");
        }
    }

    #[test]
    fn documents_that_are_not_a_jwks_are_rejected() {
        for body in ["", "[]", "{}", r#"{"keys":{}}"#, r#"{"keys":null}"#, r#"{"keys":"k"}"#, "<html>", "null"] {
            assert!(matches!(parse_key_set(body.as_bytes()), Err(FetchError::Invalid(_))), "{body}");
        }
        let wrapped = format!(r#"{{"keys":{GOOD}}}"#);
        assert!(parse_key_set(wrapped.as_bytes()).is_err(), "a lone key is not a key list");
    }

    #[test]
    fn an_empty_key_list_is_a_valid_empty_set() {
        assert_eq!(parse_key_set(br#"{"keys":[]}"#).map(|set| set.keys.len()).ok(), Some(0));
    }
}
