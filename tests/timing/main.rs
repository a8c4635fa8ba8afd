//! The timing-sensitive integration tests: database faults, cache coherence across replicas,
//! key-set fetch timing and the 1,000-connection soak. Each asserts a time bound, so each holds
//! [`serial`] for its whole run: on a 2-core machine a test running beside another would
//! measure its neighbour's load. Cargo runs this binary after the main suite.
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

mod coherence;
mod faults;
mod jwks;
mod soak;

/// Held by every test of this binary, so they run one at a time whatever the test threads.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
