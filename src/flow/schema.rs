//! The schema stage: validates a loaded flow against `schemas/flow.schema.json`, worded by
//! [`crate::base::schema`].

use crate::base::diagnostic::Diagnostic;
use crate::base::schema::validate;
use crate::base::yaml::Document;
use jsonschema::Validator;
use serde_json::Value;
use std::sync::OnceLock;

/// The flow schema users see, compiled into the binary so `check` and the editor agree.
pub const FLOW_SCHEMA: &str = include_str!("../../schemas/flow.schema.json");

struct Compiled {
    schema: Value,
    validator: Validator,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let schema: Value = serde_json::from_str(FLOW_SCHEMA).expect("flow schema is valid JSON");
        let validator = jsonschema::draft202012::new(&schema).expect("flow schema compiles");
        Compiled { schema, validator }
    })
}

/// Validates `doc` against the flow schema. The caller sorts and de-duplicates.
pub fn check(doc: &Document) -> Vec<Diagnostic> {
    let c = compiled();
    validate(doc, &c.schema, &c.validator, &doc.value)
}
