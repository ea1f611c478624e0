//! Shared pieces of the end-to-end tests: a stand-in Interaction Service on wiremock
//! (127.0.0.1 only), running a flow through the library with a deterministic runtime, and a
//! normalised dump of the requests the server received.
#![allow(dead_code)]

use flowrun::engine::prepare;
use flowrun::engine::{Quiet, RunReport};
use flowrun::expr::World;
use flowrun::flow::Source;
use flowrun::http::{DEFAULT_MAX_BODY, HttpTransport};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const TOKEN: &str = "00D000000000001!tok-SECRET-4f1c";
pub const WORK_ITEM: &str = "0Mw5g000000SimW";
pub const CONVERSATION: &str = "8a1f2c3d-0000-4000-8000-00000000c0de";

pub fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A server answering every endpoint the shipped flows call, as a healthy org would.
pub async fn service() -> MockServer {
    let server = MockServer::start().await;
    mount_happy(&server).await;
    server
}

/// Mounts the healthy answers at a low priority, so a test can mount a failure before it.
/// Each answer has the status and body shape the API description documents for success (the
/// mount checks it against the project's response schemas).
pub async fn mount_happy(server: &MockServer) {
    for (m, p, status, body) in [
        (
            "POST",
            "/api/v1/interactions",
            202,
            json!({"conversationIdentifier": CONVERSATION, "id": "i-1", "workItemIds": [WORK_ITEM], "success": true}),
        ),
        ("PATCH", "/api/v1/consent", 200, json!({"success": true})),
        (
            "POST",
            "/api/v1/route",
            202,
            json!({"success": true, "routingCorrelationId": "rc-1", "psrId": "0JR5g000000Sim1", "workItemId": WORK_ITEM}),
        ),
        ("DELETE", "/api/v1/route", 202, json!({"success": true})),
        (
            "POST",
            "/api/v1/agentWork",
            202,
            json!({"id": "5e550000-0000-4000-8000-0000000000aa", "agentWorkId": "0Bz5g000000Sim1", "success": true,
                "agentWorkDetails": {"existPsr": true, "psrId": "0JR5g000000Sim1", "capacityWeight": 1,
                    "routingContext": {"conversationIdentifier": CONVERSATION, "routingType": "Initial", "routingCorrelationId": "rc-1"}}}),
        ),
        ("POST", "/api/v1/routingResult", 202, json!({"success": true})),
    ] {
        let op = flowrun::api::operation(m, p).unwrap();
        assert_eq!(op.success, status, "{m} {p}");
        assert_eq!(op.response_problems(&body), Vec::<String>::new(), "{m} {p}");
        Mock::given(method(m))
            .and(path(p))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .with_priority(10)
            .mount(server)
            .await;
    }
}

pub fn env_for(server: &MockServer) -> Vec<(String, String)> {
    vec![
        ("SCRT_BASE_URL".into(), server.uri()),
        ("SF_ORG_ID".into(), "00D000000000001".into()),
        ("SF_AUTHORIZATION_CONTEXT".into(), "Partner_Channel".into()),
        ("SF_ACCESS_TOKEN".into(), TOKEN.into()),
    ]
}

/// A server answering 200 to everything, and the environment that points a flow at it.
pub async fn answering_200() -> (MockServer, Vec<(String, String)>) {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let env = vec![("SCRT_BASE_URL".to_string(), server.uri())];
    (server, env)
}

/// Runs a flow through the library: frozen clock, sequential ids, only `env` in the environment.
pub async fn run(flow: &str, inputs: Value, env: Vec<(String, String)>) -> RunReport {
    let source = Source::read(&repo(flow)).unwrap();
    let runtime = World::deterministic(1_700_000_000_000, env);
    let given = inputs.as_object().unwrap().clone().into_iter().collect();
    let transport = Arc::new(HttpTransport::new(DEFAULT_MAX_BODY));
    let prepared = prepare(&source, given, &[], runtime, transport).unwrap_or_else(|e| panic!("{e}"));
    prepared.engine.run(prepared.inputs, &Quiet).await
}

/// Inputs from a shipped example file, with overrides.
pub fn example_inputs(file: &str, overrides: Value) -> Value {
    let text = std::fs::read_to_string(repo(file)).unwrap();
    let mut v = flowrun::flow::yaml::load(&text).0.unwrap().value;
    for (k, o) in overrides.as_object().unwrap() {
        if o.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = o.clone();
        }
    }
    v
}

/// The requests the server received: method, path, the headers the flows set (the multipart
/// boundary replaced), and the body as JSON or as multipart parts.
pub async fn received(server: &MockServer) -> Value {
    let requests = server.received_requests().await.unwrap_or_default();
    Value::Array(
        requests
            .iter()
            .map(|r| {
                let header = |name: &str| {
                    r.headers
                        .get(name)
                        .map(|v| v.to_str().unwrap_or_default().to_string())
                };
                let mut headers = serde_json::Map::new();
                for name in [
                    "authorization",
                    "authorizationcontext",
                    "content-type",
                    "orgid",
                    "requestid",
                ] {
                    if let Some(v) = header(name) {
                        let v = match v.split_once("; boundary=") {
                            Some((kind, _)) => format!("{kind}; boundary=<boundary>"),
                            // The token went over the wire as it should; snapshots keep no secret.
                            None => v.replace(TOKEN, "<SF_ACCESS_TOKEN>"),
                        };
                        headers.insert(name.into(), json!(v));
                    }
                }
                let content_type = header("content-type").unwrap_or_default();
                let body = if let Some((_, boundary)) = content_type.split_once("boundary=") {
                    multipart_parts(&r.body, boundary)
                } else if r.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&r.body)
                        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&r.body)))
                };
                json!({ "method": r.method.as_str(), "path": r.url.path(), "headers": headers, "body": body })
            })
            .collect(),
    )
}

fn multipart_parts(body: &[u8], boundary: &str) -> Value {
    let text = String::from_utf8_lossy(body);
    let parts: Vec<Value> = text
        .split(&format!("--{boundary}"))
        .filter(|p| !p.trim().is_empty() && p.trim() != "--")
        .map(|p| {
            let (head, content) = p.split_once("\r\n\r\n").unwrap_or((p, ""));
            let content = content.strip_suffix("\r\n").unwrap_or(content);
            let headers: Vec<&str> = head.trim().lines().collect();
            let parsed = serde_json::from_str::<Value>(content).unwrap_or_else(|_| json!(content));
            json!({ "headers": headers, "content": parsed })
        })
        .collect();
    json!({ "multipart": parts })
}

pub fn yaml(v: &Value) -> String {
    flowrun::report::transcript::to_yaml(v)
}

/// A server where `method path` answers `status` with `body` (once, or always: `times`) and
/// every other endpoint is healthy.
pub async fn failing(m: &str, p: &str, status: u16, body: Value, times: Option<u64>) -> MockServer {
    let server = MockServer::start().await;
    let mut mock = Mock::given(method(m))
        .and(path(p))
        .respond_with(
            ResponseTemplate::new(status)
                .set_body_json(body)
                .insert_header("Retry-After", "1"),
        )
        .with_priority(1);
    if let Some(n) = times {
        mock = mock.up_to_n_times(n);
    }
    mock.mount(&server).await;
    mount_happy(&server).await;
    server
}

/// The inbound flow with its example inputs (and `overrides`) against `server`.
pub async fn run_inbound(server: &MockServer, overrides: Value) -> RunReport {
    run(
        "flows/inbound.yaml",
        example_inputs("flows/examples/inbound.inputs.yaml", overrides),
        env_for(server),
    )
    .await
}

/// The environment of `tests/flows/jwt*.yaml` with the test key, logging in at `login`.
pub fn jwt_env(api: &str, login: &str) -> Vec<(String, String)> {
    vec![
        ("SCRT_BASE_URL".to_string(), api.to_string()),
        ("SF_LOGIN_URL".to_string(), login.to_string()),
        ("SF_CLIENT_ID".to_string(), "connected-app-key".to_string()),
        ("SF_USERNAME".to_string(), "integration@example.com".to_string()),
        (
            "SF_JWT_KEY".to_string(),
            std::fs::read_to_string(repo("tests/fixtures/jwt-test-key.pem")).unwrap(),
        ),
    ]
}

/// Asserts that `GET` of each of `paths` is answered `200` within 3 s.
pub async fn answered_at_once(addr: &str, paths: &[&str]) {
    for path in paths {
        let asked = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            exchange(addr, "GET", path, &[], b""),
        );
        let (status, _) = asked
            .await
            .unwrap_or_else(|_| panic!("GET {path}: no answer in 3 s"));
        assert_eq!(status, 200, "GET {path}");
    }
}

/// One HTTP/1.1 exchange with the service: the status and the body.
pub async fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let (status, _, body) = exchange_whole(addr, method, path, headers, body).await;
    (status, body)
}

/// [`exchange`], with the answer's head (status line and headers) as well.
pub async fn exchange_whole(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path} on {addr}: not an HTTP answer: {answer:?}"));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (status, head.to_string(), body.to_string())
}
