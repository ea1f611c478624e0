//! Journaled runs of one flow: starting them (a repeated id is refused), and finding an
//! unfinished one to go on with (a flow changed since is refused unless forced).

use super::run_log::{Masks, RunJournal, resume_of};
use super::{Journal, JournalError, RunDetail, RunStart, Write, now_ms};
use crate::base::secrets::Secrets;
use crate::base::source::Source;
use crate::engine::durable::{Durable, DurableRun, Durably, Opening, Resume};
use crate::engine::outcome::RunReport;
use crate::engine::pool::RunId;
use crate::flow::model::Flow;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why a journaled run cannot start or go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunsError {
    /// The journal failed.
    Journal(JournalError),
    /// The id is taken by a run that ended.
    Finished {
        /// The run's id.
        id: String,
        /// How it ended.
        status: String,
    },
    /// The id is taken by a run that has not ended.
    Unfinished {
        /// The run's id.
        id: String,
    },
    /// Another process on this machine is running it now.
    Running {
        /// The run's id.
        id: String,
        /// That process.
        pid: u32,
    },
    /// The flow file changed since the run started.
    FlowChanged {
        /// The run's id.
        id: String,
        /// The flow file.
        path: String,
    },
}

impl std::fmt::Display for RunsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunsError::Journal(e) => write!(f, "{e}"),
            RunsError::Finished { id, status } => write!(
                f,
                "run `{id}` is already in the journal and {status}; a repeated id is the same run, so \
                 nothing was sent (give a new id to run again)"
            ),
            RunsError::Unfinished { id } => write!(
                f,
                "run `{id}` is already in the journal and has not finished (it may be running \
                 now); once it is not, go on with `flowrun runs resume {id}` or give it up with \
                 `flowrun runs cancel {id}`"
            ),
            RunsError::Running { id, pid } => write!(
                f,
                "run `{id}` is being run by process {pid} on this machine, which is still alive; \
                 going on here too would send its requests twice (wait for it or stop it, or go on \
                 anyway with --force)"
            ),
            RunsError::FlowChanged { id, path } => write!(
                f,
                "{path} changed since run `{id}` started; the steps already done may not match it any \
                 more (resume with --force to go on anyway)"
            ),
        }
    }
}

impl From<JournalError> for RunsError {
    fn from(e: JournalError) -> Self {
        RunsError::Journal(e)
    }
}

/// The journal, seen from the runs of one flow file.
pub struct FlowRuns {
    journal: Arc<Journal>,
    path: String,
    hash: String,
    name: String,
    /// Inputs declared `secret: true`: never written to the journal.
    secret_inputs: Vec<String>,
    /// The flow's secrets (tokens, `secret()` values).
    secrets: Secrets,
}

impl std::fmt::Debug for FlowRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRuns").field("path", &self.path).finish()
    }
}

impl FlowRuns {
    /// The runs of `flow` (read from `source`) in `journal`; `secrets` are the flow's.
    pub fn new(journal: Arc<Journal>, source: &Source, flow: &Flow, secrets: Secrets) -> FlowRuns {
        let path = std::fs::canonicalize(&source.path)
            .unwrap_or_else(|_| source.path.clone())
            .display()
            .to_string();
        FlowRuns {
            journal,
            path,
            // A change to a connection file the flow uses is a change to the flow.
            hash: super::content_hash(
                &std::iter::once(source.text.clone())
                    .chain(
                        crate::flow::includes::used_files(source)
                            .iter()
                            .map(|s| s.text.clone()),
                    )
                    .collect::<Vec<_>>()
                    .join("\u{0}"),
            ),
            name: flow.name.clone(),
            secret_inputs: flow
                .inputs
                .iter()
                .filter(|(_, i)| i.secret)
                .map(|(n, _)| n.clone())
                .collect(),
            secrets,
        }
    }

    /// Starts run `id` (durable when it returns); refuses an id the journal already has. For
    /// one run outside a pool (the command line).
    pub fn begin(
        &self,
        id: &str,
        inputs: &Map<String, Value>,
        own: &Secrets,
    ) -> Result<RunJournal, RunsError> {
        self.refuse_taken(id)?;
        let (run, start) = self.fresh(id, inputs, own);
        run.commit(start)?;
        Ok(run)
    }

    /// Starts run `id` with the journal's next transaction, which comes before the run's first
    /// durable write (an attempt, before it is sent): for a caller that made sure `id` is new.
    pub fn begin_queued(&self, id: &str, inputs: &Map<String, Value>, own: &Secrets) -> RunJournal {
        let (run, start) = self.fresh(id, inputs, own);
        // Queued, not held for the first attempt: the event's position, stored after it (see
        // `Runtime::save_cursor`), must not reach the store before the run.
        self.journal.queue(start);
        run
    }

    /// An id the journal already holds is the same run: refused.
    /// Queues run `id` in a shared journal, for any process to claim ([`Journal::claim`]);
    /// nothing runs here. Written at once without waiting for it (a crash before it is
    /// durable loses the event's position too: the event comes again).
    /// The future tells when it is durable, or that the id was taken (a run queued before).
    pub fn enqueue(
        &self,
        id: &str,
        inputs: &Map<String, Value>,
        own: &Secrets,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        // Submitted when called: the caller need not wait for it.
        self.journal.durable(self.queued_start(id, inputs, own))
    }

    /// Queues run `id` and waits until that is durable; a taken id is refused.
    pub fn enqueue_durably(
        &self,
        id: &str,
        inputs: &Map<String, Value>,
        own: &Secrets,
    ) -> Result<(), RunsError> {
        self.refuse_taken(id)?;
        Ok(self.journal.commit(self.queued_start(id, inputs, own))?)
    }

    fn queued_start(&self, id: &str, inputs: &Map<String, Value>, own: &Secrets) -> Write {
        match self.fresh(id, inputs, own).1 {
            Write::RunStarted(start) => Write::RunStarted(RunStart {
                queued: true,
                ..start
            }),
            other => other,
        }
    }

    /// Run `id` as this process claimed it from a shared journal's queue (or from an owner
    /// whose lease ran out), to go on with. The claim made it this process's: no other owner
    /// is asked after. A flow changed since is refused once a step was sent (a queued run that
    /// sent nothing runs the flow as it is now).
    pub fn claimed(&self, id: &str) -> Result<(RunDetail, Resume), RunsError> {
        let detail = self.journal.run(id)?;
        if detail.row.status != "running" {
            return Err(RunsError::Finished {
                id: id.into(),
                status: detail.row.status,
            });
        }
        let sent = !detail.attempts.is_empty() || !detail.steps.is_empty();
        if detail.flow_hash != self.hash && sent {
            return Err(RunsError::FlowChanged {
                id: id.into(),
                path: detail.row.flow_path,
            });
        }
        let resume = resume_of(&detail);
        Ok((detail, resume))
    }

    fn refuse_taken(&self, id: &str) -> Result<(), RunsError> {
        match self.journal.find(id)? {
            None => Ok(()),
            Some(existing) if super::unfinished(&existing.status) => {
                Err(RunsError::Unfinished { id: id.into() })
            }
            Some(existing) => Err(RunsError::Finished {
                id: id.into(),
                status: existing.status,
            }),
        }
    }

    /// Run `id`'s journal and the write that starts it (its inputs without the secret ones).
    fn fresh(&self, id: &str, inputs: &Map<String, Value>, own: &Secrets) -> (RunJournal, Write) {
        let kept: Map<String, Value> = inputs
            .iter()
            .filter(|(k, _)| !self.secret_inputs.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let start = RunStart {
            id: id.to_string(),
            flow_path: self.path.clone(),
            flow_name: self.name.clone(),
            flow_hash: self.hash.clone(),
            inputs: Value::Object(kept),
            at_ms: now_ms(),
            queued: false,
            vars: None,
        };
        let run = RunJournal::new(self.journal.clone(), &start, self.masking(own));
        let write = run.started(start);
        (run, write)
    }

    /// Run `id` as the journal kept it, to go on with: refused when it has finished, or when
    /// the flow changed since it started (unless `force`).
    pub fn unfinished(&self, id: &str, force: bool) -> Result<(RunDetail, Resume), RunsError> {
        let detail = self.journal.run(id)?;
        if !super::unfinished(&detail.row.status) {
            return Err(RunsError::Finished {
                id: id.into(),
                status: detail.row.status,
            });
        }
        if let Some(pid) = detail.owner.as_deref().and_then(super::alive_elsewhere)
            && !force
        {
            return Err(RunsError::Running { id: id.into(), pid });
        }
        if detail.flow_hash != self.hash && !force {
            return Err(RunsError::FlowChanged {
                id: id.into(),
                path: detail.row.flow_path,
            });
        }
        let resume = resume_of(&detail);
        self.journal.commit(Write::Claimed {
            run: id.to_string(),
            owner: super::owner_here().to_string(),
        })?;
        Ok((detail, resume))
    }

    /// The flow's path as the journal records it (canonical).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Goes on writing run `id`.
    pub fn reopen(&self, id: &str, own: &Secrets) -> RunJournal {
        RunJournal::reopen(self.journal.clone(), id, self.masking(own))
    }

    /// The flow's secrets and a run's own, masked together.
    fn masking(&self, own: &Secrets) -> Masks {
        Masks(self.secrets.clone(), own.clone())
    }
}

impl DurableRun for RunJournal {
    fn id(&self) -> &str {
        RunJournal::id(self)
    }

    fn finish(&self, report: &RunReport) -> Durably {
        // Written with the next transaction, or when the journal closes, together with the last
        // step's end the run held: a run whose end is lost leaves that step in doubt, which a
        // resume settles by its `in_doubt` policy. Behind an intent log the writer takes it
        // within a moment.
        self.queued(self.finished(report))
    }
}

/// Whether a run's id came with it or was made for it.
enum Kind {
    Named,
    Fresh,
}

impl Durable for FlowRuns {
    fn begin(&self, id: &RunId, inputs: &Map<String, Value>, secrets: &Secrets) -> Opening<'_> {
        let id_kind = match id {
            RunId::Named(_) => Kind::Named,
            RunId::Line(_) => Kind::Fresh,
        };
        let (id, taken) = match id {
            // A named run may be in the journal already (a repeated id is the same run).
            RunId::Named(name) => (name.clone(), self.refuse_taken(name)),
            // A line without an id of its own gets a fresh one: a new run, not looked up.
            RunId::Line(_) => (uuid::Uuid::now_v7().to_string(), Ok(())),
        };
        let named = taken.is_ok() && matches!(id_kind, Kind::Named);
        let opened = taken.map(|()| self.fresh(&id, inputs, secrets));
        let unfinished = RunsError::Unfinished { id: id.clone() };
        Box::pin(async move {
            let (run, start) = opened.map_err(|e| e.to_string())?;
            // Two lines with the same id at once: the second start breaks the key.
            let taken = |e: String| {
                if e.contains(super::RUN_ID_TAKEN) {
                    unfinished.to_string()
                } else {
                    e
                }
            };
            // A named run waits for its start to be written: two lines with the same id, one
            // is refused. A fresh id cannot clash: its start goes with its first attempt.
            match named {
                true => run.stored(start).await.map_err(taken)?,
                false => run.hold(start),
            }
            Ok(Box::new(run) as Box<dyn DurableRun>)
        })
    }
}
