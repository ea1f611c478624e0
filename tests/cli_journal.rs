//! `--journal` and `flowrun runs` through the real binary: what is written (and what never
//! is: secrets), a repeated run id, batch lines with ids, list/show/prune, bad URLs.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

fn flowrun(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowrun"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every byte the journal holds on disk (the database and its write-ahead log).
fn journal_bytes(dir: &Path) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_journal() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({"echo": "00D000000000001!tok SECRET/q\"x"})),
        )
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal");
    std::fs::create_dir(&db).unwrap();
    let url = format!("sqlite:{}", db.join("j.db").display());
    let uri = server.uri();
    let out = tokio::task::spawn_blocking(move || {
        let env = [
            ("SCRT_BASE_URL", uri.as_str()),
            ("Q_TOKEN", "00D000000000001!tok SECRET/q\"x"),
        ];
        flowrun(
            &[
                "run",
                "tests/flows/secrets.yaml",
                "--input",
                "pin=918273",
                "--journal",
                &url,
                "--run-id",
                "s-1",
            ],
            &env,
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stored = journal_bytes(&db);
    assert!(
        stored.contains("s-1") && stored.contains("/items"),
        "the journal holds the run"
    );
    for leak in ["SECRET", "918273", "%21tok", "tok+SECRET"] {
        assert!(!stored.contains(leak), "`{leak}` reached the journal");
    }
}

#[test]
fn a_repeated_run_id_is_the_same_run_and_is_not_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("j.db").display());
    let run = |id: &str| {
        flowrun(
            &[
                "run",
                "flows/inbound.yaml",
                "--sim",
                "--inputs",
                "flows/examples/inbound.inputs.yaml",
                "--journal",
                &url,
                "--run-id",
                id,
            ],
            &[],
        )
    };
    let first = run("msg-42");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains(&format!("run msg-42 (journal {url})")));
    let again = run("msg-42");
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(
        text(&again.stderr),
        "error: run `msg-42` is already in the journal and passed; a repeated id is the same run, so \
         nothing was sent (give a new id to run again)\n"
    );
    assert!(!text(&again.stdout).contains("interaction"), "nothing ran");

    // `runs show` and `runs list` as JSON; `prune` keeps what is younger than asked.
    let show = flowrun(
        &["runs", "show", "msg-42", "--journal", &url, "--format", "json"],
        &[],
    );
    let run: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(run["status"], "passed");
    let steps: Vec<(&str, &str)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("interaction", "ok"),
            ("consent", "ok"),
            ("route", "ok"),
            ("agent_work", "ok"),
            ("delete_route", "skipped")
        ]
    );
    assert_eq!(run["attempts"].as_array().unwrap().len(), 4);
    assert!(
        run["attempts"][0]["request"]["headers"]
            .to_string()
            .contains("RequestId")
    );
    let headers = run["attempts"][0]["request"]["headers"].as_array().unwrap();
    assert!(
        headers.iter().all(|h| h[0] != "Authorization"),
        "no token is stored: {headers:?}"
    );
    assert!(headers.iter().any(|h| h[0] == "AuthorizationContext"));
    let kept = flowrun(&["runs", "prune", "--journal", &url, "--older-than", "1h"], &[]);
    assert_eq!(text(&kept.stdout), "pruned 0 finished runs\n");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let pruned = flowrun(
        &[
            "runs",
            "prune",
            "--journal",
            &url,
            "--older-than",
            "1ms",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(text(&pruned.stdout), "{\"pruned\":1}\n");
    let list = flowrun(&["runs", "list", "--journal", &url], &[]);
    assert_eq!(text(&list.stdout), "no runs in the journal\n");
}

#[test]
fn batch_lines_with_ids_are_runs_a_second_batch_does_not_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("j.db").display());
    let lines = dir.path().join("runs.jsonl");
    let line = |id: &str, user: &str| {
        json!({"event": id, "channel_address": "+15550100", "end_user": user, "queue_id": "00G5g000000SimQ"})
            .to_string()
    };
    std::fs::write(
        &lines,
        [
            line("e-1", "+15550001"),
            line("e-2", "+15550002"),
            line("e-3", "+15550003"),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    let results = dir.path().join("results.jsonl");
    let batch_with = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--inputs-jsonl",
            lines.to_str().unwrap(),
            "--journal",
            &url,
            "--id-field",
            "event",
        ];
        args.extend(extra);
        flowrun(&args, &[])
    };
    let batch = || batch_with(&["--results", results.to_str().unwrap(), "--concurrency", "1"]);
    let first = batch();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    let written = std::fs::read_to_string(&results).unwrap();
    let ids: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, [json!("e-1"), json!("e-2"), json!("e-3")]);
    let list = flowrun(&["runs", "list", "--journal", &url, "--format", "json"], &[]);
    let runs: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 3);

    // The same lines again: each is a run the journal has; none is sent again.
    let again = batch();
    assert_eq!(again.status.code(), Some(1));
    let written = std::fs::read_to_string(&results).unwrap();
    for l in written.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["outcome"], "failed");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains("is already in the journal and passed"), "{error}");
    }

    // Without --results, the summary names the refused runs by their ids.
    let summary = batch_with(&[]);
    let shown = text(&summary.stdout) + &text(&summary.stderr);
    assert!(
        shown.contains("  run e-1: run `e-1` is already in the journal and passed"),
        "{shown}"
    );

    // A line without its id fails alone.
    std::fs::write(&lines, line("e-4", "+15550004") + "\n{\"channel_address\": \"+15550100\", \"end_user\": \"+15550005\", \"queue_id\": \"00G5g000000SimQ\"}\n").unwrap();
    let mixed = batch();
    assert_eq!(mixed.status.code(), Some(1));
    let written = std::fs::read_to_string(&results).unwrap();
    assert!(written.contains("\"outcome\":\"passed\""), "{written}");
    assert!(
        written.contains("the line has no `event` (its run id, --id-field): a string or a number"),
        "{written}"
    );
}

#[test]
fn journal_urls_and_files_flowrun_cannot_use_are_refused_before_anything_is_sent() {
    let args = |url: &str| {
        flowrun(
            &[
                "run",
                "flows/inbound.yaml",
                "--sim",
                "--inputs",
                "flows/examples/inbound.inputs.yaml",
                "--journal",
                url,
            ],
            &[],
        )
    };
    let out = args("mysql://localhost/flowrun");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        "error: `--journal mysql://localhost/flowrun` is not a journal URL flowrun knows: write `sqlite:PATH` \
         (e.g. `sqlite:flowrun.db`) or `postgres://USER@HOST:PORT/DATABASE`\n"
    );
    // A PostgreSQL server that is not there: told where, never with the password.
    let out = args("postgres://flowrun:pw-SECRET-9@127.0.0.1:1/flowrun");
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr)
            .starts_with("error: journal: cannot connect to PostgreSQL at 127.0.0.1:1/flowrun: "),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("SECRET"));
    assert!(!text(&out.stdout).contains("interaction"), "nothing ran");
    let out = args("sqlite:");
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("names no file"));
    let dir = tempfile::tempdir().unwrap();
    let not_a_db = dir.path().join("notes.txt");
    std::fs::write(&not_a_db, "these are my notes, not a database\n".repeat(200)).unwrap();
    let out = args(&format!("sqlite:{}", not_a_db.display()));
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is not a journal flowrun can use"), "{stderr}");
    assert!(!text(&out.stdout).contains("interaction"), "nothing ran");
    assert_eq!(
        std::fs::read_to_string(&not_a_db).unwrap(),
        "these are my notes, not a database\n".repeat(200),
        "the file is left as it was"
    );
}

#[test]
fn reading_a_journal_that_is_not_there_is_an_error_not_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.db");
    let url = format!("sqlite:{}", missing.display());
    let out = flowrun(&["runs", "list", "--journal", &url], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: there is no journal at `{}` (check --journal or FLOWRUN_JOURNAL)\n",
            missing.display()
        )
    );
    assert!(!missing.exists(), "no file was made");
    let blank = flowrun(
        &[
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--journal",
            &url,
            "--run-id",
            "  ",
        ],
        &[],
    );
    assert_eq!(blank.status.code(), Some(3));
    assert!(
        text(&blank.stderr).contains("a run id cannot be blank"),
        "{}",
        text(&blank.stderr)
    );
}
