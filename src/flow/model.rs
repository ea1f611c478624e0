//! The typed flow, built from a document that passed `check`. Field names follow the YAML keys;
//! `docs/flow-language.md` describes each.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
pub struct Flow {
    pub version: u32,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub inputs: indexmap_like::Ordered<Input>,
    pub connection: Connection,
    #[serde(default, with = "duration_opt")]
    pub deadline: Option<Duration>,
    /// Values computed once per run, in order, before the first step: `vars.<name>`.
    #[serde(default)]
    pub vars: indexmap_like::Ordered<Value>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub finally: Vec<Step>,
    #[serde(default)]
    pub outputs: indexmap_like::Ordered<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Input {
    #[serde(rename = "type", default = "string_type")]
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub required: Option<bool>,
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

#[derive(Debug, Clone, Deserialize)]
pub struct Connection {
    pub base_url: String,
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    #[serde(default)]
    pub headers: indexmap_like::Ordered<String>,
    #[serde(default, with = "duration_opt")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retry: Option<Retry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthSettings {
    Bearer(String),
    JwtBearer(JwtBearerSettings),
}

#[derive(Debug, Clone, Deserialize)]
pub struct JwtBearerSettings {
    pub token_url: String,
    pub client_id: String,
    pub username: String,
    pub audience: String,
    pub private_key: String,
    #[serde(default, with = "duration_opt")]
    pub lifetime: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Retry {
    pub attempts: Option<u32>,
    pub backoff: Option<Backoff>,
    #[serde(default, with = "duration_opt")]
    pub initial: Option<Duration>,
    #[serde(default, with = "duration_opt")]
    pub max: Option<Duration>,
    pub on_codes: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Exponential,
    Constant,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "if")]
    pub condition: Option<Value>,
    /// Values computed once when the step runs (after `if`), before its request: `vars.<name>`
    /// inside the step, over the flow's own.
    #[serde(default)]
    pub vars: indexmap_like::Ordered<Value>,
    pub request: Request,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub save: indexmap_like::Ordered<String>,
    #[serde(default)]
    pub stop_if: Option<Value>,
    #[serde(default, with = "duration_opt")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub retry: Option<Retry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Request {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: indexmap_like::Ordered<Value>,
    #[serde(default)]
    pub headers: indexmap_like::Ordered<String>,
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub multipart: Option<indexmap_like::Ordered<Part>>,
    #[serde(default)]
    pub form: Option<indexmap_like::Ordered<Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Expect {
    #[serde(default)]
    pub status: Option<StatusSet>,
    #[serde(default)]
    pub assert: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSet {
    One(u16),
    Many(Vec<u16>),
}

impl StatusSet {
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

mod duration_opt {
    use serde::{Deserialize, Deserializer, de::Error};
    use std::time::Duration;

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

    #[derive(Debug, Clone)]
    pub struct Ordered<T>(pub Vec<(String, T)>);

    impl<T> Default for Ordered<T> {
        fn default() -> Self {
            Ordered(Vec::new())
        }
    }

    impl<T> Ordered<T> {
        pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
            self.0.iter().map(|(k, v)| (k, v))
        }
        pub fn get(&self, key: &str) -> Option<&T> {
            self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }
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
            let text = std::fs::read_to_string(path).unwrap();
            let doc = crate::base::yaml::load(&text).0.unwrap();
            let flow: Flow = serde_json::from_value(doc.value).unwrap();
            assert!(!flow.steps.is_empty());
        }
    }
}
