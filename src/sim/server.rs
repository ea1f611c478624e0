//! The simulator's HTTP face: axum carries requests to [`Service`] and answers back, plus the
//! OAuth token endpoint and `GET /sim/state` / `POST /sim/reset`.

use super::config::SimConfig;
use super::rules::{Answer, Service, SimBody, SimRequest};
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Shared = Arc<Mutex<Service>>;

fn reply(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body.to_string(),
    )
        .into_response()
}

async fn handle(State(service): State<Shared>, request: Request) -> Response {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let latency = service.lock().map(|s| s.config.faults.latency_ms).unwrap_or(0);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/sim/state") => {
            let (offset, limit) = page_of(request.uri().query().unwrap_or_default());
            let state = service
                .lock()
                .map(|mut s| {
                    s.accept_due_work(std::time::Instant::now());
                    s.state.page(offset, limit)
                })
                .unwrap_or_default();
            return reply(Answer {
                status: 200,
                body: state,
            });
        }
        ("POST", "/sim/reset") => {
            if let Ok(mut s) = service.lock() {
                s.reset();
            }
            return reply(Answer {
                status: 200,
                body: json!({ "success": true }),
            });
        }
        ("POST", "/sim/transfer" | "/sim/events" | "/sim/revoke-tokens") => {
            let body = Bytes::from_request(request, &()).await.unwrap_or_default();
            let body: Value = match body.iter().all(u8::is_ascii_whitespace) {
                true => json!({}),
                false => match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return reply(Answer {
                            status: 400,
                            body: json!({"code": 400, "message": format!("the body is not JSON: {e}")}),
                        });
                    }
                },
            };
            let answer = service
                .lock()
                .map(|mut s| {
                    let s = &mut *s;
                    match path.as_str() {
                        "/sim/transfer" => super::events::transfer(&s.bus, &s.config, &mut s.state, &body),
                        "/sim/events" => super::events::publish_event(&s.bus, &s.config, &body),
                        _ => {
                            // Every token stops working: the next call or event delivery
                            // with one is refused, as when a session expires.
                            let revoked = s.tokens.len();
                            s.tokens.clear();
                            Answer {
                                status: 200,
                                body: json!({ "revoked": revoked }),
                            }
                        }
                    }
                })
                .unwrap_or_else(|_| busy());
            return reply(answer);
        }
        ("POST", "/services/oauth2/token") => {
            let body = Bytes::from_request(request, &()).await.unwrap_or_default();
            let answer = service
                .lock()
                .map(|mut s| token(&mut s, &body))
                .unwrap_or_else(|_| busy());
            return reply(answer);
        }
        _ => {}
    }
    let headers = crate::http::header_pairs(request.headers());
    let body = read_body(request).await;
    let answer = service
        .lock()
        .map(|mut s| {
            s.handle(&SimRequest {
                method,
                path,
                headers,
                body,
            })
        })
        .unwrap_or_else(|_| busy());
    reply(answer)
}

/// `?offset=N&limit=M` of `GET /sim/state`: from the start, 1,000 entries per collection by
/// default, 10,000 at most.
fn page_of(query: &str) -> (usize, usize) {
    let form = url_form(query.as_bytes());
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    (
        get("offset").unwrap_or(0),
        get("limit").unwrap_or(1_000).min(10_000),
    )
}

fn busy() -> Answer {
    Answer {
        status: 500,
        body: json!({ "code": 500, "message": "An internal server error occurred: the simulator's state is unavailable." }),
    }
}

async fn read_body(request: Request) -> SimBody {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let Ok(mut form) = Multipart::from_request(request, &()).await else {
            return SimBody::Invalid("malformed multipart body".into());
        };
        let mut parts = Vec::new();
        while let Ok(Some(field)) = form.next_field().await {
            let name = field.name().unwrap_or_default().to_string();
            let content_type = field.content_type().map(str::to_string);
            let bytes = match field.bytes().await {
                Ok(b) => b,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return SimBody::TooLarge,
                Err(_) => return SimBody::Invalid("malformed multipart part".into()),
            };
            parts.push((name, content_type, bytes.to_vec()));
        }
        return SimBody::Multipart(parts);
    }
    let bytes = Bytes::from_request(request, &()).await.unwrap_or_default();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return SimBody::Empty;
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => SimBody::Json(v),
        Err(e) => SimBody::Invalid(e.to_string()),
    }
}

/// The OAuth 2.0 JWT bearer grant: verifies the RS256 assertion against the configured key.
fn token(service: &mut Service, body: &[u8]) -> Answer {
    let form: Vec<(String, String)> = url_form(body);
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let invalid = |detail: String| Answer {
        status: 400,
        body: json!({ "error": "invalid_grant", "error_description": detail }),
    };
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return Answer {
            status: 400,
            body: json!({ "error": "unsupported_grant_type" }),
        };
    }
    let Some(app) = service.config.jwt.clone() else {
        return invalid("the simulator has no `jwt` app configured".into());
    };
    let key = match jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key.as_bytes()) {
        Ok(k) => k,
        Err(e) => return invalid(format!("configured public key: {e}")),
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&app.client_id]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    match jsonwebtoken::decode::<Value>(get("assertion"), &key, &validation) {
        Ok(_) => {
            let n = service.state.token_uses.len() + service.tokens.len();
            let token = format!("{}!sim-jwt-{n}", service.config.org_id);
            service.tokens.push(token.clone());
            Answer {
                status: 200,
                body: json!({ "access_token": token, "token_type": "Bearer", "instance_url": "" }),
            }
        }
        Err(e) => invalid(e.to_string()),
    }
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A running simulator.
pub struct Running {
    /// Address it listens on, with the port actually bound.
    pub addr: SocketAddr,
    /// Where its Pub/Sub API (gRPC, plaintext HTTP/2) listens.
    pub pubsub_addr: SocketAddr,
    /// The simulated service and its state, shared with the request handlers; lock to inspect.
    pub service: Shared,
}

impl Running {
    /// `http://<addr>`: the base URL for both the API and the token endpoint.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<pubsub_addr>`: the Pub/Sub API's URL (`http://` is plaintext gRPC).
    pub fn pubsub_url(&self) -> String {
        format!("http://{}", self.pubsub_addr)
    }
}

/// Starts the simulator on `addr` (port 0: any free port) in the current tokio runtime.
pub async fn start(config: SimConfig, addr: SocketAddr) -> std::io::Result<Running> {
    let service: Shared = Arc::new(Mutex::new(Service::new(config)));
    // Room for the API's largest attachment (25 MB, 10008 above it) and its multipart framing.
    let router = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::max(26 * 1024 * 1024))
        .with_state(service.clone());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // The Pub/Sub API on the next free port of the same interface.
    let grpc = tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?;
    let pubsub_addr = grpc.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    tokio::spawn(super::pubsub::serve(service.clone(), grpc));
    Ok(Running {
        addr,
        pubsub_addr,
        service,
    })
}

/// The environment a flow needs to talk to this simulator.
pub fn environment(running: &Running) -> Vec<(String, String)> {
    let s = running.service.lock();
    let (org, token, context, events) = match &s {
        Ok(s) => (
            s.config.org_id.clone(),
            s.tokens.first().cloned().unwrap_or_default(),
            s.config
                .channels
                .first()
                .map(|c| c.definition.clone())
                .unwrap_or_default(),
            s.config.events.clone(),
        ),
        Err(_) => Default::default(),
    };
    vec![
        ("SF_INSTANCE_URL".into(), running.base_url()),
        ("SF_PUBSUB_URL".into(), running.pubsub_url()),
        ("SF_EVENT_TOPIC".into(), events.topic),
        ("SF_EVENT_TYPE_FIELD".into(), events.type_field),
        ("SF_EVENT_PAYLOAD_FIELD".into(), events.payload_field),
        ("SCRT_BASE_URL".into(), running.base_url()),
        ("SF_LOGIN_URL".into(), running.base_url()),
        ("SF_ORG_ID".into(), org),
        ("SF_AUTHORIZATION_CONTEXT".into(), context),
        ("SF_ACCESS_TOKEN".into(), token),
    ]
}

/// Starts the simulator on its own thread and runtime, so it answers whatever the caller's
/// runtime is doing. It stops when the process ends.
pub fn start_in_background(config: SimConfig) -> std::io::Result<Running> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("flowrun-sim".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let _ = tx.send(start(config, ([127, 0, 0, 1], 0).into()).await);
                std::future::pending::<()>().await;
            });
        })?;
    rx.recv().map_err(std::io::Error::other)?
}
