//! Which hirings changed, for every server of a deployment to hear (MCP subscriptions). The
//! engine announces each hiring it changes (`Engine::submit`), and so do the writes beside it
//! (messages, stream chunks, artifacts); announcements wait in memory until the next flush
//! writes the ones someone listens for into `hiring_changes` in one statement, where every
//! server's listener reads them. Nothing is written while nobody listens.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use crate::db::{Arg, Db, IN_CHUNK, SqlBuilder};
use crate::tasks::model::TaskRow;

/// One changed hiring, and who hears about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub hiring_id: String,
    pub client_principal: String,
    pub provider_agent_id: String,
    /// When it was written (0 until then).
    pub created_at: i64,
}

impl Change {
    /// The subscription targets this change concerns: the hiring itself, its hirer's hirings,
    /// its agent's queue (`mcp::resources` names them the same way).
    pub fn targets(&self) -> [String; 3] {
        [
            hiring_target(&self.hiring_id),
            client_target(&self.client_principal),
            provider_target(&self.provider_agent_id),
        ]
    }
}

pub fn hiring_target(hiring_id: &str) -> String {
    format!("hiring:{hiring_id}")
}

pub fn client_target(principal: &str) -> String {
    format!("client:{principal}")
}

pub fn provider_target(agent_id: &str) -> String {
    format!("provider:{agent_id}")
}

/// Announcements not written yet, by hiring (a second change before the flush adds nothing).
#[derive(Debug, Default)]
pub struct HiringChanges {
    pending: Mutex<HashMap<String, Change>>,
}

impl HiringChanges {
    /// Notes that `task` changed, if it is a hiring.
    pub fn announce(&self, task: &TaskRow) {
        if task.kind != "hiring" {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.entry(task.id.clone()).or_insert_with(|| Change {
            id: uuid::Uuid::now_v7().to_string(),
            hiring_id: task.id.clone(),
            client_principal: task.client_principal.clone(),
            provider_agent_id: task.provider_agent_id.clone(),
            created_at: 0,
        });
    }

    /// Writes the announcements some subscription listens for (as the subscriptions are now)
    /// and forgets the rest; returns how many were written.
    pub async fn flush(&self, db: &Db, now: i64) -> sqlx::Result<usize> {
        let announced = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if announced.is_empty() {
            return Ok(0);
        }
        let targets: BTreeSet<String> = announced.values().flat_map(Change::targets).collect();
        let targets: Vec<String> = targets.into_iter().collect();
        let mut listened = HashSet::new();
        for chunk in targets.chunks(IN_CHUNK) {
            let mut q = SqlBuilder::new("SELECT DISTINCT target FROM mcp_subscriptions WHERE ");
            q.push_in(db.engine(), "target", chunk);
            let rows: Vec<(String,)> = q.query_as().fetch_all(db.pool()).await?;
            listened.extend(rows.into_iter().map(|(t,)| t));
        }
        let heard: Vec<&Change> =
            announced.values().filter(|c| c.targets().iter().any(|t| listened.contains(t))).collect();
        for chunk in heard.chunks(IN_CHUNK / 5) {
            let mut insert = SqlBuilder::new(
                "INSERT INTO hiring_changes (id, hiring_id, client_principal, provider_agent_id, created_at) VALUES ",
            );
            for (i, c) in chunk.iter().enumerate() {
                let row = [
                    Arg::Text(c.id.clone()),
                    Arg::Text(c.hiring_id.clone()),
                    Arg::Text(c.client_principal.clone()),
                    Arg::Text(c.provider_agent_id.clone()),
                    Arg::Int(now),
                ];
                insert.push(if i == 0 { "(?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?)" }, row);
            }
            insert.query().execute(db.writer()).await?;
        }
        Ok(heard.len())
    }
}

/// The changes written at or after `since` (ms), oldest first.
pub async fn since(db: &Db, since: i64) -> sqlx::Result<Vec<Change>> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, hiring_id, client_principal, provider_agent_id, created_at FROM hiring_changes \
         WHERE created_at >= $1 ORDER BY created_at, id",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, hiring_id, client_principal, provider_agent_id, created_at)| Change {
            id,
            hiring_id,
            client_principal,
            provider_agent_id,
            created_at,
        })
        .collect())
}

/// Drops the changes written before `before` (every listener has read them by then).
pub async fn purge(db: &Db, before: i64) -> sqlx::Result<u64> {
    let done =
        sqlx::query("DELETE FROM hiring_changes WHERE created_at < $1").bind(before).execute(db.writer()).await?;
    Ok(done.rows_affected())
}
