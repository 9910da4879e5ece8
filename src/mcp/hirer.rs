//! The hirer tools: what an AI coding assistant needs to find an agent, hire it, follow the
//! hiring, cancel it and fund the wallet. Each tool names the REST endpoint it mirrors
//! (`MIRRORED`), passes that endpoint's guard from the route table, and calls the function its
//! handler calls, with the request's own `Caller` — so scopes, `max_price_per_hire`,
//! validation and every state change (through the task engine) are the REST endpoint's.

use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ProtocolVersion, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::mirror::{Rest, ToolResult, body};
use crate::agents::discovery::{self, DiscoverQuery, DiscoveredAgent};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::ledger::routes as ledger;
use crate::state::AppState;
use crate::tasks::hiring_routes as hirings;

const LIST_AGENTS: Rest = Rest::get("/api/v1/agents/discover");
const HIRE: Rest = Rest::post("/api/v1/agents/{did}/hire");
const SHOW_HIRING: Rest = Rest::get("/api/v1/hirings/{id}");
const LIST_HIRINGS: Rest = Rest::get("/api/v1/hirings");
const CANCEL_HIRING: Rest = Rest::post("/api/v1/hirings/{id}/cancel");
const BALANCE: Rest = Rest::get("/api/v1/ledger/balance");
const DEPOSIT: Rest = Rest::post("/api/v1/ledger/deposit");

/// The protocol versions both surfaces negotiate (the client's if listed, else the latest).
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2024_11_05,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

/// Every endpoint a tool mirrors (a test checks each is in the route table).
pub const MIRRORED: [Rest; 7] = [LIST_AGENTS, HIRE, SHOW_HIRING, LIST_HIRINGS, CANCEL_HIRING, BALANCE, DEPOSIT];

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListAgentsArgs {
    /// Only agents offering this capability, e.g. `code-review`.
    pub capability: Option<String>,
    /// Lowest base price in USD, a decimal string such as `"1.50"`.
    pub min_price: Option<String>,
    /// Highest base price in USD, a decimal string such as `"25.00"`.
    pub max_price: Option<String>,
    /// Lowest reputation, 0 to 5.
    pub min_reputation: Option<f64>,
    /// `reputation_score` (default), `base_price` or `recent`.
    pub sort_by: Option<String>,
    /// How many agents, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// The agent returns its output in the hiring (default).
    Output,
    /// The agent pushes its work to `repo_url`.
    Push,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HireArgs {
    /// The agent's DID (`did:…`), from `list_agents`.
    pub agent_did: String,
    /// The capability you are hiring it for, one of the agent's capabilities.
    pub capability: String,
    /// What the agent should do, at most 5000 characters.
    pub task_description: String,
    /// The price you offer in USD, a decimal string such as `"10.00"`: held in escrow from your
    /// balance at once, paid to the agent on delivery, refunded if the hiring fails or is cancelled.
    pub max_price: String,
    /// Any unique string (a UUID is best). Calling again with the same key and arguments returns
    /// the original hiring instead of hiring (and paying) twice.
    pub idempotency_key: Option<String>,
    /// `output` (default) or `push`.
    pub delivery_mode: Option<DeliveryMode>,
    /// The repository the agent works on (needed for `push`).
    pub repo_url: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HiringArgs {
    /// The hiring's id, as `hire_agent` or `list_my_hirings` returned it.
    pub hiring_id: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ListHiringsArgs {
    /// Only hirings in this status: `pending_payment`, `queued`, `in_progress`, `completed`,
    /// `failed`, `cancelled`, `disputed` or `refunded`.
    pub status: Option<String>,
    /// Hirings per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The page, from 1.
    pub page: Option<u32>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DepositArgs {
    /// How much to add, in USD, a decimal string such as `"50.00"`.
    pub amount: String,
    /// The coin to pay in (`btc`, `eth`, `usdttrc20`…). With it the answer names the address and
    /// the exact amount to send; without it, a payment page (`payment_url`) to open.
    pub pay_currency: Option<String>,
}

/// The hirer surface's handler: built for each request (the transport is stateless).
#[derive(Clone)]
pub struct Hirer {
    state: AppState,
    tool_router: ToolRouter<Hirer>,
}

#[tool_router]
impl Hirer {
    pub fn new(state: AppState, tool_router: ToolRouter<Hirer>) -> Hirer {
        Hirer { state, tool_router }
    }

    /// The tools, built once and cloned into each request's handler.
    pub fn router() -> ToolRouter<Hirer> {
        Self::tool_router() + Self::follow_router() + Self::github_router()
    }

    pub(crate) fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Runs a tool as `rest`'s handler would run (`mirror::run`).
    pub(crate) async fn mirror<T, F, Fut>(&self, parts: &Parts, rest: Rest, call: F) -> ToolResult
    where
        T: serde::Serialize,
        F: FnOnce(AppState, Caller) -> Fut,
        Fut: Future<Output = ApiResult<T>>,
    {
        super::mirror::run(&self.state, parts, rest, call).await
    }

    #[tool(
        name = "list_agents",
        description = "Find marketplace agents to hire. Filter by capability (e.g. `code-review`), base price range in USD (decimal strings) and minimum reputation (0-5); sort by reputation_score, base_price or recent. Returns each agent's DID (pass it to hire_agent as agent_did), name, description, capabilities, base price, reputation and availability. Hire an agent for one of its listed capabilities, offering at least its base price.",
        annotations(title = "List agents", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_agents(
        &self,
        Parameters(a): Parameters<ListAgentsArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        self.mirror(&parts, LIST_AGENTS, |state, _caller| async move {
            // Built from its serialized form, so filters added to the query later default to unset.
            let query: DiscoverQuery = serde_json::from_value(json!({
                "capability": a.capability,
                "min_price": a.min_price,
                "max_price": a.max_price,
                "min_reputation": a.min_reputation.map(|r| r.to_string()),
                "sort_by": a.sort_by,
                "limit": a.limit.map(|l| l.to_string()),
            }))
            .map_err(|e| ApiError::Internal(e.into()))?;
            let now = state.now();
            let rows = discovery::discover(&state.db, &query).await?;
            Ok(json!({"agents": rows.iter().map(|r| DiscoveredAgent::from_row(r, now)).collect::<Vec<_>>()}))
        })
        .await
    }

    #[tool(
        name = "hire_agent",
        description = "Hire an agent for a task. The offered price (max_price, USD decimal string) is held in escrow from your balance at once and paid to the agent only when it delivers; a failed or cancelled hiring is refunded. Always pass an idempotency_key (a fresh UUID per intended hire) so a retried call never hires twice. Returns the hiring (its id, status, price) — follow it with get_hiring_status, stop it with cancel_hiring. Refused when the balance is too low (add funds with generate_deposit_address) or the price is above this key's max_price_per_hire.",
        annotations(
            title = "Hire an agent",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn hire_agent(&self, Parameters(a): Parameters<HireArgs>, Extension(parts): Extension<Parts>) -> ToolResult {
        self.mirror(&parts, HIRE, |state, caller| async move {
            let delivery_mode = a.delivery_mode.map(|m| match m {
                DeliveryMode::Output => "output",
                DeliveryMode::Push => "push",
            });
            let request = body(json!({
                "task_description": a.task_description,
                "capability_requested": a.capability,
                "price": a.max_price,
                "client_idempotency_key": a.idempotency_key,
                "delivery_mode": delivery_mode,
                "repo_url": a.repo_url,
            }))?;
            let (hired, created) = hirings::hire_with(&state, &caller, &a.agent_did, request).await?;
            let mut out = serde_json::to_value(&hired).map_err(|e| ApiError::Internal(e.into()))?;
            out["replayed"] = json!(!created);
            Ok(out)
        })
        .await
    }

    #[tool(
        name = "get_hiring_status",
        description = "Show one of your hirings: its status (queued, in_progress, completed, failed, cancelled, disputed, refunded), price, escrow, the agent, its messages and open questions, and its result once delivered. Use it to follow a hiring after hire_agent; a completed hiring carries the agent's output.",
        annotations(title = "Hiring status", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_hiring_status(
        &self,
        Parameters(a): Parameters<HiringArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        self.mirror(&parts, SHOW_HIRING, |state, caller| async move {
            hirings::show_one(&state, &caller, &a.hiring_id).await
        })
        .await
    }

    #[tool(
        name = "list_my_hirings",
        description = "List the hirings you made, newest first, optionally only those in one status, a page at a time (limit up to 100, page from 1). Returns {hirings, total, page, per_page, total_pages}; each hiring has its id for get_hiring_status or cancel_hiring.",
        annotations(title = "List my hirings", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_my_hirings(
        &self,
        Parameters(a): Parameters<ListHiringsArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        self.mirror(&parts, LIST_HIRINGS, |state, caller| async move {
            let query = hirings::ListQuery {
                status: a.status,
                limit: a.limit.map(|l| l.to_string()),
                page: a.page.map(|p| p.to_string()),
                cursor: None,
            };
            hirings::list_page(&state, &caller, &query).await
        })
        .await
    }

    #[tool(
        name = "cancel_hiring",
        description = "Cancel one of your hirings that is not finished yet: the agent stops and the escrowed price is refunded to your available balance. A completed, failed or already cancelled hiring cannot be cancelled (the tool says so). Returns the hiring as it now stands.",
        annotations(
            title = "Cancel a hiring",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn cancel_hiring(
        &self,
        Parameters(a): Parameters<HiringArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        self.mirror(&parts, CANCEL_HIRING, |state, caller| async move {
            hirings::cancel_one(&state, &caller, &a.hiring_id).await
        })
        .await
    }

    #[tool(
        name = "check_balance",
        description = "Show your wallet in USD: available (what you can spend on hirings), escrow (held for hirings in progress), pending (earned, awaiting release) and total. Check it before hiring; add funds with generate_deposit_address.",
        annotations(title = "Check balance", read_only_hint = true, open_world_hint = false)
    )]
    async fn check_balance(&self, Parameters(_): Parameters<NoArgs>, Extension(parts): Extension<Parts>) -> ToolResult {
        self.mirror(&parts, BALANCE, |state, caller| async move { ledger::balance_of(&state, &caller).await }).await
    }

    #[tool(
        name = "generate_deposit_address",
        description = "Add funds to your wallet through the server's crypto payment provider: give the amount in USD and optionally the coin (pay_currency). Returns a pending deposit with the address and exact amount to send (with pay_currency) or a payment page URL to open; the balance is credited once the provider confirms the payment. Refused when this server has no payment provider configured.",
        annotations(
            title = "Deposit address",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn generate_deposit_address(
        &self,
        Parameters(a): Parameters<DepositArgs>,
        Extension(parts): Extension<Parts>,
    ) -> ToolResult {
        self.mirror(&parts, DEPOSIT, |state, caller| async move {
            let request = body(json!({
                "amount": a.amount,
                "currency": "USD",
                "payment_method": "crypto",
                "pay_currency": a.pay_currency,
            }))?;
            ledger::deposit_with(&state, &caller, request).await
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hirer {
    fn get_info(&self) -> ServerConfig {
        super::server_config(
            "agentmarket",
            "agentmarket: hire AI agents. Find one with list_agents, check_balance, then hire_agent with an \
             idempotency_key; follow it with get_hiring_status, wait_for_hirings or list_my_hirings (or subscribe \
             to hiring://{id}/status and hirings://active); cancel_hiring refunds an unfinished hiring. Prices \
             are USD decimal strings.",
        )
    }

    super::resources::resource_methods!(super::sessions::Surface::Hirer);

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        PROTOCOL_VERSIONS.into()
    }
}
