//! HTTP for wallets: balances, statements, deposits, withdrawals, fee quotes, and the
//! administrators' confirmations, credits and audit.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit::{self, AuditReport};
use super::deposits::{self, Deposit, DepositRequest, positive_amount};
use super::statement::{self, Transaction};
use super::withdrawals::{self, AddressRequest, WithdrawRequest, Withdrawal, WithdrawalAddress};
use super::{Principal, balances};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::envelope::Api;
use crate::http::extract::{ApiQuery, JsonObject};
use crate::money::{Amount, Settlement};
use crate::payments::Started;
use crate::state::AppState;
use crate::text::{Line, Text};
use crate::{accounts, agents};

/// The wallet the caller acts for: the agent (agent key or `X-Agent-ID`) or the user.
pub fn principal_of(caller: &Caller) -> ApiResult<Principal> {
    match (&caller.agent, &caller.user) {
        (Some(a), _) => Ok(Principal::Agent(a.id.clone())),
        (None, Some(u)) => Ok(Principal::User(u.id.clone())),
        (None, None) => Err(ApiError::unauthorized("no wallet for this credential")),
    }
}

#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    available: Amount,
    /// Held for tasks this wallet pays for.
    escrow: Amount,
    /// Earned by completed tasks, awaiting release.
    pending: Amount,
    /// available + escrow + pending.
    total: Amount,
    currency: &'static str,
}

/// The acting wallet's balances.
#[utoipa::path(get, path = "/api/v1/ledger/balance", tag = "ledger", responses((status = 200, body = BalanceView), (status = 401), (status = 403)))]
pub(crate) async fn balance(State(state): State<AppState>, caller: Caller) -> ApiResult<Api<BalanceView>> {
    Ok(Api::ok(balance_of(&state, &caller).await?))
}

/// `GET /ledger/balance` without the HTTP (MCP `check_balance` calls it too).
pub(crate) async fn balance_of(state: &AppState, caller: &Caller) -> ApiResult<BalanceView> {
    let b = balances(&state.db, &principal_of(caller)?).await?;
    Ok(BalanceView { available: b.available, escrow: b.escrow, pending: b.pending, total: b.total(), currency: "USD" })
}

/// The acting wallet's transactions, newest first.
#[utoipa::path(get, path = "/api/v1/ledger/transactions", tag = "ledger", params(statement::ListQuery),
    responses((status = 200, body = Vec<Transaction>), (status = 401), (status = 422)))]
pub(crate) async fn transactions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<statement::ListQuery>,
) -> ApiResult<Api<Vec<Transaction>>> {
    if let Some(kind) = q.kind.as_deref()
        && !statement::TYPES.contains(&kind)
    {
        return Err(ApiError::field("type", &format!("must be one of {}", statement::TYPES.join(", "))));
    }
    let page = statement::order().page(q.limit.as_deref(), q.cursor.as_deref(), q.offset.as_deref())?;
    let (items, meta) = statement::list(&state.db, &principal_of(&caller)?, q.kind.as_deref(), &page).await?;
    Ok(Api::page(items, meta))
}

#[derive(Serialize, ToSchema)]
pub struct DepositCreated {
    transaction_id: String,
    /// `completed` (sandbox) or `pending` (manual until an administrator confirms; a provider
    /// method until the provider reports the payment).
    status: String,
    amount: Amount,
    currency: &'static str,
    payment_method: String,
    /// The provider's payment page (NOWPayments invoice, Stripe Checkout).
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_url: Option<String>,
    /// `crypto` with `pay_currency`: the address to send to.
    #[serde(skip_serializing_if = "Option::is_none")]
    deposit_address: Option<String>,
    /// `crypto` with `pay_currency`: the exact amount of `pay_currency` to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pay_amount: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pay_currency: Option<String>,
}

/// Add money: `sandbox` (instant, when enabled), `manual` (pending until confirmed), `crypto`
/// (NOWPayments) or `card` (Stripe Checkout), pending until the provider reports the payment.
#[utoipa::path(post, path = "/api/v1/ledger/deposit", tag = "ledger", request_body = DepositRequest,
    responses((status = 201, body = DepositCreated), (status = 402, description = "PAYMENT_PROVIDER_NOT_CONFIGURED or PAYMENT_FAILED (sandbox disabled)"),
        (status = 422), (status = 502, description = "PAYMENT_PROVIDER_ERROR"), (status = 503, description = "PAYMENT_PROVIDER_UNAVAILABLE")))]
pub(crate) async fn deposit(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<DepositCreated>> {
    Ok(Api::created(deposit_with(&state, &caller, body).await?))
}

/// `POST /ledger/deposit` without the HTTP (MCP `generate_deposit_address` calls it too).
pub(crate) async fn deposit_with(state: &AppState, caller: &Caller, body: JsonObject) -> ApiResult<DepositCreated> {
    let Started { deposit: d, checkout } = make_deposit(state, caller, body).await?;
    let checkout = checkout.unwrap_or_default();
    Ok(DepositCreated {
        transaction_id: d.id,
        status: d.status,
        amount: d.amount,
        currency: "USD",
        payment_method: d.method,
        payment_url: checkout.payment_url,
        deposit_address: checkout.pay_address,
        pay_amount: checkout.pay_amount,
        pay_currency: checkout.pay_currency,
    })
}

async fn make_deposit(state: &AppState, caller: &Caller, body: JsonObject) -> ApiResult<Started> {
    let spec = body.parse::<DepositRequest>(None)?.validate(state.config.max_amount)?;
    crate::payments::start_deposit(state, &principal_of(caller)?, spec).await
}

#[derive(Serialize, ToSchema)]
pub struct PaymentIntent {
    id: String,
    status: String,
    amount: Amount,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

/// The same machinery as deposit, in the payment-intent shape (`payment_type` = method).
#[utoipa::path(post, path = "/api/v1/payments/create-intent", tag = "ledger", request_body = DepositRequest,
    responses((status = 201, body = PaymentIntent), (status = 402), (status = 422)))]
pub(crate) async fn create_intent(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<PaymentIntent>> {
    let Started { deposit: d, checkout } = make_deposit(&state, &caller, body).await?;
    let checkout = checkout.unwrap_or_default();
    Ok(Api::created(PaymentIntent {
        id: d.id,
        status: d.status,
        amount: d.amount,
        payment_url: checkout.payment_url,
        address: checkout.pay_address,
    }))
}

/// Saved payout addresses.
#[utoipa::path(get, path = "/api/v1/withdrawal-addresses", tag = "ledger", responses((status = 200, body = Vec<WithdrawalAddress>)))]
pub(crate) async fn list_addresses(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Api<Vec<WithdrawalAddress>>> {
    Ok(Api::ok(withdrawals::list_addresses(&state.db, &principal_of(&caller)?).await?))
}

/// Save a payout address.
#[utoipa::path(post, path = "/api/v1/withdrawal-addresses", tag = "ledger", request_body = AddressRequest,
    responses((status = 201, body = WithdrawalAddress), (status = 422)))]
pub(crate) async fn add_address(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<WithdrawalAddress>> {
    let req: AddressRequest = body.parse(Some("withdrawal_address"))?;
    Ok(Api::created(withdrawals::add_address(&state.db, &principal_of(&caller)?, req, state.now()).await?))
}

/// Remove a payout address.
#[utoipa::path(delete, path = "/api/v1/withdrawal-addresses/{id}", tag = "ledger", params(("id" = String, Path)),
    responses((status = 200, body = WithdrawalAddress), (status = 404)))]
pub(crate) async fn delete_address(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<WithdrawalAddress>> {
    Ok(Api::ok(withdrawals::delete_address(&state.db, &principal_of(&caller)?, &id, state.now()).await?))
}

/// Withdraw to a saved address: the amount is held at once; an administrator completes it.
#[utoipa::path(post, path = "/api/v1/ledger/withdraw", tag = "ledger", request_body = WithdrawRequest,
    responses((status = 201, body = Withdrawal), (status = 404), (status = 422, description = "INVALID_AMOUNT or INSUFFICIENT_BALANCE")))]
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> ApiResult<Api<Withdrawal>> {
    let req: WithdrawRequest = body.parse(None)?;
    let w =
        withdrawals::request(&state.db, &principal_of(&caller)?, req, state.withdrawal_bounds(), state.now()).await?;
    Ok(Api::created(w))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct QuoteQuery {
    /// Decimal string.
    price: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FeeQuote {
    price: Amount,
    fee_bps: i64,
    fee: Amount,
    provider_receives: Amount,
}

/// What the platform takes from a price, computed by the code that settles.
#[utoipa::path(get, path = "/api/v1/fees/quote", tag = "ledger", params(QuoteQuery), responses((status = 200, body = FeeQuote), (status = 422)))]
pub(crate) async fn fee_quote(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<QuoteQuery>,
) -> ApiResult<Api<FeeQuote>> {
    let price = q.price.as_deref().ok_or_else(|| ApiError::invalid_amount("price", "is required"))?;
    let price = Amount::parse_at_most(price.trim(), state.config.max_amount)
        .map_err(|e| ApiError::invalid_amount("price", e.to_string()))?;
    let s = Settlement::release(price, state.config.fee_bps);
    Ok(Api::ok(FeeQuote { price, fee_bps: state.config.fee_bps, fee: s.fee, provider_receives: s.to_provider }))
}

/// Administrators: confirm a pending manual deposit (credits it once).
#[utoipa::path(post, path = "/api/v1/admin/deposits/{id}/confirm", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = Deposit), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn confirm_deposit(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Api<Deposit>> {
    Ok(Api::ok(deposits::confirm(&state.db, &id, state.now()).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CompleteWithdrawal {
    /// The payout's transaction hash or reference (1–128 letters, digits, `. _ : -`).
    tx_hash: Option<Text>,
}

/// Administrators: the payout happened (optionally with its transaction hash); the held money
/// leaves the system.
#[utoipa::path(post, path = "/api/v1/admin/withdrawals/{id}/complete", tag = "admin", params(("id" = String, Path)), request_body = CompleteWithdrawal,
    responses((status = 200, body = Withdrawal), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub(crate) async fn complete_withdrawal(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Withdrawal>> {
    let req: CompleteWithdrawal = body.parse(None)?;
    let payout = req.tx_hash.map(|t| withdrawals::PayoutReference::parse("tx_hash", t.as_str())).transpose()?;
    Ok(Api::ok(withdrawals::finish(&state.db, &id, true, None, payout, state.now()).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FailWithdrawal {
    reason: Option<Text>,
}

/// Administrators: the payout failed; the held money returns to the wallet.
#[utoipa::path(post, path = "/api/v1/admin/withdrawals/{id}/fail", tag = "admin", params(("id" = String, Path)), request_body = FailWithdrawal,
    responses((status = 200, body = Withdrawal), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn fail_withdrawal(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<Api<Withdrawal>> {
    let req: FailWithdrawal = body.parse(None)?;
    Ok(Api::ok(withdrawals::finish(&state.db, &id, false, req.reason.map(String::from), None, state.now()).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreditRequest {
    /// A user's email, or an agent's UUID or DID.
    #[schema(required = true, min_length = 1)]
    principal: Option<Line>,
    #[schema(required = true, schema_with = crate::openapi::choice::amount)]
    amount: Option<Line>,
    reason: Option<Text>,
}

#[derive(Serialize, ToSchema)]
pub struct Credited {
    transaction_id: String,
    principal: String,
    amount: Amount,
}

/// Finds a wallet by user email or agent id/DID.
pub async fn find_principal(db: &crate::db::Db, name: &str) -> ApiResult<Principal> {
    if name.contains('@') {
        let user = accounts::users::find_by_email(db, name).await?.ok_or_else(|| ApiError::not_found("user"))?;
        return Ok(Principal::User(user.id));
    }
    let agent = agents::find_ref(db, name)
        .await?
        .filter(|a| a.status != "deleted")
        .ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(Principal::Agent(agent.id))
}

/// Administrators: credit a wallet (an adjustment from outside).
#[utoipa::path(post, path = "/api/v1/admin/credit", tag = "admin", request_body = CreditRequest,
    responses((status = 201, body = Credited), (status = 403), (status = 404), (status = 422)))]
pub(crate) async fn credit(State(state): State<AppState>, body: JsonObject) -> ApiResult<Api<Credited>> {
    let req: CreditRequest = body.parse(None)?;
    let name = req.principal.ok_or_else(|| ApiError::field("principal", "is required (email, agent id or DID)"))?;
    let amount = positive_amount("amount", req.amount.as_deref(), state.config.max_amount)?;
    let principal = find_principal(&state.db, name.trim()).await?;
    let reason = req.reason.unwrap_or_else(|| "operator credit".into());
    let id = deposits::credit(&state.db, &principal, amount, &reason, state.now()).await?;
    Ok(Api::created(Credited { transaction_id: id, principal: principal.key(), amount }))
}

/// Administrators: check every ledger invariant now (the result is stored for the admin page).
#[utoipa::path(get, path = "/api/v1/admin/ledger/audit", tag = "admin", responses((status = 200, body = AuditReport), (status = 403)))]
pub(crate) async fn run_audit(State(state): State<AppState>) -> ApiResult<Api<AuditReport>> {
    Ok(Api::ok(audit::run_and_record(&state.db, state.now()).await?))
}
