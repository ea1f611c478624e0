//! Sending requests: the [`Transport`] trait, its HTTP/1.1 implementation, and auth providers.
//! Nothing here knows flow syntax.

pub mod auth;
mod client;
mod conn;
mod encode;
mod head;
mod pool;

pub use client::{DEFAULT_MAX_BODY, HttpTransport, tls_config};

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A request, fully rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// The flow step sending it (empty for the token request), so a scripted transport can
    /// answer per step.
    pub step: String,
    /// HTTP method, such as `GET` or `POST`; not checked until sent.
    pub method: String,
    /// Absolute URL, query included.
    pub url: String,
    /// Header names and values, in order, each name once (a step's header replaces the flow's).
    pub headers: Vec<(String, String)>,
    /// The body; it sets `Content-Type` unless a header does (multipart always sets it).
    pub body: Body,
}

/// A request body before encoding; each kind brings its own `Content-Type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body at all.
    None,
    /// Sent as `application/json`.
    Json(Value),
    /// Name/value pairs sent as `application/x-www-form-urlencoded`, in order.
    Form(Vec<(String, String)>),
    /// Parts sent as `multipart/form-data` with a fresh boundary.
    Multipart(Vec<Part>),
}

/// One multipart part.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Form field name, in the part's `Content-Disposition`.
    pub name: String,
    /// The part's `Content-Type` (the flow's, else one chosen by the content's kind).
    pub content_type: String,
    /// File name in the part's `Content-Disposition`, if any (a file part defaults to its own).
    pub filename: Option<String>,
    /// What the part carries.
    pub content: PartContent,
}

/// What one multipart part carries.
#[derive(Debug, Clone, PartialEq)]
pub enum PartContent {
    /// A JSON value, serialized compactly.
    Json(Value),
    /// Text sent as is.
    Text(String),
    /// A file's bytes, read before the first attempt; `path` is kept for reports.
    File {
        /// Path as the flow wrote it, relative to the flow's directory.
        path: String,
        /// The file's contents.
        bytes: Vec<u8>,
    },
}

/// A response as received.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    /// Body bytes as received ([`HttpTransport`] stops at its `max_body`).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Value of the first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON when it parses, else as text (null when empty).
    pub fn body_value(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        // Checked as UTF-8 whole first: cheaper than serde_json checking each string it reads.
        std::str::from_utf8(&self.body)
            .ok()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No connection could be made (refused, DNS, TLS); holds the innermost cause.
    Connect(String),
    /// The connection closed before an answer came: most often a reused keep-alive connection
    /// the server had already dropped. The request can be sent again, identical.
    Reset(String),
    /// No complete response within this timeout.
    Timeout(Duration),
    /// The response body is over the size cap.
    TooLarge {
        /// The cap, in bytes (`--max-body`).
        limit: usize,
    },
    /// Anything else, such as an invalid URL, method or header; not retried.
    Other(String),
}

impl TransportError {
    /// Connect errors, resets and timeouts may succeed on another attempt; the rest will not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Connect(_) | TransportError::Reset(_) | TransportError::Timeout(_)
        )
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Connect(e) => write!(f, "could not connect: {e}"),
            TransportError::Reset(e) => write!(f, "the connection closed before an answer came: {e}"),
            TransportError::Timeout(d) => write!(f, "no response within {} ms", d.as_millis()),
            TransportError::TooLarge { limit } => {
                write!(
                    f,
                    "response body is larger than the {limit}-byte limit (see --max-body)"
                )
            }
            TransportError::Other(e) => write!(f, "{e}"),
        }
    }
}

/// The future [`Transport::send`] returns: one response or why none came.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'a>>;

/// Sends one request and returns its response.
pub trait Transport: Send + Sync {
    /// Sends `request`, giving up with [`TransportError::Timeout`] after `timeout`.
    fn send<'a>(&'a self, request: &'a HttpRequest, timeout: Duration) -> SendFuture<'a>;

    /// A transport like this one with connections of its own, for another thread: a batch gives
    /// each worker thread its own pool so a request never waits on a connection driven by
    /// another thread. `None` (the default) shares this one.
    fn fork(&self) -> Option<std::sync::Arc<dyn Transport>> {
        None
    }
}

/// Header names and values as text, in order (a value that is not UTF-8 is shown lossily).
pub fn header_pairs(map: &http::HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A warning for a URL that sends requests (and tokens) unencrypted to another machine:
/// plain `http://` to a host that is not loopback.
pub fn plain_http_warning(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (url.scheme() == "http" && !loopback).then(|| {
        format!(
            "{} is plain HTTP to a host that is not this machine: requests and tokens travel unencrypted",
            url.origin().ascii_serialization()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{HttpResponse, plain_http_warning};

    #[test]
    fn a_body_reads_as_json_when_it_parses_else_as_text() {
        let body = |bytes: &[u8]| {
            HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: bytes.to_vec(),
            }
            .body_value()
        };
        assert_eq!(body(b""), serde_json::Value::Null);
        assert_eq!(
            body(b"{\"a\": [1, \"\xc3\xa9\"]}"),
            serde_json::json!({"a": [1, "é"]})
        );
        assert_eq!(body(b"<html>"), serde_json::json!("<html>"));
        assert_eq!(body(b"\"bad \xff\""), serde_json::json!("\"bad \u{fffd}\""));
    }

    #[test]
    fn plain_http_is_warned_about_unless_it_stays_on_this_machine() {
        assert_eq!(
            plain_http_warning("http://example.com:8080/api").as_deref(),
            Some(
                "http://example.com:8080 is plain HTTP to a host that is not this machine: requests and tokens travel unencrypted"
            )
        );
        for quiet in [
            "https://example.com/",
            "http://127.0.0.1:9/x",
            "http://localhost/",
            "http://[::1]:80/",
            "http://127.9.9.9/",
        ] {
            assert_eq!(plain_http_warning(quiet), None, "{quiet}");
        }
    }
}
