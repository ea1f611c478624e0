//! What `GET /metrics` shows: what became of each event, how runs ended, reconnects, runs in
//! flight, time since the source was last heard from, and latency histograms — the delay from
//! an event being taken to its run's first request, the event's age at that moment (how much of
//! the 60-second window was spent), and each step's requests by flow and step.
//!
//! Kept with prometheus-client and written in the OpenMetrics text format. Histograms (not
//! summaries) so that the figures of several instances add up.

use crate::engine::outcome::{Attempt, Observer};
use crate::http::HttpRequest;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bucket bounds in seconds: fine below 5 ms (the latency target), up to the 60-second window.
const BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

fn latency() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A step's requests are labelled with the flow's name and the step's id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    flow: String,
    step: String,
}

type Outcomes = Family<[(&'static str, &'static str); 1], Counter>;

/// The service's metrics. The counters are shared handles: increment them directly.
pub struct Metrics {
    registry: Registry,
    /// Events received.
    pub received: Counter,
    /// Events that started a run.
    pub started: Counter,
    /// Events whose run was queued in the shared journal, for any instance to claim.
    pub queued: Counter,
    /// Runs this instance claimed from the shared journal's queue (or whose owner's lease ran out).
    pub claimed: Counter,
    /// Events already taken.
    pub duplicate: Counter,
    /// Events too old to answer.
    pub expired: Counter,
    /// Events no handler takes.
    pub ignored: Counter,
    /// Events whose inputs could not be made.
    pub refused: Counter,
    /// Events not taken because the journal could not record their run (sent again).
    pub unrecorded: Counter,
    /// Runs that passed.
    pub passed: Counter,
    /// Runs that stopped early, as their flow says (a transfer routed outside the org).
    pub stopped: Counter,
    /// Runs that failed.
    pub failed: Counter,
    /// Times a source had to connect again.
    pub reconnects: Counter,
    /// 1 while this instance holds the Pub/Sub subscription (one instance of those sharing a
    /// journal does).
    pub leading: Gauge,
    /// When the source last sent anything (an event or a keepalive), ms since the epoch; the
    /// service's start until then.
    pub last_seen_ms: AtomicI64,
    since_last: Gauge<f64, AtomicU64>,
    in_flight: Gauge,
    queue_depth: Gauge,
    first_request: Histogram,
    age_at_first_request: Histogram,
    steps: Family<StepLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let events = Outcomes::default();
        registry.register(
            "flowrun_events",
            "Events received, by what became of them",
            events.clone(),
        );
        let runs = Outcomes::default();
        registry.register("flowrun_runs", "Runs ended, by outcome", runs.clone());
        let reconnects = Counter::default();
        registry.register(
            "flowrun_reconnects",
            "Times the Pub/Sub subscription was opened again",
            reconnects.clone(),
        );
        let leading = Gauge::default();
        registry.register(
            "flowrun_leader",
            "1 while this instance holds the Pub/Sub subscription",
            leading.clone(),
        );
        let since_last = Gauge::default();
        registry.register(
            "flowrun_seconds_since_last_event",
            "Seconds since the source last sent an event or a keepalive (or since the start)",
            since_last.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("flowrun_runs_in_flight", "Runs in flight now", in_flight.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "flowrun_queue_depth",
            "Runs queued in the shared journal, not yet claimed by any instance",
            queue_depth.clone(),
        );
        let claimed = Counter::default();
        registry.register(
            "flowrun_runs_claimed",
            "Runs this instance claimed from the shared journal",
            claimed.clone(),
        );
        let first_request = latency();
        registry.register(
            "flowrun_event_to_first_request_seconds",
            "From an event being taken to its run's first request being sent",
            first_request.clone(),
        );
        let age_at_first_request = latency();
        registry.register(
            "flowrun_event_age_at_first_request_seconds",
            "From the event's CreatedDate to its run's first request being sent",
            age_at_first_request.clone(),
        );
        let steps = Family::new_with_constructor(latency as fn() -> Histogram);
        registry.register(
            "flowrun_step_seconds",
            "Each request a step sent, to its answer, by flow and step",
            steps.clone(),
        );
        let outcome = |family: &Outcomes, what| family.get_or_create(&[("outcome", what)]).clone();
        Metrics {
            registry,
            received: outcome(&events, "received"),
            started: outcome(&events, "started"),
            queued: outcome(&events, "queued"),
            claimed,
            duplicate: outcome(&events, "duplicate"),
            expired: outcome(&events, "expired"),
            ignored: outcome(&events, "ignored"),
            refused: outcome(&events, "refused"),
            unrecorded: outcome(&events, "unrecorded"),
            passed: outcome(&runs, "passed"),
            stopped: outcome(&runs, "stopped"),
            failed: outcome(&runs, "failed"),
            reconnects,
            leading,
            last_seen_ms: AtomicI64::new(crate::journal::now_ms()),
            since_last,
            in_flight,
            queue_depth,
            first_request,
            age_at_first_request,
            steps,
        }
    }
}

impl Metrics {
    /// Everything, in the OpenMetrics text format; `in_flight` is the number of runs now,
    /// `queue_depth` the runs queued in a shared journal (`None`: the depth last read stands).
    pub fn render(&self, in_flight: usize, queue_depth: Option<u64>) -> String {
        if let Some(depth) = queue_depth {
            self.queue_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        let since = crate::journal::now_ms() - self.last_seen_ms.load(Ordering::Relaxed);
        self.since_last.set(since.max(0) as f64 / 1000.0);
        self.in_flight.set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Notes that the source sent something now.
    pub fn heard(&self) {
        self.last_seen_ms
            .store(crate::journal::now_ms(), Ordering::Relaxed);
    }

    /// An observer for one run of `flow`, its event taken at `taken` and created at `created`.
    pub fn observer(&self, flow: &str, taken: Instant, created: Instant) -> Timing<'_> {
        Timing {
            metrics: self,
            flow: flow.to_string(),
            taken,
            created,
            first: AtomicBool::new(true),
        }
    }
}

/// One run's observer: records when its first request left, and every attempt's duration.
pub struct Timing<'a> {
    metrics: &'a Metrics,
    flow: String,
    taken: Instant,
    created: Instant,
    first: AtomicBool,
}

impl Observer for Timing<'_> {
    fn attempt_started(&self, _step: &str, _attempt: u32, _request: &HttpRequest) {
        if self.first.swap(false, Ordering::Relaxed) {
            let m = self.metrics;
            m.first_request.observe(self.taken.elapsed().as_secs_f64());
            m.age_at_first_request
                .observe(self.created.elapsed().as_secs_f64());
        }
    }

    fn attempt_finished(&self, step: &str, attempt: &Attempt) {
        let labels = StepLabels {
            flow: self.flow.clone(),
            step: step.to_string(),
        };
        self.metrics
            .steps
            .get_or_create(&labels)
            .observe(attempt.duration.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_in_openmetrics_text() {
        let m = Metrics::default();
        m.received.inc();
        m.received.inc();
        m.stopped.inc();
        let text = m.render(3, Some(7));
        for line in [
            "# TYPE flowrun_events counter",
            "flowrun_events_total{outcome=\"received\"} 2",
            "flowrun_events_total{outcome=\"refused\"} 0",
            "flowrun_runs_total{outcome=\"stopped\"} 1",
            "flowrun_runs_in_flight 3",
            "flowrun_queue_depth 7",
            "flowrun_runs_claimed_total 0",
            "# TYPE flowrun_event_to_first_request_seconds histogram",
            "flowrun_event_to_first_request_seconds_bucket{le=\"0.005\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
