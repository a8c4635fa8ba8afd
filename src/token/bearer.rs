//! Stage 1a: take the raw token out of the `Authorization` header. No crypto, no parsing.

use crate::token::error::TokenError;

/// Largest token accepted, in bytes; a larger one is rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Returns the token of the single `Authorization: Bearer <token>` header.
///
/// `headers` are the values of every `Authorization` header of the request: two headers are
/// ambiguous and rejected, a scheme other than `Bearer` (any letter case) counts as no token.
pub fn extract<'a>(headers: &[&'a [u8]]) -> Result<&'a str, TokenError> {
    let value = match headers {
        [] => return Err(TokenError::MissingToken),
        [value] => *value,
        _ => return Err(TokenError::Malformed("more than one Authorization header".into())),
    };
    if value.len() > MAX_TOKEN_BYTES + "Bearer ".len() {
        return Err(TokenError::TooLarge);
    }
    let value = std::str::from_utf8(value)
        .map_err(|_| TokenError::Malformed("the Authorization header is not valid UTF-8".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::MissingToken);
    }
    raw(token.trim_matches(' ').as_bytes())
}

/// A token given bare, as in `X-Id-Token: <token>`, with the same size and encoding rules.
pub fn raw(value: &[u8]) -> Result<&str, TokenError> {
    if value.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let token = std::str::from_utf8(value).map_err(|_| TokenError::Malformed("a token is not valid UTF-8".into()))?;
    match token.trim_matches(' ') {
        "" => Err(TokenError::MissingToken),
        token => Ok(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_others_are_not_tokens() {
        assert_eq!(extract(&[b"bearer abc"]).ok(), Some("abc"));
        assert_eq!(extract(&[b"Bearer  abc "]).ok(), Some("abc"));
        assert!(matches!(extract(&[b"Basic abc"]), Err(TokenError::MissingToken)));
        assert!(matches!(extract(&[b"Bearer"]), Err(TokenError::MissingToken)));
        assert!(matches!(extract(&[]), Err(TokenError::MissingToken)));
    }

    #[test]
    fn two_headers_and_oversized_tokens_are_rejected() {
        assert!(matches!(extract(&[b"Bearer a", b"Bearer b"]), Err(TokenError::Malformed(_))));
        let big = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(matches!(extract(&[big.as_bytes()]), Err(TokenError::TooLarge)));
        let fits = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES));
        assert!(extract(&[fits.as_bytes()]).is_ok());
    }
}
