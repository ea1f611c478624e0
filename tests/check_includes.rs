//! Connection files (`kind: connection`) that flows `use`: every problem is reported in the file
//! that holds it, the `use` line for a missing file, a file of another kind or a cycle (whose
//! hint walks the chain with `file:line:col` of each `use`). Each file under tests/includes/ is
//! checked as `flowrun check` would; the snapshot is the exact text.

use flowrun::flow::{Source, check_source};

#[test]
fn includes_report_problems_in_the_file_that_holds_them() {
    insta::glob!("includes/*.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy();
        let source = Source::read(std::path::Path::new(&format!("tests/includes/{name}"))).unwrap();
        let diagnostics = check_source(&source);
        let rendered: String = diagnostics.iter().map(|d| d.render(&source) + "\n").collect();
        insta::assert_snapshot!(rendered);
    });
}

/// Keys written beside `use` replace the connection file's; the others come from the file.
#[test]
fn keys_beside_use_win_over_the_connection_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("tests/includes/ok.connection.yaml", dir.path().join("c.yaml")).unwrap();
    let flow = "version: 1\nname: o\nconnection:\n  use: c.yaml\n  timeout: 2s\nsteps:\n  - id: one\n    request: { method: GET, path: /x }\n";
    let path = dir.path().join("f.yaml");
    std::fs::write(&path, flow).unwrap();
    let checked = flowrun::flow::load_checked(&Source::read(&path).unwrap()).unwrap();
    let connection = &checked.flow.connection;
    assert_eq!(connection.timeout, Some(std::time::Duration::from_secs(2)));
    assert_eq!(connection.base_url, "{{ env('SCRT_BASE_URL') }}");
    assert_eq!(
        connection.headers.get("OrgId").map(String::as_str),
        Some("{{ env('SF_ORG_ID') }}")
    );
}
