//! Prometheus metrics, one registry per running app (so tests that run several apps in one
//! process see their own figures), rendered in text format by `GET /metrics`.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// Every metric poolgate exports.
pub struct Metrics {
    registry: Registry,
    /// Outcomes by pool, decision (`allow`, `deny`, `error`) and error code.
    pub decisions: IntCounterVec,
    /// Time from request to answer, by decision.
    pub latency: HistogramVec,
    /// Key-set fetches by pool and result (`ok`, `error`).
    pub jwks_fetches: IntCounterVec,
    /// Cache lookups by cache (`principal`, `revocation`) and result (`hit`, `miss`).
    pub cache_lookups: IntCounterVec,
    /// Failed database reads.
    pub database_errors: IntCounter,
    /// Decision records dropped because the writer's queue was full.
    pub decision_log_dropped: IntCounter,
    /// Policy reloads by result (`ok`, `unchanged`, `refused`).
    pub policy_reloads: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let decisions = IntCounterVec::new(
            Opts::new("poolgate_decisions_total", "Answers by pool, decision and error code"),
            &["pool", "decision", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("poolgate_request_duration_seconds", "Time to answer, by decision").buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ]),
            &["decision"],
        )?;
        let jwks_fetches =
            IntCounterVec::new(Opts::new("poolgate_jwks_fetches_total", "Key-set fetches"), &["pool", "result"])?;
        let cache_lookups =
            IntCounterVec::new(Opts::new("poolgate_cache_lookups_total", "Cache lookups"), &["cache", "result"])?;
        let database_errors = IntCounter::new("poolgate_database_errors_total", "Failed database reads")?;
        let decision_log_dropped = IntCounter::new(
            "poolgate_decision_log_dropped_total",
            "Decision records dropped because the decision log's queue was full",
        )?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(jwks_fetches.clone()))?;
        registry.register(Box::new(cache_lookups.clone()))?;
        registry.register(Box::new(database_errors.clone()))?;
        let policy_reloads =
            IntCounterVec::new(Opts::new("poolgate_policy_reloads_total", "Policy reloads by result"), &["result"])?;
        registry.register(Box::new(decision_log_dropped.clone()))?;
        registry.register(Box::new(policy_reloads.clone()))?;
        Ok(Self {
            registry,
            decisions,
            latency,
            jwks_fetches,
            cache_lookups,
            database_errors,
            decision_log_dropped,
            policy_reloads,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics; an empty page is the fallback.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
