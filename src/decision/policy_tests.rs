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

use crate::config::{PoolSettings, TokenUse};
use crate::decision::{AccessRequest, Decider, ResourceRef};
use crate::principal::Principal;

/// The folder of test files inside the policies folder.
pub const TESTS_DIR: &str = "tests";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    pool: String,
    sub: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    claims: BTreeMap<String, String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default = "id_token")]
    token_use: TokenUse,
    action: String,
    resource: ResourceRef,
    #[serde(default)]
    context: Map<String, Value>,
    expect: Expected,
    policies: Option<Vec<String>>,
}

fn id_token() -> TokenUse {
    TokenUse::Id
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expected {
    Allow,
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

/// Runs every case of every `*.toml` file in `<policies>/tests`, in file and case order.
pub fn run(policies_dir: &Path, decider: &Decider, pools: &[PoolSettings]) -> Result<Vec<CaseResult>, String> {
    let dir = policies_dir.join(TESTS_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|err| format!("{}: {err}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    let mut results = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|err| format!("{}: {err}", path.display()))?;
        let file: TestFile = toml::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for case in file.case {
            let name = format!("{stem}: {}", case.name);
            let (passed, detail) = match run_case(&case, decider, pools) {
                Ok(outcome) => outcome,
                Err(err) => (false, err),
            };
            results.push(CaseResult { name, passed, detail });
        }
    }
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
    let decision = decider.decide(&principal, &ask).map_err(|err| err.to_string())?;
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
