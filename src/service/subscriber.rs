//! The Pub/Sub source: subscribes to the channel's platform event and hands each event to the
//! [`Runtime`]. It follows the delivery rules a subscriber must live with:
//!
//! - **flow control**: asks for `batch` events, and for more before the credit runs out;
//! - **replay**: each event's replay id is stored in the journal once its run is recorded; a
//!   restart subscribes from there (`CUSTOM`), and falls back to `EARLIEST` when the server
//!   refuses the stored id (too old, corrupted), as the API description says; duplicates that
//!   replay brings are dropped by event id;
//! - **reconnect** with exponential backoff and jitter; a **watchdog** resubscribes when
//!   nothing, not even a keepalive, arrives for `stall_after`; on `UNAUTHENTICATED` a new token
//!   is fetched (JWT bearer) before subscribing again.

use super::event::Event;
use super::runtime::{Queueing, Runtime, Taken};
use crate::http::auth::Auth;
use crate::pubsub::avro::{self, Schemas};
use crate::pubsub::client::{self, Client, Credentials};
use crate::pubsub::messages::{ERROR_CODE, FetchRequest, FetchResponse, MOST_REQUESTED, ReplayPreset};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tonic::{Code, Status};

/// The Pub/Sub source's settings, rendered.
pub struct Settings {
    /// The endpoint.
    pub url: String,
    /// `/event/<CustomPlatformEvent>`.
    pub topic: String,
    /// The org's My Domain URL.
    pub instance_url: String,
    /// The org id.
    pub org_id: String,
    /// Where tokens come from.
    pub auth: Auth,
    /// Events asked for at a time, 1 to 100.
    pub batch: i32,
    /// Resubscribe when nothing arrives for this long.
    pub stall_after: Duration,
}

/// The default watchdog: Salesforce sends a keepalive at least every 270 s.
pub const STALL_AFTER: Duration = Duration::from_secs(300);

/// How a subscription ended.
enum Ended {
    /// Shutting down.
    Stopped,
    /// The token was refused.
    Unauthenticated,
    /// The stored replay id was refused: start again from the earliest retained event.
    ReplayRefused(String),
    /// Nothing arrived for `stall_after`.
    Stalled,
    /// Anything else: the connection, the server.
    Failed(String),
}

/// Backoff between attempts: doubling from 200 ms to 30 s, each with up to 50% jitter, back to
/// the start once a subscription delivers.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MOST: Duration = Duration::from_secs(30);

    fn wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        base + base.mul_f64(fastrand::f64() * 0.5)
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Subscribes until `stop` is set; events go to `runtime`.
pub async fn run(
    runtime: Arc<Runtime>,
    settings: Settings,
    stop: Arc<AtomicBool>,
    stopped: Arc<tokio::sync::Notify>,
) {
    let cursor_name = format!("pubsub:{}", settings.topic);
    if !lead(&runtime, &cursor_name, &stop, &stopped).await {
        return;
    }
    let mut position = Position {
        preset: ReplayPreset::Latest,
        replay_id: Vec::new(),
    };
    // Not ready until subscribed: the lead taken, the position may take a while to read.
    runtime.subscription.0.store(true, Ordering::Relaxed);
    let Some(stored) = stored_position(&runtime, &cursor_name, &stop, &stopped).await else {
        return;
    };
    if let Some(stored) = stored.and_then(|hex| unhex(&hex)) {
        position = Position {
            preset: ReplayPreset::Custom,
            replay_id: stored,
        };
    }
    let (positions, taken) = tokio::sync::mpsc::channel(POSITIONS_AHEAD);
    tokio::spawn(store_positions(runtime.clone(), cursor_name.clone(), taken));
    let mut backoff = Backoff { next: Backoff::FIRST };
    let mut schemas = Schemas::default();
    let mut token = match settings.auth.token().await {
        Ok(t) => t.unwrap_or_default(),
        Err(e) => {
            runtime
                .log
                .warn("cannot get a Pub/Sub token", &[("error", json!(e.to_string()))]);
            String::new()
        }
    };
    let mut first = true;
    while !stop.load(Ordering::Relaxed) {
        if !first {
            runtime.metrics.reconnects.inc();
        }
        first = false;
        let session = Session {
            runtime: &runtime,
            settings: &settings,
            positions: &positions,
            stop: &stop,
        };
        let ended = tokio::select! {
            ended = session.run(&token, &mut position, &mut schemas, &mut backoff) => ended,
            () = stopped.notified() => Ended::Stopped,
        };
        runtime.subscription.1.store(false, Ordering::Relaxed);
        let log = &runtime.log;
        match ended {
            Ended::Stopped => break,
            Ended::Unauthenticated => {
                log.warn("the Pub/Sub API refused the token", &[]);
                match settings.auth.refresh(&token).await {
                    Some(Ok(fresh)) => {
                        log.info("got a new token", &[]);
                        token = fresh;
                        continue;
                    }
                    Some(Err(e)) => log.warn("cannot get a new token", &[("error", json!(e.to_string()))]),
                    None => log.warn(
                        "a fixed access_token cannot be refreshed: set a new one and restart, or use jwt_bearer",
                        &[],
                    ),
                }
            }
            Ended::ReplayRefused(code) => {
                log.warn(
                    "the stored replay id was refused; subscribing from the earliest retained event",
                    &[("code", json!(code))],
                );
                position = Position {
                    preset: ReplayPreset::Earliest,
                    replay_id: Vec::new(),
                };
                continue;
            }
            Ended::Stalled => log.warn(
                "nothing arrived, not even a keepalive: subscribing again",
                &[(
                    "after",
                    json!(crate::engine::short_duration(settings.stall_after)),
                )],
            ),
            Ended::Failed(why) => log.warn("the subscription ended", &[("error", json!(why))]),
        }
        let wait = backoff.wait();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stopped.notified() => break,
        }
    }
    runtime.subscription.1.store(false, Ordering::Relaxed);
}

/// How often an instance standing by tries to take the subscription over.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// With a journal several instances share: waits until this one holds the subscription of
/// `name` (one instance at a time does). The runs of the previous holder are not its to
/// resume: they are leased, and any instance claims them once their lease runs out. `false`
/// when stopped meanwhile.
async fn lead(runtime: &Arc<Runtime>, name: &str, stop: &AtomicBool, stopped: &tokio::sync::Notify) -> bool {
    let log = &runtime.log;
    let Some(journal) = runtime.shared_journal() else {
        runtime.metrics.leading.set(1);
        return true;
    };
    let topic = json!(name.trim_start_matches("pubsub:"));
    loop {
        // Off the async workers: a round trip to the database, under the store's lock.
        let (asked, named) = (journal.clone(), name.to_string());
        let led = tokio::task::spawn_blocking(move || asked.lead(&named))
            .await
            .unwrap_or_else(|e| Err(crate::journal::JournalError::Store(e.to_string())));
        match led {
            Ok(true) => break,
            Ok(false) => {
                if !runtime.standby.swap(true, Ordering::Relaxed) {
                    log.info(
                        "standing by: another instance holds the subscription",
                        &[("topic", topic.clone())],
                    );
                }
            }
            Err(e) => log.warn("cannot take the lead", &[("error", json!(e.to_string()))]),
        }
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            () = stopped.notified() => return false,
        }
        if stop.load(Ordering::Relaxed) {
            return false;
        }
    }
    runtime.standby.store(false, Ordering::Relaxed);
    runtime.metrics.leading.set(1);
    // Written for operators (`flowrun runs` shows no cursors; the table does): who leads.
    let lead =
        crate::journal::Write::cursor(format!("leader:{name}"), crate::journal::owner_here().to_string());
    let asked = journal.clone();
    let recorded = tokio::task::spawn_blocking(move || asked.commit(lead))
        .await
        .unwrap_or_else(|e| Err(crate::journal::JournalError::Store(e.to_string())));
    if let Err(e) = recorded {
        log.warn("cannot record the lead", &[("error", json!(e.to_string()))]);
    }
    log.info(
        "leading: this instance holds the subscription",
        &[("topic", topic)],
    );
    true
}

/// Where `name` got to, as the journal stored it, asked again every second while the journal
/// fails: subscribing from `LATEST` for want of it would pass over every event published since.
/// `None` when stopped meanwhile.
async fn stored_position(
    runtime: &Arc<Runtime>,
    name: &str,
    stop: &AtomicBool,
    stopped: &tokio::sync::Notify,
) -> Option<Option<String>> {
    loop {
        // Off the async workers, as every read of the journal here: a database that waits
        // would hold one up.
        let asked = (runtime.clone(), name.to_string());
        let read = tokio::task::spawn_blocking(move || asked.0.cursor(&asked.1))
            .await
            .unwrap_or_else(|e| Err(crate::journal::JournalError::Store(e.to_string())));
        match read {
            Ok(stored) => return Some(stored),
            Err(e) => runtime.log.warn(
                "cannot read where the subscription got to; trying again",
                &[("error", json!(e.to_string()))],
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            () = stopped.notified() => return None,
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
    }
}

/// Where the next subscription starts.
struct Position {
    preset: ReplayPreset,
    replay_id: Vec<u8>,
}

struct Session<'a> {
    runtime: &'a Arc<Runtime>,
    settings: &'a Settings,
    /// Each event's replay id, for [`store_positions`].
    positions: &'a Positions,
    stop: &'a AtomicBool,
}

/// A taken event's replay id, with what tells when its run is in the shared journal's queue.
type Positions = tokio::sync::mpsc::Sender<(Option<Queueing>, Vec<u8>)>;

/// Events taken whose position is not stored yet, at most: while the journal cannot queue
/// their runs, the subscriber waits past this many (its credit runs out, and the server holds
/// the next events back).
const POSITIONS_AHEAD: usize = 256;

/// Stores the replay id of each event taken, in the order they came, as the source `name`'s
/// position: an event whose run is still being queued in the shared journal holds back the
/// positions of the events after it, so that a restart never starts past an event whose run
/// the journal does not have.
async fn store_positions(
    runtime: Arc<Runtime>,
    name: String,
    mut taken: tokio::sync::mpsc::Receiver<(Option<Queueing>, Vec<u8>)>,
) {
    while let Some((queueing, replay_id)) = taken.recv().await {
        match queueing {
            None => runtime.save_cursor(&name, hex(&replay_id)),
            Some(queueing) => match queueing.await {
                Ok(true) => runtime.store_cursor(&name, hex(&replay_id)),
                // The service gave its runs up before the journal had the run (or the task
                // queueing it ended early): the position stays before the event, which comes
                // again after a restart.
                _ => {
                    runtime.log.warn(
                        "an event's run was not queued: no position is stored past it (the event comes again after a restart)",
                        &[],
                    );
                    return;
                }
            },
        }
    }
}

impl Session<'_> {
    async fn run(
        &self,
        token: &str,
        position: &mut Position,
        schemas: &mut Schemas,
        backoff: &mut Backoff,
    ) -> Ended {
        let s = self.settings;
        let channel = match client::connect(&s.url).await {
            Ok(c) => c,
            Err(e) => return Ended::Failed(e),
        };
        let mut client = Client::new(
            channel,
            Credentials {
                access_token: token.to_string(),
                instance_url: s.instance_url.clone(),
                tenant_id: s.org_id.clone(),
            },
        );
        let topic = match client.topic(&s.topic).await {
            Ok(t) => t,
            Err(status) => return ended(status),
        };
        if !topic.can_subscribe {
            return Ended::Failed(format!("this user may not subscribe to {}", s.topic));
        }
        if schemas.get(&topic.schema_id).is_none()
            && let Err(e) = fetch_schema(&mut client, schemas, &topic.schema_id).await
        {
            return e;
        }
        let (requests, rx) = tokio::sync::mpsc::channel(4);
        let opening = FetchRequest {
            topic_name: s.topic.clone(),
            replay_preset: position.preset as i32,
            replay_id: position.replay_id.clone(),
            num_requested: s.batch,
            auth_refresh: String::new(),
        };
        if requests.send(opening).await.is_err() {
            return Ended::Failed("the request stream closed".into());
        }
        let mut stream = match client.subscribe(rx).await {
            Ok(stream) => stream,
            Err(status) => return ended(status),
        };
        self.runtime.subscription.1.store(true, Ordering::Relaxed);
        self.runtime.log.info(
            "subscribed",
            &[("topic", json!(s.topic)), ("from", json!(position.preset.name()))],
        );
        let mut credit = s.batch;
        loop {
            let message = match tokio::time::timeout(s.stall_after, stream.message()).await {
                Err(_) => return Ended::Stalled,
                Ok(Err(status)) => return ended(status),
                Ok(Ok(None)) => return Ended::Failed("the server closed the stream".into()),
                Ok(Ok(Some(message))) => message,
            };
            self.runtime.metrics.heard();
            if !message.events.is_empty() {
                backoff.reset();
            }
            if let Err(e) = self.deliver(&mut client, schemas, &message, position).await {
                return e;
            }
            // Ask for more before the credit runs out: the server sends nothing past it.
            credit = message.pending_num_requested.max(0).min(credit);
            if credit <= s.batch / 2 {
                let more = FetchRequest {
                    num_requested: s.batch - credit,
                    ..FetchRequest::default()
                };
                if requests.send(more).await.is_err() {
                    return Ended::Failed("the request stream closed".into());
                }
                credit = s.batch;
            }
        }
    }

    /// Each event of `message` to the runtime, in order; its replay id stored once taken.
    async fn deliver(
        &self,
        client: &mut Client,
        schemas: &mut Schemas,
        message: &FetchResponse,
        position: &mut Position,
    ) -> Result<(), Ended> {
        for consumer in &message.events {
            let Some(event) = &consumer.event else { continue };
            if schemas.get(&event.schema_id).is_none() {
                fetch_schema(client, schemas, &event.schema_id).await?;
            }
            // The event id becomes the run id: the same bound as a webhook's key.
            let decoded = match super::event::valid_id(&event.id) {
                false => Err(format!(
                    "an event id has 1 to {} characters",
                    super::event::MAX_ID
                )),
                true => schemas
                    .get(&event.schema_id)
                    .ok_or_else(|| "no schema".to_string())
                    .and_then(|schema| avro::decode(schema, &event.payload)),
            };
            let mut queueing = None;
            match decoded {
                Ok(fields) => {
                    let event = Event {
                        id: event.id.clone(),
                        fields,
                    };
                    queueing = self.take(event).await?;
                }
                Err(e) => {
                    // An event that cannot be read would stop every later one: it is logged,
                    // counted and passed over.
                    self.runtime.metrics.received.inc();
                    self.runtime.metrics.refused.inc();
                    self.runtime.log.warn(
                        "event passed over",
                        &[("event", json!(clip(&event.id))), ("error", json!(e))],
                    );
                }
            }
            position.preset = ReplayPreset::Custom;
            position.replay_id = consumer.replay_id.clone();
            let _ = self.positions.send((queueing, consumer.replay_id.clone())).await;
        }
        Ok(())
    }

    /// Hands `event` to the runtime; while as many runs as allowed are in flight, waits (the
    /// credit then runs out and the server holds the next events back). Gives what tells when
    /// its run is in the shared journal's queue, when it was queued there.
    async fn take(&self, event: Event) -> Result<Option<Queueing>, Ended> {
        loop {
            match self.runtime.take_streamed(event.clone()) {
                (Taken::Busy, _) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return Err(Ended::Stopped);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (_, queueing) => return Ok(queueing),
            }
        }
    }
}

async fn fetch_schema(client: &mut Client, schemas: &mut Schemas, id: &str) -> Result<(), Ended> {
    let info = client.schema(id).await.map_err(ended)?;
    schemas
        .insert(id, &info.schema_json)
        .map(|_| ())
        .map_err(Ended::Failed)
}

/// What a refusal from the server means for the next attempt.
fn ended(status: Status) -> Ended {
    let code = status
        .metadata()
        .get(ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if code.starts_with("fetch.replayid") {
        return Ended::ReplayRefused(code);
    }
    match status.code() {
        Code::Unauthenticated => Ended::Unauthenticated,
        other => Ended::Failed(format!("{other:?}: {}", status.message())),
    }
}

/// At most the first 200 characters of a server-given id, for a log line.
fn clip(id: &str) -> String {
    id.chars().take(super::event::MAX_ID).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The batch size a service file asks for, within the API's bound.
pub fn batch(asked: Option<u32>) -> i32 {
    asked.map_or(MOST_REQUESTED, |n| (n as i32).clamp(1, MOST_REQUESTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ids_round_trip_through_hex() {
        let id = vec![0, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&id)), Some(id));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_bound() {
        let mut b = Backoff { next: Backoff::FIRST };
        let first = b.wait();
        assert!(first >= Duration::from_millis(200) && first <= Duration::from_millis(300));
        for _ in 0..20 {
            assert!(b.wait() <= Duration::from_secs(45));
        }
        b.reset();
        assert!(b.wait() <= Duration::from_millis(300));
    }

    #[test]
    fn a_refused_replay_id_is_told_apart_from_other_errors() {
        let mut status = Status::invalid_argument("replay id refused");
        status
            .metadata_mut()
            .insert(ERROR_CODE, "fetch.replayid.validation.failed".parse().unwrap());
        assert!(matches!(ended(status), Ended::ReplayRefused(c) if c == "fetch.replayid.validation.failed"));
        assert!(matches!(
            ended(Status::unauthenticated("x")),
            Ended::Unauthenticated
        ));
        assert!(matches!(ended(Status::unavailable("x")), Ended::Failed(_)));
    }
}
