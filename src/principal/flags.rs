//! Stage 2a: a principal's permission flags, read from `principal_flags` through a short-lived
//! moka cache.
//!
//! Concurrent misses for one principal share a single query (`try_get_with`). A failed query is
//! never cached and becomes [`PrincipalError::DatabaseUnavailable`], so the request is refused
//! rather than judged without its flags.

use std::sync::Arc;

use moka::future::Cache;
use sqlx::AnyPool;

use crate::config::CacheSettings;
use crate::principal::PrincipalError;

/// Cached reader of permission flags.
pub struct FlagStore {
    db: AnyPool,
    cache: Cache<(String, String), Arc<[String]>>,
}

impl FlagStore {
    /// A store over `db` with the configured cache bounds.
    pub fn new(db: AnyPool, settings: &CacheSettings) -> Self {
        let cache = Cache::builder().max_capacity(settings.flags_capacity).time_to_live(settings.flags_ttl).build();
        Self { db, cache }
    }

    /// The flags granted to `subject` in `pool`, sorted.
    pub async fn load(&self, pool: &str, subject: &str) -> Result<Arc<[String]>, PrincipalError> {
        let key = (pool.to_owned(), subject.to_owned());
        self.cache
            .try_get_with(key, self.query(pool, subject))
            .await
            .map_err(|err| PrincipalError::DatabaseUnavailable(err.to_string()))
    }

    async fn query(&self, pool: &str, subject: &str) -> Result<Arc<[String]>, sqlx::Error> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT flag FROM principal_flags WHERE pool = $1 AND subject = $2 ORDER BY flag")
                .bind(pool)
                .bind(subject)
                .fetch_all(&self.db)
                .await?;
        Ok(rows.into_iter().map(|(flag,)| flag).collect())
    }

    /// Whether the database answers, for readiness checks.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.db).await.is_ok()
    }
}
