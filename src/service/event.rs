//! An event as handlers read it: `event` (its fields, its id and type) and `payload` (the
//! payload field's JSON string, parsed; the `channelData` inside it, a JSON string too, parsed).

use serde_json::{Map, Value};

/// One event, as a source received it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's id (the Pub/Sub EventUuid, or a webhook's `Idempotency-Key`): the run id.
    pub id: String,
    /// The event's fields, as the Avro record decodes (or the webhook's JSON body).
    pub fields: Map<String, Value>,
}

/// The names of the fields holding the event type and the payload, rendered once.
#[derive(Debug, Clone, Default)]
pub struct FieldNames {
    /// The type field (`event.type`).
    pub type_field: Option<String>,
    /// The payload field (`payload`).
    pub payload_field: Option<String>,
}

/// The longest event id taken: it becomes the run id.
pub const MAX_ID: usize = 200;

/// Whether `id` can be a run id: 1 to [`MAX_ID`] characters, none a control character.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && !id.chars().any(char::is_control)
}

impl Event {
    /// When Salesforce published the event: its `CreatedDate`, in milliseconds since the epoch.
    pub fn created_ms(&self) -> Option<i64> {
        self.fields.get("CreatedDate").and_then(Value::as_i64)
    }

    /// The scope `when` and the inputs read: `{event: {...fields, id, type}, payload}`.
    pub fn scope(&self, names: &FieldNames) -> Value {
        let mut event = self.fields.clone();
        event.insert("id".into(), Value::String(self.id.clone()));
        let kind = names
            .type_field
            .as_ref()
            .and_then(|f| self.fields.get(f))
            .cloned()
            .unwrap_or(Value::Null);
        event.insert("type".into(), kind);
        let payload = names
            .payload_field
            .as_ref()
            .and_then(|f| self.fields.get(f))
            .map(parsed)
            .unwrap_or(Value::Null);
        serde_json::json!({ "event": event, "payload": payload })
    }
}

/// The payload field's value with its JSON strings parsed: the field itself, and
/// `payload.routingParameters.channelData` inside it. A string that is not JSON stays as it is.
fn parsed(field: &Value) -> Value {
    let mut value = as_json(field);
    if let Some(data) = value.pointer_mut("/payload/routingParameters/channelData") {
        *data = as_json(data);
    }
    value
}

fn as_json(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_payload_and_its_channel_data_are_parsed() {
        let channel_data = json!({"eventId": "e-1", "conversationId": "c-1"}).to_string();
        let payload = json!({
            "channelAddressIdentifier": "addr",
            "payload": {"conversationIdentifier": "c-1", "routingParameters": {"queueId": null, "channelData": channel_data}}
        });
        let event = Event {
            id: "u-1".into(),
            fields: json!({"CreatedDate": 1690344475579_i64, "Type__c": "RoutingRequested", "Payload__c": payload.to_string()})
                .as_object()
                .unwrap()
                .clone(),
        };
        let names = FieldNames {
            type_field: Some("Type__c".into()),
            payload_field: Some("Payload__c".into()),
        };
        let scope = event.scope(&names);
        assert_eq!(scope["event"]["type"], "RoutingRequested");
        assert_eq!(scope["event"]["id"], "u-1");
        assert_eq!(
            scope["payload"]["payload"]["routingParameters"]["channelData"]["eventId"],
            "e-1"
        );
        assert_eq!(event.created_ms(), Some(1690344475579));
    }
}
