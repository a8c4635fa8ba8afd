//! The same-run baseline of `bench/load.sh`: a bare actix-web server, with actix-web's default
//! worker count like poolgate, whose `POST /v1/check` answers a fixed small JSON body.
//!
//! - `constant` answers at once: the cost of HTTP on loopback, the ceiling for any check.
//! - `verify` first checks the bearer token with jsonwebtoken (RS256 signature, `exp`, `iss`,
//!   `aud`) against a JWKS file, such as the one poolgate writes for a dev pool, and answers
//!   `401` when it fails: the cost every token poolgate has not seen before must pay.
//!
//! ```sh
//! cargo run --release --example baseline -- constant --bind 127.0.0.1:8181
//! cargo run --release --example baseline -- verify --jwks .poolgate/dev-keys/merchant.jwks.json
//! ```

use std::path::PathBuf;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use clap::{Parser, ValueEnum};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// The answer to every accepted request, shaped like a poolgate allow.
const ANSWER: &str = r#"{"decision":"allow","determining_policies":["merchant.read-own-org-stock"],"errors":[]}"#;

#[derive(Debug, Parser)]
struct Args {
    /// What to do before answering.
    #[arg(value_enum)]
    mode: Mode,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8181")]
    bind: String,
    /// JWKS file with the pool's public key (`verify` only; its first key is used).
    #[arg(long, default_value = ".poolgate/dev-keys/merchant.jwks.json")]
    jwks: PathBuf,
    /// Required `iss` (`verify` only).
    #[arg(long, default_value = "https://cognito-idp.dev.poolgate.local/merchant")]
    issuer: String,
    /// Required `aud` (`verify` only).
    #[arg(long, default_value = "poolgate-dev-client")]
    audience: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Answer at once.
    Constant,
    /// Verify the bearer token, then answer.
    Verify,
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    fn load(args: &Args) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(&args.jwks).with_context(|| format!("cannot read {}", args.jwks.display()))?;
        let jwks: JwkSet = serde_json::from_str(&text).context("not a JWKS")?;
        let jwk = jwks.keys.first().context("the JWKS holds no key")?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&args.issuer]);
        validation.set_audience(&[&args.audience]);
        Ok(Self { key: DecodingKey::from_jwk(jwk)?, validation })
    }

    fn accepts(&self, request: &HttpRequest) -> bool {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        token.is_some_and(|token| jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation).is_ok())
    }
}

async fn check(request: HttpRequest, _body: web::Bytes, verifier: web::Data<Option<Verifier>>) -> HttpResponse {
    match verifier.as_ref() {
        Some(verifier) if !verifier.accepts(&request) => {
            HttpResponse::Unauthorized().content_type("application/json").body(r#"{"error":"invalid_token"}"#)
        }
        _ => HttpResponse::Ok().content_type("application/json").body(ANSWER),
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let verifier = web::Data::new(match args.mode {
        Mode::Constant => None,
        Mode::Verify => Some(Verifier::load(&args)?),
    });
    HttpServer::new(move || App::new().app_data(verifier.clone()).route("/v1/check", web::post().to(check)))
        .bind(&args.bind)
        .with_context(|| format!("cannot listen on {}", args.bind))?
        .run()
        .await?;
    Ok(())
}
