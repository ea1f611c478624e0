//! The shapes of the operations' answers, read from their response schemas: which fields an
//! answer can hold, so `check` can refuse a read of one it never has.

use serde_json::Value;

/// Keeps the deepest unknown name of several answers' shapes, with every name known there.
pub(super) fn merge_unknown(into: &mut Option<(usize, Vec<String>)>, at: usize, known: Vec<String>) {
    match into {
        Some((deepest, names)) if *deepest == at => {
            for n in known {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        Some((deepest, _)) if *deepest > at => {}
        _ => *into = Some((at, known)),
    }
}

/// Walks `path` through the schema `node` (references resolved in `root`): `None` when the
/// shape allows it (or does not say), else where it breaks and the names allowed there.
pub(super) fn field_in(
    root: &Value,
    node: &Value,
    path: &[&str],
    depth: usize,
) -> Option<(usize, Vec<String>)> {
    // The project's schemas nest a few levels; the bound keeps a `$ref` cycle finite.
    if depth > 32 {
        return None;
    }
    if let Some(target) = node.get("$ref").and_then(Value::as_str) {
        let pointer = target.strip_prefix('#')?;
        return field_in(root, root.pointer(pointer)?, path, depth + 1);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array) {
            let mut unknown = None;
            for b in branches {
                match field_in(root, b, path, depth + 1) {
                    None => return None,
                    Some((at, known)) => merge_unknown(&mut unknown, at, known),
                }
            }
            return unknown;
        }
    }
    let (first, rest) = path.split_first()?;
    if let Some(items) = node.get("items") {
        return if first.parse::<usize>().is_ok() {
            field_in(root, items, rest, depth + 1).map(|(at, k)| (at + 1, k))
        } else {
            None
        };
    }
    let props = node.get("properties").and_then(Value::as_object)?;
    if let Some(child) = props.get(*first) {
        return field_in(root, child, rest, depth + 1).map(|(at, k)| (at + 1, k));
    }
    // An open object (`additionalProperties` other than `false`, left out of the schemas of
    // maps such as `contextParamMap`) holds any name.
    match node.get("additionalProperties") {
        Some(Value::Bool(false)) | None => Some((0, props.keys().cloned().collect())),
        _ => None,
    }
}
