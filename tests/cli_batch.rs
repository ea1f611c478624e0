//! `flowrun run --inputs-jsonl`: many runs, results per line, Ctrl-C.

use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowrun"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).env_clear();
    c
}

fn lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({"channel_address": "+15550100", "end_user": format!("+1555{i:07}"), "queue_id": "00G5g000000SimQ", "agent_user_id": "0055g000000SimA"})
                .to_string()
                + "\n"
        })
        .collect()
}

fn results(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_line_is_a_run_and_a_bad_line_fails_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut text = lines(20);
    text.push_str("{not json\n");
    text.push_str("{\"channel_address\": \"+15550100\", \"end_user\": \"x\", \"queue_id\": \"q\", \"capacity_weight\": \"heavy\"}\n");
    std::fs::write(&input, text).unwrap();
    let out_file = dir.path().join("results.jsonl");
    let out = bin()
        .args([
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--concurrency",
            "4",
            "--inputs-jsonl",
        ])
        .arg(&input)
        .arg("--results")
        .arg(&out_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("inbound: 22 runs (20 passed, 0 stopped, 2 failed) in "),
        "{stdout}"
    );
    assert!(stdout.contains("  interaction                20 "), "{stdout}");
    let mut lines = results(&out_file);
    lines.sort_by_key(|l| l["line"].as_u64());
    assert_eq!(lines.len(), 22);
    assert!(
        lines[..20]
            .iter()
            .all(|l| l["outcome"] == "passed" && l["outputs"]["conversation_id"].is_string())
    );
    assert_eq!(
        lines[20]["error"],
        json!("line 21: not valid JSON: key must be a string at line 1 column 2")
    );
    assert_eq!(
        lines[21]["error"],
        json!("line 22: invalid inputs: input `capacity_weight` must be a number, got `heavy`")
    );
    // No token in any result.
    assert!(
        !std::fs::read_to_string(&out_file)
            .unwrap()
            .contains("sim-access-token")
    );
}

#[test]
fn inputs_can_stream_from_standard_input_with_a_rate_limit() {
    let mut child = bin()
        .args([
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--inputs-jsonl",
            "-",
            "--rate",
            "50",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines(10).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("inbound: 10 runs (10 passed, 0 stopped, 0 failed) in "),
        "{stdout}"
    );
    // 10 starts at 50 per second take at least 9 intervals of 20 ms.
    let secs: f64 = stdout
        .split(" in ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs >= 0.18, "{stdout}");
}

/// Starts a batch against a slow simulator, interrupts it, and returns (exit code, results).
fn interrupted(force: bool) -> (Option<i32>, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slow.sim.yaml");
    let default = serde_json::to_value(flowrun::sim::SimConfig::default()).unwrap();
    let mut slow = default.clone();
    slow["faults"]["latency_ms"] = json!(150);
    std::fs::write(&config, flowrun::report::transcript::to_yaml(&slow)).unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines(200)).unwrap();
    let out_file = dir.path().join("results.jsonl");
    let mut cmd = bin();
    cmd.args(["run", "flows/inbound.yaml", "--concurrency", "2", "--sim-config"])
        .arg(&config)
        .arg("--inputs-jsonl")
        .arg(&input)
        .arg("--results")
        .arg(&out_file)
        .stdout(Stdio::piped());
    if force {
        cmd.arg("--force");
    }
    let child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        results(&out_file),
    )
}

#[test]
fn ctrl_c_stops_new_runs_lets_running_ones_finish_and_still_prints_the_summary() {
    let (code, stdout, lines) = interrupted(false);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("), interrupted in "), "{stdout}");
    assert!(lines.len() < 200, "{} runs", lines.len());
    assert!(lines.iter().all(|l| l["outcome"] == "passed"), "{lines:?}");
}

#[test]
fn ctrl_c_with_force_stops_running_ones_at_their_next_step() {
    let (code, stdout, lines) = interrupted(true);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("), interrupted in "), "{stdout}");
    let stopped: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert!(!stopped.is_empty(), "{lines:?}");
    assert!(
        stopped
            .iter()
            .all(|l| l["error"] == "stopped before this step (interrupted)"),
        "{stopped:?}"
    );
}

#[test]
fn ctrl_c_during_a_single_run_stops_at_the_next_step_and_still_runs_finally() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slow.sim.yaml");
    let mut slow = serde_json::to_value(flowrun::sim::SimConfig::default()).unwrap();
    slow["faults"]["latency_ms"] = json!(700);
    std::fs::write(&config, flowrun::report::transcript::to_yaml(&slow)).unwrap();
    let child = bin()
        .args([
            "run",
            "flows/inbound.yaml",
            "--inputs",
            "flows/examples/inbound.inputs.yaml",
            "--sim-config",
        ])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt while the first or second step is in flight.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("error: stopped before this step (interrupted)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("failed at `"), "{stdout}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "interrupted (Ctrl-C): stopping before the next step; finally steps still run\n"
    );
    // The finally step was still evaluated (skipped here: no route was created).
    assert!(stdout.contains("skipped  delete_route"), "{stdout}");
}

/// Runs `flowrun run FLOW --sim-config <default with `faults`>` and sends `signal` after
/// `after_ms`; the exit code, stdout, stderr and how long the process took.
fn signalled(flow: &str, faults: Value, signal: &str, after_ms: u64) -> (Option<i32>, String, String, u128) {
    let inputs: &[&str] = if flow == "flows/inbound.yaml" {
        &["--inputs", "flows/examples/inbound.inputs.yaml"]
    } else {
        &[]
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sim.yaml");
    let mut sim = serde_json::to_value(flowrun::sim::SimConfig::default()).unwrap();
    for (k, v) in faults.as_object().unwrap() {
        sim["faults"][k] = v.clone();
    }
    std::fs::write(&config, flowrun::report::transcript::to_yaml(&sim)).unwrap();
    let started = std::time::Instant::now();
    let child = bin()
        .args(["run", flow])
        .args(inputs)
        .arg("--sim-config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(after_ms));
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    assert!(sent.unwrap().success());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed().as_millis(),
    )
}

/// What service managers send on a deploy (SIGTERM), and a closed terminal (SIGHUP), stop a run
/// like Ctrl-C: at the next step, `finally` still running, exit 1 — not a kill that strands a PSR.
#[test]
fn sigterm_and_sighup_stop_a_run_like_ctrl_c() {
    for (signal, words) in [("TERM", "terminated (SIGTERM)"), ("HUP", "hung up (SIGHUP)")] {
        let (code, stdout, stderr, _) =
            signalled("flows/inbound.yaml", json!({"latency_ms": 700}), signal, 1000);
        assert_eq!(code, Some(1), "{signal}: {stdout}{stderr}");
        assert_eq!(
            stderr,
            format!("{words}: stopping before the next step; finally steps still run\n")
        );
        assert!(
            stdout.contains("error: stopped before this step (interrupted)\n"),
            "{stdout}"
        );
        assert!(stdout.contains("skipped  delete_route"), "{stdout}");
    }
}

/// Ctrl-C while the last step is in flight: the step finishes, but the run was interrupted —
/// exit 1, as for any Ctrl-C (it used to report `passed` and exit 0).
#[test]
fn ctrl_c_during_the_last_step_exits_1() {
    let (code, stdout, _, _) = signalled(
        "tests/flows/one_consent.yaml",
        json!({"latency_ms": 1500}),
        "INT",
        400,
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("ok       consent"), "{stdout}");
    assert!(
        stdout.contains("interrupted during this step (it finished; no step was left to skip)"),
        "{stdout}"
    );
}

/// A wait before a retry is cut short by Ctrl-C: the run does not sit out its 8 s.
#[test]
fn ctrl_c_during_a_retry_wait_stops_at_once() {
    let (code, stdout, _, took) = signalled(
        "tests/flows/one_consent.yaml",
        json!({"rate_503": 1.0}),
        "INT",
        600,
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("interrupted while waiting to retry"), "{stdout}");
    assert!(took < 4000, "took {took} ms");
}

/// A line that is not UTF-8 (or is longer than a line may be) fails alone; the lines after it
/// still run. It used to end the batch silently.
#[test]
fn an_unreadable_line_fails_alone_and_the_rest_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let good = lines(4);
    let mut bytes = Vec::new();
    let mut rows = good.lines();
    bytes.extend_from_slice(format!("{}\n", rows.next().unwrap()).as_bytes());
    bytes.extend_from_slice(b"{\"end_user\": \"\xff\xfe\"}\n");
    bytes.extend_from_slice(format!("{}\n", rows.next().unwrap()).as_bytes());
    bytes.extend_from_slice(&vec![b' '; flowrun::engine::MAX_LINE + 10]);
    bytes.push(b'\n');
    for row in rows {
        bytes.extend_from_slice(format!("{row}\r\n").as_bytes());
    }
    std::fs::write(&input, bytes).unwrap();
    let out_file = dir.path().join("results.jsonl");
    let out = bin()
        .args(["run", "flows/inbound.yaml", "--sim", "--inputs-jsonl"])
        .arg(&input)
        .arg("--results")
        .arg(&out_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut found: Vec<(u64, String)> = results(&out_file)
        .iter()
        .map(|r| {
            let what = r["error"]
                .as_str()
                .unwrap_or(r["outcome"].as_str().unwrap())
                .to_string();
            (r["line"].as_u64().unwrap(), what)
        })
        .collect();
    found.sort();
    let long = flowrun::engine::MAX_LINE + 11;
    assert_eq!(
        found,
        [
            (1, "passed".to_string()),
            (
                2,
                "line 2: not UTF-8 text (an invalid byte at offset 14)".to_string()
            ),
            (3, "passed".to_string()),
            (
                4,
                format!("line 4: the line is {long} bytes long, more than the 16777216 a line may hold")
            ),
            (5, "passed".to_string()),
            (6, "passed".to_string()),
        ]
    );
}

/// Counts that would make a batch do nothing (or refuse every answer) are refused up front.
#[test]
fn zero_concurrency_rate_and_max_body_are_refused() {
    for (args, words) in [
        (
            ["--concurrency", "0"],
            "invalid value '0' for '--concurrency <N>': must be at least 1",
        ),
        (
            ["--concurrency", "100001"],
            "invalid value '100001' for '--concurrency <N>': at most 100000 runs can be in flight",
        ),
        (
            ["--rate", "0"],
            "invalid value '0' for '--rate <R>': the rate must be more than 0 runs per second",
        ),
        (
            ["--rate", "inf"],
            "invalid value 'inf' for '--rate <R>': the rate must be between 0.001 and 1000000 runs per second",
        ),
        (
            ["--max-body", "0"],
            "invalid value '0' for '--max-body <BYTES>': must be at least 1",
        ),
    ] {
        let out = bin()
            .args([
                "run",
                "flows/inbound.yaml",
                "--sim",
                "--inputs-jsonl",
                "flows/examples/inbound.runs.jsonl",
            ])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with(&format!("error: {words}\n")), "{stderr}");
    }
}

/// `--quiet` prints nothing when every run passed, and the summary when one did not.
#[test]
fn quiet_batches_print_nothing_when_every_run_passed() {
    let run = |input: &str| {
        bin()
            .args([
                "run",
                "flows/inbound.yaml",
                "--sim",
                "--quiet",
                "--inputs-jsonl",
                input,
            ])
            .output()
            .unwrap()
    };
    let out = run("flows/examples/inbound.runs.jsonl");
    assert_eq!(
        (out.status.code(), out.stdout.len(), out.stderr.len()),
        (Some(0), 0, 0)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{not json\n").unwrap();
    let out = run(&bad.to_string_lossy());
    assert_eq!(out.status.code(), Some(1));
    // Without --results, the first failures are still named.
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "first failures (all of them, with what each run saved: --results FILE):\n  line 1: not valid JSON: key must be a string at line 1 column 2\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("inbound: 1 runs (0 passed, 0 stopped, 1 failed)")
    );
}

/// Without --results, only failed runs are named, by line and step, with why (a run that failed
/// at a step, not only one whose line was unusable); passed runs before and after it are not.
#[test]
fn without_results_a_run_failed_at_a_step_is_named_and_passed_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let opted_out = json!({"channel_address": "+15550100", "end_user": "+15551112222", "queue_id": "00G5g000000SimQ", "consent_status": "OptedOut"});
    let passing = lines(2);
    let (first, last) = passing.split_once('\n').unwrap();
    std::fs::write(&input, format!("{first}\n{opted_out}\n{last}")).unwrap();
    let out = bin()
        .args([
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--quiet",
            "--concurrency",
            "1",
            "--inputs-jsonl",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "first failures (all of them, with what each run saved: --results FILE):\n  line 2 at `route`: expected status 202, got 400 (code 15103: The Messaging End User is not Fully Opted In)\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("inbound: 3 runs (2 passed, 0 stopped, 1 failed)")
    );
}

/// Batch results account for everything: a blank line and a line naming a key twice are failed
/// lines; a failed run's line keeps what it saved before failing (the conversation it created,
/// to clean up) and the API code; the summary counts failures by step and code.
#[test]
fn batch_results_account_for_every_line_and_keep_what_a_failed_run_made() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let opted_out = json!({"channel_address": "+15550100", "end_user": "+15551112222", "queue_id": "00G5g000000SimQ", "consent_status": "OptedOut"});
    std::fs::write(
        &input,
        format!(
            "{}\n\n{}\n{{\"channel_address\": \"+15550100\", \"end_user\": \"+1\", \"end_user\": \"+2\", \"queue_id\": \"q\"}}\n",
            lines(1).trim_end(),
            opted_out
        ),
    )
    .unwrap();
    let results_file = dir.path().join("results.jsonl");
    let out = bin()
        .args([
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--concurrency",
            "1",
            "--inputs-jsonl",
        ])
        .arg(&input)
        .arg("--results")
        .arg(&results_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("inbound: 4 runs (1 passed, 0 stopped, 3 failed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nfailed: 2 at `(inputs)`, 1 at `route` (code 15103)\n"),
        "{stdout}"
    );
    let mut found = results(&results_file);
    found.sort_by_key(|r| r["line"].as_u64());
    assert_eq!(
        found[1]["error"],
        json!("line 2: the line is blank; each line is a JSON object of inputs")
    );
    assert_eq!(found[2]["code"], json!(15103));
    let created = found[2]["saved"]["interaction"]["conversation_id"]
        .as_str()
        .unwrap();
    assert!(created.starts_with("5e550000-"), "{}", found[2]);
    assert_eq!(
        found[3]["error"],
        json!("line 4: not valid JSON: the key `end_user` is given twice at line 1 column 61")
    );
}

/// A batch waiting — for its `--rate`, or for standard input that stays open — stops at once on
/// SIGTERM, starts no run after it, and its results are on disk as each run ends.
#[test]
fn a_waiting_batch_stops_at_once_and_its_results_are_already_written() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    let started = std::time::Instant::now();
    let mut child = bin()
        .args([
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--inputs-jsonl",
            "-",
            "--rate",
            "0.05",
            "--results",
        ])
        .arg(&results)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines(3).as_bytes()).unwrap();
    // The first run starts at once; the second would wait 20 s for the rate.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let written = std::fs::read_to_string(&results).unwrap();
    assert_eq!(written.lines().count(), 1, "flushed as the run ended: {written}");
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(sent.unwrap().success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("inbound: 1 runs (1 passed, 0 stopped, 0 failed), interrupted"),
        "{stdout}"
    );
}

/// `--ordered` writes the result lines in input order however the runs interleave.
#[test]
fn ordered_results_follow_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let mut text = lines(30);
    text.insert_str(0, "{not json\n");
    std::fs::write(&input, text).unwrap();
    let results_file = dir.path().join("results.jsonl");
    let out = bin()
        .args([
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--concurrency",
            "8",
            "--ordered",
            "--inputs-jsonl",
        ])
        .arg(&input)
        .arg("--results")
        .arg(&results_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let numbers: Vec<u64> = results(&results_file)
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=31).collect::<Vec<_>>());
}

/// A batch line's secret inputs are its own: masked in its result, and not in another line's
/// (they used to pile up in one registry: slower with every line, and masking other lines).
#[test]
fn each_batch_line_masks_its_own_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("f.yaml");
    std::fs::write(
        &flow,
        "version: 1\nname: f\ninputs:\n  s: { secret: true }\n  t: {}\nconnection: { base_url: \"{{ env('SCRT_BASE_URL') }}\" }\nsteps:\n  - id: one\n    request: { method: GET, path: /sim/state }\noutputs:\n  s: inputs.s\n  t: inputs.t\n",
    )
    .unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"s\": \"AAAA1111\", \"t\": \"x\"}\n{\"s\": \"BBBB2222\", \"t\": \"AAAA1111\"}\n",
    )
    .unwrap();
    let results_file = dir.path().join("results.jsonl");
    let out = bin()
        .args([
            "run",
            "--sim",
            "--concurrency",
            "1",
            "--ordered",
            "--inputs-jsonl",
        ])
        .arg(&input)
        .arg("--results")
        .arg(&results_file)
        .arg(&flow)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = results(&results_file);
    assert_eq!(found[0]["outputs"], json!({"s": "***", "t": "x"}));
    assert_eq!(found[1]["outputs"], json!({"s": "***", "t": "AAAA1111"}));
}
