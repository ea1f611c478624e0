//! The real transport: reqwest over rustls with one shared connection pool.

use super::{Body, HttpRequest, HttpResponse, SendFuture, Transport, TransportError};
use std::time::Duration;

/// Default cap on a response body.
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

pub struct ReqwestTransport {
    client: reqwest::Client,
    max_body: usize,
}

impl ReqwestTransport {
    pub fn new(max_body: usize) -> Result<Self, TransportError> {
        // A flow names every URL it calls: a redirect is reported as the status it is, not
        // followed (a redirected POST would silently change meaning), and no proxy is looked up
        // per request.
        let client = reqwest::Client::builder()
            .user_agent(concat!("flowrun/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| TransportError::Other(e.to_string()))?;
        Ok(ReqwestTransport { client, max_body })
    }

    async fn send_inner(&self, req: &HttpRequest, timeout: Duration) -> Result<HttpResponse, TransportError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| TransportError::Other(e.to_string()))?;
        let mut builder = self.client.request(method, &req.url).timeout(timeout);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        builder = match &req.body {
            Body::None => builder,
            Body::Json(v) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(v).unwrap_or_default()),
            Body::Form(fields) => builder.form(fields),
            Body::Multipart(parts) => {
                let mut form = reqwest::multipart::Form::new();
                for p in parts {
                    let mut part = reqwest::multipart::Part::bytes(p.bytes())
                        .mime_str(&p.content_type)
                        .map_err(|e| TransportError::Other(format!("part `{}`: {e}", p.name)))?;
                    if let Some(name) = &p.filename {
                        part = part.file_name(name.clone());
                    }
                    form = form.part(p.name.clone(), part);
                }
                builder.multipart(form)
            }
        };
        let mut response = builder.send().await.map_err(|e| classify(e, timeout))?;
        let status = response.status().as_u16();
        let headers = super::header_pairs(response.headers());
        if response
            .content_length()
            .is_some_and(|n| n as usize > self.max_body)
        {
            return Err(TransportError::TooLarge { limit: self.max_body });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, timeout))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(TransportError::TooLarge { limit: self.max_body });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn classify(e: reqwest::Error, timeout: Duration) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout(timeout)
    } else if e.is_connect() {
        // The innermost cause says what happened ("Connection refused").
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        TransportError::Connect(cause.to_string())
    } else {
        TransportError::Other(e.to_string())
    }
}

impl Transport for ReqwestTransport {
    fn send<'a>(&'a self, request: &'a HttpRequest, timeout: Duration) -> SendFuture<'a> {
        Box::pin(self.send_inner(request, timeout))
    }
}
