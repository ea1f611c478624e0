//! The engine against a stand-in Interaction Service on 127.0.0.1: the exact requests each
//! shipped flow sends, and the behaviours around them (stop, finally, retries, auth).

mod common;

use common::*;
use flowrun::engine::{Outcome, StepStatus};
use serde_json::json;
use wiremock::{Mock, ResponseTemplate};

fn statuses(report: &flowrun::engine::RunReport) -> Vec<(String, String)> {
    report
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.status.word().to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[tokio::test]
async fn inbound_sends_the_exact_request_sequence() {
    let server = service().await;
    let report = run_inbound(&server, json!({})).await;
    assert_eq!(report.outcome, Outcome::Passed);
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("interaction", "ok"),
            ("consent", "ok"),
            ("route", "ok"),
            ("agent_work", "ok"),
            ("delete_route", "skipped")
        ])
    );
    let sent = received(&server).await;
    // Numbers stay numbers: the timestamp and the capacity weight are JSON numbers.
    assert_eq!(
        sent[0]["body"]["multipart"][0]["content"]["interactions"][0]["timestamp"],
        json!(1_700_000_000_000i64)
    );
    assert_eq!(sent[3]["body"]["capacityWeight"], json!(1));
    // The interaction and its message share one id: the run's `vars.interaction_id`.
    let payload = &sent[0]["body"]["multipart"][0]["content"]["interactions"][0]["payload"];
    assert_eq!(payload["id"], report.vars["interaction_id"]);
    assert_eq!(payload["abstractMessage"]["id"], report.vars["interaction_id"]);
    assert_eq!(report.outputs["agent_work_id"], json!("0Bz5g000000Sim1"));
    insta::assert_snapshot!(yaml(&sent));
}

/// Without an agent the PSR is the conversation waiting in the queue: nothing deletes it.
#[tokio::test]
async fn inbound_without_an_agent_leaves_the_conversation_queued() {
    let server = service().await;
    let inputs = example_inputs(
        "flows/examples/inbound.inputs.yaml",
        json!({"agent_user_id": null, "flow_id": "3005g000000SimF"}),
    );
    let report = run("flows/inbound.yaml", inputs, env_for(&server)).await;
    assert_eq!(report.outcome, Outcome::Passed);
    let sent = received(&server).await;
    let lines: Vec<String> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect();
    assert_eq!(
        lines,
        [
            r#""POST" "/api/v1/interactions""#,
            r#""PATCH" "/api/v1/consent""#,
            r#""POST" "/api/v1/route""#,
        ]
    );
    assert_eq!(
        sent[2]["body"]["routingInfo"],
        json!({"flow": {"flowId": "3005g000000SimF", "queueId": "00G5g000000SimQ"}})
    );
    assert_eq!(report.steps[4].status, StepStatus::Skipped, "delete_route");
    assert_eq!(report.outputs["agent_work_id"], json!(null));
}

#[tokio::test]
async fn finally_runs_after_a_failed_step_and_the_flow_fails() {
    let body = json!({"code": 15109, "message": "An active AgentWork already exists"});
    let server = failing("POST", "/api/v1/agentWork", 400, body, None).await;
    let report = run_inbound(&server, json!({})).await;
    assert_eq!(
        report.outcome,
        Outcome::Failed {
            step: "agent_work".into(),
            error: "expected status 202, got 400 (code 15109: An active AgentWork already exists)".into()
        }
    );
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("interaction", "ok"),
            ("consent", "ok"),
            ("route", "ok"),
            ("agent_work", "failed"),
            ("delete_route", "ok")
        ])
    );
    let sent = received(&server).await;
    assert_eq!(sent[4]["method"], json!("DELETE"));
    assert_eq!(sent[4]["body"], json!({"conversationIdentifier": CONVERSATION}));
}

/// A route answered 202 with `success: false` did not route: the flow fails there (and, with
/// no agent work attempted, deletes nothing).
#[tokio::test]
async fn a_route_that_is_accepted_but_not_routed_fails_the_flow() {
    let body = json!({"success": false, "reasonForNotRouting": "already pending",
        "errors": {"errorType": "PendingServiceRoutingExists", "errorMessage": "already pending"}});
    let server = failing("POST", "/api/v1/route", 202, body, None).await;
    let report = run_inbound(&server, json!({})).await;
    assert_eq!(
        report.outcome,
        Outcome::Failed {
            step: "route".into(),
            error: "assertion failed: `response.body.success`".into()
        }
    );
    assert_eq!(received(&server).await.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_failed_step_leaves_later_steps_not_run() {
    let body = json!({"code": 15103, "message": "End user has not opted in"});
    let server = failing("POST", "/api/v1/route", 400, body, None).await;
    let report = run_inbound(&server, json!({})).await;
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("interaction", "ok"),
            ("consent", "ok"),
            ("route", "failed"),
            ("agent_work", "not run"),
            ("delete_route", "skipped")
        ])
    );
    assert_eq!(received(&server).await.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_503_then_202_is_retried_with_the_same_request_id_after_retry_after() {
    let server = failing("POST", "/api/v1/route", 503, json!({"message": "busy"}), Some(1)).await;
    let report = run_inbound(&server, json!({})).await;
    assert_eq!(report.outcome, Outcome::Passed);
    let route = report.steps.iter().find(|s| s.id == "route").unwrap();
    assert_eq!(route.attempts.len(), 2);
    assert_eq!(route.attempts[0].response.as_ref().unwrap().status, 503);
    assert_eq!(route.attempts[1].response.as_ref().unwrap().status, 202);
    // Retry-After: 1 was honoured (the policy's own first wait is about 200 ms).
    assert!(
        route.duration >= std::time::Duration::from_secs(1),
        "{:?}",
        route.duration
    );
    let sent = received(&server).await;
    let routes: Vec<&serde_json::Value> = sent
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/api/v1/route")
        .collect();
    assert_eq!(routes.len(), 2);
    assert_eq!(
        routes[0]["headers"]["requestid"],
        routes[1]["headers"]["requestid"]
    );
    assert_eq!(routes[0]["body"], routes[1]["body"]);
    // Every other step got its own RequestId.
    let mut ids: Vec<&serde_json::Value> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["headers"]["requestid"])
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn a_retryable_api_code_is_retried() {
    let body = json!({"code": 10019, "message": "Org is in read-only mode"});
    let server = failing("PATCH", "/api/v1/consent", 400, body, Some(2)).await;
    let report = run_inbound(&server, json!({})).await;
    assert_eq!(report.outcome, Outcome::Passed);
    assert_eq!(report.steps[1].attempts.len(), 3);
}

#[tokio::test]
async fn the_deadline_stops_retries() {
    let server = failing("GET", "/slow", 503, json!({}), None).await;
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let report = run("tests/flows/deadline.yaml", json!({}), env).await;
    // Retry-After: 1 would end past the 1 s deadline, so only one attempt is made.
    assert_eq!(
        report.outcome,
        Outcome::Failed {
            step: "slow".into(),
            error: "status 503; the server asked to wait 1s before retrying, more than the time left before the flow's deadline".into()
        }
    );
    assert_eq!(report.steps[0].attempts.len(), 1);
}

/// A server asking for a wait of hours: with a deadline this used to overflow `Instant + wait`
/// and panic; without one, it slept 28 hours. Either way the step now fails at once, saying so.
#[tokio::test]
async fn a_huge_retry_after_fails_the_step_at_once() {
    let server = wiremock::MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "100000"))
        .mount(&server)
        .await;
    let env = || vec![("SCRT_BASE_URL".to_string(), server.uri())];
    let started = std::time::Instant::now();
    let report = run("tests/flows/deadline.yaml", json!({}), env()).await;
    assert_eq!(
        report.outcome,
        Outcome::Failed {
            step: "slow".into(),
            error: "status 503; the server asked to wait 27h46m40s before retrying, more than the time left before the flow's deadline".into()
        }
    );
    let report = run("tests/flows/two_gets.yaml", json!({}), env()).await;
    assert_eq!(
        report.outcome,
        Outcome::Failed {
            step: "first".into(),
            error: "status 503; the server asked to wait 27h46m40s before retrying, more than the retry's max of 10ms".into()
        }
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // An HTTP date far in the future, and one past u64 seconds: the same, no panic.
    for value in ["Fri, 31 Dec 9999 23:59:59 GMT", "99999999999999999999999"] {
        let server = wiremock::MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", value))
            .mount(&server)
            .await;
        let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
        let report = run("tests/flows/deadline.yaml", json!({}), env).await;
        assert!(matches!(report.outcome, Outcome::Failed { .. }), "{value}");
    }
}

#[tokio::test]
async fn transfer_to_a_queue_and_an_agent() {
    let server = service().await;
    let report = run(
        "flows/transfer.yaml",
        example_inputs("flows/examples/transfer.inputs.yaml", json!({})),
        env_for(&server),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Passed);
    insta::assert_snapshot!(yaml(&received(&server).await));
}

#[tokio::test]
async fn transfer_to_an_agent_only_skips_the_route() {
    let server = service().await;
    let inputs = example_inputs("flows/examples/transfer.inputs.yaml", json!({"queue_id": null}));
    let report = run("flows/transfer.yaml", inputs, env_for(&server)).await;
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("routing_result", "ok"),
            ("route", "skipped"),
            ("agent_work", "ok")
        ])
    );
    let sent = received(&server).await;
    // No route call: the work answers the event, by its id.
    assert_eq!(
        sent[1]["body"]["routingContext"],
        json!({"conversationIdentifier": CONVERSATION, "routingType": "Transfer",
            "routingCorrelationId": "d3bdacb1-49b4-4fbd-9adb-919319631db4"})
    );
}

#[tokio::test]
async fn an_externally_routed_transfer_stops_after_the_routing_result() {
    let server = service().await;
    let inputs = example_inputs(
        "flows/examples/transfer.inputs.yaml",
        json!({"externally_routed": true}),
    );
    let report = run("flows/transfer.yaml", inputs, env_for(&server)).await;
    assert_eq!(
        report.outcome,
        Outcome::Stopped {
            step: "routing_result".into()
        }
    );
    assert_eq!(
        statuses(&report),
        pairs(&[
            ("routing_result", "stopped"),
            ("route", "not run"),
            ("agent_work", "not run")
        ])
    );
    let sent = received(&server).await;
    assert_eq!(sent.as_array().unwrap().len(), 1);
    assert_eq!(sent[0]["body"]["externallyRouted"], json!(true));
    assert!(matches!(report.steps[0].status, StepStatus::Stopped));
}

#[tokio::test]
async fn query_form_file_parts_and_merged_headers_are_sent_as_written() {
    let (server, env) = answering_200().await;
    let report = run("tests/flows/bodies.yaml", json!({}), env).await;
    assert_eq!(report.outcome, Outcome::Passed);
    let requests = server.received_requests().await.unwrap();
    let upload = &requests[0];
    assert_eq!(upload.url.query(), Some("page=7&q=a+b%26c"));
    assert_eq!(upload.headers.get("x-shared").unwrap(), "connection");
    assert_eq!(
        upload.headers.get_all("x-override").iter().collect::<Vec<_>>(),
        ["step"]
    );
    let sent = received(&server).await;
    let parts = sent[0]["body"]["multipart"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[0]["headers"],
        json!([
            "Content-Disposition: form-data; name=\"json\"",
            "Content-Type: application/json"
        ])
    );
    assert_eq!(parts[0]["content"], json!({"n": 7}));
    assert_eq!(
        parts[1]["headers"],
        json!([
            "Content-Disposition: form-data; name=\"attachments\"; filename=\"note.txt\"",
            "Content-Type: text/plain"
        ])
    );
    assert_eq!(parts[1]["content"], json!("hello attachment\n"));
    assert_eq!(parts[2]["content"], json!("n is 7"));
    let form = &requests[1];
    assert_eq!(
        form.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        String::from_utf8_lossy(&form.body),
        "grant_type=password&n=7&flag=true"
    );
}

#[tokio::test]
async fn a_transfer_without_a_target_fails_naming_the_file_line_and_variable() {
    // flows/transfer.yaml refuses such a run before sending (`input_groups`); the route-first
    // flow, where an external transfer has no target, reaches its route step and fails there.
    let server = service().await;
    let inputs = json!({"conversation_id": CONVERSATION, "work_item_id": WORK_ITEM, "event_id": "e-1"});
    let report = run("flows/transfer-route-first.yaml", inputs, env_for(&server)).await;
    let Outcome::Failed { step, error } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(step, "route");
    let text = std::fs::read_to_string(repo("flows/transfer-route-first.yaml")).unwrap();
    // The folded scalar's first line, where the expression starts.
    let line = text.lines().position(|l| l.contains("routingInfo: >-")).unwrap() + 2;
    let expected = format!(
        "flows/transfer-route-first.yaml:{line}: `inputs.queue_id` is undefined (in `{{{{ {{\"flow\""
    );
    assert!(error.contains(&expected), "{error}\nexpected: {expected}");
    // Nothing was sent for the route step.
    let sent = received(&server).await;
    assert!(
        sent.as_array()
            .unwrap()
            .iter()
            .all(|r| r["path"] != "/api/v1/route"),
        "{sent:#}"
    );
}

/// A server that drops a kept-alive connection when the next request comes on it (without
/// ever saying `Connection: close`): the request is sent again, identical, on a new one.
#[tokio::test]
async fn a_reset_reused_connection_is_retried_with_the_same_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                    .await;
                let _ = socket.read(&mut buf).await;
            });
        }
    });
    let env = vec![("SCRT_BASE_URL".to_string(), format!("http://{addr}"))];
    let report = run("tests/flows/two_gets.yaml", json!({}), env).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.steps);
    let second = &report.steps[1].attempts;
    assert_eq!(second.len(), 2);
    assert!(
        second[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("the connection closed before an answer came")),
        "{:?}",
        second[0].error
    );
    assert_eq!(
        second[0].request, second[1].request,
        "the same request, RequestId included"
    );
}

/// A 2xx whose body is not JSON (a proxy's HTML page): the failure says so, instead of only
/// naming a field it could not find.
#[tokio::test]
async fn a_success_whose_body_is_not_json_says_so() {
    let server = wiremock::MockServer::start().await;
    Mock::given(wiremock::matchers::path("/api/v1/interactions"))
        .respond_with(ResponseTemplate::new(202).set_body_string("<html>Gateway says hello</html>"))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_happy(&server).await;
    let report = run_inbound(&server, json!({})).await;
    let Outcome::Failed { step, error } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(step, "interaction");
    let text = std::fs::read_to_string(repo("flows/inbound.yaml")).unwrap();
    let line = text
        .lines()
        .position(|l| l.trim() == "- response.body.success")
        .unwrap()
        + 1;
    assert!(
        error.ends_with(&format!(
            "flows/inbound.yaml:{line}: `response.body.success` is undefined (the response body is not JSON: `<html>Gateway says hello</html>`)"
        )),
        "{error}"
    );
}

/// The environment a flow needs comes from its compiled templates: a name in a comment, or in
/// text outside `{{ }}`, is not required.
#[tokio::test]
async fn only_templates_name_the_environment_a_run_needs() {
    let (_server, env) = answering_200().await;
    let report = run("tests/flows/comment_env.yaml", json!({}), env).await;
    assert_eq!(report.outcome, Outcome::Passed);
}
