//! HTTP for agents: registration, profiles, updates, assign, credentials, marketplace views.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::discovery::{self, CapabilitySummary, DiscoverQuery, DiscoveredAgent, ListQuery};
use super::model::{Agent, AgentInput};
use super::{AssignItem, AssignSummary, KEY_WARNING, credentials};
use crate::auth::keys::KeyInfo;
use crate::auth::keys::PlainSecret;
use crate::auth::{Caller, MaybeCaller};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::envelope::Api;
use crate::http::extract::{ApiQuery, JsonObject};
use crate::state::AppState;
use crate::text::Line;

#[derive(Serialize, ToSchema)]
pub struct RegisteredAgent {
    agent: Agent,
    /// The agent's own API key (`agk_…`). Shown once.
    api_key: PlainSecret,
    message: &'static str,
}

fn registered(state: &AppState, r: super::Registered) -> Api<RegisteredAgent> {
    Api::created(RegisteredAgent {
        agent: r.agent.to_agent(state.now(), true),
        api_key: r.secret,
        message: KEY_WARNING,
    })
}

/// Register an agent: autonomous without a key, owned by the user with a user key.
#[utoipa::path(post, path = "/api/v1/agents/register", tag = "agents", request_body = AgentInput,
    responses((status = 201, body = RegisteredAgent), (status = 401, description = "bad key"),
        (status = 403, description = "agent key, session, missing scope or plan limit"), (status = 409, description = "DID taken"),
        (status = 422), (status = 429)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    body: JsonObject,
) -> ApiResult<Api<RegisteredAgent>> {
    let prefix = body.wrapper_prefix("agent");
    let fields =
        body.parse::<AgentInput>(Some("agent"))?.validate(true, &state.config).map_err(|e| e.prefix_fields(&prefix))?;
    let limit = state.config.max_agents_per_user;
    let r = super::register(&state.registrar, caller.as_ref(), fields, limit, state.now()).await?;
    Ok(registered(&state, r))
}

/// Register an agent owned by the calling user.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = AgentInput,
    responses((status = 201, body = RegisteredAgent), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub(crate) async fn create_owned(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<RegisteredAgent>> {
    caller.require_user()?;
    let prefix = body.wrapper_prefix("agent");
    let fields =
        body.parse::<AgentInput>(Some("agent"))?.validate(true, &state.config).map_err(|e| e.prefix_fields(&prefix))?;
    let r =
        super::register(&state.registrar, Some(&caller), fields, state.config.max_agents_per_user, state.now()).await?;
    Ok(registered(&state, r))
}

/// The marketplace: active agents, newest first.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(ListQuery), responses((status = 200, body = Vec<Agent>), (status = 422)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Api<Vec<Agent>>> {
    let page = discovery::list(&state.db, &query).await?;
    let now = state.now();
    let viewer =
        |a: &super::model::AgentRow| caller.as_ref().is_some_and(|c| c.controls_agent(&a.id, a.owner_id.as_deref()));
    Ok(Api::page(page.rows.iter().map(|a| a.to_agent(now, viewer(a))).collect(), page.pagination))
}

/// Find agents by capability, price, reputation and words (`q`); keyset-paged by `cursor`.
#[utoipa::path(get, path = "/api/v1/agents/discover", tag = "agents", params(DiscoverQuery),
    responses((status = 200, body = Vec<DiscoveredAgent>), (status = 422)))]
pub(crate) async fn discover(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ApiQuery(query): ApiQuery<DiscoverQuery>,
) -> ApiResult<Api<Vec<DiscoveredAgent>>> {
    let _ = caller;
    let now = state.now();
    let page = discovery::discover_page(&state.db, &query).await?;
    Ok(Api::page(page.rows.iter().map(|a| DiscoveredAgent::from_row(a, now)).collect(), page.pagination))
}

/// An agent's profile by UUID or DID (percent-encoded DIDs work).
#[utoipa::path(get, path = "/api/v1/agents/{id_or_did}", tag = "agents", params(("id_or_did" = String, Path)),
    responses((status = 200, body = Agent), (status = 404)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    Path(id): Path<String>,
) -> ApiResult<Api<Agent>> {
    let (agent, controls) = super::visible(&state.db, caller.as_ref(), &id).await?;
    Ok(Api::ok(agent.to_agent(state.now(), controls)))
}

/// Update an agent (its owner or the agent itself); `status` toggles active/draft/inactive.
#[utoipa::path(patch, path = "/api/v1/agents/{id_or_did}", tag = "agents", params(("id_or_did" = String, Path)), request_body = AgentInput,
    responses((status = 200, body = Agent), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Agent>> {
    let prefix = body.wrapper_prefix("agent");
    let changes = body
        .parse::<AgentInput>(Some("agent"))?
        .validate(false, &state.config)
        .map_err(|e| e.prefix_fields(&prefix))?;
    let updated = super::update(&state.db, &caller, &id, changes, state.now()).await?;
    Ok(Api::ok(updated.to_agent(state.now(), true)))
}

/// Same as PATCH (clients use both).
#[utoipa::path(put, path = "/api/v1/agents/{id_or_did}", tag = "agents", params(("id_or_did" = String, Path)), request_body = AgentInput,
    responses((status = 200, body = Agent), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub(crate) async fn replace(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Agent>> {
    update(state, caller, id, body).await
}

/// Delete an agent (soft: status `deleted`, keys revoked).
#[utoipa::path(delete, path = "/api/v1/agents/{id_or_did}", tag = "agents", params(("id_or_did" = String, Path)),
    responses((status = 200, body = Agent), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Agent>> {
    let deleted = super::delete(&state.db, &caller, &id, state.now()).await?;
    Ok(Api::ok(deleted.to_agent(state.now(), true)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRequest {
    agents: Option<Vec<AssignRequestItem>>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRequestItem {
    /// The agent's UUID or DID (alias `agent_id`).
    id: Option<Line>,
    agent_id: Option<Line>,
    /// One of the agent's own keys, proving control.
    api_key: Option<Line>,
}

/// Claim autonomous agents into the calling account, each proven by its own key.
#[utoipa::path(post, path = "/api/v1/agents/assign", tag = "agents", request_body = AssignRequest,
    responses((status = 200, body = AssignSummary), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<AssignSummary>> {
    let user = caller.require_user()?;
    let request: AssignRequest = body.parse(None)?;
    let list = request.agents.unwrap_or_default();
    if list.is_empty() || list.len() > 100 {
        return Err(ApiError::field("agents", "must list 1–100 agents"));
    }
    let mut errors = Vec::new();
    let mut items = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        let agent = item.id.or(item.agent_id).filter(|s| !s.trim().is_empty());
        let key = item.api_key.filter(|s| !s.trim().is_empty());
        if agent.is_none() {
            errors.push(FieldError::new(format!("agents[{i}].id"), "is required"));
        }
        if key.is_none() {
            errors.push(FieldError::new(format!("agents[{i}].api_key"), "is required"));
        }
        if let (Some(agent), Some(api_key)) = (agent, key) {
            items.push(AssignItem { agent: agent.trim().to_string(), api_key: api_key.trim().to_string() });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let summary = super::assign(&state.db, &user.id, items, state.config.max_agents_per_user, state.now()).await?;
    Ok(Api::ok(summary))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NewCredentialRequest {
    /// A label, 1–64 characters (default "api key").
    name: Option<Line>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedCredential {
    key: KeyInfo,
    /// The new agent key. Shown once.
    api_key: PlainSecret,
    message: &'static str,
}

/// Issue another key for an agent.
#[utoipa::path(post, path = "/api/v1/agents/{id}/credentials", tag = "agents", params(("id" = String, Path)), request_body = NewCredentialRequest,
    responses((status = 201, body = CreatedCredential), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn create_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<CreatedCredential>> {
    let request: NewCredentialRequest = body.parse(Some("credential"))?;
    let name = request.name.map(|n| n.trim().to_string()).unwrap_or_else(|| "api key".into());
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::field("name", "must be 1–64 characters"));
    }
    let agent = super::controlled(&state.db, &caller, &id).await?;
    let (key, secret) = credentials::create(&state.db, &caller, &agent.id, &name, state.now()).await?;
    Ok(Api::created(CreatedCredential { key, api_key: secret, message: KEY_WARNING }))
}

/// An agent's keys (never the secrets).
#[utoipa::path(get, path = "/api/v1/agents/{id}/credentials", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = Vec<KeyInfo>), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn list_credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Vec<KeyInfo>>> {
    let agent = super::controlled(&state.db, &caller, &id).await?;
    state.flush_key_uses().await?;
    Ok(Api::ok(credentials::list(&state.db, &agent.id).await?))
}

/// Revoke one of an agent's keys.
#[utoipa::path(delete, path = "/api/v1/agents/{id}/credentials/{key_id}", tag = "agents",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = KeyInfo), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn revoke_credential(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Api<KeyInfo>> {
    let agent = super::controlled(&state.db, &caller, &id).await?;
    Ok(Api::ok(credentials::revoke(&state.db, &caller, &agent.id, &key_id, state.now()).await?))
}

/// Capabilities offered by active agents, with counts and mean prices.
#[utoipa::path(get, path = "/api/v1/capabilities", tag = "agents", responses((status = 200, body = Vec<CapabilitySummary>)))]
pub(crate) async fn capabilities(State(state): State<AppState>) -> ApiResult<Api<Vec<CapabilitySummary>>> {
    Ok(Api::ok(discovery::capabilities(&state.db).await?))
}
