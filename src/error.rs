//! The one place where errors become HTTP responses, and where the stable error codes live.
//!
//! Each stage has its own error type, which keeps its cause as a `#[source]`; [`ApiError`]
//! wraps them and its `ResponseError` impl picks the status, the stable `error` code and the
//! `WWW-Authenticate` header. Server faults are logged at error with the whole cause chain, and
//! their bodies carry no internal detail; client faults are logged at debug, and their bodies
//! explain the mistake (the chain, joined by `: `).
//!
//! [`ApiError::refusal`] is the answer without its carrier; the gRPC ext_authz adapter sends it
//! as a denial, so both front ends answer an error alike.

use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::authzen::{AuthzenError, KeyError};
use crate::decision::error::DecisionError;
use crate::filter::FilterError;
use crate::forward::resources::ResourceError;
use crate::forward::{self, ForwardError};
use crate::limits::{MAX_HEADER_BYTES, MAX_HEADERS};
use crate::principal::error::PrincipalError;
use crate::token::error::TokenError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The token was rejected (`401`), or its pool's keys are unavailable (`503`).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The principal may not act (`401`), or could not be looked up (`503`).
    #[error(transparent)]
    Principal(#[from] PrincipalError),
    /// The question could not be decided (`400` or `500`).
    #[error(transparent)]
    Decision(#[from] DecisionError),
    /// A proxied request could not be translated (`403`, `400` or `503`).
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// A list question could not be answered (`400`, `422`, `500` or `503`).
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The request body is not what the endpoint takes (`400`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The request body is larger than `server.max_body_bytes` (`413`).
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The request's headers are too many or too large (`431`).
    #[error("the request headers exceed {MAX_HEADERS} headers or {MAX_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    /// The answer took longer than `server.request_timeout` (`503`).
    #[error("the request took too long")]
    Timeout,
    /// An AuthZEN request failed in its own translation (see `From<AuthzenError>`).
    #[error(transparent)]
    Authzen(AuthzenError),
}

/// An AuthZEN failure that is a stage's is answered as that stage's failure anywhere else.
impl From<AuthzenError> for ApiError {
    fn from(err: AuthzenError) -> Self {
        match err {
            AuthzenError::Token(err) => ApiError::Token(err),
            AuthzenError::Principal(err) => ApiError::Principal(err),
            AuthzenError::Decision(err) => ApiError::Decision(err),
            AuthzenError::Filter(err) => ApiError::Filter(err),
            other => ApiError::Authzen(other),
        }
    }
}

/// The challenge of every `401`.
pub const CHALLENGE: &str = r#"Bearer error="invalid_token""#;

/// What an error answers, whatever protocol carries it.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The `WWW-Authenticate` value, on a `401`.
    pub challenge: Option<&'static str>,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// Stable, documented code.
    pub error: &'a str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// The stable error code of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Token(err) => token_code(err),
            ApiError::Principal(PrincipalError::Disabled) => "principal_disabled",
            ApiError::Principal(PrincipalError::Revoked) => "token_revoked",
            ApiError::Principal(PrincipalError::NotRegistered) => "principal_not_registered",
            ApiError::Principal(PrincipalError::DatabaseUnavailable(_))
            | ApiError::Forward(ForwardError::DatabaseUnavailable(_)) => "database_unavailable",
            ApiError::Decision(err) | ApiError::Forward(ForwardError::Decision(err)) if err.is_caller_fault() => {
                "invalid_request"
            }
            ApiError::Decision(_) | ApiError::Forward(ForwardError::Decision(_) | ForwardError::IdentityHeader(_)) => {
                "internal_error"
            }
            ApiError::Forward(ForwardError::Headers(_)) | ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Filter(err) => filter_code(err),
            ApiError::Forward(ForwardError::Route(_)) => "no_route",
            ApiError::Forward(ForwardError::NotAnswerable(_)) => "not_answerable",
            ApiError::Forward(ForwardError::NoSuchResource) => "no_such_resource",
            ApiError::BodyTooLarge(_) => "payload_too_large",
            ApiError::Timeout => "timeout",
            ApiError::HeadersTooLarge => "headers_too_large",
            ApiError::Authzen(err) => authzen_code(err),
        }
    }

    /// The message a caller sees: the whole chain for its own mistakes, nothing internal for
    /// server faults.
    fn message(&self) -> String {
        match self.status_code() {
            StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_owned(),
            status if status.is_server_error() => self.to_string(),
            _ => chain(self),
        }
    }
}

/// An error and its sources, joined by `: `.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Token(TokenError::KeysUnavailable { .. })
            | ApiError::Principal(PrincipalError::DatabaseUnavailable(_))
            | ApiError::Forward(ForwardError::DatabaseUnavailable(_))
            | ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Token(_) | ApiError::Principal(_) => StatusCode::UNAUTHORIZED,
            ApiError::Decision(err) | ApiError::Forward(ForwardError::Decision(err)) if err.is_caller_fault() => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Decision(_) | ApiError::Forward(ForwardError::Decision(_) | ForwardError::IdentityHeader(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Forward(ForwardError::Headers(_)) | ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forward(_) => StatusCode::FORBIDDEN,
            ApiError::Filter(err) => filter_status(err),
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Authzen(err) => authzen_status(err),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let refusal = self.refusal();
        let mut response = HttpResponse::build(self.status_code());
        if let Some(challenge) = refusal.challenge {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge)));
        }
        response.json(refusal.body)
    }
}

impl ApiError {
    /// The status, challenge and body this error answers with; logs the error.
    pub fn refusal(&self) -> Refusal {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = chain(self), "request failed");
        } else {
            tracing::debug!(code = self.code(), error = chain(self), "request rejected");
        }
        let challenge = (status == StatusCode::UNAUTHORIZED).then_some(match self {
            // The AuthZEN caller's API key, a credential of its own realm.
            ApiError::Authzen(AuthzenError::Key(KeyError::Missing)) => r#"Bearer realm="poolgate-authzen""#,
            ApiError::Authzen(AuthzenError::Key(_)) => r#"Bearer realm="poolgate-authzen", error="invalid_token""#,
            _ => CHALLENGE,
        });
        let body = if status == StatusCode::FORBIDDEN && matches!(self, ApiError::Forward(_)) {
            // Forward-auth's refusals before a decision read like a deny with no policy.
            forward::deny_body(&[], &[chain(self)])
        } else {
            serde_json::json!({ "error": self.code(), "message": self.message() })
        };
        Refusal { status: status.as_u16(), challenge, body }
    }
}

/// The stable code of each AuthZEN failure of its own.
fn authzen_code(err: &AuthzenError) -> &'static str {
    match err {
        AuthzenError::Key(KeyError::Missing) => "missing_api_key",
        AuthzenError::Key(_) => "invalid_api_key",
        AuthzenError::SubjectMismatch => "subject_mismatch",
        AuthzenError::TrustedCallerRequired => "trusted_caller_required",
        AuthzenError::Resource(ResourceError::NotFound { .. }) => "no_such_resource",
        AuthzenError::Resource(ResourceError::DatabaseUnavailable(_)) => "database_unavailable",
        // Never here: `From<AuthzenError>` makes them `ApiError::Token`, `Principal`, `Decision`
        // and `Filter`.
        AuthzenError::Token(_) | AuthzenError::Principal(_) | AuthzenError::Decision(_) | AuthzenError::Filter(_) => {
            "internal_error"
        }
        AuthzenError::Invalid(_) | AuthzenError::UnknownSubjectType(_) | AuthzenError::UnknownResourceType(_) => {
            "invalid_request"
        }
    }
}

/// The status of each AuthZEN failure of its own.
fn authzen_status(err: &AuthzenError) -> StatusCode {
    match err {
        AuthzenError::Key(_) => StatusCode::UNAUTHORIZED,
        AuthzenError::SubjectMismatch | AuthzenError::TrustedCallerRequired => StatusCode::FORBIDDEN,
        AuthzenError::Resource(ResourceError::NotFound { .. }) => StatusCode::NOT_FOUND,
        AuthzenError::Resource(ResourceError::DatabaseUnavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        // Never here: `From<AuthzenError>` makes them `ApiError::Token`, `Principal`, `Decision`
        // and `Filter`.
        AuthzenError::Token(_) | AuthzenError::Principal(_) | AuthzenError::Decision(_) | AuthzenError::Filter(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        AuthzenError::Invalid(_) | AuthzenError::UnknownSubjectType(_) | AuthzenError::UnknownResourceType(_) => {
            StatusCode::BAD_REQUEST
        }
    }
}

/// The stable code of each list-filtering failure.
fn filter_code(err: &FilterError) -> &'static str {
    match filter_status(err) {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::UNPROCESSABLE_ENTITY => "unsupported_policy",
        StatusCode::SERVICE_UNAVAILABLE => "database_unavailable",
        _ => "internal_error",
    }
}

/// The status of each list-filtering failure: the caller's question (`400`), a policy without
/// an exact translation (`422`), the database (`503`), or the configuration and Cedar (`500`).
fn filter_status(err: &FilterError) -> StatusCode {
    match err {
        FilterError::InvalidRequest(_) | FilterError::NotMapped { .. } | FilterError::InvalidPage(_) => {
            StatusCode::BAD_REQUEST
        }
        FilterError::Principal(err) if err.is_caller_fault() => StatusCode::BAD_REQUEST,
        FilterError::Unsupported { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        FilterError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        FilterError::Principal(_) | FilterError::Mapping { .. } | FilterError::Sql(_) | FilterError::Engine { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The stable code of each token rejection.
fn token_code(err: &TokenError) -> &'static str {
    match err {
        TokenError::MissingToken => "missing_token",
        TokenError::Malformed(_) => "malformed_token",
        TokenError::TooLarge => "token_too_large",
        TokenError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
        TokenError::UnknownIssuer => "unknown_issuer",
        TokenError::UnknownKey => "unknown_key",
        TokenError::InvalidSignature => "invalid_signature",
        TokenError::Expired => "token_expired",
        TokenError::NotYetValid => "token_not_yet_valid",
        TokenError::IssuedInFuture => "issued_in_future",
        TokenError::WrongTokenUse => "wrong_token_use",
        TokenError::ClientNotAllowed => "client_not_allowed",
        TokenError::InvalidClaims(_) => "invalid_claims",
        TokenError::TooOld => "token_too_old",
        TokenError::PairMismatch(_) => "token_pair_mismatch",
        TokenError::KeysUnavailable { .. } => "jwks_unavailable",
    }
}
