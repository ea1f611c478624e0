//! The Interaction Service's rules and error codes, as the API description documents them.
//! Each endpoint is a function from (config, state, request) to an answer, kept in a file named
//! after what it models (`interactions`, `routing`, `work`, `session`); this file holds what
//! every call shares: headers, faults, the body schema gate and the dispatch. The HTTP layer
//! only carries requests and answers.

pub use super::codes::{Answer, error, message};
use super::config::SimConfig;
use super::state::State;
use serde_json::{Value, json};

/// A request as the rules see it.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// HTTP method, such as `POST`.
    pub method: String,
    /// URL path, without the query.
    pub path: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, read according to its `Content-Type`.
    pub body: SimBody,
}

/// A request body as the simulator read it: multipart when the `Content-Type` says so, else JSON.
#[derive(Debug, Clone)]
pub enum SimBody {
    /// No body, or only whitespace.
    Empty,
    /// A body that parsed as JSON.
    Json(Value),
    /// Multipart parts: name, content type, bytes.
    Multipart(Vec<(String, Option<String>, Vec<u8>)>),
    /// A body that is neither JSON nor well-formed multipart; holds why.
    Invalid(String),
    /// Larger than the simulator reads (past the API's 25 MB file limit).
    TooLarge,
}

/// A string field of a JSON body, or "" when it is absent or not a string.
pub(super) fn text<'a>(body: &'a Value, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

pub(super) fn header<'a>(req: &'a SimRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Body fields whose problems the documented rules answer with their own codes (10021 for a
/// consent value, 10012 for a work item id, ...); the schema leaves those to the rules.
const RULED: &[&str] = &[
    "/to",
    "/from",
    "/interactions",
    "/consentStatus",
    "/endUserClientId",
    "/channelAddressIdentifier",
    "/conversationIdentifier",
    "/routingType",
    "/routingInfo",
    "/workItemId",
    "/userId",
    "/capacityWeight",
    "/capacityPercentage",
    "/success",
    "/externallyRouted",
    "/errorMessage",
    "/workId",
    "/contextType",
    "/status",
    "/operation",
    "/operationBy",
    "/sessionId",
];

/// A body that does not fit the operation's schema (`schemas/interaction-service/`) in a way no
/// rule covers: 10100, with the schema's reason.
pub(super) fn malformed(req: &SimRequest, body: &Value) -> Option<Answer> {
    let op = crate::api::operation(&req.method, &req.path)?;
    // What the schema says of the body as a whole (a missing field, weight and percentage
    // both given) the rules say with their own codes; an unknown field they do not.
    let ruled = |p: &str, reason: &str| {
        (p.is_empty() && !reason.starts_with("Additional properties"))
            || RULED.iter().any(|r| p == *r || p.starts_with(&format!("{r}/")))
    };
    let (_, reason) = op
        .problems(body)
        .into_iter()
        .find(|(pointer, reason)| !ruled(pointer, reason))?;
    Some(super::codes::error_with(10100, &reason))
}

/// The simulated service: configuration, state and accepted tokens.
pub struct Service {
    /// The configuration it started from; [`Service::reset`] goes back to it.
    pub config: SimConfig,
    /// What the org holds now.
    pub state: State,
    /// Bearer tokens accepted now: the configured ones and those issued by the token endpoint,
    /// less any expired by `token_expires_after`.
    pub tokens: Vec<String>,
    /// The channel's platform events; kept across a reset, as Salesforce keeps its event bus.
    pub bus: std::sync::Arc<super::events::Bus>,
    rng: u64,
}

impl Service {
    /// A service in the configured start state, its fault sequence seeded from `faults.seed`.
    pub fn new(config: SimConfig) -> Self {
        let state = State::seeded(&config);
        let tokens = config.tokens.clone();
        let rng = config.faults.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let bus = std::sync::Arc::new(super::events::Bus::new(&config));
        Service {
            config,
            state,
            tokens,
            bus,
            rng,
        }
    }

    /// Back to the start state (`POST /sim/reset`): state, tokens and fault sequence as configured.
    pub fn reset(&mut self) {
        let bus = self.bus.clone();
        *self = Service::new(self.config.clone());
        self.bus = bus;
    }

    /// A number in [0, 1) from a seeded xorshift sequence, so fault runs are repeatable.
    fn draw(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Checks the headers every call needs; returns the bearer token.
    fn authenticate(&mut self, req: &SimRequest) -> Result<String, Answer> {
        for name in ["Authorization", "OrgId", "AuthorizationContext", "RequestId"] {
            if header(req, name).is_none_or(|v| v.trim().is_empty()) {
                return Err(missing_header(name));
            }
        }
        let request_id = header(req, "RequestId").unwrap_or_default();
        if !is_uuid(request_id) {
            return Err(Answer {
                status: 400,
                body: json!({ "code": 10016, "message": format!("{} RequestId must be a UUID, got `{request_id}`", message(10016)) }),
            });
        }
        let token = header(req, "Authorization")
            .unwrap_or_default()
            .strip_prefix("Bearer ")
            .unwrap_or_default()
            .to_string();
        if !self.tokens.contains(&token) {
            return Err(error(10004));
        }
        if let Some(limit) = self.config.faults.token_expires_after {
            let uses = self.state.token_uses.entry(token.clone()).or_default();
            *uses += 1;
            if *uses > limit {
                self.tokens.retain(|t| *t != token);
                return Err(error(10004));
            }
        }
        let org = header(req, "OrgId").unwrap_or_default();
        if org != self.config.org_id {
            return Err(Answer {
                status: 400,
                body: json!({ "code": 10016, "message": format!("{} OrgId `{org}` does not match the token's org", message(10016)) }),
            });
        }
        let context = header(req, "AuthorizationContext").unwrap_or_default();
        if !self.config.channels.iter().any(|c| c.definition == context) {
            return Err(error(10005));
        }
        Ok(token)
    }

    /// An injected fault, if the dice say so.
    fn fault(&mut self) -> Option<Answer> {
        let f = &self.config.faults;
        let rates = [
            (None, f.rate_503),
            (Some(10019), f.rate_10019),
            (Some(10094), f.rate_10094),
            (Some(10055), f.rate_10055),
            (Some(10056), f.rate_10056),
        ];
        if rates.iter().map(|(_, r)| r).sum::<f64>() <= 0.0 {
            return None;
        }
        let r = self.draw();
        let mut bound = 0.0;
        for (code, rate) in rates {
            bound += rate;
            if r < bound {
                return Some(match code {
                    Some(code) => error(code),
                    None => Answer::new(
                        503,
                        json!({ "code": 503, "message": "Service Unavailable (simulated)" }),
                    ),
                });
            }
        }
        None
    }

    /// Answers one API request. Consent and acknowledgement answer their errors in their own
    /// response shape (the description's `default` response for them), the rest `{code, message}`.
    pub fn handle(&mut self, req: &SimRequest) -> Answer {
        let answer = self.answer(req);
        let own_shape = matches!(
            (req.method.as_str(), req.path.as_str()),
            ("PATCH", "/api/v1/consent") | ("POST", "/api/v1/acknowledgement")
        );
        match (own_shape, answer.body.get("code").and_then(Value::as_u64)) {
            (true, Some(code)) if answer.status >= 400 => Answer::new(
                answer.status,
                json!({ "success": false, "errorDetail": { "code": code, "message": answer.body["message"] } }),
            ),
            _ => answer,
        }
    }

    fn answer(&mut self, req: &SimRequest) -> Answer {
        self.accept_due_work(std::time::Instant::now());
        let Some(op) = crate::api::operation(&req.method, &req.path)
            .filter(|op| req.path == op.path)
            .map(|op| op.label())
        else {
            return not_modelled(req);
        };
        const MODELLED: [&str; 9] = [
            "POST /api/v1/interactions",
            "PATCH /api/v1/consent",
            "POST /api/v1/route",
            "DELETE /api/v1/route",
            "POST /api/v1/agentWork",
            "PATCH /api/v1/agentWork",
            "POST /api/v1/routingResult",
            "POST /api/v1/acknowledgement",
            "POST /api/v1/messagingSession",
        ];
        if !MODELLED.contains(&op.as_str()) {
            return not_modelled(req);
        }
        if let Err(a) = self.authenticate(req) {
            return a;
        }
        // The description requires `AuthorizationContextType` on `PATCH /agentWork` alone of the
        // operations modelled here.
        if op == "PATCH /api/v1/agentWork" {
            match header(req, "AuthorizationContextType") {
                None => return missing_header("AuthorizationContextType"),
                Some(
                    "ConversationChannelDefinition"
                    | "EmbeddedMessagingChannel"
                    | "ExternalConversationParticipant",
                ) => {}
                Some(_) => return error(10093),
            }
        }
        if let Some(a) = self.fault() {
            return a;
        }
        if let SimBody::TooLarge = req.body {
            return error(10008);
        }
        if req.path == "/api/v1/interactions" {
            return self.interactions(req);
        }
        let body = match &req.body {
            SimBody::Json(v) if v.is_object() => v.clone(),
            _ => return error(10100),
        };
        if let Some(answer) = malformed(req, &body) {
            return answer;
        }
        match op.as_str() {
            "PATCH /api/v1/consent" => self.consent(req, &body),
            "POST /api/v1/route" => self.route(&body),
            "DELETE /api/v1/route" => self.delete_route(&body),
            "POST /api/v1/agentWork" => self.agent_work(&body),
            "PATCH /api/v1/agentWork" => self.update_agent_work(&body),
            "POST /api/v1/acknowledgement" => self.acknowledgement(&body),
            "POST /api/v1/messagingSession" => self.messaging_session(&body),
            _ => self.routing_result(&body),
        }
    }
}

/// 10016 for a header the call must send.
fn missing_header(name: &str) -> Answer {
    super::codes::error_with(10016, &format!("Missing header: {name}"))
}

/// 404 in the description's error shape, for an operation the simulator does not model (or
/// one the description does not have).
fn not_modelled(req: &SimRequest) -> Answer {
    Answer::new(
        404,
        json!({ "code": 404, "message": format!("The simulator does not model {} {}.", req.method, req.path) }),
    )
}
