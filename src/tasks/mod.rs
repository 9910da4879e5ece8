//! Tasks and hirings: the request shapes, reads, and the engine (`engine`) through which every
//! change goes.

pub mod artifacts;
pub mod changes;
pub mod dispute_routes;
pub mod disputes;
pub mod engine;
pub mod hiring_routes;
pub mod hirings;
pub mod model;
pub mod reviews;
pub mod routes;
pub mod store;
pub mod stream;
pub mod sweeper;

use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::agents;
use crate::auth::Caller;
use crate::clock::parse_rfc3339;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, FieldError};
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

/// Creates a task through the engine; with `payment_type: "balance"` its escrow is held in the
/// same transaction.
pub async fn create(engine: &engine::Engine, caller: &Caller, req: NewTask, settings: Settings) -> ApiResult<TaskRow> {
    let client = Actor::of(caller).paying_principal().ok_or_else(|| ApiError::forbidden("no client identity"))?;
    let unsupported_payment = req.payment_type.as_deref().is_some_and(|p| p == "crypto" || p == "nowpayments");
    let create = engine::Create {
        caller: caller.clone(),
        client,
        provider_ref: req.provider,
        capability: req.capability,
        input: req.input.to_string(),
        pricing: engine::Pricing::Model { max_price: req.max_price },
        pay_now: req.pay_now,
        unsupported_payment,
        deadline_at: req.deadline_at,
        fee_bps: settings.fee_bps,
        hire: None,
    };
    let done = engine.create(create).await?;
    metrics::counter!("agentmarket_tasks_created_total", "paid" => (done.task.price > 0).to_string()).increment(1);
    Ok(done.task)
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
    engine: &engine::Engine,
    actor: &Actor,
    id: &str,
    payment_type: Option<&str>,
) -> ApiResult<(Payment, bool)> {
    if payment_type.is_some_and(|p| p == "crypto" || p == "nowpayments") {
        return Err(ApiError::payment_failed(
            "the crypto payment provider is not configured; use payment_type balance",
        ));
    }
    let done = engine.act(actor, id, engine::Command::pay()).await?;
    let task = done.task;
    let payment = match task.payment() {
        Some(p) => p,
        None => free_payment(&task),
    };
    Ok((payment, done.reply == engine::Reply::Changed))
}

/// Posts a message visible to both parties of a task the actor takes part in (the API and the
/// dashboard): `content` 1–5000 characters, `message_type` instruction (default), feedback or
/// question.
pub async fn post_message(
    db: &Db,
    actor: &mut Actor,
    task_id: &str,
    content: Option<String>,
    message_type: Option<String>,
    now: i64,
) -> ApiResult<store::Message> {
    let task = visible(db, actor, task_id).await?;
    let content = content.map(|c| c.trim().to_string()).unwrap_or_default();
    let mut errors = Vec::new();
    if content.is_empty() || content.chars().count() > 5000 {
        errors.push(FieldError::new("content", "is required, at most 5000 characters"));
    }
    let kind = message_type.map(|k| k.trim().to_ascii_lowercase()).unwrap_or_else(|| "instruction".into());
    if !["instruction", "feedback", "question"].contains(&kind.as_str()) {
        errors.push(FieldError::new("message_type", "must be instruction, feedback or question"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let caller = actor.caller().ok_or_else(|| ApiError::forbidden("messages come from a caller"))?;
    let (agent_id, user_id, name) = match (&caller.agent, &caller.user) {
        (Some(a), _) => (Some(a.id.clone()), None, agents::find_ref(db, &a.id).await?.map(|r| r.name)),
        (None, Some(u)) => {
            let user = crate::accounts::users::find(db, &u.id).await?;
            (None, Some(u.id.clone()), user.map(|u| u.name.unwrap_or(u.email)))
        }
        (None, None) => (None, None, None),
    };
    let message = store::NewMessage {
        task_id: &task.id,
        content: &content,
        message_type: &kind,
        sender_agent_id: agent_id.as_deref(),
        sender_user_id: user_id.as_deref(),
        sender_name: name.as_deref(),
    };
    Ok(store::add_message(db, message, now).await?)
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
    crate::hex::sha256(output.as_bytes())
}
