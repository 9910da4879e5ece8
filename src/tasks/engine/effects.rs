//! What a decided command changes besides the task row, as data: ledger entries, statement
//! lines, timeline events, webhooks, the provider's reputation, the dispute. The applier writes
//! a whole batch of these with a few statements.

use serde_json::json;

use super::command::Ruling;
use super::state::HiringStatus;
use crate::clock::{rfc3339, rfc3339_opt};
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
    /// The JSON body, serialized once.
    pub payload: String,
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
            payload: payload(task, event, None),
        });
        let twin = match event {
            "task.created" => Some("hiring.created"),
            "task.completed" => Some("hiring.completed"),
            "task.failed" => Some("hiring.failed"),
            "task.cancelled" => Some("hiring.cancelled"),
            _ => None,
        };
        if let (Some(twin), true) = (twin, task.kind == "hiring") {
            let hiring = HiringStatus::of(task.status, task.payment_status);
            let payload = payload(task, twin, Some(hiring));
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
pub fn payload(task: &TaskRow, event: &str, hiring: Option<HiringStatus>) -> String {
    let t = task;
    let body = Payload {
        capability: &t.capability,
        client_agent_id: t.client_agent_id.as_deref(),
        client_user_id: t.client_user_id.as_deref(),
        completed_at: rfc3339_opt(t.completed_at),
        created_at: rfc3339(t.created_at),
        currency: &t.currency,
        error_reason: t.error_reason.as_deref(),
        event,
        fee: Amount::from_units(t.fee).unwrap_or_default(),
        hiring_id: hiring.map(|_| t.id.as_str()),
        hiring_status: hiring.map(HiringStatus::as_str),
        output: t
            .output
            .as_deref()
            .map(|s| serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))),
        output_sha256: t.output_sha256.as_deref(),
        payment_status: t.payment_status.as_str(),
        price: t.price(),
        progress_message: t.progress_message.as_deref(),
        progress_percent: t.progress_percent,
        provider_agent_did: &t.provider_agent_did,
        provider_agent_id: &t.provider_agent_id,
        released_at: rfc3339_opt(t.released_at),
        status: t.status.as_str(),
        task_id: &t.id,
        updated_at: rfc3339(t.updated_at),
    };
    serde_json::to_string(&body).expect("a payload serializes")
}

/// A task webhook's body: the task as the event left it (a hiring's twin event adds its id and
/// hiring status). The fields are in alphabetical order, the order the body has always had.
#[derive(serde::Serialize)]
struct Payload<'a> {
    capability: &'a str,
    client_agent_id: Option<&'a str>,
    client_user_id: Option<&'a str>,
    completed_at: Option<String>,
    created_at: String,
    currency: &'a str,
    error_reason: Option<&'a str>,
    event: &'a str,
    fee: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    hiring_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hiring_status: Option<&'a str>,
    output: Option<serde_json::Value>,
    output_sha256: Option<&'a str>,
    payment_status: &'a str,
    price: Amount,
    progress_message: Option<&'a str>,
    progress_percent: i64,
    provider_agent_did: &'a str,
    provider_agent_id: &'a str,
    released_at: Option<String>,
    status: &'a str,
    task_id: &'a str,
    updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::super::state::{PaymentStatus as P, Status as S};
    use super::super::table_tests::task_in;
    use super::{Effects, HiringStatus, payload};

    #[test]
    fn a_payload_is_the_task_as_a_json_object_with_sorted_keys() {
        let task = task_in(S::Completed, P::Escrowed);
        let body = payload(&task, "task.completed", None);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        // A `serde_json::Value` prints its keys sorted: the body is already in that form.
        assert_eq!(value.to_string(), body);
        assert_eq!(value["event"], "task.completed");
        assert_eq!(value["task_id"], "task-1");
        assert_eq!((value["status"].as_str(), value["payment_status"].as_str()), (Some("completed"), Some("escrowed")));
        assert_eq!((value["price"].as_str(), value["fee"].as_str()), (Some("10.00"), Some("0.50")));
        assert_eq!(value["output"], "done");
        assert_eq!(value["completed_at"], crate::clock::rfc3339(3));
        assert!(value.get("hiring_id").is_none() && value["released_at"].is_null());
        let twin: serde_json::Value =
            serde_json::from_str(&payload(&task, "hiring.completed", Some(HiringStatus::Completed))).unwrap();
        assert_eq!((twin["hiring_id"].as_str(), twin["hiring_status"].as_str()), (Some("task-1"), Some("completed")));
    }

    #[test]
    fn a_hiring_event_has_its_twin() {
        let mut effects = Effects::default();
        effects.webhook(&task_in(S::Completed, P::Escrowed), "task.completed");
        let events: Vec<&str> = effects.webhooks.iter().map(|w| w.event).collect();
        assert_eq!(events, ["task.completed", "hiring.completed"]);
    }
}
