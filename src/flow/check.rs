//! The whole checking pipeline for one file: load → schema → analyze.

use super::{analyze, schema};
use crate::base::diagnostic::Diagnostic;
use crate::base::source::Source;
use crate::base::yaml;

/// Checks one flow file and returns every problem found, in source order. Nothing is sent.
pub fn check_source(source: &Source) -> Vec<Diagnostic> {
    check_document(source).1
}

/// The loaded document (when the YAML could be read) and every problem, in source order.
fn check_document(source: &Source) -> (Option<yaml::Document>, Vec<Diagnostic>) {
    let (doc, mut out) = yaml::load(&source.text);
    if let Some(doc) = &doc {
        out.extend(schema::check(doc));
        out.extend(analyze::analyze(source, doc));
        out.extend(crate::api::bodies::check_flow(doc));
    }
    out.sort_by(|a, b| a.span.start.cmp(&b.span.start).then_with(|| a.code.cmp(b.code)));
    out.dedup_by(|a, b| a.span == b.span && a.message == b.message);
    (doc, out)
}

/// A flow file that passed every check, ready to compile.
pub struct Checked {
    /// The loaded YAML document, kept for its spans (to point diagnostics at the source).
    pub document: super::yaml::Document,
    /// The typed flow read from the document.
    pub flow: super::model::Flow,
    /// Warnings found while checking (errors make [`load_checked`] fail).
    pub warnings: Vec<Diagnostic>,
}

/// Checks `source` and builds the typed flow; on any error, every diagnostic.
pub fn load_checked(source: &Source) -> Result<Checked, Vec<Diagnostic>> {
    // The document checked is the one compiled: the YAML is parsed once.
    let (document, diagnostics) = check_document(source);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    let document = document.ok_or_else(|| diagnostics.clone())?;
    let flow = serde_json::from_value(document.value.clone()).map_err(|e| {
        // The schema accepted what serde did not: a bug in flowrun, reported as such.
        vec![Diagnostic::error(
            "internal",
            Default::default(),
            format!("flowrun could not read this checked flow: {e}"),
        )]
    })?;
    Ok(Checked {
        document,
        flow,
        warnings: diagnostics,
    })
}
