//! The simulator's rules, request by request: each documented error code for the request that
//! should get it, with the same HTTP status every time.

use flowrun::sim::SimConfig;
use flowrun::sim::config::Channel;
use flowrun::sim::rules::{Service, SimBody, SimRequest};
use serde_json::{Value, json};

const TOKEN: &str = flowrun::sim::config::DEFAULT_TOKEN;
const CONVERSATION: &str = "8a1f2c3d-0000-4000-8000-00000000c0de";
const WORK_ITEM: &str = "0Mw5g000000SimW";

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

fn interaction(to: &str, from: &str, text: Value) -> SimRequest {
    let json = json!({
        "to": to, "from": from,
        "interactions": [{"timestamp": 1700000000000i64, "interactionType": "EntryInteraction",
            "payload": {"id": "p", "entryType": "Message", "abstractMessage": {"messageType": "StaticContentMessage", "id": "m",
                "staticContent": {"formatType": "Text", "text": text}}}}]
    });
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

fn agent_work(body: Value) -> SimRequest {
    json_req("POST", "agentWork", body)
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

/// The code and status an answer carries (`code` or `errorDetail.code`).
fn code_of(body: &Value) -> Option<u64> {
    body.get("code")
        .or_else(|| body.pointer("/errorDetail/code"))
        .and_then(Value::as_u64)
}

#[test]
fn every_documented_error_code_for_the_request_that_earns_it() {
    let cases: Vec<(&str, SimConfig, SimRequest, u64, u16)> = vec![
        (
            "unknown token",
            SimConfig::default(),
            with_header(
                consent("OptedOut", "+15550999"),
                "authorization",
                Some("Bearer nope"),
            ),
            10004,
            401,
        ),
        (
            "unknown authorization context",
            SimConfig::default(),
            with_header(
                consent("OptedOut", "+15550999"),
                "authorizationcontext",
                Some("Other"),
            ),
            10005,
            403,
        ),
        (
            "missing RequestId",
            SimConfig::default(),
            with_header(consent("OptedOut", "+15550999"), "requestid", None),
            10016,
            400,
        ),
        (
            "RequestId not a UUID",
            SimConfig::default(),
            with_header(consent("OptedOut", "+15550999"), "requestid", Some("42")),
            10016,
            400,
        ),
        (
            "OrgId mismatch",
            SimConfig::default(),
            with_header(consent("OptedOut", "+15550999"), "orgid", Some("00D00000000000X")),
            10016,
            400,
        ),
        (
            "unknown channel address",
            SimConfig::default(),
            interaction("+19999999", "+1555", json!("hi")),
            10017,
            400,
        ),
        (
            "inactive channel",
            config_with(|c| c.channels[0].active = false),
            interaction("+15550100", "+1555", json!("hi")),
            10031,
            400,
        ),
        (
            "empty to",
            SimConfig::default(),
            interaction("", "+1555", json!("hi")),
            10027,
            400,
        ),
        (
            "empty from",
            SimConfig::default(),
            interaction("+15550100", "", json!("hi")),
            10028,
            400,
        ),
        (
            "bad interaction list",
            SimConfig::default(),
            interaction("+15550100", "+1555", json!(5)),
            10029,
            400,
        ),
        (
            "bad consent enum",
            SimConfig::default(),
            consent("ExplicityOptedIn", "+15550999"),
            10021,
            400,
        ),
        (
            "consent owned by Salesforce",
            config_with(|c| c.channels[0].consent_owner = "Salesforce".into()),
            consent("OptedOut", "+15550999"),
            10022,
            400,
        ),
        (
            "channel supports keywords",
            config_with(|c| c.channels[0].supports_keywords = true),
            consent("OptedOut", "+15550999"),
            10023,
            400,
        ),
        (
            "unknown end user",
            SimConfig::default(),
            consent("OptedOut", "+1000"),
            10105,
            400,
        ),
        (
            "route: unknown conversation",
            SimConfig::default(),
            json_req(
                "POST",
                "route",
                json!({"conversationIdentifier": "nope", "routingType": "Initial", "routingInfo": {"queueId": "00G5g000000SimQ"}}),
            ),
            10018,
            400,
        ),
        (
            "route: flow without fallback queue",
            SimConfig::default(),
            route(json!({"flow": {"flowId": "3005g000000SimF"}})),
            10024,
            400,
        ),
        (
            "route: neither flow nor queue",
            SimConfig::default(),
            route(json!({})),
            10030,
            400,
        ),
        (
            "route: unknown queue",
            SimConfig::default(),
            route(json!({"queueId": "00G000000000000"})),
            10032,
            400,
        ),
        (
            "route before opt-in",
            config_with(|c| c.conversations[0].consent_status = Some("OptedOut".into())),
            route(json!({"queueId": "00G5g000000SimQ"})),
            15103,
            400,
        ),
        (
            "agent work: work item not 15 characters",
            SimConfig::default(),
            agent_work(json!({"userId": "0055g000000SimA", "workItemId": "0Mw5g"})),
            10012,
            400,
        ),
        (
            "agent work: unknown work item",
            SimConfig::default(),
            agent_work(json!({"userId": "0055g000000SimA", "workItemId": "0Mw000000000000"})),
            15110,
            400,
        ),
        (
            "agent work: weight and percentage",
            SimConfig::default(),
            agent_work(
                json!({"userId": "0055g000000SimA", "workItemId": WORK_ITEM, "capacityWeight": 1, "capacityPercentage": 50}),
            ),
            10013,
            400,
        ),
        (
            "agent work: negative weight",
            SimConfig::default(),
            agent_work(json!({"userId": "0055g000000SimA", "workItemId": WORK_ITEM, "capacityWeight": -1})),
            10014,
            400,
        ),
        (
            "agent work: percentage over 100",
            SimConfig::default(),
            agent_work(
                json!({"userId": "0055g000000SimA", "workItemId": WORK_ITEM, "capacityPercentage": 101}),
            ),
            10015,
            400,
        ),
        (
            "agent work: unknown user",
            SimConfig::default(),
            agent_work(json!({"userId": "005000000000000", "workItemId": WORK_ITEM, "capacityWeight": 1})),
            15106,
            400,
        ),
        (
            "routing result: success with an error message",
            SimConfig::default(),
            json_req(
                "POST",
                "routingResult",
                json!({"conversationIdentifier": CONVERSATION, "workItemId": WORK_ITEM, "success": true, "externallyRouted": false, "errorMessage": "x"}),
            ),
            10033,
            400,
        ),
        (
            "routing result: failure without a message",
            SimConfig::default(),
            json_req(
                "POST",
                "routingResult",
                json!({"conversationIdentifier": CONVERSATION, "workItemId": WORK_ITEM, "success": false, "externallyRouted": false}),
            ),
            10034,
            400,
        ),
        (
            "empty body",
            SimConfig::default(),
            SimRequest {
                body: SimBody::Empty,
                ..consent("OptedOut", "+15550999")
            },
            10100,
            400,
        ),
        (
            "read-only mode",
            config_with(|c| c.faults.rate_10019 = 1.0),
            consent("OptedOut", "+15550999"),
            10019,
            503,
        ),
        (
            "downstream timeout",
            config_with(|c| c.faults.rate_10094 = 1.0),
            consent("OptedOut", "+15550999"),
            10094,
            504,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, config, request, code, status) in cases {
        let mut service = Service::new(config);
        for round in 1..=2 {
            let answer = service.handle(&request);
            if code_of(&answer.body) != Some(code) || answer.status != status {
                wrong.push(format!(
                    "{what} (round {round}): expected {code}/{status}, got {}/{}",
                    answer.body, answer.status
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn duplicate_active_agent_work_is_refused_and_agent_work_removes_the_psr() {
    let mut s = Service::new(SimConfig::default());
    assert_eq!(
        s.handle(&route(json!({"queueId": "00G5g000000SimQ"}))).status,
        202
    );
    assert!(s.state.psrs.contains_key(CONVERSATION));
    let work = agent_work(json!({"userId": "0055g000000SimA", "workItemId": WORK_ITEM}));
    let first = s.handle(&work);
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(s.state.psrs.is_empty(), "agent work removes the PSR");
    let again = s.handle(&work);
    assert_eq!((again.status, code_of(&again.body)), (400, Some(15109)));
}

#[test]
fn consent_and_routing_result_errors_use_the_error_detail_shape() {
    let mut s = Service::new(SimConfig::default());
    assert_eq!(
        s.handle(&consent("Nope", "+15550999")).body,
        json!({"success": false, "errorDetail": {"code": 10021, "message": "Enter a valid Consent Status Enum value."}})
    );
    let a = s.handle(&route(json!({})));
    assert_eq!(
        a.body,
        json!({"code": 10030, "message": "Specify either a flow or a queue to Route API."})
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
fn unknown_operations_are_404_and_channels_are_configurable() {
    let mut s = Service::new(config_with(|c| {
        c.channels.push(Channel {
            address: "+15550200".into(),
            definition: "Second".into(),
            consent_owner: "Partner".into(),
            routing_owner: "Partner".into(),
            supports_keywords: false,
            active: true,
        })
    }));
    let a = s.handle(&json_req("POST", "capabilities", json!({})));
    assert_eq!(a.status, 404);
    // A channel address with another definition than the request's AuthorizationContext.
    let a = s.handle(&interaction("+15550200", "+1555", json!("hi")));
    assert_eq!((a.status, code_of(&a.body)), (403, Some(10001)));
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas/interaction-service")
        .join(name);
    let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&value).unwrap()
}

#[test]
fn answers_fit_the_project_s_response_schemas() {
    let mut s = Service::new(SimConfig::default());
    let check = |name: &str, body: &Value| {
        let errors: Vec<String> = schema(name).iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?} in {body}");
    };
    let a = s.handle(&interaction("+15550100", "+1555", json!("hi")));
    check("interactions.response.json", &a.body);
    check(
        "consent.response.json",
        &s.handle(&consent("ExplicitlyOptedIn", "+1555")).body,
    );
    check("consent.response.json", &s.handle(&consent("Nope", "+1555")).body);
    check(
        "route.response.json",
        &s.handle(&route(json!({"queueId": "00G5g000000SimQ"}))).body,
    );
    check(
        "agent-work.response.json",
        &s.handle(&agent_work(
            json!({"userId": "0055g000000SimA", "workItemId": WORK_ITEM}),
        ))
        .body,
    );
    check(
        "route-delete.response.json",
        &s.handle(&json_req(
            "DELETE",
            "route",
            json!({"conversationIdentifier": CONVERSATION}),
        ))
        .body,
    );
    let result = json!({"conversationIdentifier": CONVERSATION, "workItemId": WORK_ITEM, "success": true, "externallyRouted": false});
    check(
        "routing-result.response.json",
        &s.handle(&json_req("POST", "routingResult", result)).body,
    );
    check("error.response.json", &s.handle(&route(json!({}))).body);
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
}
