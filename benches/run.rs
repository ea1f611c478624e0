//! Benchmark: the inbound flow run repeatedly against a minimal local stub server.
//!
//!     cargo bench --bench run            (RUNS=2000 by default)
//!
//! Prints runs/s and requests/s, and the runner's own overhead per step: the time a step takes
//! in a flow run minus the time the same HTTP request takes sent directly with the same client.

#[path = "stub.rs"]
mod stub;

use flowrun::engine::outcome::{Outcome, Quiet};
use flowrun::engine::prepare::prepare;
use flowrun::expr::runtime::Runtime;
use flowrun::flow::Source;
use flowrun::http::{DEFAULT_MAX_BODY, HttpRequest, HttpTransport, Transport};
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
        let base = stub::start().await;
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
        let mut runtime = Runtime::system();
        let lookup = env.clone();
        runtime.env = Arc::new(move |n| lookup.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()));
        let transport = Arc::new(HttpTransport::new(DEFAULT_MAX_BODY).unwrap());
        let prepared =
            prepare(&source, given, &[], runtime, transport.clone()).unwrap_or_else(|e| panic!("{e}"));

        // Warm up the connection pool and caches.
        let mut requests: Vec<HttpRequest> = Vec::new();
        for _ in 0..50 {
            let report = prepared.engine.run(prepared.inputs.clone(), &Quiet).await;
            assert_eq!(report.outcome, Outcome::Passed);
            requests = report
                .steps
                .iter()
                .flat_map(|s| s.attempts.iter().map(|a| (*a.request).clone()))
                .collect();
        }

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
            "  runner overhead: {:>10.1} µs  per step (templates, JSON, reports)",
            overhead * 1e6
        );
    });
}
