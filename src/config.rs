//! Typed, layered configuration: built-in defaults, then an optional TOML file, then
//! `POOLGATE__SECTION__KEY` environment variables.
//!
//! [`load`] reads the raw layers into [`RawSettings`] and [`RawSettings::check`] turns them into
//! [`Settings`], whose values are already validated (URLs parsed, durations bounded, namespaces
//! checked). Everything downstream takes `Settings` and never re-validates.
//!
//! The embedded development pools (`config/dev.toml`) are layered in only when no configuration
//! file is given, so a production file never inherits pools that trust locally generated keys.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/defaults.toml");
const DEV_POOLS: &str = include_str!("../config/dev.toml");
const ENV_PREFIX: &str = "POOLGATE";
const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// A configuration that could not be read or is invalid; the message names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Reads the configuration layers. `file` is the `--config` argument or `POOLGATE_CONFIG`.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    use config::{Config, Environment, File, FileFormat};

    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    builder = match file {
        Some(path) => builder.add_source(File::from(path).format(FileFormat::Toml)),
        None => builder.add_source(File::from_str(DEV_POOLS, FileFormat::Toml)),
    };
    let raw: RawSettings = builder
        .add_source(Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__").try_parsing(true))
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|err| ConfigError(err.to_string()))?;
    raw.check()
}

/// The configuration as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    server: RawServer,
    database: RawDatabase,
    policies: RawPolicies,
    jwks: RawJwks,
    cache: RawCache,
    log: RawLog,
    decision_log: RawDecisionLog,
    dev: RawDev,
    #[serde(default)]
    pools: BTreeMap<String, RawPool>,
    #[serde(default)]
    resources: BTreeMap<String, crate::filter::mapping::RawResource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    bind: String,
    max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    request_timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
    max_connections: u32,
    #[serde(with = "humantime_serde")]
    acquire_timeout: Duration,
    #[serde(with = "humantime_serde")]
    query_timeout: Duration,
    #[serde(with = "humantime_serde")]
    change_poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    purge_interval: Duration,
    data_migrations: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    dir: PathBuf,
    watch: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwks {
    #[serde(with = "humantime_serde")]
    fetch_timeout: Duration,
    #[serde(with = "humantime_serde")]
    refresh_interval: Duration,
    #[serde(with = "humantime_serde")]
    unknown_kid_cooldown: Duration,
    #[serde(with = "humantime_serde")]
    max_stale: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    #[serde(with = "humantime_serde")]
    flags_ttl: Duration,
    flags_capacity: u64,
    #[serde(with = "humantime_serde")]
    tokens_ttl: Duration,
    tokens_capacity: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: LogFormat,
    filter: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecisionLog {
    enabled: bool,
    sample_rate: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDev {
    keys_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
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

/// Log output: `json` for machines, `pretty` for people at a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, coloured when the output is a terminal.
    Pretty,
}

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

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listening address of the HTTP server.
    pub bind: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take; also the limit for receiving a request's headers.
    pub request_timeout: Duration,
    /// Database connection settings.
    pub database: DatabaseSettings,
    /// Folder holding `schema.cedarschema` and `*.cedar`.
    pub policies_dir: PathBuf,
    /// Whether file changes in the folder reload the policies (`SIGHUP` always does).
    pub policies_watch: bool,
    /// Key-set fetching and caching.
    pub jwks: JwksSettings,
    /// Principal flag cache.
    pub cache: CacheSettings,
    /// Log format and filter.
    pub log: LogSettings,
    /// Per-decision log lines.
    pub decision_log: DecisionLogSettings,
    /// Where locally generated development keys live.
    pub dev_keys_dir: PathBuf,
    /// Trusted pools, ordered by name.
    pub pools: Vec<PoolSettings>,
    /// Resource type name → parameterized query returning its attributes (`$1` = the id),
    /// for forward-auth, where the request carries no attributes; generated from the mapping
    /// for types declared with `table`.
    pub resource_queries: BTreeMap<String, String>,
    /// Resource type name → its table, id and attribute columns (`[resources.<Type>]` with
    /// `table`), for list filtering.
    pub resource_mappings: BTreeMap<String, crate::filter::ResourceMapping>,
}

/// Database connection settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// How long a request waits for a connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    /// Interval of the SQLite change poll.
    pub change_poll_interval: Duration,
    /// Interval of the purge of expired revocations.
    pub purge_interval: Duration,
    /// The operator's own data migrations, applied by `poolgate migrate` after the schema.
    pub data_migrations: Option<PathBuf>,
}

/// Key-set fetching and caching.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// Timeout of one JWKS fetch.
    pub fetch_timeout: Duration,
    /// Interval of the background refresh.
    pub refresh_interval: Duration,
    /// Minimum time between two fetches caused by unknown `kid`s in one pool.
    pub unknown_kid_cooldown: Duration,
    /// How long the last good key set keeps serving while the endpoint fails.
    pub max_stale: Duration,
}

/// Principal flag cache.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// How long flags loaded from the database are reused.
    pub flags_ttl: Duration,
    /// `database.query_timeout`: the longest one load from the database may take, waiting for a
    /// connection included, before the database counts as unavailable. It lives here because
    /// every reader of the database behind a cache is built from these settings.
    pub query_timeout: Duration,
    /// How many principals the cache holds at most.
    pub flags_capacity: u64,
    /// How long a verified token is reused at most (its `exp` is checked on every use anyway).
    pub tokens_ttl: Duration,
    /// How many verified tokens the cache holds at most.
    pub tokens_capacity: u64,
}

/// Log format and filter.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directives; `RUST_LOG` wins when set.
    pub filter: String,
}

/// Per-decision log lines.
#[derive(Debug, Clone)]
pub struct DecisionLogSettings {
    /// Whether decisions are logged at all.
    pub enabled: bool,
    /// Fraction of decisions logged, in `0.0..=1.0`.
    pub sample_rate: f64,
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

impl RawSettings {
    /// Validates every value and converts it to its typed form.
    pub fn check(self) -> Result<Settings, ConfigError> {
        let bind = self
            .server
            .bind
            .parse::<SocketAddr>()
            .map_err(|err| ConfigError(format!("server.bind: `{}` is not an address: {err}", self.server.bind)))?;
        let url = &self.database.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError(format!(
                "database.url: `{}` must start with `sqlite:` or `postgres://`",
                redact_url(url)
            )));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError("database.max_connections: must be at least 1".into()));
        }
        if self.jwks.max_stale < self.jwks.refresh_interval {
            return Err(ConfigError(
                "jwks.max_stale: must be at least jwks.refresh_interval, or keys go stale between refreshes".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.decision_log.sample_rate) {
            return Err(ConfigError("decision_log.sample_rate: must be between 0.0 and 1.0".into()));
        }
        let intervals = [
            ("database.query_timeout", self.database.query_timeout),
            ("database.change_poll_interval", self.database.change_poll_interval),
            ("database.purge_interval", self.database.purge_interval),
            ("jwks.refresh_interval", self.jwks.refresh_interval),
            ("jwks.unknown_kid_cooldown", self.jwks.unknown_kid_cooldown),
            ("jwks.fetch_timeout", self.jwks.fetch_timeout),
            ("server.request_timeout", self.server.request_timeout),
        ];
        if let Some((key, _)) = intervals.iter().find(|(_, interval)| interval.is_zero()) {
            return Err(ConfigError(format!("{key}: must be longer than zero")));
        }
        if self.pools.is_empty() {
            return Err(ConfigError("pools: at least one pool must be configured".into()));
        }
        let mut resource_queries = BTreeMap::new();
        let mut resource_mappings = BTreeMap::new();
        for (type_name, resource) in self.resources {
            if !is_identifier(&type_name) {
                return Err(ConfigError(format!("resources.{type_name}: not a Cedar identifier")));
            }
            let (query, mapping) = resource.check(&type_name).map_err(ConfigError)?;
            resource_queries.insert(type_name.clone(), query);
            if let Some(mapping) = mapping {
                resource_mappings.insert(type_name, mapping);
            }
        }
        let mut pools = Vec::with_capacity(self.pools.len());
        let mut issuers = HashSet::new();
        let mut namespaces = HashSet::new();
        for (name, raw) in self.pools {
            let pool = raw.check(&name, &self.dev.keys_dir)?;
            for issuer in std::iter::once(&pool.issuer).chain(&pool.alternative_issuers) {
                if !issuers.insert(issuer.clone()) {
                    return Err(ConfigError(format!("pools.{name}.issuer: `{issuer}` is used twice")));
                }
            }
            if !namespaces.insert(pool.namespace.clone()) {
                return Err(ConfigError(format!(
                    "pools.{name}.namespace: `{}` is used by another pool",
                    pool.namespace
                )));
            }
            pools.push(pool);
        }
        Ok(Settings {
            bind,
            max_body_bytes: self.server.max_body_bytes,
            request_timeout: self.server.request_timeout,
            database: DatabaseSettings {
                url: self.database.url,
                max_connections: self.database.max_connections,
                acquire_timeout: self.database.acquire_timeout,
                change_poll_interval: self.database.change_poll_interval,
                purge_interval: self.database.purge_interval,
                data_migrations: self.database.data_migrations,
            },
            policies_dir: self.policies.dir,
            policies_watch: self.policies.watch,
            jwks: JwksSettings {
                fetch_timeout: self.jwks.fetch_timeout,
                refresh_interval: self.jwks.refresh_interval,
                unknown_kid_cooldown: self.jwks.unknown_kid_cooldown,
                max_stale: self.jwks.max_stale,
            },
            cache: CacheSettings {
                flags_ttl: self.cache.flags_ttl,
                query_timeout: self.database.query_timeout,
                flags_capacity: self.cache.flags_capacity,
                tokens_ttl: self.cache.tokens_ttl,
                tokens_capacity: self.cache.tokens_capacity,
            },
            log: LogSettings { format: self.log.format, filter: self.log.filter },
            decision_log: DecisionLogSettings {
                enabled: self.decision_log.enabled,
                sample_rate: self.decision_log.sample_rate,
            },
            dev_keys_dir: self.dev.keys_dir,
            pools,
            resource_queries,
            resource_mappings,
        })
    }
}

impl RawPool {
    fn check(self, name: &str, dev_keys_dir: &Path) -> Result<PoolSettings, ConfigError> {
        let key = |field: &str| format!("pools.{name}.{field}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError(format!("pools.{name}: pool names use letters, digits, `-` and `_`")));
        }
        if self.issuer.is_empty() {
            return Err(ConfigError(format!("{}: must not be empty", key("issuer"))));
        }
        let jwks = match (self.jwks_uri, self.jwks_file, self.dev_key) {
            (Some(_), Some(_), _) => {
                return Err(ConfigError(format!("{}: set either jwks_uri or jwks_file, not both", key("jwks_uri"))));
            }
            (Some(uri), None, false) => JwksSource::Url(check_http_url(&uri, &key("jwks_uri"))?),
            (None, Some(file), false) => JwksSource::File(file),
            (None, None, false) => {
                let uri = format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/'));
                JwksSource::Url(check_http_url(&uri, &key("issuer"))?)
            }
            (None, None, true) => JwksSource::File(dev_keys_dir.join(format!("{name}.jwks.json"))),
            (_, _, true) => {
                return Err(ConfigError(format!(
                    "{}: a dev_key pool keeps its keys in dev.keys_dir; remove jwks_uri and jwks_file",
                    key("dev_key")
                )));
            }
        };
        if self.token_use.is_empty() {
            return Err(ConfigError(format!("{}: list at least one of `id`, `access`", key("token_use"))));
        }
        let clients = match (self.allow_any_client, self.client_ids.is_empty()) {
            (true, true) => ClientPolicy::Any,
            (true, false) => {
                return Err(ConfigError(format!(
                    "{}: set either client_ids or allow_any_client, not both",
                    key("allow_any_client")
                )));
            }
            (false, true) => {
                return Err(ConfigError(format!(
                    "{}: must not be empty unless allow_any_client = true",
                    key("client_ids")
                )));
            }
            (false, false) => ClientPolicy::Only(self.client_ids.into_iter().collect()),
        };
        let namespace = self.namespace.unwrap_or_else(|| pascal_case(name));
        if !is_identifier(&namespace) {
            return Err(ConfigError(format!("{}: `{namespace}` is not a Cedar identifier", key("namespace"))));
        }
        for attribute in self.attributes.keys() {
            if !is_identifier(attribute) || RESERVED_ATTRIBUTES.contains(&attribute.as_str()) {
                return Err(ConfigError(format!(
                    "{}: `{attribute}` is reserved or not a Cedar identifier",
                    key("attributes")
                )));
            }
        }
        let leeway = self.leeway.unwrap_or(Duration::ZERO);
        if leeway > MAX_LEEWAY {
            return Err(ConfigError(format!("{}: at most 60s", key("leeway"))));
        }
        if self.alternative_issuers.iter().any(String::is_empty) {
            return Err(ConfigError(format!("{}: must not contain empty strings", key("alternative_issuers"))));
        }
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

fn check_http_url(uri: &str, key: &str) -> Result<String, ConfigError> {
    match reqwest::Url::parse(uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(uri.to_owned()),
        _ => Err(ConfigError(format!("{key}: `{uri}` is not an http(s) URL"))),
    }
}

/// `merchant-staff` → `MerchantStaff`.
fn pascal_case(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Whether `s` is a Cedar identifier (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Hides the password of a database URL in messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_become_pascal_case_namespaces() {
        assert_eq!(pascal_case("merchant"), "Merchant");
        assert_eq!(pascal_case("merchant-staff"), "MerchantStaff");
        assert_eq!(pascal_case("wallet_users"), "WalletUsers");
    }

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://poolgate.db"), "sqlite://poolgate.db");
    }
}
