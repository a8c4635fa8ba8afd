//! Server-side search: the filter's question run against the mapped table in poolgate's own
//! database, answered with ids, a page at a time.
//!
//! # The two functions to call
//!
//! ```text
//! search(db: &SearchDb, decider: &Decider, principal: &Principal, mapping: &ResourceMapping,
//!        question: &FilterQuestion<'_>, page: &PageRequest) -> Result<SearchPage, FilterError>
//!
//! search_all(db: &SearchDb, decider: &Decider, principal: &Principal, mapping: &ResourceMapping,
//!            question: &FilterQuestion<'_>, at_most: usize) -> Result<SearchPage, FilterError>
//! ```
//!
//! - `db`: [`SearchDb::new`]`(pool, dialect, query_timeout)`, poolgate's `AnyPool` with the
//!   dialect of `database.url` and `database.query_timeout`, which bounds every query. The
//!   application state holds one (`AppState::search_db`), next to the mappings
//!   (`AppState::mappings`, by unqualified type name).
//! - `decider`: the policy set in force, taken once per request (`state.policies.current()`).
//! - `principal`: from the request pipeline (`http::pipeline::authenticate`).
//! - `mapping`: the type's `[resources.<Type>]` table mapping. A type without one cannot be
//!   searched: answer [`FilterError::NotMapped`].
//! - `page`: [`PageRequest::new`]`(limit, cursor)` from the caller's `limit` (default
//!   [`DEFAULT_LIMIT`], 1 to [`MAX_LIMIT`]) and opaque cursor; both are checked there.
//! - The answer, [`SearchPage`]: ids in ascending order, `next_cursor` when more may follow,
//!   and the [`Planned`] the search ran (its kind and the policies involved, for the decision
//!   log).
//!
//! [`search_all`] follows the cursors itself, for callers whose clients never do (AuthZEN's
//! resource search): it returns up to `at_most` ids, in pages of at most [`MAX_LIMIT`], with
//! `next_cursor` set when more remain.
//!
//! # Order and pages
//!
//! Keyset pagination on the id column:
//!
//! ```text
//! postgres: SELECT "id" FROM "stock" WHERE (<filter>) AND "id" > $k ORDER BY "id" LIMIT $n
//! sqlite:   SELECT "id" FROM "stock" WHERE (<filter>) AND "id" COLLATE BINARY > $k
//!           ORDER BY "id" COLLATE BINARY LIMIT $n
//! ```
//!
//! `$k` is the last id of the previous page, carried by the cursor, and `$n` the limit plus
//! one, which says whether another page follows. Every value is a bound parameter. So a row
//! that stays in the table, allowed, during a whole search appears exactly once across its
//! pages, whatever is inserted or deleted meanwhile; a row inserted during the search appears
//! at most once, and only if its id sorts after the page being read.
//!
//! The order is ascending by id: byte-wise on SQLite (`COLLATE BINARY`, so a `NOCASE` id column
//! cannot merge two ids), and in the id column's collation on PostgreSQL, so its index serves
//! the order; it must be deterministic (every collation but ICU ones declared
//! `deterministic = false`), as for the filter itself. The id column holds text.
//!
//! # No recheck
//!
//! The search returns the rows the SQL selects, without asking Cedar again about each. The
//! translation is exact or refused (`422 unsupported_policy`), never an approximation that
//! would need a recheck, and the differential tests hold it to that on both databases, through
//! HTTP too. A recheck would only catch a translator bug in one direction (a row too many, not
//! one missing); it would have to read every mapped attribute back into Cedar values, which
//! sqlx's `Any` driver cannot do for the PostgreSQL arrays that carry set attributes, nor for
//! an operator's `sql` expression of unknown type; and it would cost one Cedar evaluation per
//! row returned, the cost this search exists to spare.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::{AnyPool, Row};

use crate::db;
use crate::decision::Decider;
use crate::filter::FilterError;
use crate::filter::condition::Condition;
use crate::filter::mapping::ResourceMapping;
use crate::filter::plan::{FilterQuestion, Plan, Planned, plan};
use crate::filter::sql::{Dialect, SqlParam, to_sql};
use crate::principal::Principal;

/// The page size when the caller names none.
pub const DEFAULT_LIMIT: usize = 100;

/// The largest page.
pub const MAX_LIMIT: usize = 1000;

/// The first byte of every cursor, so that the format can change without misreading old ones.
const CURSOR_VERSION: u8 = b'k';

/// Where poolgate searches: its own database.
#[derive(Debug, Clone)]
pub struct SearchDb {
    pool: AnyPool,
    dialect: Dialect,
    query_timeout: Duration,
}

impl SearchDb {
    /// The database behind `pool`, written to in `dialect`, each query bounded by
    /// `query_timeout` (`database.query_timeout`).
    pub fn new(pool: AnyPool, dialect: Dialect, query_timeout: Duration) -> Self {
        Self { pool, dialect, query_timeout }
    }

    /// The dialect the search writes.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// Where a page starts: after the last id of the previous one. Opaque to callers: base64url of
/// a version byte and the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    after: String,
}

impl Cursor {
    /// The cursor of a page that starts after `id`.
    pub fn after(id: impl Into<String>) -> Self {
        Self { after: id.into() }
    }

    /// The last id of the previous page.
    pub fn id(&self) -> &str {
        &self.after
    }

    /// The cursor as the caller sees it.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(self.after.len() + 1);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(self.after.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a cursor [`Cursor::encode`] wrote; anything else is [`FilterError::InvalidPage`].
    pub fn decode(text: &str) -> Result<Self, FilterError> {
        let invalid = || FilterError::InvalidPage("page.cursor: not a cursor a search returned".into());
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        match bytes.split_first() {
            Some((&CURSOR_VERSION, id)) => Ok(Self { after: String::from_utf8(id.to_vec()).map_err(|_| invalid())? }),
            _ => Err(invalid()),
        }
    }
}

/// Which page to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    limit: usize,
    after: Option<Cursor>,
}

impl PageRequest {
    /// The page the caller asked for: `limit` ids at most (default [`DEFAULT_LIMIT`], 1 to
    /// [`MAX_LIMIT`]), after `cursor` (none for the first page).
    pub fn new(limit: Option<u64>, cursor: Option<&str>) -> Result<Self, FilterError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(limit) => match usize::try_from(limit) {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
                _ => {
                    return Err(FilterError::InvalidPage(format!(
                        "page.limit: {limit} is not between 1 and {MAX_LIMIT}"
                    )));
                }
            },
        };
        let after = cursor.map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }

    /// The most ids the page holds.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// One page of a search.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// The ids allowed, ascending.
    pub ids: Vec<String>,
    /// Where the next page starts; `None` when this page is the last.
    pub next_cursor: Option<Cursor>,
    /// The plan the search ran, and the policies involved.
    pub planned: Planned,
}

/// One page of the resources of `mapping`'s table `principal` may do `question.action` on.
pub async fn search(
    db: &SearchDb,
    decider: &Decider,
    principal: &Principal,
    mapping: &ResourceMapping,
    question: &FilterQuestion<'_>,
    page: &PageRequest,
) -> Result<SearchPage, FilterError> {
    let planned = plan(decider, principal, Some(mapping), question)?;
    let (ids, next_cursor) = fetch(db, mapping, &planned.plan, page).await?;
    Ok(SearchPage { ids, next_cursor, planned })
}

/// Like [`search`], following the cursors: up to `at_most` ids from the start, read in pages of
/// at most [`MAX_LIMIT`]; `next_cursor` is set when more remain. The plan is made once.
pub async fn search_all(
    db: &SearchDb,
    decider: &Decider,
    principal: &Principal,
    mapping: &ResourceMapping,
    question: &FilterQuestion<'_>,
    at_most: usize,
) -> Result<SearchPage, FilterError> {
    let planned = plan(decider, principal, Some(mapping), question)?;
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let limit = at_most.saturating_sub(ids.len()).min(MAX_LIMIT);
        if limit == 0 {
            return Ok(SearchPage { ids, next_cursor: after, planned });
        }
        let (found, next) = fetch(db, mapping, &planned.plan, &PageRequest { limit, after }).await?;
        ids.extend(found);
        match next {
            Some(next) => after = Some(next),
            None => return Ok(SearchPage { ids, next_cursor: None, planned }),
        }
    }
}

/// Runs one page's query.
async fn fetch(
    db: &SearchDb,
    mapping: &ResourceMapping,
    plan: &Plan,
    page: &PageRequest,
) -> Result<(Vec<String>, Option<Cursor>), FilterError> {
    let always = Condition::True;
    let condition = match plan {
        Plan::AlwaysDeny => return Ok((Vec::new(), None)),
        Plan::AlwaysAllow => &always,
        Plan::Conditional { condition } => condition,
    };
    let (sql, params) = page_query(condition, mapping, db.dialect, page)?;
    let mut query = sqlx::query(&sql);
    for param in params {
        query = match param {
            SqlParam::Text(text) => query.bind(text),
            SqlParam::Long(number) => query.bind(number),
            SqlParam::Bool(flag) => query.bind(flag),
        };
    }
    let rows =
        db::bounded(db.query_timeout, query.fetch_all(&db.pool)).await.map_err(FilterError::DatabaseUnavailable)?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0).map_err(|err| match err {
            err @ sqlx::Error::ColumnDecode { .. } => FilterError::Mapping {
                message: format!("the id column `{}` of `{}` must hold text ({err})", mapping.id_column, mapping.table),
            },
            err => FilterError::DatabaseUnavailable(err),
        })?;
        ids.push(id);
    }
    let next = if ids.len() > page.limit {
        ids.truncate(page.limit);
        ids.last().cloned().map(Cursor::after)
    } else {
        None
    };
    Ok((ids, next))
}

/// The page's statement and its parameters: the filter, then the cursor's id, then the limit
/// plus one.
fn page_query(
    condition: &Condition,
    mapping: &ResourceMapping,
    dialect: Dialect,
    page: &PageRequest,
) -> Result<(String, Vec<SqlParam>), FilterError> {
    let filter = to_sql(condition, mapping, dialect, 1)?;
    let mut params = filter.params;
    let id = mapping.id_sql();
    let ordered = match dialect {
        Dialect::Sqlite => format!("{id} COLLATE BINARY"),
        Dialect::Postgres => id.clone(),
    };
    let mut sql = format!("SELECT {id} FROM {} WHERE {}", mapping.table_sql(), filter.clause);
    if let Some(after) = &page.after {
        params.push(SqlParam::Text(after.after.clone()));
        sql.push_str(&format!(" AND {ordered} > ${}", params.len()));
    }
    params.push(SqlParam::Long(i64::try_from(page.limit).unwrap_or(i64::MAX).saturating_add(1)));
    sql.push_str(&format!(" ORDER BY {ordered} LIMIT ${}", params.len()));
    Ok((sql, params))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::filter::condition::{Comparison, Literal};
    use crate::filter::mapping::{MappedColumn, SqlSource};

    fn mapping() -> ResourceMapping {
        ResourceMapping {
            table: "shop.stock".into(),
            id_column: "sku".into(),
            attributes: BTreeMap::from([(
                "org_id".into(),
                MappedColumn { source: SqlSource::Column("org_id".into()), nullable: false },
            )]),
            parent: None,
        }
    }

    #[test]
    fn a_page_is_the_filter_then_the_cursor_then_the_limit_all_bound() {
        let condition = Condition::compare(Comparison::Eq, "org_id", Literal::String("o1' OR '1'='1".into()));
        let page = PageRequest::new(Some(7), Some(&Cursor::after("sku-'9").encode())).unwrap();
        let (sql, params) = page_query(&condition, &mapping(), Dialect::Postgres, &page).unwrap();
        assert_eq!(
            sql,
            r#"SELECT "sku" FROM "shop"."stock" WHERE ("org_id" = $1) AND "sku" > $2 ORDER BY "sku" LIMIT $3"#
        );
        assert_eq!(
            params,
            [SqlParam::Text("o1' OR '1'='1".into()), SqlParam::Text("sku-'9".into()), SqlParam::Long(8)]
        );
        let first = PageRequest::new(None, None).unwrap();
        let (sql, params) = page_query(&Condition::True, &mapping(), Dialect::Sqlite, &first).unwrap();
        assert_eq!(sql, r#"SELECT "sku" FROM "shop"."stock" WHERE (1 = 1) ORDER BY "sku" COLLATE BINARY LIMIT $1"#);
        assert_eq!(params, [SqlParam::Long(101)]);
    }

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        for id in ["", "sku-1", "ü/+=?&\0", &"x".repeat(300)] {
            let cursor = Cursor::after(id);
            assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
            assert!(cursor.encode().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
        let wrong_version = URL_SAFE_NO_PAD.encode(b"zsku-1");
        let not_utf8 = URL_SAFE_NO_PAD.encode([CURSOR_VERSION, 0xff]);
        for garbage in ["", "!!!", "a2", "a2==", "aw==", &wrong_version, &not_utf8, "c2t1LTE="] {
            assert!(matches!(Cursor::decode(garbage), Err(FilterError::InvalidPage(_))), "{garbage}");
        }
    }

    #[test]
    fn limits_default_to_100_and_stay_within_1_to_1000() {
        assert_eq!(PageRequest::new(None, None).unwrap().limit(), DEFAULT_LIMIT);
        assert_eq!(PageRequest::new(Some(1), None).unwrap().limit(), 1);
        assert_eq!(PageRequest::new(Some(1000), None).unwrap().limit(), MAX_LIMIT);
        for bad in [0, 1001, u64::MAX] {
            assert!(matches!(PageRequest::new(Some(bad), None), Err(FilterError::InvalidPage(_))), "{bad}");
        }
    }
}
