//! `GET /metrics`: Prometheus text format.

use actix_web::{HttpResponse, get, web};

use crate::http::state::AppState;

/// The current value of every metric.
#[utoipa::path(responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
