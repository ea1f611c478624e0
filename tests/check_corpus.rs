//! Every file under tests/broken/ holds one mistake a person makes; the snapshot is the exact
//! text `flowrun check` prints for it, line and column included.

use flowrun::flow::{Source, check_source};

#[test]
fn broken_flows_report_exact_diagnostics() {
    insta::glob!("broken/*.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy();
        let text = std::fs::read_to_string(path).unwrap();
        let source = Source::new(format!("tests/broken/{name}"), text);
        let diagnostics = check_source(&source);
        assert!(
            diagnostics.iter().any(|d| d.is_error()),
            "{name} should be reported as invalid"
        );
        let rendered: String = diagnostics.iter().map(|d| d.render(&source) + "\n").collect();
        insta::assert_snapshot!(rendered);
    });
}
