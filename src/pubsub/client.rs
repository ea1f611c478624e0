//! A Pub/Sub API client: tonic's generic gRPC client with the prost codec over the messages of
//! [`super::messages`]. Every call carries the org's metadata (`accesstoken`, `instanceurl`,
//! `tenantid`). `https://` goes over the same rustls settings as the HTTP client; `http://` is
//! plaintext HTTP/2 (the simulator, tests).

use super::messages::MOST_REQUESTED;
use super::messages::{
    FetchRequest, FetchResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest, paths,
};
use http::uri::PathAndQuery;
use std::time::Duration;
use tonic::codec::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Who the client is: the metadata every call carries.
#[derive(Clone)]
pub struct Credentials {
    /// The OAuth access token.
    pub access_token: String,
    /// The org's My Domain URL.
    pub instance_url: String,
    /// The org id.
    pub tenant_id: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches a log line through a `{:?}`.
        f.debug_struct("Credentials")
            .field("instance_url", &self.instance_url)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

/// A connection to the Pub/Sub API.
#[derive(Clone)]
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
    credentials: Credentials,
}

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings keep an idle stream's NAT and proxies awake, and find a dead peer.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Connects to `url` (`https://host:port` or plaintext `http://host:port`).
pub async fn connect(url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("`{url}` is not a URL gRPC can use: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(PING_EVERY)
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    let connected = if url.starts_with("http://") {
        endpoint.connect().await
    } else {
        let tls = crate::http::tls_config().map_err(|e| e.to_string())?;
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http2()
            .wrap_connector(http);
        endpoint.connect_with_connector(https).await
    };
    connected.map_err(|e| format!("cannot connect to {url}: {}", innermost(&e)))
}

/// The innermost cause says what happened ("Connection refused").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl Client {
    /// A client over `channel` acting as `credentials`.
    pub fn new(channel: Channel, credentials: Credentials) -> Client {
        // A response carries up to 100 events of up to 1 MB each: tonic's default bound (4 MiB)
        // would refuse a legitimate batch of large events, and end the subscription on it
        // again and again.
        Client {
            grpc: tonic::client::Grpc::new(channel)
                .max_decoding_message_size((MOST_REQUESTED as usize + 4) << 20),
            credentials,
        }
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        let c = &self.credentials;
        let metadata = request.metadata_mut();
        for (key, value) in [
            ("accesstoken", &c.access_token),
            ("instanceurl", &c.instance_url),
            ("tenantid", &c.tenant_id),
        ] {
            let value: MetadataValue<_> = value.parse().map_err(|_| {
                Status::invalid_argument(format!("`{key}` has a value gRPC metadata cannot carry"))
            })?;
            metadata.insert(key, value);
        }
        Ok(request)
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not connected: {e}")))
    }

    /// `GetTopic`.
    pub async fn topic(&mut self, topic: &str) -> Result<TopicInfo, Status> {
        let request = self.request(TopicRequest {
            topic_name: topic.to_string(),
        })?;
        self.ready().await?;
        let codec = tonic_prost::ProstCodec::default();
        let path = PathAndQuery::from_static(paths::GET_TOPIC);
        Ok(self.grpc.unary(request, path, codec).await?.into_inner())
    }

    /// `GetSchema`.
    pub async fn schema(&mut self, id: &str) -> Result<SchemaInfo, Status> {
        let request = self.request(SchemaRequest {
            schema_id: id.to_string(),
        })?;
        self.ready().await?;
        let codec = tonic_prost::ProstCodec::default();
        let path = PathAndQuery::from_static(paths::GET_SCHEMA);
        Ok(self.grpc.unary(request, path, codec).await?.into_inner())
    }

    /// `Subscribe`: `requests` is the stream of fetch requests (the first opens the
    /// subscription); the answer is the stream of fetch responses.
    pub async fn subscribe(
        &mut self,
        requests: tokio::sync::mpsc::Receiver<FetchRequest>,
    ) -> Result<Streaming<FetchResponse>, Status> {
        let stream = futures_util::stream::unfold(requests, |mut rx| async move {
            rx.recv().await.map(|message| (message, rx))
        });
        let request = self.request(stream)?;
        self.ready().await?;
        let codec = tonic_prost::ProstCodec::default();
        let path = PathAndQuery::from_static(paths::SUBSCRIBE);
        Ok(self.grpc.streaming(request, path, codec).await?.into_inner())
    }
}
