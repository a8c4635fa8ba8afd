//! `[pools.<name>]`: one trusted identity pool, as written ([`PoolConfig`]) and resolved
//! ([`PoolSettings`]): where its keys come from, which app clients and token kinds it accepts,
//! its Cedar namespace and its claim mapping.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::names::{is_identifier, pascal_case};

/// The most clock skew a pool may tolerate.
const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// Which Cognito token a pool accepts, as named in the token's `token_use` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// An ID token: profile claims, groups, `aud` = the app client id.
    Id,
    /// An access token: scopes, groups, `client_id` = the app client id, no `aud`.
    Access,
}

impl TokenUse {
    /// The claim value Cognito writes for this kind of token.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::Id => "id",
            TokenUse::Access => "access",
        }
    }
}

/// One trusted identity pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The pool's name in the configuration, e.g. `merchant`.
    pub name: String,
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// Further exact `iss` values accepted for the pool, e.g. Cognito's
    /// `https://issuer.cognito-idp.<region>.amazonaws.com/<pool id>` form; none unless listed.
    pub alternative_issuers: Vec<String>,
    /// Where its keys come from.
    pub jwks: JwksSource,
    /// Whether poolgate generates and holds this pool's signing key (development only).
    pub dev_key: bool,
    /// Accepted values of `token_use`.
    pub token_use: Vec<TokenUse>,
    /// Accepted app clients.
    pub clients: ClientPolicy,
    /// Cedar namespace of the pool's entity types and actions.
    pub namespace: String,
    /// Claim holding the user's groups.
    pub groups_claim: String,
    /// Principal attribute name → claim name, ordered by attribute name.
    pub attributes: Vec<(String, String)>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Oldest sign-in (`auth_time`, else `iat`) accepted, whatever the token's `exp`.
    pub max_token_age: Option<Duration>,
    /// Whether a subject needs a `principals` row to be authorized.
    pub require_registered: bool,
}

impl PoolSettings {
    /// Whether `iss` is this pool's issuer or one of its listed alternatives.
    pub fn accepts_issuer(&self, iss: &str) -> bool {
        self.issuer == iss || self.alternative_issuers.iter().any(|alternative| alternative == iss)
    }
}

/// Where a pool's JSON Web Key Set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched over HTTP(S).
    Url(String),
    /// Read from a local file.
    File(PathBuf),
}

/// Which app clients a pool accepts (`aud` of ID tokens, `client_id` of access tokens).
#[derive(Debug, Clone)]
pub enum ClientPolicy {
    /// Only these client ids.
    Only(HashSet<String>),
    /// Any client; must be chosen explicitly with `allow_any_client = true`.
    Any,
}

/// One pool as written under `[pools.<name>]`; `PoolConfig::check` turns it into
/// [`PoolSettings`], resolving where its keys come from and which clients it accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    issuer: String,
    #[serde(default)]
    alternative_issuers: Vec<String>,
    jwks_uri: Option<String>,
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    dev_key: bool,
    token_use: Vec<TokenUse>,
    #[serde(default)]
    client_ids: Vec<String>,
    #[serde(default)]
    allow_any_client: bool,
    namespace: Option<String>,
    groups_claim: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default, with = "humantime_serde")]
    leeway: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_token_age: Option<Duration>,
    #[serde(default)]
    require_registered: bool,
}

impl PoolConfig {
    /// Resolves the pool named `name`; the error lists every problem.
    pub fn check(self, name: &str, dev_keys_dir: &Path) -> Result<PoolSettings, Vec<String>> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, why: String| problems.push(format!("pools.{name}{field}: {why}"));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            problem("", "pool names use letters, digits, `-` and `_`".into());
        }
        if self.issuer.is_empty() {
            problem(".issuer", "must not be empty".into());
        }
        let jwks = match (self.jwks_uri, self.jwks_file, self.dev_key) {
            (Some(_), Some(_), _) => {
                problem(".jwks_uri", "set either jwks_uri or jwks_file, not both".into());
                None
            }
            (Some(uri), None, false) => match http_url(&uri) {
                Ok(uri) => Some(JwksSource::Url(uri)),
                Err(why) => {
                    problem(".jwks_uri", why);
                    None
                }
            },
            (None, Some(file), false) => Some(JwksSource::File(file)),
            (None, None, false) => {
                let uri = format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/'));
                match http_url(&uri) {
                    Ok(uri) => Some(JwksSource::Url(uri)),
                    Err(why) => {
                        problem(".issuer", why);
                        None
                    }
                }
            }
            (None, None, true) => Some(JwksSource::File(dev_keys_dir.join(format!("{name}.jwks.json")))),
            (_, _, true) => {
                problem(
                    ".dev_key",
                    "a dev_key pool keeps its keys in dev.keys_dir; remove jwks_uri and jwks_file".into(),
                );
                None
            }
        };
        if self.token_use.is_empty() {
            problem(".token_use", "list at least one of `id`, `access`".into());
        }
        let clients = match (self.allow_any_client, self.client_ids.is_empty()) {
            (true, true) => Some(ClientPolicy::Any),
            (true, false) => {
                problem(".allow_any_client", "set either client_ids or allow_any_client, not both".into());
                None
            }
            (false, true) => {
                problem(".client_ids", "must not be empty unless allow_any_client = true".into());
                None
            }
            (false, false) => Some(ClientPolicy::Only(self.client_ids.into_iter().collect())),
        };
        let namespace = self.namespace.unwrap_or_else(|| pascal_case(name));
        if !is_identifier(&namespace) {
            problem(".namespace", format!("`{namespace}` is not a Cedar identifier"));
        }
        for attribute in self.attributes.keys() {
            if !is_identifier(attribute) || RESERVED_ATTRIBUTES.contains(&attribute.as_str()) {
                problem(".attributes", format!("`{attribute}` is reserved or not a Cedar identifier"));
            }
        }
        let leeway = self.leeway.unwrap_or(Duration::ZERO);
        if leeway > MAX_LEEWAY {
            problem(".leeway", "at most 60s".into());
        }
        if self.alternative_issuers.iter().any(String::is_empty) {
            problem(".alternative_issuers", "must not contain empty strings".into());
        }
        let (Some(jwks), Some(clients), true) = (jwks, clients, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(PoolSettings {
            name: name.to_owned(),
            issuer: self.issuer,
            alternative_issuers: self.alternative_issuers,
            jwks,
            dev_key: self.dev_key,
            token_use: self.token_use,
            clients,
            namespace,
            groups_claim: self.groups_claim.unwrap_or_else(|| "cognito:groups".to_owned()),
            attributes: self.attributes.into_iter().collect(),
            leeway,
            max_token_age: self.max_token_age,
            require_registered: self.require_registered,
        })
    }
}

/// Principal attributes poolgate sets itself; a mapped claim may not overwrite them.
pub const RESERVED_ATTRIBUTES: &[&str] = &["sub", "pool", "token_use", "email", "flags", "scopes"];

fn http_url(uri: &str) -> Result<String, String> {
    match reqwest::Url::parse(uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(uri.to_owned()),
        _ => Err(format!("`{uri}` is not an http(s) URL")),
    }
}
