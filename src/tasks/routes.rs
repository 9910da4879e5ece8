//! HTTP for tasks: parse, resolve the actor, call the engine, shape the answer.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::engine::{Command, Reply};
use super::model::{Payment, PaymentStatus, Task};
use super::store::{self, Attempt, Message, TimelineEvent};
use super::{NewTaskRequest, Settings};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::envelope::Api;
use crate::http::extract::{ApiQuery, JsonObject};
use crate::state::AppState;
use crate::text::{Line, Text};

fn settings(state: &AppState) -> Settings {
    Settings::from_config(&state.config)
}

fn writer(caller: &Caller) -> ApiResult<super::model::Actor> {
    Ok(super::actor(caller))
}

fn reader(caller: &Caller) -> ApiResult<super::model::Actor> {
    Ok(super::actor(caller))
}

/// Create a task for a provider agent; `payment_type: "balance"` holds the escrow now.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", request_body = NewTaskRequest,
    responses((status = 201, body = Task), (status = 401), (status = 403), (status = 404), (status = 402),
        (status = 422, description = "VALIDATION_ERROR, INVALID_AMOUNT, PRICE_ABOVE_MAX or INSUFFICIENT_BALANCE"),
        (status = 503, description = "AGENT_UNAVAILABLE")))]
pub(crate) async fn create(State(state): State<AppState>, caller: Caller, body: JsonObject) -> ApiResult<Api<Task>> {
    let req = body.parse::<NewTaskRequest>(Some("task"))?.validate(state.now(), state.config.max_amount)?;
    let task = super::create(&state.engine, &caller, req, settings(&state)).await?;
    Ok(Api::created(task.to_task()))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    pub status: Option<String>,
    /// `client` or `provider`.
    pub role: Option<String>,
    /// Only tasks where this agent is client or provider.
    pub agent_id: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub offset: Option<String>,
}

/// Tasks the caller takes part in, newest first.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(ListQuery), responses((status = 200, body = Vec<Task>), (status = 401), (status = 422)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Api<Vec<Task>>> {
    reader(&caller)?;
    let page = store::list_order("tasks").page(q.limit.as_deref(), q.cursor.as_deref(), q.offset.as_deref())?;
    let role = q.role.as_deref();
    if role.is_some_and(|r| r != "client" && r != "provider") {
        return Err(ApiError::field("role", "must be client or provider"));
    }
    let mine: Vec<String> = match (&caller.agent, &caller.user) {
        (Some(a), _) => vec![a.id.clone()],
        (None, Some(u)) => crate::agents::store::owned_ids(&state.db, &u.id).await?,
        (None, None) => Vec::new(),
    };
    let user = if caller.agent.is_none() { caller.user.as_ref().map(|u| u.id.as_str()) } else { None };
    let filter = store::ListFilter {
        client_agents: if role == Some("provider") { vec![] } else { mine.clone() },
        client_user: if role == Some("provider") { None } else { user },
        provider_agents: if role == Some("client") { vec![] } else { mine },
        status: q.status.as_deref(),
        agent_id: q.agent_id.as_deref(),
    };
    let (rows, meta) = store::list(&state.db, &filter, &page).await?;
    Ok(Api::page(rows.iter().map(|t| t.to_task()).collect(), meta))
}

/// One task (participants only).
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)), responses((status = 200, body = Task), (status = 404)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Task>> {
    let mut actor = reader(&caller)?;
    Ok(Api::ok(super::visible(&state.db, &mut actor, &id).await?.to_task()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PayRequest {
    pub task_id: Option<Line>,
    /// `balance` (default) or `escrow`; `crypto`/`nowpayments` need a configured provider.
    #[schema(schema_with = crate::openapi::choice::task_payment)]
    pub payment_type: Option<Line>,
    pub crypto_currency: Option<Line>,
}

/// Hold the task's escrow from the client's balance. Already held: 200 with the same payment.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/payments", tag = "tasks", params(("id" = String, Path)), request_body = PayRequest,
    responses((status = 201, body = Payment), (status = 200, body = Payment, description = "already paid"), (status = 402),
        (status = 409), (status = 422, description = "INSUFFICIENT_BALANCE")))]
pub(crate) async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Payment>> {
    let actor = writer(&caller)?;
    let req: PayRequest = body.parse(None)?;
    let (payment, created) = super::pay(&state.engine, &actor, &id, req.payment_type.as_deref()).await?;
    Ok(if created { Api::created(payment) } else { Api::ok(payment) })
}

/// The task's payment (404 when it has none).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/payments", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = Payment), (status = 404)))]
pub(crate) async fn show_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Payment>> {
    let mut actor = reader(&caller)?;
    let task = super::visible(&state.db, &mut actor, &id).await?;
    match task.payment() {
        Some(p) => Ok(Api::ok(p)),
        None if task.payment_status == PaymentStatus::NotRequired => Ok(Api::ok(super::free_payment(&task))),
        None => Err(ApiError::not_found("payment")),
    }
}

/// Provider: take a funded (or free) pending task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/claim", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = Task), (status = 403), (status = 409), (status = 423)))]
pub(crate) async fn claim(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Task>> {
    let actor = writer(&caller)?;
    Ok(Api::ok(state.engine.act(&actor, &id, Command::Claim).await?.task.to_task()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProgressRequest {
    /// 0–100.
    #[schema(required = true, minimum = 0, maximum = 100)]
    pub progress_percent: Option<i64>,
    pub progress_message: Option<Text>,
}

/// Provider: report progress (→ `in_progress`).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/progress", tag = "tasks", params(("id" = String, Path)), request_body = ProgressRequest,
    responses((status = 200, body = Task), (status = 403), (status = 409), (status = 422)))]
pub(crate) async fn progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Task>> {
    let actor = writer(&caller)?;
    let req: ProgressRequest = body.parse(None)?;
    let command = Command::progress(req.progress_percent, req.progress_message.map(String::from))?;
    Ok(Api::ok(state.engine.act(&actor, &id, command).await?.task.to_task()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CompleteRequest {
    /// The result: any JSON value.
    #[schema(value_type = Object)]
    pub output: Option<serde_json::Value>,
}

/// Provider: deliver the output (→ `completed`; the review window starts).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/complete", tag = "tasks", params(("id" = String, Path)), request_body = CompleteRequest,
    responses((status = 200, body = Task), (status = 403), (status = 409), (status = 422), (status = 423)))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Task>> {
    let actor = writer(&caller)?;
    let req: CompleteRequest = body.parse(None)?;
    let command = Command::complete(req.output, settings(&state).review_window_ms)?;
    Ok(Api::ok(state.engine.act(&actor, &id, command).await?.task.to_task()))
}

/// Same as POST.
#[utoipa::path(put, path = "/api/v1/tasks/{id}/complete", tag = "tasks", params(("id" = String, Path)), request_body = CompleteRequest,
    responses((status = 200, body = Task)))]
pub(crate) async fn complete_put(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Task>> {
    complete(state, caller, id, body).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FailRequest {
    #[schema(required = true, min_length = 1, max_length = 2000)]
    pub error_reason: Option<Text>,
}

/// Provider: give up (→ `failed`; the escrow is refunded).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/fail", tag = "tasks", params(("id" = String, Path)), request_body = FailRequest,
    responses((status = 200, body = Task), (status = 403), (status = 409), (status = 422), (status = 423)))]
pub(crate) async fn fail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Task>> {
    let actor = writer(&caller)?;
    let req: FailRequest = body.parse(None)?;
    let command = Command::fail(req.error_reason.map(String::from))?;
    Ok(Api::ok(state.engine.act(&actor, &id, command).await?.task.to_task()))
}

/// Same as POST.
#[utoipa::path(put, path = "/api/v1/tasks/{id}/fail", tag = "tasks", params(("id" = String, Path)), request_body = FailRequest,
    responses((status = 200, body = Task)))]
pub(crate) async fn fail_put(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Task>> {
    fail(state, caller, id, body).await
}

/// Client: cancel an unfinished task (the escrow is refunded).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = Task), (status = 403), (status = 409), (status = 423)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Task>> {
    let actor = writer(&caller)?;
    Ok(Api::ok(state.engine.act(&actor, &id, Command::Cancel).await?.task.to_task()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AcceptRequest {
    /// 1–5.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: Option<i64>,
    pub review: Option<Text>,
}

/// Client: accept the result and release the payment now.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/accept", tag = "tasks", params(("id" = String, Path)), request_body = AcceptRequest,
    responses((status = 200, body = Task), (status = 403), (status = 409), (status = 422), (status = 423)))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Task>> {
    let actor = writer(&caller)?;
    let req: AcceptRequest = body.parse(None)?;
    let command = Command::accept(req.rating, req.review.map(String::from))?;
    Ok(Api::ok(state.engine.act(&actor, &id, command).await?.task.to_task()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReassignRequest {
    pub provider_agent_id: Option<Line>,
    pub new_provider_agent_did: Option<Line>,
    pub new_agent_id: Option<Line>,
}

#[derive(Serialize, ToSchema)]
pub struct Reassigned {
    #[serde(flatten)]
    task: Task,
    task_id: String,
    previous_agent_did: String,
    new_agent_did: String,
    new_provider_agent_id: String,
    reassigned_at: String,
}

/// Client: move an unfinished task to another provider; the escrow stays.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/reassign", tag = "tasks", params(("id" = String, Path)), request_body = ReassignRequest,
    responses((status = 200, body = Reassigned), (status = 403), (status = 404), (status = 409), (status = 422), (status = 423)))]
pub(crate) async fn reassign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Reassigned>> {
    let mut actor = writer(&caller)?;
    let req: ReassignRequest = body.parse(None)?;
    let target =
        req.provider_agent_id.or(req.new_provider_agent_did).or(req.new_agent_id).filter(|t| !t.trim().is_empty());
    let target = match target {
        Some(t) => t.into_string(),
        // None named: the best-reputed active agent offering the capability takes it.
        None => {
            let task = super::visible(&state.db, &mut actor, &id).await?;
            let query = crate::agents::discovery::DiscoverQuery {
                capability: Some(task.capability.clone()),
                min_price: None,
                max_price: None,
                min_reputation: None,
                sort_by: Some("reputation_score".into()),
                limit: Some("20".into()),
                q: None,
                cursor: None,
                offset: None,
            };
            let candidates = crate::agents::discovery::discover(&state.db, &query).await?;
            candidates
                .into_iter()
                .find(|a| a.id != task.provider_agent_id && Some(a.id.as_str()) != task.client_agent_id.as_deref())
                .map(|a| a.id)
                .ok_or_else(|| super::agent_unavailable("no other active agent offers this capability"))?
        }
    };
    let done = state.engine.act(&actor, &id, Command::reassign(target.trim().to_string())).await?;
    let previous_did = match done.reply {
        Reply::Reassigned { previous_did } => previous_did,
        _ => done.task.provider_agent_did.clone(),
    };
    let task = done.task.to_task();
    Ok(Api::ok(Reassigned {
        task_id: task.id.clone(),
        previous_agent_did: previous_did,
        new_agent_did: task.provider_agent_did.clone(),
        new_provider_agent_id: task.provider_agent_id.clone(),
        reassigned_at: task.updated_at.clone(),
        task,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Timeline {
    events: Vec<TimelineEvent>,
}

/// Everything that happened to the task, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/timeline", tag = "tasks", params(("id" = String, Path)), responses((status = 200, body = Timeline), (status = 404)))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Timeline>> {
    let mut actor = reader(&caller)?;
    let task = super::visible(&state.db, &mut actor, &id).await?;
    Ok(Api::ok(Timeline { events: store::timeline(&state.db, &task.id).await? }))
}

#[derive(Serialize, ToSchema)]
pub struct Attempts {
    attempts: Vec<Attempt>,
}

/// Each provider's go at the task.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/attempts", tag = "tasks", params(("id" = String, Path)), responses((status = 200, body = Attempts), (status = 404)))]
pub(crate) async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Attempts>> {
    let mut actor = reader(&caller)?;
    let task = super::visible(&state.db, &mut actor, &id).await?;
    Ok(Api::ok(Attempts { attempts: store::attempts(&state.db, &task.id).await? }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MessageRequest {
    pub content: Option<Text>,
    /// Alias of `content` (older clients).
    pub message: Option<Text>,
    /// `instruction`, `feedback` or `question`.
    #[schema(schema_with = crate::openapi::choice::message_type)]
    pub message_type: Option<Line>,
}

/// Post a message visible to both parties.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/messages", tag = "tasks", params(("id" = String, Path)), request_body = MessageRequest,
    responses((status = 201, body = Message), (status = 404), (status = 422)))]
pub(crate) async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Message>> {
    let mut actor = writer(&caller)?;
    let req: MessageRequest = body.parse(None)?;
    let content = req.content.or(req.message).map(String::from);
    let message =
        super::post_message(&state.db, &mut actor, &id, content, req.message_type.map(String::from), state.now())
            .await?;
    Ok(Api::created(message))
}

/// The task's messages, oldest first.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/messages", tag = "tasks", params(("id" = String, Path)), responses((status = 200, body = Vec<Message>), (status = 404)))]
pub(crate) async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Vec<Message>>> {
    let mut actor = reader(&caller)?;
    let task = super::visible(&state.db, &mut actor, &id).await?;
    Ok(Api::ok(store::messages(&state.db, &task.id).await?))
}
