//! `/v1/forward-auth` (any method): the answer reverse proxies expect from an auth subrequest.
//!
//! The original request comes from `X-Forwarded-Method`/`X-Forwarded-Uri` (Traefik, Caddy) or
//! `X-Original-Method`/`X-Original-URI` (nginx); without them the request itself is the original
//! one, with the `/v1/forward-auth` prefix removed (Envoy's HTTP ext_authz). The route table maps
//! it to an action and resource; then the usual pipeline decides.
//!
//! `200` allows, with identity headers for the upstream; `401` (with `WWW-Authenticate`) means
//! no valid token; `403` is a deny, including an unmatched or non-canonical route.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, route, web};
use serde_json::{Map, json};

use crate::decision::routes::{RouteError, Target};
use crate::decision::{AccessRequest, DecisionError, ResourceRef, entities};
use crate::error::{ApiError, ErrorBody};
use crate::http::AppState;
use crate::http::check::{authenticate, guarded};
use crate::principal::PrincipalError;
use crate::resources::ResourceError;

/// The endpoint's path; Envoy appends the original path to it.
pub const PATH: &str = "/v1/forward-auth";

/// Decides on the original request a proxy forwards (headers name it).
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/v1/forward-auth",
    params(
        ("X-Original-Method" = Option<String>, Header, description = "nginx: the original method"),
        ("X-Original-URI" = Option<String>, Header, description = "nginx: the original URI"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "Traefik, Caddy: the original method"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "Traefik, Caddy: the original URI"),
    ),
    responses(
        (status = 200, description = "Allow; identity in X-Poolgate-Pool, X-Poolgate-Sub, X-Poolgate-Groups"),
        (status = 400, description = "Half a pair of forwarded headers, or both pairs", body = ErrorBody),
        (status = 401, description = "Missing or rejected token", body = ErrorBody),
        (status = 403, description = "Deny, no route, or a non-canonical path"),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[route(
    "/v1/forward-auth",
    method = "GET",
    method = "POST",
    method = "PUT",
    method = "PATCH",
    method = "DELETE",
    method = "HEAD",
    method = "OPTIONS"
)]
pub async fn forward_auth(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&state, started, decide(&request, &state, started)).await
}

/// Envoy's HTTP ext_authz: the original method, and the original path after the prefix.
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/v1/forward-auth/{original}",
    params(("original" = String, Path, description = "The original path")),
    responses(
        (status = 200, description = "Allow; identity in X-Poolgate-Pool, X-Poolgate-Sub, X-Poolgate-Groups"),
        (status = 401, description = "Missing or rejected token", body = ErrorBody),
        (status = 403, description = "Deny, no route, or a non-canonical path"),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[route(
    "/v1/forward-auth/{original:.*}",
    method = "GET",
    method = "POST",
    method = "PUT",
    method = "PATCH",
    method = "DELETE",
    method = "HEAD",
    method = "OPTIONS"
)]
pub async fn forward_auth_prefixed(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&state, started, decide(&request, &state, started)).await
}

async fn decide(request: &HttpRequest, state: &AppState, started: Instant) -> Result<HttpResponse, ApiError> {
    let (method, uri) = original_request(request)?;
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    let decider = state.policies.current();
    let (action, resource_type, resource_id) = match decider.routes().resolve(&method, path) {
        Ok(Target::Public) => return Ok(HttpResponse::Ok().finish()),
        Ok(Target::Protected { action, resource_type, resource_id }) => (action, resource_type, resource_id),
        Err(err @ (RouteError::NoRoute { .. } | RouteError::NotCanonical)) => {
            return Ok(forbidden(&err.to_string()));
        }
    };
    let principal = authenticate(request, state).await?;
    // A type the token's pool does not have is denied before any query, and a missing row is
    // an ordinary deny: a caller learns nothing about rows it may not see.
    if let Err(DecisionError::InvalidRequest(message)) =
        entities::resource_type(&principal.namespace, &resource_type, decider.schema())
    {
        return Ok(forbidden(&message));
    }
    let attributes = match state.resources.attributes(&resource_type, &resource_id).await {
        Ok(attributes) => attributes.map(|attributes| (*attributes).clone()).unwrap_or_default(),
        Err(ResourceError::NotFound { .. }) => return Ok(forbidden("denied")),
        Err(ResourceError::DatabaseUnavailable(message)) => {
            return Err(PrincipalError::DatabaseUnavailable(message).into());
        }
    };
    let ask = AccessRequest {
        action,
        resource: ResourceRef { type_name: resource_type, id: resource_id, attributes },
        context: Map::new(),
    };
    let decision = match decider.decide(&principal, &ask) {
        Ok(decision) => decision,
        // A route the token's pool cannot answer (no such action or type there) is a deny.
        Err(err @ (DecisionError::InvalidRequest(_) | DecisionError::InvalidContext(_))) => {
            return Ok(forbidden(&err.to_string()));
        }
        Err(err) => return Err(err.into()),
    };
    state.decision_log.decided(&principal, &ask, &decision, started);
    if !decision.allow {
        return Ok(HttpResponse::Forbidden().json(json!({
            "decision": "deny",
            "determining_policies": decision.determining_policies,
            "errors": decision.errors,
        })));
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header(("X-Poolgate-Pool", principal.pool.as_str()))
        .insert_header(("X-Poolgate-Sub", principal.sub.as_str()))
        .insert_header(("X-Poolgate-Groups", principal.groups.join(",")));
    for (name, value) in &principal.attributes {
        response.insert_header((format!("X-Poolgate-Attr-{name}"), value.as_str()));
    }
    Ok(response.finish())
}

/// The proxied request's method and URI.
///
/// Exactly one complete pair of headers, or none, is accepted: a half pair, or both pairs at
/// once (which a client smuggling its own headers past a proxy that sets the other pair would
/// produce), is refused rather than guessed at.
fn original_request(request: &HttpRequest) -> Result<(String, String), ApiError> {
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let pairs = [
        (header("x-forwarded-method"), header("x-forwarded-uri")),
        (header("x-original-method"), header("x-original-uri")),
    ];
    let present: Vec<_> = pairs.into_iter().filter(|(method, uri)| method.is_some() || uri.is_some()).collect();
    match present.as_slice() {
        [] => {}
        [(Some(method), Some(uri))] => return Ok((method.clone(), uri.clone())),
        [_] => return Err(ApiError::InvalidRequest("forwarded method and URI must come together".into())),
        _ => return Err(ApiError::InvalidRequest("both X-Forwarded-* and X-Original-* headers were sent".into())),
    }
    let rest = request.path().strip_prefix(PATH).unwrap_or_default();
    let path = if rest.is_empty() { "/" } else { rest };
    Ok((request.method().as_str().to_owned(), path.to_owned()))
}

fn forbidden(reason: &str) -> HttpResponse {
    HttpResponse::Forbidden().json(json!({ "decision": "deny", "determining_policies": [], "errors": [reason] }))
}
