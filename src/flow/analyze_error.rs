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
    /// A filter (`x | name`, or named as a string: `map('name')`) MiniJinja does not have.
    UnknownFilter {
        /// The filter name as written.
        name: String,
        /// Whether it is named as a string (`map('name')`), found only at render time.
        quoted: bool,
    },
    /// A test (`x is name`, or named as a string: `select('name')`) MiniJinja does not have.
    UnknownTest {
        /// The test name as written.
        name: String,
        /// Whether it is named as a string (`select('name')`), found only at render time.
        quoted: bool,
    },
    /// A function read without calling it (`{{ now }}`): it would send the function itself.
    FunctionNotCalled {
        /// The function's name.
        name: String,
    },
    /// A `secret(...)` passed through a filter, subscript or attribute: masking finds only the
    /// exact value, so a changed secret would reach output unmasked.
    SecretTransformed,
    /// A field read from an Interaction Service answer that the operation never returns.
    UnknownResponseField {
        /// The operation, as `METHOD /path`.
        operation: String,
        /// The first name the answer does not have.
        field: String,
        /// A did-you-mean among the names it has there.
        suggestion: Option<String>,
        /// The names the answer has there.
        known: Vec<String>,
    },
    /// An output reading a saved value of a step that may not run in a passed run.
    OutputOfSkippedStep {
        /// The step.
        id: String,
        /// The saved value read.
        field: String,
    },
    /// A `timeout` or `deadline` of zero.
    ZeroDuration {
        /// The key: `timeout` or `deadline`.
        key: String,
    },
    /// A `json:` body for an operation that takes `multipart/form-data`.
    JsonForMultipart {
        /// The operation, as `METHOD /path`.
        operation: String,
        /// The name of the multipart part that holds its JSON.
        part: String,
    },
    /// An input `pattern` that is not a valid regular expression.
    BadPattern {
        /// The input's name.
        input: String,
        /// Why the pattern does not compile.
        detail: String,
    },
    /// An input in an `input_groups` rule that a run cannot leave out.
    GroupInputNotOptional {
        /// The input's name.
        name: String,
        /// Whether it has a default (otherwise it is required).
        has_default: bool,
    },
    /// An optional input (no default) read without asking whether it was given.
    UnguardedInput {
        /// The input's name.
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
    /// `inputs` read in a steps file, which sees only the `params` its callers pass.
    InputsInStepsFile,
    /// `params` read in a flow's own steps (only a steps file has parameters).
    ParamsOutsideStepsFile,
    /// A `with` argument naming no parameter of the called steps file.
    UnknownArgument {
        /// The argument as written.
        name: String,
        /// The file's parameters, for the did-you-mean or the list.
        declared: Vec<String>,
    },
    /// A required parameter that a call does not pass.
    MissingArgument {
        /// The parameter.
        name: String,
    },
    /// A literal argument that breaks its parameter's declaration.
    BadArgument {
        /// The parameter.
        name: String,
        /// What is wrong with the value.
        problem: Violation,
    },
    /// `steps.<call>.<id>` where the called file has no step `<id>`.
    NotInCall {
        /// The call as read: `steps.handoff`.
        call: String,
        /// The step asked for.
        id: String,
        /// The called file's step ids.
        known: Vec<String>,
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
            UnknownFilter { name, quoted } => {
                let how = if quoted { " (named as a string)" } else { "" };
                Diagnostic::error("unknown-filter", span, format!("unknown filter `{name}`{how}"))
                    .with_hint(did_you_mean(&name, expr::FILTERS.iter().copied())
                        .unwrap_or_else(|| format!("the filters are: {}", expr::FILTERS.join(", "))))
            }
            UnknownTest { name, quoted } => {
                let how = if quoted { " (named as a string)" } else { "" };
                Diagnostic::error("unknown-test", span, format!("unknown test `{name}`{how}"))
                    .with_hint(did_you_mean(&name, expr::TESTS.iter().copied())
                        .unwrap_or_else(|| format!("the tests are: {}", expr::TESTS.join(", "))))
            }
            FunctionNotCalled { name } => Diagnostic::error(
                "function-not-called",
                span,
                format!("`{name}` is a function; without `()` the request would carry the function itself"),
            )
            .with_hint(match name.as_str() {
                "env" | "secret" => format!("call it with a name: `{name}('NAME')`"),
                _ => format!("call it: `{name}()`"),
            }),
            SecretTransformed => Diagnostic::error(
                "secret-transformed",
                span,
                "a `secret(...)` value is changed here (filter, slice or attribute)",
            )
            .with_hint("flowrun masks a secret only as its exact value, so a changed secret would leak into output and reports; use it as is (joining it with other text is fine), or give the changed value as its own secret"),
            UnknownResponseField { operation, field, suggestion, known } => Diagnostic::error(
                "unknown-response-field",
                span,
                format!("the answer of {operation} has no field `{field}`"),
            )
            .with_hint(suggestion.unwrap_or_else(|| format!("its answer has: {}", known.join(", ")))),
            OutputOfSkippedStep { id, field } => Diagnostic::warning(
                "output-of-skipped-step",
                span,
                format!("step `{id}` may not run, and then `steps.{id}.{field}` has no value"),
            )
            .with_hint(format!(
                "a run that passes without running `{id}` fails on this output; write `steps.{id}.{field} if steps.{id}.succeeded else none`"
            )),
            ZeroDuration { key } => Diagnostic::error("zero-duration", span, format!("a `{key}` of zero leaves no time for any request"))
                .with_hint("give it a length, like `10s`, or leave the key out for the default"),
            JsonForMultipart { operation, part } => Diagnostic::error(
                "json-for-multipart",
                span,
                format!("{operation} takes a multipart/form-data body, not `json:`"),
            )
            .with_hint(format!("send the JSON as the `{part}` part: `multipart: {{ {part}: {{ json: ... }} }}`")),
            BadPattern { input, detail } => Diagnostic::error(
                "bad-pattern",
                span,
                format!("the pattern of input `{input}` is not a valid regular expression"),
            )
            .with_hint(detail),
            GroupInputNotOptional { name, has_default } => Diagnostic::error(
                "group-input-not-optional",
                span,
                if has_default {
                    format!("input `{name}` has a default, so it always counts as given in this group")
                } else {
                    format!("input `{name}` is required, so this group can never be broken by leaving it out")
                },
            )
            .with_hint(format!("declare it `required: false` without a `default`: `{name}: {{ required: false }}`")),
            UnguardedInput { name } => Diagnostic::warning(
                "unguarded-optional-input",
                span,
                format!("optional input `{name}` is read here, but a run may leave it out"),
            )
            .with_hint(format!(
                "a run without it fails here; ask first (`if: inputs.{name} is defined`, or `inputs.{name} | default(...)`), or give the input a `default`"
            )),
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
            InputsInStepsFile => Diagnostic::error("inputs-in-steps-file", span, "a steps file cannot read `inputs`")
                .with_hint("declare a parameter under `params:` and read it as `params.<name>`; each call passes it with `with:`"),
            ParamsOutsideStepsFile => Diagnostic::error("params-outside-steps-file", span, "only a steps file has `params`")
                .with_hint("a flow reads its `inputs.<name>`; `params.<name>` is for the steps of a file called with `call:`"),
            UnknownArgument { name, declared } => {
                let hint = did_you_mean(&name, declared.iter().map(String::as_str)).unwrap_or_else(|| match declared.is_empty() {
                    true => "the steps file declares no `params`".to_string(),
                    false => format!("its parameters: {}", declared.join(", ")),
                });
                Diagnostic::error("unknown-argument", span, format!("the called steps file has no parameter `{name}`"))
                    .with_hint(hint)
            }
            MissingArgument { name } => Diagnostic::error(
                "missing-argument",
                span,
                format!("the call does not pass the required parameter `{name}`"),
            )
            .with_hint(format!("add it under `with:`, e.g. `{name}: \"{{{{ inputs.{name} }}}}\"`, or give the parameter a `default`")),
            BadArgument { name, problem } => {
                let message = problem.message.replace("the input's", "the parameter's");
                Diagnostic::error("bad-argument", span, format!("the argument `{name}` {message}"))
                    .with_hint_opt(problem.hint)
            }
            NotInCall { call, id, known } => {
                let hint = did_you_mean(&id, known.iter().map(String::as_str)).unwrap_or_else(|| {
                    format!("its steps: {}; read their values as `{call}.<step id>.<value>`", known.join(", "))
                });
                Diagnostic::error("unknown-step", span, format!("`{call}` is a call, and the called file has no step `{id}`"))
                    .with_hint(hint)
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
