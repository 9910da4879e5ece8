//! The MCP surfaces through the official SDK (`rmcp`): the hirer surface (`/mcp/hirer`, user
//! keys) and the agent surface (`/mcp`, agent keys), each over Streamable HTTP and over the
//! 2024-11-05 HTTP+SSE transport. Their tools and resources call the same slice functions as
//! the REST endpoints they mirror, with the same `Caller`, behind the same route-table access
//! rules (`mirror`).
//!
//! - `streamable`: sessions kept in the database (`sessions`), so any server answers any request
//!   of a session, beside a stateless mode for clients that do not keep the session;
//!   `legacy`: the SSE transport, whose session stays on the server of its stream.
//! - `resources` and `hub`: resources, subscriptions, and notifications delivered to the server
//!   holding the subscriber's stream from whichever server the change happened on; `presence`:
//!   availability pings over an agent's stream.
//! - JSON-RPC batches (protocol 2025-03-26) are split and answered message by message (`batch`).

pub mod agent;
pub mod batch;
pub mod follow;
pub mod github;
pub mod hirer;
pub mod hub;
pub mod legacy;
pub mod mirror;
pub mod presence;
pub mod resources;
pub mod scopes;
pub mod sessions;
pub mod streamable;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use rmcp::ServerHandler;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ProtocolVersion, ServerCapabilities, ServerConfig};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::endpoint::{Access, Declared};
use crate::http::rate_limit::{self, Limit};
use crate::state::AppState;
use legacy::Legacy;
use sessions::Surface;
use streamable::Streamable;

/// The path of the hirer surface.
pub const HIRER_PATH: &str = "/mcp/hirer";
/// The path of the agent surface.
pub const AGENT_PATH: &str = "/mcp";

/// Builds a surface's handler for a session or a request.
pub type Factory<S> = Arc<dyn Fn() -> Result<S, std::io::Error> + Send + Sync>;

/// The MCP routes, merged into the top-level router. A request without a valid credential (on
/// the agent surface: one acting as an agent) is answered 401 in the API's error envelope
/// before any MCP handling (`auth::caller` resolves it exactly as for `/api/v1`); each request
/// counts against the general rate limit.
pub fn router(state: &AppState) -> Router<AppState> {
    let (tools, hirer_state) = (hirer::Hirer::router(), state.clone());
    let hirer: Factory<hirer::Hirer> = Arc::new(move || Ok(hirer::Hirer::new(hirer_state.clone(), tools.clone())));
    let (tools, agent_state) = (agent::AgentSurface::router(), state.clone());
    let agent: Factory<agent::AgentSurface> =
        Arc::new(move || Ok(agent::AgentSurface::new(agent_state.clone(), tools.clone())));
    let hirer = surface_routes(state, Surface::Hirer, HIRER_PATH, hirer);
    let agent = surface_routes(state, Surface::Agent, AGENT_PATH, agent);
    guarded(state, hirer, require_caller).merge(guarded(state, agent, require_agent))
}

/// A surface's routes: Streamable HTTP at `path`, and the 2024-11-05 transport at `path/sse`
/// with its messages at `path/messages/{session}`.
fn surface_routes<S: ServerHandler + Send + 'static>(
    state: &AppState,
    surface: Surface,
    path: &'static str,
    handler: Factory<S>,
) -> Router<AppState> {
    let streamable = Streamable::new(state, surface, handler.clone());
    let messages_path: &'static str = match surface {
        Surface::Hirer => "/mcp/hirer/messages",
        Surface::Agent => "/mcp/messages",
    };
    let legacy = Legacy::new(state, surface, messages_path, handler);
    let sse = legacy.clone();
    Router::new()
        .route(path, any(move |req: Request| serve(streamable.clone(), req)))
        .route(&format!("{path}/sse"), get(move |req: Request| connect(sse.clone(), req)))
        .route(
            &format!("{messages_path}/{{session}}"),
            post(move |Path(id): Path<String>, req: Request| message(legacy.clone(), id, req)),
        )
}

async fn serve<S: ServerHandler + Send + 'static>(surface: Streamable<S>, req: Request) -> Response {
    surface.serve(req).await
}

async fn connect<S: ServerHandler + Send + 'static>(surface: Legacy<S>, req: Request) -> Response {
    surface.connect(req).await
}

async fn message<S: ServerHandler + Send + 'static>(surface: Legacy<S>, id: String, req: Request) -> Response {
    surface.message(id, req).await
}

/// The layers in front of a surface: the caller resolved (a bad key is 401), `admit` (who may
/// use the surface at all), the general rate limit, then batches split.
fn guarded<F, Fut>(state: &AppState, routes: Router<AppState>, admit: F) -> Router<AppState>
where
    F: Fn(Request, Next) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    routes
        .route_layer(middleware::from_fn(batch::split_batches))
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit::enforce))
        .route_layer(middleware::from_fn(admit))
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::auth::caller::resolve_caller))
        .route_layer(axum::Extension(Declared { access: Access::Credential, limit: Limit::General }))
}

/// The `Host` values the MCP endpoints accept (DNS-rebinding protection): loopback, and the
/// host of `--public-url` (with its port when the URL names one, else on any port).
pub fn allowed_hosts(public_url: &str) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if let Ok(url) = url::Url::parse(public_url)
        && let Some(host) = url.host_str()
    {
        hosts.push(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        });
    }
    hosts
}

async fn require_caller(req: Request, next: Next) -> Response {
    if req.extensions().get::<Caller>().is_none() {
        return ApiError::unauthorized("an API key is required (Authorization: Bearer ap_… or X-API-Key)")
            .into_response();
    }
    next.run(req).await
}

/// The agent surface is for agents: an agent key, or a user key acting as an owned agent
/// (`X-Agent-ID`).
async fn require_agent(req: Request, next: Next) -> Response {
    if req.extensions().get::<Caller>().is_none_or(|c| c.agent.is_none()) {
        return ApiError::unauthorized("an agent key is required (X-API-Key: agk_… or Authorization: Bearer agk_…)")
            .into_response();
    }
    next.run(req).await
}

/// What a surface says about itself at `initialize`: tools, resources with subscriptions, the
/// latest protocol version (the client's is echoed when supported), and how to use it.
pub fn server_config(name: &str, instructions: &str) -> ServerConfig {
    let capabilities =
        ServerCapabilities::builder().enable_tools().enable_resources().enable_resources_subscribe().build();
    ServerConfig::new(capabilities)
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .with_server_info(Implementation::new(name, env!("CARGO_PKG_VERSION")))
        .with_instructions(instructions)
}

/// A tool's answer: the value as JSON text, or a refusal as a tool error (`isError: true`)
/// whose text says what went wrong and what to do — never a protocol error.
pub fn answer<T: Serialize>(result: Result<T, ApiError>) -> CallToolResult {
    match result {
        Ok(value) => match serde_json::to_string_pretty(&value) {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(e) => refused(ApiError::Internal(e.into())),
        },
        Err(err) => refused(err),
    }
}

/// A refusal as a tool error: `CODE: message`, the field details, and a hint.
pub fn refused(err: ApiError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(refusal_text(&err))])
}

/// What a refusal says: `CODE: message`, the field details, and a hint (internal errors are
/// logged, never shown).
pub fn refusal_text(err: &ApiError) -> String {
    match err {
        ApiError::Known { code, message, details, .. } => {
            let mut text = format!("{code}: {message}");
            for d in details {
                if let (Some(field), Some(msg)) = (d["field"].as_str(), d["message"].as_str()) {
                    text.push_str(&format!("\n- {field}: {msg}"));
                }
            }
            if let Some(hint) = hint(code) {
                text.push('\n');
                text.push_str(hint);
            }
            text
        }
        ApiError::Internal(e) => {
            tracing::error!(error = ?e, "MCP tool failed");
            "INTERNAL_ERROR: the server failed; try again later, and report it if it persists".to_string()
        }
    }
}

fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "FORBIDDEN" => {
            "Use an API key that has this scope (create one on the dashboard's API keys page or with POST /api/v1/api-keys)."
        }
        "PRICE_ABOVE_MAX" => {
            "This key's max_price_per_hire is below the price: offer less, or use a key with a higher cap."
        }
        "INSUFFICIENT_BALANCE" => "Add funds first (generate_deposit_address), then check_balance and hire again.",
        "VALIDATION_ERROR" | "INVALID_AMOUNT" => "Fix the arguments named above and call the tool again.",
        "NOT_FOUND" | "AGENT_NOT_FOUND" => "Check the id: list_my_hirings and list_agents show the ones you can use.",
        "PAYMENT_PROVIDER_NOT_CONFIGURED" => {
            "This server takes no provider deposits; ask its operator to configure one, or fund the wallet another way."
        }
        "RATE_LIMIT_EXCEEDED" => "Wait a moment and call the tool again.",
        "CONFLICT" | "INVALID_STATE" => {
            "The hiring is not in a state that allows this: call get_hiring_status (agents: read hiring://pending or GET /api/v1/hirings/{id}) to see where it stands."
        }
        "ESCROW_LOCKED" => "The hiring's money is held by an open dispute: wait for the ruling.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_come_from_the_public_url() {
        let hosts = allowed_hosts("https://market.example.com");
        assert!(hosts.contains(&"market.example.com".to_string()));
        assert!(hosts.contains(&"127.0.0.1".to_string()));
        let hosts = allowed_hosts("http://market.example.com:8443/base");
        assert!(hosts.contains(&"market.example.com:8443".to_string()));
        assert_eq!(allowed_hosts("not a url").len(), 3);
    }

    #[test]
    fn refusals_are_tool_errors_with_what_to_do() {
        let r = refused(ApiError::forbidden("this key lacks the `hire:create` scope"));
        assert_eq!(r.is_error, Some(true));
        let text = serde_json::to_string(&r.content).unwrap();
        assert!(text.contains("FORBIDDEN") && text.contains("hire:create") && text.contains("scope"), "{text}");
    }
}
