//! Residual policy → [`Condition`], with Cedar's error semantics kept exactly.
//!
//! # Why the PST
//!
//! The residuals are walked through the public syntax tree (`Policy::to_pst`, Cedar 4.11+)
//! rather than the JSON EST (`Policy::to_json`): the PST is a typed Rust enum, so a construct
//! this module does not know is a compile-time or `_`-arm refusal instead of a JSON shape
//! silently misread; its enums are `#[non_exhaustive]`, so a new Cedar construct lands in the
//! refusing arm; and it has a node for TPE's "this subexpression errors" residual
//! (`Expr::ResidualError`), which the EST has no way to write.
//!
//! # Three outcomes per expression
//!
//! Cedar evaluates a boolean expression to true, false or an error; poolgate denies on any
//! error. Each expression is therefore translated into three conditions over a row, exactly one
//! of which holds for any row ([`Tri`]): `t` (it is true), `f` (false) and `e` (it errors).
//! `&&`, `||` and `if` combine them following Cedar's left-to-right short-circuit evaluation:
//!
//! - `a && b`: `t = a.t ∧ b.t`, `f = a.f ∨ (a.t ∧ b.f)`, `e = a.e ∨ (a.t ∧ b.e)`
//! - `a || b`: `t = a.t ∨ (a.f ∧ b.t)`, `f = a.f ∧ b.f`, `e = a.e ∨ (a.f ∧ b.e)`
//! - `!a`: `t = a.f`, `f = a.t`, `e = a.e`
//! - `if c then x else y`: `t = c.t ∧ x.t ∨ c.f ∧ y.t`, likewise `f`; `e = c.e ∨ c.t ∧ x.e ∨ c.f ∧ y.e`
//!
//! The only errors left in a residual over a validated policy are reading an absent attribute
//! (`e = ¬has`) and subexpressions TPE already knows to error (`e = true`).

use cedar_policy::pst;

use crate::filter::condition::{Comparison, Condition, Literal, PatternElement, pattern_text};
use crate::filter::mapping::ResourceMapping;
use crate::filter::shape::{AttrType, TypeShape};

/// Largest condition a translation may produce, in nodes; past it the policy is refused.
const MAX_NODES: usize = 10_000;

/// Why one expression cannot be translated: the construct, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not expressible with exact semantics.
    Unsupported(String),
    /// Reads an attribute the mapping lacks.
    Unmapped(String),
}

type Translated<T> = Result<T, Refusal>;

fn unsupported<T>(construct: impl Into<String>) -> Translated<T> {
    Err(Refusal::Unsupported(construct.into()))
}

/// The three mutually exclusive outcomes of a boolean expression on a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tri {
    /// The expression is true.
    pub t: Condition,
    /// The expression is false.
    pub f: Condition,
    /// Evaluating the expression errors.
    pub e: Condition,
}

impl Tri {
    fn constant(value: bool) -> Self {
        if value {
            Self { t: Condition::True, f: Condition::False, e: Condition::False }
        } else {
            Self { t: Condition::False, f: Condition::True, e: Condition::False }
        }
    }

    fn error() -> Self {
        Self { t: Condition::False, f: Condition::False, e: Condition::True }
    }

    /// An atom that is false when the attribute is absent, reading an attribute whose presence
    /// is `present`; `f` is given when a cheaper form than `present ∧ ¬t` exists.
    fn atom(t: Condition, f: Option<Condition>, present: &Condition) -> Self {
        let f = f.unwrap_or_else(|| Condition::and([present.clone(), t.clone().negate()]));
        Self { t, f, e: present.clone().negate() }
    }

    fn not(self) -> Self {
        Self { t: self.f, f: self.t, e: self.e }
    }

    fn and(a: Self, b: Self) -> Self {
        let a_errorless = a.e == Condition::False;
        // Without errors on the left, `a.f ∨ (a.t ∧ b.f)` is `a.f ∨ b.f`.
        let f = if a_errorless {
            Condition::or([a.f.clone(), b.f])
        } else {
            Condition::or([a.f.clone(), Condition::and([a.t.clone(), b.f])])
        };
        let e = Condition::or([a.e, Condition::and([a.t.clone(), b.e])]);
        Self { t: Condition::and([a.t, b.t]), f, e }
    }

    fn or(a: Self, b: Self) -> Self {
        let a_errorless = a.e == Condition::False;
        let t = if a_errorless {
            Condition::or([a.t.clone(), b.t])
        } else {
            Condition::or([a.t.clone(), Condition::and([a.f.clone(), b.t])])
        };
        let e = Condition::or([a.e, Condition::and([a.f.clone(), b.e])]);
        Self { t, f: Condition::and([a.f, b.f]), e }
    }

    fn ite(c: Self, x: Self, y: Self) -> Self {
        let branch = |pick: fn(&Self) -> &Condition| {
            Condition::or([
                Condition::and([c.t.clone(), pick(&x).clone()]),
                Condition::and([c.f.clone(), pick(&y).clone()]),
            ])
        };
        let t = branch(|tri| &tri.t);
        let f = branch(|tri| &tri.f);
        let e = Condition::or([c.e.clone(), branch(|tri| &tri.e)]);
        Self { t, f, e }
    }

    fn size(&self) -> usize {
        self.t.size() + self.f.size() + self.e.size()
    }
}

/// What a translation reads: the resource type, its schema shape and its mapping.
pub(crate) struct Target<'a> {
    /// Fully qualified resource type, e.g. `Merchant::Stock`.
    pub resource_type: &'a str,
    /// The pool's namespace, e.g. `Merchant`.
    pub namespace: &'a str,
    /// The type's attributes in the schema.
    pub shape: &'a TypeShape,
    /// Where its rows live, if mapped.
    pub mapping: Option<&'a ResourceMapping>,
}

/// A non-boolean value in a residual.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    /// `resource.<attr>`, with its type.
    Attr(String, AttrType),
    /// A scalar literal.
    Lit(Literal),
    /// A set of scalar literals (a folded `principal.flags`, say).
    Set(Vec<Literal>),
    /// An entity literal: (fully qualified type, id).
    Entity(String, String),
    /// A set of entity literals.
    Entities(Vec<(String, String)>),
    /// `resource` itself.
    Resource,
}

impl Target<'_> {
    /// Translates one residual policy body (its `when`/`unless` clauses, in order).
    pub fn policy(&self, policy: &pst::Policy) -> Translated<Tri> {
        let body = policy.body();
        if !matches!(body.principal, pst::PrincipalConstraint::Any)
            || !matches!(body.action, pst::ActionConstraint::Any)
            || !matches!(body.resource, pst::ResourceConstraint::Any)
        {
            return unsupported("a residual with a scope constraint");
        }
        let mut tri = Tri::constant(true);
        for clause in body.clauses() {
            let next = match clause {
                pst::Clause::When(expr) => self.boolean(expr)?,
                pst::Clause::Unless(expr) => self.boolean(expr)?.not(),
            };
            tri = Tri::and(tri, next);
        }
        if tri.size() > MAX_NODES {
            return unsupported(format!("a condition of more than {MAX_NODES} nodes"));
        }
        Ok(tri)
    }

    fn boolean(&self, expr: &pst::Expr) -> Translated<Tri> {
        use pst::{BinaryOp as B, Expr as E, UnaryOp as U};
        match expr {
            E::Literal(pst::Literal::Bool(value)) => Ok(Tri::constant(*value)),
            E::ResidualError => Ok(Tri::error()),
            E::UnaryOp { op: U::Not, expr } => Ok(self.boolean(expr)?.not()),
            E::UnaryOp { op: U::IsEmpty, expr } => match self.term(expr)? {
                Term::Attr(attr, AttrType::Set(_)) => {
                    Ok(Tri::atom(Condition::IsEmpty { attr: attr.clone() }, None, &self.present(&attr)?))
                }
                Term::Set(values) => Ok(Tri::constant(values.is_empty())),
                _ => unsupported("`isEmpty` on a value that is not a set attribute"),
            },
            E::BinaryOp { op: B::And, left, right } => Ok(Tri::and(self.boolean(left)?, self.boolean(right)?)),
            E::BinaryOp { op: B::Or, left, right } => Ok(Tri::or(self.boolean(left)?, self.boolean(right)?)),
            E::IfThenElse { cond, then_expr, else_expr } => {
                Ok(Tri::ite(self.boolean(cond)?, self.boolean(then_expr)?, self.boolean(else_expr)?))
            }
            E::BinaryOp { op, left, right } => {
                let comparison = match op {
                    B::Eq => Some(Comparison::Eq),
                    B::NotEq => Some(Comparison::Ne),
                    B::Less => Some(Comparison::Lt),
                    B::LessEq => Some(Comparison::Le),
                    B::Greater => Some(Comparison::Gt),
                    B::GreaterEq => Some(Comparison::Ge),
                    _ => None,
                };
                if let Some(comparison) = comparison {
                    return self.compare(comparison, self.term(left)?, self.term(right)?);
                }
                match op {
                    B::In => self.hierarchy(self.term(left)?, self.term(right)?),
                    B::Contains | B::ContainsAll | B::ContainsAny => {
                        self.set_operation(*op, self.term(left)?, self.term(right)?)
                    }
                    other => unsupported(format!("the operator `{other}`")),
                }
            }
            E::GetAttr { .. } => match self.term(expr)? {
                Term::Attr(attr, AttrType::Bool) => {
                    let present = self.present(&attr)?;
                    let is = |value: bool| Condition::compare(Comparison::Eq, &attr, Literal::Bool(value));
                    Ok(Tri::atom(is(true), Some(is(false)), &present))
                }
                _ => unsupported("an attribute used as a condition that is not a boolean resource attribute"),
            },
            E::HasAttr { expr, attrs } => {
                if !matches!(expr.as_ref(), E::Var(pst::Var::Resource)) {
                    return unsupported("`has` on something other than `resource`");
                }
                if attrs.len() != 1 {
                    return unsupported("`has` with a nested attribute path");
                }
                let attr = attrs.first().as_str();
                if !self.shape.attributes.contains_key(attr) {
                    // The schema has no such attribute, so no valid resource has it.
                    return Ok(Tri::constant(false));
                }
                let present = self.present(attr)?;
                Ok(Tri { f: present.clone().negate(), t: present, e: Condition::False })
            }
            E::Is { expr, entity_type, in_expr } => {
                if !matches!(expr.as_ref(), E::Var(pst::Var::Resource)) {
                    return unsupported("`is` on something other than `resource`");
                }
                let is = Tri::constant(entity_type.to_string() == self.resource_type);
                match in_expr {
                    Some(parent) => Ok(Tri::and(is, self.hierarchy(Term::Resource, self.term(parent)?)?)),
                    None => Ok(is),
                }
            }
            E::Like { expr, pattern } => match self.term(expr)? {
                Term::Attr(attr, AttrType::String) => {
                    let elements: Vec<PatternElement> = pattern
                        .iter()
                        .map(|element| match element {
                            pst::PatternElem::Char(c) => PatternElement::Char(*c),
                            pst::PatternElem::Wildcard => PatternElement::Wildcard,
                        })
                        .collect();
                    let like = Condition::Like { attr: attr.clone(), pattern: pattern_text(&elements) };
                    Ok(Tri::atom(like, None, &self.present(&attr)?))
                }
                _ => unsupported("`like` on a value that is not a string resource attribute"),
            },
            E::Var(_) => unsupported("a variable used as a condition"),
            E::Unknown { .. } => unsupported("an unknown value"),
            _ => unsupported(describe(expr)),
        }
    }

    fn term(&self, expr: &pst::Expr) -> Translated<Term> {
        use pst::Expr as E;
        match expr {
            E::Literal(literal) => literal_term(literal),
            E::Var(pst::Var::Resource) => Ok(Term::Resource),
            E::Var(pst::Var::Principal) => unsupported("`principal` left unevaluated"),
            E::Var(pst::Var::Context) => unsupported("`context` left unevaluated"),
            E::Var(_) => unsupported("`action` left unevaluated"),
            E::GetAttr { expr, attr } => {
                if !matches!(expr.as_ref(), E::Var(pst::Var::Resource)) {
                    return unsupported(format!("the attribute `{attr}` of something other than `resource`"));
                }
                let Some(shape) = self.shape.attributes.get(attr.as_str()) else {
                    return unsupported(format!("the attribute `{attr}`, which the schema does not declare"));
                };
                if shape.ty == AttrType::Other {
                    return unsupported(format!(
                        "the attribute `{attr}`, of a type other than String, Long, Bool or a set of those"
                    ));
                }
                self.present(attr)?;
                Ok(Term::Attr(attr.to_string(), shape.ty.clone()))
            }
            E::Set(elements) => {
                let terms = elements.iter().map(|element| self.term(element)).collect::<Translated<Vec<_>>>()?;
                if terms.iter().all(|term| matches!(term, Term::Entity(..))) && !terms.is_empty() {
                    return Ok(Term::Entities(
                        terms
                            .into_iter()
                            .filter_map(|term| match term {
                                Term::Entity(ty, id) => Some((ty, id)),
                                _ => None,
                            })
                            .collect(),
                    ));
                }
                let mut values = Vec::with_capacity(terms.len());
                for term in terms {
                    match term {
                        Term::Lit(value) => values.push(value),
                        _ => return unsupported("a set holding something other than literals"),
                    }
                }
                values.sort();
                values.dedup();
                Ok(Term::Set(values))
            }
            _ => unsupported(describe(expr)),
        }
    }

    /// Whether the row has `attr`: `true` when the column cannot be NULL or the schema requires
    /// it (rows lacking a required attribute are excluded as a whole, see `plan`).
    pub fn present(&self, attr: &str) -> Translated<Condition> {
        let required = self.shape.attributes.get(attr).is_some_and(|shape| shape.required);
        let Some(mapping) = self.mapping else {
            // Without a mapping the tree speaks of attributes only, as if every one could be
            // absent; `plan` then requires the required ones of every resource.
            return Ok(if required { Condition::True } else { Condition::Has { attr: attr.to_owned() } });
        };
        let Some(column) = mapping.attributes.get(attr) else {
            return Err(Refusal::Unmapped(format!("the attribute `{attr}` is not mapped")));
        };
        Ok(if required || !column.nullable { Condition::True } else { Condition::Has { attr: attr.to_owned() } })
    }

    fn compare(&self, op: Comparison, left: Term, right: Term) -> Translated<Tri> {
        match (left, right) {
            (Term::Lit(value), Term::Attr(attr, ty)) => self.compare_attr(op.flipped(), &attr, &ty, value),
            (Term::Attr(attr, ty), Term::Lit(value)) => self.compare_attr(op, &attr, &ty, value),
            (Term::Lit(left), Term::Lit(right)) if matches!(op, Comparison::Eq | Comparison::Ne) => {
                Ok(Tri::constant((left == right) == (op == Comparison::Eq)))
            }
            (Term::Resource, Term::Entity(ty, id)) | (Term::Entity(ty, id), Term::Resource)
                if matches!(op, Comparison::Eq | Comparison::Ne) =>
            {
                let is = if ty == self.resource_type { Condition::IdIn { ids: vec![id] } } else { Condition::False };
                let tri = Tri { f: is.clone().negate(), t: is, e: Condition::False };
                Ok(if op == Comparison::Eq { tri } else { tri.not() })
            }
            (Term::Attr(attr, AttrType::Set(element)), Term::Set(values))
            | (Term::Set(values), Term::Attr(attr, AttrType::Set(element)))
                if matches!(op, Comparison::Eq | Comparison::Ne) =>
            {
                check_elements(&element, &values)?;
                let present = self.present(&attr)?;
                let equal =
                    Condition::and([contains_all(&attr, values.clone(), &present), contained_in(&attr, values)]);
                let tri = Tri::atom(equal, None, &present);
                Ok(if op == Comparison::Eq { tri } else { tri.not() })
            }
            (Term::Attr(..), Term::Attr(..)) => unsupported("a comparison of two attributes"),
            _ => unsupported(format!("the comparison `{}` of these operands", op_text(op))),
        }
    }

    fn compare_attr(&self, op: Comparison, attr: &str, ty: &AttrType, value: Literal) -> Translated<Tri> {
        let present = self.present(attr)?;
        let same_type = matches!(
            (ty, &value),
            (AttrType::String, Literal::String(_))
                | (AttrType::Long, Literal::Long(_))
                | (AttrType::Bool, Literal::Bool(_))
        );
        match op {
            Comparison::Eq | Comparison::Ne if !same_type => {
                // Cedar's `==` across types is false, but reading the attribute still errors.
                let equal = Tri { t: Condition::False, f: present.clone(), e: present.negate() };
                Ok(if op == Comparison::Eq { equal } else { equal.not() })
            }
            Comparison::Lt | Comparison::Le | Comparison::Gt | Comparison::Ge
                if !matches!((ty, &value), (AttrType::Long, Literal::Long(_))) =>
            {
                unsupported(format!("`{}` on something other than Long", op_text(op)))
            }
            _ => Ok(Tri::atom(
                Condition::compare(op, attr, value.clone()),
                Some(Condition::compare(op.negated(), attr, value)),
                &present,
            )),
        }
    }

    fn hierarchy(&self, left: Term, right: Term) -> Translated<Tri> {
        if left != Term::Resource {
            return unsupported("`in` with something other than `resource` on the left");
        }
        let targets = match right {
            Term::Entity(ty, id) => vec![(ty, id)],
            Term::Entities(targets) => targets,
            Term::Set(values) if values.is_empty() => Vec::new(),
            _ => return unsupported("`resource in` something other than entity literals"),
        };
        let parent_type = self
            .mapping
            .and_then(|mapping| mapping.parent.as_ref())
            .map(|parent| format!("{}::{}", self.namespace, parent.type_name));
        let mut ids = Vec::new();
        let mut parent_ids = Vec::new();
        for (ty, id) in targets {
            // A row's ancestors are itself and its one mapped parent, which forward-auth loads
            // and a `/v1/check` caller names (`resource.parents`): nothing deeper is loaded.
            if parent_type.as_deref() == Some(ty.as_str()) {
                parent_ids.push(id.clone());
            }
            if ty == self.resource_type {
                ids.push(id);
            } else if parent_type.as_deref() != Some(ty.as_str()) && self.shape.member_of.contains(&ty) {
                return unsupported(format!("`resource in {ty}`, whose parent relation is not mapped"));
            }
        }
        let mut args = Vec::new();
        if !ids.is_empty() {
            args.push(Condition::IdIn { ids });
        }
        if !parent_ids.is_empty() {
            args.push(Condition::ParentIn { ids: parent_ids });
        }
        let is = Condition::or(args);
        Ok(Tri { f: is.clone().negate(), t: is, e: Condition::False })
    }

    fn set_operation(&self, op: pst::BinaryOp, left: Term, right: Term) -> Translated<Tri> {
        use pst::BinaryOp as B;
        match (op, left, right) {
            (B::Contains, Term::Set(values), Term::Attr(attr, ty)) => {
                check_elements(&ty, &values)?;
                Ok(Tri::atom(Condition::one_of(&attr, values), None, &self.present(&attr)?))
            }
            (B::Contains, Term::Attr(attr, AttrType::Set(element)), Term::Lit(value)) => {
                check_elements(&element, std::slice::from_ref(&value))?;
                Ok(Tri::atom(Condition::Contains { attr: attr.clone(), value }, None, &self.present(&attr)?))
            }
            (B::ContainsAll, Term::Attr(attr, AttrType::Set(element)), Term::Set(values)) => {
                check_elements(&element, &values)?;
                let present = self.present(&attr)?;
                Ok(Tri::atom(contains_all(&attr, values, &present), None, &present))
            }
            (B::ContainsAll, Term::Set(values), Term::Attr(attr, AttrType::Set(element))) => {
                check_elements(&element, &values)?;
                Ok(Tri::atom(contained_in(&attr, values), None, &self.present(&attr)?))
            }
            (B::ContainsAny, Term::Attr(attr, AttrType::Set(element)), Term::Set(values))
            | (B::ContainsAny, Term::Set(values), Term::Attr(attr, AttrType::Set(element))) => {
                check_elements(&element, &values)?;
                let any = if values.is_empty() {
                    Condition::False
                } else {
                    Condition::ContainsAny { attr: attr.clone(), values }
                };
                Ok(Tri::atom(any, None, &self.present(&attr)?))
            }
            (B::Contains, Term::Set(values), Term::Lit(value)) => Ok(Tri::constant(values.contains(&value))),
            (B::ContainsAll, Term::Set(left), Term::Set(right)) => {
                Ok(Tri::constant(right.iter().all(|value| left.contains(value))))
            }
            (B::ContainsAny, Term::Set(left), Term::Set(right)) => {
                Ok(Tri::constant(right.iter().any(|value| left.contains(value))))
            }
            (op, ..) => unsupported(format!("`{op}` on these operands")),
        }
    }
}

/// `attr` holds every one of `values`; with none, only presence remains.
fn contains_all(attr: &str, values: Vec<Literal>, present: &Condition) -> Condition {
    if values.is_empty() {
        // `has` is the one atom that is not false when absent; `present` is true when the
        // attribute cannot be absent, and then any set contains the empty set.
        present.clone()
    } else {
        Condition::ContainsAll { attr: attr.to_owned(), values }
    }
}

/// Every element of `attr` is one of `values`; with none, `attr` is empty.
fn contained_in(attr: &str, values: Vec<Literal>) -> Condition {
    if values.is_empty() {
        Condition::IsEmpty { attr: attr.to_owned() }
    } else {
        Condition::ContainedIn { attr: attr.to_owned(), values }
    }
}

/// Refuses literals of another type than the attribute's elements: Cedar would answer `false`
/// where the SQL would fail on a type mismatch.
fn check_elements(element: &AttrType, values: &[Literal]) -> Translated<()> {
    let fits = |value: &Literal| {
        matches!(
            (element, value),
            (AttrType::String, Literal::String(_))
                | (AttrType::Long, Literal::Long(_))
                | (AttrType::Bool, Literal::Bool(_))
        )
    };
    if values.iter().all(fits) { Ok(()) } else { unsupported("a set operation mixing value types") }
}

fn literal_term(literal: &pst::Literal) -> Translated<Term> {
    Ok(match literal {
        pst::Literal::Bool(value) => Term::Lit(Literal::Bool(*value)),
        pst::Literal::Long(value) => Term::Lit(Literal::Long(*value)),
        pst::Literal::String(value) => Term::Lit(Literal::String(value.to_string())),
        pst::Literal::EntityUID(uid) => Term::Entity(uid.ty.to_string(), uid.eid.to_string()),
        _ => return unsupported("a literal of an unknown kind"),
    })
}

fn op_text(op: Comparison) -> &'static str {
    match op {
        Comparison::Eq => "==",
        Comparison::Ne => "!=",
        Comparison::Lt => "<",
        Comparison::Le => "<=",
        Comparison::Gt => ">",
        Comparison::Ge => ">=",
    }
}

/// A short name of a construct, for refusals.
fn describe(expr: &pst::Expr) -> String {
    use pst::Expr as E;
    match expr {
        E::UnaryOp { op, .. } => format!("the operator `{op}`"),
        E::BinaryOp { op, .. } => format!("the operator `{op}`"),
        E::Record(_) => "a record".to_owned(),
        E::Set(_) => "a set".to_owned(),
        E::Slot(_) => "a template slot".to_owned(),
        E::IfThenElse { .. } => "an `if` whose value is not boolean".to_owned(),
        E::GetAttr { attr, .. } => format!("the attribute access `.{attr}`"),
        E::Literal(_) => "a literal where a condition was expected".to_owned(),
        _ => "an expression".to_owned(),
    }
}

/// poolgate's rule over the residuals (`true` for a permit): some permit true, no forbid true,
/// no policy erroring. `permitted` says whether a permit is already true for every row.
pub(crate) fn combine(permitted: bool, residuals: impl IntoIterator<Item = (bool, Tri)>) -> Condition {
    let mut permits = if permitted { vec![Condition::True] } else { Vec::new() };
    let mut conditions = Vec::new();
    for (permit, Tri { t, f, e }) in residuals {
        if permit {
            permits.push(t);
            conditions.push(e.negate());
        } else {
            // Allowed by a forbid only when it is false: not true, and not erroring.
            conditions.push(f);
        }
    }
    Condition::and([Condition::or(permits), Condition::and(conditions)])
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::str::FromStr;

    use cedar_policy::{
        Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicySet, Request, RestrictedExpression,
    };

    use super::*;
    use crate::filter::condition::testing::{Row, Value, eval};
    use crate::filter::mapping::{MappedColumn, SqlSource};
    use crate::filter::shape::AttrShape;

    fn shape() -> TypeShape {
        let optional = |ty: AttrType| AttrShape { ty, required: false };
        TypeShape {
            attributes: BTreeMap::from([
                ("a".into(), optional(AttrType::String)),
                ("n".into(), optional(AttrType::Long)),
                ("b".into(), optional(AttrType::Bool)),
                ("t".into(), optional(AttrType::Set(Box::new(AttrType::String)))),
            ]),
            member_of: Vec::new(),
        }
    }

    fn mapping() -> ResourceMapping {
        let column = |name: &str| MappedColumn { source: SqlSource::Column(name.into()), nullable: true };
        ResourceMapping {
            table: "r".into(),
            id_column: "id".into(),
            attributes: ["a", "n", "b", "t"].into_iter().map(|name| (name.to_owned(), column(name))).collect(),
            parent: None,
        }
    }

    fn rows() -> Vec<Row> {
        let text = |value: &str| Some(Value::Lit(Literal::String(value.into())));
        let long = |value: i64| Some(Value::Lit(Literal::Long(value)));
        let flag = |value: bool| Some(Value::Lit(Literal::Bool(value)));
        let set = |values: &[&str]| Some(Value::Set(values.iter().map(|v| Literal::String((*v).into())).collect()));
        let mut rows = Vec::new();
        for a in [None, text("x"), text("X"), text(""), text("a%b*")] {
            for n in [None, long(i64::MIN), long(0), long(5), long(i64::MAX)] {
                for b in [None, flag(true), flag(false)] {
                    for t in [None, set(&[]), set(&["x"]), set(&["x", "y"])] {
                        let mut row = Row { id: format!("r{}", rows.len()), ..Row::default() };
                        for (name, value) in [("a", &a), ("n", &n), ("b", &b), ("t", &t)] {
                            if let Some(value) = value {
                                row.attrs.insert(name.to_owned(), value.clone());
                            }
                        }
                        rows.push(row);
                    }
                }
            }
        }
        rows
    }

    fn cedar_allows(policies: &PolicySet, row: &Row) -> bool {
        let restricted = |value: &Literal| match value {
            Literal::String(text) => RestrictedExpression::new_string(text.clone()),
            Literal::Long(number) => RestrictedExpression::new_long(*number),
            Literal::Bool(flag) => RestrictedExpression::new_bool(*flag),
        };
        let attrs: HashMap<String, RestrictedExpression> = row
            .attrs
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::Lit(value) => restricted(value),
                    Value::Set(values) => RestrictedExpression::new_set(values.iter().map(restricted)),
                };
                (name.clone(), value)
            })
            .collect();
        let uid = EntityUid::from_str(&format!(r#"T::R::"{}""#, row.id)).unwrap();
        let parents = row.parent.iter().map(|parent| EntityUid::from_str(&format!(r#"T::P::"{parent}""#)).unwrap());
        let entity = Entity::new(uid.clone(), attrs, parents.collect()).unwrap();
        let entities = Entities::from_entities([entity], None).unwrap();
        let request = Request::new(
            EntityUid::from_str(r#"T::U::"p""#).unwrap(),
            EntityUid::from_str(r#"T::Action::"act""#).unwrap(),
            uid,
            Context::empty(),
            None,
        )
        .unwrap();
        let response = Authorizer::new().is_authorized(&request, policies, &entities);
        response.decision() == Decision::Allow && response.diagnostics().errors().next().is_none()
    }

    fn filter(policies: &PolicySet) -> Result<Condition, Refusal> {
        filter_with(policies, &shape(), &mapping())
    }

    fn filter_with(policies: &PolicySet, shape: &TypeShape, mapping: &ResourceMapping) -> Result<Condition, Refusal> {
        let target = Target { resource_type: "T::R", namespace: "T", shape, mapping: Some(mapping) };
        let residuals = policies
            .policies()
            .map(|policy| {
                Ok((policy.effect() == cedar_policy::Effect::Permit, target.policy(&policy.to_pst().unwrap())?))
            })
            .collect::<Result<Vec<_>, Refusal>>()?;
        Ok(combine(false, residuals))
    }

    /// Unvalidated policies, so that reading an absent attribute errors as it would at run time.
    const CASES: &[&str] = &[
        r#"permit(principal, action, resource) when { resource.a == "x" };"#,
        r#"permit(principal, action, resource) when { resource.a != "x" };"#,
        r#"permit(principal, action, resource) when { !(resource.a == "x") };"#,
        r#"permit(principal, action, resource); forbid(principal, action, resource) when { resource.a == "x" };"#,
        r#"permit(principal, action, resource); forbid(principal, action, resource) when { resource has a && resource.a == "x" };"#,
        r#"permit(principal, action, resource) when { !(resource has a) || resource.a == "x" };"#,
        r#"permit(principal, action, resource) when { resource.n > 0 || resource.b };"#,
        r#"permit(principal, action, resource) when { resource has n && resource.n >= 0 && resource.n <= 5 };"#,
        r#"permit(principal, action, resource) when { resource.n < 0 && resource.n >= -9223372036854775808 };"#,
        r#"permit(principal, action, resource) when { if resource has b then resource.b else resource.n < 1 };"#,
        r#"permit(principal, action, resource) when { resource.a like "*%*" };"#,
        r#"permit(principal, action, resource) when { resource.a like "a%b\*" || resource.a like "" };"#,
        r#"permit(principal, action, resource) when { resource has a && !(resource.a like "*") };"#,
        r#"permit(principal, action, resource) when { ["x", "X"].contains(resource.a) };"#,
        r#"permit(principal, action, resource) when { resource.t.contains("x") };
           forbid(principal, action, resource) when { resource.t.containsAll(["x", "y"]) };"#,
        r#"permit(principal, action, resource) when { resource.t.containsAny(["y"]) || resource.t.isEmpty() };"#,
        r#"permit(principal, action, resource) when { ["x"].containsAll(resource.t) };"#,
        r#"permit(principal, action, resource) when { resource.t == ["x"] || resource.t != ["x", "y"] };"#,
        r#"permit(principal, action, resource) when { resource == T::R::"r7" || resource.n == 5 };"#,
        r#"permit(principal, action, resource) when { resource.a == "x" };
           permit(principal, action, resource) when { resource.n == 0 };"#,
        r#"permit(principal, action, resource) unless { resource.b };"#,
        r#"permit(principal, action, resource) when { resource.n == "x" || resource.a != 1 };"#,
        r#"permit(principal, action, resource) when { resource is T::R && resource in [T::R::"r1", T::R::"r2"] };"#,
        r#"permit(principal, action, resource) when { resource has t && !resource.t.containsAny([]) };"#,
    ];

    #[test]
    fn conditions_select_exactly_the_rows_cedar_allows_errors_included() {
        let rows = rows();
        for case in CASES {
            let policies = PolicySet::from_str(case).unwrap();
            let condition = filter(&policies).unwrap_or_else(|refusal| panic!("{case}: {refusal:?}"));
            for row in &rows {
                assert_eq!(
                    eval(&condition, row),
                    cedar_allows(&policies, row),
                    "{case}\nrow {row:?}\ncondition {}",
                    serde_json::to_string(&condition).unwrap()
                );
            }
        }
    }

    #[test]
    fn resource_in_the_mapped_parent_selects_what_cedar_allows_with_the_rows_parent() {
        let mut shape = shape();
        shape.member_of = vec!["T::P".into()];
        let mut with_parent = mapping();
        with_parent.parent = Some(crate::filter::mapping::ParentMapping {
            type_name: "P".into(),
            column: MappedColumn { source: SqlSource::Column("parent".into()), nullable: true },
        });
        let mut rows = Vec::new();
        for parent in [None, Some("p1"), Some("p2"), Some("P1"), Some("")] {
            for a in [None, Some("x"), Some("y")] {
                let mut row =
                    Row { id: format!("r{}", rows.len()), parent: parent.map(str::to_owned), ..Row::default() };
                if let Some(a) = a {
                    row.attrs.insert("a".into(), Value::Lit(Literal::String(a.into())));
                }
                rows.push(row);
            }
        }
        let cases = [
            r#"permit(principal, action, resource) when { resource in T::P::"p1" };"#,
            r#"permit(principal, action, resource) when { resource in [T::P::"p1", T::R::"r3", T::P::""] };"#,
            r#"permit(principal, action, resource); forbid(principal, action, resource) when { resource in T::P::"p2" };"#,
            r#"permit(principal, action, resource) when { resource is T::R in T::P::"p1" && resource.a == "x" };"#,
            r#"permit(principal, action, resource) when { !(resource in T::P::"p2") || resource in T::R::"r0" };"#,
            r#"permit(principal, action, resource) when { resource in T::P::"p1" || resource.a != "x" };
               forbid(principal, action, resource) when { resource in [T::P::"P1"] && resource has a };"#,
        ];
        for case in cases {
            let policies = PolicySet::from_str(case).unwrap();
            let condition =
                filter_with(&policies, &shape, &with_parent).unwrap_or_else(|refusal| panic!("{case}: {refusal:?}"));
            for row in &rows {
                assert_eq!(eval(&condition, row), cedar_allows(&policies, row), "{case}\nrow {row:?}");
            }
        }
        let unmapped =
            PolicySet::from_str(r#"permit(principal, action, resource) when { resource in T::P::"p1" };"#).unwrap();
        let refusal = filter_with(&unmapped, &shape, &mapping()).unwrap_err();
        assert!(matches!(&refusal, Refusal::Unsupported(text) if text.contains("not mapped")), "{refusal:?}");
    }

    #[test]
    fn what_has_no_exact_translation_is_refused_with_its_construct() {
        for (case, construct) in [
            (r#"permit(principal, action, resource) when { resource.n + 1 > 2 };"#, "`+`"),
            (r#"permit(principal, action, resource) when { resource.a == resource.a };"#, "two attributes"),
            (r#"permit(principal, action, resource) when { resource.zz == 1 };"#, "does not declare"),
            (r#"permit(principal, action, resource) when { principal.x == 1 };"#, "something other than `resource`"),
            (r#"permit(principal, action, resource) when { context.x };"#, "something other than `resource`"),
            (r#"permit(principal, action, resource) when { resource.a < "b" };"#, "something other than Long"),
        ] {
            let refusal = filter(&PolicySet::from_str(case).unwrap()).unwrap_err();
            match refusal {
                Refusal::Unsupported(text) => assert!(text.contains(construct), "{case}: {text}"),
                other => panic!("{case}: {other:?}"),
            }
        }
    }
}
