//! The ground floor every stage stands on: source text and its spans, YAML loaded with spans,
//! diagnostics and their one renderer, schema violations in words, did-you-mean, and the
//! secret registry. It imports no other module of the crate.

pub mod diagnostic;
pub mod schema;
pub mod secrets;
pub mod source;
pub mod suggest;
pub mod yaml;
