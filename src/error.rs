//! The one place where errors become HTTP responses.
//!
//! Each stage has its own error type; [`ApiError`] wraps them and its `ResponseError` impl picks
//! the status, the stable `error` code and the `WWW-Authenticate` header. Client faults are
//! logged at debug, server faults at error; bodies never carry internal detail.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::decision::DecisionError;
use crate::principal::PrincipalError;
use crate::token::TokenError;

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
    /// The request body is not what the endpoint takes (`400`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The request body is larger than `server.max_body_bytes` (`413`).
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The request's headers are too many or too large (`431`).
    #[error(
        "the request headers exceed {} headers or {} bytes",
        crate::http::MAX_HEADERS,
        crate::http::MAX_HEADER_BYTES
    )]
    HeadersTooLarge,
    /// The answer took longer than `server.request_timeout` (`503`).
    #[error("the request took too long")]
    Timeout,
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
            ApiError::Token(err) => err.code(),
            ApiError::Principal(PrincipalError::Disabled) => "principal_disabled",
            ApiError::Principal(PrincipalError::Revoked) => "token_revoked",
            ApiError::Principal(PrincipalError::NotRegistered) => "principal_not_registered",
            ApiError::Principal(PrincipalError::DatabaseUnavailable(_)) => "database_unavailable",
            ApiError::Decision(DecisionError::InvalidRequest(_) | DecisionError::InvalidContext(_))
            | ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Decision(DecisionError::PrincipalSchema(_)) => "internal_error",
            ApiError::BodyTooLarge(_) => "payload_too_large",
            ApiError::Timeout => "timeout",
            ApiError::HeadersTooLarge => "headers_too_large",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Principal(PrincipalError::DatabaseUnavailable(_)) => "the database is unavailable".to_owned(),
            ApiError::Decision(DecisionError::PrincipalSchema(_)) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Token(TokenError::KeysUnavailable { .. })
            | ApiError::Principal(PrincipalError::DatabaseUnavailable(_))
            | ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Token(_) | ApiError::Principal(_) => StatusCode::UNAUTHORIZED,
            ApiError::Decision(DecisionError::InvalidRequest(_) | DecisionError::InvalidContext(_))
            | ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Decision(DecisionError::PrincipalSchema(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request rejected");
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response
                .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#)));
        }
        response.json(ErrorBody { error: self.code(), message: self.message() })
    }
}
