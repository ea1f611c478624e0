//! The expression language: MiniJinja with the names flows may use.

pub(crate) mod context;
pub(crate) mod fast;
pub(crate) mod scan;
pub(crate) mod templates;
pub(crate) mod world;

use minijinja::Environment;
use std::sync::OnceLock;

/// Functions a flow may call.
pub const FUNCTIONS: &[&str] = &["uuid", "now_ms", "now", "env", "secret"];

/// Globals MiniJinja itself provides (and loop state inside `{% for %}`).
pub const BUILTIN_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "loop"];

/// Values every step has besides the ones it saves.
pub const STEP_FIELDS: &[&str] = &[
    "status",
    "body",
    "headers",
    "succeeded",
    "skipped",
    "failed",
    "error",
];

/// The top-level names of the expression scope.
pub const ROOTS: &[&str] = &["inputs", "params", "vars", "steps", "response"];

/// MiniJinja's built-in filters, for suggestions (whether a filter exists is asked of MiniJinja).
pub const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "default",
    "dictsort",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
];

/// MiniJinja's built-in tests (`x is defined`), for suggestions.
pub const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "even",
    "false",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "true",
    "undefined",
    "upper",
];

/// The environment used to compile templates for checking: MiniJinja's builtins, no I/O.
pub fn check_environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(Environment::new)
}

/// Whether MiniJinja knows the filter `name`.
pub fn is_filter(name: &str) -> bool {
    probe(&format!("none | {name}"), minijinja::ErrorKind::UnknownFilter)
}

/// Whether MiniJinja knows the test `name` (as in `x is defined`).
pub fn is_test(name: &str) -> bool {
    probe(&format!("none is {name}"), minijinja::ErrorKind::UnknownTest)
}

fn probe(expr: &str, unknown: minijinja::ErrorKind) -> bool {
    match check_environment().compile_expression(expr) {
        Ok(e) => !matches!(e.eval(()), Err(err) if err.kind() == unknown),
        Err(_) => false,
    }
}

pub use context::{Context, Scope};
pub use templates::Templates;
pub use world::World;
