//! HTTP for hirings: the client side (`/agents/:did/hire`, `/hirings…`) and the agent side
//! (`/hirings/pending`, result, failure). Every state change goes through the task engine.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::engine::Command;
use super::hirings::{self, HireRequest, Hiring, HiringMessage};
use super::model::{Actor, HiringStatus, TaskRow};
use super::{Settings, store};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::envelope::Api;
use crate::http::extract::{ApiQuery, JsonObject};
use crate::ledger::routes::principal_of;
use crate::state::AppState;
use crate::text::{Line, Text};

#[derive(Serialize, ToSchema)]
pub struct HireConfig {
    #[serde(rename = "agentDid")]
    agent_did: String,
    #[serde(rename = "pricingModel")]
    pricing_model: Option<String>,
    #[serde(rename = "basePrice")]
    base_price: Option<String>,
    capabilities: Vec<String>,
    #[serde(rename = "hiringId")]
    hiring_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct Hired {
    pub(crate) hiring: Hiring,
    config: HireConfig,
}

async fn hiring_view(state: &AppState, task: &TaskRow) -> ApiResult<Hiring> {
    hirings::view(&state.db, task).await
}

/// Hire a marketplace agent: the price is held in escrow at once and the hiring is queued
/// until the agent's availability probe answers.
#[utoipa::path(post, path = "/api/v1/agents/{did}/hire", tag = "hirings", params(("did" = String, Path)), request_body = HireRequest,
    responses((status = 201, body = Hired), (status = 200, body = Hired, description = "same client_idempotency_key and request"),
        (status = 409, description = "IDEMPOTENCY_CONFLICT"), (status = 422, description = "VALIDATION_ERROR, INVALID_AMOUNT, PRICE_ABOVE_MAX, INSUFFICIENT_BALANCE"),
        (status = 503, description = "AGENT_UNAVAILABLE")))]
pub(crate) async fn hire(
    State(state): State<AppState>,
    caller: Caller,
    Path(did): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Hired>> {
    let (body, created) = hire_with(&state, &caller, &did, body).await?;
    Ok(if created { Api::created(body) } else { Api::ok(body) })
}

/// `POST /agents/:did/hire` without the HTTP: the hiring and whether it is new (`false`: the
/// same client idempotency key and request replayed). MCP `hire_agent` calls it too.
pub(crate) async fn hire_with(
    state: &AppState,
    caller: &Caller,
    did: &str,
    body: JsonObject,
) -> ApiResult<(Hired, bool)> {
    let req: HireRequest = body.parse(Some("hiring"))?;
    let (task, created) = hirings::hire(state, caller, did, req).await?;
    let hiring = hiring_view(state, &task).await?;
    let config = HireConfig {
        agent_did: hiring.agent_did.clone(),
        pricing_model: hiring.pricing_model.clone(),
        base_price: hiring.agent.as_ref().map(|a| a.base_price.to_string()),
        capabilities: hiring.agent.as_ref().map(|a| a.capabilities.clone()).unwrap_or_default(),
        hiring_id: hiring.id.clone(),
    };
    Ok((Hired { hiring, config }, created))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct ListQuery {
    pub status: Option<String>,
    pub limit: Option<String>,
    /// 1-based; ignored when a cursor is given.
    pub page: Option<String>,
    /// Opaque keyset cursor from `next_cursor`: stable while hirings are added.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HiringPage {
    pub(crate) hirings: Vec<Hiring>,
    total: i64,
    page: i64,
    per_page: i64,
    total_pages: i64,
    /// True when `total` stopped counting (see API.md on lists).
    total_is_estimate: bool,
    /// The cursor of the next page; null on the last page.
    next_cursor: Option<String>,
}

/// The caller's hirings (`{hirings, total, page, per_page, total_pages}`, as the clients expect).
#[utoipa::path(get, path = "/api/v1/hirings", tag = "hirings", params(ListQuery), responses((status = 200, body = HiringPage), (status = 422)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Api<HiringPage>> {
    Ok(Api::ok(list_page(&state, &caller, &q).await?))
}

/// `GET /hirings` without the HTTP (MCP `list_my_hirings` calls it too).
pub(crate) async fn list_page(state: &AppState, caller: &Caller, q: &ListQuery) -> ApiResult<HiringPage> {
    let per_page =
        crate::http::pagination::parse_limit(q.limit.as_deref()).map_err(|e| ApiError::validation(vec![e]))?;
    let (page, offset) = match q.cursor {
        Some(_) => (1, 0),
        None => crate::http::pagination::page_offset(q.page.as_deref(), per_page)
            .map_err(|e| ApiError::validation(vec![e]))?,
    };
    let order = store::list_order("hirings");
    let mut spec = order.page(q.limit.as_deref(), q.cursor.as_deref(), None)?;
    spec.offset = offset;
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(HiringStatus::parse(s).ok_or_else(|| {
            ApiError::field("status", &format!("must be one of {}", HiringStatus::names().join(", ")))
        })?),
    };
    let client = principal_of(caller)?.key();
    let (rows, meta) = store::list_hirings(&state.db, &client, status, &spec).await?;
    let total = meta.total_count;
    let mut hirings = Vec::with_capacity(rows.len());
    for t in &rows {
        hirings.push(hiring_view(state, t).await?);
    }
    Ok(HiringPage {
        hirings,
        total,
        page,
        per_page,
        total_pages: (total + per_page - 1) / per_page,
        total_is_estimate: meta.total_is_estimate,
        next_cursor: meta.cursor,
    })
}

/// Agent side: hirings waiting for the calling agent.
#[utoipa::path(get, path = "/api/v1/hirings/pending", tag = "hirings", responses((status = 200, body = Vec<Hiring>), (status = 403)))]
pub(crate) async fn pending(State(state): State<AppState>, caller: Caller) -> ApiResult<Api<Vec<Hiring>>> {
    Ok(Api::ok(pending_for(&state, &caller).await?))
}

/// `GET /hirings/pending` without the HTTP (the agent surface's `hiring://pending` reads it too).
pub(crate) async fn pending_for(state: &AppState, caller: &Caller) -> ApiResult<Vec<Hiring>> {
    let agent = caller.agent.as_ref().ok_or_else(|| ApiError::forbidden("use an agent key (or X-Agent-ID)"))?;
    let mut out = Vec::new();
    for t in store::pending_hirings(&state.db, &agent.id).await? {
        out.push(hiring_view(state, &t).await?);
    }
    Ok(out)
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(Actor, TaskRow)> {
    let mut actor = Actor::of(caller);
    let task = super::visible(&state.db, &mut actor, id).await?;
    if task.kind != "hiring" {
        return Err(ApiError::not_found("hiring"));
    }
    Ok((actor, task))
}

/// One hiring with its messages, open questions and artifacts.
#[utoipa::path(get, path = "/api/v1/hirings/{id}", tag = "hirings", params(("id" = String, Path)), responses((status = 200, body = Hiring), (status = 404)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Hiring>> {
    Ok(Api::ok(show_one(&state, &caller, &id).await?))
}

/// `GET /hirings/:id` without the HTTP (MCP `get_hiring_status` calls it too).
pub(crate) async fn show_one(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Hiring> {
    let (_, task) = load(state, caller, id).await?;
    hiring_view(state, &task).await
}

/// Cancel an unfinished hiring; the escrow is refunded. 409 once it is final.
#[utoipa::path(post, path = "/api/v1/hirings/{id}/cancel", tag = "hirings", params(("id" = String, Path)),
    responses((status = 200, body = Hiring), (status = 404), (status = 409), (status = 423)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Hiring>> {
    Ok(Api::ok(cancel_one(&state, &caller, &id).await?))
}

/// `POST /hirings/:id/cancel` without the HTTP: the engine's `Cancel` (MCP `cancel_hiring`).
pub(crate) async fn cancel_one(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Hiring> {
    let (actor, task) = load(state, caller, id).await?;
    let task = state.engine.act(&actor, &task.id, Command::Cancel).await?.task;
    hiring_view(state, &task).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RetryRequest {
    pub reason: Option<Text>,
}

/// Re-dispatch an unfinished hiring (a new trace attempt and availability probe; the escrow
/// stays held). A final hiring cannot be retried: hire again.
#[utoipa::path(post, path = "/api/v1/hirings/{id}/retry", tag = "hirings", params(("id" = String, Path)), request_body = RetryRequest,
    responses((status = 200, body = Hiring), (status = 404), (status = 409)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Hiring>> {
    let (actor, task) = load(&state, &caller, &id).await?;
    let reason = body.parse::<RetryRequest>(None)?.reason.map(String::from);
    let retried = state.engine.act(&actor, &task.id, Command::Retry { reason }).await?.task;
    let task = if state.config.defer_hiring_probe { retried } else { hirings::probe(&state, &task.id).await? };
    Ok(Api::ok(hiring_view(&state, &task).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HiringMessageRequest {
    pub content: Option<Text>,
    /// `message` (default), `question` or `answer`.
    #[schema(schema_with = crate::openapi::choice::hiring_message_kind)]
    pub kind: Option<Line>,
    /// For an answer: the question it answers.
    pub reply_to_id: Option<Line>,
}

/// Talk to the other side of a hiring; an agent's question stays open until answered.
#[utoipa::path(post, path = "/api/v1/hirings/{id}/messages", tag = "hirings", params(("id" = String, Path)), request_body = HiringMessageRequest,
    responses((status = 201, body = HiringMessage), (status = 404), (status = 422)))]
pub(crate) async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<HiringMessage>> {
    Ok(Api::created(post_message_with(&state, &caller, &id, body).await?))
}

/// `POST /hirings/:id/messages` without the HTTP (MCP `answer_hiring_question` calls it too).
pub(crate) async fn post_message_with(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: JsonObject,
) -> ApiResult<HiringMessage> {
    let (actor, task) = load(state, caller, id).await?;
    let req: HiringMessageRequest = body.parse(None)?;
    let content = req.content.map(|c| c.trim().to_string()).unwrap_or_default();
    let mut errors = Vec::new();
    if content.is_empty() || content.chars().count() > 5000 {
        errors.push(FieldError::new("content", "is required, at most 5000 characters"));
    }
    let kind = req.kind.unwrap_or_else(|| if req.reply_to_id.is_some() { "answer".into() } else { "message".into() });
    if !["message", "question", "answer"].contains(&kind.as_str()) {
        errors.push(FieldError::new("kind", "must be message, question or answer"));
    }
    if kind == "answer" && req.reply_to_id.is_none() {
        errors.push(FieldError::new("reply_to_id", "an answer names the question it answers"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let as_provider = actor.is_provider(&task);
    let agent_id =
        if as_provider { Some(task.provider_agent_id.clone()) } else { caller.agent.as_ref().map(|a| a.id.clone()) };
    let user_id = if as_provider { None } else { caller.user.as_ref().map(|u| u.id.clone()) };
    let now = state.now();
    let mut tx = state.db.begin().await?;
    let message_type = if kind == "question" { "question" } else { "instruction" };
    let mid = store::add_message_in(
        &mut tx,
        &task.id,
        &content,
        message_type,
        &kind,
        agent_id.as_deref(),
        user_id.as_deref(),
        req.reply_to_id.as_deref(),
        now,
    )
    .await?;
    tx.commit().await?;
    state.engine.changes().announce(&task);
    let hiring = hiring_view(state, &task).await?;
    hiring.messages.into_iter().find(|m| m.id == mid).ok_or_else(|| ApiError::not_found("message"))
}

/// The hiring's messages (older clients read them here).
#[utoipa::path(get, path = "/api/v1/hirings/{id}/messages", tag = "hirings", params(("id" = String, Path)), responses((status = 200, body = Vec<HiringMessage>)))]
pub(crate) async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Vec<HiringMessage>>> {
    let (_, task) = load(&state, &caller, &id).await?;
    Ok(Api::ok(hiring_view(&state, &task).await?.messages))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ResultRequest {
    #[schema(value_type = Option<Object>)]
    pub output: Option<serde_json::Value>,
    /// Alias of `output`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

/// Agent side: deliver the result (→ completed, settled through the review window).
#[utoipa::path(post, path = "/api/v1/hirings/{id}/result", tag = "hirings", params(("id" = String, Path)), request_body = ResultRequest,
    responses((status = 200, body = Hiring), (status = 403), (status = 409), (status = 422)))]
pub(crate) async fn result(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Hiring>> {
    Ok(Api::ok(result_with(&state, &caller, &id, body).await?))
}

/// The engine's `Complete` command for a result body (validated: the output is required).
fn result_command(state: &AppState, body: JsonObject) -> ApiResult<Command> {
    let req: ResultRequest = body.parse(None)?;
    Command::complete(req.output.or(req.result), Settings::from_config(&state.config).review_window_ms)
}

/// `POST /hirings/:id/result` without the HTTP (MCP `submit_hiring_result` calls it too).
pub(crate) async fn result_with(state: &AppState, caller: &Caller, id: &str, body: JsonObject) -> ApiResult<Hiring> {
    let (actor, task) = load(state, caller, id).await?;
    let command = result_command(state, body)?;
    let task = state.engine.act(&actor, &task.id, command).await?.task;
    hiring_view(state, &task).await
}

/// Whether the engine would take this result from the caller on the hiring as it stands now,
/// with its refusal if not: lets a delivery that comes with artifacts store nothing when the
/// result itself would be refused (MCP `submit_hiring_result`).
pub(crate) async fn check_result(state: &AppState, caller: &Caller, id: &str, body: JsonObject) -> ApiResult<()> {
    let (actor, task) = load(state, caller, id).await?;
    let command = result_command(state, body)?;
    super::engine::decide(&task, actor.roles(&task), &command, state.now()).map(drop)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FailureRequest {
    pub error: Option<Text>,
    /// `timeout`, `capability_mismatch`, `agent_unresponsive` or `other`.
    #[schema(schema_with = crate::openapi::choice::failure_reason)]
    pub reason: Option<Line>,
}

/// Agent side: give up (→ failed, refunded).
#[utoipa::path(post, path = "/api/v1/hirings/{id}/failure", tag = "hirings", params(("id" = String, Path)), request_body = FailureRequest,
    responses((status = 200, body = Hiring), (status = 403), (status = 409), (status = 422)))]
pub(crate) async fn failure(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Hiring>> {
    Ok(Api::ok(failure_with(&state, &caller, &id, body).await?))
}

/// `POST /hirings/:id/failure` without the HTTP (MCP `report_hiring_failure` calls it too).
pub(crate) async fn failure_with(state: &AppState, caller: &Caller, id: &str, body: JsonObject) -> ApiResult<Hiring> {
    let (actor, task) = load(state, caller, id).await?;
    let req: FailureRequest = body.parse(None)?;
    let reason = req.reason.unwrap_or_else(|| "other".into());
    if !["timeout", "capability_mismatch", "agent_unresponsive", "other"].contains(&reason.as_str()) {
        return Err(ApiError::field("reason", "must be timeout, capability_mismatch, agent_unresponsive or other"));
    }
    let text = match req.error.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()) {
        Some(e) => format!("{reason}: {e}"),
        None => reason.into_string(),
    };
    let task = state.engine.act(&actor, &task.id, Command::fail(Some(text))?).await?.task;
    hiring_view(state, &task).await
}
