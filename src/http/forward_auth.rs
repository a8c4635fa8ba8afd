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

use crate::error::{ApiError, ErrorBody};
use crate::forward::routes::Target;
use crate::forward::{self, ForwardError};
use crate::http::pipeline::{authenticate, guarded, request_id_of};
use crate::http::state::AppState;

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
        (status = 500, description = "Internal error", body = ErrorBody),
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
    guarded(&request, &state, started, decide(&request, &state, started)).await
}

/// Envoy's HTTP ext_authz: the original method, and the original path after the prefix.
#[utoipa::path(
    method(get, post, put, patch, delete, head, options),
    path = "/v1/forward-auth/{original}",
    params(("original" = String, Path, description = "The original path")),
    responses(
        (status = 200, description = "Allow; identity in X-Poolgate-Pool, X-Poolgate-Sub, X-Poolgate-Groups"),
        (status = 400, description = "Half a pair of forwarded headers, or both pairs (a pair overrides the path)", body = ErrorBody),
        (status = 401, description = "Missing or rejected token", body = ErrorBody),
        (status = 403, description = "Deny, no route, or a non-canonical path"),
        (status = 500, description = "Internal error", body = ErrorBody),
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
    guarded(&request, &state, started, decide(&request, &state, started)).await
}

async fn decide(request: &HttpRequest, state: &AppState, started: Instant) -> Result<HttpResponse, ApiError> {
    let (method, uri) = original_request(request)?;
    let folder = state.policies.current();
    let (action, resource_type, resource_id) = match forward::route(&folder.routes, &method, &uri)? {
        Target::Public => return Ok(HttpResponse::Ok().finish()),
        Target::Protected { action, resource_type, resource_id } => (action, resource_type, resource_id),
    };
    let principal = authenticate(request, state).await?;
    let ask =
        forward::question(action, resource_type, resource_id, &principal, &folder.decider, &state.resources).await?;
    let decision = forward::decide(&folder.decider, &principal, &ask)?;
    let identity = if decision.allow { forward::identity_headers(&principal)? } else { Vec::new() };
    let version = folder.decider.version();
    state.decision_log.decided(&request_id_of(request), &principal, &ask, &decision, version, started);
    if !decision.allow {
        return Ok(HttpResponse::Forbidden().json(forward::deny_body(&decision.determining_policies, &decision.errors)));
    }
    let mut response = HttpResponse::Ok();
    for header in identity {
        response.insert_header(header);
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
        [_] => return Err(ForwardError::Headers("forwarded method and URI must come together").into()),
        _ => return Err(ForwardError::Headers("both X-Forwarded-* and X-Original-* headers were sent").into()),
    }
    let rest = request.path().strip_prefix(PATH).unwrap_or_default();
    let path = if rest.is_empty() { "/" } else { rest };
    Ok((request.method().as_str().to_owned(), path.to_owned()))
}
