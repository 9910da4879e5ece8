//! Tasks: one state machine for `/tasks` and (later) `/hirings`. A transition is one database
//! transaction that changes the task row conditionally, books the ledger entry and appends the
//! timeline event, all or nothing.

pub mod artifacts;
pub mod dispute_routes;
pub mod disputes;
pub mod hiring_routes;
pub mod hirings;
pub mod lifecycle;
pub mod model;
pub mod routes;
pub mod store;
pub mod sweeper;

use axum::http::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::agents;
use crate::auth::Caller;
use crate::clock::parse_rfc3339;
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::ledger::statement::{self, Line};
use crate::ledger::{self, Account, Entry, Purpose};
use crate::money::Amount;
use crate::text;
use model::{Actor, Payment, TaskRow};

/// The economic settings a task is created with.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub fee_bps: i64,
    pub review_window_ms: i64,
}

impl Settings {
    pub fn from_config(c: &crate::Config) -> Settings {
        Settings { fee_bps: c.fee_bps, review_window_ms: c.review_window as i64 * 1000 }
    }
}

/// The actor for a caller (ownership is learnt per task).
pub fn actor(caller: &Caller) -> Actor {
    Actor::of(caller)
}

pub fn escrow_locked() -> ApiError {
    ApiError::new(StatusCode::LOCKED, "ESCROW_LOCKED", "the funds are held by an open dispute")
}

fn price_above_max(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "PRICE_ABOVE_MAX", message)
}

pub fn agent_unavailable(message: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "AGENT_UNAVAILABLE", message)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NewTaskRequest {
    /// The provider's UUID or DID.
    pub provider_agent_id: Option<text::Line>,
    /// Alias of `provider_agent_id` taking a DID.
    pub provider_agent_did: Option<text::Line>,
    #[schema(required = true, min_length = 1)]
    pub capability: Option<text::Line>,
    /// An object, or a string (becomes `{"prompt": s}`).
    #[schema(value_type = Object)]
    pub input: Option<serde_json::Value>,
    /// The most the client will pay; the offer for auction and hybrid agents.
    #[schema(schema_with = crate::openapi::choice::amount)]
    pub max_price: Option<text::Line>,
    /// `balance` holds the escrow now; anything else waits for `POST /tasks/:id/payments`.
    #[schema(schema_with = crate::openapi::choice::task_payment)]
    pub payment_type: Option<text::Line>,
    /// RFC 3339; past it an unfinished task is failed and refunded.
    #[schema(format = DateTime)]
    pub deadline_at: Option<text::Line>,
}

/// Validated task request.
pub struct NewTask {
    pub provider: String,
    pub capability: String,
    pub input: serde_json::Value,
    pub max_price: Option<Amount>,
    pub pay_now: bool,
    pub payment_type: Option<String>,
    pub deadline_at: Option<i64>,
}

pub fn normalize_input(value: serde_json::Value) -> Result<serde_json::Value, &'static str> {
    match value {
        serde_json::Value::String(s) => Ok(serde_json::json!({ "prompt": s })),
        v @ serde_json::Value::Object(_) => Ok(v),
        _ => Err("must be an object or a string"),
    }
}

impl NewTaskRequest {
    pub fn validate(self, now: i64, max_amount: Amount) -> ApiResult<NewTask> {
        let mut errors = Vec::new();
        let provider =
            self.provider_agent_id.or(self.provider_agent_did).map(|p| p.trim().to_string()).unwrap_or_default();
        if provider.is_empty() {
            errors.push(FieldError::new("provider_agent_id", "is required (a UUID or DID)"));
        }
        let capability = self.capability.unwrap_or_default().trim().to_ascii_lowercase();
        if capability.is_empty() {
            errors.push(FieldError::new("capability", "is required"));
        }
        let input = match self.input.map(normalize_input) {
            Some(Ok(v)) => v,
            Some(Err(m)) => {
                errors.push(FieldError::new("input", m));
                serde_json::Value::Null
            }
            None => {
                errors.push(FieldError::new("input", "is required"));
                serde_json::Value::Null
            }
        };
        let payment_type = self.payment_type.map(|p| p.trim().to_ascii_lowercase());
        if let Some(p) = &payment_type
            && !["balance", "escrow", "crypto", "nowpayments"].contains(&p.as_str())
        {
            errors.push(FieldError::new("payment_type", "must be balance, escrow, crypto or nowpayments"));
        }
        let deadline_at = match self.deadline_at.as_deref().map(parse_rfc3339) {
            None => None,
            Some(Some(t)) if t > now => Some(t),
            Some(_) => {
                errors.push(FieldError::new("deadline_at", "must be an RFC 3339 time in the future"));
                None
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let max_price = match self.max_price.as_deref() {
            None => None,
            Some(s) => Some(
                Amount::parse_at_most(s.trim(), max_amount)
                    .map_err(|e| ApiError::invalid_amount("max_price", e.to_string()))?,
            ),
        };
        Ok(NewTask {
            provider,
            capability,
            input,
            max_price,
            pay_now: payment_type.as_deref() == Some("balance"),
            payment_type,
            deadline_at,
        })
    }
}

/// The price the client pays, by the provider's pricing model and the client's limits.
pub fn resolve_price(
    provider: &agents::model::AgentRow,
    max_price: Option<Amount>,
    key_cap: Option<Amount>,
) -> ApiResult<Amount> {
    let base = Amount::from_units(provider.base_price).unwrap_or_default();
    let price = match provider.pricing_model.as_str() {
        "fixed" => {
            if let Some(max) = max_price.filter(|m| base > *m) {
                return Err(price_above_max(format!("the agent charges {base}, above your max_price {max}")));
            }
            base
        }
        model => match max_price {
            Some(offer) if model == "hybrid" && offer < base => {
                return Err(ApiError::invalid_amount("max_price", format!("is below this agent's base price {base}")));
            }
            Some(offer) => offer,
            None if base.is_zero() => Amount::ZERO,
            None => return Err(ApiError::invalid_amount("max_price", format!("is required: this is a {model} agent"))),
        },
    };
    if let Some(cap) = key_cap.filter(|c| price > *c) {
        return Err(price_above_max(format!("the price {price} is above this key's max_price_per_hire {cap}")));
    }
    Ok(price)
}

/// Creates a task; with `payment_type: "balance"` its escrow is held in the same transaction.
pub async fn create(db: &Db, actor: &Actor, req: NewTask, settings: Settings, now: i64) -> ApiResult<TaskRow> {
    let caller = actor.caller().ok_or_else(|| ApiError::forbidden("tasks are created by callers"))?;
    let client = actor.paying_principal().ok_or_else(|| ApiError::forbidden("no client identity"))?;
    let provider = agents::store::find(db, &req.provider)
        .await?
        .filter(|a| a.status != "deleted")
        .ok_or_else(|| ApiError::not_found("provider agent"))?;
    if provider.status != "active" {
        return Err(agent_unavailable("the provider agent is not active"));
    }
    if caller.agent.as_ref().is_some_and(|a| a.id == provider.id) {
        return Err(ApiError::field("provider_agent_id", "an agent cannot hire itself"));
    }
    if !provider.capabilities().contains(&req.capability) {
        return Err(ApiError::field("capability", "is not one this agent offers"));
    }
    let price = resolve_price(&provider, req.max_price, caller.max_price_per_hire)?;
    if req.payment_type.as_deref().is_some_and(|p| p == "crypto" || p == "nowpayments") && !price.is_zero() {
        return Err(ApiError::payment_failed(
            "the crypto payment provider is not configured; use payment_type balance",
        ));
    }
    let hold_now = req.pay_now && !price.is_zero();
    let task = TaskRow::new(model::NewTaskRow {
        caller,
        client: &client,
        provider_id: &provider.id,
        provider_did: &provider.did,
        capability: req.capability,
        input: req.input.to_string(),
        price,
        fee_bps: settings.fee_bps,
        pay_now: hold_now,
        deadline_at: req.deadline_at,
        now,
    });
    let id = task.id.clone();
    let mut tx = db.begin().await?;
    store::insert(&mut tx, &task).await?;
    let details = serde_json::json!({"price": price, "provider_agent_id": provider.id, "capability": task.capability});
    store::event(&mut tx, &id, "task_created", None, details, now).await?;
    if hold_now {
        hold(&mut tx, &task, now).await?;
    }
    notify(&mut tx, &task, "task.created", now).await?;
    tx.commit().await?;
    metrics::counter!("agentmarket_tasks_created_total", "paid" => (!price.is_zero()).to_string()).increment(1);
    Ok(task)
}

/// Books the escrow hold: client available → client escrow.
pub(crate) async fn hold(tx: &mut Tx, task: &TaskRow, now: i64) -> ApiResult<()> {
    let client = task.client();
    ledger::post(
        tx,
        Entry {
            kind: "escrow_hold",
            reference: format!("task:{}:hold", task.id),
            task_id: Some(task.id.clone()),
            memo: None,
            postings: vec![
                (Account::Wallet(client.clone(), Purpose::Available), -task.price),
                (Account::Wallet(client.clone(), Purpose::Escrow), task.price),
            ],
        },
        now,
    )
    .await?;
    statement::record(
        tx,
        Line {
            id: None,
            principal: &client,
            kind: "escrow_hold",
            amount: task.price(),
            status: "completed",
            task_id: Some(&task.id),
            reference: None,
            description: format!("escrow for task {}", task.id),
        },
        now,
    )
    .await?;
    store::event(tx, &task.id, "payment_escrowed", None, serde_json::json!({"amount": task.price()}), now).await?;
    Ok(())
}

/// Whose webhooks hear about a task: the paying principal (and the user behind an acting agent)
/// and the provider agent.
fn recipients(task: &TaskRow) -> Vec<String> {
    let mut owners = vec![task.client().key(), task.provider().key()];
    if let Some(user) = &task.client_user_id {
        let key = ledger::Principal::User(user.clone()).key();
        if !owners.contains(&key) {
            owners.push(key);
        }
    }
    owners
}

/// The flat payload the Agrenting receivers read.
pub fn webhook_payload(task: &TaskRow, event: &str) -> serde_json::Value {
    let t = task.to_task();
    serde_json::json!({
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

/// Queues `event` about `task` in the transaction that changed it (and the `hiring.*` twin for
/// hirings).
pub async fn notify(tx: &mut Tx, task: &TaskRow, event: &str, now: i64) -> sqlx::Result<()> {
    let owners = recipients(task);
    crate::webhooks::emit(tx, &owners, event, Some(&task.id), webhook_payload(task, event), now).await?;
    let twin = match event {
        "task.created" => Some("hiring.created"),
        "task.completed" => Some("hiring.completed"),
        "task.failed" => Some("hiring.failed"),
        "task.cancelled" => Some("hiring.cancelled"),
        _ => None,
    };
    if let (Some(twin), "hiring") = (twin, task.kind.as_str()) {
        let mut payload = webhook_payload(task, twin);
        payload["hiring_id"] = serde_json::Value::String(task.id.clone());
        payload["hiring_status"] = serde_json::Value::String(hirings::hiring_status(task).into());
        crate::webhooks::emit(tx, &owners, twin, Some(&task.id), payload, now).await?;
    }
    Ok(())
}

/// Loads a task the actor may see: participants and administrators; 404 for anyone else.
pub async fn visible(db: &Db, actor: &mut Actor, id: &str) -> ApiResult<TaskRow> {
    let task = store::find(db, id).await?.ok_or_else(|| ApiError::not_found("task"))?;
    let mut conn = db.pool().acquire().await?;
    actor.learn_ownership(&mut conn, &task).await?;
    if actor.is_participant(&task) || actor.is_admin() { Ok(task) } else { Err(ApiError::not_found("task")) }
}

/// Holds the escrow for an unpaid task. A task already paid returns its payment unchanged
/// (`false`: nothing new happened), never a second hold.
pub async fn pay(
    db: &Db,
    actor: &mut Actor,
    id: &str,
    payment_type: Option<&str>,
    now: i64,
) -> ApiResult<(Payment, bool)> {
    let task = visible(db, actor, id).await?;
    if !actor.is_client(&task) {
        return Err(ApiError::forbidden("only the client pays for a task"));
    }
    if let Some(existing) = task.payment() {
        return Ok((existing, false));
    }
    if task.payment_status == "not_required" {
        return Ok((free_payment(&task), false));
    }
    if payment_type.is_some_and(|p| p == "crypto" || p == "nowpayments") {
        return Err(ApiError::payment_failed(
            "the crypto payment provider is not configured; use payment_type balance",
        ));
    }
    let mut tx = db.begin().await?;
    let payment_id = uuid::Uuid::now_v7().to_string();
    let applied = store::update_if(
        &mut tx,
        id,
        model::ACTIVE,
        &["unpaid"],
        "payment_status = 'escrowed', payment_id = ?, payment_type = 'balance', payment_created_at = ?, updated_at = ?",
        vec![crate::db::Arg::Text(payment_id), crate::db::Arg::Int(now), crate::db::Arg::Int(now)],
    )
    .await?;
    let Some(locked) = applied else {
        drop(tx);
        // Someone paid it meanwhile (return that payment) or it ended unpaid.
        let now_task = store::find(db, id).await?.ok_or_else(|| ApiError::not_found("task"))?;
        return match now_task.payment() {
            Some(p) => Ok((p, false)),
            None => Err(ApiError::invalid_state("this task can no longer be paid", &now_task.status)),
        };
    };
    hold(&mut tx, &locked, now).await?;
    tx.commit().await?;
    metrics::counter!("agentmarket_escrow_holds_total").increment(1);
    Ok((locked.payment().expect("just paid"), true))
}

/// The payment view of a free task.
pub fn free_payment(task: &TaskRow) -> Payment {
    Payment {
        id: task.id.clone(),
        payment_id: task.id.clone(),
        task_id: task.id.clone(),
        amount: Amount::ZERO,
        currency: "USD",
        status: "not_required".into(),
        payment_type: "none".into(),
        escrow_held: false,
        created_at: crate::clock::rfc3339(task.created_at),
    }
}

/// SHA-256 of the stored output text.
pub fn output_digest(output: &str) -> String {
    Sha256::digest(output.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
