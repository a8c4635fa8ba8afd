//! The AuthZEN information model as requests carry it: subject, action, resource and context,
//! read from a JSON value with the path of every mistake in its message.
//!
//! Unknown members are ignored (AuthZEN §Transport: forward compatibility); a member of the
//! wrong type is an error, as is a missing required one. A `null` counts as absent (the spec
//! asks senders to omit nulls). Which `id`s are required depends on the endpoint: an
//! evaluation needs every one, a search omits the searched entity's.

use serde_json::{Map, Value};

use crate::authzen::AuthzenError;

/// `subject`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// `subject.type`.
    pub type_name: String,
    /// `subject.id`, when given.
    pub id: Option<String>,
    /// `subject.properties`.
    pub properties: Map<String, Value>,
}

/// `action`.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// `action.name`.
    pub name: String,
    /// `action.properties`.
    pub properties: Map<String, Value>,
}

/// `resource`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// `resource.type`.
    pub type_name: String,
    /// `resource.id`, when given.
    pub id: Option<String>,
    /// `resource.properties`.
    pub properties: Map<String, Value>,
}

/// One access evaluation: every entity present, the resource identified.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Who.
    pub subject: Subject,
    /// Does what.
    pub action: Action,
    /// On what.
    pub resource: Resource,
    /// In which circumstances.
    pub context: Map<String, Value>,
}

/// The body's top level, which must be an object.
pub fn top(body: &Value) -> Result<&Map<String, Value>, AuthzenError> {
    body.as_object().ok_or_else(|| invalid("the request body must be a JSON object"))
}

impl Evaluation {
    /// Reads an evaluation from `object`, each entity possibly taken from `defaults` (the
    /// top level of a batch) when `object` lacks it: entity-level replacement, no merging.
    pub fn read(
        object: &Map<String, Value>,
        defaults: Option<&Map<String, Value>>,
        path: &str,
    ) -> Result<Self, AuthzenError> {
        let pick = |field: &str| -> (Option<&Value>, String) {
            match (present(object, field), defaults.and_then(|defaults| present(defaults, field))) {
                (Some(value), _) => (Some(value), format!("{path}{field}")),
                (None, Some(default)) => (Some(default), field.to_owned()),
                (None, None) => (None, format!("{path}{field}")),
            }
        };
        let (subject, subject_path) = pick("subject");
        let (action, action_path) = pick("action");
        let (resource, resource_path) = pick("resource");
        let (context, context_path) = pick("context");
        let resource = Resource::read(required(resource, &resource_path)?, &resource_path)?;
        if resource.id.is_none() {
            return Err(invalid(format!("{resource_path}.id: a string is required")));
        }
        Ok(Self {
            subject: Subject::read(required(subject, &subject_path)?, &subject_path)?,
            action: Action::read(required(action, &action_path)?, &action_path)?,
            resource,
            context: optional_object(context, &context_path)?.cloned().unwrap_or_default(),
        })
    }
}

impl Subject {
    /// Reads `value` as a subject found at `path`.
    pub fn read(value: &Value, path: &str) -> Result<Self, AuthzenError> {
        let object = value.as_object().ok_or_else(|| invalid(format!("{path}: an object is required")))?;
        Ok(Self {
            type_name: required_name(object, "type", path)?,
            id: optional_string(object, "id", path)?,
            properties: properties(object, path)?,
        })
    }
}

impl Action {
    /// Reads `value` as an action found at `path`.
    pub fn read(value: &Value, path: &str) -> Result<Self, AuthzenError> {
        let object = value.as_object().ok_or_else(|| invalid(format!("{path}: an object is required")))?;
        Ok(Self { name: required_name(object, "name", path)?, properties: properties(object, path)? })
    }
}

impl Resource {
    /// Reads `value` as a resource found at `path`.
    pub fn read(value: &Value, path: &str) -> Result<Self, AuthzenError> {
        let object = value.as_object().ok_or_else(|| invalid(format!("{path}: an object is required")))?;
        Ok(Self {
            type_name: required_name(object, "type", path)?,
            id: optional_string(object, "id", path)?,
            properties: properties(object, path)?,
        })
    }
}

/// `object[field]`, a `null` counting as absent.
pub fn present<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|value| !value.is_null())
}

/// `value`, which must be there.
pub fn required<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a Value, AuthzenError> {
    value.ok_or_else(|| invalid(format!("{path}: is required")))
}

/// `value` as an object, when there.
pub fn optional_object<'a>(
    value: Option<&'a Value>,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, AuthzenError> {
    match value {
        None => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(invalid(format!("{path}: an object is expected"))),
    }
}

/// `object[field]` as a non-empty string, which must be there.
fn required_name(object: &Map<String, Value>, field: &str, path: &str) -> Result<String, AuthzenError> {
    match optional_string(object, field, path)? {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(invalid(format!("{path}.{field}: a non-empty string is required"))),
    }
}

/// `object[field]` as a string, when there.
pub fn optional_string(object: &Map<String, Value>, field: &str, path: &str) -> Result<Option<String>, AuthzenError> {
    match present(object, field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("{path}.{field}: a string is expected"))),
    }
}

fn properties(object: &Map<String, Value>, path: &str) -> Result<Map<String, Value>, AuthzenError> {
    Ok(optional_object(present(object, "properties"), &format!("{path}.properties"))?.cloned().unwrap_or_default())
}

fn invalid(message: impl Into<String>) -> AuthzenError {
    AuthzenError::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: Value) -> Result<Evaluation, String> {
        Evaluation::read(body.as_object().unwrap(), None, "").map_err(|err| err.to_string())
    }

    #[test]
    fn an_evaluation_needs_every_entity_and_ignores_unknown_members() {
        let full = json!({
            "subject": {"type": "user", "id": "alice", "extra": 1},
            "action": {"name": "read", "properties": {"method": "GET"}},
            "resource": {"type": "record", "id": "r1"},
            "futureField": {"nested": true},
        });
        let evaluation = read(full).unwrap();
        assert_eq!(evaluation.subject.id.as_deref(), Some("alice"));
        assert_eq!(evaluation.action.properties["method"], "GET");
        assert!(evaluation.context.is_empty());
        for (body, message) in [
            (json!({"action": {"name": "r"}, "resource": {"type": "t", "id": "1"}}), "subject: is required"),
            (json!({"subject": {"type": "u"}, "resource": {"type": "t", "id": "1"}}), "action: is required"),
            (json!({"subject": {"type": "u"}, "action": {}, "resource": {"type": "t", "id": "1"}}), "action.name"),
            (
                json!({"subject": {"type": "u"}, "action": {"name": 123}, "resource": {"type": "t", "id": "1"}}),
                "action.name",
            ),
            (
                json!({"subject": "alice", "action": {"name": "r"}, "resource": {"type": "t", "id": "1"}}),
                "subject: an object",
            ),
            (
                json!({"subject": {"id": "a"}, "action": {"name": "r"}, "resource": {"type": "t", "id": "1"}}),
                "subject.type",
            ),
            (json!({"subject": {"type": "u"}, "action": {"name": "r"}, "resource": {"type": "t"}}), "resource.id"),
            (json!({"subject": {"type": "u"}, "action": {"name": "r"}, "resource": {"id": "1"}}), "resource.type"),
            (
                json!({"subject": {"type": "u"}, "action": {"name": "r"}, "resource": {"type": "t", "id": "1"}, "context": 1}),
                "context",
            ),
        ] {
            let error = read(body).unwrap_err();
            assert!(error.starts_with(message), "{error}");
        }
    }

    #[test]
    fn defaults_fill_whole_entities_an_item_lacks() {
        let defaults = json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
                              "resource": {"type": "record", "id": "r1", "properties": {"status": "active"}},
                              "context": {"time": "t"}});
        let item = json!({"resource": {"type": "record", "id": "r2"}});
        let evaluation = Evaluation::read(item.as_object().unwrap(), defaults.as_object(), "evaluations[1].").unwrap();
        assert_eq!(evaluation.resource.id.as_deref(), Some("r2"));
        assert!(evaluation.resource.properties.is_empty(), "no merging into an item's own entity");
        assert_eq!(evaluation.context["time"], "t");
        let error = Evaluation::read(
            json!({"resource": {"type": "t"}}).as_object().unwrap(),
            defaults.as_object(),
            "evaluations[0].",
        )
        .unwrap_err();
        assert!(error.to_string().starts_with("evaluations[0].resource.id"), "{error}");
    }
}
