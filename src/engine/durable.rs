//! Durable runs: what a run tells a journal while it goes, and how a run the journal kept is
//! picked up after a crash. The engine knows only this seam, not which store listens.
//!
//! The order is what makes a resume safe: an attempt is written down *before* it is sent, so
//! after a crash a step is either done (its values are restored and it is never sent again),
//! untouched (it runs as usual), or in doubt (sent, no answer recorded): the step's `in_doubt`
//! policy decides what happens to that one.

use super::outcome::{Attempt, Phase, StepRecord};
use crate::base::secrets::{Masker, Secrets, raw};
use crate::http::{Body, HttpRequest, Part, PartContent};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A durable write under way: done (or failed) when the future ends. Awaiting it lets the
/// run's thread go on with other runs meanwhile, so the writes of concurrent runs share one
/// transaction.
pub type Durably = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// A run's journal, being opened.
pub type Opening<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Box<dyn DurableRun>, String>> + Send + 'a>>;

/// What a durable store hears from one run, in order. [`RunLog::before_send`] is durable when
/// its future ends; the store decides for the others (the journal writes them with the run's
/// next attempt: a step whose end is lost is in doubt after a crash, and its policy settles it).
pub trait RunLog: Send + Sync {
    /// The run's flow-level `vars`, once rendered (before any request).
    fn vars(&self, vars: &Map<String, Value>);
    /// An attempt is about to be sent. An error stops the step: nothing is sent that the
    /// journal could not write down.
    fn before_send(&self, step: &str, phase: Phase, attempt: u32, request: &HttpRequest) -> Durably;
    /// An attempt's answer, or its error.
    fn answered(&self, step: &str, attempt: &Attempt);
    /// A step ended; `slot` is what later steps read as `steps.<id>`.
    fn step_done(&self, record: &StepRecord, slot: &Value) -> Durably;
}

/// Where a pool's runs are journaled: one [`DurableRun`] per run.
pub trait Durable: Send + Sync + std::fmt::Debug {
    /// Begins run `id` with `inputs`; refuses an id the journal already holds (a repeated id
    /// is the same run, not a new one). `secrets` are the run's own, masked with the flow's in
    /// everything written.
    fn begin(&self, id: &super::pool::RunId, inputs: &Map<String, Value>, secrets: &Secrets) -> Opening<'_>;
}

/// One journaled run: told of every attempt and step, then of the end.
pub trait DurableRun: RunLog {
    /// The run's id in the journal.
    fn id(&self) -> &str;
    /// Writes the run's end (the future ends when the store has taken it).
    fn finish(&self, report: &super::outcome::RunReport) -> Durably;
}

/// What a journal kept of an unfinished run: enough to go on after its last completed step.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// The flow-level `vars` as first rendered (ids made with `uuid()` stay the same).
    pub vars: Map<String, Value>,
    /// Steps that ended, in the order they ended.
    pub done: Vec<DoneStep>,
    /// The step that was sent without an answer being recorded, if any.
    pub in_doubt: Option<Doubt>,
    /// Give the run up: no further step of `steps` runs (one in doubt is compensated first
    /// when its policy says so); `finally` runs, so what the run created is cleaned up.
    pub cancel: bool,
    /// Where the run sent its requests before (`scheme://host:port`): a resume that would send
    /// elsewhere (another environment, a simulator gone) is refused before anything is sent
    /// (compare with [`super::run::Engine::origin`]).
    pub origin: Option<String>,
}

/// `scheme://host:port` of a URL, as requests to it are compared.
pub fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?,
        u.port_or_known_default()?
    ))
}

/// A step that ended before the crash.
#[derive(Debug, Clone)]
pub struct DoneStep {
    /// The step's id.
    pub id: String,
    /// Whether it is one of `steps` or of `finally`.
    pub phase: Phase,
    /// How it ended.
    pub status: DoneStatus,
    /// What later steps read as `steps.<id>` (saved values, status, body).
    pub slot: Value,
    /// Its saved values, for the report.
    pub saved: Map<String, Value>,
}

/// How a journaled step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoneStatus {
    /// It passed.
    Ok,
    /// Its `if` was false.
    Skipped,
    /// It passed and its `stop_if` ended the flow.
    Stopped,
    /// It failed, with this message.
    Failed(String),
    /// It was never reached (an earlier step failed or stopped).
    NotRun,
}

impl DoneStatus {
    /// The word the journal stores.
    pub fn word(&self) -> &'static str {
        match self {
            DoneStatus::Ok => "ok",
            DoneStatus::Skipped => "skipped",
            DoneStatus::Stopped => "stopped",
            DoneStatus::Failed(_) => "failed",
            DoneStatus::NotRun => "not run",
        }
    }

    /// Reads a stored word back; `error` is the failure's message.
    pub fn from_word(word: &str, error: Option<String>) -> Option<DoneStatus> {
        Some(match word {
            "ok" => DoneStatus::Ok,
            "skipped" => DoneStatus::Skipped,
            "stopped" => DoneStatus::Stopped,
            "failed" => DoneStatus::Failed(error.unwrap_or_default()),
            "not run" => DoneStatus::NotRun,
            _ => return None,
        })
    }
}

/// A step sent before the crash with no answer recorded.
#[derive(Debug, Clone)]
pub struct Doubt {
    /// The step's id.
    pub step: String,
    /// How many attempts were written down (the next one is numbered after them).
    pub attempts: u32,
    /// The last attempt as stored by [`stored_request`]: secrets masked.
    pub request: Value,
}

/// A request as a journal keeps it, as JSON text: every field, secrets masked, the
/// `Authorization` header left out (a token is never stored; the resume gets a fresh one).
/// File parts keep only their path: the file is read again.
///
/// Written straight from the request, masking as it goes: this runs before every journaled
/// request, and building a JSON value first (a copy of the body, then a walk to mask it, then
/// the text) cost more than the text alone.
pub fn stored_request(request: &HttpRequest, masker: &Masker) -> Box<RawValue> {
    raw(&Stored { request, masker })
}

struct Stored<'a> {
    request: &'a HttpRequest,
    masker: &'a Masker<'a>,
}

/// Text, masked.
struct Text<'a>(&'a Masker<'a>, &'a str);

/// `[name, value]`: a header or a form field.
struct Pair<'a>(&'a Masker<'a>, &'a str, &'a str);

/// `{key: value}`.
struct One<'a, T>(&'a Masker<'a>, &'static str, T);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(&self.0.text(self.1))
    }
}

impl Serialize for Pair<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        (Text(self.0, self.1), Text(self.0, self.2)).serialize(out)
    }
}

impl<T: Serialize> Serialize for One<'_, T> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let mut map = out.serialize_map(Some(1))?;
        map.serialize_entry(&Text(self.0, self.1), &self.2)?;
        map.end()
    }
}

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let (m, request) = (self.masker, self.request);
        // Keys are masked too: the journal masks every string it keeps.
        let key = |k: &'static str| Text(m, k);
        let mut map = out.serialize_map(Some(4))?;
        map.serialize_entry(&key("method"), &Text(m, &request.method))?;
        map.serialize_entry(&key("url"), &Text(m, &request.url))?;
        let headers: Vec<Pair> = request
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
            .map(|(k, v)| Pair(m, k, v))
            .collect();
        map.serialize_entry(&key("headers"), &headers)?;
        match &request.body {
            Body::None => map.serialize_entry(&key("body"), &())?,
            Body::Json(v) => map.serialize_entry(&key("body"), &One(m, "json", m.json(v)))?,
            Body::Form(pairs) => {
                let pairs: Vec<Pair> = pairs.iter().map(|(k, v)| Pair(m, k, v)).collect();
                map.serialize_entry(&key("body"), &One(m, "form", pairs))?
            }
            Body::Multipart(parts) => {
                let parts: Vec<StoredPart> = parts.iter().map(|part| StoredPart(m, part)).collect();
                map.serialize_entry(&key("body"), &One(m, "multipart", parts))?
            }
        }
        map.end()
    }
}

struct StoredPart<'a>(&'a Masker<'a>, &'a Part);

impl Serialize for StoredPart<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let (m, part) = (self.0, self.1);
        let key = |k: &'static str| Text(m, k);
        let mut map = out.serialize_map(Some(4))?;
        map.serialize_entry(&key("name"), &Text(m, &part.name))?;
        map.serialize_entry(&key("content_type"), &Text(m, &part.content_type))?;
        map.serialize_entry(&key("filename"), &part.filename.as_deref().map(|f| Text(m, f)))?;
        match &part.content {
            PartContent::Json(v) => map.serialize_entry(&key("content"), &One(m, "json", m.json(v)))?,
            PartContent::Text(t) => map.serialize_entry(&key("content"), &One(m, "text", Text(m, t)))?,
            PartContent::File { path, .. } => {
                map.serialize_entry(&key("content"), &One(m, "file", Text(m, path)))?
            }
        }
        map.end()
    }
}

/// The value of header `name` in a stored request.
#[cfg(test)]
fn stored_header<'a>(stored: &'a Value, name: &str) -> Option<&'a str> {
    stored["headers"].as_array()?.iter().find_map(|h| {
        let k = h.get(0)?.as_str()?;
        k.eq_ignore_ascii_case(name).then(|| h.get(1)?.as_str()).flatten()
    })
}

/// The request to resend for a step in doubt: `fresh` (rendered again now, with secrets read
/// again) takes the stored request's headers (its `RequestId` above all) and body wherever the
/// stored value holds no masked secret, so what is resent is what was sent.
pub fn identical(stored: &Value, mut fresh: HttpRequest) -> HttpRequest {
    let masked = |v: &Value| v.to_string().contains(crate::base::secrets::MASK);
    if let Some(headers) = stored["headers"].as_array() {
        for h in headers {
            let (Some(k), Some(v)) = (h.get(0).and_then(Value::as_str), h.get(1).and_then(Value::as_str))
            else {
                continue;
            };
            if v.contains(crate::base::secrets::MASK) {
                continue;
            }
            match fresh
                .headers
                .iter_mut()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
            {
                Some(slot) => slot.1 = v.to_string(),
                None => fresh.headers.push((k.to_string(), v.to_string())),
            }
        }
    }
    let body = &stored["body"];
    if masked(body) {
        return fresh;
    }
    if let Some(v) = body.get("json") {
        fresh.body = Body::Json(v.clone());
    } else if let Some(pairs) = body.get("form").and_then(Value::as_array) {
        let pairs = pairs
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string())))
            .collect();
        fresh.body = Body::Form(pairs);
    } else if let (Some(parts), Body::Multipart(now)) =
        (body.get("multipart").and_then(Value::as_array), &mut fresh.body)
    {
        for (stored, part) in parts.iter().zip(now.iter_mut()) {
            let content = &stored["content"];
            if let Some(v) = content.get("json") {
                part.content = PartContent::Json(v.clone());
            } else if let Some(t) = content.get("text").and_then(Value::as_str) {
                part.content = PartContent::Text(t.to_string());
            }
        }
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Body, request_id: &str) -> HttpRequest {
        HttpRequest {
            step: "route".into(),
            method: "POST".into(),
            url: "http://127.0.0.1/api/v1/route".into(),
            headers: vec![
                ("Authorization".into(), "Bearer tok-secret".into()),
                ("RequestId".into(), request_id.into()),
                ("OrgId".into(), "00D".into()),
            ],
            body,
        }
    }

    fn stored_value(request: &HttpRequest, secrets: &Secrets) -> Value {
        let text = Secrets::with_masker(&[secrets], |m| stored_request(request, m));
        serde_json::from_str(text.get()).unwrap()
    }

    #[test]
    fn a_stored_request_is_written_as_the_journal_documents_it() {
        let secrets = Secrets::default();
        secrets.add("tok-secret");
        secrets.add("hunter2");
        let mut r = request(Body::None, "r-1");
        let text = |r: &HttpRequest| {
            Secrets::with_masker(&[&secrets], |m| stored_request(r, m))
                .get()
                .to_string()
        };
        let head = r#"{"method":"POST","url":"http://127.0.0.1/api/v1/route","headers":[["RequestId","r-1"],["OrgId","00D"]],"#;
        assert_eq!(text(&r), format!("{head}\"body\":null}}"));
        r.body = Body::Form(vec![
            ("user".into(), "u".into()),
            ("pass".into(), "hunter2!".into()),
        ]);
        assert_eq!(
            text(&r),
            format!("{head}\"body\":{{\"form\":[[\"user\",\"u\"],[\"pass\",\"***!\"]]}}}}")
        );
        r.body = Body::Multipart(vec![
            Part {
                name: "json".into(),
                content_type: "application/json".into(),
                filename: None,
                content: PartContent::Json(json!({"text": "hunter2", "n": 1.5, "hunter2": [null]})),
            },
            Part {
                name: "note".into(),
                content_type: "text/plain".into(),
                filename: Some("n.txt".into()),
                content: PartContent::Text("a hunter2 b".into()),
            },
        ]);
        assert_eq!(
            text(&r),
            format!(
                "{head}\"body\":{{\"multipart\":[{}]}}}}",
                [
                    r#"{"name":"json","content_type":"application/json","filename":null,"content":{"json":{"text":"***","n":1.5,"***":[null]}}}"#,
                    r#"{"name":"note","content_type":"text/plain","filename":"n.txt","content":{"text":"a *** b"}}"#
                ]
                .join(",")
            )
        );
    }

    #[test]
    fn a_stored_request_keeps_no_token_and_no_secret() {
        let secrets = Secrets::default();
        secrets.add("tok-secret");
        secrets.add("hunter2");
        let r = request(Body::Json(json!({"password": "hunter2", "n": 1})), "r-1");
        let stored = stored_value(&r, &secrets);
        let text = stored.to_string();
        assert!(
            !text.contains("tok-secret") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(!text.to_lowercase().contains("authorization"), "{text}");
        assert_eq!(stored_header(&stored, "requestid"), Some("r-1"));
    }

    #[test]
    fn a_resent_request_is_the_stored_one_with_secrets_read_again() {
        let secrets = Secrets::default();
        secrets.add("tok-secret");
        let first = request(
            Body::Json(json!({"conversationIdentifier": "c-1", "at": 1})),
            "r-1",
        );
        let stored = stored_value(&first, &secrets);
        // Rendered again after the crash: a new RequestId and a new timestamp.
        let fresh = request(
            Body::Json(json!({"conversationIdentifier": "c-1", "at": 2})),
            "r-2",
        );
        let resent = identical(&stored, fresh);
        assert_eq!(resent.body, first.body);
        assert!(resent.headers.contains(&("RequestId".into(), "r-1".into())));
        assert!(
            resent
                .headers
                .contains(&("Authorization".into(), "Bearer tok-secret".into()))
        );
        // A body holding a secret is rendered again (the secret is never stored).
        secrets.add("hunter2");
        let with_secret = request(Body::Json(json!({"p": "hunter2", "at": 1})), "r-1");
        let stored = stored_value(&with_secret, &secrets);
        let fresh = request(Body::Json(json!({"p": "hunter2", "at": 3})), "r-3");
        let resent = identical(&stored, fresh.clone());
        assert_eq!(resent.body, fresh.body);
        assert!(resent.headers.contains(&("RequestId".into(), "r-1".into())));
    }
}
