//! `POST /v1/permissions`: "what may this principal do?" for up to 100 resources at once, so a
//! UI can show or hide its buttons. The candidate actions come from the schema; each one is
//! decided like `/v1/check`.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decision::error::DecisionError;
use crate::decision::request::ResourceRef;
use crate::error::{ApiError, ErrorBody};
use crate::http::pipeline::{authenticate_then_read, guarded};
use crate::http::state::AppState;
use crate::limits::MAX_BATCH_ITEMS;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PermissionsRequest {
    resources: Vec<ResourceRef>,
    #[serde(default)]
    #[schema(value_type = Object)]
    context: Map<String, Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PermissionsResponse<'a> {
    policy_version: &'a str,
    pool: &'a str,
    sub: &'a str,
    resources: Vec<ResourcePermissions<'a>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ResourcePermissions<'a> {
    #[serde(rename = "type")]
    type_name: &'a str,
    id: &'a str,
    allowed_actions: Vec<String>,
}

/// Lists the allowed actions on each resource, in request order.
#[utoipa::path(
    request_body = PermissionsRequest,
    responses(
        (status = 200, description = "Allowed actions per resource", body = PermissionsResponse),
        (status = 400, description = "Unknown resource type, or not 1 to 100 resources", body = ErrorBody),
        (status = 401, description = "Missing or rejected token", body = ErrorBody),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[post("/v1/permissions")]
pub async fn permissions(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&request, &state, started, list(&request, body, &state)).await
}

async fn list(request: &HttpRequest, body: web::Payload, state: &AppState) -> Result<HttpResponse, ApiError> {
    let (principal, ask): (_, PermissionsRequest) = authenticate_then_read(request, body, state).await?;
    if ask.resources.is_empty() || ask.resources.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::InvalidRequest(format!("resources: between 1 and {MAX_BATCH_ITEMS} are accepted")));
    }
    let folder = state.policies.current();
    let mut results = Vec::with_capacity(ask.resources.len());
    for (index, resource) in ask.resources.iter().enumerate() {
        let allowed_actions =
            folder.decider.allowed_actions(&principal, resource, &ask.context).map_err(|err| match err {
                err if err.is_caller_fault() => DecisionError::Item { list: "resources", index, source: Box::new(err) },
                other => other,
            })?;
        results.push(ResourcePermissions { type_name: &resource.type_name, id: &resource.id, allowed_actions });
    }
    Ok(HttpResponse::Ok().json(PermissionsResponse {
        policy_version: folder.decider.version(),
        pool: &principal.pool,
        sub: &principal.sub,
        resources: results,
    }))
}
