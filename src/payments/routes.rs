//! HTTP for payments: the providers' callbacks (outside `/api/v1`, authenticated by their
//! signatures alone), the methods this server accepts, and a provider deposit's live status.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde::Serialize;
use utoipa::ToSchema;

use super::nowpayments::{self, Outcome};
use super::store::{self, DepositView};
use super::{PaymentMethod, Provider, stripe};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::http::envelope::Api;
use crate::ledger::routes::principal_of;
use crate::state::AppState;

/// The callback routes, merged into the top-level router (they carry no API credential).
pub fn callbacks() -> Router<AppState> {
    Router::new().route("/webhooks/nowpayments", post(nowpayments_ipn)).route("/webhooks/stripe", post(stripe_event))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    received: bool,
    outcome: Outcome,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// NOWPayments IPN: verified (`x-nowpayments-sig`) before anything is read from it.
async fn nowpayments_ipn(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Api<Received>> {
    let secret = state.config.nowpayments_ipn_secret.as_ref().ok_or_else(|| Provider::NowPayments.not_configured())?;
    let verified = nowpayments::verify(&secret.0, header(&headers, "x-nowpayments-sig"), &body)?;
    let outcome = nowpayments::apply(&state, verified).await?;
    Ok(Api::ok(Received { received: true, outcome }))
}

/// Stripe event: verified (`Stripe-Signature`, raw bytes) before anything is read from it.
async fn stripe_event(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult<Api<Received>> {
    let secret = state.config.stripe_webhook_secret.as_ref().ok_or_else(|| Provider::Stripe.not_configured())?;
    stripe::verify(&secret.0, header(&headers, "stripe-signature"), &body, state.now() / 1000)?;
    let outcome = stripe::apply(&state, &body).await?;
    Ok(Api::ok(Received { received: true, outcome }))
}

/// The deposit methods this server accepts (providers only when configured).
#[utoipa::path(get, path = "/api/v1/payments/methods", tag = "ledger", responses((status = 200, body = Vec<PaymentMethod>)))]
pub(crate) async fn methods(State(state): State<AppState>) -> Api<Vec<PaymentMethod>> {
    Api::ok(super::methods(&state.config))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Currencies {
    /// Coin codes to send as `pay_currency` (`btc`, `usdttrc20`…).
    currencies: Vec<String>,
}

/// The coins a `crypto` deposit may name as `pay_currency`: NOWPayments' list, cached.
#[utoipa::path(get, path = "/api/v1/payments/nowpayments/currencies", tag = "ledger",
    responses((status = 200, body = Currencies), (status = 402, description = "PAYMENT_PROVIDER_NOT_CONFIGURED"),
        (status = 502, description = "PAYMENT_PROVIDER_ERROR"), (status = 503, description = "PAYMENT_PROVIDER_UNAVAILABLE")))]
pub(crate) async fn nowpayments_currencies(State(state): State<AppState>) -> ApiResult<Api<Currencies>> {
    if !Provider::NowPayments.is_configured(&state.config) {
        return Err(Provider::NowPayments.not_configured());
    }
    let currencies = nowpayments::Client::new(&state)?.currencies().await?;
    Ok(Api::ok(Currencies { currencies }))
}

/// One of the caller's provider deposits: what was asked, what arrived, the provider's status.
#[utoipa::path(get, path = "/api/v1/payments/deposits/{id}", tag = "ledger", params(("id" = String, Path)),
    responses((status = 200, body = DepositView), (status = 404)))]
pub(crate) async fn show_deposit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Api<DepositView>> {
    Ok(Api::ok(store::view(&state.db, &principal_of(&caller)?, &id).await?))
}
