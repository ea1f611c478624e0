//! A transport that answers scripted steps itself and passes every other request on.

use super::model::Script;
use crate::http::{HttpRequest, HttpResponse, SendFuture, Transport};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct ScriptedTransport {
    scripts: BTreeMap<String, Script>,
    attempts: Mutex<BTreeMap<String, usize>>,
    fallback: Arc<dyn Transport>,
}

impl ScriptedTransport {
    pub fn new(scripts: BTreeMap<String, Script>, fallback: Arc<dyn Transport>) -> Self {
        ScriptedTransport {
            scripts,
            attempts: Mutex::new(BTreeMap::new()),
            fallback,
        }
    }
}

impl Transport for ScriptedTransport {
    fn send<'a>(&'a self, request: &'a HttpRequest, timeout: Duration) -> SendFuture<'a> {
        let Some(script) = self.scripts.get(&request.step) else {
            return self.fallback.send(request, timeout);
        };
        let n = {
            let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            let n = attempts.entry(request.step.clone()).or_default();
            *n += 1;
            *n
        };
        let answer = script.answer(n).clone();
        Box::pin(async move {
            if let Some(delay) = answer
                .delay
                .as_deref()
                .and_then(crate::flow::model::parse_duration)
            {
                tokio::time::sleep(delay).await;
            }
            let mut headers: Vec<(String, String)> = answer
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let body = match &answer.body {
                Some(v) => {
                    headers.push(("content-type".into(), "application/json".into()));
                    serde_json::to_vec(v).unwrap_or_default()
                }
                None => Vec::new(),
            };
            Ok(HttpResponse {
                status: answer.status,
                headers,
                body,
            })
        })
    }
}
