//! Why a token was rejected: one error type for the whole token stage, so that its submodules
//! and `mod.rs` depend on this file rather than on each other.

/// Why a token was rejected. Every variant but [`TokenError::KeysUnavailable`] is the client's
/// fault and answers `401`; `error.rs` gives each its stable code.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` token.
    #[error("no bearer token in the Authorization header")]
    MissingToken,
    /// Not a well-formed signed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Larger than `bearer::MAX_TOKEN_BYTES`.
    #[error("token is larger than 8 KiB")]
    TooLarge,
    /// The header's `alg` is not RS256.
    #[error("algorithm `{0}` is not accepted; tokens must be RS256")]
    UnsupportedAlgorithm(String),
    /// `iss` names no trusted pool.
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    /// The pool has no usable key with the token's `kid`.
    #[error("the token's signing key is not known for its issuer")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    InvalidSignature,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `token_use` is not accepted by the pool.
    #[error("this kind of token is not accepted by its pool")]
    WrongTokenUse,
    /// The app client is not in the pool's allowlist.
    #[error("the token's app client is not allowed")]
    ClientNotAllowed,
    /// A required claim is missing or a claim has the wrong type.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// The sign-in is older than the pool's `max_token_age`.
    #[error("the sign-in behind this token is older than the pool allows")]
    TooOld,
    /// The access token and the `X-Id-Token` do not belong together.
    #[error("the access token and the ID token do not match: {0}")]
    PairMismatch(String),
    /// The pool's keys are not loaded or too stale; the token cannot be judged (`503`).
    #[error("signing keys of pool `{pool}` are unavailable")]
    KeysUnavailable {
        /// The pool whose keys are missing.
        pool: String,
    },
}
