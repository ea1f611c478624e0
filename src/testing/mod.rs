//! Flow tests: `*.test.yaml` files naming a flow and cases, each run deterministically (frozen
//! clock, sequential ids) against its own simulator and scripted answers, its request sequence
//! compared with a golden transcript.

pub(crate) mod model;
mod runner;
mod scripted;

pub use runner::{CaseResult, LoadedTests, load, run_case, test_files};
