//! The flow language: loading with spans, the schema check, semantic analysis, diagnostics,
//! and compiling a checked flow (templates, request specs, retry policies, input rules) into
//! the [`CompiledFlow`] the engine runs.

pub mod analyze;
pub mod analyze_error;
pub mod calls;
pub mod check;
pub mod compile;
pub mod includes;
pub mod inputs;
pub mod model;
pub mod retry;
pub mod schema;

pub use crate::base::diagnostic::{self, Diagnostic, Severity};
pub use crate::base::source::{self, Source};
pub use crate::base::yaml;
pub use check::{Checked, FileCheck, check_file, check_source, load_checked};
pub use compile::{CompiledFlow, compile};
