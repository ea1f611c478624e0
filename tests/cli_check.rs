//! `flowrun check` as a user runs it: what it prints and how it exits.

use std::path::Path;
use std::process::{Command, Output};

fn flowrun(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowrun"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("flowrun runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_flows_are_valid_and_example_inputs_are_skipped() {
    let out = flowrun(&["check", "flows"], repo());
    assert_eq!(text(&out.stderr), "");
    assert_eq!(
        text(&out.stdout),
        "checked 3 flows, 1 connection file, 1 service file and 3 test files: no problems\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn an_invalid_flow_prints_diagnostics_on_stderr_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "version: 1\nname: x\nconnection: { base_url: http://127.0.0.1 }\nsteps:\n  - id: a\n    request: { metod: GET, path: / }\n",
    )
    .unwrap();
    let out = flowrun(&["check", "bad.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    insta::assert_snapshot!(text(&out.stderr), @r"
    bad.yaml:6:16: error: unknown key `metod` in `request`
      |
    6 |     request: { metod: GET, path: / }
      |                ^^^^^
      = hint: did you mean `method`?

    checked 1 flow: 1 error, 0 warnings in 1 file
    ");
}

#[test]
fn json_format_prints_the_same_diagnostics_on_stdout() {
    let out = flowrun(
        &["check", "--format", "json", "tests/broken/undeclared_input.yaml"],
        repo(),
    );
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "checked": 1,
            "errors": 1,
            "warnings": 0,
            "io_errors": [],
            "diagnostics": [{
                "file": "tests/broken/undeclared_input.yaml",
                "line": 18,
                "column": 19,
                "end_line": 18,
                "end_column": 33,
                "severity": "error",
                "code": "undeclared-input",
                "message": "input `enduser` is not declared",
                "hint": "did you mean `end_user`?"
            }]
        })
    );
}

#[test]
fn every_broken_file_in_a_directory_is_reported_in_one_run() {
    let out = flowrun(&["check", "tests/broken"], repo());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let files = std::fs::read_dir(repo().join("tests/broken")).unwrap().count();
    for entry in std::fs::read_dir(repo().join("tests/broken")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            stderr.contains(&format!("tests/broken/{name}:")),
            "{name} not reported"
        );
    }
    assert!(
        stderr.trim_end().ends_with(&format!("in {files} files")),
        "{stderr}"
    );
}

#[test]
fn a_missing_path_is_an_io_error_with_exit_3() {
    let out = flowrun(&["check", "flows/inbound.yaml", "no/such.yaml"], repo());
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        "error: cannot read no/such.yaml: no such file or directory\nchecked 1 flow: no problems in what was read; 1 path could not be read\n"
    );
}

#[test]
fn usage_errors_exit_3_and_help_exits_0() {
    let out = flowrun(&["check"], repo());
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("required arguments were not provided"));
    let out = flowrun(&["--help"], repo());
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("check"));
}

/// `--exclude GLOB` leaves matching files out of a directory's check; `**` crosses folders.
#[test]
fn exclude_leaves_matching_files_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows/wip/deep")).unwrap();
    std::fs::copy(
        repo().join("flows/transfer.yaml"),
        dir.path().join("flows/t.yaml"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("flows/connections")).unwrap();
    std::fs::copy(
        repo().join("flows/connections/salesforce.yaml"),
        dir.path().join("flows/connections/salesforce.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("flows/wip/deep/broken.yaml"), "version: 2\n").unwrap();
    let out = flowrun(&["check", "flows", "--exclude", "flows/wip/**"], dir.path());
    assert_eq!(
        text(&out.stdout),
        "checked 1 flow and 1 connection file: no problems\n"
    );
    assert_eq!(out.status.code(), Some(0));
    let out = flowrun(&["check", ".", "--exclude", "**/broken.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // `*` does not cross folders: the broken file is still checked.
    let out = flowrun(&["check", "flows", "--exclude", "flows/*.yaml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let out = flowrun(&["check", "flows", "--exclude", "flows/[wip"], dir.path());
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).starts_with("error: --exclude flows/[wip: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn inputs_files_in_a_directory_are_skipped_and_test_files_checked_as_tests() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.inputs.yaml"), "a: 1\n").unwrap();
    std::fs::copy(repo().join("flows/transfer.yaml"), dir.path().join("t.yml")).unwrap();
    std::fs::create_dir(dir.path().join("connections")).unwrap();
    std::fs::copy(
        repo().join("flows/connections/salesforce.yaml"),
        dir.path().join("connections/salesforce.yaml"),
    )
    .unwrap();
    let out = flowrun(&["check", "."], dir.path());
    assert_eq!(
        text(&out.stdout),
        "checked 1 flow and 1 connection file: no problems\n"
    );
    assert_eq!(out.status.code(), Some(0));

    // A test file scripting answers for a step the flow does not have: the case would pass
    // against the simulator without its script ever being used.
    std::fs::write(
        dir.path().join("t.test.yaml"),
        "version: 1\nflow: t.yml\ncases:\n  - name: queue\n    inputs: { conversation_id: c, work_item_id: 0Mw5g000000SimW, event_id: e, queue_id: q }\n    responses:\n      rout: { status: 500 }\n    expect: { outcome: failed, step: route }\n    transcript: q.transcript.yaml\n",
    )
    .unwrap();
    let out = flowrun(&["check", "--color", "never", "."], dir.path());
    assert_eq!(
        text(&out.stderr),
        "./t.test.yaml:7:7: error: t.yml has no step `rout` to script answers for
  |
7 |       rout: { status: 500 }
  |       ^^^^
  = hint: did you mean `route`?

checked 1 flow, 1 connection file and 1 test file: 1 error, 0 warnings in 1 file
"
    );
    assert_eq!(out.status.code(), Some(2));
    // `flowrun test` refuses it the same way, before running anything.
    let out = flowrun(&["test", "--color", "never", "t.test.yaml"], dir.path());
    assert!(
        text(&out.stderr)
            .starts_with("t.test.yaml:7:7: error: t.yml has no step `rout` to script answers for\n"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn warnings_are_printed_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    // The mistake of the shipped transfer flow before it followed the description: expecting 200
    // from routingResult (it answers 202), and a `stop_if` with nothing after it to stop.
    std::fs::write(
        dir.path().join("warn.yaml"),
        "version: 1\nname: warn\nconnection: { base_url: http://127.0.0.1 }\nsteps:\n  - id: routing_result\n    request:\n      method: POST\n      path: /api/v1/routingResult\n      json: { conversationIdentifier: c, workItemId: 0Mw5g000000SimW, success: true, externallyRouted: true }\n    expect:\n      status: 200\n    stop_if: \"true\"\n",
    )
    .unwrap();
    let out = flowrun(&["check", "warn.yaml"], dir.path());
    assert_eq!(
        text(&out.stderr),
        "warn.yaml:11:15: warning: POST /api/v1/routingResult answers 202 on success, not 200
   |
11 |       status: 200
   |               ^^^
  = hint: the API description documents 202 for this operation; expect `status: 202`

warn.yaml:12:5: warning: `stop_if` on the last step cannot stop anything: no step comes after it
   |
12 |     stop_if: \"true\"
   |     ^^^^^^^
  = hint: a `stop_if` skips the steps after its own (`finally` steps always run); move the step earlier or remove `stop_if`

"
    );
    assert_eq!(
        text(&out.stdout),
        "checked 1 flow: 0 errors, 2 warnings in 1 file\n"
    );
    assert_eq!(out.status.code(), Some(0));

    // `--deny warnings`: the same two warnings, then a summary on stderr, exit 2.
    let denied = flowrun(&["check", "--deny", "warnings", "warn.yaml"], dir.path());
    assert_eq!(denied.status.code(), Some(2));
    assert_eq!(text(&denied.stdout), "");
    assert!(
        text(&denied.stderr)
            .ends_with("checked 1 flow: 0 errors, 2 warnings in 1 file (denied by --deny warnings)\n"),
        "{}",
        text(&denied.stderr)
    );
    assert_eq!(text(&denied.stderr).matches(": warning: ").count(), 2);
    // Nothing to deny: exit 0.
    let clean = flowrun(&["check", "--deny", "warnings", "flows/inbound.yaml"], repo());
    assert_eq!(clean.status.code(), Some(0));
}

/// `flowrun init DIR` makes a project that passes its own `check` and `test` right away, runs
/// against its own simulator configuration, and never overwrites a file.
#[test]
fn init_makes_a_project_that_checks_and_tests_clean() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("partner");
    let out = flowrun(&["init", &project.to_string_lossy()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("created a flowrun project in {}", project.display())));
    let out = flowrun(&["check", "."], &project);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (
            Some(0),
            "checked 3 flows, 1 connection file and 3 test files: no problems\n".into()
        )
    );
    let out = flowrun(&["test", "."], &project);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with(" passed, 0 failed\n"));
    let out = flowrun(
        &[
            "run",
            "flows/inbound.yaml",
            "--sim-config",
            "flowrun.sim.yaml",
            "--inputs",
            "flows/examples/inbound.inputs.yaml",
            "--quiet",
        ],
        &project,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A second init refuses, naming what exists, and writes nothing.
    std::fs::write(project.join("flows/inbound.yaml"), "mine").unwrap();
    let out = flowrun(&["init", "."], &project);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).starts_with("error: these files exist already; nothing was written:\n"));
    assert_eq!(
        std::fs::read_to_string(project.join("flows/inbound.yaml")).unwrap(),
        "mine"
    );
}

/// Completion scripts for the common shells, naming the subcommands; help that teaches.
#[test]
fn completions_and_help_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = flowrun(&["completions", shell], dir.path());
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        for sub in ["check", "run", "test", "init", "sim"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
    }
    for sub in ["check", "run", "test", "init", "sim", "completions"] {
        let out = flowrun(&[sub, "--help"], dir.path());
        assert_eq!(out.status.code(), Some(0));
        assert!(
            text(&out.stdout).contains("\nExamples:\n  flowrun "),
            "{sub} --help has no examples"
        );
    }
}

/// Colour: `--color always` (or CLICOLOR_FORCE) colours diagnostics even into a pipe; never by
/// default when the output is not a terminal, nor with NO_COLOR or `--color never`.
#[test]
fn colour_follows_the_flag_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "version: 1\nname: x\nconnection: { base_url: http://127.0.0.1 }\nsteps:\n  - id: a\n    request: { metod: GET, path: / }\n",
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_flowrun"));
        c.args(args).current_dir(dir.path()).env_clear();
        for (k, v) in env {
            c.env(k, v);
        }
        text(&c.output().unwrap().stderr)
    };
    let red_error = "\u{1b}[1m\u{1b}[31merror\u{1b}[0m: unknown key `metod`";
    assert!(run(&["--color", "always", "check", "bad.yaml"], &[]).contains(red_error));
    assert!(run(&["check", "bad.yaml"], &[("CLICOLOR_FORCE", "1")]).contains(red_error));
    for (args, env) in [
        (vec!["check", "bad.yaml"], vec![]),
        (vec!["check", "bad.yaml"], vec![("NO_COLOR", "1")]),
        (
            vec!["--color", "never", "check", "bad.yaml"],
            vec![("CLICOLOR_FORCE", "1")],
        ),
        // `0` means "do not force".
        (vec!["check", "bad.yaml"], vec![("CLICOLOR_FORCE", "0")]),
    ] {
        let shown = run(&args, &env);
        assert!(!shown.contains('\u{1b}'), "{args:?} {env:?}: {shown}");
        assert!(shown.contains("error: unknown key `metod`"), "{shown}");
    }
}
