//! Both documented orders of the transfer (routing result first: flows/transfer.yaml; route
//! first: flows/transfer-route-first.yaml) for all four targets — queue, flow with its
//! fallback queue, agent, external — against a stand-in answering exactly the documented
//! statuses (wiremock) and against the simulator, whose state must show what was asked.

mod common;

use common::{env_for, example_inputs, received, run, service};
use flowrun::engine::{Outcome, RunReport};
use flowrun::sim::{SimConfig, environment, start_in_background};
use serde_json::{Value, json};

const EVENT_ID: &str = "d3bdacb1-49b4-4fbd-9adb-919319631db4";

/// The inputs of a transfer to `target`.
fn target_inputs(target: &str) -> Value {
    let overrides = match target {
        "queue" => json!({"agent_user_id": null}),
        "flow" => json!({"agent_user_id": null, "flow_id": "3005g000000SimF"}),
        "agent" => json!({"queue_id": null}),
        "external" => json!({"externally_routed": true, "queue_id": null, "agent_user_id": null}),
        _ => unreachable!(),
    };
    example_inputs("flows/examples/transfer.inputs.yaml", overrides)
}

/// What each request said, in a line: method, operation and the fields that matter here.
fn summary(requests: &[Value]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            let b = &r["body"];
            let path = r["path"].as_str().unwrap().trim_start_matches("/api/v1/");
            let detail = match path {
                "routingResult" => format!(
                    "success={} external={} error={}",
                    b["success"], b["externallyRouted"], b["errorMessage"]
                ),
                "route" => format!("{} {}", b["routingType"], b["routingInfo"]),
                "agentWork" => format!(
                    "{} {}",
                    b["routingContext"]["routingType"], b["routingContext"]["routingCorrelationId"]
                ),
                _ => String::new(),
            };
            format!("{} {path} {detail}", r["method"].as_str().unwrap())
        })
        .collect()
}

const RESULT_OK: &str = "POST routingResult success=true external=false error=null";
const RESULT_EXTERNAL: &str = "POST routingResult success=true external=true error=null";
const TO_QUEUE: &str = r#"POST route "Transfer" {"queueId":"00G5g000000SimQ"}"#;
const TO_FLOW: &str =
    r#"POST route "Transfer" {"flow":{"flowId":"3005g000000SimF","queueId":"00G5g000000SimQ"}}"#;

/// (flow, target, the requests it sends, how it ends)
fn cases() -> Vec<(&'static str, &'static str, Vec<String>, &'static str)> {
    let agent_by_event = format!(r#"POST agentWork "Transfer" "{EVENT_ID}""#);
    let v = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    vec![
        (
            "flows/transfer.yaml",
            "queue",
            v(&[RESULT_OK, TO_QUEUE]),
            "passed",
        ),
        ("flows/transfer.yaml", "flow", v(&[RESULT_OK, TO_FLOW]), "passed"),
        (
            "flows/transfer.yaml",
            "agent",
            v(&[RESULT_OK, &agent_by_event]),
            "passed",
        ),
        (
            "flows/transfer.yaml",
            "external",
            v(&[RESULT_EXTERNAL]),
            "stopped",
        ),
        (
            "flows/transfer-route-first.yaml",
            "queue",
            v(&[TO_QUEUE, RESULT_OK]),
            "passed",
        ),
        (
            "flows/transfer-route-first.yaml",
            "flow",
            v(&[TO_FLOW, RESULT_OK]),
            "passed",
        ),
        (
            "flows/transfer-route-first.yaml",
            "agent",
            v(&[&agent_by_event, RESULT_OK]),
            "passed",
        ),
        (
            "flows/transfer-route-first.yaml",
            "external",
            v(&[RESULT_EXTERNAL]),
            "passed",
        ),
    ]
}

fn outcome(report: &RunReport) -> &'static str {
    match report.outcome {
        Outcome::Passed => "passed",
        Outcome::Stopped { .. } => "stopped",
        Outcome::Failed { .. } => "failed",
    }
}

#[tokio::test]
async fn both_orders_and_every_target_against_the_documented_statuses() {
    for (flow, target, expected, ends) in cases() {
        let server = service().await;
        let report = run(flow, target_inputs(target), env_for(&server)).await;
        assert_eq!(outcome(&report), ends, "{flow} {target}: {:?}", report.outcome);
        let sent = received(&server).await;
        assert_eq!(summary(sent.as_array().unwrap()), expected, "{flow} {target}");
    }
}

#[tokio::test]
async fn both_orders_and_every_target_against_the_simulator() {
    for (flow, target, expected, ends) in cases() {
        let running = start_in_background(SimConfig::default()).unwrap();
        let report = run(flow, target_inputs(target), environment(&running)).await;
        assert_eq!(outcome(&report), ends, "{flow} {target}: {:?}", report.outcome);
        let service = running.service.lock().unwrap();
        let state = &service.state;
        assert_eq!(state.routing_results.len(), 1, "{flow} {target}");
        assert_eq!(state.routing_results[0]["success"], json!(true));
        let psr = state.psrs.get(common::CONVERSATION);
        let work = state.agent_work.front();
        match target {
            "queue" | "flow" => {
                assert_eq!(psr.unwrap().routing_type, "Transfer", "{flow} {target}");
                assert!(
                    expected
                        .iter()
                        .any(|l| l.contains(&psr.unwrap().routing_info.to_string()))
                );
                assert!(work.is_none());
            }
            "agent" => {
                assert!(psr.is_none());
                let work = work.unwrap();
                assert_eq!(work.routing_type.as_deref(), Some("Transfer"));
                assert_eq!(work.routing_correlation_id.as_deref(), Some(EVENT_ID));
            }
            _ => {
                assert!(psr.is_none() && work.is_none(), "{flow} {target}");
                assert_eq!(state.routing_results[0]["externallyRouted"], json!(true));
            }
        }
    }
}

/// Route first, and routing fails: the routing result reports `success: false` with the reason
/// as its `errorMessage` (the documented failure path; 10034 without one), and the flow fails.
#[tokio::test]
async fn route_first_reports_a_failed_routing_with_its_reason() {
    let body = json!({"code": 10032, "message": "Specified Queue ID is invalid."});
    let server = common::failing("POST", "/api/v1/route", 400, body, None).await;
    let report = run(
        "flows/transfer-route-first.yaml",
        target_inputs("queue"),
        env_for(&server),
    )
    .await;
    assert_eq!(outcome(&report), "failed");
    let sent = received(&server).await;
    assert_eq!(
        summary(sent.as_array().unwrap()),
        [
            TO_QUEUE,
            r#"POST routingResult success=false external=false error="expected status 202, got 400 (code 10032: Specified Queue ID is invalid.)""#
        ]
    );

    // The same against the simulator: an unknown queue.
    let running = start_in_background(SimConfig::default()).unwrap();
    let inputs = example_inputs(
        "flows/examples/transfer.inputs.yaml",
        json!({"agent_user_id": null, "queue_id": "00G5g000000Nope"}),
    );
    let report = run("flows/transfer-route-first.yaml", inputs, environment(&running)).await;
    let Outcome::Failed { step, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(step, "route");
    let routing_failed = report.steps.iter().find(|s| s.id == "routing_failed").unwrap();
    assert_eq!(routing_failed.http_status(), Some(202));
    let service = running.service.lock().unwrap();
    let result = &service.state.routing_results[0];
    assert_eq!(result["success"], json!(false));
    assert!(
        result["errorMessage"].as_str().unwrap().contains("10032"),
        "{result}"
    );
    assert!(service.state.psrs.is_empty());
}
