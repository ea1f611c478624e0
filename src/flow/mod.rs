//! The flow language: loading with spans, the schema check, semantic analysis, diagnostics.

pub mod analyze;
pub mod analyze_error;
pub mod calls;
pub mod check;
pub mod includes;
pub mod model;
pub mod schema;

pub use crate::base::diagnostic::{self, Diagnostic, Severity};
pub use crate::base::source::{self, Source};
pub use crate::base::yaml;
pub use check::{Checked, FileCheck, check_file, check_source, load_checked};
