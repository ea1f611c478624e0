//! The simulator's org: channels, queues, flows, users, accepted tokens, seeded conversations
//! and fault injection. Read from YAML; the built-in default makes the shipped flows pass.

use serde::{Deserialize, Serialize};

/// The simulator's configuration (a `*.sim.yaml` file): the org it plays and the faults it injects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// The 15-character org id requests must send as `OrgId`.
    pub org_id: String,
    /// Bearer tokens the simulator accepts.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Messaging channels; the first one's `definition` is the `SF_AUTHORIZATION_CONTEXT` given to flows.
    pub channels: Vec<Channel>,
    /// Queue ids `POST /api/v1/route` accepts; any other is 10032.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Flow ids `POST /api/v1/route` accepts in `routingInfo.flow`; any other is 10024.
    #[serde(default)]
    pub flows: Vec<String>,
    /// Agent user ids agent work can be given to; any other is 15106.
    #[serde(default)]
    pub users: Vec<String>,
    /// Conversations that exist from the start (a transfer needs one).
    #[serde(default)]
    pub conversations: Vec<SeedConversation>,
    /// The connected app for the OAuth JWT bearer flow.
    #[serde(default)]
    pub jwt: Option<JwtApp>,
    /// Agents accept agent work by themselves this long after it is created (for demos); the
    /// PSR then goes. Without it, work waits for `PATCH /api/v1/agentWork` with `Accept`.
    #[serde(default)]
    pub accept_work_after_ms: Option<u64>,
    /// How many conversations (and end users, agent work, routing results, acknowledgements)
    /// are kept; past it the oldest go, ended conversations first. Default 10,000.
    #[serde(default)]
    pub max_records: Option<usize>,
    /// The channel's custom platform event, served over the Pub/Sub API.
    #[serde(default)]
    pub events: Events,
    /// Faults to inject; none by default.
    #[serde(default)]
    pub faults: Faults,
}

/// The channel's custom platform event (YAML keys in camelCase): its topic and the field names
/// its ConversationChannelDefinition gives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Events {
    /// `/event/<CustomPlatformEvent>`.
    pub topic: String,
    /// `CustomEventTypeField`: holds `Interaction` or `RoutingRequested`.
    pub type_field: String,
    /// `CustomEventPayloadField`: the JSON payload, as a string.
    pub payload_field: String,
    /// `CustomEventChannelAddressIdField`.
    pub channel_address_field: String,
    /// `CustomEventRecipientField`.
    pub recipient_field: String,
    /// An idle subscription gets an empty answer this often (Salesforce: at least every 270 s).
    pub keepalive_ms: u64,
    /// How many events are kept for replay (Salesforce keeps 72 hours' worth).
    pub retained: usize,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            topic: "/event/Partner_Event__e".into(),
            type_field: "Partner_Type__c".into(),
            payload_field: "Partner_Payload__c".into(),
            channel_address_field: "Partner_Channel_Address__c".into(),
            recipient_field: "Partner_Recipient__c".into(),
            keepalive_ms: 270_000,
            retained: 100_000,
        }
    }
}

/// A messaging channel of the org (YAML keys in camelCase).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Channel {
    /// The channel address identifier (`to` of an interaction).
    pub address: String,
    /// Developer name of the ConversationChannelDefinition: the `AuthorizationContext`.
    pub definition: String,
    /// Who owns consent (`consentOwner`, default `Partner`); consent updates need `Partner` (10022).
    #[serde(default = "partner")]
    pub consent_owner: String,
    /// Who owns routing (`routingOwner`, default `Partner`); no simulated rule reads it.
    #[serde(default = "partner")]
    pub routing_owner: String,
    /// The channel handles opt-in keywords itself, so consent updates are refused (10023).
    #[serde(default)]
    pub supports_keywords: bool,
    /// An inactive channel refuses interactions with 10031; true by default.
    #[serde(default = "yes")]
    pub active: bool,
    /// The queue the channel's own routing configuration names: `POST /route` without
    /// `routingInfo` routes there (10030 when the channel has none).
    #[serde(default)]
    pub queue: Option<String>,
}

fn partner() -> String {
    "Partner".into()
}

fn yes() -> bool {
    true
}

/// A conversation that exists when the simulator starts, with its end user (YAML keys in camelCase).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeedConversation {
    /// The conversation's id, as requests send it in `conversationIdentifier`.
    pub conversation_identifier: String,
    /// Its messaging session id, as the API's `workItemId` (15 characters).
    pub work_item_id: String,
    /// Address of the channel it is on: a configured channel's `address`.
    pub channel: String,
    /// The end user's client id: `endUserClientId`, an interaction's `from`.
    pub end_user: String,
    /// The end user's consent at start, such as `ExplicitlyOptedIn`; routing needs an opted-in one.
    #[serde(default)]
    pub consent_status: Option<String>,
}

/// The connected app whose JWT bearer assertions the simulator's token endpoint accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtApp {
    /// The consumer key the JWT's `iss` must name.
    pub client_id: String,
    /// PEM public key (or certificate's key) that verifies the RS256 signature.
    pub public_key: String,
}

/// Faults to inject, so retry and refresh paths can be exercised.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added to every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of API calls (0..1) answered 503.
    #[serde(default)]
    pub rate_503: f64,
    /// Share of API calls answered with code 10019 (read-only mode, retry later).
    #[serde(default)]
    pub rate_10019: f64,
    /// Share of API calls answered with code 10094 (downstream timeout).
    #[serde(default)]
    pub rate_10094: f64,
    /// Share of API calls answered with code 10055 (conversation precondition failed, retry).
    #[serde(default)]
    pub rate_10055: f64,
    /// Share of API calls answered with code 10056 (conversation processing aborted, retry).
    #[serde(default)]
    pub rate_10056: f64,
    /// A token stops working after this many API calls with it (401, code 10004).
    #[serde(default)]
    pub token_expires_after: Option<u64>,
    /// A Pub/Sub subscription goes silent (no events, no keepalives, the stream left open)
    /// after delivering this many events: the stall users report.
    #[serde(default)]
    pub pubsub_stall_after: Option<u64>,
    /// Seed of the fault sequence, so a run is repeatable.
    #[serde(default)]
    pub seed: u64,
}

/// The token of the default configuration.
pub const DEFAULT_TOKEN: &str = "00D000000000001!sim-access-token";

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            org_id: "00D000000000001".into(),
            tokens: vec![DEFAULT_TOKEN.into()],
            channels: vec![Channel {
                address: "+15550100".into(),
                definition: "Partner_Channel".into(),
                consent_owner: partner(),
                routing_owner: partner(),
                supports_keywords: false,
                active: true,
                queue: None,
            }],
            queues: vec!["00G5g000000SimQ".into()],
            flows: vec!["3005g000000SimF".into()],
            users: vec!["0055g000000SimA".into(), "0055g000000SimB".into()],
            conversations: vec![SeedConversation {
                conversation_identifier: "8a1f2c3d-0000-4000-8000-00000000c0de".into(),
                work_item_id: "0Mw5g000000SimW".into(),
                channel: "+15550100".into(),
                end_user: "+15550999".into(),
                consent_status: Some("ExplicitlyOptedIn".into()),
            }],
            jwt: None,
            accept_work_after_ms: None,
            max_records: None,
            events: Events::default(),
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// Reads a configuration file (YAML).
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let (doc, errors) = crate::base::yaml::load(text);
        if let Some(e) = errors.first() {
            let at = e.span.start;
            let hint = e.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
            return Err(format!("{}:{}: {}{hint}", at.line, at.col, e.message));
        }
        let value = doc.map(|d| d.value).unwrap_or_default();
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Reads a configuration file; errors name the file: `sim.yaml:6:8: ...`.
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let source = crate::base::source::Source::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        SimConfig::from_yaml(&source.text).map_err(|e| format!("{}:{e}", path.display()))
    }

    /// The configured channel with this address identifier, if any.
    pub fn channel(&self, address: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.address == address)
    }
}
