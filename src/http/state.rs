//! The state every handler reads, built once by `startup.rs` and shared by all workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::decision::reload::Policies;
use crate::decision_log::DecisionLog;
use crate::filter::{ResourceMapping, SearchDb};
use crate::forward::resources::ResourceStore;
use crate::metrics::Metrics;
use crate::principal::store::PrincipalStore;
use crate::token::Verifier;

/// Everything a handler needs.
pub struct AppState {
    /// Stage 1.
    pub verifier: Verifier,
    /// Stage 2.
    pub principals: Arc<PrincipalStore>,
    /// Stage 3: the policy set in force.
    pub policies: Arc<Policies>,
    /// Resource attributes from SQL, for forward-auth.
    pub resources: Arc<ResourceStore>,
    /// The table mappings of `[resources.<Type>]`, by unqualified type name, for list
    /// filtering.
    pub mappings: Arc<BTreeMap<String, ResourceMapping>>,
    /// poolgate's database, where `/v1/resources/search` runs the filter.
    pub search_db: SearchDb,
    /// One record per answer.
    pub decision_log: Arc<DecisionLog>,
    /// Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered `503 timeout`.
    pub request_timeout: Duration,
    /// The AuthZEN endpoints' configuration and resource search.
    pub authzen: Arc<crate::authzen::Authzen>,
}
