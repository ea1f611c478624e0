//! `--transcript FILE`: the normalised request sequence as YAML — step id, attempt number,
//! the step's own `vars`, method, path, query, headers (secrets masked) and body — so a change
//! to a flow shows up in review as a change to the requests it sends. A flow with `vars` starts
//! with one entry holding the run's values (`- vars: {...}`).

use crate::base::secrets::Secrets;
use crate::engine::outcome::RunReport;
use saphyr::{Mapping, Scalar, Yaml, YamlEmitter};
use serde_json::{Value, json};
use std::borrow::Cow;

/// The transcript as JSON: a list of requests in the order they were sent.
pub fn transcript(report: &RunReport, secrets: &Secrets) -> Value {
    let run_vars = (!report.vars.is_empty()).then(|| json!({ "vars": report.vars }));
    let requests: Vec<Value> = run_vars
        .into_iter()
        .chain(report.steps.iter().flat_map(|s| {
            s.attempts.iter().map(move |a| {
                let mut entry = json!({ "step": s.id, "attempt": a.number });
                if !s.vars.is_empty() {
                    entry["vars"] = json!(s.vars);
                }
                if let (Value::Object(e), Value::Object(r)) = (&mut entry, super::request_json(&a.request)) {
                    e.extend(r);
                }
                entry
            })
        }))
        .collect();
    secrets.redact_json(&Value::Array(requests))
}

/// Writes a JSON value as block-style YAML.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline(true);
    let _ = emitter.dump(&yaml(value));
    // One document per file: the `---` start marker adds nothing.
    let mut out = out.strip_prefix("---\n").map(str::to_string).unwrap_or(out);
    out.push('\n');
    out
}

fn yaml(value: &Value) -> Yaml<'_> {
    match value {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Value(Scalar::Integer(i)),
            None => Yaml::Value(Scalar::FloatingPoint(n.as_f64().unwrap_or_default().into())),
        },
        Value::String(s) => Yaml::Value(Scalar::String(Cow::Borrowed(s))),
        Value::Array(a) => Yaml::Sequence(a.iter().map(yaml).collect()),
        Value::Object(m) => {
            let mut map = Mapping::new();
            for (k, v) in m {
                map.insert(Yaml::Value(Scalar::String(Cow::Borrowed(k))), yaml(v));
            }
            Yaml::Mapping(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keeps_types_readable_and_round_trips() {
        let v = json!({"s": "090", "n": 90, "b": true, "t": "true", "l": [1, "x"], "e": {}, "z": null});
        let text = to_yaml(&v);
        let (doc, errors) = crate::base::yaml::load(&text);
        assert!(errors.is_empty(), "{text}");
        assert_eq!(doc.unwrap().value, v, "{text}");
    }
}
