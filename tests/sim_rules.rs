//! The simulator's rules, operation by operation, against the public API description: each
//! operation's documented success status and body shape, each modelled error code for the
//! request that earns it — with the description's error shape and the same status every time —
//! and the state a routing partner drives (conversations, PSRs, agent work).

use flowrun::sim::Channel;
use flowrun::sim::SimConfig;
use flowrun::sim::{Service, SimBody, SimRequest};
use serde_json::{Value, json};

const TOKEN: &str = flowrun::sim::DEFAULT_TOKEN;
const CONVERSATION: &str = "8a1f2c3d-0000-4000-8000-00000000c0de";
const WORK_ITEM: &str = "0Mw5g000000SimW";
const QUEUE: &str = "00G5g000000SimQ";
const AGENT: &str = "0055g000000SimA";

fn headers() -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {TOKEN}")),
        ("orgid".into(), "00D000000000001".into()),
        ("authorizationcontext".into(), "Partner_Channel".into()),
        ("requestid".into(), "5e550000-0000-4000-8000-00000000aaaa".into()),
    ]
}

fn json_req(method: &str, path: &str, body: Value) -> SimRequest {
    SimRequest {
        method: method.into(),
        path: format!("/api/v1/{path}"),
        headers: headers(),
        body: SimBody::Json(body),
    }
}

/// `POST /interactions` with one interaction and optional file parts.
fn interactions(to: &str, from: &str, interaction: Value, files: &[&[u8]]) -> SimRequest {
    let json = json!({ "to": to, "from": from, "interactions": [interaction] });
    let mut parts = vec![(
        "json".to_string(),
        Some("application/json".to_string()),
        serde_json::to_vec(&json).unwrap(),
    )];
    for f in files {
        parts.push(("attachments".into(), Some("image/png".into()), f.to_vec()));
    }
    SimRequest {
        method: "POST".into(),
        path: "/api/v1/interactions".into(),
        headers: headers(),
        body: SimBody::Multipart(parts),
    }
}

/// `POST /interactions` whose `json` part is `json`, as it is.
fn raw_interactions(json: Value) -> SimRequest {
    SimRequest {
        method: "POST".into(),
        path: "/api/v1/interactions".into(),
        headers: headers(),
        body: SimBody::Multipart(vec![(
            "json".into(),
            Some("application/json".into()),
            serde_json::to_vec(&json).unwrap(),
        )]),
    }
}

/// An EntryInteraction with `payload`.
fn entry(payload: Value) -> Value {
    json!({"timestamp": 1700000000000i64, "interactionType": "EntryInteraction", "payload": payload})
}

/// A text message whose interaction id is `id` and message id `message`.
fn message_ids(id: &str, message: &str, text: Value) -> Value {
    entry(
        json!({"id": id, "entryType": "Message", "abstractMessage": {"messageType": "StaticContentMessage",
        "id": message, "staticContent": {"formatType": "Text", "text": text}}}),
    )
}

fn message(to: &str, from: &str, text: Value) -> SimRequest {
    interactions(to, from, message_ids("i-1", "i-1", text), &[])
}

fn attachment(length: u64, files: &[&[u8]]) -> SimRequest {
    let a = json!({"timestamp": 1700000000000i64, "interactionType": "AttachmentInteraction",
        "id": "i-2", "attachmentIndex": 0, "contentLength": length, "text": "my file"});
    interactions("+15550100", "+15550999", a, files)
}

fn consent(status: &str, client: &str) -> SimRequest {
    json_req(
        "PATCH",
        "consent",
        json!({"endUserClientId": client, "channelAddressIdentifier": "+15550100", "consentStatus": status}),
    )
}

fn route(info: Value) -> SimRequest {
    json_req(
        "POST",
        "route",
        json!({"conversationIdentifier": CONVERSATION, "routingType": "Transfer", "routingInfo": info}),
    )
}

fn to_queue() -> SimRequest {
    route(json!({"queueId": QUEUE}))
}

fn agent_work(body: Value) -> SimRequest {
    json_req("POST", "agentWork", body)
}

fn offer(user: &str) -> SimRequest {
    agent_work(json!({"userId": user, "workItemId": WORK_ITEM}))
}

fn work_update(work_id: &str, context: &str, status: &str) -> SimRequest {
    let r = json_req(
        "PATCH",
        "agentWork",
        json!({"workId": work_id, "contextType": context, "status": status}),
    );
    // Required on this operation alone.
    with_header(
        r,
        "authorizationcontexttype",
        Some("ConversationChannelDefinition"),
    )
}

fn routing_result(success: bool, message: Option<&str>) -> SimRequest {
    let mut body = json!({"conversationIdentifier": CONVERSATION, "workItemId": WORK_ITEM,
        "success": success, "externallyRouted": false, "routingType": "Transfer"});
    if let Some(m) = message {
        body["errorMessage"] = json!(m);
    }
    json_req("POST", "routingResult", body)
}

fn session(operation: &str, extra: Value) -> SimRequest {
    let mut body = json!({"channelAddressIdentifier": "+15550100", "endUserClientId": "+15550999",
        "conversationIdentifier": CONVERSATION, "operation": operation, "operationBy": "EndUser"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    json_req("POST", "messagingSession", body)
}

fn acknowledgement(conversation: &str) -> SimRequest {
    json_req(
        "POST",
        "acknowledgement",
        json!({"conversationIdentifier": conversation,
            "sender": {"appType": "custom", "subject": "+15550999", "role": "EndUser"},
            "acknowledgements": [{"acknowledgementTimestamp": "1700000000000", "acknowledgementType": "Read",
                "acknowledgedConversationEntryIdentifier": "e-1",
                "acknowledgmentCreatedConversationEntryIdentifier": "e-2"}]}),
    )
}

fn with_header(mut r: SimRequest, name: &str, value: Option<&str>) -> SimRequest {
    r.headers.retain(|(k, _)| k != name);
    if let Some(v) = value {
        r.headers.push((name.into(), v.into()));
    }
    r
}

fn config_with(f: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut c = SimConfig::default();
    f(&mut c);
    c
}

/// The code an answer carries (`code` or `errorDetail.code`).
fn code_of(body: &Value) -> Option<u64> {
    body.get("code")
        .or_else(|| body.pointer("/errorDetail/code"))
        .and_then(Value::as_u64)
}

/// `method path` of a request, as the description's operations are named.
fn label(r: &SimRequest) -> String {
    format!("{} {}", r.method, r.path)
}

/// A case: what it is, the configuration, requests that set the state up, the request, and
/// the code and HTTP status it earns.
struct Case {
    what: &'static str,
    config: SimConfig,
    setup: Vec<SimRequest>,
    request: SimRequest,
    code: u64,
    status: u16,
}

fn case(what: &'static str, request: SimRequest, code: u64, status: u16) -> Case {
    Case {
        what,
        config: SimConfig::default(),
        setup: Vec::new(),
        request,
        code,
        status,
    }
}

impl Case {
    fn config(mut self, f: impl FnOnce(&mut SimConfig)) -> Self {
        f(&mut self.config);
        self
    }
    fn after(mut self, setup: Vec<SimRequest>) -> Self {
        self.setup = setup;
        self
    }
}

#[test]
fn every_modelled_error_code_for_the_request_that_earns_it_in_the_described_shape() {
    let typing =
        entry(json!({"id": "t-1", "entryType": "TypingStartedIndicator", "timestamp": 1700000000000i64}));
    let failed_delivery = |app: &str, role: &str| {
        entry(
            json!({"id": "f-1", "entryType": "MessageDeliveryFailed", "errorCode": "E1",
            "recipient": {"appType": app, "subject": "+15550999", "role": role}}),
        )
    };
    let cases = vec![
        // Every call
        case(
            "unknown token",
            with_header(to_queue(), "authorization", Some("Bearer nope")),
            10004,
            401,
        ),
        case(
            "unknown authorization context",
            with_header(to_queue(), "authorizationcontext", Some("Other")),
            10005,
            403,
        ),
        case(
            "missing RequestId",
            with_header(to_queue(), "requestid", None),
            10016,
            400,
        ),
        case(
            "RequestId not a UUID",
            with_header(to_queue(), "requestid", Some("42")),
            10016,
            400,
        ),
        case(
            "OrgId mismatch",
            with_header(to_queue(), "orgid", Some("00D00000000000X")),
            10016,
            400,
        ),
        case("read-only mode", to_queue(), 10019, 503).config(|c| c.faults.rate_10019 = 1.0),
        case("downstream timeout", to_queue(), 10094, 504).config(|c| c.faults.rate_10094 = 1.0),
        case("conversation precondition failed", to_queue(), 10055, 412)
            .config(|c| c.faults.rate_10055 = 1.0),
        case("conversation processing aborted", to_queue(), 10056, 409).config(|c| c.faults.rate_10056 = 1.0),
        case(
            "empty body",
            SimRequest {
                body: SimBody::Empty,
                ..to_queue()
            },
            10100,
            400,
        ),
        // POST /interactions
        case(
            "unknown channel address",
            message("+19999999", "+1555", json!("hi")),
            10017,
            400,
        ),
        case(
            "inactive channel",
            message("+15550100", "+1555", json!("hi")),
            10031,
            400,
        )
        .config(|c| c.channels[0].active = false),
        case("empty to", message("", "+1555", json!("hi")), 10027, 400),
        case("empty from", message("+15550100", "", json!("hi")), 10028, 400),
        case(
            "a text that is not text",
            message("+15550100", "+1555", json!(5)),
            10045,
            400,
        ),
        case(
            "an empty interaction list",
            raw_interactions(json!({"to": "+15550100", "from": "+1555", "interactions": []})),
            10029,
            400,
        ),
        case(
            "empty interaction id",
            interactions("+15550100", "+1555", message_ids("", "m", json!("hi")), &[]),
            10059,
            400,
        ),
        case(
            "empty message id",
            interactions("+15550100", "+1555", message_ids("i", "", json!("hi")), &[]),
            10059,
            400,
        ),
        case(
            "interaction id and message id differ",
            interactions("+15550100", "+1555", message_ids("i-1", "m-1", json!("hi")), &[]),
            10060,
            400,
        ),
        case(
            "typing indicator with no conversation",
            interactions("+15550100", "+1555", typing.clone(), &[]),
            10025,
            400,
        ),
        case(
            "failed delivery to a recipient that is not custom",
            interactions("+15550100", "+15550999", failed_delivery("agent", "EndUser"), &[]),
            10037,
            400,
        ),
        case(
            "failed delivery to a recipient that is not the end user",
            interactions("+15550100", "+15550999", failed_delivery("custom", "Agent"), &[]),
            10038,
            400,
        ),
        case(
            "a message type an end user does not send",
            interactions(
                "+15550100",
                "+1555",
                entry(json!({"id": "i", "entryType": "Message",
                "abstractMessage": {"messageType": "ChoicesMessage", "id": "i"}})),
                &[],
            ),
            10062,
            400,
        ),
        case(
            "an unknown message type",
            interactions(
                "+15550100",
                "+1555",
                entry(json!({"id": "i", "entryType": "Message",
                "abstractMessage": {"messageType": "Bogus", "id": "i"}})),
                &[],
            ),
            10047,
            400,
        ),
        case(
            "an unknown format type",
            interactions(
                "+15550100",
                "+1555",
                entry(json!({"id": "i", "entryType": "Message",
                "abstractMessage": {"messageType": "StaticContentMessage", "id": "i", "staticContent": {"formatType": "Bogus", "text": "hi"}}})),
                &[],
            ),
            10048,
            400,
        ),
        case(
            "a text message without its text",
            interactions(
                "+15550100",
                "+1555",
                entry(json!({"id": "i", "entryType": "Message",
                "abstractMessage": {"messageType": "StaticContentMessage", "id": "i", "staticContent": {"formatType": "Text"}}})),
                &[],
            ),
            10045,
            400,
        ),
        case(
            "a `from` longer than 255 characters",
            message("+15550100", &"1".repeat(256), json!("hi")),
            10028,
            400,
        ),
        case("attachment without its file", attachment(4, &[]), 10011, 400),
        case(
            "attachment with two files",
            attachment(4, &[b"abcd", b"efgh"]),
            10011,
            400,
        ),
        case("attachment with an empty file", attachment(0, &[b""]), 10009, 400),
        case(
            "attachment whose length is wrong",
            attachment(5, &[b"abcd"]),
            10051,
            400,
        ),
        case(
            "unknown token on consent: its own shape too",
            with_header(
                consent("OptedOut", "+15550999"),
                "authorization",
                Some("Bearer nope"),
            ),
            10004,
            401,
        ),
        // PATCH /consent (its error answers have the ConsentResponse shape)
        case(
            "bad consent enum",
            consent("ExplicityOptedIn", "+15550999"),
            10021,
            400,
        ),
        case(
            "consent owned by Salesforce",
            consent("OptedOut", "+15550999"),
            10022,
            400,
        )
        .config(|c| c.channels[0].consent_owner = "Salesforce".into()),
        case(
            "channel supports keywords",
            consent("OptedOut", "+15550999"),
            10023,
            400,
        )
        .config(|c| c.channels[0].supports_keywords = true),
        case("unknown end user", consent("OptedOut", "+1000"), 10105, 400),
        // POST /route
        case(
            "route: unknown conversation",
            json_req(
                "POST",
                "route",
                json!({"conversationIdentifier": "nope", "routingType": "Initial", "routingInfo": {"queueId": QUEUE}}),
            ),
            10018,
            400,
        ),
        case(
            "route: flow without fallback queue",
            route(json!({"flow": {"flowId": "3005g000000SimF"}})),
            10024,
            400,
        ),
        case("route: neither flow nor queue", route(json!({})), 10030, 400),
        case(
            "route: an unknown top-level field",
            json_req(
                "POST",
                "route",
                json!({"conversationIdentifier": CONVERSATION, "routingType": "Initial", "routingInfo": {"queueId": QUEUE}, "bogus": 1}),
            ),
            10100,
            400,
        ),
        case(
            "route: no routingInfo and the channel names no queue",
            json_req(
                "POST",
                "route",
                json!({"conversationIdentifier": CONVERSATION, "routingType": "Initial"}),
            ),
            10030,
            400,
        ),
        case(
            "route: unknown queue",
            route(json!({"queueId": "00G5g000000Nope"})),
            10032,
            400,
        ),
        case("route: end user not opted in", to_queue(), 15103, 400)
            .after(vec![consent("OptedOut", "+15550999")]),
        // DELETE /route
        case(
            "delete route: unknown conversation",
            json_req("DELETE", "route", json!({"conversationIdentifier": "nope"})),
            10018,
            400,
        ),
        // POST /agentWork
        case(
            "agent work: work item not 15 characters",
            agent_work(json!({"userId": AGENT, "workItemId": "0Mw5g"})),
            10012,
            400,
        ),
        case(
            "agent work: unknown work item",
            agent_work(json!({"userId": AGENT, "workItemId": "0Mw5g000000Nope"})),
            15110,
            400,
        ),
        case(
            "agent work: weight and percentage",
            agent_work(
                json!({"userId": AGENT, "workItemId": WORK_ITEM, "capacityWeight": 1, "capacityPercentage": 5}),
            ),
            10013,
            400,
        ),
        case(
            "agent work: negative weight",
            agent_work(json!({"userId": AGENT, "workItemId": WORK_ITEM, "capacityWeight": -1})),
            10014,
            400,
        ),
        case(
            "agent work: percentage over 100",
            agent_work(json!({"userId": AGENT, "workItemId": WORK_ITEM, "capacityPercentage": 101})),
            10015,
            400,
        ),
        case("agent work: unknown user", offer("0055g000000Nope"), 15106, 400),
        case(
            "agent work: a routing context of another conversation",
            agent_work(json!({"userId": AGENT, "workItemId": WORK_ITEM,
                "routingContext": {"conversationIdentifier": "5e550000-0000-4000-8000-00000000beef", "routingType": "Transfer", "routingCorrelationId": "e-1"}})),
            15107,
            400,
        ),
        case(
            "agent work: no PSR and no routing context",
            offer(AGENT),
            10089,
            400,
        ),
        case(
            "agent work: already offered to this agent",
            offer(AGENT),
            15109,
            400,
        )
        .after(vec![to_queue(), offer(AGENT)]),
        // PATCH /agentWork
        case(
            "agent work update: no AuthorizationContextType",
            with_header(
                work_update("0Bz000000000003", "Agent", "Accept"),
                "authorizationcontexttype",
                None,
            ),
            10016,
            400,
        ),
        case(
            "agent work update: a bad AuthorizationContextType",
            with_header(
                work_update("0Bz000000000003", "Agent", "Accept"),
                "authorizationcontexttype",
                Some("Agent"),
            ),
            10093,
            400,
        ),
        case(
            "agent work update: unknown work",
            work_update("0Bz000000000Nop", "Agent", "Accept"),
            10082,
            404,
        ),
        case(
            "agent work update: bad context type",
            work_update("0Bz000000000002", "Robot", "Accept"),
            10083,
            400,
        ),
        case(
            "agent work update: a bot the org does not have",
            work_update("0Bz000000000002", "Chatbot", "Accept"),
            10084,
            400,
        ),
        case(
            "agent work update: bad status",
            work_update("0Bz000000000002", "Agent", "Finish"),
            10085,
            400,
        ),
        case(
            "agent work update: closing work never accepted",
            work_update("0Bz000000000003", "Agent", "Close"),
            10085,
            400,
        )
        .after(vec![to_queue(), offer(AGENT)]),
        // POST /routingResult (errors in the {code, message} shape)
        case(
            "routing result: work item not 15 characters",
            json_req(
                "POST",
                "routingResult",
                json!({"conversationIdentifier": CONVERSATION, "workItemId": "0Mw", "success": true, "externallyRouted": false}),
            ),
            10012,
            400,
        ),
        case(
            "routing result: unknown conversation",
            json_req(
                "POST",
                "routingResult",
                json!({"conversationIdentifier": "nope", "workItemId": WORK_ITEM, "success": true, "externallyRouted": false}),
            ),
            10018,
            400,
        ),
        case(
            "routing result: message with success",
            routing_result(true, Some("x")),
            10033,
            400,
        ),
        case(
            "routing result: failure without message",
            routing_result(false, None),
            10034,
            400,
        ),
        // POST /acknowledgement
        case(
            "acknowledgement: unknown conversation",
            acknowledgement("nope"),
            10018,
            400,
        ),
        // POST /messagingSession
        case("session: bad operation", session("Stop", json!({})), 10102, 400),
        case(
            "session: bad operationBy",
            session("End", json!({"operationBy": "Agent"})),
            10103,
            400,
        ),
        case(
            "session: unknown channel address",
            session("End", json!({"channelAddressIdentifier": "+19999999"})),
            10017,
            400,
        ),
        case(
            "session: unknown conversation",
            session("End", json!({"conversationIdentifier": "nope"})),
            10071,
            404,
        ),
        case(
            "session: inactivate without a session id",
            session("Inactivate", json!({})),
            10106,
            400,
        ),
        case("session: already ended", session("End", json!({})), 10071, 404)
            .after(vec![session("End", json!({}))]),
    ];
    let mut wrong = Vec::new();
    for c in cases {
        let mut service = Service::new(c.config);
        for r in &c.setup {
            let a = service.handle(r);
            assert!(a.status < 300, "{}: setup {} answered {a:?}", c.what, label(r));
        }
        // Consent and acknowledgement answer errors in their own response shape.
        let consent = c.request.path.ends_with("/consent") || c.request.path.ends_with("/acknowledgement");
        for round in 1..=2 {
            let a = service.handle(&c.request);
            let shape = if consent {
                a.body["success"] == json!(false) && a.body["errorDetail"]["message"].is_string()
            } else {
                flowrun::api::is_error_body(&a.body) && a.body.as_object().unwrap().len() == 2
            };
            if code_of(&a.body) != Some(c.code) || a.status != c.status || !shape {
                wrong.push(format!(
                    "{} (round {round}): expected {}/{}, got {} {}",
                    c.what, c.code, c.status, a.status, a.body
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Each modelled operation, on a fresh simulator after the calls that make it possible:
/// the status the description documents for success, and a body that fits its response schema.
#[test]
fn every_modelled_operation_answers_its_documented_success() {
    let offered = || vec![to_queue(), offer(AGENT)];
    let cases: Vec<(Vec<SimRequest>, SimRequest)> = vec![
        (vec![], message("+15550100", "+15550123", json!("hi"))),
        (vec![], attachment(4, &[b"abcd"])),
        (
            vec![message("+15550100", "+15550123", json!("hi"))],
            interactions(
                "+15550100",
                "+15550123",
                entry(json!({"id": "t", "entryType": "TypingStoppedIndicator", "timestamp": 1})),
                &[],
            ),
        ),
        (
            vec![message("+15550100", "+15550123", json!("hi"))],
            interactions(
                "+15550100",
                "+15550123",
                entry(
                    json!({"id": "f", "entryType": "MessageDeliveryFailed", "errorCode": "E1", "failedConversationEntryIdentifier": "e-9",
                    "recipient": {"appType": "custom", "subject": "+15550123", "role": "EndUser"}}),
                ),
                &[],
            ),
        ),
        (
            vec![],
            interactions(
                "+15550100",
                "+15550123",
                entry(json!({"id": "c", "entryType": "Message",
                "abstractMessage": {"messageType": "ChoicesResponseMessage", "id": "c"}})),
                &[],
            ),
        ),
        (vec![], consent("DoublyOptedIn", "+15550999")),
        (vec![], to_queue()),
        (
            vec![],
            route(json!({"flow": {"flowId": "3005g000000SimF", "queueId": QUEUE}})),
        ),
        (
            vec![to_queue()],
            json_req("DELETE", "route", json!({"conversationIdentifier": CONVERSATION})),
        ),
        (vec![to_queue()], offer(AGENT)),
        (
            vec![],
            agent_work(
                json!({"userId": AGENT, "workItemId": WORK_ITEM, "capacityPercentage": 50,
                "routingContext": {"conversationIdentifier": CONVERSATION, "routingType": "Transfer", "routingCorrelationId": "event-1"}}),
            ),
        ),
        (offered(), work_update("0Bz000000000003", "Agent", "Accept")),
        (offered(), work_update("0Bz000000000003", "Agent", "Decline")),
        (offered(), work_update("0Bz000000000003", "Agent", "Cancel")),
        (vec![], routing_result(true, None)),
        (vec![], routing_result(false, Some("no agent available"))),
        (vec![], acknowledgement(CONVERSATION)),
        (vec![], session("End", json!({}))),
        (vec![], session("Inactivate", json!({"sessionId": WORK_ITEM}))),
    ];
    for (setup, request) in cases {
        let mut s = Service::new(SimConfig::default());
        for r in &setup {
            let a = s.handle(r);
            assert!(a.status < 300, "setup {} answered {a:?}", label(r));
        }
        let op = flowrun::api::operation(&request.method, &request.path).unwrap();
        let a = s.handle(&request);
        assert_eq!(a.status, op.success, "{}: {}", label(&request), a.body);
        assert_eq!(a.body["success"], json!(true), "{}: {}", label(&request), a.body);
        assert_eq!(
            op.response_problems(&a.body),
            Vec::<String>::new(),
            "{}: {}",
            label(&request),
            a.body
        );
    }
}

#[test]
fn operations_the_simulator_does_not_model_are_404_in_the_error_shape() {
    let mut s = Service::new(SimConfig::default());
    for (method, path) in [
        ("PATCH", "capabilities"),
        ("POST", "conversation"),
        ("POST", "conversationEntry"),
        ("POST", "conversationHistory"),
        ("POST", "participant"),
        ("GET", "route"),
        ("POST", "nothing"),
    ] {
        let a = s.handle(&json_req(method, path, json!({})));
        assert_eq!(a.status, 404, "{method} {path}");
        assert!(flowrun::api::is_error_body(&a.body), "{}", a.body);
        assert_eq!(
            a.body["message"],
            json!(format!("The simulator does not model {method} /api/v1/{path}."))
        );
    }
}

#[test]
fn agent_work_keeps_the_psr_until_the_agent_accepts() {
    let mut s = Service::new(SimConfig::default());
    assert_eq!(s.handle(&to_queue()).status, 202);
    let psr_id = s.state.psrs[CONVERSATION].psr_id.clone();
    let first = s.handle(&offer(AGENT));
    assert_eq!(first.status, 202, "{}", first.body);
    let details = &first.body["agentWorkDetails"];
    assert_eq!(details["existPsr"], json!(true));
    assert_eq!(details["psrId"], json!(psr_id));
    assert_eq!(
        details["routingContext"]["routingCorrelationId"],
        json!(s.state.psrs[CONVERSATION].routing_correlation_id),
        "the PSR's routing is the work's context"
    );
    assert!(
        s.state.psrs.contains_key(CONVERSATION),
        "offered, not accepted: still queued"
    );
    let work = first.body["agentWorkId"].as_str().unwrap().to_string();

    // The agent declines: the work is declined, the conversation still waits in the queue.
    assert_eq!(s.handle(&work_update(&work, "Agent", "Decline")).status, 202);
    assert_eq!(s.state.agent_work[0].status, "Declined");
    assert!(s.state.psrs.contains_key(CONVERSATION));

    // Another agent accepts: the PSR is gone.
    let second = s.handle(&offer("0055g000000SimB"));
    let work = second.body["agentWorkId"].as_str().unwrap().to_string();
    assert_eq!(s.handle(&work_update(&work, "Agent", "Accept")).status, 202);
    assert_eq!(s.state.agent_work[1].status, "Opened");
    assert!(s.state.psrs.is_empty(), "accepting the work removes the PSR");
    // Accepting twice is not a valid transition; closing is.
    let again = s.handle(&work_update(&work, "Agent", "Accept"));
    assert_eq!((again.status, code_of(&again.body)), (400, Some(10085)));
    assert_eq!(s.handle(&work_update(&work, "Agent", "Close")).status, 202);
    assert_eq!(s.state.agent_work[1].status, "Closed");
}

#[test]
fn agents_accept_by_themselves_when_the_configuration_says_so() {
    let mut s = Service::new(config_with(|c| c.accept_work_after_ms = Some(0)));
    s.handle(&to_queue());
    s.handle(&offer(AGENT));
    assert_eq!(s.state.agent_work[0].status, "Assigned");
    // The next call (or a look at the state) finds the accept due.
    s.accept_due_work(std::time::Instant::now());
    assert_eq!(s.state.agent_work[0].status, "Opened");
    assert!(s.state.psrs.is_empty());

    let mut s = Service::new(config_with(|c| c.accept_work_after_ms = Some(60_000)));
    s.handle(&to_queue());
    s.handle(&offer(AGENT));
    s.accept_due_work(std::time::Instant::now());
    assert_eq!(s.state.agent_work[0].status, "Assigned", "not due yet");
}

#[test]
fn routing_a_conversation_that_already_has_a_psr_is_accepted_but_not_routed() {
    let mut s = Service::new(SimConfig::default());
    let first = s.handle(&to_queue());
    let second = s.handle(&to_queue());
    assert_eq!(second.status, 202);
    assert_eq!(second.body["success"], json!(false));
    assert_eq!(second.body["psrId"], first.body["psrId"]);
    assert_eq!(
        second.body["errors"]["errorType"],
        json!("PendingServiceRoutingExists")
    );
    assert!(
        second.body["reasonForNotRouting"]
            .as_str()
            .unwrap()
            .contains("already")
    );
    let op = flowrun::api::operation("POST", "/api/v1/route").unwrap();
    assert_eq!(op.response_problems(&second.body), Vec::<String>::new());
    assert_eq!(s.state.psrs.len(), 1, "still one PSR");
}

#[test]
fn without_routing_info_the_channel_s_own_queue_routes() {
    let mut s = Service::new(config_with(|c| c.channels[0].queue = Some(QUEUE.into())));
    let a = s.handle(&json_req(
        "POST",
        "route",
        json!({"conversationIdentifier": CONVERSATION, "routingType": "Initial"}),
    ));
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(s.state.psrs[CONVERSATION].routing_info, json!({"queueId": QUEUE}));
}

#[test]
fn an_end_user_has_one_open_conversation_per_channel() {
    let mut s = Service::new(SimConfig::default());
    let first = s.handle(&message("+15550100", "+15550123", json!("hi")));
    let more = interactions(
        "+15550100",
        "+15550123",
        message_ids("i-2", "i-2", json!("more")),
        &[],
    );
    let second = s.handle(&more);
    assert_eq!(first.status, 202);
    assert_eq!(
        second.body["conversationIdentifier"],
        first.body["conversationIdentifier"]
    );
    assert_eq!(second.body["workItemIds"], first.body["workItemIds"]);
    let id = first.body["conversationIdentifier"].as_str().unwrap().to_string();
    assert_eq!(s.state.conversations[&id].messages, ["i-1", "i-2"]);
    // Another end user, another conversation.
    let other = s.handle(&message("+15550100", "+15550124", json!("hi")));
    assert_ne!(
        other.body["conversationIdentifier"],
        first.body["conversationIdentifier"]
    );
    // Once the session ends, the next message opens a new conversation.
    let end = json_req(
        "POST",
        "messagingSession",
        json!({"channelAddressIdentifier": "+15550100", "endUserClientId": "+15550123",
            "conversationIdentifier": id, "operation": "End"}),
    );
    assert_eq!(s.handle(&end).status, 200);
    let after = s.handle(&message("+15550100", "+15550123", json!("again")));
    assert_ne!(after.body["conversationIdentifier"], json!(id));
}

#[test]
fn ending_a_session_gives_routing_up_and_closes_its_work() {
    let mut s = Service::new(SimConfig::default());
    s.handle(&to_queue());
    s.handle(&offer(AGENT));
    assert_eq!(s.handle(&session("End", json!({}))).status, 200);
    assert!(s.state.psrs.is_empty());
    assert_eq!(s.state.agent_work[0].status, "Canceled");
    assert_eq!(s.state.conversations[CONVERSATION].session_status, "Ended");
    let a = s.handle(&to_queue());
    assert_eq!(
        code_of(&a.body),
        Some(10018),
        "an ended conversation is not routed"
    );
}

#[test]
fn a_token_expires_after_the_configured_number_of_calls() {
    let mut s = Service::new(config_with(|c| c.faults.token_expires_after = Some(2)));
    let r = consent("OptedOut", "+15550999");
    assert_eq!(s.handle(&r).status, 200);
    assert_eq!(s.handle(&r).status, 200);
    let third = s.handle(&r);
    assert_eq!((third.status, code_of(&third.body)), (401, Some(10004)));
}

#[test]
fn channels_are_configurable() {
    let mut s = Service::new(config_with(|c| {
        c.channels.push(Channel {
            address: "+15550200".into(),
            definition: "Second".into(),
            consent_owner: "Partner".into(),
            routing_owner: "Partner".into(),
            supports_keywords: false,
            active: true,
            queue: None,
        })
    }));
    // A channel address with another definition than the request's AuthorizationContext.
    let a = s.handle(&message("+15550200", "+1555", json!("hi")));
    assert_eq!((a.status, code_of(&a.body)), (403, Some(10001)));
}

#[test]
fn a_body_the_schema_refuses_and_no_rule_covers_is_malformed() {
    let mut s = Service::new(SimConfig::default());
    // A misspelled optional field: no rule looks at it, the schema does.
    let body = json!({"conversationIdentifier": CONVERSATION, "cancelReason": "Whatever"});
    let a = s.handle(&json_req("DELETE", "route", body));
    assert_eq!((a.status, code_of(&a.body)), (400, Some(10100)), "{}", a.body);
    assert!(
        a.body["message"].as_str().unwrap().contains("Whatever"),
        "{}",
        a.body
    );
    // A field the rules cover still gets its own code, not 10100.
    let a = s.handle(&consent("ExplicityOptedIn", "+15550999"));
    assert_eq!(code_of(&a.body), Some(10021));
    // More than 25 acknowledgements: the schema's limit.
    let mut ack = acknowledgement(CONVERSATION);
    if let SimBody::Json(b) = &mut ack.body {
        let one = b["acknowledgements"][0].clone();
        b["acknowledgements"] = json!(vec![one; 26]);
    }
    let a = s.handle(&ack);
    assert_eq!(code_of(&a.body), Some(10100), "{}", a.body);
}

/// The state is capped (oldest first, ended conversations before open ones) and read in pages:
/// a million interactions must not grow the simulator without bound.
#[test]
fn the_state_is_capped_and_paged() {
    let mut s = Service::new(config_with(|c| c.max_records = Some(3)));
    let mut ids = Vec::new();
    for n in 0..3 {
        let a = s.handle(&message("+15550100", &format!("+1555000000{n}"), json!("hi")));
        ids.push(a.body["conversationIdentifier"].as_str().unwrap().to_string());
    }
    // The seeded conversation went to make room; end the second of ours.
    assert_eq!(s.state.conversations.len(), 3);
    assert!(!s.state.conversations.contains_key(CONVERSATION));
    let end = json_req(
        "POST",
        "messagingSession",
        json!({"channelAddressIdentifier": "+15550100", "endUserClientId": "+15550000001",
            "conversationIdentifier": ids[1], "operation": "End"}),
    );
    assert_eq!(s.handle(&end).status, 200);
    s.handle(&message("+15550100", "+15550000009", json!("hi")));
    let kept: Vec<&String> = s.state.conversations.keys().collect();
    assert_eq!(kept.len(), 3);
    assert!(!kept.contains(&&ids[1]), "the ended one went first");
    assert!(kept.contains(&&ids[0]));
    for n in 0..10 {
        s.handle(&routing_result(true, None));
        s.handle(&message("+15550100", &format!("+1555111111{n}"), json!("hi")));
    }
    let page = s.state.page(0, 2);
    assert_eq!(page["conversations"].as_object().unwrap().len(), 2);
    assert_eq!(page["page"]["totals"]["conversations"], json!(3));
    assert!(page["page"]["totals"]["endUsers"].as_u64().unwrap() <= 3);
    assert_eq!(
        page["page"]["totals"]["routingResults"],
        json!(0),
        "all failed: no conversation"
    );
    assert_eq!(s.state.page(2, 2)["conversations"].as_object().unwrap().len(), 1);
}
