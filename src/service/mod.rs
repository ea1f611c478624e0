//! `flowrun serve`: a long-running service that runs a flow for each event it receives.
//!
//! A service file (`kind: service`) declares where events come from (`sources`) and what each
//! event runs (`on`: a condition, a flow, the flow's inputs as expressions over the event).
//! This folder holds the service file's model and its check, the runtime that takes events,
//! and the sources: the Pub/Sub subscriber and the webhook.

pub(crate) mod check;
pub(crate) mod event;
pub(crate) mod listen;
pub(crate) mod log;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod runtime;
pub mod subscriber;
pub mod webhook;

pub use check::check_service;
pub use listen::{READ_TIMEOUT, serve};
pub use log::Logger;
pub use model::{PubSub, Service, WebhookAuth};
pub use runtime::{LEASE, Runtime};

use crate::base::diagnostic::Diagnostic;
use crate::base::source::Source;
use crate::base::yaml::{self, Document};
use serde_json::Value;

/// Checks `source` when it is a service file: every problem, sorted; `None` for any other file
/// (a flow, a connection or steps file: `flow::check_file` checks those).
pub fn check_file(source: &Source) -> Option<Vec<Diagnostic>> {
    // Most files are flows: parse only what could be a service file.
    if !(source.text.contains("kind") && source.text.contains("service")) {
        return None;
    }
    let (doc, mut out) = yaml::load(&source.text);
    let doc = doc?;
    if !is_service_file(&doc) {
        return None;
    }
    out.extend(check_service(source, &doc));
    out.sort_by_key(|d| d.span.start);
    Some(out)
}

/// Loads and checks a service file; on any error, every diagnostic.
pub fn load(source: &Source) -> Result<Service, Vec<Diagnostic>> {
    let not_service = || {
        vec![
            Diagnostic::error("not-a-service", Default::default(), "this is not a service file")
                .with_hint("a service file has `kind: service`; `flowrun run` runs a flow"),
        ]
    };
    let problems = check_file(source).ok_or_else(not_service)?;
    if problems.iter().any(Diagnostic::is_error) {
        return Err(problems);
    }
    let (doc, _) = yaml::load(&source.text);
    let doc = doc.ok_or_else(not_service)?;
    serde_json::from_value(doc.value).map_err(|e| {
        vec![Diagnostic::error(
            "internal",
            Default::default(),
            format!("flowrun could not read this checked service file: {e}"),
        )]
    })
}

/// Whether a loaded document is a service file (`kind: service`).
pub fn is_service_file(doc: &Document) -> bool {
    doc.value.get("kind").and_then(Value::as_str) == Some("service")
}
