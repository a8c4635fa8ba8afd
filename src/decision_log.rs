//! The decision log: one JSON record per answer, written by a thread of its own.
//!
//! The request path only fills a [`Record`] (owned values, no formatting) and offers it to a
//! bounded queue; a writer thread wakes every 20 ms, serializes what is queued, writes it
//! through a buffer and flushes. So the request path never waits on I/O. When the queue is full
//! the record is dropped and counted in `poolgate_decision_log_dropped_total`: an answer is
//! never held back for the log (the trade-off OPA's decision logs make too; size
//! `decision_log.queue_capacity` for bursts and alert on the counter). [`DecisionLog::close`]
//! drains the queue, so a graceful shutdown loses no record.
//!
//! The log has its own switch, sink and sampling; `log.filter` does not reach it, so quieting
//! the diagnostic log never turns the audit trail off. The schema is documented in
//! `docs/decision-log.md`.
//!
//! INVARIANT: a record carries no token, claim set or span; only the fields of [`Record`].

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use prometheus::{Histogram, IntCounter};
use serde::Serialize;

use crate::config::{DecisionLogSettings, DecisionLogSink};
use crate::decision::Decision;
use crate::decision::request::AccessRequest;
use crate::filter::{FilterQuestion, Plan, Planned};
use crate::metrics::Metrics;
use crate::principal::Principal;

/// One line of the decision log.
#[derive(Debug, Serialize)]
pub struct Record {
    /// When the answer was given, RFC 3339 UTC with milliseconds.
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// The request's id (`X-Request-Id`).
    pub request_id: String,
    /// The token's pool; `null` when refused before a principal was known.
    pub pool: Option<String>,
    /// The token's `sub`; `null` likewise.
    pub sub: Option<String>,
    /// The action asked about; `null` when refused before a decision.
    pub action: Option<String>,
    /// The resource's type; `null` likewise.
    pub resource_type: Option<String>,
    /// The resource's id; `null` likewise, and for a list answer.
    pub resource_id: Option<String>,
    /// `allow`, `deny` or `error`; `conditional` for a list answer that depends on the
    /// resource's attributes.
    pub decision: &'static str,
    /// The policies that determined the answer.
    pub determining_policies: Vec<String>,
    /// The stable error code of a refusal; `policy_error` for a deny forced by a policy's
    /// evaluation error; `null` otherwise.
    pub error: Option<&'static str>,
    /// The version of the policy set in force.
    pub policy_version: String,
    /// Microseconds from the request's arrival to its answer.
    pub latency_us: u64,
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
}

/// What the writer thread receives.
enum Message {
    Record(Box<Record>),
    /// Write everything before this, then stop.
    Close,
}

/// The decision log's front: sampling, the queue, and the decision metrics.
pub struct DecisionLog {
    enabled: bool,
    sample_rate: f64,
    seen: AtomicU64,
    queue: SyncSender<Message>,
    writer: Mutex<Option<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    /// Each pool's allow and deny counters, resolved once: a label lookup per request costs
    /// hashing and a lock.
    counters: HashMap<String, [IntCounter; 2]>,
    /// The latency histogram of allows, denies and errors, likewise.
    latencies: [Histogram; 3],
}

impl DecisionLog {
    /// Opens the sink and starts the writer thread; `pools` are the configured pool names.
    pub fn start<'a>(
        settings: &DecisionLogSettings,
        pools: impl Iterator<Item = &'a str>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Self> {
        let sink: Box<dyn Write + Send> = match &settings.sink {
            DecisionLogSink::Stdout => Box::new(io::stdout()),
            DecisionLogSink::Stderr => Box::new(io::stderr()),
            DecisionLogSink::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        };
        Self::with_sink(settings, pools, sink, metrics)
    }

    fn with_sink<'a>(
        settings: &DecisionLogSettings,
        pools: impl Iterator<Item = &'a str>,
        sink: Box<dyn Write + Send>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Self> {
        let counter = |pool: &str, decision: &str| metrics.decisions.with_label_values(&[pool, decision, ""]);
        let counters = pools.map(|pool| (pool.to_owned(), [counter(pool, "allow"), counter(pool, "deny")])).collect();
        let latencies = ["allow", "deny", "error"].map(|decision| metrics.latency.with_label_values(&[decision]));
        let (queue, records) = mpsc::sync_channel(settings.queue_capacity);
        let writer = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_records(&records, BufWriter::with_capacity(64 * 1024, sink)))?;
        Ok(Self {
            enabled: settings.enabled,
            sample_rate: settings.sample_rate,
            seen: AtomicU64::new(0),
            queue,
            writer: Mutex::new(Some(writer)),
            metrics,
            counters,
            latencies,
        })
    }

    /// Records a decision Cedar made.
    pub fn decided(
        &self,
        request_id: &str,
        principal: &Principal,
        ask: &AccessRequest,
        decision: &Decision,
        policy_version: &str,
        started: Instant,
    ) {
        let outcome = if decision.allow { "allow" } else { "deny" };
        let index = usize::from(!decision.allow);
        match self.counters.get(&principal.pool).and_then(|counters| counters.get(index)) {
            Some(counter) => counter.inc(),
            None => self.metrics.decisions.with_label_values(&[&principal.pool, outcome, ""]).inc(),
        }
        self.observe(index, started);
        if !self.sample() {
            return;
        }
        self.offer(Record {
            time: SystemTime::now(),
            request_id: request_id.to_owned(),
            pool: Some(principal.pool.clone()),
            sub: Some(principal.sub.clone()),
            action: Some(ask.action.clone()),
            resource_type: Some(ask.resource.type_name.clone()),
            resource_id: Some(ask.resource.id.clone()),
            decision: outcome,
            determining_policies: decision.determining_policies.clone(),
            error: if decision.errors.is_empty() { None } else { Some("policy_error") },
            policy_version: policy_version.to_owned(),
            latency_us: started.elapsed().as_micros() as u64,
        });
    }

    /// Records a list answer (`/v1/filter`, `/v1/resources/search`): `allow` when every
    /// resource of the type is allowed, `deny` when none is, `conditional` when the answer
    /// depends on the resource's attributes; no resource id; the policies involved stand as the
    /// determining ones.
    pub fn listed(
        &self,
        request_id: &str,
        principal: &Principal,
        question: &FilterQuestion<'_>,
        planned: &Planned,
        policy_version: &str,
        started: Instant,
    ) {
        let outcome = match planned.plan {
            Plan::AlwaysAllow => "allow",
            Plan::AlwaysDeny => "deny",
            Plan::Conditional { .. } => "conditional",
        };
        self.metrics.decisions.with_label_values(&[&principal.pool, outcome, ""]).inc();
        self.metrics.latency.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
        if !self.sample() {
            return;
        }
        self.offer(Record {
            time: SystemTime::now(),
            request_id: request_id.to_owned(),
            pool: Some(principal.pool.clone()),
            sub: Some(principal.sub.clone()),
            action: Some(question.action.to_owned()),
            resource_type: Some(question.resource_type.to_owned()),
            resource_id: None,
            decision: outcome,
            determining_policies: planned.policies.clone(),
            error: None,
            policy_version: policy_version.to_owned(),
            latency_us: started.elapsed().as_micros() as u64,
        });
    }

    /// Records a request refused before a decision, by its error code.
    pub fn refused(&self, request_id: &str, code: &'static str, policy_version: &str, started: Instant) {
        self.metrics.decisions.with_label_values(&["", "error", code]).inc();
        self.observe(2, started);
        if !self.sample() {
            return;
        }
        self.offer(Record {
            time: SystemTime::now(),
            request_id: request_id.to_owned(),
            pool: None,
            sub: None,
            action: None,
            resource_type: None,
            resource_id: None,
            decision: "error",
            determining_policies: Vec::new(),
            error: Some(code),
            policy_version: policy_version.to_owned(),
            latency_us: started.elapsed().as_micros() as u64,
        });
    }

    /// Writes every queued record and stops the writer; later records are dropped and counted.
    pub fn close(&self) {
        let writer = match self.writer.lock() {
            Ok(mut writer) => writer.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(writer) = writer {
            // A full queue still takes the sentinel once the writer makes room.
            let _ = self.queue.send(Message::Close);
            let _ = writer.join();
        }
    }

    /// Records the latency of an allow (0), a deny (1) or an error (2).
    fn observe(&self, outcome: usize, started: Instant) {
        if let Some(latency) = self.latencies.get(outcome) {
            latency.observe(started.elapsed().as_secs_f64());
        }
    }

    fn offer(&self, record: Record) {
        match self.queue.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.metrics.decision_log_dropped.inc(),
        }
    }

    /// Keeps exactly `sample_rate` of the calls, spread evenly: call n is kept when
    /// `floor((n + 1) * rate)` moves past `floor(n * rate)`.
    fn sample(&self) -> bool {
        if !self.enabled {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * self.sample_rate).floor() > (n * self.sample_rate).floor()
    }
}

/// How often the writer wakes to drain the queue and flush. The writer never blocks on the
/// queue: a blocked receiver would have to be woken by every record's send, a system call and a
/// context switch per answer on the request path. A record waits at most this long.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// The writer thread: every [`DRAIN_INTERVAL`], writes whatever is queued, one JSON line per
/// record, through its buffer, and flushes; stops at [`Message::Close`], after the records
/// queued before it.
fn write_records(records: &Receiver<Message>, mut out: BufWriter<Box<dyn Write + Send>>) {
    loop {
        std::thread::sleep(DRAIN_INTERVAL);
        loop {
            match records.try_recv() {
                Ok(Message::Record(record)) => {
                    // A record that cannot be written (a full disk) is lost; the next one tries again.
                    if serde_json::to_writer(&mut out, &record).is_ok() {
                        let _ = out.write_all(b"\n");
                    }
                }
                Ok(Message::Close) | Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(enabled: bool, sample_rate: f64, calls: usize) -> usize {
        let settings = DecisionLogSettings { enabled, sink: DecisionLogSink::Stderr, sample_rate, queue_capacity: 1 };
        let log = DecisionLog::start(&settings, std::iter::empty(), Arc::new(Metrics::new().unwrap())).unwrap();
        (0..calls).filter(|_| log.sample()).count()
    }

    /// A sink that says when a write reaches it, and takes nothing until it is opened.
    struct Gate {
        entered: mpsc::Sender<()>,
        open: mpsc::Receiver<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.open.recv();
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_records_and_close_writes_the_rest() {
        let settings =
            DecisionLogSettings { enabled: true, sink: DecisionLogSink::Stderr, sample_rate: 1.0, queue_capacity: 4 };
        let metrics = Arc::new(Metrics::new().unwrap());
        let (entered, reached) = mpsc::channel();
        let (release, open) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate { entered, open, written: Arc::clone(&written) };
        let log = DecisionLog::with_sink(&settings, std::iter::empty(), Box::new(gate), Arc::clone(&metrics)).unwrap();
        log.refused("first", "token_expired", "v", Instant::now());
        // The writer flushes the first record into the stalled sink (within DRAIN_INTERVAL) and
        // stays there.
        reached.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        for _ in 0..100 {
            log.refused("r", "token_expired", "v", Instant::now());
        }
        assert_eq!(metrics.decision_log_dropped.get(), 96, "the queue holds 4, the rest are counted");
        drop(release);
        log.close();
        let written = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        assert_eq!(written.lines().count(), 5, "the stalled record and the 4 queued ones: {written}");
    }

    #[test]
    fn sampling_keeps_the_configured_fraction() {
        assert_eq!(kept(true, 1.0, 1000), 1000);
        assert_eq!(kept(true, 0.25, 1000), 250);
        assert_eq!(kept(true, 0.0, 1000), 0);
        assert_eq!(kept(false, 1.0, 1000), 0);
    }
}
