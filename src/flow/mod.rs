//! The flow language: loading with spans, the schema check, semantic analysis, diagnostics,
//! and compiling a checked flow (templates, request specs, retry policies, input rules) into
//! the [`CompiledFlow`] the engine runs.

pub(crate) mod analyze;
pub(crate) mod analyze_error;
pub(crate) mod calls;
pub(crate) mod check;
pub(crate) mod compile;
pub(crate) mod includes;
pub(crate) mod inputs;
pub(crate) mod model;
pub(crate) mod retry;
pub(crate) mod schema;

pub use crate::base::diagnostic::{Diagnostic, JsonDiagnostic, Severity};
pub use crate::base::source::Source;
pub use crate::base::yaml;
pub use check::{Checked, FileCheck, check_file, check_source, load_checked};
pub use compile::{CompiledFlow, CompiledStep, Cond, compile, compile_checked};
pub use includes::used_files;
pub use inputs::{InputsFileError, PlacedInputs, parse_assignment, read_inputs_file_placed, resolve};
pub use schema::FLOW_SCHEMA;
