//! What the service does with each event: pick the first handler whose `when` holds, make
//! the flow's inputs from the event, drop an event already taken (its id is the run id),
//! record an expired one without sending anything, and run the flow — journaled when the
//! service has a journal, with the flow's `deadline` counted from the event's `CreatedDate`.
//!
//! With a journal several instances share (PostgreSQL), an event's run is not run where the
//! event landed: it is queued in the journal, and every instance claims queued runs as it has
//! room ([`Runtime::work_queue`]), holding a lease on each that it renews while it lives
//! ([`Runtime::keep_leases`]). A run whose lease ran out — its instance died — is claimed
//! again and goes on through the journal, its step in doubt following its `in_doubt` policy.

use super::event::{Event, FieldNames};
use super::model::{Handler, Service};
use crate::engine::Engine;
use crate::engine::outcome::Outcome;
use crate::expr::context::Context;
use crate::expr::templates::{TemplateId, Templates};
use crate::expr::world::World;
use crate::flow::Source;
use crate::flow::inputs::InputRules;
use crate::journal::{Claimed, FlowRuns, Journal, RunsError};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A run was started for it: its id.
    Started(String),
    /// Its run was queued in the shared journal, for any instance to claim: its id.
    Queued(String),
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
    /// The journal could not record it (a store error, not a taken id): not taken, to be sent
    /// again. Why, in words.
    Unrecorded(String),
}

/// A handler ready to take events.
struct Loaded {
    spec: Handler,
    engine: Arc<Engine>,
    rules: InputRules,
    runs: Option<FlowRuns>,
    when: Option<TemplateId>,
    inputs: Vec<(String, TemplateId)>,
    /// `fill`: the earlier flow's path as the journal records it, the matching input, the inputs.
    fill: Option<(String, String, Vec<String>)>,
}

impl Loaded {
    /// `spec`'s flow (relative to `dir`) prepared, its expressions compiled into `templates`.
    fn new(
        spec: &Handler,
        dir: &Path,
        world: &World,
        transport: &Arc<dyn crate::http::Transport>,
        journal: &Option<Arc<Journal>>,
        templates: &mut Templates,
    ) -> Result<Loaded, String> {
        let path = dir.join(&spec.flow);
        let source = Source::read(&path).map_err(|e| e.to_string())?;
        let (engine, _) = crate::engine::prepare::prepare_engine(&source, world.clone(), transport.clone())
            .map_err(|e| e.to_string())?;
        let flow = &engine.flow().flow;
        let rules = InputRules::new(flow);
        let runs = journal
            .as_ref()
            .map(|j| FlowRuns::new(j.clone(), &source, flow, world.secrets.clone()));
        let mut expr = |text: &str| {
            templates
                .expression(text, 0)
                .map_err(|e| format!("handler `{}`: {e}", spec.id))
        };
        let when = spec.when.as_deref().map(&mut expr).transpose()?;
        let inputs = spec
            .inputs
            .iter()
            .map(|(name, text)| Ok((name.clone(), expr(text)?)))
            .collect::<Result<_, String>>()?;
        let fill = spec.fill.as_ref().map(|f| {
            // The journal records a flow by its canonical path.
            let from = dir.join(&f.from);
            let from = std::fs::canonicalize(&from).unwrap_or(from).display().to_string();
            (from, f.matching.clone(), f.inputs.clone())
        });
        Ok(Loaded {
            spec: spec.clone(),
            engine: Arc::new(engine),
            rules,
            runs,
            when,
            inputs,
            fill,
        })
    }
}

/// How a run's start is written to the journal.
#[derive(Clone, Copy)]
enum Start {
    /// Committed before the run starts; a taken id is refused by the journal itself.
    Durable,
    /// With the next transaction.
    Queued,
}

/// A run to start.
struct Launch {
    handler: usize,
    id: String,
    inputs: Map<String, Value>,
    log: Option<crate::journal::RunJournal>,
    resume: Option<crate::engine::durable::Resume>,
    since: Instant,
    /// When the event was taken.
    taken: Instant,
    /// Claimed from the shared queue ahead of a free slot: counted in `Runtime::claimed_ahead`
    /// until it has one.
    ahead: bool,
}

/// How far in the future an event's `CreatedDate` may be (clocks disagree a little).
const FUTURE_SKEW_MS: i64 = 60_000;

/// The most runs remembered without a journal, for duplicates and `GET /runs/ID`.
const REMEMBERED: usize = 100_000;

/// How long a claimed run stays this instance's without word from it: another instance
/// claims it once this has passed since the last renewal (so, the takeover time after a
/// crash). Renewed every `RENEW_EVERY` (1 s).
pub const LEASE: Duration = Duration::from_secs(5);
/// How often the leases are renewed: a few renewals may fail before a lease runs out.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often the queue is looked at without being told of a queued run (a notification lost
/// with a connection, or a lease that ran out, which nothing announces).
const CLAIM_POLL: Duration = Duration::from_millis(250);

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
    /// What the service did, for `/metrics`.
    pub metrics: super::metrics::Metrics,
    /// Whether a subscription must be up for the service to be ready, and whether it is.
    pub subscription: (AtomicBool, AtomicBool),
    /// Another instance sharing the journal holds the subscription; this one stands by.
    pub standby: AtomicBool,
    /// Where lines go.
    pub log: super::log::Logger,
    world: World,
    /// The journal is shared: runs are queued there and claimed by any instance.
    queue: bool,
    /// How many runs may be in flight at once.
    max_runs: usize,
    /// Runs claimed from the shared queue that wait for a free slot, and a signal when one
    /// gets it: claims are made in batches, ahead of the slots, not one per freed slot.
    claimed_ahead: std::sync::atomic::AtomicUsize,
    room: tokio::sync::Notify,
    /// A read of the queue's depth is under way (see [`Runtime::queue_depth_within`]).
    depth_asked: Arc<AtomicBool>,
    /// Streamed events whose run is being queued in the shared journal: told `true` once it is
    /// there (see [`Runtime::take_streamed`]).
    queueing: Mutex<HashMap<String, Queueing>>,
}

/// Tells `true` once a streamed event's run is in the shared journal's queue (or was there
/// before: a duplicate); closed without a word when the service stopped first.
pub type Queueing = tokio::sync::oneshot::Receiver<bool>;

/// Why a service could not start: every problem found, each in one line or more.
#[derive(Debug)]
pub struct StartError(pub Vec<String>);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
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
        log: super::log::Logger,
    ) -> Result<Runtime, StartError> {
        let mut problems = Vec::new();
        let mut render = |key: &str, field: &Option<String>| -> Option<String> {
            let text = field.as_ref()?;
            let mut t = Templates::new(&world);
            let value = t
                .template(text, 0)
                .and_then(|id| t.render(id, &Context::new(json!({}))));
            match value {
                Ok(v) => Some(v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                Err(e) => {
                    problems.push(format!("event.{key}: {e}"));
                    None
                }
            }
        };
        let names = FieldNames {
            type_field: render("type_field", &service.event.type_field),
            payload_field: render("payload_field", &service.event.payload_field),
        };
        let mut templates = Templates::new(&world);
        let mut handlers = Vec::new();
        for spec in &service.on {
            let loaded = Loaded::new(spec, dir, &world, &transport, &journal, &mut templates);
            match loaded {
                Ok(h) => handlers.push(h),
                // A flow's problems come as `error: ...` paragraphs: one problem each.
                Err(e) => problems.extend(
                    e.split("\nerror: ")
                        .map(|p| p.trim_start_matches("error: "))
                        .map(|p| format!("{}: {p}", dir.join(&spec.flow).display())),
                ),
            }
        }
        if !problems.is_empty() {
            return Err(StartError(problems));
        }
        let journal_shared = journal.as_ref().is_some_and(|j| j.shared());
        Ok(Runtime {
            names,
            handlers,
            templates,
            journal,
            states: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max_runs.max(1))),
            stop: Arc::new(AtomicBool::new(false)),
            metrics: Default::default(),
            subscription: (AtomicBool::new(false), AtomicBool::new(false)),
            standby: AtomicBool::new(false),
            log,
            world,
            queue: journal_shared,
            max_runs: max_runs.max(1),
            claimed_ahead: Default::default(),
            room: Default::default(),
            depth_asked: Default::default(),
            queueing: Default::default(),
        })
    }

    /// Takes `event`: decides what becomes of it and, for a run, starts it in the background
    /// once its start is durable in the journal (any number of callers at once: the webhook).
    /// Logs what became of it (not when busy: the event comes again).
    pub fn take(self: &Arc<Self>, event: Event) -> Taken {
        self.take_with(event, Start::Durable)
    }

    /// Like [`Runtime::take`], for a source that hands events over one at a time and stores its
    /// position after each (the Pub/Sub subscriber): the run's start is written with the
    /// journal's next transaction — before the run's first request, which is durable — so the
    /// next event need not wait for a commit. A crash before that commit loses both the run
    /// (which sent nothing) and the stored position: the event is delivered again.
    ///
    /// On a shared journal the run is queued there, written without waiting too, and tried
    /// again until the journal has it: the position is stored past the event only once the
    /// `Queueing` given with it says so (a position stored past a run the journal never
    /// had would lose the event).
    pub fn take_streamed(self: &Arc<Self>, event: Event) -> (Taken, Option<Queueing>) {
        let id = event.id.clone();
        let taken = self.take_with(event, Start::Queued);
        let queueing = match &taken {
            Taken::Queued(_) => self.queueing.lock().ok().and_then(|mut q| q.remove(&id)),
            _ => None,
        };
        (taken, queueing)
    }

    fn take_with(self: &Arc<Self>, event: Event, start: Start) -> Taken {
        let id = event.id.clone();
        let taken = self.decide(event, start);
        let (outcome, detail) = match &taken {
            Taken::Started(_) => ("started", None),
            Taken::Queued(_) => ("queued", None),
            Taken::Duplicate(status) => ("duplicate", Some(status.as_str())),
            Taken::Expired => ("expired", None),
            Taken::Ignored => ("ignored", None),
            Taken::Refused(why) => ("refused", Some(why.as_str())),
            Taken::Unrecorded(why) => ("unrecorded", Some(why.as_str())),
            Taken::Busy => return taken,
        };
        let mut fields = vec![
            ("event", Value::String(id)),
            ("outcome", Value::String(outcome.into())),
        ];
        if let Some(d) = detail {
            fields.push(("detail", Value::String(d.to_string())));
        }
        match outcome {
            "refused" | "unrecorded" => self.log.warn("event", &fields),
            _ => self.log.info("event", &fields),
        }
        taken
    }

    fn decide(self: &Arc<Self>, event: Event, start: Start) -> Taken {
        let taken = Instant::now();
        let c = &self.metrics;
        c.received.inc();
        let ctx = Context::new(event.scope(&self.names));
        let truthy = |id: TemplateId| {
            self.templates
                .render(id, &ctx)
                .is_ok_and(|v| !matches!(v, Value::Null | Value::Bool(false)))
        };
        let Some(i) = self.handlers.iter().position(|h| h.when.is_none_or(truthy)) else {
            c.ignored.inc();
            return Taken::Ignored;
        };
        let handler = &self.handlers[i];
        // A streamed event queued in a shared journal is not looked up there first (a round
        // trip behind the commit being written, for every event): the journal refuses a taken
        // id when the run is queued, and that is told then (see `Runtime::enqueue`).
        let known = match (self.queue, start) {
            (true, Start::Queued) => self.remembered(&event.id),
            _ => self.state(&event.id),
        };
        if let Some(status) = known {
            c.duplicate.inc();
            return Taken::Duplicate(status);
        }
        let now_ms = crate::journal::now_ms();
        // `max_age` needs to know when the event was published: without a usable CreatedDate
        // the event would pass for fresh whatever its age.
        let unusable = match event.created_ms() {
            _ if handler.spec.max_age.is_none() => None,
            None => Some("the event has no `CreatedDate` in milliseconds since the epoch".to_string()),
            Some(created) if created > now_ms + FUTURE_SKEW_MS => Some(format!(
                "the event's `CreatedDate` is {} s in the future",
                (created - now_ms) / 1000
            )),
            Some(_) => None,
        };
        if let Some(why) = unusable {
            c.refused.inc();
            let why = format!("{why}: its age cannot be told against the handler's max_age");
            self.record(handler, &event.id, &Map::new(), "failed", Some(why.clone()));
            return Taken::Refused(why);
        }
        let age = event
            .created_ms()
            .map(|created| Duration::from_millis(now_ms.saturating_sub(created).max(0) as u64));
        if let (Some(max), Some(age)) = (handler.spec.max_age, age)
            && age > max
        {
            c.expired.inc();
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
                c.refused.inc();
                self.record(handler, &event.id, &Map::new(), "failed", Some(message.clone()));
                return Taken::Refused(message);
            }
        };
        if self.queue {
            return self.enqueue(i, event.id, &inputs, start);
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return Taken::Busy;
        };
        // Claimed in memory first: two deliveries of one event at once start one run.
        if let Err(status) = self.claim(&event.id) {
            c.duplicate.inc();
            return Taken::Duplicate(status);
        }
        let own = crate::base::secrets::Secrets::default();
        let log = match (&handler.runs, start) {
            (None, _) => None,
            (Some(runs), Start::Queued) => Some(runs.begin_queued(&event.id, &inputs, &own)),
            (Some(runs), Start::Durable) => match runs.begin(&event.id, &inputs, &own) {
                Ok(log) => Some(log),
                Err(e) => {
                    self.forget(&event.id);
                    return self.not_begun(&event.id, e, "running");
                }
            },
        };
        c.started.inc();
        // The deadline counts from when the event was published.
        let since = Instant::now()
            .checked_sub(age.unwrap_or_default())
            .unwrap_or_else(Instant::now);
        self.launch(
            Launch {
                handler: i,
                id: event.id.clone(),
                inputs,
                log,
                resume: None,
                since,
                taken,
                ahead: false,
            },
            Some(permit),
        );
        Taken::Started(event.id)
    }

    /// Queues run `id` of handler `i` with `inputs`, and tries again (100 ms, doubling up to
    /// 5 s) while the journal fails, until it has the run: the position of the event, and of
    /// those after it, waits for that (an error that never goes away holds the subscription
    /// up, and says so every 5 s). `false` when the service gave its runs up first (the
    /// process then exits: the event comes again after a restart). Whether the journal has it
    /// (queued now, or before: an event delivered again).
    async fn queue_until_there(&self, i: usize, id: &str, inputs: &Map<String, Value>) -> bool {
        let Some(runs) = &self.handlers[i].runs else {
            return false;
        };
        let mut wait = Duration::from_millis(100);
        loop {
            let queued = runs.enqueue(id, inputs, &crate::base::secrets::Secrets::default());
            let error = match queued.await {
                Ok(()) => return true,
                Err(e) => e.to_string(),
            };
            // Delivered again (a new subscription from an earlier replay id): the run queued
            // the first time stands.
            if error.contains(crate::journal::RUN_ID_TAKEN) {
                self.forget(id);
                self.metrics.duplicate.inc();
                let status = self.state(id).unwrap_or_default();
                let fields = [
                    ("event", Value::String(id.to_string())),
                    ("outcome", Value::String("duplicate".into())),
                    ("detail", Value::String(status)),
                ];
                self.log.info("event", &fields);
                return true;
            }
            let fields = [
                ("event", Value::String(id.to_string())),
                ("error", Value::String(error)),
                ("retry_ms", Value::from(wait.as_millis() as u64)),
            ];
            self.log
                .warn("cannot queue the event's run; trying again", &fields);
            tokio::time::sleep(wait).await;
            if self.stop.load(Ordering::Relaxed) {
                self.forget(id);
                return false;
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// What event `id`, whose run the journal did not begin, became: a duplicate when the id
    /// was taken meanwhile (another process sharing the journal; `then` is the state to tell
    /// when the journal does not say yet); unrecorded when the journal failed, so that the
    /// sender sends it again rather than take it for done.
    fn not_begun(&self, id: &str, e: RunsError, then: &str) -> Taken {
        match e {
            // A run another process began between the look-up and the write: its start broke
            // the key.
            RunsError::Journal(e) if e.to_string().contains(crate::journal::RUN_ID_TAKEN) => {
                self.metrics.duplicate.inc();
                Taken::Duplicate(self.state(id).unwrap_or_else(|| then.to_string()))
            }
            RunsError::Journal(e) => {
                self.metrics.unrecorded.inc();
                Taken::Unrecorded(e.to_string())
            }
            taken => {
                self.metrics.duplicate.inc();
                Taken::Duplicate(taken.to_string())
            }
        }
    }

    /// Queues the run of event `id` in the shared journal, for any instance to claim.
    fn enqueue(self: &Arc<Self>, i: usize, id: String, inputs: &Map<String, Value>, start: Start) -> Taken {
        let c = &self.metrics;
        let Some(runs) = &self.handlers[i].runs else {
            return Taken::Refused("a shared journal is needed to queue runs".into());
        };
        // Claimed in memory first: two deliveries of one event at once queue one run.
        if let Err(status) = self.claim(&id) {
            c.duplicate.inc();
            return Taken::Duplicate(status);
        }
        let own = crate::base::secrets::Secrets::default();
        match start {
            Start::Queued => {
                let (queued, queueing) = tokio::sync::oneshot::channel();
                if let Ok(mut waiting) = self.queueing.lock() {
                    waiting.insert(id.clone(), queueing);
                }
                let this = self.clone();
                let (id, inputs) = (id.clone(), inputs.clone());
                tokio::spawn(async move {
                    if this.queue_until_there(i, &id, &inputs).await {
                        let _ = queued.send(true);
                    }
                });
            }
            Start::Durable => {
                if let Err(e) = runs.enqueue_durably(&id, inputs, &own) {
                    self.forget(&id);
                    return self.not_begun(&id, e, "queued");
                }
            }
        }
        // Remembered until the journal has it (a queued write is committed a moment later);
        // [`Runtime::state`] asks the journal past that.
        self.remember(&id, "queued");
        c.queued.inc();
        Taken::Queued(id)
    }

    /// Claims queued runs (and runs whose lease ran out) as this instance has room for them,
    /// and runs them, until `stop`. Woken when any instance queues a run, and every
    /// `CLAIM_POLL` besides.
    pub async fn work_queue(self: Arc<Self>, stop: Arc<AtomicBool>) {
        let Some(journal) = self.shared_journal().cloned() else {
            return;
        };
        let announced = journal.queue_signal();
        let flows: Vec<String> = self
            .handlers
            .iter()
            .filter_map(|h| h.runs.as_ref().map(|r| r.path().to_string()))
            .collect();
        let owner = crate::journal::owner_here();
        // Up to `max_runs` claimed ahead of the slots, claimed again once half of them started:
        // a claim (a transaction) per batch, not one per run ending.
        let most = self.max_runs;
        while !stop.load(Ordering::Relaxed) {
            let ahead = self.claimed_ahead.load(Ordering::Relaxed);
            if ahead > most / 2 {
                let _ = tokio::time::timeout(CLAIM_POLL, self.room.notified()).await;
                continue;
            }
            let want = most - ahead;
            // The store blocks its thread for the round trip: not one of the runtime's workers.
            let asked = (journal.clone(), flows.clone());
            let claimed = tokio::task::spawn_blocking(move || asked.0.claim(owner, &asked.1, want, LEASE))
                .await
                .unwrap_or_else(|e| Err(crate::journal::JournalError::Store(e.to_string())))
                .unwrap_or_else(|e| {
                    self.log
                        .warn("cannot claim runs", &[("error", Value::String(e.to_string()))]);
                    Vec::new()
                });
            let full = claimed.len() == want;
            // Off the async workers too: a run whose owner died is read back from the journal
            // before it goes on, and a journal that waits held up a worker there.
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for claim in claimed {
                    this.metrics.claimed.inc();
                    this.claimed_ahead.fetch_add(1, Ordering::Relaxed);
                    if !this.run_claimed(claim) {
                        this.claimed_ahead.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })
            .await;
            if full {
                // There may be more: claim again at once.
                tokio::task::yield_now().await;
                continue;
            }
            match &announced {
                Some(announced) => {
                    let _ = tokio::time::timeout(CLAIM_POLL, announced.notified()).await;
                }
                None => tokio::time::sleep(CLAIM_POLL).await,
            }
        }
    }

    /// Renews the leases of the runs this instance holds every `RENEW_EVERY`. A process that
    /// cannot renew them for a whole [`LEASE`] is no longer theirs to run (another instance may
    /// have claimed them): it says so and exits, for its supervisor to start it again.
    pub async fn keep_leases(self: Arc<Self>) {
        let Some(journal) = self.shared_journal().cloned() else {
            return;
        };
        let owner = crate::journal::owner_here();
        // Until when the leases held are known to last: a renewal counts from when it was
        // asked for, since the store may answer late.
        let mut held_until = Instant::now() + LEASE;
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let asked = Instant::now();
            let store = journal.clone();
            // Not waited for past the leases' end: a store that hangs is a store lost.
            let renewing = tokio::task::spawn_blocking(move || store.renew(owner, LEASE));
            let left = held_until.saturating_duration_since(asked).max(RENEW_EVERY);
            let renewed = match tokio::time::timeout(left, renewing).await {
                Ok(done) => done.unwrap_or_else(|e| Err(crate::journal::JournalError::Store(e.to_string()))),
                Err(_) => Err(crate::journal::JournalError::Store(
                    "no answer before the leases ran out".into(),
                )),
            };
            match renewed {
                Ok(_) if asked > held_until => {
                    // Another instance may have claimed some of them meanwhile: the journal
                    // refuses what this one would write of those, and they stop here.
                    self.log.warn(
                        "leases ran out before they were renewed",
                        &[("late_ms", Value::from((asked - held_until).as_millis() as u64))],
                    );
                    held_until = asked + LEASE;
                }
                Ok(_) => held_until = asked + LEASE,
                Err(e) => self
                    .log
                    .warn("cannot renew leases", &[("error", Value::String(e.to_string()))]),
            }
            if Instant::now() >= held_until {
                self.stop.store(true, Ordering::Relaxed);
                self.log.error(
                    "lost the journal for longer than a lease: exiting, so that the runs this \
                     instance held are claimed by another",
                    &[("lease_ms", Value::from(LEASE.as_millis() as u64))],
                );
                std::process::exit(1);
            }
        }
    }

    /// The runs in the shared journal's queue now, read off the async workers (a PostgreSQL
    /// round trip) and waited for `limit` at most. `None` when the journal is not shared, when
    /// the read fails or takes longer (the table locked, the server slow), or while an earlier
    /// read that took longer is still under way: a scrape never waits on the journal, and
    /// scrapes do not pile reads up.
    pub async fn queue_depth_within(&self, limit: Duration) -> Option<u64> {
        let journal = self.shared_journal()?.clone();
        if self.depth_asked.swap(true, Ordering::AcqRel) {
            return None;
        }
        /// Lets the next read be asked when this one ends, however it ends.
        struct Done(Arc<AtomicBool>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let done = Done(self.depth_asked.clone());
        let read = tokio::task::spawn_blocking(move || {
            let _done = done;
            journal.queued().ok()
        });
        tokio::time::timeout(limit, read).await.ok()?.ok()?
    }

    /// Runs the journal left unfinished (a crash, a stop after the grace period) for this
    /// service's flows, each going on after its last completed step, its step in doubt
    /// following its `in_doubt` policy. How many were started again.
    pub fn resume_unfinished(self: &Arc<Self>) -> usize {
        let Some(journal) = &self.journal else { return 0 };
        let rows = match journal.runs(true, REMEMBERED) {
            Ok(rows) => rows,
            Err(e) => {
                self.log.warn(
                    "cannot list unfinished runs",
                    &[("error", Value::String(e.to_string()))],
                );
                return 0;
            }
        };
        rows.iter()
            .filter(|row| self.handler_of(&row.flow_path).is_some())
            .filter(|row| self.resume(&row.id, None, false))
            .count()
    }

    /// The handler whose flow the journal records at `flow_path`.
    fn handler_of(&self, flow_path: &str) -> Option<usize> {
        self.handlers
            .iter()
            .position(|h| h.runs.as_ref().is_some_and(|r| r.path() == flow_path))
    }

    /// Runs what this instance claimed from the shared queue: a fresh run simply runs (its
    /// inputs came with the claim); a run whose owner died goes on through the journal.
    /// Whether it was started (it then waits for a free slot).
    fn run_claimed(self: &Arc<Self>, claim: Claimed) -> bool {
        if !claim.fresh {
            return self.resume(&claim.id, None, true);
        }
        let Some(i) = self.handler_of(&claim.flow_path) else {
            let why = format!("no handler of this service runs {}", claim.flow_path);
            return self.refuse_resume(&claim.id, why, true);
        };
        let given = claim.inputs.as_object().cloned().unwrap_or_default();
        let given = given.into_iter().collect();
        self.start_again(i, &claim.id, given, claim.started_ms, None, None, true)
    }

    /// Goes on with unfinished run `id` of the journal (see [`Runtime::resume_unfinished`]);
    /// `claimed` when this instance claimed it from the shared queue. Whether it was started.
    fn resume(
        self: &Arc<Self>,
        id: &str,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        claimed: bool,
    ) -> bool {
        let Some(journal) = &self.journal else {
            return false;
        };
        let flow_path = match journal.run(id) {
            Ok(detail) => detail.row.flow_path,
            Err(e) => return self.refuse_resume(id, e.to_string(), claimed),
        };
        let Some(i) = self.handler_of(&flow_path) else {
            let why = format!("no handler of this service runs {flow_path}");
            return self.refuse_resume(id, why, claimed);
        };
        let Some(runs) = &self.handlers[i].runs else {
            return false;
        };
        let found = match claimed {
            true => runs.claimed(id),
            false => runs.unfinished(id, false),
        };
        match found {
            Ok((detail, resume)) => {
                let given = detail.given_inputs();
                let started_ms = detail.row.started_ms;
                self.start_again(i, id, given, started_ms, Some(resume), permit, claimed)
            }
            Err(e) => self.refuse_resume(id, e.to_string(), claimed),
        }
    }

    /// Launches run `id` of handler `i` again with the inputs it was `given`, going on from
    /// `resume` (a fresh run without); its deadline still counts from `started_ms`, when its
    /// event was taken. Whether it was started.
    #[allow(clippy::too_many_arguments)]
    fn start_again(
        self: &Arc<Self>,
        i: usize,
        id: &str,
        given: Vec<(String, Value)>,
        started_ms: i64,
        resume: Option<crate::engine::durable::Resume>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        claimed: bool,
    ) -> bool {
        let handler = &self.handlers[i];
        let Some(runs) = &handler.runs else { return false };
        let flow = &handler.engine.flow().flow;
        let inputs = match handler.rules.resolve(flow, given, &self.world.secrets) {
            Ok(inputs) => inputs,
            Err(errors) => {
                let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return self.refuse_resume(id, why.join("; "), claimed);
            }
        };
        let age = Duration::from_millis(crate::journal::now_ms().saturating_sub(started_ms).max(0) as u64);
        let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        if resume.is_some() {
            self.log
                .info("resuming run", &[("run", Value::String(id.to_string()))]);
        }
        self.remember(id, "running");
        let own = crate::base::secrets::Secrets::default();
        self.launch(
            Launch {
                handler: i,
                id: id.to_string(),
                inputs,
                log: Some(runs.reopen(id, &own)),
                resume,
                since,
                taken: Instant::now(),
                ahead: claimed,
            },
            permit,
        );
        true
    }

    /// Says why run `id` cannot go on here. A run claimed from the queue is taken off it for
    /// good (no lease: no instance claims it again and again): it waits for `flowrun runs
    /// resume` or `cancel` by hand.
    fn refuse_resume(&self, id: &str, why: String, claimed: bool) -> bool {
        let why = match (claimed, &self.journal) {
            (true, Some(journal)) => {
                let by_hand = crate::journal::Write::Claimed {
                    run: id.to_string(),
                    owner: crate::journal::owner_here().to_string(),
                };
                let _ = journal.commit(by_hand);
                format!("{why}; left for `flowrun runs resume {id}` or `cancel`")
            }
            _ => why,
        };
        let fields = [
            ("run", Value::String(id.to_string())),
            ("error", Value::String(why)),
        ];
        self.log.warn("cannot resume run", &fields);
        false
    }

    /// Starts a run in the background; without a `permit`, it waits for a free slot first.
    fn launch(self: &Arc<Self>, run: Launch, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = match permit {
                Some(p) => p,
                None => match this.slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            if run.ahead {
                this.claimed_ahead.fetch_sub(1, Ordering::Relaxed);
                this.room.notify_one();
            }
            let Launch {
                handler: i,
                id,
                inputs,
                log,
                resume,
                since,
                taken,
                ahead: _,
            } = run;
            let handler = &this.handlers[i];
            let stop = this.stop.clone();
            let log_ref = log.as_ref().map(|l| l as &dyn crate::engine::durable::RunLog);
            let report = handler
                .engine
                .run_since(
                    inputs,
                    &this
                        .metrics
                        .observer(&handler.engine.flow().flow.name, taken, since),
                    Some(&stop),
                    log_ref,
                    resume,
                    since,
                )
                .await;
            // Awaited, not blocking a worker thread while the group commit is written.
            let journaled = match &log {
                Some(log) => log.durably(log.finished(&report)).await.is_ok(),
                None => false,
            };
            let status = match &report.outcome {
                Outcome::Passed => "passed",
                Outcome::Stopped { .. } => "stopped",
                // Its lease ran out and another instance claimed it: the run goes on there.
                Outcome::Failed { error, .. } if crate::journal::was_taken_over(error) => "taken over",
                Outcome::Failed { .. } => "failed",
            };
            let mut fields = vec![
                ("run", Value::String(id.clone())),
                ("flow", Value::String(handler.engine.flow().flow.name.clone())),
                ("status", Value::String(status.into())),
                ("ms", Value::from(report.duration.as_millis() as u64)),
            ];
            if let Outcome::Failed { step, error } = &report.outcome {
                fields.push(("step", Value::String(step.clone())));
                fields.push(("error", Value::String(error.to_string())));
            }
            match status {
                "failed" | "taken over" => this.log.warn("run ended", &fields),
                _ => this.log.info("run ended", &fields),
            }
            match status {
                "passed" => {
                    this.metrics.passed.inc();
                }
                "stopped" => {
                    this.metrics.stopped.inc();
                }
                "taken over" => {}
                _ => {
                    this.metrics.failed.inc();
                }
            }
            if journaled || status == "taken over" {
                // The journal has the run's end now (or the run is another instance's): memory
                // stays flat however many events come, and its state is asked of the journal.
                this.forget(&id);
            } else {
                this.remember(&id, status);
            }
        });
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
        self.fill(handler, &mut given)?;
        let flow = &handler.engine.flow().flow;
        handler
            .rules
            .resolve(flow, given, &self.world.secrets)
            .map_err(|errors| {
                // Told as the service sees it: the CLI's hints (`--input`) do not apply here.
                let told: Vec<String> = errors
                    .iter()
                    .map(|e| match &e.missing {
                        Some(name) => format!(
                            "input `{name}` is required but this event gave none: handler `{}` maps it in `inputs` (null or absent in the event leaves it out){}",
                            handler.spec.id,
                            if handler.fill.is_some() { " or `fill`s it from an earlier run" } else { "" }
                        ),
                        None => e.message.clone(),
                    })
                    .collect();
                told.join("; ")
            })
    }

    /// `fill`: the inputs the event left out, from the outputs of the newest earlier run whose
    /// output `match` is this run's input `match`.
    fn fill(&self, handler: &Loaded, given: &mut Vec<(String, Value)>) -> Result<(), String> {
        let (Some((from, matching, names)), Some(journal)) = (&handler.fill, &self.journal) else {
            return Ok(());
        };
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !given.iter().any(|(g, _)| g == *n))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let Some(key) = given.iter().find(|(g, _)| g == matching).map(|(_, v)| v.clone()) else {
            return Ok(());
        };
        let outputs = journal
            .outputs_where(from, matching, &key)
            .map_err(|e| format!("fill: {e}"))?;
        let Some(outputs) = outputs else {
            return Ok(());
        };
        for name in missing {
            if let Some(v) = outputs.get(name).filter(|v| !v.is_null()) {
                given.push((name.clone(), v.clone()));
            }
        }
        Ok(())
    }

    /// Where source `name` got to, as the journal last stored it (`None`: nowhere yet).
    pub fn cursor(&self, name: &str) -> Result<Option<String>, crate::journal::JournalError> {
        match &self.journal {
            Some(journal) => journal.cursor(name),
            None => Ok(None),
        }
    }

    /// Stores where source `name` got to: written with the journal's next transaction. Called
    /// once the event's run is recorded, so a restart from it loses no event.
    pub fn save_cursor(&self, name: &str, value: String) {
        if let Some(journal) = &self.journal {
            journal.queue(crate::journal::Write::cursor(name, value));
        }
    }

    /// Stores where source `name` got to, written without waiting as [`Runtime::save_cursor`]
    /// but with the writer woken for it: a position held back until an event's run was queued
    /// ([`Runtime::take_streamed`]) may have no write of a run after it to go along with.
    pub fn store_cursor(&self, name: &str, value: String) {
        let Some(journal) = &self.journal else { return };
        // Submitted when called; waited for elsewhere, to say so when it fails.
        let stored = journal.durable(crate::journal::Write::cursor(name, value));
        let log = self.log.clone();
        tokio::spawn(async move {
            if let Err(e) = stored.await {
                let fields = [("error", Value::String(e.to_string()))];
                log.warn("cannot store the position (the next one stores it)", &fields);
            }
        });
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
            let _ = log.commit(log.ended(status, Value::Null, error));
        }
        self.remember(id, status);
    }

    /// What became of run `id`: what this process remembers, else the journal's word (what
    /// it has committed: this process's own writes still queued are remembered).
    pub fn state(&self, id: &str) -> Option<String> {
        let remembered = self.remembered(id);
        // A run queued here is run by whichever instance claims it: once the journal has it,
        // the journal knows better.
        if let Some(status) = remembered.as_ref().filter(|s| *s != "queued") {
            return Some(status.clone());
        }
        let journal = self.journal.as_ref()?;
        let committed = journal.find_committed(id).ok().flatten().map(|row| row.status);
        committed.or(remembered)
    }

    /// What this process remembers of run `id`.
    fn remembered(&self, id: &str) -> Option<String> {
        self.states.lock().ok().and_then(|s| s.get(id).cloned())
    }

    /// Marks `id` as running unless it is known: its state when it is.
    fn claim(&self, id: &str) -> Result<(), String> {
        let mut states = self.states.lock().map_err(|_| "unavailable".to_string())?;
        if let Some(status) = states.get(id) {
            return Err(status.clone());
        }
        Self::bounded(&mut states, id);
        states.insert(id.to_string(), "running".into());
        Ok(())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut states) = self.states.lock() {
            states.remove(id);
        }
    }

    fn bounded(states: &mut HashMap<String, String>, id: &str) {
        if states.len() >= REMEMBERED && !states.contains_key(id) {
            // Forget finished runs first (the journal, when there is one, still has them);
            // a bound either way.
            states.retain(|_, s| s == "running");
        }
    }

    fn remember(&self, id: &str, status: &str) {
        if let Ok(mut states) = self.states.lock() {
            Self::bounded(&mut states, id);
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

    /// Whether the journal (if any) answers and the subscription (if any) is up.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.journal.as_ref().is_some_and(|j| j.flush().is_err()) {
            return Err("the journal cannot be written");
        }
        let (needed, up) = &self.subscription;
        // A standby instance is ready: it takes webhook events, and the subscription over
        // when the instance holding it goes.
        if needed.load(Ordering::Relaxed)
            && !up.load(Ordering::Relaxed)
            && !self.standby.load(Ordering::Relaxed)
        {
            return Err("not subscribed to the Pub/Sub API");
        }
        Ok(())
    }

    /// The journal, when several machines share it (PostgreSQL).
    pub fn shared_journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref().filter(|j| j.shared())
    }

    /// Writes out what the journal holds in memory (on shutdown).
    pub fn flush(&self) {
        if let Some(journal) = &self.journal {
            let _ = journal.flush();
        }
    }
}
