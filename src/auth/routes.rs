//! HTTP for sessions: authenticate (key → session token), logout, rotate-key.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::caller::Credential;
use super::keys::{KeyInfo, KeyKind};
use super::{Caller, sessions};
use crate::accounts;
use crate::agents;
use crate::auth::keys::PlainSecret;
use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::http::envelope::Api;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct SessionPrincipal {
    id: String,
    name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    /// The session token (`ast_…`), for `Authorization: Bearer`.
    token: PlainSecret,
    /// Same as `token`, for clients that read this name.
    session_token: PlainSecret,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<SessionPrincipal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<SessionPrincipal>,
}

/// Exchange a user or agent key (in `X-API-Key`) for a session token. Ten failures per IP per
/// minute lock the IP out for five minutes.
#[utoipa::path(post, path = "/api/v1/auth/authenticate", tag = "auth",
    responses((status = 200, body = SessionCreated), (status = 401), (status = 403), (status = 429)))]
pub(crate) async fn authenticate(State(state): State<AppState>, caller: Caller) -> ApiResult<Api<SessionCreated>> {
    let (kind, key_id) = match &caller.credential {
        Credential::UserKey { key_id } => (KeyKind::User, key_id.clone()),
        Credential::AgentKey { key_id } => (KeyKind::Agent, key_id.clone()),
        Credential::Session { .. } | Credential::Browser { .. } => {
            return Err(ApiError::forbidden("authenticate with an API key, not a session token"));
        }
    };
    let ttl_ms = state.config.session_ttl_secs as i64 * 1000;
    let (token, expires_at) = sessions::create(&state.db, kind, &key_id, state.now(), ttl_ms).await?;
    let (agent, user) = match (&caller.agent, &caller.user) {
        (Some(a), None) => {
            let name = agents::find_ref(&state.db, &a.id).await?.map(|r| r.name);
            (Some(SessionPrincipal { id: a.id.clone(), name }), None)
        }
        (_, Some(u)) => {
            let name = accounts::users::find(&state.db, &u.id).await?.and_then(|u| u.name);
            (None, Some(SessionPrincipal { id: u.id.clone(), name }))
        }
        (None, None) => (None, None),
    };
    Ok(Api::ok(SessionCreated { session_token: token.clone(), token, expires_at: rfc3339(expires_at), agent, user }))
}

#[derive(Serialize, ToSchema)]
pub struct LoggedOut {
    /// Sessions revoked by this call.
    revoked_sessions: u64,
}

/// End the presented session; with a key instead, end every session made from that key.
#[utoipa::path(delete, path = "/api/v1/auth/logout", tag = "auth", responses((status = 200, body = LoggedOut), (status = 401)))]
pub(crate) async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Api<LoggedOut>> {
    let now = state.now();
    let revoked_sessions = match &caller.credential {
        Credential::Session { session_id, .. } => sessions::revoke(&state.db, session_id, now).await?,
        Credential::UserKey { key_id } | Credential::AgentKey { key_id } => {
            sessions::revoke_for_key(&state.db, key_id, now).await?
        }
        Credential::Browser { .. } => 0,
    };
    Ok(Api::ok(LoggedOut { revoked_sessions }))
}

#[derive(Serialize, ToSchema)]
pub struct RotatedKey {
    /// The replacement key, of the same kind. Shown once.
    api_key: PlainSecret,
    key: KeyInfo,
    message: &'static str,
}

/// Replace the presented key (or the key behind the presented session); the old one stops
/// working at once, and so do its sessions.
#[utoipa::path(post, path = "/api/v1/auth/rotate-key", tag = "auth", responses((status = 201, body = RotatedKey), (status = 401)))]
pub(crate) async fn rotate_key(State(state): State<AppState>, caller: Caller) -> ApiResult<Api<RotatedKey>> {
    let now = state.now();
    let (kind, key_id) = match &caller.credential {
        Credential::UserKey { key_id } => (KeyKind::User, key_id),
        Credential::AgentKey { key_id } => (KeyKind::Agent, key_id),
        Credential::Session { key_kind, key_id, .. } => (*key_kind, key_id),
        Credential::Browser { .. } => return Err(ApiError::forbidden("rotate an API key with that key")),
    };
    let (key, secret) = match (kind, &caller.user, &caller.agent) {
        (KeyKind::User, Some(_), _) => accounts::api_keys::roll(&state.db, &caller, key_id, 0, now).await?,
        (KeyKind::Agent, None, Some(agent)) => {
            agents::credentials::rotate(&state.db, &caller, &agent.id, key_id, now).await?
        }
        _ => return Err(ApiError::forbidden("this credential cannot be rotated")),
    };
    sessions::revoke_for_key(&state.db, key_id, now).await?;
    Ok(Api::created(RotatedKey { api_key: secret, key, message: agents::KEY_WARNING }))
}
