//! Kept-alive HTTP/1.1 connections, a few per origin.
//!
//! A connection is taken out for one exchange and comes back only if its answer was read whole
//! and it may carry another request (`conn.rs`), so every connection here is idle and ready.
//! Connecting (TCP, then TLS for `https://`) is hyper-util's and hyper-rustls'.
//!
//! The TLS settings are made for the first `https://` connection, not before: making them reads
//! and parses every certificate the system trusts (17M instructions, a third of a one-run
//! process's time), which a flow that calls only `http://` never needs.

use super::conn::Conn;
use super::{TransportError, client::innermost};
use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tower_service::Service;

/// A connection as the connectors make it, read and written through tokio's traits. Boxed:
/// with the TLS state it can hold, it is large, and it moves in and out of the pool.
pub(super) type Connection = Box<Conn<TokioIo<MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>>>;

/// How long an unused connection is kept (hyper-util's default). A server that closes earlier
/// is noticed when the connection is taken, or when a request on it fails as `Reset`, which the
/// run's retry policy answers.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Unused connections kept per origin at most; more are closed when they come back. Each one
/// was in use by a request, so this only bounds what a burst leaves behind.
const IDLE_PER_ORIGIN: usize = 256;

/// How `https://` connections are opened, made once and shared by a pool and its forks; a
/// failure to make it is kept too, and is every `https://` request's failure.
type Tls = Arc<OnceLock<Result<HttpsConnector<HttpConnector>, TransportError>>>;

/// Connections by origin (`scheme://authority`), and how to open more.
pub(super) struct Pool {
    http: HttpConnector,
    tls: Tls,
    /// Unused connections by origin, the most recently used last. An origin with none has no
    /// entry, so there are never more origins than there were connections in use at once; a
    /// flow calls a few, so they are searched in order rather than hashed.
    idle: Mutex<Vec<(String, Vec<Idle>)>>,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

impl Pool {
    pub(super) fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        Pool {
            http,
            tls: Tls::default(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A pool with no connections, opening them as this one does: the TLS settings, once made,
    /// are shared, not made again.
    pub(super) fn fork(&self) -> Self {
        Pool {
            http: self.http.clone(),
            tls: self.tls.clone(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Whether the TLS settings were made (by this pool or one of its forks).
    #[cfg(test)]
    pub(super) fn tls_made(&self) -> bool {
        self.tls.get().is_some()
    }

    /// A connection to `origin` (`scheme://authority`), and whether it served requests before:
    /// an unused one if any is still open, else a new one.
    pub(super) async fn take(&self, origin: &str) -> Result<(Connection, bool), TransportError> {
        if let Some(conn) = self.unused(origin) {
            return Ok((conn, true));
        }
        let uri: Uri = origin
            .parse()
            .map_err(|e| TransportError::Other(format!("invalid URL `{origin}`: {e}")))?;
        let io = match uri.scheme() {
            Some(s) if *s == http::uri::Scheme::HTTPS => {
                let https = self.tls.get_or_init(|| {
                    let tls = super::tls_config()?;
                    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
                    Ok(builder
                        .https_only()
                        .enable_http1()
                        .wrap_connector(self.http.clone()))
                });
                open(https.clone()?, uri).await?
            }
            // `http://`: the origin comes from `split_url`, which takes no other scheme.
            _ => MaybeHttpsStream::Http(open(self.http.clone(), uri).await?),
        };
        Ok((Box::new(Conn::new(TokioIo::new(io))), false))
    }

    /// The most recently used connection to `origin` that is still open, dropping expired and
    /// closed ones.
    fn unused(&self, origin: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let at = idle.iter().position(|(o, _)| o == origin)?;
        let list = &mut idle[at].1;
        let mut found = None;
        while let Some(mut one) = list.pop() {
            if one.since.elapsed() < IDLE_FOR && one.conn.is_open() {
                found = Some(one.conn);
                break;
            }
        }
        if list.is_empty() {
            idle.swap_remove(at);
        }
        found
    }

    /// Keeps `conn`, whose answer was read whole and which may carry another request, for the
    /// next request to `origin`.
    pub(super) fn give_back(&self, origin: &str, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let at = match idle.iter().position(|(o, _)| o == origin) {
            Some(at) => at,
            None => {
                idle.push((origin.to_string(), Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[at].1;
        if list.len() < IDLE_PER_ORIGIN {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

/// A connection to `uri` opened by `connector`, its failure said by its innermost cause.
async fn open<C>(mut connector: C, uri: Uri) -> Result<C::Response, TransportError>
where
    C: Service<Uri>,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let failed = |e: C::Error| TransportError::Connect(innermost(&*e.into()));
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(failed)?;
    connector.call(uri).await.map_err(failed)
}
