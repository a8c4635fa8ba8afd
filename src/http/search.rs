//! `POST /v1/resources/search`: the list question run server-side, against the type's mapped
//! table in poolgate's own database, answered with the ids allowed, a page at a time, in
//! ascending id order, with an opaque cursor (see `filter::search`).
//!
//! Reads as the pipeline: bearer token (plus `X-Id-Token` in paired mode) → `token::Verifier`
//! → `principal::resolve` → `filter::search` (plan, SQL, query) → JSON answer. Every answer
//! goes to the decision log, as `allow`, `deny` or `conditional`.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorBody};
use crate::filter::{self, FilterError, FilterQuestion, PageRequest};
use crate::http::pipeline::{authenticate_then_read, guarded, request_id_of};
use crate::http::state::AppState;

/// `POST /v1/resources/search` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    /// Action name within the pool's namespace, e.g. `read`.
    action: String,
    /// Resource type within the pool's namespace, e.g. `Stock`; it needs a table mapping.
    resource_type: String,
    /// Request context, checked against the action's context type.
    #[serde(default)]
    #[schema(value_type = Object)]
    context: Map<String, Value>,
    #[serde(default)]
    page: PageBody,
}

/// Which page: at most `limit` ids (default 100, 1 to 1000), after `cursor`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PageBody {
    limit: Option<u64>,
    /// The `next_cursor` of the previous page; absent or null for the first.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SearchResponse<'a> {
    /// The resources allowed, ascending by id.
    results: Vec<Found<'a>>,
    /// Pass it as `page.cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
    policy_version: &'a str,
    pool: &'a str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Found<'a> {
    #[serde(rename = "type")]
    type_name: &'a str,
    id: String,
}

/// Lists the resources of a type the bearer of the token may do the action on.
#[utoipa::path(
    request_body = SearchRequest,
    params(("Authorization" = String, Header, description = "Bearer token"),
           ("X-Id-Token" = Option<String>, Header, description = "ID token, in paired mode")),
    responses(
        (status = 200, description = "One page of ids", body = SearchResponse),
        (status = 400, description = "Unknown action or type, a type without a table mapping, a limit out of 1 to 1000, or a cursor poolgate did not write", body = ErrorBody),
        (status = 401, description = "Missing or rejected token, or principal refused", body = ErrorBody),
        (status = 422, description = "A policy without an exact translation (unsupported_policy)", body = ErrorBody),
        (status = 500, description = "The mapping does not fit the schema or the database", body = ErrorBody),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[post("/v1/resources/search")]
pub async fn search(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&request, &state, started, answer(&request, body, &state, started)).await
}

async fn answer(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let (principal, ask): (_, SearchRequest) = authenticate_then_read(request, body, state).await?;
    let page = PageRequest::new(ask.page.limit, ask.page.cursor.as_deref())?;
    let folder = state.policies.current();
    let question = FilterQuestion { action: &ask.action, resource_type: &ask.resource_type, context: &ask.context };
    let Some(mapping) = state.mappings.get(&ask.resource_type) else {
        // An unknown type or action says more than "not mapped".
        return Err(match filter::plan(&folder.decider, &principal, None, &question) {
            Err(err @ (FilterError::InvalidRequest(_) | FilterError::Principal(_))) => err,
            _ => FilterError::NotMapped { resource_type: ask.resource_type.clone() },
        }
        .into());
    };
    let found = filter::search(&state.search_db, &folder.decider, &principal, mapping, &question, &page).await?;
    state.decision_log.listed(
        &request_id_of(request),
        &principal,
        &question,
        &found.planned,
        folder.decider.version(),
        started,
    );
    Ok(HttpResponse::Ok().json(SearchResponse {
        results: found.ids.into_iter().map(|id| Found { type_name: &ask.resource_type, id }).collect(),
        next_cursor: found.next_cursor.map(|cursor| cursor.encode()),
        policy_version: folder.decider.version(),
        pool: &principal.pool,
    }))
}
