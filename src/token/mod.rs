//! Stage 1: "is this token genuine, and which pool is it from?"
//!
//! [`Verifier::verify`] takes the raw bearer token through the files of this module in order:
//! [`header`] (shape, algorithm, `kid`, unverified `iss`) → [`issuer`] (route to a pool) →
//! [`jwks`] (that pool's key for the `kid`) → signature check by `jsonwebtoken` with the rules
//! of [`pool`] → [`claims`] (time, `token_use`, client, subject). Only a [`VerifiedToken`] can
//! come out, and the principal can only be built from one.
//!
//! A verified token is cached under a SHA-256 of its pool, its position and its whole text, so
//! a repeated token skips the RSA work. A hit is only reused while the pool still serves the
//! very key that verified it (a rotated-out key stops its tokens at the next key refresh), and
//! its time claims are checked again on every hit; revocation and disabling are stage 2's and
//! apply to every request either way.

pub mod bearer;
pub mod claims;
pub mod error;
pub mod header;
pub mod issuer;
pub mod jwks;
pub mod pool;

use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::config::pool::TokenUse;
use crate::metrics::Metrics;
use crate::token::claims::VerifiedClaims;
use crate::token::error::TokenError;
use crate::token::header::UniqueKeys;
use crate::token::issuer::Issuers;
use crate::token::jwks::Jwks;
use crate::token::pool::Pool;

/// A token whose signature and claims were checked, and the pool it belongs to.
///
/// Outside this crate it cannot be constructed; inside, only `Verifier::verify` builds one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// The pool that issued it.
    pub pool: Arc<Pool>,
    /// Its checked claims.
    pub claims: VerifiedClaims,
}

/// A verification worth reusing, and the key that made it.
struct Verified {
    token: VerifiedToken,
    key: Arc<DecodingKey>,
}

/// Issuer registry, key store and verified-token cache: everything needed to verify a token.
pub struct Verifier {
    issuers: Issuers,
    jwks: Jwks,
    verified: Cache<[u8; 32], Arc<Verified>>,
}

impl Verifier {
    /// The verifier of the configured pools, with a verified-token cache bounded by
    /// `cache.tokens_capacity` and `cache.tokens_ttl`, and every pool's keys fetched once (a
    /// pool whose keys cannot be fetched yet keeps `/readyz` at 503 until they arrive). The one
    /// constructor: `serve`, `check` and the benchmarks all start it here.
    pub async fn start(settings: &Settings, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let jwks = Jwks::new(&settings.jwks, &settings.pools, metrics)?;
        let pools: Vec<_> = settings.pools.iter().cloned().map(Pool::new).map(Arc::new).collect();
        let verified = Cache::builder()
            .max_capacity(settings.cache.tokens_capacity)
            .time_to_live(settings.cache.tokens_ttl)
            .build();
        let verifier = Self { issuers: Issuers::new(pools), jwks, verified };
        verifier.jwks.refresh_all().await;
        Ok(verifier)
    }

    /// Verifies a bearer token of any kind its pool's `token_use` accepts.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.verify_as(token, None).await
    }

    /// Paired mode: verifies the access token (the bearer) and the ID token sent beside it, and
    /// joins them into one identity with the access token's scopes and groups and the ID token's
    /// profile claims. Both must come from the same pool and app client, name the same `sub`, and
    /// carry the same `origin_jti` when both have one (one sign-in issues both tokens).
    pub async fn verify_pair(&self, access: &str, id: &str) -> Result<VerifiedToken, TokenError> {
        let access = self.verify_as(access, Some(TokenUse::Access)).await?;
        let id = self.verify_as(id, Some(TokenUse::Id)).await?;
        if !Arc::ptr_eq(&access.pool, &id.pool) {
            return Err(TokenError::PairMismatch("they come from different pools".into()));
        }
        if access.claims.sub != id.claims.sub {
            return Err(TokenError::PairMismatch("their `sub` differs".into()));
        }
        if access.claims.client != id.claims.client {
            return Err(TokenError::PairMismatch("they were issued to different app clients".into()));
        }
        if let (Some(a), Some(b)) = (&access.claims.origin_jti, &id.claims.origin_jti)
            && a != b
        {
            return Err(TokenError::PairMismatch("their `origin_jti` differs".into()));
        }
        let mut token_ids = access.claims.token_ids;
        for token_id in id.claims.token_ids {
            if !token_ids.contains(&token_id) {
                token_ids.push(token_id);
            }
        }
        let claims =
            VerifiedClaims { email: id.claims.email, attributes: id.claims.attributes, token_ids, ..access.claims };
        Ok(VerifiedToken { pool: access.pool, claims })
    }

    /// Verifies a raw token: issuer, key, signature and claims. `only` restricts the token's
    /// kind; a bearer (`None`) may be any kind its pool accepts.
    async fn verify_as(&self, token: &str, only: Option<TokenUse>) -> Result<VerifiedToken, TokenError> {
        let unverified = header::inspect(token)?;
        let pool = self.issuers.route(&unverified.iss).ok_or(TokenError::UnknownIssuer)?;
        let key = self.jwks.key(pool.name(), &unverified.kid).await?;
        let cache_key = cache_key(pool.name(), only, token);
        if let Some(hit) = self.verified.get(&cache_key).await
            && Arc::ptr_eq(&hit.key, &key)
        {
            claims::check_times(pool, &hit.token.claims.times)?;
            return Ok(hit.token.clone());
        }
        let decoded = jsonwebtoken::decode::<UniqueKeys>(token, &key, pool.validation()).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) | ErrorKind::Provider(_) => {
                    TokenError::InvalidSignature
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                    TokenError::UnsupportedAlgorithm("RS256".into())
                }
                _ => TokenError::Malformed("the token cannot be decoded".into()),
            }
        })?;
        let accepted: &[TokenUse] = match only {
            None => &pool.settings().token_use,
            // The bearer of a pair must still be a kind the pool accepts as bearer.
            Some(TokenUse::Access) if !pool.settings().token_use.contains(&TokenUse::Access) => &[],
            Some(TokenUse::Access) => &[TokenUse::Access],
            Some(TokenUse::Id) => &[TokenUse::Id],
        };
        let claims = claims::check(pool, &decoded.claims.0, accepted)?;
        let verified = VerifiedToken { pool: Arc::clone(pool), claims };
        self.verified.insert(cache_key, Arc::new(Verified { token: verified.clone(), key })).await;
        Ok(verified)
    }

    /// The key store, for start-up fetching, background refresh and readiness.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Every trusted pool.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.issuers.pools()
    }
}

/// The verified-token cache key: pool, the position the token was checked for, and the token.
fn cache_key(pool: &str, only: Option<TokenUse>, token: &str) -> [u8; 32] {
    let position: &[u8] = match only {
        None => b"bearer",
        Some(TokenUse::Access) => b"pair-access",
        Some(TokenUse::Id) => b"pair-id",
    };
    Sha256::new()
        .chain_update(pool)
        .chain_update([0])
        .chain_update(position)
        .chain_update([0])
        .chain_update(token)
        .finalize()
        .into()
}
