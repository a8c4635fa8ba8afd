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

use utoipa_actix_web::service_config::ServiceConfig;

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
