//! Stage 2b: keeping every replica's caches coherent with the database, so that a change made
//! with plain SQL never waits for a cache TTL.
//!
//! PostgreSQL: the schema's triggers `NOTIFY poolgate_changes` with the (pool, key) a change
//! touches, and each replica `LISTEN`s and evicts exactly those entries. Notifications sent
//! while the listening connection is down are lost, so the replica flushes its caches as soon
//! as the connection is lost, fails or stops answering a heartbeat, on every failed attempt to
//! listen again, and once `LISTEN` is back in place.
//!
//! SQLite has no notifications: a dedicated connection polls `PRAGMA data_version`, which
//! changes whenever another connection (another process included) commits, and the caches are
//! flushed on every change.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sqlx::Connection;
use sqlx::postgres::PgListener;
use tokio::sync::oneshot;

use crate::forward::resources::ResourceStore;
use crate::principal::store::PrincipalStore;

/// The notification channel the PostgreSQL triggers announce on.
pub const CHANNEL: &str = "poolgate_changes";

/// Back-off between reconnection attempts.
const RETRY: Duration = Duration::from_millis(250);

/// How long the change listener may hear nothing before it checks its connection with a
/// query, and how long that query and a reconnection may take. A frozen connection stays
/// silent rather than failing, and changes made meanwhile would go unheard.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// One change announced by a trigger.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    /// A `principals` or `principal_flags` row of (pool, subject).
    Principal {
        /// Pool name.
        pool: String,
        /// Subject.
        key: String,
    },
    /// A `revoked_tokens` row of (pool, jti).
    Revocation {
        /// Pool name.
        pool: String,
        /// Token id.
        key: String,
    },
    /// A row behind a resource-attribute query; `pool` carries the resource type name.
    Resource {
        /// Resource type name.
        pool: String,
        /// Resource id.
        key: String,
    },
    /// Anything else: forget everything.
    Flush,
}

/// Follows the database's changes forever, evicting what they affect. `following` is told
/// once the first watch is in place (and the caches flushed after it), so start-up can wait for
/// it before serving: from then on no change goes unseen.
pub async fn follow(database_url: String, poll_interval: Duration, caches: Caches, following: oneshot::Sender<()>) {
    let mut following = Some(following);
    if crate::db::is_sqlite(&database_url) {
        poll_sqlite(&database_url, poll_interval, &caches, &mut following).await;
    } else {
        listen_postgres(&database_url, &caches, &mut following).await;
    }
}

/// Says, the first time only, that the watch is in place.
fn announce(following: &mut Option<oneshot::Sender<()>>) {
    if let Some(following) = following.take() {
        let _ = following.send(());
    }
}

/// Every cache that mirrors the database.
pub struct Caches {
    /// Principal records and revocations.
    pub principals: Arc<PrincipalStore>,
    /// Resource attributes.
    pub resources: Arc<ResourceStore>,
}

impl Caches {
    fn flush(&self) {
        self.principals.flush();
        self.resources.flush();
    }
}

async fn listen_postgres(url: &str, store: &Caches, following: &mut Option<oneshot::Sender<()>>) {
    loop {
        let mut listener = match tokio::time::timeout(HEARTBEAT, subscribe(url)).await {
            Ok(Ok(listener)) => listener,
            failed => {
                let error = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => "no answer".to_owned(),
                };
                tracing::warn!(%error, "cannot listen for changes; retrying");
                store.flush();
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        // LISTEN is in place: whatever changed before now may have gone unannounced.
        store.flush();
        announce(following);
        tracing::info!(channel = CHANNEL, "listening for changes");
        let problem = follow_notifications(&mut listener, store).await;
        // From here until LISTEN is back, changes go unheard: nothing cached may be trusted.
        store.flush();
        tracing::warn!(problem, "change listener lost its connection; reconnecting");
    }
}

/// Applies notifications until the connection is lost, fails, or stays silent and then does
/// not answer a `SELECT 1` within [`HEARTBEAT`]; returns what went wrong.
async fn follow_notifications(listener: &mut PgListener, store: &Caches) -> &'static str {
    loop {
        match tokio::time::timeout(HEARTBEAT, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => apply(store, notification.payload()).await,
            Ok(Ok(None)) => return "connection lost",
            Ok(Err(_)) => return "connection failed",
            Err(_silent) => {
                let ping = tokio::time::timeout(HEARTBEAT, sqlx::query("SELECT 1").execute(&mut *listener)).await;
                if !matches!(ping, Ok(Ok(_))) {
                    return "connection does not answer";
                }
            }
        }
    }
}

async fn subscribe(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    // A lost connection is reported at once, so that the caches are flushed before any
    // reconnection attempt (which can take long against an unreachable server).
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn apply(store: &Caches, payload: &str) {
    match serde_json::from_str::<Change>(payload) {
        Ok(Change::Principal { pool, key }) => store.principals.evict_principal(&pool, &key).await,
        Ok(Change::Revocation { .. }) => store.principals.evict_revocations().await,
        Ok(Change::Resource { pool, key }) => store.resources.evict(&pool, &key).await,
        Ok(Change::Flush) => store.flush(),
        Err(err) => {
            tracing::warn!(error = %err, "unreadable change notification; flushing caches");
            store.flush();
        }
    }
}

async fn poll_sqlite(url: &str, interval: Duration, store: &Caches, following: &mut Option<oneshot::Sender<()>>) {
    loop {
        let mut connection = match sqlx::AnyConnection::connect(url).await {
            Ok(connection) => connection,
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch the database for changes; retrying");
                store.flush();
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        // The baseline is read before the flush, so no change can fall between the two.
        let mut last_version = data_version(&mut connection).await;
        store.flush();
        announce(following);
        while let Some(last) = last_version {
            tokio::time::sleep(interval).await;
            last_version = data_version(&mut connection).await;
            if last_version != Some(last) {
                tracing::debug!("database changed; flushing caches");
                store.flush();
            }
        }
        tracing::warn!("cannot read the database's data_version; reconnecting");
    }
}

/// SQLite's per-connection counter that moves whenever another connection commits.
async fn data_version(connection: &mut sqlx::AnyConnection) -> Option<i64> {
    sqlx::query_as::<_, (i64,)>("PRAGMA data_version").fetch_one(connection).await.ok().map(|(version,)| version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_payloads_parse_into_changes() {
        let principal = serde_json::from_str::<Change>(r#"{"kind":"principal","pool":"p","key":"s"}"#).ok();
        assert_eq!(principal, Some(Change::Principal { pool: "p".into(), key: "s".into() }));
        let revocation = serde_json::from_str::<Change>(r#"{"kind":"revocation","pool":"p","key":"j"}"#).ok();
        assert_eq!(revocation, Some(Change::Revocation { pool: "p".into(), key: "j".into() }));
        assert_eq!(serde_json::from_str::<Change>(r#"{"kind":"flush"}"#).ok(), Some(Change::Flush));
        assert!(serde_json::from_str::<Change>(r#"{"kind":"other"}"#).is_err());
    }
}
