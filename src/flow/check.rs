//! The whole checking pipeline for one file: load → schema → analyze.

use super::{analyze, calls, includes, schema};
use crate::base::diagnostic::{Diagnostic, Origin};
use crate::base::source::Source;
use crate::base::yaml;
use crate::expr::Templates;

/// Checks one flow file and returns every problem found, in source order. Nothing is sent.
pub fn check_source(source: &Source) -> Vec<Diagnostic> {
    check_document(source).1
}

/// What checking one file found, and what kind of file it is.
pub struct FileCheck {
    /// The file is a connection file (`kind: connection`), not a flow.
    pub connection_file: bool,
    /// The file is a steps file (`kind: steps`), not a flow.
    pub steps_file: bool,
    /// Every problem, the file's own first, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

/// [`check_source`], saying whether the file is a connection file.
pub fn check_file(source: &Source) -> FileCheck {
    let (doc, diagnostics, _) = check_document(source);
    FileCheck {
        connection_file: doc.as_ref().is_some_and(includes::is_connection_file),
        steps_file: doc.as_ref().is_some_and(calls::is_steps_file),
        diagnostics,
    }
}

/// The loaded document (when the YAML could be read), every problem (the file's own in source
/// order, then those in the files it uses), and the templates compiled while checking.
fn check_document(source: &Source) -> (Option<yaml::Document>, Vec<Diagnostic>, Templates) {
    let (mut doc, mut out) = yaml::load(&source.text);
    let mut templates = Templates::unbound();
    if let Some(doc) = &mut doc {
        let fragment = includes::is_connection_file(doc);
        let steps_file = calls::is_steps_file(doc);
        let included = includes::expand(&source.path, doc);
        // A flow whose connection file cannot be read is not checked further: every key of
        // its connection would be reported missing.
        let usable = !included.iter().any(Diagnostic::is_error);
        out.extend(included);
        if usable {
            out.extend(schema::check(doc));
            if steps_file {
                out.extend(calls::steps_file_problems(doc));
            }
            // Called files are mounted once the caller's own shape is checked: their steps
            // are checked against the steps file schema, in their own file.
            out.extend(calls::expand(&source.path, doc));
            let (semantic, compiled) = analyze::analyze(source, doc);
            templates = compiled;
            if fragment {
                // A connection file alone: the inputs it reads are declared by the flows that
                // use it.
                out.extend(semantic.into_iter().filter(|d| d.code != "undeclared-input"));
                out.extend(includes::connection_file_problems(doc));
            } else {
                out.extend(semantic);
                out.extend(crate::api::bodies::check_flow(doc));
            }
        }
        // Problems found in the merged document at nodes that came from a connection file
        // point into that file.
        for d in &mut out {
            if d.origin.is_none()
                && let Some(file) = doc.file_of(d.span)
            {
                d.origin = Some(Origin(file.clone()));
            }
        }
    }
    let file = |d: &Diagnostic| d.origin.as_ref().map(|o| o.0.path.clone());
    out.sort_by(|a, b| {
        (file(a), a.span.start)
            .cmp(&(file(b), b.span.start))
            .then_with(|| a.code.cmp(b.code))
    });
    // A file called twice is mounted twice: the same problem in it is reported once.
    let at = |d: &Diagnostic| (d.span.start, d.span.end);
    out.dedup_by(|a, b| at(a) == at(b) && a.message == b.message && a.origin == b.origin);
    (doc, out, templates)
}

/// A flow file that passed every check, ready to compile.
pub struct Checked {
    /// The loaded YAML document, kept for its spans (to point diagnostics at the source).
    pub document: super::yaml::Document,
    /// The typed flow read from the document.
    pub flow: super::model::Flow,
    /// Warnings found while checking (errors make [`load_checked`] fail).
    pub warnings: Vec<Diagnostic>,
    /// The flow's templates, compiled while checking; [`super::compile::compile_checked`] uses
    /// them rather than compiling them again.
    pub templates: Templates,
}

/// Checks `source` and builds the typed flow; on any error, every diagnostic.
pub fn load_checked(source: &Source) -> Result<Checked, Vec<Diagnostic>> {
    // The document checked is the one compiled: the YAML is parsed once.
    let (document, diagnostics, templates) = check_document(source);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    let document = document.ok_or_else(|| diagnostics.clone())?;
    let fragment = if includes::is_connection_file(&document) {
        Some((
            "connection file",
            "run a flow that uses it: `connection: { use: ... }`",
        ))
    } else if calls::is_steps_file(&document) {
        Some((
            "steps file",
            "run a flow that calls it: a step with `call: FILE` and `with:`",
        ))
    } else {
        None
    };
    if let Some((what, hint)) = fragment {
        return Err(vec![
            Diagnostic::error(
                "not-a-flow",
                document.key_span("/kind"),
                format!("this is a {what}, not a flow"),
            )
            .with_hint(hint),
        ]);
    }
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
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str) -> Vec<&'static str> {
        check_source(&Source::new("t.yaml", text))
            .iter()
            .map(|d| d.code)
            .collect()
    }

    const ROUTE: &str = "version: 1\nname: t\nconnection: { base_url: http://127.0.0.1 }\nsteps:\n  - id: route\n    request: { method: POST, path: /api/v1/route, json: { conversationIdentifier: c, routingType: Initial, routingInfo: { queueId: q } } }\n";

    #[test]
    fn an_api_code_under_error_detail_is_readable_from_any_answer() {
        let flow = format!("{ROUTE}    save:\n      code: response.body.errorDetail.code\n");
        assert_eq!(codes(&flow), Vec::<&str>::new());
    }

    #[test]
    fn a_compensating_request_is_read_against_its_own_operation() {
        let undo = "    in_doubt:\n      policy: compensate\n      compensate:\n        request: { method: DELETE, path: /api/v1/route, json: { conversationIdentifier: c } }\n        expect: { assert: [ASSERT] }\n";
        // DELETE /route answers `success`; only POST /route answers `psrId`.
        let fine = format!("{ROUTE}{}", undo.replace("ASSERT", "response.body.success"));
        assert_eq!(codes(&fine), Vec::<&str>::new());
        let wrong = format!("{ROUTE}{}", undo.replace("ASSERT", "response.body.psrId"));
        assert_eq!(codes(&wrong), ["unknown-response-field"]);
    }
}
