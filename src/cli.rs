//! The command line: `serve`, `migrate`, `policy validate` and `dev token`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Settings, TokenUse};
use crate::decision::Decider;
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
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("poolgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command, settings: Settings) -> anyhow::Result<()> {
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
            Decider::load(&settings.policies_dir, &settings.pools)?;
            println!("policies in {} are valid", settings.policies_dir.display());
        }
        Command::Dev { command: DevCommand::Token { pool, sub, groups, claims, token_use, ttl } } => {
            let token_use = match token_use {
                TokenUseArg::Id => TokenUse::Id,
                TokenUseArg::Access => TokenUse::Access,
            };
            let token = dev::mint(&settings, &pool, &dev::TokenSpec { sub, groups, claims, token_use, ttl })?;
            println!("{token}");
        }
    }
    Ok(())
}
