//! Expressions simple enough to answer without the template engine: paths into the scope
//! (`inputs.end_user`, `steps.interaction.work_item_id`, `response.body.workItemIds[0]`), calls
//! of `uuid()`, `now_ms()` or `now()`, and what flows build from them for conditions and choices:
//! `is defined` / `is not defined`, `not`, `and`, `or`, `==`, `!=`, `x if c else y`, literals
//! (`none`, `true`, integers, plain strings) and mappings of them (`{"queueId": inputs.queue_id}`).
//!
//! Most expressions a flow writes are of these kinds, and setting up a MiniJinja state for each
//! was the largest cost of rendering a request (and, for conditions, of a run's bookkeeping).
//! Whenever the answer could differ in any way from MiniJinja's — a path that does not resolve,
//! an undefined value, a comparison of numbers of two kinds — there is no fast answer and
//! MiniJinja answers, so that values and errors read exactly the same. A property test checks
//! the two against each other.

use super::context::Context;
use super::world::World;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// One step of a path: `.name` / `['name']`, or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key of a mapping: `.name` or `['name']`.
    Key(String),
    /// A position in a list, counted from 0: `[0]`.
    Index(usize),
}

/// An expression answered without MiniJinja.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fast {
    /// A path such as `response.body.workItemIds[0]`.
    Path {
        /// The scope root it starts from: `inputs`, `vars`, `steps` or `response`.
        root: String,
        /// The keys and indexes followed from the root, in order.
        path: Vec<Seg>,
    },
    /// `uuid()`: a new UUID from the run's id source.
    Uuid,
    /// `now_ms()`: the current time in milliseconds since the Unix epoch.
    NowMs,
    /// `now()`: the current time as RFC 3339 text in UTC, with milliseconds.
    Now,
    /// `none`, `true`, `false`, an integer or a string without escapes.
    Literal(Value),
    /// `path is defined` (`negated`: `is not defined` / `is undefined`).
    Defined {
        /// The scope root of the path tested.
        root: String,
        /// The keys and indexes followed from the root.
        path: Vec<Seg>,
        /// Whether the test is `is not defined`.
        negated: bool,
    },
    /// `not x`.
    Not(Box<Fast>),
    /// `a and b`: `a` when it is false, else `b` (as Jinja: the operand, not a boolean).
    And(Box<Fast>, Box<Fast>),
    /// `a or b`: `a` when it is true, else `b`.
    Or(Box<Fast>, Box<Fast>),
    /// `a == b` (`negated`: `a != b`).
    Equal(Box<Fast>, Box<Fast>, bool),
    /// `then if cond else otherwise`.
    Choice {
        /// The value when `cond` is true.
        then: Box<Fast>,
        /// The condition.
        cond: Box<Fast>,
        /// The value when it is false (none written: no fast answer then).
        otherwise: Option<Box<Fast>>,
    },
    /// `{"key": x, ...}`: a mapping with literal keys, in the order written.
    Mapping(Vec<(String, Fast)>),
}

impl Fast {
    /// The fast form of `expr`, if it has one. `expr` has already compiled as MiniJinja.
    pub fn parse(expr: &str) -> Option<Fast> {
        let tokens = tokens(expr)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let fast = parser.choice()?;
        // A `uuid()` inside a larger expression is left to MiniJinja: were the fast form to
        // give up after calling it, MiniJinja would call it again, and a run's ids (sequential
        // under `flowrun test`) would move on by one.
        let draws_ids = !matches!(fast, Fast::Uuid) && fast.calls_uuid();
        (parser.at == parser.tokens.len() && !draws_ids).then_some(fast)
    }

    /// Whether `uuid()` is called anywhere in the expression.
    fn calls_uuid(&self) -> bool {
        match self {
            Fast::Uuid => true,
            Fast::Path { .. } | Fast::NowMs | Fast::Now | Fast::Literal(_) | Fast::Defined { .. } => false,
            Fast::Not(x) => x.calls_uuid(),
            Fast::And(a, b) | Fast::Or(a, b) | Fast::Equal(a, b, _) => a.calls_uuid() || b.calls_uuid(),
            Fast::Choice {
                then,
                cond,
                otherwise,
            } => then.calls_uuid() || cond.calls_uuid() || otherwise.as_ref().is_some_and(|o| o.calls_uuid()),
            Fast::Mapping(entries) => entries.iter().any(|(_, v)| v.calls_uuid()),
        }
    }

    /// The value, or `None` when MiniJinja must answer (see the module's documentation).
    pub fn eval(&self, ctx: &Context, runtime: &World) -> Option<Value> {
        self.value(ctx, runtime).map(Cow::into_owned)
    }

    /// The value, borrowed from the scope where it is a path's.
    fn value<'c>(&self, ctx: &'c Context, runtime: &World) -> Option<Cow<'c, Value>> {
        let owned = |v: Value| Some(Cow::Owned(v));
        match self {
            Fast::Path { root, path } => ctx.lookup(root, path).map(Cow::Borrowed),
            Fast::Uuid => owned(Value::String(runtime.ids.uuid())),
            Fast::NowMs => owned(Value::from(runtime.clock.now_ms())),
            Fast::Now => owned(Value::String(runtime.now_rfc3339())),
            Fast::Literal(v) => owned(v.clone()),
            Fast::Defined { root, path, negated } => {
                owned(Value::Bool(defined(ctx, root, path)? != *negated))
            }
            Fast::Not(x) => owned(Value::Bool(!truthy(x.value(ctx, runtime)?.as_ref()))),
            Fast::And(a, b) => {
                let a = a.value(ctx, runtime)?;
                if truthy(&a) {
                    b.value(ctx, runtime)
                } else {
                    Some(a)
                }
            }
            Fast::Or(a, b) => {
                let a = a.value(ctx, runtime)?;
                if truthy(&a) {
                    Some(a)
                } else {
                    b.value(ctx, runtime)
                }
            }
            Fast::Equal(a, b, negated) => {
                let same = same(a.value(ctx, runtime)?.as_ref(), b.value(ctx, runtime)?.as_ref())?;
                owned(Value::Bool(same != *negated))
            }
            Fast::Choice {
                then,
                cond,
                otherwise,
            } => {
                if truthy(cond.value(ctx, runtime)?.as_ref()) {
                    then.value(ctx, runtime)
                } else {
                    otherwise.as_ref()?.value(ctx, runtime)
                }
            }
            Fast::Mapping(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, value) in entries {
                    map.insert(key.clone(), value.value(ctx, runtime)?.into_owned());
                }
                owned(Value::Object(map))
            }
        }
    }
}

/// Truth as MiniJinja judges it: none, false, zero and empty values are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `a == b` where the answer cannot depend on how MiniJinja compares kinds: two strings, two
/// booleans, two nones, or two integers.
fn same(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (Value::String(a), Value::String(b)) => Some(a == b),
        (Value::Bool(a), Value::Bool(b)) => Some(a == b),
        (Value::Null, Value::Null) => Some(true),
        (Value::Number(a), Value::Number(b)) if !a.is_f64() && !b.is_f64() => Some(a == b),
        _ => None,
    }
}

/// Whether `root` then `path` is defined: it resolves (true), or it ends in a key its mapping
/// does not hold (false). Anything else — a parent that does not resolve — MiniJinja judges.
fn defined(ctx: &Context, root: &str, path: &[Seg]) -> Option<bool> {
    if ctx.lookup(root, path).is_some() {
        return Some(true);
    }
    let (Seg::Key(key), parent) = path.split_last()? else {
        return None;
    };
    match ctx.lookup(root, parent)? {
        Value::Object(map) if !map.contains_key(key) => Some(false),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Int(i64),
    Str(&'a str),
    Punct(&'static str),
}

const PUNCTS: &[&str] = &["==", "!=", ".", "[", "]", "(", ")", "{", "}", ",", ":"];

/// The tokens of `expr`, or `None` at anything outside the fast forms (`|`, `+`, a float, an
/// escape in a string, ...).
fn tokens(expr: &str) -> Option<Vec<Tok<'_>>> {
    let mut out = Vec::new();
    let mut rest = expr.trim_start();
    while !rest.is_empty() {
        let first = rest.chars().next()?;
        let len = if first.is_ascii_alphabetic() || first == '_' {
            let (name, _) = ident(rest)?;
            out.push(Tok::Ident(name));
            name.len()
        } else if first.is_ascii_digit() {
            let len = rest.bytes().take_while(u8::is_ascii_digit).count();
            // `1.5`, `1e3`, `1_000`, `0x1`: MiniJinja's own number forms.
            if rest[len..].starts_with(|c: char| c == '.' || c == '_' || c.is_ascii_alphanumeric()) {
                return None;
            }
            out.push(Tok::Int(rest[..len].parse().ok()?));
            len
        } else if first == '\'' || first == '"' {
            let end = rest[1..].find(first)? + 1;
            let text = &rest[1..end];
            if text.contains('\\') {
                return None;
            }
            out.push(Tok::Str(text));
            end + 1
        } else {
            let punct = PUNCTS.iter().find(|p| rest.starts_with(**p))?;
            out.push(Tok::Punct(punct));
            punct.len()
        };
        rest = rest[len..].trim_start();
    }
    Some(out)
}

/// A recursive descent over the tokens, in MiniJinja's order of precedence: `x if c else y`,
/// `or`, `and`, `not`, `==` / `!=`, then a value with its `is` test.
struct Parser<'a> {
    tokens: Vec<Tok<'a>>,
    at: usize,
    /// How deep the descent is: `not not not ...` or nested brackets past [`MAX_DEPTH`] are
    /// left to MiniJinja, so neither this parser nor the evaluation recurses without bound.
    depth: usize,
}

/// The deepest nesting the fast form takes.
const MAX_DEPTH: usize = 32;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Tok<'a>> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        let found = self.peek() == Some(tok);
        self.at += usize::from(found);
        found
    }

    fn word(&mut self, w: &str) -> bool {
        self.eat(&Tok::Ident(w))
    }

    /// `parse` one level deeper, unless that is past [`MAX_DEPTH`].
    fn nested(&mut self, parse: impl FnOnce(&mut Self) -> Option<Fast>) -> Option<Fast> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let expr = parse(self);
        self.depth -= 1;
        expr
    }

    fn choice(&mut self) -> Option<Fast> {
        self.nested(Self::choice_inner)
    }

    fn choice_inner(&mut self) -> Option<Fast> {
        let mut expr = self.or()?;
        while self.word("if") {
            let cond = self.or()?;
            let otherwise = if self.word("else") {
                Some(Box::new(self.choice()?))
            } else {
                None
            };
            expr = Fast::Choice {
                then: Box::new(expr),
                cond: Box::new(cond),
                otherwise,
            };
        }
        Some(expr)
    }

    fn or(&mut self) -> Option<Fast> {
        let mut expr = self.and()?;
        while self.word("or") {
            expr = Fast::Or(Box::new(expr), Box::new(self.and()?));
        }
        Some(expr)
    }

    fn and(&mut self) -> Option<Fast> {
        let mut expr = self.not()?;
        while self.word("and") {
            expr = Fast::And(Box::new(expr), Box::new(self.not()?));
        }
        Some(expr)
    }

    fn not(&mut self) -> Option<Fast> {
        if self.word("not") {
            return Some(Fast::Not(Box::new(self.nested(Self::not)?)));
        }
        let left = self.tested()?;
        let negated = match self.peek() {
            Some(Tok::Punct("==")) => false,
            Some(Tok::Punct("!=")) => true,
            _ => return Some(left),
        };
        self.at += 1;
        let right = self.tested()?;
        // A chain (`a == b == c`) is left to MiniJinja.
        if matches!(self.peek(), Some(Tok::Punct("==" | "!="))) {
            return None;
        }
        Some(Fast::Equal(Box::new(left), Box::new(right), negated))
    }

    /// A value, with `is defined` / `is not defined` / `is undefined` after a path.
    fn tested(&mut self) -> Option<Fast> {
        let value = self.primary()?;
        if !self.word("is") {
            return Some(value);
        }
        let not = self.word("not");
        let negated = match self.peek() {
            Some(Tok::Ident("defined")) => not,
            Some(Tok::Ident("undefined")) => !not,
            _ => return None,
        };
        self.at += 1;
        // What MiniJinja lets follow a test without taking it as the test's argument (a name,
        // even `if`, a literal, `[` or `{` would be one); a second `is` is left to MiniJinja.
        let ends = match self.peek() {
            None => true,
            Some(Tok::Ident(w)) => matches!(*w, "and" | "or" | "else"),
            Some(Tok::Punct(p)) => matches!(*p, ")" | "]" | "}" | "," | ":" | "==" | "!="),
            _ => false,
        };
        match value {
            Fast::Path { root, path } if ends => Some(Fast::Defined { root, path, negated }),
            _ => None,
        }
    }

    fn primary(&mut self) -> Option<Fast> {
        let tok = self.peek()?.clone();
        self.at += 1;
        match tok {
            Tok::Int(n) => Some(Fast::Literal(Value::from(n))),
            Tok::Str(s) => Some(Fast::Literal(Value::String(s.to_string()))),
            Tok::Punct("(") => {
                let inner = self.choice()?;
                self.eat(&Tok::Punct(")")).then_some(inner)
            }
            Tok::Punct("{") => self.mapping(),
            Tok::Ident(name) => match name {
                "true" | "True" => Some(Fast::Literal(Value::Bool(true))),
                "false" | "False" => Some(Fast::Literal(Value::Bool(false))),
                "none" | "None" => Some(Fast::Literal(Value::Null)),
                "uuid" | "now_ms" | "now" => {
                    let call = self.eat(&Tok::Punct("(")) && self.eat(&Tok::Punct(")"));
                    call.then(|| match name {
                        "uuid" => Fast::Uuid,
                        "now_ms" => Fast::NowMs,
                        _ => Fast::Now,
                    })
                }
                root if super::ROOTS.contains(&root) => self.path(root),
                // Any other name is a MiniJinja global, a filter's or a keyword.
                _ => None,
            },
            Tok::Punct(_) => None,
        }
    }

    fn path(&mut self, root: &str) -> Option<Fast> {
        let mut path = Vec::new();
        loop {
            if self.eat(&Tok::Punct(".")) {
                let Some(Tok::Ident(name)) = self.peek() else {
                    return None;
                };
                path.push(Seg::Key(name.to_string()));
                self.at += 1;
            } else if self.eat(&Tok::Punct("[")) {
                let seg = match self.peek()? {
                    Tok::Int(n) => Seg::Index(usize::try_from(*n).ok()?),
                    Tok::Str(s) => Seg::Key(s.to_string()),
                    _ => return None,
                };
                self.at += 1;
                if !self.eat(&Tok::Punct("]")) {
                    return None;
                }
                path.push(seg);
            } else if self.peek() == Some(&Tok::Punct("(")) {
                // A call of something in the scope: MiniJinja's.
                return None;
            } else {
                return Some(Fast::Path {
                    root: root.to_string(),
                    path,
                });
            }
        }
    }

    /// `{"key": value, ...}` (after its `{`): string keys, each once.
    fn mapping(&mut self) -> Option<Fast> {
        let mut entries: Vec<(String, Fast)> = Vec::new();
        if self.eat(&Tok::Punct("}")) {
            return Some(Fast::Mapping(entries));
        }
        loop {
            let Some(Tok::Str(key)) = self.peek().cloned() else {
                return None;
            };
            self.at += 1;
            if !self.eat(&Tok::Punct(":")) || entries.iter().any(|(k, _)| k == key) {
                return None;
            }
            entries.push((key.to_string(), self.choice()?));
            if self.eat(&Tok::Punct("}")) {
                return Some(Fast::Mapping(entries));
            }
            if !self.eat(&Tok::Punct(",")) {
                return None;
            }
        }
    }
}

/// A leading identifier and what follows it.
fn ident(text: &str) -> Option<(&str, &str)> {
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map_or(text.len(), |(i, _)| i);
    let first = text.chars().next()?;
    (end > 0 && (first.is_ascii_alphabetic() || first == '_')).then(|| text.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn paths_and_calls_have_a_fast_form() {
        assert_eq!(
            Fast::parse(" response.body.workItemIds[0] "),
            Some(Fast::Path {
                root: "response".into(),
                path: vec![key("body"), key("workItemIds"), Seg::Index(0)]
            })
        );
        assert_eq!(
            Fast::parse("steps['a'][\"b c\"]"),
            Some(Fast::Path {
                root: "steps".into(),
                path: vec![key("a"), key("b c")]
            })
        );
        assert_eq!(Fast::parse("uuid()"), Some(Fast::Uuid));
        let path = |root: &str, keys: &[&str]| Fast::Path {
            root: root.into(),
            path: keys.iter().map(|k| key(k)).collect(),
        };
        let b = Box::new;
        assert_eq!(Fast::parse("none"), Some(Fast::Literal(Value::Null)));
        assert_eq!(
            Fast::parse("not inputs.a is defined and steps.r.ok == 'x'"),
            Some(Fast::And(
                b(Fast::Not(b(Fast::Defined {
                    root: "inputs".into(),
                    path: vec![key("a")],
                    negated: false
                }))),
                b(Fast::Equal(
                    b(path("steps", &["r", "ok"])),
                    b(Fast::Literal(json!("x"))),
                    false
                ))
            ))
        );
        assert_eq!(
            Fast::parse(r#"{"q": inputs.a} if inputs.b is not defined else none"#),
            Some(Fast::Choice {
                then: b(Fast::Mapping(vec![("q".into(), path("inputs", &["a"]))])),
                cond: b(Fast::Defined {
                    root: "inputs".into(),
                    path: vec![key("b")],
                    negated: true
                }),
                otherwise: Some(b(Fast::Literal(Value::Null))),
            })
        );
        for slow in [
            "x.y",
            "inputs.a is defined if true else 1",
            "inputs.a is defined 1",
            "inputs.a is string",
            "inputs.a == 1 == 1",
            "inputs.a in inputs",
            "1.5",
            "{'a': 1, 'a': 2}",
            "{'id': uuid(), 'x': inputs.a}",
            format!("{}inputs.a", "not ".repeat(100_000)).as_str(),
            format!("{}inputs.a{}", "(".repeat(100_000), ")".repeat(100_000)).as_str(),
            format!("{}1{}", "{'a': ".repeat(100_000), "}".repeat(100_000)).as_str(),
            "uuid() if inputs.a else none",
            "inputs.a | upper",
            "inputs[0 + 1]",
            "inputs.a.1",
            "inputs['a\\'b']",
            "inputs.",
            "uuid() ~ 'x'",
            "env('A')",
        ] {
            assert_eq!(Fast::parse(slow), None, "{}", &slow[..slow.len().min(80)]);
        }
    }

    #[test]
    fn a_path_that_does_not_resolve_has_no_fast_answer() {
        let rt = World::deterministic(5, Vec::new());
        let ctx = Context::new(json!({"inputs": {"a": [1, {"b": "x"}], "s": "str"}}));
        let eval = |e: &str| Fast::parse(e).unwrap().eval(&ctx, &rt);
        assert_eq!(eval("inputs.a[1].b"), Some(json!("x")));
        assert_eq!(eval("inputs.a"), Some(json!([1, {"b": "x"}])));
        assert_eq!(eval("inputs.a[2]"), None);
        assert_eq!(eval("inputs.s.b"), None);
        assert_eq!(eval("inputs.a.b"), None);
        assert_eq!(eval("response.body"), None);
        assert_eq!(eval("now_ms()"), Some(json!(5)));
        assert_eq!(
            eval("uuid()"),
            Some(json!("00000000-0000-4000-8000-000000000001"))
        );
    }
}
