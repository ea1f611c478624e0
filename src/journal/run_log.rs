//! One run's view of the journal: the engine's [`RunLog`], masking every secret before a write
//! is queued, and the way back from a journal's records to a [`Resume`].

use super::{Journal, JournalError, RunDetail, RunStart, Write, now_ms};
use crate::base::secrets::Secrets;
use crate::engine::durable::{DoneStatus, DoneStep, Doubt, Resume, RunLog, stored_request};
use crate::engine::outcome::{Attempt, Outcome, Phase, RunReport, StepRecord, StepStatus};
use crate::http::HttpRequest;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One run's journal: what the engine tells it is written under the run's id.
pub struct RunJournal {
    journal: Arc<Journal>,
    run: String,
    /// The flow's secrets (a live registry: a token fetched later is in it) and this run's
    /// own: masked in everything written.
    secrets: Masks,
}

/// Two registries masked together.
#[derive(Clone)]
pub struct Masks(pub Secrets, pub Secrets);

impl Masks {
    fn redact(&self, text: &str) -> String {
        self.1.redact(&self.0.redact(text)).into_owned()
    }

    fn redact_json(&self, value: &Value) -> Value {
        self.1.redact_json(&self.0.redact_json(value))
    }
}

fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Steps => "steps",
        Phase::Finally => "finally",
    }
}

impl RunJournal {
    /// Starts a new run in the journal; durable when it returns.
    pub fn start(journal: Arc<Journal>, start: RunStart, secrets: Masks) -> Result<RunJournal, JournalError> {
        let run = start.id.clone();
        let inputs = secrets.redact_json(&start.inputs);
        journal.commit(Some(Write::RunStarted(RunStart { inputs, ..start })))?;
        Ok(RunJournal {
            journal,
            run,
            secrets,
        })
    }

    /// Goes on writing an existing run (a resume).
    pub fn reopen(journal: Arc<Journal>, run: &str, secrets: Masks) -> RunJournal {
        RunJournal {
            journal,
            run: run.to_string(),
            secrets,
        }
    }

    /// The run's id.
    pub fn id(&self) -> &str {
        &self.run
    }

    /// Writes the run's end; durable when it returns.
    pub fn finish(&self, report: &RunReport) -> Result<(), JournalError> {
        let (status, error) = match &report.outcome {
            Outcome::Passed => ("passed", None),
            Outcome::Stopped { .. } => ("stopped", None),
            Outcome::Failed { step, error } => ("failed", Some(format!("{step}: {error}"))),
        };
        self.end(status, &Value::Object(report.outputs.clone()), error)
    }

    /// Writes the run's end with `status` (`cancelled` for one given up by hand).
    pub fn end(&self, status: &str, outputs: &Value, error: Option<String>) -> Result<(), JournalError> {
        self.journal.commit(Some(Write::RunFinished {
            run: self.run.clone(),
            status: status.into(),
            outputs: self.secrets.redact_json(outputs),
            error: error.map(|e| self.secrets.redact(&e)),
            at_ms: now_ms(),
        }))
    }
}

impl RunLog for RunJournal {
    fn vars(&self, vars: &Map<String, Value>) {
        self.journal.queue(Write::Vars {
            run: self.run.clone(),
            vars: self.secrets.redact_json(&Value::Object(vars.clone())),
        });
    }

    fn before_send(
        &self,
        step: &str,
        phase: Phase,
        attempt: u32,
        request: &HttpRequest,
    ) -> Result<(), String> {
        self.journal
            .commit(Some(Write::AttemptSent {
                run: self.run.clone(),
                step: step.to_string(),
                phase: phase_word(phase),
                number: attempt,
                request: self
                    .secrets
                    .redact_json(&stored_request(request, &self.secrets.0)),
                at_ms: now_ms(),
            }))
            .map_err(|e| e.to_string())
    }

    fn answered(&self, step: &str, attempt: &Attempt) {
        self.journal.queue(Write::AttemptAnswered {
            run: self.run.clone(),
            step: step.to_string(),
            number: attempt.number,
            status: attempt.response.as_ref().map(|r| r.status),
            error: attempt.error.as_ref().map(|e| self.secrets.redact(e)),
            at_ms: now_ms(),
        });
    }

    fn step_done(&self, record: &StepRecord, slot: &Value) {
        let error = match &record.status {
            StepStatus::Failed(e) => Some(self.secrets.redact_json(&e.to_json())),
            _ => None,
        };
        let status = match &record.status {
            StepStatus::Ok => "ok",
            StepStatus::Skipped => "skipped",
            StepStatus::Stopped => "stopped",
            StepStatus::Failed(_) => "failed",
            StepStatus::NotRun => "not run",
        };
        // Durable at once: a step whose end is written is never sent again, so the window in
        // which a crash leaves it in doubt is only the time its answer takes to be written.
        let _ = self.journal.commit(Some(Write::StepDone {
            run: self.run.clone(),
            step: record.id.clone(),
            phase: phase_word(record.phase),
            status,
            slot: self.secrets.redact_json(slot),
            saved: self.secrets.redact_json(&Value::Object(record.saved.clone())),
            error,
            at_ms: now_ms(),
        }));
    }
}

/// What a resume needs from a run's records: its vars, the steps that ended, and the step in
/// doubt (its last attempt written down with no answer), if any.
pub fn resume_of(detail: &RunDetail) -> Resume {
    let done: Vec<DoneStep> = detail
        .steps
        .iter()
        .filter_map(|s| {
            let error = s.error.get("message").and_then(Value::as_str).map(str::to_string);
            Some(DoneStep {
                id: s.step.clone(),
                phase: if s.phase == "finally" {
                    Phase::Finally
                } else {
                    Phase::Steps
                },
                status: DoneStatus::from_word(&s.status, error)?,
                slot: s.slot.clone(),
                saved: s.saved.as_object().cloned().unwrap_or_default(),
            })
        })
        .collect();
    let in_doubt = detail.attempts.last().and_then(|last| {
        // A compensating request in doubt leaves its step in doubt: the resume compensates
        // again (compensations undo, so they may be sent twice) and then sends the step.
        let step = last.step.strip_suffix(".compensate").unwrap_or(&last.step);
        let ended = done.iter().any(|d| d.id == step);
        if last.answered || ended {
            return None;
        }
        let own = detail.attempts.iter().filter(|a| a.step == step);
        let request = own.clone().last()?.request.clone();
        Some(Doubt {
            step: step.to_string(),
            attempts: own.map(|a| a.number).max().unwrap_or(0),
            request,
        })
    });
    Resume {
        vars: detail.vars.as_object().cloned().unwrap_or_default(),
        done,
        in_doubt,
        cancel: false,
    }
}
