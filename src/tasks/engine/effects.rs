//! What a decided command changes besides the task row, as data: ledger entries, statement
//! lines, timeline events, webhooks, the provider's reputation, the dispute. The applier writes
//! a whole batch of these with a few statements.

use serde_json::json;

use super::command::Ruling;
use super::state::HiringStatus;
use crate::ledger::{Account, Entry, Principal, Purpose};
use crate::money::Amount;
use crate::tasks::model::TaskRow;

/// A settled task's effect on its provider: counters, reputation (hundredths, kept in 0–5) and
/// an optional 1–5 rating.
pub use crate::agents::store::Outcome;

/// One timeline event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub task_id: String,
    pub event_type: &'static str,
    pub progress: Option<(i64, Option<String>)>,
    pub details: serde_json::Value,
}

/// One statement line (what a principal sees of a ledger entry).
pub use crate::ledger::statement::Item as Line;

/// A webhook to queue: the event, who hears it, and the payload as of the change.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub event: &'static str,
    pub owners: Vec<String>,
    pub task_id: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisputeChange {
    Open {
        id: String,
        reason: String,
    },
    /// Opened and ruled in the same command (tier 1).
    OpenResolved {
        id: String,
        reason: String,
        outcome: Ruling,
        client_share_bps: Option<i64>,
        note: Option<String>,
    },
    Resolve {
        id: String,
        outcome: Ruling,
        client_share_bps: Option<i64>,
        note: Option<String>,
    },
}

#[derive(Debug, Default)]
pub struct Effects {
    pub entries: Vec<Entry>,
    pub lines: Vec<Line>,
    pub events: Vec<Event>,
    pub webhooks: Vec<Webhook>,
    /// The provider agent and how the command changes its record.
    pub outcome: Option<(String, Outcome)>,
    pub dispute: Option<DisputeChange>,
    /// A first message (a hiring's `client_message`): `(content, sender user)`.
    pub message: Option<(String, Option<String>)>,
}

impl Effects {
    /// The escrow hold of `task`: client available → client escrow, its statement line and
    /// its timeline event.
    pub fn hold(&mut self, task: &TaskRow) {
        let client = task.client();
        self.entries.push(Entry {
            kind: "escrow_hold",
            reference: format!("task:{}:hold", task.id),
            task_id: Some(task.id.clone()),
            memo: None,
            postings: vec![
                (Account::Wallet(client.clone(), Purpose::Available), -task.price),
                (Account::Wallet(client.clone(), Purpose::Escrow), task.price),
            ],
        });
        self.line(&client, "escrow_hold", task.price(), &task.id, format!("escrow for task {}", task.id));
        self.event(&task.id, "payment_escrowed", None, json!({"amount": task.price()}));
    }

    pub fn event(
        &mut self,
        task_id: &str,
        event_type: &'static str,
        progress: Option<(i64, Option<String>)>,
        details: serde_json::Value,
    ) {
        self.events.push(Event { task_id: task_id.to_string(), event_type, progress, details });
    }

    pub fn line(
        &mut self,
        principal: &Principal,
        kind: &'static str,
        amount: Amount,
        task_id: &str,
        description: String,
    ) {
        self.lines.push(Line { principal: principal.clone(), kind, amount, task_id: task_id.to_string(), description });
    }

    /// Queues `event` about `task` as it is now (and the `hiring.*` twin for hirings).
    pub fn webhook(&mut self, task: &TaskRow, event: &'static str) {
        let owners = recipients(task);
        self.webhooks.push(Webhook {
            event,
            owners: owners.clone(),
            task_id: task.id.clone(),
            payload: payload(task, event),
        });
        let twin = match event {
            "task.created" => Some("hiring.created"),
            "task.completed" => Some("hiring.completed"),
            "task.failed" => Some("hiring.failed"),
            "task.cancelled" => Some("hiring.cancelled"),
            _ => None,
        };
        if let (Some(twin), true) = (twin, task.kind == "hiring") {
            let mut payload = payload(task, twin);
            payload["hiring_id"] = serde_json::Value::String(task.id.clone());
            payload["hiring_status"] =
                serde_json::Value::String(HiringStatus::of(task.status, task.payment_status).as_str().into());
            self.webhooks.push(Webhook { event: twin, owners, task_id: task.id.clone(), payload });
        }
    }
}

/// Whose webhooks hear about a task: the paying principal (and the user behind an acting agent)
/// and the provider agent.
pub fn recipients(task: &TaskRow) -> Vec<String> {
    let mut owners = vec![task.client().key(), task.provider().key()];
    if let Some(user) = &task.client_user_id {
        let key = Principal::User(user.clone()).key();
        if !owners.contains(&key) {
            owners.push(key);
        }
    }
    owners
}

/// The flat payload the Agrenting receivers read.
pub fn payload(task: &TaskRow, event: &str) -> serde_json::Value {
    let t = task.to_task();
    json!({
        "event": event,
        "task_id": t.id,
        "status": t.status,
        "payment_status": t.payment_status,
        "output": t.output,
        "output_sha256": t.output_sha256,
        "error_reason": t.error_reason,
        "progress_percent": t.progress_percent,
        "progress_message": t.progress_message,
        "price": t.price,
        "fee": t.fee,
        "currency": t.currency,
        "capability": t.capability,
        "provider_agent_id": t.provider_agent_id,
        "provider_agent_did": t.provider_agent_did,
        "client_agent_id": t.client_agent_id,
        "client_user_id": t.client_user_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "completed_at": t.completed_at,
        "released_at": t.released_at,
    })
}
