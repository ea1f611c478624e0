//! The whole checking pipeline for one file: load → schema → analyze.

use super::diagnostic::Diagnostic;
use super::source::Source;
use super::{analyze, schema, yaml};

/// Checks one flow file and returns every problem found, in source order. Nothing is sent.
pub fn check_source(source: &Source) -> Vec<Diagnostic> {
    let (doc, mut out) = yaml::load(&source.text);
    if let Some(doc) = doc {
        out.extend(schema::check(&doc));
        out.extend(analyze::analyze(source, &doc));
    }
    out.sort_by(|a, b| a.span.start.cmp(&b.span.start).then_with(|| a.code.cmp(b.code)));
    out.dedup_by(|a, b| a.span == b.span && a.message == b.message);
    out
}
