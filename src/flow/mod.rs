//! The flow language: loading with spans, the schema check, semantic analysis, diagnostics.

pub mod analyze;
pub mod analyze_error;
pub mod check;
pub mod diagnostic;
pub mod model;
pub mod schema;
pub mod source;
pub mod suggest;
pub mod yaml;

pub use check::{Checked, check_source, load_checked};
pub use diagnostic::{Diagnostic, Severity};
pub use source::Source;
