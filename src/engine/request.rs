//! Rendering one step's request: URL with query, merged headers, body.

use crate::expr::context::Context;
use crate::expr::templates::{RenderError, Tree};
use crate::flow::compile::{BodySpec, CompiledFlow, CompiledStep, PartKind};
use crate::http::{Body, HttpRequest, Part, PartContent};
use serde_json::Value;

/// Why a request could not be built; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// A template could not be rendered.
    Render(RenderError),
    /// The joined URL does not parse.
    Url {
        /// The URL as joined from the base URL and the path.
        url: String,
        /// The parser's error.
        reason: String,
    },
    /// A `file` part could not be read.
    File {
        /// The path as rendered, relative to the flow file's directory.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Render(e) => write!(f, "{e}"),
            BuildError::Url { url, reason } => write!(f, "invalid URL `{url}`: {reason}"),
            BuildError::File { path, reason } => write!(f, "cannot read file part `{path}`: {reason}"),
        }
    }
}

impl From<RenderError> for BuildError {
    fn from(e: RenderError) -> Self {
        BuildError::Render(e)
    }
}

fn text(flow: &CompiledFlow, tree: &Tree, ctx: &Context) -> Result<String, RenderError> {
    Ok(match flow.templates.render_tree(tree, ctx)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// The step's URL: the base URL, the rendered path, the rendered query.
fn url(
    flow: &CompiledFlow,
    step: &CompiledStep,
    base_url: &str,
    ctx: &Context,
) -> Result<String, BuildError> {
    let fixed = matches!(step.path, Tree::Literal(_)) && step.query.is_empty();
    if fixed
        && let Some((base, url)) = step.joined_url.get()
        && base == base_url
    {
        return Ok(url.clone());
    }
    let path = text(flow, &step.path, ctx)?;
    let joined = format!(
        "{}/{}",
        base_url.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let mut url = url::Url::parse(&joined).map_err(|e| BuildError::Url {
        url: joined.clone(),
        reason: e.to_string(),
    })?;
    if !step.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in &step.query {
            pairs.append_pair(k, &text(flow, v, ctx)?);
        }
    }
    let url = url.to_string();
    if fixed {
        let _ = step.joined_url.set((base_url.to_string(), url.clone()));
    }
    Ok(url)
}

/// Builds the request of `step`. Headers rendered here (a `RequestId` from `uuid()`) are kept
/// for every retry, since the engine sends this same request on each attempt.
pub fn build(
    flow: &CompiledFlow,
    step: &CompiledStep,
    base_url: &str,
    ctx: &Context,
) -> Result<HttpRequest, BuildError> {
    let url = url(flow, step, base_url, ctx)?;
    // Room for `Authorization`, added when the request is sent.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(flow.headers.len() + step.headers.len() + 1);
    for (k, v) in flow.headers.iter().chain(&step.headers) {
        let value = text(flow, v, ctx)?;
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        headers.push((k.clone(), value));
    }
    let body = match &step.body {
        BodySpec::None => Body::None,
        BodySpec::Json(tree) => Body::Json(flow.templates.render_tree(tree, ctx)?),
        BodySpec::Form(fields) => Body::Form(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), text(flow, v, ctx)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        BodySpec::Multipart(parts) => {
            let mut out = Vec::new();
            for p in parts {
                let filename = p.filename.as_ref().map(|f| text(flow, f, ctx)).transpose()?;
                let (content, default_type, filename) = match &p.kind {
                    PartKind::Json(t) => (
                        PartContent::Json(flow.templates.render_tree(t, ctx)?),
                        "application/json",
                        filename,
                    ),
                    PartKind::Text(t) => (PartContent::Text(text(flow, t, ctx)?), "text/plain", filename),
                    PartKind::File(t) => {
                        let path = text(flow, t, ctx)?;
                        let full = flow.base_dir.join(&path);
                        let bytes = std::fs::read(&full).map_err(|e| BuildError::File {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                        let name =
                            filename.or_else(|| full.file_name().map(|n| n.to_string_lossy().into_owned()));
                        (
                            PartContent::File { path, bytes },
                            "application/octet-stream",
                            name,
                        )
                    }
                };
                out.push(Part {
                    name: p.name.clone(),
                    content_type: p.content_type.clone().unwrap_or_else(|| default_type.to_string()),
                    filename,
                    content,
                });
            }
            Body::Multipart(out)
        }
    };
    Ok(HttpRequest {
        step: step.id.clone(),
        method: step.method.clone(),
        url,
        headers,
        body,
    })
}
