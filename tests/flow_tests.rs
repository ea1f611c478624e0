//! `flowrun test` on the shipped test files, and what a reviewer sees when a flow changes.

use std::path::{Path, PathBuf};
use std::process::Output;

fn flowrun(args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_flowrun"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A scratch copy of `flows/` (and the schemas its modelines name).
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("flows"), &dir.path().join("flows"));
    let flows = dir.path().join("flows");
    (dir, flows)
}

fn goldens(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".transcript.yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_shipped_flow_tests_pass() {
    let out = flowrun(&["test", "flows"], Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn changing_one_field_of_a_flow_fails_with_a_diff_at_that_field() {
    let (dir, flows) = scratch();
    let inbound = flows.join("inbound.yaml");
    let original = std::fs::read_to_string(&inbound).unwrap();
    let changed = original.replacen(
        "        routingType: Initial\n        routingInfo:",
        "        routingType: Conference\n        routingInfo:",
        1,
    );
    assert_ne!(original, changed);
    std::fs::write(&inbound, changed).unwrap();
    let out = flowrun(&["test", "flows/tests/inbound.test.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAILED  flows/tests/inbound.test.yaml › happy path\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("        -    routingType: Initial\n        +    routingType: Conference\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 passed, 5 failed\n"), "{stdout}");
    // Each hunk names the step its lines belong to.
    assert!(stdout.contains("@@ -51,7 +51,7 @@ step `route`\n"), "{stdout}");
    insta::assert_snapshot!(stdout);
}

/// Changes the inbound flow's route to `routingType: Conference`: every case that routes
/// sends a different request.
fn route_as_conference(flows: &Path) {
    let inbound = flows.join("inbound.yaml");
    let original = std::fs::read_to_string(&inbound).unwrap();
    let changed = original.replacen(
        "        routingType: Initial\n",
        "        routingType: Conference\n",
        1,
    );
    assert_ne!(original, changed);
    std::fs::write(&inbound, changed).unwrap();
}

#[test]
fn update_rewrites_only_the_affected_golden_files() {
    let (dir, flows) = scratch();
    let before = goldens(&flows);
    route_as_conference(&flows);
    let out = flowrun(&["test", "--update", "flows"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let after = goldens(&flows);
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.as_str())
        .collect();
    // The cases whose requests include the route step; the consent-rejected and transfer
    // cases never send it.
    assert_eq!(
        changed,
        [
            "inbound-agent-fails.transcript.yaml",
            "inbound-happy.transcript.yaml",
            "inbound-no-agent.transcript.yaml",
            "inbound-route-fails.transcript.yaml",
            "inbound-route-retry.transcript.yaml",
        ]
    );
    let out = flowrun(&["test", "flows"], dir.path());
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn an_invalid_test_file_exits_2_with_diagnostics() {
    let (dir, flows) = scratch();
    std::fs::write(
        flows.join("tests/broken.test.yaml"),
        "version: 1\nflow: ../inbound.yaml\ncases:\n  - name: typo\n    expect: { outcome: passd }\n    transcript: x.yaml\n",
    )
    .unwrap();
    let out = flowrun(&["test", "flows/tests/broken.test.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(text(&out.stderr));
}

#[test]
fn junit_lists_every_case() {
    let (dir, _flows) = scratch();
    let out = flowrun(&["test", "flows", "--junit", "junit.xml"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 16, "{xml}");
    assert!(
        xml.contains(r#"<testsuite name="flows/tests/transfer.test.yaml" tests="4""#),
        "{xml}"
    );
}

#[test]
fn filter_selects_cases_by_name() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = flowrun(&["test", "flows", "--filter", "external"], repo);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "ok      flows/tests/transfer-route-first.test.yaml › an external transfer is only reported\n\
         ok      flows/tests/transfer.test.yaml › an external transfer stops after the routing result\n\
         2 passed, 0 failed\n"
    );
    let out = flowrun(&["test", "flows", "--filter", "no such case"], repo);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: no case name contains `no such case`\n");
}

/// `--update` writes a golden only for a case whose outcome matched: a case that now fails
/// where it should pass keeps its golden, and says so.
#[test]
fn update_leaves_the_golden_of_a_case_whose_outcome_did_not_match() {
    let (dir, flows) = scratch();
    let before = goldens(&flows);
    let inbound = flows.join("inbound.yaml");
    let original = std::fs::read_to_string(&inbound).unwrap();
    // The happy path now fails at route: it answers 202, the flow expects 201.
    let changed = original.replacen(
        "      status: 202\n      # A 202 with",
        "      status: 201\n      # A 202 with",
        1,
    );
    assert_ne!(original, changed);
    std::fs::write(&inbound, changed).unwrap();
    let out = flowrun(
        &[
            "test",
            "--update",
            "flows/tests/inbound.test.yaml",
            "--filter",
            "happy",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("        inbound-happy.transcript.yaml was not updated: the outcome did not match\n"),
        "{stdout}"
    );
    assert_eq!(goldens(&flows), before);
}

/// JUnit: each failure's problems and diff in the element's body (not squeezed into the
/// `message` attribute), and `time` on cases and suites.
#[test]
fn junit_holds_the_diff_in_the_failure_body_and_times() {
    let (dir, flows) = scratch();
    route_as_conference(&flows);
    let out = flowrun(
        &[
            "test",
            "flows/tests/inbound.test.yaml",
            "--filter",
            "happy",
            "--junit",
            "junit.xml",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        xml.contains(
            r#"<failure message="the transcript differs from its golden">--- inbound-happy.transcript.yaml"#
        ),
        "{xml}"
    );
    assert!(
        xml.contains("-    routingType: Initial\n+    routingType: Conference\n"),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase name="happy path""#) && xml.contains(" time=\""),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testsuite name="flows/tests/inbound.test.yaml" tests="1""#),
        "{xml}"
    );
}
