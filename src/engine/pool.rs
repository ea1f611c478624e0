//! The run pool: where runs come from is one seam. A [`JobSource`] hands out jobs — a run id
//! and its inputs — one at a time, only when a run slot is free (so a long source keeps memory
//! flat); the pool runs them on one single-threaded runtime per core, each with its own
//! connection pool (a run and its connections live on one thread: no cross-thread wake-ups),
//! sharing the compiled flow and the token cache; a [`RunObserver`] sees every run start and
//! end. Batches of JSON lines are one source ([`super::batch`]); events and webhooks are others.

use super::outcome::{Outcome, Quiet, RunReport, StepStatus};
use super::run::Engine;
use crate::base::secrets::Secrets;
use futures_util::FutureExt;
use hdrhistogram::Histogram;
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// A run's id: a batch line's number, or a name its source gives (an event id, a webhook's
/// `Idempotency-Key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunId {
    /// A batch line's number, counting from 1.
    Line(u64),
    /// A name the source gave the run.
    Named(String),
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunId::Line(n) => write!(f, "line {n}"),
            RunId::Named(name) => write!(f, "run {name}"),
        }
    }
}

/// One run to do: its id and its inputs, or why they could not be made (that run fails alone).
pub struct Job {
    /// Names the run in what is said of it.
    pub id: RunId,
    /// The run's inputs, or why they could not be made.
    pub inputs: Result<Map<String, Value>, String>,
    /// This run's own secrets (its secret inputs): masked in what is said of this run, along
    /// with the flow's, and of no other run.
    pub secrets: Secrets,
}

/// Where runs come from. The pool asks for the next job only when a run slot is free.
pub trait JobSource: Send {
    /// The next job; `None` when there are no more.
    fn next_job(&mut self) -> impl std::future::Future<Output = Option<Job>> + Send;
}

/// What the pool says of each run, from whichever worker thread runs it.
pub trait RunObserver: Send + Sync {
    /// A run is starting.
    fn run_started(&self, _id: &RunId) {}
    /// The run's report, or why it could not run (`{id}: {reason}`, secrets masked); `secrets`
    /// are the run's own, to mask with the flow's in anything shown of the report.
    fn run_finished(&self, id: &RunId, result: Result<&RunReport, &str>, secrets: &Secrets);
}

/// How a batch runs: how many at once, how fast, on how many threads.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Runs in flight at once.
    pub concurrency: usize,
    /// Runs started per second, at most.
    pub rate: Option<f64>,
    /// Worker threads, at most (`None`: one per core).
    pub workers: Option<usize>,
    /// The field of each input line that holds its run id (`--id-field`); a line without one
    /// fails alone.
    pub id_field: Option<String>,
}

/// Shared switches, flipped by Ctrl-C.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    /// No new run starts.
    pub stop_starting: Arc<AtomicBool>,
    /// Runs in flight stop at their next step (their `finally` still runs).
    pub stop_running: Arc<AtomicBool>,
    /// Where each run is journaled, if anywhere.
    pub durable: Option<Arc<dyn super::durable::Durable>>,
}

/// Runs that could not start (their inputs were unusable) count under this step name.
pub const INPUT: &str = "(inputs)";

/// How many runs failed at one step with one API code (none: no code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures {
    /// Where the runs failed: a step id, or [`INPUT`] for runs whose inputs were unusable.
    pub step: String,
    /// The API error code it got, if any.
    pub code: Option<i64>,
    /// How many runs failed that way.
    pub runs: u64,
}

/// Latency of one step across runs, in microseconds.
pub struct StepLatency {
    /// The step's `id`.
    pub step: String,
    /// The step's durations (retries and waits included), one sample per run that sent it.
    pub histogram: Histogram<u64>,
}

/// What a batch did.
pub struct BatchSummary {
    /// Runs that passed.
    pub passed: u64,
    /// Runs a `stop_if` ended early.
    pub stopped: u64,
    /// Runs that failed, those whose inputs were unusable included.
    pub failed: u64,
    /// Requests sent across all runs, every attempt counted.
    pub requests: u64,
    /// Wall time of the whole batch.
    pub elapsed: Duration,
    /// Latency per step, in the order the steps were first seen.
    pub steps: Vec<StepLatency>,
    /// Failed runs by the step that failed and the API code it got, most first.
    pub failures: Vec<Failures>,
    /// Lines left unread because starting was stopped.
    pub interrupted: bool,
}

impl BatchSummary {
    /// How many runs finished: passed, stopped and failed.
    pub fn runs(&self) -> u64 {
        self.passed + self.stopped + self.failed
    }
}

#[derive(Default)]
struct Tally {
    passed: u64,
    stopped: u64,
    failed: u64,
    requests: u64,
    steps: Vec<StepLatency>,
    failures: std::collections::BTreeMap<(String, Option<i64>), u64>,
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
            *self.failures.entry((INPUT.into(), None)).or_default() += 1;
            return;
        };
        match &report.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Stopped { .. } => self.stopped += 1,
            Outcome::Failed { step, .. } => {
                self.failed += 1;
                let code = report.failure().and_then(|f| f.code());
                *self.failures.entry((step.clone(), code)).or_default() += 1;
            }
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
        for (key, n) in other.failures {
            *self.failures.entry(key).or_default() += n;
        }
    }
}

/// A job holding the run slot it took.
struct Slotted {
    job: Job,
    _permit: OwnedSemaphorePermit,
}

/// What every run on a worker shares.
#[derive(Clone)]
struct Crew {
    engine: Arc<Engine>,
    tally: Arc<Mutex<Tally>>,
    in_flight: Arc<AtomicUsize>,
    observer: Arc<dyn RunObserver>,
    stop: Arc<AtomicBool>,
    durable: Option<Arc<dyn super::durable::Durable>>,
}

impl Crew {
    async fn run(self, slotted: Slotted) {
        let Job {
            id,
            inputs,
            secrets: own,
        } = slotted.job;
        let secrets = &self.engine.flow().world.secrets;
        self.observer.run_started(&id);
        let journaled = match (&inputs, &self.durable) {
            (Ok(inputs), Some(durable)) => Some(durable.begin(&id, inputs, &own).await),
            _ => None,
        };
        let failure = match (inputs, journaled) {
            (Err(error), _) | (_, Some(Err(error))) => Some(error),
            (Ok(inputs), journaled) => {
                let log = journaled.and_then(Result::ok);
                // A panic inside a run is that run's failure: it is still accounted for.
                let run = async {
                    match &log {
                        Some(log) => {
                            let mut report = self
                                .engine
                                .run_durable(inputs, &Quiet, Some(&self.stop), log.as_ref(), None)
                                .await;
                            report.run_id = Some(log.id().to_string());
                            log.finish(&report).await.map(|()| report)
                        }
                        None => Ok(self.engine.run_until(inputs, &Quiet, Some(&self.stop)).await),
                    }
                };
                match AssertUnwindSafe(run).catch_unwind().await {
                    Ok(Ok(report)) => {
                        self.tally().add(Ok(&report));
                        self.observer.run_finished(&id, Ok(&report), &own);
                        None
                    }
                    Ok(Err(journal)) => Some(journal),
                    Err(panic) => Some(super::panic_message(panic.as_ref())),
                }
            }
        };
        if let Some(error) = failure {
            let error = own
                .redact(&secrets.redact(&format!("{id}: {error}")))
                .into_owned();
            self.tally().add(Err(&error));
            self.observer.run_finished(&id, Err(&error), &own);
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
    jobs: mpsc::UnboundedSender<Slotted>,
    done: oneshot::Receiver<()>,
}

/// Starts a worker thread with a single-threaded runtime running every job it is sent.
fn start_worker(crew: Crew) -> Option<Remote> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let (jobs, mut queue) = mpsc::unbounded_channel::<Slotted>();
    let (finished, done) = oneshot::channel();
    let worker = crew.clone();
    std::thread::Builder::new()
        .name("flowrun-worker".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                while let Some(job) = queue.recv().await {
                    // Boxed: a run's future is large, and a task copies what it holds when it starts and
                    // when it ends.
                    tasks.spawn(Box::pin(worker.clone().run(job)));
                    while tasks.try_join_next().is_some() {}
                }
                while tasks.join_next().await.is_some() {}
            });
            let _ = finished.send(());
        })
        .ok()?;
    Some(Remote { crew, jobs, done })
}

/// `future`'s output, or `None` as soon as `stop` is set (checked every 50 ms).
async fn unless_stopped<F: std::future::Future>(stop: &AtomicBool, future: F) -> Option<F::Output> {
    if stop.load(Ordering::Relaxed) {
        return None;
    }
    let watch = async {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Biased: the awaited future first, so a wait that is already over (the usual case in a
    // busy batch) never arms the watch's timer.
    tokio::select! {
        biased;
        out = future => Some(out),
        _ = watch => None,
    }
}

/// Runs every job `source` hands out, at most `options.concurrency` at once, and says how it went.
pub async fn run_pool<S: JobSource>(
    engine: Arc<Engine>,
    mut source: S,
    options: BatchOptions,
    controls: Controls,
    observer: Arc<dyn RunObserver>,
) -> BatchSummary {
    let started = Instant::now();
    let concurrency = options.concurrency.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = options.workers.unwrap_or(cores).clamp(1, concurrency);
    let crew = |engine: Arc<Engine>| Crew {
        engine,
        tally: Arc::new(Mutex::new(Tally::default())),
        in_flight: Arc::new(AtomicUsize::new(0)),
        observer: observer.clone(),
        stop: controls.stop_running.clone(),
        durable: controls.durable.clone(),
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
    let mut tasks = tokio::task::JoinSet::new();
    let mut interrupted = false;
    let stop = &controls.stop_starting;
    loop {
        // Every wait — for a slot, for the next job, for the rate — ends when a stop is asked
        // for, and no run starts after it.
        let Some(Ok(permit)) = unless_stopped(stop, slots.clone().acquire_owned()).await else {
            interrupted |= stop.load(Ordering::Relaxed);
            break;
        };
        let Some(job) = unless_stopped(stop, source.next_job()).await.flatten() else {
            interrupted |= stop.load(Ordering::Relaxed);
            break;
        };
        if let Some(t) = ticker.as_mut()
            && unless_stopped(stop, t.tick()).await.is_none()
        {
            interrupted = true;
            break;
        }
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let job = Slotted { job, _permit: permit };
        // The least busy worker takes the run; the calling thread's own runtime first on a tie.
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
        tasks.spawn(Box::pin(local.clone().run(job)));
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
        failures: most_first(tally.failures),
        interrupted,
    }
}

/// The failures counted by step and code, the most runs first (ties in step and code order).
fn most_first(counted: std::collections::BTreeMap<(String, Option<i64>), u64>) -> Vec<Failures> {
    let mut failures: Vec<Failures> = counted
        .into_iter()
        .map(|((step, code), runs)| Failures { step, code, runs })
        .collect();
    failures.sort_by_key(|f| std::cmp::Reverse(f.runs));
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_come_most_first() {
        let counted = [
            (("agent_work".to_string(), Some(15109)), 2),
            (("consent".to_string(), None), 7),
            (("route".to_string(), Some(10019)), 2),
            ((INPUT.to_string(), None), 9),
        ]
        .into_iter()
        .collect();
        let order: Vec<(String, Option<i64>, u64)> = most_first(counted)
            .into_iter()
            .map(|f| (f.step, f.code, f.runs))
            .collect();
        assert_eq!(
            order,
            [
                (INPUT.to_string(), None, 9),
                ("consent".to_string(), None, 7),
                ("agent_work".to_string(), Some(15109), 2),
                ("route".to_string(), Some(10019), 2),
            ]
        );
    }
}
