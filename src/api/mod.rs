//! What flowrun knows about the Interaction Service: its operations (method + path) and the
//! project's JSON Schemas of their request bodies (`schemas/interaction-service/`). A step that
//! calls one of these operations has its body checked — by `check` where the body is literal,
//! by `run` once rendered — so a typo like `ExplicityOptedIn` is caught before anything is sent.

mod answers;
pub(crate) mod bodies;

use answers::{field_in, merge_unknown};

use crate::base::diagnostic::Diagnostic;
use crate::base::schema::{Locator, validate};
use jsonschema::Validator;
use serde_json::Value;
use std::sync::OnceLock;

/// One operation of the Interaction Service.
pub struct Operation {
    /// HTTP method in uppercase, such as `PATCH`; requests match it case-insensitively.
    pub method: &'static str,
    /// Path as the description writes it, such as `/api/v1/consent`; a request's path ends with it.
    pub path: &'static str,
    /// For multipart operations, the part that carries the JSON body.
    pub json_part: Option<&'static str>,
    /// The status the description documents for success (`202` for routingResult).
    pub success: u16,
    schema: Value,
    validator: Validator,
    response: Validator,
    response_schema: Value,
}

/// What the description says of one operation: its request and success-response schemas.
struct Described {
    method: &'static str,
    path: &'static str,
    json_part: Option<&'static str>,
    success: u16,
    request: &'static str,
    response: &'static str,
}

macro_rules! described {
    ($method:literal $path:literal $part:expr, $success:literal, $name:literal) => {
        Described {
            method: $method,
            path: $path,
            json_part: $part,
            success: $success,
            request: include_str!(concat!(
                "../../schemas/interaction-service/",
                $name,
                ".request.json"
            )),
            response: include_str!(concat!(
                "../../schemas/interaction-service/",
                $name,
                ".response.json"
            )),
        }
    };
}

/// Every operation of the public description (`inbound-interaction-api.yaml`).
const DESCRIBED: [Described; 15] = [
    described!("POST" "/api/v1/interactions" Some("json"), 202, "interactions"),
    described!("PATCH" "/api/v1/consent" None, 200, "consent"),
    described!("POST" "/api/v1/route" None, 202, "route"),
    described!("DELETE" "/api/v1/route" None, 202, "route-delete"),
    described!("POST" "/api/v1/agentWork" None, 202, "agent-work"),
    described!("PATCH" "/api/v1/agentWork" None, 202, "agent-work-update"),
    described!("POST" "/api/v1/routingResult" None, 202, "routing-result"),
    described!("PATCH" "/api/v1/capabilities" None, 200, "capabilities"),
    described!("POST" "/api/v1/conversationHistory" None, 202, "conversation-history"),
    described!("POST" "/api/v1/acknowledgement" None, 200, "acknowledgement"),
    described!("POST" "/api/v1/participant" None, 200, "participant"),
    described!("POST" "/api/v1/conversation" None, 202, "conversation"),
    described!("POST" "/api/v1/conversationEntry" None, 202, "conversation-entry"),
    described!("GET" "/api/v1/conversationEntry" None, 200, "conversation-entries"),
    described!("POST" "/api/v1/messagingSession" None, 200, "messaging-session"),
];

/// The `{code, message}` shape of error answers.
const ERROR_SCHEMA: &str = include_str!("../../schemas/interaction-service/error.response.json");

fn compile(text: &str) -> (Value, Validator) {
    let schema: Value = serde_json::from_str(text).expect("interaction-service schema is valid JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("interaction-service schema compiles");
    (schema, validator)
}

/// Every described operation, schemas compiled on first use.
pub fn operations() -> &'static [Operation] {
    static OPS: OnceLock<Vec<Operation>> = OnceLock::new();
    OPS.get_or_init(|| {
        DESCRIBED
            .iter()
            .map(|d| {
                let (schema, validator) = compile(d.request);
                Operation {
                    method: d.method,
                    path: d.path,
                    json_part: d.json_part,
                    success: d.success,
                    schema,
                    validator,
                    response_schema: serde_json::from_str(d.response)
                        .expect("interaction-service schema is valid JSON"),
                    response: compile(d.response).1,
                }
            })
            .collect()
    })
}

/// Whether `body` has the description's error shape, `{code, message}`.
pub fn is_error_body(body: &Value) -> bool {
    static ERROR: OnceLock<Validator> = OnceLock::new();
    ERROR.get_or_init(|| compile(ERROR_SCHEMA).1).is_valid(body)
}

/// The operation a request calls: the method matches and the path (a URL path, with or without
/// a prefix before `/api/v1`, query ignored) ends with the operation's path.
pub fn operation(method: &str, path: &str) -> Option<&'static Operation> {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    operations()
        .iter()
        .find(|op| op.method.eq_ignore_ascii_case(method) && path.ends_with(op.path))
}

impl Operation {
    /// `PATCH /api/v1/consent`
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The raw schema problems of `body`: instance pointer and the validator's message.
    pub fn problems(&self, body: &Value) -> Vec<(String, String)> {
        self.validator
            .iter_errors(body)
            .map(|e| (e.instance_path().as_str().to_string(), e.to_string()))
            .collect()
    }

    /// Whether `body` fits: the quick yes/no asked before every request; [`Operation::check`]
    /// says what is wrong.
    pub fn accepts(&self, body: &Value) -> bool {
        self.validator.is_valid(body)
    }

    /// Every schema problem with `body` as diagnostics, worded and placed by `loc`.
    pub fn check(&self, loc: &dyn Locator, body: &Value) -> Vec<Diagnostic> {
        validate(loc, &self.schema, &self.validator, body)
    }

    /// Whether an answer of this operation (a success, or the error body every operation may
    /// answer) can hold the field `path` (`["errors", "errorType"]`). When it cannot: the index of
    /// the first name it cannot hold, and the names the answer has at that level.
    pub fn response_field(&self, path: &[&str]) -> Option<(usize, Vec<String>)> {
        // Any answer may carry its API code as `errorDetail.code` (flowrun reads codes there
        // too), whether or not the operation's own schema lists it.
        if path.first() == Some(&"errorDetail") {
            return None;
        }
        static ERROR: OnceLock<Value> = OnceLock::new();
        let error =
            ERROR.get_or_init(|| serde_json::from_str(ERROR_SCHEMA).expect("error schema is valid JSON"));
        let answers = [(&self.response_schema, &self.response_schema), (error, error)];
        let mut unknown: Option<(usize, Vec<String>)> = None;
        for (root, node) in answers {
            match field_in(root, node, path, 0) {
                None => return None,
                Some((at, known)) => merge_unknown(&mut unknown, at, known),
            }
        }
        unknown
    }

    /// How a success answer's body breaks the description's response schema, if it does.
    pub fn response_problems(&self, body: &Value) -> Vec<String> {
        self.response
            .iter_errors(body)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }
}

/// A locator for a rendered body: no source positions, places named by their key.
pub struct Rendered;

impl Locator for Rendered {
    fn key_span(&self, _: &str) -> crate::base::source::Span {
        Default::default()
    }
    fn value_span(&self, _: &str) -> crate::base::source::Span {
        Default::default()
    }
    fn context(&self, pointer: &str) -> String {
        if pointer.is_empty() {
            "the body".into()
        } else {
            crate::base::schema::last_key(pointer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(method: &str, path: &str, body: Value) -> Vec<String> {
        let op = operation(method, path).unwrap();
        op.check(&Rendered, &body)
            .iter()
            .map(|d| {
                format!(
                    "{}{}",
                    d.message,
                    d.hint.as_ref().map(|h| format!(" — {h}")).unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn operations_are_found_by_method_and_path() {
        assert_eq!(
            operation("patch", "/api/v1/consent").unwrap().label(),
            "PATCH /api/v1/consent"
        );
        assert_eq!(
            operation("DELETE", "/prefix/api/v1/route?x=1").unwrap().label(),
            "DELETE /api/v1/route"
        );
        assert!(operation("GET", "/api/v1/consent").is_none());
        assert_eq!(
            operation("POST", "/api/v1/conversation").unwrap().label(),
            "POST /api/v1/conversation"
        );
        assert_eq!(
            operation("POST", "/x/api/v1/conversationEntry").unwrap().label(),
            "POST /api/v1/conversationEntry"
        );
        assert_eq!(operation("POST", "/api/v1/routingResult").unwrap().success, 202);
    }

    #[test]
    fn a_misspelled_consent_status_names_the_allowed_values() {
        let body = json!({"endUserClientId": "u", "channelAddressIdentifier": "c", "consentStatus": "ExplicityOptedIn"});
        assert_eq!(
            problems("PATCH", "/api/v1/consent", body),
            [
                "`ExplicityOptedIn` is not an allowed value for `consentStatus` — did you mean `ExplicitlyOptedIn`? allowed: OptedOut, ImplicitlyOptedIn, ExplicitlyOptedIn, DoublyOptedIn"
            ]
        );
    }

    #[test]
    fn agent_work_rules() {
        let body = json!({"userId": "u", "workItemId": "0Mw5g", "capacityWeight": 1, "capacityPercentage": 5, "routingContxt": {}});
        assert_eq!(
            problems("POST", "/api/v1/agentWork", body),
            [
                "`workItemId` must be at least 15 characters, found 5",
                "unknown key `routingContxt` in the body — did you mean `routingContext`?",
                "give either `capacityWeight` or `capacityPercentage`, not both (10013)",
            ]
        );
    }
}
