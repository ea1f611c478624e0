//! A local simulator of the Interaction Service endpoints the flows use: the same paths,
//! headers, rules and error codes, with state and fault injection, so a flow can be run and
//! tested with no org. It shares nothing with the engine except HTTP.

pub mod config;
pub mod rules;
pub mod server;
pub mod state;

pub use config::SimConfig;
pub use server::{Running, environment, start, start_in_background};
