//! SQL for agents and their capability index. Nothing outside this slice touches these tables.

use super::model::{AgentFields, AgentRow, INITIAL_REPUTATION_CENTI};
pub use crate::db::{Arg, SqlBuilder};
use crate::db::{Col, Db, Engine, Rows, Tx};
use crate::money::Amount;

pub const AGENT_COLUMNS: &str = "id, did, name, description, owner_id, capabilities, pricing_model, base_price, \
     category, metadata, status, reputation_centi, tasks_completed, tasks_failed, rating_sum, rating_count, \
     has_callback, last_seen_at, created_at, updated_at";

pub struct NewAgentRow<'a> {
    pub id: &'a str,
    pub owner_id: Option<&'a str>,
    pub fields: &'a AgentFields,
    pub now: i64,
}

/// Inserts the agent; `None` when the DID is already taken.
pub async fn insert(tx: &mut Tx, new: NewAgentRow<'_>) -> sqlx::Result<Option<AgentRow>> {
    let f = new.fields;
    let caps = f.capabilities.clone().unwrap_or_default();
    let metadata = f.metadata.clone().unwrap_or_default();
    let row: Option<AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO agents (id, did, name, description, owner_id, capabilities, pricing_model, base_price, category, \
         metadata, status, reputation_centi, has_callback, last_seen_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14) \
         ON CONFLICT (did) DO NOTHING RETURNING {AGENT_COLUMNS}"
    )))
    .bind(new.id)
    .bind(f.did.as_deref().unwrap_or_default())
    .bind(f.name.as_deref().unwrap_or_default())
    .bind(f.description.clone().flatten())
    .bind(new.owner_id)
    .bind(serde_json::to_string(&caps).unwrap_or_else(|_| "[]".into()))
    .bind(f.pricing_model.as_deref().unwrap_or("fixed"))
    .bind(f.base_price.unwrap_or(Amount::ZERO).units())
    .bind(f.category.clone().flatten())
    .bind(serde_json::Value::Object(metadata.clone()).to_string())
    .bind(f.status.as_deref().unwrap_or("active"))
    .bind(INITIAL_REPUTATION_CENTI)
    .bind(metadata.contains_key("callback_url") as i64)
    .bind(new.now)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = &row {
        super::listing::sync(tx, None, row).await?;
    }
    Ok(row)
}

/// Finds by UUID or by DID (already percent-decoded).
pub async fn find(db: &Db, id_or_did: &str) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1 OR did = $1")))
        .bind(id_or_did)
        .fetch_optional(db.pool())
        .await
}

pub async fn find_in_tx(db: &Db, tx: &mut Tx, id: &str) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1{}", db.for_update())))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// Writes the changed fields of `current` merged with `changes`.
pub async fn update(tx: &mut Tx, current: &AgentRow, changes: &AgentFields, now: i64) -> sqlx::Result<AgentRow> {
    let caps = changes.capabilities.clone();
    let metadata = changes.metadata.clone().map(serde_json::Value::Object);
    let has_callback = match &metadata {
        Some(m) => m.get("callback_url").is_some() as i64,
        None => current.has_callback,
    };
    let row: AgentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE agents SET name = $1, description = $2, capabilities = $3, pricing_model = $4, base_price = $5, \
         category = $6, metadata = $7, status = $8, has_callback = $9, updated_at = $10 WHERE id = $11 \
         RETURNING {AGENT_COLUMNS}"
    )))
    .bind(changes.name.clone().unwrap_or_else(|| current.name.clone()))
    .bind(changes.description.clone().unwrap_or_else(|| current.description.clone()))
    .bind(
        caps.as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_default())
            .unwrap_or_else(|| current.capabilities.clone()),
    )
    .bind(changes.pricing_model.clone().unwrap_or_else(|| current.pricing_model.clone()))
    .bind(changes.base_price.map(Amount::units).unwrap_or(current.base_price))
    .bind(changes.category.clone().unwrap_or_else(|| current.category.clone()))
    .bind(metadata.map(|m| m.to_string()).unwrap_or_else(|| current.metadata.clone()))
    .bind(changes.status.clone().unwrap_or_else(|| current.status.clone()))
    .bind(has_callback)
    .bind(now)
    .bind(&current.id)
    .fetch_one(&mut **tx)
    .await?;
    super::listing::sync(tx, Some(current), &row).await?;
    Ok(row)
}

pub async fn mark_deleted(tx: &mut Tx, id: &str, now: i64) -> sqlx::Result<()> {
    let before: Option<AgentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1{}",
        crate::db::for_update_in(tx)
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(before) = before else { return Ok(()) };
    let after: AgentRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE agents SET status = 'deleted', updated_at = $1 WHERE id = $2 RETURNING {AGENT_COLUMNS}"
    )))
    .bind(now)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    super::listing::sync(tx, Some(&before), &after).await
}

/// Claims an ownerless agent; false if someone owns it by now.
pub async fn claim(tx: &mut Tx, id: &str, owner_id: &str, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE agents SET owner_id = $1, updated_at = $2 WHERE id = $3 AND owner_id IS NULL AND status <> 'deleted'",
    )
    .bind(owner_id)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn count_owned(conn: &mut sqlx::AnyConnection, owner_id: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM agents WHERE owner_id = $1 AND status <> 'deleted'")
        .bind(owner_id)
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// The order of a user's agents: newest first.
pub fn owned_order() -> crate::http::keyset::Ordering {
    crate::http::keyset::Ordering::newest_first("agents.owned", "created_at", "id")
}

/// One page of a user's agents, drafts included, newest first (`GET /accounts/me/agents` and the
/// dashboard's list; `agents_by_owner_recent` serves it from the cursor on).
pub async fn list_owned_page(
    db: &Db,
    owner_id: &str,
    page: &crate::http::keyset::Page,
) -> sqlx::Result<(Vec<AgentRow>, crate::http::envelope::Pagination)> {
    let mut q = SqlBuilder::default();
    q.push(" FROM agents WHERE owner_id = ? AND status <> 'deleted'", [Arg::Text(owner_id.to_string())]);
    owned_order()
        .fetch(db, AGENT_COLUMNS, q, page, |a: &AgentRow| crate::http::keyset::newest_key(a.created_at, &a.id))
        .await
}

pub async fn list_owned(db: &Db, owner_id: &str) -> sqlx::Result<Vec<AgentRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE owner_id = $1 AND status <> 'deleted' ORDER BY created_at DESC, id DESC"
    )))
    .bind(owner_id)
    .fetch_all(db.pool())
    .await
}

#[derive(Debug)]
pub struct CapabilityRow {
    pub capability: String,
    pub agent_count: i64,
    /// The exact sum of the agents' base prices (it may not fit an `i64`).
    pub price_sum: i128,
}

/// Capabilities with active agents, most offered first, from the maintained counters.
pub async fn capabilities(db: &Db) -> sqlx::Result<Vec<CapabilityRow>> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT capability, CAST(SUM(agent_count) AS BIGINT), CAST(SUM(price_sum_high) AS BIGINT), \
         CAST(SUM(price_sum_low) AS BIGINT) FROM capability_summary GROUP BY capability \
         HAVING SUM(agent_count) > 0 ORDER BY SUM(agent_count) DESC, capability",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(capability, agent_count, high, low)| CapabilityRow {
            capability,
            agent_count,
            price_sum: crate::db::exact_total(high, low),
        })
        .collect())
}

/// Which of `ids` belong to `owner_id` (for deciding who may act on a task).
pub async fn owned_among(conn: &mut sqlx::AnyConnection, owner_id: &str, ids: [&str; 2]) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM agents WHERE owner_id = $1 AND id IN ($2, $3)")
        .bind(owner_id)
        .bind(ids[0])
        .bind(ids[1])
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Everything a user owns (for task visibility).
pub async fn owned_ids(db: &Db, owner_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM agents WHERE owner_id = $1").bind(owner_id).fetch_all(db.pool()).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// A settled task's effect on its provider: counters, reputation (hundredths, kept in 0–5) and
/// an optional 1–5 rating.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub completed: i64,
    pub failed: i64,
    pub reputation_centi: i64,
    pub rating: Option<i64>,
}

/// The agents named by these UUIDs or DIDs, in one query (the task engine's batches).
pub async fn find_many(tx: &mut Tx, refs: &[String]) -> sqlx::Result<Vec<AgentRow>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    find_many_statement(crate::db::engine_of(tx), refs).query_as().fetch_all(&mut **tx).await
}

/// The statement of `find_many` (not run). `refs` must not be empty.
pub fn find_many_statement(engine: Engine, refs: &[String]) -> SqlBuilder {
    let mut q = SqlBuilder::new(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE "));
    q.push_in(engine, "id", refs);
    q.push(" OR ", []);
    q.push_in(engine, "did", refs);
    q
}

/// Several agents' outcomes: each agent's changes are summed, the reputation kept within
/// 0–5 (at a bound, the sum of one batch is clamped once, not after each outcome), and the
/// discovery listing's copies changed alike.
pub async fn record_outcomes(tx: &mut Tx, outcomes: &[(String, Outcome)], now: i64) -> sqlx::Result<()> {
    let statements = outcomes_statements(tx, outcomes, now);
    crate::db::execute_all(tx, statements).await.map(drop)
}

const OUTCOME: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("completed", Col::Int),
    ("failed", Col::Int),
    ("reputation_centi", Col::Int),
    ("rating_sum", Col::Int),
    ("rating_count", Col::Int),
];

/// The statements `record_outcomes` runs (not run; none if there is nothing to count): the
/// agents' update, then the listing's.
pub fn outcomes_statements(tx: &Tx, outcomes: &[(String, Outcome)], now: i64) -> Vec<SqlBuilder> {
    #[derive(Default)]
    struct Sum {
        completed: i64,
        failed: i64,
        reputation_centi: i64,
        rating_sum: i64,
        rating_count: i64,
    }
    let mut summed: std::collections::BTreeMap<&str, Sum> = std::collections::BTreeMap::new();
    for (agent, o) in outcomes {
        let s = summed.entry(agent.as_str()).or_default();
        s.completed += o.completed;
        s.failed += o.failed;
        s.reputation_centi += o.reputation_centi;
        if let Some(r) = o.rating {
            s.rating_sum += r;
            s.rating_count += 1;
        }
    }
    if summed.is_empty() {
        return Vec::new();
    }
    let engine = crate::db::engine_of(tx);
    let mut rows = Rows::new(OUTCOME);
    for (agent, s) in &summed {
        rows.push([
            Arg::Text(agent.to_string()),
            Arg::Int(s.completed),
            Arg::Int(s.failed),
            Arg::Int(s.reputation_centi),
            Arg::Int(s.rating_sum),
            Arg::Int(s.rating_count),
        ]);
    }
    let mut q = SqlBuilder::new(&format!(
        "UPDATE agents SET tasks_completed = agents.tasks_completed + o.completed, \
         tasks_failed = agents.tasks_failed + o.failed, rating_sum = agents.rating_sum + o.rating_sum, \
         rating_count = agents.rating_count + o.rating_count, reputation_centi = {}",
        super::listing::clamped_reputation("agents")
    ));
    q.push(", updated_at = ? FROM ", [Arg::Int(now)]);
    q.push_rows(engine, &rows, "o");
    // The rows are locked in id order first, so two batches changing the same agents on
    // PostgreSQL wait for each other instead of deadlocking.
    q.push(" WHERE agents.id = o.id AND agents.id IN (SELECT id FROM agents WHERE ", []);
    let ids: Vec<String> = summed.keys().map(|a| a.to_string()).collect();
    q.push_in(engine, "id", &ids);
    q.push(&format!(" ORDER BY id{})", crate::db::for_update_in(tx)), []);
    vec![q, super::listing::outcomes_statement(engine, &rows)]
}
