//! Kept-alive HTTP/1.1 connections, a few per origin.
//!
//! A connection is taken out for one exchange and comes back only if its answer was read whole
//! and it may carry another request (`conn.rs`), so every connection here is idle and ready.
//! Connecting (TCP, then TLS for `https://`) is hyper-util's and hyper-rustls'.

use super::conn::Conn;
use super::{TransportError, client::innermost};
use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::sync::Mutex;
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

/// Connections by origin (`scheme://authority`), and how to open more.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
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
    pub(super) fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        Pool {
            connector,
            idle: Mutex::new(Vec::new()),
        }
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
        let failed = |e: &(dyn std::error::Error + 'static)| TransportError::Connect(innermost(e));
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| failed(&*e))?;
        let io = connector.call(uri.clone()).await.map_err(|e| failed(&*e))?;
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
