//! A batch spread over worker threads (forced to three, whatever the machine's cores): every
//! line runs exactly once, every request reaches the server, the summary adds up the workers'
//! counts and latencies, and runs really happen on more than one thread.

mod common;

use common::{env_for, repo, service};
use flowrun::engine::prepare_engine;
use flowrun::engine::{BatchOptions, Controls, ResultLine, run_batch};
use flowrun::expr::World;
use flowrun::flow::Source;
use flowrun::http::{DEFAULT_MAX_BODY, HttpTransport};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The inbound flow's engine, talking to `server` over `transport`, deterministic.
fn inbound_engine(
    server: &wiremock::MockServer,
    transport: Arc<dyn flowrun::http::Transport>,
) -> flowrun::engine::Engine {
    let source = Source::read(&repo("flows/inbound.yaml")).unwrap();
    let world = World::deterministic(1_700_000_000_000, env_for(server));
    prepare_engine(&source, world, transport)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// A result as the test sees it: line number, outcome, and the thread that reported it.
type Seen = Vec<(u64, String, Option<String>)>;

#[tokio::test]
async fn runs_spread_over_worker_threads_and_their_counts_add_up() {
    let server = service().await;
    let engine = inbound_engine(&server, Arc::new(HttpTransport::new(DEFAULT_MAX_BODY)));
    let line = r#"{"channel_address":"+15550100","end_user":"+15550123","queue_id":"00G5g000000SimQ","agent_user_id":"0055g000000SimA"}"#;
    let mut input = String::new();
    for n in 1..=60 {
        // Line 30 is not JSON: it fails alone, on whichever worker took it.
        input.push_str(if n == 30 { "{oops" } else { line });
        input.push('\n');
    }
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sink = seen.clone();
    let on_result = Arc::new(move |result: ResultLine<'_>| {
        let result = result.json();
        let thread = std::thread::current().name().map(str::to_string);
        let line = result["line"].as_u64().unwrap();
        let outcome = result["outcome"].as_str().unwrap().to_string();
        sink.lock().unwrap().push((line, outcome, thread));
    });
    let options = BatchOptions {
        concurrency: 9,
        rate: None,
        workers: Some(3),
        id_field: None,
    };
    let summary = run_batch(
        Arc::new(engine),
        input.as_bytes(),
        Vec::new(),
        Vec::new(),
        options,
        Controls::default(),
        on_result,
    )
    .await;

    assert_eq!(
        (summary.passed, summary.stopped, summary.failed, summary.requests),
        (59, 0, 1, 59 * 4)
    );
    let steps: Vec<(String, u64)> = summary
        .steps
        .iter()
        .map(|s| (s.step.clone(), s.histogram.len()))
        .collect();
    assert_eq!(
        steps,
        [
            ("interaction".to_string(), 59),
            ("consent".to_string(), 59),
            ("route".to_string(), 59),
            ("agent_work".to_string(), 59)
        ]
    );
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let lines: BTreeSet<u64> = seen.iter().map(|(l, _, _)| *l).collect();
    assert_eq!(seen.len(), 60);
    assert_eq!(lines, (1..=60).collect());
    assert_eq!(
        seen.iter()
            .filter(|(_, o, _)| o == "failed")
            .map(|(l, _, _)| *l)
            .collect::<Vec<_>>(),
        [30]
    );
    let on_workers = seen
        .iter()
        .filter(|(_, _, t)| t.as_deref() == Some("flowrun-worker"))
        .count();
    assert!(
        on_workers > 0 && on_workers < 60,
        "runs on worker threads: {on_workers} of 60"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 59 * 4);
}

/// A transport that panics on its third request: a bug somewhere inside a run.
struct PanicsOnce {
    inner: HttpTransport,
    sent: std::sync::atomic::AtomicUsize,
}

impl flowrun::http::Transport for PanicsOnce {
    fn send<'a>(
        &'a self,
        request: &'a flowrun::http::HttpRequest,
        timeout: std::time::Duration,
    ) -> flowrun::http::SendFuture<'a> {
        if self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
            panic!("boom in the transport");
        }
        self.inner.send(request, timeout)
    }
}

/// A panic inside a run is that run's failure, with its line in the results: the batch goes on
/// and its summary counts it (panicked runs used to vanish: "0 runs", exit 0).
#[tokio::test]
async fn a_panic_inside_a_run_is_that_run_s_failure() {
    let server = service().await;
    let transport = Arc::new(PanicsOnce {
        inner: HttpTransport::new(DEFAULT_MAX_BODY),
        sent: Default::default(),
    });
    let engine = inbound_engine(&server, transport);
    let line = r#"{"channel_address":"+15550100","end_user":"+15550123","queue_id":"00G5g000000SimQ"}"#;
    let input = format!("{line}\n").repeat(5);
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = seen.clone();
    let on_result = Arc::new(move |result: ResultLine<'_>| sink.lock().unwrap().push(result.json()));
    let options = BatchOptions {
        concurrency: 1,
        rate: None,
        workers: Some(1),
        id_field: None,
    };
    let summary = run_batch(
        Arc::new(engine),
        input.as_bytes(),
        Vec::new(),
        Vec::new(),
        options,
        Controls::default(),
        on_result,
    )
    .await;
    assert_eq!((summary.passed, summary.failed), (4, 1));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    let failed: Vec<&Value> = seen.iter().filter(|r| r["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0]["error"],
        "line 1: flowrun failed inside this run (a bug in flowrun; please report it): boom in the transport"
    );
}

/// Where runs come from is one seam: any source of jobs (here named runs, as events will be)
/// goes through the same pool, and an observer sees each run start and end under its id.
#[tokio::test]
async fn any_source_of_jobs_runs_on_the_pool_and_observers_see_each_run() {
    use flowrun::engine::RunReport;
    use flowrun::engine::{Job, JobSource, RunId, RunObserver, run_pool};

    struct Named(Vec<Job>);
    impl JobSource for Named {
        async fn next_job(&mut self) -> Option<Job> {
            self.0.pop()
        }
    }
    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);
    impl RunObserver for Seen {
        fn run_started(&self, id: &RunId) {
            self.0.lock().unwrap().push(format!("start {id}"));
        }
        fn run_finished(&self, id: &RunId, result: Result<&RunReport, &str>, _: &flowrun::base::Secrets) {
            let how = match result {
                Ok(r) => format!("{:?}", r.outcome),
                Err(e) => e.to_string(),
            };
            self.0.lock().unwrap().push(format!("end {id}: {how}"));
        }
    }

    let server = service().await;
    let engine = inbound_engine(&server, Arc::new(HttpTransport::new(DEFAULT_MAX_BODY)));
    let inputs: serde_json::Map<String, Value> = serde_json::from_str(
        r#"{"channel_address":"+15550100","end_user":"+15550123","queue_id":"00G5g000000SimQ","text":"hi","consent_status":"ExplicitlyOptedIn","capacity_weight":1}"#,
    )
    .unwrap();
    let jobs = Named(vec![
        Job {
            id: RunId::Named("event-2".into()),
            inputs: Err("the event had no conversation".into()),
            secrets: Default::default(),
        },
        Job {
            id: RunId::Named("event-1".into()),
            inputs: Ok(inputs),
            secrets: Default::default(),
        },
    ]);
    let seen = Arc::new(Seen::default());
    let options = BatchOptions {
        concurrency: 1,
        rate: None,
        workers: Some(1),
        id_field: None,
    };
    let summary = run_pool(Arc::new(engine), jobs, options, Controls::default(), seen.clone()).await;
    assert_eq!((summary.passed, summary.failed, summary.requests), (1, 1, 3));
    assert_eq!(
        *seen.0.lock().unwrap(),
        [
            "start run event-1",
            "end run event-1: Passed",
            "start run event-2",
            "end run event-2: run event-2: the event had no conversation",
        ]
    );
}
