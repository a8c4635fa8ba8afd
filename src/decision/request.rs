//! The question the decision stage answers, as callers send it: an action on a resource, with
//! its context.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One access question: may the principal do `action` on `resource`?
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// Action name within the pool's namespace, e.g. `update`.
    pub action: String,
    /// The resource acted on.
    pub resource: ResourceRef,
    /// Request context, checked against the action's context type.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
}

/// A resource named by the caller.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceRef {
    /// Entity type within the pool's namespace, e.g. `Stock`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Opaque id.
    pub id: String,
    /// Attributes the policies read, e.g. `org_id`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// The entities the resource is a direct member of, e.g. its organisation; each of a type
    /// the schema lets the resource's type belong to (`entity Stock in [Org]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentRef>,
}

/// An entity a resource belongs to, named by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentRef {
    /// Entity type within the pool's namespace, e.g. `Org`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Opaque id.
    pub id: String,
}
