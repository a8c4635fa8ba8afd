//! `poolgate dev token`: tokens signed by a dev pool's local key.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};

use crate::cli::parse_claim;
use crate::config::Settings;
use crate::config::pool::TokenUse;
use crate::dev;

/// Development helpers.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
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
pub enum TokenUseArg {
    /// An ID token.
    Id,
    /// An access token.
    Access,
}

/// Runs a dev command.
pub fn run(command: DevCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let DevCommand::Token { pool, sub, groups, claims, token_use, ttl, count, users } = command;
    let token_use = match token_use {
        TokenUseArg::Id => TokenUse::Id,
        TokenUseArg::Access => TokenUse::Access,
    };
    let minter = dev::Minter::new(settings, &pool)?;
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
    Ok(ExitCode::SUCCESS)
}
