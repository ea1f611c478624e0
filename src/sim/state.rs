//! What the simulated org holds: end users and their consent, conversations with their work
//! items and messages, Pending Service Routing records, agent work, routing results and
//! acknowledgements.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

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
    pub agent_work: Vec<AgentWork>,
    pub routing_results: Vec<serde_json::Value>,
    pub acknowledgements: Vec<serde_json::Value>,
    /// Counts for ids and faults.
    #[serde(skip)]
    pub counter: u64,
    #[serde(skip)]
    pub token_uses: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndUser {
    pub channel: String,
    pub client_id: String,
    pub consent_status: Option<String>,
}

/// A conversation and its messaging session (the work item).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub channel: String,
    pub end_user: String,
    pub work_item_id: String,
    /// `Active`, `Inactive` (after `messagingSession` Inactivate) or `Ended`.
    pub session_status: String,
    /// Interaction ids of the messages and attachments received, in order.
    pub messages: Vec<String>,
}

impl Conversation {
    pub fn is_open(&self) -> bool {
        self.session_status != "Ended"
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Psr {
    pub psr_id: String,
    pub routing_correlation_id: String,
    pub routing_type: String,
    pub routing_info: serde_json::Value,
}

/// Agent work: `Assigned` until the agent accepts (`Opened`, and the PSR goes) or declines
/// (`Declined`, and the conversation stays in the queue); `Closed` or `Canceled` after.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentWork {
    pub agent_work_id: String,
    pub user_id: String,
    pub work_item_id: String,
    pub conversation_identifier: String,
    pub routing_type: Option<String>,
    pub routing_correlation_id: Option<String>,
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

pub fn end_user_key(channel: &str, client: &str) -> String {
    format!("{channel}/{client}")
}

impl State {
    pub fn seeded(config: &super::config::SimConfig) -> Self {
        let mut s = State::default();
        for c in &config.conversations {
            s.end_users.insert(
                end_user_key(&c.channel, &c.end_user),
                EndUser {
                    channel: c.channel.clone(),
                    client_id: c.end_user.clone(),
                    consent_status: c.consent_status.clone(),
                },
            );
            s.conversations.insert(
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

    pub fn uuid(&mut self) -> String {
        format!("5e550000-0000-4000-8000-{:012x}", self.next())
    }

    pub fn conversation_by_work_item(&self, work_item: &str) -> Option<(&String, &Conversation)> {
        self.conversations
            .iter()
            .find(|(_, c)| c.work_item_id == work_item)
    }

    /// The open conversation of an end user on a channel: a new interaction joins it.
    pub fn open_conversation(&self, channel: &str, end_user: &str) -> Option<String> {
        self.conversations
            .iter()
            .find(|(_, c)| c.channel == channel && c.end_user == end_user && c.is_open())
            .map(|(id, _)| id.clone())
    }
}
