//! What a run produced: per-step records with every attempt, the outcome, the outputs.
//! Reporters read these; they never change them.

use crate::http::{HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Steps,
    Finally,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    Ok,
    Skipped,
    /// Passed, and its `stop_if` ended the flow.
    Stopped,
    Failed(String),
    /// Not reached: an earlier step failed or stopped the flow.
    NotRun,
}

impl StepStatus {
    pub fn word(&self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Skipped => "skipped",
            StepStatus::Stopped => "stopped",
            StepStatus::Failed(_) => "failed",
            StepStatus::NotRun => "not run",
        }
    }
}

/// One try at sending a step's request.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub number: u32,
    /// Shared by the attempts of a step: the request is the same on each (only a refreshed
    /// token makes a new one).
    pub request: std::sync::Arc<HttpRequest>,
    pub response: Option<HttpResponse>,
    pub error: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct StepRecord {
    pub id: String,
    pub phase: Phase,
    pub status: StepStatus,
    pub attempts: Vec<Attempt>,
    pub saved: Map<String, Value>,
    /// The step's own `vars`, as rendered (empty when it has none or did not run).
    pub vars: Map<String, Value>,
    pub duration: Duration,
}

impl StepRecord {
    pub fn http_status(&self) -> Option<u16> {
        self.attempts
            .last()
            .and_then(|a| a.response.as_ref())
            .map(|r| r.status)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// A step's `stop_if` ended the flow early, successfully.
    Stopped {
        step: String,
    },
    Failed {
        step: String,
        error: String,
    },
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub flow: String,
    /// The flow's `vars`, as rendered for this run.
    pub vars: Map<String, Value>,
    pub outcome: Outcome,
    pub steps: Vec<StepRecord>,
    pub outputs: Map<String, Value>,
    pub duration: Duration,
}

impl RunReport {
    /// The report of a run that ended in a panic: failed, with nothing known of its steps.
    pub fn crashed(flow: &str, error: String) -> Self {
        RunReport {
            flow: flow.to_string(),
            vars: Map::new(),
            outcome: Outcome::Failed {
                step: "(run)".into(),
                error,
            },
            steps: Vec::new(),
            outputs: Map::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn requests_sent(&self) -> usize {
        self.steps.iter().map(|s| s.attempts.len()).sum()
    }
}

/// Live notifications while a flow runs, for progress output.
pub trait Observer: Send + Sync {
    fn attempt_started(&self, _step: &str, _attempt: u32, _request: &HttpRequest) {}
    fn attempt_finished(&self, _step: &str, _attempt: &Attempt) {}
    fn retry_scheduled(&self, _step: &str, _wait: Duration, _reason: &str) {}
    fn step_finished(&self, _record: &StepRecord) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}
