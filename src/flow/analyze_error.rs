//! The semantic checks' problems, in the words the diagnostics use.

use crate::base::diagnostic::Diagnostic;
use crate::base::source::Span;
use crate::base::suggest::did_you_mean;
use crate::expr::{self, FUNCTIONS, STEP_FIELDS};

/// The kinds of problem this stage reports.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyzeError {
    DuplicateStep {
        id: String,
        first_line: usize,
    },
    UnknownStep {
        id: String,
        suggestion: Option<String>,
    },
    UnknownStepIn {
        id: String,
        known: Vec<String>,
    },
    LaterStep {
        id: String,
    },
    OwnStep {
        id: String,
    },
    UnknownStepField {
        id: String,
        field: String,
        known: Vec<String>,
    },
    UndeclaredInput {
        name: String,
        suggestion: Option<String>,
    },
    UnknownVar {
        name: String,
        suggestion: Option<String>,
        /// Declared, but not readable here (a later var, another step's, or in `connection`).
        elsewhere: bool,
    },
    /// A `stop_if` on the last main step or on a `finally` step: nothing is left to skip.
    StopIfStopsNothing {
        finally: bool,
    },
    ResponseOutOfScope,
    InputsInAuth,
    TemplateSyntax {
        detail: String,
        expression: bool,
    },
    TooComplex {
        detail: String,
    },
    BracesInExpression {
        key: String,
        inner: String,
    },
    UnknownFunction {
        name: String,
        suggestion: Option<String>,
    },
    UnknownName {
        name: String,
        suggestion: Option<String>,
    },
    UnknownFilter {
        name: String,
    },
    UnknownTest {
        name: String,
    },
    ReservedSaveName {
        name: String,
    },
    BadDefault {
        input: String,
        problem: Violation,
    },
    BadEnumValue {
        input: String,
        problem: Violation,
    },
}

impl AnalyzeError {
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
    pub message: String,
    pub hint: Option<String>,
}
