//! poolgate: an authorization sidecar for services whose users live in several Cognito user
//! pools.
//!
//! A backend asks `POST /v1/check` whether the bearer of a token may do an action on a resource.
//! The answer is built in three stages, one module each, in this order:
//!
//! 1. [`token`]: route the token to its pool by `iss`, verify it with that pool's keys, check
//!    its claims.
//! 2. [`principal`]: check the admin tables (disabled, signed out, revoked) and join the
//!    verified claims with the user's permission flags; caches stay coherent across replicas.
//! 3. [`decision`]: evaluate the Cedar policies in `policies/`; any error means deny.
//!
//! Reverse proxies ask `/v1/forward-auth` instead; [`forward`] turns the original method and
//! path into the action and resource, by the route table in `policies/routes.toml`.
//!
//! [`authzen`] translates the OpenID AuthZEN 1.0 Authorization API (evaluations and searches)
//! into the same questions, for enforcement points that speak it.
//!
//! [`filter`] answers the list question ("which resources may I touch?") from the same
//! policies, as a condition tree and SQL.
//!
//! [`grpc`] answers Envoy's gRPC ext_authz the same way, on a listener of its own.
//!
//! [`http`] exposes the stages, [`error`] maps their failures to HTTP, [`startup`] wires it all
//! from [`config`]; [`db`] owns the connection and migrations, [`dev`] the local dev keys.

pub mod authzen;
pub mod cli;
pub mod config;
pub mod db;
pub mod decision;
pub mod decision_log;
pub mod dev;
pub mod error;
pub mod filter;
pub mod forward;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod principal;
pub mod startup;
pub mod telemetry;
pub mod token;
