//! A checked flow turned into what the engine runs: every template compiled once, every
//! default applied, each step knowing its YAML line.

use super::retry::RetryPolicy;
use crate::base::source::Span;
use crate::base::yaml::{Document, push_pointer};
use crate::expr::templates::{RenderError, TemplateId, Templates, Tree};
use crate::expr::world::World;
use crate::flow::model::{self, DoubtPolicy, Flow, InDoubt, StatusSet};
use serde_json::Value;
use std::time::Duration;

/// Default time one attempt may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A condition: a literal or a compiled expression.
#[derive(Debug, Clone, Copy)]
pub enum Cond {
    /// A literal `true` or `false`, settled at compile time.
    Always(bool),
    /// An expression, evaluated for its truth each time the step runs.
    Expr(TemplateId),
}

/// A step's request body, compiled.
#[derive(Debug)]
pub enum BodySpec {
    /// No body.
    None,
    /// A `json` body: the template of the JSON value sent.
    Json(Tree),
    /// A `form` body: each field name with its value template, in order.
    Form(Vec<(String, Tree)>),
    /// A `multipart` body: its parts, in order.
    Multipart(Vec<PartSpec>),
}

/// One part of a `multipart` body, compiled.
#[derive(Debug)]
pub struct PartSpec {
    /// The part's name: its key under `multipart`.
    pub name: String,
    /// What the part holds: JSON, text or a file.
    pub kind: PartKind,
    /// The part's `content_type`; `None` takes its kind's default (`application/json`,
    /// `text/plain` or `application/octet-stream`).
    pub content_type: Option<String>,
    /// The part's `filename` template; a file part without one sends the file's own name.
    pub filename: Option<Tree>,
}

/// What one multipart part holds.
#[derive(Debug)]
pub enum PartKind {
    /// A JSON value, rendered from the template.
    Json(Tree),
    /// Text, rendered from the template.
    Text(Tree),
    /// A file's bytes; the template renders its path, relative to the flow file's directory.
    File(Tree),
}

/// Where a step's parts stand in the flow file, so a failure points at the part that failed.
#[derive(Debug, Clone, Default)]
pub struct StepSpans {
    /// The step's `id` value.
    pub step: Span,
    /// The step's `if`, or the step when it has none.
    pub condition: Span,
    /// The step's `vars`, or the step when it has none.
    pub vars: Span,
    /// The step's `request` block.
    pub request: Span,
    /// The request body (`json`, `form` or `multipart`).
    pub body: Span,
    /// Each value inside the JSON body the API checks (the `json` part of a multipart one), by
    /// its pointer inside that body: a body check points at the field it refused.
    pub body_fields: Vec<(String, Span)>,
    /// `expect.status`, or the step when it has none.
    pub status: Span,
    /// Each `expect.assert` item.
    pub asserts: Vec<Span>,
    /// Each `save` value.
    pub save: Vec<Span>,
    /// The step's `stop_if`, or the step when it has none.
    pub stop_if: Span,
    /// The step's `fail_if`, or the step when it has none.
    pub fail_if: Span,
    /// The step's `for_each`, or the step when it has none.
    pub for_each: Span,
    /// The step's `until`, or the step when it has none.
    pub until: Span,
}

/// A step ready to run: templates compiled, spans found, defaults applied.
#[derive(Debug)]
pub struct CompiledStep {
    /// The step's `id`; in a called steps file, after the call's: `handoff.route`.
    pub id: String,
    /// The call (an index into [`CompiledFlow::frames`]) whose steps file holds the step.
    pub frame: Option<usize>,
    /// The line of the step in the flow file.
    pub line: usize,
    /// Where each part of the step stands in the flow file.
    pub spans: StepSpans,
    /// The step's `if`; `None` means it always runs.
    pub condition: Option<Cond>,
    /// The step's own `vars`, rendered in order after `if`.
    pub vars: Vec<(String, Tree)>,
    /// The step's `fail_if`: the condition, and the message template (else the condition's
    /// text is the error).
    pub fail_if: Option<(Cond, Option<Tree>)>,
    /// The step's `for_each`: it sends its request once per item.
    pub for_each: Option<ForEach>,
    /// The HTTP method.
    pub method: String,
    /// The URL path template, joined to the base URL.
    pub path: Tree,
    /// Query parameters and their value templates, in order.
    pub query: Vec<(String, Tree)>,
    /// The step's own headers; each replaces a connection header of the same name
    /// (case-insensitive).
    pub headers: Vec<(String, Tree)>,
    /// The request body.
    pub body: BodySpec,
    /// `expect.status`; `None` expects any 2xx.
    pub expect_status: Option<StatusSet>,
    /// Each `expect.assert` item: its source text and its compiled expression.
    pub asserts: Vec<(String, TemplateId)>,
    /// Each `save` entry: the name and the expression whose value is saved under it.
    pub save: Vec<(String, TemplateId)>,
    /// The step's `stop_if`: when true after the step passed, the flow ends early.
    pub stop_if: Option<Cond>,
    /// Time one attempt may take: the step's, else the connection's, else `DEFAULT_TIMEOUT` (10 s).
    pub timeout: Duration,
    /// When and how failed attempts are retried: the step's settings over the connection's.
    pub retry: RetryPolicy,
    /// With a literal path and no query the URL depends only on the base URL: the first
    /// `(base, url)` joined is kept, so it is not parsed again on every request.
    pub joined_url: std::sync::OnceLock<(String, String)>,
    /// What a resume does when this step was sent and no answer was recorded.
    pub in_doubt: InDoubtSpec,
}

/// A call of a steps file: what its steps read as `params`, and when they run at all.
#[derive(Debug)]
pub struct Frame {
    /// The call's id, after its enclosing calls' ids: `handoff`, `handoff.notify`.
    pub id: String,
    /// The frame of the call this one is in.
    pub parent: Option<usize>,
    /// The call's `if`: false skips every step of the call.
    pub condition: Option<Cond>,
    /// The arguments (`with`), rendered once in the caller's scope when the call starts.
    pub args: Vec<(String, Tree)>,
    /// The call's id and a dot: what the ids of its steps start with.
    pub prefix: String,
    /// The parameters as the steps file declares them; the arguments are checked against them.
    pub params: super::inputs::ParamRules,
    /// The call's `call` key, where a bad argument is reported.
    pub span: Span,
    /// The call's `if`, or `call` when it has none.
    pub condition_span: Span,
}

/// A step's `for_each`, compiled.
#[derive(Debug)]
pub struct ForEach {
    /// The expression giving the list.
    pub items: TemplateId,
    /// The name each item is read under: `vars.<name>`.
    pub name: String,
    /// The step's `max_items`; unset, the engine's default.
    pub max: Option<usize>,
    /// The expression that ends the loop when true after an item.
    pub until: Option<TemplateId>,
}

/// A step's `in_doubt` policy, compiled.
#[derive(Debug)]
pub struct InDoubtSpec {
    /// Resend, fail, or compensate first.
    pub policy: DoubtPolicy,
    /// The compensating request, as a step of its own (`<id>.compensate`).
    pub compensate: Option<Box<CompiledStep>>,
    /// API codes that, answering a resent attempt, mean the first one took effect.
    pub already_done: Vec<i64>,
    /// `already_done_if`: true over the answer to a resent attempt when the first one took
    /// effect.
    pub already_done_if: Option<TemplateId>,
}

/// How requests are authorized: the connection's `auth`, compiled.
#[derive(Debug)]
pub enum AuthSpec {
    /// No authorization.
    None,
    /// A bearer token, from its template.
    Bearer(Tree),
    /// A token obtained from `jwt_bearer`'s token endpoint with a signed JWT.
    Jwt(Box<JwtSpec>),
}

/// The `jwt_bearer` block, compiled.
#[derive(Debug)]
pub struct JwtSpec {
    /// Where the signed JWT is exchanged for an access token.
    pub token_url: Tree,
    /// The JWT's issuer (`iss`).
    pub client_id: Tree,
    /// The JWT's subject (`sub`).
    pub username: Tree,
    /// The JWT's audience (`aud`).
    pub audience: Tree,
    /// The RSA private key, PEM, that signs the JWT.
    pub private_key: Tree,
    /// How long each JWT is valid (`exp`); 180 s unless set.
    pub lifetime: Duration,
}

/// A flow ready to run any number of times.
pub struct CompiledFlow {
    /// The checked flow it was compiled from.
    pub flow: Flow,
    /// Every compiled template and expression of the flow, referred to by id.
    pub templates: Templates,
    /// The outside world the flow's expressions read: clock, ids, environment, secrets.
    pub world: World,
    /// The connection's `base_url` template.
    pub base_url: Tree,
    /// The connection's headers, sent with every request unless a step overrides them.
    pub headers: Vec<(String, Tree)>,
    /// How requests are authorized.
    pub auth: AuthSpec,
    /// The flow's `vars`, rendered in order once per run.
    pub vars: Vec<(String, Tree)>,
    /// The `steps`, in order.
    pub steps: Vec<CompiledStep>,
    /// The `finally` steps, run after `steps` even when one failed.
    pub finally: Vec<CompiledStep>,
    /// The calls of steps files, whose steps are in `steps` and `finally` in their place.
    pub frames: Vec<Frame>,
    /// Each output: its name and the expression evaluated after the steps.
    pub outputs: Vec<(String, TemplateId)>,
    /// Directory of the flow file: `file` parts are relative to it.
    pub base_dir: std::path::PathBuf,
    /// The connection and steps files the flow uses: a span with `file: n` is in the `n`th.
    pub files: Vec<std::sync::Arc<crate::flow::Source>>,
    /// Environment variables the flow reads by literal name (`true` for secrets).
    pub env_names: Vec<(bool, String)>,
}

struct Compiler<'a> {
    doc: &'a Document,
    templates: Templates,
    /// The flow file, as errors name it.
    flow_file: std::sync::Arc<str>,
}

impl Compiler<'_> {
    fn line(&self, pointer: &str) -> usize {
        self.doc.value_span(pointer).start.line
    }

    /// Names the file `pointer` is written in for the templates compiled next: the flow, or a
    /// connection or steps file mounted into it.
    fn in_file_of(&mut self, pointer: &str) {
        let file = match self.doc.file_of(self.doc.value_span(pointer)) {
            Some(source) => source.path.display().to_string().into(),
            None => self.flow_file.clone(),
        };
        self.templates.set_file(file);
    }

    fn tree(&mut self, value: &Value, pointer: &str) -> Result<Tree, RenderError> {
        self.in_file_of(pointer);
        let doc = self.doc;
        self.templates
            .tree(value, &|p| doc.value_span(p).start.line, pointer)
    }

    fn text(&mut self, text: &str, pointer: &str) -> Result<Tree, RenderError> {
        self.tree(&Value::String(text.to_string()), pointer)
    }

    fn map<T: Clone + Into<Value>>(
        &mut self,
        entries: &model::indexmap_like::Ordered<T>,
        pointer: &str,
    ) -> Result<Vec<(String, Tree)>, RenderError> {
        entries
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    self.tree(&v.clone().into(), &push_pointer(pointer, k))?,
                ))
            })
            .collect()
    }

    fn expr(&mut self, expr: &str, pointer: &str) -> Result<TemplateId, RenderError> {
        let line = self.line(pointer);
        self.in_file_of(pointer);
        self.templates.expression_at(pointer, expr, line)
    }

    fn cond(&mut self, value: &Option<Value>, pointer: &str) -> Result<Option<Cond>, RenderError> {
        Ok(match value {
            None => None,
            Some(Value::Bool(b)) => Some(Cond::Always(*b)),
            Some(Value::String(s)) => Some(Cond::Expr(self.expr(s, pointer)?)),
            Some(_) => None,
        })
    }

    /// Compiles the steps at `list` into `out`, a call's steps in its place: ids prefixed with
    /// the call's (`handoff.route`), each knowing the frame whose `params` it reads.
    fn steps(
        &mut self,
        steps: &[model::Step],
        list: &str,
        flow: &Flow,
        frame: Option<usize>,
        frames: &mut Vec<Frame>,
        out: &mut Vec<CompiledStep>,
    ) -> Result<(), RenderError> {
        let prefix = frame.map(|f| frames[f].prefix.clone()).unwrap_or_default();
        for (i, step) in steps.iter().enumerate() {
            let ptr = format!("{list}/{i}");
            if step.call.is_none() {
                let mut compiled = self.step(step, &ptr, flow)?;
                compiled.id = format!("{prefix}{}", step.id);
                compiled.frame = frame;
                if let Some(undo) = &mut compiled.in_doubt.compensate {
                    undo.id = format!("{prefix}{}", undo.id);
                    undo.frame = frame;
                }
                out.push(compiled);
                continue;
            }
            let args = self.map(&step.with, &push_pointer(&ptr, "with"))?;
            frames.push(Frame {
                id: format!("{prefix}{}", step.id),
                prefix: format!("{prefix}{}.", step.id),
                parent: frame,
                condition: self.cond(&step.condition, &push_pointer(&ptr, "if"))?,
                args,
                params: super::inputs::ParamRules::new(&step.params),
                span: self.doc.value_span(&push_pointer(&ptr, "call")),
                condition_span: self.doc.value_span(&push_pointer(&ptr, "if")),
            });
            let inner = Some(frames.len() - 1);
            self.steps(
                &step.steps,
                &push_pointer(&ptr, "steps"),
                flow,
                inner,
                frames,
                out,
            )?;
        }
        Ok(())
    }

    fn step(&mut self, step: &model::Step, ptr: &str, flow: &Flow) -> Result<CompiledStep, RenderError> {
        let Some(req) = &step.request else {
            // `check` requires `request` on every step without `call`.
            return Err(RenderError {
                file: "".into(),
                line: self.line(ptr),
                message: format!("step `{}` has no request", step.id),
            });
        };
        let rptr = push_pointer(ptr, "request");
        let body = if let Some(json) = &req.json {
            BodySpec::Json(self.tree(json, &push_pointer(&rptr, "json"))?)
        } else if let Some(form) = &req.form {
            BodySpec::Form(self.map(form, &push_pointer(&rptr, "form"))?)
        } else if let Some(parts) = &req.multipart {
            let mut specs = Vec::new();
            for (name, part) in parts.iter() {
                let pp = push_pointer(&push_pointer(&rptr, "multipart"), name);
                let kind = if let Some(j) = &part.json {
                    PartKind::Json(self.tree(j, &push_pointer(&pp, "json"))?)
                } else if let Some(t) = &part.text {
                    PartKind::Text(self.text(t, &push_pointer(&pp, "text"))?)
                } else {
                    PartKind::File(self.text(
                        part.file.as_deref().unwrap_or_default(),
                        &push_pointer(&pp, "file"),
                    )?)
                };
                let filename = part
                    .filename
                    .as_ref()
                    .map(|f| self.text(f, &push_pointer(&pp, "filename")))
                    .transpose()?;
                specs.push(PartSpec {
                    name: name.clone(),
                    kind,
                    content_type: part.content_type.clone(),
                    filename,
                });
            }
            BodySpec::Multipart(specs)
        } else {
            BodySpec::None
        };
        let asserts = step
            .expect
            .assert
            .iter()
            .enumerate()
            .map(|(i, a)| Ok((a.clone(), self.expr(a, &format!("{ptr}/expect/assert/{i}"))?)))
            .collect::<Result<_, RenderError>>()?;
        let save = step
            .save
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    self.expr(v, &push_pointer(&push_pointer(ptr, "save"), k))?,
                ))
            })
            .collect::<Result<_, RenderError>>()?;
        let span = |p: &str| self.doc.value_span(p);
        let step_span = span(&push_pointer(ptr, "id"));
        let or_step = |p: String| match self.doc.span(&p) {
            Some(s) => s.value,
            None => step_span,
        };
        let body_key = ["json", "form", "multipart"]
            .into_iter()
            .find(|k| self.doc.span(&push_pointer(&rptr, k)).is_some())
            .unwrap_or("json");
        // The JSON the API's schema checks: the `json` body, or a multipart's `json` part.
        let checked = ["json", "multipart/json/json"]
            .into_iter()
            .map(|k| format!("{rptr}/{k}"))
            .find(|p| self.doc.span(p).is_some());
        let mut body_fields = Vec::new();
        if let Some(base) = checked
            && let Some(body) = self.doc.value.pointer(&base)
        {
            field_spans(self.doc, &base, body, "", &mut body_fields);
        }
        let spans = StepSpans {
            step: step_span,
            body_fields,
            condition: or_step(push_pointer(ptr, "if")),
            vars: or_step(push_pointer(ptr, "vars")),
            request: or_step(rptr.clone()),
            body: or_step(push_pointer(&rptr, body_key)),
            status: or_step(format!("{ptr}/expect/status")),
            asserts: (0..step.expect.assert.len())
                .map(|i| or_step(format!("{ptr}/expect/assert/{i}")))
                .collect(),
            save: step
                .save
                .iter()
                .map(|(k, _)| or_step(push_pointer(&push_pointer(ptr, "save"), k)))
                .collect(),
            stop_if: or_step(push_pointer(ptr, "stop_if")),
            fail_if: or_step(push_pointer(ptr, "fail_if")),
            for_each: or_step(push_pointer(ptr, "for_each")),
            until: or_step(push_pointer(ptr, "until")),
        };
        let fail_ptr = push_pointer(ptr, "fail_if");
        let fail_if = match &step.fail_if {
            None => None,
            Some(model::FailIf::When(when)) => Some((self.cond(&Some(when.clone()), &fail_ptr)?, None)),
            Some(model::FailIf::Said { when, message }) => {
                let cond = self.cond(&Some(when.clone()), &push_pointer(&fail_ptr, "when"))?;
                let message = message
                    .as_ref()
                    .map(|m| self.text(m, &push_pointer(&fail_ptr, "message")))
                    .transpose()?;
                Some((cond, message))
            }
        };
        Ok(CompiledStep {
            id: step.id.clone(),
            frame: None,
            line: self.line(ptr),
            spans,
            condition: self.cond(&step.condition, &push_pointer(ptr, "if"))?,
            vars: self.map(&step.vars, &push_pointer(ptr, "vars"))?,
            fail_if: fail_if.and_then(|(cond, message)| cond.map(|c| (c, message))),
            for_each: match &step.for_each {
                None => None,
                Some(items) => Some(ForEach {
                    items: self.expr(items, &push_pointer(ptr, "for_each"))?,
                    name: step.item.clone().unwrap_or_else(|| "item".into()),
                    max: step.max_items,
                    until: step
                        .until
                        .as_ref()
                        .map(|u| self.expr(u, &push_pointer(ptr, "until")))
                        .transpose()?,
                }),
            },
            method: req.method.clone(),
            path: self.text(&req.path, &push_pointer(&rptr, "path"))?,
            query: self.map(&req.query, &push_pointer(&rptr, "query"))?,
            headers: self.map(&req.headers, &push_pointer(&rptr, "headers"))?,
            body,
            expect_status: step.expect.status.clone(),
            asserts,
            save,
            stop_if: self.cond(&step.stop_if, &push_pointer(ptr, "stop_if"))?,
            timeout: step
                .timeout
                .or(flow.connection.timeout)
                .unwrap_or(DEFAULT_TIMEOUT),
            retry: RetryPolicy::from_settings(flow.connection.retry.as_ref(), step.retry.as_ref()),
            joined_url: std::sync::OnceLock::new(),
            in_doubt: self.in_doubt(step, ptr, flow)?,
        })
    }

    /// The step's `in_doubt` policy; unset, `resend` for methods HTTP calls idempotent and
    /// `fail` for the others (a POST sent twice may do its work twice).
    fn in_doubt(&mut self, step: &model::Step, ptr: &str, flow: &Flow) -> Result<InDoubtSpec, RenderError> {
        let Some(setting) = &step.in_doubt else {
            let idempotent = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].iter().any(|m| {
                step.request
                    .as_ref()
                    .is_some_and(|r| r.method.eq_ignore_ascii_case(m))
            });
            let policy = if idempotent {
                DoubtPolicy::Resend
            } else {
                DoubtPolicy::Fail
            };
            return Ok(InDoubtSpec {
                policy,
                compensate: None,
                already_done: Vec::new(),
                already_done_if: None,
            });
        };
        let (compensate, already_done, already_done_if) = match setting {
            InDoubt::Policy(_) => (None, Vec::new(), None),
            InDoubt::Settings(s) => {
                let compensate = match &s.compensate {
                    Some(c) => {
                        let undo = model::Step {
                            id: format!("{}.compensate", step.id),
                            request: Some(c.request.clone()),
                            expect: c.expect.clone(),
                            in_doubt: Some(InDoubt::Policy(DoubtPolicy::Fail)),
                            ..step_without_request(step)
                        };
                        let at = format!("{ptr}/in_doubt/compensate");
                        Some(Box::new(self.step(&undo, &at, flow)?))
                    }
                    None => None,
                };
                let when = s
                    .already_done_if
                    .as_ref()
                    .map(|e| self.expr(e, &format!("{ptr}/in_doubt/already_done_if")))
                    .transpose()?;
                (compensate, s.already_done.clone(), when)
            }
        };
        Ok(InDoubtSpec {
            policy: setting.policy(),
            compensate,
            already_done,
            already_done_if,
        })
    }
}

/// A step's settings for its compensating request: its timeout and retry, nothing it sends,
/// checks or keeps.
fn step_without_request(step: &model::Step) -> model::Step {
    model::Step {
        description: None,
        condition: None,
        vars: Default::default(),
        fail_if: None,
        for_each: None,
        item: None,
        max_items: None,
        until: None,
        save: Default::default(),
        stop_if: None,
        ..step.clone()
    }
}

/// Records the span of every value under `value` (at `base` + `pointer` in the document).
fn field_spans(doc: &Document, base: &str, value: &Value, pointer: &str, out: &mut Vec<(String, Span)>) {
    out.push((pointer.to_string(), doc.value_span(&format!("{base}{pointer}"))));
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                field_spans(doc, base, v, &push_pointer(pointer, k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                field_spans(doc, base, v, &push_pointer(pointer, &i.to_string()), out);
            }
        }
        _ => {}
    }
}

impl StepSpans {
    /// The span of the body field at `pointer`, or of its nearest written ancestor (a field a
    /// template filled in whole has none of its own).
    pub fn body_field(&self, pointer: &str) -> Span {
        let mut p = pointer;
        loop {
            if let Some((_, span)) = self.body_fields.iter().find(|(f, _)| f == p) {
                return *span;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.body,
            }
        }
    }
}

/// Compiles a flow that passed `check`; `file` names it in errors. Its templates are compiled
/// here; [`compile_checked`] reuses those `check` compiled.
pub fn compile(
    flow: Flow,
    doc: &Document,
    file: &str,
    runtime: World,
    base_dir: std::path::PathBuf,
) -> Result<CompiledFlow, RenderError> {
    compile_with(flow, doc, Templates::unbound(), file, runtime, base_dir)
}

/// Compiles what [`super::load_checked`] gave: the templates `check` compiled are bound to
/// `runtime` and found again, not compiled twice.
pub fn compile_checked(
    checked: super::Checked,
    file: &str,
    runtime: World,
    base_dir: std::path::PathBuf,
) -> Result<CompiledFlow, RenderError> {
    compile_with(
        checked.flow,
        &checked.document,
        checked.templates,
        file,
        runtime,
        base_dir,
    )
}

fn compile_with(
    flow: Flow,
    doc: &Document,
    mut templates: Templates,
    file: &str,
    runtime: World,
    base_dir: std::path::PathBuf,
) -> Result<CompiledFlow, RenderError> {
    templates.bind(&runtime);
    templates.set_file(file.into());
    let mut c = Compiler {
        doc,
        templates,
        flow_file: file.into(),
    };
    let base_url = c.text(&flow.connection.base_url, "/connection/base_url")?;
    let headers = c.map(&flow.connection.headers, "/connection/headers")?;
    let auth = match &flow.connection.auth {
        None => AuthSpec::None,
        Some(model::AuthSettings::Bearer(t)) => AuthSpec::Bearer(c.text(t, "/connection/auth/bearer")?),
        Some(model::AuthSettings::JwtBearer(j)) => {
            let p = "/connection/auth/jwt_bearer";
            AuthSpec::Jwt(Box::new(JwtSpec {
                token_url: c.text(&j.token_url, &push_pointer(p, "token_url"))?,
                client_id: c.text(&j.client_id, &push_pointer(p, "client_id"))?,
                username: c.text(&j.username, &push_pointer(p, "username"))?,
                audience: c.text(&j.audience, &push_pointer(p, "audience"))?,
                private_key: c.text(&j.private_key, &push_pointer(p, "private_key"))?,
                lifetime: j.lifetime.unwrap_or(Duration::from_secs(180)),
            }))
        }
    };
    let vars = c.map(&flow.vars, "/vars")?;
    let (mut frames, mut steps, mut finally) = (Vec::new(), Vec::new(), Vec::new());
    c.steps(&flow.steps, "/steps", &flow, None, &mut frames, &mut steps)?;
    c.steps(&flow.finally, "/finally", &flow, None, &mut frames, &mut finally)?;
    let outputs = flow
        .outputs
        .iter()
        .map(|(k, v)| Ok((k.clone(), c.expr(v, &push_pointer("/outputs", k))?)))
        .collect::<Result<_, RenderError>>()?;
    let env_names = c.templates.env_names();
    Ok(CompiledFlow {
        flow,
        templates: c.templates,
        world: runtime,
        base_url,
        headers,
        auth,
        vars,
        steps,
        finally,
        frames,
        outputs,
        base_dir,
        files: doc.files.clone(),
        env_names,
    })
}
