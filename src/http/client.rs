//! The real transport: HTTP/1.1 written and read by flowrun (`head.rs`, `conn.rs`), on
//! connections kept alive by [`Pool`], `https://` via rustls.
//!
//! Why not reqwest or hyper's client: on the bench stub, one request through reqwest cost
//! 59 µs of CPU and through hyper-util's pooled client 40 µs; in user CPU alone, hyper-util's
//! client 17–21 µs, hyper's connection 11–13 µs, a plain write and read 1.5–3 µs. `conn.rs`
//! says what was left out and why nothing a flow needs is. flowrun turns off everything
//! reqwest adds (redirects, proxies, cookies, decompression). Parsing answers and connecting
//! stay in maintained crates.

use super::head::{Fields, is_token, lists, request_bytes, split_url};
use super::pool::Pool;
use super::{HttpRequest, HttpResponse, SendFuture, Transport, TransportError, encode::encode};
use std::time::Duration;

/// Default cap on a response body.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

const AGENT: &str = concat!("flowrun/", env!("CARGO_PKG_VERSION"));

/// The [`Transport`] that sends over the network: HTTP/1.1 on kept-alive connections,
/// `https://` via rustls.
pub struct HttpTransport {
    pool: Pool,
    max_body: usize,
}

/// The TLS settings of every connection flowrun makes (HTTP calls and the Pub/Sub API alike):
/// rustls with aws-lc-rs, the platform's certificate verifier.
pub fn tls_config() -> Result<rustls::ClientConfig, TransportError> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Other(format!("TLS setup: {e}")))?;
    Ok(
        rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(tls)
            .map_err(|e| TransportError::Other(format!("TLS setup: {e}")))?
            .with_no_client_auth(),
    )
}

/// A request as bytes, ready for a connection to `origin` (`scheme://authority`, what the pool
/// keys on).
struct Ready<'a> {
    origin: &'a str,
    bytes: Vec<u8>,
    /// A `HEAD` request: its answer has no body.
    head: bool,
    /// The flow said `Connection: close`: the connection is not used again.
    close: bool,
}

impl HttpTransport {
    /// A client with one connection pool for every request it sends. A flow names every URL it
    /// calls, so a redirect is reported as the status it is, never followed (a redirected POST
    /// would silently change meaning), and no proxy is consulted. The TLS settings are made
    /// when the first `https://` connection is opened ([`tls_config`]); if they cannot be, each
    /// `https://` request fails with the reason.
    pub fn new(max_body: usize) -> Self {
        HttpTransport {
            pool: Pool::new(),
            max_body,
        }
    }

    fn request<'a>(&self, req: &'a HttpRequest) -> Result<Ready<'a>, TransportError> {
        if !is_token(&req.method) {
            return Err(TransportError::Other(format!("invalid method `{}`", req.method)));
        }
        let target = split_url(&req.url)?;
        let (content_type, body) = encode(&req.body);
        let mut fields = Fields::with_capacity(req.headers.len() + 4);
        fields.set("user-agent", AGENT);
        for (k, v) in &req.headers {
            fields.flow_field(k, v)?;
        }
        if let Some(kind) = &content_type {
            // A flow's own Content-Type wins, but a multipart body needs the boundary it was
            // written with.
            if kind.starts_with("multipart/") || fields.get("content-type").is_none() {
                fields.set("content-type", kind.as_str());
            }
        }
        if fields.get("host").is_none() {
            fields.set("host", target.host);
        }
        let close = fields.get("connection").is_some_and(|v| lists(v, "close"));
        // On the wire the request line holds the path and query only; the host goes in `Host`.
        let bytes = request_bytes(&req.method, &target.path, fields, &body)?;
        Ok(Ready {
            origin: target.origin,
            head: req.method == "HEAD",
            close,
            bytes,
        })
    }

    async fn send_inner(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let ready = self.request(req)?;
        loop {
            let (mut conn, reused) = self.pool.take(ready.origin).await?;
            match conn.exchange(&ready.bytes, ready.head, self.max_body).await {
                Ok(answer) => {
                    if answer.reusable && !ready.close {
                        self.pool.give_back(ready.origin, conn);
                    }
                    return Ok(HttpResponse {
                        status: answer.status,
                        headers: answer.headers,
                        body: answer.body,
                    });
                }
                // Not a byte of it written on a connection the server had closed since its last
                // request: another connection takes it. A new one failing is the origin's
                // failure, so this ends.
                Err(failed) if failed.unsent && reused => continue,
                Err(failed) => return Err(failed.error),
            }
        }
    }
}

/// The innermost cause says what happened ("Connection refused"); the outer layers only say
/// which library noticed.
pub(super) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl Transport for HttpTransport {
    /// The same settings (TLS included, not made again) with connections of its own.
    fn fork(&self) -> Option<std::sync::Arc<dyn Transport>> {
        let fresh = HttpTransport {
            pool: self.pool.fork(),
            max_body: self.max_body,
        };
        Some(std::sync::Arc::new(fresh))
    }

    fn send<'a>(&'a self, request: &'a HttpRequest, timeout: Duration) -> SendFuture<'a> {
        Box::pin(async move {
            tokio::time::timeout(timeout, self.send_inner(request))
                .await
                .unwrap_or(Err(TransportError::Timeout(timeout)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Body;
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn get(url: String) -> HttpRequest {
        HttpRequest {
            step: String::new(),
            method: "GET".into(),
            url,
            headers: Vec::new(),
            body: Body::None,
        }
    }

    #[tokio::test]
    async fn https_speaks_tls_and_a_plain_http_answer_fails_to_connect() {
        // A server that answers in plain HTTP: an https:// request must not accept it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                // Whatever the client sends first (a request, or a TLS hello), the answer is
                // plain HTTP.
                let mut first = [0u8; 4096];
                let _ = socket.read(&mut first).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let fork = transport.pool.fork();
        let timeout = Duration::from_secs(5);
        let plain = transport
            .send(&get(format!("http://{addr}/")), timeout)
            .await
            .unwrap();
        assert_eq!(plain.status, 200);
        // Plain HTTP needs no TLS settings, so the system's certificates were not read.
        assert!(!transport.pool.tls_made());
        let error = transport
            .send(&get(format!("https://{addr}/")), timeout)
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::Connect(_)), "{error:?}");
        // Made for the first https:// connection, and shared with the pool's forks.
        assert!(transport.pool.tls_made() && fork.tls_made());
        let plain = transport
            .send(&get(format!("http://{addr}/")), timeout)
            .await
            .unwrap();
        assert_eq!(plain.status, 200);
    }

    /// A server that answers the first request of a connection, keeps it open without saying
    /// `Connection: close`, then drops it when the next request comes on it.
    async fn closes_reused_connections() -> std::net::SocketAddr {
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
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    // The second request on this connection: read it, answer nothing.
                    let _ = socket.read(&mut buf).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_reused_connection_closed_by_the_server_is_a_retryable_reset() {
        let addr = closes_reused_connections().await;
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let timeout = Duration::from_secs(5);
        let first = transport
            .send(&get(format!("http://{addr}/")), timeout)
            .await
            .unwrap();
        assert_eq!(first.status, 200);
        let error = transport
            .send(&get(format!("http://{addr}/")), timeout)
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::Reset(_)), "{error:?}");
        assert!(error.is_retryable());
        assert!(
            error
                .to_string()
                .starts_with("the connection closed before an answer came: "),
            "{error}"
        );
        // Sent again, it goes over a new connection and is answered.
        let again = transport
            .send(&get(format!("http://{addr}/")), timeout)
            .await
            .unwrap();
        assert_eq!(again.status, 200);
    }

    /// A server on 127.0.0.1 that hands each connection it accepts to `handle`, on a task of
    /// its own.
    async fn serve<F, Fut>(handle: F) -> std::net::SocketAddr
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(handle(socket));
            }
        });
        addr
    }

    /// What a test server does after answering a request.
    #[derive(Clone, Copy)]
    enum Then {
        /// Keeps the connection open for the next request.
        KeepOpen,
        /// Says `Connection: close` in the answer and closes.
        SayClose,
        /// Closes the connection without saying so.
        CloseSilently,
    }

    /// A server that answers every request `200` with `answer` as its body, records each
    /// request as received (head and body, as text) and counts the connections it accepted.
    async fn recording_server(
        answer: &'static str,
        then: Then,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use std::sync::atomic::Ordering::SeqCst;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (log, count) = (seen.clone(), connections.clone());
        let addr = serve(move |mut socket| {
            count.fetch_add(1, SeqCst);
            let log = log.clone();
            async move {
                while let Some(head) = read_head(&mut socket).await {
                    let length: usize = head
                        .to_lowercase()
                        .split("content-length: ")
                        .nth(1)
                        .and_then(|rest| rest.split("\r\n").next()?.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    if socket.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    log.lock().unwrap().push(head + &String::from_utf8_lossy(&body));
                    let close = if matches!(then, Then::SayClose) {
                        "connection: close\r\n"
                    } else {
                        ""
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\n{close}content-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                    if !matches!(then, Then::KeepOpen) {
                        return;
                    }
                }
            }
        })
        .await;
        (addr, seen, connections)
    }

    #[tokio::test]
    async fn requests_go_in_origin_form_with_a_host_header_and_reuse_one_connection() {
        let (addr, seen, connections) = recording_server("ok", Then::KeepOpen).await;
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let timeout = Duration::from_secs(5);
        let post = HttpRequest {
            step: String::new(),
            method: "POST".into(),
            url: format!("http://{addr}/api/v1/route?x=1"),
            headers: vec![("Authorization".into(), "Bearer t".into())],
            body: Body::Json(serde_json::json!({"a": 1})),
        };
        for _ in 0..3 {
            let answer = transport.send(&post, timeout).await.unwrap();
            assert_eq!((answer.status, answer.body.as_slice()), (200, &b"ok"[..]));
        }
        let answer = transport
            .send(&get(format!("http://localhost:{}", addr.port())), timeout)
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        let seen = seen.lock().unwrap().clone();
        let version = env!("CARGO_PKG_VERSION");
        let first = format!(
            "POST /api/v1/route?x=1 HTTP/1.1\r\nuser-agent: flowrun/{version}\r\nauthorization: Bearer t\r\n\
             content-type: application/json\r\nhost: {addr}\r\ncontent-length: 7\r\n\r\n{{\"a\":1}}"
        );
        assert_eq!(seen[..3], [first.clone(), first.clone(), first]);
        assert_eq!(
            seen[3],
            format!(
                "GET / HTTP/1.1\r\nuser-agent: flowrun/{version}\r\nhost: localhost:{}\r\n\r\n",
                addr.port()
            )
        );
        // `localhost` is another origin than `127.0.0.1`, so it has a connection of its own.
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_fork_sends_on_connections_of_its_own() {
        let (addr, seen, connections) = recording_server("ok", Then::KeepOpen).await;
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let fork = transport.fork().unwrap();
        let request = get(format!("http://{addr}/"));
        for _ in 0..2 {
            assert_eq!(
                transport
                    .send(&request, Duration::from_secs(5))
                    .await
                    .unwrap()
                    .status,
                200
            );
            assert_eq!(
                fork.send(&request, Duration::from_secs(5)).await.unwrap().status,
                200
            );
        }
        assert_eq!(seen.lock().unwrap().len(), 4);
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_flows_own_host_header_is_sent_as_given() {
        let (addr, seen, _) = recording_server("ok", Then::KeepOpen).await;
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let mut request = get(format!("http://{addr}/x"));
        request.headers.push(("Host".into(), "api.example.com".into()));
        transport.send(&request, Duration::from_secs(5)).await.unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen[0].contains("\r\nhost: api.example.com\r\n"), "{}", seen[0]);
        assert_eq!(seen[0].matches("host:").count(), 1, "{}", seen[0]);
    }

    #[tokio::test]
    async fn the_host_header_never_carries_a_urls_user_and_password() {
        let (addr, seen, _) = recording_server("ok", Then::KeepOpen).await;
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let url = format!("http://user:pw@127.0.0.1:{}/", addr.port());
        transport.send(&get(url), Duration::from_secs(5)).await.unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen[0].contains(&format!("\r\nhost: {addr}\r\n")), "{}", seen[0]);
        assert!(!seen[0].contains("pw"), "{}", seen[0]);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_not_used_again() {
        for then in [Then::SayClose, Then::CloseSilently] {
            let (addr, seen, connections) = recording_server("ok", then).await;
            let transport = HttpTransport::new(DEFAULT_MAX_BODY);
            let timeout = Duration::from_secs(5);
            for _ in 0..3 {
                let answer = transport
                    .send(&get(format!("http://{addr}/")), timeout)
                    .await
                    .unwrap();
                assert_eq!(answer.status, 200);
                // Time for the client to see a silent close before the next request.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(seen.lock().unwrap().len(), 3);
            assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3);
        }
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_fails_and_its_connection_is_not_used_again() {
        let (addr, seen, connections) = recording_server("0123456789", Then::KeepOpen).await;
        let transport = HttpTransport::new(4);
        let timeout = Duration::from_secs(5);
        let error = transport
            .send(&get(format!("http://{addr}/")), timeout)
            .await
            .unwrap_err();
        assert!(
            matches!(error, TransportError::TooLarge { limit: 4 }),
            "{error:?}"
        );
        let small = HttpTransport::new(DEFAULT_MAX_BODY);
        assert_eq!(
            small
                .send(&get(format!("http://{addr}/")), timeout)
                .await
                .unwrap()
                .status,
            200
        );
        let again = transport.send(&get(format!("http://{addr}/")), timeout).await;
        assert!(matches!(again, Err(TransportError::TooLarge { .. })), "{again:?}");
        assert_eq!(seen.lock().unwrap().len(), 3);
        // The refused answer's connection was not kept: the third request needed a new one.
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn requests_at_the_same_time_get_a_connection_each_and_keep_them() {
        let (addr, seen, connections) = recording_server("ok", Then::KeepOpen).await;
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let timeout = Duration::from_secs(5);
        let (a, b) = (get(format!("http://{addr}/a")), get(format!("http://{addr}/b")));
        for _ in 0..3 {
            let (a, b) = tokio::join!(transport.send(&a, timeout), transport.send(&b, timeout));
            assert_eq!((a.unwrap().status, b.unwrap().status), (200, 200));
        }
        assert_eq!(seen.lock().unwrap().len(), 6);
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Reads one request's head from `socket` (and nothing after it).
    async fn read_head(socket: &mut tokio::net::TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if socket.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    #[tokio::test]
    async fn a_connection_answered_before_its_upload_was_written_does_not_hold_up_the_next_request() {
        // The server answers as soon as it has a request's head. A small request's body is
        // read too; a large upload's never is, and its connection stays open, so the client
        // can never finish writing it.
        let addr = serve(|mut socket| async move {
            while let Some(head) = read_head(&mut socket).await {
                let _ = socket
                    .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
                    .await;
                if head.contains("content-length: ") && !head.contains("content-length: 0\r\n") {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let mut upload = get(format!("http://{addr}/upload"));
        upload.method = "POST".into();
        upload.body = Body::Json(Value::String("x".repeat(32 * 1024 * 1024)));
        let answer = transport.send(&upload, Duration::from_secs(5)).await.unwrap();
        assert_eq!(answer.status, 413);
        // Before, the busy connection went back to the pool and this request waited on it
        // until its timeout.
        let next = transport
            .send(&get(format!("http://{addr}/next")), Duration::from_secs(3))
            .await;
        assert_eq!(next.map(|a| a.status), Ok(413));
    }

    #[tokio::test]
    async fn an_answer_without_a_body_is_not_too_large_for_the_length_it_declares() {
        let addr = serve(|mut socket| async move {
            while read_head(&mut socket).await.is_some() {
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await;
            }
        })
        .await;
        let transport = HttpTransport::new(10);
        let mut head = get(format!("http://{addr}/"));
        head.method = "HEAD".into();
        for _ in 0..2 {
            let answer = transport.send(&head, Duration::from_secs(5)).await.unwrap();
            assert_eq!((answer.status, answer.body.len()), (200, 0));
        }
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let transport = HttpTransport::new(DEFAULT_MAX_BODY);
        let error = transport
            .send(&get(format!("http://{addr}/")), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "could not connect: Connection refused (os error 111)"
        );
    }
}
