//! The journal on a real PostgreSQL server (a throwaway cluster on a free port): the schema
//! made once however many instances open it at once, every write read back as the embedded
//! store reads it, a taken run id refused, and the CLI (`run --journal postgres://…`, `runs
//! list|show|prune`) against it, with no secret in any table.

#[path = "common/postgres.rs"]
mod postgres;

use flowrun::journal::{JournalError, PostgresStore, RunStart, Store, Write};
use postgres::Postgres;
use serde_json::{Value, json};
use std::process::Command;

fn started(id: &str, outputs_flow: &str) -> Write {
    Write::RunStarted(RunStart {
        id: id.into(),
        flow_path: outputs_flow.into(),
        flow_name: "inbound".into(),
        flow_hash: "abc".into(),
        inputs: json!({"queue_id": "q"}),
        at_ms: 1,
        queued: false,
        vars: None,
    })
}

#[test]
fn the_store_writes_and_reads_back_as_the_embedded_one() {
    let pg = Postgres::start();
    // Three instances starting together: the schema is made once.
    let openers: Vec<_> = (0..3)
        .map(|_| {
            let url = pg.url();
            std::thread::spawn(move || PostgresStore::open(&url).map(|_| ()))
        })
        .collect();
    for o in openers {
        o.join().unwrap().unwrap();
    }
    assert_eq!(pg.query("SELECT version FROM flowrun_schema"), "4");
    let store = PostgresStore::open(&pg.url()).unwrap();

    let sent = Write::AttemptSent {
        run: "r1".into(),
        step: "route".into(),
        phase: "steps",
        number: 1,
        request: raw(json!({"method": "POST", "path": "/api/v1/route"})),
        at_ms: 2,
    };
    assert_eq!(
        store.apply(&[&[started("r1", "flows/inbound.yaml")], &[sent]]),
        [Ok(()), Ok(())]
    );
    let run = store.run("r1").unwrap().unwrap();
    assert_eq!(run.row.status, "running");
    assert_eq!(run.inputs, json!({"queue_id": "q"}));
    assert!(run.owner.is_some());
    assert_eq!(run.attempts.len(), 1);
    assert!(!run.attempts[0].answered, "sent, no answer: in doubt");

    // The step's end answers its last attempt (its own row is not updated then).
    let done = Write::StepDone {
        run: "r1".into(),
        step: "route".into(),
        phase: "steps",
        status: "ok",
        slot: raw(json!({"status": 202, "succeeded": true})),
        saved: raw(json!({"correlation_id": "c-1"})),
        error: None,
        at_ms: 3,
    };
    let finished = Write::RunFinished {
        run: "r1".into(),
        status: "passed".into(),
        outputs: json!({"conversation_id": "conv-1", "n": 2}),
        error: None,
        at_ms: 4,
    };
    assert_eq!(store.apply(&[&[done, finished]]), [Ok(())]);
    let run = store.run("r1").unwrap().unwrap();
    assert_eq!(run.row.status, "passed");
    assert_eq!(run.steps[0].saved, json!({"correlation_id": "c-1"}));
    assert!(run.attempts[0].answered);
    assert_eq!(run.attempts[0].status, Some(202));

    // A taken id breaks its group only; the group's other writes do not stay.
    let vars = Write::Vars {
        run: "r1".into(),
        vars: json!({"a": 1}),
    };
    let results = store.apply(&[&[vars, started("r1", "x")], &[started("r2", "x")]]);
    assert_eq!(
        results[0],
        Err(JournalError::Store("UNIQUE constraint failed: runs.id".into()))
    );
    assert_eq!(results[1], Ok(()));
    assert_eq!(store.run("r1").unwrap().unwrap().vars, Value::Null);

    // `fill` reads outputs by value; cursors keep the last position.
    let found = store
        .outputs_where("flows/inbound.yaml", "conversation_id", &json!("conv-1"))
        .unwrap();
    assert_eq!(found, Some(json!({"conversation_id": "conv-1", "n": 2})));
    assert_eq!(
        store
            .outputs_where("flows/inbound.yaml", "conversation_id", &json!("other"))
            .unwrap(),
        None
    );
    let cursor = |v: &str| Write::Cursor {
        name: "pubsub:/event/E".into(),
        value: v.into(),
        at_ms: 5,
    };
    assert_eq!(
        store.apply(&[&[cursor("00aa")], &[cursor("00ab")]]),
        [Ok(()), Ok(())]
    );
    assert_eq!(store.cursor("pubsub:/event/E").unwrap().as_deref(), Some("00ab"));

    assert_eq!(store.runs(false, 10).unwrap().len(), 2);
    assert_eq!(store.runs(true, 10).unwrap().len(), 1, "r2 is still running");
    assert_eq!(store.prune(i64::MAX).unwrap(), 1, "the finished run");
    assert!(store.run("r1").unwrap().is_none());
    assert_eq!(pg.query("SELECT count(*) FROM steps"), "0");
}

fn queued(id: &str, flow: &str, at_ms: i64) -> Write {
    match started(id, flow) {
        Write::RunStarted(start) => Write::RunStarted(RunStart {
            queued: true,
            at_ms,
            ..start
        }),
        _ => unreachable!(),
    }
}

#[test]
fn queued_runs_are_claimed_once_each_and_claimed_again_when_their_lease_runs_out() {
    let pg = Postgres::start();
    let (a, b) = (
        PostgresStore::open(&pg.url()).unwrap(),
        PostgresStore::open(&pg.url()).unwrap(),
    );
    let flows = ["flows/transfer.yaml".to_string()];
    // b listens: a queueing announces it (on commit).
    let announced = b.queue_signal().expect("a shared store announces queued runs");
    let writes: Vec<Write> = (0..40)
        .map(|i| queued(&format!("q{i:02}"), &flows[0], 100 + i))
        .chain([queued("other", "flows/inbound.yaml", 1)])
        .collect();
    let groups: Vec<&[Write]> = writes.iter().map(std::slice::from_ref).collect();
    assert!(a.apply(&groups).iter().all(Result::is_ok));
    let woke = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), announced.notified()).await
        });
    assert!(woke.is_ok(), "b was not told of the queued runs");
    assert_eq!(b.queued().unwrap(), 41);
    let row = b.run("q00").unwrap().unwrap();
    assert_eq!((row.row.status.as_str(), row.owner), ("queued", None));

    // Two claimers at once, in threads: every run once, none twice, oldest first.
    let url = pg.url();
    let claimers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|owner| {
            let url = url.clone();
            let flows = flows.clone();
            std::thread::spawn(move || {
                let store = PostgresStore::open(&url).unwrap();
                let mut mine = Vec::new();
                loop {
                    let got = store.claim(owner, &flows, 3, 10_000, 1_000).unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    // Queued until now: fresh, with its inputs and when it was queued.
                    assert!(
                        got.iter()
                            .all(|c| c.fresh && c.inputs == json!({"queue_id": "q"}))
                    );
                    mine.extend(got.into_iter().map(|c| (c.id, c.started_ms)));
                }
            })
        })
        .collect();
    let mut all: Vec<(String, i64)> = claimers.into_iter().flat_map(|c| c.join().unwrap()).collect();
    all.sort();
    let expected: Vec<(String, i64)> = (0..40).map(|i| (format!("q{i:02}"), 100 + i)).collect();
    assert_eq!(all, expected, "each queued run of the flow claimed exactly once");
    assert_eq!(
        a.queued().unwrap(),
        1,
        "the other flow's run waits for its own service"
    );
    let row = a.run("q00").unwrap().unwrap();
    assert_eq!(row.row.status, "running");
    assert!(["a", "b"].contains(&row.owner.as_deref().unwrap()));

    // Leases live until 10 000; a claim at 9 999 takes nothing, renewing holds them longer,
    // and once they run out another owner takes them over.
    assert!(a.claim("c", &flows, 100, 20_000, 9_999).unwrap().is_empty());
    assert_eq!(a.renew("a", 30_000).unwrap() + a.renew("b", 30_000).unwrap(), 40);
    assert!(
        a.claim("c", &flows, 100, 40_000, 20_001).unwrap().is_empty(),
        "renewed"
    );
    let taken = a.claim("c", &flows, 100, 40_000, 30_001).unwrap();
    let q00 = taken.iter().find(|c| c.id == "q00").expect("q00 taken over");
    assert!(
        !q00.fresh,
        "it was running: what it sent is read from the journal"
    );
    assert_eq!(a.run("q00").unwrap().unwrap().owner.as_deref(), Some("c"));
    // This process does not own q00: what it writes of it is refused (it would have sent a
    // request, or overwritten what the owner writes), and the group it was in leaves nothing.
    let sent = Write::AttemptSent {
        run: "q00".into(),
        step: "routing_result".into(),
        phase: "steps",
        number: 1,
        request: raw(json!({"method": "POST"})),
        at_ms: 6,
    };
    let finished = |run: &str| Write::RunFinished {
        run: run.into(),
        status: "passed".into(),
        outputs: json!({}),
        error: None,
        at_ms: 5,
    };
    let taken_over = Err(JournalError::Store(
        "run `q00` was taken over by another flowrun process: this one stops it without sending more".into(),
    ));
    assert_eq!(a.apply(&[&[sent]]), std::slice::from_ref(&taken_over));
    assert_eq!(a.apply(&[&[finished("q00")]]), [taken_over]);
    let q00 = a.run("q00").unwrap().unwrap();
    assert_eq!((q00.row.status.as_str(), q00.attempts.len()), ("running", 0));
    // Taken over by hand here (`flowrun runs resume`), it is this process's to write.
    let mine = |run: &str| Write::Claimed {
        run: run.into(),
        owner: flowrun::journal::owner_here().to_string(),
    };
    // A run ended is nobody's to claim, whatever its lease says, and stays ended.
    assert_eq!(a.apply(&[&[mine("q01"), finished("q01")]]), [Ok(())]);
    assert_eq!(a.apply(&[&[mine("q01")]]), [Ok(())]);
    assert_eq!(a.run("q01").unwrap().unwrap().row.status, "passed");
    let again = a.claim("d", &flows, 100, 90_000, 80_000).unwrap();
    assert_eq!(again.len(), 39, "every running run but the finished one");
    // Taken over by hand: no lease, so no instance claims it.
    let by_hand = Write::Claimed {
        run: "q02".into(),
        owner: "cli".into(),
    };
    assert_eq!(a.apply(&[&[by_hand]]), [Ok(())]);
    let last = a.claim("e", &flows, 100, i64::MAX, 95_000).unwrap();
    assert!(!last.iter().any(|c| c.id == "q02"), "{last:?}");
}

#[test]
fn the_connections_open_from_an_async_worker() {
    let pg = Postgres::start();
    // `serve` answers GET /metrics on an async worker, and the queue's depth it reads was the
    // lease connection's first use when no claim had come before: opening it there started a
    // runtime within the worker's, which panicked, and the request got no answer (a CI run).
    let depth = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = PostgresStore::open(&pg.url()).unwrap();
            assert!(store.apply(&[&[queued("q", "flows/transfer.yaml", 1)]])[0].is_ok());
            store.queued()
        });
    assert_eq!(depth.unwrap(), 1);
}

#[test]
fn a_newer_schema_is_refused_and_a_bad_url_is_told() {
    let pg = Postgres::start();
    PostgresStore::open(&pg.url()).unwrap();
    pg.query("UPDATE flowrun_schema SET version = 99");
    let Err(JournalError::Store(e)) = PostgresStore::open(&pg.url()) else {
        panic!("a newer schema was opened")
    };
    assert!(
        e.contains("has journal schema version 99; this flowrun knows up to 4"),
        "{e}"
    );
    // Nobody listens there: told with the place, never the password.
    let url = "postgres://flowrun:hunter2-secret@127.0.0.1:1/flowrun";
    let Err(JournalError::Store(e)) = PostgresStore::open(url) else {
        panic!("connected to nothing")
    };
    assert!(
        e.starts_with("cannot connect to PostgreSQL at 127.0.0.1:1/flowrun: "),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

fn flowrun(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowrun"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("FLOWRUN_JOURNAL")
        .envs(env.iter().cloned())
        .output()
        .unwrap()
}

#[test]
fn run_and_runs_work_against_postgres_and_no_secret_is_stored() {
    let pg = Postgres::start();
    let sim = flowrun::sim::start_in_background(flowrun::sim::SimConfig::default()).unwrap();
    let env = flowrun::sim::environment(&sim);
    let token = env
        .iter()
        .find(|(k, _)| k == "SF_ACCESS_TOKEN")
        .unwrap()
        .1
        .clone();
    // The server trusts local users: the password is only there to be kept out of sight.
    let url = pg.url().replace("flowrun@", "flowrun:pw-SECRET-5@");
    let run = |id: &str| {
        flowrun(
            &[
                "run",
                "flows/inbound.yaml",
                "--inputs",
                "flows/examples/inbound.inputs.yaml",
                "--journal",
                &url,
                "--run-id",
                id,
            ],
            &env,
        )
    };
    let conversations = |s: &flowrun::sim::Running| s.service.lock().unwrap().state.conversations.len();
    let before = conversations(&sim);
    let out = run("pg-1");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(conversations(&sim), before + 1);
    let shown = format!(
        "run pg-1 (journal postgres://flowrun:***@127.0.0.1:{}/flowrun)",
        pg.port
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&shown),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SECRET"));

    // The same id again: the same run, finished; nothing is sent.
    let again = run("pg-1");
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "error: run `pg-1` is already in the journal and passed; a repeated id is the same run, so \
         nothing was sent (give a new id to run again)\n"
    );
    assert_eq!(conversations(&sim), before + 1);

    let list = flowrun(&["runs", "list", "--journal", &url, "--format", "json"], &[]);
    let rows: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["id"], "pg-1");
    assert_eq!(rows[0]["status"], "passed");
    let show = flowrun(
        &["runs", "show", "pg-1", "--journal", &url, "--format", "json"],
        &[],
    );
    let detail: Value = serde_json::from_slice(&show.stdout).unwrap();
    let steps: Vec<(&str, &str)> = detail["steps"]
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
    assert!(
        detail["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["answered"] == true)
    );

    // Every text the database holds: no token, in any encoding flowrun applies.
    let all = pg.query(
        "SELECT string_agg(t::text, ' ') FROM (SELECT r::text AS t FROM runs r UNION ALL
         SELECT s::text FROM steps s UNION ALL SELECT a::text FROM attempts a) x",
    );
    assert!(all.contains("pg-1") && all.contains("/api/v1/route"), "{all}");
    let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    for leak in [token.as_str(), encoded.as_str()] {
        assert!(!all.contains(leak), "the token reached the journal");
    }

    let prune = flowrun(&["runs", "prune", "--older-than", "0s", "--journal", &url], &[]);
    assert_eq!(
        prune.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    assert_eq!(pg.query("SELECT count(*) FROM runs"), "0");
}

#[test]
fn tls_follows_libpq_sslmode_and_checks_certificates_as_asked() {
    let pg = Postgres::start_tls();
    let ca = pg.file("ca.crt").display().to_string();
    let other = pg.file("other-ca.crt").display().to_string();
    let at = |query: &str| format!("{}?{query}", pg.url());
    // By its certificate's name, reached at 127.0.0.1.
    let named = |query: &str| {
        format!(
            "postgres://flowrun@db.flowrun.test:{}/flowrun?hostaddr=127.0.0.1&{query}",
            pg.port
        )
    };
    let list = |url: &str| flowrun(&["runs", "list", "--journal", url], &[]);
    let refused = |url: &str, why: &str| {
        let out = list(url);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(3), "{url}: {err}");
        assert!(
            err.starts_with(&format!(
                "error: journal: cannot connect to PostgreSQL at {}:{}/flowrun: ",
                if url.contains("db.flowrun.test") {
                    "db.flowrun.test"
                } else {
                    "127.0.0.1"
                },
                pg.port
            )),
            "{url}: {err}"
        );
        assert!(err.contains(why), "{url}: {err}");
    };
    let accepted = |url: &str| {
        let out = list(url);
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "no runs in the journal\n");
    };

    // The server takes TLS only: without it, its own refusal is told.
    refused(&at("sslmode=disable"), "no encryption");
    // libpq's default (prefer) and require encrypt without checking the certificate.
    accepted(&pg.url());
    accepted(&at("sslmode=require"));
    // verify-full: the chain and the name. The system does not trust the test authority, the
    // certificate does not name 127.0.0.1, and another authority did not sign it.
    refused(
        &at("sslmode=verify-full"),
        "invalid peer certificate: UnknownIssuer",
    );
    refused(
        &at(&format!("sslmode=verify-full&sslrootcert={ca}")),
        "invalid peer certificate: certificate not valid for name \"127.0.0.1\"",
    );
    refused(
        &at(&format!("sslmode=verify-ca&sslrootcert={other}")),
        "invalid peer certificate: UnknownIssuer",
    );
    // verify-ca checks the chain, not the name; require with a root certificate is verify-ca.
    accepted(&at(&format!("sslmode=verify-ca&sslrootcert={ca}")));
    accepted(&at(&format!("sslmode=require&sslrootcert={ca}")));
    refused(
        &at(&format!("sslmode=require&sslrootcert={other}")),
        "invalid peer certificate: UnknownIssuer",
    );
    // A bad setting is told before connecting.
    let out = list(&at("sslmode=verify"));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: `sslmode=verify` in `--journal` is not a mode PostgreSQL knows: write disable, allow, prefer, require, verify-ca or verify-full\n"
    );

    // A whole journaled run over verify-full, by the name the certificate gives.
    let sim = flowrun::sim::start_in_background(flowrun::sim::SimConfig::default()).unwrap();
    let env = flowrun::sim::environment(&sim);
    let url = named(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let out = flowrun(
        &[
            "run",
            "flows/inbound.yaml",
            "--inputs",
            "flows/examples/inbound.inputs.yaml",
            "--journal",
            &url,
            "--run-id",
            "over-tls",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        pg.query("SELECT status FROM runs WHERE id = 'over-tls'"),
        "passed"
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM attempts WHERE run_id = 'over-tls'"),
        "4"
    );
}

/// A value as the JSON text a write carries.
fn raw(value: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&value).unwrap()
}
