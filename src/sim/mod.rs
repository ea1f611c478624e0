//! A local simulator of the Interaction Service endpoints a routing partner uses: the same
//! paths, headers, rules, statuses and error codes as the public API description, with state
//! and fault injection, so a flow can be run and tested with no org. It shares nothing with the
//! engine except HTTP.

pub(crate) mod codes;
pub(crate) mod config;
pub(crate) mod events;
mod interactions;
pub(crate) mod pubsub;
mod routing;
pub(crate) mod rules;
pub(crate) mod server;
mod session;
pub(crate) mod state;
mod work;

pub use config::{Channel, DEFAULT_TOKEN, JwtApp, SimConfig};
pub use rules::{Service, SimBody, SimRequest};
pub use server::{Running, environment, start, start_in_background};
