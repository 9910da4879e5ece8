//! Artifacts (results a provider attaches to a task or hiring) and uploads (documents a client
//! sends along). Downloads are for the task's participants only.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::model::{Actor, TaskRow};
use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::db::{Arg, Db, SqlBuilder};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::envelope::Api;
use crate::http::extract::JsonObject;
use crate::ledger::routes::principal_of;
use crate::state::AppState;
use crate::text::{Line, Text};

pub const TYPES: &[&str] = &["code_block", "markdown", "html", "file", "diff", "image", "json", "link", "text"];
const MAX_PER_REQUEST: usize = 50;
const MAX_BYTES: usize = 512 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewArtifact {
    /// One of code_block, markdown, html, file, diff, image, json, link, text.
    #[schema(required = true, schema_with = crate::openapi::choice::artifact_type)]
    pub artifact_type: Option<Line>,
    #[schema(required = true, min_length = 1, max_length = 255)]
    pub name: Option<Line>,
    /// Text, or base64 when `encoding` is `base64` (binary files and images).
    pub content: Option<Text>,
    pub content_type: Option<Line>,
    /// `utf8` (default) or `base64`.
    #[schema(schema_with = crate::openapi::choice::encoding)]
    pub encoding: Option<Line>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct NewArtifacts {
    #[schema(required = true, min_items = 1, max_items = 50)]
    pub artifacts: Option<Vec<NewArtifact>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Artifact {
    pub id: String,
    pub task_id: String,
    pub name: String,
    pub artifact_type: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub download_url: String,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    task_id: String,
    name: String,
    artifact_type: String,
    content_type: String,
    size_bytes: i64,
    sha256: String,
    created_at: i64,
}

impl From<Row> for Artifact {
    fn from(r: Row) -> Artifact {
        Artifact {
            download_url: format!("/api/v1/artifacts/{}/download", r.id),
            id: r.id,
            task_id: r.task_id,
            name: r.name,
            artifact_type: r.artifact_type,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            created_at: rfc3339(r.created_at),
        }
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn default_content_type(kind: &str) -> &'static str {
    match kind {
        "markdown" => "text/markdown",
        "html" => "text/html",
        "json" => "application/json",
        "image" => "image/png",
        "file" => "application/octet-stream",
        "diff" => "text/x-diff",
        _ => "text/plain",
    }
}

async fn task_for(state: &AppState, caller: &Caller, id: &str) -> ApiResult<(Actor, TaskRow)> {
    let mut actor = Actor::of(caller);
    let task = super::visible(&state.db, &mut actor, id).await?;
    Ok((actor, task))
}

/// Provider: attach up to 50 artifacts to a task or hiring.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/artifacts", tag = "artifacts", params(("id" = String, Path)), request_body = NewArtifacts,
    responses((status = 201, body = Vec<Artifact>), (status = 403), (status = 404), (status = 422)))]
pub(crate) async fn add_to_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Vec<Artifact>>> {
    Ok(Api::created(add_with(&state, &caller, &id, body).await?))
}

/// `POST /tasks/:id/artifacts` (and `/hirings/:id/artifacts`) without the HTTP: every artifact
/// is checked before any is stored (MCP `submit_hiring_result` calls it too).
pub(crate) async fn add_with(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: JsonObject,
) -> ApiResult<Vec<Artifact>> {
    let (actor, task) = task_for(state, caller, id).await?;
    if !actor.is_provider(&task) {
        return Err(ApiError::forbidden("only the provider attaches artifacts"));
    }
    let items = body.parse::<NewArtifacts>(None)?.artifacts.unwrap_or_default();
    if items.is_empty() || items.len() > MAX_PER_REQUEST {
        return Err(ApiError::field("artifacts", "must list 1–50 artifacts"));
    }
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    for (i, a) in items.into_iter().enumerate() {
        let kind = a.artifact_type.unwrap_or_default();
        if !TYPES.contains(&kind.as_str()) {
            errors.push(FieldError::new(
                format!("artifacts[{i}].artifact_type"),
                format!("must be one of {}", TYPES.join(", ")),
            ));
        }
        let name = a.name.unwrap_or_default().trim().to_string();
        if name.is_empty() || name.chars().count() > 255 {
            errors.push(FieldError::new(format!("artifacts[{i}].name"), "is required, at most 255 characters"));
        }
        let encoding = a.encoding.unwrap_or_else(|| "utf8".into());
        let content = a.content.unwrap_or_default();
        let bytes = match encoding.as_str() {
            "utf8" => Some(content.as_bytes().to_vec()),
            "base64" => STANDARD.decode(content.trim()).ok(),
            _ => None,
        };
        match &bytes {
            None => errors.push(FieldError::new(
                format!("artifacts[{i}].content"),
                "must be text, or base64 with encoding base64",
            )),
            Some(b) if b.len() > MAX_BYTES => {
                errors.push(FieldError::new(format!("artifacts[{i}].content"), "must be at most 512 KiB"))
            }
            _ => {}
        }
        let content_type = a.content_type.unwrap_or_else(|| default_content_type(&kind).into());
        if let Some(b) = bytes {
            let (kind, content_type, encoding) =
                (kind.into_string(), content_type.into_string(), encoding.into_string());
            rows.push((kind, name, content_type, encoding, content.into_string(), b.len() as i64, hex_sha256(&b)));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = state.now();
    let owner = principal_of(caller)?.key();
    let mut q = SqlBuilder::new(
        "INSERT INTO artifacts (id, task_id, uploaded_by, artifact_type, name, content_type, encoding, content, size_bytes, sha256, created_at) VALUES ",
    );
    let mut ids = Vec::new();
    for (i, (kind, name, content_type, encoding, content, size, sha)) in rows.into_iter().enumerate() {
        let aid = uuid::Uuid::now_v7().to_string();
        ids.push(aid.clone());
        let values = [
            Arg::Text(aid),
            Arg::Text(task.id.clone()),
            Arg::Text(owner.clone()),
            Arg::Text(kind),
            Arg::Text(name),
            Arg::Text(content_type),
            Arg::Text(encoding),
            Arg::Text(content),
            Arg::Int(size),
            Arg::Text(sha),
            Arg::Int(now),
        ];
        q.push(
            if i == 0 { "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" } else { ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" },
            values,
        );
    }
    let mut tx = state.db.begin().await?;
    q.query().execute(&mut *tx).await?;
    tx.commit().await?;
    state.engine.changes().announce(&task);
    let all = list(&state.db, &task.id).await?;
    Ok(all.into_iter().filter(|a| ids.contains(&a.id)).collect())
}

/// Provider: attach up to 50 artifacts to a hiring (the same as on its task).
#[utoipa::path(post, path = "/api/v1/hirings/{id}/artifacts", tag = "artifacts", params(("id" = String, Path)), request_body = NewArtifacts,
    responses((status = 201, body = Vec<Artifact>), (status = 403), (status = 404), (status = 422)))]
pub(crate) async fn add_to_hiring(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Vec<Artifact>>> {
    add_to_task(state, caller, id, body).await
}

pub async fn list(db: &Db, task_id: &str) -> sqlx::Result<Vec<Artifact>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, task_id, name, artifact_type, content_type, size_bytes, sha256, created_at FROM artifacts \
         WHERE task_id = $1 ORDER BY created_at, id",
    )
    .bind(task_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(Artifact::from).collect())
}

/// A task's artifacts (metadata; download each with its `download_url`).
#[utoipa::path(get, path = "/api/v1/tasks/{id}/artifacts", tag = "artifacts", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Artifact>), (status = 404)))]
pub(crate) async fn list_for_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<Vec<Artifact>>> {
    Ok(Api::ok(list_visible(&state, &caller, &id).await?))
}

/// `GET /tasks/:id/artifacts` (and `/hirings/:id/artifacts`) without the HTTP (MCP
/// `list_hiring_artifacts` calls it too).
pub(crate) async fn list_visible(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Vec<Artifact>> {
    let (_, task) = task_for(state, caller, id).await?;
    Ok(list(&state.db, &task.id).await?)
}

/// A hiring's artifacts (metadata; download each with its `download_url`).
#[utoipa::path(get, path = "/api/v1/hirings/{id}/artifacts", tag = "artifacts", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Artifact>), (status = 404)))]
pub(crate) async fn list_for_hiring(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
) -> ApiResult<Api<Vec<Artifact>>> {
    list_for_task(state, caller, id).await
}

pub(crate) fn file_response(content_type: &str, name: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", name.replace(['"', '\\', '\r', '\n'], "_"));
    ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response()
}

fn decode(encoding: &str, content: String) -> Vec<u8> {
    if encoding == "base64" { STANDARD.decode(content.trim()).unwrap_or_default() } else { content.into_bytes() }
}

/// Download an artifact's content (the task's participants only).
#[utoipa::path(get, path = "/api/v1/artifacts/{id}/download", tag = "artifacts", params(("id" = String, Path)),
    responses((status = 200, description = "the file"), (status = 404)))]
pub(crate) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let file = content_of(&state, &caller, &id).await?;
    Ok(file_response(&file.content_type, &file.name, file.bytes))
}

/// An artifact's content, as its download serves it.
pub(crate) struct ArtifactFile {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// `GET /artifacts/:id/download` without the HTTP (MCP `download_artifact` calls it too): the
/// task's participants only, anyone else gets 404.
pub(crate) async fn content_of(state: &AppState, caller: &Caller, id: &str) -> ApiResult<ArtifactFile> {
    let row: Option<(String, String, String, String, String)> =
        sqlx::query_as("SELECT task_id, name, content_type, encoding, content FROM artifacts WHERE id = $1")
            .bind(id)
            .fetch_optional(state.db.pool())
            .await?;
    let (task_id, name, content_type, encoding, content) = row.ok_or_else(|| ApiError::not_found("artifact"))?;
    task_for(state, caller, &task_id).await.map_err(|_| ApiError::not_found("artifact"))?;
    Ok(ArtifactFile { name, content_type, bytes: decode(&encoding, content) })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct UploadRequest {
    #[schema(required = true, min_length = 1, max_length = 255)]
    pub name: Option<Line>,
    /// Base64.
    #[schema(required = true, content_encoding = "base64")]
    pub content: Option<Line>,
    pub content_type: Option<Line>,
    pub document_type: Option<Line>,
    pub task_id: Option<Line>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Upload {
    pub id: String,
    pub name: String,
    pub file_url: String,
    pub content_type: String,
    pub file_hash: String,
    pub document_type: String,
    pub size_bytes: i64,
}

/// Upload a document (base64 content), optionally for one of your tasks.
#[utoipa::path(post, path = "/api/v1/uploads", tag = "artifacts", request_body = UploadRequest,
    responses((status = 201, body = Upload), (status = 404), (status = 422)))]
pub(crate) async fn upload(State(state): State<AppState>, caller: Caller, body: JsonObject) -> ApiResult<Api<Upload>> {
    let req: UploadRequest = body.parse(None)?;
    let mut errors = Vec::new();
    let name = req.name.unwrap_or_default().trim().to_string();
    if name.is_empty() || name.chars().count() > 255 {
        errors.push(FieldError::new("name", "is required, at most 255 characters"));
    }
    let content = req.content.unwrap_or_default();
    let bytes = STANDARD.decode(content.trim()).ok();
    match &bytes {
        None => errors.push(FieldError::new("content", "must be base64")),
        Some(b) if b.len() > MAX_BYTES => errors.push(FieldError::new("content", "must be at most 512 KiB")),
        _ => {}
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if let Some(task) = &req.task_id {
        task_for(&state, &caller, task).await?;
    }
    let bytes = bytes.unwrap_or_default();
    let up = Upload {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        file_url: String::new(),
        content_type: req.content_type.map(String::from).unwrap_or_else(|| "application/octet-stream".into()),
        file_hash: hex_sha256(&bytes),
        document_type: req.document_type.map(String::from).unwrap_or_else(|| "document".into()),
        size_bytes: bytes.len() as i64,
    };
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO uploads (id, owner, task_id, name, content_type, document_type, content, size_bytes, sha256, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&up.id)
    .bind(principal_of(&caller)?.key())
    .bind(req.task_id.as_deref())
    .bind(&up.name)
    .bind(&up.content_type)
    .bind(&up.document_type)
    .bind(content.trim())
    .bind(up.size_bytes)
    .bind(&up.file_hash)
    .bind(state.now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Api::created(Upload { file_url: format!("/api/v1/uploads/{}/download", up.id), ..up }))
}

/// Download an upload (its owner, or the participants of its task).
#[utoipa::path(get, path = "/api/v1/uploads/{id}/download", tag = "artifacts", params(("id" = String, Path)),
    responses((status = 200, description = "the file"), (status = 404)))]
pub(crate) async fn download_upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row: Option<(String, Option<String>, String, String, String)> =
        sqlx::query_as("SELECT owner, task_id, name, content_type, content FROM uploads WHERE id = $1")
            .bind(&id)
            .fetch_optional(state.db.pool())
            .await?;
    let (owner, task_id, name, content_type, content) = row.ok_or_else(|| ApiError::not_found("upload"))?;
    let mine = principal_of(&caller)?.key() == owner;
    let participant = match (&task_id, mine) {
        (Some(t), false) => task_for(&state, &caller, t).await.is_ok(),
        _ => false,
    };
    if !(mine || participant) {
        return Err(ApiError::not_found("upload"));
    }
    Ok(file_response(&content_type, &name, decode("base64", content)))
}
