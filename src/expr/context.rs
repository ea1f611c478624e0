//! The expression scope: `inputs`, `vars`, `steps`, and `response` where there is one; in a
//! called steps file, its `params`, with `steps` read from the call's own.
//!
//! Each part is kept as JSON. Most expressions are paths (`inputs.end_user`) answered from the
//! JSON directly; a part is converted for MiniJinja once, and only when an expression that
//! needs the template engine reads the scope.

use super::fast::Seg;
use minijinja::Value as JinjaValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// One part of the scope: the inputs, one step's values, or a response.
#[derive(Debug, Default)]
pub struct Scope {
    json: Json,
    /// A step's flags, kept beside `json` ([`Scope::step`]). Boxed: most scopes have none.
    step: Option<Box<StepPart>>,
    jinja: OnceLock<JinjaValue>,
}

#[derive(Debug)]
struct StepPart {
    flags: Flags,
    /// The scope's `json` with `flags` among its keys, made when the step's values are read
    /// whole.
    whole: OnceLock<Value>,
}

/// How a step ended, as `steps.<id>` shows it.
#[derive(Debug)]
pub struct Flags {
    /// `succeeded`.
    pub succeeded: bool,
    /// `skipped`.
    pub skipped: bool,
    /// `error`: the failure in words, or null; `failed` is whether there is one.
    pub error: Value,
    /// How many of the values' first keys come before the flags (the answer's `status`,
    /// `headers` and `body`); the rest (what the step saved) come after.
    pub after: usize,
}

/// The flags' names, in the order `steps.<id>` shows them.
const FLAG_NAMES: [&str; 4] = ["succeeded", "skipped", "failed", "error"];

impl Flags {
    /// Puts the flags in `values`, after what is there. What the step saved goes in after
    /// them, so a saved value of a flag's name takes the flag's place.
    pub fn put_in(&self, values: &mut serde_json::Map<String, Value>) {
        for name in FLAG_NAMES {
            if let Some(value) = self.get(name) {
                values.insert(name.to_string(), value.clone());
            }
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        const TRUE: Value = Value::Bool(true);
        const FALSE: Value = Value::Bool(false);
        let truth = |b: bool| if b { &TRUE } else { &FALSE };
        match name {
            "succeeded" => Some(truth(self.succeeded)),
            "skipped" => Some(truth(self.skipped)),
            "failed" => Some(truth(!self.error.is_null())),
            "error" => Some(&self.error),
            _ => None,
        }
    }
}

/// A scope's values: its own, or shared with other scopes (every run's steps start with the
/// same values, which cloning cost more than a request's own hashing).
#[derive(Debug)]
enum Json {
    Own(Value),
    Shared(Arc<Value>),
}

impl Json {
    fn as_value(&self) -> &Value {
        match self {
            Json::Own(v) => v,
            Json::Shared(v) => v,
        }
    }
}

impl Default for Json {
    fn default() -> Self {
        Json::Own(Value::Null)
    }
}

impl Scope {
    /// A scope over `json`; its MiniJinja form is built only if a template needs it.
    pub fn new(json: Value) -> Self {
        Self::of(Json::Own(json), None)
    }

    /// A scope over values other scopes share.
    pub fn shared(json: Arc<Value>) -> Self {
        Self::of(Json::Shared(json), None)
    }

    /// A step's values: `values` (an object: its answer's `status`, `headers` and `body`, then
    /// what it saved) with `flags` among them, as `steps.<id>` shows them. The flags are kept
    /// beside the object rather than put in it: four keys made and hashed for every step were
    /// 4% of a batch run's instructions, and expressions read them without the object.
    pub fn step(values: Value, flags: Flags) -> Self {
        let step = StepPart {
            flags,
            whole: OnceLock::new(),
        };
        Self::of(Json::Own(values), Some(Box::new(step)))
    }

    fn of(json: Json, step: Option<Box<StepPart>>) -> Self {
        Scope {
            json,
            step,
            jinja: OnceLock::new(),
        }
    }

    /// The part's values as JSON (a step's with its flags).
    pub fn json(&self) -> &Value {
        match &self.step {
            None => self.own(),
            Some(step) => step.whole.get_or_init(|| with_flags(self.own(), &step.flags)),
        }
    }

    fn own(&self) -> &Value {
        self.json.as_value()
    }

    /// The value at `path`, if every part of it exists.
    fn lookup(&self, path: &[Seg]) -> Option<&Value> {
        match (&self.step, path.split_first()) {
            // A saved value of a flag's name hides the flag, as it does in the whole object.
            (Some(step), Some((Seg::Key(name), rest))) => match walk(self.own(), &path[..1]) {
                Some(value) => walk(value, rest),
                None => walk(step.flags.get(name)?, rest),
            },
            _ => walk(self.json(), path),
        }
    }

    /// Gives back the JSON, dropping the MiniJinja form.
    pub fn into_json(self) -> Value {
        if let Some(step) = self.step {
            return match step.whole.into_inner() {
                Some(whole) => whole,
                None => with_flags(self.json.as_value(), &step.flags),
            };
        }
        match self.json {
            Json::Own(v) => v,
            Json::Shared(v) => Arc::unwrap_or_clone(v),
        }
    }

    fn jinja(&self) -> &JinjaValue {
        self.jinja.get_or_init(|| to_jinja(self.json()))
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
        frame: Option<Frame<'a>>,
    },
}

/// A called steps file's view: its parameters, and its steps' ids without the call's prefix.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    /// The call's id and a dot (`handoff.`): the steps file's `steps.route` is `handoff.route`.
    pub prefix: &'a str,
    /// The call's arguments, read as `params.<name>`.
    pub params: &'a Scope,
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
                frame: None,
            },
            jinja: OnceLock::new(),
        }
    }

    /// The same context seen from inside a called steps file.
    pub fn in_frame(mut self, frame: Option<Frame<'a>>) -> Self {
        if let Parts::Run { frame: f, .. } = &mut self.parts {
            *f = frame;
        }
        self
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
                frame,
            } => match root {
                "inputs" => walk(inputs.json(), path),
                "params" => walk(frame.as_ref()?.params.json(), path),
                "vars" => walk(vars.json(), path),
                "response" => walk(response.as_ref()?.json(), path),
                "steps" => {
                    let prefix = frame.as_ref().map_or("", |f| f.prefix);
                    // The common case, a flow's own step by its id, without building the id.
                    if prefix.is_empty()
                        && let Some(Seg::Key(first)) = path.first()
                        && let Some(step) = steps.get(first.as_str())
                    {
                        return step.lookup(&path[1..]);
                    }
                    // `steps.handoff.route.x`: a called step's id is the call's, a dot and its
                    // own, so the id may span several parts of the path.
                    let mut id = prefix.to_string();
                    for (i, seg) in path.iter().enumerate() {
                        let Seg::Key(part) = seg else { return None };
                        if i > 0 {
                            id.push('.');
                        }
                        id.push_str(part);
                        if let Some(step) = steps.get(&id) {
                            return step.lookup(&path[i + 1..]);
                        }
                    }
                    None
                }
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
                frame,
            } => {
                let prefix = frame.as_ref().map_or("", |f| f.prefix);
                let steps = JinjaValue::from(nested_steps(steps, prefix));
                let (inputs, vars) = (inputs.jinja(), vars.jinja());
                let params = frame.as_ref().map(|f| f.params.jinja().clone());
                match response {
                    Some(r) => {
                        minijinja::context! { inputs => inputs, vars => vars, steps => steps, response => r.jinja(), params => params }
                    }
                    None => minijinja::context! { inputs => inputs, vars => vars, steps => steps, params => params },
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

/// The steps as templates read them from inside the call `prefix` names (`""`: the flow):
/// each by its id, and a call's steps under the call's id (`handoff` → `route` → values).
fn nested_steps(steps: &BTreeMap<String, Scope>, prefix: &str) -> BTreeMap<String, JinjaValue> {
    let mut calls = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    use std::ops::Bound;
    for (id, scope) in steps.range::<str, _>((Bound::Included(prefix), Bound::Unbounded)) {
        let Some(own) = id.strip_prefix(prefix) else { break };
        match own.split_once('.') {
            None => {
                out.insert(own.to_string(), scope.jinja().clone());
            }
            Some((call, _)) => {
                calls.insert(call);
            }
        }
    }
    for call in calls {
        let inner = format!("{prefix}{call}.");
        out.insert(call.to_string(), JinjaValue::from(nested_steps(steps, &inner)));
    }
    out
}

/// `values` with `flags` put in after their first `flags.after` keys: the object
/// `steps.<id>` is.
fn with_flags(values: &Value, flags: &Flags) -> Value {
    let Value::Object(own) = values else {
        return values.clone();
    };
    let copied = |(k, v): (&String, &Value)| (k.clone(), v.clone());
    let mut whole = serde_json::Map::with_capacity(own.len() + FLAG_NAMES.len());
    whole.extend(own.iter().take(flags.after).map(copied));
    flags.put_in(&mut whole);
    whole.extend(own.iter().skip(flags.after).map(copied));
    Value::Object(whole)
}

fn walk<'v>(mut at: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    for seg in path {
        at = match (seg, at) {
            // A small object is searched in order: cheaper than hashing the key (SipHash, the
            // map's hasher), since keys of another length are passed over at once. The objects
            // expressions read (inputs, a step's values, a response body) are mostly small; a
            // step's values alone are seven keys and what it saved.
            (Seg::Key(k), Value::Object(map)) if map.len() <= 16 => {
                map.iter().find_map(|(key, v)| (key == k).then_some(v))?
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    #[test]
    fn lookups_find_every_key_of_small_and_large_objects_and_nothing_else() {
        let small: Map<String, Value> = (0..3).map(|i| (format!("k{i}"), json!(i))).collect();
        let large: Map<String, Value> = (0..23).map(|i| (format!("k{i}"), json!(i))).collect();
        for object in [small, large] {
            let steps: BTreeMap<String, Scope> = [
                ("route".to_string(), Scope::new(Value::Object(object.clone()))),
                (
                    "call.route".to_string(),
                    Scope::new(json!({"nested": object.clone()})),
                ),
            ]
            .into();
            let (inputs, vars) = (Scope::new(Value::Object(object.clone())), Scope::default());
            let ctx = Context::from_parts(&inputs, &vars, &steps, None);
            let key = |k: &str| Seg::Key(k.to_string());
            for (k, v) in &object {
                assert_eq!(ctx.lookup("inputs", &[key(k)]), Some(v));
                assert_eq!(ctx.lookup("steps", &[key("route"), key(k)]), Some(v));
                assert_eq!(
                    ctx.lookup("steps", &[key("call"), key("route"), key("nested"), key(k)]),
                    Some(v)
                );
            }
            assert_eq!(ctx.lookup("inputs", &[key("missing")]), None);
            assert_eq!(ctx.lookup("steps", &[key("route"), key("missing")]), None);
            assert_eq!(ctx.lookup("steps", &[key("nope"), key("k0")]), None);
        }
    }

    #[test]
    fn a_steps_flags_read_as_keys_of_its_values_in_their_place() {
        let answered = json!({"status": 202, "headers": {}, "body": {"success": true}});
        let mut values = answered.as_object().unwrap().clone();
        values.insert("psr_id".into(), json!("0JR1"));
        values.insert("skipped".into(), json!("saved under a flag's name"));
        let flags = Flags {
            succeeded: true,
            skipped: false,
            error: Value::Null,
            after: 3,
        };
        let failed = Flags {
            succeeded: false,
            skipped: false,
            error: json!("step `consent` failed"),
            after: 0,
        };
        let steps: BTreeMap<String, Scope> = [
            ("route".to_string(), Scope::step(Value::Object(values), flags)),
            ("consent".to_string(), Scope::step(json!({}), failed)),
        ]
        .into();
        let (inputs, vars) = (Scope::default(), Scope::default());
        let ctx = Context::from_parts(&inputs, &vars, &steps, None);
        let at = |path: &[&str]| {
            let path: Vec<Seg> = path.iter().map(|k| Seg::Key(k.to_string())).collect();
            ctx.lookup("steps", &path).cloned()
        };
        assert_eq!(at(&["route", "succeeded"]), Some(json!(true)));
        assert_eq!(at(&["route", "failed"]), Some(json!(false)));
        assert_eq!(at(&["route", "error"]), Some(Value::Null));
        assert_eq!(at(&["route", "body", "success"]), Some(json!(true)));
        assert_eq!(at(&["route", "psr_id"]), Some(json!("0JR1")));
        // What the step saved under a flag's name is what the name reads.
        assert_eq!(
            at(&["route", "skipped"]),
            Some(json!("saved under a flag's name"))
        );
        assert_eq!(at(&["route", "error", "deeper"]), None);
        assert_eq!(at(&["consent", "failed"]), Some(json!(true)));
        assert_eq!(at(&["consent", "error"]), Some(json!("step `consent` failed")));
        assert_eq!(at(&["consent", "status"]), None);
        // Read whole, the flags come after the answer and before what was saved, in the order
        // they always had.
        let route = at(&["route"]).unwrap();
        let keys: Vec<&str> = route.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "status",
                "headers",
                "body",
                "succeeded",
                "skipped",
                "failed",
                "error",
                "psr_id"
            ]
        );
        assert_eq!(route["skipped"], json!("saved under a flag's name"));
        assert_eq!(
            at(&["consent"]),
            Some(
                json!({"succeeded": false, "skipped": false, "failed": true, "error": "step `consent` failed"})
            )
        );
        // The template engine sees them too.
        assert!(ctx.resolves("steps.consent.failed") && ctx.resolves("steps.route.psr_id"));
        assert!(!ctx.resolves("steps.consent.psr_id"));
        let whole = steps
            .into_iter()
            .map(|(id, s)| (id, s.into_json()))
            .collect::<BTreeMap<_, _>>();
        assert_eq!(whole["consent"]["failed"], json!(true));
        assert_eq!(whole["route"], route);
        // Made at once for the journal: the same object, key for key and in the same order.
        let flags = Flags {
            succeeded: true,
            skipped: false,
            error: Value::Null,
            after: 3,
        };
        let mut at_once = answered.as_object().unwrap().clone();
        flags.put_in(&mut at_once);
        at_once.insert("psr_id".into(), json!("0JR1"));
        at_once.insert("skipped".into(), json!("saved under a flag's name"));
        let text = |v: &Value| serde_json::to_string(v).unwrap();
        assert_eq!(text(&Value::Object(at_once)), text(&route));
    }
}
