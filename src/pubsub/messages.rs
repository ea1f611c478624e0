//! The messages of the `eventbus.v1.PubSub` gRPC service a subscriber needs, declared with
//! prost's derive: field numbers and types are the wire facts of the public
//! `pubsub_api.proto`, so no `.proto` file, build script or `protoc` is needed.

/// `TopicRequest`: which topic to describe.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicRequest {
    /// `/event/<CustomPlatformEvent>`.
    #[prost(string, tag = "1")]
    pub topic_name: String,
}

/// `TopicInfo`: what a topic is and whether this client may subscribe.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicInfo {
    /// The topic's name.
    #[prost(string, tag = "1")]
    pub topic_name: String,
    /// The org's tenant GUID.
    #[prost(string, tag = "2")]
    pub tenant_guid: String,
    /// Whether the client may publish.
    #[prost(bool, tag = "3")]
    pub can_publish: bool,
    /// Whether the client may subscribe.
    #[prost(bool, tag = "4")]
    pub can_subscribe: bool,
    /// The id of the schema events are written with now.
    #[prost(string, tag = "5")]
    pub schema_id: String,
    /// The call's id, for Salesforce support.
    #[prost(string, tag = "6")]
    pub rpc_id: String,
}

/// `SchemaRequest`: which Avro schema to fetch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaRequest {
    /// The schema's id, as events and `TopicInfo` name it.
    #[prost(string, tag = "1")]
    pub schema_id: String,
}

/// `SchemaInfo`: an Avro schema, as JSON.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaInfo {
    /// The Avro schema.
    #[prost(string, tag = "1")]
    pub schema_json: String,
    /// Its id.
    #[prost(string, tag = "2")]
    pub schema_id: String,
    /// The call's id.
    #[prost(string, tag = "3")]
    pub rpc_id: String,
}

/// `ReplayPreset`: where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReplayPreset {
    /// New events only.
    Latest = 0,
    /// Every event still retained (72 hours).
    Earliest = 1,
    /// The events after `replay_id`.
    Custom = 2,
}

impl ReplayPreset {
    /// Its name in the API description.
    pub fn name(self) -> &'static str {
        match self {
            ReplayPreset::Latest => "LATEST",
            ReplayPreset::Earliest => "EARLIEST",
            ReplayPreset::Custom => "CUSTOM",
        }
    }
}

/// `FetchRequest`: the first one opens a subscription; each later one asks for more events.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchRequest {
    /// The topic (first request only).
    #[prost(string, tag = "1")]
    pub topic_name: String,
    /// Where to start (first request only).
    #[prost(enumeration = "ReplayPreset", tag = "2")]
    pub replay_preset: i32,
    /// With `Custom`: the last event processed.
    #[prost(bytes = "vec", tag = "3")]
    pub replay_id: Vec<u8>,
    /// How many more events the client can take (at most 100).
    #[prost(int32, tag = "4")]
    pub num_requested: i32,
    /// A new access token for a long-lived stream.
    #[prost(string, tag = "5")]
    pub auth_refresh: String,
}

/// `FetchResponse`: events, or a keepalive when there are none.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchResponse {
    /// The events delivered.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<ConsumerEvent>,
    /// The newest replay id of the topic (keepalives carry it too).
    #[prost(bytes = "vec", tag = "2")]
    pub latest_replay_id: Vec<u8>,
    /// The call's id.
    #[prost(string, tag = "3")]
    pub rpc_id: String,
    /// Events still owed to the client from its requests.
    #[prost(int32, tag = "4")]
    pub pending_num_requested: i32,
}

/// `ConsumerEvent`: an event and where it is in the stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConsumerEvent {
    /// The event.
    #[prost(message, optional, tag = "1")]
    pub event: Option<ProducerEvent>,
    /// Opaque position: subscribe with `Custom` and this to get the events after it.
    #[prost(bytes = "vec", tag = "2")]
    pub replay_id: Vec<u8>,
}

/// `ProducerEvent`: one Avro-encoded event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProducerEvent {
    /// The EventUuid: unique per event, the same on every delivery.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The schema the payload is written with.
    #[prost(string, tag = "2")]
    pub schema_id: String,
    /// One Avro binary datum (no container header).
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// Headers.
    #[prost(message, repeated, tag = "4")]
    pub headers: Vec<EventHeader>,
}

/// `EventHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventHeader {
    /// The header's name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// The gRPC paths of the calls flowrun makes.
pub mod paths {
    /// `GetTopic`.
    pub const GET_TOPIC: &str = "/eventbus.v1.PubSub/GetTopic";
    /// `GetSchema`.
    pub const GET_SCHEMA: &str = "/eventbus.v1.PubSub/GetSchema";
    /// `Subscribe`.
    pub const SUBSCRIBE: &str = "/eventbus.v1.PubSub/Subscribe";
}

/// The most events one `FetchRequest` may ask for.
pub const MOST_REQUESTED: i32 = 100;

/// The trailer carrying a Salesforce error code (`fetch.replayid.validation.failed`, ...).
pub const ERROR_CODE: &str = "error-code";
