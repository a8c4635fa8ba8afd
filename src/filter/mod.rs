//! List filtering: "which resources of this type may this principal do this action on?",
//! answered from the same Cedar policies as `/v1/check`, as a condition tree and as SQL.
//!
//! # How
//!
//! 1. [`plan`]: Cedar's typed partial evaluation (`PolicySet::tpe`, cedar-policy's experimental
//!    `tpe` feature, pinned to `=4.14.1`) runs with the principal, action and context known and
//!    the resource unknown except for its type. Principal-side expressions fold to constants
//!    (`principal.flags.contains("x")`, `principal in Group::"g"`, `principal.org_id`).
//! 2. [`translate`](translate) walks each residual policy's syntax tree (`Policy::to_pst`) into
//!    three conditions over a row (true / false / errors) and combines them with poolgate's
//!    rule: a row is allowed iff some permit is true, no forbid is true, **no policy errors**
//!    (a permit's error denies too, exactly as [`Decider::decide`](crate::decision::Decider::decide)
//!    does) and the row is a valid entity (every required attribute present).
//! 3. [`condition`] is the documented JSON tree; [`sql`] writes it for PostgreSQL or SQLite from
//!    the [`mapping`] in the configuration, with bound parameters only.
//!
//! Everything that touches the experimental API lives in [`plan`] and [`translate`].
//!
//! [`search`](mod@search) runs the same question in poolgate's own database, a page of ids at a time.
//!
//! # Reference
//!
//! What is supported, what is refused (with [`FilterError::Unsupported`], naming the policy and
//! the construct, never an approximation: a filter is never wider than the check), what a NULL
//! column means for each operator, how strings compare, the exact limits, and an example of
//! the SQL a backend runs: `docs/filtering.md`, the one reference. The condition tree's format
//! is also in [`condition`], next to the type that writes it.

pub mod condition;
pub mod mapping;
pub mod plan;
pub mod search;
pub mod shape;
pub mod sql;
mod translate;

pub use condition::{Comparison, Condition, Literal};
pub use mapping::ResourceMapping;
pub use plan::{FilterQuestion, Plan, Planned, plan, plan_for_entity};
pub use search::{Cursor, PageRequest, SearchDb, SearchPage, search, search_all};
pub use sql::{Dialect, SqlError, SqlParam, SqlWhere, to_sql};

use crate::decision::DecisionError;

/// Why no filter could be built.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The action, resource type or context does not fit the schema: the caller's mistake
    /// (`400`).
    #[error("{0}")]
    InvalidRequest(String),
    /// A residual policy uses a construct without an exact translation (`422`
    /// `unsupported_policy`).
    #[error("policy `{policy_id}` cannot be translated: {construct} is not supported")]
    Unsupported {
        /// The policy's id.
        policy_id: String,
        /// The construct, in words.
        construct: String,
    },
    /// The mapping in the configuration does not fit the schema or the policies: an operator's
    /// mistake (`500`).
    #[error("resource mapping: {message}")]
    Mapping {
        /// What is wrong, naming the attribute.
        message: String,
    },
    /// The principal could not be built.
    #[error(transparent)]
    Principal(#[from] DecisionError),
    /// The resource type has no table mapping, so poolgate cannot search it (`400`).
    #[error("`{resource_type}` has no table mapping (`resources.{resource_type}.table`), so it cannot be searched")]
    NotMapped {
        /// The resource type, as the caller named it.
        resource_type: String,
    },
    /// The search's page is not valid: a limit out of range or a cursor poolgate did not
    /// write (`400`).
    #[error("{0}")]
    InvalidPage(String),
    /// The condition cannot be written for the database's dialect (`500`): a set attribute
    /// mapped on SQLite.
    #[error("the filter cannot be written as SQL")]
    Sql(#[from] SqlError),
    /// The search query failed or took longer than `database.query_timeout` (`503`).
    #[error("cannot search the resource table")]
    DatabaseUnavailable(#[source] sqlx::Error),
    /// Cedar's partial evaluation failed.
    #[error("{message} failed")]
    Engine {
        /// The step that failed.
        message: String,
        /// Cedar's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
