//! Benchmark: the inbound flow run repeatedly against a minimal local stub server.
//!
//!     cargo bench --bench run            (RUNS=2000 by default)
//!     STUB_URL=http://127.0.0.1:18790 cargo bench --bench run   (a stub of its own process)
//!
//! Prints runs/s and requests/s, and the runner's own overhead per step: the time a step takes
//! in a flow run minus the time the same HTTP request takes sent directly with the same client.
//! Then where that overhead goes, each phase timed alone on the same steps: rendering the
//! request from its templates, checking an Interaction Service body against its schema, and
//! JSON (writing the request body, reading the response body). Timed alone, each phase runs
//! with hot caches; in a run the HTTP stack runs between them and evicts those caches, so what
//! is left over ("not attributed") is the step loop's own bookkeeping (records, contexts,
//! response headers) plus the same phases running colder. `perf record` on a batch (README,
//! "Performance") attributes the whole.

#[path = "stub.rs"]
mod stub;

use flowrun::engine::prepare;
use flowrun::engine::{Outcome, Quiet, RunReport};
use flowrun::expr::World;
use flowrun::expr::{Context, Scope};
use flowrun::flow::Cond;
use flowrun::flow::Source;
use flowrun::http::{Body, DEFAULT_MAX_BODY, HttpRequest, HttpResponse, HttpTransport, Transport};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // STUB_URL: a stub of its own process (bench/stub.sh starts one), so that the client's
        // time is not shared with the server's on this thread.
        let base = match std::env::var("STUB_URL") {
            Ok(url) => url,
            Err(_) => stub::start().await,
        };
        let env = vec![
            ("SCRT_BASE_URL".to_string(), base.clone()),
            ("SF_ORG_ID".to_string(), "00D000000000001".to_string()),
            (
                "SF_AUTHORIZATION_CONTEXT".to_string(),
                "Partner_Channel".to_string(),
            ),
            ("SF_ACCESS_TOKEN".to_string(), "00D!bench".to_string()),
        ];
        let source = Source::read(std::path::Path::new("flows/inbound.yaml")).unwrap();
        let inputs_text = std::fs::read_to_string("flows/examples/inbound.inputs.yaml").unwrap();
        let given: Vec<_> = flowrun::flow::yaml::load(&inputs_text)
            .0
            .unwrap()
            .value
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .collect();
        let mut runtime = World::system();
        let lookup = env.clone();
        runtime.env = Arc::new(move |n| lookup.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()));
        let transport = Arc::new(HttpTransport::new(DEFAULT_MAX_BODY));
        let prepared =
            prepare(&source, given, &[], runtime, transport.clone()).unwrap_or_else(|e| panic!("{e}"));

        // Warm up the connection pool and caches.
        let mut requests: Vec<HttpRequest> = Vec::new();
        let mut last: Option<RunReport> = None;
        for _ in 0..50 {
            let report = prepared.engine.run(prepared.inputs.clone(), &Quiet).await;
            assert_eq!(report.outcome, Outcome::Passed);
            requests = report
                .steps
                .iter()
                .flat_map(|s| s.attempts.iter().map(|a| (*a.request).clone()))
                .collect();
            last = Some(report);
        }
        let last = last.unwrap();

        let started = Instant::now();
        let mut sent = 0;
        for _ in 0..runs {
            let report = prepared.engine.run(prepared.inputs.clone(), &Quiet).await;
            sent += report.requests_sent();
        }
        let flow_time = started.elapsed();

        // The same requests, sent directly: what HTTP alone costs.
        let started = Instant::now();
        for _ in 0..runs {
            for r in &requests {
                transport.send(r, Duration::from_secs(10)).await.unwrap();
            }
        }
        let raw_time = started.elapsed();

        let phases = phases(&prepared.engine, &prepared.inputs, &last, runs);

        let secs = flow_time.as_secs_f64();
        let overhead = (flow_time.as_secs_f64() - raw_time.as_secs_f64()) / sent as f64;
        println!("inbound flow against a local stub, concurrency 1, {runs} runs, {sent} requests");
        println!("  flow runs:       {:>10.0} runs/s", runs as f64 / secs);
        println!("  requests:        {:>10.0} requests/s", sent as f64 / secs);
        println!(
            "  per step:        {:>10.1} µs  (flow run, HTTP included)",
            secs * 1e6 / sent as f64
        );
        println!(
            "  raw HTTP:        {:>10.1} µs  per request (same client, same requests)",
            raw_time.as_secs_f64() * 1e6 / sent as f64
        );
        println!(
            "  runner overhead: {:>10.1} µs  per step, of which:",
            overhead * 1e6
        );
        let mut accounted = 0.0;
        for (name, micros) in &phases {
            println!("    {name:<30} {micros:>6.1} µs");
            accounted += micros;
        }
        println!(
            "    {:<30} {:>6.1} µs",
            "not attributed (see below)",
            overhead * 1e6 - accounted
        );
    });
}

/// Each phase of a step timed alone over `runs` runs' worth of the flow's steps, in µs per step.
fn phases(
    engine: &flowrun::engine::Engine,
    inputs: &serde_json::Map<String, Value>,
    report: &RunReport,
    runs: usize,
) -> Vec<(&'static str, f64)> {
    let flow = engine.flow();
    // The scope as the steps saw it: inputs, and each finished step's saved values.
    let steps: serde_json::Map<String, Value> = report
        .steps
        .iter()
        .map(|s| {
            let mut slot = s.saved.clone();
            slot.insert("succeeded".into(), json!(true));
            (s.id.clone(), Value::Object(slot))
        })
        .collect();
    let base = requests_base(report);
    let sent: Vec<(&flowrun::flow::CompiledStep, &HttpRequest, &HttpResponse)> = report
        .steps
        .iter()
        .filter_map(|r| {
            let a = r.attempts.last()?;
            let step = flow.steps.iter().chain(&flow.finally).find(|s| s.id == r.id)?;
            Some((step, &*a.request, a.response.as_ref()?))
        })
        .collect();
    let per_step = |started: Instant| started.elapsed().as_secs_f64() * 1e6 / (runs * sent.len()) as f64;

    // As in a run: the scope is fresh each run (converted for MiniJinja at most once per part),
    // each step renders its condition, request, asserts and saves, and the run its outputs.
    let t = &flow.templates;
    let started = Instant::now();
    for _ in 0..runs {
        let inputs = Scope::new(Value::Object(inputs.clone()));
        let vars = Scope::new(json!({ "interaction_id": "5e550000-0000-4000-8000-000000000001" }));
        let steps: BTreeMap<String, Scope> = steps
            .iter()
            .map(|(k, v)| (k.clone(), Scope::new(v.clone())))
            .collect();
        for (step, _, response) in &sent {
            let ctx = Context::from_parts(&inputs, &vars, &steps, None);
            if let Some(Cond::Expr(id)) = step.condition {
                std::hint::black_box(t.truth(id, &ctx).unwrap());
            }
            std::hint::black_box(flowrun::engine::build_request(flow, step, &base, &ctx).unwrap());
            let seen = Scope::new(json!({ "status": response.status, "body": response.body_value() }));
            let ctx = Context::from_parts(&inputs, &vars, &steps, Some(&seen));
            for (_, id) in &step.asserts {
                std::hint::black_box(t.truth(*id, &ctx).unwrap());
            }
            for (_, id) in &step.save {
                std::hint::black_box(t.render(*id, &ctx).unwrap());
            }
        }
        let ctx = Context::from_parts(&inputs, &vars, &steps, None);
        for (_, id) in &flow.outputs {
            std::hint::black_box(t.render(*id, &ctx).unwrap());
        }
    }
    let templates = per_step(started);

    let started = Instant::now();
    for _ in 0..runs {
        for (_, request, _) in &sent {
            let op = flowrun::api::operation(&request.method, &request.url);
            let body = match &request.body {
                Body::Json(v) => Some(v),
                Body::Multipart(parts) => parts.iter().find_map(|p| match &p.content {
                    flowrun::http::PartContent::Json(v) => Some(v),
                    _ => None,
                }),
                _ => None,
            };
            if let (Some(op), Some(body)) = (op, body) {
                std::hint::black_box(op.accepts(body));
            }
        }
    }
    let validation = per_step(started);

    let started = Instant::now();
    for _ in 0..runs {
        for (_, request, response) in &sent {
            if let Body::Json(v) = &request.body {
                std::hint::black_box(serde_json::to_vec(v).unwrap());
            }
            std::hint::black_box(response.body_value());
        }
    }
    let json_time = per_step(started);

    vec![
        ("templates and expressions", templates),
        ("body schema checks", validation),
        ("JSON write and read", json_time),
    ]
}

/// The base URL the run used: the first request's URL without its path.
fn requests_base(report: &RunReport) -> String {
    let url = &report.steps[0].attempts[0].request.url;
    let parsed = url::Url::parse(url).unwrap();
    parsed.origin().ascii_serialization()
}
