//! `flowrun runs`: the journal's runs — list, show, resume, cancel, prune.

use super::exit;
use flowrun::base::Secrets;
use flowrun::engine::prepare_engine;
use flowrun::engine::{Outcome, Phase, StepStatus};
use flowrun::expr::World;
use flowrun::flow::Source;
use flowrun::flow::{parse_assignment, resolve};
use flowrun::http::{DEFAULT_MAX_BODY, HttpTransport};
use flowrun::journal::{FlowRuns, Journal, now_ms};
use flowrun::report::terminal::Terminal;
use serde_json::{Value, json};
use std::sync::Arc;

/// `println!` that ignores a closed stdout (`flowrun runs show ID | head` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Where the journal is: `--journal URL`, or `FLOWRUN_JOURNAL`.
#[derive(clap::Args, Clone)]
pub struct JournalArg {
    /// The journal: `sqlite:PATH` (created when missing).
    #[arg(long, env = "FLOWRUN_JOURNAL", value_name = "URL")]
    journal: String,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List runs, newest first.
    List {
        #[command(flatten)]
        journal: JournalArg,
        /// Only runs that have not finished (a crash, a kill): the ones to resume or cancel.
        #[arg(long)]
        unfinished: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = super::at_least_one)]
        limit: usize,
        /// `json`: one JSON array.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Show one run: its inputs (secret inputs left out), steps and attempts.
    Show {
        /// The run's id.
        id: String,
        #[command(flatten)]
        journal: JournalArg,
        /// `json`: the whole record as JSON.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Go on with an unfinished run after its last completed step; steps done are not sent again.
    Resume {
        /// The run's id.
        id: String,
        #[command(flatten)]
        go: GoOn,
    },
    /// Give an unfinished run up: its remaining steps are not run, its `finally` steps are (a
    /// pending PSR is deleted).
    Cancel {
        /// The run's id.
        id: String,
        #[command(flatten)]
        go: GoOn,
    },
    /// Delete finished runs last written longer ago than `--older-than`.
    Prune {
        #[command(flatten)]
        journal: JournalArg,
        /// Age, e.g. `7d`, `12h`.
        #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// `json`: `{"pruned": N}`.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
}

/// What resuming or cancelling a run takes.
#[derive(clap::Args, Clone)]
pub struct GoOn {
    #[command(flatten)]
    journal: JournalArg,
    /// Go on even though the flow file, or where its connection sends, changed since the run
    /// started.
    #[arg(long)]
    force: bool,
    /// An input the journal does not keep (a secret input), `name=value`; repeatable.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    input: Vec<String>,
    /// `json`: print the run report on stdout, and nothing else there.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    quiet: bool,
}

impl GoOn {
    /// The settings `run FLOW --resume` gives.
    pub fn new(journal: String, force: bool, input: Vec<String>, quiet: bool) -> GoOn {
        GoOn {
            journal: JournalArg { journal },
            force,
            input,
            format: Format::Human,
            quiet,
        }
    }
}

pub fn run(args: Args) -> u8 {
    let outcome = match args.command {
        Command::List {
            journal,
            unfinished,
            limit,
            format,
        } => list(&journal, unfinished, limit, format),
        Command::Show { id, journal, format } => show(&journal, &id, format),
        Command::Resume { id, go } => open(&go.journal).and_then(|j| go_on(&j, &id, &go, false)),
        Command::Cancel { id, go } => open(&go.journal).and_then(|j| go_on(&j, &id, &go, true)),
        Command::Prune {
            journal,
            older_than,
            format,
        } => prune(&journal, older_than, format),
    };
    outcome.unwrap_or_else(|code| code)
}

/// Opens the journal, or says why not (exit 3).
pub fn open(arg: &JournalArg) -> Result<Arc<Journal>, u8> {
    // Reading a journal that is not there is a mistake (a typo), not an empty journal.
    Journal::open_existing(&arg.journal).map(Arc::new).map_err(|e| {
        super::error(format_args!("{e}"));
        exit::USAGE
    })
}

/// Opens the journal `url` names for runs (see [`Journal::for_runs`]: `many` when many runs go
/// at once), or says why not (exit 3).
pub fn open_url(url: &str, many: bool) -> Result<Arc<Journal>, u8> {
    let journal = Journal::open(url).and_then(|j| j.for_runs(many));
    journal.map(Arc::new).map_err(|e| {
        super::error(format_args!("{e}"));
        exit::USAGE
    })
}

fn failed(e: impl std::fmt::Display) -> u8 {
    super::error(format_args!("{e}"));
    exit::USAGE
}

fn list(arg: &JournalArg, unfinished: bool, limit: usize, format: Format) -> Result<u8, u8> {
    let journal = open(arg)?;
    let runs = journal.runs(unfinished, limit).map_err(failed)?;
    if format == Format::Json {
        say!("{}", serde_json::to_string_pretty(&runs).unwrap_or_default());
        return Ok(exit::OK);
    }
    if runs.is_empty() {
        say!(
            "no {}runs in the journal",
            if unfinished { "unfinished " } else { "" }
        );
    }
    for r in &runs {
        let age = std::time::Duration::from_millis(now_ms().saturating_sub(r.updated_ms).max(0) as u64);
        let age = humantime::format_duration(std::time::Duration::from_secs(age.as_secs()));
        say!("{:<38} {:<10} {:<20} {} ago", r.id, r.status, r.flow, age);
    }
    Ok(exit::OK)
}

fn show(arg: &JournalArg, id: &str, format: Format) -> Result<u8, u8> {
    let journal = open(arg)?;
    let run = journal.run(id).map_err(failed)?;
    if format == Format::Json {
        say!("{}", serde_json::to_string_pretty(&run).unwrap_or_default());
        return Ok(exit::OK);
    }
    say!("run {}: {} ({})", run.row.id, run.row.flow, run.row.flow_path);
    say!("status: {}", run.row.status);
    if let Some(e) = &run.row.error {
        say!("error: {e}");
    }
    say!("inputs: {}", run.inputs);
    for s in &run.steps {
        let saved = match &s.saved {
            Value::Object(m) if !m.is_empty() => format!("  {}", s.saved),
            _ => String::new(),
        };
        say!("  {:<9} {:<8} {:<20}{saved}", s.phase, s.status, s.step);
    }
    for a in &run.attempts {
        let answer = match (a.answered, a.status, &a.error) {
            (false, ..) => "sent, no answer recorded (in doubt)".to_string(),
            (true, Some(s), _) => format!("answered {s}"),
            (true, None, Some(e)) => format!("failed: {e}"),
            (true, None, None) => "answered".into(),
        };
        let method = a.request["method"].as_str().unwrap_or_default();
        let url = a.request["url"].as_str().unwrap_or_default();
        say!(
            "  attempt {} of {:<20} {method} {url}: {answer}",
            a.number,
            a.step
        );
    }
    Ok(exit::OK)
}

fn prune(arg: &JournalArg, older_than: std::time::Duration, format: Format) -> Result<u8, u8> {
    let journal = open(arg)?;
    let before = now_ms().saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX));
    let n = journal.prune(before).map_err(failed)?;
    match format {
        Format::Json => say!("{}", json!({ "pruned": n })),
        Format::Human => say!("pruned {n} finished run{}", if n == 1 { "" } else { "s" }),
    }
    Ok(exit::OK)
}

/// Resumes (or, with `cancel`, gives up) run `id` of `journal`: its flow is read again from
/// where the journal says, and must not have changed unless `--force`.
pub fn go_on(journal: &Arc<Journal>, id: &str, go: &GoOn, cancel: bool) -> Result<u8, u8> {
    let detail = journal.run(id).map_err(failed)?;
    if !flowrun::journal::unfinished(&detail.row.status) {
        let what = if cancel { "cancel" } else { "resume" };
        let status = detail.row.status;
        super::error(format_args!(
            "run `{id}` has already finished ({status}): there is nothing to {what}"
        ));
        return Err(exit::INVALID);
    }
    let path = std::path::PathBuf::from(&detail.row.flow_path);
    let source =
        Source::read(&path).map_err(|e| failed(format_args!("cannot read {}: {e}", path.display())))?;
    let runtime = World::system();
    let transport = HttpTransport::new(DEFAULT_MAX_BODY);
    let (engine, _) = prepare_engine(&source, runtime.clone(), Arc::new(transport)).map_err(|e| {
        eprintln!("{}", runtime.secrets.redact(&e.to_string()));
        eprintln!("nothing was sent");
        exit::INVALID
    })?;
    let flow = &engine.flow().flow;
    let runs = FlowRuns::new(journal.clone(), &source, flow, runtime.secrets.clone());
    let (detail, mut resume) = runs.unfinished(id, go.force).map_err(|e| {
        super::error(format_args!("{e}"));
        exit::INVALID
    })?;
    resume.cancel = cancel;
    // The journal's inputs, then what is given again (secret inputs are never stored).
    let mut given = detail.given_inputs();
    for a in &go.input {
        match parse_assignment(flow, a) {
            Ok(pair) => given.push(pair),
            Err(e) => return Err(failed(runtime.secrets.redact(&e.to_string()))),
        }
    }
    // Secret inputs given again are the flow's secrets for this command: masked on the
    // terminal, in reports and in the journal alike.
    let own = Secrets::default();
    let inputs = resolve(flow, given, &runtime.secrets).map_err(|errors| {
        for e in errors {
            super::error(format_args!("{}", runtime.secrets.redact(&e.to_string())));
        }
        eprintln!("nothing was sent");
        exit::INVALID
    })?;
    // Half a run against a simulator and half against a real org must not happen.
    let now = engine.origin(&inputs);
    if let Some(before) = &resume.origin
        && now.as_ref() != Some(before)
        && !go.force
    {
        let now = now.unwrap_or_else(|| "nowhere it can name".into());
        super::error(format_args!(
            "run `{id}` sent its requests to {before}; going on would send them to {now}"
        ));
        eprintln!("  = hint: set the connection's environment as it was, or go on anyway with --force");
        eprintln!("nothing was sent");
        return Err(exit::INVALID);
    }
    let json = go.format == Format::Json;
    let terminal = Terminal::new(false, go.quiet || json, runtime.secrets.clone());
    if !terminal.quiet {
        let what = if cancel { "cancelling" } else { "resuming" };
        say!("{what} run {id}: {} ({})", flow.name, source.display_name());
    }
    let log = runs.reopen(id, &own);
    let (engine_ref, log_ref, inputs_ref, terminal_ref) = (&engine, &log, &inputs, &terminal);
    let mut report = super::run_one(&flow.name, |interrupted| async move {
        let run = engine_ref.run_durable(
            inputs_ref.clone(),
            terminal_ref,
            Some(&interrupted),
            log_ref,
            Some(resume),
        );
        run.await
    })?;
    report.run_id = Some(id.to_string());
    let ended = if cancel {
        let error = match &report.outcome {
            Outcome::Failed { step, error } => Some(format!("{step}: {error}")),
            _ => None,
        };
        log.commit(log.ended("cancelled", Value::Object(report.outputs.clone()), error))
    } else {
        log.commit(log.finished(&report))
    };
    ended.map_err(failed)?;
    terminal.finish(&report);
    terminal.print_failure(&report, &source, &engine.flow().files);
    if json {
        let value = flowrun::report::json::report(&report, &inputs, &runtime.secrets);
        say!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    // A cancel whose cleanup passed did what was asked.
    let cleanup_failed = report
        .steps
        .iter()
        .any(|s| s.phase == Phase::Finally && matches!(s.status, StepStatus::Failed(_)));
    Ok(match &report.outcome {
        _ if cancel && !cleanup_failed => exit::OK,
        Outcome::Passed | Outcome::Stopped { .. } if !cancel => exit::OK,
        _ => exit::FAILED,
    })
}

/// `run FLOW --resume`: every unfinished run of this flow file in the journal, one by one.
pub fn resume_all(journal: &Arc<Journal>, flow: &std::path::Path, go: &GoOn) -> Result<u8, u8> {
    let path = std::fs::canonicalize(flow)
        .map_err(|e| failed(format_args!("cannot read {}: {e}", flow.display())))?
        .display()
        .to_string();
    let runs = journal.runs(true, usize::MAX).map_err(failed)?;
    let mine: Vec<_> = runs.into_iter().filter(|r| r.flow_path == path).collect();
    if mine.is_empty() {
        if !go.quiet {
            say!("no unfinished runs of {} in the journal", flow.display());
        }
        return Ok(exit::OK);
    }
    let mut worst = exit::OK;
    // Oldest first: the order they were started in.
    for r in mine.iter().rev() {
        let code = go_on(journal, &r.id, go, false).unwrap_or_else(|c| c);
        worst = worst.max(code);
    }
    Ok(worst)
}
