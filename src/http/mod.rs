//! The HTTP surface: the route table and the shared state handlers read.
//!
//! INVARIANT: only `http/`, `error.rs` and `startup.rs` know about actix-web; the stages they
//! call (`token`, `principal`, `decision`) are plain async Rust.

pub mod check;
pub mod forward_auth;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod permissions;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;

/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 64;
/// Most bytes (names and values) a request's headers may add up to: room for two 8 KiB tokens.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

use crate::decision::reload::Policies;
use crate::metrics::Metrics;
use crate::principal::store::PrincipalStore;
use crate::resources::ResourceStore;
use crate::telemetry::DecisionLog;
use crate::token::Verifier;

/// Everything a handler needs, shared by all workers.
pub struct AppState {
    /// Stage 1.
    pub verifier: Verifier,
    /// Stage 2.
    pub principals: Arc<PrincipalStore>,
    /// Stage 3: the policy set in force.
    pub policies: Arc<Policies>,
    /// Resource attributes from SQL, for forward-auth.
    pub resources: Arc<ResourceStore>,
    /// One line per decision.
    pub decision_log: DecisionLog,
    /// Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered `503 timeout`.
    pub request_timeout: std::time::Duration,
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

/// Registers every route; each carries its OpenAPI description, so `/openapi.json` lists
/// exactly the routes served.
pub fn routes(config: &mut ServiceConfig) {
    config
        .service(check::check)
        .service(check::check_batch)
        .service(permissions::permissions)
        .service(forward_auth::forward_auth)
        .service(forward_auth::forward_auth_prefixed)
        .service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics);
}
