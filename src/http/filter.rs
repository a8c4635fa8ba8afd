//! `POST /v1/filter`: "which resources of this type may I do this action on?", answered from
//! the same policies as `/v1/check`: always allow, always deny, or a condition over the
//! resource's attributes, with its SQL for PostgreSQL and SQLite when the type has a table
//! mapping (`[resources.<Type>] table`).
//!
//! Reads as the pipeline: bearer token (plus `X-Id-Token` in paired mode) → `token::Verifier`
//! → `principal::resolve` → `filter::plan` → `filter::to_sql` for each dialect → JSON answer.
//! Every answer goes to the decision log, as `allow`, `deny` or `conditional`.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorBody};
use crate::filter::{
    Condition, Dialect, FilterError, FilterQuestion, Plan, ResourceMapping, SqlError, SqlWhere, plan, to_sql,
};
use crate::http::pipeline::{authenticate_then_read, guarded, request_id_of};
use crate::http::state::AppState;

/// `POST /v1/filter` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FilterRequest {
    /// Action name within the pool's namespace, e.g. `update`.
    action: String,
    /// Resource type within the pool's namespace, e.g. `Stock`.
    resource_type: String,
    /// Request context, checked against the action's context type.
    #[serde(default)]
    #[schema(value_type = Object)]
    context: Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct FilterResponse<'a> {
    /// `always_allow`, `always_deny` or `conditional`.
    kind: &'static str,
    /// The condition tree (`conditional` only); see docs/filtering.md.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    condition: Option<&'a Condition>,
    /// The condition as SQL (`conditional` only, and only for a type with a table mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<SqlByDialect>,
    pool: &'a str,
    /// The principal's `sub`.
    principal: &'a str,
    policy_version: &'a str,
    /// Ids of the policies involved, sorted.
    policies: &'a [String],
}

/// The condition's `WHERE` fragment in each dialect it can be written in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SqlByDialect {
    /// `{"where": "...", "params": [...]}`, `$1`, `$2`, … numbered in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    postgres: Option<SqlWhere>,
    /// Likewise; absent when the condition reads a set attribute (SQLite has no arrays).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    sqlite: Option<SqlWhere>,
}

/// Plans the list question for the bearer of the token.
#[utoipa::path(
    request_body = FilterRequest,
    params(("Authorization" = String, Header, description = "Bearer token"),
           ("X-Id-Token" = Option<String>, Header, description = "ID token, in paired mode")),
    responses(
        (status = 200, description = "always_allow, always_deny or conditional", body = FilterResponse),
        (status = 400, description = "Unknown action or resource type, or a context the schema refuses", body = ErrorBody),
        (status = 401, description = "Missing or rejected token, or principal refused", body = ErrorBody),
        (status = 422, description = "A policy without an exact translation (unsupported_policy)", body = ErrorBody),
        (status = 500, description = "The mapping does not fit the schema", body = ErrorBody),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[post("/v1/filter")]
pub async fn filter(
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
    let (principal, ask): (_, FilterRequest) = authenticate_then_read(request, body, state).await?;
    let folder = state.policies.current();
    let question = FilterQuestion { action: &ask.action, resource_type: &ask.resource_type, context: &ask.context };
    let mapping = state.mappings.get(&ask.resource_type);
    let planned = plan(&folder.decider, &principal, mapping, &question)?;
    let (kind, condition) = match &planned.plan {
        Plan::AlwaysAllow => ("always_allow", None),
        Plan::AlwaysDeny => ("always_deny", None),
        Plan::Conditional { condition } => ("conditional", Some(condition)),
    };
    let sql = match (condition, mapping) {
        (Some(condition), Some(mapping)) => Some(SqlByDialect {
            postgres: written(condition, mapping, Dialect::Postgres)?,
            sqlite: written(condition, mapping, Dialect::Sqlite)?,
        }),
        _ => None,
    };
    state.decision_log.listed(
        &request_id_of(request),
        &principal,
        &question,
        &planned,
        folder.decider.version(),
        started,
    );
    Ok(HttpResponse::Ok().json(FilterResponse {
        kind,
        condition,
        sql,
        pool: &principal.pool,
        principal: &principal.sub,
        policy_version: folder.decider.version(),
        policies: &planned.policies,
    }))
}

/// The condition in `dialect`; `None` for a dialect that cannot hold it (sets on SQLite).
fn written(
    condition: &Condition,
    mapping: &ResourceMapping,
    dialect: Dialect,
) -> Result<Option<SqlWhere>, FilterError> {
    match to_sql(condition, mapping, dialect, 1) {
        Ok(sql) => Ok(Some(sql)),
        Err(SqlError::SetOnSqlite(_)) => Ok(None),
        Err(err) => Err(err.into()),
    }
}
