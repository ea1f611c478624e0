//! The typed service file, read from a document that passed [`super::check_service`].

use crate::flow::model::indexmap_like::Ordered;
use serde::Deserialize;
use std::time::Duration;

/// A whole service file.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    /// Short name of the service, shown in logs and metrics.
    pub name: String,
    /// What the service does.
    #[serde(default)]
    pub description: Option<String>,
    /// Which event fields hold the type and the payload.
    #[serde(default)]
    pub event: EventFields,
    /// Where events come from.
    pub sources: Sources,
    /// What events run, first match wins.
    pub on: Vec<Handler>,
}

/// The `event` key: templates naming the fields that hold the event type and its payload.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventFields {
    /// The field holding the event type, read as `event.type`.
    #[serde(default)]
    pub type_field: Option<String>,
    /// The field holding the JSON payload, read parsed as `payload`.
    #[serde(default)]
    pub payload_field: Option<String>,
}

/// The `sources` key.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sources {
    /// The Salesforce Pub/Sub API.
    #[serde(default)]
    pub pubsub: Option<PubSub>,
    /// A webhook the partner relays events to.
    #[serde(default)]
    pub webhook: Option<Webhook>,
}

/// The `sources.pubsub` key: templates rendered when the service starts.
#[derive(Debug, Clone, Deserialize)]
pub struct PubSub {
    /// The endpoint; `http://` is plaintext gRPC.
    #[serde(default)]
    pub url: Option<String>,
    /// `/event/<CustomPlatformEvent>`.
    pub topic: String,
    /// The org's My Domain URL.
    #[serde(default)]
    pub instance_url: Option<String>,
    /// The org id.
    #[serde(default)]
    pub org_id: Option<String>,
    /// The OAuth access token.
    #[serde(default)]
    pub access_token: Option<String>,
    /// Tokens from the JWT bearer flow (refreshed on `UNAUTHENTICATED`) instead of `access_token`.
    #[serde(default)]
    pub jwt_bearer: Option<crate::flow::model::JwtBearerSettings>,
    /// Events asked for at a time.
    #[serde(default)]
    pub batch: Option<u32>,
    /// Resubscribe when nothing arrives for this long.
    #[serde(default, with = "crate::flow::model::duration_opt")]
    pub stall_after: Option<Duration>,
}

/// The `sources.webhook` key.
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    /// The path events are posted to.
    pub path: String,
    /// What each request must carry.
    pub auth: WebhookAuth,
}

/// How a webhook request proves it comes from the partner.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookAuth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `X-Signature: sha256=<hex of HMAC-SHA256 of the body>` under this key.
    Hmac(String),
}

/// One `on` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Handler {
    /// Names the handler in logs and metrics.
    pub id: String,
    /// A bare expression over `event` and `payload`; unset, every event.
    #[serde(default)]
    pub when: Option<String>,
    /// The flow to run, relative to the service file.
    pub flow: String,
    /// Events older than this are expired, not run.
    #[serde(default, with = "crate::flow::model::duration_opt")]
    pub max_age: Option<Duration>,
    /// Input name → bare expression.
    #[serde(default)]
    pub inputs: Ordered<String>,
    /// Inputs taken from an earlier run when the event leaves them out.
    #[serde(default)]
    pub fill: Option<Fill>,
}

/// The `fill` key of a handler.
#[derive(Debug, Clone, Deserialize)]
pub struct Fill {
    /// The earlier flow, relative to the service file.
    pub from: String,
    /// The input (and output of `from`) that must match.
    #[serde(rename = "match")]
    pub matching: String,
    /// The inputs filled.
    pub inputs: Vec<String>,
}
