//! `POST /v1/check` and `POST /v1/check/batch`: the decision path, stage by stage.
//!
//! Each handler reads as the pipeline: bearer token (plus `X-Id-Token` in paired mode) →
//! `token::Verifier` → `principal::resolve` → `Decider::decide` → JSON answer. The token is
//! checked before the body is parsed, so an unauthenticated caller learns nothing about the
//! schema. A deny is a normal `200`. Every outcome goes to the decision log.

use std::time::Instant;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};

use crate::decision::{AccessRequest, Decision};
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::principal::{self, Principal};
use crate::token::{TokenError, bearer};

/// The header carrying the ID token in paired mode; the bearer is then the access token.
pub const ID_TOKEN_HEADER: &str = "x-id-token";

/// Most items one batch may hold.
pub const MAX_BATCH_ITEMS: usize = 100;

/// `POST /v1/check/batch` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    items: Vec<AccessRequest>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PrincipalView<'a> {
    sub: &'a str,
    groups: &'a [String],
    flags: &'a [String],
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DecisionView {
    decision: &'static str,
    determining_policies: Vec<String>,
    errors: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CheckResponse<'a> {
    #[serde(flatten)]
    decision: DecisionView,
    policy_version: &'a str,
    pool: &'a str,
    principal: PrincipalView<'a>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct BatchResponse<'a> {
    policy_version: &'a str,
    pool: &'a str,
    principal: PrincipalView<'a>,
    results: Vec<DecisionView>,
}

/// Decides one (action, resource) question for the bearer of the token.
#[utoipa::path(
    request_body = AccessRequest,
    params(("Authorization" = String, Header, description = "Bearer token"),
           ("X-Id-Token" = Option<String>, Header, description = "ID token, in paired mode")),
    responses(
        (status = 200, description = "Allow or deny", body = CheckResponse),
        (status = 400, description = "Not a question the schema allows", body = ErrorBody),
        (status = 401, description = "Missing or rejected token, or principal refused", body = ErrorBody),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[post("/v1/check")]
pub async fn check(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&state, started, check_one(&request, body, &state, started)).await
}

async fn check_one(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let (principal, ask): (_, AccessRequest) = authenticated(request, body, state).await?;
    let decider = state.policies.current();
    let decision = decider.decide(&principal, &ask)?;
    state.decision_log.decided(&principal, &ask, &decision, started);
    Ok(HttpResponse::Ok().json(CheckResponse {
        decision: DecisionView::from(decision),
        policy_version: decider.version(),
        pool: &principal.pool,
        principal: PrincipalView::from(&principal),
    }))
}

/// Decides up to [`MAX_BATCH_ITEMS`] questions for one token, answered in order.
#[utoipa::path(
    request_body = BatchRequest,
    responses(
        (status = 200, description = "One answer per item, in order", body = BatchResponse),
        (status = 400, description = "An invalid item, or not 1 to 100 items", body = ErrorBody),
        (status = 401, description = "Missing or rejected token", body = ErrorBody),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[post("/v1/check/batch")]
pub async fn check_batch(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&state, started, check_many(&request, body, &state, started)).await
}

async fn check_many(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let (principal, batch): (_, BatchRequest) = authenticated(request, body, state).await?;
    if batch.items.is_empty() || batch.items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::InvalidRequest(format!("items: between 1 and {MAX_BATCH_ITEMS} items are accepted")));
    }
    let decider = state.policies.current();
    let decisions = decider.decide_all(&principal, &batch.items)?;
    for (ask, decision) in batch.items.iter().zip(&decisions) {
        state.decision_log.decided(&principal, ask, decision, started);
    }
    Ok(HttpResponse::Ok().json(BatchResponse {
        policy_version: decider.version(),
        pool: &principal.pool,
        principal: PrincipalView::from(&principal),
        results: decisions.into_iter().map(DecisionView::from).collect(),
    }))
}

/// Stages 1 and 2: verify the bearer token (and the ID token beside it, in paired mode) and
/// resolve the principal against the admin tables.
pub(crate) async fn authenticate(request: &HttpRequest, state: &AppState) -> Result<Principal, ApiError> {
    let headers: Vec<&[u8]> = request.headers().get_all(AUTHORIZATION).map(|value| value.as_bytes()).collect();
    let bearer = bearer::extract(&headers)?;
    let id_tokens: Vec<&[u8]> = request.headers().get_all(ID_TOKEN_HEADER).map(|value| value.as_bytes()).collect();
    let token = match id_tokens.as_slice() {
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
pub(crate) async fn authenticated<T: for<'de> Deserialize<'de>>(
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

/// Runs a handler's pipeline within `server.request_timeout` and sends refusals to the
/// decision log (decisions were logged where they were made).
pub(crate) async fn guarded(
    state: &AppState,
    started: Instant,
    pipeline: impl Future<Output = Result<HttpResponse, ApiError>>,
) -> Result<HttpResponse, ApiError> {
    let result = tokio::time::timeout(state.request_timeout, pipeline).await.unwrap_or(Err(ApiError::Timeout));
    if let Err(err) = &result {
        state.decision_log.refused(err.code(), started);
    }
    result
}

pub(crate) async fn read_json<T: for<'de> Deserialize<'de>>(body: web::Payload, limit: usize) -> Result<T, ApiError> {
    let bytes = body
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::BodyTooLarge(limit))?
        .map_err(|_| ApiError::InvalidRequest("the request body could not be read".into()))?;
    serde_json::from_slice(&bytes).map_err(|err| ApiError::InvalidRequest(format!("invalid JSON body: {err}")))
}

impl<'a> From<&'a Principal> for PrincipalView<'a> {
    fn from(principal: &'a Principal) -> Self {
        Self { sub: &principal.sub, groups: &principal.groups, flags: &principal.flags }
    }
}

impl From<Decision> for DecisionView {
    fn from(decision: Decision) -> Self {
        Self {
            decision: if decision.allow { "allow" } else { "deny" },
            determining_policies: decision.determining_policies,
            errors: decision.errors,
        }
    }
}
