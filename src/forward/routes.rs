//! The route table in `policies/routes.toml`: an original request (method + path) becomes the
//! Cedar action and resource to decide on. It is loaded and reloaded with the policies.
//!
//! Templates use `matchit` syntax (`/stock/{id}`, `/files/{*path}`). Names are resolved in the
//! token's pool namespace, like `/v1/check`. A path that is not canonical (`.`/`..` segments,
//! `//`, encoded `/`, `\` or `.`) is refused rather than matched, so the proxy's upstream can
//! never reach a resource by a spelling the table did not mean. No match means deny.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use cedar_policy::{EntityTypeName, Schema};
use serde::Deserialize;

use crate::config::names::is_identifier;

/// The route file's name inside the policies folder.
pub const ROUTES_FILE: &str = "routes.toml";

/// Method key that matches any method.
const ANY_METHOD: &str = "*";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(default)]
    route: Vec<RouteSpec>,
}

/// One route as written in `routes.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// HTTP methods, upper case; `*` for any.
    pub methods: Vec<String>,
    /// Path template, e.g. `/stock/{id}`.
    pub path: String,
    /// Cedar action name; required unless `public`.
    #[serde(default)]
    pub action: Option<String>,
    /// Cedar resource type name; required unless `public`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Path parameter holding the resource id; without one the id is the request path.
    #[serde(default)]
    pub id: Option<String>,
    /// Served without any token.
    #[serde(default)]
    pub public: bool,
}

/// What a request maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// No token needed.
    Public,
    /// Decide `action` on the resource (`resource_type`, `resource_id`).
    Protected {
        /// Cedar action name.
        action: String,
        /// Cedar resource type name.
        resource_type: String,
        /// Resource id taken from the path.
        resource_id: String,
    },
}

/// Why a request has no target.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// The path is not in canonical form.
    #[error("the path is not canonical")]
    NotCanonical,
    /// No route matches.
    #[error("no route matches `{method} {path}`")]
    NoRoute {
        /// Method asked for.
        method: String,
        /// Path asked for.
        path: String,
    },
}

/// A problem with `routes.toml`.
#[derive(Debug, thiserror::Error)]
pub enum RouteLoadError {
    /// The file could not be read.
    #[error("{}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// One route is invalid.
    #[error("{}: route[{index}] `{route}`", .path.display())]
    Route {
        /// The file.
        path: PathBuf,
        /// The route's position, from 0.
        index: usize,
        /// The route's path template.
        route: String,
        /// What is wrong with it.
        #[source]
        source: RouteProblem,
    },
}

/// What is wrong with one route.
#[derive(Debug, thiserror::Error)]
pub enum RouteProblem {
    /// The template is relative.
    #[error("the path must start with `/`")]
    RelativePath,
    /// No method is listed.
    #[error("list at least one method, or `*`")]
    NoMethod,
    /// A protected route lacks its action or resource.
    #[error("a protected route needs `action` and `resource`")]
    NoTarget,
    /// No namespace has this action on this resource type.
    #[error("no namespace of the schema has resource `{resource}` with action `{action}`")]
    NotInSchema {
        /// The action.
        action: String,
        /// The resource type.
        resource: String,
    },
    /// The resource type has required attributes and no query loads them.
    #[error("resource `{resource}` has required attributes; configure `resources.{resource}.query` to load them")]
    AttributesNeeded {
        /// The resource type.
        resource: String,
    },
    /// `id` names a parameter the template does not have.
    #[error("the path has no parameter `{param}`")]
    NoSuchParameter {
        /// The parameter.
        param: String,
    },
    /// The template clashes with another or is not a valid template.
    #[error("{method}")]
    Template {
        /// The method being registered.
        method: String,
        /// matchit's complaint.
        #[source]
        source: matchit::InsertError,
    },
}

/// The compiled route table.
#[derive(Default)]
pub struct RouteTable {
    routers: HashMap<String, matchit::Router<usize>>,
    specs: Vec<RouteSpec>,
}

impl RouteTable {
    /// Reads `routes.toml` from `dir` (absent means an empty table) and checks every route
    /// against the schema; the error lists every problem.
    pub fn load(dir: &Path, schema: &Schema, queried: &BTreeSet<String>) -> Result<Self, Vec<RouteLoadError>> {
        let path = dir.join(ROUTES_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(vec![RouteLoadError::Read { path, source }]),
        };
        let file: RouteFile = match toml::from_str(&text) {
            Ok(file) => file,
            Err(source) => return Err(vec![RouteLoadError::Parse { path, source }]),
        };
        let mut table = Self::default();
        let mut problems = Vec::new();
        for (index, spec) in file.route.into_iter().enumerate() {
            let route = spec.path.clone();
            if let Err(source) = table.add(spec, schema, queried) {
                problems.push(RouteLoadError::Route { path: path.clone(), index, route, source });
            }
        }
        if problems.is_empty() { Ok(table) } else { Err(problems) }
    }

    fn add(&mut self, spec: RouteSpec, schema: &Schema, queried: &BTreeSet<String>) -> Result<(), RouteProblem> {
        if !spec.path.starts_with('/') {
            return Err(RouteProblem::RelativePath);
        }
        if spec.methods.is_empty() {
            return Err(RouteProblem::NoMethod);
        }
        if !spec.public {
            let (Some(action), Some(resource)) = (&spec.action, &spec.resource) else {
                return Err(RouteProblem::NoTarget);
            };
            if !is_identifier(resource) || !applies_somewhere(schema, action, resource) {
                return Err(RouteProblem::NotInSchema { action: action.clone(), resource: resource.clone() });
            }
            if !queried.contains(resource) && !needs_no_attributes(schema, resource) {
                return Err(RouteProblem::AttributesNeeded { resource: resource.clone() });
            }
            if let Some(param) = &spec.id
                && !spec.path.contains(&format!("{{{param}}}"))
                && !spec.path.contains(&format!("{{*{param}}}"))
            {
                return Err(RouteProblem::NoSuchParameter { param: param.clone() });
            }
        }
        let index = self.specs.len();
        for method in &spec.methods {
            let method = method.to_ascii_uppercase();
            self.routers
                .entry(method.clone())
                .or_default()
                .insert(spec.path.clone(), index)
                .map_err(|source| RouteProblem::Template { method, source })?;
        }
        self.specs.push(spec);
        Ok(())
    }

    /// Finds the target of `method path` (the path without its query string). The resource id
    /// is percent-decoded, so `/accounts/%61` names the resource `a`, as the upstream sees it.
    pub fn resolve(&self, method: &str, path: &str) -> Result<Target, RouteError> {
        if !is_canonical(path) {
            return Err(RouteError::NotCanonical);
        }
        let method = method.to_ascii_uppercase();
        let found = [method.as_str(), ANY_METHOD]
            .iter()
            .filter_map(|key| self.routers.get(*key))
            .find_map(|router| router.at(path).ok());
        let Some(found) = found else {
            return Err(RouteError::NoRoute { method, path: path.to_owned() });
        };
        let Some(spec) = self.specs.get(*found.value) else {
            return Err(RouteError::NoRoute { method, path: path.to_owned() });
        };
        if spec.public {
            return Ok(Target::Public);
        }
        let raw_id = found.params.get(spec.id.as_deref().unwrap_or("id")).unwrap_or(path);
        let resource_id = percent_encoding::percent_decode_str(raw_id)
            .decode_utf8()
            .map_err(|_| RouteError::NotCanonical)?
            .into_owned();
        Ok(Target::Protected {
            action: spec.action.clone().unwrap_or_default(),
            resource_type: spec.resource.clone().unwrap_or_default(),
            resource_id,
        })
    }
}

/// Whether some namespace declares `resource` and lets `action` apply to it.
fn applies_somewhere(schema: &Schema, action: &str, resource: &str) -> bool {
    schema.entity_types().filter(|ty| ty.basename() == resource).any(|ty: &EntityTypeName| {
        schema.principals().any(|principal| {
            schema.actions_for_principal_and_resource(principal, ty).any(|uid| uid.id().unescaped() == action)
        })
    })
}

/// Whether an entity of type `resource` (in some namespace) is valid with no attributes.
fn needs_no_attributes(schema: &Schema, resource: &str) -> bool {
    schema.entity_types().filter(|ty| ty.basename() == resource).any(|ty| {
        let entity =
            serde_json::json!({ "uid": { "type": ty.to_string(), "id": "probe" }, "attrs": {}, "parents": [] });
        cedar_policy::Entity::from_json_value(entity, Some(schema)).is_ok()
    })
}

/// Rejects spellings a server may resolve differently from the table: dot segments, empty
/// segments, backslashes and percent-encoded separators or dots.
fn is_canonical(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.starts_with('/')
        && !path.contains("//")
        && !path.contains('\\')
        && !["%2f", "%5c", "%2e", "%00"].iter().any(|encoded| lower.contains(encoded))
        && !path.split('/').any(|segment| segment == "." || segment == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let (schema, _) = Schema::from_cedarschema_str(
            "namespace Shop { entity User; entity Stock; action read, update appliesTo { principal: User, resource: Stock }; }",
        )
        .unwrap();
        let mut table = RouteTable::default();
        let spec = |methods: &[&str], path: &str, action: Option<&str>, public: bool| RouteSpec {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path.into(),
            action: action.map(str::to_owned),
            resource: action.map(|_| "Stock".to_owned()),
            id: None,
            public,
        };
        for spec in [
            spec(&["GET"], "/stock/{id}", Some("read"), false),
            spec(&["patch"], "/stock/{id}", Some("update"), false),
            spec(&["*"], "/health", None, true),
        ] {
            assert!(table.add(spec, &schema, &BTreeSet::new()).is_ok());
        }
        assert!(table.add(spec(&["GET"], "/x", Some("fly"), false), &schema, &BTreeSet::new()).is_err());
        table
    }

    #[test]
    fn method_and_template_pick_the_action_and_the_id() {
        let table = table();
        let update =
            Target::Protected { action: "update".into(), resource_type: "Stock".into(), resource_id: "sku-1".into() };
        assert_eq!(table.resolve("PATCH", "/stock/sku-1"), Ok(update));
        assert!(
            matches!(table.resolve("get", "/stock/sku-1"), Ok(Target::Protected { action, .. }) if action == "read")
        );
        assert_eq!(table.resolve("POST", "/health"), Ok(Target::Public));
        assert!(matches!(table.resolve("DELETE", "/stock/sku-1"), Err(RouteError::NoRoute { .. })));
        assert!(matches!(table.resolve("GET", "/stock"), Err(RouteError::NoRoute { .. })));
        let decoded = table.resolve("PATCH", "/stock/sku%2D1%20a");
        assert!(matches!(decoded, Ok(Target::Protected { resource_id, .. }) if resource_id == "sku-1 a"));
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        let table = table();
        for path in ["/stock/../health", "/stock/./x", "//health", "/stock/%2e%2e/x", "/stock/a%2Fb", "/a\\b", "health"]
        {
            assert_eq!(table.resolve("GET", path), Err(RouteError::NotCanonical), "{path}");
        }
    }
}
