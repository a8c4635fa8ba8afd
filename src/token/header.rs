//! Stage 1b: structural checks on the unverified token, before any key is looked up.
//!
//! The header is decoded with `base64` and `serde_json` only to refuse what must never reach
//! the signature check: anything but RS256, key material or URLs carried by the token itself,
//! `crit` extensions, encrypted (5-segment) tokens and a `kid` that is missing or not a string.
//! The payload is peeked at for `iss` alone, to route the token to its pool.
//!
//! A header or payload that repeats a member name is malformed ([`UniqueKeys`]): RFC 7515
//! §5.2 allows either rejecting it or keeping the last value, and parsers that keep different
//! values disagree about what such a token says.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::token::error::TokenError;

/// Header parameters that would let the token choose its own key or processing rules.
const FORBIDDEN_HEADER_PARAMS: &[&str] = &["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit"];

/// What the unverified token tells us: which key signed it and which issuer it claims.
#[derive(Debug)]
pub struct Unverified {
    /// The header's `kid`.
    pub kid: String,
    /// The payload's `iss`, not yet trusted.
    pub iss: String,
}

/// Checks the token's shape and header and reads `kid` and `iss`.
pub fn inspect(token: &str) -> Result<Unverified, TokenError> {
    let segments: Vec<&str> = token.split('.').collect();
    let (header, payload) = match segments.as_slice() {
        [header, payload, signature] if !header.is_empty() && !payload.is_empty() && !signature.is_empty() => {
            (*header, *payload)
        }
        [_, _, _] => return Err(TokenError::Malformed("a token segment is empty".into())),
        [_, _, _, _, _] => return Err(TokenError::Malformed("encrypted tokens (JWE) are not accepted".into())),
        _ => return Err(TokenError::Malformed("a token has three segments".into())),
    };
    let UniqueKeys(header) = decode_segment(header, "header")?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(alg)) => return Err(TokenError::UnsupportedAlgorithm(alg.chars().take(16).collect())),
        _ => return Err(TokenError::UnsupportedAlgorithm("missing".into())),
    }
    if let Some(param) = FORBIDDEN_HEADER_PARAMS.iter().find(|param| header.contains_key(**param)) {
        return Err(TokenError::Malformed(format!("header parameter `{param}` is not accepted")));
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        _ => return Err(TokenError::Malformed("header `kid` is missing or not a string".into())),
    };
    let claims: IssuerOnly = decode_segment(payload, "payload")?;
    let iss = match claims.iss {
        Some(Value::String(iss)) => iss,
        _ => return Err(TokenError::UnknownIssuer),
    };
    Ok(Unverified { kid, iss })
}

/// The payload as far as routing needs it; serde's derive refuses a repeated `iss` and the
/// rest of the payload is checked for repeats once the signature holds.
#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<Value>,
}

/// A JSON object that names each member once.
///
/// serde_json keeps the last of repeated keys and has no switch to refuse them, so this
/// visitor (a few lines over serde's `MapAccess`) does. Only the top level is checked: that is
/// where the header parameters and the claims poolgate reads live.
#[derive(Debug)]
pub struct UniqueKeys(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueKeys;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueKeys, A::Error> {
                let mut object = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if object.contains_key(&key) {
                        return Err(A::Error::custom(format_args!("member `{key}` appears twice")));
                    }
                    object.insert(key, value);
                }
                Ok(UniqueKeys(object))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

fn decode_segment<T: for<'de> Deserialize<'de>>(segment: &str, what: &str) -> Result<T, TokenError> {
    let bytes =
        URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(format!("the {what} is not a JSON object")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", segment(header), segment(payload))
    }

    #[test]
    fn reads_kid_and_issuer_of_a_well_formed_token() {
        let seen = inspect(&token(r#"{"alg":"RS256","kid":"k1"}"#, r#"{"iss":"https://i"}"#));
        let seen = seen.ok();
        assert_eq!(seen.as_ref().map(|u| u.kid.as_str()), Some("k1"));
        assert_eq!(seen.as_ref().map(|u| u.iss.as_str()), Some("https://i"));
    }

    #[test]
    fn algorithms_other_than_rs256_are_refused() {
        for alg in [r#""none""#, r#""NONE""#, r#""HS256""#, r#""RS512""#, "null", "1"] {
            let header = format!(r#"{{"alg":{alg},"kid":"k"}}"#);
            let res = inspect(&token(&header, r#"{"iss":"i"}"#));
            assert!(matches!(res, Err(TokenError::UnsupportedAlgorithm(_))), "{alg}");
        }
        let res = inspect(&token(r#"{"kid":"k"}"#, r#"{"iss":"i"}"#));
        assert!(matches!(res, Err(TokenError::UnsupportedAlgorithm(_))));
    }

    #[test]
    fn embedded_keys_urls_and_crit_are_refused() {
        for param in FORBIDDEN_HEADER_PARAMS {
            let header = format!(r#"{{"alg":"RS256","kid":"k","{param}":"x"}}"#);
            assert!(matches!(inspect(&token(&header, r#"{"iss":"i"}"#)), Err(TokenError::Malformed(_))));
        }
    }

    #[test]
    fn kid_must_be_a_non_empty_string() {
        for kid in [r#""""#, "1", "null", "[]"] {
            let header = format!(r#"{{"alg":"RS256","kid":{kid}}}"#);
            assert!(matches!(inspect(&token(&header, r#"{"iss":"i"}"#)), Err(TokenError::Malformed(_))));
        }
    }

    #[test]
    fn wrong_segment_counts_and_encodings_are_malformed() {
        for raw in ["a.b", "a.b.c.d", "a.b.c.d.e", "..", "a..c", "!!.b.c"] {
            assert!(matches!(inspect(raw), Err(TokenError::Malformed(_))), "{raw}");
        }
        let padded = format!("{}=.{}.c2ln", segment(r#"{"alg":"RS256","kid":"k"}"#), segment("{}"));
        assert!(matches!(inspect(&padded), Err(TokenError::Malformed(_))));
        assert!(matches!(inspect(&token("[1]", "{}")), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn repeated_members_are_malformed() {
        let twice = inspect(&token(r#"{"alg":"none","alg":"RS256","kid":"k"}"#, r#"{"iss":"i"}"#));
        assert!(matches!(twice, Err(TokenError::Malformed(_))));
        let twice = inspect(&token(r#"{"alg":"RS256","kid":"k"}"#, r#"{"iss":"a","iss":"b"}"#));
        assert!(matches!(twice, Err(TokenError::Malformed(_))));
        let nested: Result<UniqueKeys, _> = serde_json::from_str(r#"{"a":{"b":1},"c":[1,1]}"#);
        assert!(nested.is_ok());
    }

    #[test]
    fn a_missing_or_non_string_issuer_is_unknown() {
        let header = r#"{"alg":"RS256","kid":"k"}"#;
        assert!(matches!(inspect(&token(header, "{}")), Err(TokenError::UnknownIssuer)));
        assert!(matches!(inspect(&token(header, r#"{"iss":7}"#)), Err(TokenError::UnknownIssuer)));
    }
}
