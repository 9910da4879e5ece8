//! Agent API keys (`agk_…`). An agent may hold several; each is shown once.

use sqlx::FromRow;

use crate::auth::Caller;
use crate::auth::keys::{self, KeyInfo, KeyKind, PlainSecret};
use crate::auth::scope::Rights;
use crate::clock::{rfc3339, rfc3339_opt};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult};

#[derive(Debug, FromRow)]
struct CredentialRow {
    id: String,
    agent_id: String,
    name: String,
    prefix: String,
    last4: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, agent_id, name, prefix, last4, created_at, last_used_at, expires_at, revoked_at";

impl CredentialRow {
    fn info(self) -> KeyInfo {
        KeyInfo {
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            last4: self.last4,
            scopes: vec!["*".into()],
            max_price_per_hire: None,
            created_at: rfc3339(self.created_at),
            last_used_at: rfc3339_opt(self.last_used_at),
            expires_at: rfc3339_opt(self.expires_at),
            revoked_at: rfc3339_opt(self.revoked_at),
        }
    }
}

/// An agent key as the caller resolver sees it.
#[derive(Debug, FromRow)]
pub struct AgentKeyAuth {
    pub id: String,
    pub agent_id: String,
    pub agent_did: String,
    pub owner_id: Option<String>,
    pub agent_status: String,
    pub reputation_centi: i64,
    pub last_used_at: Option<i64>,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl AgentKeyAuth {
    pub fn is_usable(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now) && self.agent_status != "deleted"
    }
}

const AUTH_SELECT: &str = "SELECT c.id, c.agent_id, a.did AS agent_did, a.owner_id, a.status AS agent_status, a.reputation_centi, \
     c.last_used_at, c.expires_at, c.revoked_at FROM agent_credentials c JOIN agents a ON a.id = c.agent_id";

pub async fn find_by_hash(db: &Db, key_hash: &str) -> sqlx::Result<Option<AgentKeyAuth>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{AUTH_SELECT} WHERE c.key_hash = $1")))
        .bind(key_hash)
        .fetch_optional(db.pool())
        .await
}

pub async fn find_by_id(db: &Db, id: &str) -> sqlx::Result<Option<AgentKeyAuth>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{AUTH_SELECT} WHERE c.id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// Records use of the key and that the agent was seen; throttled by the caller.
pub async fn touch(db: &Db, id: &str, agent_id: &str, now: i64) {
    let result = async {
        sqlx::query("UPDATE agent_credentials SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(db.writer())
            .await?;
        sqlx::query("UPDATE agents SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(agent_id)
            .execute(db.writer())
            .await?;
        // The listing's copy, for sort_by=availability.
        sqlx::query("UPDATE agent_capabilities SET last_seen_at = $1 WHERE agent_id = $2")
            .bind(now)
            .bind(agent_id)
            .execute(db.writer())
            .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record agent key use");
    }
}

pub async fn insert(tx: &mut Tx, agent_id: &str, name: &str, now: i64) -> sqlx::Result<(KeyInfo, PlainSecret)> {
    let key = keys::generate(KeyKind::Agent);
    let row: CredentialRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO agent_credentials (id, agent_id, name, key_hash, prefix, last4, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(agent_id)
    .bind(name)
    .bind(&key.hash)
    .bind(&key.display_prefix)
    .bind(&key.last4)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.info(), key.plaintext))
}

/// An agent key holds every right over its agent, so only a full-rights credential that is not
/// a session may mint one.
pub async fn create(db: &Db, by: &Caller, agent_id: &str, name: &str, now: i64) -> ApiResult<(KeyInfo, PlainSecret)> {
    by.may_mint(&Rights::full())?;
    let mut tx = db.begin().await?;
    let created = insert(&mut tx, agent_id, name, now).await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn list(db: &Db, agent_id: &str) -> sqlx::Result<Vec<KeyInfo>> {
    let rows: Vec<CredentialRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM agent_credentials WHERE agent_id = $1 ORDER BY created_at DESC, id DESC"
    )))
    .bind(agent_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(CredentialRow::info).collect())
}

async fn owned_row(tx: &mut Tx, agent_id: &str, key_id: &str) -> ApiResult<CredentialRow> {
    let row: Option<CredentialRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agent_credentials WHERE id = $1")))
            .bind(key_id)
            .fetch_optional(&mut **tx)
            .await?;
    row.filter(|r| r.agent_id == agent_id).ok_or_else(|| ApiError::not_found("credential"))
}

pub async fn revoke(db: &Db, by: &Caller, agent_id: &str, key_id: &str, now: i64) -> ApiResult<KeyInfo> {
    by.may_manage(&Rights::full())?;
    let mut tx = db.begin().await?;
    owned_row(&mut tx, agent_id, key_id).await?;
    sqlx::query("UPDATE agent_credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    let row = owned_row(&mut tx, agent_id, key_id).await?;
    tx.commit().await?;
    Ok(row.info())
}

/// Replaces a key: the new one gets the same name, the old one is revoked at once.
pub async fn rotate(db: &Db, by: &Caller, agent_id: &str, key_id: &str, now: i64) -> ApiResult<(KeyInfo, PlainSecret)> {
    by.may_mint(&Rights::full())?;
    let mut tx = db.begin().await?;
    let old = owned_row(&mut tx, agent_id, key_id).await?;
    let revoked = sqlx::query("UPDATE agent_credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    if revoked.rows_affected() == 0 {
        return Err(ApiError::invalid_state("this key is already revoked", "revoked"));
    }
    let created = insert(&mut tx, agent_id, &old.name, now).await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn revoke_all(tx: &mut Tx, agent_id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE agent_credentials SET revoked_at = $1 WHERE agent_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(agent_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether `token` is a live key of `agent_id` (used by the assign flow).
pub async fn verify_for_agent(db: &Db, agent_id: &str, token: &str, now: i64) -> sqlx::Result<bool> {
    if KeyKind::of(token) != Some(KeyKind::Agent) {
        return Ok(false);
    }
    Ok(find_by_hash(db, &keys::hash(token)).await?.is_some_and(|k| k.agent_id == agent_id && k.is_usable(now)))
}
