//! Three `flowrun serve` instances sharing a PostgreSQL journal, under fire: thousands of
//! RoutingRequested events from the simulator's Pub/Sub API while one instance after another
//! is killed (`kill -9`) every few seconds and started again. Counted from the simulator's
//! state and the journal: every event's run completed exactly once, no event was lost, and no
//! request was sent again except a request in doubt (sent, no answer written) resent as its
//! step's `in_doubt: resend` says.

mod common;
#[path = "common/postgres.rs"]
mod postgres;
#[path = "common/serve.rs"]
mod serve;

use serde_json::json;
use serve::{Process, post, simulator_with};
use std::time::{Duration, Instant};

/// Events published, in batches, while instances are killed.
const EVENTS: usize = 3000;
const BATCH: usize = 50;
/// Between two batches: the events come over about twelve seconds.
const BATCH_EVERY: Duration = Duration::from_millis(200);
/// Between two kills.
const KILL_EVERY: Duration = Duration::from_millis(2500);

fn instance(journal: &str, env: &[(String, String)]) -> Process {
    Process::start(
        &[
            "serve",
            "flows/transfer.service.yaml",
            "--listen",
            "127.0.0.1:0",
            "--journal",
            journal,
        ],
        env,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_killed_in_turn_run_every_event_exactly_once() {
    let pg = tokio::task::spawn_blocking(postgres::Postgres::start)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Each request takes 10 ms: a kill finds runs in flight, some of them with a request sent
    // and no answer written.
    let (_sim, sim, env) = simulator_with(&dir, |c| {
        c["faults"]["latency_ms"] = json!(10);
    })
    .await;
    let journal = pg.url();
    let mut live: Vec<Process> = (0..3).map(|_| instance(&journal, &env)).collect();
    for p in &live {
        p.line_with(": serving on http://").await;
    }
    // One of them leads.
    let until = Instant::now() + Duration::from_secs(20);
    while !live.iter().any(|p| p.count("info subscribed") > 0) {
        assert!(Instant::now() < until, "nobody subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut killed: Vec<Process> = Vec::new();
    let (mut published, mut kills, mut next_kill) = (0, 0, Instant::now() + KILL_EVERY);
    let started = Instant::now();
    while published < EVENTS {
        let body = json!({ "target": "external", "count": BATCH });
        post(&sim, "/sim/transfer", body).await;
        published += BATCH;
        if Instant::now() >= next_kill {
            // In turn: the leader is among them, and so are instances mid-run.
            let mut victim = live.remove(kills % 3);
            victim.child.start_kill().unwrap();
            let _ = victim.child.wait().await;
            killed.push(victim);
            let fresh = instance(&journal, &env);
            live.insert(kills % 3, fresh);
            kills += 1;
            next_kill = Instant::now() + KILL_EVERY;
        }
        tokio::time::sleep(BATCH_EVERY).await;
    }
    let published_in = started.elapsed();

    // Every run ends (a killed instance's runs once their lease has run out).
    let until = Instant::now() + Duration::from_secs(90);
    let expected = format!("stopped|{EVENTS}");
    loop {
        let statuses = pg.query("SELECT status, count(*) FROM runs GROUP BY status ORDER BY status");
        if statuses == expected {
            break;
        }
        let logs: Vec<String> = live.iter().chain(&killed).map(Process::output).collect();
        assert!(
            Instant::now() < until,
            "runs by status:\n{statuses}\nlogs:\n{}",
            logs.join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settled_in = started.elapsed();
    assert!(kills >= 4, "only {kills} kills");

    // Exactly once: every event has one run (the run id is the event id), and each sent its
    // routing result; the simulator got each at least once and never more often than the
    // journal wrote an attempt down before sending it.
    let count = |sql: &str| pg.query(sql).parse::<usize>().unwrap();
    assert_eq!(count("SELECT count(DISTINCT id) FROM runs"), EVENTS);
    let attempts = count("SELECT count(*) FROM attempts WHERE step = 'routing_result'");
    let (_, body) = common::exchange(&sim, "GET", "/sim/state?limit=10000", &[], b"").await;
    let answered = serde_json::from_str::<serde_json::Value>(&body).unwrap()["routingResults"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        (EVENTS..=attempts).contains(&answered),
        "{answered} routing results for {EVENTS} events and {attempts} attempts"
    );
    // A request sent again is a resend of one in doubt: the attempt before it has no answer.
    let resent = count("SELECT count(*) FROM attempts WHERE number > 1");
    assert_eq!(resent, attempts - EVENTS);
    let after_answer = count(
        "SELECT count(*) FROM attempts a JOIN attempts b
           ON b.run_id = a.run_id AND b.step = a.step AND b.number = a.number - 1
         WHERE b.answered_ms IS NOT NULL",
    );
    assert_eq!(
        after_answer, 0,
        "a request was sent again after its answer was written"
    );
    // Nothing left queued, and the instances still up agree.
    assert_eq!(count("SELECT count(*) FROM runs WHERE status = 'queued'"), 0);
    eprintln!(
        "{EVENTS} events published in {} ms with {kills} kills; all ended after {} ms; \
         {resent} requests in doubt resent, {} routing results answered",
        published_in.as_millis(),
        settled_in.as_millis(),
        answered
    );
}
