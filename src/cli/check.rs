//! `flowrun check PATH...`: report every problem in the given flows; send nothing.

use super::exit;
use flowrun::flow::JsonDiagnostic;
use flowrun::flow::{FileCheck, Source, check_file};
use flowrun::paths::{FlowFiles, flow_files};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Flow files, or directories searched recursively for `*.yaml` / `*.yml` flows. Flow tests
    /// (`*.test.yaml`) are checked as test files. Skipped in directories: input sets
    /// (`*.inputs.yaml`), golden transcripts (`*.transcript.yaml`), simulator configurations
    /// (`*.sim.yaml`), hidden folders and `target/`.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// How to print the diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Skip files whose path (as found, e.g. `flows/wip/x.yaml`) matches this glob; `**`
    /// crosses folders. Repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Treat these diagnostics as errors: `--deny warnings` exits 2 when there is any warning.
    #[arg(long, value_enum, value_name = "KIND")]
    deny: Vec<Deny>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Deny {
    /// Every warning.
    Warnings,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Compiler-style text on stderr: `file:line:col: error: ...`, the source line and a caret.
    Human,
    /// One JSON document on stdout, for editors and CI.
    Json,
}

pub fn run(args: Args) -> u8 {
    let mut excluded = globset::GlobSetBuilder::new();
    for pattern in &args.exclude {
        match globset::GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(glob) => {
                excluded.add(glob);
            }
            Err(e) => {
                super::error(format_args!("--exclude {pattern}: {e}"));
                return exit::USAGE;
            }
        }
    }
    let excluded = match excluded.build() {
        Ok(set) => set,
        Err(e) => {
            super::error(format_args!("--exclude: {e}"));
            return exit::USAGE;
        }
    };
    let FlowFiles {
        mut files,
        errors: mut io_errors,
    } = flow_files(&args.paths);
    // `./flows/x.yaml` and `flows/x.yaml` are the same path to a glob.
    files.retain(|p| !excluded.is_match(p.strip_prefix(".").unwrap_or(p)));
    let mut all = Vec::new();
    let mut files_with_problems = 0;
    let (mut tests, mut connections, mut steps_files, mut services) = (0, 0, 0, 0);
    for path in &files {
        if flowrun::paths::is_test_file(path) {
            tests += 1;
            let (source, diagnostics) = match flowrun::testing::load(path) {
                Ok(loaded) => (loaded.source, Vec::new()),
                Err(found) => found,
            };
            if !diagnostics.is_empty() {
                files_with_problems += 1;
            }
            all.push((source, diagnostics));
            continue;
        }
        let source = match Source::read(path) {
            Ok(s) => s,
            Err(e) => {
                io_errors.push(format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        if let Some(diagnostics) = flowrun::service::check_file(&source) {
            services += 1;
            if !diagnostics.is_empty() {
                files_with_problems += 1;
            }
            all.push((source, diagnostics));
            continue;
        }
        let FileCheck {
            connection_file,
            steps_file,
            diagnostics,
        } = check_file(&source);
        connections += usize::from(connection_file);
        steps_files += usize::from(steps_file);
        if !diagnostics.is_empty() {
            files_with_problems += 1;
        }
        all.push((source, diagnostics));
    }
    let errors = all.iter().flat_map(|(_, d)| d).filter(|d| d.is_error()).count();
    let warnings = all.iter().flat_map(|(_, d)| d).count() - errors;
    let denied = args.deny.contains(&Deny::Warnings) && warnings > 0;

    match args.format {
        Format::Human => {
            let mut err = anstream::stderr().lock();
            for (source, diagnostics) in &all {
                for d in diagnostics {
                    let _ = writeln!(err, "{}", d.render_styled(source));
                }
            }
            for e in &io_errors {
                let red = anstyle::Style::new()
                    .bold()
                    .fg_color(Some(anstyle::AnsiColor::Red.into()));
                let _ = writeln!(err, "{red}error{red:#}: {e}");
            }
            let flows = all.len() - tests - connections - steps_files - services;
            let mut kinds = Vec::new();
            if flows > 0 || flows == all.len() {
                kinds.push(format!("{flows} flow{}", plural(flows)));
            }
            for (n, kind) in [
                (connections, "connection file"),
                (steps_files, "steps file"),
                (services, "service file"),
                (tests, "test file"),
            ] {
                if n > 0 {
                    kinds.push(format!("{n} {kind}{}", plural(n)));
                }
            }
            let checked = match kinds.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
                _ => kinds.join(""),
            };
            let unread = match io_errors.len() {
                0 => String::new(),
                n => format!("; {n} path{} could not be read", plural(n)),
            };
            let summary = format!(
                "checked {checked}: {}{unread}",
                if errors == 0 && warnings == 0 && io_errors.is_empty() {
                    "no problems".to_string()
                } else if errors == 0 && warnings == 0 {
                    "no problems in what was read".to_string()
                } else {
                    format!(
                        "{errors} error{}, {warnings} warning{} in {files_with_problems} file{}",
                        plural(errors),
                        plural(warnings),
                        plural(files_with_problems)
                    )
                }
            );
            if denied && errors == 0 {
                let _ = writeln!(err, "{summary} (denied by --deny warnings)");
            } else if errors == 0 && io_errors.is_empty() {
                let green = anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Green.into()));
                anstream::println!("{green}{summary}{green:#}");
            } else {
                let _ = writeln!(err, "{summary}");
            }
        }
        Format::Json => {
            let diagnostics: Vec<JsonDiagnostic> = all
                .iter()
                .flat_map(|(s, ds)| ds.iter().map(move |d| JsonDiagnostic::new(d, s)))
                .collect();
            let report = serde_json::json!({
                "checked": all.len(),
                "errors": errors,
                "warnings": warnings,
                "io_errors": io_errors,
                "diagnostics": diagnostics,
            });
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        }
    }
    if !io_errors.is_empty() {
        exit::USAGE
    } else if errors > 0 || denied {
        exit::INVALID
    } else {
        exit::OK
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
