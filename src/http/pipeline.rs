//! What every front end shares, in the order a request meets it: the request id, the header
//! limits, the request timeout, authentication (stages 1 and 2), and the JSON body.
//!
//! A handler calls [`guarded`] around its own steps, and [`authenticate`] or
//! [`authenticate_then_read`] first among them; no handler imports another handler. The gRPC
//! front end, which has no actix request, calls [`bounded`], [`authenticate_tokens`] and
//! [`request_id_from`] instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;

use crate::error::ApiError;
use crate::http::state::AppState;
use crate::limits::{MAX_HEADER_BYTES, MAX_HEADERS};
use crate::principal::{self, Principal};
use crate::token::bearer;
use crate::token::error::TokenError;

/// The header carrying the ID token in paired mode; the bearer is then the access token.
pub const ID_TOKEN_HEADER: &str = "x-id-token";

/// The request id header, read from the caller and echoed on every answer.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-supplied request id kept; a longer or non-printable one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// The request's id: the caller's `X-Request-Id` when it is 1 to 128 visible ASCII
/// characters, else one made here from a per-process random prefix and a counter (unique
/// within the process, and cheap: no formatting of a UUID per request).
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    fn of(request: &ServiceRequest) -> Self {
        let given = request.headers().get(REQUEST_ID_HEADER).filter(|value| Self::acceptable(value.as_bytes()));
        match given {
            Some(value) => Self(value.clone()),
            None => Self::generate(),
        }
    }

    fn acceptable(given: &[u8]) -> bool {
        !given.is_empty() && given.len() <= MAX_REQUEST_ID && given.iter().all(|b| b.is_ascii_graphic())
    }

    fn generate() -> Self {
        static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = PREFIX.get_or_init(|| {
            let mut bytes = [0; 4];
            // Without randomness ids are still unique within the process.
            let _ = rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut bytes);
            u32::from_le_bytes(bytes)
        });
        let id = format!("{prefix:08x}-{:012x}", COUNTER.fetch_add(1, Ordering::Relaxed));
        Self(HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("unknown")))
    }
}

/// The id of a request that did not come through [`request_id`] (a gRPC call): `given`, the
/// caller's id, under the same rules.
pub fn request_id_from(given: Option<&str>) -> String {
    match given.filter(|given| RequestId::acceptable(given.as_bytes())) {
        Some(given) => given.to_owned(),
        None => RequestId::generate().as_str().to_owned(),
    }
}

/// The id of `request`, as set by [`request_id`].
pub fn request_id_of(request: &HttpRequest) -> String {
    request.extensions().get::<RequestId>().map(|id| id.as_str().to_owned()).unwrap_or_default()
}

/// Middleware: gives the request its [`RequestId`] and echoes it on the answer, whatever the
/// answer is.
pub async fn request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = RequestId::of(&request);
    request.extensions_mut().insert(id.clone());
    let mut response = next.call(request).await?;
    response.headers_mut().insert(REQUEST_ID_HEADER, id.0);
    Ok(response)
}

/// Middleware: refuses a request whose headers exceed [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`]
/// with `431`, before any handler runs.
pub async fn limit_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let (count, bytes) = request
        .headers()
        .iter()
        .fold((0, 0), |(count, bytes), (name, value)| (count + 1, bytes + name.as_str().len() + value.len()));
    if count > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        let response = ApiError::HeadersTooLarge.error_response();
        return Ok(request.into_response(response).map_into_right_body());
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

/// Runs a handler's steps within `server.request_timeout` and sends a refusal to the decision
/// log (decisions are logged where they are made).
pub async fn guarded(
    request: &HttpRequest,
    state: &AppState,
    started: Instant,
    steps: impl Future<Output = Result<HttpResponse, ApiError>>,
) -> Result<HttpResponse, ApiError> {
    bounded(|| request_id_of(request), state, started, steps).await
}

/// [`guarded`] for any front end: runs `steps` within `server.request_timeout`, and sends a
/// refusal to the decision log under the request id `request_id` gives.
pub async fn bounded<T>(
    request_id: impl FnOnce() -> String,
    state: &AppState,
    started: Instant,
    steps: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let result = tokio::time::timeout(state.request_timeout, steps).await.unwrap_or(Err(ApiError::Timeout));
    if let Err(err) = &result {
        let version = state.policies.current();
        state.decision_log.refused(&request_id(), err.code(), version.decider.version(), started);
    }
    result
}

/// Stages 1 and 2: verifies the bearer token (and the ID token beside it, in paired mode) and
/// resolves the principal against the admin tables.
pub async fn authenticate(request: &HttpRequest, state: &AppState) -> Result<Principal, ApiError> {
    let headers: Vec<&[u8]> = request.headers().get_all(AUTHORIZATION).map(|value| value.as_bytes()).collect();
    let id_tokens: Vec<&[u8]> = request.headers().get_all(ID_TOKEN_HEADER).map(|value| value.as_bytes()).collect();
    authenticate_tokens(&headers, &id_tokens, state).await
}

/// [`authenticate`] for any front end, from the values of the token headers however they
/// arrived: every `Authorization` value, and every `X-Id-Token` value.
pub async fn authenticate_tokens(
    authorization: &[&[u8]],
    id_tokens: &[&[u8]],
    state: &AppState,
) -> Result<Principal, ApiError> {
    let bearer = bearer::extract(authorization)?;
    let token = match id_tokens {
        [] => state.verifier.verify(bearer).await?,
        [[]] => return Err(TokenError::Malformed("X-Id-Token is empty".into()).into()),
        [id_token] => state.verifier.verify_pair(bearer, bearer::raw(id_token)?).await?,
        _ => return Err(TokenError::Malformed("more than one X-Id-Token header".into()).into()),
    };
    Ok(principal::resolve(&state.principals, &token).await?)
}

/// Stages 1 and 2, then the JSON body. A refused token is answered without parsing the body,
/// but the body is still read (up to `server.max_body_bytes`, within the request timeout):
/// actix-web closes a keep-alive connection whose body was left unread, and a caller with an
/// expired token would otherwise pay a new connection for its next request.
pub async fn authenticate_then_read<T: for<'de> Deserialize<'de>>(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<(Principal, T), ApiError> {
    match authenticate(request, state).await {
        Ok(principal) => Ok((principal, read_json(body, state.max_body_bytes).await?)),
        Err(err) => {
            // What the body says no longer matters; an unreadable one just closes the connection.
            let _ = body.to_bytes_limited(state.max_body_bytes).await;
            Err(err)
        }
    }
}

/// The body as JSON, refused past `limit` bytes.
pub async fn read_json<T: for<'de> Deserialize<'de>>(body: web::Payload, limit: usize) -> Result<T, ApiError> {
    let bytes = body
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge(limit))?
        .map_err(|_| ApiError::InvalidRequest("the request body could not be read".into()))?;
    serde_json::from_slice(&bytes).map_err(|err| ApiError::InvalidRequest(format!("invalid JSON body: {err}")))
}
