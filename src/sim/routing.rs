//! Routing: `POST /api/v1/route` creates the Pending Service Routing record (the conversation
//! waits in a queue), `DELETE /api/v1/route` gives routing up, and `POST /api/v1/routingResult`
//! reports how a routing request (a transfer) was handled.

use super::codes::{Answer, error, success};
use super::rules::{Service, text};
use super::state::{Psr, end_user_key};
use serde_json::{Value, json};

impl Service {
    pub(super) fn route(&mut self, body: &Value) -> Answer {
        let id = text(body, "conversationIdentifier").to_string();
        let Some(conversation) = self.state.conversations.get(&id).filter(|c| c.is_open()).cloned() else {
            return error(10018);
        };
        let routing_type = text(body, "routingType").to_string();
        if !["Initial", "Transfer", "Conference"].contains(&routing_type.as_str()) {
            return super::codes::error_with(10089, "routingType must be Initial, Transfer or Conference.");
        }
        let info = match body.get("routingInfo") {
            Some(info) => info.clone(),
            // Without routingInfo the channel's own routing configuration decides.
            None => match self
                .config
                .channel(&conversation.channel)
                .and_then(|c| c.queue.clone())
            {
                Some(queue) => json!({ "queueId": queue }),
                None => return error(10030),
            },
        };
        let queue = info.get("queueId").and_then(Value::as_str);
        match (queue, info.get("flow")) {
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
        if let Some(existing) = self.state.psrs.get(&id) {
            // Accepted, but not routed: PostRouteResponse's `success: false` with the reason
            // and a RoutingError object.
            let reason = format!(
                "The conversation already has a pending service routing ({}).",
                existing.psr_id
            );
            return Answer::new(
                202,
                json!({
                    "success": false,
                    "reasonForNotRouting": reason,
                    "psrId": existing.psr_id,
                    "workItemId": conversation.work_item_id,
                    "errors": { "errorType": "PendingServiceRoutingExists", "errorMessage": reason },
                }),
            );
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
        });
        self.state.psrs.insert(id, psr);
        Answer::new(202, answer)
    }

    /// Removes the conversation's PSR; `success` says whether there was one to remove.
    pub(super) fn delete_route(&mut self, body: &Value) -> Answer {
        let id = text(body, "conversationIdentifier");
        if !self.state.conversations.contains_key(id) {
            return error(10018);
        }
        let removed = self.state.psrs.remove(id).is_some();
        Answer::new(202, json!({ "success": removed }))
    }

    pub(super) fn routing_result(&mut self, body: &Value) -> Answer {
        let work_item = text(body, "workItemId");
        if work_item.chars().count() != 15 {
            return error(10012);
        }
        let id = text(body, "conversationIdentifier");
        if !self.state.conversations.contains_key(id) {
            return error(10018);
        }
        let success_flag = body.get("success").and_then(Value::as_bool);
        let external = body.get("externallyRouted").and_then(Value::as_bool);
        let (Some(succeeded), Some(_)) = (success_flag, external) else {
            return error(10100);
        };
        let has_message = body
            .get("errorMessage")
            .and_then(Value::as_str)
            .is_some_and(|m| !m.is_empty());
        if succeeded && has_message {
            return error(10033);
        }
        if !succeeded && !has_message {
            return error(10034);
        }
        self.state.add_routing_result(body.clone());
        success(202)
    }
}
