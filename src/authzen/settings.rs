//! `[authzen]`: how AuthZEN requests name subjects and types, and who may call.
//!
//! ```toml
//! [authzen]
//! subject_mode = "token"          # or "trusted_caller"
//! api_keys = []                   # SHA-256 hex digests of the callers' API keys
//! base_url = "https://pdp.example.com"   # optional: `policy_decision_point` in the metadata
//!
//! [authzen.pools.todo]
//! subject_types = ["user", "identity"]   # AuthZEN subject types naming this pool's users
//! subject_properties = ["role"]          # request subject properties the policies may read
//! resource_types = { todo = "Todo", user = "Person" }   # AuthZEN type → Cedar entity type
//! ```
//!
//! A pool without a section takes the subject type `user`, no request properties, and resource
//! types named as in Cedar. In `trusted_caller` mode a subject type must name one pool only,
//! since it is the type that picks the pool; that mode needs at least one API key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::names::is_identifier;
use crate::config::pool::{PoolSettings, RESERVED_ATTRIBUTES};

/// How an AuthZEN request names its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectMode {
    /// The subject carries the end user's Cognito token in `subject.properties.token` (plus the
    /// ID token in `subject.properties.id_token`, paired mode), verified as `/v1/check` does.
    Token,
    /// An API-key holder names subjects by id; their groups, flags and attributes come from SQL.
    TrustedCaller,
}

/// `[authzen]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzen {
    subject_mode: SubjectMode,
    #[serde(default)]
    api_keys: Vec<String>,
    base_url: Option<String>,
    #[serde(default)]
    pools: BTreeMap<String, RawAuthzenPool>,
}

/// `[authzen.pools.<pool>]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthzenPool {
    subject_types: Option<Vec<String>>,
    #[serde(default)]
    subject_properties: Vec<String>,
    #[serde(default)]
    resource_types: BTreeMap<String, String>,
}

/// `[authzen]`, validated.
#[derive(Debug, Clone)]
pub struct AuthzenSettings {
    /// How subjects are named.
    pub subject_mode: SubjectMode,
    /// SHA-256 digests of the accepted API keys; when empty, callers are not authenticated (and
    /// the `Authorization` header is not read).
    pub api_keys: Vec<[u8; 32]>,
    /// `policy_decision_point`, without a trailing slash; derived from each request when unset.
    pub base_url: Option<String>,
    /// One entry per configured pool, in pool order.
    pub pools: Vec<AuthzenPool>,
}

/// One pool as AuthZEN sees it.
#[derive(Debug, Clone)]
pub struct AuthzenPool {
    /// The pool's name.
    pub pool: String,
    /// AuthZEN subject types naming the pool's `User`.
    pub subject_types: Vec<String>,
    /// Subject properties a request may supply (each used only if the schema declares it a
    /// `String` attribute of the pool's `User`).
    pub subject_properties: Vec<String>,
    /// AuthZEN resource type → Cedar entity type in the pool's namespace; an unlisted type is
    /// taken as the Cedar name itself.
    pub resource_types: BTreeMap<String, String>,
}

impl AuthzenPool {
    /// The Cedar entity type (unqualified) an AuthZEN resource type names.
    pub fn cedar_type<'a>(&'a self, authzen_type: &'a str) -> &'a str {
        self.resource_types.get(authzen_type).map_or(authzen_type, String::as_str)
    }
}

impl AuthzenSettings {
    /// The settings of `pool`.
    pub fn pool(&self, pool: &str) -> Option<&AuthzenPool> {
        self.pools.iter().find(|entry| entry.pool == pool)
    }

    /// The pool whose users `subject_type` names (trusted-caller mode: at most one).
    pub fn pool_of_subject_type(&self, subject_type: &str) -> Option<&AuthzenPool> {
        self.pools.iter().find(|entry| entry.subject_types.iter().any(|known| known == subject_type))
    }
}

impl RawAuthzen {
    /// Validates the section against the configured pools; the error lists every problem.
    pub fn check(self, pools: &[PoolSettings]) -> Result<AuthzenSettings, Vec<String>> {
        let mut problems = Vec::new();
        let mut api_keys = Vec::with_capacity(self.api_keys.len());
        for (index, key) in self.api_keys.iter().enumerate() {
            match decode_digest(key) {
                Some(digest) => api_keys.push(digest),
                None => problems.push(format!(
                    "authzen.api_keys[{index}]: not a SHA-256 digest in hex (64 hex digits); store the key's \
                     digest, e.g. `printf %s \"$KEY\" | sha256sum`"
                )),
            }
        }
        if self.subject_mode == SubjectMode::TrustedCaller && self.api_keys.is_empty() {
            problems.push("authzen.api_keys: trusted_caller mode needs at least one API key".into());
        }
        let base_url = match self.base_url {
            None => None,
            Some(url) => match reqwest::Url::parse(&url) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https")
                        && parsed.host().is_some()
                        && parsed.query().is_none()
                        && parsed.fragment().is_none() =>
                {
                    Some(url.trim_end_matches('/').to_owned())
                }
                _ => {
                    problems.push(format!("authzen.base_url: `{url}` is not an http(s) URL without query or fragment"));
                    None
                }
            },
        };
        for name in self.pools.keys() {
            if !pools.iter().any(|pool| &pool.name == name) {
                problems.push(format!("authzen.pools.{name}: no pool `{name}` is configured"));
            }
        }
        let mut raw = self.pools;
        let mut resolved = Vec::with_capacity(pools.len());
        for pool in pools {
            let written = raw.remove(&pool.name).unwrap_or_default();
            let key = |field: &str| format!("authzen.pools.{}.{field}", pool.name);
            let subject_types = written.subject_types.unwrap_or_else(|| vec!["user".to_owned()]);
            if subject_types.iter().any(String::is_empty) {
                problems.push(format!("{}: must not contain empty strings", key("subject_types")));
            }
            for property in &written.subject_properties {
                if !is_identifier(property) || RESERVED_ATTRIBUTES.contains(&property.as_str()) {
                    problems.push(format!(
                        "{}: `{property}` is reserved or not a Cedar identifier",
                        key("subject_properties")
                    ));
                } else if pool.attributes.iter().any(|(name, _)| name == property) {
                    problems.push(format!(
                        "{}: `{property}` comes from the token (pools.{}.attributes)",
                        key("subject_properties"),
                        pool.name
                    ));
                }
            }
            for (authzen_type, cedar_type) in &written.resource_types {
                if authzen_type.is_empty() || !is_identifier(cedar_type) {
                    problems.push(format!(
                        "{}: `{authzen_type}` = `{cedar_type}`: an AuthZEN type maps to a Cedar identifier",
                        key("resource_types")
                    ));
                }
            }
            resolved.push(AuthzenPool {
                pool: pool.name.clone(),
                subject_types,
                subject_properties: written.subject_properties,
                resource_types: written.resource_types,
            });
        }
        if self.subject_mode == SubjectMode::TrustedCaller {
            for (index, entry) in resolved.iter().enumerate() {
                for subject_type in &entry.subject_types {
                    let earlier = resolved.iter().take(index).find(|other| other.subject_types.contains(subject_type));
                    if let Some(earlier) = earlier {
                        problems.push(format!(
                            "authzen.pools.{}.subject_types: `{subject_type}` also names pool `{}`'s users; in \
                             trusted_caller mode the subject type picks the pool, so each may name one pool only \
                             (set subject_types = [] on a pool trusted callers must not address)",
                            entry.pool, earlier.pool
                        ));
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(AuthzenSettings { subject_mode: self.subject_mode, api_keys, base_url, pools: resolved })
    }
}

/// 64 hex digits → 32 bytes.
fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    // `from_str_radix` would accept a sign; only hex digits are.
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_64_hex_digits() {
        let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(decode_digest(digest).map(|bytes| bytes[0]), Some(0x9f));
        assert_eq!(decode_digest(&digest.to_uppercase()).map(|bytes| bytes[31]), Some(0x08));
        assert!(decode_digest(&digest[1..]).is_none());
        assert!(decode_digest(&format!("{}zz", &digest[2..])).is_none());
        assert!(decode_digest("+f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08").is_none());
    }
}
