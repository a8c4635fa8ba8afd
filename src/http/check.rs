//! `POST /v1/check` and `POST /v1/check/batch`: the decision path, stage by stage.
//!
//! Each handler reads as the pipeline: bearer token (plus `X-Id-Token` in paired mode) →
//! `token::Verifier` → `principal::resolve` → `Decider::decide` → JSON answer. The token is
//! checked before the body is parsed, so an unauthenticated caller learns nothing about the
//! schema. A deny is a normal `200`. Every outcome goes to the decision log.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::decision::request::AccessRequest;
use crate::error::{ApiError, ErrorBody};
use crate::http::pipeline::{authenticate_then_read, guarded, request_id_of};
use crate::http::state::AppState;
use crate::limits::MAX_BATCH_ITEMS;
use crate::principal::Principal;

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
    guarded(&request, &state, started, check_one(&request, body, &state, started)).await
}

async fn check_one(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let (principal, ask): (_, AccessRequest) = authenticate_then_read(request, body, state).await?;
    let folder = state.policies.current();
    let decision = folder.decider.decide(&principal, &ask)?;
    state.decision_log.decided(&request_id_of(request), &principal, &ask, &decision, folder.decider.version(), started);
    Ok(HttpResponse::Ok().json(CheckResponse {
        decision: DecisionView::from(decision),
        policy_version: folder.decider.version(),
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
    guarded(&request, &state, started, check_many(&request, body, &state, started)).await
}

async fn check_many(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let (principal, batch): (_, BatchRequest) = authenticate_then_read(request, body, state).await?;
    if batch.items.is_empty() || batch.items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::InvalidRequest(format!("items: between 1 and {MAX_BATCH_ITEMS} items are accepted")));
    }
    let folder = state.policies.current();
    let decisions = folder.decider.decide_all(&principal, &batch.items)?;
    let request_id = request_id_of(request);
    for (ask, decision) in batch.items.iter().zip(&decisions) {
        state.decision_log.decided(&request_id, &principal, ask, decision, folder.decider.version(), started);
    }
    Ok(HttpResponse::Ok().json(BatchResponse {
        policy_version: folder.decider.version(),
        pool: &principal.pool,
        principal: PrincipalView::from(&principal),
        results: decisions.into_iter().map(DecisionView::from).collect(),
    }))
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
