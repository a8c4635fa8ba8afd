//! `envoy.service.auth.v3.Authorization/Check`: Envoy's gRPC external authorization, a thin
//! adapter around the forward-auth stage (`forward/`), like `/v1/forward-auth`.
//!
//! The proxied request is `attributes.request.http`: its method, its path (query string
//! included) and its headers, lower-case keys (or the raw list, with Envoy's
//! `encode_raw_headers`). The token is in `authorization` (and `x-id-token` in paired mode), so
//! the request body is never needed (`with_request_body` may stay off). Then, as for
//! forward-auth: route → authenticate → question → decide.
//!
//! - An allow (or a public route) answers `OK` with `ok_response`: the identity headers set on
//!   the upstream request, overwriting any copy, and in `headers_to_remove` every other
//!   `x-poolgate-*` header the client sent.
//! - A deny, and every error, answers a `denied_response` with the status, body and challenge
//!   `/v1/forward-auth` answers (`error.rs` picks them), so an error fails closed: a `503` or
//!   `500` denial, never `OK`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus, HttpStatusCode, OkHttpResponse,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;
use tonic::{Code, Request, Response, Status};

use crate::error::{ApiError, Refusal};
use crate::forward::routes::Target;
use crate::forward::{self, IDENTITY_HEADER_PREFIX};
use crate::http::pipeline::{ID_TOKEN_HEADER, authenticate_tokens, bounded, request_id_from};
use crate::http::state::AppState;

/// The ext_authz service.
pub struct ExtAuthz {
    state: Arc<AppState>,
}

impl ExtAuthz {
    /// The service, reading `state` as the HTTP handlers do.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(&self, request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let started = Instant::now();
        let http = request.into_inner().attributes.and_then(|attributes| attributes.request).and_then(|r| r.http);
        let state = &self.state;
        let answer = match http {
            Some(http) => {
                let headers = Headers(&http);
                let given = Some(http.id.as_str()).filter(|id| !id.is_empty()).or(headers.first("x-request-id"));
                let request_id = request_id_from(given);
                bounded(|| request_id.clone(), state, started, decide(state, &http, &headers, &request_id, started))
                    .await
            }
            None => {
                let missing = ApiError::InvalidRequest("the check request has no attributes.request.http".into());
                bounded(|| request_id_from(None), state, started, async { Err(missing) }).await
            }
        };
        Ok(Response::new(answer.unwrap_or_else(|err| denied(&err.refusal()))))
    }
}

/// Route → authenticate → question → decide, as `/v1/forward-auth` does.
async fn decide(
    state: &AppState,
    http: &HttpRequest,
    headers: &Headers<'_>,
    request_id: &str,
    started: Instant,
) -> Result<CheckResponse, ApiError> {
    let folder = state.policies.current();
    let (action, resource_type, resource_id) = match forward::route(&folder.routes, &http.method, &http.path)? {
        Target::Public => return Ok(allowed(Vec::new(), headers)),
        Target::Protected { action, resource_type, resource_id } => (action, resource_type, resource_id),
    };
    let principal =
        authenticate_tokens(&headers.values("authorization"), &headers.values(ID_TOKEN_HEADER), state).await?;
    let ask =
        forward::question(action, resource_type, resource_id, &principal, &folder.decider, &state.resources).await?;
    let decision = forward::decide(&folder.decider, &principal, &ask)?;
    let identity = if decision.allow { forward::identity_headers(&principal)? } else { Vec::new() };
    state.decision_log.decided(request_id, &principal, &ask, &decision, folder.decider.version(), started);
    if !decision.allow {
        let body = forward::deny_body(&decision.determining_policies, &decision.errors);
        return Ok(denied(&Refusal { status: 403, challenge: None, body }));
    }
    Ok(allowed(identity, headers))
}

/// `OK`: `identity` set on the upstream request, every other client `x-poolgate-*` removed.
fn allowed(identity: Vec<(String, String)>, headers: &Headers<'_>) -> CheckResponse {
    let headers_to_remove: BTreeSet<String> = headers
        .names()
        .map(str::to_ascii_lowercase)
        .filter(|name| name.starts_with(IDENTITY_HEADER_PREFIX))
        .filter(|name| !identity.iter().any(|(set, _)| set == name))
        .collect();
    let ok = OkHttpResponse {
        headers: identity
            .into_iter()
            .map(|(key, value)| HeaderValueOption {
                header: Some(HeaderValue { key, value, raw_value: Vec::new() }),
                append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
                // An empty X-Poolgate-Groups (no groups) is sent, as /v1/forward-auth does.
                keep_empty_value: true,
                ..HeaderValueOption::default()
            })
            .collect(),
        headers_to_remove: headers_to_remove.into_iter().collect(),
        ..OkHttpResponse::default()
    };
    CheckResponse {
        status: Some(rpc::Status { code: Code::Ok.into(), message: String::new(), details: Vec::new() }),
        http_response: Some(HttpResponse::OkResponse(ok)),
        dynamic_metadata: None,
    }
}

/// A denial carrying `refusal`: Envoy answers the client with its status, body and headers.
fn denied(refusal: &Refusal) -> CheckResponse {
    let code = match refusal.status {
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        503 => Code::Unavailable,
        status if (400..500).contains(&status) => Code::InvalidArgument,
        _ => Code::Internal,
    };
    let header = |key: &str, value: &str| HeaderValueOption {
        header: Some(HeaderValue { key: key.to_owned(), value: value.to_owned(), raw_value: Vec::new() }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        ..HeaderValueOption::default()
    };
    let mut headers = vec![header("content-type", "application/json")];
    if let Some(challenge) = refusal.challenge {
        headers.push(header("www-authenticate", challenge));
    }
    let status = HttpStatusCode::try_from(i32::from(refusal.status)).unwrap_or(HttpStatusCode::InternalServerError);
    let message = refusal.body.get("error").and_then(serde_json::Value::as_str).unwrap_or("deny").to_owned();
    CheckResponse {
        status: Some(rpc::Status { code: code.into(), message, details: Vec::new() }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: status.into() }),
            headers,
            body: refusal.body.to_string(),
        })),
        dynamic_metadata: None,
    }
}

/// The proxied request's headers: the map of lower-case names to values (repeated headers
/// merged by Envoy), or the raw list when Envoy sends one (`encode_raw_headers`).
struct Headers<'a>(&'a HttpRequest);

impl Headers<'_> {
    /// Every value of the header `name` (lower case).
    fn values(&self, name: &str) -> Vec<&[u8]> {
        match &self.0.header_map {
            Some(map) if !map.headers.is_empty() => map
                .headers
                .iter()
                .filter(|header| header.key.eq_ignore_ascii_case(name))
                .map(|header| if header.raw_value.is_empty() { header.value.as_bytes() } else { &header.raw_value })
                .collect(),
            _ => self
                .0
                .headers
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_bytes())
                .collect(),
        }
    }

    /// The first value of the header `name`, if it is text.
    fn first(&self, name: &str) -> Option<&str> {
        self.values(name).first().and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Every header name, as sent.
    fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.0.header_map {
            Some(map) if !map.headers.is_empty() => Box::new(map.headers.iter().map(|header| header.key.as_str())),
            _ => Box::new(self.0.headers.keys().map(String::as_str)),
        }
    }
}
