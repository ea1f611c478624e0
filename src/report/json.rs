//! `--report FILE`: the whole run as JSON — inputs (secret ones masked), every step with every
//! attempt's request and response and timing, the outputs, the outcome.

use crate::base::secrets::Secrets;
use crate::engine::outcome::{Outcome, RunReport};
use serde_json::{Map, Value, json};

/// The JSON report of one finished run (`--report`, `--format json`), every known secret redacted.
/// `inputs` are the run's inputs as given; durations are in ms.
pub fn report(report: &RunReport, inputs: &Map<String, Value>, secrets: &Secrets) -> Value {
    let steps: Vec<Value> = report
        .steps
        .iter()
        .map(|s| {
            let attempts: Vec<Value> = s
                .attempts
                .iter()
                .map(|a| {
                    let mut v = json!({
                        "attempt": a.number,
                        "duration_ms": a.duration.as_secs_f64() * 1000.0,
                        "request": super::request_json(&a.request),
                    });
                    if let Some(r) = &a.response {
                        let headers: Map<String, Value> = r
                            .headers
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect();
                        v["response"] =
                            json!({ "status": r.status, "headers": headers, "body": r.body_value() });
                    }
                    if let Some(e) = &a.error {
                        v["error"] = json!(e);
                    }
                    v
                })
                .collect();
            let mut step = json!({
                "id": s.id,
                "phase": match s.phase { crate::engine::outcome::Phase::Steps => "steps", _ => "finally" },
                "status": s.status.word(),
                "duration_ms": s.duration.as_secs_f64() * 1000.0,
                "attempts": attempts,
                "saved": s.saved,
            });
            if !s.vars.is_empty() {
                step["vars"] = json!(s.vars);
            }
            if s.resumed {
                step["resumed"] = json!(true);
            }
            if let crate::engine::outcome::StepStatus::Failed(e) = &s.status {
                step["error"] = json!(e.to_string());
                step["failure"] = e.to_json();
            }
            step
        })
        .collect();
    let outcome = match &report.outcome {
        Outcome::Passed => json!({ "result": "passed" }),
        Outcome::Stopped { step } => json!({ "result": "stopped", "step": step }),
        Outcome::Failed { step, error } => {
            let mut v = json!({ "result": "failed", "step": step, "error": error });
            if let Some(failure) = report.failure() {
                v["failure"] = failure.to_json();
            }
            v
        }
    };
    let mut value = json!({
        "flow": report.flow,
        "outcome": outcome,
        "duration_ms": report.duration.as_secs_f64() * 1000.0,
        "inputs": inputs,
        "vars": report.vars,
        "steps": steps,
        "outputs": report.outputs,
    });
    if let Some(id) = &report.run_id {
        value["run_id"] = json!(id);
    }
    secrets.mask_json(&mut value);
    value
}
