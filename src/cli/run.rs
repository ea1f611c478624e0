//! `flowrun run FLOW`: check the flow and its inputs, then send its requests.

use super::exit;
use flowrun::base::Secrets;
use flowrun::engine::{Observer, Outcome, RunReport};
use flowrun::engine::{PrepareError, Prepared, prepare, prepare_engine};
use flowrun::expr::World;
use flowrun::flow::PlacedInputs;
use flowrun::flow::{Diagnostic, Source};
use flowrun::http::{DEFAULT_MAX_BODY, HttpTransport};
use flowrun::journal::FlowRuns;
use flowrun::report::{self, terminal::Terminal};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args)]
pub struct Args {
    /// The flow file to run.
    #[arg(value_name = "FLOW")]
    flow: PathBuf,
    /// An input, `name=value`. Typed by the flow's declaration: `--input capacity_weight=2`
    /// is the number 2. Repeatable; wins over `--inputs`.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    input: Vec<String>,
    /// A YAML (or JSON) file of inputs: a mapping of name → value.
    #[arg(long = "inputs", value_name = "FILE")]
    inputs_file: Option<PathBuf>,
    /// Show every request and response (secrets masked), and each `if` as it is evaluated.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Print nothing but errors; a batch prints nothing at all when every run passed.
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    quiet: bool,
    /// `json`: print the run report (as `--report` writes it) on stdout, and nothing else there.
    #[arg(long, value_enum, default_value = "human", conflicts_with_all = ["verbose", "inputs_jsonl"])]
    format: Format,
    /// Write the whole run as JSON: inputs (secrets masked), requests, responses, timings, outputs.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write a JUnit XML report: one test case per step.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the normalised request sequence as YAML.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// Run against the built-in Interaction Service simulator, started on 127.0.0.1: the flow's
    /// connection (SCRT_BASE_URL, SF_ORG_ID, SF_AUTHORIZATION_CONTEXT, SF_ACCESS_TOKEN,
    /// SF_LOGIN_URL) points at it. No org, no credentials, no network.
    #[arg(long)]
    sim: bool,
    /// The simulator's configuration (YAML); implies --sim. Default: the built-in one.
    #[arg(long, value_name = "FILE")]
    sim_config: Option<PathBuf>,
    /// Run the flow once per line of this file (`-`: standard input), each line a JSON object
    /// of inputs over `--inputs` and under `--input`. Streamed: memory stays flat.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["report", "junit", "transcript", "verbose"])]
    inputs_jsonl: Option<PathBuf>,
    #[command(flatten)]
    batch: super::batch::BatchArgs,
    /// Journal the run (every step attempt written down before it is sent) so a crash can be
    /// resumed without repeating a request: `sqlite:PATH`. Also `FLOWRUN_JOURNAL`.
    #[arg(long, env = "FLOWRUN_JOURNAL", value_name = "URL")]
    journal: Option<String>,
    /// The run's id in the journal (default: a new UUID). A repeated id is the same run: one
    /// the journal already holds is refused.
    #[arg(
        long,
        value_name = "ID",
        requires = "journal",
        conflicts_with = "inputs_jsonl",
        value_parser = run_id
    )]
    run_id: Option<String>,
    /// Go on with every unfinished run of this flow in the journal, instead of a new run.
    #[arg(long, requires = "journal", conflicts_with_all = ["inputs_jsonl", "run_id", "sim", "sim_config"])]
    resume: bool,
    /// Largest response body accepted, in bytes; a larger one fails the step.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY,
          value_parser = super::at_least_one)]
    max_body: usize,
    /// The most items a step's `for_each` may give when the step sets no `max_items`; more
    /// fails the step before anything is sent.
    #[arg(long, value_name = "N", default_value_t = flowrun::engine::DEFAULT_MAX_ITEMS,
          value_parser = super::at_least_one)]
    max_items: usize,
}

/// A `--run-id`: not blank, at most 200 characters, no control characters.
fn run_id(text: &str) -> Result<String, String> {
    match text {
        t if t.trim().is_empty() => Err("a run id cannot be blank".into()),
        t if t.chars().count() > 200 => Err("a run id has at most 200 characters".into()),
        t if t.chars().any(char::is_control) => Err("a run id cannot hold control characters".into()),
        t => Ok(t.to_string()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

/// Prints diagnostics for `source` on stderr.
fn print_diagnostics(source: &Source, diagnostics: &[Diagnostic]) {
    let mut err = anstream::stderr().lock();
    for d in diagnostics {
        let _ = writeln!(err, "{}", d.render_styled(source));
    }
}

/// Reads `--inputs FILE`; problems are diagnostics in that file.
fn read_inputs_file(path: &std::path::Path) -> Result<(Vec<(String, Value)>, PlacedInputs), u8> {
    use flowrun::flow::{InputsFileError, read_inputs_file_placed};
    read_inputs_file_placed(path).map_err(|e| match e {
        InputsFileError::Io(message) => {
            super::error(format_args!("{message}"));
            exit::USAGE
        }
        InputsFileError::Invalid(source, diagnostics) => {
            print_diagnostics(&source, &diagnostics);
            exit::INVALID
        }
        InputsFileError::NotAMapping(message) => {
            super::error(format_args!("{message}"));
            exit::INVALID
        }
    })
}

pub fn run(args: Args) -> u8 {
    match run_inner(args) {
        Ok(code) | Err(code) => code,
    }
}

fn run_inner(args: Args) -> Result<u8, u8> {
    let source = Source::read(&args.flow).map_err(|e| {
        super::error(format_args!("cannot read {}: {e}", args.flow.display()));
        exit::USAGE
    })?;
    let (given, placed) = match &args.inputs_file {
        Some(path) => {
            let (given, placed) = read_inputs_file(path)?;
            (given, Some(placed))
        }
        None => (Vec::new(), None),
    };
    let mut runtime = World::system();
    // Keep the simulator alive for the whole run.
    let _simulator = if args.sim || args.sim_config.is_some() {
        Some(super::sim::attach(&mut runtime, args.sim_config.as_deref())?)
    } else {
        None
    };
    let transport = HttpTransport::new(args.max_body);
    let many = args.inputs_jsonl.is_some() && args.batch.concurrency() > 1;
    let journal = args
        .journal
        .as_deref()
        .map(|url| super::runs::open_url(url, many))
        .transpose()?;
    if args.resume
        && let Some(journal) = &journal
    {
        let go = super::runs::GoOn::new(
            args.journal.clone().unwrap_or_default(),
            args.batch.force(),
            args.input.clone(),
            args.quiet,
        );
        return super::runs::resume_all(journal, &args.flow, &go);
    }
    let refuse = |e: PrepareError| {
        let all = match e {
            PrepareError::Several(all) => all,
            one => vec![one],
        };
        for e in &all {
            match e {
                PrepareError::Flow(diagnostics) => print_diagnostics(&source, diagnostics),
                // A bad value from the inputs file is shown where it stands in that file.
                PrepareError::Inputs(errors) => {
                    for error in errors {
                        // A value given with `--input` won over the file's: it is not in the file.
                        let from_flag = error.input.as_ref().is_some_and(|name| {
                            args.input
                                .iter()
                                .any(|a| a.split('=').next() == Some(name.as_str()))
                        });
                        let at = placed.as_ref().filter(|_| !from_flag);
                        match at.and_then(|p| p.diagnostic(error).map(|d| (p, d))) {
                            Some((p, d)) => {
                                let text = d.render_styled(&p.source);
                                anstream::eprintln!("{}", runtime.secrets.redact(&text));
                            }
                            None => eprintln!("{}", runtime.secrets.redact(&format!("error: {error}"))),
                        }
                    }
                }
                other => eprintln!("{}", runtime.secrets.redact(&other.to_string())),
            }
        }
        eprintln!("nothing was sent");
        exit::INVALID
    };
    if let Some(jsonl) = &args.inputs_jsonl {
        let (engine, warnings) =
            prepare_engine(&source, runtime.clone(), Arc::new(transport)).map_err(refuse)?;
        let engine = engine.with_max_items(args.max_items);
        print_diagnostics(&source, &warnings);
        let durable = journal.map(|j| {
            let runs = FlowRuns::new(j, &source, &engine.flow().flow, runtime.secrets.clone());
            Arc::new(runs) as Arc<dyn flowrun::engine::Durable>
        });
        return Ok(super::batch::run(
            &args.batch,
            &args.input,
            jsonl,
            engine,
            given,
            args.quiet,
            durable,
        ));
    }
    let prepared =
        prepare(&source, given, &args.input, runtime.clone(), Arc::new(transport)).map_err(refuse)?;
    print_diagnostics(&source, &prepared.warnings);
    let Prepared { engine, inputs, .. } = prepared;
    let engine = engine.with_max_items(args.max_items);

    let json = args.format == Format::Json;
    let terminal = Terminal::new(args.verbose, args.quiet || json, runtime.secrets.clone());
    if !terminal.quiet {
        println!("{}: {}", engine.flow().flow.name, source.display_name());
    }
    let observer = Warner {
        inner: &terminal,
        warned: AtomicBool::new(false),
    };
    let log = match &journal {
        None => None,
        Some(journal) => {
            let runs = FlowRuns::new(
                journal.clone(),
                &source,
                &engine.flow().flow,
                runtime.secrets.clone(),
            );
            let id = args
                .run_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
            let log = runs.begin(&id, &inputs, &Secrets::default()).map_err(|e| {
                super::error(format_args!("{e}"));
                exit::INVALID
            })?;
            if !terminal.quiet {
                println!(
                    "run {id} (journal {})",
                    flowrun::journal::clip_password(args.journal.as_deref().unwrap_or_default())
                );
            }
            Some(log)
        }
    };
    let name = engine.flow().flow.name.clone();
    let (engine, log, inputs, observer) = (&engine, &log, &inputs, &observer);
    let mut report = super::run_one(&name, |interrupted| async move {
        match log {
            Some(log) => {
                let run = engine.run_durable(inputs.clone(), observer, Some(&interrupted), log, None);
                run.await
            }
            None => {
                engine
                    .run_until(inputs.clone(), observer, Some(&interrupted))
                    .await
            }
        }
    })?;
    if let Some(log) = &log {
        report.run_id = Some(log.id().to_string());
        log.commit(log.finished(&report)).map_err(|e| {
            super::error(format_args!("{e}"));
            exit::USAGE
        })?;
    }
    terminal.finish(&report);
    terminal.print_failure(&report, &source, &engine.flow().files);
    if json {
        let value = report::json::report(&report, inputs, &runtime.secrets);
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    write_reports(&args, &report, inputs, &runtime)?;
    Ok(match report.outcome {
        Outcome::Passed | Outcome::Stopped { .. } => exit::OK,
        Outcome::Failed { .. } => exit::FAILED,
    })
}

fn write_reports(
    args: &Args,
    report: &RunReport,
    inputs: &serde_json::Map<String, Value>,
    runtime: &World,
) -> Result<(), u8> {
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|e| {
            super::error(format_args!("cannot write {}: {e}", path.display()));
            exit::USAGE
        })
    };
    if let Some(path) = &args.report {
        let value = report::json::report(report, inputs, &runtime.secrets);
        write(
            path,
            serde_json::to_string_pretty(&value).unwrap_or_default() + "\n",
        )?;
    }
    if let Some(path) = &args.junit {
        write(path, report::junit::junit(report, &runtime.secrets))?;
    }
    if let Some(path) = &args.transcript {
        write(
            path,
            report::transcript::to_yaml(&report::transcript::transcript(report, &runtime.secrets)),
        )?;
    }
    Ok(())
}

/// Warns once when requests go over plain HTTP to a host that is not this machine.
struct Warner<'a> {
    inner: &'a Terminal,
    warned: AtomicBool,
}

impl Observer for Warner<'_> {
    fn attempt_started(&self, step: &str, attempt: u32, request: &flowrun::http::HttpRequest) {
        if let Some(warning) = flowrun::http::plain_http_warning(&request.url)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            eprintln!("warning: {warning}");
        }
        self.inner.attempt_started(step, attempt, request);
    }
    fn attempt_finished(&self, step: &str, attempt: &flowrun::engine::Attempt) {
        self.inner.attempt_finished(step, attempt);
    }
    fn retry_scheduled(&self, step: &str, wait: std::time::Duration, reason: &str) {
        self.inner.retry_scheduled(step, wait, reason);
    }
    fn condition_evaluated(&self, step: &str, condition: &str, value: bool) {
        self.inner.condition_evaluated(step, condition, value);
    }
    fn step_finished(&self, record: &flowrun::engine::StepRecord) {
        self.inner.step_finished(record);
    }
}
