//! `poolgate serve`: bind the configured address and serve until SIGINT or SIGTERM.

use std::process::ExitCode;

use crate::config::Settings;
use crate::startup;

/// Runs the service.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let listener = std::net::TcpListener::bind(settings.server.bind)?;
    tracing::info!(bind = %settings.server.bind, pools = settings.pools.len(), "poolgate listening");
    startup::build(settings, listener).await?.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}
