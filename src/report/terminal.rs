//! What a person sees while a flow runs: one line per step, then a summary. With `verbose`,
//! every request and response too. Secrets are masked in everything printed.

use crate::base::secrets::Secrets;
use crate::engine::outcome::{Attempt, FailureKind, Observer, Outcome, RunReport, StepRecord, StepStatus};
use crate::http::HttpRequest;
use std::io::Write;
use std::time::Duration;

/// The [`Observer`] that prints a run on stdout as it happens, secrets masked.
pub struct Terminal {
    /// Also print every attempt's request and response, each retry and each `if` result (`-v`).
    pub verbose: bool,
    /// Print neither step lines nor the summary (`-q`, or JSON output); failures still go to stderr.
    pub quiet: bool,
    /// Values masked in everything printed.
    pub secrets: Secrets,
    /// The `if` each skipped step found false, to say why it was skipped.
    skipped_because: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

impl Terminal {
    /// A reporter printing as `verbose` and `quiet` say, masking `secrets`.
    pub fn new(verbose: bool, quiet: bool, secrets: Secrets) -> Self {
        Terminal {
            verbose,
            quiet,
            secrets,
            skipped_because: Default::default(),
        }
    }

    fn print(&self, text: &str) {
        // Colours are stripped where colour is off (`--color`, NO_COLOR, not a terminal).
        let mut out = anstream::stdout().lock();
        let _ = out.write_all(self.secrets.redact(text).as_bytes());
        let _ = out.flush();
    }

    /// The line for one finished step; `skipped_because`: the `if` a skipped step found false.
    pub fn step_line(record: &StepRecord, skipped_because: Option<&str>) -> String {
        let status = record.http_status().map(|s| s.to_string()).unwrap_or_default();
        let timing = if record.attempts.is_empty() {
            String::new()
        } else {
            ms(record.duration)
        };
        let retries = match record.attempts.len() {
            0 | 1 => String::new(),
            n => format!("  ({n} attempts)"),
        };
        let detail = match &record.status {
            StepStatus::Failed(e) => format!("  {e}"),
            StepStatus::Stopped => "  stop_if is true: the flow ends here".into(),
            StepStatus::Skipped => match skipped_because {
                Some(cond) => format!("  `{}` is false", one_line(cond)),
                None => String::new(),
            },
            _ if record.resumed => "  done before the run stopped (from the journal)".into(),
            _ => String::new(),
        };
        let style = anstyle::Style::new().fg_color(Some(
            match record.status {
                StepStatus::Ok => anstyle::AnsiColor::Green,
                StepStatus::Failed(_) => anstyle::AnsiColor::Red,
                StepStatus::Stopped => anstyle::AnsiColor::Cyan,
                StepStatus::Skipped | StepStatus::NotRun => anstyle::AnsiColor::BrightBlack,
            }
            .into(),
        ));
        let word = format!("{:<8}", record.status.word());
        let line = format!(
            "  {style}{word}{style:#} {:<20} {:>3} {:>8}{retries}{detail}",
            record.id, status, timing
        );
        format!("{}\n", line.trim_end())
    }

    /// The closing summary.
    pub fn summary(report: &RunReport) -> String {
        let count = |w: &str| report.steps.iter().filter(|s| s.status.word() == w).count();
        let mut parts = Vec::new();
        for word in ["ok", "stopped", "skipped", "failed", "not run"] {
            let n = count(word);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        let green = anstyle::Style::new()
            .bold()
            .fg_color(Some(anstyle::AnsiColor::Green.into()));
        let red = anstyle::Style::new()
            .bold()
            .fg_color(Some(anstyle::AnsiColor::Red.into()));
        let head = match &report.outcome {
            Outcome::Passed => format!("{green}passed{green:#}"),
            Outcome::Stopped { step } => format!("{green}passed{green:#} (stopped after `{step}`)"),
            Outcome::Failed { step, .. } => format!("{red}failed{red:#} at `{step}`"),
        };
        let requests = report.requests_sent();
        let mut text = format!(
            "{head} in {}: {} step{} ({}), {requests} request{}\n",
            ms(report.duration),
            report.steps.len(),
            if report.steps.len() == 1 { "" } else { "s" },
            parts.join(", "),
            if requests == 1 { "" } else { "s" }
        );
        // Say why, unless the failing step's own line already does.
        if let Outcome::Failed { step, error } = &report.outcome
            && !report
                .steps
                .iter()
                .any(|s| s.id == *step && matches!(s.status, StepStatus::Failed(_)))
        {
            text.push_str(&format!("error: {error}\n"));
        }
        for (k, v) in &report.outputs {
            text.push_str(&format!("  {k} = {v}\n"));
        }
        text
    }

    /// Prints [`Terminal::summary`] for the finished run, unless `quiet`.
    pub fn finish(&self, report: &RunReport) {
        if !self.quiet {
            self.print(&Self::summary(report));
        }
    }

    /// Why the run failed, rendered like `check`'s diagnostics: `file:line:col`, the source
    /// line with a caret under the part that failed, and the server's answer.
    /// `files` are the connection and steps files the flow uses: a failure in one of them is
    /// shown in it.
    pub fn failure(
        report: &RunReport,
        source: &crate::flow::Source,
        files: &[std::sync::Arc<crate::flow::Source>],
    ) -> Option<String> {
        let Outcome::Failed { step, .. } = &report.outcome else {
            return None;
        };
        let error = report.failure()?;
        let source = match (error.span.file as usize).checked_sub(1) {
            Some(i) => files.get(i).map_or(source, |s| s.as_ref()),
            None => source,
        };
        let mut span = error.span;
        if span.start.col == 0 {
            // A whole line: from its first character to its end.
            let text = source.line(span.start.line).unwrap_or_default();
            let first = text.chars().take_while(|c| c.is_whitespace()).count();
            span.start.col = first + 1;
            span.end = crate::base::source::Pos {
                line: span.start.line,
                col: text.trim_end().chars().count() + 1,
            };
        }
        // The message names the file and line for one-line reports; here the header does.
        let message = error.to_string();
        let here = format!("{}:{}: ", source.display_name(), error.span.start.line);
        let message = message.strip_prefix(&here).unwrap_or(&message);
        let mut d =
            crate::flow::Diagnostic::error("step-failed", span, format!("step `{step}` failed: {message}"));
        let record = report.steps.iter().find(|s| s.id == *step)?;
        let answer = record.attempts.last().and_then(|a| a.response.as_ref());
        d.hint = match (&error.kind, answer) {
            (FailureKind::Status { .. } | FailureKind::Assert { .. }, Some(r)) => {
                let body = String::from_utf8_lossy(&r.body);
                let body: String = body.chars().take(200).collect();
                Some(format!("the answer: {} {}", r.status, body.trim()))
            }
            (FailureKind::Deadline { .. }, _) => {
                Some("the flow's `deadline` bounds the whole run, retries included".into())
            }
            _ => None,
        };
        Some(d.render_styled(source))
    }

    /// Prints [`Terminal::failure`] on stderr, secrets masked.
    pub fn print_failure(
        &self,
        report: &RunReport,
        source: &crate::flow::Source,
        files: &[std::sync::Arc<crate::flow::Source>],
    ) {
        if let Some(text) = Self::failure(report, source, files) {
            anstream::eprint!("{}", self.secrets.redact(&text));
        }
    }
}

impl Observer for Terminal {
    fn attempt_started(&self, _step: &str, attempt: u32, request: &HttpRequest) {
        if !self.verbose {
            return;
        }
        let mut text = format!("> {} {}   (attempt {attempt})\n", request.method, request.url);
        for (k, v) in &request.headers {
            text.push_str(&format!("> {k}: {v}\n"));
        }
        let body = super::request_json(request);
        for key in ["json", "form", "multipart"] {
            if let Some(b) = body.get(key) {
                text.push_str(&format!(
                    "> {key}: {}\n",
                    serde_json::to_string_pretty(b)
                        .unwrap_or_default()
                        .replace('\n', "\n> ")
                ));
            }
        }
        self.print(&text);
    }

    fn attempt_finished(&self, _step: &str, attempt: &Attempt) {
        if !self.verbose {
            return;
        }
        let text = match (&attempt.response, &attempt.error) {
            (Some(r), _) => {
                let mut t = format!("< {}   ({})\n", r.status, ms(attempt.duration));
                for (k, v) in &r.headers {
                    t.push_str(&format!("< {k}: {v}\n"));
                }
                if !r.body.is_empty() {
                    t.push_str(&format!("< {}\n", String::from_utf8_lossy(&r.body)));
                }
                t
            }
            (None, Some(e)) => format!("< error: {e}\n"),
            _ => String::new(),
        };
        self.print(&text);
    }

    fn retry_scheduled(&self, step: &str, wait: Duration, reason: &str) {
        if self.verbose {
            self.print(&format!(
                "  retry    {step}: {reason}; next attempt in {}\n",
                ms(wait)
            ));
        }
    }

    fn condition_evaluated(&self, step: &str, condition: &str, value: bool) {
        if !value && let Ok(mut m) = self.skipped_because.lock() {
            m.insert(step.to_string(), condition.to_string());
        }
        if self.verbose {
            self.print(&format!(
                "  if       {step}: `{}` is {value}\n",
                one_line(condition)
            ));
        }
    }

    fn step_finished(&self, record: &StepRecord) {
        if !self.quiet {
            let why = self
                .skipped_because
                .lock()
                .ok()
                .and_then(|m| m.get(&record.id).cloned());
            self.print(&Self::step_line(record, why.as_deref()));
        }
    }
}

/// A condition written over several lines (a folded scalar), on one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
