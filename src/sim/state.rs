//! What the simulated org holds: end users and their consent, conversations with their work
//! items and messages, Pending Service Routing records, agent work, routing results and
//! acknowledgements.

use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// The most conversations (and end users, agent work, routing results, acknowledgements) the
/// simulator keeps by default: a long load test must not grow it without bound. Past it, the
/// oldest go first, ended conversations before open ones.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

/// Everything the simulated org holds; `GET /sim/state` shows it a page at a time.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Messaging end users by `channel address / client id`.
    pub end_users: BTreeMap<String, EndUser>,
    /// Conversations by conversation identifier.
    pub conversations: BTreeMap<String, Conversation>,
    /// Pending Service Routing records by conversation identifier: the conversation waits in
    /// a queue until an agent accepts its work (or the route is deleted).
    pub psrs: BTreeMap<String, Psr>,
    /// Agent work, oldest first; past `max_records` the oldest go.
    pub agent_work: VecDeque<AgentWork>,
    /// Bodies of accepted `POST /api/v1/routingResult` calls, oldest first, capped likewise.
    pub routing_results: VecDeque<Value>,
    /// Bodies of accepted `POST /api/v1/acknowledgement` calls, oldest first, capped likewise.
    pub acknowledgements: VecDeque<Value>,
    /// Conversation ids, oldest first.
    #[serde(skip)]
    order: VecDeque<String>,
    /// The open conversation of each end user (by [`end_user_key`]).
    #[serde(skip)]
    open: BTreeMap<String, String>,
    /// How many of each kind of record are kept.
    #[serde(skip)]
    pub max_records: usize,
    /// Counts for ids and faults.
    #[serde(skip)]
    pub counter: u64,
    /// API calls made with each token, counted only when `faults.token_expires_after` is set.
    #[serde(skip)]
    pub token_uses: BTreeMap<String, u64>,
}

/// A messaging end user on one channel, with their consent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndUser {
    /// Address identifier of the channel they write to.
    pub channel: String,
    /// Their `endUserClientId`: the `from` of their interactions.
    pub client_id: String,
    /// Consent as seeded or last set by `PATCH /api/v1/consent`; routing needs an opted-in one.
    pub consent_status: Option<String>,
}

/// A conversation and its messaging session (the work item).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Address identifier of the channel (the interactions' `to`).
    pub channel: String,
    /// The end user's client id (the interactions' `from`).
    pub end_user: String,
    /// Id of the messaging session (the work item), answered as `workItemId`.
    pub work_item_id: String,
    /// `Active`, `Inactive` (after `messagingSession` Inactivate) or `Ended`.
    pub session_status: String,
    /// Interaction ids of the messages and attachments received, in order.
    pub messages: Vec<String>,
}

impl Conversation {
    /// Not ended: it still takes messages, routing and agent work.
    pub fn is_open(&self) -> bool {
        self.session_status != "Ended"
    }
}

/// A Pending Service Routing record, made by `POST /api/v1/route`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Psr {
    /// Id of the record (`0JR...`), answered as `psrId`.
    pub psr_id: String,
    /// UUID answered as `routingCorrelationId`; agent work without a routing context takes it.
    pub routing_correlation_id: String,
    /// `Initial`, `Transfer` or `Conference`, as the request said.
    pub routing_type: String,
    /// The request's `routingInfo`, or `{queueId}` of the channel's own queue when it had none.
    pub routing_info: serde_json::Value,
}

/// Agent work: `Assigned` until the agent accepts (`Opened`, and the PSR goes) or declines
/// (`Declined`, and the conversation stays in the queue); `Closed` or `Canceled` after.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentWork {
    /// Id of the record (`0Bz...`), answered as `agentWorkId` and named by `PATCH`'s `workId`.
    pub agent_work_id: String,
    /// The agent it is offered to: one of the configured users.
    pub user_id: String,
    /// The conversation's messaging session id.
    pub work_item_id: String,
    /// The conversation it is for.
    pub conversation_identifier: String,
    /// `routingType` of the routing it answers (routing context or PSR), if known.
    pub routing_type: Option<String>,
    /// `routingCorrelationId` of the routing it answers (routing context or PSR), if known.
    pub routing_correlation_id: Option<String>,
    /// `Assigned`, `Opened`, `Declined`, `Closed` or `Canceled`.
    pub status: String,
    /// When the configured automatic accept is due.
    #[serde(skip)]
    pub accept_at: Option<Instant>,
}

impl AgentWork {
    /// Assigned or opened: a second one for the same user and work item is refused (15109).
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "Assigned" | "Opened")
    }
}

/// Key of an end user in [`State::end_users`]: `<channel address>/<client id>`.
pub fn end_user_key(channel: &str, client: &str) -> String {
    format!("{channel}/{client}")
}

impl State {
    /// The start state of `config`: its seeded conversations and their end users, and its record cap.
    pub fn seeded(config: &super::config::SimConfig) -> Self {
        let mut s = State {
            max_records: config.max_records.unwrap_or(DEFAULT_MAX_RECORDS).max(1),
            ..State::default()
        };
        for c in &config.conversations {
            s.end_users.insert(
                end_user_key(&c.channel, &c.end_user),
                EndUser {
                    channel: c.channel.clone(),
                    client_id: c.end_user.clone(),
                    consent_status: c.consent_status.clone(),
                },
            );
            s.add_conversation(
                c.conversation_identifier.clone(),
                Conversation {
                    channel: c.channel.clone(),
                    end_user: c.end_user.clone(),
                    work_item_id: c.work_item_id.clone(),
                    session_status: "Active".into(),
                    messages: Vec::new(),
                },
            );
        }
        s
    }

    /// Keeps a new conversation (the end user's open one), making room if the cap is reached.
    pub fn add_conversation(&mut self, id: String, conversation: Conversation) {
        while self.conversations.len() >= self.max_records {
            self.evict_conversation();
        }
        let key = end_user_key(&conversation.channel, &conversation.end_user);
        self.open.insert(key, id.clone());
        self.order.push_back(id.clone());
        self.conversations.insert(id, conversation);
    }

    /// Drops the oldest ended conversation among the oldest few, else the oldest one, with its
    /// PSR.
    fn evict_conversation(&mut self) {
        const LOOK: usize = 64;
        let ended = self
            .order
            .iter()
            .take(LOOK)
            .position(|id| self.conversations.get(id).is_none_or(|c| !c.is_open()));
        let Some(id) = self.order.remove(ended.unwrap_or(0)) else {
            return;
        };
        self.psrs.remove(&id);
        if let Some(c) = self.conversations.remove(&id) {
            let key = end_user_key(&c.channel, &c.end_user);
            if self.open.get(&key) == Some(&id) {
                self.open.remove(&key);
            }
        }
    }

    /// Keeps an end user met for the first time; past the cap, one without an open
    /// conversation makes room.
    pub fn add_end_user(&mut self, key: String, user: EndUser) {
        if self.end_users.contains_key(&key) {
            return;
        }
        if self.end_users.len() >= self.max_records
            && let Some(old) = self
                .end_users
                .keys()
                .find(|k| !self.open.contains_key(*k))
                .cloned()
        {
            self.end_users.remove(&old);
        }
        self.end_users.insert(key, user);
    }

    /// The end user's conversation is over: a new message opens a new one.
    pub fn end_conversation(&mut self, id: &str) {
        if let Some(c) = self.conversations.get_mut(id) {
            c.session_status = "Ended".into();
            let key = end_user_key(&c.channel, &c.end_user);
            if self.open.get(&key).is_some_and(|open| open == id) {
                self.open.remove(&key);
            }
        }
    }

    /// Keeps new agent work, dropping the oldest past the cap.
    pub fn add_agent_work(&mut self, work: AgentWork) {
        push_capped(&mut self.agent_work, work, self.max_records);
    }

    /// Keeps an accepted routing result's body, dropping the oldest past the cap.
    pub fn add_routing_result(&mut self, result: Value) {
        push_capped(&mut self.routing_results, result, self.max_records);
    }

    /// Keeps an accepted acknowledgement's body, dropping the oldest past the cap.
    pub fn add_acknowledgement(&mut self, ack: Value) {
        push_capped(&mut self.acknowledgements, ack, self.max_records);
    }

    /// One page of the state: at most `limit` entries of each collection from `offset` on, with
    /// the totals, so a large state is read in parts.
    pub fn page(&self, offset: usize, limit: usize) -> Value {
        fn map<T: Serialize>(m: &BTreeMap<String, T>, offset: usize, limit: usize) -> Value {
            let page: serde_json::Map<String, Value> = m
                .iter()
                .skip(offset)
                .take(limit)
                .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                .collect();
            Value::Object(page)
        }
        fn list<T: Serialize>(l: &VecDeque<T>, offset: usize, limit: usize) -> Value {
            Value::Array(
                l.iter()
                    .skip(offset)
                    .take(limit)
                    .map(|v| serde_json::to_value(v).unwrap_or_default())
                    .collect(),
            )
        }
        json!({
            "endUsers": map(&self.end_users, offset, limit),
            "conversations": map(&self.conversations, offset, limit),
            "psrs": map(&self.psrs, offset, limit),
            "agentWork": list(&self.agent_work, offset, limit),
            "routingResults": list(&self.routing_results, offset, limit),
            "acknowledgements": list(&self.acknowledgements, offset, limit),
            "page": {
                "offset": offset,
                "limit": limit,
                "totals": {
                    "endUsers": self.end_users.len(),
                    "conversations": self.conversations.len(),
                    "psrs": self.psrs.len(),
                    "agentWork": self.agent_work.len(),
                    "routingResults": self.routing_results.len(),
                    "acknowledgements": self.acknowledgements.len(),
                },
            },
        })
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A Salesforce-style 15-character id with a 3-character key prefix.
    pub fn sf_id(&mut self, prefix: &str) -> String {
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut n = self.next();
        let mut tail = [b'0'; 12];
        for slot in tail.iter_mut().rev() {
            *slot = DIGITS[(n % 62) as usize];
            n /= 62;
        }
        format!("{prefix}{}", String::from_utf8_lossy(&tail))
    }

    /// A UUID-shaped id, unique within this state and repeatable (a counter, not random).
    pub fn uuid(&mut self) -> String {
        format!("5e550000-0000-4000-8000-{:012x}", self.next())
    }

    /// The conversation (id and record) whose messaging session is `work_item`; a linear scan.
    pub fn conversation_by_work_item(&self, work_item: &str) -> Option<(&String, &Conversation)> {
        self.conversations
            .iter()
            .find(|(_, c)| c.work_item_id == work_item)
    }

    /// The open conversation of an end user on a channel: a new interaction joins it.
    pub fn open_conversation(&self, channel: &str, end_user: &str) -> Option<String> {
        self.open.get(&end_user_key(channel, end_user)).cloned()
    }
}

/// Appends `item`, dropping the oldest ones past `max`.
fn push_capped<T>(list: &mut VecDeque<T>, item: T, max: usize) {
    while list.len() >= max {
        list.pop_front();
    }
    list.push_back(item);
}
