//! JSON Schema violations in words: validates a document against a schema and turns each
//! violation into a diagnostic that names the key, points at it and says what to do. Used for
//! flows (`schemas/flow.schema.json`) and the Interaction Service bodies alike.

use super::diagnostic::Diagnostic;
use super::source::Span;
use super::suggest::did_you_mean;
use super::yaml::{Document, push_pointer};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

/// The kinds of schema violation, in the words the diagnostics use.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaError {
    /// A key the schema does not allow in this mapping (often a typo).
    UnknownKey {
        /// The key as written.
        key: String,
        /// How messages name the mapping that holds it: `request`, step `route`, `the flow`.
        context: String,
        /// The keys allowed there, for the did-you-mean or the list in the hint.
        allowed: Vec<String>,
    },
    /// A key the schema requires is absent from a mapping.
    MissingKey {
        /// The required key.
        key: String,
        /// How messages name the mapping that lacks it.
        context: String,
        /// The schema's `description` of the key, shown in the hint to say what it is for.
        about: Option<String>,
    },
    /// A value of the wrong JSON type (a number where a string is expected, ...).
    WrongType {
        /// The expected type in words (`a string`, `a whole number or a list`).
        expected: String,
        /// The value found, described in the message.
        found: Value,
    },
    /// A value that is not one of the schema's `enum` values.
    NotAllowed {
        /// The value found.
        value: Value,
        /// The key whose value it is.
        key: String,
        /// The allowed values, as text, for the did-you-mean and the hint.
        allowed: Vec<String>,
    },
    /// A mapping key that breaks the schema's `propertyNames` rule (an input or step name).
    BadName {
        /// The name as written.
        name: String,
        /// The rule in words: the schema's `x-message`, or the validator's own message.
        rule: String,
    },
    /// Any other violation, with its message already worded (from `x-message` when there is one).
    Invalid {
        /// The whole message shown to the user.
        message: String,
    },
}

impl SchemaError {
    fn at(self, span: Span) -> Diagnostic {
        match self {
            SchemaError::UnknownKey {
                key,
                context,
                allowed,
            } => {
                let hint = did_you_mean(&key, allowed.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("allowed here: {}", allowed.join(", ")));
                Diagnostic::error("unknown-key", span, format!("unknown key `{key}` in {context}"))
                    .with_hint(hint)
            }
            SchemaError::MissingKey { key, context, about } => Diagnostic::error(
                "missing-key",
                span,
                format!("{context} is missing the required key `{key}`"),
            )
            .with_hint_opt(about.map(|a| format!("`{key}`: {a}"))),
            SchemaError::WrongType { expected, found } => {
                let hint = match (&found, expected.as_str()) {
                    (Value::Number(_) | Value::Bool(_), "a string") => {
                        Some(format!("quote it to make it a string: \"{found}\""))
                    }
                    _ => None,
                };
                Diagnostic::error(
                    "wrong-type",
                    span,
                    format!("expected {expected}, found {}", describe(&found)),
                )
                .with_hint_opt(hint)
            }
            SchemaError::NotAllowed { value, key, allowed } => {
                let shown = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                let list = allowed.join(", ");
                let hint = did_you_mean(&shown, allowed.iter().map(String::as_str))
                    .map(|d| format!("{d} allowed: {list}"))
                    .unwrap_or_else(|| format!("allowed: {list}"));
                Diagnostic::error(
                    "not-allowed",
                    span,
                    format!("`{shown}` is not an allowed value for `{key}`"),
                )
                .with_hint(hint)
            }
            SchemaError::BadName { name, rule } => {
                Diagnostic::error("bad-name", span, format!("invalid name `{name}`")).with_hint(rule)
            }
            SchemaError::Invalid { message } => Diagnostic::error("schema", span, message),
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null (an empty value)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn type_name(kind: &TypeKind) -> String {
    let name = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "string" => "a string".to_string(),
        "integer" => "a whole number".to_string(),
        "number" => "a number".to_string(),
        "boolean" => "true or false".to_string(),
        "array" => "a list".to_string(),
        "object" => "a mapping".to_string(),
        "null" => "null".to_string(),
        other => other.to_string(),
    };
    match kind {
        TypeKind::Single(t) => name(t),
        TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts.iter().map(|t| name(&t)).collect();
            names.join(" or ")
        }
    }
}

/// Where the parts of a validated value stand in the source, and what users call them. Flow
/// files answer from their [`Document`]; request bodies inside a flow answer from the flow's.
pub trait Locator {
    /// The span of the key that names the value at JSON pointer `pointer` (its value when none).
    fn key_span(&self, pointer: &str) -> Span;
    /// The span of the value at JSON pointer `pointer`.
    fn value_span(&self, pointer: &str) -> Span;
    /// How messages name the place: `request`, `step `route``, `the flow`.
    fn context(&self, pointer: &str) -> String;
    /// Whether problems at `pointer` are unknowable yet (a template decides the value).
    fn skip(&self, _pointer: &str) -> bool {
        false
    }
}

impl Locator for Document {
    fn key_span(&self, pointer: &str) -> Span {
        if pointer.is_empty() {
            first_line_span()
        } else {
            Document::key_span(self, pointer)
        }
    }

    fn value_span(&self, pointer: &str) -> Span {
        Document::value_span(self, pointer)
    }

    fn context(&self, pointer: &str) -> String {
        let mut parts = pointer.rsplit('/');
        let last = parts.next().unwrap_or("");
        if pointer.is_empty() {
            return "the flow".into();
        }
        if let (Ok(_), Some(list @ ("steps" | "finally"))) = (last.parse::<usize>(), parts.next()) {
            let id = self
                .value
                .pointer(pointer)
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str);
            return match id {
                Some(id) => format!("step `{id}`"),
                None => format!("{list}[{last}]"),
            };
        }
        last_key(pointer)
    }
}

/// The last key of a pointer, quoted: `` `request` ``.
pub fn last_key(pointer: &str) -> String {
    let last = pointer.rsplit('/').next().unwrap_or("");
    format!("`{}`", last.replace("~1", "/").replace("~0", "~"))
}

/// The schema node that holds the failing keyword (the parent of the keyword's location).
fn schema_node<'a>(schema: &'a Value, keyword_location: &str) -> Option<&'a Value> {
    let parent = &keyword_location[..keyword_location.rfind('/')?];
    schema.pointer(parent)
}

/// Validates `instance` against `schema` and words every problem for a person.
pub fn validate(
    loc: &dyn Locator,
    schema: &Value,
    validator: &Validator,
    instance: &Value,
) -> Vec<Diagnostic> {
    let found: Vec<(SchemaError, Span)> = validator
        .iter_errors(instance)
        .filter(|e| !loc.skip(e.instance_path().as_str()))
        .flat_map(|e| classify(loc, schema, &e))
        .collect();
    // `metod:` in place of `method:` is one mistake: keep the did-you-mean, drop "missing `method`".
    let suggested: Vec<String> = found
        .iter()
        .filter_map(|(e, _)| match e {
            SchemaError::UnknownKey {
                key,
                context,
                allowed,
            } => super::suggest::closest(key, allowed.iter().map(String::as_str))
                .map(|s| format!("{context}/{s}")),
            _ => None,
        })
        .collect();
    found
        .into_iter()
        .filter(|(e, _)| match e {
            SchemaError::MissingKey { key, context, .. } => !suggested.contains(&format!("{context}/{key}")),
            _ => true,
        })
        .map(|(e, span)| e.at(span))
        .collect()
}

fn classify(loc: &dyn Locator, schema: &Value, e: &ValidationError<'_>) -> Vec<(SchemaError, Span)> {
    let inst = e.instance_path().as_str();
    let node = schema_node(schema, e.schema_path().as_str());
    if let Some(found) = key_problems(loc, schema, node, inst, e) {
        return found;
    }
    let custom = node.and_then(|n| n.get("x-message")).and_then(Value::as_str);
    // A problem with a whole mapping or list is shown at the key that names it.
    let value_span = match e.instance().as_ref() {
        Value::Object(_) | Value::Array(_) if !inst.is_empty() => loc.key_span(inst),
        _ => loc.value_span(inst),
    };
    let key_name = inst.rsplit('/').next().unwrap_or("").to_string();
    vec![(value_problem(e, key_name, custom), value_span)]
}

/// Problems with a mapping's keys (unknown, missing, badly named), each at the key.
fn key_problems(
    loc: &dyn Locator,
    schema: &Value,
    node: Option<&Value>,
    inst: &str,
    e: &ValidationError<'_>,
) -> Option<Vec<(SchemaError, Span)>> {
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed: Vec<String> = node
                .and_then(|n| n.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            Some(
                unexpected
                    .iter()
                    .map(|key| {
                        let ptr = push_pointer(inst, key);
                        let error = SchemaError::UnknownKey {
                            key: key.clone(),
                            context: loc.context(inst),
                            allowed: allowed.clone(),
                        };
                        (error, loc.key_span(&ptr))
                    })
                    .collect(),
            )
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default().to_string();
            // A key required by an `if`/`then`/`else` branch is described where the object's
            // properties are: the branch's parent.
            let parent = |n: &Value| {
                let path = e.schema_path().as_str();
                ["/then/required", "/else/required"]
                    .iter()
                    .find_map(|b| path.strip_suffix(b))
                    .map(|mut p| {
                        // Branches nest (`else: { if, then, else }`): the properties are
                        // those of the outermost one's parent.
                        while let Some(up) = p.strip_suffix("/then").or_else(|| p.strip_suffix("/else")) {
                            p = up;
                        }
                        p
                    })
                    .and_then(|p| schema.pointer(p))
                    .unwrap_or(n)
                    .pointer(&push_pointer("/properties", &key))
                    .cloned()
            };
            let about = node
                .and_then(parent)
                .as_ref()
                .and_then(|p| {
                    p.get("description")
                        .or_else(|| resolve(schema, p).get("description"))
                })
                .and_then(Value::as_str)
                .map(str::to_string);
            let span = loc.key_span(inst);
            Some(vec![(
                SchemaError::MissingKey {
                    key,
                    context: loc.context(inst),
                    about,
                },
                span,
            )])
        }
        ValidationErrorKind::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or_default().to_string();
            let rule = schema_node(schema, error.schema_path().as_str())
                .and_then(|n| n.get("x-message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            let span = loc.key_span(&push_pointer(inst, &name));
            Some(vec![(SchemaError::BadName { name, rule }, span)])
        }
        _ => None,
    }
}

/// A problem with a value, worded by the schema's `x-message` when it has one.
fn value_problem(e: &ValidationError<'_>, key_name: String, custom: Option<&str>) -> SchemaError {
    match e.kind() {
        _ if custom.is_some() => SchemaError::Invalid {
            message: custom.unwrap_or_default().to_string(),
        },
        ValidationErrorKind::Type { kind } => SchemaError::WrongType {
            expected: type_name(kind),
            found: e.instance().clone().into_owned(),
        },
        ValidationErrorKind::Enum { options } => SchemaError::NotAllowed {
            value: e.instance().clone().into_owned(),
            key: key_name,
            allowed: options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        },
        ValidationErrorKind::Constant { expected_value } => SchemaError::Invalid {
            message: format!(
                "`{key_name}` must be {expected_value}, found {}",
                describe(e.instance())
            ),
        },
        ValidationErrorKind::MinItems { limit } => SchemaError::Invalid {
            message: format!(
                "`{key_name}` needs at least {limit} item{}",
                if *limit == 1 { "" } else { "s" }
            ),
        },
        ValidationErrorKind::MinLength { limit: 1 } => SchemaError::Invalid {
            message: format!("`{key_name}` must not be empty"),
        },
        ValidationErrorKind::MinLength { limit } | ValidationErrorKind::MaxLength { limit } => {
            let chars = e.instance().as_str().map_or(0, |s| s.chars().count());
            let bound = if matches!(e.kind(), ValidationErrorKind::MinLength { .. }) {
                "at least"
            } else {
                "at most"
            };
            SchemaError::Invalid {
                message: format!("`{key_name}` must be {bound} {limit} characters, found {chars}"),
            }
        }
        ValidationErrorKind::Minimum { limit } => SchemaError::Invalid {
            message: format!("`{key_name}` must be at least {limit}, found {}", e.instance()),
        },
        ValidationErrorKind::Maximum { limit } => SchemaError::Invalid {
            message: format!("`{key_name}` must be at most {limit}, found {}", e.instance()),
        },
        _ => SchemaError::Invalid {
            message: e.to_string(),
        },
    }
}

/// Follows a local `$ref` once, so a property's description can live on its definition.
fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| schema.pointer(p))
        .unwrap_or(node)
}

fn first_line_span() -> Span {
    Span::on_line(super::source::Pos { line: 1, col: 1 }, 1)
}
