//! `POST /api/v1/interactions`: messages, attachments, typing indicators and failed deliveries
//! from an end user. The first message of an end user on a channel opens a conversation (with
//! its messaging session, the work item, and the messaging end user); later ones join it.

use super::codes::{Answer, error};
use super::rules::{Service, SimBody, SimRequest, header, text};
use super::state::{Conversation, EndUser, end_user_key};
use serde_json::{Value, json};

/// The message ids a conversation keeps (the latest).
const MAX_MESSAGES: usize = 100;

/// Files over this size are refused (10008).
const MAX_FILE: usize = 25 * 1024 * 1024;

impl Service {
    pub(super) fn interactions(&mut self, req: &SimRequest) -> Answer {
        let SimBody::Multipart(parts) = &req.body else {
            return error(10100);
        };
        let Some((_, _, bytes)) = parts.iter().find(|(name, _, _)| name == "json") else {
            return error(10100);
        };
        let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
            return error(10100);
        };
        if let Some(answer) = super::rules::malformed(req, &body) {
            return answer;
        }
        let files: Vec<&Vec<u8>> = parts
            .iter()
            .filter(|(name, _, _)| name == "attachments")
            .map(|(_, _, bytes)| bytes)
            .collect();
        let to = text(&body, "to");
        let from = text(&body, "from");
        // The description's limits: `to` 240 characters, `from` 255.
        if to.is_empty() || to.chars().count() > 240 {
            return error(10027);
        }
        if from.is_empty() || from.chars().count() > 255 {
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
        let interaction = match body.get("interactions").and_then(Value::as_array) {
            Some(list) if list.len() == 1 && list[0].get("timestamp").is_some_and(Value::is_u64) => &list[0],
            _ => return error(10029),
        };
        let id = match interaction.get("interactionType").and_then(Value::as_str) {
            Some("EntryInteraction") => match entry(interaction.get("payload")) {
                Ok(Entry::Message(id)) => Some(id),
                Ok(Entry::Signal) => None,
                Err(code) => return error(code),
            },
            Some("AttachmentInteraction") => match attachment(interaction, &files) {
                Ok(id) => Some(id),
                Err(code) => return error(code),
            },
            _ => return error(10029),
        };
        if id.is_none() && !files.is_empty() {
            return error(10011);
        }
        let existing = self.state.open_conversation(to, from);
        // A typing indicator or a failed delivery belongs to a conversation that exists.
        let Some(id) = id else {
            let Some(conversation) = existing else {
                return error(10025);
            };
            return self.accepted(&conversation);
        };
        let conversation = match existing {
            Some(c) => c,
            None => {
                let c = self.state.uuid();
                let work_item_id = self.state.sf_id("0Mw");
                self.state.add_conversation(
                    c.clone(),
                    Conversation {
                        channel: to.into(),
                        end_user: from.into(),
                        work_item_id,
                        session_status: "Active".into(),
                        messages: Vec::new(),
                    },
                );
                c
            }
        };
        // After the conversation: making room may free an end user's place.
        self.state.add_end_user(
            end_user_key(to, from),
            EndUser {
                channel: to.into(),
                client_id: from.into(),
                consent_status: None,
            },
        );
        if let Some(c) = self.state.conversations.get_mut(&conversation) {
            // The latest messages; a conversation's history is not the simulator's to keep.
            if c.messages.len() >= MAX_MESSAGES {
                c.messages.remove(0);
            }
            c.messages.push(id);
        }
        self.accepted(&conversation)
    }

    fn accepted(&mut self, conversation: &str) -> Answer {
        let work_item = self
            .state
            .conversations
            .get(conversation)
            .map(|c| c.work_item_id.clone())
            .unwrap_or_default();
        let id = self.state.uuid();
        Answer::new(
            202,
            json!({ "conversationIdentifier": conversation, "id": id, "workItemIds": [work_item], "success": true }),
        )
    }
}

enum Entry {
    /// A message, with its interaction id.
    Message(String),
    /// A typing indicator or a failed delivery: nothing to keep.
    Signal,
}

/// The payload of an EntryInteraction, by its `entryType`.
fn entry(payload: Option<&Value>) -> Result<Entry, u32> {
    let payload = payload.ok_or(10029u32)?;
    let id = text(payload, "id");
    match text(payload, "entryType") {
        "Message" => {
            let message = payload.get("abstractMessage").unwrap_or(&Value::Null);
            let message_id = text(message, "id");
            if id.is_empty() || message_id.is_empty() {
                return Err(10059);
            }
            if id != message_id {
                return Err(10060);
            }
            match text(message, "messageType") {
                "StaticContentMessage" => {
                    let content = message.get("staticContent").unwrap_or(&Value::Null);
                    match text(content, "formatType") {
                        "Text" if content.get("text").is_some_and(Value::is_string) => {}
                        "Text" => return Err(10045),
                        "Attachments" | "RichLink" | "WebView" => {}
                        _ => return Err(10048),
                    }
                }
                // What an end user answers to choices or a form.
                "ChoicesResponseMessage" | "FormResponseMessage" => {}
                // Sent to an end user, never by one.
                "ChoicesMessage" | "FormMessage" => return Err(10062),
                _ => return Err(10047),
            }
            Ok(Entry::Message(id.into()))
        }
        "TypingStartedIndicator" | "TypingStoppedIndicator" => {
            if id.is_empty() {
                return Err(10059);
            }
            match payload.get("timestamp").is_some_and(Value::is_u64) {
                true => Ok(Entry::Signal),
                false => Err(10029),
            }
        }
        "MessageDeliveryFailed" => {
            // Since Spring '24 the recipient must be `{appType: custom, role: EndUser}`.
            let recipient = payload.get("recipient").unwrap_or(&Value::Null);
            if text(recipient, "appType") != "custom" {
                return Err(10037);
            }
            if text(recipient, "role") != "EndUser" {
                return Err(10038);
            }
            match text(payload, "errorCode").is_empty() {
                true => Err(10029),
                false => Ok(Entry::Signal),
            }
        }
        _ => Err(10029),
    }
}

/// An AttachmentInteraction and its one file part; its interaction id.
fn attachment(interaction: &Value, files: &[&Vec<u8>]) -> Result<String, u32> {
    let id = text(interaction, "id");
    if id.is_empty() {
        return Err(10059);
    }
    let Some(length) = interaction.get("contentLength").and_then(Value::as_u64) else {
        return Err(10010);
    };
    let index = interaction.get("attachmentIndex").and_then(Value::as_u64);
    let [file] = files else {
        return Err(10011);
    };
    if index != Some(0) {
        return Err(10011);
    }
    if file.is_empty() {
        return Err(10009);
    }
    if file.len() > MAX_FILE {
        return Err(10008);
    }
    if file.len() as u64 != length {
        return Err(10051);
    }
    Ok(id.into())
}
