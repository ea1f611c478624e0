//! The semantic checks' problems, in the words the diagnostics use.

use crate::base::diagnostic::Diagnostic;
use crate::base::source::Span;
use crate::base::suggest::did_you_mean;
use crate::expr::{self, FUNCTIONS, STEP_FIELDS};

/// The kinds of problem this stage reports.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyzeError {
    /// A step id used before, in `steps` or `finally`; reported at the later one.
    DuplicateStep {
        /// The repeated id.
        id: String,
        /// The line where the id is first used.
        first_line: usize,
    },
    /// A `steps.<id>` whose id names no step of the flow.
    UnknownStep {
        /// The id as written.
        id: String,
        /// A did-you-mean among the flow's step ids, used as the hint.
        suggestion: Option<String>,
    },
    /// A step id that names no step, hinted with every step id (`analyze` does not build it today).
    UnknownStepIn {
        /// The id as written.
        id: String,
        /// Every step id of the flow, listed in the hint.
        known: Vec<String>,
    },
    /// A `steps.<id>` naming a step that has not run yet where it is read (a later or `finally` step).
    LaterStep {
        /// The step read too early.
        id: String,
    },
    /// A step reading its own values through `steps.<id>`, where it should read `response`.
    OwnStep {
        /// The step's own id.
        id: String,
    },
    /// A `steps.<id>.<value>` that the step neither saves nor has as a built-in (`status`, ...).
    UnknownStepField {
        /// The step read.
        id: String,
        /// The value asked for.
        field: String,
        /// The step's saved values and built-in fields, for the did-you-mean or the list.
        known: Vec<String>,
    },
    /// An `inputs.<name>` that is not declared under `inputs`.
    UndeclaredInput {
        /// The input name as written.
        name: String,
        /// A did-you-mean among the declared inputs; without one the hint shows a declaration.
        suggestion: Option<String>,
    },
    /// A `vars.<name>` that is not readable where it is used (undeclared, or out of scope).
    UnknownVar {
        /// The var name as written.
        name: String,
        /// A did-you-mean among the vars readable there, used as the hint.
        suggestion: Option<String>,
        /// Declared, but not readable here (a later var, another step's, or in `connection`).
        elsewhere: bool,
    },
    /// A `stop_if` on the last main step or on a `finally` step: nothing is left to skip.
    StopIfStopsNothing {
        /// Whether the step is a `finally` step (otherwise it is the last main step).
        finally: bool,
    },
    /// `in_doubt: compensate` with no `compensate` request, or a `compensate` request under
    /// another policy.
    CompensateMismatch {
        /// Whether the policy is `compensate` (and the request is missing).
        missing: bool,
    },
    /// `response` read outside the step's own `expect`, `save` and `stop_if`.
    ResponseOutOfScope,
    /// `connection.auth` reads `inputs`, which do not exist yet when auth is set up.
    InputsInAuth,
    /// A template or bare expression that MiniJinja cannot parse; reported where parsing failed.
    TemplateSyntax {
        /// MiniJinja's description of the syntax error.
        detail: String,
        /// Whether the text is a bare expression (`if`, `save`, ...) rather than a template.
        expression: bool,
    },
    /// An expression too large to compile safely: too many operators or too long a number.
    TooComplex {
        /// What is over the limit and what the limit is, in words.
        detail: String,
    },
    /// A bare expression (`if`, `save`, `assert`, `outputs`, ...) written inside `{{ }}`.
    BracesInExpression {
        /// The start of the message, naming the key with its verb: "`if` takes", "`save` values take".
        key: String,
        /// The expression inside the braces, shown in the hint without them.
        inner: String,
    },
    /// A call of a function that neither flowrun nor MiniJinja provides.
    UnknownFunction {
        /// The function name as written.
        name: String,
        /// A did-you-mean among the known functions; without one the hint lists them.
        suggestion: Option<String>,
    },
    /// A top-level name that is not a scope root (`inputs`, `vars`, `steps`, `response`) or global.
    UnknownName {
        /// The name as written.
        name: String,
        /// A did-you-mean among the scope roots; without one the hint lists what can be read.
        suggestion: Option<String>,
    },
    /// A filter (`x | name`) MiniJinja does not have.
    UnknownFilter {
        /// The filter name as written.
        name: String,
    },
    /// A test (`x is name`) MiniJinja does not have.
    UnknownTest {
        /// The test name as written.
        name: String,
    },
    /// A `save` name every step already has (`status`, `body`, `succeeded`, ...).
    ReservedSaveName {
        /// The saved value's name.
        name: String,
    },
    /// An input's `default` that breaks the input's own `type`, `enum` or limits.
    BadDefault {
        /// The input's name.
        input: String,
        /// What is wrong with the default.
        problem: Violation,
    },
    /// A value in an input's `enum` that does not fit the input's `type`.
    BadEnumValue {
        /// The input's name.
        input: String,
        /// What is wrong with the value.
        problem: Violation,
    },
}

impl AnalyzeError {
    /// The diagnostic for this problem at `span`: its code, message and hint.
    pub fn at(self, span: Span) -> Diagnostic {
        use AnalyzeError::*;
        match self {
            DuplicateStep { id, first_line } => {
                Diagnostic::error("duplicate-step-id", span, format!("duplicate step id `{id}`"))
                    .with_hint(format!("a step `{id}` is already defined on line {first_line}; step ids must be unique"))
            }
            UnknownStep { id, suggestion } => {
                Diagnostic::error("unknown-step", span, format!("there is no step `{id}`")).with_hint_opt(suggestion)
            }
            UnknownStepIn { id, known } => Diagnostic::error("unknown-step", span, format!("there is no step `{id}`"))
                .with_hint(if known.is_empty() {
                    "the flow defines no steps".to_string()
                } else {
                    format!("the steps are: {}", known.join(", "))
                }),
            LaterStep { id } => Diagnostic::error(
                "later-step",
                span,
                format!("step `{id}` runs after this one, so its values are not known yet"),
            )
            .with_hint("a step can read only the steps before it; move this step after it, or read it from `finally`"),
            OwnStep { id } => Diagnostic::error(
                "own-step",
                span,
                format!("step `{id}` reads its own values through `steps.{id}`"),
            )
            .with_hint("inside its own `expect`, `save` and `stop_if` a step reads `response`"),
            UnknownStepField { id, field, known } => {
                let hint = did_you_mean(&field, known.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("step `{id}` has: {}", known.join(", ")));
                Diagnostic::error("unknown-step-value", span, format!("step `{id}` has no value `{field}`"))
                    .with_hint(hint)
            }
            UndeclaredInput { name, suggestion } => Diagnostic::error(
                "undeclared-input",
                span,
                format!("input `{name}` is not declared"),
            )
            .with_hint(suggestion.unwrap_or_else(|| format!("declare it under `inputs:`, e.g. `{name}: {{ type: string }}`"))),
            InputsInAuth => Diagnostic::error("inputs-in-auth", span, "`auth` cannot read `inputs`").with_hint(
                "auth is set up once per run from the environment, before inputs are read; use `env('...')` or `secret('...')`",
            ),
            UnknownVar { name, suggestion, elsewhere } => {
                let hint = suggestion.unwrap_or_else(|| if elsewhere {
                    "a flow's vars are read after they are declared (not in `connection`, not in a step's `if`); a step's vars only inside that step: save a value to read it later".into()
                } else {
                    "declare it under `vars:` (of the flow, or of the step)".into()
                });
                let message = if elsewhere {
                    format!("`vars.{name}` is not readable here")
                } else {
                    format!("unknown var `{name}`")
                };
                Diagnostic::error(if elsewhere { "var-out-of-scope" } else { "unknown-var" }, span, message)
                    .with_hint(hint)
            }
            StopIfStopsNothing { finally } => Diagnostic::warning(
                "stop-if-stops-nothing",
                span,
                if finally {
                    "`stop_if` on a `finally` step cannot stop anything"
                } else {
                    "`stop_if` on the last step cannot stop anything: no step comes after it"
                },
            )
            .with_hint("a `stop_if` skips the steps after its own (`finally` steps always run); move the step earlier or remove `stop_if`"),
            CompensateMismatch { missing: true } => Diagnostic::error(
                "in-doubt-compensate",
                span,
                "`in_doubt` policy `compensate` needs a `compensate` request to send first",
            )
            .with_hint("add `compensate: { request: { method: DELETE, path: ... }, expect: { status: 202 } }`, or use `policy: resend` or `fail`"),
            CompensateMismatch { missing: false } => Diagnostic::error(
                "in-doubt-compensate",
                span,
                "a `compensate` request is sent only with `policy: compensate`",
            )
            .with_hint("write `policy: compensate`, or remove `compensate`"),
            ResponseOutOfScope => Diagnostic::error(
                "response-out-of-scope",
                span,
                "`response` is not available here",
            )
            .with_hint("`response` can be read only in the step's own `expect`, `save` and `stop_if`; elsewhere, save the value and read `steps.<id>.<name>`"),
            TooComplex { detail } => Diagnostic::error("too-complex", span, format!("expression too complex: {detail}"))
                .with_hint("split it: compute parts in `vars` or `save` and combine those"),
            TemplateSyntax { detail, expression: false } => {
                Diagnostic::error("template-syntax", span, format!("template syntax error: {detail}"))
                    .with_hint("templates use `{{ expression }}`; write `{% raw %}{{{% endraw %}` to send literal braces")
            }
            TemplateSyntax { detail, expression: true } => {
                Diagnostic::error("expression-syntax", span, format!("expression syntax error: {detail}"))
                    .with_hint("write a MiniJinja expression such as `response.status == 202 and response.body.success`")
            }
            BracesInExpression { key, inner } => Diagnostic::error(
                "braces-in-expression",
                span,
                format!("{key} a bare expression, not a `{{{{ }}}}` template"),
            )
            .with_hint(format!("write `{inner}` without the braces")),
            UnknownFunction { name, suggestion } => {
                Diagnostic::error("unknown-function", span, format!("unknown function `{name}`"))
                    .with_hint(suggestion.unwrap_or_else(|| format!("the functions are: {}", FUNCTIONS.join(", "))))
            }
            UnknownName { name, suggestion } => Diagnostic::error("unknown-name", span, format!("unknown name `{name}`"))
                .with_hint(suggestion.unwrap_or_else(|| {
                    "expressions read `inputs.<name>`, `vars.<name>`, `steps.<id>.<value>` and `response` (in expect, save and stop_if)".into()
                })),
            UnknownFilter { name } => Diagnostic::error("unknown-filter", span, format!("unknown filter `{name}`"))
                .with_hint(did_you_mean(&name, expr::FILTERS.iter().copied())
                    .unwrap_or_else(|| format!("the filters are: {}", expr::FILTERS.join(", ")))),
            UnknownTest { name } => Diagnostic::error("unknown-test", span, format!("unknown test `{name}`"))
                .with_hint(did_you_mean(&name, expr::TESTS.iter().copied())
                    .unwrap_or_else(|| format!("the tests are: {}", expr::TESTS.join(", ")))),
            ReservedSaveName { name } => Diagnostic::error(
                "reserved-save-name",
                span,
                format!("`{name}` is a value every step already has"),
            )
            .with_hint(format!("choose another name; reserved: {}", STEP_FIELDS.join(", "))),
            BadDefault { input, problem } => {
                Diagnostic::error("bad-default", span, format!("the default of input `{input}` {}", problem.message))
                    .with_hint_opt(problem.hint)
            }
            BadEnumValue { input, problem } => {
                Diagnostic::error("bad-enum-value", span, format!("an allowed value of input `{input}` {}", problem.message))
                    .with_hint_opt(problem.hint)
            }
        }
    }
}

/// What is wrong with a value under an input's own declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// What is wrong, as the end of a sentence about the value (`is a string, but ...`).
    pub message: String,
    /// What to do about it, such as the allowed values.
    pub hint: Option<String>,
}
