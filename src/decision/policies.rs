//! Stage 3a: read `policies/` (one `schema.cedarschema` and any number of `*.cedar` files),
//! give every policy a stable id, and validate the whole set strictly against the schema.
//!
//! Cedar names the policies of each parsed text `policy0, policy1, …`, so ids would collide
//! across files; every policy is re-id'd here with its `@id("…")` annotation, or
//! `<file stem>.<index>` when it has none. Problems are collected, not returned at the first
//! one, so `poolgate policy validate` and a refused start list every problem as `file:line`.
//! The route table for reverse proxies (`routes.toml`) is part of the bundle and is checked
//! against the same schema.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use crate::forward::routes::{ROUTES_FILE, RouteTable};

/// The schema file's name inside the policies folder.
pub const SCHEMA_FILE: &str = "schema.cedarschema";

/// A validated schema and policy set.
pub struct PolicyBundle {
    /// The schema every request and entity is checked against.
    pub schema: Schema,
    /// All policies, with stable ids.
    pub policies: PolicySet,
    /// The resource types' attributes, read from the schema's text for list filtering.
    pub shapes: crate::filter::shape::Shapes,
    /// SHA-256 over the names and contents of every file read: identical folders on several
    /// replicas report the same version.
    pub version: String,
}

/// Every problem found while loading the policies, one `file:line: message` per entry.
#[derive(Debug)]
pub struct PolicyLoadError {
    /// The problems, in file order.
    pub problems: Vec<String>,
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} policy problem(s):", self.problems.len())?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyLoadError {}

/// Loads and validates `dir`.
/// `queried` names the resource types whose attributes a configured query supplies.
/// The route table for forward-auth comes with it, checked against the same schema.
pub fn load(dir: &Path, queried: &BTreeSet<String>) -> Result<(PolicyBundle, RouteTable), PolicyLoadError> {
    let mut problems = Vec::new();
    let mut version = Sha256::new();
    let mut read = |path: &Path| {
        let text = std::fs::read_to_string(path)?;
        version.update(path.file_name().map(|name| name.as_encoded_bytes()).unwrap_or_default());
        version.update([0]);
        version.update(text.as_bytes());
        version.update([0]);
        Ok::<String, std::io::Error>(text)
    };
    let schema_path = dir.join(SCHEMA_FILE);
    let mut shapes = crate::filter::shape::Shapes::default();
    let schema = match read(&schema_path) {
        Ok(text) => match Schema::from_cedarschema_str(&text) {
            Ok((schema, _warnings)) => {
                shapes = crate::filter::shape::Shapes::from_cedarschema(&text);
                Some(schema)
            }
            Err(err) => {
                problems.push(located(&schema_path, &text, &err));
                None
            }
        },
        Err(err) => {
            problems.push(format!("{}: {err}", schema_path.display()));
            None
        }
    };

    let mut policies = PolicySet::new();
    let mut sources: Vec<(PolicyId, PathBuf, String)> = Vec::new();
    for path in policy_files(dir, &mut problems) {
        let text = match read(&path) {
            Ok(text) => text,
            Err(err) => {
                problems.push(format!("{}: {err}", path.display()));
                continue;
            }
        };
        let parsed = match text.parse::<PolicySet>() {
            Ok(parsed) => parsed,
            Err(errors) => {
                problems.extend(errors.iter().map(|err| located(&path, &text, err)));
                continue;
            }
        };
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for (index, policy) in parsed.policies().enumerate() {
            let id = policy.annotation("id").map(str::to_owned).unwrap_or_else(|| format!("{stem}.{index}"));
            let id = PolicyId::new(id);
            if let Err(err) = policies.add(policy.new_id(id.clone())) {
                problems.push(format!("{}: policy `{id}`: {err}", path.display()));
                continue;
            }
            sources.push((id, path.clone(), text.clone()));
        }
        if parsed.templates().next().is_some() {
            problems.push(format!("{}: templates are not supported", path.display()));
        }
    }

    if let Some(schema) = &schema {
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        for err in result.validation_errors() {
            let problem = match sources.iter().find(|(id, _, _)| id == err.policy_id()) {
                Some((_, path, text)) => located(path, text, err),
                None => format!("policy `{}`: {err}", err.policy_id()),
            };
            problems.push(problem);
        }
    }

    let routes = match &schema {
        Some(schema) => RouteTable::load(dir, schema, queried)
            .map_err(|route_problems| {
                problems.extend(route_problems.into_iter().map(|err| format!("{:#}", anyhow::Error::new(err))))
            })
            .ok(),
        None => None,
    };
    if let Ok(routes) = std::fs::read(dir.join(ROUTES_FILE)) {
        version.update(ROUTES_FILE);
        version.update([0]);
        version.update(routes);
    }
    let version = format!("{:x}", version.finalize());
    match (schema, routes) {
        (Some(schema), Some(routes)) if problems.is_empty() => {
            Ok((PolicyBundle { schema, policies, shapes, version }, routes))
        }
        _ => Err(PolicyLoadError { problems }),
    }
}

/// The `*.cedar` files of `dir`, sorted by name so ids and error order are stable.
fn policy_files(dir: &Path, problems: &mut Vec<String>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            problems.push(format!("{}: {err}", dir.display()));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cedar"))
        .collect();
    files.sort();
    if files.is_empty() {
        problems.push(format!("{}: no *.cedar policy files", dir.display()));
    }
    files
}

/// `file:line: message`, the line taken from the diagnostic's first labelled span.
fn located(path: &Path, text: &str, diagnostic: &dyn Diagnostic) -> String {
    let offset = diagnostic.labels().and_then(|mut labels| labels.next()).map(|label| label.offset());
    let line = offset.map(|offset| text.get(..offset).unwrap_or(text).matches('\n').count() + 1);
    let mut message = diagnostic.to_string();
    if let Some(help) = diagnostic.help() {
        message = format!("{message} ({help})");
    }
    match line {
        Some(line) => format!("{}:{line}: {message}", path.display()),
        None => format!("{}: {message}", path.display()),
    }
}
