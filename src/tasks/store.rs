//! SQL for tasks, their timeline, attempts and messages. Nothing outside this slice touches
//! these tables.

use serde::Serialize;
use utoipa::ToSchema;

use super::model::{HiringStatus, TASK_COLUMNS, TaskRow};
use crate::clock::rfc3339;
use crate::db::{Arg, Col, Db, Engine, Rows, SqlBuilder, Tx};
use crate::http::envelope::Pagination;
use crate::http::keyset::{self, Ordering, Page};

/// The database refuses a task state the engine does not know (`Status`, `PaymentStatus`).
pub async fn ensure_states(db: &Db) -> anyhow::Result<()> {
    db.ensure_one_of("tasks", "status", &super::model::Status::names()).await?;
    db.ensure_one_of("tasks", "payment_status", &super::model::PaymentStatus::names()).await
}

pub async fn find(db: &Db, id: &str) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

pub async fn event(
    tx: &mut Tx,
    task_id: &str,
    event_type: &str,
    progress: Option<(i64, Option<&str>)>,
    details: serde_json::Value,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO task_events (id, task_id, event_type, progress_percent, progress_message, details, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(task_id)
    .bind(event_type)
    .bind(progress.map(|p| p.0))
    .bind(progress.and_then(|p| p.1.map(str::to_string)))
    .bind(details.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    pub event_type: String,
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_percent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_message: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// `(event_type, progress_percent, progress_message, details, created_at)`.
type EventRow = (String, Option<i64>, Option<String>, String, i64);

pub async fn timeline(db: &Db, task_id: &str) -> sqlx::Result<Vec<TimelineEvent>> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT event_type, progress_percent, progress_message, details, created_at FROM task_events \
         WHERE task_id = $1 ORDER BY created_at, id",
    )
    .bind(task_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(event_type, progress_percent, progress_message, details, at)| TimelineEvent {
            event_type,
            timestamp: rfc3339(at),
            progress_percent,
            progress_message,
            details: serde_json::from_str(&details).unwrap_or_default(),
        })
        .collect())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub id: String,
    pub status: String,
    pub provider_agent_id: String,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub error_reason: Option<String>,
}

/// Each provider's go at the task, derived from the timeline: a claim opens an attempt; the
/// completion, failure, cancellation, reassignment or dispute ruling that follows closes it.
pub async fn attempts(db: &Db, task_id: &str) -> sqlx::Result<Vec<Attempt>> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT id, event_type, details, created_at FROM task_events WHERE task_id = $1 ORDER BY created_at, id",
    )
    .bind(task_id)
    .fetch_all(db.pool())
    .await?;
    let mut provider: Option<String> = None;
    let mut out: Vec<Attempt> = Vec::new();
    for (id, event_type, details, at) in rows {
        let details: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
        if let Some(p) = details["provider_agent_id"].as_str() {
            provider = Some(p.to_string());
        }
        let open = out.last().is_some_and(|a| a.status == "in_progress");
        let (status, error) = match event_type.as_str() {
            "task_claimed" => {
                out.push(Attempt {
                    id,
                    status: "in_progress".into(),
                    provider_agent_id: provider.clone().unwrap_or_default(),
                    created_at: rfc3339(at),
                    completed_at: None,
                    error_reason: None,
                });
                continue;
            }
            "task_completed" => ("completed", None),
            "task_failed" => ("failed", details["error_reason"].as_str().map(String::from)),
            "task_cancelled" | "task_reassigned" | "dispute_resolved" if open => ("abandoned", None),
            _ => continue,
        };
        if !open {
            // Completed or failed without a claim: the attempt starts and ends here.
            out.push(Attempt {
                id,
                status: "in_progress".into(),
                provider_agent_id: provider.clone().unwrap_or_default(),
                created_at: rfc3339(at),
                completed_at: None,
                error_reason: None,
            });
        }
        if let Some(last) = out.last_mut() {
            last.status = status.into();
            last.completed_at = Some(rfc3339(at));
            last.error_reason = error;
        }
        if event_type == "task_reassigned" {
            provider = details["new_agent_id"].as_str().map(String::from);
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub id: String,
    pub message_id: String,
    pub task_id: String,
    pub content: String,
    /// `instruction`, `feedback` or `question`.
    pub message_type: String,
    pub sender_agent_id: Option<String>,
    pub sender_user_id: Option<String>,
    pub sender_name: Option<String>,
    pub created_at: String,
    pub sent_at: String,
}

type MessageRow = (String, String, String, String, Option<String>, Option<String>, Option<String>, i64);

fn message(r: MessageRow) -> Message {
    let (id, task_id, content, message_type, sender_agent_id, sender_user_id, sender_name, at) = r;
    Message {
        message_id: id.clone(),
        id,
        task_id,
        content,
        message_type,
        sender_agent_id,
        sender_user_id,
        sender_name,
        created_at: rfc3339(at),
        sent_at: rfc3339(at),
    }
}

pub struct NewMessage<'a> {
    pub task_id: &'a str,
    pub content: &'a str,
    pub message_type: &'a str,
    pub sender_agent_id: Option<&'a str>,
    pub sender_user_id: Option<&'a str>,
    pub sender_name: Option<&'a str>,
}

pub async fn add_message(db: &Db, m: NewMessage<'_>, now: i64) -> sqlx::Result<Message> {
    let mut tx = db.begin().await?;
    let row: MessageRow = sqlx::query_as(
        "INSERT INTO task_messages (id, task_id, content, message_type, sender_agent_id, sender_user_id, sender_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         RETURNING id, task_id, content, message_type, sender_agent_id, sender_user_id, sender_name, created_at",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(m.task_id)
    .bind(m.content)
    .bind(m.message_type)
    .bind(m.sender_agent_id)
    .bind(m.sender_user_id)
    .bind(m.sender_name)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(message(row))
}

pub async fn messages(db: &Db, task_id: &str) -> sqlx::Result<Vec<Message>> {
    let rows: Vec<MessageRow> = sqlx::query_as(
        "SELECT id, task_id, content, message_type, sender_agent_id, sender_user_id, sender_name, created_at \
         FROM task_messages WHERE task_id = $1 ORDER BY created_at, id",
    )
    .bind(task_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(message).collect())
}

/// Filters for `GET /tasks`.
pub struct ListFilter<'a> {
    /// Tasks where one of these agents is the client.
    pub client_agents: Vec<String>,
    /// Tasks where this user is the client directly.
    pub client_user: Option<&'a str>,
    /// Tasks where one of these agents is the provider.
    pub provider_agents: Vec<String>,
    pub status: Option<&'a str>,
    pub agent_id: Option<&'a str>,
}

/// The order of `GET /tasks` and `GET /hirings`: newest first.
pub fn list_order(scope: &'static str) -> Ordering {
    Ordering::newest_first(scope, "created_at", "id")
}

/// One page of `GET /tasks` and its capped count. Each party condition has an index leading
/// with its column and ending `(created_at, id)`, so a page reads the caller's rows from the
/// cursor on, whatever the table holds.
pub async fn list(db: &Db, f: &ListFilter<'_>, page: &Page) -> sqlx::Result<(Vec<TaskRow>, Pagination)> {
    let engine = db.engine();
    let mut q = SqlBuilder::new(" FROM tasks WHERE (1 = 0");
    if !f.client_agents.is_empty() {
        q.push(" OR ", []).push_in(engine, "client_agent_id", &f.client_agents);
    }
    if let Some(user) = f.client_user {
        q.push(" OR (client_user_id = ? AND client_agent_id IS NULL)", [Arg::Text(user.to_string())]);
    }
    if !f.provider_agents.is_empty() {
        q.push(" OR ", []).push_in(engine, "provider_agent_id", &f.provider_agents);
    }
    q.push(")", []);
    if let Some(status) = f.status {
        q.push(" AND status = ?", [Arg::Text(status.to_string())]);
    }
    if let Some(agent) = f.agent_id {
        q.push(
            " AND (client_agent_id = ? OR provider_agent_id = ?)",
            [Arg::Text(agent.to_string()), Arg::Text(agent.to_string())],
        );
    }
    page_of(db, q, &list_order("tasks"), page).await
}

/// A page of tasks from ` FROM tasks WHERE …` in `order`, with its pagination block.
async fn page_of(
    db: &Db,
    from_where: SqlBuilder,
    order: &Ordering,
    page: &Page,
) -> sqlx::Result<(Vec<TaskRow>, Pagination)> {
    order.fetch(db, TASK_COLUMNS, from_where, page, |t: &TaskRow| keyset::newest_key(t.created_at, &t.id)).await
}

/// Tasks the sweeper should release (review window over) or expire (deadline passed).
pub async fn due(db: &Db, now: i64, limit: i64) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    let release: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM tasks WHERE status = 'completed' AND payment_status IN ('escrowed', 'not_required') \
         AND released_at IS NULL AND review_until <= $1 \
         ORDER BY review_until LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let expire: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM tasks WHERE status IN ('pending', 'claimed', 'in_progress') AND payment_status <> 'disputed' \
         AND deadline_at IS NOT NULL AND deadline_at <= $1 ORDER BY deadline_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok((release.into_iter().map(|r| r.0).collect(), expire.into_iter().map(|r| r.0).collect()))
}

/// Whether an agent is party to a task whose money is not settled yet.
pub async fn has_unsettled(db: &Db, agent_id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM tasks WHERE (provider_agent_id = $1 OR client_agent_id = $1) \
         AND (status IN ('pending', 'claimed', 'in_progress') OR payment_status IN ('escrowed', 'disputed')) LIMIT 1",
    )
    .bind(agent_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// `(task id, price, payment status)` for every task that ever held money (the audit).
pub async fn payment_states(db: &Db) -> sqlx::Result<Vec<(String, i64, String)>> {
    sqlx::query_as("SELECT id, price, payment_status FROM tasks WHERE payment_id IS NOT NULL AND price > 0")
        .fetch_all(db.pool())
        .await
}

/// A message row with the hiring-conversation columns.
#[derive(Debug, sqlx::FromRow)]
pub struct MessageRecord {
    pub id: String,
    pub content: String,
    pub sender_agent_id: Option<String>,
    pub sender_user_id: Option<String>,
    pub sender_name: Option<String>,
    pub kind: String,
    pub reply_to_id: Option<String>,
    pub resolved_at: Option<i64>,
    pub created_at: i64,
}

#[allow(clippy::too_many_arguments)]
pub async fn add_message_in(
    tx: &mut Tx,
    task_id: &str,
    content: &str,
    message_type: &str,
    kind: &str,
    sender_agent_id: Option<&str>,
    sender_user_id: Option<&str>,
    reply_to_id: Option<&str>,
    now: i64,
) -> sqlx::Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO task_messages (id, task_id, content, message_type, sender_agent_id, sender_user_id, kind, reply_to_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(task_id)
    .bind(content)
    .bind(message_type)
    .bind(sender_agent_id)
    .bind(sender_user_id)
    .bind(kind)
    .bind(reply_to_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if let (Some(question), "answer") = (reply_to_id, kind) {
        sqlx::query("UPDATE task_messages SET resolved_at = $1 WHERE id = $2 AND task_id = $3 AND kind = 'question' AND resolved_at IS NULL")
            .bind(now)
            .bind(question)
            .bind(task_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(id)
}

pub async fn hiring_messages(db: &Db, task_id: &str) -> sqlx::Result<Vec<MessageRecord>> {
    sqlx::query_as(
        "SELECT id, content, sender_agent_id, sender_user_id, sender_name, kind, reply_to_id, resolved_at, created_at \
         FROM task_messages WHERE task_id = $1 ORDER BY created_at, id",
    )
    .bind(task_id)
    .fetch_all(db.pool())
    .await
}

/// A client's hirings, newest first, with an optional filter on the hiring status.
pub async fn list_hirings(
    db: &Db,
    client: &str,
    status: Option<HiringStatus>,
    page: &Page,
) -> sqlx::Result<(Vec<TaskRow>, Pagination)> {
    let mut q = SqlBuilder::new(" FROM tasks WHERE kind = 'hiring'");
    q.push(" AND client_principal = ?", [Arg::Text(client.to_string())]);
    if let Some(c) = status.map(HiringStatus::sql_condition) {
        q.push(&format!(" AND {c}"), []);
    }
    page_of(db, q, &list_order("hirings"), page).await
}

/// Hirings waiting for an agent: queued or running, oldest first.
pub async fn pending_hirings(db: &Db, agent_id: &str) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE kind = 'hiring' AND provider_agent_id = $1 \
         AND status IN ('pending', 'claimed', 'in_progress') AND payment_status <> 'unpaid' ORDER BY created_at, id LIMIT 100"
    )))
    .bind(agent_id)
    .fetch_all(db.pool())
    .await
}

/// Locks and reads the tasks of a batch (ordered by id, so concurrent batches never deadlock).
pub async fn lock_many(tx: &mut Tx, ids: &[String]) -> sqlx::Result<Vec<TaskRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    lock_many_statement(crate::db::engine_of(tx), ids).query_as().fetch_all(&mut **tx).await
}

/// The statement of `lock_many` (not run). `ids` must not be empty.
pub fn lock_many_statement(engine: Engine, ids: &[String]) -> SqlBuilder {
    let mut q = SqlBuilder::new(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE "));
    q.push_in(engine, "id", ids);
    q.push(&format!(" ORDER BY id{}", crate::db::for_update_on(engine)), []);
    q
}

/// The hirings already made with these `(client principal, client idempotency key)` pairs.
pub async fn find_by_keys(tx: &mut Tx, keys: &[(String, String)]) -> sqlx::Result<Vec<TaskRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = SqlBuilder::new(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE "));
    for (i, (principal, key)) in keys.iter().enumerate() {
        q.push(
            if i == 0 {
                "(client_principal = ? AND client_idempotency_key = ?)"
            } else {
                " OR (client_principal = ? AND client_idempotency_key = ?)"
            },
            [Arg::Text(principal.clone()), Arg::Text(key.clone())],
        );
    }
    q.query_as().fetch_all(&mut **tx).await
}

fn text(v: &Option<String>) -> Arg {
    v.clone().map(Arg::Text).unwrap_or(Arg::NullText)
}

fn int(v: Option<i64>) -> Arg {
    v.map(Arg::Int).unwrap_or(Arg::NullInt)
}

const NEW_TASK: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("status", Col::Text),
    ("payment_status", Col::Text),
    ("client_user_id", Col::Text),
    ("client_agent_id", Col::Text),
    ("provider_agent_id", Col::Text),
    ("provider_agent_did", Col::Text),
    ("capability", Col::Text),
    ("input", Col::Text),
    ("price", Col::Int),
    ("fee_bps", Col::Int),
    ("fee", Col::Int),
    ("currency", Col::Text),
    ("deadline_at", Col::Int),
    ("payment_id", Col::Text),
    ("payment_type", Col::Text),
    ("payment_created_at", Col::Int),
    ("created_at", Col::Int),
    ("updated_at", Col::Int),
    ("kind", Col::Text),
    ("client_principal", Col::Text),
    ("task_description", Col::Text),
    ("delivery_mode", Col::Text),
    ("repo_url", Col::Text),
    ("client_idempotency_key", Col::Text),
    ("request_fingerprint", Col::Text),
];

/// The insert of new tasks (for `db::execute_all`); it writes fewer rows than given when a
/// hiring's client idempotency key was taken by another transaction meanwhile.
pub fn insert_statement(engine: Engine, tasks: &[&TaskRow]) -> Option<SqlBuilder> {
    if tasks.is_empty() {
        return None;
    }
    let mut rows = Rows::new(NEW_TASK);
    for t in tasks {
        rows.push([
            Arg::Text(t.id.clone()),
            Arg::Text(t.status.as_str().into()),
            Arg::Text(t.payment_status.as_str().into()),
            text(&t.client_user_id),
            text(&t.client_agent_id),
            Arg::Text(t.provider_agent_id.clone()),
            Arg::Text(t.provider_agent_did.clone()),
            Arg::Text(t.capability.clone()),
            Arg::Text(t.input.clone()),
            Arg::Int(t.price),
            Arg::Int(t.fee_bps),
            Arg::Int(t.fee),
            Arg::Text(t.currency.clone()),
            int(t.deadline_at),
            text(&t.payment_id),
            text(&t.payment_type),
            int(t.payment_created_at),
            Arg::Int(t.created_at),
            Arg::Int(t.updated_at),
            Arg::Text(t.kind.clone()),
            Arg::Text(t.client_principal.clone()),
            text(&t.task_description),
            text(&t.delivery_mode),
            text(&t.repo_url),
            text(&t.client_idempotency_key),
            text(&t.request_fingerprint),
        ]);
    }
    let mut q = SqlBuilder::insert_rows(engine, "tasks", &rows);
    q.push(" ON CONFLICT (client_principal, client_idempotency_key) DO NOTHING", []);
    Some(q)
}

/// The columns a command may change. The update writes all of them (one statement text for
/// every kind of change), except `output`, which can be large and is sent only when it changed.
const TASK_CHANGE: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("old_status", Col::Text),
    ("old_payment_status", Col::Text),
    ("updated_at", Col::Int),
    ("status", Col::Text),
    ("payment_status", Col::Text),
    ("provider_agent_id", Col::Text),
    ("provider_agent_did", Col::Text),
    ("output_changed", Col::Int),
    ("output", Col::Text),
    ("output_sha256", Col::Text),
    ("error_reason", Col::Text),
    ("progress_percent", Col::Int),
    ("progress_message", Col::Text),
    ("review_until", Col::Int),
    ("payment_id", Col::Text),
    ("payment_type", Col::Text),
    ("payment_created_at", Col::Int),
    ("rating", Col::Int),
    ("review", Col::Text),
    ("claimed_at", Col::Int),
    ("completed_at", Col::Int),
    ("released_at", Col::Int),
    ("trace_attempt", Col::Int),
];

/// The update of each `(before, after)` pair, on condition that the task is still in
/// `before`'s state (for `db::execute_all`): it writes fewer rows than given when a row
/// changed under its lock.
pub fn update_statement(engine: Engine, changes: &[(&TaskRow, &TaskRow)]) -> Option<SqlBuilder> {
    if changes.is_empty() {
        return None;
    }
    let mut rows = Rows::new(TASK_CHANGE);
    for (before, after) in changes {
        let output_changed = before.output != after.output;
        rows.push([
            Arg::Text(before.id.clone()),
            Arg::Text(before.status.as_str().into()),
            Arg::Text(before.payment_status.as_str().into()),
            Arg::Int(after.updated_at),
            Arg::Text(after.status.as_str().into()),
            Arg::Text(after.payment_status.as_str().into()),
            Arg::Text(after.provider_agent_id.clone()),
            Arg::Text(after.provider_agent_did.clone()),
            Arg::Int(output_changed as i64),
            if output_changed { text(&after.output) } else { Arg::NullText },
            text(&after.output_sha256),
            text(&after.error_reason),
            Arg::Int(after.progress_percent),
            text(&after.progress_message),
            int(after.review_until),
            text(&after.payment_id),
            text(&after.payment_type),
            int(after.payment_created_at),
            int(after.rating),
            text(&after.review),
            int(after.claimed_at),
            int(after.completed_at),
            int(after.released_at),
            Arg::Int(after.trace_attempt),
        ]);
    }
    let sets: Vec<String> = TASK_CHANGE[3..]
        .iter()
        .filter(|(c, _)| *c != "output_changed")
        .map(|(c, _)| match *c {
            "output" => "output = CASE WHEN v.output_changed = 1 THEN v.output ELSE tasks.output END".to_string(),
            c => format!("{c} = v.{c}"),
        })
        .collect();
    let mut q = SqlBuilder::new(&format!("UPDATE tasks SET {} FROM ", sets.join(", ")));
    q.push_rows(engine, &rows, "v");
    // The expected state is compared with `IS NOT DISTINCT FROM`, which no index serves, so
    // the row is always found by its key: a generic plan made while the table was small once
    // found it through `tasks_by_review` (status first) and filtered every task in that status.
    q.push(
        " WHERE tasks.id = v.id AND tasks.status IS NOT DISTINCT FROM v.old_status \
         AND tasks.payment_status IS NOT DISTINCT FROM v.old_payment_status",
        [],
    );
    Some(q)
}

/// Appends timeline events in one statement, in the order given.
pub async fn insert_events(tx: &mut Tx, events: &[super::engine::effects::Event], now: i64) -> sqlx::Result<()> {
    match events_statement(crate::db::engine_of(tx), events, now) {
        Some(q) => q.query().execute(&mut **tx).await.map(drop),
        None => Ok(()),
    }
}

const EVENT: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("task_id", Col::Text),
    ("event_type", Col::Text),
    ("progress_percent", Col::Int),
    ("progress_message", Col::Text),
    ("details", Col::Text),
    ("created_at", Col::Int),
];

/// The insert of timeline events (not run); `None` if there are none.
pub fn events_statement(engine: Engine, events: &[super::engine::effects::Event], now: i64) -> Option<SqlBuilder> {
    if events.is_empty() {
        return None;
    }
    let mut rows = Rows::new(EVENT);
    for e in events {
        rows.push([
            Arg::Text(uuid::Uuid::now_v7().to_string()),
            Arg::Text(e.task_id.clone()),
            Arg::Text(e.event_type.to_string()),
            e.progress.as_ref().map(|p| Arg::Int(p.0)).unwrap_or(Arg::NullInt),
            e.progress.as_ref().and_then(|p| p.1.clone()).map(Arg::Text).unwrap_or(Arg::NullText),
            Arg::Text(e.details.to_string()),
            Arg::Int(now),
        ]);
    }
    Some(SqlBuilder::insert_rows(engine, "task_events", &rows))
}
