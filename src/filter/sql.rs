//! [`Condition`] → an SQL `WHERE` fragment for PostgreSQL or SQLite, with bound parameters.
//!
//! Only configuration reaches the SQL text: quoted table and column names from the mapping, an
//! operator's `sql` expressions, and fixed operators. Every value from a token, a policy or a
//! request is a parameter, numbered `$n` from a caller-chosen start (sqlx binds `$n` by number
//! on SQLite too).
//!
//! # NULL
//!
//! A condition atom is false when its attribute is absent (NULL). SQL makes a comparison with
//! NULL unknown instead, which `WHERE` drops like false but which `NOT` keeps unknown, so the
//! negation would drop the row too. Atoms under an odd number of `not`s on a nullable column
//! are therefore written `(col IS NOT NULL AND col = $1)`, which is false, never unknown; atoms
//! in positive position stay plain `col = $1`, since an unknown there can only make the whole
//! condition unknown (dropped) where it would otherwise be false (dropped).
//!
//! # Strings
//!
//! - SQLite compares with the column's collation, which may be `NOCASE`: comparisons of string
//!   values are written with `COLLATE BINARY` (byte-wise, which for UTF-8 is code point by code
//!   point, as in Cedar); an index on a `BINARY` column (the default) still serves them.
//!   `LIKE` is case-insensitive for ASCII on SQLite and `PRAGMA case_sensitive_like` would change
//!   the whole connection, so `like` becomes `GLOB`, which is case-sensitive, with `*` for Cedar's
//!   wildcard and `[*]`, `[?]`, `[[]` for literal `*`, `?`, `[`.
//! - PostgreSQL's `=` and `LIKE` under a deterministic collation (every collation but ICU ones
//!   declared `deterministic = false`) compare exactly, and the plain form keeps the column's
//!   indexes usable, so no `COLLATE` is added: a column with a nondeterministic collation must
//!   be mapped through `sql = "col COLLATE \"C\""`. `like` becomes `LIKE` with `%` for the
//!   wildcard and `\%`, `\_`, `\\` for literal `%`, `_`, `\` (backslash is PostgreSQL's default
//!   `LIKE` escape).
//!
//! # Sets
//!
//! A `Set<String>` or `Set<Long>` attribute is a `text[]` or `bigint[]` column on PostgreSQL,
//! compared with `@>`, `<@` and `&&` against `ARRAY[$1, …]`; SQLite has no arrays, and a
//! condition on a set attribute is an [`SqlError::SetOnSqlite`] there.

use serde::Serialize;

use crate::filter::condition::{Comparison, Condition, Literal, PatternElement, pattern_elements};
use crate::filter::mapping::{MappedColumn, ResourceMapping};

/// The SQL dialect to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A bound parameter's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SqlParam {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Long(i64),
    /// A boolean (an integer 0 or 1 on SQLite, as sqlx binds it).
    Bool(bool),
}

/// A `WHERE` fragment and its parameters, `$first..`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlWhere {
    /// The fragment, to be put after `WHERE` (or `AND`); it never evaluates to NULL.
    #[serde(rename = "where")]
    pub clause: String,
    /// The values of `$first`, `$first + 1`, … in order.
    pub params: Vec<SqlParam>,
}

/// Why a condition cannot be written for a dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// The condition reads an attribute the mapping does not map.
    #[error("the attribute `{0}` is not mapped")]
    Unmapped(String),
    /// The condition reads the parent relation, which the mapping does not declare.
    #[error("the parent relation is not mapped")]
    NoParent,
    /// SQLite has no array columns.
    #[error("the set attribute `{0}` cannot be filtered on SQLite, which has no arrays")]
    SetOnSqlite(String),
}

/// Writes `condition` for `dialect`, numbering parameters from `$first`.
pub fn to_sql(
    condition: &Condition,
    mapping: &ResourceMapping,
    dialect: Dialect,
    first: usize,
) -> Result<SqlWhere, SqlError> {
    let mut writer = Writer { mapping, dialect, first: first.max(1), params: Vec::new() };
    let clause = writer.write(condition, true)?;
    Ok(SqlWhere { clause, params: writer.params })
}

struct Writer<'a> {
    mapping: &'a ResourceMapping,
    dialect: Dialect,
    first: usize,
    params: Vec<SqlParam>,
}

impl Writer<'_> {
    fn bind(&mut self, value: SqlParam) -> String {
        self.params.push(value);
        format!("${}", self.first + self.params.len() - 1)
    }

    fn literal(&mut self, value: &Literal) -> String {
        self.bind(match value {
            Literal::String(text) => SqlParam::Text(text.clone()),
            Literal::Long(number) => SqlParam::Long(*number),
            Literal::Bool(flag) => SqlParam::Bool(*flag),
        })
    }

    fn column(&self, attr: &str) -> Result<&MappedColumn, SqlError> {
        self.mapping.attributes.get(attr).ok_or_else(|| SqlError::Unmapped(attr.to_owned()))
    }

    /// `column` as an operand comparing with `value`: `COLLATE BINARY` for strings on SQLite.
    fn operand(&self, column: &MappedColumn, value: Option<&Literal>) -> String {
        match (self.dialect, value) {
            (Dialect::Sqlite, Some(Literal::String(_))) => format!("{} COLLATE BINARY", column.source.sql()),
            _ => column.source.sql(),
        }
    }

    /// `atom`, guarded against NULL when it sits under a negation on a nullable column.
    fn guarded(&self, column: &MappedColumn, atom: String, positive: bool) -> String {
        if positive || !column.nullable { atom } else { format!("({} IS NOT NULL AND {atom})", column.source.sql()) }
    }

    fn write(&mut self, condition: &Condition, positive: bool) -> Result<String, SqlError> {
        Ok(match condition {
            Condition::True => "(1 = 1)".to_owned(),
            Condition::False => "(1 = 0)".to_owned(),
            Condition::And { args } => self.join(args, " AND ", positive)?,
            Condition::Or { args } => self.join(args, " OR ", positive)?,
            Condition::Not { arg } => format!("NOT {}", self.write(arg, !positive)?),
            Condition::Has { attr } => format!("({} IS NOT NULL)", self.column(attr)?.source.sql()),
            Condition::Compare { op, attr, value } => {
                let column = self.column(attr)?.clone();
                let operand = self.operand(&column, Some(value));
                let param = self.literal(value);
                let op = match op {
                    Comparison::Eq => "=",
                    Comparison::Ne => "<>",
                    Comparison::Lt => "<",
                    Comparison::Le => "<=",
                    Comparison::Gt => ">",
                    Comparison::Ge => ">=",
                };
                self.guarded(&column, format!("({operand} {op} {param})"), positive)
            }
            Condition::In { attr, values } => {
                let column = self.column(attr)?.clone();
                let operand = self.operand(&column, values.first());
                let params: Vec<String> = values.iter().map(|value| self.literal(value)).collect();
                if params.is_empty() {
                    "(1 = 0)".to_owned()
                } else {
                    self.guarded(&column, format!("({operand} IN ({}))", params.join(", ")), positive)
                }
            }
            Condition::Like { attr, pattern } => {
                let column = self.column(attr)?.clone();
                let elements = pattern_elements(pattern);
                let atom = match self.dialect {
                    Dialect::Postgres => {
                        let param = self.bind(SqlParam::Text(like_pattern(&elements)));
                        format!("({} LIKE {param})", column.source.sql())
                    }
                    Dialect::Sqlite => {
                        let param = self.bind(SqlParam::Text(glob_pattern(&elements)));
                        format!("({} GLOB {param})", column.source.sql())
                    }
                };
                self.guarded(&column, atom, positive)
            }
            Condition::Contains { attr, value } => self.array(attr, "@>", std::slice::from_ref(value), positive)?,
            Condition::ContainsAll { attr, values } => self.array(attr, "@>", values, positive)?,
            Condition::ContainsAny { attr, values } => self.array(attr, "&&", values, positive)?,
            Condition::ContainedIn { attr, values } => self.array(attr, "<@", values, positive)?,
            Condition::IsEmpty { attr } => {
                let column = self.column(attr)?.clone();
                if self.dialect == Dialect::Sqlite {
                    return Err(SqlError::SetOnSqlite(attr.clone()));
                }
                self.guarded(&column, format!("(cardinality({}) = 0)", column.source.sql()), positive)
            }
            Condition::IdIn { ids } => {
                let id = self.mapping.id_sql();
                let operand = match self.dialect {
                    Dialect::Sqlite => format!("{id} COLLATE BINARY"),
                    Dialect::Postgres => id,
                };
                let params: Vec<String> = ids.iter().map(|id| self.bind(SqlParam::Text(id.clone()))).collect();
                if params.is_empty() { "(1 = 0)".to_owned() } else { format!("({operand} IN ({}))", params.join(", ")) }
            }
            Condition::ParentIn { ids } => {
                let column = self.mapping.parent.as_ref().ok_or(SqlError::NoParent)?.column.clone();
                let text = Literal::String(String::new());
                let operand = self.operand(&column, Some(&text));
                let params: Vec<String> = ids.iter().map(|id| self.bind(SqlParam::Text(id.clone()))).collect();
                if params.is_empty() {
                    "(1 = 0)".to_owned()
                } else {
                    self.guarded(&column, format!("({operand} IN ({}))", params.join(", ")), positive)
                }
            }
        })
    }

    fn join(&mut self, args: &[Condition], separator: &str, positive: bool) -> Result<String, SqlError> {
        let parts = args.iter().map(|arg| self.write(arg, positive)).collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(separator)))
    }

    fn array(&mut self, attr: &str, op: &str, values: &[Literal], positive: bool) -> Result<String, SqlError> {
        let column = self.column(attr)?.clone();
        if self.dialect == Dialect::Sqlite {
            return Err(SqlError::SetOnSqlite(attr.to_owned()));
        }
        let element = match values.first() {
            Some(Literal::Long(_)) => "bigint[]",
            Some(Literal::Bool(_)) => "boolean[]",
            _ => "text[]",
        };
        let params: Vec<String> = values.iter().map(|value| self.literal(value)).collect();
        let atom = format!("({} {op} ARRAY[{}]::{element})", column.source.sql(), params.join(", "));
        Ok(self.guarded(&column, atom, positive))
    }
}

/// A Cedar pattern as a PostgreSQL `LIKE` pattern (backslash escapes).
fn like_pattern(elements: &[PatternElement]) -> String {
    let mut pattern = String::new();
    for element in elements {
        match element {
            PatternElement::Wildcard => pattern.push('%'),
            PatternElement::Char(c @ ('%' | '_' | '\\')) => {
                pattern.push('\\');
                pattern.push(*c);
            }
            PatternElement::Char(c) => pattern.push(*c),
        }
    }
    pattern
}

/// A Cedar pattern as an SQLite `GLOB` pattern (bracket escapes).
fn glob_pattern(elements: &[PatternElement]) -> String {
    let mut pattern = String::new();
    for element in elements {
        match element {
            PatternElement::Wildcard => pattern.push('*'),
            PatternElement::Char(c @ ('*' | '?' | '[')) => {
                pattern.push('[');
                pattern.push(*c);
                pattern.push(']');
            }
            PatternElement::Char(c) => pattern.push(*c),
        }
    }
    pattern
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::filter::condition::pattern_text;
    use crate::filter::mapping::{ParentMapping, SqlSource};

    fn mapping() -> ResourceMapping {
        let column = |name: &str, nullable: bool| MappedColumn { source: SqlSource::Column(name.into()), nullable };
        ResourceMapping {
            table: "stock".into(),
            id_column: "id".into(),
            attributes: BTreeMap::from([
                ("org_id".into(), column("org_id", false)),
                ("qty".into(), column("qty", true)),
                ("name".into(), MappedColumn { source: SqlSource::Expression("lower(name)".into()), nullable: true }),
                ("tags".into(), column("tags", true)),
            ]),
            parent: Some(ParentMapping { type_name: "Org".into(), column: column("org_id", false) }),
        }
    }

    fn text(value: &str) -> Literal {
        Literal::String(value.into())
    }

    fn both(condition: &Condition) -> (SqlWhere, SqlWhere) {
        (
            to_sql(condition, &mapping(), Dialect::Postgres, 1).unwrap(),
            to_sql(condition, &mapping(), Dialect::Sqlite, 1).unwrap(),
        )
    }

    #[test]
    fn every_comparison_binds_its_value() {
        for (op, sql) in [
            (Comparison::Eq, "="),
            (Comparison::Ne, "<>"),
            (Comparison::Lt, "<"),
            (Comparison::Le, "<="),
            (Comparison::Gt, ">"),
            (Comparison::Ge, ">="),
        ] {
            let (pg, lite) = both(&Condition::compare(op, "qty", Literal::Long(i64::MAX)));
            assert_eq!(pg.clause, format!("(\"qty\" {sql} $1)"));
            assert_eq!(lite.clause, pg.clause);
            assert_eq!(pg.params, [SqlParam::Long(i64::MAX)]);
        }
    }

    #[test]
    fn strings_compare_binary_on_sqlite_and_plainly_on_postgres() {
        let (pg, lite) = both(&Condition::compare(Comparison::Eq, "org_id", text("O'1")));
        assert_eq!(pg.clause, r#"("org_id" = $1)"#);
        assert_eq!(lite.clause, r#"("org_id" COLLATE BINARY = $1)"#);
        assert_eq!(lite.params, [SqlParam::Text("O'1".into())]);
    }

    #[test]
    fn negated_atoms_on_nullable_columns_are_guarded_against_null() {
        let condition = Condition::compare(Comparison::Eq, "qty", Literal::Long(1)).negate();
        let (pg, _) = both(&condition);
        assert_eq!(pg.clause, r#"NOT ("qty" IS NOT NULL AND ("qty" = $1))"#);
        let not_null = Condition::compare(Comparison::Eq, "org_id", text("o")).negate();
        assert_eq!(both(&not_null).0.clause, r#"NOT ("org_id" = $1)"#, "org_id cannot be NULL");
        let twice = Condition::And { args: vec![condition.clone(), Condition::Has { attr: "qty".into() }] }.negate();
        assert_eq!(both(&twice).0.clause, r#"NOT (NOT ("qty" = $1) AND ("qty" IS NOT NULL))"#);
    }

    #[test]
    fn like_escapes_sql_wildcards_and_keeps_cedars() {
        let pattern = pattern_text(&[
            PatternElement::Char('%'),
            PatternElement::Wildcard,
            PatternElement::Char('_'),
            PatternElement::Char('\\'),
            PatternElement::Char('*'),
            PatternElement::Char('?'),
            PatternElement::Char('['),
        ]);
        let (pg, lite) = both(&Condition::Like { attr: "name".into(), pattern });
        assert_eq!(pg.clause, r#"((lower(name)) LIKE $1)"#);
        assert_eq!(pg.params, [SqlParam::Text(r"\%%\_\\*?[".into())]);
        assert_eq!(lite.clause, r#"((lower(name)) GLOB $1)"#);
        assert_eq!(lite.params, [SqlParam::Text(r"%*_\[*][?][[]".into())]);
    }

    #[test]
    fn membership_ids_and_parents() {
        let (pg, lite) = both(&Condition::one_of("org_id", vec![text("a"), text("b")]));
        assert_eq!(pg.clause, r#"("org_id" IN ($1, $2))"#);
        assert_eq!(lite.clause, r#"("org_id" COLLATE BINARY IN ($1, $2))"#);
        let (pg, lite) = both(&Condition::IdIn { ids: vec!["x".into()] });
        assert_eq!(pg.clause, r#"("id" IN ($1))"#);
        assert_eq!(lite.clause, r#"("id" COLLATE BINARY IN ($1))"#);
        let (pg, _) = both(&Condition::ParentIn { ids: vec!["o".into()] });
        assert_eq!(pg.clause, r#"("org_id" IN ($1))"#);
        let has = both(&Condition::Has { attr: "qty".into() }).0;
        assert_eq!(has.clause, r#"("qty" IS NOT NULL)"#);
        assert_eq!(both(&Condition::True).1.clause, "(1 = 1)");
        assert_eq!(both(&Condition::False).1.clause, "(1 = 0)");
    }

    #[test]
    fn sets_are_arrays_on_postgres_and_refused_on_sqlite() {
        let cases = [
            (Condition::Contains { attr: "tags".into(), value: text("a") }, r#"("tags" @> ARRAY[$3]::text[])"#),
            (
                Condition::ContainsAll { attr: "tags".into(), values: vec![text("a"), text("b")] },
                r#"("tags" @> ARRAY[$3, $4]::text[])"#,
            ),
            (
                Condition::ContainsAny { attr: "tags".into(), values: vec![text("a")] },
                r#"("tags" && ARRAY[$3]::text[])"#,
            ),
            (
                Condition::ContainedIn { attr: "tags".into(), values: vec![Literal::Long(1)] },
                r#"("tags" <@ ARRAY[$3]::bigint[])"#,
            ),
            (Condition::IsEmpty { attr: "tags".into() }, r#"(cardinality("tags") = 0)"#),
        ];
        for (condition, expected) in cases {
            assert_eq!(to_sql(&condition, &mapping(), Dialect::Postgres, 3).unwrap().clause, expected);
            assert_eq!(to_sql(&condition, &mapping(), Dialect::Sqlite, 1), Err(SqlError::SetOnSqlite("tags".into())));
        }
    }

    #[test]
    fn unmapped_attributes_are_an_error_not_a_guess() {
        let condition = Condition::Has { attr: "secret".into() };
        assert_eq!(to_sql(&condition, &mapping(), Dialect::Postgres, 1), Err(SqlError::Unmapped("secret".into())));
    }
}
