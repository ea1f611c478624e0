//! A run's inputs: from an inputs file and `--input name=value`, typed by the flow's input
//! declarations, defaults applied, every rule checked before anything is sent.

use crate::base::secrets::Secrets;
use crate::base::suggest::did_you_mean;
use crate::flow::model::{Flow, Input};
use serde_json::{Map, Value};

/// One problem with the inputs of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it, when there is a suggestion.
    pub hint: Option<String>,
    /// The input whose value broke its declaration, when the problem is its value.
    pub input: Option<String>,
    /// That input's declared type.
    pub declared: Option<String>,
    /// The required input that was not given, when that is the problem.
    pub missing: Option<String>,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  = hint: {h}")?;
        }
        Ok(())
    }
}

fn err(message: String, hint: Option<String>) -> InputError {
    InputError {
        message,
        hint,
        input: None,
        declared: None,
        missing: None,
    }
}

/// Turns `name=value` from the command line into a value of the input's declared type:
/// strings are taken as written, other types are read as JSON (`2`, `true`, `{"a": 1}`).
pub fn parse_assignment(flow: &Flow, assignment: &str) -> Result<(String, Value), InputError> {
    let Some((name, raw)) = assignment.split_once('=') else {
        return Err(err(
            format!("`--input {assignment}` is not `name=value`"),
            Some("write e.g. `--input queue_id=00G5g000000SimQ`".into()),
        ));
    };
    let kind = flow.inputs.get(name).map(|i| i.kind.as_str()).unwrap_or("string");
    if kind == "string" {
        return Ok((name.to_string(), Value::String(raw.to_string())));
    }
    serde_json::from_str(raw)
        .map(|v| (name.to_string(), v))
        .map_err(|_| {
            err(
                format!(
                    "input `{name}` is of type {kind}, but `{raw}` is not {}",
                    article(kind)
                ),
                Some(format!("write a JSON {kind}, e.g. {}", example(name, kind))),
            )
        })
}

fn article(kind: &str) -> &'static str {
    match kind {
        "number" => "a number",
        "integer" => "a whole number",
        "boolean" => "true or false",
        "object" => "a JSON object",
        "array" => "a JSON array",
        _ => "valid",
    }
}

/// An example of giving input `name` a value of `kind`, with the input's own name.
fn example(name: &str, kind: &str) -> String {
    match kind {
        "number" => format!("`--input {name}=1.5`"),
        "integer" => format!("`--input {name}=2`"),
        "boolean" => format!("`--input {name}=true`"),
        "object" => format!("`--input '{name}={{\"a\": 1}}'`"),
        _ => format!("`--input '{name}=[1, 2]'`"),
    }
}

/// A flow's input declarations with their rules compiled once, so checking a run's inputs
/// (once per line in a batch) compiles nothing.
pub struct InputRules {
    /// Per declared input, in order: the validator of its type and rules.
    validators: Vec<Option<jsonschema::Validator>>,
}

impl InputRules {
    /// Compiles, for each declared input, a validator of its type and rules.
    pub fn new(flow: &Flow) -> Self {
        let validators = flow
            .inputs
            .iter()
            .map(|(_, input)| {
                let mut schema = input.rules.clone();
                schema.insert("type".into(), Value::String(input.kind.clone()));
                jsonschema::validator_for(&Value::Object(schema)).ok()
            })
            .collect();
        InputRules { validators }
    }

    /// Merges `given` (later entries win) over the defaults and checks every input. Secret
    /// inputs are registered with `secrets`.
    pub fn resolve(
        &self,
        flow: &Flow,
        given: Vec<(String, Value)>,
        secrets: &Secrets,
    ) -> Result<Map<String, Value>, Vec<InputError>> {
        let mut errors = Vec::new();
        // Gathered in a list, then made a map once: only declared inputs get in, so a search
        // in order is short, and each name is hashed once instead of three times (once per
        // run of a batch). A name given again keeps its place and takes the later value.
        let mut values: Vec<(String, Value)> = Vec::with_capacity(flow.inputs.0.len());
        for (name, value) in given {
            if flow.inputs.get(&name).is_none() {
                errors.push(unknown_input(flow, &name));
                continue;
            }
            match values.iter_mut().find(|(known, _)| *known == name) {
                Some((_, earlier)) => *earlier = value,
                None => values.push((name, value)),
            }
        }
        for ((name, input), validator) in flow.inputs.iter().zip(&self.validators) {
            match values.iter().find(|(known, _)| known == name).map(|(_, v)| v) {
                Some(v) => {
                    if let Some(problem) = validator.as_ref().and_then(|val| violation(input, val, v)) {
                        errors.push(InputError {
                            input: Some(name.clone()),
                            declared: Some(input.kind.clone()),
                            ..err(format!("input `{name}` {problem}"), None)
                        });
                    }
                    if input.secret {
                        secrets.add_json(v);
                    }
                }
                None => match &input.default {
                    Some(d) => {
                        if input.secret {
                            secrets.add_json(d);
                        }
                        values.push((name.clone(), d.clone()));
                    }
                    None if input.is_required() => errors.push(InputError {
                        missing: Some(name.clone()),
                        ..err(
                            format!("input `{name}` is required but was not given"),
                            Some(format!(
                                "{}give it with `--input {name}=...` or in an `--inputs` file",
                                describe(input)
                            )),
                        )
                    }),
                    None => {}
                },
            }
        }
        let values: Map<String, Value> = values.into_iter().collect();
        for group in &flow.input_groups {
            errors.extend(group_error(group, &values));
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }
}

/// A steps file's parameters, their rules compiled once: a call's arguments are checked when
/// the call starts.
pub struct ParamRules {
    params: Vec<(String, Input, Option<jsonschema::Validator>)>,
}

impl std::fmt::Debug for ParamRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.params.iter().map(|(name, ..)| name))
            .finish()
    }
}

impl ParamRules {
    /// Compiles the rules of each declared parameter.
    pub fn new(params: &crate::flow::model::indexmap_like::Ordered<Input>) -> Self {
        let params = params
            .iter()
            .map(|(name, input)| {
                let mut schema = input.rules.clone();
                schema.insert("type".into(), Value::String(input.kind.clone()));
                let validator = jsonschema::validator_for(&Value::Object(schema)).ok();
                (name.clone(), input.clone(), validator)
            })
            .collect();
        ParamRules { params }
    }

    /// The arguments with the defaults of the parameters not given; the first that breaks its
    /// parameter's rules, in words, otherwise. Secret parameters are registered with `secrets`.
    pub fn resolve(
        &self,
        mut args: Map<String, Value>,
        secrets: &Secrets,
    ) -> Result<Map<String, Value>, String> {
        for (name, input, validator) in &self.params {
            let value = match (args.get(name), &input.default) {
                (Some(v), _) => v,
                (None, Some(d)) => {
                    args.insert(name.clone(), d.clone());
                    d
                }
                (None, None) if input.is_required() => {
                    return Err(format!("the call does not pass the required parameter `{name}`"));
                }
                (None, None) => continue,
            };
            if input.secret {
                secrets.add_json(value);
            }
            if let Some(problem) = validator.as_ref().and_then(|val| violation(input, val, value)) {
                return Err(format!("argument `{name}` {problem}"));
            }
        }
        Ok(args)
    }
}

/// What breaks an `input_groups` rule, if the given values do.
fn group_error(group: &crate::flow::model::InputGroup, values: &Map<String, Value>) -> Option<InputError> {
    use crate::flow::model::InputGroup;
    let (names, exactly_one) = match group {
        InputGroup::OneOf(names) => (names, true),
        InputGroup::AnyOf(names) => (names, false),
    };
    let given: Vec<&str> = names
        .iter()
        .filter(|n| values.contains_key(n.as_str()))
        .map(String::as_str)
        .collect();
    let list = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if given.is_empty() {
        let how = if exactly_one {
            "exactly one"
        } else {
            "at least one"
        };
        return Some(err(
            format!("{how} of the inputs {list} is required, but none was given"),
            Some(format!("give one with `--input {}=...`", names[0])),
        ));
    }
    (exactly_one && given.len() > 1).then(|| {
        let quoted: Vec<String> = given.iter().map(|n| format!("`{n}`")).collect();
        let both = match quoted.split_last() {
            Some((last, [one])) => format!("{one} and {last}"),
            Some((last, rest)) => format!("{}, and {last}", rest.join(", ")),
            None => String::new(),
        };
        err(
            format!("only one of the inputs {list} may be given, but {both} were"),
            Some("leave all but one of them out".into()),
        )
    })
}

/// `InputRules::resolve` for a single run: compiles the rules, then checks.
pub fn resolve(
    flow: &Flow,
    given: Vec<(String, Value)>,
    secrets: &Secrets,
) -> Result<Map<String, Value>, Vec<InputError>> {
    InputRules::new(flow).resolve(flow, given, secrets)
}

fn unknown_input(flow: &Flow, name: &str) -> InputError {
    let names = flow.inputs.iter().map(|(k, _)| k.as_str());
    let hint = did_you_mean(name, names).or_else(|| {
        let all: Vec<&str> = flow.inputs.iter().map(|(k, _)| k.as_str()).collect();
        Some(if all.is_empty() {
            "the flow declares no inputs".into()
        } else {
            format!("the flow's inputs are: {}", all.join(", "))
        })
    });
    err(format!("the flow has no input `{name}`"), hint)
}

fn describe(input: &Input) -> String {
    input
        .description
        .as_ref()
        .map(|d| format!("{} — ", d.trim_end().trim_end_matches('.')))
        .unwrap_or_default()
}

fn violation(input: &Input, validator: &jsonschema::Validator, value: &Value) -> Option<String> {
    if validator.is_valid(value) {
        return None;
    }
    let e = validator.iter_errors(value).next()?;
    use jsonschema::error::ValidationErrorKind as K;
    let shown = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    Some(match e.kind() {
        K::Type { .. } => format!(
            "must be {}, got `{shown}`",
            article(&input.kind).replace("valid", "a string")
        ),
        K::Enum { options } => {
            let list: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o.as_str().map(str::to_string).unwrap_or_else(|| o.to_string()))
                .collect();
            let dym = did_you_mean(&shown, list.iter().map(String::as_str))
                .map(|d| format!("; {d}"))
                .unwrap_or_default();
            format!("must be one of {}, got `{shown}`{dym}", list.join(", "))
        }
        _ => format!("`{shown}` is not allowed: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        let source = crate::base::source::Source::read(std::path::Path::new("flows/inbound.yaml")).unwrap();
        crate::flow::load_checked(&source).unwrap().flow
    }

    #[test]
    fn assignments_take_the_declared_type() {
        let f = flow();
        assert_eq!(
            parse_assignment(&f, "capacity_weight=2").unwrap().1,
            serde_json::json!(2)
        );
        assert_eq!(
            parse_assignment(&f, "queue_id=090").unwrap().1,
            serde_json::json!("090")
        );
        let e = parse_assignment(&f, "capacity_weight=abc").unwrap_err();
        assert_eq!(
            e.message,
            "input `capacity_weight` is of type number, but `abc` is not a number"
        );
    }

    #[test]
    fn resolve_applies_defaults_and_reports_every_problem() {
        let f = flow();
        let given = vec![
            ("channel_address".to_string(), serde_json::json!("+1")),
            (
                "consent_status".to_string(),
                serde_json::json!("ExplicityOptedIn"),
            ),
            ("queue".to_string(), serde_json::json!("q")),
        ];
        let errors = resolve(&f, given, &Secrets::default()).unwrap_err();
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "the flow has no input `queue`\n  = hint: the flow's inputs are: channel_address, end_user, text, consent_status, queue_id, flow_id, agent_user_id, capacity_weight",
                "input `end_user` is required but was not given\n  = hint: The end user's client id on the channel (the `from` of the interaction) — give it with `--input end_user=...` or in an `--inputs` file",
                "input `consent_status` must be one of OptedOut, ImplicitlyOptedIn, ExplicitlyOptedIn, DoublyOptedIn, got `ExplicityOptedIn`; did you mean `ExplicitlyOptedIn`?",
                "input `queue_id` is required but was not given\n  = hint: Queue to route to; with `flow_id`, the flow's fallback queue — give it with `--input queue_id=...` or in an `--inputs` file",
            ]
        );
        let ok = resolve(
            &f,
            vec![
                ("channel_address".into(), "+1".into()),
                ("end_user".into(), "u".into()),
                ("queue_id".into(), "q".into()),
            ],
            &Secrets::default(),
        )
        .unwrap();
        assert_eq!(ok["capacity_weight"], serde_json::json!(1));
        assert_eq!(ok["text"], serde_json::json!("Hi there"));
        assert!(!ok.contains_key("flow_id"));
    }

    #[test]
    fn an_input_given_again_keeps_its_place_and_takes_the_later_value() {
        // As a batch gives them: the file's inputs, the line's, then `--input` overrides.
        let given = [
            ("end_user", "first"),
            ("queue_id", "q"),
            ("channel_address", "+1"),
            ("end_user", "last"),
        ];
        let given = given
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let ok = resolve(&flow(), given, &Secrets::default()).unwrap();
        // Given first, in the order given; then the defaults, in the order declared.
        let order: Vec<&str> = ok.keys().map(String::as_str).collect();
        assert_eq!(
            order,
            [
                "end_user",
                "queue_id",
                "channel_address",
                "text",
                "consent_status",
                "capacity_weight"
            ]
        );
        assert_eq!(ok["end_user"], serde_json::json!("last"));
    }
}

/// Why an inputs file (`--inputs FILE`, a test case's `inputs_file`) could not be read.
#[derive(Debug)]
pub enum InputsFileError {
    /// The file cannot be read.
    Io(String),
    /// The YAML is broken: every problem, placed in the file.
    Invalid(
        crate::base::source::Source,
        Vec<crate::base::diagnostic::Diagnostic>,
    ),
    /// The file is not a mapping of input name → value.
    NotAMapping(String),
}

impl std::fmt::Display for InputsFileError {
    /// One line: the first problem, `file:line:col: message`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputsFileError::Io(e) | InputsFileError::NotAMapping(e) => write!(f, "{e}"),
            InputsFileError::Invalid(source, problems) => match problems.first() {
                Some(p) => write!(
                    f,
                    "{}:{}:{}: {}",
                    source.display_name(),
                    p.span.start.line,
                    p.span.start.col,
                    p.message
                ),
                None => write!(f, "{}: invalid YAML", source.display_name()),
            },
        }
    }
}

/// Reads an inputs file: a YAML (or JSON) mapping of input name → value, in file order.
pub fn read_inputs_file(path: &std::path::Path) -> Result<Vec<(String, Value)>, InputsFileError> {
    read_inputs_file_placed(path).map(|(inputs, _)| inputs)
}

/// An inputs file, read, and where each value stands in it.
pub struct PlacedInputs {
    /// The file: its path and text.
    pub source: crate::base::source::Source,
    /// The parsed file, with the span of every value.
    pub document: crate::base::yaml::Document,
}

impl PlacedInputs {
    /// A diagnostic at the value of `input` in the file, for an error about that value: a
    /// number or a boolean where the input takes text gets the hint to quote it (YAML read
    /// `+15550123` as the number 15550123, and the `+` is gone).
    pub fn diagnostic(&self, error: &InputError) -> Option<crate::base::diagnostic::Diagnostic> {
        let declared = error.declared.as_deref();
        let name = error.input.as_ref()?;
        let pointer = crate::base::yaml::push_pointer("", name);
        let node = self.document.span(&pointer)?;
        let value = self.document.value.pointer(&pointer)?;
        let mut d = crate::base::diagnostic::Diagnostic::error("input", node.value, error.message.clone());
        d.hint = error.hint.clone();
        let json = self.source.path.extension().is_some_and(|e| e == "json");
        if declared == Some("string") && (value.is_number() || value.is_boolean()) && json {
            let written = self.source.text_of(node.value).unwrap_or_default();
            d.hint = Some(format!(
                "the input takes text: write it as a JSON string, `\"{name}\": \"{written}\"`"
            ));
        } else if declared == Some("string") && (value.is_number() || value.is_boolean()) {
            let written = self.source.text_of(node.value).unwrap_or_default();
            d.hint = Some(format!(
                "YAML reads `{written}` as a {}, not text; quote it: `{name}: \"{written}\"`",
                if value.is_number() { "number" } else { "boolean" }
            ));
        }
        Some(d)
    }
}

/// `read_inputs_file`, keeping the file and its spans to place problems in it.
pub fn read_inputs_file_placed(
    path: &std::path::Path,
) -> Result<(Vec<(String, Value)>, PlacedInputs), InputsFileError> {
    let source = crate::base::source::Source::read(path)
        .map_err(|e| InputsFileError::Io(format!("cannot read {}: {e}", path.display())))?;
    let (doc, problems) = crate::base::yaml::load(&source.text);
    if !problems.is_empty() {
        return Err(InputsFileError::Invalid(source, problems));
    }
    match doc {
        Some(document) if document.value.is_object() => {
            let inputs = match &document.value {
                Value::Object(map) => map.clone().into_iter().collect(),
                _ => Vec::new(),
            };
            Ok((inputs, PlacedInputs { source, document }))
        }
        _ => Err(InputsFileError::NotAMapping(format!(
            "{}: an inputs file is a mapping of input name → value",
            path.display()
        ))),
    }
}
