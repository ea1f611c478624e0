//! The step loop.

use super::durable::{DoneStatus, DoneStep, Doubt, Resume, RunLog};
use super::outcome::{
    Attempt, FailureKind, Observer, Outcome, Phase, RunReport, StepError, StepRecord, StepStatus,
};
use super::request;
use crate::base::source::Span;
use crate::expr::context::{Answer, Context, Flags, Frame, Scope};
use crate::expr::templates::{RenderError, Tree};
use crate::flow::compile::{AuthSpec, CompiledFlow, CompiledStep, Cond, ForEach};
use crate::flow::model::{DoubtPolicy, StatusSet};
use crate::flow::retry::{api_code, retry_after};
use crate::http::auth::{Auth, JwtBearer, JwtSettings};
use crate::http::{HttpRequest, HttpResponse, Transport};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a run could not start; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The auth settings could not be used (a bad private key, ...).
    Auth(String),
    /// An auth setting's template could not be rendered.
    Render(RenderError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Auth(e) => write!(f, "auth: {e}"),
            RunError::Render(e) => write!(f, "{e}"),
        }
    }
}

/// Runs one compiled flow any number of times, sharing the transport and the auth provider
/// (and so the token cache) between runs.
pub struct Engine {
    flow: Arc<CompiledFlow>,
    transport: Arc<dyn Transport>,
    auth: Auth,
    /// The most items a `for_each` without its own `max_items` may give.
    max_items: usize,
}

/// The most items a `for_each` may give when neither the step nor the run says.
pub const DEFAULT_MAX_ITEMS: usize = 100;

/// The API's code for an unknown or expired token.
const BAD_TOKEN_CODE: i64 = 10004;

impl Engine {
    /// Prepares the engine: auth settings are rendered here, once, from the environment.
    pub fn new(flow: Arc<CompiledFlow>, transport: Arc<dyn Transport>) -> Result<Self, RunError> {
        let ctx = Context::new(json!({ "inputs": {}, "steps": {} }));
        let render = |t| {
            flow.templates
                .render_tree(t, &ctx)
                .map_err(RunError::Render)
                .map(|v| value_text(&v))
        };
        let auth = match &flow.auth {
            AuthSpec::None => Auth::None,
            AuthSpec::Bearer(t) => {
                let token = render(t)?;
                flow.world.secrets.add(&token);
                Auth::Bearer(token)
            }
            AuthSpec::Jwt(jwt) => {
                let settings = JwtSettings {
                    token_url: render(&jwt.token_url)?,
                    client_id: render(&jwt.client_id)?,
                    username: render(&jwt.username)?,
                    audience: render(&jwt.audience)?,
                    private_key: render(&jwt.private_key)?,
                    lifetime: jwt.lifetime,
                };
                let timeout = flow
                    .flow
                    .connection
                    .timeout
                    .unwrap_or(crate::flow::compile::DEFAULT_TIMEOUT);
                let jwt = JwtBearer::new(settings, transport.clone(), flow.world.secrets.clone(), timeout)
                    .map_err(|e| RunError::Auth(e.to_string()))?;
                Auth::Jwt(Arc::new(jwt))
            }
        };
        Ok(Engine {
            flow,
            transport,
            auth,
            max_items: DEFAULT_MAX_ITEMS,
        })
    }

    /// Sets the most items a `for_each` without its own `max_items` may give.
    pub fn with_max_items(mut self, max: usize) -> Self {
        self.max_items = max;
        self
    }

    /// The same engine (flow, auth, token cache) with the transport's [`Transport::fork`], for
    /// another worker thread.
    pub fn fork(&self) -> Engine {
        Engine {
            flow: self.flow.clone(),
            transport: self.transport.fork().unwrap_or_else(|| self.transport.clone()),
            auth: self.auth.clone(),
            max_items: self.max_items,
        }
    }

    /// `scheme://host:port` the flow's requests go to with `inputs` (its base URL rendered as
    /// a run renders it); `None` when it cannot be rendered.
    pub fn origin(&self, inputs: &Map<String, Value>) -> Option<String> {
        let inputs = Scope::new(Value::Object(inputs.clone()));
        let (vars, steps) = (Scope::default(), BTreeMap::new());
        let ctx = Context::from_parts(&inputs, &vars, &steps, None);
        let url = self.flow.templates.render_tree(&self.flow.base_url, &ctx).ok()?;
        super::durable::origin(&value_text(&url))
    }

    /// The compiled flow this engine runs.
    pub fn flow(&self) -> &CompiledFlow {
        &self.flow
    }

    /// Runs the flow with `inputs` (already validated, defaults applied).
    pub async fn run(&self, inputs: Map<String, Value>, observer: &dyn Observer) -> RunReport {
        self.run_until(inputs, observer, None).await
    }

    /// Like [`Engine::run`], but when `stop` becomes true no further step of `steps` starts:
    /// the run fails at the next step, and its `finally` steps still run to clean up.
    pub async fn run_until(
        &self,
        inputs: Map<String, Value>,
        observer: &dyn Observer,
        stop: Option<&std::sync::atomic::AtomicBool>,
    ) -> RunReport {
        self.run_with(inputs, observer, stop, None, None, None).await
    }

    /// Like [`Engine::run_until`], telling `log` what happens as it goes (each attempt before
    /// it is sent). With `resume`, goes on from a run the journal kept: the steps that ended are
    /// restored with their values and never sent again, and the step in doubt follows its
    /// `in_doubt` policy.
    pub async fn run_durable(
        &self,
        inputs: Map<String, Value>,
        observer: &dyn Observer,
        stop: Option<&std::sync::atomic::AtomicBool>,
        log: &dyn RunLog,
        resume: Option<Resume>,
    ) -> RunReport {
        self.run_with(inputs, observer, stop, Some(log), resume, None)
            .await
    }

    /// A run for an event published at `since`: the flow's `deadline` counts from then, not
    /// from when the run starts. Told to `log` when there is one; with `resume`, goes on from
    /// where the journal left it (see [`Engine::run_durable`]).
    pub async fn run_since(
        &self,
        inputs: Map<String, Value>,
        observer: &dyn Observer,
        stop: Option<&std::sync::atomic::AtomicBool>,
        log: Option<&dyn RunLog>,
        resume: Option<Resume>,
        since: Instant,
    ) -> RunReport {
        self.run_with(inputs, observer, stop, log, resume, Some(since))
            .await
    }

    async fn run_with(
        &self,
        inputs: Map<String, Value>,
        observer: &dyn Observer,
        stop: Option<&std::sync::atomic::AtomicBool>,
        log: Option<&dyn RunLog>,
        resume: Option<Resume>,
        since: Option<Instant>,
    ) -> RunReport {
        let started = Instant::now();
        let resume = resume.unwrap_or_default();
        let deadline = self
            .flow
            .flow
            .deadline
            .and_then(|d| since.unwrap_or(started).checked_add(d));
        let mut run = Run {
            engine: self,
            observer,
            stop,
            deadline,
            inputs: Scope::new(Value::Object(inputs)),
            vars: Scope::default(),
            steps: initial_steps(&self.flow),
            records: Vec::new(),
            outcome: Outcome::Passed,
            base_url: String::new(),
            log,
            phase: Phase::Steps,
            done: resume.done,
            doubt: resume.in_doubt,
            frames: self.flow.frames.iter().map(|_| FrameState::Waiting).collect(),
            frame: None,
        };
        run.begin(resume.vars);
        run.main_steps(resume.cancel).await;
        run.finally_steps().await;
        let outputs = run.outputs();
        RunReport {
            flow: self.flow.flow.name.clone(),
            vars: match run.vars.into_json() {
                Value::Object(vars) => vars,
                _ => Map::new(),
            },
            outcome: run.outcome,
            steps: run.records,
            outputs,
            duration: started.elapsed(),
            run_id: None,
        }
    }
}

/// The record of item `i` of a `for_each` step: `<id>[<i>]`.
fn item_record(step: &CompiledStep, i: usize, ended: &Ended, started: Instant) -> StepRecord {
    StepRecord {
        id: format!("{}[{i}]", step.id),
        phase: Phase::Steps,
        status: ended.status.clone(),
        attempts: ended.attempts.clone(),
        saved: ended.saved.clone(),
        vars: Map::new(),
        duration: started.elapsed(),
        resumed: false,
    }
}

/// `a list`, `a string`, ...: a JSON value's kind, in words.
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "none",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The record of a step that ended without being run.
fn unrun(step: &CompiledStep, phase: Phase, status: StepStatus) -> StepRecord {
    StepRecord {
        id: step.id.clone(),
        phase,
        status,
        attempts: Vec::new(),
        saved: Map::new(),
        vars: Map::new(),
        duration: Duration::ZERO,
        resumed: false,
    }
}

/// A duration as people write it: `27h46m40s`, `5s`, `250ms`.
pub fn short(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 || (unit == "s" && out.is_empty()) {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Every step starts known, not succeeded and not skipped, so `finally` may test any of them.
/// Those values are built once and shared by every step of every run.
fn initial_steps(flow: &CompiledFlow) -> BTreeMap<String, Scope> {
    static NOT_RUN: std::sync::LazyLock<Arc<Value>> = std::sync::LazyLock::new(|| {
        let mut slot = Map::with_capacity(4);
        for flag in ["succeeded", "skipped", "failed"] {
            slot.insert(flag.into(), Value::Bool(false));
        }
        slot.insert("error".into(), Value::Null);
        Arc::new(Value::Object(slot))
    });
    flow.steps
        .iter()
        .chain(&flow.finally)
        .map(|s| (s.id.clone(), Scope::shared(NOT_RUN.clone())))
        .collect()
}

struct Run<'a> {
    engine: &'a Engine,
    observer: &'a dyn Observer,
    /// Set when the run is asked to stop (Ctrl-C, a termination signal, `--force`).
    stop: Option<&'a std::sync::atomic::AtomicBool>,
    deadline: Option<Instant>,
    /// The inputs and each step's values, as expressions read them.
    inputs: Scope,
    /// The flow's `vars`, once rendered.
    vars: Scope,
    steps: BTreeMap<String, Scope>,
    records: Vec<StepRecord>,
    outcome: Outcome,
    base_url: String,
    /// Told of every attempt before it is sent, and of every step that ends.
    log: Option<&'a dyn RunLog>,
    /// The phase of the step running now.
    phase: Phase,
    /// Steps that ended before a crash (a resumed run).
    done: Vec<DoneStep>,
    /// The step sent before a crash with no answer recorded.
    doubt: Option<Doubt>,
    /// Each call of a steps file ([`CompiledFlow::frames`]), as far as the run has got.
    frames: Vec<FrameState>,
    /// The call whose steps file holds the step running now.
    frame: Option<usize>,
}

/// Where a call of a steps file stands in a run.
enum FrameState {
    /// None of its steps has run yet.
    Waiting,
    /// Started: its arguments, read as `params`.
    Started(Scope),
    /// Its `if` was false: every step of it is skipped.
    Skipped,
    /// Its `if` or arguments failed: the next of its steps fails with this.
    Failed(Box<StepError>),
    /// A step of it failed to start it (or its caller failed to start): the rest are not run.
    Abandoned,
}

/// Whether a step of a call runs.
enum Entered {
    /// The call started (or the step is the flow's own): it runs.
    Yes,
    /// The call's `if` was false: the step is skipped.
    Skipped,
    /// The call could not start: the step fails with this.
    Failed(Box<StepError>),
    /// An earlier step of the call already failed for it: the step is not run.
    NotRun,
}

/// How a step ended, before it is recorded.
struct Ended {
    /// A `for_each` step's items, each recorded as `<id>[<n>]` before the step itself.
    items: Vec<StepRecord>,
    status: StepStatus,
    attempts: Vec<Attempt>,
    saved: Map<String, Value>,
    /// The step's own `vars`, as rendered.
    vars: Map<String, Value>,
    /// The last response as expressions read it: `{status, headers, body}`.
    response: Option<Answer>,
}

impl Ended {
    fn new(
        status: StepStatus,
        attempts: Vec<Attempt>,
        saved: Map<String, Value>,
        response: Option<Answer>,
    ) -> Self {
        Ended {
            items: Vec::new(),
            status,
            attempts,
            saved,
            vars: Map::new(),
            response,
        }
    }

    /// A failure; the last response, if any, stays readable as `steps.<id>.status/body`.
    fn failed(error: StepError, attempts: Vec<Attempt>) -> Self {
        let response = attempts.last().and_then(|a| a.response.as_ref()).map(answer);
        Ended::new(StepStatus::Failed(error), attempts, Map::new(), response)
    }
}

impl Run<'_> {
    fn ctx<'s>(&'s self, response: Option<&'s Scope>) -> Context<'s> {
        self.ctx_with(&self.vars, response)
    }

    fn stopping(&self) -> bool {
        self.stop
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Waits `wait`, or less if the run is asked to stop meanwhile: `false` then.
    async fn pause(&self, wait: Duration) -> bool {
        const SLICE: Duration = Duration::from_millis(50);
        let until = Instant::now().checked_add(wait);
        loop {
            if self.stopping() {
                return false;
            }
            let left = until.map_or(SLICE, |u| u.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return true;
            }
            tokio::time::sleep(left.min(SLICE)).await;
        }
    }

    fn ctx_with<'s>(&'s self, vars: &'s Scope, response: Option<&'s Scope>) -> Context<'s> {
        self.ctx_in(self.frame, vars, response)
    }

    /// The scope seen from inside the call `frame` (`None`: the flow's own steps).
    fn ctx_in<'s>(
        &'s self,
        frame: Option<usize>,
        vars: &'s Scope,
        response: Option<&'s Scope>,
    ) -> Context<'s> {
        let frame = frame.and_then(|f| match &self.frames[f] {
            FrameState::Started(params) => Some(Frame {
                prefix: &self.engine.flow.frames[f].prefix,
                params,
            }),
            _ => None,
        });
        Context::from_parts(&self.inputs, vars, &self.steps, response).in_frame(frame)
    }

    /// Starts the call `frame` and the calls it is in, if not started yet: its `if`, then its
    /// arguments, rendered in the caller's scope and checked against the parameters. `false`
    /// when the call is skipped.
    fn enter(&mut self, frame: Option<usize>) -> Entered {
        let Some(f) = frame else { return Entered::Yes };
        match &self.frames[f] {
            FrameState::Started(_) => return Entered::Yes,
            FrameState::Skipped => return Entered::Skipped,
            FrameState::Abandoned => return Entered::NotRun,
            FrameState::Failed(e) => {
                // The first step that meets the failure reports it; the rest are not run.
                let e = e.clone();
                self.frames[f] = FrameState::Abandoned;
                return Entered::Failed(e);
            }
            FrameState::Waiting => {}
        }
        let flow = self.engine.flow.clone();
        let spec = &flow.frames[f];
        self.frames[f] = match self.enter(spec.parent) {
            Entered::Yes => self.start(spec),
            Entered::Skipped => FrameState::Skipped,
            Entered::Failed(e) => FrameState::Failed(e),
            Entered::NotRun => FrameState::Abandoned,
        };
        self.enter(frame)
    }

    /// The state a call starts in, its `if` and arguments read from its caller's scope.
    fn start(&self, spec: &crate::flow::compile::Frame) -> FrameState {
        let flow = &self.engine.flow;
        let ctx = self.ctx_in(spec.parent, &self.vars, None);
        if let Some(cond) = spec.condition {
            match self.truth(cond, &ctx) {
                Ok(v) => {
                    self.observer
                        .condition_evaluated(&spec.id, self.cond_text(cond), v);
                    if !v {
                        return FrameState::Skipped;
                    }
                }
                Err(e) => return FrameState::Failed(Box::new(render(e, spec.condition_span))),
            }
        }
        let mut args = Map::new();
        for (name, tree) in &spec.args {
            match flow.templates.render_tree(tree, &ctx) {
                Ok(v) => {
                    args.insert(name.clone(), v);
                }
                Err(e) => return FrameState::Failed(Box::new(render(e, spec.span))),
            }
        }
        match spec.params.resolve(args, &flow.world.secrets) {
            Ok(params) => FrameState::Started(Scope::new(Value::Object(params))),
            Err(message) => {
                let kind = FailureKind::Argument {
                    message: format!("call `{}`: {message}", spec.id),
                };
                FrameState::Failed(Box::new(StepError::new(kind, spec.span)))
            }
        }
    }

    /// A condition's text, as the observer is told it.
    fn cond_text(&self, cond: Cond) -> &str {
        match cond {
            Cond::Always(true) => "true",
            Cond::Always(false) => "false",
            Cond::Expr(id) => self.engine.flow.templates.source(id),
        }
    }

    /// Renders `specs` in order into `vars` (each reads the ones before it) and `own`; on
    /// failure, the name of the var that failed.
    fn render_vars(
        &self,
        specs: &[(String, Tree)],
        vars: &mut Map<String, Value>,
        own: &mut Map<String, Value>,
    ) -> Result<(), (String, RenderError)> {
        for (name, tree) in specs {
            let scope = Scope::new(Value::Object(vars.clone()));
            let value = self
                .engine
                .flow
                .templates
                .render_tree(tree, &self.ctx_with(&scope, None))
                .map_err(|e| (name.clone(), e))?;
            vars.insert(name.clone(), value.clone());
            own.insert(name.clone(), value);
        }
        Ok(())
    }

    fn not_run(&mut self, step: &CompiledStep, phase: Phase) {
        let record = unrun(step, phase, StepStatus::NotRun);
        if let Some(log) = self.log {
            // Written with the next durable write: a step not run follows from an end already
            // written, so there is nothing to wait for.
            drop(log.step_done(&record, &Value::Null));
        }
        self.observer.step_finished(&record);
        self.records.push(record);
    }

    /// Records `step` as failed with `kind` without running it.
    fn fail_unrun(&mut self, step: &CompiledStep, kind: FailureKind) {
        let error = StepError::new(kind, step.spans.step);
        let slot =
            json!({ "succeeded": false, "skipped": false, "failed": true, "error": error.to_string() });
        let status = StepStatus::Failed(error);
        self.settle(&step.id, &status);
        let record = unrun(step, Phase::Steps, status);
        if let Some(log) = self.log {
            drop(log.step_done(&record, &slot));
        }
        self.set_step(&step.id, Scope::new(slot));
        self.observer.step_finished(&record);
        self.records.push(record);
    }

    /// Sets `steps.<id>`. Every step has its entry from the start (`initial_steps`), so its id
    /// is not copied again for the key.
    fn set_step(&mut self, id: &str, scope: Scope) {
        match self.steps.get_mut(id) {
            Some(slot) => *slot = scope,
            None => {
                self.steps.insert(id.to_string(), scope);
            }
        }
    }

    fn take_done(&mut self, id: &str) -> Option<DoneStep> {
        let i = self.done.iter().position(|d| d.id == id)?;
        Some(self.done.remove(i))
    }

    /// Puts back a step that ended before the crash: its values, its effect on the outcome,
    /// and its record (marked resumed). Nothing is sent.
    fn restore(&mut self, step: &CompiledStep, done: DoneStep) {
        let status = match done.status {
            DoneStatus::Ok => StepStatus::Ok,
            DoneStatus::Skipped => StepStatus::Skipped,
            DoneStatus::Stopped => StepStatus::Stopped,
            DoneStatus::NotRun => StepStatus::NotRun,
            DoneStatus::Failed(message) => {
                StepStatus::Failed(StepError::new(FailureKind::Earlier { message }, step.spans.step))
            }
        };
        if !done.slot.is_null() {
            self.set_step(&step.id, Scope::new(done.slot));
        }
        self.settle(&step.id, &status);
        let record = StepRecord {
            saved: done.saved,
            resumed: true,
            ..unrun(step, done.phase, status)
        };
        self.observer.step_finished(&record);
        self.records.push(record);
    }

    /// What a step's end does to the run's outcome: the first failure fails it, a stop ends it.
    fn settle(&mut self, id: &str, status: &StepStatus) {
        match status {
            StepStatus::Failed(error) if !matches!(self.outcome, Outcome::Failed { .. }) => {
                self.outcome = Outcome::Failed {
                    step: id.to_string(),
                    error: error.to_string(),
                };
            }
            StepStatus::Stopped if self.outcome == Outcome::Passed => {
                self.outcome = Outcome::Stopped { step: id.to_string() };
            }
            _ => {}
        }
    }

    /// What a run reads before its first step: the base URL, then the flow's `vars` (the ones
    /// `kept` from before a crash stay as they were).
    fn begin(&mut self, kept: Map<String, Value>) {
        let flow = &self.engine.flow;
        match flow.templates.render_tree(&flow.base_url, &self.ctx(None)) {
            Ok(url) => self.base_url = value_text(&url),
            Err(e) => {
                self.outcome = Outcome::Failed {
                    step: "connection".into(),
                    error: e.to_string(),
                };
            }
        }
        if self.outcome != Outcome::Passed || flow.vars.is_empty() {
            return;
        }
        let mut vars = Map::new();
        let rendered = self.render_vars(&flow.vars, &mut vars, &mut Map::new());
        // The ids a run made for itself stay the same when it goes on; a var the journal
        // holds masked (it carried a secret) is the one rendered again now.
        let masked = |v: &Value| v.to_string().contains(crate::base::secrets::MASK);
        for (name, value) in kept {
            if !masked(&value) {
                vars.insert(name, value);
            }
        }
        if let Err((name, e)) = rendered {
            self.outcome = Outcome::Failed {
                step: format!("vars.{name}"),
                error: e.to_string(),
            };
        }
        if let Some(log) = self.log {
            log.vars(&vars);
        }
        self.vars = Scope::new(Value::Object(vars));
    }

    /// The flow's `steps`, in order: restored when they ended before a crash, not run once
    /// the run failed, given up when the run is `cancel`led, else run.
    async fn main_steps(&mut self, cancel: bool) {
        // The engine outlives the run: its steps are read while the run changes.
        let flow = &self.engine.flow;
        for step in &flow.steps {
            if let Some(done) = self.take_done(&step.id) {
                self.restore(step, done);
                continue;
            }
            if self.outcome == Outcome::Passed && cancel {
                self.give_up(step).await;
                continue;
            }
            if self.outcome == Outcome::Passed && self.stopping() {
                let error = "stopped before this step (interrupted)".to_string();
                self.outcome = Outcome::Failed {
                    step: step.id.clone(),
                    error,
                };
            }
            if self.outcome != Outcome::Passed {
                self.not_run(step, Phase::Steps);
                continue;
            }
            self.step(step, Phase::Steps).await;
        }
        // Interrupted during the last step: it finished, but the run was still asked to stop,
        // and a stopped run is not a passed one.
        let ended_at = match &self.outcome {
            Outcome::Passed => flow.steps.last().map(|s| s.id.clone()),
            Outcome::Stopped { step } => Some(step.clone()),
            Outcome::Failed { .. } => None,
        };
        if self.stopping()
            && let Some(step) = ended_at
        {
            self.outcome = Outcome::Failed {
                step,
                error: "interrupted during this step (it finished; no step was left to skip)".into(),
            };
        }
    }

    /// A cancelled run's step: the step the run was given up at fails (so `finally` sees
    /// `failed` and cleans up what the run made); the rest are not run. A step in doubt whose
    /// policy is to compensate is compensated first: its first attempt may have taken effect.
    async fn give_up(&mut self, step: &CompiledStep) {
        let mut message = "cancelled (flowrun runs cancel): not run".to_string();
        if self.doubt.as_ref().is_some_and(|d| d.step == step.id)
            && let Some(undo) = &step.in_doubt.compensate
        {
            self.phase = Phase::Steps;
            // The compensating request of a called step reads the call's `params`.
            self.frame = step.frame;
            let _ = self.enter(step.frame);
            let undone = self.exchange(undo, &self.vars, None).await;
            message = match &undone.status {
                StepStatus::Failed(e) => format!("{message}; its compensating request failed: {e}"),
                _ => format!("{message}; its compensating request was sent"),
            };
        }
        self.fail_unrun(step, FailureKind::Interrupted { message });
    }

    /// The flow's `finally` steps: each runs whatever happened before (restored when it ended
    /// before a crash).
    async fn finally_steps(&mut self) {
        let flow = &self.engine.flow;
        for step in &flow.finally {
            match self.take_done(&step.id) {
                Some(done) => self.restore(step, done),
                None => self.step(step, Phase::Finally).await,
            }
        }
    }

    /// The flow's `outputs`, rendered unless the run failed; one that cannot be rendered fails
    /// the run.
    fn outputs(&mut self) -> Map<String, Value> {
        if matches!(self.outcome, Outcome::Failed { .. }) {
            return Map::new();
        }
        let flow = &self.engine.flow;
        let mut outputs = Map::with_capacity(flow.outputs.len());
        let ctx = self.ctx(None);
        let mut failed = None;
        for (name, id) in &flow.outputs {
            match flow.templates.render(*id, &ctx) {
                Ok(v) => {
                    outputs.insert(name.clone(), v);
                }
                Err(e) => {
                    failed = Some(Outcome::Failed {
                        step: format!("outputs.{name}"),
                        error: e.to_string(),
                    });
                    break;
                }
            }
        }
        drop(ctx);
        if let Some(outcome) = failed {
            self.outcome = outcome;
        }
        outputs
    }

    async fn step(&mut self, step: &CompiledStep, phase: Phase) {
        let started = Instant::now();
        self.phase = phase;
        let doubt = self.doubt.take_if(|d| d.step == step.id);
        self.frame = step.frame;
        let mut ended = match self.enter(step.frame) {
            Entered::Yes => self.execute(step, doubt.as_ref()).await,
            Entered::Skipped => Ended::new(StepStatus::Skipped, Vec::new(), Map::new(), None),
            Entered::Failed(error) => Ended::failed(*error, Vec::new()),
            Entered::NotRun => Ended::new(StepStatus::NotRun, Vec::new(), Map::new(), None),
        };
        self.frame = None;
        for item in std::mem::take(&mut ended.items) {
            self.observer.step_finished(&item);
            self.records.push(item);
        }
        let succeeded = matches!(ended.status, StepStatus::Ok | StepStatus::Stopped);
        let flags = Flags {
            succeeded,
            skipped: ended.status == StepStatus::Skipped,
            error: match &ended.status {
                StepStatus::Failed(e) => Value::String(e.to_string()),
                _ => Value::Null,
            },
        };
        let saved = match succeeded {
            true => ended.saved.clone(),
            false => Map::new(),
        };
        let mut slot = Scope::step(ended.response, saved, flags);
        // The journal writes the whole object: then it is made here, as the scope's own values,
        // rather than kept beside them and copied into a whole for the journal.
        if self.log.is_some() {
            slot = Scope::new(slot.into_json());
        }
        self.settle(&step.id, &ended.status);
        let record = StepRecord {
            id: step.id.clone(),
            phase,
            status: ended.status,
            attempts: ended.attempts,
            saved: ended.saved,
            vars: ended.vars,
            duration: started.elapsed(),
            resumed: false,
        };
        if let Some(log) = self.log {
            // A step whose end is written is never sent again; one whose end is lost (a crash
            // before the next write, a failed write) is in doubt, and its policy settles it.
            let _ = log.step_done(&record, slot.json()).await;
        }
        self.set_step(&step.id, slot);
        self.observer.step_finished(&record);
        self.records.push(record);
    }

    fn truth(&self, cond: Cond, ctx: &Context) -> Result<bool, RenderError> {
        match cond {
            Cond::Always(b) => Ok(b),
            Cond::Expr(id) => self.engine.flow.templates.truth(id, ctx),
        }
    }

    /// Runs one step: its `if`, its own `vars`, then the exchange.
    async fn execute(&self, step: &CompiledStep, doubt: Option<&Doubt>) -> Ended {
        if let Some(cond) = step.condition {
            let value = self.truth(cond, &self.ctx(None));
            if let Ok(v) = value {
                self.observer
                    .condition_evaluated(&step.id, self.cond_text(cond), v);
            }
            match value {
                Ok(false) => return Ended::new(StepStatus::Skipped, Vec::new(), Map::new(), None),
                Ok(true) => {}
                Err(e) => return Ended::failed(render(e, step.spans.condition), Vec::new()),
            }
        }
        if step.vars.is_empty() && step.for_each.is_none() {
            return self.exchange(step, &self.vars, doubt).await;
        }
        let mut vars = self.vars.json().as_object().cloned().unwrap_or_default();
        let mut own = Map::new();
        if let Err((_, e)) = self.render_vars(&step.vars, &mut vars, &mut own) {
            return Ended::failed(render(e, step.spans.vars), Vec::new());
        }
        let mut ended = match &step.for_each {
            Some(each) => self.each(step, each, vars, doubt).await,
            None => self.exchange(step, &Scope::new(Value::Object(vars)), doubt).await,
        };
        ended.vars = own;
        ended
    }

    /// A `for_each` step: the request once per item (`vars.<as>`), each with its own
    /// `RequestId`, retries and record, in order. Each saved value becomes the list of the
    /// items' values (`none` for an item that failed). Without `until`, the first item that fails fails the step; with it, a
    /// failed item is passed over, the first item that meets it ends the loop, and the step
    /// fails only when none does.
    async fn each(
        &self,
        step: &CompiledStep,
        each: &ForEach,
        vars: Map<String, Value>,
        doubt: Option<&Doubt>,
    ) -> Ended {
        let flow = &self.engine.flow;
        let span = step.spans.for_each;
        let items = match flow.templates.render(
            each.items,
            &self.ctx_with(&Scope::new(Value::Object(vars.clone())), None),
        ) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let kind = FailureKind::Render {
                    message: format!("`for_each` gives {}, not a list", describe(&other)),
                };
                return Ended::failed(StepError::new(kind, span), Vec::new());
            }
            Err(e) => return Ended::failed(render(e, span), Vec::new()),
        };
        let max = each.max.unwrap_or(self.engine.max_items);
        if items.len() > max {
            let kind = FailureKind::Render {
                message: format!(
                    "`for_each` gives {} items, more than the {max} allowed (`max_items`, or `run --max-items`); nothing was sent",
                    items.len()
                ),
            };
            return Ended::failed(StepError::new(kind, span), Vec::new());
        }
        let mut records = Vec::new();
        let mut saved: Map<String, Value> = step
            .save
            .iter()
            .map(|(n, _)| (n.clone(), Value::Array(Vec::new())))
            .collect();
        let mut last = Ended::new(StepStatus::Ok, Vec::new(), Map::new(), None);
        let mut met = false;
        // A crash in the middle of the loop leaves the journal unable to say which item was
        // sent last: a person decides, as with `in_doubt: fail`.
        if let Some(doubt) = doubt {
            let kind = FailureKind::InDoubt {
                message: format!(
                    "an item of this for_each step was sent before the run stopped (attempt {}) and no answer was recorded; which items took effect is not known: check, then resume with the step's inputs adjusted or cancel the run",
                    doubt.attempts
                ),
            };
            return Ended::failed(StepError::new(kind, step.spans.for_each), Vec::new());
        }
        let mut sent = 0u32;
        for (i, item) in items.into_iter().enumerate() {
            if self.stopping() {
                break;
            }
            let started = Instant::now();
            let mut scope = vars.clone();
            scope.insert(each.name.clone(), item);
            let scope = Scope::new(Value::Object(scope));
            let ended = self.exchange_from(step, &scope, None, sent).await;
            sent += ended.attempts.len() as u32;
            if let Some(until) = each.until
                && matches!(ended.status, StepStatus::Ok | StepStatus::Stopped)
                && let Some(response) = &ended.response
            {
                let resp = Scope::answer(response.clone());
                match flow.templates.truth(until, &self.ctx_with(&scope, Some(&resp))) {
                    Ok(b) => met = b,
                    Err(e) => {
                        records.push(item_record(step, i, &ended, started));
                        return Ended {
                            items: records,
                            ..Ended::failed(render(e, step.spans.until), Vec::new())
                        };
                    }
                }
            }
            records.push(item_record(step, i, &ended, started));
            // One entry per item sent, `none` for an item that failed: the lists line up
            // with the items.
            for (name, list) in &mut saved {
                if let Value::Array(list) = list {
                    list.push(ended.saved.get(name).cloned().unwrap_or(Value::Null));
                }
            }
            let failed = matches!(ended.status, StepStatus::Failed(_));
            let stopped = ended.status == StepStatus::Stopped;
            last = ended;
            if met || stopped || (failed && each.until.is_none()) {
                break;
            }
        }
        let status = match last.status {
            StepStatus::Failed(e) if each.until.is_none() => StepStatus::Failed(e),
            _ if each.until.is_some() && !met => {
                let kind = FailureKind::Assert {
                    expression: format!(
                        "{} (for no item of {})",
                        flow.templates.source(each.until.unwrap_or(each.items)),
                        records.len()
                    ),
                };
                StepStatus::Failed(StepError::new(kind, step.spans.until))
            }
            StepStatus::Stopped => StepStatus::Stopped,
            _ => StepStatus::Ok,
        };
        Ended {
            items: records,
            saved,
            response: last.response,
            ..Ended::new(status, Vec::new(), Map::new(), None)
        }
    }

    /// Builds the step's request with `vars` in scope, sends it, and judges the answer. A step
    /// in `doubt` (a resumed run's) goes by its `in_doubt` policy first.
    async fn exchange(&self, step: &CompiledStep, vars: &Scope, doubt: Option<&Doubt>) -> Ended {
        self.exchange_from(step, vars, doubt, 0).await
    }

    /// [`Run::exchange`], numbering its attempts after `first` earlier ones (a `for_each`
    /// step's items share the step's attempt numbers, so the journal keeps each).
    async fn exchange_from(
        &self,
        step: &CompiledStep,
        vars: &Scope,
        doubt: Option<&Doubt>,
        first: u32,
    ) -> Ended {
        let fail = Ended::failed;
        let flow = &self.engine.flow;
        let ctx = self.ctx_with(vars, None);
        let spans = &step.spans;
        if let Some((cond, message)) = &step.fail_if {
            let failed = |kind| fail(StepError::new(kind, spans.fail_if), Vec::new());
            match self.truth(*cond, &ctx) {
                Err(e) => return fail(render(e, spans.fail_if), Vec::new()),
                Ok(false) => {}
                Ok(true) => {
                    let message = match message {
                        None => match cond {
                            Cond::Always(_) => "fail_if is true".to_string(),
                            Cond::Expr(id) => format!("fail_if `{}` is true", flow.templates.source(*id)),
                        },
                        Some(tree) => match flow.templates.render_tree(tree, &ctx) {
                            Ok(v) => value_text(&v),
                            Err(e) => return fail(render(e, spans.fail_if), Vec::new()),
                        },
                    };
                    return failed(FailureKind::FailIf { message });
                }
            }
        }
        let request = match request::build(flow, step, &self.base_url, &ctx) {
            Ok(r) => r,
            Err(request::BuildError::Render(e)) => return fail(render(e, spans.request), Vec::new()),
            Err(e) => {
                let kind = FailureKind::Render {
                    message: e.to_string(),
                };
                return fail(StepError::new(kind, spans.request), Vec::new());
            }
        };
        drop(ctx);
        if let Some((message, field)) = api_body_problem(&request) {
            let kind = FailureKind::BodyCheck { message };
            return fail(StepError::new(kind, spans.body_field(&field)), Vec::new());
        }
        let (request, mut attempts, after) = match doubt {
            None => (request, Vec::new(), first),
            Some(doubt) => match self.settle_doubt(step, vars, doubt, request).await {
                Ok(settled) => settled,
                Err(ended) => return ended,
            },
        };
        match self.send(step, request, after).await {
            Ok(sent) => attempts.extend(sent),
            Err((kind, sent)) => {
                attempts.extend(sent);
                return fail(StepError::new(kind, spans.step), attempts);
            }
        }
        let Some(response) = attempts.last().and_then(|a| a.response.as_ref()) else {
            let kind = FailureKind::Transport {
                message: "no response was recorded".into(),
            };
            return fail(StepError::new(kind, spans.step), attempts);
        };
        let expected = match &step.expect_status {
            Some(set) => set.contains(response.status),
            None => (200..300).contains(&response.status),
        };
        if doubt.is_some() {
            let code = api_code(&response.body_value());
            let by_code = !expected && code.is_some_and(|c| step.in_doubt.already_done.contains(&c));
            let by_answer = step.in_doubt.already_done_if.is_some_and(|id| {
                let resp = Scope::answer(answer(response));
                flow.templates.truth(id, &self.ctx_with(vars, Some(&resp))) == Ok(true)
            });
            if by_code || by_answer {
                // The first attempt took effect before the crash: the step passed, though
                // what it would have saved is not known.
                let saved = step
                    .save
                    .iter()
                    .map(|(name, _)| (name.clone(), Value::Null))
                    .collect();
                let response = Some(answer(response));
                return Ended::new(StepStatus::Ok, attempts, saved, response);
            }
        }
        if !expected {
            let want = match &step.expect_status {
                Some(StatusSet::One(s)) => s.to_string(),
                Some(StatusSet::Many(v)) => v.iter().map(u16::to_string).collect::<Vec<_>>().join(" or "),
                None => "2xx".into(),
            };
            let body = response.body_value();
            let kind = FailureKind::Status {
                expected: want,
                actual: response.status,
                code: api_code(&body),
                message: api_message(&body),
            };
            return fail(StepError::new(kind, spans.status), attempts);
        }
        let resp = Scope::answer(answer(response));
        let ctx = self.ctx_with(vars, Some(&resp));
        // An expression over a body that is not JSON fails on a field it cannot find: say why.
        let unreadable = |kind: FailureKind, span: Span| StepError {
            note: not_json(&response.body),
            ..StepError::new(kind, span)
        };
        for (i, (text, id)) in step.asserts.iter().enumerate() {
            let span = spans.asserts.get(i).copied().unwrap_or(spans.step);
            let failure = match flow.templates.truth(*id, &ctx) {
                Ok(true) => continue,
                Ok(false) => StepError::new(
                    FailureKind::Assert {
                        expression: text.clone(),
                    },
                    span,
                ),
                Err(e) => render(e, span),
            };
            return fail(unreadable(failure.kind, failure.span), attempts);
        }
        let mut saved = Map::with_capacity(step.save.len());
        for (i, (name, id)) in step.save.iter().enumerate() {
            match flow.templates.render(*id, &ctx) {
                Ok(v) => {
                    saved.insert(name.clone(), v);
                }
                Err(e) => {
                    let kind = FailureKind::Save {
                        name: name.clone(),
                        message: e.to_string(),
                    };
                    let span = spans.save.get(i).copied().unwrap_or(spans.step);
                    return fail(unreadable(kind, span), attempts);
                }
            }
        }
        let status = match step.stop_if.map(|c| self.truth(c, &ctx)) {
            None | Some(Ok(false)) => StepStatus::Ok,
            Some(Ok(true)) => StepStatus::Stopped,
            Some(Err(e)) => StepStatus::Failed(render(e, spans.stop_if)),
        };
        drop(ctx);
        Ended::new(status, attempts, saved, resp.into_answer())
    }

    /// Sends `request` with auth, retrying as the step's policy allows. The request is the same
    /// on every attempt; only `Authorization` changes after a token refresh. `Ok` means the last
    /// attempt holds the response to judge.
    /// What a step in doubt does before it is sent again: `fail` fails it, `compensate` sends
    /// the compensating request (and then the step afresh), `resend` sends what was stored.
    /// `Ok`: the request to send, the attempts made so far, and the number to count on from.
    async fn settle_doubt(
        &self,
        step: &CompiledStep,
        vars: &Scope,
        doubt: &Doubt,
        fresh: HttpRequest,
    ) -> Result<(HttpRequest, Vec<Attempt>, u32), Ended> {
        let sent = format!(
            "attempt {} was sent before the run stopped and no answer was recorded",
            doubt.attempts
        );
        match step.in_doubt.policy {
            DoubtPolicy::Resend => Ok((
                super::durable::identical(&doubt.request, fresh),
                Vec::new(),
                doubt.attempts,
            )),
            DoubtPolicy::Fail => {
                let message = format!(
                    "{sent}; the step's `in_doubt` policy is `fail`: the run fails here (its finally \
                     steps run) and a person checks whether the request took effect"
                );
                let kind = FailureKind::InDoubt { message };
                Err(Ended::failed(StepError::new(kind, step.spans.step), Vec::new()))
            }
            DoubtPolicy::Compensate => {
                let Some(undo) = &step.in_doubt.compensate else {
                    return Ok((fresh, Vec::new(), doubt.attempts));
                };
                let undone = Box::pin(self.exchange(undo, vars, None)).await;
                if let StepStatus::Failed(e) = &undone.status {
                    let message = format!("{sent}; its compensating request failed: {e}");
                    let kind = FailureKind::InDoubt { message };
                    return Err(Ended::failed(
                        StepError::new(kind, step.spans.step),
                        undone.attempts,
                    ));
                }
                Ok((fresh, undone.attempts, doubt.attempts))
            }
        }
    }

    async fn send(
        &self,
        step: &CompiledStep,
        request: HttpRequest,
        after: u32,
    ) -> Result<Vec<Attempt>, (FailureKind, Vec<Attempt>)> {
        let mut request = Arc::new(request);
        let explicit_auth = request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        let mut token = if explicit_auth {
            None
        } else {
            self.engine.auth.token().await.map_err(|e| {
                let message = format!("auth: {e}");
                (FailureKind::Auth { message }, Vec::new())
            })?
        };
        let mut attempts: Vec<Attempt> = Vec::new();
        // Made at the first retry: most steps never need one.
        let mut delays = None;
        let mut refreshed = false;
        let mut number = after;
        loop {
            number += 1;
            if let Some(t) = &token {
                authorize(&mut request, t);
            }
            let timeout = match self.attempt_timeout(step) {
                Ok(t) => t,
                Err(kind) => return Err((kind, attempts)),
            };
            if let Some(log) = self.log
                && let Err(message) = log.before_send(&step.id, self.phase, number, &request).await
            {
                // Nothing is sent that the journal could not write down first.
                return Err((FailureKind::Journal { message }, attempts));
            }
            self.observer.attempt_started(&step.id, number, &request);
            let sent = Instant::now();
            let result = self.engine.transport.send(&request, timeout).await;
            let (response, error) = match result {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e)),
            };
            let attempt = Attempt {
                number,
                request: request.clone(),
                response,
                error: error.as_ref().map(|e| e.to_string()),
                duration: sent.elapsed(),
            };
            self.observer.attempt_finished(&step.id, &attempt);
            if let Some(log) = self.log {
                log.answered(&step.id, &attempt);
            }
            attempts.push(attempt);
            let last = attempts.last().and_then(|a| a.response.as_ref());
            let (reason, wait_hint) = match (last, &error) {
                // A success is never retried: its body is parsed once, by the caller.
                (Some(resp), _) if (200..300).contains(&resp.status) => return Ok(attempts),
                (Some(resp), _) => {
                    let body = resp.body_value();
                    let bad_token = resp.status == 401 || api_code(&body) == Some(BAD_TOKEN_CODE);
                    if bad_token
                        && !refreshed
                        && let Some(stale) = &token
                    {
                        match self.engine.auth.refresh(stale).await {
                            Some(Ok(fresh)) => {
                                refreshed = true;
                                token = Some(fresh);
                                self.observer.retry_scheduled(
                                    &step.id,
                                    Duration::ZERO,
                                    "token refreshed after 401",
                                );
                                continue;
                            }
                            Some(Err(e)) => {
                                let message = format!("auth: {e}");
                                return Err((FailureKind::Auth { message }, attempts));
                            }
                            None => {}
                        }
                    }
                    if !step.retry.is_retryable(resp.status, &body) {
                        return Ok(attempts);
                    }
                    (
                        format!("status {}{}", resp.status, api_error(&body)),
                        resp.header("retry-after").and_then(retry_after),
                    )
                }
                (None, Some(e)) if e.is_retryable() => (e.to_string(), None),
                (None, e) => {
                    let message = e.as_ref().map(|e| e.to_string()).unwrap_or_default();
                    return Err((FailureKind::Transport { message }, attempts));
                }
            };
            let backoff = delays.get_or_insert_with(|| step.retry.delays()).next();
            match self.retry_wait(step, reason.clone(), wait_hint, backoff) {
                Ok(Some(wait)) => {
                    self.observer.retry_scheduled(&step.id, wait, &reason);
                    if !self.pause(wait).await {
                        let message = format!("{reason}; interrupted while waiting to retry");
                        return Err((FailureKind::Interrupted { message }, attempts));
                    }
                }
                // No retry left: an answer is judged as it is; no answer is the failure.
                Ok(None) if error.is_none() => return Ok(attempts),
                Ok(None) => return Err((FailureKind::Transport { message: reason }, attempts)),
                Err(kind) if error.is_none() && matches!(kind, FailureKind::Deadline { .. }) => {
                    return Ok(attempts);
                }
                Err(kind) => return Err((kind, attempts)),
            }
        }
    }

    /// How long the next attempt may take: the step's timeout, within the flow's deadline.
    fn attempt_timeout(&self, step: &CompiledStep) -> Result<Duration, FailureKind> {
        let Some(deadline) = self.deadline else {
            return Ok(step.timeout);
        };
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(step.timeout.min(left)),
            _ => Err(FailureKind::Deadline {
                message: "the flow's deadline passed before the request was sent".into(),
            }),
        }
    }

    /// The wait before retrying after `reason`: the server's `Retry-After` (`hint`) within the
    /// step's bounds, else the policy's `backoff`. `Ok(None)`: no attempt is left.
    fn retry_wait(
        &self,
        step: &CompiledStep,
        reason: String,
        hint: Option<Duration>,
        backoff: Option<Duration>,
    ) -> Result<Option<Duration>, FailureKind> {
        let Some(backoff) = backoff else {
            return Ok(None);
        };
        let left = self.deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // A wait the server asks for is obeyed only within the step's own bounds: a server
        // must not hold a run for hours.
        if let Some(asked) = hint {
            let bounds = [
                (
                    step.retry.max,
                    format!("the retry's max of {}", short(step.retry.max)),
                ),
                (
                    step.timeout,
                    format!("the step's timeout of {}", short(step.timeout)),
                ),
            ];
            let bound = bounds
                .into_iter()
                .chain(left.map(|l| (l, "the time left before the flow's deadline".into())))
                .filter(|(limit, _)| asked > *limit)
                .min_by_key(|(limit, _)| *limit);
            if let Some((_, what)) = bound {
                let why = format!(
                    "the server asked to wait {} before retrying, more than {what}",
                    short(asked)
                );
                return Err(FailureKind::GaveUp {
                    last: reason,
                    reason: why,
                });
            }
        }
        let wait = hint.unwrap_or(backoff);
        if left.is_some_and(|l| wait >= l) {
            let message = format!("{reason}; no time left before the flow's deadline to retry");
            return Err(FailureKind::Deadline { message });
        }
        Ok(Some(wait))
    }
}

/// Sets the request's `Authorization` to the bearer `token`, copying the shared request only
/// when the header changes (after a refresh).
fn authorize(request: &mut Arc<HttpRequest>, token: &str) {
    const BEARER: &str = "Bearer ";
    let current = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
    if current.is_none_or(|(_, v)| v.strip_prefix(BEARER) != Some(token)) {
        let request = Arc::make_mut(request);
        request
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        // Not `format!`: its machinery cost five times the copy, on every request.
        let mut value = String::with_capacity(BEARER.len() + token.len());
        value.push_str(BEARER);
        value.push_str(token);
        request.headers.push(("Authorization".into(), value));
    }
}

/// A rendered body that does not fit the Interaction Service operation it calls, in words, and
/// the pointer of the first field at fault. Such a request is not sent.
fn api_body_problem(request: &HttpRequest) -> Option<(String, String)> {
    let op = crate::api::operation(&request.method, &request.url)?;
    let body = match (&request.body, op.json_part) {
        (crate::http::Body::Json(v), None) => v,
        (crate::http::Body::Multipart(parts), Some(name)) => parts.iter().find_map(|p| match &p.content {
            crate::http::PartContent::Json(v) if p.name == name => Some(v),
            _ => None,
        })?,
        _ => return None,
    };
    if op.accepts(body) {
        return None;
    }
    let field = op
        .problems(body)
        .into_iter()
        .next()
        .map(|(p, _)| p)
        .unwrap_or_default();
    let problems: Vec<String> = op
        .check(&crate::api::Rendered, body)
        .into_iter()
        .map(|d| match d.hint {
            Some(h) => format!("{} ({h})", d.message),
            None => d.message,
        })
        .collect();
    (!problems.is_empty()).then(|| {
        let message = format!(
            "the body does not fit {}: {}; not sent",
            op.label(),
            problems.join("; ")
        );
        (message, field)
    })
}

/// A response as expressions read it: `{status, headers, body}`.
fn answer(resp: &HttpResponse) -> Answer {
    let headers = resp.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    Answer::new(resp.status, headers, resp.body_value())
}

/// Words for a response body that is not JSON (`the response body is not JSON: <html>...`).
fn not_json(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return Some("the response body is empty".into());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body).err()?;
    let text = String::from_utf8_lossy(body);
    let start: String = text.chars().take(60).collect();
    let more = if text.chars().count() > 60 { "…" } else { "" };
    Some(format!("the response body is not JSON: `{start}{more}`"))
}

/// The API's message in an error body (`{code, message}` or `{errorDetail: {message}}`).
fn api_message(body: &Value) -> Option<String> {
    body.get("message")
        .or_else(|| body.pointer("/errorDetail/message"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// ` (code 15103: Cannot route ...)` from an API error body, for retry reasons.
fn api_error(body: &Value) -> String {
    let Some(code) = api_code(body) else {
        return String::new();
    };
    let message = api_message(body).unwrap_or_default();
    format!(
        " (code {code}{}{message})",
        if message.is_empty() { "" } else { ": " }
    )
}

/// A template or expression that could not be evaluated: at its own line when the error
/// knows it (column 0: the line as a whole), else at `span`.
fn render(e: RenderError, span: Span) -> StepError {
    let at = match e.line {
        0 => span,
        line if line == span.start.line => span,
        line => Span::on_line(crate::base::source::Pos { line, col: 0 }, 1),
    };
    StepError::new(
        FailureKind::Render {
            message: e.to_string(),
        },
        at,
    )
}
