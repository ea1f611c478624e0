//! Every file under tests/broken/ holds one mistake a person makes; the snapshot is the exact
//! text `flowrun check` prints for it, line and column included. Files named `warn_*` hold a
//! likely mistake that is only a warning: no error, at least one warning.

use flowrun::flow::{Source, check_source};
use serde_json::Value;

/// The codes of the diagnostics the schema stage (and YAML loading) gives: what an editor
/// reading `schemas/flow.schema.json` also sees.
const SCHEMA_CODES: &[&str] = &[
    "unknown-key",
    "missing-key",
    "wrong-type",
    "not-allowed",
    "bad-name",
    "schema",
];

#[test]
fn broken_flows_report_exact_diagnostics() {
    insta::glob!("broken/*.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy();
        let text = std::fs::read_to_string(path).unwrap();
        let source = Source::new(format!("tests/broken/{name}"), text);
        let diagnostics = check_source(&source);
        if name.starts_with("warn_") {
            assert!(
                !diagnostics.iter().any(|d| d.is_error()) && !diagnostics.is_empty(),
                "{name} should have warnings and no error"
            );
        } else {
            assert!(
                diagnostics.iter().any(|d| d.is_error()),
                "{name} should be reported as invalid"
            );
        }
        let rendered: String = diagnostics.iter().map(|d| d.render(&source) + "\n").collect();
        insta::assert_snapshot!(rendered);
    });
}

/// An editor validating with the schema file alone rejects exactly the corpus files in which
/// `check` finds a schema problem: the schema users see and the one `check` applies agree.
#[test]
fn the_editor_schema_agrees_with_check_on_the_corpus() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/flow.schema.json").unwrap()).unwrap();
    let editor = jsonschema::draft202012::new(&schema).unwrap();
    let mut compared = 0;
    for entry in std::fs::read_dir("tests/broken").unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let source = Source::new(path.display().to_string(), text.as_str());
        // Files YAML itself refuses are not the schema's business.
        let Some(doc) = flowrun::base::yaml::load(&text).0 else {
            continue;
        };
        let diagnostics = check_source(&source);
        let check_says = diagnostics.iter().any(|d| SCHEMA_CODES.contains(&d.code));
        let editor_says = !editor.is_valid(&doc.value);
        assert_eq!(
            editor_says,
            check_says,
            "{}: the editor schema {} it, check's schema stage {} it: {:?}",
            path.display(),
            if editor_says { "rejects" } else { "accepts" },
            if check_says { "rejects" } else { "accepts" },
            diagnostics.iter().map(|d| d.code).collect::<Vec<_>>()
        );
        compared += 1;
    }
    assert!(compared > 50, "only {compared} corpus files compared");
}
