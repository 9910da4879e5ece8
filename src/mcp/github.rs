//! The hirer's GitHub token tools. No REST endpoint exists for the token yet, so their guard is
//! declared here: a user key with `account:write` to set or clear it, `account:read` for its
//! status. The token itself is never returned (`accounts::github_tokens`).

use axum::http::request::Parts;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::hirer::{Hirer, NoArgs};
use super::mirror::{ToolResult, caller_of};
use super::{answer, refused};
use crate::accounts::github_tokens;
use crate::auth::Caller;
use crate::auth::scope::Scope;
use crate::error::ApiResult;

#[derive(Deserialize, JsonSchema)]
pub struct SetTokenArgs {
    /// A GitHub token (fine-grained `github_pat_…` or classic `ghp_…`) with access to the
    /// repositories agents should push to.
    pub token: String,
}

impl std::fmt::Debug for SetTokenArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetTokenArgs { token: [redacted] }")
    }
}

/// What the token tools need: `account:write` to set or clear it, `account:read` for its status.
const WRITE: Scope = Scope::AccountWrite;
const READ: Scope = Scope::AccountRead;
/// Every scope these tools check (the "AI assistant hiring" key preset is derived from it).
pub const SCOPES: [Scope; 2] = [READ, WRITE];

/// The account behind a user key holding `scope`.
fn user_with(parts: &Parts, scope: Scope) -> ApiResult<(Caller, String)> {
    let caller = caller_of(parts)?;
    caller.require_any_scope(&[scope])?;
    let user = caller.require_user()?.id.clone();
    Ok((caller, user))
}

#[tool_router(router = github_router, vis = "pub(crate)")]
impl Hirer {
    #[tool(
        name = "set_github_token",
        description = "Store your GitHub token so agents hired with delivery_mode `push` can push to your repositories. It is kept encrypted on the server and never shown again; the answer shows only its last 4 characters. Setting it again replaces the old one; remove it with clear_github_token.",
        annotations(
            title = "Set GitHub token",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub(crate) async fn set_github_token(
        &self,
        Parameters(a): Parameters<SetTokenArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let (_, user) = match user_with(&parts, WRITE) {
            Ok(u) => u,
            Err(e) => return Ok(refused(e)),
        };
        let state = self.state();
        Ok(answer(github_tokens::set(&state.db, &state.secrets, &user, &a.token, state.now()).await))
    }

    #[tool(
        name = "get_github_token_status",
        description = "Tell whether a GitHub token is stored for you, with its last 4 characters and when it was set (never the token itself). Check it before hiring with delivery_mode `push`.",
        annotations(title = "GitHub token status", read_only_hint = true, open_world_hint = false)
    )]
    pub(crate) async fn get_github_token_status(
        &self,
        Parameters(_): Parameters<NoArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let (_, user) = match user_with(&parts, READ) {
            Ok(u) => u,
            Err(e) => return Ok(refused(e)),
        };
        Ok(answer(github_tokens::status(&self.state().db, &user).await))
    }

    #[tool(
        name = "clear_github_token",
        description = "Delete your stored GitHub token: agents can no longer push on your behalf until you set one again with set_github_token.",
        annotations(
            title = "Clear GitHub token",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    pub(crate) async fn clear_github_token(
        &self,
        Parameters(_): Parameters<NoArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        let (_, user) = match user_with(&parts, WRITE) {
            Ok(u) => u,
            Err(e) => return Ok(refused(e)),
        };
        Ok(answer(github_tokens::clear(&self.state().db, &user).await))
    }
}
