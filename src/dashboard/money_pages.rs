//! Dashboard pages for tasks and wallets: lists, a task's page with the client's actions, and
//! balances with deposits. Every action goes through the task engine and the ledger.

use std::collections::HashMap;

use super::Form;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::pages::{line, message_of};
use super::view::{filters, usd};
use super::{Browser, Nav, internal, render, require_browser};
use crate::error::ApiError;
use crate::ledger::{self, Principal};
use crate::state::AppState;
use crate::tasks::{self, store};

type Fields = HashMap<String, String>;

pub struct TaskLine {
    id: String,
    short_id: String,
    capability: String,
    provider: String,
    role: &'static str,
    price: String,
    status: String,
    payment_status: String,
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    nav: Option<Nav>,
    pager: super::Pager,
    statuses: Vec<String>,
    status: String,
    tasks: Vec<TaskLine>,
}

pub async fn tasks(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    let b = match require_browser(&state, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let owned = match crate::agents::store::owned_ids(&state.db, &b.user.id).await {
        Ok(o) => o,
        Err(e) => return internal(e),
    };
    let status = q.get("status").cloned().unwrap_or_default();
    let filter = store::ListFilter {
        client_agents: owned.clone(),
        client_user: Some(&b.user.id),
        provider_agents: owned.clone(),
        status: (!status.is_empty()).then_some(status.as_str()),
        agent_id: None,
    };
    let mut pager = super::Pager::from_query(&q, format!("/dashboard/tasks?status={status}&"));
    let spec = pager.spec(&store::list_order("tasks"));
    let rows = match store::list(&state.db, &filter, &spec).await {
        Ok((rows, meta)) => {
            pager.next = meta.cursor;
            rows
        }
        Err(e) => return internal(e),
    };
    let tasks = rows
        .iter()
        .map(|t| TaskLine {
            id: t.id.clone(),
            short_id: super::task_page::short(&t.id),
            capability: t.capability.clone(),
            provider: t.provider_agent_did.clone(),
            role: if owned.contains(&t.provider_agent_id) { "provider" } else { "client" },
            price: usd(t.price()),
            status: t.status.to_string(),
            payment_status: t.payment_status.to_string(),
        })
        .collect();
    let statuses = tasks::model::Status::names().into_iter().map(String::from).collect();
    render(TasksPage { nav: b.nav("tasks"), pager, statuses, status, tasks })
}

/// Owned agents whose earnings the wallet page draws (the first ones listed).
const MAX_AGENT_CHARTS: usize = 12;

pub struct WalletLine {
    key: String,
    label: String,
    available: String,
    escrow: String,
    pending: String,
    total: String,
}

pub struct TxLine {
    created_at: String,
    kind: String,
    amount: String,
    status: String,
    task_id: Option<String>,
}

#[derive(Template)]
#[template(path = "wallet.html")]
struct WalletPage {
    nav: Option<Nav>,
    now: i64,
    balance_chart: super::charts::Chart,
    earnings_charts: Vec<super::charts::Chart>,
    pager: super::Pager,
    csrf: String,
    wallets: Vec<WalletLine>,
    methods: Vec<&'static str>,
    addresses: Vec<ledger::withdrawals::WithdrawalAddress>,
    transactions: Vec<TxLine>,
    notice: Option<String>,
    error: Option<String>,
}

async fn wallet_page(state: &AppState, b: &Browser, notice: Option<String>, error: Option<&ApiError>) -> Response {
    wallet_page_at(state, b, super::Pager::from_query(&Fields::new(), "/dashboard/wallet?".into()), notice, error).await
}

async fn wallet_page_at(
    state: &AppState,
    b: &Browser,
    mut pager: super::Pager,
    notice: Option<String>,
    error: Option<&ApiError>,
) -> Response {
    let mut principals = vec![(Principal::User(b.user.id.clone()), "You".to_string())];
    match crate::agents::store::list_owned(&state.db, &b.user.id).await {
        Ok(agents) => principals.extend(agents.into_iter().map(|a| (Principal::Agent(a.id), a.name))),
        Err(e) => return internal(e),
    }
    let mut wallets = Vec::new();
    for (p, label) in &principals {
        let bal = match ledger::balances(&state.db, p).await {
            Ok(x) => x,
            Err(e) => return internal(e),
        };
        wallets.push(WalletLine {
            key: p.key().replace(':', "-"),
            label: label.clone(),
            available: usd(bal.available),
            escrow: usd(bal.escrow),
            pending: usd(bal.pending),
            total: usd(bal.total()),
        });
    }
    let spec = pager.spec(&ledger::statement::order());
    let (items, meta) = match ledger::statement::list(&state.db, &principals[0].0, None, &spec).await {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    pager.next = meta.cursor;
    let transactions = items
        .into_iter()
        .map(|t| TxLine {
            created_at: t.created_at,
            kind: t.kind,
            amount: usd(t.amount),
            status: t.status,
            task_id: t.task_id,
        })
        .collect();
    let methods = crate::payments::methods(&state.config).into_iter().map(|m| m.method).collect();
    let addresses = match ledger::withdrawals::list_addresses(&state.db, &principals[0].0).await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let agents: Vec<(String, String)> = principals[1..]
        .iter()
        .filter_map(|(p, name)| match p {
            Principal::Agent(id) => Some((id.clone(), name.clone())),
            Principal::User(_) => None,
        })
        .take(MAX_AGENT_CHARTS)
        .collect();
    let (balance_chart, earnings_charts) = match super::charts::wallet(state, &principals[0].0, &agents).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = WalletPage {
        now: state.now(),
        balance_chart,
        earnings_charts,
        pager,
        addresses,
        nav: b.nav("wallet"),
        csrf: b.session.csrf_token.clone(),
        wallets,
        methods,
        transactions,
        notice,
        error: error.map(message_of),
    };
    (status, render(page)).into_response()
}

pub async fn wallet(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    match require_browser(&state, &headers).await {
        Ok(b) => {
            // Back from a payment provider's page (its success or cancel URL).
            let notice = match q.get("result").map(String::as_str) {
                Some("success") => Some("Payment sent. The deposit is credited once the provider confirms it.".into()),
                Some("cancelled") => Some("Payment cancelled; nothing was charged.".into()),
                _ => None,
            };
            wallet_page_at(&state, &b, super::Pager::from_query(&q, "/dashboard/wallet?".into()), notice, None).await
        }
        Err(r) => r,
    }
}

pub async fn deposit(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = || -> Result<ledger::deposits::DepositRequest, ApiError> {
        Ok(ledger::deposits::DepositRequest {
            amount: line(&form, "amount")?,
            currency: Some("USD".into()),
            payment_method: line(&form, "method")?,
            payment_type: None,
            pay_currency: None,
        })
    };
    let principal = Principal::User(b.user.id.clone());
    let done = match request().and_then(|r| r.validate(state.config.max_amount)) {
        Ok(spec) => crate::payments::start_deposit(&state, &principal, spec).await,
        Err(e) => Err(e),
    };
    // A provider deposit continues on the provider's payment page, which sends the person back.
    if let Ok(crate::payments::Started { checkout: Some(c), .. }) = &done
        && let Some(url) = &c.payment_url
    {
        return axum::response::Redirect::to(url).into_response();
    }
    match done.map(|s| s.deposit) {
        Ok(d) if d.status == "completed" => {
            wallet_page(&state, &b, Some(format!("{} USD added.", d.amount)), None).await
        }
        Ok(d) => {
            wallet_page(&state, &b, Some(format!("Deposit of {} USD is pending confirmation.", d.amount)), None).await
        }
        Err(e) => wallet_page(&state, &b, None, Some(&e)).await,
    }
}

/// Saves a payout address or withdraws to one (held at once until an administrator pays out).
pub async fn wallet_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let b = match super::posting_browser(&state, &headers, &form).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let principal = Principal::User(b.user.id.clone());
    let text = |k: &str| line(&form, k).map(|v| v.filter(|v| !v.is_empty()));
    let done: Result<String, ApiError> = match action.as_str() {
        "addresses" => {
            let req = || -> Result<_, ApiError> {
                Ok(ledger::withdrawals::AddressRequest {
                    currency: text("currency")?,
                    network: text("network")?,
                    address: text("address")?,
                    label: text("label")?,
                })
            };
            match req() {
                Ok(req) => ledger::withdrawals::add_address(&state.db, &principal, req, state.now())
                    .await
                    .map(|a| format!("Address {} saved.", a.address)),
                Err(e) => Err(e),
            }
        }
        "withdraw" => {
            let req = || -> Result<_, ApiError> {
                Ok(ledger::withdrawals::WithdrawRequest {
                    amount: text("amount")?,
                    currency: Some("USD".into()),
                    withdrawal_address_id: text("withdrawal_address_id")?,
                })
            };
            match req() {
                Ok(req) => {
                    ledger::withdrawals::request(&state.db, &principal, req, state.withdrawal_bounds(), state.now())
                        .await
                        .map(|w| format!("Withdrawal of {} USD requested; it is pending.", w.amount))
                }
                Err(e) => Err(e),
            }
        }
        _ => return (StatusCode::NOT_FOUND, axum::response::Html("<h1>Not found</h1>")).into_response(),
    };
    match done {
        Ok(notice) => wallet_page(&state, &b, Some(notice), None).await,
        Err(e) => wallet_page(&state, &b, None, Some(&e)).await,
    }
}
