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
        if !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            return Err(TransportError::Other(format!(
                "header `{name}` has a value HTTP cannot carry"
            )));
        }
        self.set(name, value);
        Ok(())
    }
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2): what a method or a field name may be.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
    if body.is_empty() {
        fields.remove("transfer-encoding");
    } else if let Some(codings) = fields.get("transfer-encoding") {
        let last = codings.rsplit(',').next().unwrap_or_default().trim();
        if !last.eq_ignore_ascii_case("chunked") {
            let codings = format!("{codings}, chunked");
            fields.set("transfer-encoding", codings);
        }
        fields.remove("content-length");
        chunked = true;
    } else if let Some(declared) = fields.get("content-length") {
        if declared.trim().parse::<usize>().ok() != Some(body.len()) {
            return Err(TransportError::Other(format!(
                "header `content-length` says {declared} bytes but the body has {}",
                body.len()
            )));
        }
    } else {
        fields.set(
            "content-length",
            itoa::Buffer::new().format(body.len()).to_owned(),
        );
    }
    let mut out = Vec::with_capacity(256 + body.len());
    for piece in [method, " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(piece.as_bytes());
    }
    for (name, value) in &fields.0 {
        out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
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
        request_bytes(method, "/p?q=1", f, body.as_bytes()).map(|b| String::from_utf8(b).unwrap())
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
        assert_eq!(
            text("PUT", &[("Content-Length", "3")], "ab")
                .unwrap_err()
                .to_string(),
            "header `content-length` says 3 bytes but the body has 2"
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
        assert!(is_token("PATCH") && !is_token("") && !is_token("GE T"));
    }
}
