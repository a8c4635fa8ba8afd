//! Stage 2: "who is this, for policy purposes, and may they still act at all?"
//!
//! [`resolve`] reads what the admin tables say about a verified token's subject ([`store`]):
//! a disabled principal, a global sign-out (`tokens_valid_after`) or a revoked token id stops
//! the request here. Otherwise the claims and the flags become a [`Principal`]. A principal can
//! only be built from a [`VerifiedToken`], so an unverified claim never reaches a policy.

pub mod coherence;
pub mod error;
pub mod store;

use std::sync::Arc;

use crate::config::TokenUse;
use crate::principal::error::PrincipalError;
use crate::principal::store::{PrincipalRecord, PrincipalStore};
use crate::token::VerifiedToken;

/// The user as the policies see it.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Pool name, e.g. `merchant`.
    pub pool: String,
    /// Cedar namespace of the pool, e.g. `Merchant`.
    pub namespace: String,
    /// The token's `sub`.
    pub sub: String,
    /// The kind of token presented as bearer.
    pub token_use: TokenUse,
    /// Groups from the token; they become the entity's parents.
    pub groups: Vec<String>,
    /// The `email` claim, when present.
    pub email: Option<String>,
    /// OAuth scopes of an access token.
    pub scopes: Vec<String>,
    /// Mapped claim attributes.
    pub attributes: Vec<(String, String)>,
    /// Permission flags from the database.
    pub flags: Arc<[String]>,
}

/// Checks the token's subject and ids against the admin tables and builds the principal.
pub async fn resolve(store: &PrincipalStore, token: &VerifiedToken) -> Result<Principal, PrincipalError> {
    let pool = token.pool.settings();
    if store.any_revoked(&pool.name, &token.claims.token_ids).await? {
        return Err(PrincipalError::Revoked);
    }
    let record = store.record(&pool.name, &token.claims.sub).await?;
    admit(token, &record)?;
    Ok(build(token, &record))
}

/// The account switches of a principal record.
fn admit(token: &VerifiedToken, record: &PrincipalRecord) -> Result<(), PrincipalError> {
    if record.disabled {
        return Err(PrincipalError::Disabled);
    }
    if token.pool.settings().require_registered && !record.registered {
        return Err(PrincipalError::NotRegistered);
    }
    if let Some(valid_after) = record.tokens_valid_after {
        // A token that cannot say when its sign-in happened predates every sign-out.
        let signed_in_at = token.claims.times.signed_in_at.unwrap_or(f64::NEG_INFINITY);
        if signed_in_at < valid_after as f64 {
            return Err(PrincipalError::Revoked);
        }
    }
    Ok(())
}

fn build(token: &VerifiedToken, record: &PrincipalRecord) -> Principal {
    let settings = token.pool.settings();
    let claims = &token.claims;
    Principal {
        pool: settings.name.clone(),
        namespace: settings.namespace.clone(),
        sub: claims.sub.clone(),
        token_use: claims.token_use,
        groups: claims.groups.clone(),
        email: claims.email.clone(),
        scopes: claims.scopes.clone(),
        attributes: claims.attributes.clone(),
        flags: Arc::clone(&record.flags),
    }
}
