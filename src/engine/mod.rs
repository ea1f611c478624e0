//! One flow run: the step loop, `if` / `stop_if` / `finally`, retries and the deadline.
//! The engine prints nothing; it reports through [`outcome::Observer`] and returns a
//! [`outcome::RunReport`].

pub mod batch;
pub mod compile;
pub mod inputs;
pub mod outcome;
pub mod prepare;
pub mod request;
pub mod retry;
mod run;

pub use compile::{CompiledFlow, compile};
pub use run::{Engine, RunError};
