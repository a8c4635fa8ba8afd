//! What the filter needs to know of the schema's resource types: each attribute's type and
//! whether it is required, and each type's possible parents (`memberOfTypes`); and, for
//! AuthZEN, each action's context attributes.
//!
//! Cedar 4.14's `Schema` does not expose attribute types, so they are read from the schema's
//! text through Cedar's own converter to JSON with resolved types
//! ([`cedar_policy::schema_str_to_json_with_resolved_types`]). Anything this reader does not
//! recognise becomes [`AttrType::Other`], which the translator refuses; a schema it cannot read
//! at all leaves [`Shapes`] empty with the reason kept, reported when a filter is asked for,
//! never at policy load.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// A resource attribute's Cedar type, as far as the filter can translate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    /// `String`.
    String,
    /// `Long`.
    Long,
    /// `Bool`.
    Bool,
    /// `Set<String>` or `Set<Long>` (the element type).
    Set(Box<AttrType>),
    /// Anything else (records, entities, extension types, nested sets).
    Other,
}

/// One attribute of an entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrShape {
    /// Its type.
    pub ty: AttrType,
    /// Whether every entity of the type must have it (`name: T` rather than `name?: T`).
    pub required: bool,
}

/// One entity type of the schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeShape {
    /// Attributes by name.
    pub attributes: BTreeMap<String, AttrShape>,
    /// Fully qualified names of the types an entity of this type may be a member of.
    pub member_of: Vec<String>,
}

/// Every entity type of the schema, by fully qualified name (`Merchant::Stock`).
#[derive(Debug, Clone, Default)]
pub struct Shapes {
    types: HashMap<String, TypeShape>,
    /// Each action's context attributes, by (namespace, action name).
    contexts: HashMap<(String, String), BTreeMap<String, AttrShape>>,
    /// Why the schema could not be read, when it could not.
    problem: Option<String>,
}

impl Shapes {
    /// Reads the shapes from the schema's Cedar text; never fails (see the module doc).
    pub fn from_cedarschema(text: &str) -> Self {
        match cedar_policy::schema_str_to_json_with_resolved_types(text) {
            Ok((json, _warnings)) => Self::from_json(&json),
            Err(err) => Self { problem: Some(err.to_string()), ..Self::default() },
        }
    }

    /// Reads the shapes from a JSON schema (namespace → `entityTypes`).
    pub fn from_json(json: &Value) -> Self {
        let mut types = HashMap::new();
        let Some(namespaces) = json.as_object() else {
            return Self { problem: Some("the schema is not a JSON object".into()), ..Self::default() };
        };
        // Common types are referenced by qualified name: `{"type": "M::Tags"}`.
        let mut common = HashMap::new();
        for (namespace, body) in namespaces {
            if let Some(types) = body.get("commonTypes").and_then(Value::as_object) {
                for (name, ty) in types {
                    let qualified = if namespace.is_empty() { name.clone() } else { format!("{namespace}::{name}") };
                    common.insert(qualified, ty.clone());
                }
            }
        }
        for (namespace, body) in namespaces {
            let qualify = |name: &str| {
                if name.contains("::") || namespace.is_empty() {
                    name.to_owned()
                } else {
                    format!("{namespace}::{name}")
                }
            };
            let Some(entity_types) = body.get("entityTypes").and_then(Value::as_object) else { continue };
            for (name, entity) in entity_types {
                let mut shape = TypeShape::default();
                if let Some(attributes) =
                    entity.get("shape").and_then(|shape| shape.get("attributes")).and_then(Value::as_object)
                {
                    for (attribute, ty) in attributes {
                        let required = ty.get("required").and_then(Value::as_bool).unwrap_or(true);
                        shape
                            .attributes
                            .insert(attribute.clone(), AttrShape { ty: attr_type(ty, &common, 0), required });
                    }
                }
                if let Some(parents) = entity.get("memberOfTypes").and_then(Value::as_array) {
                    shape.member_of = parents.iter().filter_map(Value::as_str).map(qualify).collect();
                }
                types.insert(qualify(name), shape);
            }
        }
        let mut contexts = HashMap::new();
        for (namespace, body) in namespaces {
            let Some(actions) = body.get("actions").and_then(Value::as_object) else { continue };
            for (name, action) in actions {
                let context = action.get("appliesTo").and_then(|applies| applies.get("context"));
                let attributes = context
                    .and_then(|context| record_attributes(context, &common, 0))
                    .map(|attributes| {
                        attributes
                            .iter()
                            .map(|(attribute, ty)| {
                                let required = ty.get("required").and_then(Value::as_bool).unwrap_or(true);
                                (attribute.clone(), AttrShape { ty: attr_type(ty, &common, 0), required })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                contexts.insert((namespace.clone(), name.clone()), attributes);
            }
        }
        Self { types, contexts, problem: None }
    }

    /// The context attributes of `action` in `namespace`: empty when the action declares no
    /// context, `None` when the action is unknown or the schema could not be read.
    pub fn context(&self, namespace: &str, action: &str) -> Option<&BTreeMap<String, AttrShape>> {
        self.contexts.get(&(namespace.to_owned(), action.to_owned()))
    }

    /// The shape of `type_name` (fully qualified).
    pub fn get(&self, type_name: &str) -> Option<&TypeShape> {
        self.types.get(type_name)
    }

    /// Why the schema could not be read, if it could not.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }
}

/// The attributes of a record type, following common-type references.
fn record_attributes<'a>(
    ty: &'a Value,
    common: &'a HashMap<String, Value>,
    depth: usize,
) -> Option<&'a serde_json::Map<String, Value>> {
    let kind = ty.get("type").and_then(Value::as_str);
    let name = match (kind, ty.get("name").and_then(Value::as_str)) {
        (Some("Record"), _) => return ty.get("attributes").and_then(Value::as_object),
        (Some("EntityOrCommon"), Some(name)) => name,
        (Some(name), _) => name,
        (None, _) => return None,
    };
    if depth >= 16 {
        return None;
    }
    record_attributes(common.get(name)?, common, depth + 1)
}

fn attr_type(ty: &Value, common: &HashMap<String, Value>, depth: usize) -> AttrType {
    let kind = ty.get("type").and_then(Value::as_str);
    // Unresolved primitives are written `{"type": "EntityOrCommon", "name": "String"}`.
    let kind = match (kind, ty.get("name").and_then(Value::as_str)) {
        (Some("EntityOrCommon"), Some(name)) => Some(name.trim_start_matches("__cedar::")),
        (kind, _) => kind,
    };
    match kind {
        Some("String") => AttrType::String,
        Some("Long") => AttrType::Long,
        Some("Boolean" | "Bool") => AttrType::Bool,
        Some("Set") => match ty.get("element").map(|element| attr_type(element, common, depth + 1)) {
            Some(element @ (AttrType::String | AttrType::Long)) => AttrType::Set(Box::new(element)),
            _ => AttrType::Other,
        },
        Some(name) if depth < 16 => match common.get(name) {
            Some(definition) => attr_type(definition, common, depth + 1),
            None => AttrType::Other,
        },
        _ => AttrType::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_types_requiredness_and_parents_come_from_the_schema_text() {
        let shapes = Shapes::from_cedarschema(
            "namespace M { type Tags = Set<String>;
               entity Org; entity Group;
               entity Stock in [Org] { org_id: String, qty?: Long, live: Bool, tags: Tags, ns: Set<Long>,
                                       owner?: Group, rec: { a: String }, nested: Set<Set<String>> };
               action read appliesTo { principal: Group, resource: Stock }; }",
        );
        assert_eq!(shapes.problem(), None);
        let stock = shapes.get("M::Stock").unwrap();
        let attr = |name: &str| stock.attributes.get(name).unwrap().clone();
        assert_eq!(attr("org_id"), AttrShape { ty: AttrType::String, required: true });
        assert_eq!(attr("qty"), AttrShape { ty: AttrType::Long, required: false });
        assert_eq!(attr("live").ty, AttrType::Bool);
        assert_eq!(attr("tags").ty, AttrType::Set(Box::new(AttrType::String)));
        assert_eq!(attr("ns").ty, AttrType::Set(Box::new(AttrType::Long)));
        assert_eq!(attr("owner").ty, AttrType::Other);
        assert_eq!(attr("rec").ty, AttrType::Other);
        assert_eq!(attr("nested").ty, AttrType::Other);
        assert_eq!(stock.member_of, ["M::Org"]);
        assert!(shapes.get("M::Org").unwrap().member_of.is_empty());
    }

    #[test]
    fn each_actions_context_attributes_come_from_the_schema_text_through_common_types() {
        let shapes = Shapes::from_cedarschema(
            "namespace M { type Ctx = { ip?: String, soft: Bool };
               entity U;
               action read appliesTo { principal: U, resource: U, context: { time?: String, n: Long } };
               action delete appliesTo { principal: U, resource: U, context: Ctx };
               action bare appliesTo { principal: U, resource: U }; }",
        );
        let names = |action: &str| shapes.context("M", action).map(|attrs| attrs.keys().cloned().collect::<Vec<_>>());
        assert_eq!(names("read"), Some(vec!["n".to_owned(), "time".to_owned()]));
        assert_eq!(names("delete"), Some(vec!["ip".to_owned(), "soft".to_owned()]));
        assert_eq!(shapes.context("M", "delete").unwrap()["soft"], AttrShape { ty: AttrType::Bool, required: true });
        assert_eq!(names("bare"), Some(Vec::new()));
        assert_eq!(names("fly"), None);
    }
}
