//! The secret registry: every value that must never be shown is registered here, and every
//! piece of text that leaves the process (terminal, reports, transcripts, errors) is passed
//! through [`Secrets::redact`].

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A shared, growing set of secret values.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Arc<RwLock<Vec<String>>>);

impl Secrets {
    /// Registers `value`; empty values are ignored (they would mask every position).
    pub fn add(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut list = self.0.write().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|v| v == value) {
            list.push(value.to_string());
            // Longest first, so a secret that contains another is masked whole.
            list.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// `text` with every registered secret replaced by `***`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let list = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Cow::Borrowed(text);
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        out
    }

    /// Redacts every string inside a JSON value (keys included).
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s).into_owned()),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.redact_json(v)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (self.redact(k).into_owned(), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let s = Secrets::default();
        s.add("tok");
        s.add("tok-123");
        s.add("");
        assert_eq!(s.redact("a tok-123 b tok c"), "a *** b *** c");
        assert_eq!(
            s.redact_json(&serde_json::json!({"h": ["Bearer tok-123"], "tok": 1})),
            serde_json::json!({"h": ["Bearer ***"], "***": 1})
        );
    }
}
