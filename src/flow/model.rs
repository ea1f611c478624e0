//! The typed flow, built from a document that passed `check`. Field names follow the YAML keys;
//! `docs/flow-language.md` describes each.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// A whole flow file: inputs, a connection, steps run in order, cleanup steps and outputs.
#[derive(Debug, Clone, Deserialize)]
pub struct Flow {
    /// The flow language version; always `1`.
    pub version: u32,
    /// Short name of the flow, shown in output and reports.
    pub name: String,
    /// What the flow does, for readers.
    #[serde(default)]
    pub description: Option<String>,
    /// The named inputs a run takes (name → declaration), read as `inputs.<name>`.
    #[serde(default)]
    pub inputs: indexmap_like::Ordered<Input>,
    /// Rules over several inputs: exactly one (`one_of`) or at least one (`any_of`) given.
    #[serde(default)]
    pub input_groups: Vec<InputGroup>,
    /// Where and how every step's request is sent.
    pub connection: Connection,
    /// How long the whole run may take, retries included; no attempt starts past it.
    #[serde(default, with = "duration_opt")]
    pub deadline: Option<Duration>,
    /// Values computed once per run, in order, before the first step: `vars.<name>`.
    #[serde(default)]
    pub vars: indexmap_like::Ordered<Value>,
    /// The steps, run in order; at least one.
    pub steps: Vec<Step>,
    /// Cleanup steps run after `steps` end, whether they passed, stopped or failed.
    #[serde(default)]
    pub finally: Vec<Step>,
    /// Values the flow returns: name → bare expression, evaluated once every step has ended.
    #[serde(default)]
    pub outputs: indexmap_like::Ordered<String>,
}

/// One `input_groups` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputGroup {
    /// Exactly one of the inputs is given.
    OneOf(Vec<String>),
    /// At least one of the inputs is given.
    AnyOf(Vec<String>),
}

/// The declaration of one input: its type, default and the rules a given value must meet.
#[derive(Debug, Clone, Deserialize)]
pub struct Input {
    /// The `type` key: `string` (the default), `number`, `integer`, `boolean`, `object` or
    /// `array`.
    #[serde(rename = "type", default = "string_type")]
    pub kind: String,
    /// What the input is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The value used when a run does not give the input; `check` verifies it fits the rules.
    #[serde(default)]
    pub default: Option<Value>,
    /// Whether a run must give the input; unset means required exactly when there is no `default`.
    #[serde(default)]
    pub required: Option<bool>,
    /// `true` masks the value in output, reports and transcripts.
    #[serde(default)]
    pub secret: bool,
    /// The declaration as written, used to validate given values (`enum`, limits, ...).
    #[serde(flatten)]
    pub rules: Map<String, Value>,
}

impl Input {
    /// Whether a run must give the input: by default, when it has no default.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.default.is_none())
    }
}

fn string_type() -> String {
    "string".into()
}

/// The `connection` key: where requests go and what every step sends with them.
#[derive(Debug, Clone, Deserialize)]
pub struct Connection {
    /// Template for scheme, host and optional prefix; each step's `path` is appended to it.
    pub base_url: String,
    /// How requests are authenticated; rendered once when a run starts (`env()`, `secret()` only).
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// Header name → template, sent with every step; a step's own `headers` are merged over them.
    #[serde(default)]
    pub headers: indexmap_like::Ordered<String>,
    /// Time one attempt of a request may take; `10s` when unset.
    #[serde(default, with = "duration_opt")]
    pub timeout: Option<Duration>,
    /// Retry settings for every step; a step's `retry` overrides them key by key.
    #[serde(default)]
    pub retry: Option<Retry>,
}

/// The `connection.auth` key: exactly one way of authenticating.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthSettings {
    /// `bearer`: a template for the token, sent as `Authorization: Bearer <token>`.
    Bearer(String),
    /// `jwt_bearer`: tokens fetched with the OAuth 2.0 JWT bearer flow, then sent as bearer tokens.
    JwtBearer(JwtBearerSettings),
}

/// The `auth.jwt_bearer` settings: how to sign the JWT and where to trade it for a token.
#[derive(Debug, Clone, Deserialize)]
pub struct JwtBearerSettings {
    /// The token endpoint the signed JWT is POSTed to (form-encoded).
    pub token_url: String,
    /// The connected app's consumer key (the JWT `iss`).
    pub client_id: String,
    /// The user the token is for (the JWT `sub`).
    pub username: String,
    /// The login URL (the JWT `aud`).
    pub audience: String,
    /// PEM RSA private key that signs the JWT, normally `{{ secret('SF_JWT_KEY') }}`.
    pub private_key: String,
    /// How long each JWT is valid (its `exp`); `3m` when unset.
    #[serde(default, with = "duration_opt")]
    pub lifetime: Option<Duration>,
}

/// A `retry` key: how many attempts a request gets and how long to wait between them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Retry {
    /// Attempts in all, the first included; `1` turns retries off. Default `3`, at most `20`.
    pub attempts: Option<u32>,
    /// How the waits grow: `exponential` (the default) or `constant`.
    pub backoff: Option<Backoff>,
    /// Wait before the second attempt; `200ms` when unset.
    #[serde(default, with = "duration_opt")]
    pub initial: Option<Duration>,
    /// Longest wait, also the most a `Retry-After` header is honoured for; `5s` when unset.
    #[serde(default, with = "duration_opt")]
    pub max: Option<Duration>,
    /// API error codes (`code` or `errorDetail.code` in the body) that are retried; default
    /// `[10019, 10055, 10056, 10094]`.
    pub on_codes: Option<Vec<i64>>,
}

/// The `retry.backoff` key: how waits between attempts grow (with jitter either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// Each wait doubles, from `initial` up to `max`.
    Exponential,
    /// Every wait is `initial` (at most `max`).
    Constant,
}

/// One step: the request it sends, what makes it pass, and what it keeps for later steps.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// Unique across `steps` and `finally`; later steps read the step as `steps.<id>`.
    pub id: String,
    /// What the step does, for readers.
    #[serde(default)]
    pub description: Option<String>,
    /// The `if` key: a bare expression or `true`/`false`; the step is skipped when it is false.
    #[serde(default, rename = "if")]
    pub condition: Option<Value>,
    /// Values computed once when the step runs (after `if`), before its request: `vars.<name>`
    /// inside the step, over the flow's own.
    #[serde(default)]
    pub vars: indexmap_like::Ordered<Value>,
    /// Checked after `if` and `vars`, before the request: when true the step fails unsent.
    #[serde(default)]
    pub fail_if: Option<FailIf>,
    /// A bare expression giving a list: the step's request is sent once per item.
    #[serde(default)]
    pub for_each: Option<String>,
    /// The name each item is read under, as `vars.<name>` (with `for_each`).
    #[serde(default, rename = "as")]
    pub item: Option<String>,
    /// The most items `for_each` may give; more fails the step before anything is sent.
    #[serde(default)]
    pub max_items: Option<usize>,
    /// A bare expression over each item's `response`: when true, no further item is sent.
    #[serde(default)]
    pub until: Option<String>,
    /// The HTTP request the step sends; `None` exactly for a call (`call`).
    #[serde(default)]
    pub request: Option<Request>,
    /// `call`: the steps file whose steps run in this step's place.
    #[serde(default)]
    pub call: Option<String>,
    /// `with`: a call's arguments, parameter → template or literal.
    #[serde(default)]
    pub with: indexmap_like::Ordered<Value>,
    /// A call's parameters, as its steps file declares them (mounted from the file).
    #[serde(default)]
    pub params: indexmap_like::Ordered<Input>,
    /// A call's steps, from its steps file (mounted from the file).
    #[serde(default)]
    pub steps: Vec<Step>,
    /// What makes the step pass; unset, any 2xx status does.
    #[serde(default)]
    pub expect: Expect,
    /// Values to keep: name → bare expression over `response`, read later as `steps.<id>.<name>`.
    #[serde(default)]
    pub save: indexmap_like::Ordered<String>,
    /// A condition checked after the step passed: when true the flow ends here, successfully.
    #[serde(default)]
    pub stop_if: Option<Value>,
    /// Time one attempt of this step may take, instead of the connection's `timeout`.
    #[serde(default, with = "duration_opt")]
    pub timeout: Option<Duration>,
    /// Retry settings for this step; each key it sets overrides the connection's.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// For journaled runs: what a resume does when this step was sent and no answer was
    /// recorded before the crash.
    #[serde(default)]
    pub in_doubt: Option<InDoubt>,
}

/// The `fail_if` key: a condition, or the condition with the message to fail with.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FailIf {
    /// `fail_if: { when: EXPRESSION, message: TEMPLATE }`.
    Said {
        /// The condition.
        when: Value,
        /// The error when it is true: a template.
        #[serde(default)]
        message: Option<String>,
    },
    /// `fail_if: EXPRESSION` (or a literal boolean).
    When(Value),
}

/// The `in_doubt` key: a policy word, or the policy with its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum InDoubt {
    /// `in_doubt: resend`.
    Policy(DoubtPolicy),
    /// `in_doubt: { policy: compensate, compensate: {...}, already_done: [15109] }`.
    Settings(Box<InDoubtSettings>),
}

impl InDoubt {
    /// The policy, whichever way it is written.
    pub fn policy(&self) -> DoubtPolicy {
        match self {
            InDoubt::Policy(p) => *p,
            InDoubt::Settings(s) => s.policy,
        }
    }
}

/// What a resume does with a step in doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoubtPolicy {
    /// Send the identical request again (same `RequestId` and body).
    Resend,
    /// Fail the step: a person decides whether the first attempt took effect.
    Fail,
    /// Send the `compensate` request first, then the step afresh.
    Compensate,
}

/// The object form of `in_doubt`.
#[derive(Debug, Clone, Deserialize)]
pub struct InDoubtSettings {
    /// The policy.
    pub policy: DoubtPolicy,
    /// The request that undoes a first attempt (with `policy: compensate`).
    #[serde(default)]
    pub compensate: Option<Compensation>,
    /// API codes that, answering a resent attempt, mean the first one took effect.
    #[serde(default)]
    pub already_done: Vec<i64>,
    /// A bare expression over the answer to a resent attempt that, when true, means the first
    /// attempt took effect (a DELETE answered "nothing to delete").
    #[serde(default)]
    pub already_done_if: Option<String>,
}

/// The `in_doubt.compensate` key: a request and what it must answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Compensation {
    /// The request that undoes the step's first attempt.
    pub request: Request,
    /// What makes it pass; unset, any 2xx.
    #[serde(default)]
    pub expect: Expect,
}

/// The `request` key: the HTTP request a step sends; at most one of `json`, `multipart`, `form`.
#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`.
    pub method: String,
    /// Template appended to `connection.base_url`.
    pub path: String,
    /// Query parameters: name → template or literal.
    #[serde(default)]
    pub query: indexmap_like::Ordered<Value>,
    /// Header name → template, merged over the connection's headers.
    #[serde(default)]
    pub headers: indexmap_like::Ordered<String>,
    /// A JSON body: any YAML value, whose strings are templates.
    #[serde(default)]
    pub json: Option<Value>,
    /// A `multipart/form-data` body: part name → part.
    #[serde(default)]
    pub multipart: Option<indexmap_like::Ordered<Part>>,
    /// An `application/x-www-form-urlencoded` body: field → template or literal.
    #[serde(default)]
    pub form: Option<indexmap_like::Ordered<Value>>,
}

/// One part of a `multipart` body; it has exactly one of `json`, `text` and `file`.
#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    /// A JSON part (any YAML value, strings are templates), sent as `application/json`.
    #[serde(default)]
    pub json: Option<Value>,
    /// A text part (a template), sent as `text/plain`.
    #[serde(default)]
    pub text: Option<String>,
    /// Path of a file to send, relative to the flow file.
    #[serde(default)]
    pub file: Option<String>,
    /// The part's `Content-Type`, instead of the default for its kind.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The file name the part is sent under; a `file` part defaults to the file's own name.
    #[serde(default)]
    pub filename: Option<String>,
}

/// The `expect` key: what makes a step pass.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Expect {
    /// The status code, or list of codes, that pass; unset, any 2xx passes.
    #[serde(default)]
    pub status: Option<StatusSet>,
    /// Bare expressions over `response` that must all be true.
    #[serde(default)]
    pub assert: Vec<String>,
}

/// The `expect.status` key: one status code or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSet {
    /// A single code: `status: 202`.
    One(u16),
    /// Any of several codes: `status: [200, 204]`.
    Many(Vec<u16>),
}

impl StatusSet {
    /// Whether `status` is one of the codes.
    pub fn contains(&self, status: u16) -> bool {
        match self {
            StatusSet::One(s) => *s == status,
            StatusSet::Many(v) => v.contains(&status),
        }
    }
}

/// Parses a duration as the schema allows it: digits then `ms`, `s` or `m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    match &text[digits.len()..] {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// Reads an optional duration (`500ms`, `10s`, `2m`) with serde.
pub mod duration_opt {
    use serde::{Deserialize, Deserializer, de::Error};
    use std::time::Duration;

    /// An optional duration from its text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::parse_duration(&t).ok_or_else(|| D::Error::custom(format!("bad duration `{t}`"))))
            .transpose()
    }
}

/// An order-keeping string map (serde_json's `preserve_order` map), so headers, saved values
/// and outputs keep the order they are written in.
pub mod indexmap_like {
    use serde::{Deserialize, Deserializer};

    /// A map from names to values, kept as `(key, value)` pairs in the order they are written.
    #[derive(Debug, Clone)]
    pub struct Ordered<T>(pub Vec<(String, T)>);

    impl<T> Default for Ordered<T> {
        fn default() -> Self {
            Ordered(Vec::new())
        }
    }

    impl<T> Ordered<T> {
        /// The entries, in order.
        pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
            self.0.iter().map(|(k, v)| (k, v))
        }
        /// The value under `key`, if there is one.
        pub fn get(&self, key: &str) -> Option<&T> {
            self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }
        /// Whether there are no entries.
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let map = serde_json::Map::deserialize(d)?;
            map.into_iter()
                .map(|(k, v)| {
                    T::deserialize(v)
                        .map(|t| (k, t))
                        .map_err(serde::de::Error::custom)
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Ordered)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_the_schema_writes_them() {
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("1h"), None);
    }

    #[test]
    fn shipped_flows_deserialize() {
        for path in ["flows/inbound.yaml", "flows/transfer.yaml"] {
            let source = crate::base::source::Source::read(std::path::Path::new(path)).unwrap();
            let flow = crate::flow::load_checked(&source)
                .map_err(|d| format!("{d:?}"))
                .unwrap()
                .flow;
            assert!(!flow.steps.is_empty());
            assert!(flow.connection.base_url.contains("SCRT_BASE_URL"));
        }
    }
}
