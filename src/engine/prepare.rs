//! Everything between a flow file and a ready engine: check, inputs, environment, compile,
//! auth. Any failure here means nothing was sent.

use super::run::{Engine, RunError};
use crate::expr::templates::RenderError;
use crate::expr::world::World;
use crate::flow::inputs::{InputError, parse_assignment, resolve};
use crate::flow::{Diagnostic, Source, load_checked};
use crate::http::Transport;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// Why a flow could not be made ready to run.
#[derive(Debug)]
pub enum PrepareError {
    /// The flow file has errors.
    Flow(Vec<Diagnostic>),
    /// The inputs are wrong.
    Inputs(Vec<InputError>),
    /// Environment variables the flow reads are not set: `(is_secret, name)`.
    Env(Vec<(bool, String)>),
    /// The flow's templates did not compile.
    Compile(RenderError),
    /// The engine could not be set up: auth, or a template it renders first.
    Engine(RunError),
    /// More than one of the above, each reported.
    Several(Vec<PrepareError>),
}

impl std::fmt::Display for PrepareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrepareError::Flow(d) => write!(f, "{} problem(s) in the flow", d.len()),
            PrepareError::Inputs(errors) => {
                let lines: Vec<String> = errors.iter().map(|e| format!("error: {e}")).collect();
                write!(f, "{}", lines.join("\n"))
            }
            PrepareError::Env(missing) => {
                let lines: Vec<String> = missing
                    .iter()
                    .map(|(secret, name)| {
                        let func = if *secret { "secret" } else { "env" };
                        format!("error: environment variable `{name}` is not set\n  = hint: the flow reads it with {func}('{name}')")
                    })
                    .collect();
                write!(f, "{}", lines.join("\n"))
            }
            PrepareError::Compile(e) => write!(f, "error: {e}"),
            PrepareError::Several(all) => {
                let parts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
                write!(f, "{}", parts.join("\n"))
            }
            PrepareError::Engine(e) => write!(f, "error: {e}"),
        }
    }
}

/// A flow ready to run, with its resolved inputs.
pub struct Prepared {
    /// The engine, ready to run the flow.
    pub engine: Engine,
    /// The run's inputs: given values over the defaults, all checked.
    pub inputs: Map<String, Value>,
    /// Warnings from checking the flow.
    pub warnings: Vec<Diagnostic>,
}

/// Checks `source`, resolves inputs (`given` from a file, then `assignments` as `name=value`),
/// makes sure every environment variable the flow names is set, compiles, and sets up auth.
pub fn prepare(
    source: &Source,
    given: Vec<(String, Value)>,
    assignments: &[String],
    runtime: World,
    transport: Arc<dyn Transport>,
) -> Result<Prepared, PrepareError> {
    let checked = load_checked(source).map_err(PrepareError::Flow)?;
    let mut given = given;
    let mut errors = Vec::new();
    for a in assignments {
        match parse_assignment(&checked.flow, a) {
            Ok(pair) => given.push(pair),
            Err(e) => errors.push(e),
        }
    }
    let inputs = resolve(&checked.flow, given, &runtime.secrets);
    let warnings = checked.warnings.clone();
    // Every problem at once: bad inputs and unset environment variables together.
    let engine = build(checked, source, runtime, transport);
    let (inputs, engine) = match (inputs, engine) {
        (Ok(inputs), Ok(engine)) if errors.is_empty() => (inputs, engine),
        (inputs, engine) => {
            errors.extend(inputs.err().unwrap_or_default());
            let mut problems = Vec::new();
            if !errors.is_empty() {
                problems.push(PrepareError::Inputs(errors));
            }
            if let Err(e) = engine {
                problems.push(e);
            }
            return Err(match problems.len() {
                1 => problems.remove(0),
                _ => PrepareError::Several(problems),
            });
        }
    };
    Ok(Prepared {
        engine,
        inputs,
        warnings,
    })
}

/// Everything but inputs, for batch runs: the engine is built once and each run's inputs are
/// resolved with the flow's input rules against `engine.flow().flow`.
pub fn prepare_engine(
    source: &Source,
    runtime: World,
    transport: Arc<dyn Transport>,
) -> Result<(Engine, Vec<Diagnostic>), PrepareError> {
    let checked = load_checked(source).map_err(PrepareError::Flow)?;
    let warnings = checked.warnings.clone();
    Ok((build(checked, source, runtime, transport)?, warnings))
}

/// Compiles a checked flow, makes sure its environment variables are set, and sets up auth.
fn build(
    checked: crate::flow::Checked,
    source: &Source,
    runtime: World,
    transport: Arc<dyn Transport>,
) -> Result<Engine, PrepareError> {
    let base_dir = source.path.parent().map(PathBuf::from).unwrap_or_default();
    let compiled =
        crate::flow::compile::compile_checked(checked, &source.display_name(), runtime.clone(), base_dir)
            .map_err(PrepareError::Compile)?;
    let missing: Vec<(bool, String)> = compiled
        .env_names
        .iter()
        .filter(|(_, name)| (runtime.env)(name).is_none())
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(PrepareError::Env(missing));
    }
    // Mask every secret the flow names from the start, even one only a later step reads.
    for (secret, name) in &compiled.env_names {
        if *secret && let Some(v) = (runtime.env)(name) {
            runtime.secrets.add(&v);
        }
    }
    Engine::new(Arc::new(compiled), transport).map_err(PrepareError::Engine)
}
