//! One run's view of the journal: the engine's [`RunLog`], masking every secret before a write
//! is queued, and the way back from a journal's records to a [`Resume`].

use super::{Journal, JournalError, RunDetail, RunStart, Write, now_ms};
use crate::base::secrets::{Masker, Secrets};
use crate::engine::durable::{DoneStatus, DoneStep, Doubt, Durably, Resume, RunLog, stored_request};
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
    /// Writes held for the run's next group: answers (they go with the next attempt or the
    /// step's end, so the journal never holds an answer without what came of it) and steps'
    /// ends (they go with the next attempt or the run's end: one row and one statement per
    /// request in the SQLite journal instead of one per write).
    held: std::sync::Mutex<Vec<Write>>,
}

/// Two registries masked together.
#[derive(Clone)]
pub struct Masks(pub Secrets, pub Secrets);

impl Masks {
    fn redact(&self, text: &str) -> String {
        self.1.redact(&self.0.redact(text)).into_owned()
    }

    /// `value` with both registries' secrets masked, in one walk.
    fn masked(&self, mut value: Value) -> Value {
        Secrets::mask_json_all(&[&self.0, &self.1], &mut value);
        value
    }

    /// Calls `f` with a masker for both registries.
    fn with<R>(&self, f: impl FnOnce(&Masker) -> R) -> R {
        Secrets::with_masker(&[&self.0, &self.1], f)
    }
}

fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Steps => "steps",
        Phase::Finally => "finally",
    }
}

impl RunJournal {
    /// A new run, not yet written: [`RunJournal::started`] is the write that starts it.
    pub fn new(journal: Arc<Journal>, start: &RunStart, secrets: Masks) -> RunJournal {
        // A refusal of an earlier run of this id in this process is not this run's.
        journal.forget_refusal(&start.id);
        RunJournal {
            journal,
            run: start.id.clone(),
            secrets,
            held: Default::default(),
        }
    }

    /// The write that starts the run, its inputs masked.
    pub fn started(&self, mut start: RunStart) -> Write {
        start.inputs = self.secrets.masked(std::mem::take(&mut start.inputs));
        Write::RunStarted(start)
    }

    /// Goes on writing an existing run (a resume).
    pub fn reopen(journal: Arc<Journal>, run: &str, secrets: Masks) -> RunJournal {
        journal.forget_refusal(run);
        RunJournal {
            journal,
            run: run.to_string(),
            secrets,
            held: Default::default(),
        }
    }

    /// The run's id.
    pub fn id(&self) -> &str {
        &self.run
    }

    /// The write that ends the run as `report` says.
    pub fn finished(&self, report: &RunReport) -> Write {
        let (status, error) = match &report.outcome {
            Outcome::Passed => ("passed", None),
            Outcome::Stopped { .. } => ("stopped", None),
            Outcome::Failed { step, error } => ("failed", Some(format!("{step}: {error}"))),
        };
        self.ended(status, Value::Object(report.outputs.clone()), error)
    }

    /// The write that ends the run with `status` (`cancelled` for one given up by hand).
    pub fn ended(&self, status: &str, outputs: Value, error: Option<String>) -> Write {
        Write::RunFinished {
            run: self.run.clone(),
            status: status.into(),
            outputs: self.secrets.masked(outputs),
            error: error.map(|e| self.secrets.redact(&e)),
            at_ms: now_ms(),
        }
    }

    /// Writes `write` and blocks until it is durable (outside a run's async code).
    pub fn commit(&self, write: Write) -> Result<(), JournalError> {
        self.journal.commit_all(self.with_held(write))
    }

    /// Queues `write` after the writes held, as one group (written with the next durable
    /// write); the future is already done.
    pub fn queued(&self, write: Write) -> Durably {
        self.journal.queue_all(self.with_held(write));
        Box::pin(std::future::ready(Ok(())))
    }

    /// Writes `write` after the writes held, as one group; the future ends when they are
    /// durable (in the journal's intent log, when it has one: see [`Journal::durable_ahead`]).
    pub fn durably(&self, write: Write) -> Durably {
        match self.journal.durable_ahead(self.with_held(write)) {
            Ok(done) => Box::pin(async move { done.await.map_err(|e| e.to_string()) }),
            Err((e, group)) => {
                // Nothing of the group went anywhere. The run's start goes with its first
                // attempt: it goes with the run's end instead, so the journal still shows the
                // run (as failed).
                let start = group.into_iter().filter(|w| matches!(w, Write::RunStarted(_)));
                self.lock_held().splice(0..0, start);
                Box::pin(std::future::ready(Err(e.to_string())))
            }
        }
    }

    /// Writes `write` after the writes held, as one group; the future ends when the store has
    /// them, or refused them (a run id taken).
    pub fn stored(&self, write: Write) -> Durably {
        let done = self.journal.durable_all(self.with_held(write));
        Box::pin(async move { done.await.map_err(|e| e.to_string()) })
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, Vec<Write>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_held(&self, write: Write) -> Vec<Write> {
        let mut group = std::mem::take(&mut *self.lock_held());
        group.push(write);
        group
    }

    /// Holds `write` for the run's next group (the start of a run whose id cannot clash goes
    /// with its first attempt: one group, one frame, one transaction's entry fewer).
    pub fn hold(&self, write: Write) {
        self.lock_held().push(write);
    }

    /// Holds a step's end for the run's next group.
    fn hold_step_end(&self, end: Write) -> Durably {
        let mut held = self.lock_held();
        // The step's end holds its last answer (status and body in what later steps read; a
        // transport error in its failure): one write per request fewer. Every answer held is
        // this step's: an earlier step's went when that step ended.
        held.retain(|w| !matches!(w, Write::AttemptAnswered { .. }));
        held.push(end);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl Drop for RunJournal {
    /// A run that goes away without its end (a panic inside it) leaves the steps' ends it held
    /// to the next commit, as they would have gone without being held. Answers held with
    /// nothing after them go with it: the journal never holds an answer without what came of
    /// it.
    fn drop(&mut self) {
        let mut held = std::mem::take(&mut *self.lock_held());
        held.retain(|w| !matches!(w, Write::AttemptAnswered { .. }));
        if !held.is_empty() {
            self.journal.queue_all(held);
        }
        self.journal.forget_refusal(&self.run);
    }
}

impl RunLog for RunJournal {
    fn vars(&self, vars: &Map<String, Value>) {
        let vars = self.secrets.masked(Value::Object(vars.clone()));
        // Held for the run's next group, like its start: they matter once something was sent.
        // A start still held takes them into its row (one statement fewer).
        let mut held = self.lock_held();
        let start = held.iter_mut().find_map(|w| match w {
            Write::RunStarted(start) if start.id == self.run => Some(start),
            _ => None,
        });
        match start {
            Some(start) => start.vars = Some(vars),
            None => held.push(Write::Vars {
                run: self.run.clone(),
                vars,
            }),
        }
    }

    fn before_send(&self, step: &str, phase: Phase, attempt: u32, request: &HttpRequest) -> Durably {
        self.durably(Write::AttemptSent {
            run: self.run.clone(),
            step: step.to_string(),
            phase: phase_word(phase),
            number: attempt,
            request: self.secrets.with(|m| stored_request(request, m)),
            at_ms: now_ms(),
        })
    }

    fn answered(&self, step: &str, attempt: &Attempt) {
        self.lock_held().push(Write::AttemptAnswered {
            run: self.run.clone(),
            step: step.to_string(),
            number: attempt.number,
            status: attempt.response.as_ref().map(|r| r.status),
            error: attempt.error.as_ref().map(|e| self.secrets.redact(e)),
            at_ms: now_ms(),
        });
    }

    fn step_done(&self, record: &StepRecord, slot: &Value) -> Durably {
        let error = match &record.status {
            StepStatus::Failed(e) => Some(e.to_json()),
            _ => None,
        };
        let status = match &record.status {
            StepStatus::Ok => "ok",
            StepStatus::Skipped => "skipped",
            StepStatus::Stopped => "stopped",
            StepStatus::Failed(_) => "failed",
            StepStatus::NotRun => "not run",
        };
        // Written masked, straight from the values: no copy of the slot (the response's body
        // and headers) to mask first.
        let (slot, saved, error) = self
            .secrets
            .with(|m| (m.raw(slot), m.raw_map(&record.saved), error.map(|e| m.raw(&e))));
        // Written with the run's next attempt (or its end), in one group: a crash in between —
        // the few microseconds from an answer to the next request — leaves the step in doubt,
        // which its `in_doubt` policy settles as it does for an answer lost on the way. One
        // commit per request instead of two.
        self.hold_step_end(Write::StepDone {
            run: self.run.clone(),
            step: record.id.clone(),
            phase: phase_word(record.phase),
            status,
            slot,
            saved,
            error,
            at_ms: now_ms(),
        })
    }
}

/// What a resume needs from a run's records: its vars, the steps that ended, and the step in
/// doubt (the step of its last attempt, when that step has no recorded end), if any.
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
        // Answered but not ended is in doubt too: what came of the answer is not known (the
        // answer and the step's end are written together, so only a failed write leaves this).
        if done.iter().any(|d| d.id == step) {
            return None;
        }
        let own = detail.attempts.iter().filter(|a| a.step == step);
        let request = own.clone().next_back()?.request.clone();
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
        origin: detail
            .attempts
            .last()
            .and_then(|a| a.request["url"].as_str())
            .and_then(crate::engine::durable::origin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Body, HttpResponse};
    use crate::journal::SqliteStore;
    use std::time::Duration;

    fn request(step: &str) -> HttpRequest {
        HttpRequest {
            step: step.into(),
            method: "POST".into(),
            url: format!("http://127.0.0.1/{step}"),
            headers: vec![("RequestId".into(), format!("id-{step}"))],
            body: Body::None,
        }
    }

    fn attempt(step: &str, number: u32, status: u16) -> Attempt {
        Attempt {
            number,
            request: Arc::new(request(step)),
            response: Some(HttpResponse {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            }),
            error: None,
            duration: Duration::ZERO,
        }
    }

    /// The rows of the log in the file at `path`, each as its records' kinds and steps.
    fn log_rows(path: &std::path::Path) -> Vec<Vec<(String, String)>> {
        let connection = rusqlite::Connection::open(path).unwrap();
        let mut statement = connection
            .prepare("SELECT records FROM log ORDER BY seq")
            .unwrap();
        let rows: Vec<String> = statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.iter()
            .map(|text| {
                let records: Vec<Value> = serde_json::from_str(text).unwrap();
                records
                    .iter()
                    .map(|r| {
                        (
                            r["kind"].as_str().unwrap().into(),
                            r["step"].as_str().unwrap().into(),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_run_gone_without_its_end_leaves_what_it_held_to_the_next_commit() {
        let journal = Arc::new(Journal::new(Box::new(SqliteStore::open(":memory:").unwrap())));
        let run = begun(&journal).await;
        run.before_send("interaction", Phase::Steps, 1, &request("interaction"))
            .await
            .unwrap();
        run.answered("interaction", &attempt("interaction", 1, 202));
        run.step_done(&ended("interaction"), &serde_json::json!({ "status": 202 }))
            .await
            .unwrap();
        journal.flush().unwrap();
        assert!(journal.run("r1").unwrap().steps.is_empty());
        // A panic inside the run drops its journal: the step's end goes in.
        drop(run);
        let steps: Vec<_> = journal
            .run("r1")
            .unwrap()
            .steps
            .into_iter()
            .map(|s| s.step)
            .collect();
        assert_eq!(steps, ["interaction"]);
        // An answer held with nothing after it does not: the step stays in doubt, as it was
        // before steps' ends were held.
        let run = RunJournal::reopen(journal.clone(), "r1", no_masks());
        run.before_send("route", Phase::Steps, 1, &request("route"))
            .await
            .unwrap();
        run.answered("route", &attempt("route", 1, 202));
        drop(run);
        let last = journal.run("r1").unwrap().attempts.pop().unwrap();
        assert_eq!((last.step.as_str(), last.answered), ("route", false));
    }

    #[tokio::test]
    async fn a_fresh_runs_start_and_vars_go_in_with_its_first_attempt() {
        let journal = Arc::new(Journal::new(Box::new(SqliteStore::open(":memory:").unwrap())));
        let run = RunJournal::new(journal.clone(), &start("r1"), no_masks());
        run.hold(run.started(start("r1")));
        let vars = serde_json::json!({ "interaction_id": "i-1" });
        run.vars(vars.as_object().unwrap());
        journal.flush().unwrap();
        assert!(
            journal.find("r1").unwrap().is_none(),
            "not written before the first attempt"
        );
        run.before_send("interaction", Phase::Steps, 1, &request("interaction"))
            .await
            .unwrap();
        let detail = journal.run("r1").unwrap();
        assert_eq!((detail.row.status.as_str(), &detail.vars), ("running", &vars));
        assert_eq!(detail.attempt_states(), [("interaction", 1, None, false)]);
        // A run that ends before it sends anything is written with its end; one that goes away
        // without its end (a panic), when it goes.
        let run = RunJournal::new(journal.clone(), &start("r2"), no_masks());
        run.hold(run.started(start("r2")));
        run.vars(vars.as_object().unwrap());
        run.queued(run.ended("passed", serde_json::json!({}), None))
            .await
            .unwrap();
        journal.flush().unwrap();
        let detail = journal.run("r2").unwrap();
        assert_eq!((detail.row.status.as_str(), &detail.vars), ("passed", &vars));
        let run = RunJournal::new(journal.clone(), &start("r3"), no_masks());
        run.hold(run.started(start("r3")));
        drop(run);
        journal.flush().unwrap();
        assert_eq!(journal.run("r3").unwrap().row.status, "running");
    }

    #[tokio::test]
    async fn a_fresh_run_whose_first_attempt_could_not_be_written_still_shows_with_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("j.db").to_str().unwrap()).unwrap();
        let journal = Arc::new(Journal::new(Box::new(store)).with_writer().unwrap());
        let start = start("r1");
        let run = RunJournal::new(journal.clone(), &start, no_masks());
        run.hold(run.started(start));
        // The first attempt's group cannot be written (as one over 4 GiB): nothing is sent.
        journal.refuse_for_test("r1");
        let failed = run.before_send("interaction", Phase::Steps, 1, &request("interaction"));
        assert!(failed.await.is_err());
        journal.forget_refusal("r1");
        // The run fails: its start goes with its end.
        run.queued(run.ended("failed", serde_json::json!({}), Some("journal".into())))
            .await
            .unwrap();
        let detail = journal.run("r1").unwrap();
        assert_eq!(detail.row.status, "failed");
        assert!(detail.attempts.is_empty());
    }

    /// The start of run `id` of a flow `f.yaml`.
    fn start(id: &str) -> RunStart {
        RunStart {
            id: id.into(),
            flow_path: "f.yaml".into(),
            flow_name: "f".into(),
            flow_hash: "h".into(),
            inputs: serde_json::json!({ "queue_id": "q" }),
            at_ms: 1,
            queued: false,
            vars: None,
        }
    }

    fn no_masks() -> Masks {
        Masks(Secrets::default(), Secrets::default())
    }

    /// Run `r1` of `journal`, its start committed.
    async fn begun(journal: &Arc<Journal>) -> RunJournal {
        let start = start("r1");
        let run = RunJournal::new(journal.clone(), &start, no_masks());
        run.durably(run.started(start)).await.unwrap();
        run
    }

    fn ended(step: &str) -> StepRecord {
        StepRecord {
            id: step.into(),
            phase: Phase::Steps,
            status: StepStatus::Ok,
            attempts: Vec::new(),
            saved: Map::new(),
            vars: Map::new(),
            duration: Duration::ZERO,
            resumed: false,
        }
    }

    #[tokio::test]
    async fn a_steps_end_waits_for_the_runs_next_attempt_and_goes_in_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        let journal = Arc::new(Journal::new(Box::new(store)));
        let run = begun(&journal).await;
        run.before_send("interaction", Phase::Steps, 1, &request("interaction"))
            .await
            .unwrap();
        // A retry: its answer goes with the second attempt.
        run.answered("interaction", &attempt("interaction", 1, 503));
        run.before_send("interaction", Phase::Steps, 2, &request("interaction"))
            .await
            .unwrap();
        run.answered("interaction", &attempt("interaction", 2, 202));
        run.step_done(&ended("interaction"), &serde_json::json!({ "status": 202 }))
            .await
            .unwrap();
        // Held: another run's commit does not write it.
        journal.flush().unwrap();
        let before = journal.run("r1").unwrap();
        assert!(before.steps.is_empty(), "{:?}", before.steps);
        run.before_send("route", Phase::Steps, 1, &request("route"))
            .await
            .unwrap();
        let after = journal.run("r1").unwrap();
        let steps: Vec<_> = after.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps, ["interaction"]);
        assert_eq!(
            after.attempt_states(),
            [
                ("interaction", 1, Some(503), true),
                ("interaction", 2, Some(202), true),
                ("route", 1, None, false)
            ]
        );
        // One row per group: the first attempt; the retry with the answer before it; the
        // step's end (holding the last answer) with the next step's attempt.
        let pair = |kind: &str, step: &str| (kind.to_string(), step.to_string());
        assert_eq!(
            log_rows(&path),
            [
                vec![pair("attempt", "interaction")],
                vec![pair("answer", "interaction"), pair("attempt", "interaction")],
                vec![pair("step", "interaction"), pair("attempt", "route")],
            ]
        );
    }
}
