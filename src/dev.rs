//! Development signing keys: pools configured with `dev_key = true` get an RSA key generated on
//! first use into `dev.keys_dir`, its public half written as the pool's JWKS file, so that
//! `poolgate dev token` can mint tokens the running service accepts.
//!
//! Tokens are shaped like Cognito's: ID tokens carry `aud`, access tokens `client_id`, and the
//! groups claim is absent (not empty) for a user with no group.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rand_core::{OsRng, RngCore};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, pkcs1::LineEnding};
use serde_json::{Map, Value, json};

use crate::config::Settings;
use crate::config::pool::{ClientPolicy, PoolSettings, TokenUse};

/// An RSA signing key with its `kid`.
pub struct SigningKey {
    kid: String,
    private: RsaPrivateKey,
    encoding: EncodingKey,
}

impl SigningKey {
    /// Generates a fresh 2048-bit key.
    pub fn generate(kid: &str) -> anyhow::Result<Self> {
        let private = RsaPrivateKey::new(&mut OsRng, 2048).context("cannot generate an RSA key")?;
        Self::from_private(kid, private)
    }

    /// Reads a PKCS#1 PEM private key.
    pub fn from_pem(kid: &str, pem: &str) -> anyhow::Result<Self> {
        let private = RsaPrivateKey::from_pkcs1_pem(pem).context("not a PKCS#1 PEM RSA key")?;
        Self::from_private(kid, private)
    }

    fn from_private(kid: &str, private: RsaPrivateKey) -> anyhow::Result<Self> {
        let pem = private.to_pkcs1_pem(LineEnding::LF).context("cannot encode the RSA key")?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).context("jsonwebtoken rejects the RSA key")?;
        Ok(Self { kid: kid.to_owned(), private, encoding })
    }

    /// The key's id, as written in token headers and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#1 PEM.
    pub fn to_pem(&self) -> anyhow::Result<String> {
        Ok(self.private.to_pkcs1_pem(LineEnding::LF).context("cannot encode the RSA key")?.to_string())
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(self.private.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.private.e().to_bytes_be()),
        })
    }

    /// Signs `claims` as an RS256 JWT with this key's `kid`.
    pub fn sign(&self, claims: &Map<String, Value>) -> anyhow::Result<String> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        self.sign_parts(&header.to_string(), &Value::Object(claims.clone()).to_string())
    }

    /// Signs the exact header and payload texts given, with RS256; whatever they say.
    pub fn sign_parts(&self, header: &str, payload: &str) -> anyhow::Result<String> {
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::RS256)
            .context("cannot sign the token")?;
        Ok(format!("{message}.{signature}"))
    }
}

/// What `poolgate dev token` puts in a token.
pub struct TokenSpec {
    /// `sub`.
    pub sub: String,
    /// Groups; none means the groups claim is left out, as Cognito does.
    pub groups: Vec<String>,
    /// Extra string claims, e.g. `custom:org_id`, `email` or `scope`.
    pub claims: Vec<(String, String)>,
    /// `token_use`.
    pub token_use: TokenUse,
    /// Lifetime.
    pub ttl: Duration,
}

/// Cognito-shaped claims for `pool`.
pub fn claims_for(pool: &PoolSettings, spec: &TokenSpec) -> Map<String, Value> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let client = match &pool.clients {
        ClientPolicy::Only(clients) => clients.iter().min().cloned().unwrap_or_default(),
        ClientPolicy::Any => "poolgate-dev-client".to_owned(),
    };
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(pool.issuer));
    claims.insert("sub".into(), json!(spec.sub));
    claims.insert("token_use".into(), json!(spec.token_use.as_str()));
    claims.insert("iat".into(), json!(now));
    claims.insert("auth_time".into(), json!(now));
    claims.insert("exp".into(), json!(now + spec.ttl.as_secs()));
    claims.insert("jti".into(), json!(random_id()));
    claims.insert("origin_jti".into(), json!(random_id()));
    match spec.token_use {
        TokenUse::Id => claims.insert("aud".into(), json!(client)),
        TokenUse::Access => claims.insert("client_id".into(), json!(client)),
    };
    if !spec.groups.is_empty() {
        claims.insert(pool.groups_claim.clone(), json!(spec.groups));
    }
    for (name, value) in &spec.claims {
        claims.insert(name.clone(), json!(value));
    }
    claims
}

/// Makes sure every `dev_key` pool has a key and a JWKS file; generates missing ones.
pub fn ensure_keys(settings: &Settings) -> anyhow::Result<()> {
    for pool in settings.pools.iter().filter(|pool| pool.dev_key) {
        let (key_path, jwks_path) = paths(&settings.dev.keys_dir, &pool.name);
        if key_path.exists() && jwks_path.exists() {
            continue;
        }
        std::fs::create_dir_all(&settings.dev.keys_dir)
            .with_context(|| format!("cannot create {}", settings.dev.keys_dir.display()))?;
        let key = SigningKey::generate(&format!("dev-{}", pool.name))?;
        write_private(&key_path, &key.to_pem()?)?;
        let jwks = serde_json::to_vec_pretty(&json!({"keys": [key.jwk()]}))?;
        std::fs::write(&jwks_path, jwks).with_context(|| format!("cannot write {}", jwks_path.display()))?;
        tracing::warn!(pool = %pool.name, dir = %settings.dev.keys_dir.display(), "generated a development signing key");
    }
    Ok(())
}

/// Mints a token for a `dev_key` pool.
pub fn mint(settings: &Settings, pool_name: &str, spec: &TokenSpec) -> anyhow::Result<String> {
    Minter::new(settings, pool_name)?.mint(spec)
}

/// A `dev_key` pool with its signing key read once, for minting many tokens.
pub struct Minter<'a> {
    pool: &'a PoolSettings,
    key: SigningKey,
}

impl<'a> Minter<'a> {
    /// Reads the key of the `dev_key` pool `pool_name`, generating it if it is missing.
    pub fn new(settings: &'a Settings, pool_name: &str) -> anyhow::Result<Self> {
        let Some(pool) = settings.pools.iter().find(|pool| pool.name == pool_name) else {
            bail!("no pool named `{pool_name}`");
        };
        if !pool.dev_key {
            bail!("pool `{pool_name}` is not a dev_key pool; poolgate holds no key for it");
        }
        ensure_keys(settings)?;
        let (key_path, _) = paths(&settings.dev.keys_dir, &pool.name);
        let pem = std::fs::read_to_string(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
        let key = SigningKey::from_pem(&format!("dev-{}", pool.name), &pem)?;
        Ok(Self { pool, key })
    }

    /// Signs a token with the pool's Cognito-shaped claims.
    pub fn mint(&self, spec: &TokenSpec) -> anyhow::Result<String> {
        self.key.sign(&claims_for(self.pool, spec))
    }
}

fn paths(dir: &Path, pool: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{pool}.key.pem")), dir.join(format!("{pool}.jwks.json")))
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(pem.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
