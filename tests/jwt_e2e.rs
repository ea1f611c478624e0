//! JWT bearer auth against a token endpoint that checks the RS256 signature and the claims, and
//! an API that refuses the first token: exactly one refresh, then one retry.

mod common;

use common::*;
use flowrun::engine::Outcome;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers the OAuth token endpoint: verifies the form and the JWT, then hands out
/// `00D!token-1`, `00D!token-2`, ...
struct TokenEndpoint {
    audience: String,
    issued: Arc<AtomicUsize>,
}

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: Vec<(String, String)> = url_form(&request.body);
        let get = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        if get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
            return ResponseTemplate::new(400).set_body_json(json!({"error": "unsupported_grant_type"}));
        }
        let public = std::fs::read(repo("tests/fixtures/jwt-test-key.pub.pem")).unwrap();
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&["connected-app-key"]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        match jsonwebtoken::decode::<serde_json::Value>(&get("assertion"), &key, &validation) {
            Ok(data) if data.claims["sub"] == "integration@example.com" => {
                let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
                ResponseTemplate::new(200)
                    .set_body_json(json!({"access_token": format!("00D!token-{n}"), "token_type": "Bearer"}))
            }
            other => ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_grant", "detail": format!("{other:?}")})),
        }
    }
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn a_401_triggers_exactly_one_refresh_and_one_retry() {
    let server = MockServer::start().await;
    let issued = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(TokenEndpoint {
            audience: server.uri(),
            issued: issued.clone(),
        })
        .expect(2)
        .mount(&server)
        .await;
    // The first token is refused as expired; the second is accepted.
    Mock::given(method("PATCH"))
        .and(path("/api/v1/consent"))
        .and(header("authorization", "Bearer 00D!token-1"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"code": 10004, "message": "Invalid token"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v1/consent"))
        .and(header("authorization", "Bearer 00D!token-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;
    let env = jwt_env(&server.uri(), &server.uri());
    let report = run("tests/flows/jwt.yaml", json!({}), env).await;
    assert_eq!(report.outcome, Outcome::Passed);
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let attempts = &report.steps[0].attempts;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].response.as_ref().unwrap().status, 401);
    assert_eq!(attempts[1].response.as_ref().unwrap().status, 200);
    // The request was the same apart from the token.
    assert_eq!(attempts[0].request.body, attempts[1].request.body);
}

#[tokio::test]
async fn a_rejected_jwt_fails_the_step_with_the_endpoint_s_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(TokenEndpoint {
            audience: "https://somewhere-else".into(),
            issued: Arc::new(AtomicUsize::new(0)),
        })
        .mount(&server)
        .await;
    let env = jwt_env(&server.uri(), &server.uri());
    let report = run("tests/flows/jwt.yaml", json!({}), env).await;
    let Outcome::Failed { step, error } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(step, "consent");
    assert!(
        error.starts_with("auth: token endpoint answered 400: "),
        "{error}"
    );
    assert!(error.contains("InvalidAudience"), "{error}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no API call without a token"
    );
}
