//! `flowrun run FLOW --inputs-jsonl FILE`: many runs, a progress bar, a summary.

use super::exit;
use flowrun::engine::Engine;
use flowrun::engine::{BatchOptions, BatchSummary, Controls, ResultLine, run_batch};
use flowrun::flow::parse_assignment;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

#[derive(clap::Args)]
pub struct BatchArgs {
    /// With --inputs-jsonl: runs in flight at once (1 to 100000).
    #[arg(long, value_name = "N", default_value_t = 8, requires = "inputs_jsonl",
          value_parser = concurrency)]
    concurrency: usize,
    /// With --inputs-jsonl: runs started per second, at most (more than 0).
    #[arg(long, value_name = "R", requires = "inputs_jsonl", value_parser = positive_rate)]
    rate: Option<f64>,
    /// With --inputs-jsonl: write one JSON line per run as it ends: line, outcome, outputs, or
    /// the failed step, error, API code and the values it had saved.
    #[arg(long, value_name = "FILE", requires = "inputs_jsonl")]
    results: Option<PathBuf>,
    /// With --inputs-jsonl: on Ctrl-C, stop runs in flight at their next step too (their
    /// `finally` steps still run); without it, they finish. With --resume: go on even though
    /// the flow file changed since a run started.
    #[arg(long)]
    force: bool,
    /// With --results: write the result lines in input order (a line waits for the lines
    /// before it), not as runs end.
    #[arg(long, requires = "results")]
    ordered: bool,
    /// With --inputs-jsonl and --journal: the field of each line that holds its run id (an
    /// event id, a message id). A line whose id the journal already holds is not run again: it
    /// fails, saying how that run ended. Without it, every line is a new run.
    #[arg(long, value_name = "NAME", requires = "journal", conflicts_with = "ordered")]
    id_field: Option<String>,
}

impl BatchArgs {
    /// `--force`.
    pub fn force(&self) -> bool {
        self.force
    }

    /// `--concurrency`.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// How many failures a batch without `--results` shows.
const SHOWN_FAILURES: usize = 5;

/// Result lines put back in input order: each is held until every line before it is out.
#[derive(Default)]
struct InOrder {
    next: u64,
    held: std::collections::BTreeMap<u64, Value>,
}

impl InOrder {
    /// Takes a result line; gives back the lines now ready, in order.
    fn push(&mut self, line: Value) -> Vec<Value> {
        let n = line["line"].as_u64().unwrap_or(0);
        self.held.insert(n, line);
        if self.next == 0 {
            self.next = 1;
        }
        let mut ready = Vec::new();
        while let Some(line) = self.held.remove(&self.next) {
            ready.push(line);
            self.next += 1;
        }
        ready
    }
}

/// A `--concurrency`: from 1 to 100,000 runs in flight.
fn concurrency(text: &str) -> Result<usize, String> {
    match super::at_least_one(text)? {
        n if n <= 100_000 => Ok(n),
        _ => Err("at most 100000 runs can be in flight".into()),
    }
}

/// A `--rate`: runs per second, more than 0 (at least one run in 1,000 s, at most a million
/// a second: the interval between starts must be a duration).
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.001..=1_000_000.0).contains(&r) => Ok(r),
        Ok(r) if r > 0.0 => Err("the rate must be between 0.001 and 1000000 runs per second".into()),
        Ok(_) => Err("the rate must be more than 0 runs per second".into()),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

pub fn run(
    args: &BatchArgs,
    assignments: &[String],
    jsonl: &Path,
    engine: Engine,
    base: Vec<(String, Value)>,
    quiet: bool,
    durable: Option<Arc<dyn flowrun::engine::Durable>>,
) -> u8 {
    let mut overrides = Vec::new();
    for a in assignments {
        match parse_assignment(&engine.flow().flow, a) {
            Ok(pair) => overrides.push(pair),
            Err(e) => {
                super::error(format_args!("{e}\nnothing was sent"));
                return exit::INVALID;
            }
        }
    }
    // Line by line: a result is on disk when its run ends, even if the batch is killed.
    let results: Option<Arc<Mutex<std::io::LineWriter<std::fs::File>>>> = match &args.results {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(Arc::new(Mutex::new(std::io::LineWriter::new(f)))),
            Err(e) => {
                super::error(format_args!("cannot write {}: {e}", path.display()));
                return exit::USAGE;
            }
        },
        None => None,
    };
    // The batch starts its own worker threads (see engine::batch); this runtime reads the
    // input and is the first of them.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            super::error(format_args!("{e}"));
            return exit::USAGE;
        }
    };
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
    } else {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} runs  {per_sec}  {elapsed}  {msg}") {
            bar.set_style(style);
        }
        bar
    };
    let name = engine.flow().flow.name.clone();
    let first_failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let controls = Controls {
        durable,
        ..Controls::default()
    };
    let force = args.force;
    let summary: Result<BatchSummary, String> = runtime.block_on(async {
        let input: Box<dyn tokio::io::AsyncBufRead + Unpin + Send> = if jsonl == Path::new("-") {
            Box::new(tokio::io::BufReader::new(tokio::io::stdin()))
        } else {
            let file = tokio::fs::File::open(jsonl)
                .await
                .map_err(|e| format!("cannot read {}: {e}", jsonl.display()))?;
            Box::new(tokio::io::BufReader::new(file))
        };
        let c = controls.clone();
        let bar_for_signal = bar.clone();
        tokio::spawn(async move {
            let why = flowrun::signals::stop_requested().await;
            c.stop_starting.store(true, Ordering::Relaxed);
            if force {
                c.stop_running.store(true, Ordering::Relaxed);
            }
            bar_for_signal.set_message(format!("{why}: no new runs start"));
        });
        let sink_bar = bar.clone();
        let sink_results = results.clone();
        let ordered = args.ordered.then(|| Mutex::new(InOrder::default()));
        let sink_failures = first_failures.clone();
        let on_result = Arc::new(move |result: ResultLine<'_>| {
            sink_bar.inc(1);
            let Some(w) = &sink_results else {
                // Without --results the first failures are still shown, so a failed batch says
                // why; no other run's line is made.
                if !result.failed() {
                    return;
                }
                let mut f = sink_failures.lock().unwrap_or_else(|p| p.into_inner());
                if f.len() < SHOWN_FAILURES {
                    f.push(first_failure(&result.json()));
                }
                return;
            };
            let line = result.json();
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            match &ordered {
                None => {
                    let _ = writeln!(w, "{line}");
                }
                Some(order) => {
                    let mut order = order.lock().unwrap_or_else(|p| p.into_inner());
                    for ready in order.push(line) {
                        let _ = writeln!(w, "{ready}");
                    }
                }
            }
        });
        let options = BatchOptions {
            concurrency: args.concurrency,
            rate: args.rate,
            workers: None,
            id_field: args.id_field.clone(),
        };
        Ok(run_batch(
            Arc::new(engine),
            input,
            base,
            overrides,
            options,
            controls.clone(),
            on_result,
        )
        .await)
    });
    bar.finish_and_clear();
    if let Some(w) = &results
        && let Err(e) = w.lock().unwrap_or_else(|p| p.into_inner()).flush()
    {
        super::error(format_args!("cannot write the results: {e}"));
        return exit::USAGE;
    }
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            super::error(format_args!("{e}"));
            return exit::USAGE;
        }
    };
    let all_passed = summary.failed == 0 && !summary.interrupted;
    // `--quiet`: nothing at all when every run passed; the summary when something did not.
    if !(quiet && all_passed) {
        // The first line says how it went: green when every run passed, red otherwise.
        let text = render_summary(&name, &summary);
        let (head, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let color = if all_passed {
            anstyle::AnsiColor::Green
        } else {
            anstyle::AnsiColor::Red
        };
        let style = anstyle::Style::new().bold().fg_color(Some(color.into()));
        anstream::print!("{style}{head}{style:#}\n{rest}");
    }
    let shown = first_failures.lock().unwrap_or_else(|p| p.into_inner());
    if !shown.is_empty() {
        eprintln!("first failures (all of them, with what each run saved: --results FILE):");
        for f in shown.iter() {
            eprintln!("  {f}");
        }
    }
    if all_passed { exit::OK } else { exit::FAILED }
}

/// The closing summary: outcomes, throughput, latency percentiles per step.
pub fn render_summary(name: &str, s: &BatchSummary) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let mut out = format!(
        "{name}: {} runs ({} passed, {} stopped, {} failed){} in {:.2} s\n{:.0} runs/s, {} requests, {:.0} requests/s\n",
        s.runs(),
        s.passed,
        s.stopped,
        s.failed,
        if s.interrupted { ", interrupted" } else { "" },
        secs,
        s.runs() as f64 / secs,
        s.requests,
        s.requests as f64 / secs,
    );
    if !s.failures.is_empty() {
        let parts: Vec<String> = s
            .failures
            .iter()
            .map(|f| match f.code {
                Some(code) => format!("{} at `{}` (code {code})", f.runs, f.step),
                None => format!("{} at `{}`", f.runs, f.step),
            })
            .collect();
        out.push_str(&format!("failed: {}\n", parts.join(", ")));
    }
    if !s.steps.is_empty() {
        out.push_str(&format!(
            "  {:<20} {:>8} {:>10} {:>10} {:>10}\n",
            "step", "runs", "p50", "p95", "p99"
        ));
        for step in &s.steps {
            let h = &step.histogram;
            let ms = |q: f64| format!("{:.2} ms", h.value_at_quantile(q) as f64 / 1000.0);
            out.push_str(&format!(
                "  {:<20} {:>8} {:>10} {:>10} {:>10}\n",
                step.step,
                h.len(),
                ms(0.50),
                ms(0.95),
                ms(0.99)
            ));
        }
    }
    out
}

/// What the summary says of a failed run: which line or run, at which step, why (unusable
/// inputs say which line or run they were already).
fn first_failure(line: &Value) -> String {
    let step = line["step"]
        .as_str()
        .map(|s| format!(" at `{s}`"))
        .unwrap_or_default();
    let error = line["error"].as_str().unwrap_or_default();
    let which = match (&line["line"], line["id"].as_str()) {
        (Value::Number(n), _) => format!("line {n}"),
        (_, Some(id)) => format!("run {id}"),
        _ => String::new(),
    };
    match error.starts_with("line ") || error.starts_with("run ") {
        true => error.to_string(),
        false => format!("{which}{step}: {error}"),
    }
}
