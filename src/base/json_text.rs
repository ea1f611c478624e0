//! JSON text written field by field, for what is written for every request of every run (a
//! journal's intent log and its rows): the same text `serde_json` writes, at a fraction of the
//! cost. serde's serializer spends a few hundred instructions on each field (the key escaped
//! byte by byte, every piece a call of its own); here a string with nothing to escape — almost
//! every key and value — is copied as it is, and JSON text already made is copied whole.

use serde_json::value::RawValue;

/// An object being written into `out`: `{` now, `}` at [`Object::end`].
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    /// Starts an object.
    pub fn new(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Starts the value of field `key` (a name written in the code: nothing in it to escape):
    /// what is written next is that value.
    #[inline]
    pub fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(!needs_escape(key.as_bytes()), "{key}");
        self.out.reserve(key.len() + 4);
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string field.
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        string(self.key(key), value);
        self
    }

    /// A string field, or `null`.
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.null(key),
        }
    }

    /// A field of JSON text already made.
    pub fn raw(&mut self, key: &'static str, value: &RawValue) -> &mut Self {
        self.key(key).extend_from_slice(value.get().as_bytes());
        self
    }

    /// A field of JSON text already made, or `null`.
    pub fn opt_raw(&mut self, key: &'static str, value: Option<&RawValue>) -> &mut Self {
        match value {
            Some(v) => self.raw(key, v),
            None => self.null(key),
        }
    }

    /// A whole-number field.
    pub fn int(&mut self, key: &'static str, value: impl itoa::Integer) -> &mut Self {
        self.key(key)
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// A whole-number field, or `null`.
    pub fn opt_int(&mut self, key: &'static str, value: Option<impl itoa::Integer>) -> &mut Self {
        match value {
            Some(v) => self.int(key, v),
            None => self.null(key),
        }
    }

    /// A `true` or `false` field.
    pub fn bool(&mut self, key: &'static str, value: bool) -> &mut Self {
        let text: &[u8] = if value { b"true" } else { b"false" };
        self.key(key).extend_from_slice(text);
        self
    }

    /// A field holding a JSON value (written by serde: values are few and small).
    pub fn value(&mut self, key: &'static str, value: &serde_json::Value) -> &mut Self {
        let out = self.key(key);
        // Writing a JSON value into memory cannot fail (its keys are strings).
        let _ = serde_json::to_writer(out, value);
        self
    }

    /// A `null` field.
    pub fn null(&mut self, key: &'static str) -> &mut Self {
        self.key(key).extend_from_slice(b"null");
        self
    }

    /// Ends the object.
    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// Writes `items` as a JSON array, each as `write` writes it.
pub fn array<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(item, out);
    }
    out.push(b']');
}

/// Whether JSON escapes any of `bytes`: `"`, `\\` and the control characters (not `/`, not DEL,
/// not anything beyond ASCII). Eight bytes at a time (a byte-by-byte loop cost about 200
/// instructions for a run id).
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether a byte of `x` is zero, or below `n` (at most 0x80): exact for the word as a
    // whole, which is all that is asked.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap_or_default());
        if below(x, 0x20) || zero(x ^ (ONES * u64::from(b'"'))) || zero(x ^ (ONES * u64::from(b'\\'))) {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes `text` as a JSON string, escaped as `serde_json` escapes it.
#[inline]
pub fn string(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into memory cannot fail.
        let _ = serde_json::to_writer(out, text);
    }
}

/// Writes `value` as compact JSON text, the very bytes `serde_json::to_writer` writes: keys in
/// the map's order, strings escaped by [`string`], floats by serde_json. For request bodies,
/// written on every request.
pub fn value(out: &mut Vec<u8>, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes()),
            (None, Some(i)) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
            // Writing a number into memory cannot fail.
            _ => {
                let _ = serde_json::to_writer(out, n);
            }
        },
        Value::String(s) => string(out, s),
        Value::Array(items) => array(out, items, |item, out| self::value(out, item)),
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, k);
                out.push(b':');
                self::value(out, v);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_to_escape_is_found_wherever_it_is() {
        for len in 0..40 {
            for at in 0..len {
                for bad in [b'"', b'\\', 0u8, 0x1f, b'\n'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = bad;
                    assert!(needs_escape(&bytes), "{bytes:?}");
                }
                // Bytes next to the ones escaped (and beyond ASCII) are not.
                for good in [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = good;
                    assert!(!needs_escape(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            serde_json::json!(null),
            serde_json::json!({}),
            serde_json::json!([]),
            serde_json::json!({"z": 1, "a": [true, false, null], "m": {"x": "y\"\n\u{1}é"}}),
            serde_json::json!([
                0,
                -1,
                18446744073709551615u64,
                -9223372036854775808i64,
                0.1,
                -2.5e-300,
                1e300,
                3.0
            ]),
            serde_json::json!({"": "", "\\": [[[[{}]]]], "k\u{7f}": 12.0}),
        ];
        for v in values {
            let mut out = Vec::new();
            value(&mut out, &v);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let texts = [
            "",
            "plain",
            "a \"quote\"",
            "back\\slash",
            "tab\there",
            "line\nbreak",
            "\u{0}\u{1f}",
            "del\u{7f}",
            "/slash/",
            "é ü 漢 🙂",
            "\u{2028}",
            "\r\u{8}\u{c}",
        ];
        for text in texts {
            let mut out = Vec::new();
            string(&mut out, text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    #[test]
    fn an_object_is_what_serde_json_writes_for_it() {
        let raw = RawValue::from_string(r#"{"a": [1, "x"]}"#.into()).unwrap();
        let mut out = Vec::new();
        Object::new(&mut out)
            .str("s", "v\"1")
            .opt_str("none", None)
            .raw("raw", &raw)
            .opt_raw("no_raw", None)
            .int("n", -42i64)
            .opt_int("m", Some(7u16))
            .bool("b", true)
            .value("v", &serde_json::json!({"k": ["é", 1.5, null]}))
            .end();
        // The JSON text already made is kept as it was, spaces and all.
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"s":"v\"1","none":null,"raw":{"a": [1, "x"]},"no_raw":null,"n":-42,"m":7,"b":true,"v":{"k":["é",1.5,null]}}"#
        );
    }
}
