//! `flowrun serve` end to end, the real binary on 127.0.0.1: a partner relays RoutingRequested
//! events to the webhook, signed with HMAC-SHA256. Each event runs the transfer flow once (the
//! event's `Idempotency-Key` is the run id, kept in the journal); a redelivered event runs no
//! second time; an expired event and an Interaction event send nothing; a bad signature is
//! refused; the webhook key never shows in the service's output; SIGTERM stops it cleanly.

mod common;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/serve.rs"]
mod serve;

use common::{answered_at_once, env_for, exchange, exchange_whole, received, service};
use flowrun::service::webhook::TAKING;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

const KEY: &str = "whsec-flowrun-test-key-7731";
const CONVERSATION: &str = "8a1f2c3d-0000-4000-8000-00000000c0de";
const EVENT_ID: &str = "d3bdacb1-49b4-4fbd-9adb-919319631db4";

/// A RoutingRequested (or other `kind`) event for a transfer to the queue, published `age` ago.
fn event(kind: &str, age: Duration) -> Vec<u8> {
    let channel_data = json!({ "eventId": EVENT_ID, "conversationId": CONVERSATION }).to_string();
    let payload = json!({
        "channelAddressIdentifier": "a",
        "payload": {
            "conversationIdentifier": CONVERSATION,
            "routingType": "Transfer",
            "workRecordId": "0Mw5g000000SimW",
            "routingParameters": { "queueId": "00G5g000000SimQ", "flowId": null, "userId": null, "channelData": channel_data }
        }
    });
    let created = flowrun::journal::now_ms() - age.as_millis() as i64;
    json!({ "CreatedDate": created, "Type__c": kind, "Payload__c": payload.to_string() })
        .to_string()
        .into_bytes()
}

fn signed(id: &str, body: &[u8], key: &str) -> Vec<(&'static str, String)> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("Idempotency-Key", id.to_string()),
        ("X-Signature", format!("sha256={hex}")),
        ("Content-Type", "application/json".into()),
    ]
}

/// The service's process, its output (kept open: the service writes to it), its first line
/// and its address.
type Hooked = (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    String,
    String,
);

/// `flowrun serve` of the webhook service on a free port with `extra` arguments, journaled in
/// `journal`, sending to `server`: the process, its output after the first line, that line, and
/// the address it serves on.
async fn start_hook(server: &wiremock::MockServer, journal: &str, extra: &[&str]) -> Hooked {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowrun"))
        .args([
            "serve",
            "tests/services/webhook.service.yaml",
            "--listen",
            "127.0.0.1:0",
            "--journal",
            journal,
        ])
        .args(extra)
        .envs(env_for(server))
        .env("FLOWRUN_WEBHOOK_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = first.rsplit("http://").next().unwrap().to_string();
    (child, stdout, first, addr)
}

/// A fresh PostgreSQL journal, the API's stand-in and the webhook service on them (started
/// with `extra`): the journal, the stand-in and the service as [`start_hook`] gives it.
async fn on_postgres(extra: &[&str]) -> (postgres::Postgres, wiremock::MockServer, Hooked) {
    let pg = tokio::task::spawn_blocking(postgres::Postgres::start)
        .await
        .unwrap();
    let server = service().await;
    let hooked = start_hook(&server, &pg.url(), extra).await;
    (pg, server, hooked)
}

/// Polls `GET /runs/ID` until the run is no longer queued or running (at most 10 s).
async fn settled(addr: &str, id: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = exchange(addr, "GET", &format!("/runs/{id}"), &[], b"").await;
        let state: Value = serde_json::from_str(&body).unwrap();
        let unfinished = state["status"] == "running" || state["status"] == "queued";
        if !unfinished || Instant::now() > until {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_events_run_the_transfer_once_each() {
    let server = service().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    let (child, mut stdout, first, addr) = start_hook(&server, &journal, &[]).await;
    assert_eq!(first, format!("transfer-hook: serving on http://{addr}"));

    // A fresh event: accepted at once, run in the background.
    let body = event("RoutingRequested", Duration::ZERO);
    let (status, answer) = exchange(&addr, "POST", "/events", &signed("ev-1", &body, KEY), &body).await;
    assert_eq!(
        (status, answer.as_str()),
        (202, "{\"run_id\":\"ev-1\",\"status\":\"running\"}\n")
    );
    assert_eq!(
        settled(&addr, "ev-1").await,
        json!({ "run_id": "ev-1", "status": "passed" })
    );
    let sent = received(&server).await;
    let calls: Vec<String> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(calls, ["POST /api/v1/routingResult", "POST /api/v1/route"]);
    assert_eq!(sent[1]["body"]["routingType"], "Transfer");
    assert_eq!(
        sent[1]["body"]["routingInfo"],
        json!({ "queueId": "00G5g000000SimQ" })
    );
    assert_eq!(sent[0]["body"]["workItemId"], "0Mw5g000000SimW");

    // The same event again: a duplicate, nothing sent.
    let (status, answer) = exchange(&addr, "POST", "/events", &signed("ev-1", &body, KEY), &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({ "run_id": "ev-1", "status": "passed", "duplicate": true })
    );

    // Published 70 s ago, past `max_age: 55s`: recorded as expired, nothing sent.
    let old = event("RoutingRequested", Duration::from_secs(70));
    let (status, answer) = exchange(&addr, "POST", "/events", &signed("ev-2", &old, KEY), &old).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, "{\"run_id\":\"ev-2\",\"status\":\"expired\"}\n")
    );
    assert_eq!(settled(&addr, "ev-2").await["status"], "expired");

    // An Interaction event: no handler takes it.
    let other = event("Interaction", Duration::ZERO);
    let (status, answer) = exchange(&addr, "POST", "/events", &signed("ev-3", &other, KEY), &other).await;
    assert_eq!((status, answer.as_str()), (200, "{\"status\":\"ignored\"}\n"));

    // A RoutingRequested event without its conversation: refused as the service sees it (the
    // handler's mapping, not the CLI's `--input`), recorded as failed, nothing sent.
    let text = String::from_utf8(event("RoutingRequested", Duration::ZERO)).unwrap();
    let bare = text.replace(
        &format!("\\\"conversationIdentifier\\\":\\\"{CONVERSATION}\\\","),
        "",
    );
    assert_ne!(bare, text);
    let bare = bare.into_bytes();
    let (status, answer) = exchange(&addr, "POST", "/events", &signed("ev-5", &bare, KEY), &bare).await;
    let why = "input `conversation_id` is required but this event gave none: handler `routing_requested` maps it in `inputs` (null or absent in the event leaves it out)";
    assert_eq!(
        (status, serde_json::from_str::<Value>(&answer).unwrap()),
        (422, json!({ "run_id": "ev-5", "status": "failed", "error": why }))
    );
    assert_eq!(settled(&addr, "ev-5").await["status"], "failed");

    // Without a CreatedDate, or with one far in the future, `max_age` cannot hold: refused.
    for (id, created) in [
        ("ev-6", json!("yesterday")),
        ("ev-7", json!(flowrun::journal::now_ms() + 3_600_000)),
    ] {
        let mut undated: Value = serde_json::from_slice(&event("RoutingRequested", Duration::ZERO)).unwrap();
        undated["CreatedDate"] = created;
        let undated = undated.to_string().into_bytes();
        let (status, answer) = exchange(&addr, "POST", "/events", &signed(id, &undated, KEY), &undated).await;
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!((status, &answer["status"]), (422, &json!("failed")), "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .ends_with("its age cannot be told against the handler's max_age"),
            "{answer}"
        );
    }

    // Signed with another key: refused, not run.
    let (status, answer) = exchange(
        &addr,
        "POST",
        "/events",
        &signed("ev-4", &body, "not-the-key"),
        &body,
    )
    .await;
    assert_eq!(
        (status, answer.as_str()),
        (401, "{\"error\":\"the signature does not match the body\"}\n")
    );
    assert_eq!(exchange(&addr, "GET", "/runs/ev-4", &[], b"").await.0, 404);
    assert_eq!(
        received(&server).await.as_array().unwrap().len(),
        2,
        "only ev-1 sent anything"
    );

    let (status, metrics) = exchange(&addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    for line in [
        "flowrun_events_total{outcome=\"received\"} 7",
        "flowrun_events_total{outcome=\"refused\"} 3",
        "flowrun_events_total{outcome=\"started\"} 1",
        "flowrun_events_total{outcome=\"duplicate\"} 1",
        "flowrun_events_total{outcome=\"expired\"} 1",
        "flowrun_events_total{outcome=\"ignored\"} 1",
        "flowrun_runs_total{outcome=\"passed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert_eq!(exchange(&addr, "GET", "/readyz", &[], b"").await.0, 200);

    // SIGTERM: stops taking events and exits cleanly; the key never showed.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut all = format!("{first}\n");
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
        .await
        .unwrap()
    {
        all.push_str(&line);
        all.push('\n');
    }
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    all.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(
        all.contains("terminated (SIGTERM): taking no more events"),
        "{all}"
    );
    assert!(!all.contains(KEY), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_shared_journal_an_event_lands_on_any_instance_and_runs_once() {
    let pg = tokio::task::spawn_blocking(postgres::Postgres::start)
        .await
        .unwrap();
    let server = service().await;
    let mut env = env_for(&server);
    env.push(("FLOWRUN_WEBHOOK_KEY".into(), KEY.into()));
    let start = || {
        serve::Process::start(
            &[
                "serve",
                "tests/services/webhook.service.yaml",
                "--listen",
                "127.0.0.1:0",
                "--journal",
                &pg.url(),
            ],
            &env,
        )
    };
    let (a, b) = (start(), start());
    let mut addrs = Vec::new();
    for p in [&a, &b] {
        let addr = p
            .wait_for("serving line", |l| {
                l.split_once(": serving on http://").map(|(_, a)| a.to_string())
            })
            .await;
        addrs.push(addr);
    }

    // Queued where it landed; the same event at the other instance is a duplicate.
    let body = event("RoutingRequested", Duration::ZERO);
    let (status, answer) = exchange(&addrs[0], "POST", "/events", &signed("ev-1", &body, KEY), &body).await;
    assert_eq!(
        (status, answer.as_str()),
        (202, "{\"run_id\":\"ev-1\",\"status\":\"queued\"}\n")
    );
    let (status, answer) = exchange(&addrs[1], "POST", "/events", &signed("ev-1", &body, KEY), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"duplicate\":true"), "{answer}");
    // Both instances tell how it ended, whichever ran it.
    for addr in &addrs {
        assert_eq!(
            settled(addr, "ev-1").await,
            json!({ "run_id": "ev-1", "status": "passed" })
        );
    }

    // More events, to either instance: each runs once, on whichever claims it.
    for i in 2..=11 {
        let id = format!("ev-{i}");
        let addr = &addrs[i % 2];
        let (status, _) = exchange(addr, "POST", "/events", &signed(&id, &body, KEY), &body).await;
        assert_eq!(status, 202);
    }
    for i in 2..=11 {
        let state = settled(&addrs[(i + 1) % 2], &format!("ev-{i}")).await;
        assert_eq!(state["status"], "passed", "{state}");
    }
    let sent = received(&server).await;
    let routes = sent
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/api/v1/route")
        .count();
    assert_eq!(routes, 11, "one route per event");
    assert_eq!(
        pg.query("SELECT status, count(*) FROM runs GROUP BY status"),
        "passed|11"
    );
    let claimed = |p: &serve::Process| p.count("outcome=queued");
    assert_eq!(claimed(&a) + claimed(&b), 11, "{}\n{}", a.output(), b.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_that_waits_holds_up_its_events_and_nothing_else() {
    let (pg, _server, (_child, _out, _, addr)) = on_postgres(&[]).await;
    // Another session holds the runs table: every read and write of it waits.
    let locked = pg.lock("runs");

    // More events than the service has async workers (one a core): each waits for the journal.
    let body = event("RoutingRequested", Duration::ZERO);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let waiting: Vec<_> = (0..cores + 2)
        .map(|i| {
            let (addr, body, id) = (addr.clone(), body.clone(), format!("held-{i}"));
            tokio::spawn(
                async move { exchange(&addr, "POST", "/events", &signed(&id, &body, KEY), &body).await },
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "the events did not wait for the journal"
    );
    // The probes and metrics still answer at once.
    answered_at_once(&addr, &["/healthz", "/metrics"]).await;

    // The table let go, every event is taken and runs.
    locked.release();
    for (i, w) in waiting.into_iter().enumerate() {
        let (status, answer) = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("an event still waits after the journal let go")
            .unwrap();
        assert_eq!(status, 202, "held-{i}: {answer}");
    }
    for i in 0..cores + 2 {
        let state = settled(&addr, &format!("held-{i}")).await;
        assert_eq!(state["status"], "passed", "{state}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_waiting_on_the_journal_are_bounded_the_next_is_busy() {
    let (pg, _server, (_child, _out, _, addr)) = on_postgres(&["--max-runs", "2"]).await;
    let locked = pg.lock("runs");
    let body = event("RoutingRequested", Duration::ZERO);
    let send = |id: String| {
        let (addr, body, headers) = (addr.clone(), body.clone(), signed(&id, &body, KEY));
        tokio::spawn(async move { exchange_whole(&addr, "POST", "/events", &headers, &body).await })
    };
    // 64 events are taken at once (more than --max-runs: a take that waits holds no run).
    let waiting: Vec<_> = (0..TAKING).map(|i| send(format!("wait-{i}"))).collect();
    // Not long: the table held past a lease (5 s) would make the service give its runs up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "the events did not wait"
    );

    // One more is not piled up behind them: busy at once, to be sent again.
    let more = tokio::time::timeout(Duration::from_secs(3), send("one-more".into()))
        .await
        .expect("one more event waited too")
        .unwrap();
    let (status, head, answer) = more;
    assert_eq!(status, 503, "{answer}");
    assert!(head.to_ascii_lowercase().contains("\r\nretry-after: 1"), "{head}");
    assert!(
        answer.contains("as many events as allowed are being taken"),
        "{answer}"
    );

    locked.release();
    for (i, w) in waiting.into_iter().enumerate() {
        let (status, _, answer) = tokio::time::timeout(Duration::from_secs(20), w)
            .await
            .expect("an event still waits after the journal let go")
            .unwrap();
        assert_eq!(status, 202, "wait-{i}: {answer}");
    }
    let (status, _, answer) = send("one-more".into()).await.unwrap();
    assert_eq!(status, 202, "{answer}");
    for id in ["wait-0", "wait-63", "one-more"] {
        assert_eq!(settled(&addr, id).await["status"], "passed", "{id}");
    }
}

/// An event whose run the journal cannot record (its `runs` table renamed away by another
/// session) is answered `503` with `Retry-After` and nothing runs: the sender sends it again,
/// where a `200` duplicate (as it was answered) would have lost it. Once `back` has put the
/// journal right, the same event sent again runs once.
async fn not_taken_until_the_journal_is_back(
    addr: &str,
    server: &wiremock::MockServer,
    id: &str,
    back: impl FnOnce(),
) {
    let body = event("RoutingRequested", Duration::ZERO);
    let (status, head, answer) =
        exchange_whole(addr, "POST", "/events", &signed(id, &body, KEY), &body).await;
    assert_eq!(status, 503, "{answer}");
    assert!(head.to_ascii_lowercase().contains("\r\nretry-after: 1"), "{head}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["run_id"], id, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.starts_with("the journal could not record the event's run (journal: ")
            && error.ends_with("): nothing ran; send the event again"),
        "{error}"
    );
    let (_, metrics) = exchange(addr, "GET", "/metrics", &[], b"").await;
    assert!(
        metrics.contains("flowrun_events_total{outcome=\"unrecorded\"} 1"),
        "{metrics}"
    );
    assert_eq!(received(server).await, json!([]));

    back();
    let (status, answer) = exchange(addr, "POST", "/events", &signed(id, &body, KEY), &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(settled(addr, id).await["status"], "passed");
    assert_eq!(received(server).await.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_an_sqlite_journal_cannot_record_is_sent_again() {
    let server = service().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let (_child, _out, _, addr) = start_hook(&server, &format!("sqlite:{}", db.display()), &[]).await;
    let sql = |q: &str| rusqlite::Connection::open(&db).unwrap().execute_batch(q).unwrap();
    sql("ALTER TABLE runs RENAME TO runs_away");
    not_taken_until_the_journal_is_back(&addr, &server, "ev-unrecorded", || {
        sql("ALTER TABLE runs_away RENAME TO runs")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_a_shared_journal_cannot_queue_is_sent_again() {
    let (pg, server, (_child, _out, _, addr)) = on_postgres(&[]).await;
    pg.query("ALTER TABLE runs RENAME TO runs_away");
    not_taken_until_the_journal_is_back(&addr, &server, "ev-unqueued", || {
        pg.query("ALTER TABLE runs_away RENAME TO runs");
    })
    .await;
}

/// The journal's write of the event's run breaks the run id's key (a trigger raises the
/// error a clash raises), as when another instance took the same event between this one's
/// look-up and its write: a duplicate, answered `200` with the state `then`, nothing sent; not
/// a journal failure (`503`).
async fn a_clash_is_a_duplicate(addr: &str, server: &wiremock::MockServer, then: &str) {
    let body = event("RoutingRequested", Duration::ZERO);
    let (status, answer) = exchange(addr, "POST", "/events", &signed("ev-clash", &body, KEY), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({ "run_id": "ev-clash", "status": then, "duplicate": true })
    );
    assert_eq!(received(server).await, json!([]));
    let (_, metrics) = exchange(addr, "GET", "/metrics", &[], b"").await;
    assert!(
        metrics.contains("flowrun_events_total{outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_id_taken_between_look_up_and_write_is_a_duplicate_on_sqlite() {
    let server = service().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let (_child, _out, _, addr) = start_hook(&server, &format!("sqlite:{}", db.display()), &[]).await;
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER clash BEFORE INSERT ON runs WHEN NEW.id = 'ev-clash'
             BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: runs.id'); END;",
        )
        .unwrap();
    a_clash_is_a_duplicate(&addr, &server, "running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_id_taken_between_look_up_and_write_is_a_duplicate_on_postgres() {
    let (pg, server, (_child, _out, _, addr)) = on_postgres(&[]).await;
    pg.query(
        "CREATE FUNCTION clash() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.id = 'ev-clash' THEN
             RAISE unique_violation USING CONSTRAINT = 'runs_pkey',
               MESSAGE = 'duplicate key value violates unique constraint \"runs_pkey\"';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER clash BEFORE INSERT ON runs FOR EACH ROW EXECUTE FUNCTION clash();",
    );
    a_clash_is_a_duplicate(&addr, &server, "queued").await;
}

/// Reads what the service sends on `stream` until it closes it (at most `limit`); `None` when
/// it was still open then.
async fn until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    read.ok().map(|_| String::from_utf8_lossy(&got).into_owned())
}

/// A client that sends half a request head, or a body a little at a time, is cut off after
/// `--read-timeout` instead of holding its connection for ever; the service goes on answering.
#[tokio::test]
async fn a_slow_client_is_cut_off_and_the_service_goes_on() {
    use tokio::io::AsyncWriteExt;
    let server = service().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    let (_child, _stdout, _, addr) = start_hook(&server, &journal, &["--read-timeout", "1s"]).await;

    // Half a head, and then nothing: the connection is closed after the read timeout.
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"POST /events HTTP/1.1\r\nHost: flowrun\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = until_closed(&mut half, Duration::from_secs(6)).await;
    let waited = started.elapsed();
    assert!(answer.is_some(), "a half-sent head kept its connection open");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );

    // A whole head, then a body that never comes whole: answered 408.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = "POST /events HTTP/1.1\r\nHost: flowrun\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"CreatedDate\"";
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = until_closed(&mut slow, Duration::from_secs(6))
        .await
        .expect("a body sent slowly kept its connection open");
    assert!(answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{answer}");
    assert!(
        answer.ends_with(
            "{\"error\":\"the request was not received and answered within 1s (serve --read-timeout)\"}\n"
        ),
        "{answer}"
    );

    // Nothing was run, and the service still answers.
    let (status, text) = exchange(&addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    assert_eq!(received(&server).await, json!([]));
}
