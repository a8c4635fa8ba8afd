//! poolgate: an authorization sidecar for services whose users live in several Cognito user
//! pools.
//!
//! A backend asks `POST /v1/check` whether the bearer of a token may do an action on a resource.
//! The answer is built in three stages, one module each, in this order:
//!
//! 1. [`token`]: route the token to its pool by `iss`, verify it with that pool's keys, check
//!    its claims.
//! 2. [`principal`]: join the verified claims with the user's permission flags from the database.
//! 3. [`decision`]: evaluate the Cedar policies in `policies/`; any error means deny.
//!
//! [`http`] exposes the stages, [`error`] maps their failures to HTTP, [`startup`] wires it all
//! from [`config`]; [`db`] owns the connection and migrations, [`dev`] the local dev keys.

pub mod cli;
pub mod config;
pub mod db;
pub mod decision;
pub mod dev;
pub mod error;
pub mod http;
pub mod principal;
pub mod startup;
pub mod telemetry;
pub mod token;
