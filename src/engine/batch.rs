//! Many runs of one flow: one per line of JSON inputs, streamed (a line is read only when a run
//! slot is free, so memory stays flat however long the input), with a concurrency limit, an
//! optional start rate, one shared engine (flow, token cache), and latency histograms per step.
//!
//! Runs are spread over worker threads, one per core (fewer when the concurrency is lower),
//! each a single-threaded runtime with its own connection pool: a run and the connections it
//! uses live on one thread, so a request never wakes another thread. The calling runtime reads
//! the input and is itself the first worker; with concurrency 1 no thread is started at all.

use super::inputs::InputRules;
use super::outcome::{Outcome, Quiet, RunReport, StepStatus};
use super::run::Engine;
use futures_util::FutureExt;
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Runs in flight at once.
    pub concurrency: usize,
    /// Runs started per second, at most.
    pub rate: Option<f64>,
    /// Worker threads, at most (`None`: one per core).
    pub workers: Option<usize>,
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

#[derive(Default)]
struct Tally {
    passed: u64,
    stopped: u64,
    failed: u64,
    requests: u64,
    steps: Vec<StepLatency>,
}

impl Tally {
    fn slot(&mut self, step: &str) -> &mut Histogram<u64> {
        let i = match self.steps.iter().position(|s| s.step == step) {
            Some(i) => i,
            None => {
                let histogram =
                    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
                self.steps.push(StepLatency {
                    step: step.to_string(),
                    histogram,
                });
                self.steps.len() - 1
            }
        };
        &mut self.steps[i].histogram
    }

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
            let _ = self.slot(&record.id).record(micros.max(1));
        }
    }

    /// Adds another worker's counts; steps keep the order they were first seen in.
    fn merge(&mut self, other: Tally) {
        self.passed += other.passed;
        self.stopped += other.stopped;
        self.failed += other.failed;
        self.requests += other.requests;
        for s in other.steps {
            let _ = self.slot(&s.step).add(&s.histogram);
        }
    }
}

/// One line to run: its number, its inputs (or why they are unusable), and the run slot it holds.
struct Job {
    number: u64,
    inputs: Result<Map<String, Value>, String>,
    _permit: OwnedSemaphorePermit,
}

/// What every run on a worker shares.
#[derive(Clone)]
struct Crew {
    engine: Arc<Engine>,
    tally: Arc<Mutex<Tally>>,
    in_flight: Arc<AtomicUsize>,
    on_result: Arc<dyn Fn(Value) + Send + Sync>,
    stop: Arc<AtomicBool>,
}

impl Crew {
    async fn run(self, job: Job) {
        let number = job.number;
        match job.inputs {
            Err(error) => {
                let error = self
                    .engine
                    .flow()
                    .runtime
                    .secrets
                    .redact(&format!("line {number}: {error}"))
                    .into_owned();
                self.tally().add(Err(&error));
                (self.on_result)(result_line(number, Err(&error)));
            }
            Ok(inputs) => {
                let secrets = &self.engine.flow().runtime.secrets;
                // A panic inside a run is that run's failure: its line is still accounted for.
                let run = self.engine.run_until(inputs, &Quiet, Some(&self.stop));
                match AssertUnwindSafe(run).catch_unwind().await {
                    Ok(report) => {
                        let line = secrets.redact_json(&result_line(number, Ok(&report)));
                        self.tally().add(Ok(&report));
                        (self.on_result)(line);
                    }
                    Err(panic) => {
                        let error = format!("line {number}: {}", super::panic_message(panic.as_ref()));
                        let error = secrets.redact(&error).into_owned();
                        self.tally().add(Err(&error));
                        (self.on_result)(result_line(number, Err(&error)));
                    }
                }
            }
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The worker's counts (a panicked run leaves them as they were).
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take_tally(&self) -> Tally {
        std::mem::take(&mut *self.tally())
    }
}

/// A worker thread: its crew, the queue it takes jobs from, and word when it is done.
struct Remote {
    crew: Crew,
    jobs: mpsc::UnboundedSender<Job>,
    done: oneshot::Receiver<()>,
}

/// Starts a worker thread with a single-threaded runtime running every job it is sent.
fn start_worker(crew: Crew) -> Option<Remote> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
    let (finished, done) = oneshot::channel();
    let worker = crew.clone();
    std::thread::Builder::new()
        .name("flowrun-worker".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                while let Some(job) = queue.recv().await {
                    tasks.spawn(worker.clone().run(job));
                    while tasks.try_join_next().is_some() {}
                }
                while tasks.join_next().await.is_some() {}
            });
            let _ = finished.send(());
        })
        .ok()?;
    Some(Remote { crew, jobs, done })
}

/// Runs the flow once per line of `lines` (each a JSON object of inputs). `base` inputs go under
/// each line's and `overrides` over them. `on_result` gets every run's result line, in the
/// order runs finish, from whichever worker thread ran it.
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
    let concurrency = options.concurrency.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = options.workers.unwrap_or(cores).clamp(1, concurrency);
    let crew = |engine: Arc<Engine>| Crew {
        engine,
        tally: Arc::new(Mutex::new(Tally::default())),
        in_flight: Arc::new(AtomicUsize::new(0)),
        on_result: on_result.clone(),
        stop: controls.stop_running.clone(),
    };
    let local = crew(engine.clone());
    let mut remotes: Vec<Remote> = (1..workers)
        .filter_map(|_| start_worker(crew(Arc::new(engine.fork()))))
        .collect();
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut ticker = options.rate.filter(|r| *r > 0.0).map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut lines = lines;
    let mut buffer = Vec::new();
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
        let read = next_line(&mut lines, &mut buffer).await;
        number += 1;
        let inputs = match read {
            Ok(None) => break,
            Ok(Some(Line::Text(line))) if line.trim().is_empty() => continue,
            Ok(Some(Line::Text(line))) => parse_line(&engine, &rules, &line, &base, &overrides),
            // A line that cannot be read as text fails alone; the others go on.
            Ok(Some(Line::Unreadable(why))) => Err(why),
            Err(e) => {
                let error = format!("line {number}: cannot read input: {e}");
                local.tally().add(Err(&error));
                on_result(result_line(number, Err(&error)));
                break;
            }
        };
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let job = Job {
            number,
            inputs,
            _permit: permit,
        };
        // The least busy worker takes the run; the reading thread's own runtime first on a tie.
        let busiest = |c: &Crew| c.in_flight.load(Ordering::Relaxed);
        let pick = remotes
            .iter()
            .enumerate()
            .min_by_key(|(_, r)| busiest(&r.crew))
            .filter(|(_, r)| busiest(&r.crew) < busiest(&local))
            .map(|(i, _)| i);
        let job = match pick {
            Some(i) => {
                remotes[i].crew.in_flight.fetch_add(1, Ordering::Relaxed);
                match remotes[i].jobs.send(job) {
                    Ok(()) => continue,
                    // The worker is gone (it could not run): the job runs here instead.
                    Err(mpsc::error::SendError(job)) => {
                        remotes[i].crew.in_flight.fetch_sub(1, Ordering::Relaxed);
                        job
                    }
                }
            }
            None => job,
        };
        local.in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(local.clone().run(job));
        // Reap finished runs as we go so the task set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut tally = local.take_tally();
    for remote in remotes.drain(..) {
        drop(remote.jobs);
        let _ = remote.done.await;
        tally.merge(remote.crew.take_tally());
    }
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

/// The longest input line read; a longer one fails alone (its bytes are skipped, not kept).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// One line of input, as read.
enum Line {
    Text(String),
    /// Not UTF-8, or longer than [`MAX_LINE`]: why.
    Unreadable(String),
}

/// Reads the next line (without its `\n` or `\r\n`) into `buffer`, keeping at most
/// [`MAX_LINE`] bytes of it. `None` at the end of the input.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Line>> {
    buffer.clear();
    let mut total = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if total == 0 {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buffer.len() < MAX_LINE {
            let keep = take.min(MAX_LINE - buffer.len());
            buffer.extend_from_slice(&chunk[..keep]);
        }
        total += take;
        reader.consume(take);
        if done {
            break;
        }
    }
    if total > MAX_LINE {
        return Ok(Some(Line::Unreadable(format!(
            "the line is {total} bytes long, more than the {MAX_LINE} a line may hold"
        ))));
    }
    while buffer.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buffer.pop();
    }
    Ok(Some(match std::str::from_utf8(buffer) {
        Ok(text) => Line::Text(text.to_string()),
        Err(e) => Line::Unreadable(format!(
            "not UTF-8 text (an invalid byte at offset {})",
            e.valid_up_to()
        )),
    }))
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
