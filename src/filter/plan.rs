//! Partial evaluation with the resource unknown: the only place poolgate calls Cedar's
//! experimental `tpe` API (pinned to cedar-policy 4.14.1; the tests here break first when an
//! upgrade changes it).

use std::str::FromStr;

use cedar_policy::{
    Context, Effect, Entities, Entity, EntityId, EntityTypeName, EntityUid, PartialEntities, PartialEntityUid,
    PartialRequest, PolicySet,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::decision::{Decider, entities};
use crate::filter::FilterError;
use crate::filter::condition::Condition;
use crate::filter::mapping::ResourceMapping;
use crate::filter::shape::AttrType;
use crate::filter::translate::{Refusal, Target, combine};
use crate::principal::Principal;

/// The question: which resources of `resource_type` may the principal do `action` on?
#[derive(Debug, Clone)]
pub struct FilterQuestion<'a> {
    /// Action name within the pool's namespace, e.g. `read`.
    pub action: &'a str,
    /// Resource type within the pool's namespace, e.g. `Stock`.
    pub resource_type: &'a str,
    /// Request context, checked against the action's context type.
    pub context: &'a Map<String, Value>,
}

/// The answer, before any SQL is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Plan {
    /// Every resource of the type (with a valid row) is allowed.
    AlwaysAllow,
    /// None is.
    AlwaysDeny,
    /// Exactly the resources satisfying the condition are.
    Conditional {
        /// Over the resource's attributes; see [`crate::filter::condition`].
        condition: Condition,
    },
}

/// A plan and the policies it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The answer.
    pub plan: Plan,
    /// Ids of the policies involved: satisfied, residual or erroring ones, sorted.
    pub policies: Vec<String>,
}

/// Plans the question for `principal`; `mapping` is the resource type's, when configured.
pub fn plan(
    decider: &Decider,
    principal: &Principal,
    mapping: Option<&ResourceMapping>,
    question: &FilterQuestion<'_>,
) -> Result<Planned, FilterError> {
    let entity = decider.principal_entity(principal).map_err(FilterError::Principal)?;
    plan_for_entity(decider, entity, &principal.namespace, mapping, question)
}

/// Like [`plan`], for a principal entity already built (with its groups as parents).
pub fn plan_for_entity(
    decider: &Decider,
    principal: Entity,
    namespace: &str,
    mapping: Option<&ResourceMapping>,
    question: &FilterQuestion<'_>,
) -> Result<Planned, FilterError> {
    let schema = decider.schema();
    let invalid = |message: String| FilterError::InvalidRequest(message);
    let resource_type =
        entities::resource_type(namespace, question.resource_type, schema).map_err(|err| invalid(err.to_string()))?;
    let action_type = EntityTypeName::from_str(&format!("{namespace}::Action"))
        .map_err(|_| invalid(format!("namespace `{namespace}` is not valid")))?;
    let action = EntityUid::from_type_name_and_id(action_type, EntityId::new(question.action));
    if !schema.actions().any(|known| known == &action) {
        return Err(invalid(format!("unknown action `{}`", question.action)));
    }
    let context = if question.context.is_empty() {
        Context::empty()
    } else {
        Context::from_json_value(Value::Object(question.context.clone()), Some((schema, &action)))
            .map_err(|err| invalid(format!("context does not match the schema: {err}")))?
    };
    let request = PartialRequest::new(
        PartialEntityUid::from_concrete(principal.uid()),
        action,
        PartialEntityUid::new(resource_type.clone(), None),
        Some(context),
        schema,
    )
    .map_err(|err| invalid(format!("request does not match the schema: {err}")))?;
    let known = Entities::from_entities([principal], None)
        .map_err(|err| FilterError::Engine { message: "principal entity".into(), source: Box::new(err) })?;
    let known = PartialEntities::from_concrete(known, schema)
        .map_err(|err| FilterError::Engine { message: "principal entity".into(), source: Box::new(err) })?;
    let policies: &PolicySet = decider.policies_for(namespace);
    let response = policies
        .tpe(&request, &known, schema)
        .map_err(|err| FilterError::Engine { message: "partial evaluation".into(), source: Box::new(err) })?;

    let ids = |iter: &mut dyn Iterator<Item = &cedar_policy::PolicyId>| -> Vec<String> {
        let mut ids: Vec<String> = iter.map(ToString::to_string).collect();
        ids.sort();
        ids
    };
    // poolgate denies on any evaluation error, of a permit as much as of a forbid.
    let errors = [ids(&mut response.error_permits()), ids(&mut response.error_forbids())].concat();
    let true_forbids = ids(&mut response.true_forbids());
    if !true_forbids.is_empty() || !errors.is_empty() {
        let mut policies = [true_forbids, errors].concat();
        policies.sort();
        return Ok(Planned { plan: Plan::AlwaysDeny, policies });
    }
    let true_permits = ids(&mut response.true_permits());
    let mut involved = true_permits.clone();

    let type_name = resource_type.to_string();
    let shapes = decider.shapes();
    let shape = shapes.get(&type_name).ok_or_else(|| FilterError::Mapping {
        message: match shapes.problem() {
            Some(problem) => format!("the schema could not be read for filtering: {problem}"),
            None => format!("the schema does not describe `{type_name}`"),
        },
    })?;
    let target = Target { resource_type: &type_name, namespace, shape, mapping };

    let mut residuals = Vec::new();
    for residual in response.residual_policies() {
        let id = residual.id().to_string();
        let refused = |refusal: Refusal| match refusal {
            Refusal::Unsupported(construct) => FilterError::Unsupported { policy_id: id.clone(), construct },
            Refusal::Unmapped(message) => FilterError::Mapping { message: format!("policy `{id}`: {message}") },
        };
        let tree = residual.to_pst().map_err(|err| FilterError::Unsupported {
            policy_id: id.clone(),
            construct: format!("a residual Cedar cannot write as a syntax tree ({err})"),
        })?;
        residuals.push((residual.effect() == Effect::Permit, target.policy(&tree).map_err(refused)?));
        involved.push(id);
    }
    involved.sort();
    involved.dedup();

    let body = combine(!true_permits.is_empty(), residuals);
    // A row lacking a required attribute cannot be built into a valid entity, so the check
    // refuses it whatever the policies say.
    let condition = match body {
        Condition::False => Condition::False,
        body => match mapping {
            Some(mapping) => Condition::and([valid_rows(&target, mapping)?, body]),
            None => Condition::and([required_present(shape), body]),
        },
    };
    let plan = match condition {
        Condition::True => Plan::AlwaysAllow,
        Condition::False => Plan::AlwaysDeny,
        condition => Plan::Conditional { condition },
    };
    Ok(Planned { plan, policies: involved })
}

/// Without a mapping, nothing says a required attribute cannot be absent from the caller's
/// store: `has` for each, so that a resource the check would refuse as invalid is left out.
fn required_present(shape: &crate::filter::shape::TypeShape) -> Condition {
    Condition::and(
        shape
            .attributes
            .iter()
            .filter(|(_, attribute)| attribute.required)
            .map(|(name, _)| Condition::Has { attr: name.clone() }),
    )
}

/// The rows that are valid entities of the type: every required attribute present. Every
/// required attribute must be mapped, and every mapped one declared with a type a column holds.
fn valid_rows(target: &Target<'_>, mapping: &ResourceMapping) -> Result<Condition, FilterError> {
    let mapping_error = |message: String| FilterError::Mapping { message };
    for name in mapping.attributes.keys() {
        match target.shape.attributes.get(name) {
            None => {
                return Err(mapping_error(format!(
                    "the attribute `{name}` is mapped but `{}` does not declare it",
                    target.resource_type
                )));
            }
            Some(shape) if shape.ty == AttrType::Other => {
                return Err(mapping_error(format!(
                    "the attribute `{name}` of `{}` has a type no column maps to",
                    target.resource_type
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(parent) = &mapping.parent {
        let parent_type = format!("{}::{}", target.namespace, parent.type_name);
        if !target.shape.member_of.contains(&parent_type) {
            return Err(mapping_error(format!(
                "the parent type `{parent_type}` is not one `{}` may belong to",
                target.resource_type
            )));
        }
    }
    let mut guards = Vec::new();
    for (name, shape) in &target.shape.attributes {
        if !shape.required {
            continue;
        }
        let Some(column) = mapping.attributes.get(name) else {
            return Err(mapping_error(format!(
                "the required attribute `{name}` of `{}` is not mapped",
                target.resource_type
            )));
        };
        if column.nullable {
            guards.push(Condition::Has { attr: name.clone() });
        }
    }
    Ok(Condition::and(guards))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::config::pool::TokenUse;
    use crate::decision::PolicySources;
    use crate::filter::mapping::{MappedColumn, SqlSource};

    fn decider() -> Decider {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        Decider::load(&PolicySources { dir, pools: Vec::new(), resource_queries: Vec::new() }).unwrap()
    }

    fn principal(pool: &str, sub: &str, groups: &[&str], flags: &[&str], org: Option<&str>) -> Principal {
        let mut namespace = pool.to_owned();
        if let Some(first) = namespace.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        Principal {
            pool: pool.into(),
            namespace,
            sub: sub.into(),
            token_use: TokenUse::Access,
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            email: None,
            scopes: vec!["write:recharge".into()],
            attributes: org.map(|org| vec![("org_id".to_owned(), org.to_owned())]).unwrap_or_default(),
            flags: Arc::from(flags.iter().map(|flag| (*flag).to_owned()).collect::<Vec<_>>()),
        }
    }

    fn mapping(attributes: &[&str]) -> ResourceMapping {
        ResourceMapping {
            table: "t".into(),
            id_column: "id".into(),
            attributes: attributes
                .iter()
                .map(|name| {
                    ((*name).to_owned(), MappedColumn { source: SqlSource::Column((*name).into()), nullable: false })
                })
                .collect::<BTreeMap<_, _>>(),
            parent: None,
        }
    }

    fn plan_of(principal: &Principal, action: &str, resource_type: &str, mapping: &ResourceMapping) -> Value {
        let context = Map::new();
        let question = FilterQuestion { action, resource_type, context: &context };
        serde_json::to_value(plan(&decider(), principal, Some(mapping), &question).unwrap().plan).unwrap()
    }

    #[test]
    fn every_shipped_policy_translates_into_the_seed_scenarios_list_views() {
        let stock = mapping(&["org_id"]);
        let mia = principal("merchant", "mia", &["merchant"], &["can_manage_stock"], Some("o1"));
        let eq = |attr: &str, value: &str| json!({"kind": "conditional", "condition": {"op": "eq", "attr": attr, "value": value}});
        assert_eq!(plan_of(&mia, "read", "Stock", &stock), eq("org_id", "o1"));
        assert_eq!(plan_of(&mia, "update", "Stock", &stock), eq("org_id", "o1"));
        let stu = principal("merchant", "stu", &["merchant-staff"], &["can_manage_stock"], Some("o2"));
        assert_eq!(plan_of(&stu, "read", "Stock", &stock), eq("org_id", "o2"));
        assert_eq!(plan_of(&stu, "update", "Stock", &stock), json!({"kind": "always_deny"}));
        let orgless = principal("merchant", "mia", &["merchant"], &["can_manage_stock"], None);
        assert_eq!(plan_of(&orgless, "read", "Stock", &stock), json!({"kind": "always_deny"}));

        let accounts = mapping(&[]);
        let ada = principal("admin", "ada", &["admins"], &[], None);
        assert_eq!(plan_of(&ada, "read", "Account", &accounts), json!({"kind": "always_allow"}));
        assert_eq!(plan_of(&ada, "create", "Account", &accounts), json!({"kind": "always_deny"}));
        let sam = principal("admin", "sam", &["support"], &[], None);
        assert_eq!(plan_of(&sam, "read", "Account", &accounts), json!({"kind": "always_allow"}));
        assert_eq!(plan_of(&sam, "delete", "Account", &accounts), json!({"kind": "always_deny"}));

        let wallets = mapping(&["owner"]);
        let wil = principal("wallet", "wil", &[], &[], None);
        assert_eq!(plan_of(&wil, "read", "Wallet", &wallets), eq("owner", "wil"));
        assert_eq!(plan_of(&wil, "recharge", "Wallet", &wallets), eq("owner", "wil"));
    }

    #[test]
    fn a_required_attribute_on_a_nullable_column_excludes_its_null_rows_and_the_mapping_is_checked() {
        let decider = decider();
        let ada = principal("admin", "ada", &["admins"], &[], None);
        let mia = principal("merchant", "mia", &["merchant"], &[], Some("o1"));
        let context = Map::new();
        let ask = |who: &Principal, action, resource_type, mapping: &ResourceMapping| {
            plan(&decider, who, Some(mapping), &FilterQuestion { action, resource_type, context: &context })
        };
        let mut stock = mapping(&["org_id"]);
        if let Some(column) = stock.attributes.get_mut("org_id") {
            column.nullable = true;
        }
        let planned = ask(&mia, "read", "Stock", &stock).unwrap();
        assert_eq!(
            serde_json::to_value(planned.plan).unwrap(),
            json!({"kind": "conditional", "condition": {"op": "and", "args": [
                {"op": "has", "attr": "org_id"}, {"op": "eq", "attr": "org_id", "value": "o1"}]}})
        );
        assert_eq!(planned.policies, ["merchant.read-own-org-stock"]);
        assert!(matches!(ask(&mia, "read", "Stock", &mapping(&[])), Err(FilterError::Mapping { .. })));
        assert!(matches!(ask(&mia, "read", "Stock", &mapping(&["org_id", "x"])), Err(FilterError::Mapping { .. })));
        assert!(matches!(ask(&ada, "read", "Stock", &stock), Err(FilterError::InvalidRequest(_))));
        assert!(matches!(ask(&mia, "fly", "Stock", &stock), Err(FilterError::InvalidRequest(_))));
    }
}
