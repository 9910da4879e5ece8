//! Who is calling. A middleware resolves the credential on every `/api` request (one indexed
//! lookup by SHA-256, or none when `auth::cache` verified it a moment ago); a bad credential is
//! a 401 everywhere, never a silent anonymous call.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::cache::UsedKey;
use super::keys::{self, KeyKind};
use super::scope::{Rights, Scope, Scopes};
use super::sessions;
use crate::accounts;
use crate::agents;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::client_ip;
use crate::http::rate_limit;
use crate::money::Amount;
use crate::state::AppState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    UserKey {
        key_id: String,
    },
    AgentKey {
        key_id: String,
    },
    /// A session token (`ast_…`) made from a key: it expires, so it never mints a permanent credential.
    Session {
        session_id: String,
        key_kind: KeyKind,
        key_id: String,
    },
    /// A signed-in dashboard browser (password log-in), acting as its user with full rights.
    Browser {
        session_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct UserCtx {
    pub id: String,
    pub is_admin: bool,
}

#[derive(Debug, Clone)]
pub struct AgentCtx {
    pub id: String,
    pub did: String,
    pub owner_id: Option<String>,
    /// Reputation in hundredths (scales the rate limits).
    pub reputation_centi: i64,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub credential: Credential,
    /// The account behind a user key (or a session made from one).
    pub user: Option<UserCtx>,
    /// The agent acting: from an agent key, or a user key with `X-Agent-ID`.
    pub agent: Option<AgentCtx>,
    pub scopes: Scopes,
    pub max_price_per_hire: Option<Amount>,
}

impl Caller {
    /// The key whose use this request records (a session counts as use of its key).
    fn used_key(&self) -> Option<UsedKey> {
        let key_id = match &self.credential {
            Credential::UserKey { key_id } | Credential::AgentKey { key_id } => key_id.clone(),
            Credential::Session { key_id, .. } => key_id.clone(),
            Credential::Browser { .. } => return None,
        };
        Some(match &self.agent {
            Some(agent) if self.user.is_none() => UsedKey::Agent { key_id, agent_id: agent.id.clone() },
            _ => UsedKey::User { key_id },
        })
    }

    /// True when the credential itself belongs to an agent (agent key or its session).
    pub fn is_agent_credential(&self) -> bool {
        self.user.is_none()
    }

    /// The key behind the credential (a browser session names itself): rate limits and
    /// idempotency records are kept per key.
    pub fn key_id(&self) -> &str {
        match &self.credential {
            Credential::UserKey { key_id } | Credential::AgentKey { key_id } | Credential::Session { key_id, .. } => {
                key_id
            }
            Credential::Browser { session_id } => session_id,
        }
    }

    pub fn is_session(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
    }

    /// The credential's rights: agent keys (and their sessions) hold every scope over their agent.
    pub fn rights(&self) -> Rights {
        Rights { scopes: self.scopes.clone(), max_price_per_hire: self.max_price_per_hire }
    }

    /// A credential may create or roll only credentials no stronger than itself, and a session
    /// token mints none at all (its expiry must bound what it can do).
    pub fn may_mint(&self, minted: &Rights) -> ApiResult<()> {
        if self.is_session() {
            return Err(ApiError::forbidden(
                "a session token cannot create or rotate API keys; use the API key itself",
            ));
        }
        self.may_manage(minted)
    }

    /// A credential may revoke (or otherwise manage) only credentials no stronger than itself.
    pub fn may_manage(&self, target: &Rights) -> ApiResult<()> {
        if self.rights().cover(target) {
            Ok(())
        } else {
            Err(ApiError::forbidden("a credential can only manage credentials with no more scopes and no higher max_price_per_hire than its own")
                .with_details([serde_json::json!({"field": "scopes", "message": "the target credential has rights this one lacks"})]))
        }
    }

    /// The account, or 403 for agent credentials.
    pub fn require_user(&self) -> ApiResult<&UserCtx> {
        self.user.as_ref().ok_or_else(|| ApiError::forbidden("this endpoint needs a user API key, not an agent key"))
    }

    /// 403 unless the credential holds one of `scopes` (the route table declares them).
    pub fn require_any_scope(&self, scopes: &[Scope]) -> ApiResult<()> {
        if scopes.iter().any(|s| self.scopes.allows(*s)) {
            return Ok(());
        }
        let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        Err(ApiError::forbidden(format!("this key lacks the `{}` scope", names.join("` or `")))
            .with_details([serde_json::json!({"field": "scopes", "required": names})]))
    }

    pub fn require_admin(&self) -> ApiResult<&UserCtx> {
        let user = self.require_user()?;
        if !user.is_admin {
            return Err(ApiError::forbidden("administrators only"));
        }
        self.require_any_scope(&[Scope::Admin])?;
        Ok(user)
    }

    /// Whether the caller may manage `agent`: its owner (as a user) or the agent itself.
    pub fn controls_agent(&self, agent_id: &str, owner_id: Option<&str>) -> bool {
        let as_agent = self.agent.as_ref().is_some_and(|a| a.id == agent_id);
        let as_owner = matches!((&self.user, owner_id), (Some(u), Some(o)) if u.id == o);
        as_agent || as_owner
    }
}

/// Extractor: an authenticated caller is required (401 otherwise).
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("an API key is required (X-API-Key or Authorization: Bearer)"))
    }
}

/// Extractor: the caller if one authenticated, for endpoints that also work anonymously.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(MaybeCaller(parts.extensions.get::<Caller>().cloned()))
    }
}

/// The credential presented, from `Authorization: Bearer`, `X-API-Key` or `Api-Key`.
pub fn presented_credential(parts: &Parts) -> Option<String> {
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    bearer.or_else(|| header("x-api-key")).or_else(|| header("api-key")).map(|s| s.trim().to_string())
}

/// Middleware: resolves the credential (if any) into a `Caller` request extension. Failed
/// `/auth/authenticate` attempts count per client IP in the database; too many lock the IP out.
pub async fn resolve_caller(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    // Inside the nested `/api/v1` router the path arrives without its prefix.
    let is_authenticate = matches!(parts.uri.path(), "/auth/authenticate" | "/api/v1/auth/authenticate");
    let ip = client_ip(&parts, state.config.trust_forwarded_for).to_string();
    let subject = format!("authenticate:ip:{ip}");
    if is_authenticate {
        match rate_limit::locked_out(&state.db, std::slice::from_ref(&subject), state.now()).await {
            Ok(Some(retry)) => return ApiError::rate_limited(retry).into_response(),
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let outcome = match presented_credential(&parts) {
        None => Ok(None),
        Some(token) => resolve(&state, &token, &parts).await.map(Some),
    };
    let failed = match &outcome {
        Ok(caller) => caller.is_none(),
        Err(err) => err.code() == "UNAUTHORIZED",
    };
    if is_authenticate && failed {
        match rate_limit::record_failure(&state.db, &subject, state.lockout_policy(), state.now()).await {
            Ok(Some(retry)) => return ApiError::rate_limited(retry).into_response(),
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    match outcome {
        Ok(caller) => {
            if let Some(caller) = caller {
                parts.extensions.insert(caller);
            }
            next.run(Request::from_parts(parts, body)).await
        }
        Err(err) => err.into_response(),
    }
}

fn invalid() -> ApiError {
    ApiError::unauthorized("invalid, revoked or expired API key")
}

async fn resolve(state: &AppState, token: &str, parts: &Parts) -> ApiResult<Caller> {
    let kind = KeyKind::of(token).ok_or_else(invalid)?;
    let hash = keys::hash(token);
    let now = state.now();
    let epoch = state.db.credentials_epoch();
    let mut caller = match state.verified_keys.get(&hash, now, epoch) {
        Some(caller) => caller,
        None => {
            let (caller, usable_until) = verify(state, kind, &hash, now).await?;
            state.verified_keys.put(&hash, &caller, usable_until, epoch);
            caller
        }
    };
    if let Some(key) = caller.used_key() {
        state.key_uses.record(key, now);
    }
    if let Some(agent_ref) = parts.headers.get("x-agent-id").and_then(|v| v.to_str().ok()) {
        act_as_agent(state, &mut caller, agent_ref.trim()).await?;
    }
    Ok(caller)
}

/// Looks the credential up: the caller it makes and until when it is usable.
async fn verify(state: &AppState, kind: KeyKind, hash: &str, now: i64) -> ApiResult<(Caller, Option<i64>)> {
    match kind {
        KeyKind::User => user_key_caller(state, KeyLookup::Hash(hash), now).await,
        KeyKind::Agent => agent_key_caller(state, KeyLookup::Hash(hash), now).await,
        KeyKind::Session => {
            let session = sessions::find_active(&state.db, hash, now).await?.ok_or_else(invalid)?;
            let (mut caller, key_until) = match session.key_kind {
                KeyKind::User => user_key_caller(state, KeyLookup::Id(&session.key_id), now).await?,
                KeyKind::Agent => agent_key_caller(state, KeyLookup::Id(&session.key_id), now).await?,
                KeyKind::Session => return Err(invalid()),
            };
            let until = key_until.map_or(session.expires_at, |t| t.min(session.expires_at));
            caller.credential =
                Credential::Session { session_id: session.id, key_kind: session.key_kind, key_id: session.key_id };
            Ok((caller, Some(until)))
        }
    }
}

enum KeyLookup<'a> {
    Hash(&'a str),
    Id(&'a str),
}

async fn user_key_caller(state: &AppState, lookup: KeyLookup<'_>, now: i64) -> ApiResult<(Caller, Option<i64>)> {
    let key = match lookup {
        KeyLookup::Hash(h) => accounts::api_keys::find_by_hash(&state.db, h).await?,
        KeyLookup::Id(id) => accounts::api_keys::find_by_id(&state.db, id).await?,
    }
    .filter(|k| k.is_usable(now))
    .ok_or_else(invalid)?;
    let caller = Caller {
        credential: Credential::UserKey { key_id: key.id },
        user: Some(UserCtx { id: key.user_id, is_admin: key.is_admin }),
        agent: None,
        scopes: key.scopes,
        max_price_per_hire: key.max_price_per_hire,
    };
    Ok((caller, key.expires_at))
}

async fn agent_key_caller(state: &AppState, lookup: KeyLookup<'_>, now: i64) -> ApiResult<(Caller, Option<i64>)> {
    let key = match lookup {
        KeyLookup::Hash(h) => agents::credentials::find_by_hash(&state.db, h).await?,
        KeyLookup::Id(id) => agents::credentials::find_by_id(&state.db, id).await?,
    }
    .filter(|k| k.is_usable(now))
    .ok_or_else(invalid)?;
    let caller = Caller {
        credential: Credential::AgentKey { key_id: key.id },
        user: None,
        agent: Some(AgentCtx {
            id: key.agent_id,
            did: key.agent_did,
            owner_id: key.owner_id,
            reputation_centi: key.reputation_centi,
        }),
        scopes: Scopes::all(),
        max_price_per_hire: None,
    };
    Ok((caller, key.expires_at))
}

/// `X-Agent-ID`: a user key acting as one of the user's own agents.
async fn act_as_agent(state: &AppState, caller: &mut Caller, agent_ref: &str) -> ApiResult<()> {
    let user = caller.user.as_ref().ok_or_else(|| ApiError::forbidden("X-Agent-ID needs a user API key"))?;
    let agent = agents::find_ref(&state.db, agent_ref).await?;
    match agent {
        Some(a) if a.owner_id.as_deref() == Some(user.id.as_str()) && a.status != "deleted" => {
            caller.agent =
                Some(AgentCtx { id: a.id, did: a.did, owner_id: a.owner_id, reputation_centi: a.reputation_centi });
            Ok(())
        }
        _ => Err(ApiError::forbidden("X-Agent-ID names an agent you do not own")),
    }
}
