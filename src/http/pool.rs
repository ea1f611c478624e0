//! Kept-alive HTTP/1.1 connections, a few per origin, over hyper's own connection type.
//!
//! Why not hyper-util's pooled client: measured on the bench stub, one connection, the same
//! request in a loop, its pool cost 15–20 µs per request more than hyper's connection alone
//! (99–114 µs against 82–94 µs; wrk 77–89 µs), mostly a task it spawns after every answer to
//! put the connection back once it is ready again. Here a connection whose answer has been read
//! whole is nearly always ready at once (on a single-threaded runtime hyper marks it ready in
//! the same step that ends the answer) and goes straight back; only one that is not (its
//! request still being written, or its task on another thread) is put back by a task of its
//! own, as hyper-util does for every one. HTTP itself (writing requests, parsing answers,
//! keep-alive) stays hyper's and connecting (TCP, TLS) stays hyper-util's and hyper-rustls'.

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower_service::Service;

use super::{TransportError, client::innermost};

/// A connection to send a request over.
pub(super) type Sender = SendRequest<Full<Bytes>>;

/// How long an unused connection is kept: hyper-util's default. A server that closes earlier
/// is noticed when the connection is taken (it is closed) or when a request on it fails as
/// `Reset`, which the run's retry policy answers.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Unused connections kept per origin at most; more are closed when they come back. Each one
/// was in use by a request, so this only bounds what a burst leaves behind.
const IDLE_PER_ORIGIN: usize = 256;

/// Connections by origin (`scheme://authority`), and how to open more.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// Unused connections, the most recently used last. An origin with none has no entry, so
    /// the map never holds more origins than there were connections in use at once. Shared
    /// with the tasks that put back connections not ready when their answer ended.
    idle: Arc<Mutex<HashMap<String, Vec<Idle>>>>,
}

type Idles = Mutex<HashMap<String, Vec<Idle>>>;

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    pub(super) fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        Pool {
            connector,
            idle: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A connection to `origin` ready to send, and whether it served requests before: an
    /// unused one if any is still open, else a new one.
    pub(super) async fn take(&self, origin: &str, uri: &Uri) -> Result<(Sender, bool), TransportError> {
        // Only ready connections are kept, so one that is not ready now has closed.
        if let Some(sender) = self.unused(origin) {
            return Ok((sender, true));
        }
        let failed = |e: &(dyn std::error::Error + 'static)| TransportError::Connect(innermost(e));
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| failed(&*e))?;
        let io = connector.call(uri.clone()).await.map_err(|e| failed(&*e))?;
        let (sender, connection) = http1::handshake(io).await.map_err(|e| failed(&e))?;
        // The connection reads and writes on its own task until it closes or every sender
        // of it is gone.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok((sender, false))
    }

    /// The most recently used open connection to `origin`, dropping expired and closed ones.
    fn unused(&self, origin: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(origin)?;
        let mut found = None;
        while let Some(one) = list.pop() {
            if one.sender.is_ready() && one.since.elapsed() < IDLE_FOR {
                found = Some(one.sender);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(origin);
        }
        found
    }

    /// Keeps `sender` for the next request to `origin`: its answer has been read whole. A
    /// closed connection (the answer said `Connection: close`) is dropped. One still busy (its
    /// request not yet written to the end: a server may answer before reading an upload)
    /// waits on a task of its own, so that no request ever waits on another's upload, and is
    /// dropped if it closes instead.
    pub(super) fn give_back(&self, origin: &str, mut sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if sender.is_ready() {
            keep(&self.idle, origin, sender);
            return;
        }
        let (idle, origin) = (self.idle.clone(), origin.to_string());
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                keep(&idle, &origin, sender);
            }
        });
    }
}

fn keep(idle: &Idles, origin: &str, sender: Sender) {
    let mut idle = idle.lock().unwrap_or_else(|e| e.into_inner());
    let list = match idle.get_mut(origin) {
        Some(list) => list,
        None => idle.entry(origin.to_string()).or_default(),
    };
    if list.len() < IDLE_PER_ORIGIN {
        list.push(Idle {
            sender,
            since: Instant::now(),
        });
    }
}
