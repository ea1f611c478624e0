//! Templates and expressions compiled once per flow, rendered many times.
//!
//! Every template string of a flow is added to one MiniJinja environment when the flow is
//! compiled. Rendering looks the compiled template up by index; nothing is parsed per request.
//! A string that is exactly one `{{ expression }}` is compiled as an expression and renders to
//! the expression's JSON value, so `"{{ inputs.capacity_weight }}"` stays a number.

use super::context::Context;
use super::fast::Fast;
use super::world::World;
use minijinja::value::Value as JinjaValue;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// Instruction budget for one render, so a hostile template (a huge `range`) cannot hang a run.
const FUEL: u64 = 200_000;

/// A compiled template or expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateId(usize);

#[derive(Debug, Clone)]
struct Entry {
    /// Its name in the MiniJinja environment.
    name: String,
    /// Whether it renders to a JSON value (an expression) rather than text.
    typed: bool,
    /// A typed expression simple enough to answer without MiniJinja (see [`Fast`]).
    fast: Option<Fast>,
    /// It reads nothing that changes between renders (only literals, `env()`, `secret()`), so
    /// its first result is kept: connection headers and base URLs are rendered once.
    invariant: bool,
    cache: std::sync::OnceLock<Result<Value, RenderError>>,
    /// The YAML file it came from (the flow, or a file the flow uses), for errors.
    file: std::sync::Arc<str>,
    /// Line of the YAML file it came from, for errors.
    line: usize,
    /// The text as written, for errors.
    source: String,
}

/// A template tree: a JSON value whose strings may be templates.
#[derive(Debug, Clone)]
pub enum Tree {
    /// A value with no template in it (strings without `{`), used as it is.
    Literal(Value),
    /// A string compiled as a template, or as an expression when it is one `{{ }}`.
    Template(TemplateId),
    /// A list, each item a tree of its own.
    Array(Vec<Tree>),
    /// A mapping whose values are trees; the keys are literal and keep their order.
    Object {
        /// The keys, every value null: rendering clones this and fills in the values in order,
        /// so no key is hashed again (serde_json's maps hash with SipHash, which cost more than
        /// the rest of building a small object).
        keys: serde_json::Map<String, Value>,
        /// The tree of each key's value, in the keys' order.
        values: Vec<Tree>,
    },
}

/// An error while rendering: what went wrong, in the user's words, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// The flow file, as diagnostics name it (empty when unknown).
    pub file: std::sync::Arc<str>,
    /// The line of the flow file the template stands on.
    pub line: usize,
    /// What went wrong, naming the undefined value or the expression that failed.
    pub message: String,
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.file.is_empty() && self.line == 0 {
            // A template with no place of its own (a service file's setting): the caller names it.
            f.write_str(&self.message)
        } else if self.file.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// The store of one flow's compiled templates.
///
/// `check` compiles every template of a flow into an unbound store ([`Templates::unbound`]) and
/// reads what each one names from the compiled form; compiling the flow to run it binds the same
/// store to the run's [`World`] ([`Templates::bind`]) and finds each template again by where it
/// stands ([`Templates::template_at`]): a template is parsed once.
pub struct Templates {
    env: Environment<'static>,
    runtime: Option<World>,
    file: std::sync::Arc<str>,
    entries: Vec<Entry>,
    /// The environment variables the compiled templates name literally.
    env_names: Vec<(bool, String)>,
    /// What was compiled for the string at each JSON pointer of the flow document, and as what.
    at: std::collections::HashMap<(Kind, String), TemplateId>,
}

/// How a string of the flow is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// Text with `{{ }}` ([`Templates::template`]).
    Template,
    /// A bare expression ([`Templates::expression`]).
    Expression,
}

impl Templates {
    /// An empty store: `uuid()`, `now()`, `env()`, `secret()` read `runtime`; undefined is an error.
    pub fn new(runtime: &World) -> Self {
        let mut store = Templates::unbound();
        store.bind(runtime);
        store
    }

    /// An empty store that can compile but not render until it is [bound](Templates::bind).
    pub fn unbound() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        Templates {
            env,
            runtime: None,
            file: "".into(),
            entries: Vec::new(),
            env_names: Vec::new(),
            at: std::collections::HashMap::new(),
        }
    }

    /// Gives the store's templates the functions that read `runtime` (`uuid()`, `now()`,
    /// `env()`, `secret()`); MiniJinja looks functions up when it renders, so the templates
    /// compiled before need no compiling again.
    pub fn bind(&mut self, runtime: &World) {
        register_functions(&mut self.env, runtime);
        self.runtime = Some(runtime.clone());
        for i in 0..self.entries.len() {
            self.ready(TemplateId(i));
        }
    }

    /// [`Templates::template`] for the string at `pointer` of the flow document: compiled the
    /// first time, found again after. The entry is named at `line` of the current file.
    pub fn template_at(&mut self, pointer: &str, text: &str, line: usize) -> Result<TemplateId, RenderError> {
        self.compiled_at(Kind::Template, pointer, text, line)
    }

    /// [`Templates::expression`] for the string at `pointer` of the flow document (see
    /// [`Templates::template_at`]).
    pub fn expression_at(
        &mut self,
        pointer: &str,
        text: &str,
        line: usize,
    ) -> Result<TemplateId, RenderError> {
        self.compiled_at(Kind::Expression, pointer, text, line)
    }

    fn compiled_at(
        &mut self,
        kind: Kind,
        pointer: &str,
        text: &str,
        line: usize,
    ) -> Result<TemplateId, RenderError> {
        let key = (kind, pointer.to_string());
        if let Some(&id) = self.at.get(&key)
            && self.entries[id.0].source == text
        {
            // Found again by a later stage: its errors name the place that stage gives.
            let entry = &mut self.entries[id.0];
            entry.file = self.file.clone();
            entry.line = line;
            return Ok(id);
        }
        let id = match kind {
            Kind::Template => self.template(text, line)?,
            Kind::Expression => self.expression(text, line)?,
        };
        self.at.insert(key, id);
        Ok(id)
    }

    /// How many templates and expressions the store holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The variables template `id` reads without setting them; `nested` gives whole paths
    /// (`steps.route.body.psrId`) rather than their first names.
    pub fn undeclared(&self, id: TemplateId, nested: bool) -> std::collections::HashSet<String> {
        self.env
            .get_template(&self.entries[id.0].name)
            .map(|t| t.undeclared_variables(nested))
            .unwrap_or_default()
    }

    /// The text a template or expression was compiled from, as written in the flow.
    pub fn source(&self, id: TemplateId) -> &str {
        &self.entries[id.0].source
    }

    /// The environment variables the compiled templates read with `env('NAME')` (`false`) and
    /// `secret('NAME')` (`true`), each once, sorted.
    pub fn env_names(&self) -> Vec<(bool, String)> {
        let mut names = self.env_names.clone();
        names.sort();
        names.dedup();
        names
    }

    /// Names the flow file in errors: `flows/inbound.yaml:93: ...`.
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = file.into();
        self
    }

    /// Names `file` in the errors of the templates compiled from now on: a connection or
    /// steps file the flow uses.
    pub fn set_file(&mut self, file: std::sync::Arc<str>) {
        self.file = file;
    }

    /// The file templates compiled now are named in.
    pub fn file(&self) -> std::sync::Arc<str> {
        self.file.clone()
    }

    /// Compiles a template string (text with `{{ }}`); `line` is where it stands in the flow.
    pub fn template(&mut self, text: &str, line: usize) -> Result<TemplateId, RenderError> {
        if let Some(expr) = single_expression(text) {
            // Compiled as an expression when it is one; else as the text it is.
            if let Ok(id) = self.add(format!("{{% set result = ({expr}) %}}"), Some(expr), text, line) {
                return Ok(id);
            }
        }
        self.add(text.to_string(), None, text, line)
    }

    /// Compiles a bare expression (`if`, `save`, `outputs`, ...).
    pub fn expression(&mut self, expr: &str, line: usize) -> Result<TemplateId, RenderError> {
        if let Some(why) = not_one_expression(expr) {
            return Err(RenderError {
                file: self.file.clone(),
                line,
                message: format!("`{expr}` is not one expression: {why}"),
            });
        }
        self.add(format!("{{% set result = ({expr}) %}}"), Some(expr), expr, line)
    }

    fn add(
        &mut self,
        source: String,
        expr: Option<&str>,
        text: &str,
        line: usize,
    ) -> Result<TemplateId, RenderError> {
        let id = TemplateId(self.entries.len());
        let file = self.file.clone();
        if let Some(detail) = super::scan::too_complex(text, expr.is_none()) {
            return Err(RenderError {
                file,
                line,
                message: format!("expression too complex: {detail}"),
            });
        }
        let error = |e: minijinja::Error| RenderError {
            file: file.clone(),
            line,
            message: e.to_string(),
        };
        let name = id.0.to_string();
        self.env.add_template_owned(name.clone(), source).map_err(error)?;
        self.entries.push(Entry {
            name,
            typed: expr.is_some(),
            fast: expr.and_then(Fast::parse),
            invariant: false,
            cache: std::sync::OnceLock::new(),
            file,
            line,
            source: text.to_string(),
        });
        if self.runtime.is_some() {
            self.ready(id);
        }
        Ok(id)
    }

    /// What only a run needs of entry `id`, worked out when the store is bound (`check` never
    /// renders): the environment variables it names, and whether it is invariant.
    fn ready(&mut self, id: TemplateId) {
        let entry = &self.entries[id.0];
        // Only code reads the environment: the text around `{{ }}` and YAML comments do not.
        if entry.typed {
            self.env_names.extend(literal_env_names(&entry.source));
        } else {
            for region in super::scan::code_regions(&entry.source) {
                self.env_names.extend(literal_env_names(region));
            }
        }
        let invariant = self.env.get_template(&entry.name).is_ok_and(|t| {
            t.undeclared_variables(false)
                .iter()
                .all(|name| matches!(name.as_str(), "env" | "secret"))
        });
        self.entries[id.0].invariant = invariant;
    }

    /// Compiles every string in a JSON value as a template; other values stay literal.
    pub fn tree(
        &mut self,
        value: &Value,
        line_of: &dyn Fn(&str) -> usize,
        pointer: &str,
    ) -> Result<Tree, RenderError> {
        Ok(match value {
            Value::String(s) if s.contains('{') => {
                Tree::Template(self.template_at(pointer, s, line_of(pointer))?)
            }
            Value::Array(items) => Tree::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.tree(v, line_of, &format!("{pointer}/{i}")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Tree::Object {
                keys: map.keys().map(|k| (k.clone(), Value::Null)).collect(),
                values: map
                    .iter()
                    .map(|(k, v)| self.tree(v, line_of, &crate::base::yaml::push_pointer(pointer, k)))
                    .collect::<Result<_, RenderError>>()?,
            },
            other => Tree::Literal(other.clone()),
        })
    }

    /// Renders one template or expression to a JSON value.
    pub fn render(&self, id: TemplateId, ctx: &Context) -> Result<Value, RenderError> {
        let entry = &self.entries[id.0];
        if entry.invariant {
            return entry.cache.get_or_init(|| self.render_now(id, ctx)).clone();
        }
        self.render_now(id, ctx)
    }

    fn render_now(&self, id: TemplateId, ctx: &Context) -> Result<Value, RenderError> {
        let entry = &self.entries[id.0];
        if let Some(runtime) = &self.runtime
            && let Some(value) = entry.fast.as_ref().and_then(|f| f.eval(ctx, runtime))
        {
            return Ok(value);
        }
        self.render_engine(id, ctx)
    }

    /// Renders with MiniJinja, whatever the fast form could answer.
    fn render_engine(&self, id: TemplateId, ctx: &Context) -> Result<Value, RenderError> {
        let entry = &self.entries[id.0];
        let template = self
            .env
            .get_template(&entry.name)
            .map_err(|e| self.error(id, e, ctx))?;
        if entry.typed {
            let captured = template
                .render_captured(ctx.jinja().clone())
                .map_err(|e| self.error(id, e, ctx))?;
            let value = captured.state().lookup("result").unwrap_or_default();
            // Strict mode lets an undefined value sit inside a list or map literal, where it
            // would quietly become null; it is an error like any other undefined value.
            if contains_undefined(&value) {
                let source = entry.source.trim();
                let message = match self.undefined_name(id, ctx) {
                    Some(name) if name != source => format!("`{name}` is undefined (in `{source}`)"),
                    _ => format!("`{source}` is undefined"),
                };
                return Err(RenderError {
                    file: entry.file.clone(),
                    line: entry.line,
                    message,
                });
            }
            serde_json::to_value(&value).map_err(|e| RenderError {
                file: entry.file.clone(),
                line: entry.line,
                message: e.to_string(),
            })
        } else {
            template
                .render(ctx.jinja().clone())
                .map(Value::String)
                .map_err(|e| self.error(id, e, ctx))
        }
    }

    /// Renders a template to text: a non-string value is written as JSON (`1`, `true`).
    pub fn render_text(&self, id: TemplateId, ctx: &Context) -> Result<String, RenderError> {
        Ok(match self.render(id, ctx)? {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }

    /// Renders a condition: true or false, as MiniJinja judges truth.
    pub fn truth(&self, id: TemplateId, ctx: &Context) -> Result<bool, RenderError> {
        Ok(super::fast::truthy(&self.render(id, ctx)?))
    }

    /// Renders a whole tree.
    pub fn render_tree(&self, tree: &Tree, ctx: &Context) -> Result<Value, RenderError> {
        Ok(match tree {
            Tree::Literal(v) => v.clone(),
            Tree::Template(id) => self.render(*id, ctx)?,
            Tree::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| self.render_tree(t, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Tree::Object { keys, values } => {
                let mut object = keys.clone();
                for (slot, tree) in object.values_mut().zip(values) {
                    *slot = self.render_tree(tree, ctx)?;
                }
                Value::Object(object)
            }
        })
    }

    /// Turns a MiniJinja error into words: an undefined value is named, as `inputs.queue_id`.
    fn error(&self, id: TemplateId, e: minijinja::Error, ctx: &Context) -> RenderError {
        let entry = &self.entries[id.0];
        let message = match e.kind() {
            ErrorKind::UndefinedError => match self.undefined_name(id, ctx) {
                Some(name) => format!("`{name}` is undefined (in `{}`)", entry.source.trim()),
                None => format!("an undefined value was used in `{}`", entry.source.trim()),
            },
            ErrorKind::OutOfFuel => format!("`{}` took too many steps to evaluate", entry.source.trim()),
            _ => format!(
                "{} (in `{}`)",
                e.detail().unwrap_or(&e.to_string()),
                entry.source.trim()
            ),
        };
        RenderError {
            file: entry.file.clone(),
            line: entry.line,
            message,
        }
    }

    fn undefined_name(&self, id: TemplateId, ctx: &Context) -> Option<String> {
        let template = self.env.get_template(&self.entries[id.0].name).ok()?;
        let source = &self.entries[id.0].source;
        let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        // A name the expression tests with `is defined` is allowed to be missing; name another.
        names.sort_by_key(|n| {
            (
                source.contains(&format!("{n} is defined"))
                    || source.contains(&format!("{n} is not defined")),
                n.clone(),
            )
        });
        names.into_iter().find(|name| !ctx.resolves(name))
    }
}

fn contains_undefined(value: &JinjaValue) -> bool {
    if value.is_undefined() {
        return true;
    }
    match value.kind() {
        minijinja::value::ValueKind::Map => value
            .try_iter()
            .into_iter()
            .flatten()
            .any(|k| value.get_item(&k).is_ok_and(|v| contains_undefined(&v))),
        minijinja::value::ValueKind::Seq => value
            .try_iter()
            .into_iter()
            .flatten()
            .any(|v| contains_undefined(&v)),
        _ => false,
    }
}

/// If `text` may be exactly one `{{ expression }}`, the expression. `{{ a }} and {{ b }}` also
/// starts and ends with braces: an inner part that opens or closes a tag is not one expression,
/// and one that does not compile as one is compiled as text instead (see [`Templates::template`]).
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if not_one_expression(inner).is_some() {
        return None;
    }
    Some(inner.trim())
}

/// Why `expr` would not be read as the one expression it is written as once wrapped in
/// `{% set result = (…) %}`: a `%}` ends that tag (and starts others), a comma at the top makes
/// a tuple, a bracket closed before it opened calls or indexes what came before. The wrapper
/// would compile such text though it is not one expression; string literals are passed over.
fn not_one_expression(expr: &str) -> Option<&'static str> {
    let bytes = expr.as_bytes();
    let (mut quote, mut depth, mut i) = (None, 0usize, 0);
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return Some("it closes a bracket it did not open"),
                },
                b',' if depth == 0 => return Some("a comma makes it a list of expressions"),
                b'%' if bytes.get(i + 1) == Some(&b'}') => return Some("it closes a template tag"),
                _ => {}
            },
        }
        i += 1;
    }
    None
}

fn register_functions(env: &mut Environment<'static>, runtime: &World) {
    let ids = runtime.ids.clone();
    env.add_function("uuid", move || ids.uuid());
    let clock = runtime.clock.clone();
    env.add_function("now_ms", move || clock.now_ms());
    let rt = runtime.clone();
    env.add_function("now", move || rt.now_rfc3339());
    let lookup = runtime.env.clone();
    // `env('NAME', 'default')`: the default when the variable is unset.
    env.add_function("env", move |name: &str, default: Option<String>| {
        lookup(name).or(default).ok_or_else(|| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("environment variable `{name}` is not set"),
            )
        })
    });
    let lookup = runtime.env.clone();
    let secrets = runtime.secrets.clone();
    env.add_function("secret", move |name: &str| {
        let value = lookup(name).ok_or_else(|| {
            minijinja::Error::new(ErrorKind::InvalidOperation, format!("secret `{name}` is not set"))
        })?;
        secrets.add(&value);
        Ok(value)
    });
}

/// The names a flow reads with `env('NAME')` and `secret('NAME')` written literally, so a run
/// can refuse to start when one is missing instead of failing halfway.
pub fn literal_env_names(text: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for (func, secret) in [("env(", false), ("secret(", true)] {
        let mut rest = text;
        while let Some(i) = rest.find(func) {
            let before = rest[..i].chars().next_back();
            rest = &rest[i + func.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let arg = rest.trim_start();
            let Some(quote) = arg.chars().next().filter(|c| *c == '\'' || *c == '"') else {
                continue;
            };
            if let Some(end) = arg[1..].find(quote) {
                out.push((secret, arg[1..1 + end].to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setup() -> (Templates, Context<'static>) {
        let rt = World::deterministic(1_700_000_000_000, vec![("TOKEN".into(), "s3cr3t".into())]);
        let t = Templates::new(&rt).in_file("flows/x.yaml");
        let ctx = Context::new(
            json!({"inputs": {"n": 2, "s": "090", "o": {"a": [1]}}, "steps": {"a": {"x": "y", "succeeded": true}}}),
        );
        (t, ctx)
    }

    #[test]
    fn single_expressions_keep_their_json_type() {
        let (mut t, ctx) = setup();
        let n = t.template("{{ inputs.n }}", 1).unwrap();
        let s = t.template("{{ inputs.s }}", 1).unwrap();
        let o = t.template("{{ inputs.o }}", 1).unwrap();
        let text = t.template("n={{ inputs.n }}", 1).unwrap();
        let two = t.template("{{ inputs.n }}{{ inputs.n }}", 1).unwrap();
        let dict = t.template("{{ {'q': {'id': inputs.s}} }}", 1).unwrap();
        let now = t.template("{{ now_ms() }}", 1).unwrap();
        assert_eq!(t.render(n, &ctx).unwrap(), json!(2));
        assert_eq!(t.render(s, &ctx).unwrap(), json!("090"));
        assert_eq!(t.render(o, &ctx).unwrap(), json!({"a": [1]}));
        assert_eq!(t.render(text, &ctx).unwrap(), json!("n=2"));
        assert_eq!(t.render(two, &ctx).unwrap(), json!("22"));
        assert_eq!(t.render(dict, &ctx).unwrap(), json!({"q": {"id": "090"}}));
        assert_eq!(t.render(now, &ctx).unwrap(), json!(1_700_000_000_000i64));
    }

    #[test]
    fn undefined_values_are_errors_naming_the_variable_and_line() {
        let (mut t, ctx) = setup();
        let a = t.template("/x/{{ inputs.missing }}", 7).unwrap();
        let b = t.expression("steps.a.nope", 9).unwrap();
        let c = t.expression("inputs.missing is defined", 9).unwrap();
        assert_eq!(
            t.render(a, &ctx).unwrap_err(),
            RenderError {
                file: "flows/x.yaml".into(),
                line: 7,
                message: "`inputs.missing` is undefined (in `/x/{{ inputs.missing }}`)".into()
            }
        );
        assert_eq!(
            t.render(a, &ctx).unwrap_err().to_string(),
            "flows/x.yaml:7: `inputs.missing` is undefined (in `/x/{{ inputs.missing }}`)"
        );
        assert_eq!(
            t.render(b, &ctx).unwrap_err().message,
            "`steps.a.nope` is undefined"
        );
        assert!(!t.truth(c, &ctx).unwrap());
    }

    #[test]
    fn fuel_stops_runaway_templates() {
        let (mut t, ctx) = setup();
        let id = t
            .template(
                "{% for i in range(100000) %}{% for j in range(100) %}x{% endfor %}{% endfor %}",
                3,
            )
            .unwrap();
        let err = t.render(id, &ctx).unwrap_err();
        assert!(err.message.contains("took too many steps"), "{err:?}");
    }

    #[test]
    fn secrets_are_registered_when_read() {
        let rt = World::deterministic(0, vec![("TOKEN".into(), "s3cr3t".into())]);
        let mut t = Templates::new(&rt);
        let id = t.template("Bearer {{ secret('TOKEN') }}", 1).unwrap();
        assert_eq!(
            t.render(id, &Context::new(json!({}))).unwrap(),
            json!("Bearer s3cr3t")
        );
        assert_eq!(rt.secrets.redact("Bearer s3cr3t"), "Bearer ***");
    }

    #[test]
    fn literal_env_names_are_found() {
        assert_eq!(
            literal_env_names("{{ env('A') }} {{ secret(\"B\") }} {{ myenv('C') }}"),
            [(false, "A".to_string()), (true, "B".to_string())]
        );
    }

    #[test]
    fn a_template_is_compiled_once_and_found_again_where_it_stands() {
        let mut t = Templates::unbound();
        let a = t
            .template_at("/steps/0/request/path", "/x/{{ inputs.id }}", 3)
            .unwrap();
        let e = t.expression_at("/steps/0/if", "steps.a.succeeded", 4).unwrap();
        assert_eq!(t.len(), 2);
        t.set_file("flows/y.yaml".into());
        assert_eq!(
            t.template_at("/steps/0/request/path", "/x/{{ inputs.id }}", 9)
                .unwrap(),
            a
        );
        assert_eq!(
            t.expression_at("/steps/0/if", "steps.a.succeeded", 10).unwrap(),
            e
        );
        assert_eq!(t.len(), 2);
        // What the later stage found is named where it says.
        t.bind(&World::deterministic(0, Vec::new()));
        let error = t
            .render(e, &Context::new(serde_json::json!({ "steps": {} })))
            .unwrap_err();
        assert_eq!((&*error.file, error.line), ("flows/y.yaml", 10));
        let names: Vec<String> = t.undeclared(a, true).into_iter().collect();
        assert_eq!(names, ["inputs.id"]);
        // Another text at the same place is compiled anew.
        let b = t
            .template_at("/steps/0/request/path", "/y/{{ inputs.id }}", 9)
            .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn an_expression_that_closes_its_tag_is_not_one_expression() {
        let mut t = Templates::unbound();
        let injected = t.expression("1) %}{% set result = (2", 1).unwrap_err();
        assert_eq!(
            injected.message,
            "`1) %}{% set result = (2` is not one expression: it closes a bracket it did not open"
        );
        for (text, why) in [
            ("a, b", "a comma makes it a list of expressions"),
            ("a) (b", "it closes a bracket it did not open"),
            ("x %} y", "it closes a template tag"),
        ] {
            assert_eq!(
                t.expression(text, 1).unwrap_err().message,
                format!("`{text}` is not one expression: {why}")
            );
        }
        // Commas inside brackets and strings are the expression's own.
        t.expression("f(a, b) or [1, 2] or {'k': 'a, b)'}", 1).unwrap();
        // Inside a string literal the same characters are text.
        t.expression("response.body.x == \"%}\" or response.body.y == '%}'", 1)
            .unwrap();
        // Two expressions are text; one whose dict closes with `}}` is still one.
        t.bind(&World::deterministic(0, Vec::new()));
        let ctx = Context::new(serde_json::json!({ "a": 1, "b": 2 }));
        let two = t.template("{{ a }} and {{ b }}", 1).unwrap();
        assert_eq!(t.render(two, &ctx).unwrap(), serde_json::json!("1 and 2"));
        let dict = t.template("{{ {'x': {'y': a}} }}", 1).unwrap();
        assert_eq!(
            t.render(dict, &ctx).unwrap(),
            serde_json::json!({ "x": { "y": 1 } })
        );
    }

    #[test]
    fn a_rendered_mapping_keeps_its_keys_order_and_each_render_its_own_values() {
        let mut t = Templates::unbound();
        t.bind(&World::deterministic(0, Vec::new()));
        let body = serde_json::json!({
            "z": "{{ a }}",
            "a": 1,
            "m": { "y": "{{ b }}", "b": ["{{ a }}", { "k": "{{ b }}" }], "e": {} },
        });
        let tree = t.tree(&body, &|_| 1, "").unwrap();
        for (a, b) in [(1, "x"), (2, "y")] {
            let ctx = Context::new(serde_json::json!({ "a": a, "b": b }));
            let rendered = t.render_tree(&tree, &ctx).unwrap();
            assert_eq!(
                serde_json::to_string(&rendered).unwrap(),
                format!(r#"{{"z":{a},"a":1,"m":{{"y":"{b}","b":[{a},{{"k":"{b}"}}],"e":{{}}}}}}"#)
            );
        }
    }

    /// Every answer the fast form gives is MiniJinja's, to the byte (key order included), and
    /// where MiniJinja fails the fast form does not answer. Expressions are drawn from the
    /// fast forms and from just outside them, over scopes of every JSON kind.
    #[test]
    fn fast_answers_are_minijinja_answers() {
        use crate::expr::context::{Answer, Flags, Scope};
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        use std::collections::BTreeMap;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let leaf = || {
            prop::sample::select(vec![
                json!(null),
                json!(true),
                json!(false),
                json!(0),
                json!(1),
                json!(-2),
                json!(0.0),
                json!(1.5),
                json!(""),
                json!("x"),
                json!([]),
                json!([1, "a"]),
                json!({}),
                json!({"a": 1, "b": "x"}),
            ])
        };
        // Small objects, and (half the time) the same with twenty more keys: lookups search small
        // objects in order and hash into large ones, and both must answer as MiniJinja does.
        let object = move || {
            (
                prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c"]), leaf(), 0..4),
                any::<bool>(),
            )
                .prop_map(|(m, large)| {
                    let mut map: serde_json::Map<String, Value> =
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    if large {
                        map.extend((0..20).map(|i| (format!("k{i}"), json!(i))));
                    }
                    Value::Object(map)
                })
        };
        let paths = prop::sample::select(vec![
            "inputs.a",
            "inputs.b",
            "inputs.z",
            "inputs.a.a",
            "inputs.a.b",
            "inputs['c']",
            "inputs.a[0]",
            "inputs.a[1]",
            "inputs",
            "vars.a",
            "vars.z",
            "steps.route.succeeded",
            "steps.route.failed",
            "steps.route.error",
            "steps.route.status",
            "steps.route.body.a",
            "steps.route.headers.etag",
            "steps.route.headers",
            "steps.route.a",
            "steps.route.z",
            "steps.nope.a",
            "steps.route",
            "response.body.a",
            "response.body.z",
            "response.status",
            "response.headers.etag",
            "response.headers['x-a']",
            "response.headers.ETag",
            "response.headers",
            "response",
            "params.a",
        ]);
        let atoms = prop_oneof![
            paths.clone().prop_map(str::to_string),
            prop::sample::select(vec![
                "none", "true", "false", "False", "0", "1", "7", "'x'", "''", "\"x\"", "1.5", "'a\\'",
            ])
            .prop_map(str::to_string),
            paths.prop_flat_map(|p| {
                prop::sample::select(vec!["is defined", "is not defined", "is undefined", "is none"])
                    .prop_map(move |t| format!("{p} {t}"))
            }),
        ];
        let expr = atoms.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|a| format!("not {a}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} == {b}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} != {b}")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(a, b, c)| format!("{a} if {b} else {c}")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} if {b}")),
                inner.clone().prop_map(|a| format!("({a})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{{\"k\": {a}, 'j': {b}}}")),
                inner.clone().prop_map(|a| format!("{a} | string")),
            ]
        });
        let rt = World::deterministic(1_700_000_000_000, Vec::new());
        let (asked, answered) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut runner = TestRunner::new(Config {
            cases: 4000,
            failure_persistence: None,
            ..Config::default()
        });
        // A step's saved values may take the name of its answer's fields or of its flags.
        let saved = prop::collection::btree_map(
            prop::sample::select(vec!["a", "b", "status", "body", "succeeded", "error"]),
            leaf(),
            0..4,
        );
        let scopes = (object(), object(), saved, object(), any::<bool>());
        runner
            .run(
                &(scopes, expr),
                |((inputs, vars, route, body, responded), text)| {
                    let mut t = Templates::new(&rt);
                    let Ok(id) = t.expression(&text, 1) else {
                        return Ok(());
                    };
                    // The answers' fields are read where they are, and MiniJinja reads the
                    // objects made of them: the two must agree.
                    let headers = [("ETag", "\"v1\""), ("etag", "\"v2\""), ("x-a", "1")];
                    let answer = || Answer::new(202, headers, body.clone());
                    let saved = route.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    let flags = Flags {
                        succeeded: true,
                        skipped: false,
                        error: Value::Null,
                    };
                    let (inputs, vars) = (Scope::new(inputs), Scope::new(vars));
                    let steps: BTreeMap<String, Scope> =
                        [("route".to_string(), Scope::step(Some(answer()), saved, flags))].into();
                    let response = Scope::answer(answer());
                    let ctx = Context::from_parts(&inputs, &vars, &steps, responded.then_some(&response));
                    asked.fetch_add(1, Ordering::Relaxed);
                    let Some(fast) = t.entries[id.0].fast.as_ref().and_then(|f| f.eval(&ctx, &rt)) else {
                        return Ok(());
                    };
                    answered.fetch_add(1, Ordering::Relaxed);
                    let engine = t.render_engine(id, &ctx);
                    prop_assert!(engine.is_ok(), "`{text}`: fast {fast}, MiniJinja {engine:?}");
                    let engine = engine.unwrap();
                    prop_assert_eq!(fast.to_string(), engine.to_string(), "`{}`", text);
                    Ok(())
                },
            )
            .unwrap();
        let (asked, answered) = (asked.into_inner(), answered.into_inner());
        // Not vacuous: most expressions compile, and many have a fast answer.
        assert!(
            asked > 3000 && answered > asked / 8,
            "{answered} of {asked} answered fast"
        );
    }
}
