//! The task state machine as one pure function: `(task, roles, command, now) → effects or a
//! refusal`. Every transition of the product is decided here — by the API, the dashboard, the
//! sweeper, the hiring probe and the administrators' rulings — and `can` answers the UI's
//! questions from the same rules. No I/O: the applier writes what this returns.

use serde_json::json;

use super::command::{Command, Ruling};
use super::effects::{Effects, Outcome};
use super::state::{PaymentStatus, Status};
use crate::error::{ApiError, ApiResult};
use crate::ledger::{Account, Entry, Purpose};
use crate::money::{Amount, Settlement};
use crate::tasks::model::TaskRow;

/// Who the actor is to this task. A user may be both (owning the agents on both sides).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub client: bool,
    pub provider: bool,
    /// An administrator (may see any task and rule on disputes).
    pub admin: bool,
    /// The server itself: the sweeper and the hiring probe.
    pub system: bool,
}

impl Roles {
    pub const CLIENT: Roles = Roles { client: true, provider: false, admin: false, system: false };
    pub const PROVIDER: Roles = Roles { client: false, provider: true, admin: false, system: false };
    pub const ADMIN: Roles = Roles { client: false, provider: false, admin: true, system: false };
    pub const SYSTEM: Roles = Roles { client: false, provider: false, admin: false, system: true };

    fn sees(self) -> bool {
        self.client || self.provider || self.admin || self.system
    }
}

/// What the command's caller is told besides the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The task after the command.
    Changed,
    /// Nothing to do (already paid, no longer due): the task as it is.
    Unchanged,
    /// A reassignment, with the provider it left.
    Reassigned { previous_did: String },
}

/// The accepted outcome of a command: the task after it and everything to write.
#[derive(Debug)]
pub struct Decision {
    pub task: TaskRow,
    pub effects: Effects,
    pub reply: Reply,
}

pub fn escrow_locked() -> ApiError {
    ApiError::new(axum::http::StatusCode::LOCKED, "ESCROW_LOCKED", "the funds are held by an open dispute")
}

pub fn dispute_open() -> ApiError {
    ApiError::new(axum::http::StatusCode::CONFLICT, "DISPUTE_OPEN", "a dispute is already open on this task")
}

fn wrong_state(action: &str, task: &TaskRow) -> ApiError {
    ApiError::invalid_state(
        format!("a {} task cannot be {action}", task.status.as_str().replace('_', " ")),
        task.status.as_str(),
    )
}

fn provider_only(roles: Roles) -> ApiResult<()> {
    if roles.provider { Ok(()) } else { Err(ApiError::forbidden("only the provider agent may do this")) }
}

fn client_only(roles: Roles) -> ApiResult<()> {
    if roles.client { Ok(()) } else { Err(ApiError::forbidden("only the client may do this")) }
}

fn not_locked(task: &TaskRow) -> ApiResult<()> {
    if task.payment_status == PaymentStatus::Disputed { Err(escrow_locked()) } else { Ok(()) }
}

/// Decides `command` on `task` for an actor with `roles` at `now` (the task as locked).
pub fn decide(task: &TaskRow, roles: Roles, command: &Command, now: i64) -> ApiResult<Decision> {
    if !roles.sees() {
        return Err(ApiError::not_found("task"));
    }
    let mut d = Draft { task: task.clone(), effects: Effects::default(), now };
    let reply = match command {
        Command::Pay { payment_id } => {
            client_only(roles).map_err(|_| ApiError::forbidden("only the client pays for a task"))?;
            if task.payment_id.is_some() || task.payment_status == PaymentStatus::NotRequired {
                return Ok(d.unchanged());
            }
            if !(task.status.is_active() && task.payment_status == PaymentStatus::Unpaid) {
                return Err(ApiError::invalid_state("this task can no longer be paid", task.status.as_str()));
            }
            d.task.payment_status = PaymentStatus::Escrowed;
            d.task.payment_id = Some(payment_id.clone());
            d.task.payment_type = Some("balance".into());
            d.task.payment_created_at = Some(now);
            d.touch();
            d.hold();
            Reply::Changed
        }
        Command::Claim => {
            provider_only(roles)?;
            not_locked(task)?;
            if task.status == Status::Pending && task.payment_status == PaymentStatus::Unpaid {
                return Err(ApiError::conflict("the task is not funded yet")
                    .with_details([json!({"field": "payment_status", "current": "unpaid"})]));
            }
            if !(task.status == Status::Pending && task.payment_status.is_funded()) {
                return Err(wrong_state("claimed", task));
            }
            d.task.status = Status::Claimed;
            d.task.claimed_at = Some(now);
            d.touch();
            d.event("task_claimed", None, json!({"provider_agent_id": task.provider_agent_id}));
            d.webhook("task.claimed");
            Reply::Changed
        }
        Command::Progress { percent, message } => {
            provider_only(roles)?;
            if !matches!(task.status, Status::Claimed | Status::InProgress) {
                return Err(wrong_state("updated", task));
            }
            d.task.status = Status::InProgress;
            d.task.progress_percent = *percent;
            d.task.progress_message = message.clone();
            d.touch();
            d.event("task_progress", Some((*percent, message.clone())), json!({}));
            d.webhook("task.in_progress");
            Reply::Changed
        }
        Command::Complete { output, output_sha256, review_window_ms } => {
            provider_only(roles)?;
            not_locked(task)?;
            if !(task.status.is_active() && task.payment_status.is_funded()) {
                return Err(wrong_state("completed", task));
            }
            d.task.status = Status::Completed;
            d.task.output = Some(output.clone());
            d.task.output_sha256 = Some(output_sha256.clone());
            d.task.progress_percent = 100;
            d.task.completed_at = Some(now);
            d.task.review_until = Some(now + review_window_ms);
            d.task.claimed_at = d.task.claimed_at.or(Some(now));
            d.touch();
            if task.funds_held() {
                d.effects.entries.push(Entry {
                    kind: "escrow_to_pending",
                    reference: format!("task:{}:complete", task.id),
                    task_id: Some(task.id.clone()),
                    memo: None,
                    postings: vec![
                        (Account::Wallet(task.client(), Purpose::Escrow), -task.price),
                        (Account::Wallet(task.provider(), Purpose::Pending), task.price),
                    ],
                });
            }
            d.event("task_completed", None, json!({"output_sha256": output_sha256}));
            if *review_window_ms == 0 {
                d.release(None, "released at completion (no review window)");
            }
            d.webhook("task.completed");
            Reply::Changed
        }
        Command::Fail { reason } => {
            if !roles.system {
                provider_only(roles)?;
            }
            not_locked(task)?;
            if !task.status.is_active() {
                return Err(wrong_state("failed", task));
            }
            d.task.status = Status::Failed;
            d.task.error_reason = Some(reason.clone());
            d.touch();
            d.event("task_failed", None, json!({"error_reason": reason}));
            d.outcome(Outcome { failed: 1, ..Outcome::default() });
            if d.task.funds_held() {
                d.settle(Settlement::refund(task.price()), PaymentStatus::Refunded);
            }
            d.webhook("task.failed");
            Reply::Changed
        }
        Command::Cancel => {
            client_only(roles)?;
            not_locked(task)?;
            if !task.status.is_active() {
                return Err(wrong_state("cancelled", task));
            }
            d.task.status = Status::Cancelled;
            d.touch();
            d.event("task_cancelled", None, json!({}));
            if d.task.funds_held() {
                d.settle(Settlement::refund(task.price()), PaymentStatus::Refunded);
            }
            d.webhook("task.cancelled");
            Reply::Changed
        }
        Command::Accept { rating, review } => {
            client_only(roles)?;
            not_locked(task)?;
            if !awaiting_release(task) {
                return Err(wrong_state("accepted", task));
            }
            d.task.rating = *rating;
            d.task.review = review.clone();
            d.touch();
            d.event("task_accepted", None, json!({"rating": rating, "review": review}));
            d.release(*rating, "accepted by the client");
            Reply::Changed
        }
        Command::ReleaseDue => {
            if !(awaiting_release(task) && task.review_until.is_some_and(|t| t <= now)) {
                return Ok(d.unchanged());
            }
            d.event("review_window_elapsed", None, json!({}));
            d.release(None, "review window elapsed");
            Reply::Changed
        }
        Command::ExpireDue => {
            let due = task.status.is_active()
                && task.payment_status != PaymentStatus::Disputed
                && task.deadline_at.is_some_and(|t| t <= now);
            if !due {
                return Ok(d.unchanged());
            }
            return decide(task, Roles::SYSTEM, &Command::Fail { reason: "the deadline passed".into() }, now);
        }
        Command::Reassign { to, .. } => {
            let Some(to) = to else { return Err(ApiError::not_found("provider agent")) };
            client_only(roles)?;
            not_locked(task)?;
            if to.status != "active" {
                return Err(crate::tasks::agent_unavailable("the new provider agent is not active"));
            }
            if task.client_agent_id.as_deref() == Some(to.id.as_str()) {
                return Err(ApiError::field("provider_agent_id", "an agent cannot hire itself"));
            }
            if !to.capabilities().contains(&task.capability) {
                return Err(ApiError::field(
                    "provider_agent_id",
                    "the new provider does not offer this task's capability",
                ));
            }
            if !task.status.is_active() {
                return Err(wrong_state("reassigned", task));
            }
            d.task.provider_agent_id = to.id.clone();
            d.task.provider_agent_did = to.did.clone();
            d.task.status = Status::Pending;
            d.task.claimed_at = None;
            d.task.progress_percent = 0;
            d.task.progress_message = None;
            d.touch();
            d.event(
                "task_reassigned",
                None,
                json!({"previous_agent_id": task.provider_agent_id, "previous_agent_did": task.provider_agent_did,
                       "new_agent_id": to.id}),
            );
            Reply::Reassigned { previous_did: task.provider_agent_did.clone() }
        }
        Command::Probe { available } => {
            if !available {
                return decide(
                    task,
                    Roles::SYSTEM,
                    &Command::Fail { reason: "agent_unresponsive: the agent did not answer the availability probe".into() },
                    now,
                );
            }
            if !(task.status == Status::Pending && task.payment_status.is_funded()) {
                return Ok(d.unchanged());
            }
            d.task.status = Status::InProgress;
            d.task.claimed_at = Some(now);
            d.touch();
            d.event("task_claimed", None, json!({"provider_agent_id": task.provider_agent_id, "probe": "available"}));
            d.webhook("task.in_progress");
            Reply::Changed
        }
        Command::Retry { reason } => {
            if !roles.client {
                return Err(ApiError::forbidden("only the client may retry a hiring"));
            }
            if !(task.status.is_active() && task.payment_status.is_funded()) {
                let hiring = super::state::HiringStatus::of(task.status, task.payment_status);
                return Err(ApiError::invalid_state("a final hiring cannot be retried; hire again", hiring.as_str()));
            }
            d.task.status = Status::Pending;
            d.task.claimed_at = None;
            d.task.trace_attempt += 1;
            d.touch();
            d.event("hiring_retried", None, json!({"reason": reason, "trace_attempt": d.task.trace_attempt}));
            Reply::Changed
        }
        Command::OpenDispute { dispute_id, reason, existing } => {
            if !(roles.client || roles.provider) {
                return Err(ApiError::not_found("task"));
            }
            if !roles.client {
                return Err(ApiError::forbidden("only the client may open a dispute"));
            }
            if *existing || task.payment_status == PaymentStatus::Disputed {
                return Err(dispute_open());
            }
            let disputable = matches!(task.status, Status::Claimed | Status::InProgress | Status::Completed)
                && task.released_at.is_none()
                && task.payment_status.is_funded();
            if !disputable {
                return Err(ApiError::invalid_state(
                    "only a task whose money is still held can be disputed",
                    task.status.as_str(),
                ));
            }
            d.effects.dispute = Some(super::effects::DisputeChange::Open {
                id: dispute_id.clone(),
                reason: reason.clone(),
            });
            d.event("dispute_opened", None, json!({"dispute_id": dispute_id, "reason": reason}));
            if task.payment_status == PaymentStatus::Escrowed {
                d.task.payment_status = PaymentStatus::Disputed;
                d.touch();
            }
            d.webhook("task.disputed");
            // Tier 1: a completed task without output is refunded in full at once.
            if task.status == Status::Completed && empty_output(task) {
                d.rule(dispute_id, Ruling::Refund, None, Some("tier 1: the task produced no output".into()));
            }
            Reply::Changed
        }
        Command::Rule { dispute_id, open, outcome, client_share_bps, note } => {
            if !(roles.admin || roles.system) {
                return Err(ApiError::forbidden("administrators only"));
            }
            if !open {
                return Err(ApiError::invalid_state("this dispute is already resolved", "resolved"));
            }
            d.rule(dispute_id, *outcome, *client_share_bps, note.clone());
            Reply::Changed
        }
    };
    Ok(Decision { task: d.task, effects: d.effects, reply })
}

/// A completed task whose money (if any) is still held, not released yet.
fn awaiting_release(task: &TaskRow) -> bool {
    task.status == Status::Completed && task.payment_status.is_funded() && task.released_at.is_none()
}

fn empty_output(task: &TaskRow) -> bool {
    match task.output.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        None => true,
        Some(Ok(serde_json::Value::Null)) => true,
        Some(Ok(serde_json::Value::String(s))) => s.trim().is_empty(),
        Some(Ok(serde_json::Value::Object(m))) => m.is_empty(),
        Some(Ok(serde_json::Value::Array(a))) => a.is_empty(),
        _ => false,
    }
}

/// Whether `command` would be accepted now (the dashboard's buttons, the hiring view): the same
/// rules, without the side effects.
pub fn can(task: &TaskRow, roles: Roles, command: &Command, now: i64) -> bool {
    matches!(decide(task, roles, command, now), Ok(Decision { reply: Reply::Changed | Reply::Reassigned { .. }, .. }))
}

/// The task being changed and the effects gathered so far.
struct Draft {
    task: TaskRow,
    effects: Effects,
    now: i64,
}

impl Draft {
    fn unchanged(self) -> Decision {
        Decision { task: self.task, effects: Effects::default(), reply: Reply::Unchanged }
    }

    fn touch(&mut self) {
        self.task.updated_at = self.now;
    }

    fn event(&mut self, event_type: &'static str, progress: Option<(i64, Option<String>)>, details: serde_json::Value) {
        self.effects.event(&self.task.id, event_type, progress, details);
    }

    /// Queues `event` with the task as it is at this point.
    fn webhook(&mut self, event: &'static str) {
        self.effects.webhook(&self.task, event);
    }

    fn outcome(&mut self, o: Outcome) {
        self.effects.outcome = Some((self.task.provider_agent_id.clone(), o));
    }

    /// Books the escrow hold: client available → client escrow.
    fn hold(&mut self) {
        let task = &self.task;
        let client = task.client();
        self.effects.entries.push(Entry {
            kind: "escrow_hold",
            reference: format!("task:{}:hold", task.id),
            task_id: Some(task.id.clone()),
            memo: None,
            postings: vec![
                (Account::Wallet(client.clone(), Purpose::Available), -task.price),
                (Account::Wallet(client.clone(), Purpose::Escrow), task.price),
            ],
        });
        self.effects.line(&client, "escrow_hold", task.price(), &task.id, format!("escrow for task {}", task.id));
        let amount = task.price();
        self.event("payment_escrowed", None, json!({"amount": amount}));
    }

    /// Pays a completed task out: the provider gets price − fee, the platform the fee.
    fn release(&mut self, rating: Option<i64>, why: &str) {
        self.outcome(Outcome { completed: 1, rating, ..Outcome::default() });
        if self.task.payment_status == PaymentStatus::NotRequired {
            self.task.released_at = Some(self.now);
            self.touch();
            self.event("task_released", None, json!({"reason": why}));
            return;
        }
        let settlement = Settlement::release(self.task.price(), self.task.fee_bps);
        self.settle(settlement, PaymentStatus::Released);
    }

    /// Moves the held money where `settlement` says, once (`task:<id>:settle` is unique).
    fn settle(&mut self, settlement: Settlement, payment_status: PaymentStatus) {
        let task = &self.task;
        let (client, provider) = (task.client(), task.provider());
        let source = if task.funds_in_pending() {
            Account::Wallet(provider.clone(), Purpose::Pending)
        } else {
            Account::Wallet(client.clone(), Purpose::Escrow)
        };
        self.effects.entries.push(Entry {
            kind: match payment_status {
                PaymentStatus::Released => "escrow_release",
                PaymentStatus::Refunded => "escrow_refund",
                _ => "escrow_split",
            },
            reference: format!("task:{}:settle", task.id),
            task_id: Some(task.id.clone()),
            memo: None,
            postings: vec![
                (source, -settlement.held.units()),
                (Account::Wallet(provider.clone(), Purpose::Available), settlement.to_provider.units()),
                (Account::fees_for(&task.id), settlement.fee.units()),
                (Account::Wallet(client.clone(), Purpose::Available), settlement.to_client.units()),
            ],
        });
        let id = task.id.clone();
        if !settlement.to_client.is_zero() {
            self.effects.line(&client, "escrow_refund", settlement.to_client, &id, format!("refund for task {id}"));
        }
        let paid_out = settlement.held.units() - settlement.to_client.units();
        if paid_out > 0 {
            let amount = Amount::from_units(paid_out).unwrap_or_default();
            self.effects.line(&client, "escrow_release", amount, &id, format!("paid for task {id}"));
            self.effects.line(&provider, "earning", settlement.to_provider, &id, format!("earning for task {id}"));
            if !settlement.fee.is_zero() {
                let fee_bps = task.fee_bps;
                let text = format!("{fee_bps} bps platform fee on task {id}");
                self.effects.line(&provider, "platform_fee", settlement.fee, &id, text);
            }
        }
        self.task.payment_status = payment_status;
        self.task.released_at = Some(self.now);
        self.touch();
        let event = if payment_status == PaymentStatus::Refunded { "payment_refunded" } else { "payment_released" };
        let details =
            json!({"to_provider": settlement.to_provider, "fee": settlement.fee, "to_client": settlement.to_client});
        self.event(event, None, details);
        if payment_status != PaymentStatus::Refunded {
            self.webhook("payment.confirmed");
        }
    }

    /// A dispute ruling: the money, the task's end, the provider's reputation, the dispute.
    fn rule(&mut self, dispute_id: &str, outcome: Ruling, client_share_bps: Option<i64>, note: Option<String>) {
        let price = self.task.price();
        let (settlement, payment_status, stats) = match outcome {
            Ruling::Refund => (
                Settlement::refund(price),
                PaymentStatus::Refunded,
                Outcome { failed: 1, reputation_centi: -15, ..Outcome::default() },
            ),
            Ruling::Release => (
                Settlement::release(price, self.task.fee_bps),
                PaymentStatus::Released,
                Outcome { completed: 1, reputation_centi: 10, ..Outcome::default() },
            ),
            Ruling::Split => (
                Settlement::split(price, self.task.fee_bps, client_share_bps.unwrap_or(5000)),
                PaymentStatus::Split,
                Outcome { completed: 1, reputation_centi: -5, ..Outcome::default() },
            ),
        };
        self.effects.dispute = match self.effects.dispute.take() {
            // Opened and ruled at once (tier 1): the opening row is written resolved.
            Some(super::effects::DisputeChange::Open { id, reason }) => Some(super::effects::DisputeChange::OpenResolved {
                id,
                reason,
                outcome,
                client_share_bps,
                note: note.clone(),
            }),
            _ => Some(super::effects::DisputeChange::Resolve {
                id: dispute_id.to_string(),
                outcome,
                client_share_bps,
                note: note.clone(),
            }),
        };
        if self.task.funds_held() {
            self.settle(settlement, payment_status);
        }
        // An unfinished task ends with the ruling: cancelled when refunded, completed otherwise.
        let was = self.task.status;
        let ended = if was == Status::Completed || outcome != Ruling::Refund { Status::Completed } else { Status::Cancelled };
        self.task.status = ended;
        self.task.completed_at = self.task.completed_at.or(Some(self.now));
        self.touch();
        self.outcome(stats);
        let details = json!({"dispute_id": dispute_id, "outcome": outcome.as_str(), "client_share_bps": client_share_bps,
                             "note": note});
        self.event("dispute_resolved", None, details);
        // Both sides hear how it ended: a refund cancels the deal, a release or split of
        // unfinished work completes it.
        if outcome == Ruling::Refund {
            self.webhook("task.cancelled");
        } else if was != Status::Completed {
            self.webhook("task.completed");
        }
    }
}
