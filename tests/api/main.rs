//! The main integration-test binary: a real poolgate server on port 0, a fake issuer on port 0
//! serving JWKS and signing RS256 tokens, and a fresh database per test (SQLite always,
//! PostgreSQL when `POOLGATE_TEST_POSTGRES_URL` is set, and always under `CI`). Its tests run
//! in parallel; the ones that measure time run serially in `tests/timing`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a failing test should stop at the line that failed"
)]

#[path = "../common/fake_issuer.rs"]
mod fake_issuer;
#[path = "../common/helpers.rs"]
mod helpers;
#[path = "../common/proxy.rs"]
mod proxy;

mod attack;
mod authzen;
mod authzen_certification;
mod authzen_interop;
mod decision;
mod decision_log;
mod docs;
mod filter_conformance;
mod filter_http;
mod forward_auth;
mod gateways;
mod grpc;
mod lifecycle;
mod observability;
mod policy_matrix;
mod principal;
mod properties;
mod reload;
mod startup;
mod token;
mod token_edges;
