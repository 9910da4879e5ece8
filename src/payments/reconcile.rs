//! Reconciliation (`agentmarket admin reconcile-deposits`): asks each provider for the state of
//! every pending provider deposit and applies what the callbacks missed, through the same code
//! as a callback (`nowpayments::apply`, `stripe::apply_session`), so it can never credit twice.

use serde::Serialize;
use serde_json::Value;

use super::nowpayments::{self, Outcome};
use super::store::{self, Row};
use super::{Provider, stripe};
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Debug, Default, Serialize)]
pub struct ReconcileReport {
    /// Pending provider deposits looked at.
    pub checked: usize,
    /// Deposits (or follow-up payments) credited, failed or moved on.
    pub changed: usize,
    /// Deposits whose provider could not be asked, or whose answer was refused; logged.
    pub errors: usize,
}

/// One pass over the pending provider deposits (oldest first, at most `limit`).
pub async fn run(state: &AppState, limit: i64) -> anyhow::Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    for deposit in store::pending_with_provider(&state.db, limit).await? {
        report.checked += 1;
        match reconcile_one(state, &deposit).await {
            Ok(outcomes) => {
                report.changed += outcomes.iter().filter(|o| **o != Outcome::Unchanged).count();
            }
            Err(e) => {
                report.errors += 1;
                tracing::warn!(deposit_id = deposit.id, code = e.code(), error = %e, "reconciliation failed for a deposit");
            }
        }
    }
    Ok(report)
}

async fn reconcile_one(state: &AppState, deposit: &Row) -> ApiResult<Vec<Outcome>> {
    let provider_ref = deposit.provider_ref.as_deref().unwrap_or_default();
    match deposit.provider.as_deref().and_then(Provider::parse) {
        Some(Provider::NowPayments) => {
            let client = nowpayments::Client::new(state)?;
            // A payment (`pay_currency` named) is asked for directly; an invoice's payments are
            // listed by invoice id (NOWPayments may want a Bearer token for lists on some
            // accounts: then this deposit is reported as an error and left to its callbacks).
            let payments = if deposit.pay_currency.is_some() {
                vec![client.get(&format!("/payment/{provider_ref}")).await?]
            } else {
                let list = client.get(&format!("/payment/?invoiceId={provider_ref}&limit=100")).await?;
                list["data"].as_array().cloned().unwrap_or_default()
            };
            let mut outcomes = Vec::new();
            for mut payment in payments {
                if payment.get("order_id").is_none_or(Value::is_null) {
                    payment["order_id"] = Value::String(deposit.id.clone());
                }
                outcomes.push(nowpayments::apply(state, payment).await?);
            }
            Ok(outcomes)
        }
        Some(Provider::Stripe) => {
            let session = stripe::Client::new(state)?.get(&format!("/checkout/sessions/{provider_ref}")).await?;
            let kind = match (session["status"].as_str(), session["payment_status"].as_str()) {
                (Some("complete"), Some("paid")) => "checkout.session.completed",
                (Some("expired"), _) => "checkout.session.expired",
                _ => return Ok(vec![Outcome::Unchanged]),
            };
            Ok(vec![stripe::apply_session(state, None, kind, &session).await?])
        }
        None => {
            tracing::warn!(deposit_id = deposit.id, provider = ?deposit.provider, "pending deposit with an unknown provider");
            Ok(vec![Outcome::Unchanged])
        }
    }
}
