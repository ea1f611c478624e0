//! A request as the bytes that go on the wire: the request line, the header fields in the order
//! they were given, then the body.
//!
//! The bytes are those hyper wrote for the same request before flowrun wrote them itself:
//! lowercase field names, `user-agent` first, the flow's fields in order (a later field of the
//! same name replaces the value of the first, in its place), the body's `content-type`, `host`,
//! and `content-length` last.

use super::TransportError;
use std::borrow::Cow;

/// Header fields by name, each name once (compared case-insensitively), in order.
pub(super) struct Fields<'a>(Vec<(&'a str, Cow<'a, str>)>);

impl<'a> Fields<'a> {
    pub(super) fn with_capacity(n: usize) -> Self {
        Fields(Vec::with_capacity(n))
    }

    /// Sets `name` to `value`: in place of an earlier field of that name, else at the end.
    pub(super) fn set(&mut self, name: &'a str, value: impl Into<Cow<'a, str>>) {
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(field) => field.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of the field `name`, if it is set.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Adds a field the flow gave, refusing a name or value HTTP cannot carry. The error names
    /// the field but never repeats its value, which may be a token.
    pub(super) fn flow_field(&mut self, name: &'a str, value: &'a str) -> Result<(), TransportError> {
        if !is_token(name) {
            return Err(TransportError::Other(format!("invalid header name `{name}`")));
        }
        // Every byte looked at, not stopping at the first bad one, so that it vectorizes.
        let carried = value
            .bytes()
            .fold(true, |ok, b| ok & ((b == b'\t') | (0x20..0x7f).contains(&b)));
        if !carried {
            return Err(TransportError::Other(format!(
                "header `{name}` has a value HTTP cannot carry"
            )));
        }
        self.set(name, value);
        Ok(())
    }
}

/// The parts of an absolute `http://` or `https://` URL a request needs.
#[derive(Debug, PartialEq)]
pub(super) struct Target<'a> {
    /// `scheme://authority`, what connections are pooled by.
    pub origin: &'a str,
    /// The `Host` field: the host, and the port when it is not the scheme's own, never the
    /// `user:password@` before them.
    pub host: &'a str,
    /// The request line's target: the path and query (`/` when the URL has no path); a
    /// fragment is never sent.
    pub path: Cow<'a, str>,
}

/// Splits `url` into what the request line, `Host` and the pool need, refusing anything that
/// is not an absolute `http://` or `https://` URL of visible ASCII characters (what a URL
/// parser leaves after percent-encoding). Written out rather than parsed into an `http::Uri`
/// on every request: the URL was already parsed when the step's request was built.
pub(super) fn split_url(url: &str) -> Result<Target<'_>, TransportError> {
    let invalid = |why: &str| TransportError::Other(format!("invalid URL `{url}`: {why}"));
    let visible = url.bytes().fold(true, |ok, b| ok & (0x21..0x7f).contains(&b));
    if !visible {
        return Err(invalid("a URL holds no spaces, control or non-ASCII characters"));
    }
    // Byte by byte: what `str`'s pattern searches do, without their setting up.
    let bytes = url.as_bytes();
    let scheme = |name: &[u8]| bytes.len() > name.len() && bytes[..name.len()].eq_ignore_ascii_case(name);
    let (https, after) = match () {
        () if scheme(b"http://") => (false, 7),
        () if scheme(b"https://") => (true, 8),
        () => return Err(invalid("not an absolute http:// or https:// URL")),
    };
    let end = bytes[after..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(bytes.len(), |i| after + i);
    let (origin, authority, path) = (&url[..end], &url[after..end], &url[end..]);
    // A URL's `user:password@` is not sent, in `Host` or anywhere (hyper did not send it
    // either): a flow sets `Authorization` itself.
    let host_port = match authority.bytes().rposition(|b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let (host, port) = match host_port.bytes().rposition(|b| b == b':') {
        // A colon inside `[...]` is an IPv6 address's, not the port's.
        Some(colon) if !host_port.as_bytes()[colon..].contains(&b']') => {
            (&host_port[..colon], &host_port[colon + 1..])
        }
        _ => (host_port, ""),
    };
    if host.is_empty() {
        return Err(invalid("it names no host"));
    }
    let port: Option<u16> = match port {
        "" => None,
        digits => Some(
            digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| digits.parse().ok())
                .flatten()
                .ok_or_else(|| invalid("invalid port"))?,
        ),
    };
    let own_port = if https { 443 } else { 80 };
    let path = match path.bytes().position(|b| b == b'#') {
        Some(fragment) => &path[..fragment],
        None => path,
    };
    Ok(Target {
        origin,
        host: match port {
            Some(p) if p != own_port => host_port,
            _ => host,
        },
        path: match path.starts_with('/') {
            true => Cow::Borrowed(path),
            false => Cow::Owned(format!("/{path}")),
        },
    })
}

/// Whether a field's comma-separated list (`connection`, `transfer-encoding`) names `token`,
/// compared as HTTP compares them, case-insensitively.
pub(super) fn lists(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a `transfer-encoding` list ends in `chunked`, the coding that frames a body
/// (RFC 9112 §6.1).
pub(super) fn ends_chunked(codings: &str) -> bool {
    let last = codings.rsplit(',').next().unwrap_or_default();
    last.trim().eq_ignore_ascii_case("chunked")
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2): what a method or a field name may be.
pub(super) fn is_token(s: &str) -> bool {
    // A table of the bytes a token may hold: checked for every field of every request.
    const TOKEN: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric()
                || matches!(c, b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'..=b'`' | b'|' | b'~');
            b += 1;
        }
        table
    };
    !s.is_empty() && s.bytes().fold(true, |ok, b| ok & TOKEN[usize::from(b)])
}

/// The request's bytes: `method target HTTP/1.1`, the fields, then `body` framed as the fields
/// say. With no body, a `transfer-encoding` is dropped and nothing is added. With one, a
/// `transfer-encoding` from the flow sends it as one chunk (ending the codings in `chunked`), a
/// `content-length` from the flow must be its length, and otherwise `content-length` is added.
pub(super) fn request_bytes(
    method: &str,
    target: &str,
    mut fields: Fields<'_>,
    body: &[u8],
) -> Result<Vec<u8>, TransportError> {
    let mut chunked = false;
    // A flow's own `content-length` must be the body's: digits only, as the server will read it.
    let fits = fields.get("content-length").map(|declared| {
        let declared = declared.trim();
        declared.bytes().all(|b| b.is_ascii_digit()) && declared.parse::<usize>().ok() == Some(body.len())
    });
    if body.is_empty() {
        fields.remove("transfer-encoding");
    } else if let Some(codings) = fields.get("transfer-encoding") {
        if !ends_chunked(codings) {
            let codings = format!("{codings}, chunked");
            fields.set("transfer-encoding", codings);
        }
        fields.remove("content-length");
        chunked = true;
    } else if fits.is_none() {
        fields.set(
            "content-length",
            itoa::Buffer::new().format(body.len()).to_owned(),
        );
    }
    if fits == Some(false) && !chunked {
        return Err(TransportError::Other(format!(
            "header `content-length` does not match the body's {} bytes",
            body.len()
        )));
    }
    // Sized to the byte, so the body is never copied again by a growing buffer.
    let head: usize = method.len()
        + target.len()
        + 12
        + fields.0.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>()
        + 2;
    // One chunk: its size in hex and a line break, the bytes and a line break, the last chunk.
    let framing = match chunked {
        true => (body.len().ilog2() / 4 + 1) as usize + 2 + 2 + 5,
        false => 0,
    };
    let mut out = Vec::with_capacity(head + body.len() + framing);
    for piece in [method, " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(piece.as_bytes());
    }
    for (name, value) in &fields.0 {
        let at = out.len();
        out.extend_from_slice(name.as_bytes());
        out[at..].make_ascii_lowercase();
        for piece in [": ", value, "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
    } else {
        out.extend_from_slice(body);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(
        method: &str,
        fields: &[(&'static str, &'static str)],
        body: &str,
    ) -> Result<String, TransportError> {
        let mut f = Fields::with_capacity(4);
        for (n, v) in fields {
            f.flow_field(n, v)?;
        }
        let bytes = request_bytes(method, "/p?q=1", f, body.as_bytes())?;
        // Sized to the byte: the buffer never grew (and copied the body) while being written.
        assert_eq!(bytes.len(), bytes.capacity());
        Ok(String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn fields_go_in_order_lowercase_each_name_once_with_the_length_last() {
        assert_eq!(
            text("POST", &[("Accept", "a"), ("X-Id", "1"), ("accept", "b")], "{}").unwrap(),
            "POST /p?q=1 HTTP/1.1\r\naccept: b\r\nx-id: 1\r\ncontent-length: 2\r\n\r\n{}"
        );
        assert_eq!(text("GET", &[], "").unwrap(), "GET /p?q=1 HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn a_flows_framing_fields_are_kept_when_they_fit_the_body() {
        assert_eq!(
            text("PUT", &[("Content-Length", "2")], "ab").unwrap(),
            "PUT /p?q=1 HTTP/1.1\r\ncontent-length: 2\r\n\r\nab"
        );
        for (method, declared, body) in [("PUT", "3", "ab"), ("PUT", "+2", "ab"), ("GET", "5", "")] {
            let error = text(method, &[("Content-Length", declared)], body)
                .unwrap_err()
                .to_string();
            assert_eq!(
                error,
                format!(
                    "header `content-length` does not match the body's {} bytes",
                    body.len()
                )
            );
        }
        assert_eq!(
            text("GET", &[("Content-Length", "0")], "").unwrap(),
            "GET /p?q=1 HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(
            text(
                "PUT",
                &[("Transfer-Encoding", "gzip"), ("Content-Length", "2")],
                "ab"
            )
            .unwrap(),
            "PUT /p?q=1 HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
        );
        assert_eq!(
            text("GET", &[("Transfer-Encoding", "chunked")], "").unwrap(),
            "GET /p?q=1 HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn urls_split_into_origin_host_and_target() {
        let t = split_url("http://user:pw@127.0.0.1:8080/api/v1/x?q=1#frag").unwrap();
        assert_eq!(
            (t.origin, t.host, t.path.as_ref()),
            ("http://user:pw@127.0.0.1:8080", "127.0.0.1:8080", "/api/v1/x?q=1")
        );
        let t = split_url("HTTPS://example.com:443?a=b").unwrap();
        assert_eq!(
            (t.origin, t.host, t.path.as_ref()),
            ("HTTPS://example.com:443", "example.com", "/?a=b")
        );
        let t = split_url("http://[::1]:80").unwrap();
        assert_eq!((t.host, t.path.as_ref()), ("[::1]", "/"));
        let t = split_url("http://[::1]:8080/").unwrap();
        assert_eq!(t.host, "[::1]:8080");
        let t = split_url("http://[::1]/").unwrap();
        assert_eq!(t.host, "[::1]");
        for (url, why) in [
            ("ftp://h/", "not an absolute http:// or https:// URL"),
            ("/relative", "not an absolute http:// or https:// URL"),
            (
                "http://h/a b",
                "a URL holds no spaces, control or non-ASCII characters",
            ),
            (
                "http://h/\r\nx: y",
                "a URL holds no spaces, control or non-ASCII characters",
            ),
            (
                "http://h/é",
                "a URL holds no spaces, control or non-ASCII characters",
            ),
            ("http:///x", "it names no host"),
            ("http://u@:80/", "it names no host"),
            ("http://h:99999/", "invalid port"),
            ("http://h:8a/", "invalid port"),
        ] {
            assert_eq!(
                split_url(url).unwrap_err().to_string(),
                format!("invalid URL `{url}`: {why}")
            );
        }
    }

    #[test]
    fn a_chunked_body_of_any_size_is_one_chunk_sized_in_hex() {
        for len in [1usize, 15, 16, 300, 4096] {
            let body = "x".repeat(len);
            let mut f = Fields::with_capacity(1);
            f.flow_field("Transfer-Encoding", "chunked").unwrap();
            let bytes = request_bytes("POST", "/", f, body.as_bytes()).unwrap();
            assert_eq!(bytes.len(), bytes.capacity());
            let expected = format!(
                "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{len:x}\r\n{body}\r\n0\r\n\r\n"
            );
            assert_eq!(String::from_utf8(bytes).unwrap(), expected);
        }
    }

    #[test]
    fn names_and_values_http_cannot_carry_are_refused_without_repeating_the_value() {
        assert_eq!(
            text("GET", &[("Bad Name", "x")], "").unwrap_err().to_string(),
            "invalid header name `Bad Name`"
        );
        for value in ["Bearer s3cr3t\r\nx: y", "Bearer s3cr3t\u{7f}", "Bearer sécret"] {
            let mut f = Fields::with_capacity(1);
            let error = f.flow_field("Authorization", value).unwrap_err().to_string();
            assert_eq!(error, "header `Authorization` has a value HTTP cannot carry");
        }
        assert!(is_token("PATCH") && is_token("!#$%&'*+-.^_`|~09azAZ") && !is_token(""));
        for separator in "(),/:;<=>?@[\\]{}\" \t\u{7f}é".chars() {
            assert!(!is_token(&format!("X-{separator}")), "{separator:?}");
        }
    }
}
