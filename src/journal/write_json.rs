//! A [`Write`] as JSON text: byte for byte what its serde serialization writes (which reads it
//! back), written field by field (see `base/json_text.rs`). Every group a run writes ahead of
//! the store is framed this way into the intent log.

use super::Write;
use crate::base::json_text::Object;

/// Appends `writes` to `out` as a JSON array.
pub(super) fn write_all(writes: &[Write], out: &mut Vec<u8>) {
    out.reserve(writes.iter().map(size).sum::<usize>() + 2);
    crate::base::json_text::array(out, writes, write_one);
}

/// About how long `write` is as JSON text: its JSON text and a little more (one allocation for
/// a whole frame, not one each time it doubles).
fn size(write: &Write) -> usize {
    256 + match write {
        Write::AttemptSent { request, .. } => request.get().len(),
        Write::StepDone { slot, saved, .. } => slot.get().len() + saved.get().len(),
        _ => 0,
    }
}

/// Appends `write` to `out`: `{"Variant":{fields}}`, fields in their declared order.
fn write_one(write: &Write, out: &mut Vec<u8>) {
    let mut outer = Object::new(out);
    match write {
        Write::RunStarted(start) => {
            let mut o = Object::new(outer.key("RunStarted"));
            o.str("id", &start.id)
                .str("flow_path", &start.flow_path)
                .str("flow_name", &start.flow_name)
                .str("flow_hash", &start.flow_hash)
                .value("inputs", &start.inputs)
                .int("at_ms", start.at_ms)
                .bool("queued", start.queued);
            if let Some(vars) = &start.vars {
                o.value("vars", vars);
            }
            o.end();
        }
        Write::Vars { run, vars } => Object::new(outer.key("Vars"))
            .str("run", run)
            .value("vars", vars)
            .end(),
        Write::AttemptSent {
            run,
            step,
            phase,
            number,
            request,
            at_ms,
        } => Object::new(outer.key("AttemptSent"))
            .str("run", run)
            .str("step", step)
            .str("phase", phase)
            .int("number", *number)
            .raw("request", request)
            .int("at_ms", *at_ms)
            .end(),
        Write::AttemptAnswered {
            run,
            step,
            number,
            status,
            error,
            at_ms,
        } => Object::new(outer.key("AttemptAnswered"))
            .str("run", run)
            .str("step", step)
            .int("number", *number)
            .opt_int("status", *status)
            .opt_str("error", error.as_deref())
            .int("at_ms", *at_ms)
            .end(),
        Write::StepDone {
            run,
            step,
            phase,
            status,
            slot,
            saved,
            error,
            at_ms,
        } => Object::new(outer.key("StepDone"))
            .str("run", run)
            .str("step", step)
            .str("phase", phase)
            .str("status", status)
            .raw("slot", slot)
            .raw("saved", saved)
            .opt_raw("error", error.as_deref())
            .int("at_ms", *at_ms)
            .end(),
        Write::Claimed { run, owner } => Object::new(outer.key("Claimed"))
            .str("run", run)
            .str("owner", owner)
            .end(),
        Write::RunFinished {
            run,
            status,
            outputs,
            error,
            at_ms,
        } => Object::new(outer.key("RunFinished"))
            .str("run", run)
            .str("status", status)
            .value("outputs", outputs)
            .opt_str("error", error.as_deref())
            .int("at_ms", *at_ms)
            .end(),
        Write::Cursor { name, value, at_ms } => Object::new(outer.key("Cursor"))
            .str("name", name)
            .str("value", value)
            .int("at_ms", *at_ms)
            .end(),
        Write::Applied { token, seq } => Object::new(outer.key("Applied"))
            .str("token", token)
            .opt_int("seq", *seq)
            .end(),
    }
    outer.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::RunStart;
    use serde_json::json;
    use serde_json::value::RawValue;

    /// Every kind of write, with text that needs escaping and fields that are absent.
    fn every_kind() -> Vec<Write> {
        let raw = |t: &str| RawValue::from_string(t.into()).unwrap();
        let text = "a \"quoted\"\\ \t\n\u{1} é 🙂 </x>";
        let start = |vars| {
            Write::RunStarted(RunStart {
                id: text.into(),
                flow_path: "/f.yaml".into(),
                flow_name: "f".into(),
                flow_hash: "ab".into(),
                inputs: json!({"k": text, "n": [1, 2.5, null, true]}),
                at_ms: -1,
                queued: true,
                vars,
            })
        };
        vec![
            start(None),
            start(Some(json!({"id": "i-1"}))),
            Write::Vars {
                run: "r".into(),
                vars: json!({}),
            },
            Write::AttemptSent {
                run: "r".into(),
                step: text.into(),
                phase: "finally",
                number: u32::MAX,
                request: raw(r#"{"method": "POST", "body": {"json": "x\"y"}}"#),
                at_ms: i64::MAX,
            },
            Write::AttemptAnswered {
                run: "r".into(),
                step: "s".into(),
                number: 1,
                status: Some(202),
                error: None,
                at_ms: 0,
            },
            Write::AttemptAnswered {
                run: "r".into(),
                step: "s".into(),
                number: 2,
                status: None,
                error: Some(text.into()),
                at_ms: 0,
            },
            Write::StepDone {
                run: "r".into(),
                step: "s".into(),
                phase: "steps",
                status: "not run",
                slot: raw(r#"{"status":202}"#),
                saved: raw("{}"),
                error: Some(raw(r#"{"kind":"status"}"#)),
                at_ms: 3,
            },
            Write::StepDone {
                run: "r".into(),
                step: "s".into(),
                phase: "steps",
                status: "ok",
                slot: raw("null"),
                saved: raw("{}"),
                error: None,
                at_ms: 3,
            },
            Write::Claimed {
                run: "r".into(),
                owner: "boot:1:ab".into(),
            },
            Write::RunFinished {
                run: "r".into(),
                status: "failed".into(),
                outputs: json!({"o": text}),
                error: Some(text.into()),
                at_ms: 4,
            },
            Write::RunFinished {
                run: "r".into(),
                status: "passed".into(),
                outputs: json!(null),
                error: None,
                at_ms: 4,
            },
            Write::Cursor {
                name: "pubsub:/event/E".into(),
                value: text.into(),
                at_ms: 5,
            },
            Write::Applied {
                token: "t".into(),
                seq: Some(u64::MAX),
            },
            Write::Applied {
                token: "t".into(),
                seq: None,
            },
        ]
    }

    #[test]
    fn every_write_is_the_text_serde_writes_for_it() {
        let writes = every_kind();
        let mut out = Vec::new();
        write_all(&writes, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&writes).unwrap()
        );
        let mut none = Vec::new();
        write_all(&[], &mut none);
        assert_eq!(none, b"[]");
    }
}
