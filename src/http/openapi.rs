//! `GET /openapi.json`: the OpenAPI 3 document. Its paths are collected from the very services
//! `http::routes` registers (utoipa-actix-web), so the document cannot drift from the routes.

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;

/// The document's fixed parts; the paths are added as routes are registered.
#[derive(OpenApi)]
#[openapi(info(
    title = "poolgate",
    description = "Authorization sidecar for Cognito user pools: verify the token, build the principal, ask Cedar."
))]
pub struct ApiDoc;

/// The document, rendered once per worker at start-up.
pub struct Document(pub String);

/// Serves the document.
pub async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document.0.clone())
}
