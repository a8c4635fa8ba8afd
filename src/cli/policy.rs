//! `poolgate policy validate` and `poolgate policy test`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Settings;
use crate::decision::{Decider, PolicySources, policy_tests};

/// Policy tooling.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the policies against the schema; list every problem as file:line.
    Validate,
    /// Run the test cases in `policies/tests/*.toml`; exits 1 on any failure.
    Test,
}

/// Runs a policy command.
pub fn run(command: PolicyCommand, settings: &Settings) -> anyhow::Result<ExitCode> {
    let decider = Decider::load(&PolicySources::from(settings))?;
    if let PolicyCommand::Validate = command {
        println!("policies in {} are valid", settings.policies.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let results = policy_tests::run(&settings.policies.dir, &decider, &settings.pools)?;
    let width = results.iter().map(|result| result.name.len()).max().unwrap_or(0);
    for result in &results {
        let mark = if result.passed { "PASS" } else { "FAIL" };
        println!("{mark}  {:width$}  {}", result.name, result.detail);
    }
    let failed = results.iter().filter(|result| !result.passed).count();
    println!("{} passed, {failed} failed", results.len() - failed);
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
