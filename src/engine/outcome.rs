//! What a run produced: per-step records with every attempt, the outcome, the outputs.
//! Reporters read these; they never change them.

use crate::http::{HttpRequest, HttpResponse};
use serde_json::{Map, Value};
use std::time::Duration;

/// Which list of the flow a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The `steps` list.
    Steps,
    /// The `finally` list, run after the steps.
    Finally,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepStatus {
    /// Ran and passed its checks.
    Ok,
    /// Not run: its `if` was false.
    Skipped,
    /// Passed, and its `stop_if` ended the flow.
    Stopped,
    /// Failed, and why.
    Failed(StepError),
    /// Not reached: an earlier step failed or stopped the flow.
    NotRun,
}

impl StepStatus {
    /// The status as a word for reports: `ok`, `skipped`, `stopped`, `failed`, `not run`.
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
    /// What went wrong, with its facts.
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
        /// The expected statuses as shown: `200`, `200 or 204`, or `2xx`.
        expected: String,
        /// The status the response had.
        actual: u16,
        /// The API error code in the response body, if any.
        code: Option<i64>,
        /// The API error message in the response body, if any.
        message: Option<String>,
    },
    /// An `expect.assert` item was false.
    Assert {
        /// The assert's source text.
        expression: String,
    },
    /// A template or expression could not be evaluated (an undefined value, a bad type, ...).
    Render {
        /// The evaluation error.
        message: String,
    },
    /// A `save` expression could not be evaluated.
    Save {
        /// The `save` name.
        name: String,
        /// The evaluation error.
        message: String,
    },
    /// The rendered body does not fit the Interaction Service operation: not sent.
    BodyCheck {
        /// What the check refused.
        message: String,
    },
    /// No answer: connect error, reset, timeout, too large (after the retries).
    Transport {
        /// The last transport error.
        message: String,
    },
    /// Retrying was given up: the server asked for too long a wait, or no time was left.
    GaveUp {
        /// What the last attempt got: a status or a transport error.
        last: String,
        /// Why no further attempt was made.
        reason: String,
    },
    /// Getting a token failed.
    Auth {
        /// Why getting or refreshing the token failed.
        message: String,
    },
    /// The flow's deadline passed.
    Deadline {
        /// What the deadline cut short.
        message: String,
    },
    /// The run was asked to stop (a signal, `--force`).
    Interrupted {
        /// What was interrupted.
        message: String,
    },
    /// A bug in flowrun: a panic inside the run.
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// A resumed run's step was sent before the crash with no answer recorded, and its
    /// `in_doubt` policy does not allow sending it again (or its compensation failed).
    InDoubt {
        /// What is in doubt and what a person should check.
        message: String,
    },
    /// The journal could not write the attempt down: it was not sent.
    Journal {
        /// The journal's error.
        message: String,
    },
    /// The step failed before a crash; the resumed run keeps that result.
    Earlier {
        /// The failure as it was recorded.
        message: String,
    },
    /// The step's `fail_if` was true: it failed before sending anything.
    FailIf {
        /// The step's `fail_if` message, or the condition that was true.
        message: String,
    },
    /// A call's argument breaks its parameter's declaration: none of the call's steps is sent.
    Argument {
        /// Which argument and what is wrong with it.
        message: String,
    },
}

impl StepError {
    /// A failure of `kind` at `span`, with no note.
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
            FailureKind::InDoubt { .. } => "in-doubt",
            FailureKind::Journal { .. } => "journal",
            FailureKind::Earlier { .. } => "earlier",
            FailureKind::FailIf { .. } => "fail-if",
            FailureKind::Argument { .. } => "argument",
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
            | FailureKind::Panicked { message }
            | FailureKind::InDoubt { message }
            | FailureKind::Journal { message }
            | FailureKind::Earlier { message }
            | FailureKind::FailIf { message }
            | FailureKind::Argument { message } => write!(f, "{message}"),
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
    /// The attempt's number within the step, from 1.
    pub number: u32,
    /// Shared by the attempts of a step: the request is the same on each (only a refreshed
    /// token makes a new one).
    pub request: std::sync::Arc<HttpRequest>,
    /// The response, when one came back.
    pub response: Option<HttpResponse>,
    /// The transport error, when no response came back.
    pub error: Option<String>,
    /// Time from sending to the response or the error.
    pub duration: Duration,
}

/// What one step did in a run: how it ended, every attempt, what it saved.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// The step's `id`.
    pub id: String,
    /// Whether the step is in `steps` or `finally`.
    pub phase: Phase,
    /// How the step ended.
    pub status: StepStatus,
    /// Every attempt, in order; empty when nothing was sent.
    pub attempts: Vec<Attempt>,
    /// The values its `save` produced, by name.
    pub saved: Map<String, Value>,
    /// The step's own `vars`, as rendered (empty when it has none or did not run).
    pub vars: Map<String, Value>,
    /// Wall time the step took, retries and waits included.
    pub duration: Duration,
    /// The step ended before a crash and was restored from the journal, not run again.
    pub resumed: bool,
}

impl StepRecord {
    /// The status of the last attempt's response, if it got one.
    pub fn http_status(&self) -> Option<u16> {
        self.attempts
            .last()
            .and_then(|a| a.response.as_ref())
            .map(|r| r.status)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No step failed and none stopped the flow.
    Passed,
    /// A step's `stop_if` ended the flow early, successfully.
    Stopped {
        /// The id of the step whose `stop_if` was true.
        step: String,
    },
    /// The run failed.
    Failed {
        /// Where it failed: a step id, or `connection`, `vars.<name>`, `outputs.<name>`, `(run)`.
        step: String,
        /// The failure message.
        error: String,
    },
}

/// Everything one run did, for reporters.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The flow's name.
    pub flow: String,
    /// The flow's `vars`, as rendered for this run.
    pub vars: Map<String, Value>,
    /// How the run ended.
    pub outcome: Outcome,
    /// A record per step, `steps` then `finally`, in order.
    pub steps: Vec<StepRecord>,
    /// The flow's `outputs`, evaluated after the steps.
    pub outputs: Map<String, Value>,
    /// Wall time of the whole run.
    pub duration: Duration,
    /// The run's id in the journal, when it was journaled.
    pub run_id: Option<String>,
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
            run_id: None,
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

    /// How many requests the run sent: every attempt of every step.
    pub fn requests_sent(&self) -> usize {
        self.steps.iter().map(|s| s.attempts.len()).sum()
    }
}

/// Live notifications while a flow runs, for progress output.
pub trait Observer: Send + Sync {
    /// An attempt of `step` is about to send `request`; attempts count from 1.
    fn attempt_started(&self, _step: &str, _attempt: u32, _request: &HttpRequest) {}
    /// An attempt of `step` got its response or its error.
    fn attempt_finished(&self, _step: &str, _attempt: &Attempt) {}
    /// `step` will try again after `wait`, because of `reason`.
    fn retry_scheduled(&self, _step: &str, _wait: Duration, _reason: &str) {}
    /// A step's `if` was evaluated: its text and its value.
    fn condition_evaluated(&self, _step: &str, _condition: &str, _value: bool) {}
    /// A step ended or was marked not run; `record` says how.
    fn step_finished(&self, _record: &StepRecord) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {}
