//! One HTTP/1.1 connection: writes a request, reads its answer, and says whether the
//! connection can carry the next one.
//!
//! Why flowrun speaks HTTP/1.1 itself instead of through hyper: measured on the bench stub, one
//! connection, the same request in a loop, hyper's connection cost 11–13 µs of CPU per request
//! and a plain socket write and read 1.5–3 µs (wrk: 2.4–4 µs). hyper drives each connection on
//! a task of its own, so every request crosses two tasks and back, and builds a `HeaderMap`
//! both ways. A flow's exchange is one request, then its whole answer, on a connection that
//! serves one request at a time, which needs none of that. The parts that are easy to get
//! wrong stay in maintained crates: httparse parses the answer's head and chunk sizes, and
//! connecting (TCP, TLS) is hyper-util's and hyper-rustls'. What is here is framing (RFC 9112
//! §6): which answers have a body, how long it is, and when a connection may be used again.

use super::TransportError;
use super::head::{ends_chunked, lists};
use std::io::ErrorKind;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Header fields an answer may have at most, as hyper allowed.
const MAX_FIELDS: usize = 100;

/// The most an answer's head may take, status line and fields (hyper allowed about 400 KiB).
const MAX_HEAD: usize = 256 * 1024;

/// What a connection closed before its answer was whole says (hyper's words, kept).
const CLOSED_EARLY: &str = "connection closed before message completed";

/// The read buffer a connection starts with, and goes back to after a large answer.
const BUFFER: usize = 8 * 1024;

/// The most the read buffer grows by for one read of a body.
const MAX_READ: usize = 64 * 1024;

/// A connection and what has been read from it but not yet used.
pub(super) struct Conn<S> {
    io: S,
    /// Bytes read are `buf[start..end]`; the buffer is initialized once, so reads need no
    /// zeroing and no unsafe code.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// An answer, read whole.
pub(super) struct Answer {
    pub status: u16,
    /// Field names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may carry another request: the answer was framed by its length,
    /// nobody said `close`, and nothing came after it.
    pub reusable: bool,
}

/// Why an exchange failed, and whether the request is certain not to have been sent (no byte
/// of it was written), so that another connection may take it.
pub(super) struct Failed {
    pub error: TransportError,
    pub unsent: bool,
}

struct Head {
    status: u16,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: Vec<(String, String)>,
}

/// How an answer's body ends (RFC 9112 §6.3).
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(super) fn new(io: S) -> Self {
        Conn {
            io,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
        }
    }

    /// Whether an idle connection is still open: the server has neither closed it nor sent
    /// anything unasked. Looks without waiting.
    pub(super) fn is_open(&mut self) -> bool {
        if self.start != self.end {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = ReadBuf::new(&mut self.buf);
        Pin::new(&mut self.io).poll_read(&mut cx, &mut probe).is_pending()
    }

    /// Sends `request` (its bytes, whole) and reads the answer. `head` says the request was a
    /// `HEAD`, whose answer has no body whatever its fields say.
    pub(super) async fn exchange(
        &mut self,
        request: &[u8],
        head: bool,
        max_body: usize,
    ) -> Result<Answer, Failed> {
        let mut written = 0;
        let finished = std::future::poll_fn(|cx| self.poll_send(cx, request, &mut written))
            .await
            .map_err(|e| Failed {
                error: io_error(e),
                unsent: written == 0,
            })?;
        let sent = |error| Failed { error, unsent: false };
        let answer = self.read_head().await.map_err(sent)?;
        let framing = framing(&answer, head).map_err(sent)?;
        // Once an answer has begun, the request took effect: a body cut short is not a closed
        // connection the request may be sent again on, so it is not `Reset` (which the retry
        // policy answers whatever the method).
        let cut = |error| {
            sent(match error {
                TransportError::Reset(why) => {
                    TransportError::Other(format!("the answer was cut short: {why}"))
                }
                other => other,
            })
        };
        let body = match framing {
            Framing::Empty => Vec::new(),
            Framing::Length(n) if n > max_body => {
                return Err(sent(TransportError::TooLarge { limit: max_body }));
            }
            Framing::Length(n) => self.read_exactly(n).await.map_err(cut)?,
            Framing::Chunked => self.read_chunked(max_body).await.map_err(cut)?,
            Framing::UntilClose => self.read_to_close(max_body).await.map_err(cut)?,
        };
        let coded = field(&answer, "transfer-encoding").is_some();
        // Framing that RFC 9112 §6.1 and §6.3 call faulty (a length beside a coding, a coding
        // in HTTP/1.0) ends the connection, as does a switch to another protocol.
        let reusable = finished
            && self.start == self.end
            && answer.status != 101
            && !matches!(framing, Framing::UntilClose)
            && keeps_alive(&answer)
            && !(coded && (answer.version == 0 || field(&answer, "content-length").is_some()));
        if self.buf.len() > 8 * BUFFER && self.start == self.end {
            self.buf = vec![0; BUFFER];
            (self.start, self.end) = (0, 0);
        }
        Ok(Answer {
            status: answer.status,
            headers: answer.headers,
            body,
            reusable,
        })
    }

    /// Writes the request, and meanwhile watches for an answer: a server may answer before
    /// reading all of an upload (a 413, a 401) and never read the rest. Ready with `true` once
    /// the request is written and flushed, with `false` once an answer began first.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        request: &[u8],
        written: &mut usize,
    ) -> Poll<std::io::Result<bool>> {
        loop {
            while *written < request.len() {
                match Pin::new(&mut self.io).poll_write(cx, &request[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if *written == request.len() && Pin::new(&mut self.io).poll_flush(cx)?.is_ready() {
                return Poll::Ready(Ok(true));
            }
            self.make_room(1);
            let mut free = ReadBuf::new(&mut self.buf[self.end..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut free) {
                Poll::Ready(Ok(())) if free.filled().is_empty() => {
                    return Poll::Ready(Err(ErrorKind::UnexpectedEof.into()));
                }
                Poll::Ready(Ok(())) => self.end += free.filled().len(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            // An interim answer (`100 Continue`) is passed over and the upload goes on; the
            // beginning of any other is the answer (read, and checked, by `read_head`).
            loop {
                match self.parse_head() {
                    Ok(Some((head, used))) if interim(head.status) => self.start += used,
                    Ok(None) => break,
                    Ok(Some(_)) | Err(_) => return Poll::Ready(Ok(false)),
                }
            }
        }
    }

    /// Reads more into the buffer, with room for at least `room` bytes; the end of the stream
    /// here is the server closing before the answer was whole.
    async fn fill(&mut self, room: usize) -> Result<(), TransportError> {
        self.make_room(room);
        let read = self.io.read(&mut self.buf[self.end..]).await.map_err(io_error)?;
        if read == 0 {
            return Err(TransportError::Reset(CLOSED_EARLY.into()));
        }
        self.end += read;
        Ok(())
    }

    /// Makes `buf[end..]` at least `room` bytes long (and never empty), moving what is unread
    /// to the front first.
    fn make_room(&mut self, room: usize) {
        let room = room.max(1);
        if self.buf.len() - self.end >= room {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        (self.start, self.end) = (0, self.end - self.start);
        if self.buf.len() - self.end < room {
            let size = (self.end + room).max(self.buf.len() * 2);
            self.buf.resize(size, 0);
        }
    }

    /// The answer's head; interim answers (100 Continue, 103 Early Hints) before it are
    /// skipped.
    async fn read_head(&mut self) -> Result<Head, TransportError> {
        loop {
            match self.parse_head()? {
                Some((head, used)) => {
                    self.start += used;
                    if !interim(head.status) {
                        return Ok(head);
                    }
                }
                None => self.fill(BUFFER).await?,
            }
        }
    }

    /// The head at the front of what was read, and how many bytes it takes; `None` while it
    /// is incomplete.
    fn parse_head(&self) -> Result<Option<(Head, usize)>, TransportError> {
        let unread = &self.buf[self.start..self.end];
        // Left uninitialised for httparse to fill: setting all of them first cost more than
        // parsing a short head.
        let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        match config.parse_response_with_uninit_headers(&mut parsed, unread, &mut fields) {
            Ok(httparse::Status::Complete(used)) => {
                let status = parsed.code.unwrap_or_default();
                if status < 100 {
                    return Err(TransportError::Other(format!("invalid answer: status {status}")));
                }
                let head = Head {
                    status,
                    version: parsed.version.unwrap_or(1),
                    headers: parsed
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                };
                Ok(Some((head, used)))
            }
            Ok(httparse::Status::Partial) if unread.len() >= MAX_HEAD => Err(TransportError::Other(format!(
                "the answer's head is over {} KiB",
                MAX_HEAD / 1024
            ))),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(TransportError::Other(format!("invalid answer: {e}"))),
        }
    }

    /// The next `n` bytes.
    async fn read_exactly(&mut self, n: usize) -> Result<Vec<u8>, TransportError> {
        while self.end - self.start < n {
            // Room for what is missing, but no more per read than arrives at once: the length
            // an answer declares is not memory to set aside before its bytes come.
            let missing = n - (self.end - self.start);
            self.fill(missing.min(MAX_READ)).await?;
        }
        let body = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        Ok(body)
    }

    /// A chunked body (RFC 9112 §7.1): chunks until one of size 0, then trailer fields, which
    /// are read and dropped.
    async fn read_chunked(&mut self, max_body: usize) -> Result<Vec<u8>, TransportError> {
        let invalid = || TransportError::Other("invalid chunked body in the answer".into());
        let mut body = Vec::new();
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.end - self.start < 1024 => {
                        self.fill(BUFFER).await?
                    }
                    _ => return Err(invalid()),
                }
            };
            if size == 0 {
                break;
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > max_body - body.len() {
                return Err(TransportError::TooLarge { limit: max_body });
            }
            let with_end = size.checked_add(2).ok_or_else(invalid)?;
            while self.end - self.start < with_end {
                let missing = with_end - (self.end - self.start);
                self.fill(missing.min(MAX_READ)).await?;
            }
            body.extend_from_slice(&self.buf[self.start..self.start + size]);
            if self.buf[self.start + size..self.start + size + 2] != *b"\r\n" {
                return Err(invalid());
            }
            self.start += size + 2;
        }
        // Trailer fields, each a line, then an empty line. A line still coming is searched from
        // where the last search stopped, not from its start again after every read.
        let mut searched = 0;
        loop {
            let unread = &self.buf[self.start..self.end];
            match unread[searched..].windows(2).position(|w| w == b"\r\n") {
                Some(0) if searched == 0 => {
                    self.start += 2;
                    return Ok(body);
                }
                Some(at) => {
                    self.start += searched + at + 2;
                    searched = 0;
                }
                None if unread.len() < MAX_HEAD => {
                    // The last byte may be the `\r` of a line break the next read completes.
                    searched = unread.len().saturating_sub(1);
                    self.fill(BUFFER).await?;
                }
                None => return Err(invalid()),
            }
        }
    }

    /// Everything until the server closes the connection.
    async fn read_to_close(&mut self, max_body: usize) -> Result<Vec<u8>, TransportError> {
        loop {
            if self.end - self.start > max_body {
                return Err(TransportError::TooLarge { limit: max_body });
            }
            self.make_room(BUFFER);
            match self.io.read(&mut self.buf[self.end..]).await.map_err(io_error)? {
                0 => break,
                n => self.end += n,
            }
        }
        let body = self.buf[self.start..self.end].to_vec();
        self.start = self.end;
        Ok(body)
    }
}

/// How the answer's body is framed: none for `HEAD` and for 1xx, 204 and 304 answers, then by
/// `transfer-encoding`, then by `content-length`, else until the server closes.
fn framing(answer: &Head, head: bool) -> Result<Framing, TransportError> {
    if head || answer.status < 200 || answer.status == 204 || answer.status == 304 {
        return Ok(Framing::Empty);
    }
    // The codings are those of every `transfer-encoding` field in order: the last one counts.
    let last_field = answer
        .headers
        .iter()
        .rev()
        .find(|(n, _)| n == "transfer-encoding");
    if let Some((_, codings)) = last_field {
        return Ok(if ends_chunked(codings) {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    // Several `content-length` fields (or a list in one) must all say the same.
    let mut length = None;
    for (name, value) in &answer.headers {
        if name != "content-length" {
            continue;
        }
        for one in value.split(',') {
            let one = one.trim();
            let n = one
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| one.parse::<usize>().ok())
                .flatten();
            match (n, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(before)) if n == before => {}
                _ => {
                    return Err(TransportError::Other(
                        "the answer's content-length is invalid".into(),
                    ));
                }
            }
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Whether an answer is an interim one, followed by the real answer: 1xx but a protocol switch.
fn interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// The first field named `name` (lowercase).
fn field<'a>(answer: &'a Head, name: &str) -> Option<&'a str> {
    answer
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether the server keeps the connection open after this answer: HTTP/1.1 unless it says
/// `close`, HTTP/1.0 only when it says `keep-alive`.
fn keeps_alive(answer: &Head) -> bool {
    let said = |token: &str| {
        answer
            .headers
            .iter()
            .any(|(n, v)| n == "connection" && lists(v, token))
    };
    if answer.version == 0 {
        said("keep-alive")
    } else {
        !said("close")
    }
}

/// A failed read or write: the connection reset or cut short is a `Reset` (the run's retry
/// policy may send again), anything else is not.
fn io_error(e: std::io::Error) -> TransportError {
    use ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e.kind() {
        UnexpectedEof => TransportError::Reset(CLOSED_EARLY.into()),
        ConnectionReset | ConnectionAborted | BrokenPipe => TransportError::Reset(e.to_string()),
        _ => TransportError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// The answer to `GET /` when the server sends `answer` and then closes.
    async fn answer_to(answer: &[u8], head: bool, max_body: usize) -> Result<Answer, TransportError> {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let answer = answer.to_vec();
        tokio::spawn(async move {
            let mut request = [0u8; 64];
            let _ = server.read(&mut request).await;
            let _ = server.write_all(&answer).await;
        });
        Conn::new(client)
            .exchange(b"GET / HTTP/1.1\r\n\r\n", head, max_body)
            .await
            .map_err(|f| f.error)
    }

    fn summary(a: &Answer) -> (u16, String, bool) {
        (
            a.status,
            String::from_utf8_lossy(&a.body).into_owned(),
            a.reusable,
        )
    }

    #[tokio::test]
    async fn chunked_bodies_are_joined_and_their_trailers_dropped() {
        let a = answer_to(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\n",
            false,
            100,
        )
        .await
        .unwrap();
        assert_eq!(summary(&a), (200, "Wikipedia".into(), true));
        assert_eq!(a.headers, [("transfer-encoding".into(), "chunked".into())]);
        let large = answer_to(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\npedia\r\n0\r\n\r\n",
            false,
            4,
        )
        .await;
        assert!(matches!(large, Err(TransportError::TooLarge { limit: 4 })));
        let broken = answer_to(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\npediaXX0\r\n\r\n",
            false,
            99,
        )
        .await;
        assert_eq!(
            broken.err().unwrap().to_string(),
            "invalid chunked body in the answer"
        );
    }

    #[tokio::test]
    async fn trailer_fields_coming_in_pieces_are_read_to_their_end() {
        // Pieces cut inside a field and between the two bytes of a line break.
        let pieces: [&[u8]; 5] = [
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-A: 1",
            b"\r",
            b"\nX-B: 2\r\n\r",
            b"\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ];
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut request = [0u8; 64];
            let _ = server.read(&mut request).await;
            for piece in pieces {
                let _ = server.write_all(piece).await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        let mut conn = Conn::new(client);
        let get = b"GET / HTTP/1.1\r\n\r\n";
        let first = conn.exchange(get, false, 100).await.map_err(|f| f.error).unwrap();
        assert_eq!(summary(&first).1, "ok");
        // The trailer's end was found where it is: what follows is the next answer.
        let next = conn.exchange(get, false, 100).await.map_err(|f| f.error).unwrap();
        assert_eq!(next.status, 204);
    }

    #[tokio::test]
    async fn informational_answers_are_skipped_and_unframed_bodies_end_with_the_connection() {
        let a = answer_to(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n\r\nall of it",
            false,
            100,
        )
        .await
        .unwrap();
        assert_eq!(summary(&a), (201, "all of it".into(), false));
        let a = answer_to(b"HTTP/1.1 200 OK\r\n\r\n0123456789", false, 4).await;
        assert!(matches!(a, Err(TransportError::TooLarge { limit: 4 })));
    }

    #[tokio::test]
    async fn which_connections_may_carry_another_request() {
        for (answer, reusable) in [
            (&b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"[..], true),
            (
                b"HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 2\r\n\r\nok",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
            (
                b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
                true,
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA", false),
            (b"HTTP/1.1 204 No Content\r\ncontent-length: 2\r\n\r\n", true),
            (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", false),
            (b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false),
            // The last field's last coding decides: not chunked, so the body runs to the close.
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n", false),
        ] {
            let a = answer_to(answer, false, 100).await.unwrap();
            assert_eq!(a.reusable, reusable, "{}", String::from_utf8_lossy(answer));
        }
    }

    #[tokio::test]
    async fn bad_lengths_and_cut_answers_are_errors() {
        for (answer, error) in [
            (
                &b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok"[..],
                "the answer's content-length is invalid",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok",
                "the answer's content-length is invalid",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok",
                "the answer was cut short: connection closed before message completed",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nok",
                "the answer was cut short: connection closed before message completed",
            ),
            (
                b"HTTP/1.1 200 O",
                "the connection closed before an answer came: connection closed before message completed",
            ),
            (b"HTTQ/1.1 200 OK\r\n\r\n", "invalid answer: invalid HTTP version"),
            (b"HTTP/1.1 099 Low\r\n\r\n", "invalid answer: status 99"),
        ] {
            let got = answer_to(answer, false, 100).await.err().unwrap();
            assert_eq!(got.to_string(), error, "{}", String::from_utf8_lossy(answer));
            // Only an answer that never began may be sent again by the retry policy: one cut
            // short was acted on.
            assert_eq!(
                got.is_retryable(),
                error.starts_with("the connection closed"),
                "{got}"
            );
        }
        let same = answer_to(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok",
            false,
            100,
        )
        .await;
        assert_eq!(summary(&same.unwrap()), (200, "ok".into(), true));
    }

    #[tokio::test]
    async fn an_interim_answer_during_an_upload_lets_the_upload_go_on() {
        // The server says `100 Continue` after the head, before reading a body larger than the
        // pipe holds, then reads all of it and answers.
        let (client, mut server) = tokio::io::duplex(16 * 1024);
        let body = vec![b'x'; 1024 * 1024];
        let mut request = format!("POST / HTTP/1.1\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        let head_len = request.len();
        request.extend_from_slice(&body);
        let server = tokio::spawn(async move {
            let mut head = vec![0u8; head_len];
            server.read_exact(&mut head).await.unwrap();
            server.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
            let mut received = vec![0u8; 1024 * 1024];
            server.read_exact(&mut received).await.unwrap();
            server
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone")
                .await
                .unwrap();
            received.iter().all(|b| *b == b'x')
        });
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            Conn::new(client).exchange(&request, false, 100),
        )
        .await
        .expect("the upload went on after 100 Continue")
        .map_err(|f| f.error)
        .unwrap();
        assert_eq!(summary(&answer), (200, "done".into(), true));
        assert!(server.await.unwrap());
    }

    #[tokio::test]
    async fn a_declared_length_sets_no_memory_aside_before_its_bytes_come() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1099511627776\r\n\r\nsome"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffff\r\nsome",
        ] {
            let (client, mut server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let mut request = [0u8; 64];
                let _ = server.read(&mut request).await;
                let _ = server.write_all(answer).await;
            });
            let mut conn = Conn::new(client);
            let got = conn.exchange(b"GET / HTTP/1.1\r\n\r\n", false, usize::MAX).await;
            let error = got.err().unwrap().error.to_string();
            assert_eq!(
                error,
                "the answer was cut short: connection closed before message completed"
            );
            assert!(conn.buf.len() <= BUFFER + MAX_READ, "{}", conn.buf.len());
        }
    }

    #[tokio::test]
    async fn a_head_too_large_is_refused_without_reading_on() {
        let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
        while answer.len() <= MAX_HEAD {
            answer.extend_from_slice(b"x-filler: 0123456789012345678901234567890123456789\r\n");
        }
        let got = answer_to(&answer, false, 100).await.err().unwrap().to_string();
        assert_eq!(got, "invalid answer: too many headers");
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut request = [0u8; 64];
            let _ = server.read(&mut request).await;
            let _ = server.write_all(b"HTTP/1.1 200 OK\r\nx-long: ").await;
            loop {
                if server.write_all(&[b'a'; 4096]).await.is_err() {
                    return;
                }
            }
        });
        let got = Conn::new(client)
            .exchange(b"GET / HTTP/1.1\r\n\r\n", false, 100)
            .await;
        assert_eq!(
            got.err().unwrap().error.to_string(),
            "the answer's head is over 256 KiB"
        );
    }
}
