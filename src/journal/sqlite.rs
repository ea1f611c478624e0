//! The embedded journal: one SQLite file (the bundled SQLite), in WAL mode.
//!
//! `synchronous = NORMAL` in WAL mode: a committed transaction survives the process being
//! killed at any point (it is in the WAL file the moment `COMMIT` returns); a power cut may
//! lose the last commits but never leaves the file inconsistent. The schema version is SQLite's
//! `user_version`; [`MIGRATIONS`] bring an older file up to date, and a newer one is refused.

use super::{AttemptRow, JournalError, RunDetail, RunRow, StepRow, Store, Write, intents};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Mutex;

/// Each migration, in order: migration `i` brings a file from version `i` to `i + 1`.
///
/// `seq` orders the log as it was written. Run ids flowrun makes are UUIDv7 (time-ordered): the
/// key indexes grow at their right edge, so a commit writes a few pages, not one per run in
/// flight.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        flow_path   TEXT NOT NULL,
        flow_name   TEXT NOT NULL,
        flow_hash   TEXT NOT NULL,
        inputs      TEXT NOT NULL,
        vars        TEXT,
        status      TEXT NOT NULL,
        started_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL,
        outputs     TEXT,
        error       TEXT
    );
    CREATE INDEX runs_status ON runs (status, updated_ms);
    CREATE TABLE steps (
        run_id      TEXT NOT NULL,
        step        TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        phase       TEXT NOT NULL,
        status      TEXT NOT NULL,
        slot        TEXT NOT NULL,
        saved       TEXT NOT NULL,
        error       TEXT,
        at_ms       INTEGER NOT NULL,
        PRIMARY KEY (run_id, step)
    );
    CREATE TABLE attempts (
        run_id      TEXT NOT NULL,
        step        TEXT NOT NULL,
        number      INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        phase       TEXT NOT NULL,
        request     TEXT NOT NULL,
        sent_ms     INTEGER NOT NULL,
        status      INTEGER,
        error       TEXT,
        answered_ms INTEGER,
        PRIMARY KEY (run_id, step, number)
    );
",
    "
    ALTER TABLE runs ADD COLUMN owner TEXT;
",
    "
    CREATE TABLE cursors (
        name        TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
",
    // Leases: until when the owner of a queued-then-claimed run is known to be alive.
    "
    ALTER TABLE runs ADD COLUMN lease_until INTEGER;
",
    // One log of steps' ends and attempts in place of a table of each: a run's writes of one
    // group are one row (one statement, one table and one index written per request instead of
    // two of each). The rows of the old tables become rows of the log, in their order; a JSON
    // cell that cannot be read becomes null, as it was read before.
    "
    CREATE TABLE log (
        seq         INTEGER PRIMARY KEY,
        run_id      TEXT NOT NULL,
        records     TEXT NOT NULL
    );
    CREATE INDEX log_run ON log (run_id);
    INSERT INTO log (run_id, records)
    SELECT run_id, records FROM (
        SELECT run_id, seq, json_array(json_object(
            'kind', 'step', 'step', step, 'phase', phase, 'status', status,
            'slot', iif(json_valid(slot), json(slot), NULL),
            'saved', iif(json_valid(saved), json(saved), NULL),
            'error', iif(json_valid(error), json(error), NULL), 'at_ms', at_ms)) AS records
        FROM steps
        UNION ALL
        SELECT run_id, seq, CASE WHEN answered_ms IS NULL
            THEN json_array(json_object('kind', 'attempt', 'step', step, 'phase', phase,
                'number', number, 'request', iif(json_valid(request), json(request), NULL),
                'sent_ms', sent_ms))
            ELSE json_array(json_object('kind', 'attempt', 'step', step, 'phase', phase,
                'number', number, 'request', iif(json_valid(request), json(request), NULL),
                'sent_ms', sent_ms),
                json_object('kind', 'answer', 'step', step, 'number', number, 'status', status,
                'error', error, 'answered_ms', answered_ms)) END
        FROM attempts
    ) ORDER BY seq;
    DROP TABLE steps;
    DROP TABLE attempts;
",
    // How far the store has each process's intent log (see `journal/intents.rs`).
    "
    CREATE TABLE intents (
        token       TEXT PRIMARY KEY,
        applied     INTEGER NOT NULL
    );
",
];

/// How many groups of a dead process's intent log go into one transaction when it is written
/// back.
const WRITE_BACK_BATCH: usize = 1024;

/// How long a write waits for another process's transaction on the same file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A journal in one SQLite file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
    /// The file; `None` in memory.
    path: Option<String>,
    /// Copies the write-ahead log into the database file off the writers' path (see
    /// [`Checkpointer`]); `None` in memory.
    _checkpointer: Option<Checkpointer>,
    /// Set by the checkpointer after it copied the log: the writer restarts the log after its
    /// next commit (see [`Checkpointer`]).
    restart_due: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn store_error(e: rusqlite::Error) -> JournalError {
    JournalError::Store(e.to_string())
}

impl SqliteStore {
    /// Opens (or creates) the journal file at `path` and brings its schema up to date.
    pub fn open(path: &str) -> Result<SqliteStore, JournalError> {
        let connection = if path == ":memory:" {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        }
        .map_err(|e| JournalError::Store(format!("cannot open `{path}`: {e}")))?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(store_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;",
            )
            .map_err(|e| JournalError::Store(format!("`{path}` is not a journal flowrun can use: {e}")))?;
        migrate(&connection, path)?;
        let restart_due = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checkpointer = match path {
            ":memory:" => None,
            _ => Some(Checkpointer::start(path, restart_due.clone())?),
        };
        let store = SqliteStore {
            connection: Mutex::new(connection),
            path: (path != ":memory:").then(|| path.to_string()),
            _checkpointer: checkpointer,
            restart_due,
        };
        store.write_back_dead_logs()?;
        Ok(store)
    }

    /// Writes into the store the groups of every intent log whose process died, past what the
    /// store has of each, and deletes the logs (see `journal/intents.rs`). A group the store
    /// refuses (a run another process took over) is left out, as it was while it ran.
    fn write_back_dead_logs(&self) -> Result<(), JournalError> {
        let Some(path) = self.path.as_deref() else {
            return Ok(());
        };
        for log in intents::dead_logs(path)? {
            let token = log.token().to_string();
            let failed = |e: JournalError| {
                JournalError::Store(format!(
                    "cannot write back the intent log of a process that stopped ({path}.intent.{token}): {e}"
                ))
            };
            let applied: u64 = self
                .lock()
                .query_row("SELECT applied FROM intents WHERE token = ?1", [&token], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()
                .map_err(store_error)
                .map_err(failed)?
                .map_or(0, |n| u64::try_from(n).unwrap_or(0));
            let mut batch: Vec<Vec<Write>> = Vec::new();
            let flush = |batch: &mut Vec<Vec<Write>>, last: u64| -> Result<(), JournalError> {
                batch.push(vec![Write::Applied {
                    token: token.clone(),
                    seq: Some(last),
                }]);
                let groups: Vec<&[Write]> = batch.iter().map(Vec::as_slice).collect();
                self.write_as(&groups, log.owner())?;
                batch.clear();
                Ok(())
            };
            let mut last = applied;
            log.groups(|seq, writes| {
                // Only what a process's runs write goes into its log: a claim or another log's
                // mark in one is not flowrun's, and is not written back.
                let foreign = writes
                    .iter()
                    .any(|w| matches!(w, Write::Claimed { .. } | Write::Applied { .. }));
                if seq > applied && !foreign {
                    batch.push(writes);
                    last = seq;
                    if batch.len() >= WRITE_BACK_BATCH {
                        flush(&mut batch, last)?;
                    }
                }
                Ok(())
            })
            .map_err(failed)?;
            if !batch.is_empty() {
                flush(&mut batch, last).map_err(failed)?;
            }
            // The store keeps how far it has the log until every file of it is gone: a log
            // found again is not written back twice.
            if log.remove_files() {
                let forget = Write::Applied {
                    token: token.clone(),
                    seq: None,
                };
                self.write(&[&[forget]]).map_err(failed)?;
                log.remove();
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Store::write`] for the process `me`: this one, or one whose intent log is written
    /// back (its runs are its own).
    fn write_as(&self, groups: &[&[Write]], me: &str) -> Result<Vec<Result<(), JournalError>>, JournalError> {
        let connection = self.lock();
        // Almost no group is refused: the groups go in without savepoints (two statements and
        // a copy of each page a group changes fewer). Only a group refused after part of it
        // went in needs undoing: then the transaction is written again, each group of more
        // than one statement under a savepoint.
        match transaction(&connection, groups, me, Undo::Redo)? {
            Some(results) => Ok(results),
            None => Ok(transaction(&connection, groups, me, Undo::Savepoint)?.unwrap_or_default()),
        }
    }
}

/// How a transaction undoes a group refused after part of it went in.
#[derive(Clone, Copy)]
enum Undo {
    /// It gives up (`None`): the caller writes it again with savepoints.
    Redo,
    /// Each group of more than one statement is under a savepoint.
    Savepoint,
}

/// Writes `groups` for the process `me` in one transaction: what came of each group, or `None`
/// when a group was refused half-way and `undo` is [`Undo::Redo`] (nothing was written).
fn transaction(
    connection: &Connection,
    groups: &[&[Write]],
    me: &str,
    undo: Undo,
) -> Result<Option<Vec<Result<(), JournalError>>>, JournalError> {
    // Cached like the writes: `Connection::transaction` parses BEGIN and COMMIT again for
    // every transaction, and one run at a time commits once per request.
    let tx = Open::begin(connection).map_err(store_error)?;
    let mut results = Vec::with_capacity(groups.len());
    for group in groups {
        let applied = match undo {
            Undo::Savepoint => apply_group(connection, group, me),
            Undo::Redo => match apply_pieces(connection, &pieces(group), me) {
                // A statement refused undoes itself: refused first, the group left nothing.
                Err((0, e)) => Err(e),
                Err((_, e)) if refused(&e) => return Ok(None),
                Err((_, e)) => Err(e),
                Ok(()) => Ok(()),
            },
        };
        match applied {
            Ok(()) => results.push(Ok(())),
            // A group refused (a run taken over, an id taken) fails alone; the file failing
            // (locked past the busy timeout, full, unreadable) fails the transaction: no group
            // was refused, none is written.
            Err(e) if refused(&e) => results.push(Err(store_error(e))),
            Err(e) => return Err(store_error(e)),
        }
    }
    tx.commit().map_err(store_error)?;
    Ok(Some(results))
}

/// Applies `pieces` in order; the first that fails, by its index, and why.
fn apply_pieces(tx: &Connection, pieces: &[Piece], me: &str) -> Result<(), (usize, rusqlite::Error)> {
    pieces
        .iter()
        .enumerate()
        .try_for_each(|(i, p)| apply_piece(tx, p, me).map_err(|e| (i, e)))
}

/// Checkpoints the write-ahead log from a thread of its own, with a connection of its own: the
/// writers' connection does not checkpoint as it commits (`wal_autocheckpoint = 0`), so
/// copying the log never holds up a run's commit (measured: 51 µs per commit with automatic
/// checkpoints, 38 µs without). Passive checkpoints never block a writer.
///
/// A passive checkpoint never catches up with a writer that commits all the time, so the log
/// would never start again from its beginning: it grew to 150 MB in a 10,000-run batch, and
/// extending the file cost the writer more than writing it (a third of the writer's time, in
/// the file system's allocation, by `perf`). So after each passive copy the writer is asked
/// to restart the log between two of its transactions: it copies the few frames written since
/// (the copy's fsyncs, a millisecond or two a tick) and its next commit writes from the start
/// of the log again, over pages the file already has.
struct Checkpointer {
    stop: std::sync::Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the log is copied into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl Checkpointer {
    fn start(
        path: &str,
        restart_due: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Checkpointer, JournalError> {
        let connection =
            Connection::open(path).map_err(|e| JournalError::Store(format!("cannot open `{path}`: {e}")))?;
        let stop = std::sync::Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("flowrun-checkpoint".into())
            .spawn(move || {
                let (lock, wake) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let (s, _) = wake
                        .wait_timeout(stopped, CHECKPOINT_EVERY)
                        .unwrap_or_else(|e| e.into_inner());
                    stopped = s;
                    // A busy or failed checkpoint is tried again at the next tick.
                    if connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)").is_ok() {
                        restart_due.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    if *stopped {
                        return;
                    }
                }
            })
            .map_err(|e| JournalError::Store(format!("cannot start the journal's checkpointer: {e}")))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn migrate(connection: &Connection, path: &str) -> Result<(), JournalError> {
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| JournalError::Store(format!("`{path}` is not a journal flowrun can use: {e}")))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(JournalError::Store(format!(
            "`{path}` has journal schema version {version}; this flowrun knows up to {}: use a newer flowrun",
            MIGRATIONS.len()
        )));
    }
    if version == MIGRATIONS.len() {
        return Ok(());
    }
    // All in one transaction: a file that cannot take them (another program's database with a
    // table of one of these names) is left as it was.
    let sql = format!(
        "BEGIN; {}; PRAGMA user_version = {}; COMMIT;",
        MIGRATIONS[version..].join(";"),
        MIGRATIONS.len()
    );
    connection
        .execute_batch(&sql)
        .map_err(|e| JournalError::Store(format!("cannot update the schema of `{path}`: {e}")))
}

/// `v` as JSON text: serde_json writing into memory, not through `Display`'s formatter (which
/// cost twice the instructions). A value is always written (its keys are strings).
fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn json_of(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// One record of the `log` table: a step's end, an attempt, or an attempt's answer, written
/// from a [`Write`] (borrowing it and its JSON text) by [`records_json`]. Read back as a
/// [`Stored`].
#[cfg_attr(test, derive(serde::Serialize))]
#[cfg_attr(test, serde(tag = "kind", rename_all = "lowercase"))]
enum Record<'a> {
    Step {
        step: &'a str,
        phase: &'a str,
        status: &'a str,
        slot: &'a RawValue,
        saved: &'a RawValue,
        error: Option<&'a RawValue>,
        at_ms: i64,
    },
    Attempt {
        step: &'a str,
        phase: &'a str,
        number: u32,
        request: &'a RawValue,
        sent_ms: i64,
    },
    Answer {
        step: &'a str,
        number: u32,
        status: Option<u16>,
        error: Option<&'a str>,
        answered_ms: i64,
    },
}

/// A record as read back: the fields of every kind, its JSON values as text, so that each is
/// read on its own as it was from its own column (a tagged enum would read them all as one
/// value, a body nested as deep as serde_json reads then too deep by two).
#[derive(serde::Deserialize)]
struct Stored {
    kind: String,
    step: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    number: u32,
    /// A step's status (text), or an answer's (a number or null).
    status: Option<Box<RawValue>>,
    slot: Option<Box<RawValue>>,
    saved: Option<Box<RawValue>>,
    /// A step's failure (an object), or an answer's transport error (text).
    error: Option<Box<RawValue>>,
    request: Option<Box<RawValue>>,
}

impl<'a> Record<'a> {
    /// The record `write` is, when it is one of the log's.
    fn of(write: &'a Write) -> Option<Record<'a>> {
        Some(match write {
            Write::StepDone {
                step,
                phase,
                status,
                slot,
                saved,
                error,
                at_ms,
                ..
            } => Record::Step {
                step,
                phase,
                status,
                slot,
                saved,
                error: error.as_deref(),
                at_ms: *at_ms,
            },
            Write::AttemptSent {
                step,
                phase,
                number,
                request,
                at_ms,
                ..
            } => Record::Attempt {
                step,
                phase,
                number: *number,
                request,
                sent_ms: *at_ms,
            },
            Write::AttemptAnswered {
                step,
                number,
                status,
                error,
                at_ms,
                ..
            } => Record::Answer {
                step,
                number: *number,
                status: *status,
                error: error.as_deref(),
                answered_ms: *at_ms,
            },
            _ => return None,
        })
    }
}

/// `records` as the JSON text of a row of the log: what serde writes for them (tested), field by
/// field (see `base/json_text.rs`).
fn records_json(records: &[Record]) -> String {
    use crate::base::json_text::Object;
    let mut out = Vec::with_capacity(records.iter().map(Record::size).sum::<usize>() + 2);
    crate::base::json_text::array(&mut out, records, |record, out| {
        let mut o = Object::new(out);
        match record {
            Record::Step {
                step,
                phase,
                status,
                slot,
                saved,
                error,
                at_ms,
            } => o
                .str("kind", "step")
                .str("step", step)
                .str("phase", phase)
                .str("status", status)
                .raw("slot", slot)
                .raw("saved", saved)
                .opt_raw("error", *error)
                .int("at_ms", *at_ms),
            Record::Attempt {
                step,
                phase,
                number,
                request,
                sent_ms,
            } => o
                .str("kind", "attempt")
                .str("step", step)
                .str("phase", phase)
                .int("number", *number)
                .raw("request", request)
                .int("sent_ms", *sent_ms),
            Record::Answer {
                step,
                number,
                status,
                error,
                answered_ms,
            } => o
                .str("kind", "answer")
                .str("step", step)
                .int("number", *number)
                .opt_int("status", *status)
                .opt_str("error", *error)
                .int("answered_ms", *answered_ms),
        }
        .end();
    });
    // Made of strings and JSON text, all UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Record<'_> {
    /// About how long its JSON text is: its JSON values' and a little more.
    fn size(&self) -> usize {
        128 + match self {
            Record::Step { slot, saved, .. } => slot.get().len() + saved.get().len(),
            Record::Attempt { request, .. } => request.get().len(),
            Record::Answer { .. } => 0,
        }
    }
}

/// What one statement writes: a run's consecutive records of one group, as one row of the log,
/// or a write of its own.
enum Piece<'a> {
    Log { run: &'a str, records: Vec<Record<'a>> },
    Alone(&'a Write),
}

fn pieces(group: &[Write]) -> Vec<Piece<'_>> {
    let mut pieces: Vec<Piece> = Vec::with_capacity(group.len());
    for write in group {
        match (Record::of(write), pieces.last_mut()) {
            (Some(record), Some(Piece::Log { run, records })) if *run == write.run() => records.push(record),
            (Some(record), _) => pieces.push(Piece::Log {
                run: write.run(),
                records: vec![record],
            }),
            (None, _) => pieces.push(Piece::Alone(write)),
        }
    }
    pieces
}

/// Whether `e` refuses a group (a constraint: a run taken over, an id taken; or a value that
/// cannot be stored, too big or not text) rather than tells that the file failed.
fn refused(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::{ConstraintViolation, TooBig};
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(f.code, ConstraintViolation | TooBig),
        rusqlite::Error::ToSqlConversionFailure(_) => true,
        _ => false,
    }
}

/// The error of a write refused because another process owns its run now.
fn taken_over(run: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
        Some(super::taken_over(run)),
    )
}

/// Applies `piece` for the process `me` (this one, or one whose intent log is written back).
fn apply_piece(tx: &Connection, piece: &Piece, me: &str) -> rusqlite::Result<()> {
    // The writes of a run's progress take effect only while this process owns the run: one
    // that lost it (another process took it over) neither sends nor overwrites the new
    // owner's writes. No row changed means exactly that.
    let owned = |n: usize, run: &str| match n {
        0 => Err(taken_over(run)),
        _ => Ok(()),
    };
    // Cached statements: a batch of runs writes the same few statements thousands of times.
    // `OR FAIL`: each statement writes one row and checks its constraints before it writes, so
    // a refused one has nothing to undo, and SQLite keeps no statement journal for it (a copy
    // of each page before the statement changes it, 2% of a journaled batch's instructions).
    let write = match piece {
        Piece::Log { run, records } => {
            let text = records_json(records);
            let n = tx
                .prepare_cached(
                    "INSERT OR FAIL INTO log (run_id, records) SELECT ?1, ?2
                     WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND owner = ?3)",
                )?
                .execute(params![run, text, me])?;
            // Answers alone that the owner no longer wants are dropped without a word: the
            // writes with them (the step's end, the next attempt) say the run was taken over.
            let answers_only = records.iter().all(|r| matches!(r, Record::Answer { .. }));
            return if answers_only { Ok(()) } else { owned(n, run) };
        }
        Piece::Alone(write) => write,
    };
    match write {
        Write::RunStarted(start) => {
            tx.prepare_cached(
                "INSERT OR FAIL INTO runs (id, flow_path, flow_name, flow_hash, inputs, status, started_ms, updated_ms, owner, vars)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)",
            )?
            .execute(params![
                start.id,
                start.flow_path,
                start.flow_name,
                start.flow_hash,
                json_text(&start.inputs),
                if start.queued { "queued" } else { "running" },
                start.at_ms,
                (!start.queued).then_some(me),
                start.vars.as_ref().map(json_text)
            ])?;
        }
        Write::Claimed { run, owner } => {
            // A run taken over by hand is no longer queued, and no lease expires under it. A
            // finished run stays finished.
            tx.prepare_cached(
                "UPDATE runs SET owner = ?2, status = 'running', lease_until = NULL
                 WHERE id = ?1 AND status IN ('running', 'queued')",
            )?
            .execute(params![run, owner])?;
        }
        Write::Vars { run, vars } => {
            let n = tx
                .prepare_cached("UPDATE OR FAIL runs SET vars = ?2 WHERE id = ?1 AND owner = ?3")?
                .execute(params![run, json_text(vars), me])?;
            owned(n, run)?;
        }
        Write::RunFinished {
            run,
            status,
            outputs,
            error,
            at_ms,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE OR FAIL runs SET status = ?2, outputs = ?3, error = ?4, updated_ms = ?5
                     WHERE id = ?1 AND owner = ?6",
                )?
                .execute(params![run, status, json_text(outputs), error, at_ms, me])?;
            owned(n, run)?;
        }
        Write::Cursor { name, value, at_ms } => {
            tx.prepare_cached(
                "INSERT INTO cursors (name, value, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            )?
            .execute(params![name, value, at_ms])?;
        }
        Write::Applied {
            token,
            seq: Some(seq),
        } => {
            tx.prepare_cached(
                "INSERT INTO intents (token, applied) VALUES (?1, ?2)
                 ON CONFLICT (token) DO UPDATE SET applied = excluded.applied",
            )?
            .execute(params![token, i64::try_from(*seq).unwrap_or(i64::MAX)])?;
        }
        Write::Applied { token, seq: None } => {
            tx.prepare_cached("DELETE FROM intents WHERE token = ?1")?
                .execute([token])?;
        }
        // Records of the log: a piece of their own above.
        Write::StepDone { .. } | Write::AttemptSent { .. } | Write::AttemptAnswered { .. } => {}
    }
    Ok(())
}

/// Applies one group: a single statement is atomic by itself (a run's step end and next
/// attempt are one row of the log); more take a savepoint, so a failing group leaves nothing
/// behind.
fn apply_group(tx: &Connection, group: &[Write], me: &str) -> rusqlite::Result<()> {
    let pieces = pieces(group);
    if let [one] = pieces.as_slice() {
        return apply_piece(tx, one, me);
    }
    // Cached like the writes: `execute_batch` would parse the statement on every group.
    Open::run(tx, "SAVEPOINT grp")?;
    let result = pieces.iter().try_for_each(|p| apply_piece(tx, p, me));
    if result.is_err() {
        Open::run(tx, "ROLLBACK TO grp")?;
    }
    Open::run(tx, "RELEASE grp")?;
    result
}

/// A transaction open on a connection: rolled back unless committed (a failed commit, or a
/// panic while writing).
struct Open<'a> {
    connection: &'a Connection,
    done: bool,
}

impl<'a> Open<'a> {
    fn run(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
        connection.prepare_cached(sql)?.execute([]).map(drop)
    }

    fn begin(connection: &'a Connection) -> rusqlite::Result<Open<'a>> {
        Open::run(connection, "BEGIN")?;
        Ok(Open {
            connection,
            done: false,
        })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        Open::run(self.connection, "COMMIT")?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if !self.done && !self.connection.is_autocommit() {
            let _ = Open::run(self.connection, "ROLLBACK");
        }
    }
}

/// Copies what is left of the log and has the next commit write from its start (see
/// [`Checkpointer`]). A reader on an old snapshot (`runs list` in another process) holds the
/// restart up: it is given up after a moment and asked for again at the next tick.
fn restart_log(connection: &Connection) {
    let short = std::time::Duration::from_millis(20);
    if connection.busy_timeout(short).is_ok() {
        let _ = connection.execute_batch("PRAGMA wal_checkpoint(RESTART)");
    }
    let _ = connection.busy_timeout(BUSY_TIMEOUT);
}

/// A run's steps and attempts from its rows of the log, `(seq, records)` in order: a step that
/// ended again, or an attempt written again, takes the place of the earlier one at the end.
///
/// An attempt is answered when its answer was written, or when its step ended (the step's end
/// holds the last answer, which is then not written on its own): the last attempt of a step
/// that ended has the step's status.
///
/// Linear in the records (a `for_each` step may hold many thousands of attempts). Each JSON
/// field is read on its own, as it was from its own column before the log: a value nested as
/// deep as serde_json reads (a response body) is not made unreadable by the records around it,
/// and one that cannot be read is null.
fn read_log(rows: &[(i64, String)]) -> Result<(Vec<StepRow>, Vec<AttemptRow>), String> {
    fn value(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).unwrap_or(Value::Null)
    }
    // In order of writing; a record written again leaves `None` where it was.
    let mut steps: Vec<Option<StepRow>> = Vec::new();
    let mut attempts: Vec<Option<AttemptRow>> = Vec::new();
    let mut step_at: HashMap<String, usize> = HashMap::new();
    let mut attempt_at: HashMap<(String, u32), usize> = HashMap::new();
    for (seq, text) in rows {
        let records: Vec<Stored> =
            serde_json::from_str(text).map_err(|e| format!("the log row {seq} cannot be read: {e}"))?;
        for record in records {
            match record.kind.as_str() {
                "step" => {
                    if let Some(old) = step_at.insert(record.step.clone(), steps.len()) {
                        steps[old] = None;
                    }
                    steps.push(Some(StepRow {
                        step: record.step,
                        phase: record.phase,
                        status: record
                            .status
                            .as_deref()
                            .map(value)
                            .and_then(|s| s.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        slot: record.slot.as_deref().map_or(Value::Null, value),
                        saved: record.saved.as_deref().map_or(Value::Null, value),
                        error: record.error.as_deref().map_or(Value::Null, value),
                    }));
                }
                "attempt" => {
                    let key = (record.step.clone(), record.number);
                    if let Some(old) = attempt_at.insert(key, attempts.len()) {
                        attempts[old] = None;
                    }
                    attempts.push(Some(AttemptRow {
                        step: record.step,
                        phase: record.phase,
                        number: record.number,
                        request: record.request.as_deref().map_or(Value::Null, value),
                        status: None,
                        error: None,
                        answered: false,
                    }));
                }
                "answer" => {
                    let at = attempt_at.get(&(record.step, record.number));
                    if let Some(a) = at.and_then(|&i| attempts[i].as_mut()) {
                        a.status = record
                            .status
                            .as_deref()
                            .map(value)
                            .and_then(|s| s.as_u64())
                            .and_then(|s| u16::try_from(s).ok());
                        a.error = record
                            .error
                            .as_deref()
                            .map(value)
                            .and_then(|e| e.as_str().map(str::to_string));
                        a.answered = true;
                    }
                }
                other => {
                    return Err(format!(
                        "the log row {seq} cannot be read: a record of kind `{other}`"
                    ));
                }
            }
        }
    }
    let steps: Vec<StepRow> = steps.into_iter().flatten().collect();
    let mut attempts: Vec<AttemptRow> = attempts.into_iter().flatten().collect();
    let ended: HashMap<&str, &StepRow> = steps.iter().map(|s| (s.step.as_str(), s)).collect();
    let mut last: HashMap<&str, u32> = HashMap::new();
    for a in &attempts {
        let most = last.entry(a.step.as_str()).or_insert(a.number);
        *most = (*most).max(a.number);
    }
    // For each attempt whose step ended: the status its step's end gives it (the last one's).
    let by_end: Vec<Option<Option<u16>>> = attempts
        .iter()
        .map(|a| {
            let ended = ended.get(a.step.as_str())?;
            let status = ended.slot["status"].as_u64().and_then(|s| u16::try_from(s).ok());
            Some(status.filter(|_| last.get(a.step.as_str()) == Some(&a.number)))
        })
        .collect();
    for (attempt, by_end) in attempts.iter_mut().zip(by_end) {
        if let Some(status) = by_end {
            attempt.status = attempt.status.or(status);
            attempt.answered = true;
        }
    }
    Ok((steps, attempts))
}

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        flow: r.get(1)?,
        flow_path: r.get(2)?,
        status: r.get(3)?,
        started_ms: r.get(4)?,
        updated_ms: r.get(5)?,
        error: r.get(6)?,
    })
}

const RUN_COLUMNS: &str = "id, flow_name, flow_path, status, started_ms, updated_ms, error";

impl Store for SqliteStore {
    fn write(&self, groups: &[&[Write]]) -> Result<Vec<Result<(), JournalError>>, JournalError> {
        self.write_as(groups, super::owner_here())
    }

    fn intent_log_at(&self) -> Option<&str> {
        self.path.as_deref()
    }

    fn write_back(&self) -> Result<(), JournalError> {
        self.write_back_dead_logs()
    }

    fn after_commit(&self) {
        if self.restart_due.swap(false, std::sync::atomic::Ordering::Relaxed) {
            restart_log(&self.lock());
        }
    }

    fn cursor(&self, name: &str) -> Result<Option<String>, JournalError> {
        self.lock()
            .query_row("SELECT value FROM cursors WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(store_error)
    }

    fn outputs_where(
        &self,
        flow_path: &str,
        key: &str,
        value: &Value,
    ) -> Result<Option<Value>, JournalError> {
        let connection = self.lock();
        // The newest run of the flow that ended well and whose output `key` is `value`.
        let text: Option<String> = connection
            .prepare_cached(
                "SELECT outputs FROM runs
                 WHERE flow_path = ?1 AND status IN ('passed', 'stopped')
                   AND json_extract(outputs, '$.' || json_quote(?2)) = json_extract(?3, '$')
                 ORDER BY started_ms DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![flow_path, key, json_text(value)], |r| r.get(0))
                    .optional()
            })
            .map_err(store_error)?;
        Ok(text.map(|t| json_of(Some(t))))
    }

    fn runs(&self, unfinished: bool, limit: usize) -> Result<Vec<RunRow>, JournalError> {
        let connection = self.lock();
        let filter = if unfinished {
            "WHERE status IN ('running', 'queued')"
        } else {
            ""
        };
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs {filter} ORDER BY started_ms DESC, id LIMIT ?1");
        let mut statement = connection.prepare(&sql).map_err(store_error)?;
        let rows = statement
            .query_map([limit as i64], run_row)
            .map_err(store_error)?;
        rows.collect::<Result<_, _>>().map_err(store_error)
    }

    fn run(&self, id: &str) -> Result<Option<RunDetail>, JournalError> {
        let connection = self.lock();
        let sql =
            format!("SELECT {RUN_COLUMNS}, flow_hash, inputs, vars, outputs, owner FROM runs WHERE id = ?1");
        let head = connection
            .query_row(&sql, [id], |r| {
                Ok((
                    run_row(r)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    r.get::<_, Option<String>>(11)?,
                ))
            })
            .optional()
            .map_err(store_error)?;
        let Some((row, flow_hash, inputs, vars, outputs, owner)) = head else {
            return Ok(None);
        };
        let mut statement = connection
            .prepare_cached("SELECT seq, records FROM log WHERE run_id = ?1 ORDER BY seq")
            .map_err(store_error)?;
        let rows = statement
            .query_map([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(store_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let (steps, attempts) = read_log(&rows).map_err(JournalError::Store)?;
        Ok(Some(RunDetail {
            row,
            flow_hash,
            inputs: json_of(inputs),
            vars: json_of(vars),
            outputs: json_of(outputs),
            owner,
            steps,
            attempts,
        }))
    }

    fn prune(&self, before_ms: i64) -> Result<u64, JournalError> {
        let mut connection = self.lock();
        let tx = connection.transaction().map_err(store_error)?;
        tx.execute(
            "DELETE FROM log WHERE run_id IN
               (SELECT id FROM runs WHERE status NOT IN ('running', 'queued') AND updated_ms < ?1)",
            [before_ms],
        )
        .map_err(store_error)?;
        let n = tx
            .execute(
                "DELETE FROM runs WHERE status NOT IN ('running', 'queued') AND updated_ms < ?1",
                [before_ms],
            )
            .map_err(store_error)?;
        tx.commit().map_err(store_error)?;
        Ok(n as u64)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::journal::RunStart;
    use serde_json::json;

    pub(in crate::journal) fn started(id: &str) -> Write {
        Write::RunStarted(RunStart {
            id: id.into(),
            flow_path: "flows/inbound.yaml".into(),
            flow_name: "inbound".into(),
            flow_hash: "abc".into(),
            inputs: json!({"queue_id": "q"}),
            at_ms: 1,
            queued: false,
            vars: None,
        })
    }

    #[test]
    fn writes_are_read_back_in_order() {
        let store = SqliteStore::open(":memory:").unwrap();
        let sent = sent("r1", "route", 1);
        assert_eq!(store.apply(&[&[started("r1")], &[sent]]), [Ok(()), Ok(())]);
        let run = store.run("r1").unwrap().unwrap();
        assert_eq!(run.row.status, "running");
        assert_eq!(run.attempts.len(), 1);
        assert!(!run.attempts[0].answered, "sent, no answer: in doubt");
        let answered = Write::AttemptAnswered {
            run: "r1".into(),
            step: "route".into(),
            number: 1,
            status: Some(202),
            error: None,
            at_ms: 3,
        };
        assert_eq!(store.apply(&[&[answered]]), [Ok(())]);
        assert!(store.run("r1").unwrap().unwrap().attempts[0].answered);
        assert_eq!(store.runs(true, 10).unwrap().len(), 1);
        assert!(store.run("nope").unwrap().is_none());
    }

    #[test]
    fn a_failed_group_writes_nothing_and_the_others_are_written() {
        let store = SqliteStore::open(":memory:").unwrap();
        assert_eq!(store.apply(&[&[started("r1")]]), [Ok(())]);
        // The second RunStarted of the same id breaks the primary key: the group's first write
        // must not stay, and the next group is written all the same.
        let vars = |v| Write::Vars {
            run: "r1".into(),
            vars: json!({ "a": v }),
        };
        // The groups around it go in whether the transaction had to be written again (a group
        // refused after part of it went in) or not (refused at its first statement).
        let results = store.apply(&[&[started("r0")], &[vars(1), started("r1")], &[started("r2")]]);
        assert!(matches!(results[1], Err(JournalError::Store(_))), "{results:?}");
        assert_eq!((&results[0], &results[2]), (&Ok(()), &Ok(())));
        assert_eq!(store.run("r1").unwrap().unwrap().vars, Value::Null);
        let results = store.apply(&[&[started("r3")], &[started("r1"), vars(2)], &[started("r4")]]);
        assert!(matches!(results[1], Err(JournalError::Store(_))), "{results:?}");
        assert_eq!(store.run("r1").unwrap().unwrap().vars, Value::Null);
        for id in ["r0", "r2", "r3", "r4"] {
            assert!(store.run(id).unwrap().is_some(), "{id}");
        }
    }

    #[test]
    fn a_run_taken_over_by_another_process_is_not_written_here_any_more() {
        let store = SqliteStore::open(":memory:").unwrap();
        assert_eq!(store.apply(&[&[started("r1")]]), [Ok(())]);
        // `flowrun runs resume --force` in another process.
        let elsewhere = Write::Claimed {
            run: "r1".into(),
            owner: "boot:1:other".into(),
        };
        assert_eq!(store.apply(&[&[elsewhere]]), [Ok(())]);
        let sent = sent("r1", "route", 1);
        let ended = Write::RunFinished {
            run: "r1".into(),
            status: "failed".into(),
            outputs: json!({}),
            error: None,
            at_ms: 3,
        };
        let refused = Err(JournalError::Store(
            "run `r1` was taken over by another flowrun process: this one stops it without sending more"
                .into(),
        ));
        assert_eq!(store.apply(&[&[sent], &[ended]]), [refused.clone(), refused]);
        let run = store.run("r1").unwrap().unwrap();
        assert_eq!(run.row.status, "running");
        assert!(run.attempts.is_empty());
        // Claimed once it ended, a run stays ended.
        let back = Write::Claimed {
            run: "r1".into(),
            owner: super::super::owner_here().to_string(),
        };
        let ended = Write::RunFinished {
            run: "r1".into(),
            status: "passed".into(),
            outputs: json!({}),
            error: None,
            at_ms: 4,
        };
        assert_eq!(store.apply(&[&[back.clone(), ended], &[back]]), [Ok(()), Ok(())]);
        assert_eq!(store.run("r1").unwrap().unwrap().row.status, "passed");
    }

    #[test]
    fn an_older_journal_is_brought_up_to_date_and_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&format!(
            "BEGIN; {}; PRAGMA user_version = 1; COMMIT;",
            MIGRATIONS[0]
        ))
        .unwrap();
        old.execute(
            "INSERT INTO runs (id, flow_path, flow_name, flow_hash, inputs, status, started_ms, updated_ms)
             VALUES ('r1', 'p', 'inbound', 'h', '{}', 'running', 1, 1)",
            [],
        )
        .unwrap();
        drop(old);
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        let run = store.run("r1").unwrap().unwrap();
        assert_eq!((run.row.status.as_str(), run.owner), ("running", None));
        let version: i64 = store
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, MIGRATIONS.len());
    }

    fn raw(value: Value) -> Box<RawValue> {
        crate::base::secrets::raw(&value)
    }

    fn step_done(run: &str, step: &str, status: u16) -> Write {
        Write::StepDone {
            run: run.into(),
            step: step.into(),
            phase: "steps",
            status: "ok",
            slot: raw(json!({ "status": status })),
            saved: raw(json!({})),
            error: None,
            at_ms: 5,
        }
    }

    pub(in crate::journal) fn sent(run: &str, step: &str, number: u32) -> Write {
        Write::AttemptSent {
            run: run.into(),
            step: step.into(),
            phase: "steps",
            number,
            request: raw(json!({ "method": "POST", "url": format!("http://127.0.0.1/{step}") })),
            at_ms: 6,
        }
    }

    fn log_rows(store: &SqliteStore) -> Vec<(String, String)> {
        let connection = store.lock();
        let mut statement = connection
            .prepare("SELECT run_id, records FROM log ORDER BY seq")
            .unwrap();
        statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_row_of_the_log_is_the_text_serde_writes_for_its_records() {
        let raw = |t: &str| RawValue::from_string(t.into()).unwrap();
        let text = "a \"quoted\"\\ \t\n\u{1} é 🙂";
        let writes = [
            Write::StepDone {
                run: "r".into(),
                step: text.into(),
                phase: "finally",
                status: "not run",
                slot: raw(r#"{"body": "x\"y", "n": [1, 2]}"#),
                saved: raw("{}"),
                error: Some(raw(r#"{"kind":"assert"}"#)),
                at_ms: -5,
            },
            Write::StepDone {
                run: "r".into(),
                step: "s".into(),
                phase: "steps",
                status: "ok",
                slot: raw("null"),
                saved: raw(r#"{"id":"1"}"#),
                error: None,
                at_ms: 5,
            },
            sent("r", text, u32::MAX),
            Write::AttemptAnswered {
                run: "r".into(),
                step: "s".into(),
                number: 1,
                status: Some(503),
                error: None,
                at_ms: i64::MAX,
            },
            Write::AttemptAnswered {
                run: "r".into(),
                step: "s".into(),
                number: 2,
                status: None,
                error: Some(text.into()),
                at_ms: 0,
            },
        ];
        let records: Vec<Record> = writes.iter().filter_map(Record::of).collect();
        assert_eq!(records.len(), writes.len());
        assert_eq!(records_json(&records), serde_json::to_string(&records).unwrap());
    }

    #[test]
    fn a_steps_end_and_the_next_attempt_are_one_row_of_the_log() {
        let store = SqliteStore::open(":memory:").unwrap();
        let answered = Write::AttemptAnswered {
            run: "r1".into(),
            step: "interaction".into(),
            number: 1,
            status: Some(503),
            error: None,
            at_ms: 4,
        };
        let group = [
            started("r1"),
            sent("r1", "interaction", 1),
            answered,
            sent("r1", "interaction", 2),
        ];
        assert_eq!(store.apply(&[&group]), [Ok(())]);
        let group = [step_done("r1", "interaction", 202), sent("r1", "route", 1)];
        assert_eq!(store.apply(&[&group]), [Ok(())]);
        let rows = log_rows(&store);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            rows[1].1,
            r#"[{"kind":"step","step":"interaction","phase":"steps","status":"ok","slot":{"status":202},"saved":{},"error":null,"at_ms":5},{"kind":"attempt","step":"route","phase":"steps","number":1,"request":{"method":"POST","url":"http://127.0.0.1/route"},"sent_ms":6}]"#
        );
        let run = store.run("r1").unwrap().unwrap();
        let steps: Vec<_> = run
            .steps
            .iter()
            .map(|s| (s.step.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(steps, [("interaction", "ok")]);
        // The first attempt's own answer; the second's is the step's; the route is in doubt.
        assert_eq!(
            run.attempt_states(),
            [
                ("interaction", 1, Some(503), true),
                ("interaction", 2, Some(202), true),
                ("route", 1, None, false)
            ]
        );
    }

    #[test]
    fn a_step_ended_again_or_an_attempt_written_again_replaces_the_earlier_one() {
        let store = SqliteStore::open(":memory:").unwrap();
        let groups: [&[Write]; 4] = [
            &[started("r1"), sent("r1", "a", 1)],
            &[step_done("r1", "a", 200), sent("r1", "b", 1)],
            &[sent("r1", "a", 1)],
            &[step_done("r1", "a", 201)],
        ];
        assert_eq!(store.apply(&groups), [Ok(()), Ok(()), Ok(()), Ok(())]);
        let run = store.run("r1").unwrap().unwrap();
        assert_eq!(run.steps.len(), 1);
        assert_eq!(run.steps[0].slot, json!({ "status": 201 }));
        let attempts: Vec<_> = run.attempts.iter().map(|a| (a.step.as_str(), a.status)).collect();
        assert_eq!(attempts, [("b", None), ("a", Some(201))]);
    }

    #[test]
    fn a_body_nested_as_deep_as_json_is_read_reads_back() {
        let store = SqliteStore::open(":memory:").unwrap();
        // 126 levels in the body, 127 in the slot: as deep as serde_json reads a value (128),
        // inside a record inside a row of the log.
        let body = format!("{}{}", "[".repeat(126), "]".repeat(126));
        let slot: Value = serde_json::from_str(&format!("{{\"body\":{body}}}")).unwrap();
        let ended = Write::StepDone {
            run: "r1".into(),
            step: "a".into(),
            phase: "steps",
            status: "ok",
            slot: raw(slot.clone()),
            saved: raw(json!({})),
            error: None,
            at_ms: 5,
        };
        assert_eq!(
            store.apply(&[&[started("r1"), sent("r1", "a", 1), ended]]),
            [Ok(())]
        );
        let run = store.run("r1").unwrap().unwrap();
        assert_eq!(run.steps[0].slot, slot);
        assert!(run.attempts[0].answered);
    }

    #[test]
    fn a_log_row_that_cannot_be_read_is_an_error_not_a_panic() {
        let store = SqliteStore::open(":memory:").unwrap();
        assert_eq!(store.apply(&[&[started("r1")]]), [Ok(())]);
        for bad in ["not json", "[{\"kind\":\"step\"}]", "{}", "[1]"] {
            store
                .lock()
                .execute("INSERT INTO log (run_id, records) VALUES ('r1', ?1)", [bad])
                .unwrap();
            let Err(JournalError::Store(e)) = store.run("r1") else {
                panic!("{bad} was read")
            };
            assert!(e.starts_with("the log row "), "{e}");
            store.lock().execute("DELETE FROM log", []).unwrap();
        }
    }

    #[test]
    fn a_journal_of_version_4_keeps_its_steps_and_attempts_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        let old = Connection::open(&path).unwrap();
        let v4 = MIGRATIONS[..4].join(";");
        old.execute_batch(&format!("BEGIN; {v4}; PRAGMA user_version = 4; COMMIT;"))
            .unwrap();
        old.execute_batch(
            r#"INSERT INTO runs (id, flow_path, flow_name, flow_hash, inputs, status, started_ms, updated_ms, owner)
                 VALUES ('r1', 'p', 'inbound', 'h', '{}', 'running', 1, 1, 'x');
               INSERT INTO attempts (run_id, step, number, seq, phase, request, sent_ms, status, error, answered_ms)
                 VALUES ('r1', 'interaction', 1, 1, 'steps', '{"method":"POST"}', 2, NULL, 'timed out', 3),
                        ('r1', 'interaction', 2, 2, 'steps', '{"method":"POST"}', 4, NULL, NULL, NULL),
                        ('r1', 'route', 1, 4, 'steps', '{"method":"POST","url":"/route"}', 6, NULL, NULL, NULL),
                        ('r1', 'damaged', 1, 7, 'steps', '{"method":', 8, NULL, NULL, NULL);
               INSERT INTO steps (run_id, step, seq, phase, status, slot, saved, error, at_ms)
                 VALUES ('r1', 'interaction', 3, 'steps', 'ok', '{"status":202}', '{"id":"c1"}', NULL, 5);"#,
        )
        .unwrap();
        drop(old);
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        let run = store.run("r1").unwrap().unwrap();
        assert_eq!(run.steps.len(), 1);
        assert_eq!(
            (&run.steps[0].saved, &run.steps[0].error),
            (&json!({ "id": "c1" }), &Value::Null)
        );
        let attempts: Vec<_> = run
            .attempts
            .iter()
            .map(|a| {
                (
                    a.step.as_str(),
                    a.number,
                    a.status,
                    a.error.as_deref(),
                    a.answered,
                )
            })
            .collect();
        assert_eq!(
            attempts,
            [
                ("interaction", 1, None, Some("timed out"), true),
                ("interaction", 2, Some(202), None, true),
                ("route", 1, None, None, false),
                ("damaged", 1, None, None, false)
            ]
        );
        assert_eq!(
            run.attempts[2].request,
            json!({ "method": "POST", "url": "/route" })
        );
        // A cell that could not be read was read as null: it still is.
        assert_eq!(run.attempts[3].request, Value::Null);
        let tables: i64 = store
            .lock()
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name IN ('steps', 'attempts')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    #[test]
    fn the_log_starts_again_instead_of_growing_while_runs_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        assert_eq!(store.apply(&[&[started("r1")]]), [Ok(())]);
        let request = raw(json!({ "body": "x".repeat(500) }));
        let started = std::time::Instant::now();
        // The log's header has a salt that changes each time the log starts again.
        let mut salts = std::collections::HashSet::new();
        // Commits back to back until the log started twice again, for at most 20 s (a slow
        // machine copies slowly) and a bounded count.
        for number in 1..=1_000_000u32 {
            if salts.len() >= 3 || started.elapsed() > std::time::Duration::from_secs(20) {
                break;
            }
            let sent = Write::AttemptSent {
                run: "r1".into(),
                step: "route".into(),
                phase: "steps",
                number,
                request: request.clone(),
                at_ms: 1,
            };
            assert_eq!(store.apply(&[&[sent]]), [Ok(())]);
            store.after_commit();
            let mut header = [0u8; 20];
            let read = std::fs::File::open(dir.path().join("j.db-wal"))
                .and_then(|mut wal| std::io::Read::read_exact(&mut wal, &mut header));
            if read.is_ok() {
                salts.insert(header[16..20].to_vec());
            }
        }
        // Started, then started again at (nearly) every tick; without the restarts a passive
        // checkpoint never catches up with a writer that commits all the time.
        assert!(salts.len() >= 3, "the log started {} times", salts.len());
    }

    #[test]
    fn another_programs_database_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE log (line TEXT); INSERT INTO log VALUES ('hello');")
            .unwrap();
        let Err(JournalError::Store(e)) = SqliteStore::open(path.to_str().unwrap()) else {
            panic!("a database with a table `log` was taken for a journal")
        };
        assert!(e.contains("cannot update the schema") && e.contains("log"), "{e}");
        let db = Connection::open(&path).unwrap();
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["log"]);
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 0);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let path = path.to_str().unwrap();
        SqliteStore::open(path).unwrap();
        Connection::open(path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let Err(JournalError::Store(e)) = SqliteStore::open(path) else {
            panic!("a newer schema was opened")
        };
        assert!(e.contains("schema version 99"), "{e}");
    }
}
