//! One flow run: the step loop, `if` / `stop_if` / `finally`, retries and the deadline.
//! The engine prints nothing; it reports through [`outcome::Observer`] and returns a
//! [`outcome::RunReport`].

pub mod batch;
pub mod durable;
pub mod outcome;
pub mod pool;
pub mod prepare;
pub mod request;
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
