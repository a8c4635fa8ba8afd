//! Stage 3, live: the policy set in force, and its replacement on `SIGHUP` or when a file in
//! `policies/` changes (debounced).
//!
//! A new set is fully loaded and validated before it is swapped in; an invalid change keeps the
//! old set serving and logs every problem. Each request takes the set in force when it starts
//! (an `Arc`), so in-flight requests finish on the set they began with.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};

use crate::decision::policies::PolicyLoadError;
use crate::decision::{self, PolicyFolder, PolicySources};
use crate::metrics::Metrics;

/// Quiet time after a file event before reloading, so an editor's burst of writes is one reload.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The policy set in force.
pub struct Policies {
    current: RwLock<Arc<PolicyFolder>>,
    sources: PolicySources,
    metrics: Arc<Metrics>,
}

impl Policies {
    /// Wraps the set loaded at start-up.
    pub fn new(folder: PolicyFolder, sources: PolicySources, metrics: Arc<Metrics>) -> Self {
        Self { current: RwLock::new(Arc::new(folder)), sources, metrics }
    }

    /// The set in force now; hold on to it for the whole request.
    pub fn current(&self) -> Arc<PolicyFolder> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            // A writer only ever swaps an Arc; the value behind a poisoned lock is still whole.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Loads the folder again and swaps the new set in if it is valid; returns its version.
    pub fn reload(&self) -> Result<String, PolicyLoadError> {
        let folder = decision::load(&self.sources)?;
        let version = folder.decider.version().to_owned();
        match self.current.write() {
            Ok(mut current) => *current = Arc::new(folder),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(folder),
        }
        Ok(version)
    }

    fn reload_and_log(&self, trigger: &str) {
        let before = self.current().decider.version().to_owned();
        let result = self.reload();
        let outcome = match &result {
            Ok(version) if *version == before => "unchanged",
            Ok(_) => "ok",
            Err(_) => "refused",
        };
        self.metrics.policy_reloads.with_label_values(&[outcome]).inc();
        match result {
            Ok(version) if version == before => tracing::debug!(trigger, version, "policies unchanged"),
            Ok(version) => tracing::info!(trigger, version, "policies reloaded"),
            Err(err) => {
                for problem in &err.problems {
                    tracing::error!(trigger, problem, "policy reload refused; the previous set keeps serving");
                }
            }
        }
    }
}

/// Reloads on `SIGHUP` and, when `watch_files` is set, on changes in the policies folder.
pub fn follow(policies: Arc<Policies>, watch_files: bool) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = if watch_files {
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                // A full channel already holds a pending reload.
                let _ = changed.try_send(());
            }
        })?;
        watcher.watch(&policies.sources.dir, RecursiveMode::NonRecursive)?;
        Some(watcher)
    } else {
        None
    };
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                Some(()) = hangups.recv() => policies.reload_and_log("SIGHUP"),
                Some(()) = changes.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while changes.try_recv().is_ok() {}
                    policies.reload_and_log("file change");
                }
            }
        }
    }))
}
