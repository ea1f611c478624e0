//! The expression scope: `inputs`, `vars`, `steps`, and `response` where there is one.
//!
//! Each part is kept as JSON. Most expressions are paths (`inputs.end_user`) answered from the
//! JSON directly; a part is converted for MiniJinja once, and only when an expression that
//! needs the template engine reads the scope.

use super::fast::Seg;
use minijinja::Value as JinjaValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One part of the scope: the inputs, one step's values, or a response.
#[derive(Debug, Default)]
pub struct Scope {
    json: Value,
    jinja: OnceLock<JinjaValue>,
}

impl Scope {
    /// A scope over `json`; its MiniJinja form is built only if a template needs it.
    pub fn new(json: Value) -> Self {
        Scope {
            json,
            jinja: OnceLock::new(),
        }
    }

    /// The part's values as JSON.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Gives back the JSON, dropping the MiniJinja form.
    pub fn into_json(self) -> Value {
        self.json
    }

    fn jinja(&self) -> &JinjaValue {
        self.jinja.get_or_init(|| to_jinja(&self.json))
    }
}

/// What one render reads.
pub struct Context<'a> {
    parts: Parts<'a>,
    jinja: OnceLock<JinjaValue>,
}

enum Parts<'a> {
    /// One JSON object holding the roots (tests, auth settings).
    Whole(Value),
    /// A run's own values, borrowed for the render.
    Run {
        inputs: &'a Scope,
        vars: &'a Scope,
        steps: &'a BTreeMap<String, Scope>,
        response: Option<&'a Scope>,
    },
}

impl Context<'static> {
    /// A context from one JSON object (`{"inputs": ..., "steps": ..., "response": ...}`).
    pub fn new(json: Value) -> Self {
        Context {
            parts: Parts::Whole(json),
            jinja: OnceLock::new(),
        }
    }
}

impl<'a> Context<'a> {
    /// A context over a run's inputs, its vars, its steps' values and the current response.
    pub fn from_parts(
        inputs: &'a Scope,
        vars: &'a Scope,
        steps: &'a BTreeMap<String, Scope>,
        response: Option<&'a Scope>,
    ) -> Self {
        Context {
            parts: Parts::Run {
                inputs,
                vars,
                steps,
                response,
            },
            jinja: OnceLock::new(),
        }
    }

    /// The value at `root` then `path`, if every part of it exists.
    pub(crate) fn lookup(&self, root: &str, path: &[Seg]) -> Option<&Value> {
        match &self.parts {
            Parts::Whole(v) => walk(v.get(root)?, path),
            Parts::Run {
                inputs,
                vars,
                steps,
                response,
            } => match root {
                "inputs" => walk(inputs.json(), path),
                "vars" => walk(vars.json(), path),
                "response" => walk(response.as_ref()?.json(), path),
                "steps" => match path.split_first()? {
                    (Seg::Key(id), rest) => walk(steps.get(id)?.json(), rest),
                    _ => None,
                },
                _ => None,
            },
        }
    }

    /// The whole scope as MiniJinja reads it, built on first use.
    pub(crate) fn jinja(&self) -> &JinjaValue {
        self.jinja.get_or_init(|| match &self.parts {
            Parts::Whole(v) => to_jinja(v),
            Parts::Run {
                inputs,
                vars,
                steps,
                response,
            } => {
                let steps: BTreeMap<String, JinjaValue> = steps
                    .iter()
                    .map(|(k, s)| (k.clone(), s.jinja().clone()))
                    .collect();
                let (inputs, vars, steps) = (inputs.jinja(), vars.jinja(), JinjaValue::from(steps));
                match response {
                    Some(r) => {
                        minijinja::context! { inputs => inputs, vars => vars, steps => steps, response => r.jinja() }
                    }
                    None => minijinja::context! { inputs => inputs, vars => vars, steps => steps },
                }
            }
        })
    }

    /// Whether a dotted name such as `steps.route.correlation_id` has a value.
    pub(crate) fn resolves(&self, name: &str) -> bool {
        let mut parts = name.split('.');
        let root = parts.next().unwrap_or_default();
        if super::FUNCTIONS.contains(&root) || super::BUILTIN_GLOBALS.contains(&root) {
            return true;
        }
        let mut at = match self.jinja().get_attr(root) {
            Ok(v) if !v.is_undefined() => v,
            _ => return false,
        };
        for part in parts {
            at = match at.get_attr(part) {
                Ok(v) if !v.is_undefined() => v,
                _ => return false,
            };
        }
        true
    }
}

fn walk<'v>(mut at: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    for seg in path {
        at = match (seg, at) {
            (Seg::Key(k), Value::Object(map)) => map.get(k)?,
            (Seg::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Converts a JSON value for expressions to read.
pub fn to_jinja(json: &Value) -> JinjaValue {
    JinjaValue::from(minijinja::value::Serde(json))
}
