//! The secret registry: every value that must never be shown is registered here, and every
//! piece of text that leaves the process (terminal, reports, transcripts, errors) is passed
//! through [`Secrets::redact`].

use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::{Arc, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// A shared, growing set of secret values.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Arc<RwLock<Vec<String>>>);

impl Secrets {
    /// Registers `value`, with every form flowrun itself may give it on the way out (see
    /// `encodings`); empty values are ignored (they would mask every position).
    pub fn add(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut list = self.0.write().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|v| v == value) {
            return;
        }
        for form in encodings(value) {
            if !list.contains(&form) {
                list.push(form);
            }
        }
        // Longest first, so a secret that contains another is masked whole.
        list.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// Registers every string and number inside a JSON value (a secret input of any type).
    pub fn add_json(&self, value: &serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => self.add(s),
            Value::Number(n) => self.add(&n.to_string()),
            Value::Array(items) => items.iter().for_each(|v| self.add_json(v)),
            Value::Object(map) => map.values().for_each(|v| self.add_json(v)),
            // `true` or `null` cannot be told apart from any other.
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// `text` with every registered secret replaced by `***`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        Secrets::with_masker(&[self], |masker| masker.text(text))
    }

    /// Redacts every string inside a JSON value (keys included).
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        let mut value = value.clone();
        self.mask_json(&mut value);
        value
    }

    /// Masks every registered secret inside `value`, in place (keys included). Only what holds
    /// a secret is rewritten: a journal masks every request and answer it keeps, and copying
    /// each tree to find nothing cost a tenth of a journaled batch's CPU.
    pub fn mask_json(&self, value: &mut serde_json::Value) {
        Secrets::mask_json_all(&[self], value);
    }

    /// [`Secrets::mask_json`] with the secrets of every registry in `all`, in one walk.
    pub fn mask_json_all(all: &[&Secrets], value: &mut serde_json::Value) {
        Secrets::with_masker(all, |masker| {
            if !masker.lists.is_empty() {
                mask_value(masker, value);
            }
        })
    }

    /// Calls `f` with a `Masker` for the secrets of every registry in `all` (each read once).
    pub fn with_masker<R>(all: &[&Secrets], f: impl FnOnce(&Masker) -> R) -> R {
        let guards: Vec<_> = all
            .iter()
            .map(|s| s.0.read().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let lists: Vec<&[String]> = guards
            .iter()
            .map(|g| g.as_slice())
            .filter(|l| !l.is_empty())
            .collect();
        f(&Masker::new(&lists))
    }
}

/// Writes text and JSON with the secrets of some registries masked, as
/// [`Secrets::mask_json_all`] would leave them, without copying what it writes first (see
/// [`Secrets::with_masker`]).
pub struct Masker<'a> {
    lists: &'a [&'a [String]],
    /// The length of the shortest secret: a shorter text holds none. A journal masks every
    /// key and string of every request and answer, most of them shorter than any token.
    shortest: usize,
    /// Whether a secret could be the text of a JSON number (else numbers are not looked at).
    numeric: bool,
}

impl<'a> Masker<'a> {
    fn new(lists: &'a [&'a [String]]) -> Masker<'a> {
        let all = || lists.iter().flat_map(|l| l.iter());
        let number_char = |c: u8| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E');
        Masker {
            lists,
            shortest: all().map(String::len).min().unwrap_or(usize::MAX),
            numeric: all().any(|s| s.bytes().all(number_char)),
        }
    }

    /// `text` with every secret replaced, or `None` when it holds none.
    fn masked(&self, text: &str) -> Option<String> {
        if text.len() < self.shortest {
            return None;
        }
        let mut out: Option<String> = None;
        for secret in self.lists.iter().flat_map(|l| l.iter()) {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(secret.as_str()) {
                out = Some(current.replace(secret.as_str(), MASK));
            }
        }
        out
    }

    /// Whether the number `n` is a secret (a secret number is a number only in JSON).
    fn secret_number(&self, n: &serde_json::Number) -> bool {
        self.numeric && {
            let text = n.to_string();
            self.lists.iter().any(|l| l.contains(&text))
        }
    }

    /// `text` with every secret masked.
    pub fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.masked(text).map_or(Cow::Borrowed(text), Cow::Owned)
    }

    /// `value`, masked, ready to serialize.
    pub fn json<'v>(&'v self, value: &'v serde_json::Value) -> MaskedJson<'v> {
        MaskedJson { masker: self, value }
    }

    /// `value` as JSON text, masked.
    pub fn raw(&self, value: &serde_json::Value) -> Box<RawValue> {
        raw(&self.json(value))
    }

    /// The object `map` as JSON text, masked.
    pub fn raw_map(&self, map: &serde_json::Map<String, serde_json::Value>) -> Box<RawValue> {
        raw(&MaskedMap { masker: self, map })
    }
}

/// `value` as JSON text. Serializing JSON values cannot fail (their keys are strings): `null`
/// if it ever did.
pub fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// A JSON value written with its secrets masked (see [`Masker::json`]).
pub struct MaskedJson<'a> {
    masker: &'a Masker<'a>,
    value: &'a serde_json::Value,
}

struct MaskedMap<'a> {
    masker: &'a Masker<'a>,
    map: &'a serde_json::Map<String, serde_json::Value>,
}

impl serde::Serialize for MaskedJson<'_> {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        use serde_json::Value;
        let masker = self.masker;
        if masker.lists.is_empty() {
            return self.value.serialize(out);
        }
        match self.value {
            Value::String(s) => out.serialize_str(&masker.text(s)),
            // A secret number is a number only in JSON: the mask is text.
            Value::Number(n) if masker.secret_number(n) => out.serialize_str(MASK),
            Value::Array(items) => {
                let mut seq = out.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&masker.json(item))?;
                }
                seq.end()
            }
            Value::Object(map) => MaskedMap { masker, map }.serialize(out),
            Value::Number(_) | Value::Bool(_) | Value::Null => self.value.serialize(out),
        }
    }
}

impl serde::Serialize for MaskedMap<'_> {
    fn serialize<S: serde::Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let masker = self.masker;
        let rekeyed: serde_json::Map<String, serde_json::Value>;
        let entries = match self.map.keys().any(|k| masker.masked(k).is_some()) {
            // Keys masked alike become one, as when the map is built again in place.
            true => {
                rekeyed = self
                    .map
                    .iter()
                    .map(|(k, v)| (masker.text(k).into_owned(), v.clone()))
                    .collect();
                &rekeyed
            }
            false => self.map,
        };
        let mut map = out.serialize_map(Some(entries.len()))?;
        for (k, v) in entries {
            map.serialize_entry(k, &masker.json(v))?;
        }
        map.end()
    }
}

fn mask_value(masker: &Masker, value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Some(m) = masker.masked(s) {
                *s = m;
            }
        }
        // A secret number is a number only in JSON: the mask is text.
        Value::Number(n) if masker.secret_number(n) => *value = Value::String(MASK.into()),
        Value::Number(_) => {}
        Value::Array(items) => items.iter_mut().for_each(|v| mask_value(masker, v)),
        Value::Object(map) => {
            if map.keys().any(|k| masker.masked(k).is_some()) {
                // Keys cannot be changed in place: the map is built again, in its order.
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (masker.masked(&k).unwrap_or(k), v))
                    .collect();
            }
            map.values_mut().for_each(|v| mask_value(masker, v));
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// The forms a secret can take in what flowrun writes: as it is, percent-encoded in a URL path,
/// form-encoded in a query or form body (`!` → `%21`, space → `+`), and escaped inside a JSON
/// string. Multipart parts carry the value as it is.
fn encodings(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    forms.push(form_urlencoded::byte_serialize(value.as_bytes()).collect());
    if let Ok(mut url) = url::Url::parse("http://host/") {
        url.set_path(value);
        forms.push(url.path().trim_start_matches('/').to_string());
    }
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json[1..json.len() - 1].to_string());
    }
    forms.retain(|f| !f.is_empty());
    forms.dedup();
    forms
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

    #[test]
    fn every_encoding_flowrun_applies_is_masked() {
        let s = Secrets::default();
        // Real Salesforce tokens hold `!`; this one also a space, a quote and a slash.
        s.add("00D!tok en\"/x");
        for shown in [
            "?access_token=00D%21tok+en%22%2Fx",
            "/api/00D!tok%20en%22/x",
            r#"{"t":"00D!tok en\"/x"}"#,
        ] {
            assert!(!s.redact(shown).contains("00D"), "{shown} → {}", s.redact(shown));
        }
        s.add_json(&serde_json::json!(918273));
        assert_eq!(
            s.redact_json(&serde_json::json!({"pin": 918273, "other": 5, "text": "pin 918273"})),
            serde_json::json!({"pin": "***", "other": 5, "text": "pin ***"})
        );
    }

    #[test]
    fn masking_in_place_reads_every_registry_once_and_leaves_the_rest_alone() {
        let flow = Secrets::default();
        flow.add("tok-1");
        let own = Secrets::default();
        own.add("pin 42");
        own.add_json(&serde_json::json!(918273));
        let mut value = serde_json::json!({
            "Authorization": "Bearer tok-1",
            "note": "pin 42 and tok-1",
            "tok-1": {"n": 918273, "m": 5},
            "list": ["clean", "pin 42"],
            "untouched": {"a": [1, true, null]}
        });
        Secrets::mask_json_all(&[&flow, &own], &mut value);
        assert_eq!(
            value,
            serde_json::json!({
                "Authorization": "Bearer ***",
                "note": "*** and ***",
                "***": {"n": "***", "m": 5},
                "list": ["clean", "***"],
                "untouched": {"a": [1, true, null]}
            })
        );
        // The map's order is kept when a key is masked.
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["Authorization", "note", "***", "list", "untouched"]);
        // No registry, nothing to mask: the value is as it was.
        let mut plain = serde_json::json!({"tok-1": 918273});
        Secrets::mask_json_all(&[&Secrets::default()], &mut plain);
        assert_eq!(plain, serde_json::json!({"tok-1": 918273}));
    }

    /// `value` with every string, key and number masked, one by one, without shortcuts.
    fn naive(registry: &Secrets, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        let list = registry.0.read().unwrap().clone();
        // Every secret, longest first, replaced wherever it is.
        let text = |t: &str| {
            list.iter()
                .fold(t.to_string(), |t, secret| t.replace(secret.as_str(), MASK))
        };
        match value {
            Value::String(s) => Value::from(text(s)),
            Value::Number(n) if list.contains(&n.to_string()) => Value::from(MASK),
            Value::Array(items) => Value::Array(items.iter().map(|v| naive(registry, v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (text(k), naive(registry, v))).collect())
            }
            other => other.clone(),
        }
    }

    #[test]
    fn a_masker_writes_what_masking_in_place_leaves() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        use serde_json::Value;
        // Strings and keys built from pieces of the secrets (and of the mask itself), so
        // that secrets turn up whole, in part, twice, and as keys that mask alike.
        let piece = || prop::sample::select(vec!["", "tok", "-1", "x", "*", "918273", "pin 42", "a"]);
        let text = move || prop::collection::vec(piece(), 0..4).prop_map(|p| p.concat());
        let leaf = move || {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                prop::sample::select(vec![918273i64, 5, -1, 0]).prop_map(Value::from),
                Just(serde_json::json!(1.5)),
                text().prop_map(Value::from),
            ]
        };
        let value = leaf().prop_recursive(4, 32, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((text(), inner), 0..4)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        });
        let secrets = prop::collection::vec(
            prop::sample::select(vec!["tok-1", "918273", "pin 42", "*", "-1", "x", "1.5", "tok-1x"]),
            0..3,
        );
        let mut runner = TestRunner::new(Config {
            cases: 2000,
            ..Config::default()
        });
        runner
            .run(&(value, secrets), |(value, secrets)| {
                let registry = Secrets::default();
                secrets.iter().for_each(|s| registry.add(s));
                let mut in_place = value.clone();
                Secrets::mask_json_all(&[&registry], &mut in_place);
                let written = Secrets::with_masker(&[&registry], |m| m.raw(&value));
                prop_assert_eq!(written.get(), in_place.to_string());
                // Both go through the masker's shortcuts (a text shorter than every secret, no
                // secret a number could be): they leave what masking every string would.
                prop_assert_eq!(in_place, naive(&registry, &value));
                Ok(())
            })
            .unwrap();
    }
}
