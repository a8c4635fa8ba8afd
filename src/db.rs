//! The database connection: PostgreSQL or SQLite, chosen by the URL's scheme, through sqlx's
//! `Any` driver; and the schema migrations in `migrations/`, embedded in the binary.
//!
//! INVARIANT: no queries live here; `principal/flags.rs` is the only reader of admin tables.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::{Any, AnyPool};

use crate::config::{DatabaseSettings, redact_url};

/// poolgate's own schema, applied by `poolgate migrate` and on `serve`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connects to the database, creating a missing SQLite file first.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<AnyPool> {
    install_default_drivers();
    let url = &settings.url;
    if url.starts_with("sqlite:") && !Any::database_exists(url).await.unwrap_or(false) {
        Any::create_database(url).await.map_err(|err| anyhow::anyhow!("cannot create `{url}`: {err}"))?;
    }
    AnyPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Duration::from_secs(300))
        .connect(url)
        .await
        .map_err(|err| anyhow::anyhow!("cannot connect to `{}`: {err}", redact_url(url)))
}

/// Applies every pending migration.
pub async fn migrate(pool: &AnyPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.map_err(|err| anyhow::anyhow!("migration failed: {err}"))
}
