//! `poolgate policy test`: declarative test cases for the policies, in `policies/tests/*.toml`.
//!
//! A case describes a principal directly (pool, sub, groups, claims, flags; no token needed),
//! an action and a resource, and the expected decision and, optionally, the determining
//! policies. Claims go through the pool's attribute mapping exactly as a token's would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::pool::{PoolSettings, TokenUse};
use crate::decision::Decider;
use crate::decision::request::{AccessRequest, ResourceRef};
use crate::principal::Principal;

/// The folder of test files inside the policies folder.
pub const TESTS_DIR: &str = "tests";

/// Why the test files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyTestError {
    /// The folder or a file could not be read.
    #[error("cannot read `{}`", .path.display())]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid test file.
    #[error("`{}` is not a valid test file", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// One test case: a principal described directly, a question, and the expected answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `file stem: name` once loaded; the name alone as written.
    pub name: String,
    /// Pool name.
    pub pool: String,
    /// The principal's `sub`.
    pub sub: String,
    /// The principal's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Token claims, mapped by the pool's attribute mapping.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// Permission flags.
    #[serde(default)]
    pub flags: Vec<String>,
    /// OAuth scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The kind of token.
    #[serde(default = "id_token")]
    pub token_use: TokenUse,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: ResourceRef,
    /// The request context.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// The expected decision.
    pub expect: Expected,
    /// The expected determining policies, in any order, when given.
    pub policies: Option<Vec<String>>,
}

fn id_token() -> TokenUse {
    TokenUse::Id
}

/// An expected decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// `file: name`.
    pub name: String,
    /// Whether the decision (and policies, if given) matched.
    pub passed: bool,
    /// What happened, for the table.
    pub detail: String,
}

/// Every case of every `*.toml` file in `<policies>/tests`, in file and case order, each named
/// `file stem: case name`.
pub fn cases(policies_dir: &Path) -> Result<Vec<Case>, PolicyTestError> {
    let dir = policies_dir.join(TESTS_DIR);
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PolicyTestError::Read { path, source }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(read_error(&dir))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(read_error(&path))?;
        let file: TestFile =
            toml::from_str(&text).map_err(|source| PolicyTestError::Parse { path: path.clone(), source })?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        cases.extend(file.case.into_iter().map(|case| Case { name: format!("{stem}: {}", case.name), ..case }));
    }
    Ok(cases)
}

/// Runs every case (see [`cases`]).
pub fn run(policies_dir: &Path, decider: &Decider, pools: &[PoolSettings]) -> Result<Vec<CaseResult>, PolicyTestError> {
    let results = cases(policies_dir)?
        .into_iter()
        .map(|case| {
            let (passed, detail) = run_case(&case, decider, pools).unwrap_or_else(|err| (false, err));
            CaseResult { name: case.name, passed, detail }
        })
        .collect();
    Ok(results)
}

fn run_case(case: &Case, decider: &Decider, pools: &[PoolSettings]) -> Result<(bool, String), String> {
    let pool = pools.iter().find(|pool| pool.name == case.pool).ok_or(format!("no pool named `{}`", case.pool))?;
    let principal = Principal {
        pool: pool.name.clone(),
        namespace: pool.namespace.clone(),
        sub: case.sub.clone(),
        token_use: case.token_use,
        groups: case.groups.clone(),
        email: case.claims.get("email").cloned(),
        scopes: case.scopes.clone(),
        attributes: pool
            .attributes
            .iter()
            .filter_map(|(attribute, claim)| case.claims.get(claim).map(|value| (attribute.clone(), value.clone())))
            .collect(),
        flags: Arc::from(case.flags.clone()),
    };
    let ask =
        AccessRequest { action: case.action.clone(), resource: case.resource.clone(), context: case.context.clone() };
    let decision = decider.decide(&principal, &ask).map_err(|err| format!("{:#}", anyhow::Error::new(err)))?;
    let got = if decision.allow { Expected::Allow } else { Expected::Deny };
    // Cedar reports determining policies in no promised order.
    let sorted = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids
    };
    let policies_match =
        case.policies.as_ref().is_none_or(|expected| sorted(expected) == sorted(&decision.determining_policies));
    let detail = format!(
        "{} by [{}]{}",
        if decision.allow { "allow" } else { "deny" },
        decision.determining_policies.join(", "),
        if decision.errors.is_empty() { String::new() } else { format!(" errors: {}", decision.errors.join("; ")) }
    );
    Ok((got == case.expect && policies_match, detail))
}
