//! AuthZEN 1.0 as a translation stage: an AuthZEN request becomes the question `/v1/check`
//! answers (a [`Principal`] and an [`AccessRequest`]), and the answer becomes an AuthZEN
//! decision. Nothing here knows HTTP; `http/authzen.rs` reads requests and writes answers.
//!
//! # Subjects
//!
//! [`SubjectMode::Token`] (the default): `subject.properties.token` carries the end user's
//! Cognito token (and `subject.properties.id_token` the ID token, paired mode); it is verified
//! and its principal resolved exactly as `/v1/check` does, the token choosing the pool. A
//! `subject.id`, when given, must equal the token's `sub`. [`SubjectMode::TrustedCaller`]: a
//! caller holding an API key names subjects by `type` and `id`; the type picks the pool, and
//! only a subject registered there is judged ([`principal::resolve_named`]), its groups, flags
//! and attributes all read from SQL. In both modes a request's subject property reaches the
//! policies only when `authzen.pools.<pool>.subject_properties` lists it and the schema
//! declares it a `String` attribute of the pool's `User`.
//!
//! # Resources, actions, context
//!
//! `resource.type` maps to a Cedar entity type of the pool's namespace
//! (`authzen.pools.<pool>.resource_types`, else the same name). A resource's properties are
//! its attributes, kept where the schema declares them; a resource sent without declared
//! properties reads its attributes from SQL when `resources.<Type>` is configured (as
//! forward-auth does; no row is `no_such_resource`). `context` and `action.properties` (the
//! latter winning on a shared name) form the Cedar context, kept where the action's context
//! type declares them: unknown members are ignored here as everywhere in AuthZEN.
//!
//! # Errors
//!
//! [`AuthzenError`] keeps each stage's error; `error.rs` maps it. Whether a failure is answered
//! as an HTTP error or as `{"decision": false}` with the reason in `context` is the handler's
//! choice, by the status `error.rs` gives it.

pub mod json;
pub mod keys;
pub mod request;
pub mod search;
pub mod settings;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::Settings;
use crate::config::pool::{PoolSettings, RESERVED_ATTRIBUTES};
use crate::decision::error::DecisionError;
use crate::decision::request::{AccessRequest, ResourceRef};
use crate::decision::{Decider, Decision};
use crate::filter::shape::AttrType;
use crate::filter::{FilterError, ResourceMapping, SearchDb};
use crate::forward::resources::{ResourceError, ResourceStore};
use crate::principal::error::PrincipalError;
use crate::principal::store::PrincipalStore;
use crate::principal::{self, Principal};
use crate::token::error::TokenError;
use crate::token::{Verifier, bearer};
pub use keys::KeyError;
use request::{Action, Evaluation, Resource, Subject};
pub use settings::{AuthzenPool, AuthzenSettings, SubjectMode};

/// Why an AuthZEN request, or one evaluation of a batch, could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum AuthzenError {
    /// The body is not what the endpoint takes: a member missing or of the wrong type (`400`).
    #[error("{0}")]
    Invalid(String),
    /// No pool's users are named by this subject type (`400`).
    #[error("unknown subject type `{0}`")]
    UnknownSubjectType(String),
    /// The resource type names no entity type of the pool's schema (`400`).
    #[error("unknown resource type `{0}`")]
    UnknownResourceType(String),
    /// The caller's API key is missing or wrong (`401`, with `WWW-Authenticate`).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `subject.id` is not the `sub` of the subject's token (`403`).
    #[error("subject.id is not the subject of subject.properties.token")]
    SubjectMismatch,
    /// Subject search names users by id, which token mode never does (`403`).
    #[error(
        "subject search lists users by id, which only an API-key holder may (authzen.subject_mode = \"trusted_caller\")"
    )]
    TrustedCallerRequired,
    /// The subject's token was rejected, or its keys are unavailable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The subject may not act, or its record could not be read.
    #[error(transparent)]
    Principal(#[from] PrincipalError),
    /// The question does not fit the schema, or the configuration is wrong.
    #[error(transparent)]
    Decision(#[from] DecisionError),
    /// The resource's attributes could not be read from SQL, or it has no row.
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// Resource search failed: no table mapping, a policy it cannot translate, the database.
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// The AuthZEN configuration, with the pools it maps, built once at start-up.
pub struct Authzen {
    /// `[authzen]`.
    pub settings: AuthzenSettings,
    pools: Vec<PoolSettings>,
}

impl Authzen {
    /// The AuthZEN front end of `settings`.
    pub fn new(settings: &Settings) -> Self {
        Self { settings: settings.authzen.clone(), pools: settings.pools.clone() }
    }

    pub(crate) fn pool(&self, name: &str) -> Option<(&PoolSettings, &AuthzenPool)> {
        Some((self.pools.iter().find(|pool| pool.name == name)?, self.settings.pool(name)?))
    }
}

/// The stages an AuthZEN request goes through, with the policy set in force for it.
pub struct Stages<'a> {
    /// Stage 1, token mode.
    pub verifier: &'a Verifier,
    /// Stage 2.
    pub principals: &'a PrincipalStore,
    /// Resource attributes from SQL.
    pub resources: &'a ResourceStore,
    /// Where resource search runs, and the table mappings it reads, by unqualified type name.
    pub search: (&'a SearchDb, &'a BTreeMap<String, ResourceMapping>),
    /// Stage 3, the set taken once for the whole request.
    pub decider: &'a Decider,
    /// The AuthZEN configuration.
    pub authzen: &'a Authzen,
}

/// A subject resolved to its principal, with the pool's AuthZEN settings.
pub struct Resolved<'a> {
    /// Who the policies see.
    pub principal: Principal,
    /// The pool's AuthZEN settings.
    pub pool: &'a AuthzenPool,
}

/// One evaluation, decided.
pub struct Judged {
    /// Who asked.
    pub principal: Principal,
    /// The question as Cedar saw it.
    pub ask: AccessRequest,
    /// Cedar's answer, read strictly.
    pub decision: Decision,
}

impl<'a> Stages<'a> {
    /// Decides one evaluation: subject → principal, then the question, then Cedar.
    pub async fn evaluate(&self, evaluation: &Evaluation) -> Result<Judged, AuthzenError> {
        let resolved = self.subject(&evaluation.subject).await?;
        let namespace = &resolved.principal.namespace;
        let ask = self
            .question(resolved.pool, namespace, &evaluation.action, &evaluation.resource, &evaluation.context)
            .await?;
        let decision = self.decider.decide(&resolved.principal, &ask)?;
        Ok(Judged { principal: resolved.principal, ask, decision })
    }

    /// The principal `subject` names, by the configured subject mode.
    pub async fn subject(&self, subject: &Subject) -> Result<Resolved<'a>, AuthzenError> {
        let authzen = self.authzen;
        let (mut principal, pool) = match authzen.settings.subject_mode {
            SubjectMode::Token => {
                let token = property(&subject.properties, "token")?.ok_or_else(|| {
                    AuthzenError::Invalid(
                        "subject.properties.token: the subject's token is required (token mode)".into(),
                    )
                })?;
                let token = bearer::raw(token.as_bytes())?;
                let verified = match property(&subject.properties, "id_token")? {
                    None => self.verifier.verify(token).await?,
                    Some(id_token) => self.verifier.verify_pair(token, bearer::raw(id_token.as_bytes())?).await?,
                };
                let (_, pool) = authzen
                    .pool(&verified.pool.settings().name)
                    .ok_or_else(|| AuthzenError::UnknownSubjectType(subject.type_name.clone()))?;
                if !pool.subject_types.contains(&subject.type_name) {
                    return Err(AuthzenError::UnknownSubjectType(subject.type_name.clone()));
                }
                if subject.id.as_ref().is_some_and(|id| *id != verified.claims.sub) {
                    return Err(AuthzenError::SubjectMismatch);
                }
                (principal::resolve(self.principals, &verified).await?, pool)
            }
            SubjectMode::TrustedCaller => {
                let id = subject
                    .id
                    .as_deref()
                    .ok_or_else(|| AuthzenError::Invalid("subject.id: a string is required".into()))?;
                let (settings, pool) = authzen
                    .settings
                    .pool_of_subject_type(&subject.type_name)
                    .and_then(|pool| authzen.pool(&pool.pool))
                    .ok_or_else(|| AuthzenError::UnknownSubjectType(subject.type_name.clone()))?;
                let mut principal = principal::resolve_named(self.principals, settings, id).await?;
                let declared = self.declared_user_strings(&principal.namespace);
                principal.attributes.retain(|(name, _)| declared.iter().any(|known| known == name));
                (principal, pool)
            }
        };
        self.apply_properties(&mut principal, pool, &subject.properties)?;
        Ok(Resolved { principal, pool })
    }

    /// A registered subject's principal, for subject search: as [`Stages::subject`] in
    /// trusted-caller mode, from a record already read.
    pub fn named(
        &self,
        pool: &PoolSettings,
        subject: &str,
        record: &crate::principal::store::PrincipalRecord,
    ) -> Result<Principal, PrincipalError> {
        let mut principal = principal::named(pool, subject, record)?;
        let declared = self.declared_user_strings(&principal.namespace);
        principal.attributes.retain(|(name, _)| declared.iter().any(|known| known == name));
        Ok(principal)
    }

    /// The attributes the schema declares as `String` on the namespace's `User`, poolgate's
    /// own excepted: the only ones SQL or a request may set.
    fn declared_user_strings(&self, namespace: &str) -> Vec<String> {
        self.decider
            .shapes()
            .get(&format!("{namespace}::User"))
            .map(|shape| {
                shape
                    .attributes
                    .iter()
                    .filter(|(name, attr)| attr.ty == AttrType::String && !RESERVED_ATTRIBUTES.contains(&name.as_str()))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets the subject properties the configuration allows and the schema declares.
    fn apply_properties(
        &self,
        principal: &mut Principal,
        pool: &AuthzenPool,
        properties: &Map<String, Value>,
    ) -> Result<(), AuthzenError> {
        if pool.subject_properties.is_empty() {
            return Ok(());
        }
        let declared = self.declared_user_strings(&principal.namespace);
        for (name, value) in requested_attributes(&pool.subject_properties, &declared, properties)? {
            principal.attributes.retain(|(existing, _)| *existing != name);
            principal.attributes.push((name, value));
        }
        Ok(())
    }

    /// The Cedar question "may a user of `pool` do `action` on `resource`" (whose id is given).
    pub async fn question(
        &self,
        pool: &AuthzenPool,
        namespace: &str,
        action: &Action,
        resource: &Resource,
        context: &Map<String, Value>,
    ) -> Result<AccessRequest, AuthzenError> {
        let cedar_type = self.cedar_type(pool, namespace, &resource.type_name)?;
        let id = resource.id.clone().unwrap_or_default();
        let qualified = format!("{namespace}::{cedar_type}");
        let mut attributes = match self.decider.shapes().get(&qualified) {
            Some(shape) => {
                resource.properties.iter().filter(|(name, _)| shape.attributes.contains_key(*name)).map(clone).collect()
            }
            None => resource.properties.clone(),
        };
        let mut parents = Vec::new();
        if attributes.is_empty()
            && let Some(stored) = self.resources.load(cedar_type, &id).await?
        {
            attributes = stored.attributes.clone();
            parents = stored.parents.clone();
        }
        Ok(AccessRequest {
            action: action.name.clone(),
            resource: ResourceRef { type_name: cedar_type.to_owned(), id, attributes, parents },
            context: self.context(namespace, action, context),
        })
    }

    /// The Cedar type (unqualified) `authzen_type` names in the pool, if the schema has it.
    pub fn cedar_type<'p>(
        &self,
        pool: &'p AuthzenPool,
        namespace: &str,
        authzen_type: &'p str,
    ) -> Result<&'p str, AuthzenError> {
        let cedar_type = pool.cedar_type(authzen_type);
        crate::decision::entities::resource_type(namespace, cedar_type, self.decider.schema())
            .map_err(|_| AuthzenError::UnknownResourceType(authzen_type.to_owned()))?;
        Ok(cedar_type)
    }

    /// Whether the schema has `action` in `namespace`.
    pub fn action_exists(&self, namespace: &str, action: &str) -> bool {
        let Ok(action_type) = format!("{namespace}::Action").parse::<cedar_policy::EntityTypeName>() else {
            return false;
        };
        let uid = cedar_policy::EntityUid::from_type_name_and_id(action_type, cedar_policy::EntityId::new(action));
        self.decider.schema().actions().any(|known| known == &uid)
    }

    /// `context` and `action.properties` (which win on a shared name), kept where the action's
    /// context type declares them; all of them when the action is unknown (Cedar then refuses
    /// the action itself).
    pub fn context(&self, namespace: &str, action: &Action, context: &Map<String, Value>) -> Map<String, Value> {
        let mut merged = context.clone();
        merged.extend(action.properties.iter().map(clone));
        if let Some(declared) = self.decider.shapes().context(namespace, &action.name) {
            merged.retain(|name, _| declared.contains_key(name));
        }
        merged
    }
}

/// The subject properties a request may set: those `allowed` by the configuration and
/// `declared` (as `String`) by the schema, and present; such a property must be a string.
/// Any other property is not read at all.
fn requested_attributes(
    allowed: &[String],
    declared: &[String],
    properties: &Map<String, Value>,
) -> Result<Vec<(String, String)>, AuthzenError> {
    let mut attributes = Vec::new();
    for name in allowed.iter().filter(|name| declared.contains(name)) {
        if let Some(value) = property(properties, name)? {
            attributes.push((name.clone(), value.to_owned()));
        }
    }
    Ok(attributes)
}

fn clone((name, value): (&String, &Value)) -> (String, Value) {
    (name.clone(), value.clone())
}

/// `properties[name]` as a string, when given.
fn property<'p>(properties: &'p Map<String, Value>, name: &str) -> Result<Option<&'p str>, AuthzenError> {
    match properties.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(AuthzenError::Invalid(format!("subject.properties.{name}: a string is expected"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_request_sets_only_allowed_declared_string_properties() {
        let names = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        let properties = json!({"role": "admin", "dept": "Sales", "clearance": 7, "flags": ["x"], "level": "9"});
        let properties = properties.as_object().unwrap();
        let set = requested_attributes(&names(&["role", "clearance", "level"]), &names(&["role", "dept"]), properties);
        assert_eq!(set.unwrap(), vec![("role".to_owned(), "admin".to_owned())]);
        assert!(requested_attributes(&names(&["clearance"]), &names(&["clearance"]), properties).is_err());
        assert!(requested_attributes(&[], &names(&["role"]), properties).unwrap().is_empty());
    }
}
