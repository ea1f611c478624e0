//! The simulator's Pub/Sub API face: `eventbus.v1.PubSub` over gRPC (plaintext HTTP/2 on a
//! port of its own) with `GetTopic`, `GetSchema` and `Subscribe` for the channel's platform
//! event. Subscribe follows the delivery rules a subscriber must live with: events only up to
//! the credit asked for (at most 100 per request), replay from a stored id, keepalives when
//! idle, the stream closed after 60 s without credit, `UNAUTHENTICATED` once the token is no
//! longer accepted.

use super::events::Bus;
use super::rules::Service;
use crate::pubsub::messages::{
    ERROR_CODE, FetchRequest, FetchResponse, MOST_REQUESTED, SchemaInfo, SchemaRequest, TopicInfo,
    TopicRequest, paths,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::codegen::{BoxFuture, Context, Poll, Service as TowerService, http};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

type Shared = Arc<Mutex<Service>>;

/// The gRPC service, one per simulator.
#[derive(Clone)]
pub struct PubSub {
    shared: Shared,
}

impl NamedService for PubSub {
    const NAME: &'static str = "eventbus.v1.PubSub";
}

/// How long a subscription may go without credit before the server closes it.
const NO_CREDIT_FOR: Duration = Duration::from_secs(60);
/// Credit a stream may hold: a client asking for more is capped here.
const MOST_CREDIT: i32 = 10 * MOST_REQUESTED;

/// Checks the call's metadata: a token the simulator accepts now and the org's id. The bus.
fn authorised(shared: &Shared, metadata: &MetadataMap) -> Result<Arc<Bus>, Status> {
    let get = |k: &str| {
        metadata
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let service = shared
        .lock()
        .map_err(|_| Status::internal("the simulator's state is unavailable"))?;
    if !service.tokens.contains(&get("accesstoken")) {
        return Err(Status::unauthenticated(
            "the access token is missing, invalid or expired",
        ));
    }
    if get("tenantid") != service.config.org_id {
        return Err(Status::permission_denied(
            "`tenantid` does not name the token's org",
        ));
    }
    Ok(service.bus.clone())
}

fn still_accepted(shared: &Shared, token: &str) -> bool {
    shared.lock().is_ok_and(|s| s.tokens.iter().any(|t| t == token))
}

struct GetTopic(Shared);

impl TowerService<Request<TopicRequest>> for GetTopic {
    type Response = Response<TopicInfo>;
    type Error = Status;
    type Future = BoxFuture<Self::Response, Status>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: Request<TopicRequest>) -> Self::Future {
        let answer = authorised(&self.0, request.metadata()).and_then(|bus| {
            let name = &request.get_ref().topic_name;
            if *name != bus.topic {
                return Err(Status::not_found(format!("topic `{name}` does not exist")));
            }
            Ok(Response::new(TopicInfo {
                topic_name: bus.topic.clone(),
                tenant_guid: String::new(),
                can_publish: false,
                can_subscribe: true,
                schema_id: bus.schema_id.clone(),
                rpc_id: String::new(),
            }))
        });
        Box::pin(async move { answer })
    }
}

struct GetSchema(Shared);

impl TowerService<Request<SchemaRequest>> for GetSchema {
    type Response = Response<SchemaInfo>;
    type Error = Status;
    type Future = BoxFuture<Self::Response, Status>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, request: Request<SchemaRequest>) -> Self::Future {
        let answer = authorised(&self.0, request.metadata()).and_then(|bus| {
            let id = &request.get_ref().schema_id;
            if *id != bus.schema_id {
                return Err(Status::not_found(format!("schema `{id}` does not exist")));
            }
            Ok(Response::new(SchemaInfo {
                schema_json: bus.schema_json.clone(),
                schema_id: bus.schema_id.clone(),
                rpc_id: String::new(),
            }))
        });
        Box::pin(async move { answer })
    }
}

struct Subscribe(Shared);

type Responses = tonic::codegen::BoxStream<FetchResponse>;

impl tonic::server::StreamingService<FetchRequest> for Subscribe {
    type Response = FetchResponse;
    type ResponseStream = Responses;
    type Future = BoxFuture<Response<Responses>, Status>;

    fn call(&mut self, request: Request<Streaming<FetchRequest>>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            let bus = authorised(&shared, request.metadata())?;
            let token = request
                .metadata()
                .get("accesstoken")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let (keepalive, stall_after) = shared
                .lock()
                .map(|s| {
                    (
                        Duration::from_millis(s.config.events.keepalive_ms.max(10)),
                        s.config.faults.pubsub_stall_after,
                    )
                })
                .map_err(|_| Status::internal("the simulator's state is unavailable"))?;
            let mut inbound = request.into_inner();
            let first = inbound
                .message()
                .await?
                .ok_or_else(|| Status::invalid_argument("the subscription sent no FetchRequest"))?;
            if first.topic_name != bus.topic {
                return Err(Status::not_found(format!(
                    "topic `{}` does not exist",
                    first.topic_name
                )));
            }
            let position = bus.start(first.replay_preset, &first.replay_id).map_err(|bad| {
                let mut status = Status::invalid_argument(format!("replay id refused: {}", bad.code()));
                if let Ok(code) = bad.code().parse() {
                    status.metadata_mut().insert(ERROR_CODE, code);
                }
                status
            })?;
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let stream = Stream {
                shared,
                bus,
                token,
                position,
                credit: first.num_requested.clamp(0, MOST_REQUESTED),
                delivered: 0,
                stall_after,
                keepalive,
            };
            tokio::spawn(stream.serve(inbound, tx));
            let responses =
                futures_util::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
                );
            Ok(Response::new(Box::pin(responses) as Responses))
        })
    }
}

/// One subscription's side of the server.
struct Stream {
    shared: Shared,
    bus: Arc<Bus>,
    token: String,
    position: u64,
    credit: i32,
    delivered: u64,
    stall_after: Option<u64>,
    keepalive: Duration,
}

type Out = tokio::sync::mpsc::Sender<Result<FetchResponse, Status>>;

impl Stream {
    async fn serve(mut self, mut inbound: Streaming<FetchRequest>, out: Out) {
        let mut published = self.bus.watch();
        loop {
            let stalled = self.stall_after.is_some_and(|n| self.delivered >= n);
            if self.credit > 0 && !stalled {
                let events = self.bus.read(self.position, self.credit as usize);
                if !events.is_empty() {
                    if !still_accepted(&self.shared, &self.token) {
                        let _ = out
                            .send(Err(Status::unauthenticated("the access token has expired")))
                            .await;
                        return;
                    }
                    let n = events.len();
                    self.position += n as u64;
                    self.credit -= n as i32;
                    self.delivered += n as u64;
                    let response = FetchResponse {
                        latest_replay_id: events.last().map(|e| e.replay_id.clone()).unwrap_or_default(),
                        events,
                        rpc_id: String::new(),
                        pending_num_requested: self.credit,
                    };
                    if out.send(Ok(response)).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
            let idle = if self.credit == 0 {
                NO_CREDIT_FOR
            } else {
                self.keepalive
            };
            tokio::select! {
                request = inbound.message() => match request {
                    Ok(Some(more)) => {
                        self.credit = (self.credit + more.num_requested.clamp(0, MOST_REQUESTED)).min(MOST_CREDIT);
                    }
                    // The client went away.
                    _ => return,
                },
                changed = published.changed(), if self.credit > 0 && !stalled => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(idle) => {
                    if stalled {
                        // Silent: neither events nor keepalives, the stream left open.
                        continue;
                    }
                    if self.credit == 0 {
                        let _ = out.send(Err(Status::deadline_exceeded("no FetchRequest for 60 seconds"))).await;
                        return;
                    }
                    let keepalive = FetchResponse {
                        events: Vec::new(),
                        latest_replay_id: self.bus.latest(),
                        rpc_id: String::new(),
                        pending_num_requested: self.credit,
                    };
                    if out.send(Ok(keepalive)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

impl<B> TowerService<http::Request<B>> for PubSub
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            use tonic_prost::ProstCodec;
            Ok(match request.uri().path() {
                paths::GET_TOPIC => {
                    let codec = ProstCodec::<TopicInfo, TopicRequest>::default();
                    tonic::server::Grpc::new(codec)
                        .unary(GetTopic(shared), request)
                        .await
                }
                paths::GET_SCHEMA => {
                    let codec = ProstCodec::<SchemaInfo, SchemaRequest>::default();
                    tonic::server::Grpc::new(codec)
                        .unary(GetSchema(shared), request)
                        .await
                }
                paths::SUBSCRIBE => {
                    let codec = ProstCodec::<FetchResponse, FetchRequest>::default();
                    tonic::server::Grpc::new(codec)
                        .streaming(Subscribe(shared), request)
                        .await
                }
                other => Status::unimplemented(format!("`{other}` is not simulated")).into_http(),
            })
        })
    }
}

/// Serves the Pub/Sub API on `listener` until the process ends.
pub async fn serve(shared: Shared, listener: tokio::net::TcpListener) {
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    });
    let _ = tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(PubSub { shared }, incoming, std::future::pending::<()>())
        .await;
}
