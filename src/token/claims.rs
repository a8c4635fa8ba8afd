//! Stage 1e: the claims of a token whose signature is verified, checked and typed.
//!
//! Cognito's claim types vary, so every claim is read from raw JSON on purpose: a claim of the
//! wrong type is an error, never "absent"; a groups claim that is absent means "no groups".

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::config::pool::{ClientPolicy, TokenUse};
use crate::token::error::TokenError;
use crate::token::pool::Pool;

/// Claims of a verified token, in the form the principal is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedClaims {
    /// The user's stable id within the pool.
    pub sub: String,
    /// Whether this is an ID or an access token.
    pub token_use: TokenUse,
    /// The app client the token was issued to (`aud` of an ID token, `client_id` of an access
    /// token); with a multi-valued `aud`, its first element (every element is an allowed client).
    pub client: String,
    /// Groups from the pool's groups claim; empty when the claim is absent.
    pub groups: Vec<String>,
    /// The `email` claim, when present.
    pub email: Option<String>,
    /// OAuth scopes of an access token; empty for ID tokens.
    pub scopes: Vec<String>,
    /// Mapped principal attributes (attribute name, claim value) present in the token.
    pub attributes: Vec<(String, String)>,
    /// The token's time claims, checked again whenever a cached verification is reused.
    pub times: Times,
    /// `origin_jti`: shared by the ID and access token of one sign-in.
    pub origin_jti: Option<String>,
    /// `jti` and `origin_jti` of the presented token(s): revoking any of them rejects the request.
    pub token_ids: Vec<String>,
}

/// The time claims of a token, in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times {
    /// `exp`.
    pub exp: f64,
    /// `nbf`, when present.
    pub nbf: Option<f64>,
    /// `iat`, when present.
    pub iat: Option<f64>,
    /// When the user signed in: `auth_time`, else `iat`.
    pub signed_in_at: Option<f64>,
}

/// Checks `exp`, `nbf`, `iat` (with the pool's leeway) and `max_token_age` against the clock now.
pub fn check_times(pool: &Pool, times: &Times) -> Result<(), TokenError> {
    let settings = pool.settings();
    let now = now_secs();
    let leeway = settings.leeway.as_secs_f64();
    if now >= times.exp + leeway {
        return Err(TokenError::Expired);
    }
    if times.nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if times.iat.is_some_and(|iat| iat > now + leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(max_age) = settings.max_token_age {
        let signed_in_at = times
            .signed_in_at
            .ok_or_else(|| TokenError::InvalidClaims("`auth_time` or `iat` is required by max_token_age".into()))?;
        if now - signed_in_at > max_age.as_secs_f64() {
            return Err(TokenError::TooOld);
        }
    }
    Ok(())
}

/// Checks time, `token_use`, client and subject claims against the pool's rules; `accepted`
/// lists the kinds of token acceptable in this position (the pool's `token_use` for a bearer).
pub fn check(pool: &Pool, claims: &Map<String, Value>, accepted: &[TokenUse]) -> Result<VerifiedClaims, TokenError> {
    let settings = pool.settings();
    let times = Times {
        exp: number(claims, "exp")?.ok_or_else(|| TokenError::InvalidClaims("`exp` is required".into()))?,
        nbf: number(claims, "nbf")?,
        iat: number(claims, "iat")?,
        signed_in_at: match number(claims, "auth_time")? {
            Some(auth_time) => Some(auth_time),
            None => number(claims, "iat")?,
        },
    };
    check_times(pool, &times)?;
    if !claims.get("iss").and_then(Value::as_str).is_some_and(|iss| settings.accepts_issuer(iss)) {
        return Err(TokenError::UnknownIssuer);
    }
    let token_use = match string(claims, "token_use")? {
        Some("id") => TokenUse::Id,
        Some("access") => TokenUse::Access,
        Some(_) => return Err(TokenError::WrongTokenUse),
        None => return Err(TokenError::InvalidClaims("`token_use` is required".into())),
    };
    if !accepted.contains(&token_use) {
        return Err(TokenError::WrongTokenUse);
    }
    let client = check_client(&settings.clients, token_use, claims)?;
    let sub = match string(claims, "sub")? {
        Some(sub) if !sub.is_empty() => sub.to_owned(),
        _ => return Err(TokenError::InvalidClaims("`sub` is required".into())),
    };
    let groups = match claims.get(settings.groups_claim.as_str()) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| wrong_type(&settings.groups_claim))?,
        Some(_) => return Err(wrong_type(&settings.groups_claim)),
    };
    let scopes = match token_use {
        TokenUse::Access => string(claims, "scope")?
            .map(|scope| scope.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        TokenUse::Id => Vec::new(),
    };
    let mut attributes = Vec::with_capacity(settings.attributes.len());
    for (attribute, claim) in &settings.attributes {
        let value = match claims.get(claim.as_str()) {
            None => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => return Err(wrong_type(claim)),
        };
        attributes.push((attribute.clone(), value));
    }
    let origin_jti = string(claims, "origin_jti")?.map(str::to_owned);
    let token_ids = string(claims, "jti")?.map(str::to_owned).into_iter().chain(origin_jti.clone()).collect();
    Ok(VerifiedClaims {
        sub,
        token_use,
        client,
        groups,
        email: string(claims, "email")?.map(str::to_owned),
        scopes,
        attributes,
        times,
        origin_jti,
        token_ids,
    })
}

/// ID tokens name their client in `aud` (a string, or a list per RFC 7519); access tokens in
/// `client_id`, a string.
///
/// A list of audiences is accepted only if it is non-empty, holds strings only, and every one of
/// them is an allowed client: OpenID Connect Core 1.0 §3.1.3.7 rejects an ID token that also
/// names audiences the client does not trust, and one foreign audience is enough to refuse it
/// (`client_not_allowed`). With `allow_any_client` any strings will do, but the list must still
/// be non-empty and all strings; an empty list or a non-string element is `invalid_claims`.
/// Cognito itself only ever issues a single-string `aud`.
fn check_client(
    clients: &ClientPolicy,
    token_use: TokenUse,
    claims: &Map<String, Value>,
) -> Result<String, TokenError> {
    let claim = match token_use {
        TokenUse::Id => "aud",
        TokenUse::Access => "client_id",
    };
    let named: Vec<&str> = match claims.get(claim) {
        Some(Value::String(client)) => vec![client.as_str()],
        Some(Value::Array(items)) if token_use == TokenUse::Id && !items.is_empty() => {
            items.iter().map(Value::as_str).collect::<Option<Vec<_>>>().ok_or_else(|| wrong_type(claim))?
        }
        Some(_) => return Err(wrong_type(claim)),
        None => return Err(TokenError::InvalidClaims(format!("`{claim}` is required"))),
    };
    let trusted = match clients {
        ClientPolicy::Any => true,
        ClientPolicy::Only(allowed) => named.iter().all(|client| allowed.contains(*client)),
    };
    match named.first() {
        Some(client) if trusted => Ok((*client).to_owned()),
        _ => Err(TokenError::ClientNotAllowed),
    }
}

/// The last second of the year 9999: no genuine token names a later time.
const LATEST_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// A NumericDate claim: absent is `None`; anything but a JSON number between the epoch and
/// [`LATEST_NUMERIC_DATE`] is an error, so a negative or absurd `exp` never means "valid".
fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(secs) if (0.0..=LATEST_NUMERIC_DATE).contains(&secs) => Ok(Some(secs)),
            _ => Err(TokenError::InvalidClaims(format!("`{name}` is not a time between 1970 and 9999"))),
        },
        Some(_) => Err(wrong_type(name)),
    }
}

fn string<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type(name)),
    }
}

fn wrong_type(claim: &str) -> TokenError {
    TokenError::InvalidClaims(format!("`{claim}` has the wrong type"))
}

/// Seconds since the epoch, with the fraction: a token whose `exp` is this very second is
/// already expired, as with Cognito's own verifier.
fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    fn only(clients: &[&str]) -> ClientPolicy {
        ClientPolicy::Only(clients.iter().map(|client| (*client).to_owned()).collect::<HashSet<_>>())
    }

    fn client_of(clients: &ClientPolicy, token_use: TokenUse, claim: &str, value: Value) -> Result<String, TokenError> {
        let claims = Map::from_iter([(claim.to_owned(), value)]);
        check_client(clients, token_use, &claims)
    }

    #[test]
    fn an_audience_list_is_accepted_only_if_every_audience_is_allowed() {
        let allowed = only(&["a", "b"]);
        let id = |aud: Value| client_of(&allowed, TokenUse::Id, "aud", aud);
        assert_eq!(id(json!("a")).ok().as_deref(), Some("a"));
        assert_eq!(id(json!(["a"])).ok().as_deref(), Some("a"));
        assert_eq!(id(json!(["b", "a"])).ok().as_deref(), Some("b"), "the first audience names the client");
        assert_eq!(id(json!(["a", "a"])).ok().as_deref(), Some("a"));
        for aud in [json!(["a", "x"]), json!(["x", "a"]), json!(["x"]), json!("x"), json!(["a", "b", "x"])] {
            assert!(matches!(id(aud.clone()), Err(TokenError::ClientNotAllowed)), "{aud}");
        }
        for aud in [json!([]), json!(["a", 1]), json!(["a", null]), json!([["a"]]), json!(1), json!(null)] {
            assert!(matches!(id(aud.clone()), Err(TokenError::InvalidClaims(_))), "{aud}");
        }
    }

    #[test]
    fn any_client_still_needs_a_non_empty_list_of_strings() {
        let id = |aud: Value| client_of(&ClientPolicy::Any, TokenUse::Id, "aud", aud);
        assert_eq!(id(json!(["x", "y"])).ok().as_deref(), Some("x"));
        assert_eq!(id(json!("x")).ok().as_deref(), Some("x"));
        for aud in [json!([]), json!(["x", 1]), json!([null]), json!({})] {
            assert!(matches!(id(aud.clone()), Err(TokenError::InvalidClaims(_))), "{aud}");
        }
    }

    #[test]
    fn an_access_token_names_one_client_id() {
        let allowed = only(&["a"]);
        let access = |client_id: Value| client_of(&allowed, TokenUse::Access, "client_id", client_id);
        assert_eq!(access(json!("a")).ok().as_deref(), Some("a"));
        assert!(matches!(access(json!("x")), Err(TokenError::ClientNotAllowed)));
        assert!(matches!(access(json!(["a"])), Err(TokenError::InvalidClaims(_))));
        let aud_only = client_of(&allowed, TokenUse::Access, "aud", json!("a"));
        assert!(matches!(aud_only, Err(TokenError::InvalidClaims(_))));
    }
}
