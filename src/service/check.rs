//! Checking a service file: its shape (against `schemas/service.schema.json`), then what the
//! schema cannot say — each handler's flow loads and passes `check`, its inputs are the flow's
//! (every required one given), and every expression compiles and reads only `event`,
//! `payload` and the functions.

use super::is_service_file;
use crate::base::diagnostic::Diagnostic;
use crate::base::schema::validate;
use crate::base::source::{Source, Span};
use crate::base::suggest::did_you_mean;
use crate::base::yaml::{Document, push_pointer};
use crate::expr::{self, BUILTIN_GLOBALS, FUNCTIONS};
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;

/// The service schema users see, compiled into the binary so `check` and the editor agree.
pub const SERVICE_SCHEMA: &str = include_str!("../../schemas/service.schema.json");

/// What handlers' expressions read.
const ROOTS: &[&str] = &["event", "payload"];

fn schema() -> &'static (Value, jsonschema::Validator) {
    static COMPILED: OnceLock<(Value, jsonschema::Validator)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let schema: Value = serde_json::from_str(SERVICE_SCHEMA).expect("service schema is valid JSON");
        let validator = jsonschema::draft202012::new(&schema).expect("service schema compiles");
        (schema, validator)
    })
}

/// Every problem of the service file `doc` (loaded from `source`).
pub fn check_service(source: &Source, doc: &Document) -> Vec<Diagnostic> {
    debug_assert!(is_service_file(doc));
    let (schema, validator) = schema();
    let mut out = validate(doc, schema, validator, &doc.value);
    for ptr in ["/event/type_field", "/event/payload_field"]
        .into_iter()
        .map(String::from)
        .chain(source_templates())
    {
        if let Some(text) = doc.value.pointer(&ptr).and_then(Value::as_str) {
            template(doc, &ptr, text, &mut out);
        }
    }
    let handlers = doc.value.get("on").and_then(Value::as_array);
    for (i, handler) in handlers.into_iter().flatten().enumerate() {
        let ptr = format!("/on/{i}");
        if let Some(when) = handler.get("when").and_then(Value::as_str) {
            expression(doc, &push_pointer(&ptr, "when"), when, &mut out);
        }
        let inputs = handler.get("inputs").and_then(Value::as_object);
        for (name, v) in inputs.into_iter().flatten() {
            if let Some(text) = v.as_str() {
                expression(doc, &format!("{ptr}/inputs/{name}"), text, &mut out);
            }
        }
        if let Some(flow) = handler.get("flow").and_then(Value::as_str) {
            flow_inputs(source, doc, &ptr, flow, &mut out);
        }
    }
    out
}

/// The templates under `sources`, rendered when the service starts.
fn source_templates() -> Vec<String> {
    let mut out = Vec::new();
    for (source, keys) in [
        (
            "pubsub",
            &[
                "url",
                "topic",
                "instance_url",
                "org_id",
                "access_token",
                "jwt_bearer/token_url",
                "jwt_bearer/client_id",
                "jwt_bearer/username",
                "jwt_bearer/audience",
                "jwt_bearer/private_key",
            ][..],
        ),
        ("webhook", &["auth/bearer", "auth/hmac"][..]),
    ] {
        for key in keys {
            out.push(format!("/sources/{source}/{key}"));
        }
    }
    out
}

/// A template rendered when the service starts: it reads only `env()` and `secret()`.
fn template(doc: &Document, ptr: &str, text: &str, out: &mut Vec<Diagnostic>) {
    let span = doc.value_span(ptr);
    match expr::check_environment().template_from_str(text) {
        Err(e) => out.push(syntax(span, &e)),
        Ok(t) => {
            for name in t.undeclared_variables(false) {
                if !FUNCTIONS.contains(&name.as_str()) && !BUILTIN_GLOBALS.contains(&name.as_str()) {
                    out.push(
                        Diagnostic::error("unknown-name", span, format!("`{name}` cannot be read here"))
                            .with_hint("this is read once when the service starts: use `env('NAME')` or `secret('NAME')`"),
                    );
                }
            }
        }
    }
}

/// A bare expression over an event: it compiles and reads only `event`, `payload` and the
/// functions.
fn expression(doc: &Document, ptr: &str, text: &str, out: &mut Vec<Diagnostic>) {
    let span = doc.value_span(ptr);
    if text.trim_start().starts_with("{{") {
        out.push(
            Diagnostic::error(
                "braces-in-expression",
                span,
                "this is a bare expression: write it without `{{ }}`",
            )
            .with_hint(format!(
                "`{}`",
                text.trim().trim_start_matches("{{").trim_end_matches("}}").trim()
            )),
        );
        return;
    }
    match expr::check_environment().compile_expression(text) {
        Err(e) => out.push(syntax(span, &e)),
        Ok(compiled) => {
            let mut names: Vec<String> = compiled.undeclared_variables(false).into_iter().collect();
            names.sort();
            for name in names {
                let known = ROOTS.contains(&name.as_str())
                    || FUNCTIONS.contains(&name.as_str())
                    || BUILTIN_GLOBALS.contains(&name.as_str());
                if !known {
                    let hint = did_you_mean(&name, ROOTS.iter().copied()).unwrap_or_else(|| {
                        "a handler reads `event` (its fields, `event.id`, `event.type`) and `payload` (the payload field, parsed)".into()
                    });
                    out.push(
                        Diagnostic::error("unknown-name", span, format!("unknown name `{name}`"))
                            .with_hint(hint),
                    );
                }
            }
        }
    }
}

fn syntax(span: Span, e: &minijinja::Error) -> Diagnostic {
    let detail = e.detail().unwrap_or("invalid syntax");
    Diagnostic::error("template-syntax", span, format!("syntax error: {detail}"))
}

/// The handler's flow passes `check`, and the handler's inputs are the flow's: each one
/// declared, every required one given.
fn flow_inputs(source: &Source, doc: &Document, ptr: &str, flow: &str, out: &mut Vec<Diagnostic>) {
    let at = doc.value_span(&push_pointer(ptr, "flow"));
    let path = source.path.parent().unwrap_or(Path::new("")).join(flow);
    let flow_source = match Source::read(&path) {
        Ok(s) => s,
        Err(e) => {
            let why = crate::base::source::read_error(&e);
            out.push(
                Diagnostic::error(
                    "unknown-flow",
                    at,
                    format!("cannot read the flow {}: {why}", path.display()),
                )
                .with_hint(format!("`flow` is a path relative to {}", source.path.display())),
            );
            return;
        }
    };
    let checked = match crate::flow::load_checked(&flow_source) {
        Ok(c) => c,
        Err(problems) => {
            let errors = problems.iter().filter(|d| d.is_error()).count();
            out.push(
                Diagnostic::error(
                    "flow-has-errors",
                    at,
                    format!(
                        "the flow {} has {errors} error{}",
                        path.display(),
                        if errors == 1 { "" } else { "s" }
                    ),
                )
                .with_hint(format!("`flowrun check {}` shows them", path.display())),
            );
            return;
        }
    };
    let declared = &checked.flow.inputs;
    let given = doc
        .value
        .pointer(&push_pointer(ptr, "inputs"))
        .and_then(Value::as_object);
    for name in given.into_iter().flatten().map(|(k, _)| k) {
        if declared.get(name).is_none() {
            let names = declared.iter().map(|(k, _)| k.as_str());
            let hint = did_you_mean(name, names).unwrap_or_else(|| {
                let all: Vec<&str> = declared.iter().map(|(k, _)| k.as_str()).collect();
                format!("its inputs: {}", all.join(", "))
            });
            let span = doc.key_span(&format!("{ptr}/inputs/{name}"));
            out.push(
                Diagnostic::error(
                    "unknown-input",
                    span,
                    format!("the flow {flow} has no input `{name}`"),
                )
                .with_hint(hint),
            );
        }
    }
    let fill = doc.value.pointer(&push_pointer(ptr, "fill"));
    let filled: Vec<&str> = fill
        .and_then(|f| f.get("inputs"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(fill) = fill {
        fill_from(source, doc, ptr, fill, &checked.flow, out);
    }
    for (name, input) in declared.iter() {
        let mapped = given.is_some_and(|g| g.contains_key(name)) || filled.contains(&name.as_str());
        if input.is_required() && !mapped {
            out.push(
                Diagnostic::error(
                    "missing-input",
                    at,
                    format!("the flow {flow} requires the input `{name}`, which this handler does not give"),
                )
                .with_hint(format!(
                    "add `{name}:` under `inputs:`, an expression over `event` and `payload`"
                )),
            );
        }
    }
}

/// A handler's `fill`: its `match` and `inputs` are inputs of the handler's flow, and outputs
/// of the earlier flow `from`, which must load and pass `check`.
fn fill_from(
    source: &Source,
    doc: &Document,
    ptr: &str,
    fill: &Value,
    flow: &crate::flow::model::Flow,
    out: &mut Vec<Diagnostic>,
) {
    let ptr = push_pointer(ptr, "fill");
    let (Some(from), Some(matching)) = (
        fill.get("from").and_then(Value::as_str),
        fill.get("match").and_then(Value::as_str),
    ) else {
        return;
    };
    let names = fill.get("inputs").and_then(Value::as_array);
    let mut wanted: Vec<(String, &str)> = vec![(push_pointer(&ptr, "match"), matching)];
    for (i, name) in names.into_iter().flatten().enumerate() {
        if let Some(name) = name.as_str() {
            wanted.push((format!("{ptr}/inputs/{i}"), name));
        }
    }
    for (at, name) in &wanted {
        if flow.inputs.get(name).is_none() {
            let hint = did_you_mean(name, flow.inputs.iter().map(|(k, _)| k.as_str()))
                .unwrap_or_else(|| "`fill` names inputs of the handler's flow".into());
            out.push(
                Diagnostic::error(
                    "unknown-input",
                    doc.value_span(at),
                    format!("the flow has no input `{name}`"),
                )
                .with_hint(hint),
            );
        }
    }
    let at = doc.value_span(&push_pointer(&ptr, "from"));
    let path = source.path.parent().unwrap_or(Path::new("")).join(from);
    let earlier = Source::read(&path)
        .map_err(|e| crate::base::source::read_error(&e))
        .and_then(|s| {
            crate::flow::load_checked(&s)
                .map_err(|_| "it has errors (`flowrun check` shows them)".to_string())
        });
    let earlier = match earlier {
        Ok(c) => c,
        Err(why) => {
            out.push(
                Diagnostic::error(
                    "unknown-flow",
                    at,
                    format!("cannot use the flow {}: {why}", path.display()),
                )
                .with_hint(format!("`from` is a path relative to {}", source.path.display())),
            );
            return;
        }
    };
    for (ptr, name) in &wanted {
        if earlier.flow.outputs.get(name).is_none() {
            let all: Vec<&str> = earlier.flow.outputs.iter().map(|(k, _)| k.as_str()).collect();
            out.push(
                Diagnostic::error(
                    "unknown-output",
                    doc.value_span(ptr),
                    format!("the flow {from} has no output `{name}` to take it from"),
                )
                .with_hint(format!("its outputs: {}", all.join(", "))),
            );
        }
    }
}
