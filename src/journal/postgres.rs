//! The shared journal: PostgreSQL, for several flowrun processes (on several machines) at once.
//!
//! The same tables and migrations as the embedded store, in PostgreSQL's dialect; the schema
//! version is the one row of `flowrun_schema`. Migrations run under an advisory lock, so
//! instances starting together bring the schema up to date once.
//!
//! The driver is tokio-postgres. Its connection (the socket) is driven on a thread of its own;
//! the store's calls only exchange messages with it, so they may block any thread — a runtime's
//! worker included, as the SQLite store does — without starting a runtime inside a runtime.

use super::{AttemptRow, Claimed, JournalError, LeaseStore, RunDetail, RunRow, StepRow, Store, Write};
use serde_json::Value;
use std::sync::Mutex;
use tokio_postgres::{Client, Row, Statement};

/// Each migration, in order: migration `i` brings a database from version `i` to `i + 1`
/// (the embedded store's, in PostgreSQL's dialect).
const MIGRATIONS: &[&str] = &[
    "
    CREATE SEQUENCE flowrun_seq;
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        flow_path   TEXT NOT NULL,
        flow_name   TEXT NOT NULL,
        flow_hash   TEXT NOT NULL,
        inputs      TEXT NOT NULL,
        vars        TEXT,
        status      TEXT NOT NULL,
        started_ms  BIGINT NOT NULL,
        updated_ms  BIGINT NOT NULL,
        outputs     TEXT,
        error       TEXT
    );
    CREATE INDEX runs_status ON runs (status, updated_ms);
    CREATE TABLE steps (
        run_id      TEXT NOT NULL,
        step        TEXT NOT NULL,
        seq         BIGINT NOT NULL DEFAULT nextval('flowrun_seq'),
        phase       TEXT NOT NULL,
        status      TEXT NOT NULL,
        slot        TEXT NOT NULL,
        saved       TEXT NOT NULL,
        error       TEXT,
        at_ms       BIGINT NOT NULL,
        PRIMARY KEY (run_id, step)
    );
    CREATE TABLE attempts (
        run_id      TEXT NOT NULL,
        step        TEXT NOT NULL,
        number      INTEGER NOT NULL,
        seq         BIGINT NOT NULL DEFAULT nextval('flowrun_seq'),
        phase       TEXT NOT NULL,
        request     TEXT NOT NULL,
        sent_ms     BIGINT NOT NULL,
        status      INTEGER,
        error       TEXT,
        answered_ms BIGINT,
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
        updated_ms  BIGINT NOT NULL
    );
",
    // Leases: until when the owner of a queued-then-claimed run is known to be alive. The
    // index serves the claims: the queued runs, and the running ones by lease.
    "
    ALTER TABLE runs ADD COLUMN lease_until BIGINT;
    CREATE INDEX runs_claim ON runs (status, lease_until) WHERE status IN ('queued', 'running');
",
];

/// The channel on which a queued run is announced, so instances claim it at once.
const QUEUE_CHANNEL: &str = "flowrun_queue";

/// The advisory lock key migrations hold (any fixed number: "flowrun" in ASCII).
const MIGRATION_LOCK: i64 = 0x0066_6c6f_7772_756e;

/// The statements every write uses, prepared once per connection.
struct Prepared {
    run_started: Statement,
    claimed: Statement,
    vars: Statement,
    attempt_sent: Statement,
    attempt_answered: Statement,
    step_done: Statement,
    run_finished: Statement,
    cursor: Statement,
    announce: Statement,
}

/// A journal in a PostgreSQL database.
pub struct PostgresStore {
    /// Writes and reads: a write holds it for its transaction.
    client: Mutex<Client>,
    /// Claims and lease renewals (see `Leases`).
    leases: std::sync::Arc<Leases>,
    /// Notified when the server announces a queued run (once `LISTEN` was asked for).
    announced: std::sync::Arc<tokio::sync::Notify>,
    listening: std::sync::atomic::AtomicBool,
    prepared: Prepared,
    /// Where the journal is, for messages (the password left out).
    place: String,
}

fn store_error(e: tokio_postgres::Error) -> JournalError {
    JournalError::Store(store_text(&e))
}

fn store_text(e: &tokio_postgres::Error) -> String {
    // The server's own message says what went wrong (a constraint, a lost connection).
    match e.as_db_error() {
        // Told as the embedded store tells it: callers recognise a taken run id by it.
        Some(db) if db.constraint() == Some("runs_pkey") => super::RUN_ID_TAKEN.to_string(),
        Some(db) => db.message().to_string(),
        None => with_causes(e),
    }
}

/// `e` and what caused it: the driver's own text is a kind ("error performing TLS handshake"),
/// the reason is in its source (the certificate refused, the connection reset).
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        cause = c.source();
    }
    text
}

/// A connection to `config`'s database: the client, its socket driven on a thread of its own.
/// Notifications (a queued run) wake `announce`.
///
/// That thread connects too, and hands the client back: a runtime cannot be started (to
/// connect) on a thread that is already running one, and the first call on the lease
/// connection, which opens it, may come from an async worker (`GET /metrics` reading the
/// queue's depth before any claim did). Started there, the connect panicked and the request
/// got no answer.
fn connect(
    config: &tokio_postgres::Config,
    connector: &tokio_postgres_rustls::MakeRustlsConnect,
    place: &str,
    announce: Option<std::sync::Arc<tokio::sync::Notify>>,
) -> Result<Client, JournalError> {
    let cannot_start =
        |e: std::io::Error| JournalError::Store(format!("cannot start the PostgreSQL connection: {e}"));
    let (config, connector, at) = (config.clone(), connector.clone(), place.to_string());
    let (hand, handed) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("flowrun-postgres".into())
        .spawn(move || {
            // Made and dropped on this thread too: neither may happen on an async worker.
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = hand.send(Err(cannot_start(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let connected =
                    tokio::time::timeout(std::time::Duration::from_secs(10), config.connect(connector)).await;
                let mut connection = match connected {
                    Ok(Ok((client, connection))) => {
                        let _ = hand.send(Ok(client));
                        connection
                    }
                    Ok(Err(e)) => {
                        let text = format!("cannot connect to {at}: {}", store_text(&e));
                        let _ = hand.send(Err(JournalError::Store(text)));
                        return;
                    }
                    Err(_) => {
                        let text = format!("cannot connect to {at}: no answer within 10 s");
                        let _ = hand.send(Err(JournalError::Store(text)));
                        return;
                    }
                };
                // Ends when the connection closes (the client dropped, or the server gone:
                // every call then fails with a closed connection).
                while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    if let (tokio_postgres::AsyncMessage::Notification(_), Some(announce)) =
                        (message, &announce)
                    {
                        announce.notify_one();
                    }
                }
            });
        })
        .map_err(cannot_start)?;
    handed.recv().unwrap_or_else(|_| {
        Err(JournalError::Store(format!(
            "cannot connect to {place}: the connection's thread ended"
        )))
    })
}

/// Runs `future` to its end on this thread (the connection is driven elsewhere).
fn wait<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user:password@host:port/db`, with
    /// libpq's TLS settings: see `postgres_tls`) and brings its schema up to date.
    pub fn open(url: &str) -> Result<PostgresStore, JournalError> {
        let (url, tls) = super::postgres_tls::split(url)?;
        let connector = super::postgres_tls::connector(&tls)?;
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            JournalError::Url(format!(
                "`--journal` is not a PostgreSQL URL flowrun can read: {e}"
            ))
        })?;
        let place = describe(&config);
        let announced = std::sync::Arc::new(tokio::sync::Notify::new());
        let client = connect(&config, &connector, &place, Some(announced.clone()))?;
        let mut client = client;
        migrate(&mut client, &place)?;
        let prepare = |sql: &str| wait(client.prepare(sql)).map_err(store_error);
        let prepared = Prepared {
            run_started: prepare(
                "INSERT INTO runs (id, flow_path, flow_name, flow_hash, inputs, status, started_ms, updated_ms, owner, vars)
                 VALUES ($1, $2, $3, $4, $5, $8, $6, $6, $7, $9)",
            )?,
            // A run taken over by hand is no longer queued, and no lease expires under it. A
            // finished run stays finished.
            claimed: prepare(
                "UPDATE runs SET owner = $2, status = 'running', lease_until = NULL
                 WHERE id = $1 AND status IN ('running', 'queued')",
            )?,
            // The writes of a run's progress take effect only while this process owns the run
            // (`$owner`): one that lost it (its lease ran out, another instance claimed it)
            // neither sends nor overwrites what the new owner writes. See `Fail::TakenOver`.
            // The run's row is share-locked until the write commits: a claim passes it by
            // meanwhile (SKIP LOCKED), so no claim reads the run without this write.
            vars: prepare("UPDATE runs SET vars = $2 WHERE id = $1 AND owner = $3")?,
            attempt_sent: prepare(
                "INSERT INTO attempts (run_id, step, phase, number, request, sent_ms)
                 SELECT $1::text, $2::text, $3::text, $4::integer, $5::text, $6::bigint
                 WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND owner = $7 FOR SHARE)
                 ON CONFLICT (run_id, step, number) DO UPDATE SET phase = excluded.phase,
                    request = excluded.request, sent_ms = excluded.sent_ms, status = NULL,
                    error = NULL, answered_ms = NULL, seq = nextval('flowrun_seq')",
            )?,
            attempt_answered: prepare(
                "UPDATE attempts SET status = $4, error = $5, answered_ms = $6
                 WHERE run_id = $1 AND step = $2 AND number = $3
                   AND EXISTS (SELECT 1 FROM runs WHERE id = $1 AND owner = $7 FOR SHARE)",
            )?,
            step_done: prepare(
                "INSERT INTO steps (run_id, step, phase, status, slot, saved, error, at_ms)
                 SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint
                 WHERE EXISTS (SELECT 1 FROM runs WHERE id = $1 AND owner = $9 FOR SHARE)
                 ON CONFLICT (run_id, step) DO UPDATE SET phase = excluded.phase,
                    status = excluded.status, slot = excluded.slot, saved = excluded.saved,
                    error = excluded.error, at_ms = excluded.at_ms, seq = nextval('flowrun_seq')",
            )?,
            run_finished: prepare(
                "UPDATE runs SET status = $2, outputs = $3, error = $4, updated_ms = $5
                 WHERE id = $1 AND owner = $6",
            )?,
            cursor: prepare(
                "INSERT INTO cursors (name, value, updated_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            )?,
            announce: prepare(&format!("SELECT pg_notify('{QUEUE_CHANNEL}', '')"))?,
        };
        Ok(PostgresStore {
            client: Mutex::new(client),
            leases: std::sync::Arc::new(Leases {
                connection: std::sync::OnceLock::new(),
                reach: (config, connector),
                place: place.clone(),
            }),
            announced,
            listening: std::sync::atomic::AtomicBool::new(false),
            prepared,
            place,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the journal is: `host:port/database`, never the password.
    pub fn place(&self) -> &str {
        &self.place
    }
}

/// `host:port/database` of `config`, for messages.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "PostgreSQL at {host}:{port}/{}",
        config.get_dbname().unwrap_or("(default)")
    )
}

/// Brings the schema up to date, one migration per transaction, under the advisory lock.
fn migrate(client: &mut Client, place: &str) -> Result<(), JournalError> {
    let failed = |e: tokio_postgres::Error| {
        JournalError::Store(format!(
            "cannot update the journal schema in {place}: {}",
            store_error(e)
        ))
    };
    wait(async {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS flowrun_schema (version INTEGER NOT NULL)")
            .await?;
        let version: i32 = match tx.query_opt("SELECT version FROM flowrun_schema", &[]).await? {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO flowrun_schema (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Ok(Err(JournalError::Store(format!(
                "{place} has journal schema version {version}; this flowrun knows up to {}: use a newer flowrun",
                MIGRATIONS.len()
            ))));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch_execute(sql).await?;
            tx.execute("UPDATE flowrun_schema SET version = $1", &[&((i + 1) as i32)])
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    })
    .map_err(failed)?
}

fn json_of(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// Why a write did not go in.
enum Fail {
    /// The server refused it (a constraint, a lost connection).
    Db(tokio_postgres::Error),
    /// Its run belongs to another process now: see `super::taken_over`.
    TakenOver(String),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Fail {
        Fail::Db(e)
    }
}

impl From<Fail> for JournalError {
    fn from(fail: Fail) -> JournalError {
        match fail {
            Fail::Db(e) => store_error(e),
            Fail::TakenOver(run) => JournalError::Store(super::taken_over(&run)),
        }
    }
}

/// A fenced write changed `n` rows: none means its run is not this process's any more.
fn owned(n: u64, run: &str) -> Result<(), Fail> {
    match n {
        0 => Err(Fail::TakenOver(run.to_string())),
        _ => Ok(()),
    }
}

/// Applies one write inside the transaction.
async fn apply_one(tx: &tokio_postgres::Transaction<'_>, p: &Prepared, write: &Write) -> Result<(), Fail> {
    let me = super::owner_here();
    match write {
        Write::RunStarted(start) => {
            let inputs = start.inputs.to_string();
            let vars = start.vars.as_ref().map(Value::to_string);
            tx.execute(
                &p.run_started,
                &[
                    &start.id,
                    &start.flow_path,
                    &start.flow_name,
                    &start.flow_hash,
                    &inputs,
                    &start.at_ms,
                    &(!start.queued).then(super::owner_here),
                    &if start.queued { "queued" } else { "running" },
                    &vars,
                ],
            )
            .await?;
        }
        Write::Claimed { run, owner } => {
            tx.execute(&p.claimed, &[run, owner]).await?;
        }
        Write::Vars { run, vars } => {
            let n = tx.execute(&p.vars, &[run, &vars.to_string(), &me]).await?;
            owned(n, run)?;
        }
        Write::AttemptSent {
            run,
            step,
            phase,
            number,
            request,
            at_ms,
        } => {
            let number = *number as i32;
            let n = tx
                .execute(
                    &p.attempt_sent,
                    &[run, step, phase, &number, &request.get(), at_ms, &me],
                )
                .await?;
            owned(n, run)?;
        }
        Write::AttemptAnswered {
            run,
            step,
            number,
            status,
            error,
            at_ms,
        } => {
            let number = *number as i32;
            let status = status.map(i32::from);
            // An answer the owner no longer wants is dropped without a word: the writes with it
            // (the step's end, the next attempt) say the run was taken over.
            tx.execute(
                &p.attempt_answered,
                &[run, step, &number, &status, error, at_ms, &me],
            )
            .await?;
        }
        Write::StepDone {
            run,
            step,
            phase,
            status,
            slot,
            saved,
            error,
            at_ms,
        } => {
            let error = error.as_ref().map(|e| e.get());
            let n = tx
                .execute(
                    &p.step_done,
                    &[
                        run,
                        step,
                        phase,
                        status,
                        &slot.get(),
                        &saved.get(),
                        &error,
                        at_ms,
                        &me,
                    ],
                )
                .await?;
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
                .execute(
                    &p.run_finished,
                    &[run, status, &outputs.to_string(), error, at_ms, &me],
                )
                .await?;
            owned(n, run)?;
        }
        Write::Cursor { name, value, at_ms } => {
            tx.execute(&p.cursor, &[name, value, at_ms]).await?;
        }
        // A PostgreSQL journal has no intent log: its writes go to the server directly.
        Write::Applied { .. } => {}
    }
    Ok(())
}

/// Applies one group under a savepoint: a failing group leaves nothing behind, and (unlike
/// SQLite) an error would otherwise abort the whole transaction.
async fn apply_group(
    tx: &tokio_postgres::Transaction<'_>,
    p: &Prepared,
    group: &[Write],
) -> Result<Result<(), JournalError>, tokio_postgres::Error> {
    tx.batch_execute("SAVEPOINT grp").await?;
    let mut result = Ok(());
    for write in group {
        if let Err(fail) = apply_one(tx, p, write).await {
            result = Err(fail.into());
            break;
        }
    }
    if result.is_err() {
        tx.batch_execute("ROLLBACK TO SAVEPOINT grp").await?;
    }
    tx.batch_execute("RELEASE SAVEPOINT grp").await?;
    Ok(result)
}

/// When `queues`, a notification that queued runs are there to claim: sent by the server
/// when the transaction commits.
async fn announce(
    tx: &tokio_postgres::Transaction<'_>,
    p: &Prepared,
    queues: bool,
) -> Result<(), tokio_postgres::Error> {
    if queues {
        tx.execute(&p.announce, &[]).await?;
    }
    Ok(())
}

fn run_row(r: &Row) -> RunRow {
    RunRow {
        id: r.get(0),
        flow: r.get(1),
        flow_path: r.get(2),
        status: r.get(3),
        started_ms: r.get(4),
        updated_ms: r.get(5),
        error: r.get(6),
    }
}

const RUN_COLUMNS: &str = "id, flow_name, flow_path, status, started_ms, updated_ms, error";

impl Store for PostgresStore {
    fn write(&self, groups: &[&[Write]]) -> Result<Vec<Result<(), JournalError>>, JournalError> {
        let mut client = self.lock();
        let queues = groups
            .iter()
            .flat_map(|g| g.iter())
            .any(|w| matches!(w, Write::RunStarted(s) if s.queued));
        // Most of the time every write goes in: all of them are sent at once (tokio-postgres
        // pipelines the statements of futures polled together), one round trip to the server
        // instead of one per statement. A write refused (a run id taken) aborts that
        // transaction; it is then rolled back and the groups written one by one, each under a
        // savepoint, so the others still go in.
        let pipelined = wait(async {
            let tx = client.transaction().await?;
            let writes = groups.iter().flat_map(|g| g.iter());
            let sent = futures_util::future::join_all(writes.map(|w| apply_one(&tx, &self.prepared, w)));
            let (sent, notified) =
                futures_util::future::join(sent, announce(&tx, &self.prepared, queues)).await;
            if sent.iter().all(Result::is_ok) && notified.is_ok() {
                tx.commit().await?;
                Ok(true)
            } else {
                tx.rollback().await?;
                Ok::<_, tokio_postgres::Error>(false)
            }
        });
        match pipelined {
            Ok(true) => return Ok(vec![Ok(()); groups.len()]),
            Ok(false) => {}
            Err(e) => return Err(store_error(e)),
        }
        let outcome = wait(async {
            let tx = client.transaction().await?;
            let mut results = Vec::with_capacity(groups.len());
            for group in groups {
                results.push(apply_group(&tx, &self.prepared, group).await?);
            }
            announce(&tx, &self.prepared, queues).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(results)
        });
        outcome.map_err(store_error)
    }

    fn cursor(&self, name: &str) -> Result<Option<String>, JournalError> {
        let client = self.lock();
        let row = wait(client.query_opt("SELECT value FROM cursors WHERE name = $1", &[&name]))
            .map_err(store_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn outputs_where(
        &self,
        flow_path: &str,
        key: &str,
        value: &Value,
    ) -> Result<Option<Value>, JournalError> {
        let client = self.lock();
        // The newest run of the flow that ended well and whose output `key` is `value`.
        let row = wait(client.query_opt(
            "SELECT outputs FROM runs
             WHERE flow_path = $1 AND status IN ('passed', 'stopped')
               AND (outputs::jsonb) -> $2 = $3::text::jsonb
             ORDER BY started_ms DESC LIMIT 1",
            &[&flow_path, &key, &value.to_string()],
        ))
        .map_err(store_error)?;
        Ok(row.map(|r| json_of(r.get(0))))
    }

    fn runs(&self, unfinished: bool, limit: usize) -> Result<Vec<RunRow>, JournalError> {
        let client = self.lock();
        let filter = if unfinished {
            "WHERE status IN ('running', 'queued')"
        } else {
            ""
        };
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs {filter} ORDER BY started_ms DESC, id LIMIT $1");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = wait(client.query(&sql, &[&limit])).map_err(store_error)?;
        Ok(rows.iter().map(run_row).collect())
    }

    fn run(&self, id: &str) -> Result<Option<RunDetail>, JournalError> {
        let client = self.lock();
        let sql =
            format!("SELECT {RUN_COLUMNS}, flow_hash, inputs, vars, outputs, owner FROM runs WHERE id = $1");
        let Some(head) = wait(client.query_opt(&sql, &[&id])).map_err(store_error)? else {
            return Ok(None);
        };
        let steps = wait(client.query(
            "SELECT step, phase, status, slot, saved, error FROM steps WHERE run_id = $1 ORDER BY seq",
            &[&id],
        ))
        .map_err(store_error)?
        .iter()
        .map(|r| StepRow {
            step: r.get(0),
            phase: r.get(1),
            status: r.get(2),
            slot: json_of(r.get(3)),
            saved: json_of(r.get(4)),
            error: json_of(r.get(5)),
        })
        .collect();
        // An attempt is answered when its answer was written, or when its step ended (the
        // step's end holds the last answer; its own row is not updated then).
        let attempts = wait(client.query(
            "SELECT a.step, a.phase, a.number, a.request,
                    coalesce(a.status, CASE WHEN a.number = (SELECT max(number) FROM attempts b
                             WHERE b.run_id = a.run_id AND b.step = a.step)
                         THEN ((s.slot::jsonb) ->> 'status')::integer END),
                    a.error, a.answered_ms IS NOT NULL OR s.step IS NOT NULL
             FROM attempts a LEFT JOIN steps s ON s.run_id = a.run_id AND s.step = a.step
             WHERE a.run_id = $1 ORDER BY a.seq",
            &[&id],
        ))
        .map_err(store_error)?
        .iter()
        .map(|r| AttemptRow {
            step: r.get(0),
            phase: r.get(1),
            number: u32::try_from(r.get::<_, i32>(2)).unwrap_or_default(),
            request: json_of(r.get(3)),
            status: r.get::<_, Option<i32>>(4).and_then(|s| u16::try_from(s).ok()),
            error: r.get(5),
            answered: r.get(6),
        })
        .collect();
        Ok(Some(RunDetail {
            row: run_row(&head),
            flow_hash: head.get(7),
            inputs: json_of(head.get(8)),
            vars: json_of(head.get(9)),
            outputs: json_of(head.get(10)),
            owner: head.get(11),
            steps,
            attempts,
        }))
    }

    fn shared(&self) -> bool {
        true
    }

    fn lead(&self, name: &str) -> Result<bool, JournalError> {
        // A session-level advisory lock: held until this connection closes — the process
        // ending, even by kill -9, releases it, and another instance takes the lead.
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("flowrun lead: {name}").as_bytes());
        let key = i64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        let client = self.lock();
        let row = wait(client.query_one("SELECT pg_try_advisory_lock($1)", &[&key])).map_err(store_error)?;
        Ok(row.get(0))
    }

    fn claim(
        &self,
        owner: &str,
        flows: &[String],
        most: usize,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Claimed>, JournalError> {
        self.leases.claim(owner, flows, most, until_ms, now_ms)
    }

    fn renew(&self, owner: &str, until_ms: i64) -> Result<u64, JournalError> {
        self.leases.renew(owner, until_ms)
    }

    fn queued(&self) -> Result<u64, JournalError> {
        self.leases.queued()
    }

    fn leases(&self) -> Option<std::sync::Arc<dyn super::LeaseStore>> {
        Some(self.leases.clone())
    }

    fn queue_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        use std::sync::atomic::Ordering;
        if !self.listening.swap(true, Ordering::Relaxed) {
            let client = self.lock();
            if wait(client.batch_execute(&format!("LISTEN {QUEUE_CHANNEL}"))).is_err() {
                self.listening.store(false, Ordering::Relaxed);
                return None;
            }
        }
        Some(self.announced.clone())
    }

    fn prune(&self, before_ms: i64) -> Result<u64, JournalError> {
        let mut client = self.lock();
        wait(async {
            let tx = client.transaction().await?;
            let old = "SELECT id FROM runs WHERE status NOT IN ('running', 'queued') AND updated_ms < $1";
            for table in ["steps", "attempts"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE run_id IN ({old})"),
                    &[&before_ms],
                )
                .await?;
            }
            let n = tx
                .execute(
                    "DELETE FROM runs WHERE status NOT IN ('running', 'queued') AND updated_ms < $1",
                    &[&before_ms],
                )
                .await?;
            tx.commit().await?;
            Ok(n)
        })
        .map_err(store_error)
    }
}

/// Claims, lease renewals and the queue's depth, on a connection of their own, opened the
/// first time a service claims or reads the depth (never by `flowrun runs`). The journal calls
/// them without waiting for its writes: a renewal that waited behind a long write could come
/// after the lease ran out, and another instance would claim runs this one is running.
struct Leases {
    connection: std::sync::OnceLock<Mutex<Client>>,
    /// How to open it.
    reach: (tokio_postgres::Config, tokio_postgres_rustls::MakeRustlsConnect),
    place: String,
}

impl Leases {
    fn connection(&self) -> Result<std::sync::MutexGuard<'_, Client>, JournalError> {
        if self.connection.get().is_none() {
            let client = connect(&self.reach.0, &self.reach.1, &self.place, None)?;
            // Two threads opening it at once: one connection is kept, the other closes.
            let _ = self.connection.set(Mutex::new(client));
        }
        let connection = self
            .connection
            .get()
            .ok_or_else(|| JournalError::Store(format!("no connection to {} for leases", self.place)))?;
        Ok(connection.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl super::LeaseStore for Leases {
    fn claim(
        &self,
        owner: &str,
        flows: &[String],
        most: usize,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Claimed>, JournalError> {
        let most = i64::try_from(most).unwrap_or(i64::MAX);
        let client = self.connection()?;
        // SKIP LOCKED: instances claiming at once each take other rows instead of waiting.
        // Oldest first: the events nearest their deadline. What the run was before (queued or
        // running) comes from the locked row, before the update.
        let rows = wait(client.query(
            "UPDATE runs r SET status = 'running', owner = $1, lease_until = $2
             FROM (SELECT id, status FROM runs
                   WHERE flow_path = ANY($3)
                     AND (status = 'queued'
                          OR (status = 'running' AND lease_until < $4
                              AND owner IS DISTINCT FROM $1))
                   ORDER BY started_ms LIMIT $5
                   FOR UPDATE SKIP LOCKED) c
             WHERE r.id = c.id
             RETURNING r.id, r.flow_path, c.status = 'queued', r.inputs, r.started_ms",
            &[&owner, &until_ms, &flows, &now_ms, &most],
        ))
        .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|r| Claimed {
                id: r.get(0),
                flow_path: r.get(1),
                fresh: r.get(2),
                inputs: json_of(r.get(3)),
                started_ms: r.get(4),
            })
            .collect())
    }

    fn renew(&self, owner: &str, until_ms: i64) -> Result<u64, JournalError> {
        let client = self.connection()?;
        // Rows a write of this process holds are passed by (renewed the next time): waiting
        // for them while holding others could deadlock with that write.
        wait(client.execute(
            "UPDATE runs SET lease_until = $2
             WHERE id IN (SELECT id FROM runs
                          WHERE owner = $1 AND status = 'running' AND lease_until IS NOT NULL
                          FOR UPDATE SKIP LOCKED)",
            &[&owner, &until_ms],
        ))
        .map_err(store_error)
    }

    fn queued(&self) -> Result<u64, JournalError> {
        let client = self.connection()?;
        let row = wait(client.query_one("SELECT count(*) FROM runs WHERE status = 'queued'", &[]))
            .map_err(store_error)?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
    }
}
