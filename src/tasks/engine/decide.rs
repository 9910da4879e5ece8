//! The task state machine as one pure function: `(task, roles, command, now) → effects or a
//! refusal`. Every transition of the product is decided here — by the API, the dashboard, the
//! sweeper, the hiring probe and the administrators' rulings — and `can` answers the UI's
//! questions from the same rules. No I/O: the applier writes what this returns.

use serde_json::json;

use super::command::{Command, Ruling};
use super::draft::Draft;
use super::effects::{Effects, Outcome};
use super::state::{PaymentStatus, Status};
use crate::error::{ApiError, ApiResult};
use crate::ledger::{Account, Entry, Purpose};
use crate::money::Settlement;
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

fn system_only(roles: Roles) -> ApiResult<()> {
    if roles.system { Ok(()) } else { Err(ApiError::forbidden("only the server does this")) }
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
        Command::EmitChunk => {
            provider_only(roles)?;
            not_locked(task)?;
            if !(task.status.is_active() && task.payment_status.is_funded()) {
                return Err(wrong_state("streamed to", task));
            }
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
            system_only(roles)?;
            if !(awaiting_release(task) && task.review_until.is_some_and(|t| t <= now)) {
                return Ok(d.unchanged());
            }
            d.event("review_window_elapsed", None, json!({}));
            d.release(None, "review window elapsed");
            Reply::Changed
        }
        Command::ExpireDue => {
            system_only(roles)?;
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
            system_only(roles)?;
            // Only a queued hiring waits for its probe; anything else moved on meanwhile.
            if !(task.status == Status::Pending && task.payment_status.is_funded()) {
                return Ok(d.unchanged());
            }
            if !available {
                return decide(
                    task,
                    Roles::SYSTEM,
                    &Command::Fail {
                        reason: "agent_unresponsive: the agent did not answer the availability probe".into(),
                    },
                    now,
                );
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
            d.effects.dispute =
                Some(super::effects::DisputeChange::Open { id: dispute_id.clone(), reason: reason.clone() });
            d.event("dispute_opened", None, json!({"dispute_id": dispute_id, "reason": reason}));
            if task.payment_status == PaymentStatus::Escrowed {
                d.task.payment_status = PaymentStatus::Disputed;
            }
            d.touch();
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
            // An open dispute freezes a paid task's money; a free task has none to freeze.
            if !matches!(task.payment_status, PaymentStatus::Disputed | PaymentStatus::NotRequired) {
                return Err(ApiError::invalid_state(
                    "the task's money is not under dispute",
                    task.payment_status.as_str(),
                ));
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
