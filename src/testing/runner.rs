//! Loading test files and running their cases.

use super::model::{Case, ExpectedOutcome, TestFile};
use super::scripted::ScriptedTransport;
use crate::base::diagnostic::Diagnostic;
use crate::base::source::Source;
use crate::engine::outcome::{Outcome, Quiet, RunReport};
use crate::engine::prepare::prepare;
use crate::expr::world::World;
use crate::http::{DEFAULT_MAX_BODY, HttpTransport};
use crate::report::transcript::{to_yaml, transcript};
use crate::sim::{SimConfig, environment, start_in_background};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The frozen clock of test runs: 2023-11-14T22:13:20Z.
pub const TEST_NOW_MS: i64 = 1_700_000_000_000;

const TEST_SCHEMA: &str = include_str!("../../schemas/flow-test.schema.json");

fn compiled() -> &'static (Value, jsonschema::Validator) {
    static C: OnceLock<(Value, jsonschema::Validator)> = OnceLock::new();
    C.get_or_init(|| {
        let schema: Value = serde_json::from_str(TEST_SCHEMA).expect("test schema is valid JSON");
        let validator = jsonschema::draft202012::new(&schema).expect("test schema compiles");
        (schema, validator)
    })
}

/// A test file, read and checked.
pub struct LoadedTests {
    /// The file's text, for placing diagnostics.
    pub source: Source,
    /// The file's contents, checked against the test file schema.
    pub file: TestFile,
}

/// Reads and checks a test file; problems come back as diagnostics in that file.
pub fn load(path: &Path) -> Result<LoadedTests, (Source, Vec<Diagnostic>)> {
    let source = Source::read(path).unwrap_or_else(|e| Source::new(path, format!("# cannot read: {e}\n")));
    let (doc, mut diagnostics) = crate::base::yaml::load(&source.text);
    let Some(doc) = doc else {
        return Err((source, diagnostics));
    };
    let (schema, validator) = compiled();
    diagnostics.extend(crate::base::schema::validate(&doc, schema, validator, &doc.value));
    if diagnostics.is_empty() {
        diagnostics.extend(scripted_steps(path, &doc));
    }
    if !diagnostics.is_empty() {
        return Err((source, diagnostics));
    }
    match serde_json::from_value(doc.value) {
        Ok(file) => Ok(LoadedTests { source, file }),
        Err(e) => Err((
            source,
            vec![Diagnostic::error("test-file", Default::default(), e.to_string())],
        )),
    }
}

/// Every step id a case scripts answers for must be a step of the flow under test: a scripted
/// answer for a step that does not exist would never be used, and the case could pass
/// vacuously against the simulator.
fn scripted_steps(path: &Path, doc: &crate::base::yaml::Document) -> Vec<Diagnostic> {
    use crate::base::yaml::push_pointer;
    let mut out = Vec::new();
    let Some(flow) = doc.value.get("flow").and_then(Value::as_str) else {
        return out;
    };
    let flow_path = path.parent().unwrap_or(Path::new("")).join(flow);
    let ids: Vec<String> = match Source::read(&flow_path) {
        Err(e) => {
            out.push(
                Diagnostic::error(
                    "unknown-flow",
                    doc.value_span("/flow"),
                    format!("cannot read the flow {}: {e}", flow_path.display()),
                )
                .with_hint("`flow` is a path relative to this test file"),
            );
            return out;
        }
        Ok(source) => match crate::base::yaml::load(&source.text).0 {
            // A flow that does not load is reported when its cases run.
            None => return out,
            Some(mut flow) => {
                crate::flow::calls::expand(&flow_path, &mut flow);
                crate::flow::calls::step_ids(&flow)
            }
        },
    };
    let cases = doc
        .value
        .get("cases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (i, case) in cases.enumerate() {
        let Some(responses) = case.get("responses").and_then(Value::as_object) else {
            continue;
        };
        for id in responses.keys().filter(|id| !ids.contains(id)) {
            let pointer = push_pointer(&format!("/cases/{i}/responses"), id);
            let hint = crate::base::suggest::did_you_mean(id, ids.iter().map(String::as_str))
                .unwrap_or_else(|| format!("the steps of {flow} are: {}", ids.join(", ")));
            out.push(
                Diagnostic::error(
                    "unknown-step",
                    doc.key_span(&pointer),
                    format!("{flow} has no step `{id}` to script answers for"),
                )
                .with_hint(hint),
            );
        }
    }
    out
}

/// `*.test.yaml` files under `paths` (files named directly are always taken).
pub fn test_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let is_test = |name: &str| name.ends_with(".test.yaml") || name.ends_with(".test.yml");
    for path in paths {
        if path.is_file() {
            files.push(path.clone());
        } else if path.is_dir() {
            let mut found = Vec::new();
            crate::paths::walk(path, &is_test, &mut found, &mut errors);
            found.sort();
            files.extend(found);
        } else {
            errors.push(format!(
                "cannot read {}: no such file or directory",
                path.display()
            ));
        }
    }
    (files, errors)
}

/// What one case did.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name, as written in the test file.
    pub name: String,
    /// Why it failed; empty when it passed.
    pub problems: Vec<String>,
    /// A unified diff of the golden transcript against the actual one.
    pub diff: Option<String>,
    /// The golden file was written (with `--update`).
    pub updated: bool,
    /// How long the case took.
    pub duration: std::time::Duration,
}

impl CaseResult {
    /// No problems and a transcript matching its golden (or just written with `--update`).
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.diff.is_none()
    }
}

/// Names the step each hunk of a transcript diff belongs to: `@@ -12,7 +12,7 @@ step `route``,
/// from the last `- step:` entry at or before the hunk's first line in the golden.
fn name_hunks(golden: &str, diff: &str) -> String {
    let golden: Vec<&str> = golden.lines().collect();
    let step_at = |line: usize| {
        golden[..line.min(golden.len())]
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("- step: "))
    };
    diff.lines()
        .map(|l| {
            // `@@ -START,LEN +...`: the hunk starts at golden line START (1-based).
            let start = l
                .strip_prefix("@@ -")
                .and_then(|r| r.split([',', ' ']).next())
                .and_then(|n| n.parse::<usize>().ok());
            match start.and_then(|n| step_at(n + 3)) {
                Some(step) if l.ends_with("@@") => format!("{l} step `{step}`\n"),
                _ => format!("{l}\n"),
            }
        })
        .collect()
}

fn read_inputs(path: &Path) -> Result<Vec<(String, Value)>, String> {
    crate::flow::inputs::read_inputs_file(path).map_err(|e| e.to_string())
}

/// Runs one case of the test file at `dir`; with `update`, writes a missing or changed golden.
pub async fn run_case(dir: &Path, file: &TestFile, case: &Case, update: bool) -> CaseResult {
    let started = std::time::Instant::now();
    let mut result = CaseResult {
        name: case.name.clone(),
        problems: Vec::new(),
        diff: None,
        updated: false,
        duration: Default::default(),
    };
    // A golden transcript lives next to its test file: `--update` writes nowhere else.
    let inside = Path::new(&case.transcript)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        result.problems.push(format!(
            "transcript `{}` must be a file in the test file's folder (no `..`, no absolute path)",
            case.transcript
        ));
        return result;
    }
    match execute(dir, file, case).await {
        Err(problem) => result.problems.push(problem),
        Ok((report, secrets)) => {
            result.problems.extend(outcome_problems(case, &report));
            let actual = to_yaml(&transcript(&report, &secrets));
            let golden_path = dir.join(&case.transcript);
            let golden = std::fs::read_to_string(&golden_path).ok();
            // A golden is written only for a case whose outcome matched: otherwise `--update`
            // would record the wrong run as the expected one.
            let matched = result.problems.is_empty();
            if golden.as_deref() != Some(actual.as_str()) {
                if update && !matched {
                    result.problems.push(format!(
                        "{} was not updated: the outcome did not match",
                        case.transcript
                    ));
                }
                if update && matched {
                    match std::fs::write(&golden_path, &actual) {
                        Ok(()) => result.updated = true,
                        Err(e) => result
                            .problems
                            .push(format!("cannot write {}: {e}", golden_path.display())),
                    }
                } else {
                    result.diff = Some(match golden {
                        Some(old) => name_hunks(
                            &old,
                            &similar::TextDiff::from_lines(&old, &actual)
                                .unified_diff()
                                .context_radius(3)
                                .header(&case.transcript, "actual")
                                .to_string(),
                        ),
                        None => format!(
                            "golden file {} is missing; `flowrun test --update` writes it\n",
                            case.transcript
                        ),
                    });
                }
            }
        }
    }
    result.duration = started.elapsed();
    result
}

async fn execute(
    dir: &Path,
    file: &TestFile,
    case: &Case,
) -> Result<(RunReport, crate::base::secrets::Secrets), String> {
    let flow_path = dir.join(&file.flow);
    let source = Source::read(&flow_path).map_err(|e| format!("cannot read {}: {e}", flow_path.display()))?;
    let config = match &case.sim_config {
        Some(p) => SimConfig::read(&dir.join(p))?,
        None => SimConfig::default(),
    };
    let sim = start_in_background(config).map_err(|e| format!("cannot start the simulator: {e}"))?;
    let mut env = environment(&sim);
    env.extend(case.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.reverse(); // the case's own variables first, so they win
    let runtime = World::deterministic(TEST_NOW_MS, env);
    let mut given = match &case.inputs_file {
        Some(p) => read_inputs(&dir.join(p))?,
        None => Vec::new(),
    };
    given.extend(case.inputs.iter().map(|(k, v)| (k.clone(), v.clone())));
    let real = Arc::new(HttpTransport::new(DEFAULT_MAX_BODY));
    let transport = Arc::new(ScriptedTransport::new(case.responses.clone(), real));
    let prepared = prepare(&source, given, &[], runtime.clone(), transport).map_err(|e| match e {
        crate::engine::prepare::PrepareError::Flow(d) => {
            d.iter().map(|d| d.render(&source)).collect::<Vec<_>>().join("\n")
        }
        other => other.to_string(),
    })?;
    let report = prepared.engine.run(prepared.inputs, &Quiet).await;
    Ok((report, runtime.secrets))
}

fn outcome_problems(case: &Case, report: &RunReport) -> Vec<String> {
    let expect = &case.expect;
    let (outcome, step, error) = match &report.outcome {
        Outcome::Passed => (ExpectedOutcome::Passed, None, None),
        Outcome::Stopped { step } => (ExpectedOutcome::Stopped, Some(step.as_str()), None),
        Outcome::Failed { step, error } => {
            (ExpectedOutcome::Failed, Some(step.as_str()), Some(error.as_str()))
        }
    };
    let word = |o: ExpectedOutcome| format!("{o:?}").to_lowercase();
    let mut problems = Vec::new();
    if outcome != expect.outcome {
        let at = step.map(|s| format!(" at `{s}`")).unwrap_or_default();
        let why = error.map(|e| format!(": {e}")).unwrap_or_default();
        problems.push(format!(
            "expected the flow to be {}, but it {}{at}{why}",
            word(expect.outcome),
            word(outcome)
        ));
        return problems;
    }
    if let Some(want) = &expect.step
        && step != Some(want.as_str())
    {
        problems.push(format!(
            "expected it to end at step `{want}`, but it ended at `{}`",
            step.unwrap_or("(none)")
        ));
    }
    if let Some(code) = expect.code {
        // The code the failure carries, as data.
        let got = report.failure().and_then(|e| e.code());
        if got != Some(code) {
            let got = got.map_or("no code".to_string(), |c| format!("code {c}"));
            problems.push(format!("expected code {code}, got {got}"));
        }
    }
    problems
}
