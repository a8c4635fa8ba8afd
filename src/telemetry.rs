//! Logging: one `tracing` subscriber, JSON or pretty, set up once at start.
//!
//! INVARIANT: no call site logs a raw token, a signature or a full claim set; stages log the
//! pool, the subject and error codes only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tracing_subscriber::EnvFilter;

use crate::config::{DecisionLogSettings, LogFormat, LogSettings};
use crate::decision::{AccessRequest, Decision};
use crate::metrics::Metrics;
use crate::principal::Principal;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured filter.
/// Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The per-decision log: one `info` line with target `poolgate::decision` per sampled
/// decision or rejection, and the decision metrics for every one. The request id comes from
/// the request's span.
pub struct DecisionLog {
    settings: DecisionLogSettings,
    seen: AtomicU64,
    metrics: Arc<Metrics>,
}

impl DecisionLog {
    /// A log that keeps `settings.sample_rate` of the decisions.
    pub fn new(settings: &DecisionLogSettings, metrics: Arc<Metrics>) -> Self {
        Self { settings: settings.clone(), seen: AtomicU64::new(0), metrics }
    }

    fn count(&self, pool: &str, decision: &str, code: &str, started: Instant) {
        self.metrics.decisions.with_label_values(&[pool, decision, code]).inc();
        self.metrics.latency.with_label_values(&[decision]).observe(started.elapsed().as_secs_f64());
    }

    /// Logs a decision Cedar made.
    pub fn decided(&self, principal: &Principal, ask: &AccessRequest, decision: &Decision, started: Instant) {
        let outcome = if decision.allow { "allow" } else { "deny" };
        self.count(&principal.pool, outcome, "", started);
        if !self.sample() {
            return;
        }
        tracing::info!(
            target: "poolgate::decision",
            pool = %principal.pool,
            sub = %principal.sub,
            action = %ask.action,
            resource_type = %ask.resource.type_name,
            resource_id = %ask.resource.id,
            decision = outcome,
            determining_policies = ?decision.determining_policies,
            errors = decision.errors.len(),
            latency_us = started.elapsed().as_micros() as u64,
            "decision"
        );
    }

    /// Logs a request refused before a decision, by its error code.
    pub fn refused(&self, code: &str, started: Instant) {
        self.count("", "error", code, started);
        if !self.sample() {
            return;
        }
        tracing::info!(
            target: "poolgate::decision",
            decision = "error",
            error = code,
            latency_us = started.elapsed().as_micros() as u64,
            "decision"
        );
    }

    /// Keeps exactly `sample_rate` of the calls, spread evenly: call n is kept when
    /// `floor((n + 1) * rate)` moves past `floor(n * rate)`.
    fn sample(&self) -> bool {
        if !self.settings.enabled {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.settings.sample_rate).floor() > (n * self.settings.sample_rate).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(enabled: bool, sample_rate: f64, calls: usize) -> usize {
        let log = DecisionLog::new(&DecisionLogSettings { enabled, sample_rate }, Arc::new(Metrics::new().unwrap()));
        (0..calls).filter(|_| log.sample()).count()
    }

    #[test]
    fn sampling_keeps_the_configured_fraction() {
        assert_eq!(kept(true, 1.0, 1000), 1000);
        assert_eq!(kept(true, 0.25, 1000), 250);
        assert_eq!(kept(true, 0.0, 1000), 0);
        assert_eq!(kept(false, 1.0, 1000), 0);
    }
}
