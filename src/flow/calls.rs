//! Steps files: shared steps with parameters, called from a flow like a function.
//!
//! A steps file (`kind: steps`) declares `params` (typed like inputs) and `steps`. A step with
//! `call: FILE` and `with: { param: value }` runs the file's steps in its place. The called
//! file's `params` and `steps` are mounted under the calling step, so the analyzer, the
//! compiler and every diagnostic see them with the spans of the file they are written in. A
//! steps file may call another; a cycle, a missing file or a file of another kind is a
//! diagnostic at the `call` that names it.

use super::includes::{self, Kind, Link, Opened};
use crate::base::diagnostic::Diagnostic;
use crate::base::yaml::{self, Document};
use serde_json::Value;
use std::path::Path;

/// The keys a steps file may hold.
const STEPS_FILE_KEYS: &[&str] = &["version", "kind", "description", "anchors", "params", "steps"];

const STEPS: Kind = Kind {
    noun: "steps file",
    key: "call",
    verb: "calls",
    each_other: "`call` each other",
};

/// Whether a loaded document is a steps file (`kind: steps`).
pub fn is_steps_file(doc: &Document) -> bool {
    doc.value.get("kind").and_then(Value::as_str) == Some("steps")
}

/// Problems only a steps file can have: keys a flow has (`connection`, `inputs`, ...).
pub fn steps_file_problems(doc: &Document) -> Vec<Diagnostic> {
    let Some(map) = doc.value.as_object() else {
        return Vec::new();
    };
    map.keys()
        .filter(|k| !STEPS_FILE_KEYS.contains(&k.as_str()))
        .map(|k| {
            let span = doc.key_span(&yaml::push_pointer("", k));
            let hint = match k.as_str() {
                "inputs" => "a steps file declares `params`, which each call passes with `with:`",
                "connection" => "the steps are sent over the connection of the flow that calls them",
                _ => "a steps file has `version`, `kind: steps`, `description`, `anchors`, `params` and `steps`",
            };
            Diagnostic::error("not-in-steps-file", span, format!("a steps file holds no `{k}`"))
                .with_hint(hint)
        })
        .collect()
}

/// Mounts the steps file each `call` in `steps` and `finally` names (and the ones those call in
/// turn), read relative to `path`. Problems inside a called file carry that file as their
/// origin.
pub fn expand(path: &Path, doc: &mut Document) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut chain = vec![Link::start(path)];
    let mut budget = MAX_CALLED_STEPS;
    for list in ["/steps", "/finally"] {
        expand_list(path, doc, list, &mut chain, &mut budget, &mut out);
    }
    out
}

/// The most steps calls may bring into one flow, all calls counted: depth alone does not
/// bound a file that calls another ten times, which calls another ten times, ...
const MAX_CALLED_STEPS: usize = 5_000;

fn expand_list(
    path: &Path,
    doc: &mut Document,
    list: &str,
    chain: &mut Vec<Link>,
    budget: &mut usize,
    out: &mut Vec<Diagnostic>,
) {
    let count = doc
        .value
        .pointer(list)
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for i in 0..count {
        let step = format!("{list}/{i}");
        let Some(called) = doc.value.pointer(&format!("{step}/call")).and_then(Value::as_str) else {
            continue;
        };
        let called = called.to_string();
        let at = doc.value_span(&format!("{step}/call"));
        let Some(Opened {
            path: target,
            source,
            doc: mut included,
            shown,
            link,
        }) = includes::open(path, &called, at, chain, &STEPS, out)
        else {
            continue;
        };
        if !is_steps_file(&included) || included.value.get("steps").is_none_or(|s| !s.is_array()) {
            out.push(
                Diagnostic::error("include-kind", at, format!("{shown} is not a steps file"))
                    .with_hint("a steps file has `kind: steps`, its `params` and a `steps:` list"),
            );
            continue;
        }
        let steps = included
            .value
            .get("steps")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if steps > *budget {
            out.push(Diagnostic::error(
                "include-size",
                at,
                format!("the calls of this flow bring in more than {MAX_CALLED_STEPS} steps"),
            ).with_hint("a steps file called many times over, by files called many times over, multiplies its steps"));
            *budget = 0;
            continue;
        }
        *budget -= steps;
        // The file is checked as it is written, before the files it calls are mounted in it.
        let own = super::schema::check(&included)
            .into_iter()
            .chain(steps_file_problems(&included));
        out.extend(own.map(|d| includes::in_file(d, &source)));
        chain.push(link);
        let before = out.len();
        expand_list(&target, &mut included, "/steps", chain, budget, out);
        chain.pop();
        includes::place(&mut out[before..], &included, &source);
        if let Some(map) = included.value.as_object_mut() {
            map.retain(|k, _| k == "params" || k == "steps");
        }
        doc.mount(&step, included, source);
    }
}

/// The ids of the steps that send requests, in `steps` then `finally`: a call's steps as
/// `<call id>.<step id>`, as runs and reports name them. `doc` has its calls mounted.
pub fn step_ids(doc: &Document) -> Vec<String> {
    fn walk(steps: Option<&Value>, prefix: &str, out: &mut Vec<String>) {
        for step in steps.and_then(Value::as_array).into_iter().flatten() {
            let Some(id) = step.get("id").and_then(Value::as_str) else {
                continue;
            };
            match step.get("call") {
                Some(_) => walk(step.get("steps"), &format!("{prefix}{id}."), out),
                None => out.push(format!("{prefix}{id}")),
            }
        }
    }
    let mut out = Vec::new();
    walk(doc.value.get("steps"), "", &mut out);
    walk(doc.value.get("finally"), "", &mut out);
    out
}
