//! flowrun runs declarative YAML flows of HTTP API calls.
//!
//! The library does the work; the `flowrun` binary only wires it to the command line. The
//! stages are folders, lowest first (see `docs/architecture.md`): `base` (sources, YAML,
//! diagnostics, secrets), `expr` and `api`, `flow` (load and check), `http`, `engine` (compile
//! and run; the run pool), `sim` (the Interaction Service simulator), `report`, `testing`.
//!
//! Running the shipped inbound flow against the built-in simulator:
//!
//! ```
//! use flowrun::{HttpTransport, Outcome, Source, World, prepare, sim};
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
//! let transport = Arc::new(HttpTransport::new(flowrun::http::DEFAULT_MAX_BODY).unwrap());
//! // Checks the flow and its inputs (nothing is sent if either is wrong), then compiles it.
//! let prepared = prepare(&flow, inputs, &[], world, transport).unwrap();
//! let report = prepared.engine.run(prepared.inputs, &flowrun::engine::outcome::Quiet).await;
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
pub mod pubsub;
pub mod report;
pub mod service;
pub mod signals;
pub mod sim;
pub mod testing;

pub use engine::outcome::{Outcome, RunReport, StepError};
pub use engine::prepare::prepare;
pub use expr::world::World;
pub use flow::Source;
pub use http::HttpTransport;
