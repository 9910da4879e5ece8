//! A hiring's stream: partial output the hired agent emits while it works (`POST
//! /hirings/:id/stream`, MCP `task_emit_chunk`), kept in order with a sequence number per hiring
//! and read by the hirer (`GET /hirings/:id/stream?after=SEQ`, the latest chunks in the hiring
//! view). Who may emit, and in which state, is the task engine's rule (`Command::EmitChunk`).

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::engine::{Command, decide};
use super::model::{Actor, TaskRow};
use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::envelope::{Api, Pagination};
use crate::http::extract::{ApiQuery, JsonObject};
use crate::state::AppState;
use crate::text::{Line, Text};

/// The longest chunk, in characters.
pub const MAX_CONTENT_CHARS: usize = 16_384;
/// The most chunks one hiring keeps.
pub const MAX_CHUNKS: i64 = 10_000;
/// How many of the latest chunks the hiring view carries.
pub const IN_VIEW: i64 = 100;

/// What a chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// Output text (the default).
    Text,
    /// The agent's reasoning as it goes.
    Thinking,
    /// A log line.
    Log,
    /// A progress note.
    Progress,
    /// Something went wrong (the hiring may still deliver).
    Error,
    /// The stream is complete.
    Done,
}

impl ChunkKind {
    pub const ALL: [ChunkKind; 6] =
        [ChunkKind::Text, ChunkKind::Thinking, ChunkKind::Log, ChunkKind::Progress, ChunkKind::Error, ChunkKind::Done];
    pub const NAMES: [&'static str; 6] = ["text", "thinking", "log", "progress", "error", "done"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(s: &str) -> Option<ChunkKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EmitRequest {
    /// The partial output, 1–16384 characters, kept as sent (whitespace included).
    #[schema(required = true, min_length = 1, max_length = 16384)]
    pub content: Option<Text>,
    /// `text` (default), `thinking`, `log`, `progress`, `error` or `done`.
    #[schema(schema_with = crate::openapi::choice::chunk_kind)]
    pub kind: Option<Line>,
}

/// One chunk of a hiring's stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Chunk {
    /// 1, 2, 3… in the order the agent emitted them.
    pub seq: i64,
    pub kind: String,
    pub content: String,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    kind: String,
    content: String,
    created_at: i64,
}

impl From<Row> for Chunk {
    fn from(r: Row) -> Chunk {
        Chunk { seq: r.seq, kind: r.kind, content: r.content, created_at: rfc3339(r.created_at) }
    }
}

impl EmitRequest {
    fn validate(self) -> ApiResult<(ChunkKind, String)> {
        let mut errors = Vec::new();
        let content = self.content.map(Text::into_string).unwrap_or_default();
        if content.is_empty() || content.chars().count() > MAX_CONTENT_CHARS {
            errors.push(FieldError::new("content", format!("is required, at most {MAX_CONTENT_CHARS} characters")));
        }
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") => Some(ChunkKind::Text),
            Some(k) => ChunkKind::parse(k),
        };
        if kind.is_none() {
            errors.push(FieldError::new("kind", format!("must be one of {}", ChunkKind::NAMES.join(", "))));
        }
        match kind {
            Some(kind) if errors.is_empty() => Ok((kind, content)),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// The hiring `id` as the caller may see it (participants and administrators).
async fn hiring(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(Actor, TaskRow)> {
    let mut actor = Actor::of(caller);
    let task = super::visible(&state.db, &mut actor, id).await?;
    if task.kind != "hiring" {
        return Err(ApiError::not_found("hiring"));
    }
    Ok((actor, task))
}

/// Agent side: add a chunk to the hiring's stream.
#[utoipa::path(post, path = "/api/v1/hirings/{id}/stream", tag = "hirings", params(("id" = String, Path)), request_body = EmitRequest,
    responses((status = 201, body = Chunk), (status = 403), (status = 404), (status = 409), (status = 422), (status = 423)))]
pub(crate) async fn emit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Chunk>> {
    Ok(Api::created(emit_with(&state, &caller, &id, body).await?))
}

/// `POST /hirings/:id/stream` without the HTTP (MCP `task_emit_chunk` calls it too). The
/// engine decides on the hiring as locked in the transaction that stores the chunk, so a chunk
/// is never stored after the hiring moved on, and concurrent chunks of one hiring take their
/// numbers in turn. The request's idempotency key commits with the chunk.
pub(crate) async fn emit_with(state: &AppState, caller: &Caller, id: &str, body: JsonObject) -> ApiResult<Chunk> {
    let (actor, task) = hiring(state, caller, id).await?;
    let (kind, content) = body.parse::<EmitRequest>(None)?.validate()?;
    let mut tx = state.db.begin().await?;
    let task = super::store::lock_many(&mut tx, std::slice::from_ref(&task.id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found("hiring"))?;
    let now = state.now();
    decide(&task, actor.roles(&task), &Command::EmitChunk, now)?;
    let (last,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM hiring_chunks WHERE hiring_id = $1")
        .bind(&task.id)
        .fetch_one(&mut *tx)
        .await?;
    if last >= MAX_CHUNKS {
        return Err(ApiError::conflict(format!("the stream is full ({MAX_CHUNKS} chunks)")));
    }
    let row: Row = sqlx::query_as(
        "INSERT INTO hiring_chunks (hiring_id, seq, kind, content, created_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING seq, kind, content, created_at",
    )
    .bind(&task.id)
    .bind(last + 1)
    .bind(kind.as_str())
    .bind(&content)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    state.engine.changes().announce(&task);
    Ok(Chunk::from(row))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// Only chunks after this sequence number (default 0: from the start).
    pub after: Option<String>,
    /// The `cursor` of the previous page (the same as `after`).
    pub cursor: Option<String>,
    /// How many chunks, 1–100 (default 20).
    pub limit: Option<String>,
}

/// The hiring's chunks after `after`, in order, a page at a time.
#[utoipa::path(get, path = "/api/v1/hirings/{id}/stream", tag = "hirings", params(("id" = String, Path), StreamQuery),
    responses((status = 200, body = Vec<Chunk>), (status = 404), (status = 422)))]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> ApiResult<Api<Vec<Chunk>>> {
    let (chunks, pagination) = read_with(&state, &caller, &id, &q).await?;
    Ok(Api::page(chunks, pagination))
}

/// `GET /hirings/:id/stream` without the HTTP.
pub(crate) async fn read_with(
    state: &AppState,
    caller: &Caller,
    id: &str,
    q: &StreamQuery,
) -> ApiResult<(Vec<Chunk>, Pagination)> {
    let mut errors = Vec::new();
    let limit = crate::http::pagination::parse_limit(q.limit.as_deref()).unwrap_or_else(|e| {
        errors.push(e);
        0
    });
    let after = match q.cursor.as_deref().or(q.after.as_deref()).map(|s| s.trim().parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if (0..=MAX_CHUNKS).contains(&n) => n,
        Some(_) => {
            let field = if q.cursor.is_some() { "cursor" } else { "after" };
            errors.push(FieldError::new(field, format!("must be a sequence number from 0 to {MAX_CHUNKS}")));
            0
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (_, task) = hiring(state, caller, id).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, kind, content, created_at FROM hiring_chunks WHERE hiring_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(&task.id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(state.db.pool())
    .await?;
    let total = last_seq(&state.db, &task.id).await?;
    let has_more = rows.len() as i64 > limit;
    let chunks: Vec<Chunk> = rows.into_iter().take(limit as usize).map(Chunk::from).collect();
    let cursor = has_more.then(|| chunks.last().map(|c| c.seq.to_string())).flatten();
    Ok((chunks, Pagination { total_count: total, cursor, has_more, total_is_estimate: false }))
}

/// The highest sequence number of the hiring's stream (0: nothing emitted yet), which is also
/// how many chunks it holds.
pub async fn last_seq(db: &Db, hiring_id: &str) -> sqlx::Result<i64> {
    let (max,): (Option<i64>,) = sqlx::query_as("SELECT MAX(seq) FROM hiring_chunks WHERE hiring_id = $1")
        .bind(hiring_id)
        .fetch_one(db.pool())
        .await?;
    Ok(max.unwrap_or(0))
}

/// The latest `IN_VIEW` chunks, oldest first (the hiring view).
pub async fn latest(db: &Db, hiring_id: &str) -> sqlx::Result<Vec<Chunk>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, kind, content, created_at FROM hiring_chunks WHERE hiring_id = $1 ORDER BY seq DESC LIMIT $2",
    )
    .bind(hiring_id)
    .bind(IN_VIEW)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().rev().map(Chunk::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_requests_are_checked() {
        for kind in ChunkKind::ALL {
            assert_eq!(ChunkKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ChunkKind::parse("shout"), None);
        let req = |content: &str, kind: Option<&'static str>| EmitRequest {
            content: Some(Text::parse(content).unwrap()),
            kind: kind.map(Line::from),
        };
        assert_eq!(req(" ", None).validate().unwrap(), (ChunkKind::Text, " ".to_string()), "whitespace is content");
        assert_eq!(req("x", Some("done")).validate().unwrap().0, ChunkKind::Done);
        assert!(req("", None).validate().is_err());
        assert!(req("x", Some("shout")).validate().is_err());
        assert!(req(&"x".repeat(MAX_CONTENT_CHARS + 1), None).validate().is_err());
    }
}
