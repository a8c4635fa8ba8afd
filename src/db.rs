//! The database connection: PostgreSQL or SQLite, chosen by the URL's scheme, through sqlx's
//! `Any` driver; poolgate's schema migrations, embedded in the binary; and the operator's own
//! data migrations, read from the folder `database.data_migrations` names; and [`bounded`], the
//! time limit (`database.query_timeout`) on every lookup a request waits for.
//!
//! The schema differs per backend only where it must (PostgreSQL's change-notification
//! triggers), so `migrations/postgres` and `migrations/sqlite` share version numbers.
//! Both kinds of migration are recorded in sqlx's `_sqlx_migrations` table, so their versions
//! must never meet: poolgate's are below [`FIRST_DATA_MIGRATION`], the operator's at or above
//! it (a timestamp such as `20260101120000`).
//!
//! INVARIANT: no queries live here; `principal/` reads the admin tables.

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::{Any, AnyPool};

use crate::config::{DatabaseSettings, redact_url};

/// The lowest version an operator's data migration may have.
pub const FIRST_DATA_MIGRATION: i64 = 1_000_000_000;

/// Connects to the database, creating a missing SQLite file first.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<AnyPool> {
    install_default_drivers();
    let url = &settings.url;
    if is_sqlite(url) && !Any::database_exists(url).await.unwrap_or(false) {
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

/// Applies every pending schema migration of the database's backend.
pub async fn migrate(pool: &AnyPool, settings: &DatabaseSettings) -> anyhow::Result<()> {
    let mut schema = if is_sqlite(&settings.url) {
        sqlx::migrate!("./migrations/sqlite")
    } else {
        sqlx::migrate!("./migrations/postgres")
    };
    // The operator's data migrations share the table; they are not ours to miss.
    schema.set_ignore_missing(true);
    schema.run(pool).await.map_err(|err| anyhow::anyhow!("schema migration failed: {err}"))
}

/// Applies the operator's data migrations from `dir`.
pub async fn migrate_data(pool: &AnyPool, dir: &Path) -> anyhow::Result<usize> {
    let mut data = Migrator::new(dir)
        .await
        .map_err(|err| anyhow::anyhow!("cannot read data migrations in {}: {err}", dir.display()))?;
    if let Some(early) = data.iter().find(|migration| migration.version < FIRST_DATA_MIGRATION) {
        bail!(
            "{}: data migration version {} is below {FIRST_DATA_MIGRATION}; use a timestamp such as 20260101120000 \
             so it never collides with poolgate's schema migrations",
            dir.display(),
            early.version
        );
    }
    data.set_ignore_missing(true);
    data.run(pool).await.map_err(|err| anyhow::anyhow!("data migration failed: {err}"))?;
    Ok(data.iter().count())
}

/// Whether `url` names a SQLite database.
pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// `query`, failed as a timeout when it takes longer than `limit` (`database.query_timeout`):
/// a frozen or crawling database must not hold a request until its own timeout.
pub async fn bounded<T>(
    limit: Duration,
    query: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(limit, query).await.unwrap_or_else(|_| {
        Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {limit:?} (database.query_timeout)"),
        )))
    })
}
