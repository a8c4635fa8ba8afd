//! Typed, layered configuration: built-in defaults (`config/defaults.toml`), then an optional
//! TOML file, then `POOLGATE__SECTION__KEY` environment variables.
//!
//! Each section deserializes straight into its typed struct (durations through
//! humantime-serde, unknown keys refused); then one validation pass over the typed settings
//! reports every problem at once, each as `key: why`. Pools are the one section with a
//! conversion of its own (`PoolConfig::check`): where its keys come from and which clients it
//! accepts are decided there. Everything downstream takes [`Settings`] and never re-validates.
//!
//! The embedded development pools (`config/dev.toml`) are layered in only when no configuration
//! file is given, so a production file never inherits pools that trust locally generated keys.

pub mod names;
pub mod pool;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::authzen::settings::{AuthzenSettings, RawAuthzen};
use crate::config::names::is_identifier;
use crate::config::pool::{PoolConfig, PoolSettings};
use crate::filter::mapping::{RawResource, ResourceMapping};

const DEFAULTS: &str = include_str!("../../config/defaults.toml");
const DEV_POOLS: &str = include_str!("../../config/dev.toml");
const ENV_PREFIX: &str = "POOLGATE";

/// A configuration that could not be read, or every problem found in it.
#[derive(Debug)]
pub struct ConfigError {
    /// Where the configuration came from: the file, or the built-in defaults.
    pub source: String,
    /// Each problem as `key: why`.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({}):", self.source)?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads the configuration layers. `file` is the `--config` argument or `POOLGATE_CONFIG`.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    use config::{Config, Environment, File, FileFormat};

    let source = match file {
        Some(path) => path.display().to_string(),
        None => "built-in defaults and development pools".to_owned(),
    };
    let error = |problems: Vec<String>| ConfigError { source: source.clone(), problems };
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    builder = match file {
        Some(path) => builder.add_source(File::from(path).format(FileFormat::Toml)),
        None => builder.add_source(File::from_str(DEV_POOLS, FileFormat::Toml)),
    };
    let written: Written = builder
        .add_source(Environment::with_prefix(ENV_PREFIX).prefix_separator("__").separator("__").try_parsing(true))
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|err| error(vec![err.to_string()]))?;
    written.check().map_err(error)
}

/// The configuration as written: every section typed, pools not yet resolved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    server: ServerSettings,
    database: DatabaseSettings,
    policies: PolicySettings,
    jwks: JwksSettings,
    cache: CacheSettings,
    log: LogSettings,
    decision_log: DecisionLogSettings,
    dev: DevSettings,
    #[serde(default)]
    pools: BTreeMap<String, PoolConfig>,
    #[serde(default)]
    resources: BTreeMap<String, RawResource>,
    authzen: RawAuthzen,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[server]`.
    pub server: ServerSettings,
    /// `[database]`.
    pub database: DatabaseSettings,
    /// `[policies]`.
    pub policies: PolicySettings,
    /// `[jwks]`: key-set fetching and caching.
    pub jwks: JwksSettings,
    /// `[cache]`.
    pub cache: CacheSettings,
    /// `[log]`: the diagnostic log.
    pub log: LogSettings,
    /// `[decision_log]`.
    pub decision_log: DecisionLogSettings,
    /// `[dev]`.
    pub dev: DevSettings,
    /// `[pools.<name>]`: the trusted pools, ordered by name.
    pub pools: Vec<PoolSettings>,
    /// `[resources.<Type>]`: resource attributes from SQL, for forward-auth and list filtering.
    pub resources: BTreeMap<String, ResourceSettings>,
    /// `[authzen]`: the AuthZEN endpoints' subject mode, API keys and type mapping.
    pub authzen: AuthzenSettings,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listening address of the HTTP server.
    pub bind: SocketAddr,
    /// Listening address of the gRPC server (Envoy's ext_authz, gRPC health); `""`: none.
    #[serde(default, deserialize_with = "optional_address")]
    pub grpc_bind: Option<SocketAddr>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take; also the limit for receiving a request's headers.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// How long a request waits for a connection before the database counts as unavailable.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// The longest one lookup may take, waiting for a connection included.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Interval of the SQLite change poll.
    #[serde(with = "humantime_serde")]
    pub change_poll_interval: Duration,
    /// Interval of the purge of expired revocations.
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
    /// The operator's own data migrations, applied by `poolgate migrate` after the schema.
    pub data_migrations: Option<PathBuf>,
}

/// `[policies]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Folder holding `schema.cedarschema`, `*.cedar` and `routes.toml`.
    pub dir: PathBuf,
    /// Whether file changes in the folder reload the policies (`SIGHUP` always does).
    pub watch: bool,
}

/// `[jwks]`: key-set fetching and caching.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksSettings {
    /// Timeout of one JWKS fetch.
    #[serde(with = "humantime_serde")]
    pub fetch_timeout: Duration,
    /// Interval of the background refresh.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Minimum time between two fetches caused by unknown `kid`s in one pool.
    #[serde(with = "humantime_serde")]
    pub unknown_kid_cooldown: Duration,
    /// How long the last good key set keeps serving while the endpoint fails.
    #[serde(with = "humantime_serde")]
    pub max_stale: Duration,
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// How long principal records and resource attributes loaded from the database are reused.
    #[serde(with = "humantime_serde")]
    pub flags_ttl: Duration,
    /// How many principals the cache holds at most.
    pub flags_capacity: u64,
    /// How long a verified token is reused at most (its `exp` is checked on every use anyway).
    #[serde(with = "humantime_serde")]
    pub tokens_ttl: Duration,
    /// How many verified tokens the cache holds at most.
    pub tokens_capacity: u64,
}

/// `[log]`: the diagnostic log on stderr.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directives; `RUST_LOG` wins when set.
    pub filter: String,
}

/// `[decision_log]`: independent of `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogSettings {
    /// Whether decisions are logged at all.
    pub enabled: bool,
    /// Where records go.
    pub sink: DecisionLogSink,
    /// Fraction of decisions logged, in `0.0..=1.0`.
    pub sample_rate: f64,
    /// Records waiting for the writer at most; past it they are dropped and counted.
    pub queue_capacity: usize,
}

/// Where decision records go: `stdout`, `stderr`, or a file path (appended to).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum DecisionLogSink {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, created if missing.
    File(PathBuf),
}

impl From<String> for DecisionLogSink {
    fn from(sink: String) -> Self {
        match sink.as_str() {
            "stdout" => DecisionLogSink::Stdout,
            "stderr" => DecisionLogSink::Stderr,
            _ => DecisionLogSink::File(PathBuf::from(sink)),
        }
    }
}

/// `[dev]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSettings {
    /// Where locally generated development keys live.
    pub keys_dir: PathBuf,
}

/// `[resources.<Type>]`, resolved: how forward-auth loads a resource's attributes, and how list
/// filtering finds its rows (see `filter::mapping`).
#[derive(Debug, Clone)]
pub struct ResourceSettings {
    /// Parameterized query returning the resource's attributes, `$1` being its id: as written,
    /// or generated from the table mapping.
    pub query: String,
    /// The table, id and attribute columns, when declared with `table`.
    pub mapping: Option<ResourceMapping>,
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

impl Written {
    /// Validates every value; the error lists every problem.
    fn check(self) -> Result<Settings, Vec<String>> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, why: String| problems.push(format!("{key}: {why}"));
        let url = &self.database.url;
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            problem("database.url", format!("`{}` must start with `sqlite:` or `postgres://`", redact_url(url)));
        }
        if self.database.max_connections == 0 {
            problem("database.max_connections", "must be at least 1".into());
        }
        if self.jwks.max_stale < self.jwks.refresh_interval {
            problem(
                "jwks.max_stale",
                "must be at least jwks.refresh_interval, or keys go stale between refreshes".into(),
            );
        }
        if !(0.0..=1.0).contains(&self.decision_log.sample_rate) {
            problem("decision_log.sample_rate", "must be between 0.0 and 1.0".into());
        }
        if self.decision_log.queue_capacity == 0 {
            problem("decision_log.queue_capacity", "must be at least 1".into());
        }
        if self.decision_log.sink == DecisionLogSink::File(PathBuf::new()) {
            problem("decision_log.sink", "`stdout`, `stderr` or a file path".into());
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
        for (key, _) in intervals.iter().filter(|(_, interval)| interval.is_zero()) {
            problem(key, "must be longer than zero".into());
        }
        if self.pools.is_empty() {
            problem("pools", "at least one pool must be configured".into());
        }
        let mut pools = Vec::with_capacity(self.pools.len());
        let mut issuers = HashSet::new();
        let mut namespaces = HashSet::new();
        for (name, written) in self.pools {
            let pool = match written.check(&name, &self.dev.keys_dir) {
                Ok(pool) => pool,
                Err(pool_problems) => {
                    problems.extend(pool_problems);
                    continue;
                }
            };
            for issuer in std::iter::once(&pool.issuer).chain(&pool.alternative_issuers) {
                if !issuers.insert(issuer.clone()) {
                    problems.push(format!("pools.{name}.issuer: `{issuer}` is used twice"));
                }
            }
            if !namespaces.insert(pool.namespace.clone()) {
                problems.push(format!("pools.{name}.namespace: `{}` is used by another pool", pool.namespace));
            }
            pools.push(pool);
        }
        let mut resources = BTreeMap::new();
        for (type_name, resource) in self.resources {
            if !is_identifier(&type_name) {
                problems.push(format!("resources.{type_name}: not a Cedar identifier"));
                continue;
            }
            match resource.check(&type_name) {
                Ok((query, mapping)) => {
                    resources.insert(type_name, ResourceSettings { query, mapping });
                }
                Err(problem) => problems.push(problem),
            }
        }
        let authzen = self.authzen.check(&pools).map_err(|authzen_problems| problems.extend(authzen_problems));
        let (true, Ok(authzen)) = (problems.is_empty(), authzen) else {
            return Err(problems);
        };
        Ok(Settings {
            server: self.server,
            database: self.database,
            policies: self.policies,
            jwks: self.jwks,
            cache: self.cache,
            log: self.log,
            decision_log: self.decision_log,
            dev: self.dev,
            pools,
            resources,
            authzen,
        })
    }
}

/// `""` (none) or an IP socket address.
fn optional_address<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.trim() {
        "" => Ok(None),
        address => address.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("`{address}` is not an IP socket address such as 127.0.0.1:8181"))
        }),
    }
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
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://poolgate.db"), "sqlite://poolgate.db");
    }
}
