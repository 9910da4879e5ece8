//! HTTP for accounts and user API keys: parse, call the slice, shape the answer.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api_keys::{self, MAX_ROLL_GRACE_SECS, NewKeyRequest};
use super::users::{self, SignUpRequest, User};
use crate::agents;
use crate::auth::Caller;
use crate::auth::keys::KeyInfo;
use crate::auth::keys::PlainSecret;
use crate::error::{ApiError, ApiResult};
use crate::http::envelope::Api;
use crate::http::extract::{ApiQuery, JsonObject};
use crate::http::keyset::PageQuery;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct SignedUp {
    user: User,
    /// The first API key (full access). Shown once.
    api_key: PlainSecret,
    key: KeyInfo,
    message: &'static str,
}

/// Create an account; its first API key is in the response, once.
#[utoipa::path(post, path = "/api/v1/accounts/register", tag = "accounts", request_body = SignUpRequest,
    responses((status = 201, body = SignedUp), (status = 409, description = "email taken"), (status = 422), (status = 429)))]
pub(crate) async fn register(State(state): State<AppState>, body: JsonObject) -> ApiResult<Api<SignedUp>> {
    let signup = body.parse::<SignUpRequest>(Some("user"))?.validate()?;
    let (user, key, secret) = users::register(&state.db, signup, false, state.now()).await?;
    Ok(Api::created(SignedUp { user, api_key: secret, key, message: agents::KEY_WARNING }))
}

#[derive(Serialize, ToSchema)]
pub struct Plan {
    /// null = unlimited.
    max_agents: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    id: String,
    email: String,
    name: Option<String>,
    is_admin: bool,
    plan: Plan,
    agent_count: i64,
    created_at: String,
}

/// The account behind the key.
#[utoipa::path(get, path = "/api/v1/accounts/me", tag = "accounts", responses((status = 200, body = Me), (status = 401), (status = 403)))]
pub(crate) async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Api<Me>> {
    let user_ctx = caller.require_user()?;
    let user = users::find(&state.db, &user_ctx.id).await?.ok_or_else(|| ApiError::not_found("account"))?;
    let agent_count = agents::count_owned(&state.db, &user.id).await?;
    Ok(Api::ok(Me {
        id: user.id,
        email: user.email,
        name: user.name,
        is_admin: user.is_admin,
        plan: Plan { max_agents: state.config.max_agents_per_user },
        agent_count,
        created_at: user.created_at,
    }))
}

/// The user's own agents, drafts included (what the dashboard shows).
#[utoipa::path(get, path = "/api/v1/accounts/me/agents", tag = "accounts", params(PageQuery),
    responses((status = 200, body = Vec<agents::model::Agent>), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn my_agents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Api<Vec<agents::model::Agent>>> {
    let user = caller.require_user()?;
    let page = agents::store::owned_order().page(q.limit.as_deref(), q.cursor.as_deref(), q.offset.as_deref())?;
    let now = state.now();
    let (rows, meta) = agents::store::list_owned_page(&state.db, &user.id, &page).await?;
    Ok(Api::page(rows.iter().map(|a| a.to_agent(now, true)).collect(), meta))
}

/// The account's keys. Secrets are never shown again.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(PageQuery), responses((status = 200, body = Vec<KeyInfo>), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Api<Vec<KeyInfo>>> {
    let user = caller.require_user()?;
    let page = api_keys::order().page(q.limit.as_deref(), q.cursor.as_deref(), q.offset.as_deref())?;
    state.flush_key_uses().await?;
    let (keys, meta) = api_keys::list_page(&state.db, &user.id, &page).await?;
    Ok(Api::page(keys, meta))
}

#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    key: KeyInfo,
    /// The secret. Shown once.
    api_key: PlainSecret,
    message: &'static str,
}

/// Create a named key, optionally scoped, expiring or capped.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = NewKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<CreatedKey>> {
    let now = state.now();
    let spec = body.parse::<NewKeyRequest>(Some("key"))?.validate(now, state.config.max_amount)?;
    let (key, secret) = api_keys::create(&state.db, &caller, &spec, now).await?;
    Ok(Api::created(CreatedKey { key, api_key: secret, message: agents::KEY_WARNING }))
}

/// Revoke a key at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 200, body = KeyInfo), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<KeyInfo>> {
    Ok(Api::ok(api_keys::revoke(&state.db, &caller, &id, state.now()).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RollRequest {
    /// How long the old key keeps working, 0–604800 seconds (default 0 = revoked now).
    #[schema(minimum = 0, maximum = 604800)]
    expires_in_seconds: Option<i64>,
}

/// Replace a key with a new secret; the old one may keep working for a grace period.
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/roll", tag = "api-keys", params(("id" = String, Path)), request_body = RollRequest,
    responses((status = 201, body = CreatedKey), (status = 401), (status = 404), (status = 409), (status = 422)))]
pub(crate) async fn roll_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<CreatedKey>> {
    let grace = body.parse::<RollRequest>(None)?.expires_in_seconds.unwrap_or(0);
    if !(0..=MAX_ROLL_GRACE_SECS).contains(&grace) {
        return Err(ApiError::field("expires_in_seconds", "must be from 0 to 604800"));
    }
    let (key, secret) = api_keys::roll(&state.db, &caller, &id, grace, state.now()).await?;
    Ok(Api::created(CreatedKey { key, api_key: secret, message: agents::KEY_WARNING }))
}
