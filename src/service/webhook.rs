//! The service's HTTP face: the webhook source (`POST <path>`, for partners who relay events
//! themselves), `GET /runs/ID`, and the probes `/healthz`, `/readyz` and `/metrics`.

use super::event::Event;
use super::runtime::{Runtime, Taken};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The most bytes an event body may have.
pub const MAX_BODY: usize = 1 << 20;

/// How webhook requests prove they come from the partner, with the secret rendered.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `X-Signature: sha256=<hex of HMAC-SHA256 of the body>` under this key.
    Hmac(Vec<u8>),
}

/// The webhook source's settings, rendered.
#[derive(Clone)]
pub struct Hook {
    /// Where events are posted.
    pub path: String,
    /// What each request must carry.
    pub auth: Auth,
}

#[derive(Clone)]
struct Shared {
    runtime: Arc<Runtime>,
    hook: Option<Arc<Hook>>,
    max_runs: usize,
    /// Events being taken: at most [`TAKING`] or `max_runs` at once (see `receive`).
    taking: Arc<tokio::sync::Semaphore>,
}

/// Events taken at once, at least (`--max-runs` when more). A take lasts a journal round trip
/// (a millisecond or so) unless the journal waits: this many is room enough for bursts, and a
/// bound on what piles up when it hangs.
pub const TAKING: usize = 64;

/// The routes: the webhook (when the service has one), runs, probes.
pub fn router(runtime: Arc<Runtime>, hook: Option<Hook>, max_runs: usize) -> axum::Router {
    let shared = Shared {
        runtime,
        hook: hook.clone().map(Arc::new),
        max_runs,
        taking: Arc::new(tokio::sync::Semaphore::new(max_runs.max(TAKING))),
    };
    let mut router = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/runs/{id}", get(run_state));
    if let Some(hook) = hook {
        router = router.route(&hook.path, post(receive));
    }
    router
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(hook) = &s.hook else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Err(why) = authorized(&hook.auth, &headers, &body) {
        return answer(StatusCode::UNAUTHORIZED, json!({ "error": why }));
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if !super::event::valid_id(key) {
        let error = format!(
            "an `Idempotency-Key` header of 1 to {} characters is required: it is the run id",
            super::event::MAX_ID
        );
        return answer(StatusCode::BAD_REQUEST, json!({ "error": error }));
    }
    let fields = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": "the body must be a JSON object: the event's fields" }),
            );
        }
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("the body is not JSON: {e}") }),
            );
        }
    };
    let event = Event {
        id: key.to_string(),
        fields,
    };
    let id = event.id.clone();
    // Off the async workers: taking an event reads and writes the journal (a PostgreSQL round
    // trip, or a wait for the writer), and events waiting there held up every worker, so the
    // probes, the metrics and the runs' own requests waited too.
    // At most `TAKING` (or `--max-runs`) events are taken at once, more being answered busy:
    // each waits on the blocking pool for as long as the journal does, and a journal that
    // hangs would pile them up there (a thread each) without end, ahead of the leases'
    // renewals.
    let Ok(taking) = s.taking.clone().try_acquire_owned() else {
        return self::taking();
    };
    let runtime = s.runtime.clone();
    let take = move || {
        let _taking = taking;
        runtime.take(event)
    };
    let taken = match tokio::task::spawn_blocking(take).await {
        Ok(taken) => taken,
        Err(_) => {
            let error = "the event could not be taken: an internal error (see the service's output)";
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "run_id": id, "error": error }),
            );
        }
    };
    match taken {
        Taken::Started(id) => answer(StatusCode::ACCEPTED, json!({ "run_id": id, "status": "running" })),
        Taken::Queued(id) => answer(StatusCode::ACCEPTED, json!({ "run_id": id, "status": "queued" })),
        Taken::Duplicate(status) => answer(
            StatusCode::OK,
            json!({ "run_id": id, "status": status, "duplicate": true }),
        ),
        Taken::Expired => answer(StatusCode::OK, json!({ "run_id": id, "status": "expired" })),
        Taken::Ignored => answer(StatusCode::OK, json!({ "status": "ignored" })),
        Taken::Refused(error) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "run_id": id, "status": "failed", "error": s.runtime.redact(&error) }),
        ),
        Taken::Busy => busy(),
        Taken::Unrecorded(error) => {
            let error = format!(
                "the journal could not record the event's run ({}): nothing ran; send the event again",
                s.runtime.redact(&error)
            );
            again(answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "run_id": id, "error": error }),
            ))
        }
    }
}

/// `503`: as many runs as allowed are in flight; to be sent again.
fn busy() -> Response {
    let body = json!({ "error": "as many runs as allowed are in flight: send the event again" });
    again(answer(StatusCode::SERVICE_UNAVAILABLE, body))
}

/// `503`: as many events as allowed are being taken (a journal that waits); to be sent again.
fn taking() -> Response {
    let body = json!({ "error": "as many events as allowed are being taken (the journal is slow): send the event again" });
    again(answer(StatusCode::SERVICE_UNAVAILABLE, body))
}

/// `response` with `Retry-After: 1`: the event is to be sent again.
fn again(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// Whether the request carries the token or a valid signature of its body.
fn authorized(auth: &Auth, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    match auth {
        Auth::Bearer(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or("an `Authorization: Bearer` header is required")?;
            // Compared through a MAC so the time taken says nothing about the token.
            let tag = |text: &str| {
                let mut mac =
                    Hmac::<sha2::Sha256>::new_from_slice(b"flowrun-webhook").expect("any key length");
                mac.update(text.as_bytes());
                mac.finalize().into_bytes()
            };
            if tag(given) == tag(token) {
                Ok(())
            } else {
                Err("the bearer token is not the service's")
            }
        }
        Auth::Hmac(key) => {
            let given = headers
                .get("x-signature")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("sha256="))
                .ok_or("an `X-Signature: sha256=<hex>` header is required")?;
            let given = hex(given).ok_or("the signature is not hex")?;
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
            mac.update(body);
            mac.verify_slice(&given)
                .map_err(|_| "the signature does not match the body")
        }
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn run_state(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    // Off the async workers, as an event is taken: the journal may be asked.
    let (runtime, asked) = (s.runtime.clone(), id.clone());
    let state = tokio::task::spawn_blocking(move || runtime.state(&asked))
        .await
        .unwrap_or(None);
    match state {
        Some(status) => answer(StatusCode::OK, json!({ "run_id": id, "status": status })),
        None => answer(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no run `{id}`") }),
        ),
    }
}

async fn ready(State(s): State<Shared>) -> Response {
    // Off the async workers: the check writes the journal out and waits for it (a PostgreSQL
    // round trip, or the writer busy with a transaction), which must not hold up the
    // connections and runs those workers serve.
    let runtime = s.runtime.clone();
    let ready = tokio::task::spawn_blocking(move || runtime.ready())
        .await
        .unwrap_or(Err("the readiness check failed"));
    match ready {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    // Not waited for more than a second: the depth last read stands.
    let depth = s.runtime.queue_depth_within(Duration::from_secs(1)).await;
    let text = s.runtime.metrics.render(s.runtime.in_flight(s.max_runs), depth);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}
