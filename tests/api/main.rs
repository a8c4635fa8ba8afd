//! The single integration-test binary: a real poolgate server on port 0, a fake issuer on
//! port 0 serving JWKS and signing RS256 tokens, and a fresh database per test (SQLite always,
//! PostgreSQL when `POOLGATE_TEST_POSTGRES_URL` is set).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a failing test should stop at the line that failed"
)]

mod attack;
mod coherence;
mod decision;
mod decision_log;
mod fake_issuer;
mod faults;
mod forward_auth;
mod gateways;
mod helpers;
mod jwks;
mod lifecycle;
mod observability;
mod principal;
mod properties;
mod proxy;
mod reload;
mod soak;
mod startup;
mod token;
