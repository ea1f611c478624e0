//! flowrun runs declarative YAML flows of HTTP API calls.
//!
//! The library does the work; the `flowrun` binary only wires it to the command line.

pub mod api;
pub mod base;
pub mod engine;
pub mod expr;
pub mod flow;
pub mod http;
pub mod paths;
pub mod report;
pub mod signals;
pub mod sim;
pub mod testing;
