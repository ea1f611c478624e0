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
use crate::expr::{self, BUILTIN_GLOBALS, FUNCTIONS, ROOTS, STEP_FIELDS, Templates, scan};
use serde_json::{Map, Value, json};

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
    /// The step's `if`, whose `inputs.x is defined` guards reads of an optional input.
    guard: &'s str,
}

#[derive(Clone)]
struct StepInfo {
    id: String,
    /// A call (`call:`): its values are its steps', read as `steps.<id>.<step id>.<value>`.
    call: bool,
    /// A call's steps.
    children: Vec<StepInfo>,
    saves: Vec<String>,
    /// The Interaction Service operation the step calls, whose answers' fields are known.
    op: Option<&'static crate::api::Operation>,
    /// Whether the step may not run in a passed run (it has an `if`, or follows a `stop_if`).
    may_skip: bool,
}

struct Analyzer<'a> {
    source: &'a Source,
    doc: &'a Document,
    inputs: Vec<String>,
    /// Inputs a run may leave out that have no default: undefined unless given.
    optional: Vec<String>,
    /// Every var declared anywhere, for the hint when one is read where it is not in scope.
    all_vars: Vec<String>,
    all_steps: Vec<StepInfo>,
    out: Vec<Diagnostic>,
    /// In a steps file, the pointer of what holds its `params` and `steps`: `""` for the file
    /// itself, the calling step for a file mounted under a call. `None` in a flow.
    frame: Option<String>,
    /// Every template and expression of the flow, compiled once: what each reads comes from
    /// its compiled form, and compiling the flow to run it finds them here again.
    store: &'a mut Templates,
}

/// Runs every semantic check over a loaded flow; also gives the flow's templates, compiled (see
/// [`Templates::template_at`]).
pub fn analyze(source: &Source, doc: &Document) -> (Vec<Diagnostic>, Templates) {
    let frame = super::calls::is_steps_file(doc).then(String::new);
    let mut store = Templates::unbound();
    let mut a = Analyzer::new(source, doc, frame, &mut store);
    a.run();
    let out = a.out;
    (out, store)
}

/// Problems about inputs, reworded for a steps file, whose declared values are parameters.
fn as_params(mut d: Diagnostic) -> Diagnostic {
    let reword = |text: &str| {
        text.replace("input `", "parameter `")
            .replace("inputs.", "params.")
            .replace("`inputs:`", "`params:`")
            .replace("the input", "the parameter")
            .replace("input's", "parameter's")
    };
    d.code = match d.code {
        "undeclared-input" => "undeclared-param",
        "unguarded-optional-input" => "unguarded-optional-param",
        other => other,
    };
    if matches!(
        d.code,
        "undeclared-param" | "unguarded-optional-param" | "bad-pattern" | "bad-default" | "bad-enum-value"
    ) {
        d.message = reword(&d.message);
        d.hint = d.hint.as_deref().map(reword);
    }
    d
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
    fn new(source: &'a Source, doc: &'a Document, frame: Option<String>, store: &'a mut Templates) -> Self {
        Analyzer {
            source,
            doc,
            inputs: Vec::new(),
            optional: Vec::new(),
            all_vars: Vec::new(),
            all_steps: Vec::new(),
            out: Vec::new(),
            frame,
            store,
        }
    }

    fn run(&mut self) {
        if let Some(base) = self.frame.clone() {
            self.run_frame(&base);
            let out = std::mem::take(&mut self.out);
            self.out = out.into_iter().map(as_params).collect();
            return;
        }
        let root = &self.doc.value;
        self.check_inputs("/inputs");
        self.input_groups(root);
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
            guard: "",
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
            guard: "",
        };
        if let Some(outputs) = obj(root.get("outputs")) {
            for (name, v) in outputs {
                let ptr = push_pointer("/outputs", name);
                self.expression(&ptr, v, outputs_scope);
                self.output_of_skipped_step(&ptr, v);
            }
        }
        for key in ["/deadline", "/connection/timeout"] {
            self.zero_duration(key);
        }
    }

    /// A steps file's `params` and `steps` (under `base`): its steps read its parameters, each
    /// other, and their own vars; nothing of the flow that calls them.
    fn run_frame(&mut self, base: &str) {
        self.check_inputs(&push_pointer(base, "params"));
        let list = push_pointer(base, "steps");
        let steps = self.collect_steps(&list);
        for step in self
            .doc
            .value
            .pointer(&list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.all_vars.extend(var_names(step));
        }
        for (i, step) in steps.iter().enumerate() {
            // Whether anything follows the file's last step is the caller's to know.
            self.step(
                &push_pointer(&list, &i.to_string()),
                step,
                &steps[..i],
                &[],
                false,
            );
        }
    }

    /// The steps of the file a call at `ptr` mounted, analyzed as a frame of their own; their
    /// problems join this file's.
    fn call(&mut self, ptr: &str, may_skip: bool) -> Vec<StepInfo> {
        if self.doc.value.pointer(&push_pointer(ptr, "steps")).is_none() {
            // The file could not be mounted; that is reported at the `call`.
            return Vec::new();
        }
        let mut child = Analyzer::new(self.source, self.doc, Some(ptr.to_string()), &mut *self.store);
        child.run();
        let (mut out, steps) = (child.out, child.all_steps);
        self.out.append(&mut out);
        steps
            .into_iter()
            .map(|s| StepInfo {
                may_skip: s.may_skip || may_skip,
                ..s
            })
            .collect()
    }

    fn collect_steps(&mut self, list: &str) -> Vec<StepInfo> {
        let Some(steps) = self.doc.value.pointer(list).and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut out: Vec<StepInfo> = Vec::new();
        // A main step after a `stop_if` does not run when it stops the flow.
        let mut after_stop = false;
        for (i, step) in steps.iter().enumerate() {
            let stops =
                !list.ends_with("/finally") && step.get("stop_if").is_some_and(|c| c != &Value::Bool(false));
            let after_stop_here = after_stop;
            after_stop |= stops;
            let after_stop = after_stop_here;
            let Some(id) = step.get("id").and_then(Value::as_str) else {
                continue;
            };
            let ptr = push_pointer(&push_pointer(list, &i.to_string()), "id");
            let earlier = self.all_steps.iter().chain(out.iter()).position(|s| s.id == id);
            if earlier.is_some() {
                let first_line = self.first_id_line(list, id);
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
            let op = match (
                step.pointer("/request/method").and_then(Value::as_str),
                step.pointer("/request/path").and_then(Value::as_str),
            ) {
                (Some(method), Some(path)) => crate::api::operation(method, path),
                _ => None,
            };
            let conditional = step.get("if").is_some_and(|c| c != &Value::Bool(true));
            let call = step.get("call").is_some();
            let children = match call {
                true => self.call(&push_pointer(list, &i.to_string()), conditional || after_stop),
                false => Vec::new(),
            };
            out.push(StepInfo {
                id: id.to_string(),
                call,
                children,
                saves,
                op,
                may_skip: conditional || after_stop,
            });
        }
        self.all_steps.extend(out.iter().cloned());
        out
    }

    /// The line of the first step `id` in `list`'s file: a flow's `steps` and `finally`, or a
    /// steps file's `steps`.
    fn first_id_line(&self, list: &str, id: &str) -> usize {
        let lists = match &self.frame {
            Some(_) => vec![list.to_string()],
            None => vec!["/steps".to_string(), "/finally".to_string()],
        };
        for list in &lists {
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
        if step.call {
            self.call_site(ptr, value, visible, flow_vars, step);
            return;
        }
        let mut own_vars = var_names(value);
        // A `for_each` item is read as `vars.<as>` in the step's request, expect and save.
        if value.get("for_each").is_some() {
            let item = value.get("as").and_then(Value::as_str).unwrap_or("item");
            own_vars.push(item.to_string());
        }
        let readable: Vec<String> = flow_vars.iter().chain(&own_vars).cloned().collect();
        let guard = value.get("if").and_then(Value::as_str).unwrap_or_default();
        let before_vars = Reach {
            visible,
            current: Some(step),
            response: false,
            inputs: true,
            vars: flow_vars,
            guard,
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
        if let Some(items) = value.get("for_each") {
            let with_step_vars = Reach {
                vars: &readable[..readable.len() - 1],
                ..before_vars
            };
            self.expression(&push_pointer(ptr, "for_each"), items, with_step_vars);
        }
        if let Some(until) = value.get("until") {
            self.expression(&push_pointer(ptr, "until"), until, with_response);
        }
        self.vars(&push_pointer(ptr, "vars"), &own_vars, before_vars);
        if let Some(cond) = value.get("fail_if") {
            let p = push_pointer(ptr, "fail_if");
            match cond.get("when") {
                Some(when) => {
                    self.expression(&push_pointer(&p, "when"), when, plain);
                    if let Some(message) = cond.get("message") {
                        self.templates(&push_pointer(&p, "message"), message, plain);
                    }
                }
                None => self.expression(&p, cond, plain),
            }
        }
        if let Some(request) = value.get("request") {
            self.templates(&push_pointer(ptr, "request"), request, plain);
            self.json_for_multipart(ptr, step);
        }
        self.zero_duration(&push_pointer(ptr, "timeout"));
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

    /// A call: its `if` and arguments read what any step there reads; the arguments are the
    /// called file's parameters, every required one given, literal ones fitting their rules.
    fn call_site(
        &mut self,
        ptr: &str,
        value: &Value,
        visible: &[StepInfo],
        flow_vars: &[String],
        step: &StepInfo,
    ) {
        let guard = value.get("if").and_then(Value::as_str).unwrap_or_default();
        let scope = Reach {
            visible,
            current: Some(step),
            response: false,
            inputs: true,
            vars: flow_vars,
            guard,
        };
        if let Some(cond) = value.get("if") {
            self.expression(&push_pointer(ptr, "if"), cond, scope);
        }
        let args = obj(value.get("with"));
        for (name, arg) in args.into_iter().flatten() {
            self.templates(&push_pointer(&push_pointer(ptr, "with"), name), arg, scope);
        }
        if value.get("steps").is_none() {
            // The file was not mounted; its `call` has the diagnostic.
            return;
        }
        let params = obj(value.get("params"));
        let declared: Vec<String> = params.map(|p| p.keys().cloned().collect()).unwrap_or_default();
        for (name, arg) in args.into_iter().flatten() {
            let at = push_pointer(&push_pointer(ptr, "with"), name);
            let Some(spec) = params.and_then(|p| p.get(name)).and_then(Value::as_object) else {
                let err = AnalyzeError::UnknownArgument {
                    name: name.clone(),
                    declared: declared.clone(),
                };
                self.out.push(err.at(self.doc.key_span(&at)));
                continue;
            };
            let literal = arg.as_str().is_none_or(|t| !t.contains('{'));
            if literal && let Some(problem) = violation(&rules(spec), arg) {
                let err = AnalyzeError::BadArgument {
                    name: name.clone(),
                    problem,
                };
                self.out.push(err.at(self.doc.value_span(&at)));
            }
        }
        for (name, spec) in params.into_iter().flatten() {
            let given = args.is_some_and(|a| a.contains_key(name));
            let required = spec.get("required").and_then(Value::as_bool);
            let required = required.unwrap_or(spec.get("default").is_none());
            if required && !given {
                let err = AnalyzeError::MissingArgument { name: name.clone() };
                self.out
                    .push(err.at(self.doc.value_span(&push_pointer(ptr, "call"))));
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
        // The compensating request's answer is its own operation's, not the step's.
        let op = match (
            compensate.pointer("/request/method").and_then(Value::as_str),
            compensate.pointer("/request/path").and_then(Value::as_str),
        ) {
            (Some(method), Some(path)) => crate::api::operation(method, path),
            _ => None,
        };
        let undo = with_response.current.map(|c| StepInfo { op, ..c.clone() });
        let undo_scope = Reach {
            current: undo.as_ref(),
            ..with_response
        };
        if let Some(asserts) = compensate.pointer("/expect/assert").and_then(Value::as_array) {
            for (i, a) in asserts.iter().enumerate() {
                self.expression(&format!("{at}/expect/assert/{i}"), a, undo_scope);
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
        let names = match self.store.template_at(ptr, text, span.start.line) {
            Ok(id) => self.store.undeclared(id, true),
            // Compiled alone again, for the error's position.
            Err(_) => match expr::check_environment().template_from_str(text) {
                Err(e) => return self.syntax_error(span, text, &e, false),
                Ok(t) => t.undeclared_variables(true),
            },
        };
        self.names(span, text, names, scope);
        for region in scan::code_regions(text) {
            self.code(span, region);
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
        let names = match self.store.expression_at(ptr, text, span.start.line) {
            Ok(id) => self.store.undeclared(id, true),
            // Compiled alone again, for the error's position.
            Err(_) => match expr::check_environment().compile_expression(text) {
                Err(e) => return self.syntax_error(span, text, &e, true),
                Ok(e) => e.undeclared_variables(true),
            },
        };
        self.names(span, text, names, scope);
        self.code(span, text);
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
        let source = self.source_of(span);
        let Some(found) = source.find_in(span, line).or_else(|| {
            // `find_in` wants a word boundary after the needle; a line may end mid-word.
            let from = source.offset(span.start)?;
            let i = source.text[from..].find(line)?;
            Some(Span::on_line(source.pos(from + i), 1))
        }) else {
            return Span::on_line(span.start, 1).in_file(span.file);
        };
        let col = text[line_start..offset].chars().count();
        let start = crate::base::source::Pos {
            line: found.start.line,
            col: found.start.col + col,
        };
        Span::on_line(start, 1).in_file(span.file)
    }

    fn point(&self, span: Span, needle: &str) -> Span {
        self.source_of(span)
            .find_in(span, needle)
            .map_or(span, |s| s.in_file(span.file))
    }

    /// The file `span` is in: the flow, or a connection file it uses.
    fn source_of(&self, span: Span) -> &Source {
        self.doc.file_of(span).map_or(self.source, |s| s)
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
        // A flow declares `inputs`; a steps file, `params`.
        let declared = if self.frame.is_some() { "params" } else { "inputs" };
        match parts[0] {
            "inputs" if self.frame.is_some() => {
                let at = self.point(span, "inputs");
                self.out.push(AnalyzeError::InputsInStepsFile.at(at));
            }
            "params" if self.frame.is_none() => {
                let at = self.point(span, "params");
                self.out.push(AnalyzeError::ParamsOutsideStepsFile.at(at));
            }
            "inputs" if !scope.inputs => {
                let at = self.point(span, "inputs");
                self.out.push(AnalyzeError::InputsInAuth.at(at));
            }
            "inputs" | "params" => {
                if let Some(input) = parts.get(1)
                    && !self.inputs.iter().any(|i| i == input)
                {
                    let suggestion = did_you_mean(input, self.inputs.iter().map(String::as_str));
                    let at = self.point(span, &format!("{declared}.{input}"));
                    self.out.push(
                        AnalyzeError::UndeclaredInput {
                            name: input.to_string(),
                            suggestion,
                        }
                        .at(at),
                    );
                } else if let Some(input) = parts.get(1)
                    && self.optional.iter().any(|i| i == input)
                    && !guarded(text, &format!("{declared}.{input}"))
                    && !guarded(scope.guard, &format!("{declared}.{input}"))
                {
                    let at = self.point(span, &format!("{declared}.{input}"));
                    self.out.push(
                        AnalyzeError::UnguardedInput {
                            name: input.to_string(),
                        }
                        .at(at),
                    );
                }
            }
            "steps" => {
                if parts.len() > 1 {
                    self.step_ref(span, &parts, scope);
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
                } else if parts.get(1) == Some(&"body")
                    && let Some(op) = scope.current.and_then(|c| c.op)
                {
                    self.response_field(span, op, &parts, 2);
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

    /// A read of `steps.<id>...` (`parts`, split at the dots).
    fn step_ref(&mut self, span: Span, parts: &[&str], scope: Reach) {
        let id = parts[1];
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
        self.step_field(span, step, parts, 2);
    }

    /// A read of the value `parts[depth]` of `step`, itself read as `parts[..depth]`: one it saves,
    /// one every step has, or, for a call, one of the called steps.
    fn step_field(&mut self, span: Span, step: &StepInfo, parts: &[&str], depth: usize) {
        let Some(&field) = parts.get(depth) else { return };
        let shown = parts[..depth].join(".");
        if step.call {
            match step.children.iter().find(|c| c.id == field) {
                Some(child) => self.step_field(span, child, parts, depth + 1),
                None => {
                    let err = AnalyzeError::NotInCall {
                        call: shown.clone(),
                        id: field.to_string(),
                        known: step.children.iter().map(|c| c.id.clone()).collect(),
                    };
                    self.out
                        .push(err.at(self.point(span, &format!("{shown}.{field}"))));
                }
            }
            return;
        }
        if field == "body"
            && let Some(op) = step.op
        {
            self.response_field(span, op, parts, depth + 1);
        }
        if !STEP_FIELDS.contains(&field) && !step.saves.iter().any(|s| s == field) {
            let known: Vec<String> = step
                .saves
                .iter()
                .cloned()
                .chain(STEP_FIELDS.iter().map(|s| s.to_string()))
                .collect();
            let at = self.point(span, &format!("{shown}.{field}"));
            self.out.push(
                AnalyzeError::UnknownStepField {
                    id: parts[1..depth].join("."),
                    field: field.to_string(),
                    known,
                }
                .at(at),
            );
        }
    }

    /// The lexical checks of one expression or `{{ }}`: filters and tests that exist (named
    /// directly or as strings), functions called rather than read, secrets used as they are.
    fn code(&mut self, span: Span, code: &str) {
        let used = scan::uses(code).into_iter().map(|u| (u, false));
        let named = scan::named_by_string(code).into_iter().map(|u| (u, true));
        for (used, quoted) in used.chain(named) {
            let err = match used {
                scan::Use::Filter(name) if !expr::is_filter(name) => AnalyzeError::UnknownFilter {
                    name: name.into(),
                    quoted,
                },
                scan::Use::Test(name) if !expr::is_test(name) => AnalyzeError::UnknownTest {
                    name: name.into(),
                    quoted,
                },
                _ => continue,
            };
            let name = match &err {
                AnalyzeError::UnknownFilter { name, .. } | AnalyzeError::UnknownTest { name, .. } => {
                    name.clone()
                }
                _ => unreachable!(),
            };
            let at = self.point(span, &name);
            self.out.push(err.at(at));
        }
        for name in scan::uncalled(code, FUNCTIONS) {
            let at = self.point(span, name);
            self.out.push(
                AnalyzeError::FunctionNotCalled {
                    name: name.to_string(),
                }
                .at(at),
            );
        }
        if scan::transforms_secret(code) {
            let at = self.point(span, "secret");
            self.out.push(AnalyzeError::SecretTransformed.at(at));
        }
    }

    /// `response.body.<path>` (from `parts[from]` on) against what `op` answers.
    fn response_field(&mut self, span: Span, op: &crate::api::Operation, parts: &[&str], from: usize) {
        let Some((i, known)) = op.response_field(&parts[from..]) else {
            return;
        };
        let written = parts[..=from + i].join(".");
        let at = self.point(span, &written);
        let field = parts[from + i].to_string();
        let suggestion = did_you_mean(&field, known.iter().map(String::as_str));
        self.out.push(
            AnalyzeError::UnknownResponseField {
                operation: op.label(),
                field,
                suggestion,
                known,
            }
            .at(at),
        );
    }

    /// An output reading a saved value of a step that may not run in a passed run, unless the
    /// expression itself asks whether it ran.
    fn output_of_skipped_step(&mut self, ptr: &str, value: &Value) {
        let Some(text) = value.as_str() else { return };
        let line = self.doc.value_span(ptr).start.line;
        let Ok(id) = self.store.expression_at(ptr, text, line) else {
            return;
        };
        let mut names: Vec<String> = self.store.undeclared(id, true).into_iter().collect();
        names.sort();
        for name in names {
            let parts: Vec<&str> = name.split('.').collect();
            let ["steps", id, ref rest @ ..] = parts[..] else {
                continue;
            };
            let Some(mut step) = self.all_steps.iter().find(|s| s.id == id) else {
                continue;
            };
            // A called step is read as `steps.<call>.<step>.<value>`.
            let (mut id, mut rest) = (id.to_string(), rest);
            while step.call
                && let Some((first, more)) = rest.split_first()
                && let Some(child) = step.children.iter().find(|c| c.id == *first)
            {
                (step, rest) = (child, more);
                id = format!("{id}.{first}");
            }
            let Some(&field) = rest.first() else { continue };
            if STEP_FIELDS.contains(&field) || step.call {
                continue;
            }
            let id = id.as_str();
            let asks = ["succeeded", "skipped", "failed"]
                .iter()
                .any(|f| text.contains(&format!("steps.{id}.{f}")));
            if step.may_skip && !asks && !guarded(text, &format!("steps.{id}.{field}")) {
                let span = self.doc.value_span(ptr);
                let at = self.point(span, &format!("steps.{id}.{field}"));
                self.out.push(
                    AnalyzeError::OutputOfSkippedStep {
                        id: id.to_string(),
                        field: field.to_string(),
                    }
                    .at(at),
                );
            }
        }
    }

    /// A `timeout` or `deadline` of zero: no attempt could ever be made.
    fn zero_duration(&mut self, ptr: &str) {
        let Some(text) = self.doc.value.pointer(ptr).and_then(Value::as_str) else {
            return;
        };
        if super::model::parse_duration(text).is_some_and(|d| d.is_zero()) {
            let key = ptr.rsplit('/').next().unwrap_or_default().to_string();
            let span = self.doc.value_span(ptr);
            self.out.push(AnalyzeError::ZeroDuration { key }.at(span));
        }
    }

    /// A `json:` body for an operation whose body is multipart (its JSON is one part).
    fn json_for_multipart(&mut self, ptr: &str, step: &StepInfo) {
        let Some(op) = step.op else { return };
        let Some(part) = op.json_part else { return };
        let json = push_pointer(&push_pointer(ptr, "request"), "json");
        if self.doc.value.pointer(&json).is_some() {
            let span = self.doc.key_span(&json);
            self.out.push(
                AnalyzeError::JsonForMultipart {
                    operation: op.label(),
                    part: part.to_string(),
                }
                .at(span),
            );
        }
    }

    /// Each `input_groups` rule names declared inputs a run may leave out (no default: a
    /// default would count as given).
    fn input_groups(&mut self, root: &Value) {
        let Some(groups) = root.get("input_groups").and_then(Value::as_array) else {
            return;
        };
        for (g, group) in groups.iter().enumerate() {
            let Some((kind, names)) = obj(Some(group)).and_then(|m| m.iter().next()) else {
                continue;
            };
            for (i, name) in names.as_array().into_iter().flatten().enumerate() {
                let Some(name) = name.as_str() else { continue };
                let span = self.doc.value_span(&format!("/input_groups/{g}/{kind}/{i}"));
                let spec = root.pointer(&format!("/inputs/{}", name.replace('~', "~0").replace('/', "~1")));
                let Some(spec) = spec else {
                    let suggestion = did_you_mean(name, self.inputs.iter().map(String::as_str));
                    self.out.push(
                        AnalyzeError::UndeclaredInput {
                            name: name.to_string(),
                            suggestion,
                        }
                        .at(span),
                    );
                    continue;
                };
                let has_default = spec.get("default").is_some();
                if has_default || spec.get("required").and_then(Value::as_bool) != Some(false) {
                    self.out.push(
                        AnalyzeError::GroupInputNotOptional {
                            name: name.to_string(),
                            has_default,
                        }
                        .at(span),
                    );
                }
            }
        }
    }

    /// Records the declared inputs and checks that each default and allowed value fits the
    /// input's own declaration.
    fn check_inputs(&mut self, at: &str) {
        let Some(inputs) = obj(self.doc.value.pointer(at)) else {
            return;
        };
        for (name, spec) in inputs {
            self.inputs.push(name.clone());
            let Some(spec) = spec.as_object() else {
                continue;
            };
            let ptr = push_pointer(at, name);
            let required = spec.get("required").and_then(Value::as_bool);
            if spec.get("default").is_none() && required == Some(false) {
                self.optional.push(name.clone());
            }
            if let Some(pattern) = spec.get("pattern").and_then(Value::as_str)
                && jsonschema::validator_for(&serde_json::json!({ "pattern": pattern })).is_err()
            {
                let span = self.doc.value_span(&push_pointer(&ptr, "pattern"));
                // jsonschema compiles patterns with fancy-regex; its own error says why.
                let detail = match fancy_regex::Regex::new(pattern) {
                    Err(why) => format!("{why}"),
                    Ok(_) => "it does not compile as an ECMA-262 regular expression, the kind JSON Schema patterns are".into(),
                };
                self.out.push(
                    AnalyzeError::BadPattern {
                        input: name.clone(),
                        detail,
                    }
                    .at(span),
                );
            }
            let type_only = json!({ "type": spec.get("type").cloned().unwrap_or_else(|| "string".into()) });
            let own = rules(spec);
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
                && let Some(problem) = violation(&own, default)
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

/// The rules of an input (or parameter) declaration that a value must meet, as a schema.
fn rules(spec: &Map<String, Value>) -> Value {
    let mut own = Map::new();
    own.insert(
        "type".into(),
        spec.get("type").cloned().unwrap_or_else(|| "string".into()),
    );
    for key in ["enum", "pattern", "minLength", "maxLength", "minimum", "maximum"] {
        if let Some(v) = spec.get(key) {
            own.insert(key.into(), v.clone());
        }
    }
    Value::Object(own)
}

/// Whether `text` asks if `path` has a value before relying on it: `is defined`, `is not
/// defined`, `is none`, `is undefined` or `| default`.
fn guarded(text: &str, path: &str) -> bool {
    let squeezed: String = text.split_whitespace().collect();
    [
        "isdefined",
        "isnotdefined",
        "isundefined",
        "isnone",
        "isnotnone",
        "|default",
        "|d(",
    ]
    .iter()
    .any(|g| squeezed.contains(&format!("{path}{g}")))
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
