//! flowrun runs declarative YAML flows of HTTP API calls.
//!
//! The library does the work; the `flowrun` binary only wires it to the command line. The
//! stages are folders, lowest first (see `docs/architecture.md`): `base` (sources, YAML,
//! diagnostics, secrets), `expr` and `api`, `flow` (load, check and compile), `http`, `engine`
//! (run; the run pool), `sim` (the Interaction Service simulator), `report`, `journal`,
//! `testing`, `service`.
//!
//! # The public API
//! Each stage is a public namespace whose files are private: what an embedder needs is
//! re-exported at the stage (`flowrun::engine::RunReport`, `flowrun::flow::check_source`,
//! `flowrun::sim::start_in_background`), and the few modules that are namespaces of their own
//! stay public (`base::yaml`, the report formats, `http::auth`, the service's sources). The
//! most used items are also here at the root: [`prepare`] a flow (check its inputs, compile it)
//! and run it with its [`Engine`]; [`check_source`] a flow without running it.
//!
//! Running the shipped inbound flow against the built-in simulator:
//!
//! ```
//! use flowrun::{HttpTransport, Outcome, Quiet, Source, World, prepare, sim};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // The simulator on a free 127.0.0.1 port, and the environment that points a flow at it.
//! let simulator = sim::start_in_background(sim::SimConfig::default()).unwrap();
//! let world = World::deterministic(1_700_000_000_000, sim::environment(&simulator));
//! let flow = Source::read(std::path::Path::new("flows/inbound.yaml")).unwrap();
//! let inputs = vec![
//!     ("channel_address".to_string(), "+15550100".into()),
//!     ("end_user".to_string(), "+15550123".into()),
//!     ("queue_id".to_string(), "00G5g000000SimQ".into()),
//! ];
//! let transport = Arc::new(HttpTransport::new(flowrun::http::DEFAULT_MAX_BODY));
//! // Checks the flow and its inputs (nothing is sent if either is wrong), then compiles it.
//! let prepared = prepare(&flow, inputs, &[], world, transport).unwrap();
//! let report = prepared.engine.run(prepared.inputs, &Quiet).await;
//! assert_eq!(report.outcome, Outcome::Passed);
//! assert!(report.outputs["conversation_id"].is_string());
//! # });
//! ```

#![warn(missing_docs)]
pub mod api;
pub mod base;
pub mod engine;
pub mod expr;
pub mod flow;
pub mod http;
pub mod journal;
pub mod paths;
mod pubsub;
pub mod report;
pub mod service;
pub mod signals;
pub mod sim;
pub mod testing;

pub use base::{Diagnostic, Secrets, Severity};
pub use engine::{Engine, Observer, Outcome, Prepared, Quiet, RunReport, StepError, StepStatus, prepare};
pub use expr::World;
pub use flow::{CompiledFlow, Source, check_source};
pub use http::{HttpTransport, Transport};
