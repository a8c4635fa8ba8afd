//! Stage 3b: turn a principal and a requested (action, resource, context) into Cedar's entities
//! and request, each checked against the schema.
//!
//! Names the caller sends are scoped to the principal's pool: resource type `Stock` from a
//! merchant-pool token means `Merchant::Stock`, action `update` means
//! `Merchant::Action::"update"`. Ids are opaque strings and never parsed as Cedar syntax.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RequestValidationError,
    RestrictedExpression, Schema,
};
use serde_json::{Map, Value, json};

use crate::config::names::is_identifier;
use crate::decision::error::DecisionError;
use crate::decision::request::AccessRequest;
use crate::principal::Principal;

/// The Cedar request and entities for one access question.
pub struct CedarInput {
    /// Principal, action, resource and context, validated against the schema.
    pub request: Request,
    /// The principal and resource entities, plus the schema's actions when it groups them.
    pub entities: Entities,
}

/// A namespace's principal entity types, `<Namespace>::User` and `<Namespace>::Group`, parsed
/// once per policy load rather than on every decision.
#[derive(Debug, Clone)]
pub struct PrincipalTypes {
    user: EntityTypeName,
    group: EntityTypeName,
}

impl PrincipalTypes {
    /// Parses the two type names of `namespace`.
    pub fn new(namespace: &str) -> Result<Self, DecisionError> {
        let parse = |name: &str| {
            EntityTypeName::from_str(&format!("{namespace}::{name}"))
                .map_err(|err| DecisionError::PrincipalSchema { owner: namespace.to_owned(), source: err.into() })
        };
        Ok(Self { user: parse("User")?, group: parse("Group")? })
    }
}

/// The principal's entity: `<Namespace>::User::"<sub>"`, child of one `<Namespace>::Group` per
/// group, with the claim attributes and flags.
///
/// Built directly rather than parsed from JSON (a parse against the schema cost about half of
/// a warm check). Its shape is fixed by the pool's configuration, so [`check_principal_shape`]
/// validates it against the schema once, when the policies are loaded.
pub fn principal_entity(principal: &Principal, types: &PrincipalTypes) -> Result<Entity, DecisionError> {
    let string = |value: &str| RestrictedExpression::new_string(value.to_owned());
    let set = |values: &[String]| RestrictedExpression::new_set(values.iter().map(|value| string(value)));
    let mut attrs = HashMap::with_capacity(6 + principal.attributes.len());
    attrs.insert("sub".to_owned(), string(&principal.sub));
    attrs.insert("pool".to_owned(), string(&principal.pool));
    attrs.insert("token_use".to_owned(), string(principal.token_use.as_str()));
    if let Some(email) = &principal.email {
        attrs.insert("email".to_owned(), string(email));
    }
    attrs.insert("flags".to_owned(), set(&principal.flags));
    attrs.insert("scopes".to_owned(), set(&principal.scopes));
    for (name, value) in &principal.attributes {
        attrs.insert(name.clone(), string(value));
    }
    let parents = principal
        .groups
        .iter()
        .map(|group| EntityUid::from_type_name_and_id(types.group.clone(), EntityId::new(group)))
        .collect();
    let uid = EntityUid::from_type_name_and_id(types.user.clone(), EntityId::new(&principal.sub));
    Entity::new(uid, attrs, parents)
        .map_err(|err| DecisionError::PrincipalSchema { owner: principal.pool.clone(), source: err.into() })
}

/// Checks a principal's entity against the schema: attribute names and types, parent types.
pub fn check_principal_shape(principal: &Principal, schema: &Schema) -> Result<(), DecisionError> {
    let entity = principal_entity(principal, &PrincipalTypes::new(&principal.namespace)?)?;
    Entities::from_entities([entity], Some(schema))
        .map(|_| ())
        .map_err(|err| DecisionError::PrincipalSchema { owner: principal.pool.clone(), source: err.into() })
}

/// The schema's entity type `<namespace>::<type_name>`, if it exists.
pub fn resource_type(namespace: &str, type_name: &str, schema: &Schema) -> Result<EntityTypeName, DecisionError> {
    let unknown = || DecisionError::UnknownResourceType(type_name.to_owned());
    if !is_identifier(type_name) {
        return Err(unknown());
    }
    let resource_type = EntityTypeName::from_str(&format!("{namespace}::{type_name}")).map_err(|_| unknown())?;
    if !schema.entity_types().any(|known| known == &resource_type) {
        return Err(unknown());
    }
    Ok(resource_type)
}

/// Builds the validated Cedar request and entities for `ask` by `principal`.
///
/// `actions` are the schema's action entities, needed only when the schema groups actions
/// (`action in <group>` reads the hierarchy). `principal` was checked against the schema when
/// it was built, and the resource is checked here, so joining them needs no further validation.
pub fn cedar_input(
    principal: Entity,
    namespace: &str,
    ask: &AccessRequest,
    schema: &Schema,
    actions: Option<&Entities>,
) -> Result<CedarInput, DecisionError> {
    let resource_type = resource_type(namespace, &ask.resource.type_name, schema)?;
    let resource_uid = EntityUid::from_type_name_and_id(resource_type, EntityId::new(&ask.resource.id));
    // The parents' types are resolved like the resource's; Cedar checks below that the schema
    // lets the resource belong to them.
    let parents = ask
        .resource
        .parents
        .iter()
        .map(|parent| {
            let parent_type = self::resource_type(namespace, &parent.type_name, schema)?;
            Ok(EntityUid::from_type_name_and_id(parent_type, EntityId::new(&parent.id)))
        })
        .collect::<Result<HashSet<EntityUid>, DecisionError>>()?;
    let action_type = EntityTypeName::from_str(&format!("{namespace}::Action"))
        .map_err(|err| DecisionError::PrincipalSchema { owner: namespace.to_owned(), source: err.into() })?;
    let action = EntityUid::from_type_name_and_id(action_type, EntityId::new(&ask.action));
    if !schema.actions().any(|known| known == &action) {
        return Err(DecisionError::UnknownAction(ask.action.clone()));
    }
    // An empty context skips the JSON parse; `Request::new` checks it against the schema below.
    let context = if ask.context.is_empty() {
        Context::empty()
    } else {
        Context::from_json_value(Value::Object(ask.context.clone()), Some((schema, &action)))
            .map_err(|err| DecisionError::InvalidContext(err.into()))?
    };
    let request = Request::new(principal.uid(), action, resource_uid.clone(), context, Some(schema)).map_err(
        |err| match err {
            RequestValidationError::InvalidContext(_) | RequestValidationError::TypeOfContext(_) => {
                DecisionError::InvalidContext(err.into())
            }
            err => DecisionError::InvalidRequest(err.into()),
        },
    )?;
    let checked = match (actions, plain_resource(&resource_uid, &ask.resource.attributes, &parents)) {
        // Cedar checks the resource against the schema as it enters the store; a value the
        // schema gives another meaning fails that check and goes through Cedar's parser below.
        (None, Some(resource)) => Entities::empty().add_entities([resource], Some(schema)).ok(),
        _ => None,
    };
    let entities = match checked {
        Some(entities) => entities.add_entities([principal], None),
        None => {
            let parents: Vec<Value> = parents
                .iter()
                .map(|parent| json!({"type": parent.type_name().to_string(), "id": parent.id().unescaped()}))
                .collect();
            let resource = json!({
                "uid": {"type": format!("{namespace}::{}", ask.resource.type_name), "id": ask.resource.id},
                "attrs": ask.resource.attributes,
                "parents": parents,
            });
            let resource = Entity::from_json_value(resource, Some(schema))
                .map_err(|err| DecisionError::InvalidRequest(err.into()))?;
            actions.cloned().unwrap_or_else(Entities::empty).add_entities([principal, resource], None)
        }
    }
    .map_err(|err| DecisionError::InvalidRequest(err.into()))?;
    Ok(CedarInput { request, entities })
}

/// The resource entity, when every attribute is a string, a boolean, an integer or a set of
/// those: JSON whose Cedar value is the same whatever the schema says. Otherwise `None`, and
/// Cedar's schema-directed JSON parser reads the resource.
///
/// Why not always Cedar's parser: it tries each escape form (`__entity`, `__extn`, …) on every
/// value and formats a serde error for each miss, which was 29% of a decision's instructions
/// under callgrind. The caller still has Cedar check the result against the schema.
fn plain_resource(uid: &EntityUid, attributes: &Map<String, Value>, parents: &HashSet<EntityUid>) -> Option<Entity> {
    fn plain(value: &Value) -> Option<RestrictedExpression> {
        Some(match value {
            Value::String(text) => RestrictedExpression::new_string(text.clone()),
            Value::Bool(flag) => RestrictedExpression::new_bool(*flag),
            Value::Number(number) => RestrictedExpression::new_long(number.as_i64()?),
            Value::Array(items) => RestrictedExpression::new_set(items.iter().map(plain).collect::<Option<Vec<_>>>()?),
            Value::Object(_) | Value::Null => return None,
        })
    }
    let attrs = attributes.iter().map(|(name, value)| Some((name.clone(), plain(value)?))).collect::<Option<_>>()?;
    Entity::new(uid.clone(), attrs, parents.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_attributes_still_meet_the_schema_and_the_rest_go_to_cedars_parser() {
        let schema = Schema::from_str(
            "namespace A { entity U; entity R { name: String, size: Long, tags: Set<String>, owner?: U };
             action x appliesTo { principal: U, resource: R }; }",
        )
        .unwrap();
        let uid = EntityUid::from_str(r#"A::R::"r""#).unwrap();
        let fits = |attrs: Value| {
            plain_resource(&uid, attrs.as_object().unwrap(), &HashSet::new())
                .map(|resource| Entities::empty().add_entities([resource], Some(&schema)).is_ok())
        };
        assert_eq!(fits(json!({"name": "n", "size": 1, "tags": ["a"]})), Some(true));
        assert_eq!(fits(json!({"name": "n", "size": "1", "tags": ["a"]})), Some(false), "a string for a Long");
        assert_eq!(fits(json!({"name": "n", "size": 1, "tags": ["a"], "owner": "u"})), Some(false), "a string for U");
        assert_eq!(fits(json!({"name": "n", "size": 1})), Some(false), "a required attribute missing");
        assert_eq!(fits(json!({"name": "n", "size": 1.5, "tags": []})), None, "a float");
        assert_eq!(fits(json!({"name": "n", "size": 1, "tags": [], "owner": {"type": "A::U", "id": "u"}})), None);
    }

    #[test]
    fn a_resources_parents_must_be_of_a_type_the_schema_lets_it_belong_to() {
        let schema = Schema::from_str(
            "namespace A { entity U; entity O; entity R in [O]; action x appliesTo { principal: U, resource: R }; }",
        )
        .unwrap();
        let uid = EntityUid::from_str(r#"A::R::"r""#).unwrap();
        let fits = |parent: &str| {
            let parents = HashSet::from([EntityUid::from_str(parent).unwrap()]);
            plain_resource(&uid, &Map::new(), &parents)
                .map(|resource| Entities::empty().add_entities([resource], Some(&schema)).is_ok())
        };
        assert_eq!(fits(r#"A::O::"o""#), Some(true));
        assert_eq!(fits(r#"A::U::"u""#), Some(false));
    }
}
