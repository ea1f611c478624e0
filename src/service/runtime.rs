//! What the service does with each event: pick the first handler whose `when` holds, make
//! the flow's inputs from the event, drop an event already taken (its id is the run id),
//! record an expired one without sending anything, and run the flow — journaled when the
//! service has a journal, with the flow's `deadline` counted from the event's `CreatedDate`.

use super::event::{Event, FieldNames};
use super::model::{Handler, Service};
use crate::engine::Engine;
use crate::engine::inputs::InputRules;
use crate::engine::outcome::{Outcome, Quiet};
use crate::expr::context::Context;
use crate::expr::templates::{TemplateId, Templates};
use crate::expr::world::World;
use crate::flow::Source;
use crate::journal::{FlowRuns, Journal};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A run was started for it: its id.
    Started(String),
    /// Its id was taken before: the run's state then.
    Duplicate(String),
    /// Older than its handler's `max_age`: recorded, nothing sent.
    Expired,
    /// No handler takes it.
    Ignored,
    /// Its inputs could not be made: recorded as failed, nothing sent.
    Refused(String),
    /// As many runs as allowed are in flight: not taken, to be sent again.
    Busy,
}

/// Counts of what the service did, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events received.
    pub received: AtomicU64,
    /// Events that started a run.
    pub started: AtomicU64,
    /// Events already taken.
    pub duplicate: AtomicU64,
    /// Events too old to answer.
    pub expired: AtomicU64,
    /// Events no handler takes.
    pub ignored: AtomicU64,
    /// Events whose inputs could not be made.
    pub refused: AtomicU64,
    /// Runs that passed (or stopped early, as designed).
    pub passed: AtomicU64,
    /// Runs that failed.
    pub failed: AtomicU64,
}

/// A handler ready to take events.
struct Loaded {
    spec: Handler,
    engine: Arc<Engine>,
    rules: InputRules,
    runs: Option<FlowRuns>,
    when: Option<TemplateId>,
    inputs: Vec<(String, TemplateId)>,
}

/// The most runs remembered without a journal, for duplicates and `GET /runs/ID`.
const REMEMBERED: usize = 100_000;

/// A service, ready to take events.
pub struct Runtime {
    names: FieldNames,
    handlers: Vec<Loaded>,
    templates: Templates,
    journal: Option<Arc<Journal>>,
    /// Without a journal: the state of each run taken, by id.
    states: Mutex<HashMap<String, String>>,
    slots: Arc<Semaphore>,
    /// Set on shutdown: no step of a run starts after it.
    pub stop: Arc<AtomicBool>,
    /// What the service did.
    pub counters: Counters,
    world: World,
}

/// Why a service could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Runtime {
    /// Loads each handler's flow (relative to `dir`, the service file's folder), compiles the
    /// expressions, renders the event field names.
    pub fn new(
        service: &Service,
        dir: &Path,
        world: World,
        transport: Arc<dyn crate::http::Transport>,
        journal: Option<Arc<Journal>>,
        max_runs: usize,
    ) -> Result<Runtime, StartError> {
        let mut templates = Templates::new(&world);
        let mut handlers = Vec::new();
        for spec in &service.on {
            let path = dir.join(&spec.flow);
            let source = Source::read(&path).map_err(|e| StartError(format!("{}: {e}", path.display())))?;
            let (engine, _) =
                crate::engine::prepare::prepare_engine(&source, world.clone(), transport.clone())
                    .map_err(|e| StartError(format!("{}: {e}", path.display())))?;
            let flow = &engine.flow().flow;
            let rules = InputRules::new(flow);
            let runs = journal
                .as_ref()
                .map(|j| FlowRuns::new(j.clone(), &source, flow, world.secrets.clone()));
            let expr = |t: &mut Templates, text: &str| {
                t.expression(text, 0)
                    .map_err(|e| StartError(format!("handler `{}`: {e}", spec.id)))
            };
            let when = spec
                .when
                .as_deref()
                .map(|w| expr(&mut templates, w))
                .transpose()?;
            let inputs = spec
                .inputs
                .iter()
                .map(|(name, text)| Ok((name.clone(), expr(&mut templates, text)?)))
                .collect::<Result<_, StartError>>()?;
            handlers.push(Loaded {
                spec: spec.clone(),
                engine: Arc::new(engine),
                rules,
                runs,
                when,
                inputs,
            });
        }
        let render = |field: &Option<String>| -> Result<Option<String>, StartError> {
            let Some(text) = field else { return Ok(None) };
            let mut t = Templates::new(&world);
            let id = t.template(text, 0).map_err(|e| StartError(e.to_string()))?;
            let value = t
                .render(id, &Context::new(json!({})))
                .map_err(|e| StartError(format!("event field: {e}")))?;
            Ok(Some(
                value.as_str().map_or_else(|| value.to_string(), str::to_string),
            ))
        };
        let names = FieldNames {
            type_field: render(&service.event.type_field)?,
            payload_field: render(&service.event.payload_field)?,
        };
        Ok(Runtime {
            names,
            handlers,
            templates,
            journal,
            states: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max_runs.max(1))),
            stop: Arc::new(AtomicBool::new(false)),
            counters: Counters::default(),
            world,
        })
    }

    /// Takes `event`: decides what becomes of it and, for a run, starts it in the background.
    pub fn take(self: &Arc<Self>, event: Event) -> Taken {
        let c = &self.counters;
        c.received.fetch_add(1, Ordering::Relaxed);
        let ctx = Context::new(event.scope(&self.names));
        let truthy = |id: TemplateId| {
            self.templates
                .render(id, &ctx)
                .is_ok_and(|v| !matches!(v, Value::Null | Value::Bool(false)))
        };
        let Some(i) = self.handlers.iter().position(|h| h.when.is_none_or(truthy)) else {
            c.ignored.fetch_add(1, Ordering::Relaxed);
            return Taken::Ignored;
        };
        let handler = &self.handlers[i];
        if let Some(status) = self.state(&event.id) {
            c.duplicate.fetch_add(1, Ordering::Relaxed);
            return Taken::Duplicate(status);
        }
        let now_ms = crate::journal::now_ms();
        let age = event
            .created_ms()
            .map(|created| Duration::from_millis(now_ms.saturating_sub(created).max(0) as u64));
        if let (Some(max), Some(age)) = (handler.spec.max_age, age)
            && age > max
        {
            c.expired.fetch_add(1, Ordering::Relaxed);
            let why = format!(
                "expired: the event is {} ms old, more than its handler's max_age",
                age.as_millis()
            );
            self.record(handler, &event.id, &Map::new(), "expired", Some(why));
            return Taken::Expired;
        }
        let inputs = match self.inputs(handler, &ctx) {
            Ok(inputs) => inputs,
            Err(message) => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                self.record(handler, &event.id, &Map::new(), "failed", Some(message.clone()));
                return Taken::Refused(message);
            }
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Taken::Busy;
        };
        let log = match &handler.runs {
            None => None,
            Some(runs) => match runs.begin(&event.id, &inputs, &crate::base::secrets::Secrets::default()) {
                Ok(log) => Some(log),
                Err(e) => {
                    // Taken meanwhile (another delivery of the same event): a duplicate.
                    c.duplicate.fetch_add(1, Ordering::Relaxed);
                    return Taken::Duplicate(e.to_string());
                }
            },
        };
        self.remember(&event.id, "running");
        c.started.fetch_add(1, Ordering::Relaxed);
        // The deadline counts from when the event was published.
        let since = Instant::now()
            .checked_sub(age.unwrap_or_default())
            .unwrap_or_else(Instant::now);
        let this = self.clone();
        let id = event.id.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handler = &this.handlers[i];
            let stop = this.stop.clone();
            let log_ref = log.as_ref().map(|l| l as &dyn crate::engine::durable::RunLog);
            let report = handler
                .engine
                .run_since(inputs, &Quiet, Some(&stop), log_ref, since)
                .await;
            if let Some(log) = &log {
                let _ = log.commit(log.finished(&report));
            }
            let status = match report.outcome {
                Outcome::Passed => "passed",
                Outcome::Stopped { .. } => "stopped",
                Outcome::Failed { .. } => "failed",
            };
            let counter = if status == "failed" {
                &this.counters.failed
            } else {
                &this.counters.passed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            this.remember(&id, status);
        });
        Taken::Started(event.id)
    }

    /// The flow's inputs from the event: each handler expression rendered (null or undefined
    /// leaves the input out), then checked against the flow's declarations.
    fn inputs(&self, handler: &Loaded, ctx: &Context) -> Result<Map<String, Value>, String> {
        let mut given = Vec::new();
        for (name, id) in &handler.inputs {
            match self.templates.render(*id, ctx) {
                Ok(Value::Null) => {}
                Ok(v) => given.push((name.clone(), v)),
                Err(e) if e.message.contains("undefined") => {}
                Err(e) => return Err(format!("input `{name}`: {}", e.message)),
            }
        }
        let flow = &handler.engine.flow().flow;
        handler
            .rules
            .resolve(flow, given, &self.world.secrets)
            .map_err(|errors| {
                let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                all.join("; ")
            })
    }

    /// A run that never started (expired, refused), written down so a redelivery of the event
    /// is a duplicate.
    fn record(
        &self,
        handler: &Loaded,
        id: &str,
        inputs: &Map<String, Value>,
        status: &str,
        error: Option<String>,
    ) {
        if let Some(runs) = &handler.runs
            && let Ok(log) = runs.begin(id, inputs, &crate::base::secrets::Secrets::default())
        {
            let _ = log.commit(log.ended(status, &Value::Null, error));
        }
        self.remember(id, status);
    }

    /// What became of run `id`: the journal's word when there is one.
    pub fn state(&self, id: &str) -> Option<String> {
        if let Some(journal) = &self.journal {
            return journal.find(id).ok().flatten().map(|row| row.status);
        }
        self.states.lock().ok()?.get(id).cloned()
    }

    fn remember(&self, id: &str, status: &str) {
        if self.journal.is_some() {
            return;
        }
        if let Ok(mut states) = self.states.lock() {
            if states.len() >= REMEMBERED && !states.contains_key(id) {
                // Forget finished runs first; a bound either way.
                states.retain(|_, s| s == "running");
            }
            states.insert(id.to_string(), status.to_string());
        }
    }

    /// Runs in flight now.
    pub fn in_flight(&self, max_runs: usize) -> usize {
        max_runs.saturating_sub(self.slots.available_permits())
    }

    /// Waits until no run is in flight, or `grace` has passed: `true` when none is left.
    pub async fn drain(&self, max_runs: usize, grace: Duration) -> bool {
        let until = Instant::now() + grace;
        while self.in_flight(max_runs) > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// `text` with every secret the service knows masked.
    pub fn redact(&self, text: &str) -> String {
        self.world.secrets.redact(text).into_owned()
    }

    /// Whether the journal (if any) answers.
    pub fn ready(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.flush().is_ok())
    }
}
