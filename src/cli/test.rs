//! `flowrun test [PATH...]`: run flow tests and compare their request sequences with goldens.

use super::exit;
use flowrun::testing::{CaseResult, LoadedTests, load, run_case, test_files};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Test files, or directories searched for `*.test.yaml`. Default: the current directory.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Write missing or changed golden transcripts instead of failing on them.
    #[arg(long)]
    update: bool,
    /// Write a JUnit XML report: a test suite per file, a test case per case.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Run only the cases whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
}

pub fn run(args: Args) -> u8 {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let (files, io_errors) = test_files(&paths);
    for e in &io_errors {
        super::error(format_args!("{e}"));
    }
    if !io_errors.is_empty() {
        return exit::USAGE;
    }
    let mut invalid = false;
    let mut loaded: Vec<Arc<LoadedTests>> = Vec::new();
    for path in &files {
        match load(path) {
            Ok(t) => loaded.push(Arc::new(t)),
            Err((source, diagnostics)) => {
                invalid = true;
                for d in diagnostics {
                    anstream::eprintln!("{}", d.render_styled(&source));
                }
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            super::error(format_args!("{e}"));
            return exit::USAGE;
        }
    };
    let update = args.update;
    // The cases to run, per file: all of them, or those whose name holds `--filter`.
    let selected: Vec<(Arc<LoadedTests>, Vec<usize>)> = loaded
        .iter()
        .map(|t| {
            let picked = (0..t.file.cases.len())
                .filter(|i| {
                    args.filter
                        .as_ref()
                        .is_none_or(|f| t.file.cases[*i].name.contains(f.as_str()))
                })
                .collect();
            (t.clone(), picked)
        })
        .filter(|(_, picked): &(_, Vec<usize>)| !picked.is_empty())
        .collect();
    if let Some(filter) = &args.filter
        && selected.is_empty()
        && !invalid
    {
        super::error(format_args!("no case name contains `{filter}`"));
        return exit::FAILED;
    }
    // Every case runs at once, each against its own simulator; results print in file order.
    let results: Vec<(Arc<LoadedTests>, Vec<CaseResult>)> = runtime.block_on(async {
        let mut tasks = Vec::new();
        // A few cases at a time (each has its own simulator): many at once only contend.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = Arc::new(tokio::sync::Semaphore::new(cores * 4));
        for (tests, picked) in &selected {
            for &index in picked {
                let tests = tests.clone();
                let slots = slots.clone();
                tasks.push(tokio::spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    let dir = tests.source.path.parent().map(PathBuf::from).unwrap_or_default();
                    run_case(&dir, &tests.file, &tests.file.cases[index], update).await
                }));
            }
        }
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.unwrap_or_else(|e| CaseResult {
                name: "(crashed)".into(),
                problems: vec![e.to_string()],
                diff: None,
                updated: false,
                duration: Default::default(),
            }));
        }
        let mut done = done.into_iter();
        selected
            .iter()
            .map(|(t, picked)| (t.clone(), done.by_ref().take(picked.len()).collect()))
            .collect()
    });

    let mut out = anstream::stdout().lock();
    let (mut passed, mut failed) = (0, 0);
    for (tests, cases) in &results {
        let file = tests.source.display_name();
        for case in cases {
            let (word, color) = if !case.passed() {
                ("FAILED", anstyle::AnsiColor::Red)
            } else if case.updated {
                ("updated", anstyle::AnsiColor::Yellow)
            } else {
                ("ok", anstyle::AnsiColor::Green)
            };
            let style = anstyle::Style::new().fg_color(Some(color.into()));
            let _ = writeln!(out, "{style}{word:<8}{style:#}{file} › {}", case.name);
            for p in &case.problems {
                let _ = writeln!(out, "        {}", p.replace('\n', "\n        "));
            }
            if let Some(diff) = &case.diff {
                for line in diff.lines() {
                    let color = match line.chars().next() {
                        Some('+') if !line.starts_with("+++") => Some(anstyle::AnsiColor::Green),
                        Some('-') if !line.starts_with("---") => Some(anstyle::AnsiColor::Red),
                        Some('@') => Some(anstyle::AnsiColor::Cyan),
                        _ => None,
                    };
                    let style = anstyle::Style::new().fg_color(color.map(Into::into));
                    let _ = writeln!(out, "        {style}{line}{style:#}");
                }
            }
            if case.passed() { passed += 1 } else { failed += 1 }
        }
    }
    let color = if failed == 0 {
        anstyle::AnsiColor::Green
    } else {
        anstyle::AnsiColor::Red
    };
    let style = anstyle::Style::new().bold().fg_color(Some(color.into()));
    let _ = writeln!(out, "{style}{passed} passed, {failed} failed{style:#}");
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit(&results))
    {
        super::error(format_args!("cannot write {}: {e}", path.display()));
        return exit::USAGE;
    }
    if invalid {
        exit::INVALID
    } else if failed > 0 {
        exit::FAILED
    } else {
        exit::OK
    }
}

fn junit(results: &[(Arc<LoadedTests>, Vec<CaseResult>)]) -> String {
    let mut report = Report::new("flowrun test");
    for (tests, cases) in results {
        let mut suite = TestSuite::new(tests.source.display_name());
        for case in cases {
            let status = if case.passed() {
                TestCaseStatus::success()
            } else {
                // The message attribute says why in one line; the element's body holds every
                // problem and the whole diff, as CI tools show them.
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                // One line: the first problem's first line, or what is wrong with the golden.
                let first = case.problems.first().or(case.diff.as_ref());
                let mut message = first
                    .and_then(|p| p.lines().next())
                    .unwrap_or_default()
                    .to_string();
                if case.problems.is_empty() && case.diff.as_ref().is_some_and(|d| d.starts_with("---")) {
                    message = "the transcript differs from its golden".into();
                }
                let mut body = case.problems.join("\n");
                if let Some(d) = &case.diff {
                    if !body.is_empty() {
                        body.push('\n');
                    }
                    body.push_str(d);
                }
                s.set_message(message);
                s.set_description(body);
                s
            };
            let mut test_case = TestCase::new(case.name.as_str(), status);
            test_case.set_time(case.duration);
            suite.add_test_case(test_case);
        }
        suite.set_time(cases.iter().map(|c| c.duration).sum());
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_default()
}
