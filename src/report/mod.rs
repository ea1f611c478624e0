//! Reporters: terminal lines, the JSON report, JUnit XML and the normalised request transcript.
//! They read a finished [`RunReport`](crate::engine::outcome::RunReport) (or live events) and
//! pass every piece of text through the secret registry before it leaves the process.

pub mod json;
pub mod junit;
pub mod terminal;
pub mod transcript;

use crate::http::{Body, HttpRequest, PartContent};
use serde_json::{Map, Value, json};

/// A request as reports show it: method, URL path, query, headers sorted by name, and the body
/// as JSON (multipart parts as a list). Secrets are not removed here; callers redact.
pub fn request_json(request: &HttpRequest) -> Value {
    let (path, query) = match url::Url::parse(&request.url) {
        Ok(u) => (
            u.path().to_string(),
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        ),
        Err(_) => (request.url.clone(), Map::new()),
    };
    let mut headers: Vec<&(String, String)> = request.headers.iter().collect();
    headers.sort_by_key(|(k, _)| k.to_ascii_lowercase());
    let headers: Map<String, Value> = headers
        .into_iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut out = json!({ "method": request.method, "path": path });
    if !query.is_empty() {
        out["query"] = Value::Object(query);
    }
    out["headers"] = Value::Object(headers);
    match &request.body {
        Body::None => {}
        Body::Json(v) => out["json"] = v.clone(),
        Body::Form(fields) => {
            out["form"] = Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        }
        Body::Multipart(parts) => {
            out["multipart"] = parts
                .iter()
                .map(|p| {
                    let mut part = json!({ "name": p.name, "content_type": p.content_type });
                    if let Some(f) = &p.filename {
                        part["filename"] = json!(f);
                    }
                    match &p.content {
                        PartContent::Json(v) => part["json"] = v.clone(),
                        PartContent::Text(t) => part["text"] = json!(t),
                        PartContent::File { path, bytes } => {
                            part["file"] = json!(path);
                            part["bytes"] = json!(bytes.len());
                        }
                    }
                    part
                })
                .collect();
        }
    }
    out
}
