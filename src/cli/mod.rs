//! The command line: parse it, load the configuration, run one command. Each command is a
//! file: `serve`, `migrate`, `check`, `policy validate` and `policy test`, `dev token`.

mod check;
mod dev;
mod migrate;
mod policy;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{config, telemetry};

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
    Check(check::CheckArgs),
    /// Policy tooling.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Development helpers.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
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
    let result = match cli.command {
        Command::Serve => serve::run(settings).await,
        Command::Migrate => migrate::run(settings).await,
        Command::Check(args) => check::run(args, settings).await,
        Command::Policy { command } => policy::run(command, &settings),
        Command::Dev { command } => dev::run(command, &settings),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("poolgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `KEY=VALUE`.
fn parse_claim(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{raw}` is not KEY=VALUE")),
    }
}
