//! The AuthZEN caller's API key: read from `Authorization`, hashed, compared with the configured
//! digests in constant time.
//!
//! The key is accepted as `Authorization: Bearer <key>` or as the bare `Authorization: <key>`
//! the published AuthZEN interop clients and gateway plugins send. Configuration stores only
//! SHA-256 digests, so a leaked configuration does not leak a key; the presented key is hashed
//! and its digest compared with every configured digest.
//!
//! The comparison is written here rather than taken from a crate: `subtle` is in the build only
//! as a dependency of dependencies, and making it a direct one would touch `Cargo.toml` and the
//! lock file for eight lines. Both operands are fixed-length digests, so the comparison XORs
//! all 32 bytes and folds them with OR, with no early exit and no branch on the data, and it
//! visits every configured digest whatever matched, so neither the position of a differing
//! byte nor which key matched shows in the time taken. `black_box` keeps the optimizer from
//! turning the fold back into a short-circuiting comparison.

use sha2::{Digest, Sha256};

/// Why a caller was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No `Authorization` header, or an empty one.
    #[error("an API key is required in the Authorization header")]
    Missing,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    Ambiguous,
    /// A key that matches no configured digest.
    #[error("the API key is not valid")]
    Invalid,
}

/// Admits a caller: with no configured digest every caller is admitted and the header is not
/// read (the interop clients then send `Authorization: undefined`); otherwise the single
/// `Authorization` header must carry a key whose SHA-256 digest is configured.
pub fn admit(digests: &[[u8; 32]], headers: &[&[u8]]) -> Result<(), KeyError> {
    if digests.is_empty() {
        return Ok(());
    }
    let value = match headers {
        [] => return Err(KeyError::Missing),
        [value] => *value,
        _ => return Err(KeyError::Ambiguous),
    };
    let key = strip_bearer(trim(value));
    if key.is_empty() {
        return Err(KeyError::Missing);
    }
    let presented: [u8; 32] = Sha256::digest(key).into();
    let matched = digests.iter().fold(0u8, |matched, digest| matched | u8::from(equal(&presented, digest)));
    if matched == 1 { Ok(()) } else { Err(KeyError::Invalid) }
}

/// Whether two digests are equal, in time independent of their contents.
fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| *b != b' ').unwrap_or(value.len());
    let end = value.iter().rposition(|b| *b != b' ').map_or(start, |end| end + 1);
    value.get(start..end).unwrap_or_default()
}

/// `Bearer <key>` (any letter case) → `<key>`; anything else is the key itself.
fn strip_bearer(value: &[u8]) -> &[u8] {
    if value.eq_ignore_ascii_case(b"bearer") {
        return &[];
    }
    match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => trim(value.get(7..).unwrap_or_default()),
        _ => value,
    }
}

/// The digest to configure for `key`, in hex (what `printf %s "$KEY" | sha256sum` prints).
pub fn digest_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }

    #[test]
    fn a_configured_key_is_admitted_bare_or_as_a_bearer_and_nothing_else_is() {
        let digests = [digest("first"), digest("second key")];
        assert_eq!(admit(&digests, &[b"second key"]), Ok(()));
        assert_eq!(admit(&digests, &[b"Bearer first"]), Ok(()));
        assert_eq!(admit(&digests, &[b"bearer  first "]), Ok(()));
        assert_eq!(admit(&digests, &[b"Bearer second"]), Err(KeyError::Invalid));
        assert_eq!(admit(&digests, &[b"firs"]), Err(KeyError::Invalid));
        assert_eq!(admit(&digests, &[b"undefined"]), Err(KeyError::Invalid));
        assert_eq!(admit(&digests, &[b""]), Err(KeyError::Missing));
        assert_eq!(admit(&digests, &[b"Bearer "]), Err(KeyError::Missing));
        assert_eq!(admit(&digests, &[]), Err(KeyError::Missing));
        assert_eq!(admit(&digests, &[b"first", b"first"]), Err(KeyError::Ambiguous));
    }

    #[test]
    fn without_configured_keys_the_header_is_not_read() {
        assert_eq!(admit(&[], &[b"undefined"]), Ok(()));
        assert_eq!(admit(&[], &[]), Ok(()));
        assert_eq!(admit(&[], &[b"a", b"b"]), Ok(()));
    }

    #[test]
    fn digests_compare_equal_only_when_every_byte_does() {
        let a = digest("a");
        assert!(equal(&a, &a));
        for index in 0..32 {
            let mut b = a;
            b[index] ^= 0x01;
            assert!(!equal(&a, &b));
        }
        assert_eq!(digest_hex("test"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    }
}
