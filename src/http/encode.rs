//! A request body as bytes on the wire, with its content type.

use super::{Body, Part, PartContent};
use std::sync::atomic::{AtomicU64, Ordering};

/// The bytes of `body` and the `Content-Type` they need (`None` for no body).
pub fn encode(body: &Body) -> (Option<String>, Vec<u8>) {
    match body {
        Body::None => (None, Vec::new()),
        Body::Json(v) => (
            Some("application/json".into()),
            serde_json::to_vec(v).unwrap_or_default(),
        ),
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
/// it bring a streaming body this client does not need.
fn multipart(parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", quoted(&p.name));
        if let Some(f) = &p.filename {
            disposition.push_str(&format!("; filename=\"{}\"", quoted(f)));
        }
        out.extend_from_slice(
            format!("{disposition}\r\nContent-Type: {}\r\n\r\n", p.content_type).as_bytes(),
        );
        match &p.content {
            PartContent::Json(v) => serde_json::to_writer(&mut out, v).unwrap_or_default(),
            PartContent::Text(t) => out.extend_from_slice(t.as_bytes()),
            PartContent::File { bytes, .. } => out.extend_from_slice(bytes),
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// A name inside a quoted header parameter: quotes and line breaks percent-encoded, as the
/// HTML standard (and browsers) encode them.
fn quoted(name: &str) -> String {
    name.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
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
                filename: Some("a.txt".into()),
                content: PartContent::Text("hi".into()),
            },
        ];
        let body = String::from_utf8(multipart(&parts, "B")).unwrap();
        assert_eq!(
            body,
            "--B\r\nContent-Disposition: form-data; name=\"json\"\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n\
             --B\r\nContent-Disposition: form-data; name=\"up%22load\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
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
