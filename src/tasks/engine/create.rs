//! Creating a task or a hiring, decided like every other command: the new row, its escrow
//! hold, its first events and webhooks — or a refusal, before anything is written.

use serde_json::json;

use super::decide::{Decision, Reply};
use super::effects::Effects;
use super::state::PaymentStatus;
use crate::agents::model::AgentRow;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ledger::Principal;
use crate::money::Amount;
use crate::tasks::model::{NewTaskRow, TaskRow};

/// How the price is set.
#[derive(Debug, Clone)]
pub enum Pricing {
    /// `POST /tasks`: by the provider's pricing model, within the client's `max_price`.
    Model { max_price: Option<Amount> },
    /// `POST /agents/:did/hire`: the offered price, at least the agent's base price unless it
    /// runs auctions.
    Offer(Amount),
}

/// What makes a hiring a hiring.
#[derive(Debug, Clone)]
pub struct HireParts {
    pub description: String,
    pub delivery_mode: String,
    pub repo_url: Option<String>,
    /// `client_idempotency_key`: the same key and request return the original hiring.
    pub key: Option<String>,
    /// The request's fields that make two hirings the same (with the agent's DID, once found).
    pub request: Vec<serde_json::Value>,
    pub client_message: Option<String>,
}

impl HireParts {
    /// The request's fingerprint: SHA-256 of `[agent DID, …request]` as JSON.
    pub fn fingerprint(&self, did: &str) -> String {
        let mut canonical = vec![serde_json::Value::String(did.to_string())];
        canonical.extend(self.request.iter().cloned());
        let text = serde_json::Value::Array(canonical).to_string();
        crate::hex::sha256(text.as_bytes())
    }
}

/// A validated request for a new task (or hiring), with the ids it will get.
#[derive(Debug, Clone)]
pub struct Create {
    pub caller: Caller,
    pub client: Principal,
    /// The provider's UUID or DID.
    pub provider_ref: String,
    pub capability: String,
    /// The input as JSON text.
    pub input: String,
    pub pricing: Pricing,
    /// Hold the escrow now (`payment_type: balance`; hirings always).
    pub pay_now: bool,
    /// A payment type whose provider this server does not have.
    pub unsupported_payment: bool,
    pub deadline_at: Option<i64>,
    pub fee_bps: i64,
    pub hire: Option<HireParts>,
}

impl Create {
    pub fn is_hire(&self) -> bool {
        self.hire.is_some()
    }

    /// The field that named the provider and the capability, as the request spelled them.
    fn fields(&self) -> (&'static str, &'static str, &'static str) {
        if self.is_hire() {
            ("agent", "capability_requested", "agent")
        } else {
            ("provider agent", "capability", "provider_agent_id")
        }
    }
}

fn price_above_max(message: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "PRICE_ABOVE_MAX", message)
}

/// The price the client pays, by the provider's pricing model and the client's limits.
pub fn resolve_price(provider: &AgentRow, pricing: &Pricing, key_cap: Option<Amount>) -> ApiResult<Amount> {
    let base = Amount::from_units(provider.base_price).unwrap_or_default();
    let price = match pricing {
        Pricing::Offer(offer) => {
            if provider.pricing_model != "auction" && *offer < base {
                return Err(ApiError::invalid_amount("price", format!("is below this agent's price {base}")));
            }
            *offer
        }
        Pricing::Model { max_price } => match provider.pricing_model.as_str() {
            "fixed" => {
                if let Some(max) = max_price.filter(|m| base > *m) {
                    return Err(price_above_max(format!("the agent charges {base}, above your max_price {max}")));
                }
                base
            }
            model => match max_price {
                Some(offer) if model == "hybrid" && *offer < base => {
                    return Err(ApiError::invalid_amount(
                        "max_price",
                        format!("is below this agent's base price {base}"),
                    ));
                }
                Some(offer) => *offer,
                None if base.is_zero() => Amount::ZERO,
                None => {
                    return Err(ApiError::invalid_amount("max_price", format!("is required: this is a {model} agent")));
                }
            },
        },
    };
    if let Some(cap) = key_cap.filter(|c| price > *c) {
        return Err(price_above_max(format!("the price {price} is above this key's max_price_per_hire {cap}")));
    }
    Ok(price)
}

pub fn idempotency_conflict() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "IDEMPOTENCY_CONFLICT",
        "this client_idempotency_key was used for a different hiring request",
    )
}

/// Decides a creation. `provider` is the agent `provider_ref` names (if any); `existing` is the
/// hiring already made with the same client idempotency key (if any).
pub fn decide_create(
    c: &Create,
    provider: Option<&AgentRow>,
    existing: Option<&TaskRow>,
    task_id: &str,
    now: i64,
) -> ApiResult<Decision> {
    let (what, capability_field, self_field) = c.fields();
    let provider = provider.filter(|a| a.status != "deleted").ok_or_else(|| ApiError::not_found(what))?;
    let fingerprint = c.hire.as_ref().map(|h| h.fingerprint(&provider.did));
    if let (Some(_), Some(existing)) = (&c.hire, existing) {
        return if existing.request_fingerprint == fingerprint {
            Ok(Decision { task: existing.clone(), effects: Effects::default(), reply: Reply::Unchanged })
        } else {
            Err(idempotency_conflict())
        };
    }
    if provider.status != "active" {
        let message = if c.is_hire() { "the agent is not active" } else { "the provider agent is not active" };
        return Err(crate::tasks::agent_unavailable(message));
    }
    if c.caller.agent.as_ref().is_some_and(|a| a.id == provider.id) {
        return Err(ApiError::field(self_field, "an agent cannot hire itself"));
    }
    if !provider.capabilities().contains(&c.capability) {
        return Err(ApiError::field(capability_field, "is not one this agent offers"));
    }
    let price = resolve_price(provider, &c.pricing, c.caller.max_price_per_hire)?;
    if c.unsupported_payment && !price.is_zero() {
        return Err(ApiError::payment_failed(
            "the crypto payment provider is not configured; use payment_type balance",
        ));
    }
    let mut task = TaskRow::new(NewTaskRow {
        caller: &c.caller,
        client: &c.client,
        provider_id: &provider.id,
        provider_did: &provider.did,
        capability: c.capability.clone(),
        input: c.input.clone(),
        price,
        fee_bps: c.fee_bps,
        pay_now: c.pay_now,
        deadline_at: c.deadline_at,
        now,
    });
    task.id = task_id.to_string();
    if let Some(hire) = &c.hire {
        task.kind = "hiring".into();
        task.task_description = Some(hire.description.clone());
        task.delivery_mode = Some(hire.delivery_mode.clone());
        task.repo_url = hire.repo_url.clone();
        task.client_idempotency_key = hire.key.clone();
        task.request_fingerprint = fingerprint;
    }
    let mut effects = Effects::default();
    let details = if c.is_hire() {
        json!({"provider_agent_id": provider.id, "kind": "hiring"})
    } else {
        json!({"price": price, "provider_agent_id": provider.id, "capability": task.capability})
    };
    effects.event(&task.id, "task_created", None, details);
    if task.payment_status == PaymentStatus::Escrowed {
        effects.hold(&task);
    }
    if let Some(message) = c.hire.as_ref().and_then(|h| h.client_message.clone()) {
        effects.message = Some((message, c.caller.user.as_ref().map(|u| u.id.clone())));
    }
    effects.webhook(&task, "task.created");
    Ok(Decision { task, effects, reply: Reply::Changed })
}
