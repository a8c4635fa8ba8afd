//! `poolgate check`: one decision from the command line, explained, through the same stages
//! as `/v1/check`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::cli::parse_claim;
use crate::config::Settings;
use crate::db;
use crate::decision::request::{AccessRequest, ResourceRef};
use crate::decision::{Decider, PolicySources};
use crate::error::{self, ApiError};
use crate::metrics::Metrics;
use crate::principal::{self, store::PrincipalStore};
use crate::token::Verifier;

/// The question and the tokens.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The bearer token.
    #[arg(long)]
    token: String,
    /// The ID token of paired mode.
    #[arg(long)]
    id_token: Option<String>,
    /// Action name in the token's pool namespace.
    #[arg(long)]
    action: String,
    /// Resource type name in the token's pool namespace.
    #[arg(long)]
    resource_type: String,
    /// Resource id.
    #[arg(long)]
    resource_id: String,
    /// A resource attribute as KEY=VALUE; VALUE is read as JSON when it parses, else as a
    /// string (write `'k="123"'` for a string of digits); repeat for several.
    #[arg(long = "attr", value_parser = parse_claim)]
    attributes: Vec<(String, String)>,
}

/// Decides and prints the explanation; exits 1 on deny.
pub async fn run(args: CheckArgs, settings: Settings) -> anyhow::Result<ExitCode> {
    let CheckArgs { token, id_token, action, resource_type, resource_id, attributes } = args;
    let decider = Decider::load(&PolicySources::from(&settings))?;
    let metrics = Arc::new(Metrics::new()?);
    let verifier = Verifier::start(&settings, Arc::clone(&metrics)).await?;
    let verified = match &id_token {
        Some(id_token) => verifier.verify_pair(&token, id_token).await,
        None => verifier.verify(&token).await,
    }
    .map_err(|err| {
        let err = ApiError::from(err);
        anyhow::anyhow!("{}: {}", err.code(), error::chain(&err))
    })?;
    let store = PrincipalStore::new(db::connect(&settings.database).await?, &settings, metrics);
    let principal = principal::resolve(&store, &verified).await?;
    let attributes = attributes
        .into_iter()
        .map(|(key, value)| (key, serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value))))
        .collect();
    let ask = AccessRequest {
        action,
        resource: ResourceRef { type_name: resource_type, id: resource_id, attributes, parents: Vec::new() },
        context: serde_json::Map::new(),
    };
    let decision = decider.decide(&principal, &ask)?;
    let explanation = serde_json::json!({
        "decision": if decision.allow { "allow" } else { "deny" },
        "determining_policies": decision.determining_policies,
        "errors": decision.errors,
        "policy_version": decider.version(),
        "pool": principal.pool,
        "principal": {
            "sub": principal.sub,
            "token_use": principal.token_use.as_str(),
            "groups": principal.groups,
            "flags": principal.flags,
            "scopes": principal.scopes,
            "attributes": principal.attributes.iter().cloned().collect::<BTreeMap<_, _>>(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&explanation)?);
    Ok(if decision.allow { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
