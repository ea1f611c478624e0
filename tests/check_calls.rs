//! Steps files (`kind: steps`) that flows `call`: each file under tests/calls/ is checked as
//! `flowrun check` would, and the snapshot is the exact text. Problems inside a called file are
//! reported in that file; a missing file, a file of another kind or a cycle at the `call` that
//! names it (a cycle's hint walks the chain with `file:line:col` of each `call`); arguments are
//! checked against the parameters at the call site.

use flowrun::flow::{Source, check_source};

#[test]
fn calls_report_problems_in_the_file_that_holds_them() {
    insta::glob!("calls/*.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy();
        let source = Source::read(std::path::Path::new(&format!("tests/calls/{name}"))).unwrap();
        let diagnostics = check_source(&source);
        let rendered: String = diagnostics.iter().map(|d| d.render(&source) + "\n").collect();
        insta::assert_snapshot!(rendered);
    });
}

/// A file calling another ten times, which calls another ten times, ...: the steps calls
/// bring in are bounded, so a few small files cannot make `check` build millions of steps.
#[test]
fn fan_out_of_calls_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = "version: 1\nkind: steps\nsteps:\n  - id: one\n    request: { method: GET, path: /x }\n";
    std::fs::write(dir.path().join("s0.yaml"), leaf).unwrap();
    for level in 1..=6 {
        let mut text = "version: 1\nkind: steps\nsteps:\n".to_string();
        for i in 0..10 {
            text.push_str(&format!("  - id: c{i}\n    call: s{}.yaml\n", level - 1));
        }
        std::fs::write(dir.path().join(format!("s{level}.yaml")), text).unwrap();
    }
    let flow = "version: 1\nname: fan\nconnection: { base_url: http://127.0.0.1:1 }\nsteps:\n  - id: all\n    call: s6.yaml\n";
    let path = dir.path().join("flow.yaml");
    std::fs::write(&path, flow).unwrap();
    let diagnostics = check_source(&Source::read(&path).unwrap());
    let codes: std::collections::BTreeSet<&str> = diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        ["include-size"],
        "{diagnostics:?}"
    );
    assert!(
        diagnostics[0]
            .message
            .contains("the calls of this flow bring in more than 5000 steps"),
        "{}",
        diagnostics[0].message
    );
}

/// A steps file counts as part of the flow that calls it: changing it changes the flow a
/// journaled run was started with.
#[test]
fn a_called_file_is_among_the_files_a_flow_uses() {
    let source = Source::read(std::path::Path::new("tests/flows/calls/flow.yaml")).unwrap();
    let used: Vec<String> = flowrun::flow::used_files(&source)
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    assert!(
        used.contains(&"tests/flows/calls/notify.yaml".to_string()),
        "{used:?}"
    );
}
