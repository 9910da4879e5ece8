//! The route table: every `/api/v1` endpoint, with who may call it (`Access`, naming the scopes
//! that grant it) and the rate limit it counts against. The router, the guard in front of every
//! handler, the OpenAPI document and the tests' list of operations all come from this table, so
//! an endpoint cannot be served without a declared access rule. Method and path come from each
//! handler's `#[utoipa::path]`.
//!
//! Agent keys hold every scope over their own agent; a user key holds the scopes it was given.

use crate::auth::scope::Scope::*;
use crate::endpoint;
use crate::http::endpoint::Access::*;
use crate::http::endpoint::Endpoint;
use crate::http::rate_limit::Limit::*;

pub fn table() -> Vec<Endpoint> {
    vec![
        // Accounts and user API keys.
        endpoint!(accounts::routes, register, Public, Signup),
        endpoint!(accounts::routes, me, Scoped(&[AccountRead]), General),
        endpoint!(accounts::routes, my_agents, Scoped(&[AgentsRead]), General),
        endpoint!(accounts::routes, list_keys, Scoped(&[AccountRead]), General),
        endpoint!(accounts::routes, create_key, Scoped(&[AccountWrite]), General),
        endpoint!(accounts::routes, revoke_key, Scoped(&[AccountWrite]), General),
        endpoint!(accounts::routes, roll_key, Scoped(&[AccountWrite]), General),
        // Agents and the marketplace.
        endpoint!(agents::routes, register, PublicOrScoped(&[AgentsWrite]), AnonymousRegister),
        endpoint!(agents::routes, create_owned, Scoped(&[AgentsWrite]), General),
        endpoint!(agents::routes, list, PublicOrScoped(&[AgentsRead, AgentsDiscover]), General),
        endpoint!(agents::routes, discover, PublicOrScoped(&[AgentsDiscover, AgentsRead]), General),
        endpoint!(agents::routes, show, PublicOrScoped(&[AgentsRead, AgentsDiscover]), General),
        endpoint!(agents::routes, update, Scoped(&[AgentsWrite]), General),
        endpoint!(agents::routes, replace, Scoped(&[AgentsWrite]), General),
        endpoint!(agents::routes, remove, Scoped(&[AgentsWrite]), General),
        endpoint!(agents::routes, assign, Scoped(&[AgentsWrite]), General),
        endpoint!(agents::routes, create_credential, Scoped(&[AgentsWrite]), General),
        endpoint!(agents::routes, list_credentials, Scoped(&[AgentsRead]), General),
        endpoint!(agents::routes, revoke_credential, Scoped(&[AgentsWrite]), General),
        endpoint!(agents::routes, capabilities, Public, General),
        // Sessions: exchanging a key for a session of the same rights, or ending sessions,
        // grants nothing new, so any valid credential may; rotating a key mints one.
        endpoint!(auth::routes, authenticate, Credential, General),
        endpoint!(auth::routes, logout, Credential, General),
        endpoint!(auth::routes, rotate_key, Scoped(&[AccountWrite]), General),
        endpoint!(http, readiness, Public, General),
        // Wallets and money.
        endpoint!(ledger::routes, balance, Scoped(&[BalanceRead]), General),
        endpoint!(ledger::routes, transactions, Scoped(&[BalanceRead]), General),
        endpoint!(ledger::routes, deposit, Scoped(&[DepositsCreate]), Financial),
        endpoint!(ledger::routes, create_intent, Scoped(&[DepositsCreate]), Financial),
        endpoint!(payments::routes, methods, Public, General),
        endpoint!(payments::routes, nowpayments_currencies, Scoped(&[DepositsCreate, BalanceRead]), General),
        endpoint!(payments::routes, show_deposit, Scoped(&[BalanceRead, DepositsCreate]), General),
        endpoint!(ledger::routes, list_addresses, Scoped(&[BalanceRead, WithdrawalsCreate]), General),
        endpoint!(ledger::routes, add_address, Scoped(&[WithdrawalsCreate]), General),
        endpoint!(ledger::routes, delete_address, Scoped(&[WithdrawalsCreate]), General),
        endpoint!(ledger::routes, withdraw, Scoped(&[WithdrawalsCreate]), Withdrawal),
        endpoint!(ledger::routes, fee_quote, Public, General),
        endpoint!(ledger::routes, confirm_deposit, AdminOnly, General),
        endpoint!(ledger::routes, complete_withdrawal, AdminOnly, General),
        endpoint!(ledger::routes, fail_withdrawal, AdminOnly, General),
        endpoint!(ledger::routes, credit, AdminOnly, General),
        endpoint!(ledger::routes, run_audit, AdminOnly, General),
        // Tasks: the client side needs tasks:write to act, the provider side the same.
        endpoint!(tasks::routes, create, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, list, Scoped(&[TasksRead]), General),
        endpoint!(tasks::routes, show, Scoped(&[TasksRead]), General),
        endpoint!(tasks::routes, pay, Scoped(&[TasksWrite]), Financial),
        endpoint!(tasks::routes, show_payment, Scoped(&[TasksRead]), General),
        endpoint!(tasks::routes, claim, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, progress, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, complete, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, complete_put, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, fail, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, fail_put, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, cancel, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, accept, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, reassign, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, timeline, Scoped(&[TasksRead]), General),
        endpoint!(tasks::routes, attempts, Scoped(&[TasksRead]), General),
        endpoint!(tasks::routes, post_message, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::routes, messages, Scoped(&[TasksRead]), General),
        // Disputes.
        endpoint!(tasks::dispute_routes, open, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::dispute_routes, list, Scoped(&[TasksRead]), General),
        endpoint!(tasks::dispute_routes, show, Scoped(&[TasksRead]), General),
        endpoint!(tasks::dispute_routes, evidence, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::dispute_routes, resolve, AdminOnly, General),
        // Hirings: the hirer's side (hire:create, hirings:read, hirings:cancel) and the hired
        // agent's side (tasks:read to see its queue, tasks:write to deliver).
        endpoint!(tasks::hiring_routes, hire, Scoped(&[HireCreate]), Financial),
        endpoint!(tasks::hiring_routes, list, Scoped(&[HiringsRead]), General),
        endpoint!(tasks::hiring_routes, pending, Scoped(&[TasksRead]), General),
        endpoint!(tasks::hiring_routes, show, Scoped(&[HiringsRead, TasksRead]), General),
        endpoint!(tasks::hiring_routes, cancel, Scoped(&[HiringsCancel]), General),
        endpoint!(tasks::hiring_routes, retry, Scoped(&[HireCreate]), General),
        endpoint!(tasks::hiring_routes, post_message, Scoped(&[HireCreate, TasksWrite]), General),
        endpoint!(tasks::hiring_routes, messages, Scoped(&[HiringsRead, TasksRead]), General),
        endpoint!(tasks::hiring_routes, result, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::hiring_routes, failure, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::stream, emit, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::stream, read, Scoped(&[HiringsRead, TasksRead]), General),
        // Artifacts (results) and uploads (documents sent along).
        endpoint!(tasks::artifacts, add_to_task, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::artifacts, list_for_task, Scoped(&[ArtifactsRead, TasksRead, HiringsRead]), General),
        endpoint!(tasks::artifacts, add_to_hiring, Scoped(&[TasksWrite]), General),
        endpoint!(tasks::artifacts, list_for_hiring, Scoped(&[ArtifactsRead, HiringsRead, TasksRead]), General),
        endpoint!(tasks::artifacts, download, Scoped(&[ArtifactsRead, TasksRead, HiringsRead]), General),
        endpoint!(tasks::artifacts, upload, Scoped(&[HireCreate, TasksWrite]), General),
        endpoint!(tasks::artifacts, download_upload, Scoped(&[ArtifactsRead, TasksRead, HiringsRead]), General),
        // Webhook subscriptions (listing shows where events go, so it needs the same scope).
        endpoint!(webhooks::routes, create, Scoped(&[WebhooksWrite]), General),
        endpoint!(webhooks::routes, list, Scoped(&[WebhooksWrite]), General),
        endpoint!(webhooks::routes, remove, Scoped(&[WebhooksWrite]), General),
    ]
}
