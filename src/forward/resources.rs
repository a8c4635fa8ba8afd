//! Resource attributes from SQL, for forward-auth: a proxied request names a resource by its
//! path but carries none of its attributes (a stock item's `org_id`), so an operator configures
//! one parameterized query per resource type (`resources.Stock.query`, `$1` = the id).
//!
//! The request never supplies SQL, only the bound id. Results are cached like principal
//! records: bounded, at most `cache.flags_ttl` old, flushed with the other caches when
//! `principal/coherence.rs` sees a change, and evicted exactly on PostgreSQL when the operator
//! attaches `poolgate_notify_row('resource', <id column>, <Type>)` to the table. A failed query is an error, never "no
//! attributes", and so is one that takes longer than `database.query_timeout`.
//!
//! A type declared with a table mapping and a `parent` gets its row's parent too: the generated
//! query selects the parent's id as [`PARENT_COLUMN`], which becomes the resource's one parent
//! (none when `NULL`), so that `resource in <parent>` means the same here as in the filter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde_json::{Map, Value};
use sqlx::{AnyPool, Column, Row};

use crate::config::{ResourceSettings, Settings};
use crate::db;
use crate::decision::request::ParentRef;
use crate::filter::mapping::PARENT_COLUMN;

/// Why attributes could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The query found no row for the id.
    #[error("no `{type_name}` with id `{id}`")]
    NotFound {
        /// Resource type.
        type_name: String,
        /// Resource id.
        id: String,
    },
    /// The query failed or took longer than `database.query_timeout`.
    #[error("cannot load the resource's attributes")]
    DatabaseUnavailable(#[source] Arc<sqlx::Error>),
}

/// A resource as its row gives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The attributes, named after the columns; a `NULL` column is left out.
    pub attributes: Map<String, Value>,
    /// The mapped parent, when the type declares one and the row has it.
    pub parents: Vec<ParentRef>,
}

/// A resource's row; `None` when the query found no row.
type Found = Option<Arc<Loaded>>;

/// Cached runner of the configured attribute queries.
pub struct ResourceStore {
    db: AnyPool,
    queries: BTreeMap<String, ResourceSettings>,
    cache: Cache<(String, String), Found>,
    query_timeout: Duration,
}

impl ResourceStore {
    /// A store running the configured queries (`resources.<Type>.query`) against `db`.
    pub fn new(db: AnyPool, settings: &Settings) -> Self {
        let cache =
            Cache::builder().max_capacity(settings.cache.flags_capacity).time_to_live(settings.cache.flags_ttl).build();
        Self { db, queries: settings.resources.clone(), cache, query_timeout: settings.database.query_timeout }
    }

    /// The attributes (and mapped parent) of resource `id` of `type_name`; `Ok(None)` when no
    /// query is configured for the type.
    pub async fn load(&self, type_name: &str, id: &str) -> Result<Option<Arc<Loaded>>, ResourceError> {
        let Some(query) = self.queries.get(type_name) else {
            return Ok(None);
        };
        let parent_type =
            query.mapping.as_ref().and_then(|mapping| mapping.parent.as_ref()).map(|parent| parent.type_name.as_str());
        let found = self
            .cache
            .try_get_with(
                (type_name.to_owned(), id.to_owned()),
                db::bounded(self.query_timeout, self.run(&query.query, id, parent_type)),
            )
            .await
            .map_err(ResourceError::DatabaseUnavailable)?;
        match found {
            Some(attributes) => Ok(Some(attributes)),
            None => Err(ResourceError::NotFound { type_name: type_name.to_owned(), id: id.to_owned() }),
        }
    }

    async fn run(&self, query: &str, id: &str, parent_type: Option<&str>) -> Result<Found, sqlx::Error> {
        let Some(row) = sqlx::query(query).bind(id).fetch_optional(&self.db).await? else {
            return Ok(None);
        };
        let mut attributes = Map::new();
        let mut parents = Vec::new();
        for (index, column) in row.columns().iter().enumerate() {
            // The `Any` driver knows no column types up front: try the ones Cedar can hold.
            // A column of any other type is left out, so a policy that needs it fails closed.
            let value = if let Ok(value) = row.try_get::<Option<String>, _>(index) {
                value.map(Value::String)
            } else if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
                value.map(Value::from)
            } else if let Ok(value) = row.try_get::<Option<i32>, _>(index) {
                value.map(Value::from)
            } else if let Ok(value) = row.try_get::<Option<bool>, _>(index) {
                value.map(Value::Bool)
            } else {
                tracing::warn!(column = column.name(), "resource column of an unsupported type left out");
                None
            };
            match (value, parent_type) {
                (None, _) => {}
                (Some(value), Some(parent_type)) if column.name() == PARENT_COLUMN => {
                    let id = match value {
                        Value::String(id) => id,
                        other => other.to_string(),
                    };
                    parents.push(ParentRef { type_name: parent_type.to_owned(), id });
                }
                (Some(value), _) => {
                    attributes.insert(column.name().to_owned(), value);
                }
            }
        }
        Ok(Some(Arc::new(Loaded { attributes, parents })))
    }

    /// Forgets the cached attributes of one resource.
    pub async fn evict(&self, type_name: &str, id: &str) {
        self.cache.invalidate(&(type_name.to_owned(), id.to_owned())).await;
    }

    /// Forgets everything.
    pub fn flush(&self) {
        self.cache.invalidate_all();
    }
}
