//! Hirings: a user (or agent) hires a marketplace agent with `/agents/:did/hire`. A hiring is a
//! task (`kind = 'hiring'`) on the same state machine and ledger path; this is its second view.
//! The escrow is held at once; a background probe then decides whether the agent is available.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::engine::{Command, Create, HireParts, Pricing, Reply};
use super::model::{Actor, Status, TaskRow};
use super::{Settings, store};
use crate::agents;
use crate::auth::Caller;
use crate::clock::{rfc3339, rfc3339_opt};
use crate::db::Db;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::money::Amount;
use crate::state::AppState;
use crate::text::{Line, Text};

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HireRequest {
    /// What to do, at most 5000 characters.
    #[schema(required = true, min_length = 1, max_length = 5000)]
    pub task_description: Option<Text>,
    #[schema(required = true, min_length = 1)]
    pub capability_requested: Option<Line>,
    /// The offered price, a decimal string; held in escrow at once.
    #[schema(required = true, schema_with = crate::openapi::choice::amount)]
    pub price: Option<Line>,
    /// `output` (default) or `push`.
    #[schema(schema_with = crate::openapi::choice::delivery_mode)]
    pub delivery_mode: Option<Line>,
    #[schema(value_type = Option<Object>)]
    pub task_input: Option<serde_json::Value>,
    pub client_message: Option<Text>,
    /// Replaying the same key with the same request returns the original hiring.
    pub client_idempotency_key: Option<Line>,
    pub repo_url: Option<Line>,
    /// Accepted for compatibility and never stored.
    pub repo_access_token: Option<Line>,
    /// RFC 3339, in the future: past it an unfinished hiring fails and is refunded (as for tasks).
    #[schema(format = DateTime)]
    pub deadline_at: Option<Line>,
}

struct Hire {
    description: String,
    capability: String,
    price: Amount,
    delivery_mode: String,
    task_input: serde_json::Value,
    client_message: Option<String>,
    key: Option<String>,
    repo_url: Option<String>,
    deadline_at: Option<i64>,
}

impl HireRequest {
    fn validate(self, now: i64, max_amount: Amount) -> ApiResult<Hire> {
        let mut errors = Vec::new();
        let description = self.task_description.unwrap_or_default().trim().to_string();
        if description.is_empty() || description.chars().count() > 5000 {
            errors.push(FieldError::new("task_description", "is required, at most 5000 characters"));
        }
        let capability = self.capability_requested.unwrap_or_default().trim().to_ascii_lowercase();
        if capability.is_empty() {
            errors.push(FieldError::new("capability_requested", "is required"));
        }
        let delivery_mode = self.delivery_mode.map(String::from).unwrap_or_else(|| "output".into());
        if delivery_mode != "output" && delivery_mode != "push" {
            errors.push(FieldError::new("delivery_mode", "must be output or push"));
        }
        let task_input = match self.task_input {
            None | Some(serde_json::Value::Null) => json!({}),
            Some(v @ serde_json::Value::Object(_)) => v,
            Some(_) => {
                errors.push(FieldError::new("task_input", "must be an object"));
                json!({})
            }
        };
        if self.client_message.as_ref().is_some_and(|m| m.chars().count() > 5000) {
            errors.push(FieldError::new("client_message", "must be at most 5000 characters"));
        }
        let key = self.client_idempotency_key.map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
        if key.as_ref().is_some_and(|k| k.len() > 255) {
            errors.push(FieldError::new("client_idempotency_key", "must be at most 255 characters"));
        }
        let deadline_at = match self.deadline_at.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => match crate::clock::parse_rfc3339(d) {
                Some(t) if t > now => Some(t),
                _ => {
                    errors.push(FieldError::new("deadline_at", "must be an RFC 3339 time in the future"));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let price = self.price.ok_or_else(|| ApiError::invalid_amount("price", "is required"))?;
        let price = Amount::parse_at_most(price.trim(), max_amount)
            .map_err(|e| ApiError::invalid_amount("price", e.to_string()))?;
        Ok(Hire {
            description,
            capability,
            price,
            delivery_mode,
            task_input,
            client_message: self.client_message.map(String::from).filter(|m| !m.trim().is_empty()),
            key,
            repo_url: self.repo_url.map(String::from).filter(|u| !u.trim().is_empty()),
            deadline_at,
        })
    }
}

impl Hire {
    /// The fields that make two hirings the same request (the engine adds the agent's DID).
    fn request(&self) -> Vec<serde_json::Value> {
        let mut fields = vec![
            json!(self.description),
            json!(self.capability),
            json!(self.price),
            json!(self.delivery_mode),
            self.task_input.clone(),
            json!(self.client_message),
            json!(self.repo_url),
        ];
        // Only when given, so hirings made before deadlines existed keep their fingerprints.
        fields.extend(self.deadline_at.map(|d| json!(d)));
        fields
    }
}

/// Hires `agent`: holds the price in escrow at once and queues the hiring. The same client
/// idempotency key with the same request returns the original (`false` = nothing new).
pub async fn hire(state: &AppState, caller: &Caller, agent_ref: &str, req: HireRequest) -> ApiResult<(TaskRow, bool)> {
    let client = Actor::of(caller).paying_principal().ok_or_else(|| ApiError::forbidden("no client identity"))?;
    let h = req.validate(state.now(), state.config.max_amount)?;
    let request = h.request();
    let settings = Settings::from_config(&state.config);
    let create = Create {
        caller: caller.clone(),
        client,
        provider_ref: agent_ref.to_string(),
        capability: h.capability.clone(),
        input: json!({"task_description": h.description, "task_input": h.task_input}).to_string(),
        pricing: Pricing::Offer(h.price),
        pay_now: true,
        unsupported_payment: false,
        deadline_at: h.deadline_at,
        fee_bps: settings.fee_bps,
        hire: Some(HireParts {
            description: h.description,
            delivery_mode: h.delivery_mode,
            repo_url: h.repo_url,
            key: h.key,
            request,
            client_message: h.client_message,
        }),
    };
    let done = state.engine.create(create).await?;
    let created = done.reply == Reply::Changed;
    if created && !state.config.defer_hiring_probe {
        let (state, id) = (state.clone(), done.task.id.clone());
        tokio::spawn(async move {
            if let Err(e) = probe(&state, &id).await {
                tracing::warn!(hiring = %id, error = %e, "availability probe failed");
            }
        });
    }
    Ok((done.task, created))
}

/// Decides a queued hiring: `HEAD metadata.callback_url` within 2 s (any 2xx = available), or
/// an MCP `ping` over a live session of the agent answered within 3 s (`mcp::presence`), or,
/// with neither a callback nor a live session, a poll for work within the last hour. Available
/// → `in_progress`; otherwise the hiring fails and the escrow is refunded.
pub async fn probe(state: &AppState, id: &str) -> ApiResult<TaskRow> {
    let task = store::find(&state.db, id).await?.ok_or_else(|| ApiError::not_found("hiring"))?;
    let agent =
        agents::store::find(&state.db, &task.provider_agent_id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    let metadata: serde_json::Value = serde_json::from_str(&agent.metadata).unwrap_or_default();
    let now = state.now();
    let available = match metadata["callback_url"].as_str() {
        Some(url) => head_ok(state, url).await || mcp_ping(state, &agent.id).await == Some(true),
        None => match mcp_ping(state, &agent.id).await {
            Some(answered) => answered,
            None => agent.last_seen_at.is_some_and(|t| now - t <= agents::model::ONLINE_WINDOW_MS),
        },
    };
    Ok(state.engine.act(&Actor::System, id, Command::Probe { available }).await?.task)
}

/// The agent's answer to an MCP ping (`None`: no live MCP session, or the lookup failed).
async fn mcp_ping(state: &AppState, agent_id: &str) -> Option<bool> {
    crate::mcp::presence::ping_agent(state, agent_id).await.unwrap_or_else(|e| {
        tracing::warn!(agent = %agent_id, error = %e, "could not ping the agent over MCP");
        None
    })
}

async fn head_ok(state: &AppState, url: &str) -> bool {
    // Names are checked by the client's resolver, against the addresses it connects to.
    let Ok(parsed) = crate::http::outbound::check_url(url, state.config.allow_private_network) else { return false };
    matches!(state.http.head(parsed).timeout(Duration::from_secs(2)).send().await, Ok(r) if r.status().is_success())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HiringAgent {
    pub id: String,
    pub did: String,
    pub name: String,
    pub category: Option<String>,
    pub capabilities: Vec<String>,
    pub base_price: Amount,
    pub reputation_score: f64,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Question {
    pub question_id: String,
    pub content: String,
    pub asked_at: String,
}

/// A hiring as the clients read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hiring {
    pub id: String,
    pub status: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub dispatch_id: String,
    pub trace_attempt: i64,
    pub agent_id: String,
    pub agent_did: String,
    pub client_agent_id: Option<String>,
    pub agent: Option<HiringAgent>,
    pub price: Amount,
    pub payment_status: String,
    pub capability_requested: String,
    pub task_description: Option<String>,
    pub delivery_mode: Option<String>,
    pub pricing_model: Option<String>,
    #[schema(value_type = Object)]
    pub task_input: serde_json::Value,
    pub repo_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub task_output: Option<serde_json::Value>,
    pub failed_reason: Option<String>,
    pub messages: Vec<HiringMessage>,
    pub open_questions: Vec<Question>,
    #[schema(value_type = Vec<Object>)]
    pub artifacts: Vec<serde_json::Value>,
    /// The latest chunks of the agent's stream (at most 100, oldest first); the whole stream is
    /// at `GET /hirings/:id/stream`.
    pub stream: Vec<super::stream::Chunk>,
    /// The highest sequence number emitted (0: none yet).
    pub stream_seq: i64,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub failed_at: Option<String>,
    pub deadline_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HiringMessage {
    pub id: String,
    pub hiring_id: String,
    pub sender_agent_id: Option<String>,
    pub sender_user_id: Option<String>,
    /// `client` or `agent`.
    pub sender_type: String,
    /// `message`, `question` or `answer`.
    pub kind: String,
    pub reply_to_id: Option<String>,
    pub resolved_at: Option<String>,
    pub content: String,
    pub sender_name: Option<String>,
    pub created_at: String,
    pub inserted_at: String,
}

pub async fn view(db: &Db, t: &TaskRow) -> ApiResult<Hiring> {
    let agent = agents::store::find(db, &t.provider_agent_id).await?;
    let messages: Vec<HiringMessage> = store::hiring_messages(db, &t.id)
        .await?
        .into_iter()
        .map(|m| HiringMessage {
            sender_type: if m.sender_agent_id.as_deref() == Some(t.provider_agent_id.as_str()) {
                "agent"
            } else {
                "client"
            }
            .into(),
            id: m.id,
            hiring_id: t.id.clone(),
            sender_agent_id: m.sender_agent_id,
            sender_user_id: m.sender_user_id,
            kind: m.kind,
            reply_to_id: m.reply_to_id,
            resolved_at: rfc3339_opt(m.resolved_at),
            content: m.content,
            sender_name: m.sender_name,
            created_at: rfc3339(m.created_at),
            inserted_at: rfc3339(m.created_at),
        })
        .collect();
    let open_questions = messages
        .iter()
        .filter(|m| m.kind == "question" && m.resolved_at.is_none())
        .map(|m| Question { question_id: m.id.clone(), content: m.content.clone(), asked_at: m.created_at.clone() })
        .collect();
    let input: serde_json::Value = serde_json::from_str(&t.input).unwrap_or_default();
    let status = t.hiring_status();
    let stream = super::stream::latest(db, &t.id).await?;
    Ok(Hiring {
        id: t.id.clone(),
        status: status.as_str().into(),
        is_final: status.is_final(),
        dispatch_id: format!("{}:{}", t.id, t.trace_attempt),
        trace_attempt: t.trace_attempt,
        agent_id: t.provider_agent_id.clone(),
        agent_did: t.provider_agent_did.clone(),
        client_agent_id: t.client_agent_id.clone(),
        pricing_model: agent.as_ref().map(|a| a.pricing_model.clone()),
        agent: agent.map(|a| HiringAgent {
            capabilities: a.capabilities(),
            reputation_score: a.reputation(),
            base_price: Amount::from_units(a.base_price).unwrap_or_default(),
            id: a.id,
            did: a.did,
            name: a.name,
            category: a.category,
            status: a.status,
        }),
        price: t.price(),
        payment_status: t.payment_status.as_str().into(),
        capability_requested: t.capability.clone(),
        task_description: t.task_description.clone(),
        delivery_mode: t.delivery_mode.clone(),
        task_input: input["task_input"].clone(),
        repo_url: t.repo_url.clone(),
        task_output: t
            .output
            .as_deref()
            .map(|o| serde_json::from_str(o).unwrap_or(serde_json::Value::String(o.into()))),
        failed_reason: t.error_reason.clone(),
        messages,
        open_questions,
        artifacts: super::artifacts::list(db, &t.id)
            .await?
            .into_iter()
            .map(|a| serde_json::to_value(a).unwrap_or_default())
            .collect(),
        stream_seq: stream.last().map_or(0, |c| c.seq),
        stream,
        started_at: rfc3339_opt(t.claimed_at),
        completed_at: rfc3339_opt(t.completed_at),
        failed_at: (t.status == Status::Failed).then(|| rfc3339(t.updated_at)),
        deadline_at: rfc3339_opt(t.deadline_at),
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(t.updated_at),
    })
}
