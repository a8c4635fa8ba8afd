//! The OpenID AuthZEN Authorization API 1.0: `GET /.well-known/authzen-configuration`,
//! `POST /access/v1/evaluation`, `/access/v1/evaluations` and `/access/v1/search/{subject,
//! resource,action}`. A thin adapter: the caller's API key and the body are read here, the
//! translation is `authzen/`'s, the decisions the stages'.
//!
//! Every POST reads as: API key (when configured; else `Authorization` is not read) →
//! `Content-Type: application/json` → body parsed with repeated member names refused → one
//! policy set taken for the whole request → `authzen::Stages` → answer. A deny is `200
//! {"decision": false}`. A subject that cannot be judged (its token rejected, not the token's
//! `sub`, not registered, disabled, its resource row missing) is a deny too, its reason in
//! `context.error`; a malformed request is a `400`, an unavailable dependency a `503`.
//!
//! A batch item is exactly `{"decision": <bool>}` (what the interop clients compare) unless
//! `options.poolgate_reasons` is `true`; an item that failed carries its `context.error` always.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post, web};
use serde_json::{Map, Value, json};

use crate::authzen::request::{self, Evaluation};
use crate::authzen::{AuthzenError, Judged, Stages, SubjectMode, json as strict_json, keys};
use crate::decision::PolicyFolder;
use crate::error::{ApiError, ErrorBody, chain};
use crate::filter::FilterQuestion;
use crate::http::pipeline::{guarded, request_id_of};
use crate::http::state::AppState;
use crate::limits::MAX_BATCH_ITEMS;

/// `options.evaluations_semantic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// The PDP's metadata: its base URL (`authzen.base_url`, else this request's scheme and host)
/// and the endpoints it serves; subject search only in trusted-caller mode.
#[utoipa::path(responses((status = 200, description = "AuthZEN PDP metadata")))]
#[get("/.well-known/authzen-configuration")]
pub async fn configuration(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let base = state.authzen.settings.base_url.clone().unwrap_or_else(|| {
        let info = request.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    });
    let endpoint = |path: &str| Value::String(format!("{base}/access/v1/{path}"));
    let mut metadata = Map::new();
    metadata.insert("policy_decision_point".into(), Value::String(base.clone()));
    metadata.insert("access_evaluation_endpoint".into(), endpoint("evaluation"));
    metadata.insert("access_evaluations_endpoint".into(), endpoint("evaluations"));
    if state.authzen.settings.subject_mode == SubjectMode::TrustedCaller {
        metadata.insert("search_subject_endpoint".into(), endpoint("search/subject"));
    }
    metadata.insert("search_resource_endpoint".into(), endpoint("search/resource"));
    metadata.insert("search_action_endpoint".into(), endpoint("search/action"));
    HttpResponse::Ok().insert_header((CACHE_CONTROL, "max-age=300")).json(metadata)
}

/// One access evaluation.
#[utoipa::path(
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The decision; a deny or a subject that cannot be judged is false, with context"),
        (status = 400, description = "A member missing or of the wrong type, an unknown type, not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorBody),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[post("/access/v1/evaluation")]
pub async fn evaluation(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&request, &state, started, async {
        let body = admit_then_read(&request, body, &state).await?;
        let folder = state.policies.current();
        let asked = Evaluation::read(request::top(&body)?, None, "")?;
        single(&request, &state, &folder, &asked, started).await
    })
    .await
}

/// Several evaluations, top-level members being each item's defaults.
#[utoipa::path(
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "One decision per item, in order (fewer when a short-circuit semantic stops)"),
        (status = 400, description = "Not JSON, more than 100 items, an unknown option", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorBody),
        (status = 503, description = "Keys or database unavailable, or timeout", body = ErrorBody),
    )
)]
#[post("/access/v1/evaluations")]
pub async fn evaluations(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&request, &state, started, async {
        let body = admit_then_read(&request, body, &state).await?;
        let folder = state.policies.current();
        let top = request::top(&body)?;
        batch(&request, &state, &folder, top, started).await
    })
    .await
}

/// Which subjects of a type may do an action on a resource (trusted-caller mode).
#[utoipa::path(
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "Matching subjects; `{\"results\": []}` for none"),
        (status = 400, description = "A member missing or of the wrong type, a foreign page token", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 403, description = "Token mode: subject search is not offered", body = ErrorBody),
    )
)]
#[post("/access/v1/search/subject")]
pub async fn search_subject(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    search(request, body, state, Search::Subject).await
}

/// Which resources of a type a subject may do an action on.
#[utoipa::path(
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "Matching resources; `{\"results\": []}` for none"),
        (status = 400, description = "A member missing, a type without table mapping, a foreign page token", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorBody),
        (status = 422, description = "A policy the list filter cannot translate", body = ErrorBody),
    )
)]
#[post("/access/v1/search/resource")]
pub async fn search_resource(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    search(request, body, state, Search::Resource).await
}

/// Which actions a subject may do on a resource.
#[utoipa::path(
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "Allowed actions; `{\"results\": []}` for none"),
        (status = 400, description = "A member missing or of the wrong type", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorBody),
    )
)]
#[post("/access/v1/search/action")]
pub async fn search_action(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    search(request, body, state, Search::Action).await
}

#[derive(Clone, Copy)]
enum Search {
    Subject,
    Resource,
    Action,
}

async fn search(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    kind: Search,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    guarded(&request, &state, started, async {
        let body = admit_then_read(&request, body, &state).await?;
        let folder = state.policies.current();
        let stages = stages(&state, &folder);
        let top = request::top(&body)?;
        let answer = match kind {
            Search::Subject => stages.search_subjects(top).await,
            Search::Resource => stages.search_resources(top).await,
            Search::Action => stages.search_actions(top).await,
        }?;
        if let Some(listed) = &answer.listed {
            let context = Map::new();
            let question =
                FilterQuestion { action: &listed.action, resource_type: &listed.resource_type, context: &context };
            let version = folder.decider.version();
            let request_id = request_id_of(&request);
            state.decision_log.listed(&request_id, &listed.principal, &question, &listed.planned, version, started);
        }
        Ok(HttpResponse::Ok().json(answer.body()))
    })
    .await
}

fn stages<'a>(state: &'a AppState, folder: &'a PolicyFolder) -> Stages<'a> {
    Stages {
        verifier: &state.verifier,
        principals: &state.principals,
        resources: &state.resources,
        search: (&state.search_db, &state.mappings),
        decider: &folder.decider,
        authzen: &state.authzen,
    }
}

/// The caller's API key (when keys are configured), then the body: JSON, by content type and
/// content, with no repeated member names. A refused caller's body is still read, as in
/// `pipeline::authenticate_then_read`, so that its keep-alive connection survives.
async fn admit_then_read(request: &HttpRequest, body: web::Payload, state: &AppState) -> Result<Value, ApiError> {
    let headers: Vec<&[u8]> = request.headers().get_all(AUTHORIZATION).map(|value| value.as_bytes()).collect();
    let admitted = keys::admit(&state.authzen.settings.api_keys, &headers).map_err(AuthzenError::from);
    let json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    let refusal = match (admitted, json) {
        (Err(err), _) => Some(ApiError::from(err)),
        (Ok(()), false) => Some(ApiError::InvalidRequest("Content-Type must be application/json".into())),
        (Ok(()), true) => None,
    };
    let bytes = body.to_bytes_limited(state.max_body_bytes).await;
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    let bytes = bytes
        .map_err(|_| ApiError::BodyTooLarge(state.max_body_bytes))?
        .map_err(|_| ApiError::InvalidRequest("the request body could not be read".into()))?;
    strict_json::parse(&bytes).map_err(|err| ApiError::InvalidRequest(format!("invalid JSON body: {err}")))
}

/// What becomes of a failed evaluation: a deny with its reason when the subject or resource
/// cannot be judged, the error itself when the request is malformed or a dependency failed.
fn refusal(err: AuthzenError) -> Result<ApiError, ApiError> {
    let err = ApiError::from(err);
    let status = err.status_code();
    if status.is_server_error() || status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE {
        Err(err)
    } else {
        Ok(err)
    }
}

/// `{"error": {"status", "code", "message"}}`: never a token, only the stable code and the
/// explanation a `/v1/check` caller would get.
fn error_context(err: &ApiError) -> Value {
    json!({ "error": { "status": err.status_code().as_u16(), "code": err.code(), "message": chain(err) } })
}

fn reasons(judged: &Judged) -> Value {
    json!({ "determining_policies": judged.decision.determining_policies, "errors": judged.decision.errors })
}

async fn single(
    request: &HttpRequest,
    state: &AppState,
    folder: &PolicyFolder,
    asked: &Evaluation,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let version = folder.decider.version();
    match stages(state, folder).evaluate(asked).await {
        Ok(judged) => {
            let log = &state.decision_log;
            log.decided(&request_id_of(request), &judged.principal, &judged.ask, &judged.decision, version, started);
            Ok(HttpResponse::Ok().json(json!({ "decision": judged.decision.allow, "context": reasons(&judged) })))
        }
        Err(err) => {
            let refused = refusal(err)?;
            state.decision_log.refused(&request_id_of(request), refused.code(), version, started);
            Ok(HttpResponse::Ok().json(json!({ "decision": false, "context": error_context(&refused) })))
        }
    }
}

async fn batch(
    request: &HttpRequest,
    state: &AppState,
    folder: &PolicyFolder,
    top: &Map<String, Value>,
    started: Instant,
) -> Result<HttpResponse, ApiError> {
    let invalid = |message: &str| ApiError::InvalidRequest(message.to_owned());
    let options = request::optional_object(request::present(top, "options"), "options")?;
    let option = |name: &str| options.and_then(|options| request::present(options, name));
    let semantic = match option("evaluations_semantic") {
        None => Semantic::ExecuteAll,
        Some(Value::String(name)) if name == "execute_all" => Semantic::ExecuteAll,
        Some(Value::String(name)) if name == "deny_on_first_deny" => Semantic::DenyOnFirstDeny,
        Some(Value::String(name)) if name == "permit_on_first_permit" => Semantic::PermitOnFirstPermit,
        Some(_) => {
            return Err(invalid(
                "options.evaluations_semantic: one of execute_all, deny_on_first_deny, permit_on_first_permit",
            ));
        }
    };
    let with_reasons = match option("poolgate_reasons") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(invalid("options.poolgate_reasons: a boolean is expected")),
    };
    for field in ["subject", "action", "resource", "context"] {
        request::optional_object(request::present(top, field), field)?;
    }
    let items = match request::present(top, "evaluations") {
        None => None,
        Some(Value::Array(items)) => Some(items),
        Some(_) => return Err(invalid("evaluations: an array is expected")),
    };
    let items = match items {
        Some(items) if !items.is_empty() => items,
        // Without items the request is a single evaluation (AuthZEN §Access Evaluations).
        _ => return single(request, state, folder, &Evaluation::read(top, None, "")?, started).await,
    };
    if items.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::InvalidRequest(format!("evaluations: at most {MAX_BATCH_ITEMS} items are accepted")));
    }
    let stages = stages(state, folder);
    let version = folder.decider.version();
    let request_id = request_id_of(request);
    let mut answers = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let path = format!("evaluations[{index}]");
        let outcome = match item.as_object() {
            None => Err(AuthzenError::Invalid(format!("{path}: an object is required"))),
            Some(item) => match Evaluation::read(item, Some(top), &format!("{path}.")) {
                Ok(asked) => stages.evaluate(&asked).await,
                Err(err) => Err(err),
            },
        };
        let allow = match outcome {
            Ok(judged) => {
                let decision = &judged.decision;
                state.decision_log.decided(&request_id, &judged.principal, &judged.ask, decision, version, started);
                answers.push(match with_reasons {
                    true => json!({ "decision": decision.allow, "context": reasons(&judged) }),
                    false => json!({ "decision": decision.allow }),
                });
                decision.allow
            }
            Err(err) => {
                let err = ApiError::from(err);
                if err.status_code().is_server_error() {
                    return Err(err);
                }
                state.decision_log.refused(&request_id, err.code(), version, started);
                answers.push(json!({ "decision": false, "context": error_context(&err) }));
                false
            }
        };
        let stop = match semantic {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !allow,
            Semantic::PermitOnFirstPermit => allow,
        };
        if stop {
            break;
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "evaluations": answers })))
}
