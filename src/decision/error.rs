//! Why no decision could be made: one error type for the decision stage, which `mod.rs` and
//! `entities.rs` both use.

/// A cause kept as the source of a [`DecisionError`]: Cedar's own error types.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why no decision could be made.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// The caller named a resource type the token's pool does not have (`400`).
    #[error("unknown resource type `{0}`")]
    UnknownResourceType(String),
    /// The caller named an action the token's pool does not have (`400`).
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    /// The action does not apply to these principal and resource types, or the resource's
    /// attributes do not fit the schema (`400`).
    #[error("the request does not match the schema")]
    InvalidRequest(#[source] Cause),
    /// The context does not fit the action's context type: the caller's mistake too (`400`),
    /// kept apart because it concerns one action only.
    #[error("context does not match the schema")]
    InvalidContext(#[source] Cause),
    /// The principal built from a valid token does not fit the schema: a configuration mistake
    /// (a mapped attribute the schema lacks), never the caller's (`500`).
    #[error("the principal of `{owner}` does not match the schema")]
    PrincipalSchema {
        /// The pool or namespace the principal belongs to.
        owner: String,
        /// Cedar's complaint.
        #[source]
        source: Cause,
    },
    /// One item of a list failed; the list's field and the index name it (`400`).
    #[error("{list}[{index}]")]
    Item {
        /// The request field holding the list, e.g. `items`.
        list: &'static str,
        /// Position in the list, from 0.
        index: usize,
        /// Why the item failed.
        #[source]
        source: Box<DecisionError>,
    },
}

impl DecisionError {
    /// Whether the caller's request is at fault (a `400`), rather than the configuration.
    pub fn is_caller_fault(&self) -> bool {
        match self {
            DecisionError::PrincipalSchema { .. } => false,
            DecisionError::Item { source, .. } => source.is_caller_fault(),
            _ => true,
        }
    }
}
