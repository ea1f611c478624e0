//! Subcommands, one file each, and the exit codes they share.

mod batch;
mod check;
mod init;
mod run;
mod runs;
mod serve;
mod sim;
mod test;

use clap::{Parser, Subcommand};
use flowrun::engine::RunReport;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit codes, documented in the README.
pub mod exit {
    /// Every flow passed (or stopped early on purpose); every checked file is valid.
    pub const OK: u8 = 0;
    /// A flow or its inputs are invalid; nothing was sent.
    pub const INVALID: u8 = 2;
    /// A step failed.
    pub const FAILED: u8 = 1;
    /// Bad command-line usage, or a file could not be read or written.
    pub const USAGE: u8 = 3;
}

#[derive(Parser)]
#[command(
    name = "flowrun",
    version,
    about = "Run declarative YAML flows of HTTP API calls"
)]
struct Cli {
    /// When to colour output: `auto` (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it), `always`, `never`.
    #[arg(long, global = true, value_enum, default_value = "auto", value_name = "WHEN")]
    color: ColorWhen,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Check flow files for mistakes without sending anything.
    #[command(after_help = "Examples:
  flowrun check flows/                   every flow under flows/, every problem at once
  flowrun check flows/inbound.yaml --format json
  flowrun check --deny warnings flows/    in CI: a warning fails the build too

Reference: docs/flow-language.md (the language), docs/cli.md (every command)")]
    Check(check::Args),
    /// Create a partner project: flows, inputs, flow tests, a simulator configuration, CI.
    #[command(after_help = "Examples:
  flowrun init my-channel && cd my-channel && flowrun check flows && flowrun test flows
  flowrun init .                         in the current directory (nothing is overwritten)
  flowrun run flows/inbound.yaml --sim-config flowrun.sim.yaml --inputs flows/examples/inbound.inputs.yaml

Reference: docs/cli.md")]
    Init(init::Args),
    /// Run a flow: check it and its inputs, then send its requests in order.
    #[command(after_help = "Examples:
  flowrun run flows/inbound.yaml --sim --inputs flows/examples/inbound.inputs.yaml
  flowrun run flows/transfer.yaml --inputs event.yaml --input queue_id=00G5g000000AbCd --report run.json
  flowrun run flows/inbound.yaml --inputs-jsonl runs.jsonl --concurrency 16 --results results.jsonl

Reference: docs/cli.md, docs/flow-language.md")]
    Run(Box<run::Args>),
    /// The journal's runs: list, show, resume or cancel an unfinished one, prune old ones.
    #[command(after_help = "Examples:
  flowrun runs list --journal sqlite:flowrun.db --unfinished
  flowrun runs show 5b0e… --journal sqlite:flowrun.db --format json
  flowrun runs resume 5b0e… --journal sqlite:flowrun.db
  flowrun runs cancel 5b0e… --journal sqlite:flowrun.db      runs its finally steps (deletes the PSR)
  FLOWRUN_JOURNAL=sqlite:flowrun.db flowrun runs prune --older-than 7d

Reference: docs/journal.md, docs/cli.md")]
    Runs(runs::Args),
    /// Run flows for events: a long-running service declared by a service file (`kind: service`).
    #[command(after_help = "Examples:
  flowrun serve service.yaml --journal sqlite:flowrun.db
  flowrun serve tests/services/webhook.service.yaml --sim --listen 127.0.0.1:8080

Reference: docs/serve.md")]
    Serve(serve::Args),
    /// Serve the Interaction Service simulator on 127.0.0.1 until Ctrl-C.
    #[command(after_help = "Examples:
  flowrun sim                            the built-in org on 127.0.0.1:8787
  flowrun sim --port 0 --config flowrun.sim.yaml

Reference: README.md (The simulator), docs/cli.md")]
    Sim(sim::Args),
    /// Run flow tests (`*.test.yaml`) and compare each case's requests with its golden transcript.
    #[command(after_help = "Examples:
  flowrun test flows                     every test file under flows/
  flowrun test flows --filter transfer   only the cases whose name holds `transfer`
  flowrun test flows --update            rewrite the goldens an intended change altered

Reference: docs/flow-tests.md, docs/cli.md")]
    Test(test::Args),
    /// Print a shell completion script: `flowrun completions bash > /etc/bash_completion.d/flowrun`.
    #[command(after_help = "Examples:
  flowrun completions bash > ~/.local/share/bash-completion/completions/flowrun
  flowrun completions zsh > ~/.zfunc/_flowrun
  flowrun completions fish > ~/.config/fish/completions/flowrun.fish

Reference: docs/cli.md")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs one flow on a runtime of its own: Ctrl-C, SIGTERM or SIGHUP sets the flag `run` is
/// given (the flow stops at its next step; `finally` still runs, so cleanup happens), and a
/// panic inside the run is its failure, reported like any other (exit 1).
fn run_one<F>(flow: &str, run: impl FnOnce(Arc<AtomicBool>) -> F) -> Result<RunReport, u8>
where
    F: std::future::Future<Output = RunReport>,
{
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            error(format_args!("{e}"));
            exit::USAGE
        })?;
    let interrupted = Arc::new(AtomicBool::new(false));
    Ok(tokio.block_on(async {
        let flag = interrupted.clone();
        tokio::spawn(async move {
            let why = flowrun::signals::stop_requested().await;
            eprintln!("{why}: stopping before the next step; finally steps still run");
            flag.store(true, Ordering::Relaxed);
        });
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run(interrupted)))
            .await
            .unwrap_or_else(|panic| RunReport::crashed(flow, flowrun::engine::panic_message(panic.as_ref())))
    }))
}

/// Prints `error: message` on stderr, `error` in bold red where colour is on.
fn error(message: std::fmt::Arguments) {
    let red = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Red.into()));
    anstream::eprintln!("{red}error{red:#}: {message}");
}

/// Prints `warning: message` on stderr, `warning` in bold yellow where colour is on.
fn warning(message: std::fmt::Arguments) {
    let yellow = anstyle::Style::new()
        .bold()
        .fg_color(Some(anstyle::AnsiColor::Yellow.into()));
    anstream::eprintln!("{yellow}warning{yellow:#}: {message}");
}

/// A count that must be at least 1 (`--concurrency 0` would run nothing, `--max-body 0`
/// would refuse every answer).
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

pub fn main() -> ExitCode {
    // `CLICOLOR_FORCE=0` means "do not force" (the CLICOLOR convention); the colour stream
    // takes any value as forcing. Nothing else runs yet: no thread reads the environment.
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| v == "0") {
        // SAFETY: single-threaded here, before any thread is started.
        unsafe { std::env::remove_var("CLICOLOR_FORCE") };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.color {
        // anstream's own detection: a terminal, NO_COLOR, CLICOLOR, CLICOLOR_FORCE.
        ColorWhen::Auto => {}
        ColorWhen::Always => anstream::ColorChoice::Always.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
    }
    let code = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Init(args) => init::run(args),
        Command::Run(args) => run::run(*args),
        Command::Runs(args) => runs::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Test(args) => test::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into a buffer first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "flowrun", &mut script);
            let _ = std::io::stdout().write_all(&script);
            exit::OK
        }
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
