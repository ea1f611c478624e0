//! Agent work: `POST /api/v1/agentWork` offers the work to an agent (the PSR stays: the
//! conversation is still waiting), `PATCH /api/v1/agentWork` is what the agent does with it —
//! Accept (the PSR goes), Decline (it stays in the queue), Close, Cancel. With
//! `accept_work_after_ms` the agents accept by themselves.

use super::codes::{Answer, error, success};
use super::rules::{Service, text};
use super::state::AgentWork;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

impl Service {
    pub(super) fn agent_work(&mut self, body: &Value) -> Answer {
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
            .any(|w| w.is_active() && w.user_id == user && w.work_item_id == work_item)
        {
            return error(15109);
        }
        let psr = self.state.psrs.get(&conversation_id).cloned();
        // With a PSR, `{userId, workItemId}` suffices; without one (a transfer straight to an
        // agent) the routing context says which routing this work answers.
        let context = match (body.get("routingContext"), &psr) {
            (Some(c), _) if text(c, "conversationIdentifier") != conversation_id => return error(15107),
            (Some(c), _) => c.clone(),
            (None, Some(psr)) => json!({
                "conversationIdentifier": conversation_id,
                "routingType": psr.routing_type,
                "routingCorrelationId": psr.routing_correlation_id,
            }),
            (None, None) => {
                return super::codes::error_with(
                    10089,
                    "Without a pending service routing, agent work needs a routingContext.",
                );
            }
        };
        let agent_work_id = self.state.sf_id("0Bz");
        let accept_at = self
            .config
            .accept_work_after_ms
            .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
        self.state.add_agent_work(AgentWork {
            agent_work_id: agent_work_id.clone(),
            user_id: user,
            work_item_id: work_item,
            conversation_identifier: conversation_id,
            routing_type: context
                .get("routingType")
                .and_then(Value::as_str)
                .map(str::to_string),
            routing_correlation_id: context
                .get("routingCorrelationId")
                .and_then(Value::as_str)
                .map(str::to_string),
            status: "Assigned".into(),
            accept_at,
        });
        let mut details = Map::new();
        details.insert("existPsr".into(), json!(psr.is_some()));
        if let Some(psr) = &psr {
            details.insert("psrId".into(), json!(psr.psr_id));
        }
        for key in ["capacityWeight", "capacityPercentage"] {
            if let Some(v) = body.get(key) {
                details.insert(key.into(), v.clone());
            }
        }
        details.insert("routingContext".into(), context);
        let id = self.state.uuid();
        Answer::new(
            202,
            json!({ "id": id, "agentWorkId": agent_work_id, "agentWorkDetails": details, "success": true }),
        )
    }

    /// What the agent does with the work: `{workId, contextType: Agent, status}`.
    pub(super) fn update_agent_work(&mut self, body: &Value) -> Answer {
        match text(body, "contextType") {
            "Agent" => {}
            // The simulator has no external bots.
            "Chatbot" => return error(10084),
            _ => return error(10083),
        }
        let status = text(body, "status");
        if !["Accept", "Decline", "Close", "Cancel"].contains(&status) {
            return error(10085);
        }
        let work_id = text(body, "workId");
        let Some(index) = self
            .state
            .agent_work
            .iter()
            .position(|w| w.agent_work_id == work_id)
        else {
            return error(10082);
        };
        match self.transition(index, status) {
            true => success(202),
            false => super::codes::error_with(
                10085,
                &format!("Agent work {work_id} is {}.", self.state.agent_work[index].status),
            ),
        }
    }

    /// Applies `action` to agent work `index`, if its status allows it.
    fn transition(&mut self, index: usize, action: &str) -> bool {
        let work = &mut self.state.agent_work[index];
        let next = match (work.status.as_str(), action) {
            ("Assigned", "Accept") => "Opened",
            ("Assigned", "Decline") => "Declined",
            ("Assigned", "Cancel") => "Canceled",
            ("Opened", "Close") => "Closed",
            _ => return false,
        };
        work.status = next.into();
        work.accept_at = None;
        if next == "Opened" {
            // The agent took the work: the conversation no longer waits in the queue.
            let conversation = work.conversation_identifier.clone();
            self.state.psrs.remove(&conversation);
        }
        true
    }

    /// Accepts the work whose automatic accept is due (`accept_work_after_ms`).
    pub fn accept_due_work(&mut self, now: Instant) {
        if self.config.accept_work_after_ms.is_none() {
            return;
        }
        let due: Vec<usize> = (self.state.agent_work.iter().enumerate())
            .filter(|(_, w)| w.accept_at.is_some_and(|at| at <= now))
            .map(|(i, _)| i)
            .collect();
        for i in due {
            self.transition(i, "Accept");
        }
    }

    /// When a conversation ends: its offered work is canceled and its opened work closed.
    pub(super) fn end_work(&mut self, conversation: &str) {
        let ids: Vec<usize> = (self.state.agent_work.iter().enumerate())
            .filter(|(_, w)| w.conversation_identifier == conversation)
            .map(|(i, _)| i)
            .collect();
        for i in ids {
            if !self.transition(i, "Cancel") {
                self.transition(i, "Close");
            }
        }
    }
}
