//! The real transport: HTTP/1.1 over hyper, `https://` via rustls, connections kept alive by
//! [`Pool`].
//!
//! Why hyper rather than reqwest (which is built on it): on the bench stub, one request through
//! reqwest cost 59 µs of CPU and the same request through hyper-util's pooled client 40 µs, and
//! flowrun turns off everything reqwest adds (redirects, proxies, cookies, decompression). HTTP,
//! connecting and TLS are the maintained crates'; only which connection a request goes on is
//! ours (`pool.rs` says why).

use super::pool::Pool;
use super::{HttpRequest, HttpResponse, SendFuture, Transport, TransportError, encode::encode};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use http::uri::{Parts, PathAndQuery};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::Duration;

/// Default cap on a response body.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

const AGENT: &str = concat!("flowrun/", env!("CARGO_PKG_VERSION"));

/// The [`Transport`] that sends over the network: HTTP/1.1 on kept-alive connections,
/// `https://` via rustls.
pub struct HttpTransport {
    pool: Pool,
    max_body: usize,
    /// Kept for forks: building it reads and parses every certificate the system trusts,
    /// which cost more than a thousand requests (11M instructions).
    tls: rustls::ClientConfig,
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

/// A request ready for a connection to `origin` (`scheme://authority`, what the pool keys on).
struct Ready {
    origin: String,
    /// The absolute URI, which connecting needs.
    uri: http::Uri,
    request: http::Request<Full<Bytes>>,
}

impl HttpTransport {
    /// A client with one connection pool for every request it sends. A flow names every URL it
    /// calls, so a redirect is reported as the status it is, never followed (a redirected POST
    /// would silently change meaning), and no proxy is consulted.
    pub fn new(max_body: usize) -> Result<Self, TransportError> {
        Ok(Self::with_tls(tls_config()?, max_body))
    }

    fn with_tls(tls: rustls::ClientConfig, max_body: usize) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        HttpTransport {
            pool: Pool::new(https),
            max_body,
            tls,
        }
    }

    fn request(&self, req: &HttpRequest) -> Result<Ready, TransportError> {
        let method = http::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| TransportError::Other(format!("invalid method `{}`", req.method)))?;
        let uri: http::Uri = req
            .url
            .parse()
            .map_err(|e| TransportError::Other(format!("invalid URL `{}`: {e}", req.url)))?;
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(TransportError::Other(format!(
                "invalid URL `{}`: not an absolute http:// or https:// URL",
                req.url
            )));
        };
        let authority = uri.authority().map_or(host, |a| a.as_str());
        let origin = [scheme, "://", authority].concat();
        let (content_type, body) = encode(&req.body);
        let mut request = http::Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = method;
        // On the wire the request line holds the path and query only; the host goes in `Host`.
        let mut path = Parts::default();
        path.path_and_query = Some(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        *request.uri_mut() = http::Uri::from_parts(path)
            .map_err(|e| TransportError::Other(format!("invalid URL `{}`: {e}", req.url)))?;
        let headers = request.headers_mut();
        headers.reserve(req.headers.len() + 3);
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| TransportError::Other(format!("invalid header name `{k}`")))?;
            // The value may be a token: the error does not repeat it.
            let value = HeaderValue::from_str(v)
                .map_err(|_| TransportError::Other(format!("header `{k}` has a value HTTP cannot carry")))?;
            headers.insert(name, value);
        }
        if let Some(kind) = content_type {
            // A flow's own Content-Type wins, but a multipart body needs the boundary it was
            // written with.
            let multipart = kind.starts_with("multipart/");
            if multipart || !headers.contains_key(CONTENT_TYPE) {
                let value = HeaderValue::from_str(&kind)
                    .map_err(|_| TransportError::Other(format!("invalid content type `{kind}`")))?;
                headers.insert(CONTENT_TYPE, value);
            }
        }
        // Last, as hyper-util's client added it: the bytes on the wire stay as they were.
        if !headers.contains_key(HOST) {
            // The port only when it is not the scheme's own, as browsers and curl write it.
            let default_port = if scheme == "https" { 443 } else { 80 };
            let value = match uri.port_u16() {
                // `host:port`, without any `user:password@` before it.
                Some(port) if port != default_port => {
                    HeaderValue::from_str(authority.rsplit('@').next().unwrap_or(authority))
                }
                _ => HeaderValue::from_str(host),
            };
            let value =
                value.map_err(|_| TransportError::Other(format!("invalid host in URL `{}`", req.url)))?;
            headers.insert(HOST, value);
        }
        Ok(Ready { origin, uri, request })
    }

    async fn send_inner(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let Ready {
            origin,
            uri,
            mut request,
        } = self.request(req)?;
        let (sender, response) = loop {
            let (mut sender, reused) = self.pool.take(&origin, &uri).await?;
            match sender.try_send_request(request).await {
                Ok(response) => break (sender, response),
                Err(mut e) => match e.take_message() {
                    // Given back unsent by a connection the server had closed since its last
                    // request: another connection takes it. A new one failing is the origin's
                    // failure, so this ends.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(classify(e.into_error())),
                },
            }
        };
        let (parts, body) = response.into_parts();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let too_large = TransportError::TooLarge { limit: self.max_body };
        // An answer without a body (to HEAD, a 304) may still declare the length it would have.
        if declared.is_some_and(|n| n > self.max_body) && !hyper::body::Body::is_end_stream(&body) {
            // Not read: the connection closes with `sender`.
            return Err(too_large);
        }
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large
                } else {
                    TransportError::Other(innermost(&*e))
                }
            })?
            .to_bytes();
        // Read whole: the connection can carry the next request.
        self.pool.give_back(&origin, sender);
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers: super::header_pairs(&parts.headers),
            body: Vec::from(body),
        })
    }
}

fn classify(e: hyper::Error) -> TransportError {
    if closed_early(&e) {
        TransportError::Reset(innermost(&e))
    } else {
        TransportError::Other(innermost(&e))
    }
}

/// Whether the connection went away before a response began: the server closed or reset it
/// (typically a kept-alive one it had dropped meanwhile).
fn closed_early(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            )
        {
            return true;
        }
        cause = c.source();
    }
    false
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
    /// The same settings (TLS included, not read again) with connections of its own.
    fn fork(&self) -> Option<std::sync::Arc<dyn Transport>> {
        let fresh = HttpTransport::with_tls(self.tls.clone(), self.max_body);
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
        let timeout = Duration::from_secs(5);
        let error = transport
            .send(&get(format!("https://{addr}/")), timeout)
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::Connect(_)), "{error:?}");
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
            let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(4).unwrap();
        let timeout = Duration::from_secs(5);
        let error = transport
            .send(&get(format!("http://{addr}/")), timeout)
            .await
            .unwrap_err();
        assert!(
            matches!(error, TransportError::TooLarge { limit: 4 }),
            "{error:?}"
        );
        let small = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
        let transport = HttpTransport::new(10).unwrap();
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
        let transport = HttpTransport::new(DEFAULT_MAX_BODY).unwrap();
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
