//! The Salesforce Pub/Sub API, as a subscriber needs it: the gRPC messages ([`messages`]), a
//! client ([`client`]) and the Avro payloads ([`avro`]). The simulator serves the same
//! messages; the service's subscriber loop (`service::subscriber`) drives the client.

pub(crate) mod avro;
pub(crate) mod client;
pub(crate) mod messages;
