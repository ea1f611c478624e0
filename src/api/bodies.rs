//! `check`'s part: request bodies written literally in a flow, checked against the operation
//! they call. Values that templates fill in are unknown until run time and are left to `run`.

use crate::base::diagnostic::Diagnostic;
use crate::base::schema::{Locator, last_key};
use crate::base::source::Span;
use crate::base::yaml::{Document, push_pointer};
use serde_json::Value;

/// Places a body's problems in the flow file.
struct InFlow<'a> {
    doc: &'a Document,
    /// Pointer of the body inside the flow document.
    base: String,
    /// Pointers (inside the body) of values a template decides.
    templated: Vec<String>,
}

impl Locator for InFlow<'_> {
    fn key_span(&self, pointer: &str) -> Span {
        self.doc.key_span(&format!("{}{pointer}", self.base))
    }
    fn value_span(&self, pointer: &str) -> Span {
        self.doc.value_span(&format!("{}{pointer}", self.base))
    }
    fn context(&self, pointer: &str) -> String {
        if pointer.is_empty() {
            "the request body".into()
        } else {
            last_key(pointer)
        }
    }
    fn skip(&self, pointer: &str) -> bool {
        self.templated
            .iter()
            .any(|t| pointer == t || pointer.starts_with(&format!("{t}/")))
    }
}

fn templated(value: &Value, pointer: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains("{{") || s.contains("{%") => out.push(pointer.to_string()),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                templated(v, &push_pointer(pointer, &i.to_string()), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                templated(v, &push_pointer(pointer, k), out);
            }
        }
        _ => {}
    }
}

/// A warning for an `expect.status` that lists only successes the operation never answers:
/// `POST /api/v1/routingResult` answers 202, so `status: 200` fails every time on a real org.
fn undocumented_success(doc: &Document, pointer: &str, op: &super::Operation) -> Option<Diagnostic> {
    let statuses: Vec<u64> = match doc.value.pointer(pointer)? {
        Value::Number(n) => vec![n.as_u64()?],
        Value::Array(items) => items.iter().filter_map(Value::as_u64).collect(),
        _ => return None,
    };
    let successes = statuses.iter().all(|s| (200..300).contains(s));
    if statuses.is_empty() || !successes || statuses.contains(&u64::from(op.success)) {
        return None;
    }
    let listed: Vec<String> = statuses.iter().map(u64::to_string).collect();
    Some(
        Diagnostic::warning(
            "api-status",
            doc.value_span(pointer),
            format!(
                "{} answers {} on success, not {}",
                op.label(),
                op.success,
                listed.join(" or ")
            ),
        )
        .with_hint(format!(
            "the API description documents {} for this operation; expect `status: {}`",
            op.success, op.success
        )),
    )
}

/// Checks the literal parts of every step's body that calls an Interaction Service operation.
pub fn check_flow(doc: &Document) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for list in ["/steps", "/finally"] {
        check_steps(doc, list, &mut out);
    }
    out
}

/// Checks the steps of the list at `list`, and those of the steps files they call (mounted
/// under the calling step).
fn check_steps(doc: &Document, list: &str, out: &mut Vec<Diagnostic>) {
    let Some(steps) = doc.value.pointer(list).and_then(Value::as_array) else {
        return;
    };
    for (i, step) in steps.iter().enumerate() {
        if step.get("call").is_some() {
            check_steps(doc, &format!("{list}/{i}/steps"), out);
            continue;
        }
        let request = step.get("request");
        let method = request
            .and_then(|r| r.get("method"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = request
            .and_then(|r| r.get("path"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if path.contains('{') {
            continue;
        }
        let Some(op) = super::operation(method, path) else {
            continue;
        };
        if let Some(d) = undocumented_success(doc, &format!("{list}/{i}/expect/status"), op) {
            out.push(d);
        }
        let base = format!("{list}/{i}/request");
        let (base, body) = match op.json_part {
            Some(part) => {
                let p = format!("{base}/multipart/{part}/json");
                (p.clone(), doc.value.pointer(&p))
            }
            None => (format!("{base}/json"), doc.value.pointer(&format!("{base}/json"))),
        };
        let Some(body) = body else { continue };
        let mut skip = Vec::new();
        templated(body, "", &mut skip);
        if skip.iter().any(String::is_empty) {
            continue;
        }
        let loc = InFlow {
            doc,
            base,
            templated: skip,
        };
        out.extend(op.check(&loc, body).into_iter().map(|mut d| {
            d.code = "api-body";
            d.message = format!("{} (in the body of {})", d.message, op.label());
            d
        }));
    }
}
