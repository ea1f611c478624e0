//! `flowrun serve` against the simulator's Pub/Sub API, end to end: the real binary for both
//! (`flowrun sim` and `flowrun serve`), real gRPC over 127.0.0.1. An agent clicking a transfer
//! target (`POST /sim/transfer`) publishes a RoutingRequested event; the service answers it
//! with the documented calls. Also: a redelivered event runs once, an expired one sends
//! nothing, an Interaction event is ignored, `kill -9` mid-flow then a restart resumes the run
//! and the subscription from the stored replay id, a revoked token is replaced, a silent
//! stream is resubscribed, SIGTERM while subscribed exits cleanly (JSON logs throughout), a
//! stored replay id past the retention window falls back to EARLIEST, and missing settings
//! are all named before anything starts.

mod common;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/serve.rs"]
mod serve;

use common::{answered_at_once, exchange, repo};
use flowrun::service::LEASE;
use serde_json::{Value, json};
use serve::{Process, ended, post, serve, serving, simulator, simulator_with, state};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// Publishes `evt-crash` (a transfer to an agent) and kills `service` (SIGKILL) mid-flow: with
/// answers taking 700 ms, after its routing result was answered, while agent work is on its way.
async fn kill_mid_transfer(sim: &str, service: &mut Process) {
    post(
        sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-crash", "target": "agent" }),
    )
    .await;
    service.line_with("event=evt-crash outcome=started").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    service.child.start_kill().unwrap();
    let _ = service.child.wait().await;
}

fn journal(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("j.db").display())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_transfer_target_is_answered_with_the_documented_calls() {
    let (_sim, sim, env) = simulator(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (service, addr) = serve("flows/transfer.service.yaml", &journal(&dir), &env).await;

    for target in ["queue", "flow", "agent", "external"] {
        post(&sim, "/sim/reset", json!({})).await;
        let published = post(&sim, "/sim/transfer", json!({ "target": target })).await;
        let id = published["eventUuid"].as_str().unwrap();
        let event_id = published["eventId"].as_str().unwrap();
        let expected = if target == "external" { "stopped" } else { "passed" };
        assert_eq!(
            ended(&addr, id).await,
            expected,
            "{target}:\n{}",
            service.output()
        );
        let s = state(&sim).await;
        // The routing result comes first, always with routingType Transfer.
        let results = s["routingResults"].as_array().unwrap();
        assert_eq!(results.len(), 1, "{target}");
        assert_eq!(
            results[0],
            json!({
                "conversationIdentifier": common::CONVERSATION, "workItemId": common::WORK_ITEM,
                "success": true, "externallyRouted": target == "external", "routingType": "Transfer"
            }),
            "{target}"
        );
        let psrs = s["psrs"].as_object().unwrap();
        let work = s["agentWork"].as_array().unwrap();
        match target {
            "queue" => {
                let psr = &psrs[common::CONVERSATION];
                assert_eq!(psr["routingType"], "Transfer");
                assert_eq!(psr["routingInfo"], json!({ "queueId": "00G5g000000SimQ" }));
                assert!(work.is_empty());
            }
            "flow" => {
                let psr = &psrs[common::CONVERSATION];
                assert_eq!(psr["routingType"], "Transfer");
                assert_eq!(
                    psr["routingInfo"],
                    json!({ "flow": { "flowId": "3005g000000SimF", "queueId": "00G5g000000SimQ" } })
                );
            }
            "agent" => {
                assert!(
                    psrs.is_empty(),
                    "no route call for a transfer straight to an agent"
                );
                assert_eq!(work.len(), 1);
                assert_eq!(work[0]["routingType"], "Transfer");
                assert_eq!(work[0]["userId"], "0055g000000SimA");
                // With no route call, agent work correlates on the event's eventId.
                assert_eq!(work[0]["routingCorrelationId"], event_id);
            }
            _ => assert!(
                psrs.is_empty() && work.is_empty(),
                "external: nothing after the routing result"
            ),
        }
    }
    assert_eq!(service.count("outcome=started"), 4, "{}", service.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_expired_and_interaction_events_send_nothing_more() {
    let (_sim, sim, env) = simulator(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (service, addr) = serve("flows/transfer.service.yaml", &journal(&dir), &env).await;

    // The same event delivered twice (at-least-once delivery): one run.
    let first = post(&sim, "/sim/transfer", json!({ "eventUuid": "evt-twice" })).await;
    assert_eq!(ended(&addr, "evt-twice").await, "passed");
    let again = post(&sim, "/sim/transfer", json!({ "eventUuid": "evt-twice" })).await;
    assert_ne!(first["replayId"], again["replayId"]);
    service
        .line_with("event=evt-twice outcome=duplicate detail=passed")
        .await;

    // Published two minutes ago, past `max_age: 55s`: expired, nothing sent.
    let old = flowrun::journal::now_ms() - 120_000;
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-old", "createdDate": old }),
    )
    .await;
    assert_eq!(ended(&addr, "evt-old").await, "expired");

    // An Interaction event: no handler takes it.
    post(
        &sim,
        "/sim/events",
        json!({ "type": "Interaction", "payload": {}, "eventUuid": "evt-int" }),
    )
    .await;
    service.line_with("event=evt-int outcome=ignored").await;

    let s = state(&sim).await;
    assert_eq!(
        s["routingResults"].as_array().unwrap().len(),
        1,
        "only the first event sent anything"
    );
    let (_, metrics) = exchange(&addr, "GET", "/metrics", &[], b"").await;
    for line in [
        "flowrun_events_total{outcome=\"started\"} 1",
        "flowrun_events_total{outcome=\"duplicate\"} 1",
        "flowrun_events_total{outcome=\"expired\"} 1",
        "flowrun_events_total{outcome=\"ignored\"} 1",
        "flowrun_runs_total{outcome=\"passed\"} 1",
        "flowrun_runs_total{outcome=\"failed\"} 0",
        "flowrun_event_to_first_request_seconds_count 1",
        "flowrun_event_age_at_first_request_seconds_count 1",
        "flowrun_step_seconds_count{flow=\"transfer\",step=\"routing_result\"} 1",
        "flowrun_step_seconds_count{flow=\"transfer\",step=\"route\"} 1",
        "flowrun_runs_in_flight 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let (status, ready) = exchange(&addr, "GET", "/readyz", &[], b"").await;
    assert_eq!((status, ready.as_str()), (200, "ready\n"));
    // The token never shows.
    let token = env
        .iter()
        .find(|(k, _)| k == "SF_ACCESS_TOKEN")
        .unwrap()
        .1
        .clone();
    assert!(!service.output().contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workrecordid_left_null_is_filled_from_the_inbound_run() {
    let (_sim, sim, env) = simulator(None).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(&dir);
    // The inbound run that created the conversation, in the same journal.
    let inbound = Command::new(env!("CARGO_BIN_EXE_flowrun"))
        .args([
            "run",
            "flows/inbound.yaml",
            "--inputs",
            "flows/examples/inbound.inputs.yaml",
            "--journal",
            &journal,
        ])
        .current_dir(repo(""))
        .envs(env.iter().cloned())
        .output()
        .await
        .unwrap();
    assert!(
        inbound.status.success(),
        "{}",
        String::from_utf8_lossy(&inbound.stderr)
    );
    let s = state(&sim).await;
    let (conversation, found) = s["conversations"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(c, _)| *c != common::CONVERSATION)
        .unwrap();
    let work_item = found["workItemId"].as_str().unwrap().to_string();

    let (service, addr) = serve("flows/transfer.service.yaml", &journal, &env).await;
    post(&sim, "/sim/transfer", json!({ "conversationId": conversation, "workRecordId": null, "eventUuid": "evt-null", "target": "agent", "userId": "0055g000000SimB" })).await;
    assert_eq!(ended(&addr, "evt-null").await, "passed", "{}", service.output());
    let s = state(&sim).await;
    let result = s["routingResults"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(result["workItemId"], work_item.as_str());
    assert_eq!(result["conversationIdentifier"], conversation.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_flow_then_restart_resumes_from_the_stored_replay_id() {
    let dir = tempfile::tempdir().unwrap();
    // Each answer takes 700 ms: the run is mid-flow long enough to be killed there.
    let (_sim, sim, env) = simulator_with(&dir, |c| {
        c["faults"]["latency_ms"] = json!(700);
    })
    .await;
    let journal = journal(&dir);

    let (mut service, _) = serve("flows/transfer.service.yaml", &journal, &env).await;
    kill_mid_transfer(&sim, &mut service).await;
    // While the service is down, another agent clicks a transfer target.
    post(&sim, "/sim/reset", json!({})).await;
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-while-down", "target": "queue" }),
    )
    .await;

    let (service, addr) = serve("flows/transfer.service.yaml", &journal, &env).await;
    service.line_with("resuming run run=evt-crash").await;
    assert!(service.output().contains("from=CUSTOM"), "{}", service.output());
    assert_eq!(ended(&addr, "evt-crash").await, "passed", "{}", service.output());
    assert_eq!(
        ended(&addr, "evt-while-down").await,
        "passed",
        "{}",
        service.output()
    );
    // The event before the crash was not taken again from the stream: its replay id was stored.
    assert_eq!(service.count("event=evt-crash"), 0, "{}", service.output());
    let s = state(&sim).await;
    // After the reset: the resumed run's agent work, and the second event's calls. The resumed
    // run did not send its routing result again (it was answered before the kill).
    let results = s["routingResults"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{s}");
    assert_eq!(results[0]["externallyRouted"], false);
    let work = s["agentWork"].as_array().unwrap();
    assert_eq!(work.len(), 1, "{s}");
    assert_eq!(work[0]["routingType"], "Transfer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_replaced_and_the_subscription_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, sim, mut env) = simulator_with(&dir, |c| {
        c["jwt"] = json!({
            "client_id": "sim-client",
            "public_key": std::fs::read_to_string(repo("tests/fixtures/jwt-test-key.pub.pem")).unwrap(),
        });
    })
    .await;
    let login = env.iter().find(|(k, _)| k == "SF_LOGIN_URL").unwrap().1.clone();
    let key = std::fs::read_to_string(repo("tests/fixtures/jwt-test-key.pem")).unwrap();
    env.extend([
        ("SF_CLIENT_ID".to_string(), "sim-client".to_string()),
        ("SF_USERNAME".to_string(), "integration@example.com".to_string()),
        ("SF_JWT_KEY".to_string(), key.clone()),
        ("SF_LOGIN_URL".to_string(), login),
    ]);
    let (service, addr) = serve("tests/services/jwt.service.yaml", &journal(&dir), &env).await;
    post(&sim, "/sim/transfer", json!({ "eventUuid": "evt-1" })).await;
    assert_eq!(ended(&addr, "evt-1").await, "passed", "{}", service.output());

    // Every token stops working: the next delivery is refused, a new token is fetched.
    // The configured token, the subscriber's and the flow's.
    assert_eq!(post(&sim, "/sim/revoke-tokens", json!({})).await["revoked"], 3);
    post(&sim, "/sim/transfer", json!({ "eventUuid": "evt-2" })).await;
    service.line_with("the Pub/Sub API refused the token").await;
    service.line_with("got a new token").await;
    assert_eq!(ended(&addr, "evt-2").await, "passed", "{}", service.output());
    assert_eq!(state(&sim).await["routingResults"].as_array().unwrap().len(), 2);
    // Neither the key nor a token shows in the output.
    let out = service.output();
    assert!(!out.contains("BEGIN") && !out.contains("!sim-jwt-"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_stream_is_resubscribed_by_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    // After one event the stream goes silent: no events, no keepalives.
    let (_sim, sim, env) = simulator_with(&dir, |c| {
        c["faults"]["pubsub_stall_after"] = json!(1);
    })
    .await;
    let (service, addr) = serve("tests/services/stall.service.yaml", &journal(&dir), &env).await;
    post(&sim, "/sim/transfer", json!({ "eventUuid": "evt-a" })).await;
    assert_eq!(ended(&addr, "evt-a").await, "passed");
    post(&sim, "/sim/reset", json!({})).await;
    post(&sim, "/sim/transfer", json!({ "eventUuid": "evt-b" })).await;
    // `stall_after: 1s`: the watchdog subscribes again from evt-a's replay id.
    service.line_with("nothing arrived, not even a keepalive").await;
    assert_eq!(ended(&addr, "evt-b").await, "passed", "{}", service.output());
    let (_, metrics) = exchange(&addr, "GET", "/metrics", &[], b"").await;
    assert!(!metrics.contains("flowrun_reconnects_total 0\n"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_subscribed_then_a_replay_id_past_retention_falls_back_to_earliest() {
    let dir = tempfile::tempdir().unwrap();
    // The simulator keeps only the last three events.
    let (_sim, sim, env) = simulator_with(&dir, |c| {
        c["events"]["retained"] = json!(3);
    })
    .await;
    let journal = journal(&dir);

    // JSON logs: every line the service writes is one JSON object.
    let service = Process::start(
        &[
            "serve",
            "flows/transfer.service.yaml",
            "--listen",
            "127.0.0.1:0",
            "--journal",
            &journal,
            "--log-format",
            "json",
        ],
        &env,
    );
    service.line_with("\"message\":\"subscribed\"").await;
    let addr = service
        .wait_for("url", |l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["message"] == "serving").then(|| v["url"].as_str().unwrap()[7..].to_string())
        })
        .await;
    let published = post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-a", "target": "external" }),
    )
    .await;
    assert_eq!(published["replayId"], 0);
    assert_eq!(ended(&addr, "evt-a").await, "stopped");

    // SIGTERM while subscribed: the subscription closes, the service exits 0.
    let Process { mut child, lines } = service;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = lines.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{lines:?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            v["time"].is_string() && v["level"].is_string() && v["message"].is_string(),
            "{line}"
        );
    }
    let said = |message: &str| {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == message)
    };
    let event = said("event").unwrap();
    assert_eq!(
        (&event["event"], &event["outcome"]),
        (&json!("evt-a"), &json!("started"))
    );
    assert_eq!(
        said("stopping").unwrap()["why"],
        "terminated (SIGTERM)",
        "{lines:?}"
    );

    // Four events while it is down: the first falls out of the three retained.
    for id in ["evt-b", "evt-c", "evt-d", "evt-e"] {
        post(
            &sim,
            "/sim/transfer",
            json!({ "eventUuid": id, "target": "external" }),
        )
        .await;
    }
    // The replay id stored for evt-a is past retention: refused, then EARLIEST.
    let (service, addr) = serve("flows/transfer.service.yaml", &journal, &env).await;
    let warned = service
        .line_with("the stored replay id was refused; subscribing from the earliest retained event")
        .await;
    assert!(
        warned.ends_with("code=fetch.replayid.validation.failed"),
        "{warned}"
    );
    for id in ["evt-c", "evt-d", "evt-e"] {
        assert_eq!(ended(&addr, id).await, "stopped", "{id}: {}", service.output());
    }
    // evt-b was no longer retained when the service came back: never delivered, never run.
    let (status, _) = exchange(&addr, "GET", "/runs/evt-b", &[], b"").await;
    assert_eq!(status, 404);
    assert_eq!(service.count("event=evt-a"), 0, "{}", service.output());
    assert_eq!(state(&sim).await["routingResults"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_settings_are_all_named_at_once_and_nothing_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowrun"))
        .args(["serve", "flows/transfer.service.yaml", "--listen", "127.0.0.1:0"])
        .current_dir(repo(""))
        .env_clear()
        .env("SF_ACCESS_TOKEN", "tok-secret-4242")
        .env("SF_ORG_ID", "00D000000000001")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: sources.pubsub.topic: environment variable `SF_EVENT_TOPIC` is not set (in `{{ env('SF_EVENT_TOPIC') }}`)
error: sources.pubsub.instance_url: environment variable `SF_INSTANCE_URL` is not set (in `{{ env('SF_INSTANCE_URL') }}`)
error: event.type_field: environment variable `SF_EVENT_TYPE_FIELD` is not set (in `{{ env('SF_EVENT_TYPE_FIELD') }}`)
error: event.payload_field: environment variable `SF_EVENT_PAYLOAD_FIELD` is not set (in `{{ env('SF_EVENT_PAYLOAD_FIELD') }}`)
error: flows/transfer.yaml: environment variable `SCRT_BASE_URL` is not set
  = hint: the flow reads it with env('SCRT_BASE_URL')
error: flows/transfer.yaml: environment variable `SF_AUTHORIZATION_CONTEXT` is not set
  = hint: the flow reads it with env('SF_AUTHORIZATION_CONTEXT')
  = hint: set what is missing in the environment, or try the service with --sim
"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_postgres_one_subscribes_the_other_takes_over_after_kill_9() {
    // A subscribes, queues the event's run in the journal and claims it (it is alone).
    let MidRun {
        pg,
        _dir,
        _sim,
        sim,
        env,
        journal,
        mut a,
        addr_a,
        queued,
    } = mid_run("evt-crash").await;
    // B, on the same journal, stands by (and is ready: it takes webhook events).
    let (b, addr_b) = serving("flows/transfer.service.yaml", &journal, &env).await;
    b.line_with("standing by: another instance holds the subscription")
        .await;
    assert_eq!(exchange(&addr_b, "GET", "/readyz", &[], b"").await.0, 200);
    let leader = |text: &str| text.lines().any(|l| l == "flowrun_leader 1");
    assert!(leader(&exchange(&addr_a, "GET", "/metrics", &[], b"").await.1));
    assert!(!leader(&exchange(&addr_b, "GET", "/metrics", &[], b"").await.1));
    let owner = pg.query("SELECT owner FROM runs WHERE id = 'evt-crash'");
    let pid = a.child.id().unwrap().to_string();
    assert_eq!(
        owner.split(':').nth(1),
        Some(pid.as_str()),
        "A claimed the run: {owner}"
    );

    // Mid-run (each request takes 700 ms): A is killed.
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(queued.elapsed())).await;
    a.child.start_kill().unwrap();
    let _ = a.child.wait().await;
    let killed = Instant::now();
    post(&sim, "/sim/reset", json!({})).await;
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-while-down", "target": "queue" }),
    )
    .await;
    // B takes the subscription over from A's replay id at once, and A's run once its lease
    // has run out.
    b.line_with("leading: this instance holds the subscription").await;
    let takeover = killed.elapsed();
    let subscribed = b.line_with("info subscribed").await;
    assert!(subscribed.contains("from=CUSTOM"), "{subscribed}");
    b.line_with("resuming run run=evt-crash").await;
    let resumed = killed.elapsed();
    eprintln!(
        "after kill -9: subscription taken over in {} ms, the run resumed in {} ms",
        takeover.as_millis(),
        resumed.as_millis()
    );
    assert!(takeover < Duration::from_secs(3), "{takeover:?}");
    assert!(resumed < LEASE + Duration::from_secs(2), "{resumed:?}");
    assert_eq!(ended(&addr_b, "evt-crash").await, "passed", "{}", b.output());
    assert_eq!(ended(&addr_b, "evt-while-down").await, "passed", "{}", b.output());
    assert_eq!(b.count("event=evt-crash"), 0, "not taken again: {}", b.output());
    assert!(leader(&exchange(&addr_b, "GET", "/metrics", &[], b"").await.1));
    let s = state(&sim).await;
    // After the reset: the resumed run's agent work and the second event's calls; A's routing
    // result (answered before the kill) was not sent again.
    assert_eq!(s["routingResults"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["agentWork"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(
        pg.query("SELECT status, count(*) FROM runs GROUP BY status"),
        "passed|2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_one_worker_an_event_waiting_on_the_journal_holds_up_nothing_else() {
    let pg = tokio::task::spawn_blocking(postgres::Postgres::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_sim, sim, mut env) = simulator_with(&dir, |_| {}).await;
    // One async worker (tokio reads TOKIO_WORKER_THREADS), as on a one-core machine: whatever
    // the subscriber waits for on it, everything else would wait for too.
    env.push(("TOKIO_WORKER_THREADS".into(), "1".into()));
    let (service, addr) = serve("flows/transfer.service.yaml", &pg.url(), &env).await;
    // Another session holds the runs table; an event comes meanwhile.
    let locked = pg.lock("runs");
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-held", "target": "queue" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    answered_at_once(&addr, &["/healthz", "/metrics"]).await;
    // The table let go, the event runs.
    locked.release();
    assert_eq!(ended(&addr, "evt-held").await, "passed", "{}", service.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_one_worker_a_run_taken_over_waiting_on_the_journal_holds_up_nothing_else() {
    // A queues the event's run and claims it; B, with one async worker, stands by on the
    // same journal.
    let MidRun {
        pg,
        _dir,
        _sim,
        env,
        journal,
        mut a,
        queued,
        ..
    } = mid_run("evt-orphan").await;
    let mut env_b = env.clone();
    env_b.push(("TOKIO_WORKER_THREADS".into(), "1".into()));
    let (b, addr_b) = serving("flows/transfer.service.yaml", &journal, &env_b).await;

    // A is killed mid-run. B takes the subscription over (it records the lead and reads the
    // stored replay id) and claims A's run once its lease runs out (it reads the run back to
    // go on): another session holds the cursors and steps tables meanwhile.
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(queued.elapsed())).await;
    let locked = pg.lock("steps, cursors");
    a.child.start_kill().unwrap();
    let _ = a.child.wait().await;
    let pid_b = b.child.id().unwrap().to_string();
    let until = Instant::now() + LEASE + Duration::from_secs(10);
    loop {
        let owner = pg.query("SELECT owner FROM runs WHERE id = 'evt-orphan'");
        if owner.split(':').nth(1) == Some(pid_b.as_str()) {
            break;
        }
        assert!(
            Instant::now() < until,
            "B never claimed the run: {owner}\n{}",
            b.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    answered_at_once(&addr_b, &["/healthz", "/metrics"]).await;
    assert_eq!(b.count("leading:"), 0, "the lead was recorded: {}", b.output());

    // The tables let go, B subscribes from A's replay id and the run goes on where A left it.
    locked.release();
    b.line_with("leading: this instance holds the subscription").await;
    let subscribed = b.line_with("info subscribed").await;
    assert!(subscribed.contains("from=CUSTOM"), "{subscribed}");
    b.line_with("resuming run run=evt-orphan").await;
    assert_eq!(ended(&addr_b, "evt-orphan").await, "passed", "{}", b.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_whose_run_a_shared_journal_could_not_queue_is_taken_again() {
    let pg = tokio::task::spawn_blocking(postgres::Postgres::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_sim, sim, env) = simulator_with(&dir, |_| {}).await;
    let (service, addr) = serve("flows/transfer.service.yaml", &pg.url(), &env).await;
    // The runs table renamed away by another session: the event's run cannot be queued.
    pg.query("ALTER TABLE runs RENAME TO runs_away");
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-unqueued", "target": "queue" }),
    )
    .await;
    service.line_with("cannot queue the event's run").await;
    // Its position is not stored while the journal does not have its run: a restart would
    // start past the event and lose it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(pg.query(STORED), "0", "{}", service.output());
    // The table back, the run is queued (tried again) and runs; the position is stored.
    pg.query("ALTER TABLE runs_away RENAME TO runs");
    assert_eq!(
        ended(&addr, "evt-unqueued").await,
        "passed",
        "{}",
        service.output()
    );
    position_stored(&pg, &service).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_position_the_journal_cannot_read_is_asked_again_not_passed_over() {
    let pg = tokio::task::spawn_blocking(postgres::Postgres::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_sim, sim, env) = simulator_with(&dir, |_| {}).await;
    let journal = pg.url();
    // A takes an event and stores its position.
    let (mut a, addr_a) = serve("flows/transfer.service.yaml", &journal, &env).await;
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-before", "target": "queue" }),
    )
    .await;
    assert_eq!(ended(&addr_a, "evt-before").await, "passed", "{}", a.output());
    position_stored(&pg, &a).await;
    // B stands by on the same journal.
    let (b, addr_b) = serving("flows/transfer.service.yaml", &journal, &env).await;
    b.line_with("standing by: another instance holds the subscription")
        .await;

    // A is killed; B takes the lead but cannot read where the subscription got to (the
    // cursors table renamed away by another session): it asks again rather than subscribe
    // from LATEST, which would pass over what is published meanwhile.
    pg.query("ALTER TABLE cursors RENAME TO cursors_away");
    a.child.start_kill().unwrap();
    let _ = a.child.wait().await;
    b.line_with("cannot read where the subscription got to; trying again")
        .await;
    // Leading without a subscription: not ready.
    let (status, reason) = exchange(&addr_b, "GET", "/readyz", &[], b"").await;
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("not subscribed to the Pub/Sub API"), "{reason}");
    post(&sim, "/sim/reset", json!({})).await;
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": "evt-meanwhile", "target": "queue" }),
    )
    .await;
    pg.query("ALTER TABLE cursors_away RENAME TO cursors");
    let subscribed = b.line_with("info subscribed").await;
    assert!(subscribed.contains("from=CUSTOM"), "{subscribed}");
    assert_eq!(ended(&addr_b, "evt-meanwhile").await, "passed", "{}", b.output());
}

/// How many positions of a Pub/Sub subscription the journal holds.
const STORED: &str = "SELECT count(*) FROM cursors WHERE name LIKE 'pubsub:%'";

/// Waits (at most 5 s) until the journal holds the position `service` stores.
async fn position_stored(pg: &postgres::Postgres, service: &Process) {
    let until = Instant::now() + Duration::from_secs(5);
    while pg.query(STORED) != "1" {
        assert!(Instant::now() < until, "no position stored: {}", service.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PostgreSQL journal, the simulator answering each request in 700 ms, and instance `a` on
/// them, which has queued the run of event `id` (a transfer to an agent) and claimed it (it is
/// alone): the run is under way since `queued`.
struct MidRun {
    pg: postgres::Postgres,
    _dir: tempfile::TempDir,
    _sim: Process,
    sim: String,
    env: Vec<(String, String)>,
    journal: String,
    a: Process,
    addr_a: String,
    queued: Instant,
}

async fn mid_run(id: &str) -> MidRun {
    let pg = tokio::task::spawn_blocking(postgres::Postgres::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sim_process, sim, env) = simulator_with(&dir, |c| {
        c["faults"]["latency_ms"] = json!(700);
    })
    .await;
    let journal = pg.url();
    let (a, addr_a) = serve("flows/transfer.service.yaml", &journal, &env).await;
    post(
        &sim,
        "/sim/transfer",
        json!({ "eventUuid": id, "target": "agent" }),
    )
    .await;
    a.line_with(&format!("event={id} outcome=queued")).await;
    MidRun {
        pg,
        _dir: dir,
        _sim: sim_process,
        sim,
        env,
        journal,
        a,
        addr_a,
        queued: Instant::now(),
    }
}
