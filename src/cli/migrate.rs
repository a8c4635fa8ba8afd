//! `poolgate migrate`: the schema migrations, then the operator's data migrations.

use std::process::ExitCode;

use crate::config::{self, Settings};
use crate::db;

/// Applies every pending migration.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool, &settings.database).await?;
    println!("schema migrations applied to {}", config::redact_url(&settings.database.url));
    if let Some(dir) = &settings.database.data_migrations {
        let count = db::migrate_data(&pool, dir).await?;
        println!("{count} data migration(s) in {} are applied", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
