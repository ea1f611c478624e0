//! Expressions simple enough to answer without the template engine: a path into the scope
//! (`inputs.end_user`, `steps.interaction.work_item_id`, `response.body.workItemIds[0]`) or a
//! call of `uuid()`, `now_ms()` or `now()`.
//!
//! Most expressions a flow writes are of these kinds, and setting up a MiniJinja state for each
//! was the largest cost of rendering a request. A path that does not resolve is answered by
//! MiniJinja after all, so that errors (and `is defined`-style subtleties) read exactly the same.

use super::context::Context;
use super::world::World;
use serde_json::Value;

/// One step of a path: `.name` / `['name']`, or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A key of a mapping: `.name` or `['name']`.
    Key(String),
    /// A position in a list, counted from 0: `[0]`.
    Index(usize),
}

/// An expression answered without MiniJinja: a path into the scope, or a clock or id call.
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
}

impl Fast {
    /// The fast form of `expr`, if it has one. `expr` has already compiled as MiniJinja.
    pub fn parse(expr: &str) -> Option<Fast> {
        let expr = expr.trim();
        match expr {
            "uuid()" => return Some(Fast::Uuid),
            "now_ms()" => return Some(Fast::NowMs),
            "now()" => return Some(Fast::Now),
            _ => {}
        }
        let (root, mut rest) = ident(expr)?;
        // Only the scope's own roots: any other name is a MiniJinja global or literal
        // (`none`, `true`, `range`).
        if !super::ROOTS.contains(&root) {
            return None;
        }
        let mut path = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let (name, after) = ident(after)?;
                path.push(Seg::Key(name.to_string()));
                rest = after;
            } else if let Some(after) = rest.strip_prefix('[') {
                let (inside, after) = after.split_once(']')?;
                path.push(subscript(inside)?);
                rest = after;
            } else {
                return None;
            }
        }
        Some(Fast::Path {
            root: root.to_string(),
            path,
        })
    }

    /// The value, or `None` when the path does not resolve (MiniJinja then answers).
    pub fn eval(&self, ctx: &Context, runtime: &World) -> Option<Value> {
        Some(match self {
            Fast::Path { root, path } => ctx.lookup(root, path)?.clone(),
            Fast::Uuid => Value::String(runtime.ids.uuid()),
            Fast::NowMs => Value::from(runtime.clock.now_ms()),
            Fast::Now => Value::String(runtime.now_rfc3339()),
        })
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

/// `0`, `'name'` or `"name"` between brackets.
fn subscript(inside: &str) -> Option<Seg> {
    if !inside.is_empty() && inside.bytes().all(|b| b.is_ascii_digit()) {
        return inside.parse().ok().map(Seg::Index);
    }
    for quote in ['\'', '"'] {
        if let Some(name) = inside.strip_prefix(quote).and_then(|s| s.strip_suffix(quote))
            && !name.contains([quote, '\\'])
        {
            return Some(Seg::Key(name.to_string()));
        }
    }
    None
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
        for slow in [
            "none",
            "true",
            "x.y",
            "inputs.a is defined",
            "inputs.a or 1",
            "inputs.a | upper",
            "inputs[0 + 1]",
            "inputs.a.1",
            "inputs['a\\'b']",
            "inputs.",
            "uuid() ~ 'x'",
            "env('A')",
        ] {
            assert_eq!(Fast::parse(slow), None, "{slow}");
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
