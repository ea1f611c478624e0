//! Semantic analysis: what the schema cannot say. Step ids are unique, every `steps.X` names an
//! earlier step and a value it has, every `inputs.Y` is declared, `response` is read only where
//! there is one, templates and expressions compile, and input defaults fit their own types.
//!
//! The analyzer reads the document leniently (a value of the wrong shape is skipped, since the
//! schema stage reports it), so one run reports every problem in the file.

use super::analyze_error::{AnalyzeError, Violation};
use crate::base::diagnostic::Diagnostic;
use crate::base::source::{Source, Span};
use crate::base::suggest::did_you_mean;
use crate::base::yaml::{Document, push_pointer};
use crate::expr::{self, BUILTIN_GLOBALS, FUNCTIONS, ROOTS, STEP_FIELDS, scan};
use serde_json::{Map, Value};

/// Which part of the flow a template sits in: what it may read (its reach).
#[derive(Clone, Copy)]
struct Reach<'s> {
    /// Steps readable from here, in order.
    visible: &'s [StepInfo],
    /// The step this template belongs to, if any.
    current: Option<&'s StepInfo>,
    /// Whether `response` is in scope.
    response: bool,
    /// Whether `inputs` is in scope (not in `connection.auth`, rendered before inputs exist).
    inputs: bool,
    /// The `vars` readable from here: the flow's (those before it, inside a var) and the
    /// step's own.
    vars: &'s [String],
}

#[derive(Debug, Clone)]
struct StepInfo {
    id: String,
    saves: Vec<String>,
}

struct Analyzer<'a> {
    source: &'a Source,
    doc: &'a Document,
    inputs: Vec<String>,
    /// Every var declared anywhere, for the hint when one is read where it is not in scope.
    all_vars: Vec<String>,
    all_steps: Vec<StepInfo>,
    out: Vec<Diagnostic>,
}

/// Runs every semantic check over a loaded flow.
pub fn analyze(source: &Source, doc: &Document) -> Vec<Diagnostic> {
    let mut a = Analyzer {
        source,
        doc,
        inputs: Vec::new(),
        all_vars: Vec::new(),
        all_steps: Vec::new(),
        out: Vec::new(),
    };
    a.run();
    a.out
}

fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

/// The names a flow or step declares under `vars`, in order.
fn var_names(owner: &Value) -> Vec<String> {
    obj(owner.get("vars"))
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

impl<'a> Analyzer<'a> {
    fn run(&mut self) {
        let root = &self.doc.value;
        self.check_inputs(obj(root.get("inputs")));
        let main = self.collect_steps("/steps");
        let fin = self.collect_steps("/finally");
        self.all_steps = main.iter().chain(fin.iter()).cloned().collect();
        let all = self.all_steps.clone();

        self.all_vars = var_names(root);
        for list in ["steps", "finally"] {
            for step in root.get(list).and_then(Value::as_array).into_iter().flatten() {
                self.all_vars.extend(var_names(step));
            }
        }
        let top = Reach {
            visible: &[],
            current: None,
            response: false,
            inputs: true,
            vars: &[],
        };
        if let Some(conn) = obj(root.get("connection")) {
            for key in ["base_url", "headers", "auth"] {
                if let Some(v) = conn.get(key) {
                    let scope = Reach {
                        inputs: key != "auth",
                        ..top
                    };
                    self.templates(&push_pointer("/connection", key), v, scope);
                }
            }
        }
        let flow_vars = var_names(root);
        self.vars("/vars", &flow_vars, top);
        for (list, steps, offset) in [("/steps", &main, 0), ("/finally", &fin, main.len())] {
            for (i, step) in steps.iter().enumerate() {
                let ptr = push_pointer(list, &i.to_string());
                // Main steps read earlier steps; finally steps read every main step and the
                // finally steps before them.
                let visible = &all[..offset + i];
                let last = list == "/finally" || i + 1 == steps.len();
                self.step(&ptr, step, visible, &flow_vars, last);
            }
        }
        let outputs_scope = Reach {
            visible: &all,
            current: None,
            response: false,
            inputs: true,
            vars: &flow_vars,
        };
        if let Some(outputs) = obj(root.get("outputs")) {
            for (name, v) in outputs {
                self.expression(&push_pointer("/outputs", name), v, outputs_scope);
            }
        }
    }

    fn collect_steps(&mut self, list: &str) -> Vec<StepInfo> {
        let Some(steps) = self.doc.value.pointer(list).and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut out: Vec<StepInfo> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let Some(id) = step.get("id").and_then(Value::as_str) else {
                continue;
            };
            let ptr = push_pointer(&push_pointer(list, &i.to_string()), "id");
            let earlier = self.all_steps.iter().chain(out.iter()).position(|s| s.id == id);
            if earlier.is_some() {
                let first_line = self.first_id_line(id);
                let span = self.doc.value_span(&ptr);
                self.out.push(
                    AnalyzeError::DuplicateStep {
                        id: id.to_string(),
                        first_line,
                    }
                    .at(span),
                );
                continue;
            }
            let saves = obj(step.get("save"))
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            out.push(StepInfo {
                id: id.to_string(),
                saves,
            });
        }
        self.all_steps.extend(out.iter().cloned());
        out
    }

    fn first_id_line(&self, id: &str) -> usize {
        for list in ["/steps", "/finally"] {
            if let Some(steps) = self.doc.value.pointer(list).and_then(Value::as_array) {
                for (i, s) in steps.iter().enumerate() {
                    if s.get("id").and_then(Value::as_str) == Some(id) {
                        return self.doc.value_span(&format!("{list}/{i}/id")).start.line;
                    }
                }
            }
        }
        0
    }

    /// Checks each var's template, each reading the vars before it (`scope.vars`) and itself
    /// in none.
    fn vars(&mut self, ptr: &str, names: &[String], scope: Reach) {
        let Some(vars) = obj(self.doc.value.pointer(ptr)) else {
            return;
        };
        let before = scope.vars.len();
        let all: Vec<String> = scope.vars.iter().chain(names).cloned().collect();
        for (i, (name, v)) in vars.iter().enumerate() {
            let scope = Reach {
                vars: &all[..before + i],
                ..scope
            };
            self.templates(&push_pointer(ptr, name), v, scope);
        }
    }

    /// `last`: no main step comes after this one, so its `stop_if` cannot stop anything.
    fn step(&mut self, ptr: &str, step: &StepInfo, visible: &[StepInfo], flow_vars: &[String], last: bool) {
        let Some(value) = self.doc.value.pointer(ptr) else {
            return;
        };
        let own_vars = var_names(value);
        let readable: Vec<String> = flow_vars.iter().chain(&own_vars).cloned().collect();
        let before_vars = Reach {
            visible,
            current: Some(step),
            response: false,
            inputs: true,
            vars: flow_vars,
        };
        let plain = Reach {
            vars: &readable,
            ..before_vars
        };
        let with_response = Reach {
            response: true,
            ..plain
        };
        if let Some(cond) = value.get("if") {
            self.expression(&push_pointer(ptr, "if"), cond, before_vars);
        }
        self.vars(&push_pointer(ptr, "vars"), &own_vars, before_vars);
        if let Some(request) = value.get("request") {
            self.templates(&push_pointer(ptr, "request"), request, plain);
        }
        if let Some(asserts) = value.pointer("/expect/assert").and_then(Value::as_array) {
            for (i, a) in asserts.iter().enumerate() {
                self.expression(&format!("{ptr}/expect/assert/{i}"), a, with_response);
            }
        }
        if let Some(save) = obj(value.get("save")) {
            for (name, v) in save {
                let p = push_pointer(&push_pointer(ptr, "save"), name);
                if STEP_FIELDS.contains(&name.as_str()) {
                    let span = self.doc.key_span(&p);
                    self.out
                        .push(AnalyzeError::ReservedSaveName { name: name.clone() }.at(span));
                }
                self.expression(&p, v, with_response);
            }
        }
        if let Some(in_doubt) = value.get("in_doubt") {
            self.in_doubt(&push_pointer(ptr, "in_doubt"), in_doubt, plain, with_response);
        }
        if let Some(cond) = value.get("stop_if") {
            let p = push_pointer(ptr, "stop_if");
            self.expression(&p, cond, with_response);
            if last && cond != &Value::Bool(false) {
                let finally = ptr.starts_with("/finally");
                self.out
                    .push(AnalyzeError::StopIfStopsNothing { finally }.at(self.doc.key_span(&p)));
            }
        }
    }

    /// `in_doubt`: a `compensate` request exactly with `policy: compensate`, its templates
    /// checked like the step's own request (it sees what the step sees).
    fn in_doubt(&mut self, ptr: &str, value: &Value, plain: Reach, with_response: Reach) {
        let policy = value.get("policy").or(Some(value)).and_then(Value::as_str);
        let compensate = value.get("compensate");
        match (policy, compensate) {
            (Some("compensate"), None) => {
                let span = self.doc.value_span(ptr);
                self.out
                    .push(AnalyzeError::CompensateMismatch { missing: true }.at(span));
            }
            (Some("resend" | "fail"), Some(_)) => {
                let span = self.doc.key_span(&push_pointer(ptr, "compensate"));
                self.out
                    .push(AnalyzeError::CompensateMismatch { missing: false }.at(span));
            }
            _ => {}
        }
        if let Some(when) = value.get("already_done_if") {
            self.expression(&push_pointer(ptr, "already_done_if"), when, with_response);
        }
        let Some(compensate) = compensate else { return };
        let at = push_pointer(ptr, "compensate");
        if let Some(request) = compensate.get("request") {
            self.templates(&push_pointer(&at, "request"), request, plain);
        }
        if let Some(asserts) = compensate.pointer("/expect/assert").and_then(Value::as_array) {
            for (i, a) in asserts.iter().enumerate() {
                self.expression(&format!("{at}/expect/assert/{i}"), a, with_response);
            }
        }
    }

    /// Checks every string under `ptr` as a template (bodies, headers, paths).
    fn templates(&mut self, ptr: &str, value: &Value, scope: Reach) {
        match value {
            Value::String(s) => self.template(ptr, s, scope),
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.templates(&push_pointer(ptr, &i.to_string()), v, scope);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    self.templates(&push_pointer(ptr, k), v, scope);
                }
            }
            _ => {}
        }
    }

    fn template(&mut self, ptr: &str, text: &str, scope: Reach) {
        if !text.contains('{') {
            return;
        }
        let span = self.doc.value_span(ptr);
        if let Some(detail) = scan::too_complex(text, true) {
            self.out.push(AnalyzeError::TooComplex { detail }.at(span));
            return;
        }
        match expr::check_environment().template_from_str(text) {
            Err(e) => self.syntax_error(span, text, &e, false),
            Ok(t) => {
                self.names(span, text, t.undeclared_variables(true), scope);
                for region in scan::code_regions(text) {
                    self.filters_and_tests(span, region);
                }
            }
        }
    }

    fn expression(&mut self, ptr: &str, value: &Value, scope: Reach) {
        let Some(text) = value.as_str() else { return };
        let span = self.doc.value_span(ptr);
        if let Some(detail) = scan::too_complex(text, false) {
            self.out.push(AnalyzeError::TooComplex { detail }.at(span));
            return;
        }
        let trimmed = text.trim();
        if let Some(inner) = trimmed.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
            let key = if ptr.contains("/save/") {
                "`save` values take".to_string()
            } else if ptr.starts_with("/outputs/") {
                "`outputs` take".to_string()
            } else if ptr.contains("/assert/") {
                "`assert` items take".to_string()
            } else {
                format!("`{}` takes", ptr.rsplit('/').next().unwrap_or_default())
            };
            self.out.push(
                AnalyzeError::BracesInExpression {
                    key,
                    inner: inner.trim().to_string(),
                }
                .at(span),
            );
            return;
        }
        match expr::check_environment().compile_expression(text) {
            Err(e) => self.syntax_error(span, text, &e, true),
            Ok(e) => {
                self.names(span, text, e.undeclared_variables(true), scope);
                self.filters_and_tests(span, text);
            }
        }
    }

    fn syntax_error(&mut self, span: Span, text: &str, e: &minijinja::Error, expression: bool) {
        // "unexpected end of input" is best shown where the input ends.
        let end_of_input = e.detail().is_some_and(|d| d.contains("end of input"));
        let offset = if end_of_input {
            Some(text.trim_end().len())
        } else {
            e.range().map(|r| r.start)
        };
        let at = offset.map_or(span, |o| self.locate_offset(span, text, o));
        let detail = e.detail().unwrap_or("invalid syntax").to_string();
        self.out
            .push(AnalyzeError::TemplateSyntax { detail, expression }.at(at));
    }

    /// The source position of byte `offset` of a scalar's value: exact when the value's line
    /// appears verbatim in the source (plain, quoted without escapes, block scalars), else the
    /// scalar's start.
    fn locate_offset(&self, span: Span, text: &str, offset: usize) -> Span {
        let offset = offset.min(text.len());
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let line = &text[line_start..line_end];
        if line.is_empty() {
            return Span::on_line(span.start, 1);
        }
        let Some(found) = self.source.find_in(span, line).or_else(|| {
            // `find_in` wants a word boundary after the needle; a line may end mid-word.
            let from = self.source.offset(span.start)?;
            let i = self.source.text[from..].find(line)?;
            Some(Span::on_line(self.source.pos(from + i), 1))
        }) else {
            return Span::on_line(span.start, 1);
        };
        let col = text[line_start..offset].chars().count();
        let start = super::source::Pos {
            line: found.start.line,
            col: found.start.col + col,
        };
        Span::on_line(start, 1)
    }

    fn point(&self, span: Span, needle: &str) -> Span {
        self.source.find_in(span, needle).unwrap_or(span)
    }

    /// Checks every name a template or expression reads, in a stable order.
    fn names(&mut self, span: Span, text: &str, names: std::collections::HashSet<String>, scope: Reach) {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        for name in names {
            self.name(span, text, &name, scope);
        }
    }

    /// Checks one name a template reads, such as `steps.route.correlation_id`.
    fn name(&mut self, span: Span, text: &str, name: &str, scope: Reach) {
        let parts: Vec<&str> = name.split('.').collect();
        match parts[0] {
            "inputs" if !scope.inputs => {
                let at = self.point(span, "inputs");
                self.out.push(AnalyzeError::InputsInAuth.at(at));
            }
            "inputs" => {
                if let Some(input) = parts.get(1)
                    && !self.inputs.iter().any(|i| i == input)
                {
                    let suggestion = did_you_mean(input, self.inputs.iter().map(String::as_str));
                    let at = self.point(span, &format!("inputs.{input}"));
                    self.out.push(
                        AnalyzeError::UndeclaredInput {
                            name: input.to_string(),
                            suggestion,
                        }
                        .at(at),
                    );
                }
            }
            "steps" => {
                if let Some(id) = parts.get(1) {
                    self.step_ref(span, id, parts.get(2).copied(), scope);
                }
            }
            "vars" => {
                if let Some(var) = parts.get(1)
                    && !scope.vars.iter().any(|v| v == var)
                {
                    let at = self.point(span, &format!("vars.{var}"));
                    let suggestion = did_you_mean(var, scope.vars.iter().map(String::as_str));
                    let elsewhere = self.all_vars.iter().any(|v| v == var);
                    self.out.push(
                        AnalyzeError::UnknownVar {
                            name: var.to_string(),
                            suggestion,
                            elsewhere,
                        }
                        .at(at),
                    );
                }
            }
            "response" => {
                if !scope.response {
                    let at = self.point(span, "response");
                    self.out.push(AnalyzeError::ResponseOutOfScope.at(at));
                }
            }
            root if FUNCTIONS.contains(&root) || BUILTIN_GLOBALS.contains(&root) => {}
            root => {
                let at = self.point(span, root);
                let called = text.contains(&format!("{root}("));
                let err = if called {
                    let known = FUNCTIONS.iter().chain(BUILTIN_GLOBALS).copied();
                    AnalyzeError::UnknownFunction {
                        name: root.to_string(),
                        suggestion: did_you_mean(root, known),
                    }
                } else {
                    let known = ROOTS.iter().copied();
                    AnalyzeError::UnknownName {
                        name: root.to_string(),
                        suggestion: did_you_mean(root, known),
                    }
                };
                self.out.push(err.at(at));
            }
        }
    }

    fn step_ref(&mut self, span: Span, id: &str, field: Option<&str>, scope: Reach) {
        let at = self.point(span, &format!("steps.{id}"));
        if scope.current.is_some_and(|c| c.id == id) {
            self.out.push(AnalyzeError::OwnStep { id: id.to_string() }.at(at));
            return;
        }
        let Some(step) = scope.visible.iter().find(|s| s.id == id) else {
            let err = if self.all_steps.iter().any(|s| s.id == id) {
                AnalyzeError::LaterStep { id: id.to_string() }
            } else {
                let suggestion = did_you_mean(id, self.all_steps.iter().map(|s| s.id.as_str()));
                AnalyzeError::UnknownStep {
                    id: id.to_string(),
                    suggestion,
                }
            };
            self.out.push(err.at(at));
            return;
        };
        if let Some(field) = field
            && !STEP_FIELDS.contains(&field)
            && !step.saves.iter().any(|s| s == field)
        {
            let known: Vec<String> = step
                .saves
                .iter()
                .cloned()
                .chain(STEP_FIELDS.iter().map(|s| s.to_string()))
                .collect();
            let at = self.point(span, &format!("steps.{id}.{field}"));
            self.out.push(
                AnalyzeError::UnknownStepField {
                    id: id.to_string(),
                    field: field.to_string(),
                    known,
                }
                .at(at),
            );
        }
    }

    fn filters_and_tests(&mut self, span: Span, code: &str) {
        for used in scan::uses(code) {
            let err = match used {
                scan::Use::Filter(name) if !expr::is_filter(name) => {
                    AnalyzeError::UnknownFilter { name: name.into() }
                }
                scan::Use::Test(name) if !expr::is_test(name) => {
                    AnalyzeError::UnknownTest { name: name.into() }
                }
                _ => continue,
            };
            let name = match &err {
                AnalyzeError::UnknownFilter { name } | AnalyzeError::UnknownTest { name } => name.clone(),
                _ => unreachable!(),
            };
            let at = self.point(span, &name);
            self.out.push(err.at(at));
        }
    }

    /// Records the declared inputs and checks that each default and allowed value fits the
    /// input's own declaration.
    fn check_inputs(&mut self, inputs: Option<&Map<String, Value>>) {
        let Some(inputs) = inputs else { return };
        for (name, spec) in inputs {
            self.inputs.push(name.clone());
            let Some(spec) = spec.as_object() else {
                continue;
            };
            let ptr = push_pointer("/inputs", name);
            let mut own = Map::new();
            own.insert(
                "type".into(),
                spec.get("type").cloned().unwrap_or_else(|| "string".into()),
            );
            let type_only = Value::Object(own.clone());
            for key in ["enum", "pattern", "minLength", "maxLength", "minimum", "maximum"] {
                if let Some(v) = spec.get(key) {
                    own.insert(key.into(), v.clone());
                }
            }
            if let Some(values) = spec.get("enum").and_then(Value::as_array) {
                for (i, v) in values.iter().enumerate() {
                    if let Some(problem) = violation(&type_only, v) {
                        let span = self.doc.value_span(&format!("{ptr}/enum/{i}"));
                        self.out.push(
                            AnalyzeError::BadEnumValue {
                                input: name.clone(),
                                problem,
                            }
                            .at(span),
                        );
                    }
                }
            }
            if let Some(default) = spec.get("default")
                && let Some(problem) = violation(&Value::Object(own), default)
            {
                let span = self.doc.value_span(&push_pointer(&ptr, "default"));
                self.out.push(
                    AnalyzeError::BadDefault {
                        input: name.clone(),
                        problem,
                    }
                    .at(span),
                );
            }
        }
    }
}

/// What is wrong with `value` under the input declaration `schema`, in words.
fn violation(schema: &Value, value: &Value) -> Option<Violation> {
    let validator = jsonschema::validator_for(schema).ok()?;
    let error = validator.iter_errors(value).next()?;
    use jsonschema::error::ValidationErrorKind as K;
    Some(match error.kind() {
        K::Type { .. } => Violation {
            message: format!(
                "is {}, but the input's type is {}",
                describe(value),
                schema.get("type").and_then(Value::as_str).unwrap_or("string")
            ),
            hint: None,
        },
        K::Enum { options } => {
            let allowed: Vec<String> = options.as_array().into_iter().flatten().map(show).collect();
            let list = allowed.join(", ");
            let hint = value
                .as_str()
                .and_then(|s| did_you_mean(s, allowed.iter().map(String::as_str)))
                .map_or_else(|| format!("allowed: {list}"), |d| format!("{d} allowed: {list}"));
            Violation {
                message: format!("is not one of its allowed values (`{}`)", show(value)),
                hint: Some(hint),
            }
        }
        _ => Violation {
            message: format!("`{}` breaks its own rule: {error}", show(value)),
            hint: None,
        },
    })
}

fn show(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}
