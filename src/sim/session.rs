//! The end user's side of a conversation: consent (`PATCH /api/v1/consent`), read and delivered
//! acknowledgements (`POST /api/v1/acknowledgement`) and the messaging session's end
//! (`POST /api/v1/messagingSession`).

use super::codes::{Answer, error, success};
use super::rules::{Service, SimRequest, header, text};
use super::state::end_user_key;
use serde_json::Value;

impl Service {
    pub(super) fn consent(&mut self, req: &SimRequest, body: &Value) -> Answer {
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
            return error(10021);
        }
        if client.is_empty() {
            return error(10020);
        }
        let Some(channel) = self.config.channel(address).cloned() else {
            return error(10017);
        };
        if header(req, "AuthorizationContext") != Some(channel.definition.as_str()) {
            return error(10001);
        }
        if channel.consent_owner != "Partner" {
            return error(10022);
        }
        if channel.supports_keywords {
            return error(10023);
        }
        let Some(user) = self.state.end_users.get_mut(&end_user_key(address, client)) else {
            return error(10105);
        };
        user.consent_status = Some(status.to_string());
        success(200)
    }

    pub(super) fn acknowledgement(&mut self, body: &Value) -> Answer {
        let id = text(body, "conversationIdentifier");
        if !self.state.conversations.contains_key(id) {
            return error(10018);
        }
        self.state.add_acknowledgement(body.clone());
        success(200)
    }

    /// End (the end user left: routing is given up, work closed) or Inactivate a session.
    pub(super) fn messaging_session(&mut self, body: &Value) -> Answer {
        let operation = text(body, "operation");
        if !["End", "Inactivate"].contains(&operation) {
            return error(10102);
        }
        if body.get("operationBy").is_some() && !["EndUser", "System"].contains(&text(body, "operationBy")) {
            return error(10103);
        }
        let address = text(body, "channelAddressIdentifier");
        if self.config.channel(address).is_none() {
            return error(10017);
        }
        let id = text(body, "conversationIdentifier").to_string();
        let Some(conversation) = self.state.conversations.get(&id).filter(|c| c.is_open()) else {
            return error(10071);
        };
        if conversation.channel != address || conversation.end_user != text(body, "endUserClientId") {
            return error(10071);
        }
        if operation == "Inactivate" {
            let session = text(body, "sessionId");
            if session.is_empty() {
                return error(10106);
            }
            if session != conversation.work_item_id {
                return error(10071);
            }
        }
        if operation == "End" {
            self.state.end_conversation(&id);
            self.state.psrs.remove(&id);
            self.end_work(&id);
        } else if let Some(c) = self.state.conversations.get_mut(&id) {
            c.session_status = "Inactive".into();
        }
        success(200)
    }
}
