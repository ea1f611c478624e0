//! `flowrun run` as a user runs it: output, exit codes, report files — and no secret anywhere.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn flowrun(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowrun"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `flowrun run flows/inbound.yaml --inputs <example> EXTRA...`
async fn run_inbound_cli(extra: &[&str], env: Vec<(String, String)>) -> Output {
    let mut args = s(&[
        "run",
        "flows/inbound.yaml",
        "--inputs",
        "flows/examples/inbound.inputs.yaml",
    ]);
    args.extend(s(extra));
    flowrun(args, env).await
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Timings vary from run to run: `12 ms` → `<ms>`. A step's timing is right-aligned in its
/// column, so its padding varies with its digits: it is written as for one digit (a step of a
/// loaded machine takes 10 ms or more).
fn without_timings(t: &str) -> String {
    let mut out = String::new();
    for line in t.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let mut kept = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if i + 1 < words.len()
                && words[i + 1].starts_with("ms")
                && words[i].chars().all(|c| c.is_ascii_digit())
                && !words[i].is_empty()
            {
                if line.starts_with("  ") {
                    let padding = kept.iter().rev().take_while(|w: &&String| w.is_empty()).count();
                    kept.truncate(kept.len() - padding);
                    kept.extend(std::iter::repeat_n(String::new(), 8 - "0 ms".len()));
                }
                kept.push(format!("<ms>{}", &words[i + 1][2..]));
                i += 2;
            } else {
                kept.push(words[i].to_string());
                i += 1;
            }
        }
        out.push_str(&kept.join(" "));
        out.push('\n');
    }
    out
}

#[test]
fn timings_are_taken_out_whatever_their_width() {
    let line = |ms: &str| format!("  ok       route                202 {ms:>8}\npassed in {ms}: 1 step\n");
    assert_eq!(without_timings(&line("3 ms")), without_timings(&line("1234 ms")));
    assert_eq!(
        without_timings(&line("3 ms")),
        "  ok       route                202     <ms>\npassed in <ms>: 1 step\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passing_run_prints_a_line_per_step_and_exits_0() {
    let server = service().await;
    let out = run_inbound_cli(&["--input", "capacity_weight=2"], env_for(&server)).await;
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(without_timings(&text(&out.stdout)));
    let sent = received(&server).await;
    assert_eq!(sent[3]["body"]["capacityWeight"], json!(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_exits_1_and_says_why() {
    let body = json!({"code": 15103, "message": "End user is not opted in"});
    let server = failing("POST", "/api/v1/route", 400, body, None).await;
    let out = run_inbound_cli(&[], env_for(&server)).await;
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(without_timings(&text(&out.stdout)));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_inputs_exit_2_and_send_nothing() {
    let server = service().await;
    let out = run_inbound_cli(&["--input", "consent_status=ExplicityOptedIn"], env_for(&server)).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: input `consent_status` must be one of OptedOut, ImplicitlyOptedIn, ExplicitlyOptedIn, DoublyOptedIn, got `ExplicityOptedIn`; did you mean `ExplicitlyOptedIn`?\nnothing was sent\n"
    );
    assert_eq!(received(&server).await, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_environment_variable_exits_2_before_sending() {
    let server = service().await;
    let mut env = env_for(&server);
    env.retain(|(k, _)| k != "SF_ORG_ID" && k != "SF_ACCESS_TOKEN");
    let out = run_inbound_cli(&[], env).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: environment variable `SF_ORG_ID` is not set\n  = hint: the flow reads it with env('SF_ORG_ID')\n\
error: environment variable `SF_ACCESS_TOKEN` is not set\n  = hint: the flow reads it with secret('SF_ACCESS_TOKEN')\nnothing was sent\n"
    );
    assert_eq!(received(&server).await, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_flow_exits_2_with_diagnostics() {
    let out = flowrun(s(&["run", "tests/broken/typo_key.yaml"]), vec![]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("tests/broken/typo_key.yaml:15:7: error: unknown key `metod` in `request`\n")
    );
    assert!(text(&out.stderr).ends_with("nothing was sent\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_over_the_size_cap_fails_the_step() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/interactions"))
        .respond_with(ResponseTemplate::new(202).set_body_string("x".repeat(5000)))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_happy(&server).await;
    let out = run_inbound_cli(&["--max-body", "4096"], env_for(&server)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("failed   interaction")
            && text(&out.stdout)
                .contains("response body is larger than the 4096-byte limit (see --max-body)"),
        "{}",
        text(&out.stdout)
    );
}

/// Runs a flow with every output switched on and returns everything it wrote.
async fn all_output(args: Vec<String>, env: Vec<(String, String)>, dir: &Path) -> (Output, String) {
    let mut args = args;
    for (flag, file) in [
        ("--report", "report.json"),
        ("--junit", "junit.xml"),
        ("--transcript", "transcript.yaml"),
    ] {
        args.push(flag.into());
        args.push(dir.join(file).to_string_lossy().into_owned());
    }
    args.push("--verbose".into());
    let out = flowrun(args, env).await;
    let mut all = text(&out.stdout) + &text(&out.stderr);
    for file in ["report.json", "junit.xml", "transcript.yaml"] {
        all += &std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    (out, all)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_output_reports_or_transcripts() {
    let server = service().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, all) = all_output(
        s(&[
            "run",
            "flows/inbound.yaml",
            "--inputs",
            "flows/examples/inbound.inputs.yaml",
        ]),
        env_for(&server),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(!all.contains(TOKEN), "the token leaked");
    assert!(!all.contains("tok-SECRET"), "part of the token leaked");
    assert!(all.contains("Bearer ***"), "the masked header is shown");
    // `--verbose` shows each `if` as it was evaluated.
    assert!(
        all.contains("  if       agent_work: `inputs.agent_user_id is defined` is true\n"),
        "{all}"
    );
    // The reports hold what they promise.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], json!({"result": "passed"}));
    assert_eq!(
        report["steps"][3]["attempts"][0]["request"]["json"]["capacityWeight"],
        json!(1)
    );
    assert_eq!(report["outputs"]["agent_work_id"], json!("0Bz5g000000Sim1"));
    let id = report["vars"]["interaction_id"].as_str().unwrap();
    let transcript = std::fs::read_to_string(dir.path().join("transcript.yaml")).unwrap();
    assert!(
        transcript.starts_with(&format!(
            "- vars:\n    interaction_id: {id}\n- step: interaction\n  attempt: 1\n  method: POST\n  path: /api/v1/interactions\n"
        )),
        "{transcript}"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testsuite name="inbound" tests="5""#),
        "{junit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_jwt_secret_reaches_any_output_even_when_auth_fails() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"access_token": "00D!fetched-SECRET-token"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v1/consent"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"code": 10004, "message": "bad token 00D!fetched-SECRET-token"})),
        )
        .mount(&server)
        .await;
    let env = jwt_env(&server.uri(), &server.uri());
    let key_line = env[4].1.lines().nth(1).unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (out, all) = all_output(s(&["run", "tests/flows/jwt.yaml"]), env, dir.path()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(!all.contains("fetched-SECRET-token"), "the access token leaked");
    assert!(!all.contains(&key_line), "the private key leaked");
    let requests = server.received_requests().await.unwrap();
    let assertion = form_urlencoded::parse(&requests[0].body)
        .find(|(k, _)| k == "assertion")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(!all.contains(&assertion), "the signed JWT leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_main_command_runs_a_shipped_flow_against_the_simulator() {
    // No connection variables at all: --sim provides them.
    let out = flowrun(
        s(&[
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--inputs",
            "flows/examples/inbound.inputs.yaml",
        ]),
        vec![],
    )
    .await;
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("passed in "), "{stdout}");
    assert!(!stdout.contains(flowrun::sim::DEFAULT_TOKEN));
    let out = flowrun(
        s(&[
            "run",
            "flows/transfer.yaml",
            "--sim",
            "--inputs",
            "flows/examples/transfer.inputs.yaml",
        ]),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_simulator_config_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sim.yaml");
    std::fs::write(&config, "org_id: 00D000000000001\nchannels: []\nqueus: []\n").unwrap();
    let out = flowrun(
        vec![
            "run".into(),
            "flows/inbound.yaml".into(),
            "--sim-config".into(),
            config.to_string_lossy().into_owned(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown field `queus`"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rendered_body_that_breaks_the_api_schema_is_not_sent() {
    let server = service().await;
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("consent.yaml");
    std::fs::write(
        &flow,
        "version: 1\nname: consent\ninputs:\n  status: {}\nconnection: { base_url: \"{{ env('SCRT_BASE_URL') }}\" }\nsteps:\n  - id: consent\n    request:\n      method: PATCH\n      path: /api/v1/consent\n      json: { endUserClientId: u, channelAddressIdentifier: c, consentStatus: \"{{ inputs.status }}\" }\n",
    )
    .unwrap();
    let args = vec![
        "run".into(),
        flow.to_string_lossy().into_owned(),
        "--input".into(),
        "status=ExplicityOptedIn".into(),
    ];
    let out = flowrun(args, env_for(&server)).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("the body does not fit PATCH /api/v1/consent: `ExplicityOptedIn` is not an allowed value for `consentStatus` (did you mean `ExplicitlyOptedIn`? allowed: OptedOut, ImplicitlyOptedIn, ExplicitlyOptedIn, DoublyOptedIn); not sent"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(received(&server).await, json!([]));
}

/// `vars`: one value per run and per step, the same on every retry of the step, readable by
/// later steps once saved, shown in the report and the transcript — and a secret inside one
/// masked there like anywhere else.
#[tokio::test(flavor = "multi_thread")]
async fn vars_are_computed_once_fixed_across_retries_and_shown_masked() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/one"))
        .respond_with(wiremock::ResponseTemplate::new(503).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({})))
        .with_priority(5)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("SCRT_BASE_URL".to_string(), server.uri()),
        ("VARS_SECRET".to_string(), "s3cr3t-vars".to_string()),
    ];
    let (out, all) = all_output(s(&["run", "tests/flows/vars.yaml"]), env, dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("s3cr3t-vars"), "a secret inside a var leaked");

    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 3, "one retry of `one`, then `two`");
    assert_eq!(bodies[0], bodies[1], "the retry sends the same vars");
    assert_eq!(bodies[0]["credential"], json!("key-s3cr3t-vars"), "sent as it is");
    let (run, attempt) = (
        bodies[0]["run"].as_str().unwrap(),
        bodies[0]["attempt"].as_str().unwrap(),
    );
    assert_ne!(run, attempt);
    assert_eq!(bodies[0]["both"], json!(format!("{run}/{attempt}")));
    assert_eq!(bodies[2], json!({"run": run, "previous": attempt}));

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["vars"], json!({"run_id": run, "credential": "key-***"}));
    assert_eq!(
        report["steps"][0]["vars"],
        json!({"attempt_id": attempt, "both": format!("{run}/{attempt}")})
    );
    assert_eq!(report["outputs"]["run_id"], json!(run));
    let transcript = std::fs::read_to_string(dir.path().join("transcript.yaml")).unwrap();
    assert!(
        transcript.starts_with(&format!(
            "- vars:\n    run_id: {run}\n    credential: key-***\n- step: one\n  attempt: 1\n  vars:\n    attempt_id: {attempt}\n"
        )),
        "{transcript}"
    );
    assert_eq!(
        transcript.matches(&format!("attempt_id: {attempt}")).count(),
        2,
        "both attempts"
    );
}

/// A secret is masked in every form flowrun gives it (percent-encoded in a query or a path,
/// form-encoded, JSON-escaped), and a secret input of type integer too — on the terminal, in
/// the report, the transcript, the JUnit file, the outputs and a batch's results.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_masked_in_every_encoding_and_type() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // Real Salesforce tokens hold `!`: a query shows it as `%21`.
    let token = "00D000000000001!tok SECRET/q\"x";
    let env = vec![
        ("SCRT_BASE_URL".to_string(), server.uri()),
        ("Q_TOKEN".to_string(), token.to_string()),
    ];
    let (out, all) = all_output(
        s(&["run", "tests/flows/secrets.yaml", "--input", "pin=918273"]),
        env.clone(),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{all}");
    let sent = server.received_requests().await.unwrap();
    assert_eq!(
        sent[0].url.query(),
        Some("access_token=00D000000000001%21tok+SECRET%2Fq%22x")
    );
    for leak in ["SECRET", "918273", "%21tok", "tok+SECRET"] {
        assert!(!all.contains(leak), "`{leak}` leaked:\n{all}");
    }

    // A batch: a good line, and a line whose secret input breaks its rule.
    let lines = dir.path().join("runs.jsonl");
    std::fs::write(&lines, "{\"pin\": 918273}\n{\"pin\": 91827345}\n").unwrap();
    let results = dir.path().join("results.jsonl");
    let out = flowrun(
        s(&[
            "run",
            "tests/flows/secrets.yaml",
            "--inputs-jsonl",
            &lines.to_string_lossy(),
            "--results",
            &results.to_string_lossy(),
        ]),
        env,
    )
    .await;
    let written = std::fs::read_to_string(&results).unwrap();
    let everything = written.clone() + &text(&out.stdout) + &text(&out.stderr);
    assert_eq!(written.lines().count(), 2, "{written}");
    for leak in ["SECRET", "918273", "91827345"] {
        assert!(!everything.contains(leak), "`{leak}` leaked:\n{everything}");
    }
    assert!(written.contains("\"pin\":\"***\""), "{written}");
}

/// The same alias bomb in an inputs file, a simulator configuration or a test file: refused at
/// the alias, `file:line:col`, exit 2, nothing sent.
#[tokio::test(flavor = "multi_thread")]
async fn alias_bombs_in_every_yaml_file_are_refused_where_they_explode() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (n, p) in ["b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g"])
    {
        bomb.push_str(&format!("{n}: &{n} [{}]\n", vec![format!("*{p}"); 10].join(", ")));
    }
    let file = dir.path().join("bomb.yaml");
    std::fs::write(&file, &bomb).unwrap();
    let path = file.to_string_lossy().into_owned();
    let out = flowrun(
        s(&["run", "flows/inbound.yaml", "--sim", "--inputs", &path]),
        Vec::new(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "{path}:6:8: error: this alias expands the document past 200000 values"
        )),
        "{}",
        text(&out.stderr)
    );
    let out = flowrun(
        s(&["run", "flows/inbound.yaml", "--sim-config", &path]),
        Vec::new(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {path}:6:8: this alias expands the document past 200000 values (aliases that repeat aliases grow exponentially; write the values out, or anchor less)\n"
        )
    );
    let test_file = dir.path().join("bomb.test.yaml");
    std::fs::write(&test_file, format!("version: 1\nflow: x.yaml\n{bomb}")).unwrap();
    let out = flowrun(s(&["test", &test_file.to_string_lossy()]), Vec::new()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("bomb.test.yaml:8:8: error: this alias expands"),
        "{}",
        text(&out.stderr)
    );
}

/// What a failed step prints on stderr: `file:line:col`, the source line with a caret under the
/// part that failed (the `expect.status`, the `assert` item, the template, the body, the step),
/// and the server's answer — like `check`'s diagnostics.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_points_at_the_part_of_the_flow_that_failed() {
    let stderr = |out: &Output| text(&out.stderr);

    // status: the simulator refuses to route an end user who opted out (15103).
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = flowrun(
        s(&[
            "run",
            "flows/inbound.yaml",
            "--sim",
            "--inputs",
            "flows/examples/inbound.inputs.yaml",
            "--input",
            "consent_status=OptedOut",
            "--report",
            &report.to_string_lossy(),
        ]),
        Vec::new(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("failure_status", stderr(&out));
    // The JSON report carries the same facts as fields.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        report["outcome"]["failure"],
        json!({"kind": "status", "message": "expected status 202, got 400 (code 15103: The Messaging End User is not Fully Opted In)",
            "line": 104, "column": 15, "expected": "202", "actual": 400, "code": 15103,
            "api_message": "The Messaging End User is not Fully Opted In"})
    );
    assert_eq!(report["steps"][2]["failure"], report["outcome"]["failure"]);

    // assert: the route was accepted but not routed (`success: false`).
    let body = json!({"success": false, "reasonForNotRouting": "already pending"});
    let server = failing("POST", "/api/v1/route", 202, body, None).await;
    let out = run_inbound_cli(&[], env_for(&server)).await;
    insta::assert_snapshot!("failure_assert", stderr(&out));

    // render: a route-first transfer with no target reads an undefined `inputs.queue_id`.
    let server = service().await;
    let out = flowrun(
        s(&[
            "run",
            "flows/transfer-route-first.yaml",
            "--input",
            "conversation_id=c-1",
            "--input",
            "work_item_id=0Mw5g000000SimW",
            "--input",
            "event_id=e-1",
        ]),
        env_for(&server),
    )
    .await;
    insta::assert_snapshot!("failure_render", stderr(&out));

    // body check: the rendered consent status is not one the API takes; nothing is sent.
    let out = flowrun(
        s(&[
            "run",
            "tests/flows/consent_body.yaml",
            "--input",
            "status=ExplicityOptedIn",
        ]),
        env_for(&server),
    )
    .await;
    insta::assert_snapshot!("failure_body_check", stderr(&out));

    // deadline: the server answers later than the flow's 1 s deadline.
    let slow = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_millis(1500)))
        .mount(&slow)
        .await;
    let out = flowrun(
        s(&["run", "tests/flows/deadline.yaml"]),
        vec![("SCRT_BASE_URL".to_string(), slow.uri())],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    // The attempt's timeout is what was left of the deadline: a few ms under 1,000.
    let shown = stderr(&out);
    let (head, rest) = shown.split_once("no response within ").unwrap();
    let (_, tail) = rest.split_once(" ms").unwrap();
    insta::assert_snapshot!(
        "failure_deadline",
        format!("{head}no response within <ms> ms{tail}")
    );
}

/// `--format json`: the run report on stdout and nothing else there (the failure, rendered,
/// stays on stderr); secrets masked as in `--report`.
#[tokio::test(flavor = "multi_thread")]
async fn format_json_prints_the_report_on_stdout() {
    let server = service().await;
    let out = run_inbound_cli(&["--format", "json"], env_for(&server)).await;
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], json!({"result": "passed"}));
    assert_eq!(report["outputs"]["agent_work_id"], json!("0Bz5g000000Sim1"));
    assert!(!text(&out.stdout).contains(TOKEN));

    let body = json!({"code": 15103, "message": "not opted in"});
    let server = failing("POST", "/api/v1/route", 400, body, None).await;
    let out = run_inbound_cli(&["--format", "json"], env_for(&server)).await;
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"]["failure"]["code"], json!(15103));
    assert!(
        text(&out.stderr).contains("error: step `route` failed"),
        "{}",
        text(&out.stderr)
    );
}

/// Every problem at once before anything is sent: a phone number YAML read as a number is shown
/// where it stands in the inputs file with the hint to quote it, next to the unset variables.
#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_and_missing_environment_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in.inputs.yaml");
    std::fs::write(
        &inputs,
        "channel_address: \"+15550100\"\nend_user: +15550123\nqueue_id: q\n",
    )
    .unwrap();
    let path = inputs.to_string_lossy().into_owned();
    let out = flowrun(s(&["run", "flows/inbound.yaml", "--inputs", &path]), Vec::new()).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{path}:2:11: error: input `end_user` must be a string, got `15550123`\n  |\n2 | end_user: +15550123\n  |           ^^^^^^^^^\n  = hint: YAML reads `+15550123` as a number, not text; quote it: `end_user: \"+15550123\"`\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: environment variable `SCRT_BASE_URL` is not set"),
        "{stderr}"
    );
    assert!(stderr.ends_with("nothing was sent\n"), "{stderr}");
}

/// A secret input that takes its default is masked like one given on the command line.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_input_s_default_is_masked() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("f.yaml");
    std::fs::write(
        &flow,
        "version: 1\nname: f\ninputs:\n  pw: { secret: true, default: hunter2 }\n  pin: { type: integer, secret: true, default: 987654 }\nconnection: { base_url: \"{{ env('SCRT_BASE_URL') }}\" }\nsteps:\n  - id: one\n    request: { method: POST, path: /x, query: { pin: \"{{ inputs.pin }}\" }, json: { pw: \"{{ inputs.pw }}\" } }\n",
    )
    .unwrap();
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let (out, all) = all_output(s(&["run", &flow.to_string_lossy()]), env, dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("hunter2") && !all.contains("987654"), "{all}");
}

/// A hint for a bad `--input` uses the input's own name.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_typed_input_s_hint_names_the_input() {
    let server = service().await;
    let out = run_inbound_cli(&["--input", "capacity_weight=abc"], env_for(&server)).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("= hint: write a JSON number, e.g. `--input capacity_weight=1.5`"),
        "{}",
        text(&out.stderr)
    );
}

/// `fail_if` fails its step before anything is sent, at the `fail_if` line, with its message (or
/// the condition); false, the step sends as usual.
#[tokio::test(flavor = "multi_thread")]
async fn fail_if_fails_the_step_before_sending() {
    let stderr = |out: &Output| text(&out.stderr);
    let (server, env) = answering_200().await;
    let out = flowrun(
        s(&["run", "tests/flows/fail_if.yaml", "--color", "never"]),
        env.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("tests/flows/fail_if.yaml:12:7: error: step `guard` failed: the limit 10 is over 5\n"),
        "{err}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());

    let out = flowrun(
        s(&[
            "run",
            "tests/flows/fail_if.yaml",
            "--input",
            "limit=1",
            "--input",
            "status=OptedOut",
        ]),
        env.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("step `plain` failed: fail_if `inputs.status == 'OptedOut'` is true"),
        "{}",
        stderr(&out)
    );
    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(sent, ["/guarded"]);

    let out = flowrun(s(&["run", "tests/flows/fail_if.yaml", "--input", "limit=1"]), env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

/// A transfer inside the org without a target fails at the transfer flow's first step
/// (`fail_if`), naming what to give, before anything is sent; an external one needs none.
#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_without_a_target_fails_before_sending() {
    let stderr = |out: &Output| text(&out.stderr);
    let server = service().await;
    let args = |extra: &[&str]| {
        let mut a = s(&[
            "run",
            "flows/transfer.yaml",
            "--color",
            "never",
            "--input",
            "conversation_id=c-1",
            "--input",
            "work_item_id=0Mw5g000000SimW",
            "--input",
            "event_id=e-1",
        ]);
        a.extend(s(extra));
        a
    };
    let out = flowrun(args(&[]), env_for(&server)).await;
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(common::repo("flows/transfer.yaml")).unwrap();
    let line = text.lines().position(|l| l.contains("when: >-")).unwrap() + 1;
    let expected = format!(
        "flows/transfer.yaml:{line}:7: error: step `routing_result` failed: a transfer inside the org needs a target: give queue_id (and flow_id) or agent_user_id\n"
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(server.received_requests().await.unwrap().is_empty());

    let out = flowrun(args(&["--input", "externally_routed=true"]), env_for(&server)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// `input_groups`: a run breaking `one_of` or `any_of` is refused before anything is sent, each
/// broken rule said; a run keeping both sends.
#[tokio::test(flavor = "multi_thread")]
async fn input_groups_are_checked_with_the_inputs() {
    let (server, env) = answering_200().await;
    let run = |extra: &[&str]| {
        let mut a = s(&["run", "tests/flows/input_groups.yaml"]);
        a.extend(s(extra));
        flowrun(a, env.clone())
    };
    let out = run(&[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: exactly one of the inputs `sms`, `whatsapp` is required, but none was given\n  = hint: give one with `--input sms=...`\nerror: at least one of the inputs `queue_id`, `agent_user_id` is required, but none was given\n  = hint: give one with `--input queue_id=...`\nnothing was sent\n"
    );
    let out = run(&[
        "--input",
        "sms=+1555",
        "--input",
        "whatsapp=+1555",
        "--input",
        "queue_id=q",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: only one of the inputs `sms`, `whatsapp` may be given, but `sms` and `whatsapp` were\n  = hint: leave all but one of them out\nnothing was sent\n"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    let out = run(&[
        "--input",
        "sms=+1555",
        "--input",
        "queue_id=q",
        "--input",
        "agent_user_id=a",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// `for_each`: one request per item, each with its own `RequestId` and line; `until` ends the
/// loop at the first item it holds for, a refused item is passed over; saved values are lists
/// that line up with the items; too many items fail the step before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn for_each_sends_once_per_item_until_one_is_accepted() {
    use wiremock::matchers::{body_partial_json, path};
    let server = MockServer::start().await;
    for (agent, status, body) in [
        ("a1", 400, json!({"code": 15110, "message": "busy"})),
        ("a2", 202, json!({"success": false})),
        ("a3", 202, json!({"success": true})),
    ] {
        Mock::given(path("/offer"))
            .and(body_partial_json(json!({"userId": agent})))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
    }
    Mock::given(path("/report"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let out = flowrun(
        s(&[
            "run",
            "tests/flows/for_each.yaml",
            "--color",
            "never",
            "--input",
            r#"agents=["a1","a2","a3","a4"]"#,
        ]),
        env.clone(),
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for line in ["offer[0]", "offer[1]", "offer[2]", "  accepted_by = \"a3\""] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
    assert!(!stdout.contains("offer[3]"), "{stdout}");
    let sent = server.received_requests().await.unwrap();
    let offers: Vec<Value> = sent
        .iter()
        .filter(|r| r.url.path() == "/offer")
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["userId"].clone())
        .collect();
    assert_eq!(offers, [json!("a1"), json!("a2"), json!("a3")]);
    let ids: std::collections::HashSet<String> = sent
        .iter()
        .map(|r| r.headers.get("RequestId").unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), sent.len(), "each item its own RequestId");
    let report: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
    assert_eq!(report, json!({"offers": 3, "accepted": true}));

    // Six agents, `max_items: 5`: the step fails before sending anything.
    let before = server.received_requests().await.unwrap().len();
    let out = flowrun(
        s(&[
            "run",
            "tests/flows/for_each.yaml",
            "--input",
            r#"agents=["a","b","c","d","e","f"]"#,
        ]),
        env.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`for_each` gives 6 items, more than the 5 allowed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.received_requests().await.unwrap().len(), before);

    // No agent accepts: the step fails, naming `until`.
    let out = flowrun(
        s(&[
            "run",
            "tests/flows/for_each.yaml",
            "--input",
            r#"agents=["a1","a2"]"#,
        ]),
        env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("assertion failed: `response.body.success (for no item of 2)`"),
        "{}",
        text(&out.stderr)
    );
}

/// A connection file is not a flow: `run` says so, at its `kind`, and sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn running_a_connection_file_says_it_is_not_a_flow() {
    let out = flowrun(
        s(&["run", "flows/connections/salesforce.yaml", "--color", "never"]),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "flows/connections/salesforce.yaml:5:1: error: this is a connection file, not a flow\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// Answers the calls flow: a receipt per channel, `/read` saying `done`, `/report` empty.
async fn calls_server(done: bool) -> MockServer {
    let server = MockServer::start().await;
    for (channel, receipt) in [("sms", "r1"), ("chat", "r2")] {
        Mock::given(path(format!("/notify/{channel}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "receipt": receipt })))
            .mount(&server)
            .await;
    }
    Mock::given(path("/read"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "done": done })))
        .mount(&server)
        .await;
    Mock::given(path("/report"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// A steps file called twice with different arguments: its steps run in the call's place
/// (named `<call>.<step>`), read `params` and each other, and later steps read their values as
/// `steps.<call>.<step>.<value>`. A parameter's default fills what the call leaves out; a
/// secret parameter is masked; a call whose `if` is false skips all its steps.
#[tokio::test(flavor = "multi_thread")]
async fn a_called_steps_file_runs_in_place_with_its_arguments() {
    let server = calls_server(true).await;
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let args = [
        "run",
        "tests/flows/calls/flow.yaml",
        "--color",
        "never",
        "-v",
        "--input",
        "conversation=abc",
        "--input",
        "token=sekret-token",
    ];
    let out = flowrun(s(&args), env.clone()).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for line in [
        "first.post",
        "first.read",
        "second.post",
        "second.read",
        "nested.inner.post",
        "nested.echo",
        "  first_receipt = \"r1\"",
    ] {
        assert!(stdout.contains(line), "{line} in {stdout}");
    }
    assert!(
        !format!("{stdout}{stderr}").contains("sekret"),
        "{stdout}{stderr}"
    );
    let sent = server.received_requests().await.unwrap();
    let paths: Vec<&str> = sent.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        [
            "/notify/sms",
            "/read",
            "/notify/chat",
            "/read",
            "/notify/sms",
            "/read",
            "/report",
            "/report"
        ]
    );
    let body = |i: usize| serde_json::from_slice::<Value>(&sent[i].body).unwrap();
    let header = |i: usize| {
        sent[i]
            .headers
            .get("X-Token")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(body(0)["conversation"], "abc");
    assert_eq!(header(0), "sekret-token");
    assert_eq!(body(1), json!({ "receipt": "r1" }));
    // The second call passes no channel (the default, chat) and no token.
    assert_eq!(body(2)["conversation"], "abc-2");
    assert_eq!(header(2), "none");
    assert_eq!(body(3), json!({ "receipt": "r2" }));
    // A call inside a called file: its arguments read the outer call's parameters.
    assert_eq!(body(4)["conversation"], "abc-n");
    assert_eq!(body(6), json!({ "nested": "r1" }));
    assert_eq!(body(7), json!({ "first": "r1", "second": true, "nested": true }));

    // The first call's `read` answers not done: the second call's `if` is false.
    let server = calls_server(false).await;
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let out = flowrun(s(&args), env).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("skipped  second.post"), "{stdout}");
    assert!(stdout.contains("skipped  second.read"), "{stdout}");
    let sent = server.received_requests().await.unwrap();
    let paths: Vec<&str> = sent.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        [
            "/notify/sms",
            "/read",
            "/notify/sms",
            "/read",
            "/report",
            "/report"
        ]
    );
    let report: Value = serde_json::from_slice(&sent[5].body).unwrap();
    assert_eq!(
        report,
        json!({ "first": "r1", "second": "skipped", "nested": false })
    );
}

/// An argument that breaks its parameter's rules fails the call's first step where the call
/// is written; nothing is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_argument_fails_the_call_before_anything_is_sent() {
    let server = calls_server(true).await;
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let args = [
        "run",
        "tests/flows/calls/flow.yaml",
        "--color",
        "never",
        "--input",
        "conversation=ab",
    ];
    let out = flowrun(s(&args), env).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "tests/flows/calls/flow.yaml:13:11: error: step `first.post` failed: call `first`: argument `conversation` `ab` is not allowed: \"ab\" is shorter than 3 characters\n"
        ),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains("not run  second.post"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// A steps file is not a flow: `run` says so, at its `kind`, and sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn running_a_steps_file_says_it_is_not_a_flow() {
    let out = flowrun(
        s(&["run", "tests/flows/calls/notify.yaml", "--color", "never"]),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("tests/flows/calls/notify.yaml:3:1: error: this is a steps file, not a flow\n"),
        "{}",
        text(&out.stderr)
    );
}

/// A step of a called file that fails is shown in that file, at its own line.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_called_step_is_shown_in_its_own_file() {
    let server = MockServer::start().await;
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let args = [
        "run",
        "tests/flows/calls/flow.yaml",
        "--color",
        "never",
        "--input",
        "conversation=abc",
    ];
    let out = flowrun(s(&args), env).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("tests/flows/calls/notify.yaml:12:9: error: step `first.post` failed: expected status 2xx, got 404"),
        "{stderr}"
    );
    assert!(stderr.contains("12 |   - id: post"), "{stderr}");
}
