//! Latencies the service measures for `/metrics`: from an event being taken to its run's first
//! request, and each request (attempt) a run sends. Kept in HDR histograms (microseconds, three
//! significant figures), bounded in memory whatever the number of events.

use crate::engine::outcome::{Attempt, Observer};
use crate::http::HttpRequest;
use hdrhistogram::Histogram;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The service's latency histograms.
pub struct Latencies {
    first_request: Mutex<Histogram<u64>>,
    requests: Mutex<Histogram<u64>>,
}

impl Default for Latencies {
    fn default() -> Self {
        let new = || Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"));
        Latencies {
            first_request: new(),
            requests: new(),
        }
    }
}

fn record(h: &Mutex<Histogram<u64>>, micros: u128) {
    if let Ok(mut h) = h.lock() {
        h.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
    }
}

impl Latencies {
    /// An observer for one run of an event taken at `taken`.
    pub fn observer(&self, taken: Instant) -> Timing<'_> {
        Timing {
            latencies: self,
            taken,
            first: AtomicBool::new(true),
        }
    }

    /// Prometheus summaries: `flowrun_event_to_first_request_seconds` and
    /// `flowrun_request_seconds`, with the 0.5, 0.9 and 0.99 quantiles.
    pub fn render(&self, out: &mut String) {
        for (name, help, h) in [
            (
                "flowrun_event_to_first_request_seconds",
                "From an event being taken to its run's first request being sent.",
                &self.first_request,
            ),
            (
                "flowrun_request_seconds",
                "Each request a run sent, to its answer.",
                &self.requests,
            ),
        ] {
            let Ok(h) = h.lock() else { continue };
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} summary\n"));
            for q in [0.5, 0.9, 0.99] {
                let v = if h.is_empty() { 0 } else { h.value_at_quantile(q) };
                out.push_str(&format!("{name}{{quantile=\"{q}\"}} {:.6}\n", v as f64 / 1e6));
            }
            let sum = h.mean() * h.len() as f64 / 1e6;
            out.push_str(&format!("{name}_sum {sum:.6}\n{name}_count {}\n", h.len()));
        }
    }
}

/// One run's observer: records its first request's delay and every attempt's duration.
pub struct Timing<'a> {
    latencies: &'a Latencies,
    taken: Instant,
    first: AtomicBool,
}

impl Observer for Timing<'_> {
    fn attempt_started(&self, _step: &str, _attempt: u32, _request: &HttpRequest) {
        if self.first.swap(false, Ordering::Relaxed) {
            record(&self.latencies.first_request, self.taken.elapsed().as_micros());
        }
    }

    fn attempt_finished(&self, _step: &str, attempt: &Attempt) {
        record(&self.latencies.requests, attempt.duration.as_micros());
    }
}
