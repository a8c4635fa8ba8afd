//! Stage 2: "who is this, for policy purposes, and may they still act at all?"
//!
//! [`resolve`] reads what the admin tables say about a verified token's subject ([`store`]):
//! a disabled principal, a global sign-out (`tokens_valid_after`) or a revoked token id stops
//! the request here. Otherwise the claims, the flags and the groups granted in SQL become a
//! [`Principal`]. A principal is built from a [`VerifiedToken`], so an unverified claim never
//! reaches a policy; the one other way is [`resolve_named`], for a subject an authenticated
//! AuthZEN trusted caller names by id, whose groups, flags and attributes all come from SQL.

pub mod coherence;
pub mod error;
pub mod store;

use std::sync::Arc;

use crate::config::pool::{PoolSettings, RESERVED_ATTRIBUTES, TokenUse};
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
    /// Groups from the token and from `principal_groups`: their union, the token's first in its
    /// order; they become the entity's parents.
    pub groups: Vec<String>,
    /// The `email` claim, when present.
    pub email: Option<String>,
    /// OAuth scopes of an access token.
    pub scopes: Vec<String>,
    /// Mapped claim attributes (or, for a named subject, `principal_attributes`).
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

/// A subject named by id by an AuthZEN trusted caller (an API key holder): only a subject
/// registered in `pool` (a `principals` row, not disabled) is judged, so the caller can learn
/// nothing about ids the operator never registered. Its groups, flags and attributes come from
/// SQL alone; `email` among the attributes becomes the `email` attribute, and `token_use` reads
/// `id` (the subject's identity, as the directory knows it); scopes are empty.
pub async fn resolve_named(
    store: &PrincipalStore,
    pool: &PoolSettings,
    subject: &str,
) -> Result<Principal, PrincipalError> {
    let record = store.record(&pool.name, subject).await?;
    named(pool, subject, &record)
}

/// The principal of a registered subject's record; see [`resolve_named`].
pub fn named(pool: &PoolSettings, subject: &str, record: &PrincipalRecord) -> Result<Principal, PrincipalError> {
    if !record.registered {
        return Err(PrincipalError::NotRegistered);
    }
    if record.disabled {
        return Err(PrincipalError::Disabled);
    }
    let email = record.attributes.iter().find(|(name, _)| name == "email").map(|(_, value)| value.clone());
    let attributes =
        record.attributes.iter().filter(|(name, _)| !RESERVED_ATTRIBUTES.contains(&name.as_str())).cloned().collect();
    Ok(Principal {
        pool: pool.name.clone(),
        namespace: pool.namespace.clone(),
        sub: subject.to_owned(),
        token_use: TokenUse::Id,
        groups: record.groups.to_vec(),
        email,
        scopes: Vec::new(),
        attributes,
        flags: Arc::clone(&record.flags),
    })
}

fn build(token: &VerifiedToken, record: &PrincipalRecord) -> Principal {
    let settings = token.pool.settings();
    let claims = &token.claims;
    let mut groups = claims.groups.clone();
    groups.extend(record.groups.iter().filter(|group| !claims.groups.contains(group)).cloned());
    Principal {
        pool: settings.name.clone(),
        namespace: settings.namespace.clone(),
        sub: claims.sub.clone(),
        token_use: claims.token_use,
        groups,
        email: claims.email.clone(),
        scopes: claims.scopes.clone(),
        attributes: claims.attributes.clone(),
        flags: Arc::clone(&record.flags),
    }
}
