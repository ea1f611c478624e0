//! Many runs of one flow: one per line of JSON inputs, streamed (a line is read only when a run
//! slot is free, so memory stays flat however long the input), with a concurrency limit, an
//! optional start rate, one shared engine (connection pool, token cache), and latency
//! histograms per step.

use super::inputs::InputRules;
use super::outcome::{Outcome, Quiet, RunReport, StepStatus};
use super::run::Engine;
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Runs in flight at once.
    pub concurrency: usize,
    /// Runs started per second, at most.
    pub rate: Option<f64>,
}

/// Shared switches, flipped by Ctrl-C.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    /// No new run starts.
    pub stop_starting: Arc<AtomicBool>,
    /// Runs in flight stop at their next step (their `finally` still runs).
    pub stop_running: Arc<AtomicBool>,
}

/// Latency of one step across runs, in microseconds.
pub struct StepLatency {
    pub step: String,
    pub histogram: Histogram<u64>,
}

/// What a batch did.
pub struct BatchSummary {
    pub passed: u64,
    pub stopped: u64,
    pub failed: u64,
    pub requests: u64,
    pub elapsed: Duration,
    pub steps: Vec<StepLatency>,
    /// Lines left unread because starting was stopped.
    pub interrupted: bool,
}

impl BatchSummary {
    pub fn runs(&self) -> u64 {
        self.passed + self.stopped + self.failed
    }
}

/// One run's result line (`--results`): line number, outcome, outputs or the failure.
pub fn result_line(line: u64, report: Result<&RunReport, &str>) -> Value {
    match report {
        Err(error) => json!({ "line": line, "outcome": "failed", "error": error }),
        Ok(r) => match &r.outcome {
            Outcome::Passed => json!({ "line": line, "outcome": "passed", "outputs": r.outputs }),
            Outcome::Stopped { step } => {
                json!({ "line": line, "outcome": "stopped", "step": step, "outputs": r.outputs })
            }
            Outcome::Failed { step, error } => {
                json!({ "line": line, "outcome": "failed", "step": step, "error": error })
            }
        },
    }
}

struct Tally {
    passed: u64,
    stopped: u64,
    failed: u64,
    requests: u64,
    steps: Vec<StepLatency>,
}

impl Tally {
    fn add(&mut self, report: Result<&RunReport, &str>) {
        let Ok(report) = report else {
            self.failed += 1;
            return;
        };
        match report.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Stopped { .. } => self.stopped += 1,
            Outcome::Failed { .. } => self.failed += 1,
        }
        self.requests += report.requests_sent() as u64;
        for record in &report.steps {
            if record.attempts.is_empty() || record.status == StepStatus::Skipped {
                continue;
            }
            let micros = record.duration.as_micros() as u64;
            let slot = match self.steps.iter().position(|s| s.step == record.id) {
                Some(i) => i,
                None => {
                    let histogram =
                        Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
                    self.steps.push(StepLatency {
                        step: record.id.clone(),
                        histogram,
                    });
                    self.steps.len() - 1
                }
            };
            let _ = self.steps[slot].histogram.record(micros.max(1));
        }
    }
}

/// Runs the flow once per line of `lines` (each a JSON object of inputs). `base` inputs go under
/// each line's and `overrides` over them. `on_result` gets every run's result line, in the
/// order runs finish.
pub async fn run_batch<R>(
    engine: Arc<Engine>,
    lines: R,
    base: Vec<(String, Value)>,
    overrides: Vec<(String, Value)>,
    options: BatchOptions,
    controls: Controls,
    on_result: Arc<dyn Fn(Value) + Send + Sync>,
) -> BatchSummary
where
    R: AsyncBufRead + Unpin,
{
    let started = Instant::now();
    let rules = InputRules::new(&engine.flow().flow);
    let tally = Arc::new(Mutex::new(Tally {
        passed: 0,
        stopped: 0,
        failed: 0,
        requests: 0,
        steps: Vec::new(),
    }));
    let slots = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut ticker = options.rate.filter(|r| *r > 0.0).map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut lines = lines.lines();
    let mut number = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    let mut interrupted = false;
    loop {
        if controls.stop_starting.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        // Wait for a free slot before reading the next line: memory stays flat.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                number += 1;
                let error = format!("line {number}: cannot read input: {e}");
                tally.lock().unwrap_or_else(|p| p.into_inner()).add(Err(&error));
                on_result(result_line(number, Err(&error)));
                break;
            }
        };
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let inputs = parse_line(&engine, &rules, &line, &base, &overrides);
        let (engine, tally, on_result, stop) = (
            engine.clone(),
            tally.clone(),
            on_result.clone(),
            controls.stop_running.clone(),
        );
        tasks.spawn(async move {
            let _permit = permit;
            match inputs {
                Err(error) => {
                    let error = format!("line {number}: {error}");
                    tally.lock().unwrap_or_else(|p| p.into_inner()).add(Err(&error));
                    on_result(result_line(number, Err(&error)));
                }
                Ok(inputs) => {
                    let report = engine.run_until(inputs, &Quiet, Some(&stop)).await;
                    let line = engine
                        .flow()
                        .runtime
                        .secrets
                        .redact_json(&result_line(number, Ok(&report)));
                    tally.lock().unwrap_or_else(|p| p.into_inner()).add(Ok(&report));
                    on_result(line);
                }
            }
        });
        // Reap finished runs as we go so the task set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let tally = Arc::try_unwrap(tally)
        .ok()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()));
    let tally = tally.unwrap_or(Tally {
        passed: 0,
        stopped: 0,
        failed: 0,
        requests: 0,
        steps: Vec::new(),
    });
    BatchSummary {
        passed: tally.passed,
        stopped: tally.stopped,
        failed: tally.failed,
        requests: tally.requests,
        elapsed: started.elapsed(),
        steps: tally.steps,
        interrupted,
    }
}

/// One input line: a JSON object, merged over `base` and under `overrides`, then checked.
fn parse_line(
    engine: &Engine,
    rules: &InputRules,
    line: &str,
    base: &[(String, Value)],
    overrides: &[(String, Value)],
) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(own) = value else {
        return Err("expected a JSON object of inputs".into());
    };
    let given: Vec<(String, Value)> = base
        .iter()
        .cloned()
        .chain(own)
        .chain(overrides.iter().cloned())
        .collect();
    rules
        .resolve(&engine.flow().flow, given, &engine.flow().runtime.secrets)
        .map_err(|errors| {
            let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
            format!("invalid inputs: {}", messages.join("; "))
        })
}
