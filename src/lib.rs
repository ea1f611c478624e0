//! flowrun runs declarative YAML flows of HTTP API calls.

pub mod flow;
