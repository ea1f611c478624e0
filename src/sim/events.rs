//! The channel's custom platform event, as the simulator publishes it: a bounded log of
//! Avro-encoded events with replay ids (the [`Bus`]), and the RoutingRequested event an agent's
//! click on a transfer target makes (`POST /sim/transfer`) or any event (`POST /sim/events`).

use super::codes::Answer;
use super::config::SimConfig;
use super::state::State;
use crate::pubsub::avro;
use crate::pubsub::messages::{ConsumerEvent, ProducerEvent};
use apache_avro::Schema;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::Mutex;

/// The published events, oldest first, with what a subscriber needs to read them.
pub struct Bus {
    /// `/event/<CustomPlatformEvent>`.
    pub topic: String,
    /// The id `GetSchema` answers for.
    pub schema_id: String,
    /// The Avro schema, as JSON.
    pub schema_json: String,
    schema: Schema,
    log: Mutex<Log>,
    /// The replay id the next event gets; subscribers wait for it to change.
    published: tokio::sync::watch::Sender<u64>,
    retained: usize,
    /// Drawn at start: the ids this simulator makes differ from an earlier one's, so a
    /// journal kept across simulator restarts does not take new events for old ones.
    salt: u16,
}

/// The largest event payload: Salesforce's limit for a platform event (1 MB).
const MOST_EVENT_BYTES: usize = 1_000_000;

/// The most payload bytes one `FetchResponse` carries: under the 4 MiB a gRPC client takes
/// by default, as Salesforce keeps its responses.
const MOST_RESPONSE_BYTES: usize = 3 << 20;

#[derive(Default)]
struct Log {
    events: VecDeque<(u64, ProducerEvent)>,
    next: u64,
    /// Ids made so far: event UUIDs and eventIds stay unique across `POST /sim/reset`.
    ids: u64,
}

/// Why a replay id cannot be subscribed from: the `error-code` trailer Salesforce sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReplay {
    /// Not a replay id this topic makes.
    Corrupted,
    /// Too old (no longer retained) or not reached yet.
    Invalid,
}

impl BadReplay {
    /// The Salesforce error code.
    pub fn code(self) -> &'static str {
        match self {
            BadReplay::Corrupted => "fetch.replayid.corrupted",
            BadReplay::Invalid => "fetch.replayid.validation.failed",
        }
    }
}

/// A replay id's bytes: eight, big-endian. Opaque to subscribers, as Salesforce's are.
pub fn replay_bytes(replay: u64) -> Vec<u8> {
    replay.to_be_bytes().to_vec()
}

impl Bus {
    /// The bus of `config`'s platform event.
    pub fn new(config: &SimConfig) -> Bus {
        let e = &config.events;
        let name = e
            .topic
            .rsplit('/')
            .next()
            .unwrap_or("Partner_Event__e")
            .to_string();
        let fields = [
            e.type_field.as_str(),
            e.payload_field.as_str(),
            e.channel_address_field.as_str(),
            e.recipient_field.as_str(),
        ];
        let schema_json = avro::platform_event_schema(&name, &fields);
        // The schema is built from field names the configuration gives; a name Avro refuses
        // falls back to the default ones rather than leaving the simulator without events.
        let schema = Schema::parse_str(&schema_json).unwrap_or_else(|_| {
            Schema::parse_str(&avro::platform_event_schema(
                "Partner_Event__e",
                &["Partner_Type__c"],
            ))
            .unwrap_or(Schema::Null)
        });
        Bus {
            topic: e.topic.clone(),
            schema_id: schema_id(&schema_json),
            schema_json,
            schema,
            log: Mutex::new(Log::default()),
            published: tokio::sync::watch::channel(0).0,
            retained: e.retained.max(1),
            salt: fastrand::u16(..),
        }
    }

    /// Publishes an event with these fields: its replay id.
    pub fn publish(&self, uuid: String, fields: &Map<String, Value>) -> Result<u64, String> {
        let payload = avro::encode(&self.schema, fields)?;
        if payload.len() > MOST_EVENT_BYTES {
            return Err(format!(
                "the event is {} bytes; a platform event is at most 1 MB",
                payload.len()
            ));
        }
        let mut log = self
            .log
            .lock()
            .map_err(|_| "the event log is unavailable".to_string())?;
        let replay = log.next;
        log.next += 1;
        log.events.push_back((
            replay,
            ProducerEvent {
                id: uuid,
                schema_id: self.schema_id.clone(),
                payload,
                headers: Vec::new(),
            },
        ));
        while log.events.len() > self.retained {
            log.events.pop_front();
        }
        self.published.send_replace(log.next);
        Ok(replay)
    }

    /// A UUID no event of this bus had: `EventUuid`s and `eventId`s.
    pub fn fresh_id(&self) -> String {
        let n = self.log.lock().map(|mut log| {
            log.ids += 1;
            log.ids
        });
        format!("e7e7e7e7-{:04x}-4000-8000-{:012x}", self.salt, n.unwrap_or(0))
    }

    /// Where a subscription starts: the position of the first event it gets.
    pub fn start(&self, preset: i32, replay_id: &[u8]) -> Result<u64, BadReplay> {
        let log = self.log.lock().map_err(|_| BadReplay::Invalid)?;
        let first = log.events.front().map_or(log.next, |(r, _)| *r);
        match preset {
            1 => Ok(first),
            2 => {
                let bytes: [u8; 8] = replay_id.try_into().map_err(|_| BadReplay::Corrupted)?;
                let replay = u64::from_be_bytes(bytes);
                // The events after `replay`; it must still be retained (or be the newest).
                if replay >= log.next || replay.saturating_add(1) < first {
                    return Err(BadReplay::Invalid);
                }
                Ok(replay + 1)
            }
            _ => Ok(log.next),
        }
    }

    /// At most `most` events from `position` on.
    pub fn read(&self, position: u64, most: usize) -> Vec<ConsumerEvent> {
        let Ok(log) = self.log.lock() else {
            return Vec::new();
        };
        let first = log.events.front().map_or(log.next, |(r, _)| *r);
        let skip = position.saturating_sub(first) as usize;
        let mut bytes = 0;
        log.events
            .iter()
            .skip(skip)
            .take(most)
            // At least one event; then no more than a response carries.
            .take_while(|(_, event)| {
                bytes += event.payload.len();
                bytes == event.payload.len() || bytes <= MOST_RESPONSE_BYTES
            })
            .map(|(replay, event)| ConsumerEvent {
                event: Some(event.clone()),
                replay_id: replay_bytes(*replay),
            })
            .collect()
    }

    /// The replay id of the newest event (keepalives carry it).
    pub fn latest(&self) -> Vec<u8> {
        replay_bytes(self.published.borrow().saturating_sub(1))
    }

    /// Wakes when an event is published.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }
}

/// `POST /sim/events`: `{type, payload, eventUuid?, createdDate?, channelAddress?}` published
/// as it is (`payload` an object is written as its JSON string).
pub fn publish_event(bus: &Bus, config: &SimConfig, body: &Value) -> Answer {
    if let Err(answer) = shape(
        body,
        &[
            ("type", Kind::Text),
            ("payload", Kind::Any),
            ("eventUuid", Kind::Text),
            ("createdDate", Kind::Integer),
        ],
    ) {
        return answer;
    }
    let Some(kind) = body.get("type").and_then(Value::as_str) else {
        return bad("`type` (the event type, such as `Interaction` or `RoutingRequested`) is required");
    };
    let payload = match body.get("payload") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => return bad("`payload` is required"),
    };
    publish(bus, config, body, kind, payload, Value::Null)
}

/// The most events one `POST /sim/transfer` publishes (`count`).
const MOST_AT_ONCE: u64 = 100_000;

/// `POST /sim/transfer`: an agent clicks a transfer target. `{conversationId?, target: queue |
/// flow | agent | external, queueId?, flowId?, userId?, workRecordId? (null leaves it out, as
/// the documented sample does), eventUuid?, createdDate?, count?}`. The RoutingRequested event
/// is published with the payload the documentation shows; `count` publishes that many (each
/// with its own ids: a backlog, for benchmarks), answering with the last.
pub fn transfer(bus: &Bus, config: &SimConfig, state: &mut State, body: &Value) -> Answer {
    let fields = [
        ("target", Kind::Text),
        ("conversationId", Kind::Text),
        ("queueId", Kind::Text),
        ("flowId", Kind::Text),
        ("userId", Kind::Text),
        ("workRecordId", Kind::TextOrNull),
        ("eventUuid", Kind::Text),
        ("createdDate", Kind::Integer),
        ("count", Kind::Integer),
    ];
    if let Err(answer) = shape(body, &fields) {
        return answer;
    }
    let count = body.get("count").and_then(Value::as_u64).unwrap_or(1);
    if !(1..=MOST_AT_ONCE).contains(&count) || (count > 1 && body.get("eventUuid").is_some()) {
        return bad(&format!(
            "`count` is 1 to {MOST_AT_ONCE}, and more than 1 only without `eventUuid`"
        ));
    }
    let mut answer = one_transfer(bus, config, state, body);
    for _ in 1..count {
        if answer.status != 200 {
            break;
        }
        answer = one_transfer(bus, config, state, body);
    }
    answer
}

fn one_transfer(bus: &Bus, config: &SimConfig, state: &mut State, body: &Value) -> Answer {
    let get = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let conversation = match get("conversationId") {
        Some(c) => c,
        None => match config.conversations.first() {
            Some(c) => c.conversation_identifier.clone(),
            None => return bad("`conversationId` is required (the configuration seeds no conversation)"),
        },
    };
    let Some(found) = state.conversations.get(&conversation).cloned() else {
        return bad(&format!("no conversation `{conversation}`"));
    };
    let target = get("target").unwrap_or_else(|| "queue".into());
    let first = |list: &[String]| list.first().cloned().map_or(Value::Null, Value::String);
    let given = |k: &str, default: Value| get(k).map_or(default, Value::String);
    let (queue, flow, user) = match target.as_str() {
        "queue" => (given("queueId", first(&config.queues)), Value::Null, Value::Null),
        "flow" => (
            given("queueId", first(&config.queues)),
            given("flowId", first(&config.flows)),
            Value::Null,
        ),
        "agent" => (Value::Null, Value::Null, given("userId", first(&config.users))),
        "external" => (Value::Null, Value::Null, Value::Null),
        other => {
            return bad(&format!(
                "`target` is queue, flow, agent or external, not `{other}`"
            ));
        }
    };
    let work_record = match body.get("workRecordId") {
        Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(s.clone()),
        _ => Value::String(found.work_item_id.clone()),
    };
    let event_id = bus.fresh_id();
    let channel_data = json!({
        "eventId": event_id,
        "routerParticipantSubject": null,
        "routingType": "Transfer",
        "conversationId": conversation,
    })
    .to_string();
    let payload = json!({
        "channelAddressIdentifier": found.channel,
        "recipient": {"appType": "custom", "subject": found.channel, "role": "EndUser"},
        "payload": {
            "conversationIdentifier": conversation,
            "routingType": "Transfer",
            "workRecordId": work_record,
            "routingParameters": {
                "queueId": queue, "flowId": flow, "userId": user, "botId": null,
                "skillsList": [], "routingConfigId": null, "serviceChannelId": null,
                "isTransfer": true, "isFallbackOnPsrNotCreated": false,
                "isEstimatedWaitTimeRequested": false, "isUserRequired": false, "isScrt2": true,
                "channelData": channel_data,
            }
        }
    })
    .to_string();
    let channel = Value::String(found.channel.clone());
    let mut answer = publish(bus, config, body, "RoutingRequested", payload, channel);
    if answer.status == 200 {
        answer.body["eventId"] = Value::String(event_id);
        answer.body["target"] = Value::String(target);
    }
    answer
}

fn publish(
    bus: &Bus,
    config: &SimConfig,
    body: &Value,
    kind: &str,
    payload: String,
    channel: Value,
) -> Answer {
    let e = &config.events;
    let uuid = body
        .get("eventUuid")
        .and_then(Value::as_str)
        .map_or_else(|| bus.fresh_id(), str::to_string);
    let created = body
        .get("createdDate")
        .and_then(Value::as_i64)
        .unwrap_or_else(now_ms);
    let mut fields = Map::new();
    fields.insert("CreatedDate".into(), json!(created));
    fields.insert("CreatedById".into(), json!("0055g000000SimU"));
    fields.insert(e.type_field.clone(), json!(kind));
    fields.insert(e.payload_field.clone(), json!(payload));
    fields.insert(e.channel_address_field.clone(), channel);
    match bus.publish(uuid.clone(), &fields) {
        Ok(replay) => Answer {
            status: 200,
            body: json!({"eventUuid": uuid, "replayId": replay, "topic": bus.topic}),
        },
        Err(e) => bad(&e),
    }
}

/// A schema's id: the first bytes of its SHA-256, hex (Salesforce's ids are opaque too).
fn schema_id(json: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(json.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a field of a `/sim/...` body holds.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    TextOrNull,
    Integer,
    Any,
}

/// The body is an object of these fields only, each of its kind: a mistyped or unknown field
/// is refused, not ignored (an ignored `createdDate` would publish a fresh event).
fn shape(body: &Value, fields: &[(&str, Kind)]) -> Result<(), Answer> {
    let Some(object) = body.as_object() else {
        return Err(bad("the body is a JSON object"));
    };
    for (key, value) in object {
        let Some((_, kind)) = fields.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
            return Err(bad(&format!(
                "unknown field `{key}`: the fields are {}",
                known.join(", ")
            )));
        };
        let fits = match kind {
            Kind::Text => value.is_string(),
            Kind::TextOrNull => value.is_string() || value.is_null(),
            Kind::Integer => value.is_i64() || value.is_u64(),
            Kind::Any => true,
        };
        if !fits {
            let what = match kind {
                Kind::Text => "a string",
                Kind::TextOrNull => "a string or null",
                Kind::Integer => "an integer",
                Kind::Any => "anything",
            };
            return Err(bad(&format!("`{key}` must be {what}")));
        }
    }
    Ok(())
}

fn bad(message: &str) -> Answer {
    Answer {
        status: 400,
        body: json!({"code": 400, "message": message}),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Value) -> (u16, Value) {
        let config = SimConfig::default();
        let bus = Bus::new(&config);
        let mut state = State::seeded(&config);
        let a = transfer(&bus, &config, &mut state, &body);
        (a.status, a.body["message"].clone())
    }

    #[test]
    fn an_event_over_1_mb_is_refused_and_a_response_stays_under_4_mib() {
        let config = SimConfig::default();
        let bus = Bus::new(&config);
        let event = |bytes: usize| json!({"type": "Interaction", "payload": "x".repeat(bytes)});
        let refused = publish_event(&bus, &config, &event(1_100_000));
        assert_eq!(refused.status, 400);
        assert!(
            refused.body["message"]
                .as_str()
                .unwrap()
                .ends_with("bytes; a platform event is at most 1 MB"),
            "{}",
            refused.body
        );
        for _ in 0..6 {
            assert_eq!(publish_event(&bus, &config, &event(900_000)).status, 200);
        }
        // Three of 900 kB fit in a response (3 MiB of payload at most); the rest come next.
        assert_eq!(bus.read(0, 100).len(), 3);
        assert_eq!(bus.read(3, 100).len(), 3);
    }

    #[test]
    fn ids_differ_from_one_simulator_start_to_the_next() {
        let config = SimConfig::default();
        let ids: std::collections::BTreeSet<String> = (0..8).map(|_| Bus::new(&config).fresh_id()).collect();
        assert!(ids.len() > 1, "{ids:?}");
    }

    #[test]
    fn a_mistyped_or_unknown_field_is_refused_not_ignored() {
        assert_eq!(
            answer(json!({"createdDate": "yesterday"})),
            (400, json!("`createdDate` must be an integer"))
        );
        assert_eq!(
            answer(json!({"target": 5})),
            (400, json!("`target` must be a string"))
        );
        assert_eq!(answer(json!([])), (400, json!("the body is a JSON object")));
        let (status, message) = answer(json!({"bogus": 1}));
        assert_eq!(status, 400);
        assert!(
            message
                .as_str()
                .unwrap()
                .starts_with("unknown field `bogus`: the fields are target, ")
        );
        assert_eq!(answer(json!({"target": "agent", "workRecordId": null})).0, 200);
    }

    #[test]
    fn count_publishes_a_backlog_each_with_its_own_ids() {
        let config = SimConfig::default();
        let bus = Bus::new(&config);
        let mut state = State::seeded(&config);
        let a = transfer(
            &bus,
            &config,
            &mut state,
            &json!({"target": "external", "count": 3}),
        );
        assert_eq!(a.body["replayId"], 2);
        let events = bus.read(0, 10);
        assert_eq!(events.len(), 3);
        let ids: std::collections::HashSet<_> = events
            .iter()
            .map(|e| e.event.as_ref().unwrap().id.clone())
            .collect();
        assert_eq!(ids.len(), 3);
        // Replay from the first event's id: the two after it.
        assert_eq!(bus.start(2, &replay_bytes(0)), Ok(1));
        assert_eq!(bus.start(2, &replay_bytes(7)), Err(BadReplay::Invalid));
        assert_eq!(bus.start(2, b"xyz"), Err(BadReplay::Corrupted));
    }
}
