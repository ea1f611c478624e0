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
    Failed(StepError),
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

/// Why a step failed, as data: what went wrong with its facts, and where in the flow file.
/// Its `Display` is the one-line message reports show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub kind: FailureKind,
    /// The part of the flow that failed: the `expect.status`, the `assert` item, the template,
    /// the step itself (default span when unknown).
    pub span: crate::base::source::Span,
    /// More words, such as "the response body is not JSON: ...".
    pub note: Option<String>,
}

/// The kinds of step failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The answer's status is not the expected one; the API's error code and message when the
    /// body has them.
    Status {
        expected: String,
        actual: u16,
        code: Option<i64>,
        message: Option<String>,
    },
    /// An `expect.assert` item was false.
    Assert { expression: String },
    /// A template or expression could not be evaluated (an undefined value, a bad type, ...).
    Render { message: String },
    /// A `save` expression could not be evaluated.
    Save { name: String, message: String },
    /// The rendered body does not fit the Interaction Service operation: not sent.
    BodyCheck { message: String },
    /// No answer: connect error, reset, timeout, too large (after the retries).
    Transport { message: String },
    /// Retrying was given up: the server asked for too long a wait, or no time was left.
    GaveUp { last: String, reason: String },
    /// Getting a token failed.
    Auth { message: String },
    /// The flow's deadline passed.
    Deadline { message: String },
    /// The run was asked to stop (a signal, `--force`).
    Interrupted { message: String },
    /// A bug in flowrun: a panic inside the run.
    Panicked { message: String },
}

impl StepError {
    pub fn new(kind: FailureKind, span: crate::base::source::Span) -> Self {
        StepError {
            kind,
            span,
            note: None,
        }
    }

    /// The API error code of the answer that failed the step, if it had one.
    pub fn code(&self) -> Option<i64> {
        match &self.kind {
            FailureKind::Status { code, .. } => *code,
            _ => None,
        }
    }

    /// The kind as a word, for reports: `status`, `assert`, `render`, ...
    pub fn kind_word(&self) -> &'static str {
        match self.kind {
            FailureKind::Status { .. } => "status",
            FailureKind::Assert { .. } => "assert",
            FailureKind::Render { .. } => "render",
            FailureKind::Save { .. } => "save",
            FailureKind::BodyCheck { .. } => "body-check",
            FailureKind::Transport { .. } => "transport",
            FailureKind::GaveUp { .. } => "gave-up",
            FailureKind::Auth { .. } => "auth",
            FailureKind::Deadline { .. } => "deadline",
            FailureKind::Interrupted { .. } => "interrupted",
            FailureKind::Panicked { .. } => "panicked",
        }
    }

    /// The facts as JSON, for reports: `{kind, message, line, column, expected, actual, code, ...}`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "kind": self.kind_word(),
            "message": self.to_string(),
        });
        if self.span.start.line > 0 {
            v["line"] = self.span.start.line.into();
            v["column"] = self.span.start.col.into();
        }
        match &self.kind {
            FailureKind::Status {
                expected,
                actual,
                code,
                message,
            } => {
                v["expected"] = expected.clone().into();
                v["actual"] = (*actual).into();
                if let Some(c) = code {
                    v["code"] = (*c).into();
                }
                if let Some(m) = message {
                    v["api_message"] = m.clone().into();
                }
            }
            FailureKind::Assert { expression } => v["expression"] = expression.clone().into(),
            FailureKind::Save { name, .. } => v["save"] = name.clone().into(),
            _ => {}
        }
        v
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Status {
                expected,
                actual,
                code,
                message,
            } => {
                write!(f, "expected status {expected}, got {actual}")?;
                if let Some(code) = code {
                    let m = message.as_deref().unwrap_or_default();
                    let sep = if m.is_empty() { "" } else { ": " };
                    write!(f, " (code {code}{sep}{m})")?;
                }
                Ok(())
            }
            FailureKind::Assert { expression } => write!(f, "assertion failed: `{expression}`"),
            FailureKind::Save { name, message } => write!(f, "save `{name}`: {message}"),
            FailureKind::GaveUp { last, reason } => write!(f, "{last}; {reason}"),
            FailureKind::Render { message }
            | FailureKind::BodyCheck { message }
            | FailureKind::Transport { message }
            | FailureKind::Auth { message }
            | FailureKind::Deadline { message }
            | FailureKind::Interrupted { message }
            | FailureKind::Panicked { message } => write!(f, "{message}"),
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
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

    /// Why the run failed, as data: the failing step's error.
    pub fn failure(&self) -> Option<&StepError> {
        let Outcome::Failed { step, .. } = &self.outcome else {
            return None;
        };
        self.steps
            .iter()
            .find(|s| s.id == *step)
            .and_then(|s| match &s.status {
                StepStatus::Failed(e) => Some(e),
                _ => None,
            })
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
    /// A step's `if` was evaluated: its text and its value.
    fn condition_evaluated(&self, _step: &str, _condition: &str, _value: bool) {}
    fn step_finished(&self, _record: &StepRecord) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}
