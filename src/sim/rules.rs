//! The Interaction Service's rules and error codes, as the API documents them. Each endpoint is
//! a function from (config, state, request) to an answer; the HTTP layer only carries them.

use super::config::SimConfig;
use super::state::{AgentWork, Conversation, EndUser, Psr, State, end_user_key};
use serde_json::{Value, json};

/// A request as the rules see it.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub method: String,
    pub path: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: SimBody,
}

#[derive(Debug, Clone)]
pub enum SimBody {
    Empty,
    Json(Value),
    /// Multipart parts: name, content type, bytes.
    Multipart(Vec<(String, Option<String>, Vec<u8>)>),
    Invalid(String),
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// The documented message of each code the simulator answers with.
pub fn message(code: u32) -> &'static str {
    match code {
        10001 => {
            "The AuthorizationContext in the request isn't valid for the provided value in the \"to\"/\"channelAddressIdentifier\" field."
        }
        10004 => "The supplied Authorization access token is not valid.",
        10005 => {
            "The AuthorizationContext for the request isn't valid based on the supplied Authorization access token."
        }
        10012 => "Enter a valid workItemId for the MessagingSession ID.",
        10013 => "Enter either a capacityPercentage or a capacityWeight, but not both.",
        10014 => "Enter a capacity weight greater than or equal to 0.",
        10015 => "Enter a capacity percentage between 0 and 100, inclusive.",
        10016 => "Enter a valid header.",
        10017 => "The channelAddressIdentifier provided does not exist.",
        10018 => "The conversation identifier is not valid.",
        10019 => "The service is in read-only mode because an org migration is in progress. Try again later.",
        10020 => "The endUserClientId provided is not valid.",
        10021 => "Enter a valid Consent Status Enum value.",
        10022 => "Cannot update Consent Status where the Consent Owner of the channel is not set to Partner.",
        10023 => "Cannot update Consent Status where the SupportsKeywords of the channel is true.",
        10024 => "For Flow based Routing, flow ID and Fallback Queue ID are required fields.",
        10027 => "The provided \"to\" field isn't valid.",
        10028 => "The provided \"from\" field isn't valid.",
        10029 => "The provided interaction list isn't valid.",
        10030 => "Specify either a flow or a queue to Route API.",
        10031 => "The channelAddressIdentifier provided is not active.",
        10032 => "Specified Queue ID is invalid.",
        10033 => "Should not pass in error message when routing result success.",
        10034 => "Error message missing when routing result false.",
        10094 => "The request failed due to a timeout from a downstream service. Please try again later.",
        10100 => {
            "A request body is required and can't be empty. Provide a valid payload and ensure data is included and correctly formatted."
        }
        10105 => "End User not found.",
        15103 => "The Messaging End User is not Fully Opted In",
        15106 => "Invalid User Id parameter",
        15109 => "An active AgentWork record already exists with the same UserId and WorkItemId.",
        15110 => "Enter a valid workItemId for the MessagingSession ID.",
        _ => "An internal server error occurred. Please contact Salesforce Support.",
    }
}

/// The HTTP status that goes with a code; the same every time.
pub fn status_of(code: u32) -> u16 {
    match code {
        10004 => 401,
        10001 | 10003 | 10005 => 403,
        10019 => 503,
        10094 => 504,
        _ => 400,
    }
}

/// An error answer `{code, message}`.
pub fn error(code: u32) -> Answer {
    Answer {
        status: status_of(code),
        body: json!({ "code": code, "message": message(code) }),
    }
}

/// An error answer in the consent / routingResult shape: `{success: false, errorDetail}`.
fn detail_error(code: u32) -> Answer {
    Answer {
        status: status_of(code),
        body: json!({ "success": false, "errorDetail": { "code": code, "message": message(code) } }),
    }
}

/// A string field of a JSON body, or "" when it is absent or not a string.
fn text<'a>(body: &'a Value, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn header<'a>(req: &'a SimRequest, name: &str) -> Option<&'a str> {
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
];

/// A body that does not fit the operation's schema (`schemas/interaction-service/`) in a way no
/// rule covers: 10100, with the schema's reason.
fn malformed(req: &SimRequest, body: &Value) -> Option<Answer> {
    let op = crate::api::operation(&req.method, &req.path)?;
    let ruled = |p: &str| p.is_empty() || RULED.iter().any(|r| p == *r || p.starts_with(&format!("{r}/")));
    let (_, reason) = op
        .problems(body)
        .into_iter()
        .find(|(pointer, _)| !ruled(pointer))?;
    Some(Answer {
        status: status_of(10100),
        body: json!({ "code": 10100, "message": format!("{} {reason}", message(10100)) }),
    })
}

/// The simulated service: configuration, state and accepted tokens.
pub struct Service {
    pub config: SimConfig,
    pub state: State,
    pub tokens: Vec<String>,
    rng: u64,
}

impl Service {
    pub fn new(config: SimConfig) -> Self {
        let state = State::seeded(&config);
        let tokens = config.tokens.clone();
        let rng = config.faults.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Service {
            config,
            state,
            tokens,
            rng,
        }
    }

    pub fn reset(&mut self) {
        *self = Service::new(self.config.clone());
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
                return Err(Answer {
                    status: 400,
                    body: json!({ "code": 10016, "message": format!("{} Missing header: {name}", message(10016)) }),
                });
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
        let f = self.config.faults.clone();
        if f.rate_503 + f.rate_10019 + f.rate_10094 <= 0.0 {
            return None;
        }
        let r = self.draw();
        if r < f.rate_503 {
            return Some(Answer {
                status: 503,
                body: json!({ "message": "Service Unavailable (simulated)" }),
            });
        }
        if r < f.rate_503 + f.rate_10019 {
            return Some(error(10019));
        }
        if r < f.rate_503 + f.rate_10019 + f.rate_10094 {
            return Some(error(10094));
        }
        None
    }

    /// Answers one API request.
    pub fn handle(&mut self, req: &SimRequest) -> Answer {
        let known = matches!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/api/v1/interactions")
                | ("PATCH", "/api/v1/consent")
                | ("POST" | "DELETE", "/api/v1/route")
                | ("POST", "/api/v1/agentWork")
                | ("POST", "/api/v1/routingResult")
        );
        if !known {
            return Answer {
                status: 404,
                body: json!({ "message": format!("no such operation: {} {}", req.method, req.path) }),
            };
        }
        if let Err(a) = self.authenticate(req) {
            return a;
        }
        if let Some(a) = self.fault() {
            return a;
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
        match (req.method.as_str(), req.path.as_str()) {
            ("PATCH", "/api/v1/consent") => self.consent(req, &body),
            ("POST", "/api/v1/route") => self.route(&body),
            ("DELETE", "/api/v1/route") => self.delete_route(&body),
            ("POST", "/api/v1/agentWork") => self.agent_work(&body),
            _ => self.routing_result(&body),
        }
    }

    fn interactions(&mut self, req: &SimRequest) -> Answer {
        let SimBody::Multipart(parts) = &req.body else {
            return error(10100);
        };
        let Some((_, _, bytes)) = parts.iter().find(|(name, _, _)| name == "json") else {
            return error(10100);
        };
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
            return error(10100);
        };
        let to = text(&body, "to");
        let from = text(&body, "from");
        if to.is_empty() {
            return error(10027);
        }
        if from.is_empty() {
            return error(10028);
        }
        let Some(channel) = self.config.channel(to).cloned() else {
            return error(10017);
        };
        if !channel.active {
            return error(10031);
        }
        if header(req, "AuthorizationContext") != Some(channel.definition.as_str()) {
            return error(10001);
        }
        let list = body.get("interactions").and_then(Value::as_array);
        let valid = list.is_some_and(|l| {
            l.len() == 1
                && l[0].get("interactionType").and_then(Value::as_str) == Some("EntryInteraction")
                && l[0].get("timestamp").is_some_and(Value::is_number)
                && l[0]
                    .pointer("/payload/abstractMessage/staticContent/text")
                    .is_some_and(Value::is_string)
        });
        if !valid {
            return error(10029);
        }
        let key = end_user_key(to, from);
        self.state.end_users.entry(key).or_insert_with(|| EndUser {
            channel: to.into(),
            client_id: from.into(),
            consent_status: None,
        });
        let conversation = self.state.uuid();
        let work_item = self.state.sf_id("0Mw");
        self.state.conversations.insert(
            conversation.clone(),
            Conversation {
                channel: to.into(),
                end_user: from.into(),
                work_item_id: work_item.clone(),
            },
        );
        let id = self.state.uuid();
        Answer {
            status: 202,
            body: json!({ "conversationIdentifier": conversation, "id": id, "workItemIds": [work_item], "success": true }),
        }
    }

    fn consent(&mut self, req: &SimRequest, body: &Value) -> Answer {
        const STATUSES: [&str; 4] = [
            "OptedOut",
            "ImplicitlyOptedIn",
            "ExplicitlyOptedIn",
            "DoublyOptedIn",
        ];
        let address = text(body, "channelAddressIdentifier");
        let client = text(body, "endUserClientId");
        let status = text(body, "consentStatus");
        if !STATUSES.contains(&status) {
            return detail_error(10021);
        }
        if client.is_empty() {
            return detail_error(10020);
        }
        let Some(channel) = self.config.channel(address).cloned() else {
            return detail_error(10017);
        };
        if header(req, "AuthorizationContext") != Some(channel.definition.as_str()) {
            return detail_error(10001);
        }
        if channel.consent_owner != "Partner" {
            return detail_error(10022);
        }
        if channel.supports_keywords {
            return detail_error(10023);
        }
        let Some(user) = self.state.end_users.get_mut(&end_user_key(address, client)) else {
            return detail_error(10105);
        };
        user.consent_status = Some(status.to_string());
        Answer {
            status: 200,
            body: json!({ "success": true }),
        }
    }

    fn route(&mut self, body: &Value) -> Answer {
        let id = text(body, "conversationIdentifier").to_string();
        let Some(conversation) = self.state.conversations.get(&id).cloned() else {
            return error(10018);
        };
        let routing_type = text(body, "routingType").to_string();
        if !["Initial", "Transfer", "Conference"].contains(&routing_type.as_str()) {
            return Answer {
                status: 400,
                body: json!({ "code": 400, "message": "routingType must be Initial, Transfer or Conference" }),
            };
        }
        let info = body.get("routingInfo").cloned().unwrap_or(Value::Null);
        let queue = info.get("queueId").and_then(Value::as_str);
        let flow = info.get("flow");
        match (queue, flow) {
            (_, Some(flow)) => {
                let flow_id = flow.get("flowId").and_then(Value::as_str);
                let fallback = flow.get("queueId").and_then(Value::as_str);
                let (Some(flow_id), Some(fallback)) = (flow_id, fallback) else {
                    return error(10024);
                };
                if !self.config.flows.iter().any(|f| f == flow_id) {
                    return error(10024);
                }
                if !self.config.queues.iter().any(|q| q == fallback) {
                    return error(10032);
                }
            }
            (Some(q), None) => {
                if !self.config.queues.iter().any(|c| c == q) {
                    return error(10032);
                }
            }
            (None, None) => return error(10030),
        }
        let consent = self
            .state
            .end_users
            .get(&end_user_key(&conversation.channel, &conversation.end_user))
            .and_then(|u| u.consent_status.clone());
        if !matches!(
            consent.as_deref(),
            Some("ImplicitlyOptedIn" | "ExplicitlyOptedIn" | "DoublyOptedIn")
        ) {
            return error(15103);
        }
        let psr = Psr {
            psr_id: self.state.sf_id("0JR"),
            routing_correlation_id: self.state.uuid(),
            routing_type,
            routing_info: info,
        };
        let answer = json!({
            "success": true,
            "routingCorrelationId": psr.routing_correlation_id,
            "psrId": psr.psr_id,
            "workItemId": conversation.work_item_id,
            "reasonForNotRouting": null,
            "errors": [],
        });
        self.state.psrs.insert(id, psr);
        Answer {
            status: 202,
            body: answer,
        }
    }

    fn delete_route(&mut self, body: &Value) -> Answer {
        let id = text(body, "conversationIdentifier");
        if !self.state.conversations.contains_key(id) {
            return error(10018);
        }
        self.state.psrs.remove(id);
        Answer {
            status: 202,
            body: json!({ "success": true }),
        }
    }

    fn agent_work(&mut self, body: &Value) -> Answer {
        let work_item = text(body, "workItemId").to_string();
        if work_item.chars().count() != 15 {
            return error(10012);
        }
        let Some((conversation_id, _)) = self.state.conversation_by_work_item(&work_item) else {
            return error(15110);
        };
        let conversation_id = conversation_id.clone();
        let weight = body.get("capacityWeight");
        let percentage = body.get("capacityPercentage");
        if weight.is_some() && percentage.is_some() {
            return error(10013);
        }
        if weight.is_some_and(|w| w.as_f64().is_none_or(|w| w < 0.0)) {
            return error(10014);
        }
        if percentage.is_some_and(|p| p.as_f64().is_none_or(|p| !(0.0..=100.0).contains(&p))) {
            return error(10015);
        }
        let user = text(body, "userId").to_string();
        if !self.config.users.contains(&user) {
            return error(15106);
        }
        if self
            .state
            .agent_work
            .iter()
            .any(|w| w.active && w.user_id == user && w.work_item_id == work_item)
        {
            return error(15109);
        }
        let routing_type = body
            .pointer("/routingContext/routingType")
            .and_then(Value::as_str)
            .map(str::to_string);
        let agent_work_id = self.state.sf_id("0Bz");
        self.state.agent_work.push(AgentWork {
            agent_work_id: agent_work_id.clone(),
            user_id: user,
            work_item_id: work_item,
            routing_type,
            active: true,
        });
        // The agent accepting the work removes the pending routing record.
        self.state.psrs.remove(&conversation_id);
        Answer {
            status: 202,
            body: json!({ "agentWorkId": agent_work_id, "agentWorkDetails": null, "success": true }),
        }
    }

    fn routing_result(&mut self, body: &Value) -> Answer {
        let work_item = text(body, "workItemId");
        if work_item.chars().count() != 15 {
            return detail_error(10012);
        }
        let id = text(body, "conversationIdentifier");
        if !self.state.conversations.contains_key(id) {
            return detail_error(10018);
        }
        let success = body.get("success").and_then(Value::as_bool);
        let external = body.get("externallyRouted").and_then(Value::as_bool);
        let (Some(success), Some(_)) = (success, external) else {
            return detail_error(10100);
        };
        let has_message = body
            .get("errorMessage")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty());
        if success && has_message {
            return detail_error(10033);
        }
        if !success && !has_message {
            return detail_error(10034);
        }
        self.state.routing_results.push(body.clone());
        Answer {
            status: 200,
            body: json!({ "success": true }),
        }
    }
}
