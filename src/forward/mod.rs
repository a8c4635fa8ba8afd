//! Forward-auth's translation stage: a proxied request, named by its method and URI, becomes
//! the question `/v1/check` answers, an action and a resource with its attributes loaded by
//! SQL. Every proxy front end (the HTTP `/v1/forward-auth` endpoint, gRPC ext_authz) is a thin
//! adapter around it: it reads the method and URI from its protocol, calls [`route`], then,
//! for a protected route, authenticates and calls [`question`] and [`decide`].
//!
//! INVARIANT: anything this stage cannot translate is a deny (`403`), never an allow; only a
//! database failure is an error (`503`).

pub mod resources;
pub mod routes;

use serde_json::Map;

use crate::decision::error::DecisionError;
use crate::decision::request::{AccessRequest, ResourceRef};
use crate::decision::{Decider, Decision, entities};
use crate::forward::resources::{ResourceError, ResourceStore};
use crate::forward::routes::{RouteError, RouteTable, Target};
use crate::principal::Principal;

/// The prefix of the identity headers an allow adds for the upstream; a client-sent header
/// with this prefix must never reach the upstream.
pub const IDENTITY_HEADER_PREFIX: &str = "x-poolgate-";

/// Why a proxied request cannot be decided, or is denied before a decision.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The forwarded headers are contradictory (`400`).
    #[error("{0}")]
    Headers(&'static str),
    /// No route matches, or the path is not canonical (`403`).
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The route's resource type or action is not in the token's pool (`403`).
    #[error("not answerable for this pool")]
    NotAnswerable(#[source] DecisionError),
    /// The resource's row does not exist (`403`; the caller learns nothing about rows).
    #[error("denied")]
    NoSuchResource,
    /// The resource's attributes could not be read (`503`).
    #[error(transparent)]
    DatabaseUnavailable(ResourceError),
    /// The decision failed for a reason that is not the caller's (`500`).
    #[error(transparent)]
    Decision(DecisionError),
    /// An identity value cannot be a header value (a control character in a claim), so the
    /// allow cannot be passed on (`500`).
    #[error("`{0}` cannot be sent as a header value")]
    IdentityHeader(String),
}

/// The route of a proxied request; the query string and fragment are not part of it.
pub fn route(routes: &RouteTable, method: &str, uri: &str) -> Result<Target, ForwardError> {
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    Ok(routes.resolve(method, path)?)
}

/// The question a protected route asks for `principal`: the resource type is checked in the
/// token's pool before any query, and the resource's attributes come from its configured query.
pub async fn question(
    action: String,
    resource_type: String,
    resource_id: String,
    principal: &Principal,
    decider: &Decider,
    resources: &ResourceStore,
) -> Result<AccessRequest, ForwardError> {
    entities::resource_type(&principal.namespace, &resource_type, decider.schema())
        .map_err(ForwardError::NotAnswerable)?;
    let loaded = match resources.load(&resource_type, &resource_id).await {
        Ok(loaded) => loaded.map(|loaded| (*loaded).clone()).unwrap_or_default(),
        Err(ResourceError::NotFound { .. }) => return Err(ForwardError::NoSuchResource),
        Err(err) => return Err(ForwardError::DatabaseUnavailable(err)),
    };
    Ok(AccessRequest {
        action,
        resource: ResourceRef {
            type_name: resource_type,
            id: resource_id,
            attributes: loaded.attributes,
            parents: loaded.parents,
        },
        context: Map::new(),
    })
}

/// Decides the question; a route the token's pool cannot answer (no such action there) is a
/// deny, not the caller's mistake.
pub fn decide(decider: &Decider, principal: &Principal, ask: &AccessRequest) -> Result<Decision, ForwardError> {
    decider.decide(principal, ask).map_err(|err| match err {
        err @ (DecisionError::InvalidRequest(_) | DecisionError::InvalidContext(_)) => ForwardError::NotAnswerable(err),
        other => ForwardError::Decision(other),
    })
}

/// The identity headers an allow adds for the upstream, names in lower case.
///
/// A value with a control character (tab aside) is refused rather than handed to a proxy that
/// might write it out as is, splitting the header.
pub fn identity_headers(principal: &Principal) -> Result<Vec<(String, String)>, ForwardError> {
    let mut headers = vec![
        ("x-poolgate-pool".to_owned(), principal.pool.clone()),
        ("x-poolgate-sub".to_owned(), principal.sub.clone()),
        ("x-poolgate-groups".to_owned(), principal.groups.join(",")),
    ];
    for (name, value) in &principal.attributes {
        headers.push((format!("x-poolgate-attr-{}", name.to_ascii_lowercase()), value.clone()));
    }
    match headers.iter().find(|(_, value)| value.bytes().any(|byte| (byte < b' ' && byte != b'\t') || byte == 0x7f)) {
        Some((name, _)) => Err(ForwardError::IdentityHeader(name.clone())),
        None => Ok(headers),
    }
}

/// The body of a deny, as `/v1/check` words it: Cedar's determining policies and errors, or no
/// policy and the reason for a refusal before a decision.
pub fn deny_body(determining_policies: &[String], errors: &[String]) -> serde_json::Value {
    serde_json::json!({ "decision": "deny", "determining_policies": determining_policies, "errors": errors })
}
