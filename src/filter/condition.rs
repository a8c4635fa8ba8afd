//! The condition tree: which resources a principal may act on, as a boolean formula over the
//! resource's attributes, serialised as JSON for backends that filter elsewhere than in SQL (an
//! ORM, a search index).
//!
//! # Format
//!
//! Every node is an object whose `op` names it:
//!
//! | node | meaning |
//! | --- | --- |
//! | `{"op":"true"}`, `{"op":"false"}` | constants |
//! | `{"op":"and","args":[c, …]}` | all of `args` hold (two or more) |
//! | `{"op":"or","args":[c, …]}` | at least one of `args` holds (two or more) |
//! | `{"op":"not","arg":c}` | `arg` does not hold |
//! | `{"op":"has","attr":"a"}` | the resource has attribute `a` (its column is not NULL) |
//! | `{"op":"eq"\|"ne"\|"lt"\|"le"\|"gt"\|"ge","attr":"a","value":v}` | `a` compared with `v` |
//! | `{"op":"like","attr":"a","pattern":"p"}` | `a` matches the Cedar pattern `p` |
//! | `{"op":"in","attr":"a","values":[v, …]}` | `a` equals one of `values` |
//! | `{"op":"contains","attr":"a","value":v}` | set attribute `a` has element `v` |
//! | `{"op":"contains_all","attr":"a","values":[…]}` | set `a` has every one of `values` |
//! | `{"op":"contains_any","attr":"a","values":[…]}` | set `a` has at least one of `values` |
//! | `{"op":"contained_in","attr":"a","values":[…]}` | every element of set `a` is in `values` |
//! | `{"op":"is_empty","attr":"a"}` | set `a` is empty |
//! | `{"op":"id_in","ids":["…"]}` | the resource's id is one of `ids` |
//! | `{"op":"parent_in","ids":["…"]}` | the resource's mapped parent's id is one of `ids` |
//!
//! - `attr` names a Cedar attribute of the resource type, never a column; the mapping in the
//!   configuration says where it lives.
//! - A value `v` is a JSON string (Cedar `String`), an integer (Cedar `Long`, all 64 bits: read
//!   it as an `i64`, not a double) or a boolean. Strings compare exactly: code point by code
//!   point, case-sensitive, no normalisation, no collation.
//! - `lt`, `le`, `gt`, `ge` only ever carry integers (Cedar orders no strings).
//! - A `like` pattern is Cedar's: `*` matches any sequence of characters (none included),
//!   `\*` is a literal star, `\\` a literal backslash, every other character stands for itself.
//!
//! # Absent attributes
//!
//! Every node that reads an attribute (all but the constants, `and`, `or`, `not`, `has` and
//! `id_in`) is **false when the attribute is absent** (NULL): `ne` included, so that
//! `{"op":"ne","attr":"a","value":1}` means "`a` is present and differs from 1", and `not` is
//! plain boolean negation, so `{"op":"not","arg":{"op":"eq",…}}` holds for a resource without
//! the attribute. The translator has already placed the `has` tests Cedar's error semantics
//! call for, so a backend applies this two-valued reading literally and gets exactly the rows
//! `/v1/check` allows.

use serde::Serialize;

/// A literal a condition compares with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Literal {
    /// Cedar `Bool`.
    Bool(bool),
    /// Cedar `Long`.
    Long(i64),
    /// Cedar `String`.
    String(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparison {
    /// The comparison that holds exactly when this one does not (both present).
    pub fn negated(self) -> Self {
        match self {
            Self::Eq => Self::Ne,
            Self::Ne => Self::Eq,
            Self::Lt => Self::Ge,
            Self::Le => Self::Gt,
            Self::Gt => Self::Le,
            Self::Ge => Self::Lt,
        }
    }

    /// The comparison with its operands swapped: `v < a` is `a > v`.
    pub fn flipped(self) -> Self {
        match self {
            Self::Eq | Self::Ne => self,
            Self::Lt => Self::Gt,
            Self::Le => Self::Ge,
            Self::Gt => Self::Lt,
            Self::Ge => Self::Le,
        }
    }
}

/// A boolean formula over one resource's attributes; see the module doc for its meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Condition {
    /// Always holds.
    True,
    /// Never holds.
    False,
    /// All hold.
    And {
        /// Two or more conditions.
        args: Vec<Condition>,
    },
    /// One holds.
    Or {
        /// Two or more conditions.
        args: Vec<Condition>,
    },
    /// Does not hold.
    Not {
        /// The negated condition.
        arg: Box<Condition>,
    },
    /// The attribute is present.
    Has {
        /// Attribute name.
        attr: String,
    },
    /// `attr like pattern`, false when absent.
    Like {
        /// Attribute name.
        attr: String,
        /// Cedar pattern (`*` wildcard, `\*` literal star, `\\` literal backslash).
        pattern: String,
    },
    /// The attribute equals one of `values`, false when absent.
    In {
        /// Attribute name.
        attr: String,
        /// One or more literals.
        values: Vec<Literal>,
    },
    /// The set attribute has `value`, false when absent.
    Contains {
        /// Attribute name.
        attr: String,
        /// The element.
        value: Literal,
    },
    /// The set attribute has all of `values`, false when absent.
    ContainsAll {
        /// Attribute name.
        attr: String,
        /// One or more elements.
        values: Vec<Literal>,
    },
    /// The set attribute has one of `values`, false when absent.
    ContainsAny {
        /// Attribute name.
        attr: String,
        /// One or more elements.
        values: Vec<Literal>,
    },
    /// Every element of the set attribute is one of `values`, false when absent.
    ContainedIn {
        /// Attribute name.
        attr: String,
        /// One or more elements.
        values: Vec<Literal>,
    },
    /// The set attribute is empty, false when absent.
    IsEmpty {
        /// Attribute name.
        attr: String,
    },
    /// The resource's id is one of `ids`.
    IdIn {
        /// One or more ids.
        ids: Vec<String>,
    },
    /// The resource's mapped parent is one of `ids` (false without a parent).
    ParentIn {
        /// One or more parent ids.
        ids: Vec<String>,
    },
    /// `attr <op> value`, false when absent (last: serde wants untagged variants last).
    #[serde(untagged)]
    Compare {
        /// The operator, serialised as `op`.
        op: Comparison,
        /// Attribute name.
        attr: String,
        /// The literal.
        value: Literal,
    },
}

impl Condition {
    /// All of `args`, flattened and folded: `and([])` is `true`, a `false` argument wins.
    pub fn and(args: impl IntoIterator<Item = Condition>) -> Self {
        let mut flat = Vec::new();
        for arg in args {
            match arg {
                Self::True => {}
                Self::False => return Self::False,
                Self::And { args } => flat.extend(args),
                other => flat.push(other),
            }
        }
        dedup(&mut flat);
        match flat.len() {
            0 => Self::True,
            1 => flat.pop().unwrap_or(Self::True),
            _ => Self::And { args: flat },
        }
    }

    /// One of `args`, flattened and folded: `or([])` is `false`, a `true` argument wins.
    pub fn or(args: impl IntoIterator<Item = Condition>) -> Self {
        let mut flat = Vec::new();
        for arg in args {
            match arg {
                Self::False => {}
                Self::True => return Self::True,
                Self::Or { args } => flat.extend(args),
                other => flat.push(other),
            }
        }
        dedup(&mut flat);
        match flat.len() {
            0 => Self::False,
            1 => flat.pop().unwrap_or(Self::False),
            _ => Self::Or { args: flat },
        }
    }

    /// The negation, folded: constants flip, double negations cancel.
    pub fn negate(self) -> Self {
        match self {
            Self::True => Self::False,
            Self::False => Self::True,
            Self::Not { arg } => *arg,
            other => Self::Not { arg: Box::new(other) },
        }
    }

    /// `attr <op> value`.
    pub fn compare(op: Comparison, attr: &str, value: Literal) -> Self {
        Self::Compare { op, attr: attr.to_owned(), value }
    }

    /// `attr` is one of `values`: `false` for none, `eq` for one.
    pub fn one_of(attr: &str, mut values: Vec<Literal>) -> Self {
        values.sort();
        values.dedup();
        match values.len() {
            0 => Self::False,
            1 => match values.pop() {
                Some(value) => Self::compare(Comparison::Eq, attr, value),
                None => Self::False,
            },
            _ => Self::In { attr: attr.to_owned(), values },
        }
    }

    /// Number of nodes, to bound what a translation may produce.
    pub fn size(&self) -> usize {
        match self {
            Self::And { args } | Self::Or { args } => 1 + args.iter().map(Self::size).sum::<usize>(),
            Self::Not { arg } => 1 + arg.size(),
            _ => 1,
        }
    }

    /// Whether this is a constant.
    pub fn constant(&self) -> Option<bool> {
        match self {
            Self::True => Some(true),
            Self::False => Some(false),
            _ => None,
        }
    }
}

fn dedup(args: &mut Vec<Condition>) {
    let mut seen: Vec<Condition> = Vec::with_capacity(args.len());
    args.retain(|arg| {
        if seen.contains(arg) {
            false
        } else {
            seen.push(arg.clone());
            true
        }
    });
}

/// Writes a Cedar `like` pattern in the tree's string form (see the module doc).
pub fn pattern_text(elements: &[PatternElement]) -> String {
    let mut text = String::new();
    for element in elements {
        match element {
            PatternElement::Wildcard => text.push('*'),
            PatternElement::Char(c @ ('*' | '\\')) => {
                text.push('\\');
                text.push(*c);
            }
            PatternElement::Char(c) => text.push(*c),
        }
    }
    text
}

/// Reads the tree's pattern string back into elements.
pub fn pattern_elements(text: &str) -> Vec<PatternElement> {
    let mut elements = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => elements.push(PatternElement::Wildcard),
            '\\' => elements.push(PatternElement::Char(chars.next().unwrap_or('\\'))),
            c => elements.push(PatternElement::Char(c)),
        }
    }
    elements
}

/// One element of a `like` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternElement {
    /// A character standing for itself.
    Char(char),
    /// `*`: any sequence of characters.
    Wildcard,
}

/// A two-valued evaluator of the tree over one row, as the module doc defines it: the oracle
/// the translation tests compare Cedar against.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;

    use super::*;

    /// One attribute's value in a test row.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        /// A scalar.
        Lit(Literal),
        /// A set.
        Set(Vec<Literal>),
    }

    /// A test row: id, parent id, attributes (absent = NULL).
    #[derive(Debug, Clone, Default)]
    pub struct Row {
        pub id: String,
        pub parent: Option<String>,
        pub attrs: BTreeMap<String, Value>,
    }

    pub fn eval(condition: &Condition, row: &Row) -> bool {
        let lit = |attr: &str| match row.attrs.get(attr) {
            Some(Value::Lit(value)) => Some(value),
            _ => None,
        };
        let set = |attr: &str| match row.attrs.get(attr) {
            Some(Value::Set(values)) => Some(values),
            _ => None,
        };
        match condition {
            Condition::True => true,
            Condition::False => false,
            Condition::And { args } => args.iter().all(|arg| eval(arg, row)),
            Condition::Or { args } => args.iter().any(|arg| eval(arg, row)),
            Condition::Not { arg } => !eval(arg, row),
            Condition::Has { attr } => row.attrs.contains_key(attr),
            Condition::Compare { op, attr, value } => lit(attr).is_some_and(|have| match op {
                Comparison::Eq => have == value,
                Comparison::Ne => have != value,
                Comparison::Lt => have < value,
                Comparison::Le => have <= value,
                Comparison::Gt => have > value,
                Comparison::Ge => have >= value,
            }),
            Condition::Like { attr, pattern } => match lit(attr) {
                Some(Literal::String(text)) => {
                    let chars: Vec<char> = text.chars().collect();
                    matches(&pattern_elements(pattern), &chars)
                }
                _ => false,
            },
            Condition::In { attr, values } => lit(attr).is_some_and(|have| values.contains(have)),
            Condition::Contains { attr, value } => set(attr).is_some_and(|have| have.contains(value)),
            Condition::ContainsAll { attr, values } => {
                set(attr).is_some_and(|have| values.iter().all(|value| have.contains(value)))
            }
            Condition::ContainsAny { attr, values } => {
                set(attr).is_some_and(|have| values.iter().any(|value| have.contains(value)))
            }
            Condition::ContainedIn { attr, values } => {
                set(attr).is_some_and(|have| have.iter().all(|value| values.contains(value)))
            }
            Condition::IsEmpty { attr } => set(attr).is_some_and(Vec::is_empty),
            Condition::IdIn { ids } => ids.contains(&row.id),
            Condition::ParentIn { ids } => row.parent.as_ref().is_some_and(|parent| ids.contains(parent)),
        }
    }

    fn matches(pattern: &[PatternElement], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((PatternElement::Wildcard, rest)) => (0..=text.len()).any(|skip| matches(rest, &text[skip..])),
            Some((PatternElement::Char(c), rest)) => text.first() == Some(c) && matches(rest, &text[1..]),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_tree_serialises_as_documented() {
        let condition = Condition::and([
            Condition::compare(Comparison::Eq, "org_id", Literal::String("o1".into())),
            Condition::or([
                Condition::Has { attr: "qty".into() },
                Condition::compare(Comparison::Ge, "qty", Literal::Long(i64::MIN)),
            ])
            .negate(),
            Condition::one_of("kind", vec![Literal::String("b".into()), Literal::String("a".into())]),
            Condition::Like { attr: "name".into(), pattern: pattern_text(&pattern_elements(r"a*\*\\")) },
            Condition::IdIn { ids: vec!["x".into()] },
        ]);
        assert_eq!(
            serde_json::to_value(&condition).unwrap(),
            json!({"op": "and", "args": [
                {"op": "eq", "attr": "org_id", "value": "o1"},
                {"op": "not", "arg": {"op": "or", "args": [
                    {"op": "has", "attr": "qty"},
                    {"op": "ge", "attr": "qty", "value": i64::MIN},
                ]}},
                {"op": "in", "attr": "kind", "values": ["a", "b"]},
                {"op": "like", "attr": "name", "pattern": r"a*\*\\"},
                {"op": "id_in", "ids": ["x"]},
            ]})
        );
        assert_eq!(serde_json::to_value(Condition::True).unwrap(), json!({"op": "true"}));
        assert_eq!(
            serde_json::to_value(Condition::IsEmpty { attr: "t".into() }).unwrap(),
            json!({"op": "is_empty", "attr": "t"})
        );
    }

    #[test]
    fn constants_fold_and_negations_cancel() {
        let atom = || Condition::Has { attr: "a".into() };
        assert_eq!(Condition::and([Condition::True, atom()]), atom());
        assert_eq!(Condition::and([atom(), Condition::False]), Condition::False);
        assert_eq!(Condition::or([Condition::False, atom(), atom()]), atom());
        assert_eq!(Condition::or([atom(), Condition::True]), Condition::True);
        assert_eq!(atom().negate().negate(), atom());
        assert_eq!(Condition::and(Vec::new()), Condition::True);
        assert_eq!(Condition::or(Vec::new()), Condition::False);
        assert_eq!(Condition::one_of("a", Vec::new()), Condition::False);
    }
}
