//! The test file format (`*.test.yaml`), as `schemas/flow-test.schema.json` describes it.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
pub struct TestFile {
    pub version: u32,
    pub flow: String,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub inputs_file: Option<String>,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub sim_config: Option<String>,
    #[serde(default)]
    pub responses: BTreeMap<String, Script>,
    pub expect: Expect,
    pub transcript: String,
}

/// Scripted answers for one step: one for every attempt, or one per attempt.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Script {
    Many(Vec<Scripted>),
    One(Scripted),
}

impl Script {
    /// The answer to attempt `n` (1-based); the last one repeats.
    pub fn answer(&self, n: usize) -> &Scripted {
        match self {
            Script::One(s) => s,
            Script::Many(list) => &list[(n.max(1) - 1).min(list.len() - 1)],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Scripted {
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub delay: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expect {
    pub outcome: ExpectedOutcome,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub code: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedOutcome {
    Passed,
    Stopped,
    Failed,
}
