//! The command line: `serve`, `migrate`, `check`, `policy validate`, `policy test` and
//! `dev token`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Settings, TokenUse};
use crate::decision::{AccessRequest, Decider, PolicySources, ResourceRef, policy_tests};
use crate::metrics::Metrics;
use crate::principal::{self, store::PrincipalStore};
use crate::token::Verifier;
use crate::token::jwks::Jwks;
use crate::token::pool::Pool;
use crate::{db, dev, startup, telemetry};

/// Authorization sidecar for Cognito user pools.
#[derive(Debug, Parser)]
#[command(name = "poolgate", version, about)]
pub struct Cli {
    /// TOML configuration file; without one, the embedded development setup is used.
    #[arg(long, global = true, env = "POOLGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve,
    /// Apply the schema migrations, then the data migrations in `database.data_migrations`.
    Migrate,
    /// Decide one question from the command line and explain the answer; exits 1 on deny.
    Check {
        /// The bearer token.
        #[arg(long)]
        token: String,
        /// The ID token of paired mode.
        #[arg(long)]
        id_token: Option<String>,
        /// Action name in the token's pool namespace.
        #[arg(long)]
        action: String,
        /// Resource type name in the token's pool namespace.
        #[arg(long)]
        resource_type: String,
        /// Resource id.
        #[arg(long)]
        resource_id: String,
        /// A resource attribute as KEY=VALUE; VALUE is read as JSON when it parses, else as a
        /// string (write `'k="123"'` for a string of digits); repeat for several.
        #[arg(long = "attr", value_parser = parse_claim)]
        attributes: Vec<(String, String)>,
    },
    /// Policy tooling.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Development helpers.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate the policies against the schema; list every problem as file:line.
    Validate,
    /// Run the test cases in `policies/tests/*.toml`; exits 1 on any failure.
    Test,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Print an RS256 token signed by a dev pool's local key.
    Token {
        /// Pool name, e.g. `merchant`.
        #[arg(long)]
        pool: String,
        /// The token's `sub`.
        #[arg(long)]
        sub: String,
        /// A group of the user; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// An extra string claim as KEY=VALUE, e.g. `custom:org_id=o1`; repeat for several.
        #[arg(long = "claim", value_parser = parse_claim)]
        claims: Vec<(String, String)>,
        /// `id` or `access`.
        #[arg(long, value_enum, default_value = "id")]
        token_use: TokenUseArg,
        /// Lifetime, e.g. `5m`.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Print N tokens, one per line: the i-th (from 0) has the `sub` `<sub>-<i mod M>`, M
        /// being `--users`; without it, one token for `<sub>`. Every token has its own `jti`.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// With `--count`: how many users the tokens are spread over (default: N, one each).
        #[arg(long, value_name = "M", requires = "count", value_parser = clap::value_parser!(u64).range(1..))]
        users: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokenUseArg {
    Id,
    Access,
}

fn parse_claim(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{raw}` is not KEY=VALUE")),
    }
}

/// Parses the arguments and runs the command.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match config::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("poolgate: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    match execute(cli.command, settings).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("poolgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            let listener = std::net::TcpListener::bind(settings.bind)?;
            tracing::info!(bind = %settings.bind, pools = settings.pools.len(), "poolgate listening");
            startup::build(settings, listener).await?.run_until_stopped().await?;
        }
        Command::Migrate => {
            let pool = db::connect(&settings.database).await?;
            db::migrate(&pool, &settings.database).await?;
            println!("schema migrations applied to {}", config::redact_url(&settings.database.url));
            if let Some(dir) = &settings.database.data_migrations {
                let count = db::migrate_data(&pool, dir).await?;
                println!("{count} data migration(s) in {} are applied", dir.display());
            }
        }
        Command::Policy { command: PolicyCommand::Validate } => {
            Decider::load(&PolicySources::from(&settings))?;
            println!("policies in {} are valid", settings.policies_dir.display());
        }
        Command::Policy { command: PolicyCommand::Test } => {
            let decider = Decider::load(&PolicySources::from(&settings))?;
            let results =
                policy_tests::run(&settings.policies_dir, &decider, &settings.pools).map_err(anyhow::Error::msg)?;
            let width = results.iter().map(|result| result.name.len()).max().unwrap_or(0);
            for result in &results {
                let mark = if result.passed { "PASS" } else { "FAIL" };
                println!("{mark}  {:width$}  {}", result.name, result.detail);
            }
            let failed = results.iter().filter(|result| !result.passed).count();
            println!("{} passed, {failed} failed", results.len() - failed);
            if failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Check { token, id_token, action, resource_type, resource_id, attributes } => {
            let decider = Decider::load(&PolicySources::from(&settings))?;
            let metrics = Arc::new(Metrics::new()?);
            let jwks = Jwks::new(&settings.jwks, &settings.pools, Arc::clone(&metrics))?;
            let pools = settings.pools.iter().cloned().map(Pool::new).map(Arc::new).collect();
            let verifier = Verifier::new(pools, jwks, &settings.cache);
            verifier.jwks().refresh_all().await;
            let verified = match &id_token {
                Some(id_token) => verifier.verify_pair(&token, id_token).await,
                None => verifier.verify(&token).await,
            }
            .map_err(|err| anyhow::anyhow!("{}: {err}", err.code()))?;
            let store = PrincipalStore::new(db::connect(&settings.database).await?, &settings.cache, metrics);
            let principal = principal::resolve(&store, &verified).await?;
            let attributes = attributes
                .into_iter()
                .map(|(key, value)| (key, serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value))))
                .collect();
            let ask = AccessRequest {
                action,
                resource: ResourceRef { type_name: resource_type, id: resource_id, attributes },
                context: serde_json::Map::new(),
            };
            let decision = decider.decide(&principal, &ask)?;
            let explanation = serde_json::json!({
                "decision": if decision.allow { "allow" } else { "deny" },
                "determining_policies": decision.determining_policies,
                "errors": decision.errors,
                "policy_version": decider.version(),
                "pool": principal.pool,
                "principal": {
                    "sub": principal.sub,
                    "token_use": principal.token_use.as_str(),
                    "groups": principal.groups,
                    "flags": principal.flags,
                    "scopes": principal.scopes,
                    "attributes": principal.attributes.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                },
            });
            println!("{}", serde_json::to_string_pretty(&explanation)?);
            if !decision.allow {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Dev { command: DevCommand::Token { pool, sub, groups, claims, token_use, ttl, count, users } } => {
            let token_use = match token_use {
                TokenUseArg::Id => TokenUse::Id,
                TokenUseArg::Access => TokenUse::Access,
            };
            let minter = dev::Minter::new(&settings, &pool)?;
            let mut spec = dev::TokenSpec { sub: sub.clone(), groups, claims, token_use, ttl };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match count {
                None => writeln!(out, "{}", minter.mint(&spec)?)?,
                Some(count) => {
                    let users = users.unwrap_or(count).max(1);
                    for i in 0..count {
                        spec.sub = format!("{sub}-{}", i % users);
                        writeln!(out, "{}", minter.mint(&spec)?)?;
                    }
                }
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
