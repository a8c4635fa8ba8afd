//! Why a verified token's bearer may not act, or could not be looked up: one error type for the
//! principal stage, which `mod.rs` and `store.rs` both use.

use std::sync::Arc;

/// Why a verified token's bearer may not act, or could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    /// `principals.disabled` is set (`401 principal_disabled`).
    #[error("the principal is disabled")]
    Disabled,
    /// The token predates `tokens_valid_after` or its id is revoked (`401 token_revoked`).
    #[error("the token has been revoked")]
    Revoked,
    /// The pool requires a `principals` row and there is none (`401 principal_not_registered`).
    #[error("the principal is not registered")]
    NotRegistered,
    /// The admin tables could not be read; answering without them could allow too much.
    #[error("cannot read the admin tables")]
    DatabaseUnavailable(#[source] Arc<sqlx::Error>),
}
