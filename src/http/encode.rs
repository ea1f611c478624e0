//! A request body as bytes on the wire, with its content type.

use super::{Body, Part, PartContent};
use std::sync::atomic::{AtomicU64, Ordering};

/// The bytes of `body` and the `Content-Type` they need (`None` for no body).
pub fn encode(body: &Body) -> (Option<String>, Vec<u8>) {
    match body {
        Body::None => (None, Vec::new()),
        Body::Json(v) => {
            // Room for a typical Interaction Service body, so it is written without growing.
            let mut out = Vec::with_capacity(512);
            crate::base::json_text::value(&mut out, v);
            (Some("application/json".into()), out)
        }
        Body::Form(fields) => {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                form.append_pair(k, v);
            }
            (
                Some("application/x-www-form-urlencoded".into()),
                form.finish().into_bytes(),
            )
        }
        Body::Multipart(parts) => {
            let boundary = boundary();
            (
                Some(format!("multipart/form-data; boundary={boundary}")),
                multipart(parts, &boundary),
            )
        }
    }
}

/// `multipart/form-data` (RFC 7578): each part with its disposition and type, then the bytes.
/// Written here rather than taken from a crate: encoding is a few lines, and the crates that do
/// it bring a streaming body this client does not need. Written piece by piece, not through
/// `format!`, whose machinery cost a quarter of a JSON request's encoding.
fn multipart(parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for p in parts {
        for piece in ["--", boundary, "\r\nContent-Disposition: form-data; name=\""] {
            out.extend_from_slice(piece.as_bytes());
        }
        quoted(&mut out, &p.name);
        out.push(b'"');
        if let Some(f) = &p.filename {
            out.extend_from_slice(b"; filename=\"");
            quoted(&mut out, f);
            out.push(b'"');
        }
        for piece in ["\r\nContent-Type: ", &p.content_type, "\r\n\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
        match &p.content {
            PartContent::Json(v) => crate::base::json_text::value(&mut out, v),
            PartContent::Text(t) => out.extend_from_slice(t.as_bytes()),
            PartContent::File { bytes, .. } => out.extend_from_slice(bytes),
        }
        out.extend_from_slice(b"\r\n");
    }
    for piece in ["--", boundary, "--\r\n"] {
        out.extend_from_slice(piece.as_bytes());
    }
    out
}

/// Writes a name inside a quoted header parameter: quotes and line breaks percent-encoded, as
/// the HTML standard (and browsers) encode them. Byte by byte is safe: no byte of a multi-byte
/// UTF-8 character is a quote or a line break.
fn quoted(out: &mut Vec<u8>, name: &str) {
    for &b in name.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"%22"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            _ => out.push(b),
        }
    }
}

/// A boundary no part will contain: random per process (one `getrandom`), counted per body.
fn boundary() -> String {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let seed = SEED.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    format!(
        "flowrun-{seed:016x}-{:08x}",
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multipart_bodies_carry_each_part_with_its_headers() {
        let parts = vec![
            Part {
                name: "json".into(),
                content_type: "application/json".into(),
                filename: None,
                content: PartContent::Json(json!({"a": 1})),
            },
            Part {
                name: "up\"load".into(),
                content_type: "text/plain".into(),
                filename: Some("a\r\nä.txt".into()),
                content: PartContent::Text("hi".into()),
            },
        ];
        let body = String::from_utf8(multipart(&parts, "B")).unwrap();
        assert_eq!(
            body,
            "--B\r\nContent-Disposition: form-data; name=\"json\"\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n\
             --B\r\nContent-Disposition: form-data; name=\"up%22load\"; filename=\"a%0D%0Aä.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
             --B--\r\n"
        );
    }

    #[test]
    fn boundaries_differ_per_body_and_forms_are_url_encoded() {
        let (a, _) = encode(&Body::Multipart(Vec::new()));
        let (b, _) = encode(&Body::Multipart(Vec::new()));
        assert_ne!(a, b);
        let (kind, bytes) = encode(&Body::Form(vec![("a b".into(), "1&2=3".into())]));
        assert_eq!(kind.as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(String::from_utf8(bytes).unwrap(), "a+b=1%262%3D3");
    }
}
