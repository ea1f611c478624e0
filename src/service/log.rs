//! The service's log: one line per thing that happened, as text (`time level message k=v ...`)
//! or as JSON objects (`--log-format json`), on standard output. Every line goes through the
//! secrets mask first.

use crate::base::secrets::Secrets;
use serde_json::{Map, Value};
use std::io::Write;

/// Where the service writes what happens.
#[derive(Clone)]
pub struct Logger {
    json: bool,
    secrets: Secrets,
}

impl Logger {
    /// Lines (`json` false) or JSON objects, masking `secrets`.
    pub fn new(json: bool, secrets: Secrets) -> Logger {
        Logger { json, secrets }
    }

    /// Something that happened as planned.
    pub fn info(&self, message: &str, fields: &[(&str, Value)]) {
        self.write("info", message, fields);
    }

    /// Something that went wrong and that the service works around (a reconnect).
    pub fn warn(&self, message: &str, fields: &[(&str, Value)]) {
        self.write("warn", message, fields);
    }

    /// Something the service cannot go on from (it exits next).
    pub fn error(&self, message: &str, fields: &[(&str, Value)]) {
        self.write("error", message, fields);
    }

    fn write(&self, level: &str, message: &str, fields: &[(&str, Value)]) {
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let line = if self.json {
            let mut object = Map::new();
            object.insert("time".into(), Value::String(time));
            object.insert("level".into(), Value::String(level.into()));
            object.insert("message".into(), Value::String(message.into()));
            for (k, v) in fields {
                object.insert((*k).into(), v.clone());
            }
            Value::Object(object).to_string()
        } else {
            let mut line = format!("{time} {level:<4} {message}");
            for (k, v) in fields {
                match v {
                    Value::String(s) if !s.contains(' ') && !s.is_empty() => {
                        line.push_str(&format!(" {k}={s}"))
                    }
                    other => line.push_str(&format!(" {k}={other}")),
                }
            }
            line
        };
        let line = self.secrets.redact(&line);
        // A closed stdout (a pipe gone) must not stop the service.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}
