//! Agents: registration (owned or autonomous), profiles, updates, deletion, claiming
//! autonomous agents (assign), their credentials, and the marketplace views.

pub mod credentials;
pub mod discovery;
pub mod finder;
pub mod listing;
pub mod model;
pub mod registrar;
pub mod routes;
pub mod search;
pub mod store;

use serde::Serialize;
use utoipa::ToSchema;

use crate::accounts;
use crate::auth::Caller;
use crate::auth::keys::{KeyInfo, PlainSecret};
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use model::{AgentFields, AgentRow};
pub use registrar::{Registrar, Registration};

pub const KEY_WARNING: &str = "Keep your API key secure. It will not be shown again.";

/// What other slices need to know about an agent.
#[derive(Debug, Clone)]
pub struct AgentRef {
    pub id: String,
    pub did: String,
    pub name: String,
    pub owner_id: Option<String>,
    pub status: String,
    pub reputation_centi: i64,
}

pub async fn find_ref(db: &Db, id_or_did: &str) -> sqlx::Result<Option<AgentRef>> {
    Ok(store::find(db, id_or_did).await?.map(|a| AgentRef {
        id: a.id,
        did: a.did,
        name: a.name,
        owner_id: a.owner_id,
        status: a.status,
        reputation_centi: a.reputation_centi,
    }))
}

/// Number of (not deleted) agents a user owns.
pub async fn count_owned(db: &Db, owner_id: &str) -> sqlx::Result<i64> {
    let mut conn = db.pool().acquire().await?;
    store::count_owned(&mut conn, owner_id).await
}

pub struct Registered {
    pub agent: AgentRow,
    pub key: KeyInfo,
    pub secret: PlainSecret,
}

/// Registers an agent with its first key: autonomous when nobody signs the request, else owned
/// by the calling user. Agent credentials register nothing, and a session token cannot, since the
/// new agent's key would outlive it. The plan limit applies to owned agents only.
pub async fn register(
    registrar: &Registrar,
    by: Option<&Caller>,
    fields: AgentFields,
    max_agents_per_user: Option<i64>,
    now: i64,
) -> ApiResult<Registered> {
    let owner_id = match by {
        None => None,
        Some(c) if c.is_agent_credential() => {
            return Err(ApiError::forbidden("register agents anonymously or with a user API key"));
        }
        Some(c) if c.is_session() => {
            return Err(ApiError::forbidden(
                "a session token cannot register agents (their keys would outlive it); use a user API key",
            ));
        }
        Some(c) => Some(c.require_user()?.id.clone()),
    };
    let owned = owner_id.is_some();
    let registered = registrar.register(Registration { owner_id, fields, max_agents_per_user, now }).await?;
    metrics::counter!("agentmarket_agents_registered_total", "owned" => owned.to_string()).increment(1);
    Ok(registered)
}

/// A registration's writes inside `tx` (the registrar owns the transaction).
async fn register_in(db: &Db, tx: &mut crate::db::Tx, r: Registration) -> ApiResult<Registered> {
    let id = uuid::Uuid::now_v7().to_string();
    let owner_id = r.owner_id.as_deref();
    if let (Some(owner), Some(max)) = (owner_id, r.max_agents_per_user) {
        accounts::users::lock_for_update(db, tx, owner).await?;
        if store::count_owned(tx, owner).await? >= max {
            return Err(ApiError::plan_limit(max));
        }
    }
    let inserted = store::insert(tx, store::NewAgentRow { id: &id, owner_id, fields: &r.fields, now: r.now }).await?;
    let Some(agent) = inserted else {
        return Err(ApiError::conflict("an agent with this DID already exists")
            .with_details([serde_json::json!({"field": "did", "message": "is already registered"})]));
    };
    let (key, secret) = credentials::insert(tx, &id, "default", r.now).await?;
    Ok(Registered { agent, key, secret })
}

/// Loads an agent the caller may read. Hidden agents (draft, suspended) are 404 to everyone but
/// their owner and themselves; deleted agents are 404 to all.
pub async fn visible(db: &Db, caller: Option<&Caller>, id_or_did: &str) -> ApiResult<(AgentRow, bool)> {
    let agent = store::find(db, id_or_did).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    let controls = caller.is_some_and(|c| c.controls_agent(&agent.id, agent.owner_id.as_deref()));
    let admin = caller.and_then(|c| c.user.as_ref()).is_some_and(|u| u.is_admin);
    match agent.status.as_str() {
        "deleted" => Err(ApiError::not_found("agent")),
        "draft" | "suspended" if !(controls || admin) => Err(ApiError::not_found("agent")),
        _ => Ok((agent, controls)),
    }
}

/// Loads an agent the caller controls (owner or the agent itself), else 404/403.
pub async fn controlled(db: &Db, caller: &Caller, id_or_did: &str) -> ApiResult<AgentRow> {
    let (agent, controls) = visible(db, Some(caller), id_or_did).await?;
    if !controls {
        return Err(ApiError::forbidden("only the agent's owner or the agent itself may do this"));
    }
    Ok(agent)
}

pub async fn update(db: &Db, caller: &Caller, id_or_did: &str, changes: AgentFields, now: i64) -> ApiResult<AgentRow> {
    let agent = controlled(db, caller, id_or_did).await?;
    if changes.did.as_ref().is_some_and(|d| *d != agent.did) {
        return Err(ApiError::field("did", "cannot be changed"));
    }
    if agent.status == "suspended" && changes.status.is_some() {
        return Err(ApiError::invalid_state("a suspended agent's status is set by an administrator", "suspended"));
    }
    let mut tx = db.begin().await?;
    let current = store::find_in_tx(db, &mut tx, &agent.id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    let updated = store::update(&mut tx, &current, &changes, now).await?;
    if updated.status != current.status {
        let mut owners = vec![format!("agent:{}", updated.id)];
        owners.extend(updated.owner_id.as_ref().map(|o| format!("user:{o}")));
        let payload = serde_json::json!({"event": "agent.status_changed", "agent_id": updated.id, "agent_did": updated.did,
            "status": updated.status, "previous_status": current.status, "updated_at": crate::clock::rfc3339(now)});
        crate::webhooks::emit(&mut tx, &owners, "agent.status_changed", None, payload, now).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// Soft delete: status `deleted`, every key revoked. The DID stays taken.
pub async fn delete(db: &Db, caller: &Caller, id_or_did: &str, now: i64) -> ApiResult<AgentRow> {
    let agent = controlled(db, caller, id_or_did).await?;
    if crate::tasks::store::has_unsettled(db, &agent.id).await? {
        return Err(ApiError::invalid_state("the agent has unfinished or unsettled tasks", &agent.status));
    }
    let mut tx = db.begin().await?;
    store::mark_deleted(&mut tx, &agent.id, now).await?;
    credentials::revoke_all(&mut tx, &agent.id, now).await?;
    let deleted = store::find_in_tx(db, &mut tx, &agent.id).await?.ok_or_else(|| ApiError::not_found("agent"))?;
    tx.commit().await?;
    db.credentials_changed();
    Ok(deleted)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignResult {
    pub agent_id: String,
    /// `assigned`, `already_owned` or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AssignError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignError {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignSummary {
    pub results: Vec<AssignResult>,
    pub assigned: usize,
    pub already_owned: usize,
    pub failed: usize,
}

pub struct AssignItem {
    pub agent: String,
    pub api_key: String,
}

/// Claims autonomous agents for `owner_id`, each proven by one of its own keys. Every item
/// succeeds or fails on its own.
pub async fn assign(
    db: &Db,
    owner_id: &str,
    items: Vec<AssignItem>,
    max_agents_per_user: Option<i64>,
    now: i64,
) -> ApiResult<AssignSummary> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let outcome = assign_one(db, owner_id, &item, max_agents_per_user, now).await?;
        results.push(outcome);
    }
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    Ok(AssignSummary {
        assigned: count("assigned"),
        already_owned: count("already_owned"),
        failed: count("failed"),
        results,
    })
}

async fn assign_one(
    db: &Db,
    owner_id: &str,
    item: &AssignItem,
    max_agents_per_user: Option<i64>,
    now: i64,
) -> ApiResult<AssignResult> {
    let failed = |agent_id: &str, code: &'static str, message: &str| AssignResult {
        agent_id: agent_id.to_string(),
        status: "failed",
        error: Some(AssignError { code, message: message.to_string() }),
    };
    let Some(agent) = store::find(db, &item.agent).await?.filter(|a| a.status != "deleted") else {
        return Ok(failed(&item.agent, "NOT_FOUND", "agent not found"));
    };
    if !credentials::verify_for_agent(db, &agent.id, &item.api_key, now).await? {
        return Ok(failed(&agent.id, "UNAUTHORIZED", "the API key is not a valid key of this agent"));
    }
    match agent.owner_id.as_deref() {
        Some(o) if o == owner_id => {
            return Ok(AssignResult { agent_id: agent.id, status: "already_owned", error: None });
        }
        Some(_) => {
            return Ok(failed(&agent.id, "FORBIDDEN", "the agent belongs to another account"));
        }
        None => {}
    }
    let mut tx = db.begin().await?;
    if let Some(max) = max_agents_per_user {
        accounts::users::lock_for_update(db, &mut tx, owner_id).await?;
        if store::count_owned(&mut tx, owner_id).await? >= max {
            return Ok(failed(&agent.id, "PLAN_LIMIT_REACHED", "your plan allows no more agents"));
        }
    }
    if store::claim(&mut tx, &agent.id, owner_id, now).await? {
        tx.commit().await?;
        db.credentials_changed(); // its key's caller now has an owner
        return Ok(AssignResult { agent_id: agent.id, status: "assigned", error: None });
    }
    drop(tx);
    // Lost a race: a concurrent request of ours claimed it (silent success) or someone else did.
    match store::find(db, &agent.id).await?.and_then(|a| a.owner_id) {
        Some(o) if o == owner_id => Ok(AssignResult { agent_id: agent.id, status: "already_owned", error: None }),
        _ => Ok(failed(&agent.id, "FORBIDDEN", "the agent belongs to another account")),
    }
}
