//! Where a resource type's rows live: one declaration per type under `[resources.<Type>]`,
//! used by the SQL filter and, through the query it generates, by forward-auth's attribute
//! loading, so there is one mapping, not two.
//!
//! ```toml
//! [resources.Stock]
//! table = "stock"                 # may be schema-qualified: "shop.stock"
//! id_column = "id"                # default "id"; a text column
//! [resources.Stock.attributes]
//! org_id = { column = "org_id", nullable = false }
//! qty = { column = "qty" }                       # nullable unless told otherwise
//! name = { sql = "lower(name)" }                 # an expression the operator owns
//! [resources.Stock.parent]                       # optional: `resource in Merchant::Org::"o1"`
//! type = "Org"
//! column = "org_id"
//! ```
//!
//! `query = "SELECT … WHERE id = $1"` remains accepted instead of `table` (forward-auth only;
//! such a type has no SQL filter). Names are checked to be plain SQL identifiers and written
//! double-quoted, so on PostgreSQL they are case-sensitive as stored; an `sql` expression is
//! written verbatim in parentheses and is the operator's responsibility. `nullable = false` is
//! a promise that the column never holds NULL: it lets the filter leave out NULL guards, and a
//! wrong promise makes the filter wrong, so leave it at the default when unsure.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[resources.<Type>]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    query: Option<String>,
    table: Option<String>,
    id_column: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, RawColumn>,
    parent: Option<RawParent>,
}

/// One attribute's column or expression, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    column: Option<String>,
    sql: Option<String>,
    nullable: Option<bool>,
}

/// The parent relation, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParent {
    #[serde(rename = "type")]
    type_name: String,
    column: Option<String>,
    sql: Option<String>,
    nullable: Option<bool>,
}

/// The name under which forward-auth's attribute query selects the mapped parent's id; no
/// attribute may be called so.
pub const PARENT_COLUMN: &str = "__poolgate_parent";

/// Where one value of a row comes from: a column, or an expression the operator owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    /// A column, written double-quoted.
    Column(String),
    /// An SQL expression, written verbatim in parentheses.
    Expression(String),
}

impl SqlSource {
    /// The SQL text of the value.
    pub fn sql(&self) -> String {
        match self {
            Self::Column(name) => quote(name),
            Self::Expression(sql) => format!("({sql})"),
        }
    }
}

/// One mapped value and whether it can be NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedColumn {
    /// Where it comes from.
    pub source: SqlSource,
    /// Whether it can be NULL (the attribute is then absent).
    pub nullable: bool,
}

/// The parent relation: each row has at most one parent, of `type_name`, whose id is in
/// `column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentMapping {
    /// The parent's entity type, unqualified (the pool's namespace applies).
    pub type_name: String,
    /// The parent's id.
    pub column: MappedColumn,
}

/// A resource type's table, id, attributes and parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMapping {
    /// The table, possibly schema-qualified, as written in configuration.
    pub table: String,
    /// The id column (text).
    pub id_column: String,
    /// Cedar attribute name → value.
    pub attributes: BTreeMap<String, MappedColumn>,
    /// The parent relation, if any.
    pub parent: Option<ParentMapping>,
}

impl ResourceMapping {
    /// The table, quoted.
    pub fn table_sql(&self) -> String {
        self.table.split('.').map(quote).collect::<Vec<_>>().join(".")
    }

    /// The id column, quoted.
    pub fn id_sql(&self) -> String {
        quote(&self.id_column)
    }

    /// The query forward-auth runs for one resource's attributes (`$1` = the id): each
    /// attribute under its Cedar name; a NULL value leaves the attribute out.
    pub fn attribute_query(&self) -> String {
        let mut columns: Vec<String> = self
            .attributes
            .iter()
            .map(|(name, column)| format!("{} AS {}", column.source.sql(), quote(name)))
            .collect();
        if let Some(parent) = &self.parent {
            columns.push(format!("{} AS {}", parent.column.source.sql(), quote(PARENT_COLUMN)));
        }
        if columns.is_empty() {
            // A row must still be found; a NULL column is left out by the loader.
            columns.push("NULL AS \"__poolgate_row\"".to_owned());
        }
        format!("SELECT {} FROM {} WHERE {} = $1", columns.join(", "), self.table_sql(), self.id_sql())
    }
}

impl RawResource {
    /// Checks the declaration of `type_name`: the attribute query forward-auth runs, and the
    /// mapping when a table is declared. The error names the offending key.
    pub fn check(self, type_name: &str) -> Result<(String, Option<ResourceMapping>), String> {
        let key = |field: &str| format!("resources.{type_name}.{field}");
        match (self.query, self.table) {
            (Some(_), Some(_)) => Err(format!("{}: set either query or table, not both", key("query"))),
            (None, None) => Err(format!("resources.{type_name}: set table (with attributes) or query")),
            (Some(query), None) => {
                if self.id_column.is_some() || !self.attributes.is_empty() || self.parent.is_some() {
                    return Err(format!("{}: id_column, attributes and parent go with table", key("query")));
                }
                if !query.contains("$1") {
                    return Err(format!("{}: must take the resource id as the parameter `$1`", key("query")));
                }
                Ok((query, None))
            }
            (None, Some(table)) => {
                if table.is_empty() || !table.split('.').all(is_sql_identifier) {
                    return Err(format!("{}: `{table}` is not an SQL name", key("table")));
                }
                let id_column = self.id_column.unwrap_or_else(|| "id".to_owned());
                if !is_sql_identifier(&id_column) {
                    return Err(format!("{}: `{id_column}` is not an SQL name", key("id_column")));
                }
                let mut attributes = BTreeMap::new();
                for (name, raw) in self.attributes {
                    if !crate::config::names::is_identifier(&name) {
                        return Err(format!("{}: `{name}` is not a Cedar identifier", key("attributes")));
                    }
                    if name.starts_with("__poolgate") {
                        return Err(format!(
                            "{}: `{name}`: names starting with `__poolgate` are reserved",
                            key("attributes")
                        ));
                    }
                    let field = key(&format!("attributes.{name}"));
                    attributes.insert(name, mapped(raw.column, raw.sql, raw.nullable, &field)?);
                }
                let parent = match self.parent {
                    Some(raw) => {
                        if !crate::config::names::is_identifier(&raw.type_name) {
                            return Err(format!(
                                "{}: `{}` is not a Cedar identifier",
                                key("parent.type"),
                                raw.type_name
                            ));
                        }
                        let column = mapped(raw.column, raw.sql, raw.nullable, &key("parent"))?;
                        Some(ParentMapping { type_name: raw.type_name, column })
                    }
                    None => None,
                };
                let mapping = ResourceMapping { table, id_column, attributes, parent };
                Ok((mapping.attribute_query(), Some(mapping)))
            }
        }
    }
}

fn mapped(
    column: Option<String>,
    sql: Option<String>,
    nullable: Option<bool>,
    key: &str,
) -> Result<MappedColumn, String> {
    let source = match (column, sql) {
        (Some(column), None) if is_sql_identifier(&column) => SqlSource::Column(column),
        (Some(column), None) => return Err(format!("{key}.column: `{column}` is not an SQL name")),
        (None, Some(sql)) if !sql.trim().is_empty() && !sql.contains(';') => SqlSource::Expression(sql),
        (None, Some(_)) => return Err(format!("{key}.sql: must be one non-empty expression")),
        _ => return Err(format!("{key}: set either column or sql")),
    };
    Ok(MappedColumn { source, nullable: nullable.unwrap_or(true) })
}

/// Whether `name` is a plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`), safe to quote.
pub fn is_sql_identifier(name: &str) -> bool {
    crate::config::names::is_identifier(name) && name.len() <= 63
}

/// `"name"`; `name` is a checked identifier, so it holds no quote.
fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawResource {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn a_table_declaration_yields_the_mapping_and_forward_auths_query() {
        let (query, mapping) = raw(r#"
            table = "shop.stock"
            attributes = { org_id = { column = "org_id", nullable = false }, name = { sql = "lower(name)" } }
            parent = { type = "Org", column = "org_id" }
            "#)
        .check("Stock")
        .unwrap();
        let mapping = mapping.unwrap();
        assert_eq!(
            query,
            r#"SELECT (lower(name)) AS "name", "org_id" AS "org_id", "org_id" AS "__poolgate_parent" FROM "shop"."stock" WHERE "id" = $1"#
        );
        assert!(!mapping.attributes["org_id"].nullable);
        assert!(mapping.attributes["name"].nullable);
        assert_eq!(mapping.parent.unwrap().type_name, "Org");
    }

    #[test]
    fn a_query_stays_accepted_and_bad_names_are_refused() {
        let (query, mapping) = raw(r#"query = "SELECT org_id FROM stock WHERE id = $1""#).check("Stock").unwrap();
        assert!(mapping.is_none());
        assert!(query.contains("$1"));
        for bad in [
            r#"query = "SELECT 1" "#,
            r#"table = "stock; DROP TABLE x""#,
            r#"table = "stock"
               id_column = "id\"""#,
            r#"table = "stock"
               attributes = { a = { column = "a b" } }"#,
            r#"table = "stock"
               attributes = { a = { column = "a", sql = "b" } }"#,
            r#"table = "stock"
               query = "SELECT 1 WHERE $1""#,
            r#"id_column = "id""#,
        ] {
            assert!(raw(bad).check("Stock").is_err(), "{bad}");
        }
    }
}
