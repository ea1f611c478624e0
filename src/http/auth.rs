//! Auth providers: a fixed bearer token, or OAuth 2.0 JWT bearer tokens fetched on demand.
//!
//! A JWT-bearer provider is shared by every run of a flow (batch mode shares one), so the token
//! is fetched once and reused. When a call answers 401 / code 10004 the engine asks for a
//! refresh with the token it used; concurrent callers that saw the same stale token wait on
//! one fetch (single flight) and then all get the new token.

use super::{Body, HttpRequest, Transport};
use crate::base::secrets::Secrets;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The private key is not a PEM RSA private key; holds the parser's message.
    BadKey(String),
    /// Signing the JWT assertion failed.
    Sign(String),
    /// The token request got no response; holds the transport error.
    Request(String),
    /// The token endpoint answered a status other than 200.
    Rejected {
        /// The HTTP status it answered.
        status: u16,
        /// The response body as text, with known secrets redacted.
        detail: String,
    },
    /// The token endpoint answered 200 without a string `access_token`.
    NoToken,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::BadKey(e) => write!(f, "the JWT private key is not a PEM RSA private key: {e}"),
            AuthError::Sign(e) => write!(f, "could not sign the JWT: {e}"),
            AuthError::Request(e) => write!(f, "token request failed: {e}"),
            AuthError::Rejected { status, detail } => write!(f, "token endpoint answered {status}: {detail}"),
            AuthError::NoToken => write!(f, "token endpoint answered without an access_token"),
        }
    }
}

/// The JWT bearer settings, rendered.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// Where the assertion is POSTed as a form, for an `access_token`.
    pub token_url: String,
    /// The JWT's `iss` claim.
    pub client_id: String,
    /// The JWT's `sub` claim: the user the token acts for.
    pub username: String,
    /// The JWT's `aud` claim.
    pub audience: String,
    /// PEM RSA private key the assertion is signed with (RS256); registered as a secret.
    pub private_key: String,
    /// How long each assertion is valid: `exp` is now plus this, in whole seconds.
    pub lifetime: Duration,
}

/// How a flow's requests get their `Authorization: Bearer` token.
#[derive(Clone)]
pub enum Auth {
    /// No `Authorization` header is added.
    None,
    /// A fixed token, rendered once; never refreshed.
    Bearer(String),
    /// Tokens fetched with a JWT bearer grant, cached and shared across runs.
    Jwt(Arc<JwtBearer>),
}

impl Auth {
    /// The token to send now, if any.
    pub async fn token(&self) -> Result<Option<String>, AuthError> {
        match self {
            Auth::None => Ok(None),
            Auth::Bearer(t) => Ok(Some(t.clone())),
            Auth::Jwt(j) => j.token().await.map(Some),
        }
    }

    /// A new token after `stale` was refused; `None` when this kind of auth cannot refresh.
    pub async fn refresh(&self, stale: &str) -> Option<Result<String, AuthError>> {
        match self {
            Auth::Jwt(j) => Some(j.refresh(stale).await),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

/// An OAuth 2.0 JWT bearer grant client that caches its token and refreshes it on demand.
pub struct JwtBearer {
    settings: JwtSettings,
    key: jsonwebtoken::EncodingKey,
    transport: Arc<dyn Transport>,
    secrets: Secrets,
    cached: Mutex<Option<String>>,
    timeout: Duration,
}

impl JwtBearer {
    /// Parses the private key; no token is fetched until one is asked for.
    /// `timeout` bounds each token request.
    pub fn new(
        settings: JwtSettings,
        transport: Arc<dyn Transport>,
        secrets: Secrets,
        timeout: Duration,
    ) -> Result<Self, AuthError> {
        secrets.add(&settings.private_key);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(settings.private_key.as_bytes())
            .map_err(|e| AuthError::BadKey(e.to_string()))?;
        Ok(JwtBearer {
            settings,
            key,
            transport,
            secrets,
            cached: Mutex::new(None),
            timeout,
        })
    }

    async fn token(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let fresh = self.fetch().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    async fn refresh(&self, stale: &str) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && t != stale
        {
            // Another run refreshed while this one waited for the lock.
            return Ok(t.clone());
        }
        let fresh = self.fetch().await?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// The signed assertion: RS256 with `iss`, `sub`, `aud` and `exp` in seconds.
    pub fn assertion(&self) -> Result<String, AuthError> {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + self.settings.lifetime.as_secs();
        let claims = Claims {
            iss: &self.settings.client_id,
            sub: &self.settings.username,
            aud: &self.settings.audience,
            exp,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.key,
        )
        .map_err(|e| AuthError::Sign(e.to_string()))
    }

    async fn fetch(&self) -> Result<String, AuthError> {
        let assertion = self.assertion()?;
        self.secrets.add(&assertion);
        let request = HttpRequest {
            step: String::new(),
            method: "POST".into(),
            url: self.settings.token_url.clone(),
            headers: vec![("Accept".into(), "application/json".into())],
            body: Body::Form(vec![
                (
                    "grant_type".into(),
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                ("assertion".into(), assertion),
            ]),
        };
        let response = self
            .transport
            .send(&request, self.timeout)
            .await
            .map_err(|e| AuthError::Request(e.to_string()))?;
        let body = response.body_value();
        if response.status != 200 {
            let detail = self.secrets.redact(&body.to_string()).into_owned();
            return Err(AuthError::Rejected {
                status: response.status,
                detail,
            });
        }
        let token = body
            .get("access_token")
            .and_then(|t| t.as_str())
            .ok_or(AuthError::NoToken)?
            .to_string();
        self.secrets.add(&token);
        Ok(token)
    }
}
