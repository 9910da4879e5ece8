//! Webhooks: subscriptions, a transactional outbox, the signer and the delivery worker.
//!
//! Other slices call `emit` inside the transaction that makes a change; the delivery row commits
//! or rolls back with it, so a webhook is never sent for a change that did not happen and never
//! lost for one that did.

pub mod routes;
pub mod signer;
pub mod worker;

use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::keys::PlainSecret;
use crate::clock::{rfc3339, rfc3339_opt};
use crate::db::{Arg, Col, Db, Engine, Rows, SqlBuilder, Tx};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::secrets::SecretsKey;

pub const EVENTS: &[&str] = &[
    "task.created",
    "task.claimed",
    "task.in_progress",
    "task.completed",
    "task.failed",
    "task.cancelled",
    "task.disputed",
    "payment.confirmed",
    "payment.deposited",
    "withdrawal.processed",
    "agent.status_changed",
    "hiring.created",
    "hiring.completed",
    "hiring.failed",
    "hiring.cancelled",
];

/// What the adapter subscribes to when it names no events.
pub const DEFAULT_EVENTS: &[&str] =
    &["task.created", "task.claimed", "task.in_progress", "task.completed", "task.failed", "task.cancelled"];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub callback_url: String,
    pub event_types: Vec<String>,
    /// `active`, `disabled` (too many consecutive failures) or `deleted`.
    pub status: String,
    pub failure_count: i64,
    pub last_delivery_at: Option<String>,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    callback_url: String,
    event_types: String,
    status: String,
    failure_count: i64,
    last_delivery_at: Option<i64>,
    created_at: i64,
}

const COLUMNS: &str = "id, callback_url, event_types, status, failure_count, last_delivery_at, created_at";

impl From<Row> for Webhook {
    fn from(r: Row) -> Webhook {
        Webhook {
            id: r.id,
            callback_url: r.callback_url,
            event_types: r.event_types.split(',').filter(|e| !e.is_empty()).map(String::from).collect(),
            status: r.status,
            failure_count: r.failure_count,
            last_delivery_at: rfc3339_opt(r.last_delivery_at),
            created_at: rfc3339(r.created_at),
        }
    }
}

pub struct NewWebhook {
    pub callback_url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
}

pub fn validate(
    url: Option<String>,
    events: Option<Vec<String>>,
    secret: Option<String>,
    allow_private: bool,
) -> ApiResult<NewWebhook> {
    let mut errors = Vec::new();
    let url = url.unwrap_or_default().trim().to_string();
    if let Err(m) = crate::http::outbound::check_url(&url, allow_private) {
        errors.push(FieldError::new("callback_url", m));
    }
    let events = events.unwrap_or_else(|| DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect());
    let mut clean: Vec<String> = Vec::new();
    for e in events {
        let e = e.trim().to_string();
        if !EVENTS.contains(&e.as_str()) {
            errors.push(FieldError::new("event_types", format!("unknown event `{e}`")));
        } else if !clean.contains(&e) {
            clean.push(e);
        }
    }
    if clean.is_empty() && !errors.iter().any(|e| e.field == "event_types") {
        errors.push(FieldError::new("event_types", "must name at least one event"));
    }
    if secret.as_ref().is_some_and(|s| s.len() < 16 || s.len() > 256) {
        errors.push(FieldError::new("secret", "must be 16–256 characters"));
    }
    if errors.is_empty() {
        Ok(NewWebhook { callback_url: url, events: clean, secret })
    } else {
        Err(ApiError::validation(errors))
    }
}

/// Creates a subscription; returns it with its signing secret (shown once, stored sealed).
pub async fn subscribe(
    db: &Db,
    key: &SecretsKey,
    owner: &str,
    new: NewWebhook,
    now: i64,
) -> ApiResult<(Webhook, PlainSecret)> {
    let secret = new.secret.unwrap_or_else(|| {
        let key = crate::auth::keys::generate(crate::auth::keys::KeyKind::Session);
        format!("whsec_{}", &key.plaintext.expose()[4..])
    });
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin().await?;
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_subscriptions (id, owner, callback_url, event_types, secret, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'active', $6) RETURNING {COLUMNS}"
    )))
    .bind(&id)
    .bind(owner)
    .bind(&new.callback_url)
    .bind(format!(",{},", new.events.join(",")))
    .bind(key.seal(&secret, &id))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((row.into(), PlainSecret::from_client(secret)))
}

/// The signing secret of a subscription, opened with the server's key.
pub fn open_secret(key: &SecretsKey, subscription_id: &str, stored: &str) -> anyhow::Result<String> {
    key.open(stored, subscription_id)
}

/// Seals signing secrets stored in plain text before sealing existed (run at start).
pub async fn seal_plaintext_secrets(db: &Db, key: &SecretsKey) -> anyhow::Result<u64> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, secret FROM webhook_subscriptions WHERE secret NOT LIKE 'sealed.%'")
            .fetch_all(db.pool())
            .await?;
    for (id, secret) in &rows {
        sqlx::query("UPDATE webhook_subscriptions SET secret = $1 WHERE id = $2 AND secret = $3")
            .bind(key.seal(secret, id))
            .bind(id)
            .bind(secret)
            .execute(db.writer())
            .await?;
    }
    Ok(rows.len() as u64)
}

pub async fn list(db: &Db, owner: &str) -> sqlx::Result<Vec<Webhook>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_subscriptions WHERE owner = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC"
    )))
    .bind(owner)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Webhook::from).collect())
}

pub async fn unsubscribe(db: &Db, owner: &str, id: &str, now: i64) -> ApiResult<Webhook> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_subscriptions SET status = 'deleted', deleted_at = $1 WHERE id = $2 AND owner = $3 AND deleted_at IS NULL \
         RETURNING {COLUMNS}"
    )))
    .bind(now)
    .bind(id)
    .bind(owner)
    .fetch_optional(db.writer())
    .await?;
    row.map(Webhook::from).ok_or_else(|| ApiError::not_found("webhook"))
}

/// Queues `event` for every active subscription of `owners` that wants it, inside `tx`.
pub async fn emit(
    tx: &mut Tx,
    owners: &[String],
    event: &str,
    task_id: Option<&str>,
    payload: serde_json::Value,
    now: i64,
) -> sqlx::Result<()> {
    if owners.is_empty() {
        return Ok(());
    }
    let mut q = SqlBuilder::new("SELECT id FROM webhook_subscriptions WHERE status = 'active'");
    q.push(" AND event_types LIKE ?", [Arg::Text(format!("%,{event},%"))]);
    let marks = vec!["?"; owners.len()].join(", ");
    q.push(&format!(" AND owner IN ({marks})"), owners.iter().cloned().map(Arg::Text));
    let subscriptions: Vec<(String,)> = q.query_as().fetch_all(&mut **tx).await?;
    if subscriptions.is_empty() {
        return Ok(());
    }
    let body = payload.to_string();
    let mut insert = SqlBuilder::new(
        "INSERT INTO webhook_deliveries (id, subscription_id, event, task_id, payload, status, next_attempt_at, created_at) VALUES ",
    );
    for (i, (subscription,)) in subscriptions.into_iter().enumerate() {
        let row = [
            Arg::Text(uuid::Uuid::now_v7().to_string()),
            Arg::Text(subscription),
            Arg::Text(event.to_string()),
            task_id.map(|t| Arg::Text(t.to_string())).unwrap_or(Arg::NullText),
            Arg::Text(body.clone()),
            Arg::Text("pending".into()),
            Arg::Int(now),
            Arg::Int(now),
        ];
        insert.push(if i == 0 { "(?, ?, ?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?, ?, ?)" }, row);
    }
    insert.query().execute(&mut **tx).await?;
    Ok(())
}

/// One webhook for `emit_all`.
pub struct Outgoing<'a> {
    pub owners: &'a [String],
    pub event: &'a str,
    pub task_id: Option<&'a str>,
    /// The JSON body.
    pub payload: &'a str,
}

/// Queues many webhooks inside `tx` with one statement (`deliveries_statement`).
pub async fn emit_all(tx: &mut Tx, outgoing: &[Outgoing<'_>], now: i64) -> sqlx::Result<()> {
    match deliveries_statement(crate::db::engine_of(tx), outgoing, now) {
        Some(q) => q.query().execute(&mut **tx).await.map(drop),
        None => Ok(()),
    }
}

/// The insert of the deliveries `outgoing` makes (not run; `None` if it names nobody): one
/// row per webhook and owner, joined in the database with the owners' active subscriptions
/// that want its event, so queueing webhooks reads nothing first (a batch of the task engine
/// writes them with the rest of its changes, in one round trip on PostgreSQL).
pub fn deliveries_statement(engine: Engine, outgoing: &[Outgoing<'_>], now: i64) -> Option<SqlBuilder> {
    let mut rows = Rows::new(OUTGOING);
    for (n, o) in outgoing.iter().enumerate() {
        for owner in o.owners {
            rows.push([
                Arg::Text(owner.clone()),
                Arg::Text(o.event.to_string()),
                o.task_id.map(|t| Arg::Text(t.to_string())).unwrap_or(Arg::NullText),
                Arg::Int(n as i64 + 1),
                Arg::Int(now),
            ]);
        }
    }
    if rows.is_empty() {
        return None;
    }
    // Most task events have no subscriber, so a payload is read only where a subscription
    // matches. On PostgreSQL the payloads travel as one array, parsed once (an init plan) and
    // only if a row is written: unnesting every payload with the other columns cost most of
    // this statement, for rows the join then dropped.
    let mut q = SqlBuilder::new(&format!(
        "INSERT INTO webhook_deliveries (id, subscription_id, event, task_id, payload, status, next_attempt_at, created_at) \
         SELECT {}, s.id, w.event, w.task_id, ",
        crate::db::new_id_sql(engine)
    ));
    let payloads = outgoing.iter().map(|o| o.payload);
    match engine {
        Engine::Postgres => q.push("(SELECT ?::text[])[w.payload_no]", [crate::db::text_array(payloads)]),
        Engine::Sqlite => {
            let whens = " WHEN ? THEN ?".repeat(outgoing.len());
            let args = payloads.enumerate().flat_map(|(n, p)| [Arg::Int(n as i64 + 1), Arg::Text(p.to_string())]);
            q.push(&format!("CASE w.payload_no{whens} END"), args)
        }
    };
    q.push(", 'pending', w.at, w.at FROM ", []);
    q.push_rows(engine, &rows, "w");
    q.push(
        " JOIN webhook_subscriptions s ON s.owner = w.owner \
         WHERE s.status = 'active' AND s.event_types LIKE '%,' || w.event || ',%'",
        [],
    );
    Some(q)
}

const OUTGOING: &[(&str, Col)] =
    &[("owner", Col::Text), ("event", Col::Text), ("task_id", Col::Text), ("payload_no", Col::Int), ("at", Col::Int)];
