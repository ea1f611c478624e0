//! The expression scope: `inputs`, `vars`, `steps`, and `response` where there is one; in a
//! called steps file, its `params`, with `steps` read from the call's own.
//!
//! Each part is kept as JSON; a step's answer (`status`, `headers`, `body`) and its flags are
//! kept beside what it saved, and made into one object only when read whole. Most expressions
//! are paths (`inputs.end_user`) answered from where the values are; a part is converted for
//! MiniJinja once, and only when an expression that needs the template engine reads the scope.

use super::fast::Seg;
use minijinja::Value as JinjaValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// One part of the scope: the inputs, one step's values, or a response.
#[derive(Debug, Default)]
pub struct Scope {
    json: Json,
    /// A step's answer and flags, or a response, kept beside `json` ([`Scope::step`],
    /// [`Scope::answer`]). Boxed: most scopes have neither.
    beside: Option<Box<Beside>>,
    jinja: OnceLock<JinjaValue>,
}

#[derive(Debug)]
struct Beside {
    answer: Option<Answer>,
    flags: Option<Flags>,
    /// The scope's object, made when it is read whole: the answer's keys, the flags, then the
    /// scope's own values (what a step saved).
    whole: OnceLock<Value>,
}

/// A response as expressions read it: `status`, `headers` (lowercase names) and `body`.
///
/// Its object, and the headers', are made only when read whole: hashing their keys into
/// maps for every response was 3% of a batch run's instructions, and expressions read a field
/// or two.
#[derive(Debug, Clone)]
pub struct Answer {
    status: Value,
    headers: Vec<(String, Value)>,
    body: Value,
    headers_json: OnceLock<Value>,
}

impl Answer {
    /// The answer `status`, with `headers` (any case) and `body`.
    pub fn new<'h>(status: u16, headers: impl IntoIterator<Item = (&'h str, &'h str)>, body: Value) -> Self {
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                // The HTTP transport's names are lowercase already; a scripted one's may not be.
                let name = match name.bytes().any(|b| b.is_ascii_uppercase()) {
                    true => name.to_ascii_lowercase(),
                    false => name.to_string(),
                };
                (name, Value::String(value.to_string()))
            })
            .collect();
        Answer {
            status: Value::from(status),
            headers,
            body,
            headers_json: OnceLock::new(),
        }
    }

    /// The field `name` (`status`, `headers` or `body`), then `rest` within it.
    fn lookup(&self, name: &str, rest: &[Seg]) -> Option<&Value> {
        match (name, rest.split_first()) {
            ("status", _) => walk(&self.status, rest),
            ("body", _) => walk(&self.body, rest),
            // A name sent twice reads as its last value, as in the object.
            ("headers", Some((Seg::Key(key), deeper))) => {
                let (_, value) = self.headers.iter().rev().find(|(name, _)| name == key)?;
                walk(value, deeper)
            }
            ("headers", Some((Seg::Index(_), _))) => None,
            ("headers", None) => Some(self.headers_json()),
            _ => None,
        }
    }

    fn headers_json(&self) -> &Value {
        self.headers_json
            .get_or_init(|| Value::Object(self.headers.iter().cloned().collect()))
    }

    /// Puts `status`, `headers` and `body` in `map`, in that order.
    fn put_in(self, map: &mut serde_json::Map<String, Value>) {
        let headers = match self.headers_json.into_inner() {
            Some(made) => made,
            None => Value::Object(self.headers.into_iter().collect()),
        };
        map.insert("status".into(), self.status);
        map.insert("headers".into(), headers);
        map.insert("body".into(), self.body);
    }
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
}

/// The flags' names, in the order `steps.<id>` shows them.
const FLAG_NAMES: [&str; 4] = ["succeeded", "skipped", "failed", "error"];

impl Flags {
    /// Puts the flags in `values`, after what is there.
    fn put_in(&self, values: &mut serde_json::Map<String, Value>) {
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

    fn into_value(self) -> Value {
        match self {
            Json::Own(v) => v,
            Json::Shared(v) => Arc::unwrap_or_clone(v),
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

    /// A response, as `response` shows it.
    pub fn answer(answer: Answer) -> Self {
        let beside = Beside {
            answer: Some(answer),
            flags: None,
            whole: OnceLock::new(),
        };
        Self::of(Json::Own(Value::Null), Some(Box::new(beside)))
    }

    /// A step's values as `steps.<id>` shows them: its `answer`'s `status`, `headers` and
    /// `body`, its `flags`, then what it `saved` (which hides an answer's field or a flag of
    /// its name). They are kept apart rather than put in one object: the flags' four keys made
    /// and hashed for every step were 4% of a batch run's instructions, and expressions read
    /// them without the object.
    pub fn step(answer: Option<Answer>, saved: serde_json::Map<String, Value>, flags: Flags) -> Self {
        let beside = Beside {
            answer,
            flags: Some(flags),
            whole: OnceLock::new(),
        };
        Self::of(Json::Own(Value::Object(saved)), Some(Box::new(beside)))
    }

    fn of(json: Json, beside: Option<Box<Beside>>) -> Self {
        Scope {
            json,
            beside,
            jinja: OnceLock::new(),
        }
    }

    /// The part's values as JSON (a step's with its answer and flags).
    pub fn json(&self) -> &Value {
        match &self.beside {
            None => self.own(),
            Some(beside) => beside
                .whole
                .get_or_init(|| whole(beside.answer.clone(), beside.flags.as_ref(), self.own().clone())),
        }
    }

    fn own(&self) -> &Value {
        self.json.as_value()
    }

    /// The value at `path`, if every part of it exists.
    fn lookup(&self, path: &[Seg]) -> Option<&Value> {
        match (&self.beside, path.split_first()) {
            // What a step saved hides its answer's field or its flag of that name, as it does
            // in the whole object.
            (Some(beside), Some((Seg::Key(name), rest))) => match walk(self.own(), &path[..1]) {
                Some(value) => walk(value, rest),
                None => match beside.answer.as_ref().and_then(|a| a.lookup(name, rest)) {
                    Some(value) => Some(value),
                    None => walk(beside.flags.as_ref()?.get(name)?, rest),
                },
            },
            _ => walk(self.json(), path),
        }
    }

    /// Gives back the JSON, dropping the MiniJinja form.
    pub fn into_json(self) -> Value {
        let own = self.json.into_value();
        let Some(beside) = self.beside else {
            return own;
        };
        match beside.whole.into_inner() {
            Some(whole) => whole,
            None => whole(beside.answer, beside.flags.as_ref(), own),
        }
    }

    /// Gives back the response a scope made by [`Scope::answer`] or [`Scope::step`] holds.
    pub fn into_answer(self) -> Option<Answer> {
        self.beside?.answer
    }

    fn jinja(&self) -> &JinjaValue {
        self.jinja.get_or_init(|| to_jinja(self.json()))
    }
}

/// The object a scope with an answer or flags reads as whole: the answer's keys, the flags,
/// then `own`'s keys (a key already there keeps its place and takes `own`'s value).
fn whole(answer: Option<Answer>, flags: Option<&Flags>, own: Value) -> Value {
    let own = match own {
        Value::Object(own) => own,
        _ => serde_json::Map::new(),
    };
    let mut whole = serde_json::Map::with_capacity(3 + FLAG_NAMES.len() + own.len());
    if let Some(answer) = answer {
        answer.put_in(&mut whole);
    }
    if let Some(flags) = flags {
        flags.put_in(&mut whole);
    }
    whole.extend(own);
    Value::Object(whole)
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
                "response" => response.as_ref()?.lookup(path),
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

    fn accepted() -> Answer {
        let headers = [("content-type", "application/json"), ("x-request-id", "r-1")];
        Answer::new(202, headers, json!({"success": true}))
    }

    #[test]
    fn a_steps_flags_read_as_keys_of_its_values_in_their_place() {
        let mut saved = Map::new();
        saved.insert("psr_id".into(), json!("0JR1"));
        saved.insert("skipped".into(), json!("saved under a flag's name"));
        let flags = || Flags {
            succeeded: true,
            skipped: false,
            error: Value::Null,
        };
        let failed = Flags {
            succeeded: false,
            skipped: false,
            error: json!("step `consent` failed"),
        };
        let steps: BTreeMap<String, Scope> = [
            (
                "route".to_string(),
                Scope::step(Some(accepted()), saved.clone(), flags()),
            ),
            ("consent".to_string(), Scope::step(None, Map::new(), failed)),
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
        assert_eq!(at(&["route", "status"]), Some(json!(202)));
        assert_eq!(at(&["route", "body", "success"]), Some(json!(true)));
        assert_eq!(at(&["route", "headers", "x-request-id"]), Some(json!("r-1")));
        assert_eq!(at(&["route", "psr_id"]), Some(json!("0JR1")));
        // What the step saved under a flag's name is what the name reads.
        assert_eq!(
            at(&["route", "skipped"]),
            Some(json!("saved under a flag's name"))
        );
        assert_eq!(at(&["route", "error", "deeper"]), None);
        assert_eq!(at(&["route", "status", "deeper"]), None);
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
            route["headers"],
            json!({"content-type": "application/json", "x-request-id": "r-1"})
        );
        assert_eq!(
            at(&["consent"]),
            Some(
                json!({"succeeded": false, "skipped": false, "failed": true, "error": "step `consent` failed"})
            )
        );
        // The template engine sees them too.
        assert!(ctx.resolves("steps.consent.failed") && ctx.resolves("steps.route.psr_id"));
        assert!(ctx.resolves("steps.route.headers.x-request-id"));
        assert!(!ctx.resolves("steps.consent.psr_id"));
        let whole = steps
            .into_iter()
            .map(|(id, s)| (id, s.into_json()))
            .collect::<BTreeMap<_, _>>();
        assert_eq!(whole["consent"]["failed"], json!(true));
        assert_eq!(whole["route"], route);
        // Made at once for the journal (never read before): the same object, key for key and
        // in the same order.
        let at_once = Scope::step(Some(accepted()), saved, flags()).into_json();
        let text = |v: &Value| serde_json::to_string(v).unwrap();
        assert_eq!(text(&at_once), text(&route));
    }

    #[test]
    fn a_response_reads_as_the_object_it_was_field_by_field_and_whole() {
        // A scripted transport's names may have capitals; a name may come twice.
        let headers = [
            ("Content-Type", "application/json"),
            ("set-cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ];
        let body = json!({"id": "0Mw1", "items": [{"n": 1}]});
        let answer = Answer::new(400, headers, body.clone());
        // The object built at once, as every response was before.
        let expected = json!({
            "status": 400,
            "headers": {"content-type": "application/json", "set-cookie": "b=2"},
            "body": body,
        });
        let (inputs, vars, steps) = (Scope::default(), Scope::default(), BTreeMap::new());
        let response = Scope::answer(answer.clone());
        let ctx = Context::from_parts(&inputs, &vars, &steps, Some(&response));
        let key = |k: &str| Seg::Key(k.to_string());
        let at = |path: &[Seg]| ctx.lookup("response", path).cloned();
        assert_eq!(at(&[key("status")]), Some(json!(400)));
        assert_eq!(
            at(&[key("headers"), key("content-type")]),
            Some(json!("application/json"))
        );
        assert_eq!(at(&[key("headers"), key("set-cookie")]), Some(json!("b=2")));
        assert_eq!(at(&[key("headers"), key("Content-Type")]), None);
        assert_eq!(at(&[key("headers"), Seg::Index(0)]), None);
        assert_eq!(
            at(&[key("body"), key("items"), Seg::Index(0), key("n")]),
            Some(json!(1))
        );
        assert_eq!(at(&[key("body"), key("missing")]), None);
        assert_eq!(at(&[key("succeeded")]), None);
        assert_eq!(at(&[key("headers")]), Some(expected["headers"].clone()));
        assert_eq!(at(&[]), Some(expected.clone()));
        assert!(ctx.resolves("response.body.id") && !ctx.resolves("response.body.nope"));
        let text = |v: &Value| serde_json::to_string(v).unwrap();
        assert_eq!(text(&Scope::answer(answer.clone()).into_json()), text(&expected));
        assert_eq!(text(&response.into_json()), text(&expected));
        let back = Scope::answer(answer).into_answer().unwrap();
        assert_eq!(text(&Scope::answer(back).into_json()), text(&expected));
    }
}
