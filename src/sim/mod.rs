//! A local simulator of the Interaction Service endpoints a routing partner uses: the same
//! paths, headers, rules, statuses and error codes as the public API description, with state
//! and fault injection, so a flow can be run and tested with no org. It shares nothing with the
//! engine except HTTP.

pub mod codes;
pub mod config;
pub mod events;
mod interactions;
pub mod pubsub;
mod routing;
pub mod rules;
pub mod server;
mod session;
pub mod state;
mod work;

pub use config::SimConfig;
pub use server::{Running, environment, start, start_in_background};
