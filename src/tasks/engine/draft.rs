//! The building blocks of a decision: the task being changed and the effects gathered so far,
//! with the money moves (hold, release, settle, rule) every command that pays out shares.

use serde_json::json;

use super::command::Ruling;
use super::decide::{Decision, Reply};
use super::effects::{DisputeChange, Effects, Outcome};
use super::state::{PaymentStatus, Status};
use crate::ledger::{Account, Entry, Purpose};
use crate::money::{Amount, Settlement};
use crate::tasks::model::TaskRow;

/// The task being changed and the effects gathered so far.
pub(super) struct Draft {
    pub(super) task: TaskRow,
    pub(super) effects: Effects,
    pub(super) now: i64,
}

impl Draft {
    pub(super) fn unchanged(self) -> Decision {
        Decision { task: self.task, effects: Effects::default(), reply: Reply::Unchanged }
    }

    pub(super) fn touch(&mut self) {
        self.task.updated_at = self.now;
    }

    pub(super) fn event(
        &mut self,
        event_type: &'static str,
        progress: Option<(i64, Option<String>)>,
        details: serde_json::Value,
    ) {
        self.effects.event(&self.task.id, event_type, progress, details);
    }

    /// Queues `event` with the task as it is at this point.
    pub(super) fn webhook(&mut self, event: &'static str) {
        self.effects.webhook(&self.task, event);
    }

    pub(super) fn outcome(&mut self, o: Outcome) {
        self.effects.outcome = Some((self.task.provider_agent_id.clone(), o));
    }

    /// Books the escrow hold: client available → client escrow.
    pub(super) fn hold(&mut self) {
        self.effects.hold(&self.task);
    }

    pub(super) fn release(&mut self, rating: Option<i64>, why: &str) {
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
    pub(super) fn settle(&mut self, settlement: Settlement, payment_status: PaymentStatus) {
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
    pub(super) fn rule(
        &mut self,
        dispute_id: &str,
        outcome: Ruling,
        client_share_bps: Option<i64>,
        note: Option<String>,
    ) {
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
            Some(DisputeChange::Open { id, reason }) => {
                Some(DisputeChange::OpenResolved { id, reason, outcome, client_share_bps, note: note.clone() })
            }
            _ => Some(DisputeChange::Resolve {
                id: dispute_id.to_string(),
                outcome,
                client_share_bps,
                note: note.clone(),
            }),
        };
        if self.task.funds_held() {
            self.settle(settlement, payment_status);
        }
        // An unfinished task ends with the ruling: cancelled when refunded, completed otherwise
        // (a free task under dispute is not frozen, so it may have ended meanwhile: it stays so).
        let was = self.task.status;
        let ended = match (was, outcome) {
            (Status::Completed | Status::Failed | Status::Cancelled, _) => was,
            (_, Ruling::Refund) => Status::Cancelled,
            _ => Status::Completed,
        };
        self.task.status = ended;
        if ended == Status::Completed {
            self.task.completed_at = self.task.completed_at.or(Some(self.now));
        }
        self.touch();
        self.outcome(stats);
        let details = json!({"dispute_id": dispute_id, "outcome": outcome.as_str(), "client_share_bps": client_share_bps,
                             "note": note});
        self.event("dispute_resolved", None, details);
        // Both sides hear how it ended: a refund cancels the deal, a release or split of
        // unfinished work completes it.
        match (outcome, was) {
            (_, Status::Failed | Status::Cancelled) => {}
            (Ruling::Refund, _) => self.webhook("task.cancelled"),
            (_, Status::Completed) => {}
            _ => self.webhook("task.completed"),
        }
    }
}
