//! The hirer tools for following a hiring once it runs: wait for news, answer the agent's
//! questions, list and download what it delivered. Same rule as `hirer`: each tool passes the
//! guard of the REST endpoint it mirrors and calls that handler's function.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::hirer::Hirer;
use super::mirror::{Rest, ToolResult, body, caller_of};
use super::refused;
use crate::error::ApiError;
use crate::tasks::artifacts;
use crate::tasks::hiring_routes as hirings;

pub const SHOW_HIRING: Rest = Rest::get("/api/v1/hirings/{id}");
pub const POST_MESSAGE: Rest = Rest::post("/api/v1/hirings/{id}/messages");
pub const LIST_ARTIFACTS: Rest = Rest::get("/api/v1/hirings/{id}/artifacts");
pub const DOWNLOAD: Rest = Rest::get("/api/v1/artifacts/{id}/download");

/// Every endpoint these tools mirror (a test checks each is in the route table).
pub const MIRRORED: [Rest; 4] = [SHOW_HIRING, POST_MESSAGE, LIST_ARTIFACTS, DOWNLOAD];

/// The longest `wait_for_hirings` wait, and how often it looks.
const MAX_WAIT_SECS: u64 = 60;
const POLL: Duration = Duration::from_secs(1);
/// `download_artifact` inlines at most this much unless told otherwise.
const DEFAULT_MAX_BYTES: usize = 100_000;
const MAX_MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitArgs {
    /// The hirings to watch (1 to 20 ids).
    pub hiring_ids: Vec<String>,
    /// Question ids you have already seen: only a question not in this list ends the wait.
    #[serde(default)]
    pub known_question_ids: Vec<String>,
    /// How long to wait at most, 1 to 60 seconds (default 30; never longer than the server's
    /// request timeout allows).
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AnswerArgs {
    /// The hiring the question belongs to.
    pub hiring_id: String,
    /// The question's id (`open_questions[].question_id` in get_hiring_status or wait_for_hirings).
    pub question_id: String,
    /// Your answer, at most 5000 characters.
    pub answer: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ArtifactsArgs {
    /// The hiring whose delivered artifacts to list.
    pub hiring_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DownloadArgs {
    /// The artifact's id, from list_hiring_artifacts.
    pub artifact_id: String,
    /// The most bytes to return (default 100000, at most 1048576); a larger artifact is truncated
    /// with a note.
    pub max_bytes: Option<u64>,
}

fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("text/")
        || ["json", "xml", "javascript", "yaml", "markdown", "x-diff", "x-patch"].iter().any(|t| ct.contains(t))
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate_text(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[tool_router(router = follow_router, vis = "pub(crate)")]
impl Hirer {
    #[tool(
        name = "wait_for_hirings",
        description = "Wait until one of the given hirings needs you: it returns as soon as one becomes final (completed, failed, cancelled, refunded) or its agent asks a question whose id is not in known_question_ids, else after wait_seconds (at most 60). Returns every watched hiring's status and open questions, with `changed` naming the ones that ended the wait. Call it in a loop instead of polling get_hiring_status; answer questions with answer_hiring_question.",
        annotations(title = "Wait for hirings", read_only_hint = true, open_world_hint = false)
    )]
    pub(crate) async fn wait_for_hirings(
        &self,
        Parameters(a): Parameters<WaitArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let caller = match caller_of(&parts).and_then(|c| SHOW_HIRING.check(&c).map(|()| c)) {
            Ok(c) => c,
            Err(e) => return Ok(refused(e)),
        };
        if a.hiring_ids.is_empty() || a.hiring_ids.len() > 20 {
            return Ok(refused(ApiError::field("hiring_ids", "name 1 to 20 hirings")));
        }
        let state = self.state();
        // Answer before the request timeout cuts the connection.
        let limit = state.config.request_timeout;
        let mut wait = Duration::from_secs(a.wait_seconds.unwrap_or(30).clamp(1, MAX_WAIT_SECS));
        if !limit.is_zero() {
            wait = wait.min(limit.saturating_sub(Duration::from_secs(2)).max(Duration::from_secs(1)));
        }
        let known: HashSet<&str> = a.known_question_ids.iter().map(String::as_str).collect();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Each look reads and releases its connections; none is held while sleeping.
            let mut views = Vec::with_capacity(a.hiring_ids.len());
            let mut changed = Vec::new();
            for id in &a.hiring_ids {
                let hiring = match hirings::show_one(&state, &caller, id).await {
                    Ok(h) => h,
                    Err(e) => return Ok(refused(e)),
                };
                let new_question = hiring.open_questions.iter().any(|q| !known.contains(q.question_id.as_str()));
                if hiring.is_final || new_question {
                    changed.push(hiring.id.clone());
                }
                views.push(json!({
                    "id": hiring.id, "status": hiring.status, "final": hiring.is_final,
                    "open_questions": hiring.open_questions, "task_output": hiring.task_output,
                    "failed_reason": hiring.failed_reason,
                }));
            }
            let timed_out = tokio::time::Instant::now() + POLL > deadline;
            if !changed.is_empty() || timed_out {
                return Ok(super::answer(Ok(
                    json!({"changed": changed, "timed_out": changed.is_empty(), "hirings": views}),
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    #[tool(
        name = "answer_hiring_question",
        description = "Answer a question the hired agent asked (its id is in open_questions of get_hiring_status or wait_for_hirings). The answer is posted to the hiring's conversation and the question is resolved, so the agent can go on. Returns the posted answer message.",
        annotations(
            title = "Answer a question",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    pub(crate) async fn answer_hiring_question(
        &self,
        Parameters(a): Parameters<AnswerArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        self.mirror(&parts, POST_MESSAGE, |state, caller| async move {
            let request = body(json!({"content": a.answer, "kind": "answer", "reply_to_id": a.question_id}))?;
            hirings::post_message_with(&state, &caller, &a.hiring_id, request).await
        })
        .await
    }

    #[tool(
        name = "list_hiring_artifacts",
        description = "List the artifacts (files, code, diffs, documents) the agent delivered for one of your hirings: each with its id, name, type, content type and size. Fetch one's content with download_artifact.",
        annotations(title = "List artifacts", read_only_hint = true, open_world_hint = false)
    )]
    pub(crate) async fn list_hiring_artifacts(
        &self,
        Parameters(a): Parameters<ArtifactsArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        self.mirror(&parts, LIST_ARTIFACTS, |state, caller| async move {
            Ok(json!({"artifacts": artifacts::list_visible(&state, &caller, &a.hiring_id).await?}))
        })
        .await
    }

    #[tool(
        name = "download_artifact",
        description = "Fetch an artifact's content: text (code, markdown, JSON, diffs) inline, binary files as an embedded resource (base64). Anything larger than max_bytes (default 100000) is truncated and the answer says so; call again with a larger max_bytes (up to 1048576) for more.",
        annotations(title = "Download an artifact", read_only_hint = true, open_world_hint = false)
    )]
    pub(crate) async fn download_artifact(
        &self,
        Parameters(a): Parameters<DownloadArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let caller = match caller_of(&parts).and_then(|c| DOWNLOAD.check(&c).map(|()| c)) {
            Ok(c) => c,
            Err(e) => return Ok(refused(e)),
        };
        let file = match artifacts::content_of(&self.state(), &caller, &a.artifact_id).await {
            Ok(f) => f,
            Err(e) => return Ok(refused(e)),
        };
        let max = a.max_bytes.map_or(DEFAULT_MAX_BYTES, |m| (m as usize).clamp(1, MAX_MAX_BYTES));
        let size = file.bytes.len();
        let uri = format!("artifact://{}", a.artifact_id);
        let note = (size > max).then(|| {
            format!(
                "[truncated: {} of {size} bytes shown; call download_artifact with a larger max_bytes for more]",
                max
            )
        });
        let mut content = Vec::new();
        match String::from_utf8(file.bytes) {
            Ok(text) if is_text(&file.content_type) => {
                content.push(ContentBlock::text(truncate_text(&text, max).to_string()));
            }
            other => {
                let bytes = match other {
                    Ok(text) => text.into_bytes(),
                    Err(e) => e.into_bytes(),
                };
                let blob = STANDARD.encode(&bytes[..size.min(max)]);
                content.push(ContentBlock::resource(ResourceContents::BlobResourceContents {
                    uri,
                    mime_type: Some(file.content_type.clone()),
                    blob,
                    meta: None,
                }));
            }
        }
        if let Some(note) = note {
            content.push(ContentBlock::text(note));
        }
        content.push(ContentBlock::text(format!("{} ({}, {size} bytes)", file.name, file.content_type)));
        Ok(CallToolResult::success(content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(truncate_text("héllo", 2), "h");
        assert_eq!(truncate_text("héllo", 3), "hé");
        assert_eq!(truncate_text("abc", 10), "abc");
        assert!(is_text("text/markdown") && is_text("application/json") && !is_text("image/png"));
    }
}
