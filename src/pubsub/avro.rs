//! Event payloads: one Avro binary datum each, written with the schema its `schema_id` names.
//! Schemas are fetched once per id and kept ([`Schemas`]); a decoded event is the JSON object
//! handlers read as `event`.

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The schemas seen so far, by id. Salesforce changes a topic's schema rarely; a handful of
/// ids over a service's life is normal, so the cache is bounded only to refuse a server that
/// sends a new id with every event.
#[derive(Default)]
pub struct Schemas {
    by_id: HashMap<String, Schema>,
}

/// The most bytes one length in a payload may claim (tonic's messages are at most 4 MiB).
const MOST_ALLOCATED: usize = 8 * 1024 * 1024;

/// The most schemas kept; past it the cache starts again.
const MOST_SCHEMAS: usize = 256;

impl Schemas {
    /// The schema `id`, if it was fetched before.
    pub fn get(&self, id: &str) -> Option<&Schema> {
        self.by_id.get(id)
    }

    /// Parses `json` and keeps it as schema `id`.
    pub fn insert(&mut self, id: &str, json: &str) -> Result<&Schema, String> {
        let schema =
            Schema::parse_str(json).map_err(|e| format!("schema `{id}` is not an Avro schema: {e}"))?;
        if self.by_id.len() >= MOST_SCHEMAS {
            self.by_id.clear();
        }
        Ok(self.by_id.entry(id.to_string()).or_insert(schema))
    }
}

/// The event `payload` as a JSON object: unions unwrapped, `long`s as numbers.
pub fn decode(schema: &Schema, payload: &[u8]) -> Result<Map<String, Value>, String> {
    // A length prefix is allocated before it is read: without a bound a 20-byte payload
    // claiming a 500 MB string would take 500 MB. No datum is larger than its gRPC message.
    apache_avro::util::max_allocation_bytes(MOST_ALLOCATED);
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
        .build()
        .map_err(|e| e.to_string())?;
    let mut bytes = payload;
    let value = reader
        .read_value(&mut bytes)
        .map_err(|e| format!("payload is not Avro of its schema: {e}"))?;
    match Value::try_from(value).map_err(|e| e.to_string())? {
        Value::Object(fields) => Ok(fields),
        other => Err(format!("payload is a {}, not a record", kind(&other))),
    }
}

/// `fields` written as one Avro datum of `schema` (the simulator's side): a missing optional
/// field is null.
pub fn encode(schema: &Schema, fields: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let record = Avro::try_from(Value::Object(fields.clone()))
        .and_then(|v| v.resolve(schema))
        .map_err(|e| format!("fields do not fit the schema: {e}"))?;
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(record))
        .map_err(|e| e.to_string())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "record",
    }
}

/// The Avro schema of a channel's custom platform event as Salesforce writes it: a record in
/// `com.sforce.eventbus` with `CreatedDate` (epoch milliseconds), `CreatedById` and each custom
/// text field as `["null", "string"]`.
pub fn platform_event_schema(event: &str, fields: &[&str]) -> String {
    let custom: Vec<Value> = fields
        .iter()
        .map(|f| serde_json::json!({"name": f, "type": ["null", "string"], "default": null}))
        .collect();
    let mut all = vec![
        serde_json::json!({"name": "CreatedDate", "type": "long"}),
        serde_json::json!({"name": "CreatedById", "type": "string"}),
    ];
    all.extend(custom);
    serde_json::json!({
        "type": "record",
        "name": event,
        "namespace": "com.sforce.eventbus",
        "fields": all,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_round_trips_through_avro_with_nulls_and_longs() {
        let json = platform_event_schema("Partner_Event__e", &["Type__c", "Payload__c"]);
        let mut schemas = Schemas::default();
        let schema = schemas.insert("s1", &json).unwrap().clone();
        let fields =
            json!({"CreatedDate": 1690344475579_i64, "CreatedById": "005x", "Type__c": "RoutingRequested"});
        let bytes = encode(&schema, fields.as_object().unwrap()).unwrap();
        let back = decode(&schema, &bytes).unwrap();
        assert_eq!(back["CreatedDate"], 1690344475579_i64);
        assert_eq!(back["Type__c"], "RoutingRequested");
        assert_eq!(back["Payload__c"], Value::Null);
    }

    #[test]
    fn hostile_payloads_are_errors_not_panics() {
        let json = platform_event_schema("E__e", &["A__c"]);
        let schema = Schema::parse_str(&json).unwrap();
        for bytes in [
            &[][..],
            &[0xff; 12][..],
            &[0x02, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f][..],
        ] {
            assert!(decode(&schema, bytes).is_err(), "{bytes:?}");
        }
        assert!(Schemas::default().insert("x", "{\"type\": \"nope\"}").is_err());
        // A string claiming 100 MB (zigzag varint of 104,857,600) after a valid long: refused
        // by the allocation bound, not allocated.
        let mut huge = vec![0x02];
        huge.extend([0x80, 0x80, 0x80, 0xe4, 0x00]);
        let err = decode(&schema, &huge).unwrap_err();
        assert!(
            err.contains("Unable to allocate 104857600 bytes (maximum allowed: 8388608)"),
            "{err}"
        );
    }
}
