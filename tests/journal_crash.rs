//! Crash and resume: the real binary runs a shipped flow with `--journal` against the simulator
//! through a proxy that can hold a request; the test kills the process (SIGKILL) at every
//! point — a request held before the simulator sees it, a request the simulator answered but
//! whose answer is held, right after an answer (the step boundary) — then resumes the run with
//! `flowrun runs resume` and compares the simulator's state with a clean run's: one
//! conversation, one PSR or agent work, and no request repeated beyond what its step's
//! `in_doubt` policy allows.

use flowrun::sim::{SimConfig, environment, start_in_background};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Hold {
    /// Request `n` is held before the simulator sees it.
    Before(usize),
    /// Request `n` is answered by the simulator; its answer is held.
    After(usize),
    /// Request `n` is answered and passed on; the process is killed at once (request `n + 1`,
    /// if it comes first, is held).
    Boundary(usize),
}

/// A plain HTTP/1.1 proxy (Content-Length bodies, as flowrun sends) that counts requests and can
/// hold one. Every request it forwards is logged as `METHOD /path`.
struct Proxy {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    /// The head (request line and headers) of every request forwarded.
    heads: Arc<Mutex<Vec<String>>>,
    hold: Arc<Mutex<Option<Hold>>>,
    held: mpsc::Receiver<()>,
}

fn read_message(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let length = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    let mut whole = head;
    whole.extend(body);
    Some((text, whole))
}

impl Proxy {
    fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let hold = Arc::new(Mutex::new(None));
        let (tx, held) = mpsc::channel();
        let count = Arc::new(AtomicUsize::new(0));
        let (log2, hold2, heads2) = (log.clone(), hold.clone(), heads.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let (log, hold, tx, count) = (log2.clone(), hold2.clone(), tx.clone(), count.clone());
                let heads = heads2.clone();
                std::thread::spawn(move || {
                    let mut server = TcpStream::connect(upstream).unwrap();
                    while let Some((head, bytes)) = read_message(&mut client) {
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        let first = head.lines().next().unwrap_or_default().to_string();
                        let mut parts = first.split(' ');
                        let (method, path) =
                            (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                        let rule = *hold.lock().unwrap();
                        if rule == Some(Hold::Before(n)) {
                            let _ = tx.send(());
                            std::thread::sleep(Duration::from_secs(30));
                            return;
                        }
                        // Killed at the boundary after request n-1: the next request may reach
                        // the proxy before the kill lands, but it is never answered (else a
                        // fast run could pass its last steps before it is killed).
                        if rule == Some(Hold::Boundary(n - 1)) {
                            std::thread::sleep(Duration::from_secs(30));
                            return;
                        }
                        log.lock().unwrap().push(format!("{method} {path}"));
                        heads.lock().unwrap().push(head.clone());
                        server.write_all(&bytes).unwrap();
                        let Some((_, answer)) = read_message(&mut server) else {
                            return;
                        };
                        if rule == Some(Hold::After(n)) {
                            let _ = tx.send(());
                            std::thread::sleep(Duration::from_secs(30));
                            return;
                        }
                        if client.write_all(&answer).is_err() {
                            return;
                        }
                        if rule == Some(Hold::Boundary(n)) {
                            let _ = tx.send(());
                        }
                    }
                });
            }
        });
        Proxy {
            port,
            log,
            heads,
            hold,
            held,
        }
    }
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn flowrun(args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowrun"));
    c.args(args)
        .current_dir(repo("."))
        .env_remove("FLOWRUN_JOURNAL")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Counts the simulator holds: conversations, PSRs, agent work, routing results.
fn counts(running: &flowrun::sim::Running) -> (usize, usize, usize, usize) {
    let service = running.service.lock().unwrap();
    let s = &service.state;
    (
        s.conversations.len(),
        s.psrs.len(),
        s.agent_work.len(),
        s.routing_results.len(),
    )
}

fn tally(log: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in log {
        *out.entry(l.clone()).or_default() += 1;
    }
    out
}

struct Case {
    flow: &'static str,
    inputs: &'static str,
}

/// One clean run: the state and the requests a crash-free run leaves.
fn clean(case: &Case) -> ((usize, usize, usize, usize), Vec<String>) {
    let running = start_in_background(SimConfig::default()).unwrap();
    let proxy = Proxy::start(running.addr);
    let env = env_through(&running, &proxy);
    let out = flowrun(&["run", case.flow, "--inputs", case.inputs], &env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (counts(&running), proxy.log.lock().unwrap().clone())
}

fn env_through(running: &flowrun::sim::Running, proxy: &Proxy) -> Vec<(String, String)> {
    let mut env = environment(running);
    for (k, v) in env.iter_mut() {
        if k == "SCRT_BASE_URL" {
            *v = format!("http://127.0.0.1:{}", proxy.port);
        }
    }
    env
}

/// Kills the run at `hold`, resumes it, and checks the simulator against the clean run.
fn crash_and_resume(
    case: &Case,
    hold: Hold,
    clean_counts: (usize, usize, usize, usize),
    clean_log: &[String],
) {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("journal.db").display());
    let (running, proxy, env) = killed_at(case.flow, case.inputs, hold, &journal);

    // The journal survived the kill intact.
    let db = rusqlite::Connection::open(dir.path().join("journal.db")).unwrap();
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let status: String = db
        .query_row("SELECT status FROM runs WHERE id = 'crash-1'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "running", "{} {hold:?}", case.flow);
    drop(db);

    let out = runs_on_crash_1("resume", &journal, &env, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} {hold:?}: resume failed\n{stdout}\n{}",
        case.flow,
        String::from_utf8_lossy(&out.stderr)
    );
    // Steps that ended before the kill are restored, not sent again.
    if let Hold::Before(k) | Hold::After(k) = hold
        && k > 1
    {
        assert!(
            stdout.contains("done before the run stopped (from the journal)"),
            "{stdout}"
        );
    }
    // One conversation, one PSR or agent work: what a clean run leaves. A routing result
    // resent after its answer was lost is recorded twice (its policy is `resend`).
    let (conversations, psrs, work, results) = counts(&running);
    assert_eq!(
        (conversations, psrs, work),
        (clean_counts.0, clean_counts.1, clean_counts.2),
        "{} {hold:?}: simulator state differs from a clean run's",
        case.flow
    );
    assert!(
        results == clean_counts.3 || results == clean_counts.3 + 1,
        "{} {hold:?}",
        case.flow
    );

    // Every request of the clean run was made, and none more than its policy allows: a step
    // in doubt may be sent twice (resend), a route once more after its compensating DELETE.
    let sent = tally(&proxy.log.lock().unwrap());
    let wanted = tally(clean_log);
    for (request, n) in &wanted {
        let got = sent.get(request).copied().unwrap_or(0);
        assert!(
            got >= *n,
            "{} {hold:?}: {request} sent {got} times, a clean run sends it {n}",
            case.flow
        );
        assert!(
            got <= n + 1,
            "{} {hold:?}: {request} sent {got} times: {sent:?}",
            case.flow
        );
    }
    let repeated: Vec<_> = sent
        .iter()
        .filter(|(r, n)| **n > wanted.get(*r).copied().unwrap_or(0))
        .map(|(r, _)| r.clone())
        .collect();
    match hold {
        // Held before the simulator saw it: nothing was done twice (a route's compensating
        // DELETE is sent all the same: flowrun cannot tell the two cases apart).
        Hold::Before(_) => assert!(
            repeated.iter().all(|r| r == "DELETE /api/v1/route"),
            "{} {hold:?}: repeated {repeated:?}",
            case.flow
        ),
        // Done, answer lost: only that step's request again (and a route's compensation).
        Hold::After(n) => {
            let in_doubt = &clean_log[n - 1];
            let allowed = |r: &String| r == in_doubt || r == "DELETE /api/v1/route";
            assert!(
                repeated.iter().all(allowed),
                "{} {hold:?}: repeated {repeated:?}",
                case.flow
            );
        }
        // Killed as the answer arrived: that step (if its end was not written yet) or the next
        // (if it was sent meanwhile) may be in doubt.
        Hold::Boundary(n) => {
            let (this, next) = (&clean_log[n - 1], clean_log.get(n).cloned().unwrap_or_default());
            let allowed = |r: &String| r == this || *r == next || r == "DELETE /api/v1/route";
            assert!(
                repeated.iter().all(allowed),
                "{} {hold:?}: repeated {repeated:?}",
                case.flow
            );
        }
    }

    // Resuming again is refused: the run has finished.
    let again = runs_on_crash_1("resume", &journal, &env, &[]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("error: run `crash-1` has already finished (passed): there is nothing to resume"),
        "{stderr}"
    );
}

fn every_point(case: Case) {
    let (clean_counts, clean_log) = clean(&case);
    let n = clean_log.len();
    assert!(n >= 3, "{clean_log:?}");
    for k in 1..=n {
        crash_and_resume(&case, Hold::Before(k), clean_counts, &clean_log);
        crash_and_resume(&case, Hold::After(k), clean_counts, &clean_log);
        if k < n {
            crash_and_resume(&case, Hold::Boundary(k), clean_counts, &clean_log);
        }
    }
}

#[test]
fn inbound_survives_a_kill_at_every_point() {
    every_point(Case {
        flow: "flows/inbound.yaml",
        inputs: "flows/examples/inbound.inputs.yaml",
    });
}

#[test]
fn transfer_survives_a_kill_at_every_point() {
    every_point(Case {
        flow: "flows/transfer.yaml",
        inputs: "flows/examples/transfer.inputs.yaml",
    });
}

#[test]
fn transfer_route_first_survives_a_kill_at_every_point() {
    every_point(Case {
        flow: "flows/transfer-route-first.yaml",
        inputs: "flows/examples/transfer.inputs.yaml",
    });
}

/// `flowrun runs COMMAND crash-1 --journal JOURNAL EXTRA...`, run to the end.
fn runs_on_crash_1(
    command: &str,
    journal: &str,
    env: &[(String, String)],
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["runs", command, "crash-1", "--journal", journal];
    args.extend(extra);
    flowrun(&args, env).output().unwrap()
}

/// Starts `flow` journaled as run `crash-1` and kills it when `hold` is reached.
fn killed_at(
    flow: &str,
    inputs: &str,
    hold: Hold,
    journal: &str,
) -> (flowrun::sim::Running, Proxy, Vec<(String, String)>) {
    let (running, proxy, env, mut child) = held_run(flow, inputs, hold, journal);
    child.kill().unwrap();
    child.wait().unwrap();
    *proxy.hold.lock().unwrap() = None;
    (running, proxy, env)
}

/// Starts `flow` journaled as run `crash-1` and returns once `hold` is reached, the process
/// still alive.
fn held_run(
    flow: &str,
    inputs: &str,
    hold: Hold,
    journal: &str,
) -> (
    flowrun::sim::Running,
    Proxy,
    Vec<(String, String)>,
    std::process::Child,
) {
    let running = start_in_background(SimConfig::default()).unwrap();
    let proxy = Proxy::start(running.addr);
    *proxy.hold.lock().unwrap() = Some(hold);
    let env = env_through(&running, &proxy);
    let args = [
        "run",
        flow,
        "--inputs",
        inputs,
        "--journal",
        journal,
        "--run-id",
        "crash-1",
    ];
    let child = flowrun(&args, &env).spawn().unwrap();
    proxy
        .held
        .recv_timeout(Duration::from_secs(20))
        .expect("the request was never held");
    (running, proxy, env, child)
}

#[test]
fn cancel_runs_the_finally_steps_and_deletes_the_pending_route() {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    // Killed while agent work is in doubt: a PSR is pending and nothing will finish the run.
    let (running, proxy, env) = killed_at(
        "flows/inbound.yaml",
        "flows/examples/inbound.inputs.yaml",
        Hold::After(4),
        &journal,
    );
    assert_eq!(counts(&running).1, 1, "a PSR is pending");
    let out = runs_on_crash_1("cancel", &journal, &env, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cancelling run crash-1"), "{stdout}");
    assert!(
        stdout.contains("failed   agent_work") && stdout.contains("cancelled (flowrun runs cancel)"),
        "{stdout}"
    );
    assert!(stdout.contains("ok       delete_route"), "{stdout}");
    // The agent work in doubt was not sent again; the route was deleted.
    let log = proxy.log.lock().unwrap().clone();
    assert_eq!(
        log.iter().filter(|r| *r == "POST /api/v1/agentWork").count(),
        1,
        "{log:?}"
    );
    assert_eq!(
        log.last().map(String::as_str),
        Some("DELETE /api/v1/route"),
        "{log:?}"
    );
    assert_eq!(counts(&running).1, 0, "the PSR is gone");
    let listed = flowrun(&["runs", "list", "--journal", &journal, "--format", "json"], &env)
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(runs[0]["status"], "cancelled");
}

#[test]
fn a_flow_changed_since_the_crash_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("inbound.yaml");
    std::fs::copy(repo("flows/inbound.yaml"), &flow).unwrap();
    std::fs::create_dir(dir.path().join("connections")).unwrap();
    std::fs::copy(
        repo("flows/connections/salesforce.yaml"),
        dir.path().join("connections/salesforce.yaml"),
    )
    .unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    let flow_arg = flow.to_str().unwrap();
    let inputs = repo("flows/examples/inbound.inputs.yaml");
    let (running, _proxy, env) = killed_at(flow_arg, inputs.to_str().unwrap(), Hold::Before(3), &journal);
    // The connection file the flow uses is part of it: editing it changes the flow.
    let connection = dir.path().join("connections/salesforce.yaml");
    let mut text = std::fs::read_to_string(&connection).unwrap();
    text.push_str("# edited after the crash\n");
    std::fs::write(&connection, text).unwrap();
    let out = runs_on_crash_1("resume", &journal, &env, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {} changed since run `crash-1` started",
            std::fs::canonicalize(&flow).unwrap().display()
        )) && stderr.contains("resume with --force"),
        "{stderr}"
    );
    assert_eq!(counts(&running).1, 0, "nothing was sent: no PSR");
    let out = runs_on_crash_1("resume", &journal, &env, &["--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(counts(&running).1, 1);
}

/// A power cut, as near as a test gets: a journaled batch killed (SIGKILL) in the middle of its
/// writes, three times at different moments. The journal is intact each time, and `run --resume`
/// finishes every run the kill left unfinished.
#[test]
fn a_batch_killed_mid_write_leaves_a_consistent_journal_that_resumes() {
    let running = start_in_background(SimConfig::default()).unwrap();
    let env = environment(&running);
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    let mut cut_short = 0;
    for (round, delay_ms) in [(0, 150u64), (1, 400), (2, 800)] {
        let lines: String = (0..2000)
            .map(|i| {
                format!(
                    "{{\"channel_address\": \"+15550100\", \"end_user\": \"+1555{round}{i:06}\", \"queue_id\": \"00G5g000000SimQ\"}}\n"
                )
            })
            .collect();
        let file = dir.path().join(format!("runs-{round}.jsonl"));
        std::fs::write(&file, lines).unwrap();
        let mut child = flowrun(
            &[
                "run",
                "flows/inbound.yaml",
                "--inputs-jsonl",
                file.to_str().unwrap(),
                "--concurrency",
                "16",
                "--journal",
                &journal,
            ],
            &env,
        )
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let db = rusqlite::Connection::open(dir.path().join("j.db")).unwrap();
        let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "round {round}");
        let unfinished: i64 = db
            .query_row("SELECT count(*) FROM runs WHERE status = 'running'", [], |r| {
                r.get(0)
            })
            .unwrap();
        cut_short += unfinished;
        let out = flowrun(
            &[
                "run",
                "flows/inbound.yaml",
                "--journal",
                &journal,
                "--resume",
                "--quiet",
            ],
            &env,
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let left: i64 = db
            .query_row("SELECT count(*) FROM runs WHERE status = 'running'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(left, 0, "round {round}: every unfinished run was resumed");
        let failed: i64 = db
            .query_row("SELECT count(*) FROM runs WHERE status = 'failed'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(failed, 0, "round {round}");
    }
    assert!(cut_short > 0, "no kill landed while runs were in flight");
}

#[test]
fn a_resume_renders_a_secret_var_again_instead_of_sending_its_mask() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.yaml");
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    std::fs::write(&inputs, "api_key: hunter2xyz\nend_user: \"+15550123\"\n").unwrap();
    let (_running, proxy, env) = killed_at(
        "tests/flows/secret_var.yaml",
        inputs.to_str().unwrap(),
        Hold::Before(2),
        &journal,
    );
    let out = runs_on_crash_1(
        "resume",
        &journal,
        &env,
        &["--input", "api_key=hunter2xyz", "--format", "json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The report shows the header masked: the secret given again is masked like any other.
    let shown = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        shown.contains("K-***") && !shown.contains("hunter2xyz"),
        "{shown}"
    );
    let heads = proxy.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    for head in &heads {
        assert!(head.to_lowercase().contains("x-key: k-hunter2xyz"), "{head}");
    }
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        !String::from_utf8_lossy(&stored).contains("hunter2xyz"),
        "the secret reached the journal"
    );
}

#[test]
fn a_resume_that_would_send_somewhere_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    let (running, proxy, env) = killed_at(
        "flows/inbound.yaml",
        "flows/examples/inbound.inputs.yaml",
        Hold::Before(3),
        &journal,
    );
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = format!("http://127.0.0.1:{}", elsewhere.local_addr().unwrap().port());
    let moved: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "SCRT_BASE_URL" {
                    other.clone()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let out = runs_on_crash_1("resume", &journal, &moved, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "error: run `crash-1` sent its requests to http://127.0.0.1:{}; going on would send them to {other}\n  \
         = hint: set the connection's environment as it was, or go on anyway with --force\nnothing was sent\n",
        proxy.port
    );
    assert_eq!(stderr, expected);
    // Nothing reached the other server; the run is as the crash left it, and goes on at home.
    elsewhere.set_nonblocking(true).unwrap();
    assert!(elsewhere.accept().is_err(), "a request went elsewhere");
    let out = runs_on_crash_1("resume", &journal, &env, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(counts(&running).1, 1);
}

#[test]
fn cancel_compensates_a_route_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    // The simulator made the PSR; its answer never reached the run.
    let (running, proxy, env) = killed_at(
        "flows/inbound.yaml",
        "flows/examples/inbound.inputs.yaml",
        Hold::After(3),
        &journal,
    );
    assert_eq!(counts(&running).1, 1);
    let out = runs_on_crash_1("cancel", &journal, &env, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("its compensating request was sent"), "{stdout}");
    assert_eq!(counts(&running).1, 0, "the PSR the lost answer told of is gone");
    assert_eq!(
        proxy.log.lock().unwrap().last().map(String::as_str),
        Some("DELETE /api/v1/route")
    );
}

#[test]
fn a_run_still_running_in_another_process_is_not_resumed_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    let (running, proxy, env, mut child) = held_run(
        "flows/inbound.yaml",
        "flows/examples/inbound.inputs.yaml",
        Hold::Before(3),
        &journal,
    );
    // The run is alive (its route is held): a resume beside it is refused.
    let out = runs_on_crash_1("resume", &journal, &env, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: run `crash-1` is being run by process {} on this machine",
            child.id()
        )),
        "{stderr}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    *proxy.hold.lock().unwrap() = None;
    // Once it is gone, the resume goes on.
    let out = runs_on_crash_1("resume", &journal, &env, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(counts(&running).1, 1);
}

#[test]
fn a_delete_resent_after_it_took_effect_counts_as_done() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.yaml");
    std::fs::write(
        &inputs,
        "channel_address: \"+15550100\"\nend_user: \"+15550123\"\nqueue_id: 00G5g000000SimQ\nagent_user_id: 005000000000BAD\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite:{}", dir.path().join("j.db").display());
    // Agent work fails (an unknown agent), so `delete_route` runs; the simulator deletes the
    // route, and its answer is lost with the process.
    let (running, proxy, env) = killed_at(
        "flows/inbound.yaml",
        inputs.to_str().unwrap(),
        Hold::After(5),
        &journal,
    );
    assert_eq!(
        proxy.log.lock().unwrap().last().map(String::as_str),
        Some("DELETE /api/v1/route")
    );
    assert_eq!(counts(&running).1, 0, "the route is already gone");
    let out = runs_on_crash_1("resume", &journal, &env, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The run fails at agent work, as it did; the cleanup is not a second failure.
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok       delete_route"), "{stdout}");
    let deletes = proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|r| *r == "DELETE /api/v1/route")
        .count();
    assert_eq!(deletes, 2, "resent once");
}

/// The intent log files beside the journal file `db`.
fn intent_files(db: &Path) -> Vec<String> {
    let name = format!("{}.intent.", db.file_name().unwrap().to_str().unwrap());
    let mut files: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.starts_with(&name))
        .collect();
    files.sort();
    files
}

#[test]
fn attempts_in_the_intent_log_of_a_killed_process_reach_the_journal_and_are_not_sent_twice() {
    // A run goes on once its attempt is in the process's intent log; the journal file has it a
    // moment later. Here the file is locked by another connection the whole time, so nothing
    // of the run reaches it before the kill: only the intent log has the run.
    let case = Case {
        flow: "flows/inbound.yaml",
        inputs: "flows/examples/inbound.inputs.yaml",
    };
    let (clean_counts, clean_log) = clean(&case);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("journal.db");
    let journal = format!("sqlite:{}", db.display());
    // The journal exists (with a run), then another connection holds its write lock.
    let made = flowrun(
        &[
            "run",
            case.flow,
            "--inputs",
            case.inputs,
            "--journal",
            &journal,
            "--sim",
        ],
        &[],
    )
    .output()
    .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();

    let running = start_in_background(SimConfig::default()).unwrap();
    let proxy = Proxy::start(running.addr);
    *proxy.hold.lock().unwrap() = Some(Hold::Before(2));
    let env = env_through(&running, &proxy);
    // A batch line: its run starts with its first attempt (a run with an id of its own waits
    // for the journal file to have its start).
    let line = dir.path().join("one.jsonl");
    std::fs::write(
        &line,
        r#"{"channel_address": "+15550100", "end_user": "+15550123", "text": "Hi", "queue_id": "00G5g000000SimQ", "agent_user_id": "0055g000000SimA"}"#,
    )
    .unwrap();
    let line = line.to_str().unwrap();
    let mut child = flowrun(
        &["run", case.flow, "--inputs-jsonl", line, "--journal", &journal],
        &env,
    )
    .spawn()
    .unwrap();
    proxy
        .held
        .recv_timeout(Duration::from_secs(20))
        .expect("the second request was never held");
    child.kill().unwrap();
    child.wait().unwrap();
    *proxy.hold.lock().unwrap() = None;
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);

    // Nothing of the run is in the file; its process's intent log has it.
    let plain = rusqlite::Connection::open(&db).unwrap();
    let unfinished: i64 = plain
        .query_row("SELECT count(*) FROM runs WHERE status = 'running'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(unfinished, 0);
    let files = intent_files(&db);
    assert_eq!(files.len(), 2, "a lock file and a log: {files:?}");

    // The next flowrun that opens the journal writes the log in and deletes it.
    let listed = flowrun(
        &[
            "runs",
            "list",
            "--journal",
            &journal,
            "--unfinished",
            "--format",
            "json",
        ],
        &[],
    )
    .output()
    .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let runs: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(intent_files(&db), Vec::<String>::new());
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let shown = flowrun(&["runs", "show", &id, "--journal", &journal], &[])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("status: running"), "{shown}");
    assert!(shown.contains("steps     ok       interaction"), "{shown}");
    assert!(shown.contains("attempt 1 of consent"), "{shown}");
    assert!(shown.contains("sent, no answer recorded (in doubt)"), "{shown}");

    // The resume finishes the run: the first step is not sent again, the second follows its
    // policy (the request was held before the simulator saw it).
    let out = flowrun(&["runs", "resume", &id, "--journal", &journal], &env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (conversations, psrs, work, _) = counts(&running);
    assert_eq!(
        (conversations, psrs, work),
        (clean_counts.0, clean_counts.1, clean_counts.2)
    );
    let sent = tally(&proxy.log.lock().unwrap());
    assert_eq!(sent, tally(&clean_log), "every request once");
    assert_eq!(intent_files(&db), Vec::<String>::new());
}
