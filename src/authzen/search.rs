//! The three AuthZEN searches: which subjects, which resources, which actions.
//!
//! - Subject search (trusted-caller mode only: it lists users by id): the principals registered
//!   in SQL for the pool the subject type names, each decided like an evaluation.
//! - Resource search: the rows of the type's mapped table the subject may act on, in id order,
//!   through `filter::search` (Cedar's partial evaluation turned into one keyset-paged query).
//! - Action search: the schema's candidate actions for the subject's and the resource's types,
//!   each decided (as `/v1/permissions` does), sorted by name.
//!
//! A search that names something unknown (a type, an id, an action, an unregistered subject)
//! or whose subject may not act answers `{"results": []}`, as the certification scenario asks;
//! a request missing a required member is a `400` as elsewhere.
//!
//! # Pages
//!
//! A page holds at most [`MAX_SEARCH_RESULTS`] results: `page.limit` (1 or more; larger is
//! lowered) defaults to that, so a search of a few results needs no paging. Subject search
//! judges at most [`MAX_SEARCH_RESULTS`] registered subjects per request. When more may
//! follow, the answer carries `page.next_token`, an opaque token bound to the request (all
//! but `page.token` must be sent again unchanged, else `400`); the last page's `next_token` is
//! `""`. Action search returns every action at once. An answer carries `page` only when the
//! request did or more results follow.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cedar_policy::EntityTypeName;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::authzen::request::{self, Action, Resource, Subject};
use crate::authzen::{AuthzenError, Stages, SubjectMode};
use crate::decision::error::DecisionError;
use crate::filter::{Cursor, FilterError, FilterQuestion, PageRequest};
use crate::forward::resources::ResourceError;
use crate::limits::MAX_SEARCH_RESULTS;
use crate::principal::error::PrincipalError;

/// A search's answer: the results, and the `page.next_token` to send back when the answer
/// carries a `page` (`""` on the last page).
#[derive(Debug, Default)]
pub struct Answer {
    /// `{"type", "id"}` or `{"name"}` objects.
    pub results: Vec<Value>,
    /// `Some` when the answer carries `page`.
    pub next_token: Option<String>,
    /// A resource search's list answer, for the decision log.
    pub listed: Option<Listed>,
}

/// What a resource search decided, as the decision log records list answers.
#[derive(Debug)]
pub struct Listed {
    /// Who searched.
    pub principal: crate::principal::Principal,
    /// The action, in the pool's namespace.
    pub action: String,
    /// The Cedar type searched.
    pub resource_type: String,
    /// The plan the search ran.
    pub planned: crate::filter::Planned,
}

impl Answer {
    /// The JSON body.
    pub fn body(&self) -> Value {
        match &self.next_token {
            Some(token) => json!({ "page": { "next_token": token }, "results": self.results }),
            None => json!({ "results": self.results }),
        }
    }
}

/// `page` of a search request.
struct Page {
    limit: usize,
    /// Where the previous page stopped.
    after: Option<String>,
    /// Whether the request had a `page`.
    requested: bool,
    /// What the token is bound to: the request without `page.token`.
    binding: String,
}

impl Page {
    fn read(top: &Map<String, Value>) -> Result<Self, AuthzenError> {
        let page = request::optional_object(request::present(top, "page"), "page")?;
        let limit = match page.and_then(|page| request::present(page, "limit")) {
            None => MAX_SEARCH_RESULTS,
            Some(limit) => match limit.as_u64() {
                Some(0) | None => {
                    return Err(AuthzenError::Invalid("page.limit: a positive integer is expected".into()));
                }
                Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX).min(MAX_SEARCH_RESULTS),
            },
        };
        // What the token is bound to: the request without `page.token`, and without `page` when
        // nothing else is in it (a first request often has no `page` at all).
        let mut unbound = top.clone();
        if let Some(Value::Object(page)) = unbound.get_mut("page") {
            page.remove("token");
        }
        if unbound.get("page").is_some_and(|page| page.as_object().is_some_and(Map::is_empty) || page.is_null()) {
            unbound.remove("page");
        }
        let binding = digest(&Value::Object(unbound));
        let after = match page.map(|page| request::optional_string(page, "token", "page")).transpose()?.flatten() {
            None => None,
            Some(token) if token.is_empty() => None,
            Some(token) => Some(read_token(&token, &binding)?),
        };
        Ok(Self { limit, after, requested: page.is_some(), binding })
    }

    /// The answer for `results`, `next` being where a following page would start.
    fn answer(&self, results: Vec<Value>, next: Option<String>) -> Answer {
        let next_token = match next {
            Some(after) => Some(make_token(&after, &self.binding)),
            None if self.requested => Some(String::new()),
            None => None,
        };
        Answer { results, next_token, listed: None }
    }

    fn empty(&self) -> Answer {
        self.answer(Vec::new(), None)
    }
}

/// A short digest of `value` whatever the order of its members.
fn digest(value: &Value) -> String {
    let mut text = String::new();
    canonical(value, &mut text);
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().take(12).fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// `value` as JSON text with every object's members sorted by name.
fn canonical(value: &Value, text: &mut String) {
    match value {
        Value::Object(object) => {
            let mut members: Vec<(&String, &Value)> = object.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            text.push('{');
            for (index, (name, member)) in members.into_iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                text.push_str(&Value::String(name.clone()).to_string());
                text.push(':');
                canonical(member, text);
            }
            text.push('}');
        }
        Value::Array(items) => {
            text.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                canonical(item, text);
            }
            text.push(']');
        }
        other => text.push_str(&other.to_string()),
    }
}

fn make_token(after: &str, binding: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!({ "after": after, "request": binding }).to_string())
}

fn read_token(token: &str, binding: &str) -> Result<String, AuthzenError> {
    let foreign = || AuthzenError::Invalid("page.token: not a token this server issued".into());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| foreign())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| foreign())?;
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    let (Some(after), Some(bound)) = (field("after"), field("request")) else {
        return Err(foreign());
    };
    if bound != binding {
        return Err(AuthzenError::Invalid(
            "page.token: the request differs from the one the token was issued for (only page.token may change)".into(),
        ));
    }
    Ok(after.to_owned())
}

/// Whether a failure means "nothing to find" in a search: an unknown name, or a subject that
/// may not act. Anything else (a malformed request, an unavailable database) stays an error.
fn finds_nothing(err: &AuthzenError) -> bool {
    match err {
        AuthzenError::UnknownSubjectType(_)
        | AuthzenError::UnknownResourceType(_)
        | AuthzenError::SubjectMismatch
        | AuthzenError::Decision(DecisionError::UnknownAction(_) | DecisionError::UnknownResourceType(_))
        | AuthzenError::Resource(ResourceError::NotFound { .. }) => true,
        AuthzenError::Token(err) => !matches!(err, crate::token::error::TokenError::KeysUnavailable { .. }),
        AuthzenError::Principal(err) => !matches!(err, PrincipalError::DatabaseUnavailable(_)),
        _ => false,
    }
}

/// `Ok(None)` for a failure that [`finds_nothing`].
fn or_nothing<T>(result: Result<T, AuthzenError>) -> Result<Option<T>, AuthzenError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if finds_nothing(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

fn required_entity<'v>(top: &'v Map<String, Value>, field: &str) -> Result<&'v Value, AuthzenError> {
    request::required(request::present(top, field), field)
}

fn context(top: &Map<String, Value>) -> Result<Map<String, Value>, AuthzenError> {
    Ok(request::optional_object(request::present(top, "context"), "context")?.cloned().unwrap_or_default())
}

impl Stages<'_> {
    /// `POST /access/v1/search/subject`.
    pub async fn search_subjects(&self, top: &Map<String, Value>) -> Result<Answer, AuthzenError> {
        if self.authzen.settings.subject_mode != SubjectMode::TrustedCaller {
            return Err(AuthzenError::TrustedCallerRequired);
        }
        let subject = Subject::read(required_entity(top, "subject")?, "subject")?;
        let action = Action::read(required_entity(top, "action")?, "action")?;
        let resource = Resource::read(required_entity(top, "resource")?, "resource")?;
        if resource.id.is_none() {
            return Err(AuthzenError::Invalid("resource.id: a string is required".into()));
        }
        let context = context(top)?;
        let page = Page::read(top)?;
        let Some((settings, pool)) = self
            .authzen
            .settings
            .pool_of_subject_type(&subject.type_name)
            .and_then(|pool| self.authzen.pool(&pool.pool))
        else {
            return Ok(page.empty());
        };
        let namespace = &settings.namespace;
        let Some(ask) = or_nothing(self.question(pool, namespace, &action, &resource, &context).await)? else {
            return Ok(page.empty());
        };
        let after = page.after.clone().unwrap_or_default();
        let candidates = self.principals.registered_after(&settings.name, &after, MAX_SEARCH_RESULTS + 1).await?;
        let scan = candidates.len().min(MAX_SEARCH_RESULTS);
        let mut results = Vec::new();
        let mut next = None;
        for (index, (id, record)) in candidates.iter().take(scan).enumerate() {
            // A disabled subject may not act: it is not a result.
            let Ok(principal) = self.named(settings, id, record) else { continue };
            let decision = match self.decider.decide(&principal, &ask) {
                Ok(decision) => decision,
                Err(DecisionError::UnknownAction(_)) => return Ok(page.empty()),
                Err(err) => return Err(err.into()),
            };
            if decision.allow {
                results.push(json!({ "type": subject.type_name, "id": id }));
            }
            let full = results.len() == page.limit;
            if full || index + 1 == scan {
                if index + 1 < candidates.len() {
                    next = Some(id.clone());
                }
                if full {
                    break;
                }
            }
        }
        Ok(page.answer(results, next))
    }

    /// `POST /access/v1/search/action`.
    pub async fn search_actions(&self, top: &Map<String, Value>) -> Result<Answer, AuthzenError> {
        let subject = Subject::read(required_entity(top, "subject")?, "subject")?;
        let resource = Resource::read(required_entity(top, "resource")?, "resource")?;
        if resource.id.is_none() {
            return Err(AuthzenError::Invalid("resource.id: a string is required".into()));
        }
        let context = context(top)?;
        let page = Page::read(top)?;
        let Some(resolved) = or_nothing(self.subject(&subject).await)? else {
            return Ok(page.empty());
        };
        let namespace = resolved.principal.namespace.clone();
        let Some(cedar_type) = or_nothing(self.cedar_type(resolved.pool, &namespace, &resource.type_name))? else {
            return Ok(page.empty());
        };
        let schema = self.decider.schema();
        let resource_type = crate::decision::entities::resource_type(&namespace, cedar_type, schema)?;
        let Ok(user_type) = format!("{namespace}::User").parse::<EntityTypeName>() else {
            return Ok(page.empty());
        };
        let mut candidates: Vec<String> = schema
            .actions_for_principal_and_resource(&user_type, &resource_type)
            .map(|action| action.id().unescaped().to_owned())
            .collect();
        candidates.sort();
        candidates.dedup();
        let mut results = Vec::new();
        for name in candidates {
            let action = Action { name, properties: Map::new() };
            let Some(ask) = or_nothing(self.question(resolved.pool, &namespace, &action, &resource, &context).await)?
            else {
                return Ok(page.empty());
            };
            match self.decider.decide(&resolved.principal, &ask) {
                Ok(decision) if decision.allow => results.push(json!({ "name": action.name })),
                Ok(_) => {}
                // A context that fits one action and not another only withholds that action.
                Err(DecisionError::InvalidContext(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(page.answer(results, None))
    }

    /// `POST /access/v1/search/resource`.
    pub async fn search_resources(&self, top: &Map<String, Value>) -> Result<Answer, AuthzenError> {
        let subject = Subject::read(required_entity(top, "subject")?, "subject")?;
        let action = Action::read(required_entity(top, "action")?, "action")?;
        let resource = Resource::read(required_entity(top, "resource")?, "resource")?;
        let context = context(top)?;
        let page = Page::read(top)?;
        let Some(resolved) = or_nothing(self.subject(&subject).await)? else {
            return Ok(page.empty());
        };
        let namespace = resolved.principal.namespace.clone();
        let Some(cedar_type) = or_nothing(self.cedar_type(resolved.pool, &namespace, &resource.type_name))? else {
            return Ok(page.empty());
        };
        if !self.action_exists(&namespace, &action.name) {
            return Ok(page.empty());
        }
        let (db, mappings) = self.search;
        let mapping = mappings
            .get(cedar_type)
            .ok_or_else(|| FilterError::NotMapped { resource_type: resource.type_name.clone() })?;
        let context = self.context(&namespace, &action, &context);
        let question = FilterQuestion { action: &action.name, resource_type: cedar_type, context: &context };
        let cursor = page.after.as_ref().map(|after| Cursor::after(after.as_str()).encode());
        let limit = u64::try_from(page.limit).unwrap_or(u64::MAX);
        let request = PageRequest::new(Some(limit), cursor.as_deref())?;
        let found = crate::filter::search(db, self.decider, &resolved.principal, mapping, &question, &request).await?;
        let next = found.next_cursor.map(|cursor| cursor.id().to_owned());
        let results = found.ids.into_iter().map(|id| json!({ "type": resource.type_name, "id": id })).collect();
        let listed = Listed {
            principal: resolved.principal,
            action: action.name,
            resource_type: cedar_type.to_owned(),
            planned: found.planned,
        };
        Ok(Answer { listed: Some(listed), ..page.answer(results, next) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: Value) -> Result<Page, AuthzenError> {
        Page::read(body.as_object().unwrap())
    }

    #[test]
    fn a_page_token_resumes_only_the_request_it_was_issued_for() {
        let request = json!({"subject": {"type": "user"}, "page": {"limit": 2}});
        let first = page(request.clone()).unwrap();
        assert_eq!(first.limit, 2);
        let answer = first.answer(vec![json!(1), json!(2)], Some("bob".into()));
        let token = answer.next_token.clone().unwrap();
        assert!(!token.is_empty());
        let mut again = request.clone();
        again["page"]["token"] = json!(token);
        assert_eq!(page(again.clone()).unwrap().after.as_deref(), Some("bob"));
        let mut changed = again.clone();
        changed["subject"]["type"] = json!("identity");
        assert!(page(changed).is_err());
        let mut relimited = again;
        relimited["page"]["limit"] = json!(3);
        assert!(page(relimited).is_err());
        assert!(page(json!({"page": {"token": "not-a-token"}})).is_err());
        // A first request without `page` is continued by the same request with `page.token`.
        let unpaged = json!({"subject": {"type": "user"}});
        let carol = page(unpaged.clone()).unwrap().answer(Vec::new(), Some("carol".into())).next_token.unwrap();
        let mut continued = unpaged;
        continued["page"] = json!({"token": carol});
        assert_eq!(page(continued).unwrap().after.as_deref(), Some("carol"));
        // The same request with its members in another order is the same request.
        let reordered: Value = serde_json::from_str(&format!(
            r#"{{"page": {{"token": "{token}", "limit": 2}}, "subject": {{"type": "user"}}}}"#
        ))
        .unwrap();
        assert_eq!(page(reordered).unwrap().after.as_deref(), Some("bob"));
    }

    #[test]
    fn limits_are_positive_and_capped_and_page_appears_when_asked_for_or_needed() {
        assert_eq!(page(json!({})).unwrap().limit, MAX_SEARCH_RESULTS);
        assert_eq!(page(json!({"page": {"limit": 1_000_000}})).unwrap().limit, MAX_SEARCH_RESULTS);
        assert!(page(json!({"page": {"limit": 0}})).is_err());
        assert!(page(json!({"page": {"limit": "2"}})).is_err());
        assert_eq!(page(json!({})).unwrap().empty().body(), json!({"results": []}));
        assert_eq!(
            page(json!({"page": {}})).unwrap().empty().body(),
            json!({"page": {"next_token": ""}, "results": []})
        );
    }
}
