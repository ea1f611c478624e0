//! The shipped flows against the simulator over HTTP on 127.0.0.1, and the simulator's state
//! after them; fault injection that the flows' retries and token refresh get through.

mod common;

use common::{example_inputs, repo, run};
use flowrun::engine::{Outcome, RunReport};
use flowrun::http::{Body, DEFAULT_MAX_BODY, HttpRequest, HttpTransport, Transport};
use flowrun::sim::{SimConfig, environment, start_in_background};
use serde_json::{Value, json};
use std::time::Duration;

fn sim(config: SimConfig) -> (flowrun::sim::Running, Vec<(String, String)>) {
    let running = start_in_background(config).unwrap();
    let env = environment(&running);
    (running, env)
}

async fn state(running: &flowrun::sim::Running) -> Value {
    let request = HttpRequest {
        step: String::new(),
        method: "GET".into(),
        url: format!("{}/sim/state", running.base_url()),
        headers: Vec::new(),
        body: Body::None,
    };
    let transport = HttpTransport::new(DEFAULT_MAX_BODY);
    let response = transport.send(&request, Duration::from_secs(5)).await.unwrap();
    serde_json::from_slice(&response.body).unwrap()
}

fn steps(report: &RunReport) -> Vec<String> {
    report
        .steps
        .iter()
        .map(|s| format!("{} {} x{}", s.id, s.status.word(), s.attempts.len()))
        .collect()
}

/// Agent work is offered, not yet accepted: the conversation still waits in the queue (its PSR
/// stays) until the agent accepts — here the simulator's agents accept by themselves.
#[tokio::test]
async fn inbound_queues_the_conversation_until_the_agent_accepts() {
    let (running, env) = sim(SimConfig::default());
    let report = run(
        "flows/inbound.yaml",
        example_inputs("flows/examples/inbound.inputs.yaml", json!({})),
        env,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", steps(&report));
    let s = state(&running).await;
    let conversation = report.outputs["conversation_id"].as_str().unwrap();
    assert_eq!(s["psrs"][conversation]["psrId"], report.outputs["psr_id"]);
    assert_eq!(s["agentWork"][0]["status"], json!("Assigned"));
    let agent_work = report.steps.iter().find(|s| s.id == "agent_work").unwrap();
    assert_eq!(agent_work.saved["psr_pending"], json!(true));

    let (running, env) = sim(SimConfig {
        accept_work_after_ms: Some(0),
        ..SimConfig::default()
    });
    let report = run(
        "flows/inbound.yaml",
        example_inputs("flows/examples/inbound.inputs.yaml", json!({})),
        env,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", steps(&report));
    let s = state(&running).await;
    assert_eq!(s["psrs"], json!({}), "the agent accepted: the PSR is gone");
    assert_eq!(s["agentWork"][0]["status"], json!("Opened"));
}

#[tokio::test]
async fn inbound_creates_one_conversation_psr_and_agent_work() {
    let (running, env) = sim(SimConfig::default());
    let report = run(
        "flows/inbound.yaml",
        example_inputs("flows/examples/inbound.inputs.yaml", json!({})),
        env,
    )
    .await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", steps(&report));
    let route = report.steps.iter().find(|s| s.id == "route").unwrap();
    assert!(route.saved["psr_id"].as_str().unwrap().starts_with("0JR"));
    let s = state(&running).await;
    assert_eq!(s["psrs"].as_object().unwrap().len(), 1);
    assert_eq!(
        s["conversations"].as_object().unwrap().len(),
        2,
        "the seeded one and this one"
    );
    assert_eq!(s["agentWork"].as_array().unwrap().len(), 1);
    assert_eq!(s["agentWork"][0]["userId"], json!("0055g000000SimA"));
    let conversation = report.outputs["conversation_id"].as_str().unwrap();
    assert_eq!(
        s["conversations"][conversation]["workItemId"]
            .as_str()
            .unwrap()
            .len(),
        15
    );
    assert_eq!(
        s["endUsers"]["+15550100/+15550123"]["consentStatus"],
        json!("ExplicitlyOptedIn")
    );
}

#[tokio::test]
async fn inbound_without_an_agent_leaves_the_conversation_in_the_queue() {
    let (running, env) = sim(SimConfig::default());
    let inputs = example_inputs(
        "flows/examples/inbound.inputs.yaml",
        json!({"agent_user_id": null, "flow_id": "3005g000000SimF"}),
    );
    let report = run("flows/inbound.yaml", inputs, env).await;
    assert_eq!(
        steps(&report),
        [
            "interaction ok x1",
            "consent ok x1",
            "route ok x1",
            "agent_work skipped x0",
            "delete_route skipped x0"
        ]
    );
    let s = state(&running).await;
    let conversation = report.outputs["conversation_id"].as_str().unwrap();
    assert_eq!(
        s["psrs"][conversation]["routingInfo"],
        json!({"flow": {"flowId": "3005g000000SimF", "queueId": "00G5g000000SimQ"}})
    );
    assert_eq!(s["agentWork"], json!([]));
}

/// Routing is given up only when agent work was attempted and failed: the PSR is deleted.
#[tokio::test]
async fn inbound_deletes_the_psr_when_agent_work_fails() {
    let (running, env) = sim(SimConfig::default());
    let inputs = example_inputs(
        "flows/examples/inbound.inputs.yaml",
        json!({"agent_user_id": "0055g000000Nope"}),
    );
    let report = run("flows/inbound.yaml", inputs, env).await;
    let Outcome::Failed { step, error } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(
        (step.as_str(), error.contains("code 15106")),
        ("agent_work", true),
        "{error}"
    );
    assert_eq!(
        steps(&report)[3..],
        ["agent_work failed x1", "delete_route ok x1"]
    );
    let s = state(&running).await;
    assert_eq!(s["psrs"], json!({}));
}

#[tokio::test]
async fn consent_rejected_by_the_channel_fails_the_flow_before_routing() {
    let mut config = SimConfig::default();
    config.channels[0].consent_owner = "Salesforce".into();
    let (_running, env) = sim(config);
    let report = run(
        "flows/inbound.yaml",
        example_inputs("flows/examples/inbound.inputs.yaml", json!({})),
        env,
    )
    .await;
    let Outcome::Failed { step, error } = &report.outcome else {
        panic!()
    };
    assert_eq!(step, "consent");
    assert!(error.contains("code 10022"), "{error}");
    assert_eq!(
        steps(&report)[2..],
        [
            "route not run x0",
            "agent_work not run x0",
            "delete_route skipped x0"
        ]
    );
}

#[tokio::test]
async fn the_inbound_flow_retries_through_injected_faults() {
    let mut config = SimConfig::default();
    config.faults.rate_503 = 0.15;
    config.faults.rate_10019 = 0.05;
    config.faults.rate_10094 = 0.05;
    config.faults.rate_10055 = 0.05;
    config.faults.rate_10056 = 0.05;
    config.faults.seed = 7;
    let (_running, env) = sim(config);
    let mut retried = 0;
    for n in 0..5 {
        // One end user each: a second message of the same end user joins the open conversation.
        let end_user = format!("+1555012{n}");
        let report = run(
            "flows/inbound.yaml",
            example_inputs(
                "flows/examples/inbound.inputs.yaml",
                json!({"end_user": end_user}),
            ),
            env.clone(),
        )
        .await;
        assert_eq!(report.outcome, Outcome::Passed, "{:?}", steps(&report));
        retried += report.requests_sent() - 4;
    }
    assert!(retried > 0, "the faults were injected and retried");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_through_the_simulator_s_jwt_endpoint() {
    let mut config = SimConfig::default();
    config.faults.token_expires_after = Some(1);
    config.jwt = Some(flowrun::sim::JwtApp {
        client_id: "connected-app-key".into(),
        public_key: std::fs::read_to_string(repo("tests/fixtures/jwt-test-key.pub.pem")).unwrap(),
    });
    let (_running, mut env) = sim(config);
    env.push(("SF_CLIENT_ID".into(), "connected-app-key".into()));
    env.push(("SF_USERNAME".into(), "integration@example.com".into()));
    env.push((
        "SF_JWT_KEY".into(),
        std::fs::read_to_string(repo("tests/fixtures/jwt-test-key.pem")).unwrap(),
    ));
    let report = run("tests/flows/jwt_consent_twice.yaml", json!({}), env).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.steps);
    // The second call's token had expired: 401, one refresh, one retry.
    assert_eq!(steps(&report), ["first ok x1", "second ok x2"]);
}

/// An attachment past what the simulator reads (the API's limit is 25 MB) is 10008, not an
/// "empty body".
#[tokio::test]
async fn an_attachment_over_the_limit_is_10008() {
    use flowrun::http::{Part, PartContent};
    let (running, env) = sim(SimConfig::default());
    let header = |name: &str| env.iter().find(|(k, _)| k == name).unwrap().1.clone();
    let json = json!({"to": "+15550100", "from": "+15550999", "interactions": [{"timestamp": 1,
        "interactionType": "AttachmentInteraction", "id": "a-1", "attachmentIndex": 0, "contentLength": 27_000_000}]});
    let request = HttpRequest {
        step: String::new(),
        method: "POST".into(),
        url: format!("{}/api/v1/interactions", running.base_url()),
        headers: vec![
            (
                "Authorization".into(),
                format!("Bearer {}", header("SF_ACCESS_TOKEN")),
            ),
            ("OrgId".into(), header("SF_ORG_ID")),
            ("AuthorizationContext".into(), header("SF_AUTHORIZATION_CONTEXT")),
            ("RequestId".into(), "5e550000-0000-4000-8000-00000000abcd".into()),
        ],
        body: Body::Multipart(vec![
            Part {
                name: "json".into(),
                content_type: "application/json".into(),
                filename: None,
                content: PartContent::Json(json),
            },
            Part {
                name: "attachments".into(),
                content_type: "image/png".into(),
                filename: Some("big.png".into()),
                content: PartContent::File {
                    path: "big.png".into(),
                    bytes: vec![7; 27_000_000],
                },
            },
        ]),
    };
    let transport = HttpTransport::new(DEFAULT_MAX_BODY);
    let response = transport.send(&request, Duration::from_secs(20)).await.unwrap();
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        (response.status, body["code"].clone()),
        (413, json!(10008)),
        "{body}"
    );
}

/// `GET /sim/state` in pages, with the totals.
#[tokio::test]
async fn the_state_is_read_in_pages() {
    let (running, env) = sim(SimConfig::default());
    for n in 0..3 {
        let inputs = example_inputs(
            "flows/examples/inbound.inputs.yaml",
            json!({"end_user": format!("+1555777000{n}"), "agent_user_id": null}),
        );
        assert_eq!(
            run("flows/inbound.yaml", inputs, env.clone()).await.outcome,
            Outcome::Passed
        );
    }
    let request = HttpRequest {
        step: String::new(),
        method: "GET".into(),
        url: format!("{}/sim/state?offset=1&limit=2", running.base_url()),
        headers: Vec::new(),
        body: Body::None,
    };
    let transport = HttpTransport::new(DEFAULT_MAX_BODY);
    let response = transport.send(&request, Duration::from_secs(5)).await.unwrap();
    let page: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(page["conversations"].as_object().unwrap().len(), 2);
    assert_eq!(page["psrs"].as_object().unwrap().len(), 2);
    assert_eq!(
        page["page"]["totals"]["conversations"],
        json!(4),
        "the seeded one and three"
    );
    assert_eq!(page["page"]["totals"]["psrs"], json!(3));
    assert_eq!(page["page"]["offset"], json!(1));
}
