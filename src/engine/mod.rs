//! One flow run: the step loop, `if` / `stop_if` / `finally`, retries and the deadline.
//! The engine prints nothing; it reports through [`outcome::Observer`] and returns a
//! [`outcome::RunReport`].

pub(crate) mod batch;
pub(crate) mod durable;
pub(crate) mod outcome;
pub(crate) mod pool;
pub(crate) mod prepare;
pub(crate) mod request;
mod run;

pub use run::short as short_duration;
pub use run::{DEFAULT_MAX_ITEMS, Engine, RunError};

/// What a panic inside a run said, as a run's failure reads it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    format!("flowrun failed inside this run (a bug in flowrun; please report it): {what}")
}

pub use batch::{MAX_LINE, ResultLine, run_batch};
pub use durable::{
    DoneStatus, DoneStep, Doubt, Durable, DurableRun, Durably, Opening, Resume, RunLog, stored_request,
};
pub use outcome::{
    Attempt, FailureKind, Observer, Outcome, Phase, Quiet, RunReport, StepError, StepRecord, StepStatus,
};
pub use pool::{
    BatchOptions, BatchSummary, Controls, Job, JobSource, RunId, RunObserver, StepLatency, run_pool,
};
pub use prepare::{PrepareError, Prepared, prepare, prepare_engine};
pub use request::build as build_request;
