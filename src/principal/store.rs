//! Stage 2a: what the admin tables say about a principal and its tokens, read through bounded
//! moka caches.
//!
//! Two caches: principal records (`principals` row + `principal_flags`, `principal_groups` and
//! `principal_attributes`) by (pool, subject), and
//! the whole set of unexpired revocations (`revoked_tokens`), held as one entry. Revoked tokens
//! are few, while every new token has fresh ids: looking each id up would cost every new token
//! a query, the set costs one query per change. Concurrent misses for one key share a single
//! query (`try_get_with`). Entries live at most `cache.flags_ttl`; changes reach them
//! sooner through `principal/coherence.rs`, which evicts what a change affects. A load that
//! raced with an eviction (its query ran before the change, its insert came after) is evicted
//! again at once, so a stale entry never outlives the request that read it. A failed query, or
//! a load that takes longer than `database.query_timeout` (a database that is frozen, or too
//! slow to answer within the request's time), is never cached and becomes
//! [`PrincipalError::DatabaseUnavailable`]: without the record the request is refused, never
//! judged.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::future::Cache;
use sqlx::AnyPool;

use crate::config::Settings;
use crate::db;
use crate::metrics::Metrics;
use crate::principal::error::PrincipalError;

/// What the admin tables hold for one (pool, subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    /// Whether a `principals` row exists.
    pub registered: bool,
    /// `principals.disabled`; anything but an explicit false counts as disabled.
    pub disabled: bool,
    /// `principals.tokens_valid_after` (epoch seconds): tokens from sign-ins before it are revoked.
    pub tokens_valid_after: Option<i64>,
    /// Granted flags, sorted.
    pub flags: Arc<[String]>,
    /// Groups granted in `principal_groups`, sorted.
    pub groups: Arc<[String]>,
    /// `principal_attributes` (name, value), sorted by name.
    pub attributes: Arc<[(String, String)]>,
}

type Key = (String, String);

/// One subject's flags, groups and attributes, as read.
type Grants = (Vec<String>, Vec<String>, Vec<(String, String)>);

/// Unexpired revocations: pool → token id → `expires_at` (epoch seconds).
type RevokedSet = HashMap<String, HashMap<String, i64>>;

/// Cached reader of the admin tables.
pub struct PrincipalStore {
    db: AnyPool,
    records: Cache<Key, Arc<PrincipalRecord>>,
    revocations: Cache<(), Arc<RevokedSet>>,
    /// Bumped by every eviction; a load that sees it move may have read old rows.
    evictions: AtomicU64,
    /// Longest one load (or readiness check) may take.
    query_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl PrincipalStore {
    /// A store over `db` with the configured cache bounds and `database.query_timeout`.
    pub fn new(db: AnyPool, settings: &Settings, metrics: Arc<Metrics>) -> Self {
        let cache = &settings.cache;
        Self {
            db,
            records: Cache::builder().max_capacity(cache.flags_capacity).time_to_live(cache.flags_ttl).build(),
            revocations: Cache::builder().max_capacity(1).time_to_live(cache.flags_ttl).build(),
            evictions: AtomicU64::new(0),
            query_timeout: settings.database.query_timeout,
            metrics,
        }
    }

    /// The record of `subject` in `pool`.
    pub async fn record(&self, pool: &str, subject: &str) -> Result<Arc<PrincipalRecord>, PrincipalError> {
        let key = (pool.to_owned(), subject.to_owned());
        self.load("principal", &self.records, key, self.query_record(pool, subject)).await
    }

    /// Whether any of `token_ids` (a token's `jti` and `origin_jti`) is revoked in `pool`; the
    /// revocation set is looked up once for all of them.
    pub async fn any_revoked(&self, pool: &str, token_ids: &[String]) -> Result<bool, PrincipalError> {
        if token_ids.is_empty() {
            return Ok(false);
        }
        let revoked = self.load("revocation", &self.revocations, (), self.query_revocations()).await?;
        let Some(pool_revoked) = revoked.get(pool) else { return Ok(false) };
        let now = now_secs();
        Ok(token_ids.iter().any(|id| pool_revoked.get(id).is_some_and(|expires_at| *expires_at > now)))
    }

    async fn load<K: Hash + Eq + Clone + Send + Sync + 'static, V: Clone + Send + Sync + 'static>(
        &self,
        name: &str,
        cache: &Cache<K, V>,
        key: K,
        query: impl Future<Output = Result<V, sqlx::Error>>,
    ) -> Result<V, PrincipalError> {
        if let Some(value) = cache.get(&key).await {
            self.metrics.cache_lookups.with_label_values(&[name, "hit"]).inc();
            return Ok(value);
        }
        self.metrics.cache_lookups.with_label_values(&[name, "miss"]).inc();
        let before = self.evictions.load(Ordering::Acquire);
        let value = cache.try_get_with_by_ref(&key, db::bounded(self.query_timeout, query)).await.map_err(|err| {
            self.metrics.database_errors.inc();
            PrincipalError::DatabaseUnavailable(err)
        })?;
        if self.evictions.load(Ordering::Acquire) != before {
            cache.invalidate(&key).await;
        }
        Ok(value)
    }

    async fn query_record(&self, pool: &str, subject: &str) -> Result<Arc<PrincipalRecord>, sqlx::Error> {
        // `disabled = FALSE` rather than `disabled`: in SQLite a stray text value must not read
        // as "enabled".
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT CAST(CASE WHEN disabled = FALSE THEN 0 ELSE 1 END AS BIGINT), tokens_valid_after \
             FROM principals WHERE pool = $1 AND subject = $2",
        )
        .bind(pool)
        .bind(subject)
        .fetch_optional(&self.db)
        .await?;
        let grants = self.query_grants("subject = $2", pool, subject, None).await?;
        let (flags, groups, attributes) = grants.into_iter().next().map(|(_, grants)| grants).unwrap_or_default();
        Ok(Arc::new(PrincipalRecord {
            registered: row.is_some(),
            disabled: row.is_some_and(|(disabled, _)| disabled != 0),
            tokens_valid_after: row.and_then(|(_, after)| after),
            flags: flags.into(),
            groups: groups.into(),
            attributes: attributes.into(),
        }))
    }

    /// Flags, groups and attributes of the subjects `which` selects (`$1` = the pool, `$2` and
    /// `$3` = `subject` and `limit`), in one query; by subject.
    async fn query_grants(
        &self,
        which: &str,
        pool: &str,
        subject: &str,
        limit: Option<i64>,
    ) -> Result<BTreeMap<String, Grants>, sqlx::Error> {
        let sql = format!(
            "SELECT subject, 'f', flag, '' FROM principal_flags WHERE pool = $1 AND {which} \
             UNION ALL SELECT subject, 'g', group_name, '' FROM principal_groups WHERE pool = $1 AND {which} \
             UNION ALL SELECT subject, 'a', name, value FROM principal_attributes WHERE pool = $1 AND {which} \
             ORDER BY 1, 2, 3"
        );
        let mut query = sqlx::query_as::<_, (String, String, String, String)>(&sql).bind(pool).bind(subject);
        if let Some(limit) = limit {
            query = query.bind(limit);
        }
        let mut grants: BTreeMap<String, Grants> = BTreeMap::new();
        for (subject, kind, name, value) in query.fetch_all(&self.db).await? {
            let (flags, groups, attributes) = grants.entry(subject).or_default();
            match kind.as_str() {
                "f" => flags.push(name),
                "g" => groups.push(name),
                _ => attributes.push((name, value)),
            }
        }
        Ok(grants)
    }

    /// Up to `limit` principals registered in `pool` (a `principals` row) whose subject sorts
    /// after `after`, in subject order, with their records. Read straight from the database,
    /// for AuthZEN's subject search: a search is rare, and scanning must not evict the cache.
    pub async fn registered_after(
        &self,
        pool: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, PrincipalRecord)>, PrincipalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = async {
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT subject, CAST(CASE WHEN disabled = FALSE THEN 0 ELSE 1 END AS BIGINT) FROM principals \
                 WHERE pool = $1 AND subject > $2 ORDER BY subject LIMIT $3",
            )
            .bind(pool)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.db)
            .await?;
            let page = "subject IN (SELECT subject FROM principals WHERE pool = $1 AND subject > $2 \
                        ORDER BY subject LIMIT $3)";
            let mut grants = self.query_grants(page, pool, after, Some(limit)).await?;
            Ok(rows
                .into_iter()
                .map(|(subject, disabled)| {
                    let (flags, groups, attributes) = grants.remove(&subject).unwrap_or_default();
                    let record = PrincipalRecord {
                        registered: true,
                        disabled: disabled != 0,
                        tokens_valid_after: None,
                        flags: flags.into(),
                        groups: groups.into(),
                        attributes: attributes.into(),
                    };
                    (subject, record)
                })
                .collect())
        };
        db::bounded(self.query_timeout, read).await.map_err(|err| {
            self.metrics.database_errors.inc();
            PrincipalError::DatabaseUnavailable(Arc::new(err))
        })
    }

    async fn query_revocations(&self) -> Result<Arc<RevokedSet>, sqlx::Error> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT pool, jti, expires_at FROM revoked_tokens WHERE expires_at > $1")
                .bind(now_secs())
                .fetch_all(&self.db)
                .await?;
        let mut revoked = RevokedSet::new();
        for (pool, token_id, expires_at) in rows {
            revoked.entry(pool).or_default().insert(token_id, expires_at);
        }
        Ok(Arc::new(revoked))
    }

    /// Forgets the cached record of `subject` in `pool`.
    pub async fn evict_principal(&self, pool: &str, subject: &str) {
        self.evictions.fetch_add(1, Ordering::AcqRel);
        self.records.invalidate(&(pool.to_owned(), subject.to_owned())).await;
    }

    /// Forgets the revocation set after a change to `revoked_tokens`: it is read again, whole,
    /// by the next request.
    pub async fn evict_revocations(&self) {
        self.evictions.fetch_add(1, Ordering::AcqRel);
        self.revocations.invalidate(&()).await;
    }

    /// Forgets everything: the answer to "changes may have been missed".
    pub fn flush(&self) {
        self.evictions.fetch_add(1, Ordering::AcqRel);
        self.records.invalidate_all();
        self.revocations.invalidate_all();
    }

    /// Deletes revocations whose token has expired anyway; returns how many.
    pub async fn purge_expired_revocations(&self) -> Result<u64, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1").bind(now_secs()).execute(&self.db).await?;
        Ok(done.rows_affected())
    }

    /// Whether the database answers within `database.query_timeout`, for readiness checks.
    pub async fn ping(&self) -> bool {
        db::bounded(self.query_timeout, sqlx::query("SELECT 1").execute(&self.db)).await.is_ok()
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
