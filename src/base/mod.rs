//! The ground floor every stage stands on: source text and its spans, YAML loaded with spans,
//! diagnostics and their one renderer, schema violations in words, did-you-mean, and the
//! secret registry. It imports no other module of the crate.

pub(crate) mod diagnostic;
pub(crate) mod json_text;
pub(crate) mod schema;
pub(crate) mod secrets;
pub(crate) mod source;
pub(crate) mod suggest;
pub mod yaml;

pub use diagnostic::{Diagnostic, JsonDiagnostic, Severity};
pub use secrets::{MASK, Secrets};
pub use source::{Source, Span};
