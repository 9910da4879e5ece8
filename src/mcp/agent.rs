//! The agent surface (`/mcp`): what a hired agent needs to deliver over MCP — ask, stream,
//! deliver or give up. As on the hirer surface, each tool names the REST endpoint it mirrors,
//! passes that endpoint's guard from the route table and calls the function its handler calls,
//! so the engine's rules, the validation and the limits are the REST endpoint's.

use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ProtocolVersion, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::mirror::{self, Rest, ToolResult, body};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tasks::{artifacts, hiring_routes as hirings, stream};

const RESULT: Rest = Rest::post("/api/v1/hirings/{id}/result");
const ARTIFACTS: Rest = Rest::post("/api/v1/hirings/{id}/artifacts");
const MESSAGE: Rest = Rest::post("/api/v1/hirings/{id}/messages");
const FAILURE: Rest = Rest::post("/api/v1/hirings/{id}/failure");
const STREAM: Rest = Rest::post("/api/v1/hirings/{id}/stream");

/// Every endpoint a tool mirrors (a test checks each is in the route table).
pub const MIRRORED: [Rest; 5] = [RESULT, ARTIFACTS, MESSAGE, FAILURE, STREAM];

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ArtifactArg {
    /// One of code_block, markdown, html, file, diff, image, json, link, text.
    pub artifact_type: String,
    /// A file name, e.g. `review.md`.
    pub name: String,
    /// The content: text, or base64 with `encoding: "base64"` (at most 512 KiB decoded).
    pub content: String,
    /// The MIME type (default from the artifact type).
    pub content_type: Option<String>,
    /// `utf8` (default) or `base64`.
    pub encoding: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResultArgs {
    /// The hiring you deliver, from `hiring://pending`.
    pub hiring_id: String,
    /// Your result: text or a JSON object (required, not null).
    pub output: Value,
    /// Files that go with the result (up to 50), attached before the result is delivered.
    pub artifacts: Option<Vec<ArtifactArg>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MessageArgs {
    /// The hiring to talk about.
    pub hiring_id: String,
    /// A note for the hirer (at most 5000 characters). Give this or `question`.
    pub message: Option<String>,
    /// A question the hirer should answer (at most 5000 characters): it stays open on the hiring
    /// until answered. Give this or `message`.
    pub question: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    Timeout,
    CapabilityMismatch,
    AgentUnresponsive,
    Other,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FailureArgs {
    /// The hiring you give up.
    pub hiring_id: String,
    /// What went wrong, for the hirer.
    pub error: String,
    /// `timeout`, `capability_mismatch`, `agent_unresponsive` or `other` (default).
    pub reason: Option<FailureReason>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChunkArgs {
    /// The hiring you are working on.
    pub hiring_id: String,
    /// The partial output, 1 to 16384 characters, kept exactly as sent.
    pub content: String,
    /// `text` (default), `thinking`, `log`, `progress`, `error` or `done`.
    pub kind: Option<String>,
}

/// The agent surface's handler.
#[derive(Clone)]
pub struct AgentSurface {
    state: AppState,
    tool_router: ToolRouter<AgentSurface>,
}

#[tool_router]
impl AgentSurface {
    pub fn new(state: AppState, tool_router: ToolRouter<AgentSurface>) -> AgentSurface {
        AgentSurface { state, tool_router }
    }

    /// The tools, built once and cloned into each handler.
    pub fn router() -> ToolRouter<AgentSurface> {
        Self::tool_router()
    }

    #[tool(
        name = "submit_hiring_result",
        description = "Deliver the result of a hiring you were hired for: the output (text or a JSON object) and optionally artifacts (files such as a report, a diff or code; up to 50, each at most 512 KiB). The hiring becomes completed and the hirer is notified; the price is paid to you when the hirer accepts or the review window passes. Refused when the hiring is not yours or no longer running (then nothing is stored).",
        annotations(
            title = "Submit a result",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn submit_hiring_result(
        &self,
        Parameters(a): Parameters<ResultArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        if let Some(refusal) = mirror::refusal(&parts, ARTIFACTS) {
            return Ok(refusal);
        }
        mirror::run(&self.state, &parts, RESULT, |state, caller| async move {
            let result = || body(json!({"output": a.output}));
            if let Some(files) = a.artifacts.filter(|f| !f.is_empty()) {
                // The result is checked first, so a refused delivery attaches nothing.
                hirings::check_result(&state, &caller, &a.hiring_id, result()?).await?;
                let files: Vec<Value> = files
                    .into_iter()
                    .map(|f| {
                        json!({"artifact_type": f.artifact_type, "name": f.name, "content": f.content,
                               "content_type": f.content_type, "encoding": f.encoding})
                    })
                    .collect();
                let files = body(json!({"artifacts": files}))?;
                artifacts::add_with(&state, &caller, &a.hiring_id, files).await?;
            }
            hirings::result_with(&state, &caller, &a.hiring_id, result()?).await
        })
        .await
    }

    #[tool(
        name = "add_hiring_message",
        description = "Write to the hirer of one of your hirings: a `message` (a note, a status) or a `question` they should answer — a question stays open on the hiring until the hirer answers it, and the answer arrives as a message with reply_to_id set. Give exactly one of message or question.",
        annotations(
            title = "Message the hirer",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn add_hiring_message(
        &self,
        Parameters(a): Parameters<MessageArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        mirror::run(&self.state, &parts, MESSAGE, |state, caller| async move {
            let (kind, content) = match (a.message, a.question) {
                (Some(m), None) => ("message", m),
                (None, Some(q)) => ("question", q),
                _ => return Err(ApiError::field("message", "give exactly one of message or question")),
            };
            let request = body(json!({"content": content, "kind": kind}))?;
            hirings::post_message_with(&state, &caller, &a.hiring_id, request).await
        })
        .await
    }

    #[tool(
        name = "report_hiring_failure",
        description = "Give up a hiring you cannot deliver: say what went wrong (error) and why (reason: timeout, capability_mismatch, agent_unresponsive or other). The hiring becomes failed and the hirer's escrow is refunded in full; you are not paid. Refused when the hiring is not yours or already finished.",
        annotations(
            title = "Report a failure",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn report_hiring_failure(
        &self,
        Parameters(a): Parameters<FailureArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        mirror::run(&self.state, &parts, FAILURE, |state, caller| async move {
            let reason = a.reason.map(|r| match r {
                FailureReason::Timeout => "timeout",
                FailureReason::CapabilityMismatch => "capability_mismatch",
                FailureReason::AgentUnresponsive => "agent_unresponsive",
                FailureReason::Other => "other",
            });
            let request = body(json!({"error": a.error, "reason": reason}))?;
            hirings::failure_with(&state, &caller, &a.hiring_id, request).await
        })
        .await
    }

    #[tool(
        name = "task_emit_chunk",
        description = "Stream partial output of a hiring while you work on it: each chunk is kept in order with a sequence number (returned) and the hirer reads it live (get_hiring_status, or GET /api/v1/hirings/:id/stream?after=SEQ). kind says what the chunk is: text (default), thinking, log, progress, error or done. Send the final result with submit_hiring_result.",
        annotations(
            title = "Stream output",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn task_emit_chunk(
        &self,
        Parameters(a): Parameters<ChunkArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        mirror::run(&self.state, &parts, STREAM, |state, caller| async move {
            let request = body(json!({"content": a.content, "kind": a.kind}))?;
            stream::emit_with(&state, &caller, &a.hiring_id, request).await
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AgentSurface {
    fn get_info(&self) -> ServerConfig {
        super::server_config(
            "agentmarket-agent",
            "agentmarket, for hired agents: subscribe to hiring://pending to hear when you are hired (read it for \
             your hirings; hiring://{id}/status follows one). Stream partial output with task_emit_chunk, ask the \
             hirer with add_hiring_message (question), deliver with submit_hiring_result, or give up with \
             report_hiring_failure (the hirer is refunded). Keep the session's stream open: the server pings it \
             to know you are available.",
        )
    }

    super::resources::resource_methods!(super::sessions::Surface::Agent);

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        super::hirer::PROTOCOL_VERSIONS.into()
    }
}
