//! Disputes: opened by the client while the money is held, tier-1 automatic refunds, evidence
//! from both parties, and resolution by an administrator (`refund`, `release` or `split`).

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::lifecycle::settle;
use super::model::{Actor, TaskRow};
use super::store;
use crate::agents;
use crate::agents::store::Outcome;
use crate::clock::{rfc3339, rfc3339_opt};
use crate::db::{Arg, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::money::Settlement;
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

async fn to_dispute(db: &Db, r: Row) -> sqlx::Result<Dispute> {
    let evidence: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, party, author_id, content, created_at FROM dispute_evidence WHERE dispute_id = $1 ORDER BY created_at, id",
    )
    .bind(&r.id)
    .fetch_all(db.pool())
    .await?;
    Ok(Dispute {
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
    })
}

async fn load_row(db: &Db, id: &str) -> sqlx::Result<Option<Row>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM disputes WHERE id = $1 OR task_id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

fn dispute_open() -> ApiError {
    ApiError::new(axum::http::StatusCode::CONFLICT, "DISPUTE_OPEN", "a dispute is already open on this task")
}

fn empty_output(task: &TaskRow) -> bool {
    match task.output.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        None => true,
        Some(Ok(serde_json::Value::Null)) => true,
        Some(Ok(serde_json::Value::String(s))) => s.trim().is_empty(),
        Some(Ok(serde_json::Value::Object(m))) => m.is_empty(),
        Some(Ok(serde_json::Value::Array(a))) => a.is_empty(),
        _ => false,
    }
}

/// Opens a dispute. A completed task with an empty output is refunded in full at once (tier 1);
/// anything else waits for an administrator with the money frozen.
pub async fn open(db: &Db, actor: &mut Actor, task_id: &str, reason: String, now: i64) -> ApiResult<Dispute> {
    let mut tx = db.begin().await?;
    let task = store::lock(db, &mut tx, task_id).await?.ok_or_else(|| ApiError::not_found("task"))?;
    actor.learn_ownership(&mut tx, &task).await?;
    if !actor.is_participant(&task) {
        return Err(ApiError::not_found("task"));
    }
    if !actor.is_client(&task) {
        return Err(ApiError::forbidden("only the client may open a dispute"));
    }
    let existing: Option<(String,)> =
        sqlx::query_as("SELECT status FROM disputes WHERE task_id = $1").bind(task_id).fetch_optional(&mut *tx).await?;
    if existing.is_some() || task.payment_status == "disputed" {
        return Err(dispute_open());
    }
    let disputable = matches!(task.status.as_str(), "claimed" | "in_progress" | "completed")
        && task.released_at.is_none()
        && matches!(task.payment_status.as_str(), "escrowed" | "not_required");
    if !disputable {
        return Err(ApiError::invalid_state("only a task whose money is still held can be disputed", &task.status));
    }
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO disputes (id, task_id, status, reason, opened_at) VALUES ($1, $2, 'open', $3, $4) ON CONFLICT (task_id) DO NOTHING",
    )
    .bind(&id)
    .bind(task_id)
    .bind(&reason)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(ApiError::from)
    .and_then(|r| if r.rows_affected() == 1 { Ok(()) } else { Err(dispute_open()) })?;
    store::event(&mut tx, task_id, "dispute_opened", None, json!({"dispute_id": id, "reason": reason}), now).await?;
    let tier1 = task.status == "completed" && empty_output(&task);
    let set = "payment_status = 'disputed', updated_at = ?";
    let task = match task.payment_status.as_str() {
        "escrowed" => {
            store::update_if(&mut tx, task_id, &[], &["escrowed"], set, vec![Arg::Int(now)]).await?.unwrap_or(task)
        }
        _ => task,
    };
    super::notify(&mut tx, &task, "task.disputed", now).await?;
    if tier1 {
        finish(&mut tx, &id, task, "refund", None, Some("tier 1: the task produced no output".into()), now).await?;
    }
    tx.commit().await?;
    let row = load_row(db, &id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    Ok(to_dispute(db, row).await?)
}

/// Applies an outcome: moves the money, adjusts the provider's reputation, closes the dispute.
#[allow(clippy::too_many_arguments)]
async fn finish(
    tx: &mut Tx,
    dispute_id: &str,
    task: TaskRow,
    outcome: &str,
    client_share_bps: Option<i64>,
    note: Option<String>,
    now: i64,
) -> ApiResult<()> {
    let price = task.price();
    let (settlement, payment_status, outcome_stats) = match outcome {
        "refund" => {
            (Settlement::refund(price), "refunded", Outcome { failed: 1, reputation_centi: -15, ..Outcome::default() })
        }
        "release" => (
            Settlement::release(price, task.fee_bps),
            "released",
            Outcome { completed: 1, reputation_centi: 10, ..Outcome::default() },
        ),
        _ => (
            Settlement::split(price, task.fee_bps, client_share_bps.unwrap_or(5000)),
            "split",
            Outcome { completed: 1, reputation_centi: -5, ..Outcome::default() },
        ),
    };
    let done = sqlx::query(
        "UPDATE disputes SET status = 'resolved', outcome = $1, client_share_bps = $2, note = $3, resolved_at = $4 \
         WHERE id = $5 AND status = 'open'",
    )
    .bind(outcome)
    .bind(client_share_bps)
    .bind(&note)
    .bind(now)
    .bind(dispute_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::invalid_state("this dispute is already resolved", "resolved"));
    }
    // The money first, from where it is now (the client's escrow or the provider's pending).
    if task.funds_held() {
        settle(tx, task.clone(), settlement, payment_status, now).await?;
    }
    // An unfinished task ends with the ruling: cancelled when refunded, completed otherwise.
    let ended = if task.status == "completed" || outcome != "refund" { "completed" } else { "cancelled" };
    let set = "status = ?, completed_at = COALESCE(completed_at, ?), updated_at = ?";
    store::update_if(tx, &task.id, &[], &[], set, vec![Arg::Text(ended.into()), Arg::Int(now), Arg::Int(now)]).await?;
    agents::store::record_outcome(tx, &task.provider_agent_id, outcome_stats, now).await?;
    let details =
        json!({"dispute_id": dispute_id, "outcome": outcome, "client_share_bps": client_share_bps, "note": note});
    store::event(tx, &task.id, "dispute_resolved", None, details, now).await?;
    Ok(())
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

/// An administrator's ruling (API or CLI).
pub async fn resolve(db: &Db, id: &str, req: ResolveRequest, now: i64) -> ApiResult<Dispute> {
    let outcome = req.outcome.unwrap_or_default().trim().to_ascii_lowercase();
    if !["refund", "release", "split"].contains(&outcome.as_str()) {
        return Err(ApiError::field("outcome", "must be refund, release or split"));
    }
    let share = match (outcome.as_str(), req.client_share_bps) {
        ("split", None) => Some(5000),
        ("split", Some(bps)) if (0..=10_000).contains(&bps) => Some(bps),
        ("split", Some(_)) => return Err(ApiError::field("client_share_bps", "must be from 0 to 10000")),
        _ => None,
    };
    let row = load_row(db, id).await?.ok_or_else(|| ApiError::not_found("dispute"))?;
    let mut tx = db.begin().await?;
    let task = store::lock(db, &mut tx, &row.task_id).await?.ok_or_else(|| ApiError::not_found("task"))?;
    finish(&mut tx, &row.id, task, &outcome, share, req.note.map(String::from), now).await?;
    tx.commit().await?;
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

pub async fn add_evidence(db: &Db, actor: &mut Actor, id: &str, content: String, now: i64) -> ApiResult<Dispute> {
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

/// Disputes on tasks the actor takes part in (all of them for administrators), newest first.
pub async fn list(
    db: &Db,
    actor: &mut Actor,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> ApiResult<Vec<Dispute>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM disputes WHERE ($1 = '' OR status = $1) ORDER BY opened_at DESC, id DESC"
    )))
    .bind(status.unwrap_or(""))
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let Some(task) = store::find(db, &row.task_id).await? else { continue };
        actor.learn_ownership(&mut *db.pool().acquire().await?, &task).await?;
        if actor.is_participant(&task) || actor.is_admin() {
            out.push(row);
        }
    }
    let page: Vec<Row> = out.into_iter().skip(offset as usize).take(limit as usize).collect();
    let mut disputes = Vec::with_capacity(page.len());
    for row in page {
        disputes.push(to_dispute(db, row).await?);
    }
    Ok(disputes)
}
