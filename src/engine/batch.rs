//! Batches: one run per line of JSON inputs, a source of the run pool ([`super::pool`]). A
//! line is read only when a run slot is free, so memory stays flat however long the input; a
//! line that cannot be used fails alone; every run's result is a JSON line.

use super::outcome::{Outcome, RunReport};
use super::pool::{BatchOptions, BatchSummary, Controls, Job, JobSource, RunId, RunObserver, run_pool};
use super::run::Engine;
use crate::base::secrets::Secrets;
use crate::flow::inputs::InputRules;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// `{outcome, step (a stop's), outputs}`: the outputs are cloned, not put through `json!`,
/// which would serialize them again (this runs for every run of a batch).
fn ended_with_outputs(r: &RunReport, outcome: &str, step: Option<&String>) -> Value {
    let mut line = Map::with_capacity(3);
    line.insert("outcome".into(), outcome.into());
    if let Some(step) = step {
        line.insert("step".into(), step.as_str().into());
    }
    line.insert("outputs".into(), Value::Object(r.outputs.clone()));
    Value::Object(line)
}

/// One run's result line (`--results`): its line number (or id), outcome, outputs or the
/// failure.
pub fn result_line(id: &RunId, report: Result<&RunReport, &str>) -> Value {
    let mut line = match report {
        Err(error) => json!({ "outcome": "failed", "error": error }),
        Ok(r) => match &r.outcome {
            Outcome::Passed => ended_with_outputs(r, "passed", None),
            Outcome::Stopped { step } => ended_with_outputs(r, "stopped", Some(step)),
            Outcome::Failed { step, error } => {
                let mut line = json!({ "outcome": "failed", "step": step, "error": error });
                if let Some(code) = r.failure().and_then(|f| f.code()) {
                    line["code"] = json!(code);
                }
                // What the run had made before it failed (the conversation it created, ...):
                // what a person needs to clean up.
                let saved: Map<String, Value> = r
                    .steps
                    .iter()
                    .filter(|s| !s.saved.is_empty())
                    .map(|s| (s.id.clone(), Value::Object(s.saved.clone())))
                    .collect();
                if !saved.is_empty() {
                    line["saved"] = Value::Object(saved);
                }
                line
            }
        },
    };
    let (key, value) = match id {
        RunId::Line(n) => ("line", json!(n)),
        RunId::Named(name) => ("id", json!(name)),
    };
    if let Value::Object(map) = &mut line {
        map.shift_insert(0, key.into(), value);
        if let Ok(Some(run)) = report.map(|r| r.run_id.as_ref())
            && !matches!(id, RunId::Named(name) if name == run)
        {
            map.shift_insert(1, "run_id".into(), json!(run));
        }
    }
    line
}

/// One run's result as it ends. Its JSON line is made only when asked for: without `--results`
/// the command line makes only the first failures' lines.
pub struct ResultLine<'a> {
    id: &'a RunId,
    result: Result<&'a RunReport, &'a str>,
    secrets: [&'a Secrets; 2],
}

impl ResultLine<'_> {
    /// Whether the run failed (its inputs unusable included).
    pub fn failed(&self) -> bool {
        match self.result {
            Ok(report) => matches!(report.outcome, Outcome::Failed { .. }),
            Err(_) => true,
        }
    }

    /// The run's result line: its line number (or id), outcome, outputs or the failure (with
    /// the API code and what the run saved), the flow's and the run's secrets masked.
    pub fn json(&self) -> Value {
        let mut line = result_line(self.id, self.result);
        // A run that could not run says so in words already masked.
        if self.result.is_ok() {
            Secrets::mask_json_all(&self.secrets, &mut line);
        }
        line
    }
}

/// Hands each run's [`ResultLine`] on, as each run ends.
struct ResultLines {
    on_result: Arc<dyn Fn(ResultLine<'_>) + Send + Sync>,
    secrets: crate::base::secrets::Secrets,
}

impl RunObserver for ResultLines {
    fn run_finished(&self, id: &RunId, result: Result<&RunReport, &str>, own: &Secrets) {
        (self.on_result)(ResultLine {
            id,
            result,
            secrets: [&self.secrets, own],
        });
    }
}

/// The JSON-lines source: one job per non-blank line, read only when the pool asks.
struct JsonLines<R> {
    reader: R,
    buffer: Vec<u8>,
    number: u64,
    done: bool,
    engine: Arc<Engine>,
    rules: InputRules,
    base: Vec<(String, Value)>,
    overrides: Vec<(String, Value)>,
    id_field: Option<String>,
}

impl<R: AsyncBufRead + Unpin + Send> JobSource for JsonLines<R> {
    async fn next_job(&mut self) -> Option<Job> {
        if self.done {
            return None;
        }
        let read = next_line(&mut self.reader, &mut self.buffer).await;
        self.number += 1;
        let id = RunId::Line(self.number);
        // This line's secret inputs are its own: masked in its result, and no other line's.
        let secrets = Secrets::default();
        let inputs = match read {
            Ok(None) => return None,
            // A blank line is a mistake to report, not a line to skip silently.
            Ok(Some(Line::Text(line))) if line.trim().is_empty() => {
                Err("the line is blank; each line is a JSON object of inputs".into())
            }
            Ok(Some(Line::Text(line))) => match parse_line(self, &line, &secrets) {
                Ok((inputs, Some(named))) => {
                    return Some(Job {
                        id: RunId::Named(named),
                        inputs: Ok(inputs),
                        secrets,
                    });
                }
                Ok((inputs, None)) => Ok(inputs),
                Err(e) => Err(e),
            },
            // A line that cannot be read as text fails alone; the others go on.
            Ok(Some(Line::Unreadable(why))) => Err(why),
            // The input itself failed: this line fails, and nothing more is read.
            Err(e) => {
                self.done = true;
                Err(format!("cannot read input: {e}"))
            }
        };
        Some(Job { id, inputs, secrets })
    }
}

/// Runs the flow once per line of `lines` (each a JSON object of inputs). `base` inputs go under
/// each line's and `overrides` over them. `on_result` gets every run's result, in the order runs
/// finish, from whichever worker thread ran it.
pub async fn run_batch<R>(
    engine: Arc<Engine>,
    lines: R,
    base: Vec<(String, Value)>,
    overrides: Vec<(String, Value)>,
    options: BatchOptions,
    controls: Controls,
    on_result: Arc<dyn Fn(ResultLine<'_>) + Send + Sync>,
) -> BatchSummary
where
    R: AsyncBufRead + Unpin + Send,
{
    let source = JsonLines {
        reader: lines,
        buffer: Vec::new(),
        number: 0,
        done: false,
        rules: InputRules::new(&engine.flow().flow),
        engine: engine.clone(),
        base,
        overrides,
        id_field: options.id_field.clone(),
    };
    let observer = Arc::new(ResultLines {
        on_result,
        secrets: engine.flow().world.secrets.clone(),
    });
    run_pool(engine, source, options, controls, observer).await
}

/// The longest input line read; a longer one fails alone (its bytes are skipped, not kept).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// One line of input, as read.
enum Line {
    Text(String),
    /// Not UTF-8, or longer than [`MAX_LINE`]: why.
    Unreadable(String),
}

/// Reads the next line (without its `\n` or `\r\n`) into `buffer`, keeping at most
/// [`MAX_LINE`] bytes of it. `None` at the end of the input.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Line>> {
    buffer.clear();
    let mut total = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if total == 0 {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buffer.len() < MAX_LINE {
            let keep = take.min(MAX_LINE - buffer.len());
            buffer.extend_from_slice(&chunk[..keep]);
        }
        total += take;
        reader.consume(take);
        if done {
            break;
        }
    }
    if total > MAX_LINE {
        return Ok(Some(Line::Unreadable(format!(
            "the line is {total} bytes long, more than the {MAX_LINE} a line may hold"
        ))));
    }
    while buffer.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buffer.pop();
    }
    Ok(Some(match std::str::from_utf8(buffer) {
        Ok(text) => Line::Text(text.to_string()),
        Err(e) => Line::Unreadable(format!(
            "not UTF-8 text (an invalid byte at offset {})",
            e.valid_up_to()
        )),
    }))
}

/// Parses JSON, refusing an object that names a key twice (serde_json would keep the last
/// one silently; YAML files refuse it too).
fn strict_json(text: &str) -> Result<Value, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

    struct Strict;

    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.into()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(v) = seq.next_element_seed(Strict)? {
                items.push(v);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                match out.entry(key) {
                    serde_json::map::Entry::Occupied(given) => {
                        let key = given.key();
                        return Err(A::Error::custom(format!("the key `{key}` is given twice")));
                    }
                    serde_json::map::Entry::Vacant(slot) => {
                        slot.insert(map.next_value_seed(Strict)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// One input line: a JSON object, merged over `base` and under `overrides`, then checked.
/// A line's inputs, resolved, and its run id when `--id-field` names one.
fn parse_line<R>(
    source: &JsonLines<R>,
    line: &str,
    secrets: &Secrets,
) -> Result<(Map<String, Value>, Option<String>), String> {
    let flow = &source.engine.flow().flow;
    let value = strict_json(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut own) = value else {
        return Err("expected a JSON object of inputs".into());
    };
    let id = match &source.id_field {
        None => None,
        Some(field) => {
            // The id field is an input only when the flow declares one of that name.
            let value = match flow.inputs.iter().any(|(name, _)| name == field) {
                true => own.get(field).cloned(),
                false => own.remove(field),
            };
            match value {
                Some(Value::String(s)) if !s.is_empty() => Some(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => {
                    return Err(format!(
                        "the line has no `{field}` (its run id, --id-field): a string or a number"
                    ));
                }
            }
        }
    };
    let given: Vec<(String, Value)> = source
        .base
        .iter()
        .cloned()
        .chain(own)
        .chain(source.overrides.iter().cloned())
        .collect();
    let inputs = source.rules.resolve(flow, given, secrets).map_err(|errors| {
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        format!("invalid inputs: {}", messages.join("; "))
    })?;
    Ok((inputs, id))
}
