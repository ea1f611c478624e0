//! The schema file users point their editor at is the one `check` uses, and it describes the
//! language completely: every shipped flow validates against it, every key has a description,
//! and no object accepts keys it does not list.

use serde_json::Value;
use std::path::Path;

fn schema() -> Value {
    schema_named("flow.schema.json")
}

fn schema_named(name: &str) -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn shipped_flows() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows");
    let found = flowrun::paths::flow_files(&[dir]);
    assert!(found.errors.is_empty());
    assert!(found.files.len() >= 2);
    // Flow tests have their own schema.
    found
        .files
        .into_iter()
        .filter(|p| !flowrun::paths::is_test_file(p))
        .collect()
}

#[test]
fn every_shipped_flow_validates_against_the_schema_file() {
    let flows = jsonschema::draft202012::new(&schema()).unwrap();
    let services = jsonschema::draft202012::new(&schema_named("service.schema.json")).unwrap();
    for path in shipped_flows() {
        let text = std::fs::read_to_string(&path).unwrap();
        let (doc, errors) = flowrun::flow::yaml::load(&text);
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let doc = doc.unwrap();
        // A service file (`kind: service`) has a schema of its own.
        let service = doc.value.get("kind").and_then(Value::as_str) == Some("service");
        let (validator, schema_file) = match service {
            true => (&services, "service.schema.json"),
            false => (&flows, "flow.schema.json"),
        };
        let errors: Vec<String> = validator.iter_errors(&doc.value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        // The modeline's path climbs out of the file's folder to the repository's schemas/.
        let depth = path
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .components()
            .count()
            - 1;
        let modeline = format!(
            "# yaml-language-server: $schema={}schemas/{schema_file}\n",
            "../".repeat(depth)
        );
        assert!(
            text.starts_with(&modeline),
            "{} lacks the schema modeline {modeline}",
            path.display()
        );
    }
}

#[test]
fn the_schema_file_is_the_one_check_uses() {
    let embedded: Value = serde_json::from_str(flowrun::flow::FLOW_SCHEMA).unwrap();
    assert_eq!(embedded, schema());
}

/// Walks every schema node, calling `f` with its pointer.
fn walk(node: &Value, pointer: &str, f: &mut dyn FnMut(&str, &Value)) {
    f(pointer, node);
    if let Value::Object(map) = node {
        for (k, v) in map {
            // `if` is a condition over values, not a description of an object.
            if matches!(k.as_str(), "enum" | "const" | "required" | "default" | "if") {
                continue;
            }
            walk(v, &format!("{pointer}/{k}"), f);
        }
    } else if let Value::Array(items) = node {
        for (i, v) in items.iter().enumerate() {
            walk(v, &format!("{pointer}/{i}"), f);
        }
    }
}

#[test]
fn every_key_is_described_and_every_object_is_closed() {
    let schema = schema();
    let mut problems = Vec::new();
    walk(&schema, "", &mut |pointer, node| {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            if node.get("additionalProperties") != Some(&Value::Bool(false)) {
                problems.push(format!("{pointer}: additionalProperties is not false"));
            }
            for (key, prop) in props {
                let described = prop.get("description").is_some()
                    || prop
                        .get("$ref")
                        .and_then(Value::as_str)
                        .and_then(|r| schema.pointer(r.trim_start_matches('#')))
                        .is_some_and(|d| d.get("description").is_some());
                if !described {
                    problems.push(format!("{pointer}/properties/{key}: no description"));
                }
            }
        }
    });
    assert!(problems.is_empty(), "{problems:#?}");
}
