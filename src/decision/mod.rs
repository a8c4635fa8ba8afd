//! Stage 3: "may this principal do this action on this resource?"
//!
//! [`Decider::decide`] asks Cedar and reads its answer strictly: Cedar skips a policy whose
//! evaluation errors, which would let an erroring `forbid` stop forbidding, so any evaluation
//! error turns the answer into a deny. No policy matching is a deny too (Cedar's default).
//!
//! INVARIANT: `decide` returns `allow: true` only for a Cedar Allow with no errors.

pub mod entities;
pub mod error;
pub mod policies;
pub mod policy_tests;
pub mod reload;
pub mod request;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Authorizer, Decision as CedarDecision, Entities, EntityTypeName, Policy, PolicySet, Schema,
};
use serde_json::{Map, Value};

use crate::config::Settings;
use crate::config::pool::{PoolSettings, TokenUse};
use crate::decision::entities::PrincipalTypes;
use crate::decision::error::DecisionError;
use crate::decision::policies::{PolicyBundle, PolicyLoadError};
use crate::decision::request::{AccessRequest, ResourceRef};
use crate::forward::routes::RouteTable;
use crate::principal::Principal;

/// What loading a policy set depends on, taken from the settings once.
#[derive(Debug, Clone)]
pub struct PolicySources {
    /// The policies folder.
    pub dir: PathBuf,
    /// The pools whose principals must fit the schema.
    pub pools: Vec<PoolSettings>,
    /// Resource types whose attributes come from a configured query.
    pub resource_queries: Vec<String>,
}

impl From<&Settings> for PolicySources {
    fn from(settings: &Settings) -> Self {
        Self {
            dir: settings.policies.dir.clone(),
            pools: settings.pools.clone(),
            resource_queries: settings.resources.keys().cloned().collect(),
        }
    }
}

/// Everything the policies folder holds: the decider, and the route table forward-auth
/// translates proxied requests with (checked against the same schema, reloaded with it).
pub struct PolicyFolder {
    /// Schema, policies and Cedar.
    pub decider: Decider,
    /// `routes.toml`.
    pub routes: RouteTable,
}

/// Loads the policies folder and checks that every pool's principal (with its mapped
/// attributes) fits the schema; every problem is listed.
pub fn load(sources: &PolicySources) -> Result<PolicyFolder, PolicyLoadError> {
    let queried = sources.resource_queries.iter().cloned().collect();
    let (bundle, routes) = policies::load(&sources.dir, &queried)?;
    let decider = Decider::new(bundle)?.check_pools(sources)?;
    Ok(PolicyFolder { decider, routes })
}

/// Cedar's answer, read strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// True only for an Allow without evaluation errors.
    pub allow: bool,
    /// Ids of the policies that determined the answer.
    pub determining_policies: Vec<String>,
    /// Evaluation errors; any of them forces a deny.
    pub errors: Vec<String>,
}

/// The schema, the policies and Cedar's authorizer.
pub struct Decider {
    schema: Schema,
    policies: PolicySet,
    /// The policies that can apply to each namespace's requests; empty when the policies
    /// cannot be split (see [`split_by_namespace`]), and then `policies` serves every request.
    by_namespace: HashMap<String, PolicySet>,
    /// Each namespace's principal entity types.
    principal_types: HashMap<String, PrincipalTypes>,
    version: String,
    /// The schema's action entities, built once, when the schema groups actions: each request
    /// then only adds its two entities. Without groups no policy needs them.
    actions: Option<Entities>,
    authorizer: Authorizer,
    /// The resource types' attributes, for list filtering.
    shapes: crate::filter::shape::Shapes,
}

impl Decider {
    /// Wraps a validated schema and policy set.
    fn new(bundle: PolicyBundle) -> Result<Self, PolicyLoadError> {
        let schema_problem =
            |err: &dyn fmt::Display| PolicyLoadError { problems: vec![format!("{}: {err}", policies::SCHEMA_FILE)] };
        let grouped = bundle.schema.action_groups().next().is_some();
        let actions =
            if grouped { Some(bundle.schema.action_entities().map_err(|err| schema_problem(&err))?) } else { None };
        let by_namespace = if grouped { HashMap::new() } else { split_by_namespace(&bundle.policies, &bundle.schema) };
        let principal_types = bundle
            .schema
            .entity_types()
            .map(EntityTypeName::namespace)
            .filter_map(|namespace| Some((namespace.clone(), PrincipalTypes::new(&namespace).ok()?)))
            .collect();
        Ok(Self {
            schema: bundle.schema,
            policies: bundle.policies,
            by_namespace,
            principal_types,
            version: bundle.version,
            actions,
            authorizer: Authorizer::new(),
            shapes: bundle.shapes,
        })
    }

    /// Loads the policies folder; see [`load`].
    pub fn load(sources: &PolicySources) -> Result<Self, PolicyLoadError> {
        load(sources).map(|folder| folder.decider)
    }

    fn check_pools(self, sources: &PolicySources) -> Result<Self, PolicyLoadError> {
        let decider = self;
        let mut problems = Vec::new();
        for pool in &sources.pools {
            let sample = Principal {
                pool: pool.name.clone(),
                namespace: pool.namespace.clone(),
                sub: "sample".into(),
                token_use: TokenUse::Id,
                groups: vec!["sample".into()],
                email: Some("sample@example.com".into()),
                scopes: vec!["sample".into()],
                attributes: pool.attributes.iter().map(|(name, _)| (name.clone(), "sample".into())).collect(),
                flags: Arc::from(vec!["sample".to_owned()]),
            };
            if let Err(err) = entities::check_principal_shape(&sample, &decider.schema) {
                problems.push(format!("pools.{}: {err}", pool.name));
            }
        }
        if problems.is_empty() { Ok(decider) } else { Err(PolicyLoadError { problems }) }
    }

    /// Content hash of the policy folder this set was loaded from.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The schema the policies were validated against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The policies that can apply to requests in `namespace` (the same set `decide` uses).
    pub(crate) fn policies_for(&self, namespace: &str) -> &PolicySet {
        self.by_namespace.get(namespace).unwrap_or(&self.policies)
    }

    /// The resource types' attributes, read from the schema's text.
    pub(crate) fn shapes(&self) -> &crate::filter::shape::Shapes {
        &self.shapes
    }

    /// The principal's Cedar entity, with its namespace's types parsed at load.
    pub fn principal_entity(&self, principal: &Principal) -> Result<cedar_policy::Entity, DecisionError> {
        match self.principal_types.get(&principal.namespace) {
            Some(types) => entities::principal_entity(principal, types),
            None => entities::principal_entity(principal, &PrincipalTypes::new(&principal.namespace)?),
        }
    }

    /// Decides one access question.
    pub fn decide(&self, principal: &Principal, ask: &AccessRequest) -> Result<Decision, DecisionError> {
        let entity = self.principal_entity(principal)?;
        self.decide_for_entity(entity, &principal.namespace, ask)
    }

    /// Decides several questions for one principal, in order; the first invalid one fails all.
    pub fn decide_all(&self, principal: &Principal, asks: &[AccessRequest]) -> Result<Vec<Decision>, DecisionError> {
        let entity = self.principal_entity(principal)?;
        asks.iter()
            .enumerate()
            .map(|(index, ask)| {
                self.decide_for_entity(entity.clone(), &principal.namespace, ask).map_err(|err| match err {
                    err if err.is_caller_fault() => DecisionError::Item { list: "items", index, source: Box::new(err) },
                    other => other,
                })
            })
            .collect()
    }

    /// The actions `principal` may take on `resource`: every action the schema applies to the
    /// principal's and the resource's types, each decided on its own (µs each). An action whose
    /// decision fails or errors counts as not allowed.
    pub fn allowed_actions(
        &self,
        principal: &Principal,
        resource: &ResourceRef,
        context: &Map<String, Value>,
    ) -> Result<Vec<String>, DecisionError> {
        let entity = self.principal_entity(principal)?;
        let resource_type = entities::resource_type(&principal.namespace, &resource.type_name, &self.schema)?;
        let candidates: Vec<String> = self
            .schema
            .actions_for_principal_and_resource(&entity.uid().type_name().clone(), &resource_type)
            .map(|action| action.id().unescaped().to_owned())
            .collect();
        let mut allowed = Vec::with_capacity(candidates.len());
        for action in candidates {
            let ask = AccessRequest { action, resource: resource.clone(), context: context.clone() };
            match self.decide_for_entity(entity.clone(), &principal.namespace, &ask) {
                Ok(decision) if decision.allow => allowed.push(ask.action),
                Ok(_) => {}
                // A context that fits one action and not another only withholds that action.
                Err(DecisionError::InvalidContext(_)) => {}
                Err(err) => return Err(err),
            }
        }
        allowed.sort();
        Ok(allowed)
    }

    fn decide_for_entity(
        &self,
        principal: cedar_policy::Entity,
        namespace: &str,
        ask: &AccessRequest,
    ) -> Result<Decision, DecisionError> {
        let input = entities::cedar_input(principal, namespace, ask, &self.schema, self.actions.as_ref())?;
        let policies = self.policies_for(namespace);
        let response = self.authorizer.is_authorized(&input.request, policies, &input.entities);
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        let allow = response.decision() == CedarDecision::Allow && errors.is_empty();
        let determining_policies = if errors.is_empty() {
            response.diagnostics().reason().map(ToString::to_string).collect()
        } else {
            Vec::new()
        };
        Ok(Decision { allow, determining_policies, errors })
    }
}

/// Splits the policies into one set per namespace of the schema's actions, each holding the
/// policies whose action constraint can match that namespace's actions: unconstrained ones,
/// and those naming one of its actions. Cedar evaluates every policy it is given, so with three
/// pools this saves it two thirds of the work.
///
/// Only sound while no action belongs to an action group (an `action in` constraint could then
/// reach across namespaces) and the set has no templates; the caller checks the first and an
/// empty map is returned for the second, meaning "use the whole set".
fn split_by_namespace(policies: &PolicySet, schema: &Schema) -> HashMap<String, PolicySet> {
    if policies.templates().next().is_some() {
        return HashMap::new();
    }
    let namespaces: HashSet<String> = schema.actions().map(|action| action.type_name().namespace()).collect();
    let mut split = HashMap::with_capacity(namespaces.len());
    for namespace in namespaces {
        let applies = |policy: &&Policy| match policy.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(action) => action.type_name().namespace() == namespace,
            ActionConstraint::In(actions) => actions.iter().any(|action| action.type_name().namespace() == namespace),
        };
        match PolicySet::from_policies(policies.policies().filter(applies).cloned()) {
            Ok(set) => split.insert(namespace, set),
            // Cannot happen for policies taken from a valid set; the whole set stays correct.
            Err(_) => return HashMap::new(),
        };
    }
    split
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn each_namespace_gets_its_own_policies_and_the_unconstrained_ones() {
        let schema = Schema::from_str(
            "namespace A { entity U; action x appliesTo { principal: U, resource: U }; }
             namespace B { entity U; action y appliesTo { principal: U, resource: U }; }",
        )
        .unwrap();
        let policies = PolicySet::from_str(
            r#"@id("a") permit (principal, action == A::Action::"x", resource);
               @id("b") permit (principal, action in [B::Action::"y"], resource);
               @id("any") forbid (principal, action, resource) when { principal has nothing };"#,
        )
        .unwrap();
        let split = split_by_namespace(&policies, &schema);
        let ids = |namespace: &str| {
            let mut ids: Vec<&str> = split[namespace].policies().filter_map(|policy| policy.annotation("id")).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids("A"), ["a", "any"]);
        assert_eq!(ids("B"), ["any", "b"]);
    }
}
