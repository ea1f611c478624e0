//! The HTTP listener of `serve` (the webhook, runs, probes, metrics): hyper's HTTP/1.1 server
//! with a bound on how long a client may take. axum's own `serve` sets none, so a client that
//! connected and sent nothing, or a header or a body a byte at a time, held its connection (and
//! a file descriptor) for as long as it liked; enough of them and the service took no events.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// The default for `serve --read-timeout`.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` ends, then lets the requests under way finish.
/// A request's head must arrive within `read_timeout` of the connection asking for one (else the
/// connection is closed), and a request must be read and answered within `read_timeout` (else
/// it is answered `408`).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let app = app.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        within(read_timeout, request, next)
    }));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let stop = async move {
                // The watch's guard is dropped here, before any await: the task stays `Send`.
                let _ = stopping.wait_for(|stop| *stop).await.map(|_| ());
            };
            tokio::select! {
                _ = connection.as_mut() => return,
                () = stop => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
        while connections.try_join_next().is_some() {}
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// Answers `408` when `request` is not read and answered within `limit` (a body sent slowly).
async fn within(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let body = serde_json::json!({
                "error": format!("the request was not received and answered within {} (serve --read-timeout)", crate::engine::short_duration(limit))
            });
            (axum::http::StatusCode::REQUEST_TIMEOUT, format!("{body}\n")).into_response()
        }
    }
}
