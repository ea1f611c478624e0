//! The journal: a durable record of runs and their step attempts, so a crash never repeats a
//! request that was done nor strands what a run created (a Pending Service Routing record).
//!
//! One [`Store`] trait holds the storage (SQLite embedded, PostgreSQL shared); a
//! [`Journal`] in front of it commits in groups: every write waiting — from any run — goes
//! into the next transaction, a run waits only for the writes that must be durable (an
//! attempt before it is sent, a step's end), and concurrent runs share commits. [`RunJournal`] is one run's view, the engine's [`RunLog`](crate::engine::RunLog): it masks
//! secrets before anything is queued, so no secret ever reaches the store.
//!
//! The schema is documented in `docs/journal.md`.

use std::sync::atomic::Ordering;

mod intents;
mod postgres;
mod postgres_tls;
mod run_log;
mod runs;
mod sqlite;
mod url;
mod write_json;

pub use postgres::PostgresStore;
pub use run_log::{Masks, RunJournal, resume_of};
pub use runs::{FlowRuns, RunsError};
pub use sqlite::SqliteStore;
pub use url::clip_password;

/// How a store tells that a run id is in the journal already (SQLite's own words).
pub(crate) const RUN_ID_TAKEN: &str = "UNIQUE constraint failed: runs.id";

/// How a store tells that a write of run `run`'s progress was refused because another process
/// owns the run now (it claimed the run when this one's lease ran out, or took it over by hand
/// with `runs resume --force`): nothing more of the run is written or sent here.
pub(crate) fn taken_over(run: &str) -> String {
    format!("run `{run}` {TAKEN_OVER}: this one stops it without sending more")
}

const TAKEN_OVER: &str = "was taken over by another flowrun process";

/// Whether a run's failure `message` is the journal refusing its writes because another process
/// took the run over (see `taken_over`): the run goes on there, it did not fail.
pub fn was_taken_over(message: &str) -> bool {
    message.contains(TAKEN_OVER)
}

use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Mutex;

/// Why the journal could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalError {
    /// The `--journal` URL is not one flowrun knows.
    Url(String),
    /// The store failed (disk full, a locked or corrupt file, a newer schema, ...).
    Store(String),
    /// No run has this id.
    NoSuchRun(String),
}

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Url(e) => write!(f, "{e}"),
            JournalError::Store(e) => write!(f, "journal: {e}"),
            JournalError::NoSuchRun(id) => write!(f, "the journal has no run `{id}`"),
        }
    }
}

/// One change to the journal. A run's writes are applied in the order they were made.
///
/// Serialized as JSON into a process's intent log (see `journal/intents.rs`), read back when a
/// process that died left one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Write {
    /// A run begins: its flow, its inputs (secret inputs left out) and when.
    RunStarted(RunStart),
    /// The run's flow-level `vars`, once rendered.
    Vars {
        /// The run.
        run: String,
        /// The rendered vars, secrets masked.
        vars: Value,
    },
    /// An attempt is about to be sent.
    AttemptSent {
        /// The run.
        run: String,
        /// The step sending it.
        step: String,
        /// `steps` or `finally`.
        #[serde(deserialize_with = "word")]
        phase: Word,
        /// The attempt's number within the step, from 1.
        number: u32,
        /// The request as stored (secrets masked, no `Authorization`), JSON text.
        request: Box<RawValue>,
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// An attempt was answered (a status) or failed (an error).
    AttemptAnswered {
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// The attempt's number.
        number: u32,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// The transport error, when there was none.
        error: Option<String>,
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// A step ended.
    StepDone {
        /// The run.
        run: String,
        /// The step.
        step: String,
        /// `steps` or `finally`.
        #[serde(deserialize_with = "word")]
        phase: Word,
        /// `ok`, `skipped`, `stopped`, `failed` or `not run`.
        #[serde(deserialize_with = "word")]
        status: Word,
        /// What later steps read as `steps.<id>`, secrets masked, JSON text.
        slot: Box<RawValue>,
        /// The step's saved values, secrets masked, JSON text.
        saved: Box<RawValue>,
        /// The failure as data (kind, message, code), secrets masked, JSON text.
        error: Option<Box<RawValue>>,
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// A process takes a run over (a resume or a cancel): `owner` as [`owner_here`] makes it.
    Claimed {
        /// The run.
        run: String,
        /// The process now running it.
        owner: String,
    },
    /// A run ended (or was cancelled).
    RunFinished {
        /// The run.
        run: String,
        /// `passed`, `stopped`, `failed` or `cancelled`.
        status: String,
        /// The outputs, secrets masked.
        outputs: Value,
        /// The failure's message, secrets masked.
        error: Option<String>,
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// Where a source of events has got to (a Pub/Sub replay id), to go on from after a restart.
    Cursor {
        /// The source, such as `pubsub:/event/Partner_Event__e`.
        name: String,
        /// Its position, as text.
        value: String,
        /// Milliseconds since the Unix epoch.
        at_ms: i64,
    },
    /// How far the store has the intent log of process `token` (see `journal/intents.rs`):
    /// every group up to sequence number `seq`; `None` when the log is gone. Only a SQLite
    /// journal has intent logs.
    Applied {
        /// The log.
        token: String,
        /// Its last group the store has.
        seq: Option<u64>,
    },
}

/// A word of a write that is one of a few: a phase, a step's status. (A name of its own: serde
/// would take a `&'static str` field for text borrowed from what it reads.)
pub type Word = &'static str;

/// A [`Word`], read back.
fn word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    const WORDS: &[&str] = &[
        "steps", "finally", "ok", "skipped", "stopped", "failed", "not run",
    ];
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    WORDS
        .iter()
        .find(|w| **w == text)
        .copied()
        .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a phase or a step's status")))
}

impl Write {
    /// Source `name` got to `value`, now.
    pub fn cursor(name: impl Into<String>, value: String) -> Write {
        Write::Cursor {
            name: name.into(),
            value,
            at_ms: now_ms(),
        }
    }

    /// The run the write is about (a cursor's name for a cursor).
    pub fn run(&self) -> &str {
        match self {
            Write::RunStarted(start) => &start.id,
            Write::Vars { run, .. }
            | Write::AttemptSent { run, .. }
            | Write::AttemptAnswered { run, .. }
            | Write::StepDone { run, .. }
            | Write::Claimed { run, .. }
            | Write::RunFinished { run, .. } => run,
            Write::Cursor { name, .. } => name,
            Write::Applied { token, .. } => token,
        }
    }
}

/// A run's first record.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunStart {
    /// The run's id, unique in the journal.
    pub id: String,
    /// The flow file, as given.
    pub flow_path: String,
    /// The flow's `name`.
    pub flow_name: String,
    /// SHA-256 of the flow file's text, hex: a resume refuses a changed flow.
    pub flow_hash: String,
    /// The inputs, secret inputs left out.
    pub inputs: Value,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Written as `queued`, owned by no one: a service sharing the journal hands the run to
    /// whichever instance claims it (see [`Store::claim`]). Otherwise `running`, owned here.
    pub queued: bool,
    /// The run's `vars`, secrets masked, when they were rendered before the start was written
    /// (they go in its row, one write fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vars: Option<Value>,
}

/// A run a process claimed from a shared journal (see [`Store::claim`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The run's id.
    pub id: String,
    /// Its flow file, as the journal records it.
    pub flow_path: String,
    /// It was queued, so nothing of it was sent yet: it simply runs (no need to read its steps).
    pub fresh: bool,
    /// Its inputs (secret inputs left out).
    pub inputs: Value,
    /// When it was queued, milliseconds since the Unix epoch: its deadline counts from then.
    pub started_ms: i64,
}

/// A run as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRow {
    /// The run's id.
    pub id: String,
    /// The flow's `name`.
    pub flow: String,
    /// The flow file.
    pub flow_path: String,
    /// `queued`, `running`, `passed`, `stopped`, `failed` or `cancelled`.
    pub status: String,
    /// When it started, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// When it started or, once finished, when it ended; milliseconds since the Unix epoch.
    pub updated_ms: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Everything the journal holds of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetail {
    /// The run as listed.
    #[serde(flatten)]
    pub row: RunRow,
    /// SHA-256 of the flow file when the run started.
    pub flow_hash: String,
    /// Its inputs (secret inputs left out).
    pub inputs: Value,
    /// Its flow-level vars, once rendered (null before).
    pub vars: Value,
    /// Its outputs, once finished.
    pub outputs: Value,
    /// The process that runs it (`BOOT-ID:PID`, see [`owner_here`]), when known.
    pub owner: Option<String>,
    /// Its steps, in the order they ended.
    pub steps: Vec<StepRow>,
    /// Its attempts, in the order they were sent.
    pub attempts: Vec<AttemptRow>,
}

impl RunDetail {
    /// The inputs the run started with, as name and value pairs to resolve again (secret
    /// inputs were never stored).
    pub fn given_inputs(&self) -> Vec<(String, Value)> {
        self.inputs
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
impl RunDetail {
    /// Each attempt as `(step, number, status, answered)`, in order.
    pub(crate) fn attempt_states(&self) -> Vec<(&str, u32, Option<u16>, bool)> {
        self.attempts
            .iter()
            .map(|a| (a.step.as_str(), a.number, a.status, a.answered))
            .collect()
    }
}

/// A step that ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepRow {
    /// The step's id.
    pub step: String,
    /// `steps` or `finally`.
    pub phase: String,
    /// How it ended.
    pub status: String,
    /// What later steps read as `steps.<id>`.
    pub slot: Value,
    /// Its saved values.
    pub saved: Value,
    /// Its failure as data.
    pub error: Value,
}

/// An attempt written down before it was sent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptRow {
    /// The step.
    pub step: String,
    /// `steps` or `finally`.
    pub phase: String,
    /// Its number within the step.
    pub number: u32,
    /// The request as stored.
    pub request: Value,
    /// The answer's status, when one was recorded.
    pub status: Option<u16>,
    /// The transport error, when one was recorded.
    pub error: Option<String>,
    /// Whether an answer or an error was recorded: `false` is a request in doubt.
    pub answered: bool,
}

/// Where a journal keeps its records. The journal calls it from one thread at a time.
pub trait Store: Send {
    /// Applies each group of writes in order, all in one transaction; a group that fails
    /// leaves nothing behind and does not stop the others. One result per group, or the
    /// transaction's error when nothing was written.
    fn write(&self, groups: &[&[Write]]) -> Result<Vec<Result<(), JournalError>>, JournalError>;
    /// [`Store::write`] with the transaction's error as every group's.
    fn apply(&self, groups: &[&[Write]]) -> Vec<Result<(), JournalError>> {
        self.write(groups).unwrap_or_else(|e| vec![Err(e); groups.len()])
    }
    /// The path of the journal's file, when writes may go to an intent log beside it first
    /// (see `journal/intents.rs`): a SQLite file.
    fn intent_log_at(&self) -> Option<&str> {
        None
    }
    /// Writes into the store the intent logs of processes that died (see
    /// `journal/intents.rs`): done when the store opens, and every second by a writer behind an
    /// intent log (another process sharing the file may die meanwhile).
    fn write_back(&self) -> Result<(), JournalError> {
        Ok(())
    }
    /// Called after the runs waiting for a transaction were answered: upkeep that need not
    /// hold them up (the SQLite journal restarts its log here).
    fn after_commit(&self) {}
    /// Runs, newest first; only unfinished ones with `unfinished`.
    fn runs(&self, unfinished: bool, limit: usize) -> Result<Vec<RunRow>, JournalError>;
    /// One run with its steps and attempts.
    fn run(&self, id: &str) -> Result<Option<RunDetail>, JournalError>;
    /// Deletes finished runs last written before `before_ms`; how many.
    fn prune(&self, before_ms: i64) -> Result<u64, JournalError>;
    /// The position source `name` last stored.
    fn cursor(&self, name: &str) -> Result<Option<String>, JournalError>;
    /// The outputs of the newest run of `flow_path` that ended well with output `key` equal to
    /// `value`.
    fn outputs_where(&self, flow_path: &str, key: &str, value: &Value)
    -> Result<Option<Value>, JournalError>;
    /// Whether processes on several machines share this store (PostgreSQL): then only one of
    /// them at a time may hold a source such as a Pub/Sub subscription.
    fn shared(&self) -> bool {
        false
    }
    /// Takes the lead of `name` for as long as this process lives (its connection stays
    /// open): `false` while another process holds it. A store only this machine uses needs no
    /// lead: always `true`.
    fn lead(&self, _name: &str) -> Result<bool, JournalError> {
        Ok(true)
    }
    /// Claims at most `most` runs of the flows at `flows` for `owner` until `until_ms`: queued
    /// ones, and running ones whose lease ran out before `now_ms` (their owner stopped renewing
    /// it: it died). Each is `running`, owned by `owner`, when this returns. Several processes
    /// claiming at once never get the same run. Only a shared store queues runs.
    fn claim(
        &self,
        _owner: &str,
        _flows: &[String],
        _most: usize,
        _until_ms: i64,
        _now_ms: i64,
    ) -> Result<Vec<Claimed>, JournalError> {
        Ok(Vec::new())
    }
    /// Extends to `until_ms` the lease of every running run `owner` holds; how many.
    fn renew(&self, _owner: &str, _until_ms: i64) -> Result<u64, JournalError> {
        Ok(0)
    }
    /// How many runs wait to be claimed.
    fn queued(&self) -> Result<u64, JournalError> {
        Ok(0)
    }
    /// Something that is notified when another process queues a run (a shared store).
    fn queue_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
    /// Claims, renewals and the queue's depth, callable without waiting for the store's
    /// writes (a shared store, whose leases must not wait behind a long write).
    fn leases(&self) -> Option<std::sync::Arc<dyn LeaseStore>> {
        None
    }
}

/// The claims and leases of a shared store, on a connection of their own: see
/// [`Store::claim`], [`Store::renew`] and [`Store::queued`].
pub trait LeaseStore: Send + Sync {
    /// See [`Store::claim`].
    fn claim(
        &self,
        owner: &str,
        flows: &[String],
        most: usize,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Claimed>, JournalError>;
    /// See [`Store::renew`].
    fn renew(&self, owner: &str, until_ms: i64) -> Result<u64, JournalError>;
    /// See [`Store::queued`].
    fn queued(&self) -> Result<u64, JournalError>;
}

/// Where the result of a write goes.
enum Reply {
    /// To a run awaiting it.
    Awaited(tokio::sync::oneshot::Sender<Result<(), JournalError>>),
    /// To a thread blocked on it.
    Blocked(std::sync::mpsc::Sender<Result<(), JournalError>>),
}

impl Reply {
    fn send(self, result: Result<(), JournalError>) {
        // A caller that went away (a dropped future) does not need its answer.
        let _ = match self {
            Reply::Awaited(tx) => tx.send(result).map_err(|_| ()),
            Reply::Blocked(tx) => tx.send(result).map_err(|_| ()),
        };
    }
}

/// A group going ahead of the store: done when it is durable (see [`Journal::durable_ahead`]).
pub type AheadDone = std::pin::Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send + 'static>>;

/// Where a group that went ahead of the store is (see [`Journal::enter_ahead`]).
enum Entered {
    /// Kept for the intent log under this sequence number.
    Log(u64),
    /// Waiting for the store (the log failed).
    Store(tokio::sync::oneshot::Receiver<Result<(), JournalError>>),
}

/// What the store answered, or that the writer went away.
async fn stored(rx: tokio::sync::oneshot::Receiver<Result<(), JournalError>>) -> Result<(), JournalError> {
    rx.await
        .unwrap_or_else(|_| Err(JournalError::Store(WRITER_DIED.into())))
}

/// A group of writes waiting for a transaction.
struct Entry {
    writes: Vec<Write>,
    /// Who waits for the store to have them.
    reply: Option<Reply>,
    /// Its sequence number in the intent log; 0 when not in one.
    seq: u64,
    /// Whether it went ahead of the store: its run went on once it was in the intent log.
    ahead: bool,
}

/// Writes waiting for a transaction, and whether one is being written now.
#[derive(Default)]
struct Pending {
    writes: Vec<Entry>,
    writing: bool,
    /// The journal is going away: its writer thread, if any, stops once nothing is left.
    closed: bool,
    /// The intent log, when writes go ahead of the store (see `journal/intents.rs`).
    ahead: Option<intents::Ahead>,
    /// The writer thread panicked: every write fails (the intent log stays for the next
    /// process that opens the journal).
    dead: bool,
    /// How many of `writes` someone waits for (the writer does not gather more for them).
    awaited: usize,
    /// The writer thread waits for something to write (it is woken for anything), not for
    /// more to gather (it is woken only for a write someone waits for).
    idle: bool,
    /// Runs waiting for groups of the transaction being written (the intent log could not take
    /// them meanwhile), by sequence number.
    late: Vec<(u64, Reply)>,
}

/// How long the writer gathers groups that went ahead before it writes them (see
/// [`Inner::write_until_closed`]).
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// What a run is told if the journal cannot tell whether the store has its group.
const LOST_TRACK: &str = "the journal cannot tell whether it has this attempt; it was not sent";

/// What every write is told once the writer thread panicked.
const WRITER_DIED: &str = "the journal's writer stopped (a panic); what the runs wrote down is kept for the next flowrun that opens the journal";

/// How often a writer behind an intent log writes back the logs of processes that died beside
/// it (see [`Store::write_back`]).
const WRITE_BACK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How many groups may wait for the writer before runs wait for it too (see
/// [`Journal::durable_ahead`]): a few transactions' worth (a group is a few KB, up to the
/// largest body a run may keep: `--max-body`).
const MOST_AHEAD: usize = 1024;

/// The most writes one transaction takes.
const MOST_PER_TRANSACTION: usize = 4096;

/// A store with group commit in front (see the module docs). No thread of its own: the run
/// that asks for a durable write while none is being written writes everything waiting
/// itself (no hop to another thread: at concurrency 1 a commit costs what SQLite takes); runs
/// that ask meanwhile wait, and the writer takes their writes in its next transaction.
pub struct Journal {
    inner: std::sync::Arc<Inner>,
    /// With many runs at once on several threads, a thread of its own writes (see
    /// [`Journal::with_writer`]); otherwise the run that asks writes.
    writer: Option<std::thread::JoinHandle<()>>,
    /// Whether runs' writes go ahead of the store, into an intent log (see
    /// [`Journal::durable_ahead`]).
    ahead: bool,
}

struct Inner {
    store: Mutex<Box<dyn Store>>,
    /// The store's claims and leases, when it has them apart from its writes.
    leases: Option<std::sync::Arc<dyn LeaseStore>>,
    /// Whether several processes share the store: asked once, so that asking again does not
    /// wait for the store's lock (held by the writer for a whole transaction).
    shared: bool,
    pending: Mutex<Pending>,
    /// Wakes the writer thread when there is something to write.
    wake: std::sync::Condvar,
    /// How many groups wait for the writer (as of the last change under `pending`'s lock).
    backlog: std::sync::atomic::AtomicUsize,
    /// The intent log could not be written to: runs wait for the store again.
    log_failed: std::sync::atomic::AtomicBool,
    /// Whether the store ever refused a group that went ahead (see [`intents::Ahead::refuse`]):
    /// until then a run that starts or ends has no refusal to forget, and does not take the
    /// lock for it.
    refused_any: std::sync::atomic::AtomicBool,
}

/// Clears `writing` if writing panicked, so no later write waits forever.
struct Writing<'a>(Option<&'a Inner>);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(inner) = self.0 {
            inner.lock_pending().writing = false;
        }
    }
}

impl Journal {
    /// Opens the journal a URL names: `sqlite:PATH` (created when missing).
    pub fn open(url: &str) -> Result<Journal, JournalError> {
        Ok(Journal::new(url::open(url, true)?))
    }

    /// Opens the journal a URL names, which must exist already (to read or resume runs).
    pub fn open_existing(url: &str) -> Result<Journal, JournalError> {
        Ok(Journal::new(url::open(url, false)?))
    }

    /// A journal over `store`.
    pub fn new(store: Box<dyn Store>) -> Journal {
        Journal {
            inner: std::sync::Arc::new(Inner {
                leases: store.leases(),
                shared: store.shared(),
                store: Mutex::new(store),
                pending: Mutex::new(Pending::default()),
                wake: std::sync::Condvar::new(),
                backlog: Default::default(),
                log_failed: Default::default(),
                refused_any: Default::default(),
            }),
            writer: None,
            ahead: false,
        }
    }

    /// The journal for runs: with a writer thread of its own when many runs go at once on
    /// several threads (they never stop to write, so more writes wait for each transaction:
    /// measured at concurrency 64, see bench/journal.sh), and always when the store can take
    /// an intent log (a SQLite file): runs' writes then go ahead of the store (see
    /// [`Journal::durable_ahead`]) and the writer thread commits them behind the runs. Without
    /// either, the run that asks writes (no hop between threads for each commit).
    pub fn for_runs(self, many: bool) -> Result<Journal, JournalError> {
        let intents = self.lock_store().intent_log_at().is_some();
        if many || intents {
            self.with_writer()
        } else {
            Ok(self)
        }
    }

    /// The same journal with a writer thread of its own, and an intent log when the store can
    /// take one (see [`Journal::for_runs`]).
    pub fn with_writer(mut self) -> Result<Journal, JournalError> {
        let db = self.lock_store().intent_log_at().map(str::to_string);
        if let Some(db) = db {
            self.inner.lock_pending().ahead = Some(intents::Ahead::new(intents::IntentLog::create(&db)?));
            self.ahead = true;
        }
        let inner = self.inner.clone();
        let writer = std::thread::Builder::new()
            .name("flowrun-journal".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| inner.write_until_closed());
                if std::panic::catch_unwind(run).is_err() {
                    inner.writer_died();
                }
            })
            .map_err(|e| JournalError::Store(format!("cannot start the journal's writer: {e}")))?;
        self.writer = Some(writer);
        Ok(self)
    }

    /// Adds `writes`, which `reply` waits for the store to have: the writer thread writes them,
    /// or (without one) the caller does unless a transaction is being written, everything
    /// waiting, until nothing is left.
    fn submit(&self, writes: Vec<Write>, reply: Reply) {
        let inner = &self.inner;
        let mut pending = inner.lock_pending();
        if pending.dead {
            reply.send(Err(JournalError::Store(WRITER_DIED.into())));
            return;
        }
        let entry = Entry {
            writes,
            reply: Some(reply),
            seq: 0,
            ahead: false,
        };
        if self.writer.is_some() {
            return inner.push_for_writer(&mut pending, entry);
        }
        inner.push(&mut pending, entry);
        if pending.writing {
            return;
        }
        pending.writing = true;
        let mut unwinding = Writing(Some(inner));
        loop {
            pending = inner.write_some(pending);
            if pending.writes.is_empty() {
                pending.writing = false;
                unwinding.0 = None;
                return;
            }
        }
    }

    /// Enters `writes`, a group of a run going ahead of the store (see
    /// [`Journal::durable_ahead`]): kept for the intent log, or, once the log failed, waiting
    /// for the store.
    fn enter_ahead(&self, writes: Vec<Write>) -> Result<Entered, (JournalError, Vec<Write>)> {
        let inner = &self.inner;
        // Serialized before the lock is taken: runs on other threads are not held up by it.
        let frame = intents::frame(&writes);
        let mut pending = inner.lock_pending();
        if pending.dead {
            return Err((JournalError::Store(WRITER_DIED.into()), writes));
        }
        let seq = match inner.enter_log(&mut pending, &writes, Some(frame), true) {
            Ok(seq) => seq,
            Err(e) => return Err((e, writes)),
        };
        let (reply, entered) = match seq {
            0 => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                (Some(Reply::Awaited(tx)), Entered::Store(rx))
            }
            seq => (None, Entered::Log(seq)),
        };
        let entry = Entry {
            writes,
            reply,
            seq,
            ahead: seq > 0,
        };
        inner.push_for_writer(&mut pending, entry);
        Ok(entered)
    }

    fn lock_store(&self) -> std::sync::MutexGuard<'_, Box<dyn Store>> {
        self.inner.lock_store()
    }

    /// Queues `write`: it is written with the next durable write, in order.
    pub fn queue(&self, write: Write) {
        self.queue_all(vec![write]);
    }

    /// Queues `writes` as one group: written together or not at all.
    pub fn queue_all(&self, writes: Vec<Write>) {
        let frame = (self.ahead && !writes.is_empty()).then(|| intents::frame(&writes));
        let mut pending = self.inner.lock_pending();
        if pending.dead {
            return;
        }
        // A group that cannot be written down (over 4 GiB) still goes to the store.
        let seq = self
            .inner
            .enter_log(&mut pending, &writes, frame, false)
            .unwrap_or(0);
        self.inner.push(
            &mut pending,
            Entry {
                writes,
                reply: None,
                seq,
                ahead: false,
            },
        );
        // Behind an intent log the writer takes it in its next transaction (it gathers for a
        // moment anyway): a run's end queued last, with nothing after it, is not left in memory
        // (a kill would lose it) nor unseen by other processes.
        if self.ahead && pending.idle {
            self.inner.wake.notify_one();
        }
    }

    /// Writes `write` (after everything queued before it); the future ends when it is durable.
    pub fn durable(&self, write: Write) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.durable_all(vec![write])
    }

    /// Writes `writes` as one group (all or none, after everything queued before them); the
    /// future ends when they are durable.
    pub fn durable_all(
        &self,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(writes, Reply::Awaited(tx));
        stored(rx)
    }

    /// Writes `writes` as one group of a run's; the future ends when they are durable: in the
    /// intent log when the journal has one (the store has them a moment later, and a run the
    /// store then refuses is refused its next group), else in the store. The group comes back
    /// when it could not go ahead at all (it is in neither the intent log nor the store):
    /// refused before it entered, or too big to be written down.
    pub fn durable_ahead(&self, writes: Vec<Write>) -> Result<AheadDone, (JournalError, Vec<Write>)> {
        // Runs that go ahead faster than the store takes their writes would grow the backlog
        // without end: past a bound, a run waits for the store as without an intent log.
        if !self.ahead
            || self.inner.backlog.load(Ordering::Relaxed) >= MOST_AHEAD
            || self.inner.log_failed.load(Ordering::Relaxed)
        {
            return Ok(Box::pin(self.durable_all(writes)));
        }
        let run = writes.first().map(|w| w.run().to_string()).unwrap_or_default();
        let entered = self.enter_ahead(writes)?;
        let inner = self.inner.clone();
        Ok(Box::pin(async move {
            let seq = match entered {
                Entered::Log(seq) => seq,
                Entered::Store(rx) => return stored(rx).await,
            };
            // The runs that go on at the same moment (their answers read in one turn of the
            // runtime) enter their groups first: the first of them back writes them all to the
            // log with one `write(2)`.
            tokio::task::yield_now().await;
            match inner.settle(seq, &run)? {
                Some(rx) => stored(rx).await,
                None => Ok(()),
            }
        }))
    }

    /// Makes the intent log's file refuse writes (a full disk), for tests.
    #[cfg(test)]
    pub(crate) fn fail_intent_log_for_test(&self) {
        if let Some(ahead) = self.inner.lock_pending().ahead.as_mut() {
            ahead.fail_for_test();
        }
    }

    /// Has the journal refuse the groups of `run` as if the store had refused one, for tests.
    #[cfg(test)]
    pub(crate) fn refuse_for_test(&self, run: &str) {
        if let Some(ahead) = self.inner.lock_pending().ahead.as_mut() {
            ahead.refuse(run, 0, JournalError::Store(format!("refused for a test: {run}")));
            self.inner.refused_any.store(true, Ordering::Relaxed);
        }
    }

    /// Forgets that the store refused a group of `run` (the run is over).
    pub fn forget_refusal(&self, run: &str) {
        if !self.ahead || !self.inner.refused_any.load(Ordering::Relaxed) {
            return;
        }
        if let Some(ahead) = self.inner.lock_pending().ahead.as_mut() {
            ahead.forget(run);
        }
    }

    /// Writes `write` and blocks until it is durable (for callers outside a run).
    pub fn commit(&self, write: Write) -> Result<(), JournalError> {
        self.commit_all(vec![write])
    }

    /// Writes `writes` as one group and blocks until they are durable.
    pub fn commit_all(&self, writes: Vec<Write>) -> Result<(), JournalError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(writes, Reply::Blocked(tx));
        rx.recv()
            .unwrap_or_else(|_| Err(JournalError::Store(WRITER_DIED.into())))
    }

    /// Writes everything queued.
    pub fn flush(&self) -> Result<(), JournalError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(Vec::new(), Reply::Blocked(tx));
        rx.recv()
            .unwrap_or_else(|_| Err(JournalError::Store(WRITER_DIED.into())))
    }

    /// Runs, newest first (see [`Store::runs`]).
    pub fn runs(&self, unfinished: bool, limit: usize) -> Result<Vec<RunRow>, JournalError> {
        self.flush()?;
        self.lock_store().runs(unfinished, limit)
    }

    /// One run with its steps and attempts.
    pub fn run(&self, id: &str) -> Result<RunDetail, JournalError> {
        self.flush()?;
        self.lock_store()
            .run(id)?
            .ok_or_else(|| JournalError::NoSuchRun(id.to_string()))
    }

    /// Run `id` as listed, if the journal has it.
    pub fn find(&self, id: &str) -> Result<Option<RunRow>, JournalError> {
        self.flush()?;
        Ok(self.lock_store().run(id)?.map(|d| d.row))
    }

    /// Run `id` as last committed: without waiting for the writes still queued (a caller that
    /// queued writes for `id` itself knows them).
    pub fn find_committed(&self, id: &str) -> Result<Option<RunRow>, JournalError> {
        Ok(self.lock_store().run(id)?.map(|d| d.row))
    }

    /// Whether processes on several machines share the journal (see [`Store::shared`]).
    pub fn shared(&self) -> bool {
        self.inner.shared
    }

    /// Takes the lead of `name` for this process's life (see [`Store::lead`]).
    pub fn lead(&self, name: &str) -> Result<bool, JournalError> {
        self.lock_store().lead(name)
    }

    /// Claims runs to execute (see [`Store::claim`]).
    pub fn claim(
        &self,
        owner: &str,
        flows: &[String],
        most: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<Claimed>, JournalError> {
        let now = now_ms();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        match &self.inner.leases {
            Some(leases) => leases.claim(owner, flows, most, until, now),
            None => self.lock_store().claim(owner, flows, most, until, now),
        }
    }

    /// Extends the leases `owner` holds by `lease` from now (see [`Store::renew`]).
    pub fn renew(&self, owner: &str, lease: std::time::Duration) -> Result<u64, JournalError> {
        let until = now_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        match &self.inner.leases {
            Some(leases) => leases.renew(owner, until),
            None => self.lock_store().renew(owner, until),
        }
    }

    /// How many runs wait to be claimed (see [`Store::queued`]).
    pub fn queued(&self) -> Result<u64, JournalError> {
        match &self.inner.leases {
            Some(leases) => leases.queued(),
            None => self.lock_store().queued(),
        }
    }

    /// Notified when a run is queued (see [`Store::queue_signal`]).
    pub fn queue_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.lock_store().queue_signal()
    }

    /// The position source `name` last stored (see [`Write::Cursor`]).
    pub fn cursor(&self, name: &str) -> Result<Option<String>, JournalError> {
        self.flush()?;
        self.lock_store().cursor(name)
    }

    /// The outputs of the newest run of the flow at `flow_path` (as the journal records it)
    /// that passed or stopped, with output `key` equal to `value`.
    pub fn outputs_where(
        &self,
        flow_path: &str,
        key: &str,
        value: &Value,
    ) -> Result<Option<Value>, JournalError> {
        self.flush()?;
        self.lock_store().outputs_where(flow_path, key, value)
    }

    /// Deletes finished runs last written before `before_ms`.
    pub fn prune(&self, before_ms: i64) -> Result<u64, JournalError> {
        self.flush()?;
        self.lock_store().prune(before_ms)
    }
}

impl Inner {
    /// Enters `writes` (as `frame`, made before the lock was taken) in the intent log, when the
    /// journal has one: its sequence number there (0 when not in it). With `ahead`, refused when
    /// its run was refused, or when the group cannot be written down.
    fn enter_log(
        &self,
        pending: &mut Pending,
        writes: &[Write],
        frame: Option<Result<Vec<u8>, JournalError>>,
        ahead: bool,
    ) -> Result<u64, JournalError> {
        let (Some(log), Some(frame)) = (pending.ahead.as_mut(), frame) else {
            return Ok(0);
        };
        let refusal = writes
            .first()
            .filter(|_| ahead)
            .and_then(|w| log.refusal(w.run()));
        let entered = match refusal {
            Some(e) => Err(e),
            None => frame.map(|frame| log.enter(frame)),
        };
        self.note_log(log);
        entered
    }

    /// Tells the runs to come whether the intent log failed (they then wait for the store).
    fn note_log(&self, log: &intents::Ahead) {
        if log.failed() {
            self.log_failed.store(true, Ordering::Relaxed);
        }
    }

    /// Adds `entry` to what waits for the writer.
    fn push(&self, pending: &mut Pending, entry: Entry) {
        pending.writes.push(entry);
        self.backlog.store(pending.writes.len(), Ordering::Relaxed);
    }

    /// Adds `entry` for the writer thread, and wakes it when it is idle or someone waits.
    fn push_for_writer(&self, pending: &mut Pending, entry: Entry) {
        let awaited = entry.reply.is_some();
        self.push(pending, entry);
        pending.awaited += usize::from(awaited);
        if pending.idle || awaited {
            self.wake.notify_one();
        }
    }

    /// Settles the group `seq` of `run` that went ahead: durable once it is in the intent log
    /// (`None`), refused once the store refused a group of its run (taken over) or failed; when
    /// the log could not take it, what tells once the store has it.
    fn settle(
        &self,
        seq: u64,
        run: &str,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<Result<(), JournalError>>>, JournalError> {
        let mut pending = self.lock_pending();
        if pending.dead {
            return Err(JournalError::Store(WRITER_DIED.into()));
        }
        let Some(log) = pending.ahead.as_mut() else {
            return Ok(None);
        };
        // The store may have gone through the group already (the writer took it while the run
        // let others go first): refused, it is not sent.
        if let Some(e) = log.take_refused(seq).or_else(|| log.refusal(run)) {
            return Err(e);
        }
        let written = log.write_through(seq);
        self.note_log(log);
        if written.is_ok() || log.stored(seq) {
            return Ok(None);
        }
        // The log failed: the run waits for the store to have the group, waiting or being
        // written now.
        let (tx, rx) = tokio::sync::oneshot::channel();
        match pending.writes.iter().position(|e| e.seq == seq) {
            Some(at) => {
                pending.writes[at].reply = Some(Reply::Awaited(tx));
                pending.awaited += 1;
                self.wake.notify_one();
            }
            None => pending.late.push((seq, Reply::Awaited(tx))),
        }
        Ok(Some(rx))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_store(&self) -> std::sync::MutexGuard<'_, Box<dyn Store>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one transaction of what is waiting; gives the lock back.
    fn write_some<'a>(
        &'a self,
        mut pending: std::sync::MutexGuard<'a, Pending>,
    ) -> std::sync::MutexGuard<'a, Pending> {
        let take = pending.writes.len().min(MOST_PER_TRANSACTION);
        let batch: Vec<Entry> = pending.writes.drain(..take).collect();
        self.backlog.store(pending.writes.len(), Ordering::Relaxed);
        pending.awaited -= batch
            .iter()
            .filter(|e| e.reply.is_some())
            .count()
            .min(pending.awaited);
        let last = batch.iter().map(|e| e.seq).max().unwrap_or(0);
        let (marker, broken) = match pending.ahead.as_ref() {
            Some(ahead) => (ahead.marker(last), ahead.broken().cloned()),
            None => (None, None),
        };
        drop(pending);
        let store = self.lock_store();
        let outcome = match broken {
            Some(e) => Err(e),
            None => write_all(store.as_ref(), &batch, marker),
        };
        let mut pending = self.lock_pending();
        if let Some(ahead) = pending.ahead.as_mut() {
            match &outcome {
                Ok(results) => {
                    for (entry, result) in batch.iter().zip(results) {
                        if let (true, Err(e), Some(w)) = (entry.ahead, result, entry.writes.first()) {
                            ahead.refuse(w.run(), entry.seq, e.clone());
                            self.refused_any.store(true, Ordering::Relaxed);
                        }
                    }
                    ahead.applied(last);
                }
                // Groups of the log that the store does not have: the log keeps them for the
                // next process that opens the journal, and nothing more is written here.
                Err(e) if last > 0 => ahead.break_on(e.clone()),
                Err(_) => {}
            }
        }
        // Runs that found, while this transaction was written, that the log could not take
        // their group (see `Inner::settle`).
        let (late, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut pending.late)
            .into_iter()
            .partition(|(seq, _)| *seq <= last);
        pending.late = rest;
        drop(pending);
        let results = match outcome {
            Ok(results) => results,
            Err(e) => vec![Err(e); batch.len()],
        };
        for (seq, reply) in late {
            let at = batch.iter().position(|e| e.seq == seq);
            let result = at.and_then(|at| results.get(at).cloned());
            // Not in the transaction: never so (the run waits only for a group being written).
            reply.send(result.unwrap_or_else(|| Err(JournalError::Store(LOST_TRACK.into()))));
        }
        for (entry, result) in batch.into_iter().zip(results) {
            if let Some(reply) = entry.reply {
                reply.send(result);
            }
        }
        store.after_commit();
        drop(store);
        self.lock_pending()
    }

    /// The writer thread panicked: everyone waiting, and every later write, is told so; the
    /// intent log is kept (not closed) for the next process that opens the journal.
    fn writer_died(&self) {
        let mut pending = self.lock_pending();
        pending.dead = true;
        pending.writing = false;
        if let Some(ahead) = pending.ahead.as_mut() {
            ahead.break_on(JournalError::Store(WRITER_DIED.into()));
        }
        let waiting: Vec<Entry> = pending.writes.drain(..).collect();
        let late = std::mem::take(&mut pending.late);
        self.backlog.store(0, Ordering::Relaxed);
        drop(pending);
        let replies = waiting.into_iter().filter_map(|e| e.reply);
        for reply in replies.chain(late.into_iter().map(|(_, reply)| reply)) {
            reply.send(Err(JournalError::Store(WRITER_DIED.into())));
        }
    }

    /// The writer thread: writes whatever waits, sleeps when nothing does, stops when closed.
    ///
    /// With an intent log, no run waits for the store: the writer gathers what comes for up to
    /// [`GATHER`] before each transaction (unless someone waits for one), so that a commit holds
    /// many groups and writes each page of the log once, not once per group.
    fn write_until_closed(&self) {
        let mut pending = self.lock_pending();
        let mut written_back = std::time::Instant::now();
        loop {
            if pending.ahead.is_some() && written_back.elapsed() >= WRITE_BACK_EVERY {
                drop(pending);
                // A failure is told when the journal is next opened, which tries again.
                let _ = self.lock_store().write_back();
                written_back = std::time::Instant::now();
                pending = self.lock_pending();
            }
            pending.idle = true;
            while pending.writes.is_empty() && !pending.closed {
                let (next, _) = self
                    .wake
                    .wait_timeout(pending, WRITE_BACK_EVERY)
                    .unwrap_or_else(|e| e.into_inner());
                pending = next;
                if pending.ahead.is_some() && written_back.elapsed() >= WRITE_BACK_EVERY {
                    break;
                }
            }
            pending.idle = false;
            if pending.writes.is_empty() && !pending.closed {
                continue;
            }
            if pending.writes.is_empty() {
                return;
            }
            if pending.ahead.is_some() {
                let until = std::time::Instant::now() + GATHER;
                while pending.awaited == 0 && !pending.closed && pending.writes.len() < MOST_PER_TRANSACTION {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    pending = self
                        .wake
                        .wait_timeout(pending, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            pending.writing = true;
            pending = self.write_some(pending);
            pending.writing = false;
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // What was queued is written when the journal goes away (the end of a command).
        let flushed = self.flush();
        if let Some(writer) = self.writer.take() {
            self.inner.lock_pending().closed = true;
            self.inner.wake.notify_one();
            let _ = writer.join();
        }
        // The store has everything the intent log holds: it goes. Otherwise it stays, for the
        // next process that opens the journal.
        let ahead = self.inner.lock_pending().ahead.take();
        if let (Some(ahead), Ok(())) = (ahead, flushed) {
            ahead.close(|forget| self.commit(forget));
        }
    }
}

/// Writes `batch` in one transaction, with `marker` (how far the store has the intent log)
/// last: a result per entry, or the transaction's error.
fn write_all(
    store: &dyn Store,
    batch: &[Entry],
    marker: Option<Write>,
) -> Result<Vec<Result<(), JournalError>>, JournalError> {
    let mut groups: Vec<&[Write]> = batch
        .iter()
        .map(|e| e.writes.as_slice())
        .filter(|w| !w.is_empty())
        .collect();
    groups.extend(marker.as_ref().map(std::slice::from_ref));
    let mut written = if groups.is_empty() {
        Vec::new()
    } else {
        store.write(&groups)?
    }
    .into_iter();
    Ok(batch
        .iter()
        .map(|e| match e.writes.is_empty() {
            true => Ok(()),
            false => written.next().unwrap_or(Ok(())),
        })
        .collect())
}

/// This process, as a run's owner: the machine's boot id, the process id and a number drawn
/// when the process started. A run whose owner is alive on this machine is not resumed
/// elsewhere (its requests would go twice). The drawn number tells apart processes with the
/// same id in containers on one machine (each is often process 1), whose leases on a shared
/// journal must not be renewed by one another.
pub fn owner_here() -> &'static str {
    static HERE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HERE.get_or_init(|| format!("{}:{}:{:08x}", boot_id(), std::process::id(), fastrand::u32(..)))
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The process id of `owner` when it is another process still alive on this machine.
pub fn alive_elsewhere(owner: &str) -> Option<u32> {
    // `BOOT:PID:DRAWN` (or `BOOT:PID`, as journals written before the drawn number hold).
    let mut parts = owner.split(':');
    let (boot, pid) = (parts.next()?, parts.next()?);
    let pid: u32 = pid.parse().ok()?;
    let here = boot_id();
    // A zombie (killed, not yet reaped by its parent) runs nothing any more.
    let zombie = |stat: String| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    };
    let alive = !here.is_empty()
        && boot == here
        && pid != std::process::id()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !zombie(s));
    alive.then_some(pid)
}

/// Whether a run in `status` has yet to end (queued or running).
pub fn unfinished(status: &str) -> bool {
    matches!(status, "running" | "queued")
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// SHA-256 of `text`, in hex: a flow's content hash.
pub fn content_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose writes panic.
    struct Panics;

    impl Store for Panics {
        fn write(&self, _: &[&[Write]]) -> Result<Vec<Result<(), JournalError>>, JournalError> {
            panic!("a bug in a store");
        }
        fn runs(&self, _: bool, _: usize) -> Result<Vec<RunRow>, JournalError> {
            Ok(Vec::new())
        }
        fn run(&self, _: &str) -> Result<Option<RunDetail>, JournalError> {
            Ok(None)
        }
        fn prune(&self, _: i64) -> Result<u64, JournalError> {
            Ok(0)
        }
        fn cursor(&self, _: &str) -> Result<Option<String>, JournalError> {
            Ok(None)
        }
        fn outputs_where(&self, _: &str, _: &str, _: &Value) -> Result<Option<Value>, JournalError> {
            Ok(None)
        }
    }

    #[test]
    fn a_writer_that_panics_fails_every_write_instead_of_leaving_it_waiting() {
        let journal = Journal::new(Box::new(Panics)).with_writer().unwrap();
        let cursor = || Write::Cursor {
            name: "c".into(),
            value: "1".into(),
            at_ms: 1,
        };
        let first = journal.commit(cursor()).unwrap_err().to_string();
        assert!(first.contains("the journal's writer stopped"), "{first}");
        journal.queue(cursor());
        assert_eq!(journal.flush().unwrap_err().to_string(), first);
        assert_eq!(journal.commit(cursor()).unwrap_err().to_string(), first);
        drop(journal);
    }
}
