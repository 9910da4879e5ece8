//! What the marketplace reads instead of scanning agents: the listing (one row per active agent
//! and capability, with the sort keys copied) and the counters behind `/capabilities` and
//! `total_count`. Every agent change calls `sync` inside its own transaction, so the listing
//! and the counters commit or roll back with the change itself.

use std::collections::BTreeMap;

use super::model::AgentRow;
use crate::db::{Arg, Engine, Rows, SqlBuilder, Tx};

/// Counter rows per capability (and for the active total). Concurrent registrations offering
/// the same capability update different rows on PostgreSQL instead of queuing on one.
pub const SHARDS: u64 = 8;

/// An agent's counter shard: fixed for its life, spread by its (random) id.
pub fn shard_of(agent_id: &str) -> i64 {
    let hash = agent_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (hash % SHARDS) as i64
}

/// What an agent adds to the listing and the counters: nothing unless it is active.
struct Contribution {
    capabilities: Vec<String>,
    base_price: i64,
}

fn contribution(row: &AgentRow) -> Option<Contribution> {
    (row.status == "active").then(|| Contribution { capabilities: row.capabilities(), base_price: row.base_price })
}

/// Brings the listing and the counters from `before` (None for a new agent) to `after`.
pub async fn sync(tx: &mut Tx, before: Option<&AgentRow>, after: &AgentRow) -> sqlx::Result<()> {
    let old = before.and_then(contribution);
    let new = contribution(after);
    if old.is_none() && new.is_none() {
        return Ok(());
    }
    if before.is_some() {
        sqlx::query("DELETE FROM agent_capabilities WHERE agent_id = $1").bind(&after.id).execute(&mut **tx).await?;
    }
    // The rest writes three different tables, so it may travel as one statement on PostgreSQL
    // (`db::execute_all`): a registration's listing and counters cost one round trip.
    let mut writes = Vec::new();
    if let Some(new) = &new
        && !new.capabilities.is_empty()
    {
        let mut q = SqlBuilder::new(
            "INSERT INTO agent_capabilities (agent_id, capability, base_price, reputation_centi, tasks_completed, \
             created_at, has_callback, last_seen_at) VALUES ",
        );
        for (i, cap) in new.capabilities.iter().enumerate() {
            q.push(
                if i == 0 { "(?, ?, ?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?, ?, ?)" },
                [
                    Arg::Text(after.id.clone()),
                    Arg::Text(cap.clone()),
                    Arg::Int(after.base_price),
                    Arg::Int(after.reputation_centi),
                    Arg::Int(after.tasks_completed),
                    Arg::Int(after.created_at),
                    Arg::Int(after.has_callback),
                    Arg::Int(after.last_seen_at.unwrap_or(0)),
                ],
            );
        }
        writes.push(q);
    }
    let shard = shard_of(&after.id);
    // Per capability: (agents, price high part, price low part), old subtracted, new added.
    let mut deltas: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for (c, sign) in [(&old, -1), (&new, 1)] {
        let Some(c) = c else { continue };
        for cap in &c.capabilities {
            let d = deltas.entry(cap.clone()).or_default();
            d.0 += sign;
            d.1 += sign * (c.base_price / 100_000_000);
            d.2 += sign * (c.base_price % 100_000_000);
        }
    }
    deltas.retain(|_, d| *d != (0, 0, 0));
    if !deltas.is_empty() {
        // Sorted by capability, so two transactions lock the counter rows in the same order.
        let mut q = SqlBuilder::new(
            "INSERT INTO capability_summary (capability, shard, agent_count, price_sum_high, price_sum_low) VALUES ",
        );
        for (i, (cap, (count, high, low))) in deltas.iter().enumerate() {
            q.push(
                if i == 0 { "(?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?)" },
                [Arg::Text(cap.clone()), Arg::Int(shard), Arg::Int(*count), Arg::Int(*high), Arg::Int(*low)],
            );
        }
        q.push(
            " ON CONFLICT (capability, shard) DO UPDATE SET \
             agent_count = capability_summary.agent_count + excluded.agent_count, \
             price_sum_high = capability_summary.price_sum_high + excluded.price_sum_high, \
             price_sum_low = capability_summary.price_sum_low + excluded.price_sum_low",
            [],
        );
        writes.push(q);
    }
    let active_delta = i64::from(new.is_some()) - i64::from(old.is_some());
    if active_delta != 0 {
        let mut q = SqlBuilder::default();
        q.push(
            "INSERT INTO active_agent_count (shard, agents) VALUES (?, ?) \
             ON CONFLICT (shard) DO UPDATE SET agents = active_agent_count.agents + excluded.agents",
            [Arg::Int(shard), Arg::Int(active_delta)],
        );
        writes.push(q);
    }
    crate::db::execute_all(tx, writes).await?;
    Ok(())
}

/// `table`'s reputation after an outcome's `o.reputation_centi` is added, kept within 0–5:
/// the agents' update and the listing's compute it alike.
pub fn clamped_reputation(table: &str) -> String {
    let sum = format!("{table}.reputation_centi + o.reputation_centi");
    format!("CASE WHEN {sum} > 500 THEN 500 WHEN {sum} < 0 THEN 0 ELSE {sum} END")
}

/// Changes the listing's copies of the sort keys the task engine changes (reputation,
/// completed tasks) as the agents' update changes the originals
/// (`agents::store::outcomes_statements`): the two may run as one statement on PostgreSQL,
/// where this one could not read the agents' new values, so it applies the same change to
/// the same old values.
pub fn outcomes_statement(engine: Engine, outcomes: &Rows) -> SqlBuilder {
    let mut q = SqlBuilder::new(&format!(
        "UPDATE agent_capabilities SET tasks_completed = agent_capabilities.tasks_completed + o.completed, \
         reputation_centi = {} FROM ",
        clamped_reputation("agent_capabilities")
    ));
    q.push_rows(engine, outcomes, "o");
    q.push(" WHERE agent_capabilities.agent_id = o.id", []);
    q
}

/// Active agents in the marketplace (the counters, not a scan).
pub async fn active_count(pool: &sqlx::AnyPool) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT CAST(COALESCE(SUM(agents), 0) AS BIGINT) FROM active_agent_count")
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// Active agents offering `capability` (the counters, not a scan).
pub async fn capability_count(pool: &sqlx::AnyPool, capability: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(agent_count), 0) AS BIGINT) FROM capability_summary WHERE capability = $1",
    )
    .bind(capability)
    .fetch_one(pool)
    .await?;
    Ok(n)
}
