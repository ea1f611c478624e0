//! The flow language: loading, checking and the typed model.

pub mod diagnostic;
pub mod source;
pub mod yaml;
