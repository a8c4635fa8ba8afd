//! Stage 1c: a trusted pool at run time, with the signature-check rules derived from its settings.

use jsonwebtoken::{Algorithm, Validation};

use crate::config::pool::PoolSettings;

/// A trusted identity pool and the `jsonwebtoken` validation that goes with it.
#[derive(Debug)]
pub struct Pool {
    settings: PoolSettings,
    validation: Validation,
}

impl Pool {
    /// Builds the pool's validation rules.
    ///
    /// jsonwebtoken checks the signature and the algorithm only: RS256 is pinned here, never
    /// taken from the token header. Every claim check (`exp`, `nbf`, `iat`, `iss`, client,
    /// `token_use`) is done in `claims.rs`, because Cognito needs rules jsonwebtoken lacks
    /// (access tokens have `client_id`, not `aud`) and distinct error codes for each failure.
    pub fn new(settings: PoolSettings) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 0;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.aud = None;
        validation.iss = None;
        validation.sub = None;
        validation.required_spec_claims.clear();
        Self { settings, validation }
    }

    /// The pool's configuration.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Signature-check rules for `jsonwebtoken::decode`.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// The pool's name in the configuration.
    pub fn name(&self) -> &str {
        &self.settings.name
    }
}
