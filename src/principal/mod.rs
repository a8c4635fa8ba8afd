//! Stage 2: "who is this, for policy purposes?"
//!
//! A [`Principal`] joins a verified token's claims with the user's permission flags from the
//! database. It can only be built from a [`VerifiedToken`], so an unverified claim can never
//! reach a policy.

pub mod flags;

use std::sync::Arc;

use crate::config::TokenUse;
use crate::token::VerifiedToken;

/// Why a principal could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    /// The flags could not be read; answering without them could allow too much or too little.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),
}

/// The user as the policies see it.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Pool name, e.g. `merchant`.
    pub pool: String,
    /// Cedar namespace of the pool, e.g. `Merchant`.
    pub namespace: String,
    /// The token's `sub`.
    pub sub: String,
    /// The kind of token presented.
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

/// Joins the verified claims with the flags loaded for the same pool and subject.
pub fn build(token: &VerifiedToken, flags: Arc<[String]>) -> Principal {
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
        flags,
    }
}
