//! `GET /openapi.json`: the OpenAPI 3 document. Its paths are collected from the very services
//! `http::routes` registers (utoipa-actix-web), so the document cannot drift from the routes.
//! A handler serving several methods is described once, so [`render`] gives each method's
//! operation an `operationId` of its own.

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;
use utoipa::openapi::content::Content;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{Ref, RefOr};

/// The document's fixed parts; the paths are added as routes are registered.
#[derive(OpenApi)]
#[openapi(info(
    title = "poolgate",
    description = "Authorization sidecar for Cognito user pools: verify the token, build the principal, ask Cedar."
))]
pub struct ApiDoc;

/// The document, rendered once per worker at start-up.
pub struct Document(pub String);

/// Renders the collected document. An `operationId` shared by several operations (one handler
/// serving several methods) becomes `<operationId>_<method>` on each, since code generators
/// and validators require unique ones. Every operation also gets the answers of the limits in
/// front of every handler: `431` (the header limits), and `413` where it takes a body
/// (`server.max_body_bytes`).
pub fn render(mut api: utoipa::openapi::OpenApi) -> Document {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in api.paths.paths.values() {
        for (_, operation) in operations(item) {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in api.paths.paths.values_mut() {
        for (method, operation) in operations_mut(item) {
            if let Some(id) = &mut operation.operation_id
                && seen.get(id.as_str()).is_some_and(|count| *count > 1)
            {
                *id = format!("{id}_{method}");
            }
            limits(operation);
        }
    }
    Document(api.to_json().unwrap_or_default())
}

/// Adds the limits' answers to `operation`, unless it describes them itself.
fn limits(operation: &mut Operation) {
    let refusal = |description: &str| {
        let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
        RefOr::T(ResponseBuilder::new().description(description).content("application/json", body).build())
    };
    let responses = &mut operation.responses.responses;
    responses
        .entry("431".to_owned())
        .or_insert_with(|| refusal("Too many request headers, or too large (`headers_too_large`)"));
    if operation.request_body.is_some() {
        responses
            .entry("413".to_owned())
            .or_insert_with(|| refusal("The body is larger than `server.max_body_bytes` (`payload_too_large`)"));
    }
}

fn operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("get", &item.get),
        ("put", &item.put),
        ("post", &item.post),
        ("delete", &item.delete),
        ("options", &item.options),
        ("head", &item.head),
        ("patch", &item.patch),
        ("trace", &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|operation| (method, operation)))
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

/// Serves the document.
pub async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document.0.clone())
}
