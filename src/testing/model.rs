//! The test file format (`*.test.yaml`), as `schemas/flow-test.schema.json` describes it.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One `*.test.yaml` file: the flow under test and its cases.
#[derive(Debug, Clone, Deserialize)]
pub struct TestFile {
    /// Version of the test file format; always 1.
    pub version: u32,
    /// Path of the flow under test, relative to the test file.
    pub flow: String,
    /// The cases, each run against its own simulator; at least one.
    pub cases: Vec<Case>,
}

/// One run of the flow: its inputs, where answers come from, and what must happen.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// What the case shows, printed in results.
    pub name: String,
    /// A YAML file of inputs, relative to the test file.
    #[serde(default)]
    pub inputs_file: Option<String>,
    /// Inputs by name; they win over `inputs_file`'s.
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// Environment variables for the flow; they win over the simulator's connection variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Simulator configuration file, relative to the test file; the built-in one when absent.
    #[serde(default)]
    pub sim_config: Option<String>,
    /// Scripted answers by step id; steps not named here are answered by the simulator.
    #[serde(default)]
    pub responses: BTreeMap<String, Script>,
    /// How the run must end.
    pub expect: Expect,
    /// Golden transcript file (`*.transcript.yaml`), relative to the test file and inside its folder.
    pub transcript: String,
}

/// Scripted answers for one step: one for every attempt, or one per attempt.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Script {
    /// Answers to attempts 1, 2, ... in order; the last repeats (at least one, as the schema requires).
    Many(Vec<Scripted>),
    /// The same answer to every attempt.
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

/// One scripted answer, sent instead of calling the simulator.
#[derive(Debug, Clone, Deserialize)]
pub struct Scripted {
    /// HTTP status; 200 when absent.
    #[serde(default = "ok")]
    pub status: u16,
    /// Response headers (names lowercased when sent).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body, sent as `application/json`; none means an empty body.
    #[serde(default)]
    pub body: Option<Value>,
    /// Wait before answering, such as `50ms` (digits then `ms`, `s` or `m`).
    #[serde(default)]
    pub delay: Option<String>,
}

fn ok() -> u16 {
    200
}

/// How a case's run must end; only the fields given are checked.
#[derive(Debug, Clone, Deserialize)]
pub struct Expect {
    /// Whether it passed, stopped or failed.
    pub outcome: ExpectedOutcome,
    /// The step that stopped or failed the flow.
    #[serde(default)]
    pub step: Option<String>,
    /// For a failure: the API error code the failing step's answer carries.
    #[serde(default)]
    pub code: Option<i64>,
}

/// How a run ended, as a test expects it (`passed`, `stopped`, `failed` in YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedOutcome {
    /// The flow ran to its end with no failure.
    Passed,
    /// A step's `stop_if` ended the flow early, successfully.
    Stopped,
    /// The flow failed.
    Failed,
}
