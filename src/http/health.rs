//! `GET /healthz` (the process answers) and `GET /readyz` (it can decide: database reachable and
//! every pool's signing keys loaded; policies are always loaded, or the process would not run).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use crate::http::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
struct Readiness {
    ready: bool,
    policy_version: String,
    database: &'static str,
    pools: BTreeMap<String, &'static str>,
}

/// Liveness: always `200` while the server runs.
#[utoipa::path(responses((status = 200, description = "The process answers")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: `200` when every dependency is usable, else `503` naming what is not.
#[utoipa::path(responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready; the body names what is missing", body = Readiness),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database_ok = state.principals.ping().await;
    let mut pools = BTreeMap::new();
    for pool in state.verifier.pools() {
        let ready = state.verifier.jwks().is_ready(pool.name()).await;
        pools.insert(pool.name().to_owned(), if ready { "ok" } else { "no signing keys" });
    }
    let ready = database_ok && pools.values().all(|status| *status == "ok");
    let body = Readiness {
        ready,
        policy_version: state.policies.current().decider.version().to_owned(),
        database: if database_ok { "ok" } else { "unreachable" },
        pools,
    };
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
