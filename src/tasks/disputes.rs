//! Disputes: opened by the client while the money is held, tier-1 automatic refunds, evidence
//! from both parties, and resolution by an administrator (`refund`, `release` or `split`).

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::engine::{Command, Engine};
use super::model::Actor;
use super::store;
use crate::clock::{rfc3339, rfc3339_opt};
use crate::db::{Arg, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::http::envelope::Pagination;
use crate::http::keyset::{self, Ordering, Page};
use crate::text::{Line, Text};

#[derive(Debug, Serialize, ToSchema)]
pub struct Evidence {
    pub id: String,
    /// `client`, `provider` or `admin`.
    pub party: String,
    pub author_id: String,
    pub content: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dispute {
    pub id: String,
    pub task_id: String,
    /// `open` or `resolved`.
    pub status: String,
    pub reason: String,
    /// `refund`, `release` or `split` once resolved.
    pub outcome: Option<String>,
    pub client_share_bps: Option<i64>,
    pub note: Option<String>,
    pub evidence: Vec<Evidence>,
    pub opened_at: String,
    pub resolved_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    task_id: String,
    status: String,
    reason: String,
    outcome: Option<String>,
    client_share_bps: Option<i64>,
    note: Option<String>,
    opened_at: i64,
    resolved_at: Option<i64>,
}

const COLUMNS: &str = "id, task_id, status, reason, outcome, client_share_bps, note, opened_at, resolved_at";

/// `(dispute id, evidence id, party, author, content, created_at)`.
type EvidenceRow = (String, String, String, String, String, i64);

async fn to_dispute(db: &Db, r: Row) -> sqlx::Result<Dispute> {
    let evidence: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, party, author_id, content, created_at FROM dispute_evidence WHERE dispute_id = $1 ORDER BY created_at, id",
    )
    .bind(&r.id)
    .fetch_all(db.pool())
    .await?;
    Ok(dispute_of(r, evidence))
}

fn dispute_of(r: Row, evidence: Vec<(String, String, String, String, i64)>) -> Dispute {
    Dispute {
        evidence: evidence
            .into_iter()
            .map(|(id, party, author_id, content, at)| Evidence {
                id,
                party,
                author_id,
                content,
                created_at: rfc3339(at),
            })
            .collect(),
        id: r.id,
        task_id: r.task_id,
        status: r.status,
        reason: r.reason,
        outcome: r.outcome,
        client_share_bps: r.client_share_bps,
        note: r.note,
        opened_at: rfc3339(r.opened_at),
        resolved_at: rfc3339_opt(r.resolved_at),
    }
}

async fn load_row(db: &Db, id: &str) -> sqlx::Result<Option<Row>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM disputes WHERE id = $1 OR task_id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// Opens a dispute through the engine. A completed task with an empty output is refunded in
/// full at once (tier 1); anything else waits for an administrator with the money frozen.
pub async fn open(
    db: &Db,
    engine: &Engine,
    actor: &Actor,
    task_id: &str,
    reason: Option<String>,
) -> ApiResult<Dispute> {
    let command = Command::open_dispute(reason)?;
    engine.act(actor, task_id, command).await?;
    let row = load_row(db, task_id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    Ok(to_dispute(db, row).await?)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ResolveRequest {
    /// `refund`, `release` or `split`.
    #[schema(required = true, schema_with = crate::openapi::choice::ruling)]
    pub outcome: Option<Line>,
    /// For `split`: the client's share of the price in basis points (default 5000).
    #[schema(minimum = 0, maximum = 10000)]
    pub client_share_bps: Option<i64>,
    pub note: Option<Text>,
}

/// An administrator's ruling (API, dashboard or CLI), decided by the engine.
pub async fn resolve(db: &Db, engine: &Engine, id: &str, req: ResolveRequest) -> ApiResult<Dispute> {
    let command = Command::rule(req.outcome.as_deref(), req.client_share_bps, req.note.map(String::from))?;
    let row = load_row(db, id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    engine.act(&Actor::Admin, &row.task_id, command).await?;
    let row = load_row(db, &row.id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    Ok(to_dispute(db, row).await?)
}

/// A dispute the actor may see (its task's participants and administrators).
pub async fn get(db: &Db, actor: &mut Actor, id: &str) -> ApiResult<Dispute> {
    let row = load_row(db, id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    let task = store::find(db, &row.task_id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    actor.learn_ownership(&mut *db.pool().acquire().await?, &task).await?;
    if !(actor.is_participant(&task) || actor.is_admin()) {
        return Err(ApiError::not_found("dispute"));
    }
    Ok(to_dispute(db, row).await?)
}

/// Evidence from either party (or an administrator) while the dispute is open: `content`
/// 1–10,000 characters.
pub async fn add_evidence(
    db: &Db,
    actor: &mut Actor,
    id: &str,
    content: Option<String>,
    now: i64,
) -> ApiResult<Dispute> {
    let content = content.map(|c| c.trim().to_string()).unwrap_or_default();
    if content.is_empty() || content.chars().count() > 10_000 {
        return Err(ApiError::field("content", "is required, at most 10000 characters"));
    }
    let row = load_row(db, id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    let task = store::find(db, &row.task_id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    actor.learn_ownership(&mut *db.pool().acquire().await?, &task).await?;
    let party = if actor.is_client(&task) {
        "client"
    } else if actor.is_provider(&task) {
        "provider"
    } else if actor.is_admin() {
        "admin"
    } else {
        return Err(ApiError::not_found("dispute"));
    };
    if row.status != "open" {
        return Err(ApiError::invalid_state("evidence closes when the dispute is resolved", &row.status));
    }
    let caller = actor.caller().ok_or_else(|| ApiError::forbidden("evidence comes from a caller"))?;
    let author = caller
        .agent
        .as_ref()
        .map(|a| a.id.clone())
        .or_else(|| caller.user.as_ref().map(|u| u.id.clone()))
        .unwrap_or_default();
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO dispute_evidence (id, dispute_id, party, author_id, content, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&row.id)
        .bind(party)
        .bind(&author)
        .bind(&content)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    store::event(&mut tx, &task.id, "dispute_evidence_added", None, json!({"dispute_id": row.id, "party": party}), now)
        .await?;
    tx.commit().await?;
    get(db, actor, &row.id).await
}

/// The order of the disputes list: newest first.
pub fn order() -> Ordering {
    Ordering::newest_first("disputes", "d.opened_at", "d.id")
}

/// Disputes on tasks the actor takes part in (all of them for administrators), newest first,
/// with the pagination block. One query for the page (who takes part is decided in SQL, as
/// `Actor::is_participant` does), one capped count and one query for the page's evidence.
pub async fn list(
    db: &Db,
    actor: &mut Actor,
    status: Option<&str>,
    page: &Page,
) -> ApiResult<(Vec<Dispute>, Pagination)> {
    let mut q = crate::db::SqlBuilder::new(" FROM disputes d JOIN tasks t ON t.id = d.task_id WHERE 1 = 1");
    if let Some(status) = status {
        q.push(" AND d.status = ?", [Arg::Text(status.to_string())]);
    }
    if !actor.is_admin() {
        q.push(" AND (1 = 0", []);
        if let Some(caller) = actor.caller() {
            if let Some(agent) = &caller.agent {
                q.push(
                    " OR t.client_agent_id = ? OR t.provider_agent_id = ?",
                    [Arg::Text(agent.id.clone()), Arg::Text(agent.id.clone())],
                );
            }
            if let Some(user) = &caller.user {
                if caller.agent.is_none() {
                    q.push(" OR t.client_user_id = ?", [Arg::Text(user.id.clone())]);
                }
                q.push(
                    " OR t.client_agent_id IN (SELECT id FROM agents WHERE owner_id = ?) \
                     OR t.provider_agent_id IN (SELECT id FROM agents WHERE owner_id = ?)",
                    [Arg::Text(user.id.clone()), Arg::Text(user.id.clone())],
                );
            }
        }
        q.push(")", []);
    }
    let columns = COLUMNS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ");
    let (rows, pagination) =
        order().fetch(db, &columns, q, page, |r: &Row| keyset::newest_key(r.opened_at, &r.id)).await?;
    if rows.is_empty() {
        return Ok((Vec::new(), pagination));
    }
    let mut e = crate::db::SqlBuilder::new(
        "SELECT dispute_id, id, party, author_id, content, created_at FROM dispute_evidence WHERE dispute_id IN (",
    );
    for (i, r) in rows.iter().enumerate() {
        e.push(if i == 0 { "?" } else { ", ?" }, [Arg::Text(r.id.clone())]);
    }
    e.push(") ORDER BY created_at, id", []);
    let evidence: Vec<EvidenceRow> = e.query_as().fetch_all(db.pool()).await?;
    let disputes = rows
        .into_iter()
        .map(|r| {
            let mine = evidence
                .iter()
                .filter(|(d, ..)| *d == r.id)
                .map(|(_, id, party, author, content, at)| {
                    (id.clone(), party.clone(), author.clone(), content.clone(), *at)
                })
                .collect();
            dispute_of(r, mine)
        })
        .collect();
    Ok((disputes, pagination))
}

/// The disputes of these tasks as `(task id, dispute id, open)`, read inside the engine's batch.
pub(crate) async fn of_tasks(tx: &mut Tx, task_ids: &[String]) -> sqlx::Result<Vec<(String, String, bool)>> {
    if task_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = crate::db::SqlBuilder::new("SELECT task_id, id, status FROM disputes WHERE task_id IN (");
    for (i, id) in task_ids.iter().enumerate() {
        q.push(if i == 0 { "?" } else { ", ?" }, [Arg::Text(id.clone())]);
    }
    q.push(")", []);
    let rows: Vec<(String, String, String)> = q.query_as().fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(|(task, id, status)| (task, id, status == "open")).collect())
}

/// Writes a batch's dispute changes (openings and rulings).
pub(crate) async fn write_changes(
    tx: &mut Tx,
    changes: &[(String, super::engine::effects::DisputeChange)],
    now: i64,
) -> sqlx::Result<()> {
    use super::engine::effects::DisputeChange;
    for (task_id, change) in changes {
        let (id, reason, ruling) = match change {
            DisputeChange::Open { id, reason } => (id, Some(reason), None),
            DisputeChange::OpenResolved { id, reason, outcome, client_share_bps, note } => {
                (id, Some(reason), Some((outcome, client_share_bps, note)))
            }
            DisputeChange::Resolve { id, outcome, client_share_bps, note } => {
                (id, None, Some((outcome, client_share_bps, note)))
            }
        };
        if let Some(reason) = reason {
            sqlx::query(
                "INSERT INTO disputes (id, task_id, status, reason, opened_at) VALUES ($1, $2, 'open', $3, $4)",
            )
            .bind(id)
            .bind(task_id)
            .bind(reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        if let Some((outcome, share, note)) = ruling {
            let resolved = sqlx::query(
                "UPDATE disputes SET status = 'resolved', outcome = $1, client_share_bps = $2, note = $3, resolved_at = $4 \
                 WHERE id = $5 AND status = 'open'",
            )
            .bind(outcome.as_str())
            .bind(*share)
            .bind(note)
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            // The task's lock orders rulings; a dispute resolved meanwhile means the batch read
            // stale state and must be decided again.
            if resolved.rows_affected() != 1 {
                return Err(sqlx::Error::Protocol(format!("dispute {id} changed under its task's lock")));
            }
        }
    }
    Ok(())
}
