//! The HTTP surface: the route table. Each endpoint is a file; what they share is in
//! [`pipeline`] and [`state`].
//!
//! INVARIANT: only `http/`, `error.rs` and `startup.rs` know about actix-web; the stages they
//! call (`token`, `principal`, `decision`, `forward`, `filter`) are plain async Rust.

pub mod authzen;
pub mod check;
pub mod filter;
pub mod forward_auth;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod permissions;
pub mod pipeline;
pub mod search;
pub mod state;

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers every route; each carries its OpenAPI description, so `/openapi.json` lists
/// exactly the routes served.
pub fn routes(config: &mut ServiceConfig) {
    config
        .service(check::check)
        .service(check::check_batch)
        .service(permissions::permissions)
        .service(filter::filter)
        .service(search::search)
        .service(forward_auth::forward_auth)
        .service(forward_auth::forward_auth_prefixed)
        .service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics)
        .service(authzen::configuration)
        .service(authzen::evaluation)
        .service(authzen::evaluations)
        .service(authzen::search_subject)
        .service(authzen::search_resource)
        .service(authzen::search_action);
}
