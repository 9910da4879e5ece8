//! Real money in: deposits through payment providers (NOWPayments crypto invoices and payments,
//! Stripe Checkout), and the providers' signed callbacks that complete them.
//!
//! A provider deposit is created pending with the provider's invoice, payment or checkout session
//! (`start_deposit`); the provider's callback, once its signature is verified, moves it on
//! (`store::apply`). Crediting is a ledger entry from `world` in the same transaction as the
//! deposit's change to `completed`, guarded twice: the conditional update of the deposit and the
//! unique ledger reference `deposit:<id>`. A provider payment credits at most one deposit (a
//! unique index), so a repeated or out-of-order callback changes nothing twice.

pub mod amounts;
pub mod nowpayments;
pub mod reconcile;
pub mod routes;
pub mod store;
pub mod stripe;

use axum::http::StatusCode;
use serde::Serialize;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::hex::encode as hex;
use crate::ledger::Principal;
use crate::ledger::deposits::{self, Deposit, DepositSpec};
use crate::state::AppState;

/// A payment provider this server can send payers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    NowPayments,
    Stripe,
}

impl Provider {
    /// The provider a deposit method goes through (`None`: `sandbox` and `manual`).
    pub fn for_method(method: &str) -> Option<Provider> {
        match method {
            "crypto" | "nowpayments" => Some(Provider::NowPayments),
            "card" | "stripe" => Some(Provider::Stripe),
            _ => None,
        }
    }

    /// Parses `deposits.provider`.
    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "nowpayments" => Some(Provider::NowPayments),
            "stripe" => Some(Provider::Stripe),
            _ => None,
        }
    }

    /// As stored in `deposits.provider` and `provider_events.provider`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::NowPayments => "nowpayments",
            Provider::Stripe => "stripe",
        }
    }

    /// The flags that enable it, for the `PAYMENT_PROVIDER_NOT_CONFIGURED` message.
    fn flags(self) -> &'static str {
        match self {
            Provider::NowPayments => "--nowpayments-api-key and --nowpayments-ipn-secret",
            Provider::Stripe => "--stripe-secret-key and --stripe-webhook-secret",
        }
    }

    pub fn is_configured(self, config: &Config) -> bool {
        match self {
            Provider::NowPayments => config.nowpayments_api_key.is_some() && config.nowpayments_ipn_secret.is_some(),
            Provider::Stripe => config.stripe_secret_key.is_some() && config.stripe_webhook_secret.is_some(),
        }
    }

    pub fn not_configured(self) -> ApiError {
        ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "PAYMENT_PROVIDER_NOT_CONFIGURED",
            format!("{} payments are not configured on this server (set {})", self.name(), self.flags()),
        )
    }
}

/// The provider could not be reached, or did not answer in time: nothing was created.
pub fn unavailable(provider: Provider) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "PAYMENT_PROVIDER_UNAVAILABLE",
        format!("{} could not be reached; no deposit was created, try again later", provider.name()),
    )
    .with_retry_after(30)
}

/// The provider answered with an error: nothing was created.
pub fn provider_error(provider: Provider) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "PAYMENT_PROVIDER_ERROR",
        format!("{} refused to create the payment; no deposit was created", provider.name()),
    )
}

/// A callback whose signature does not verify: nothing is read from it.
pub fn bad_signature(what: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE", format!("{what}: the signature does not verify"))
}

/// What the provider returned for a new deposit: where the payer goes, or where to send coins.
#[derive(Debug, Clone, Default)]
pub struct Checkout {
    /// The invoice id, payment id or checkout session id.
    pub provider_ref: String,
    pub payment_url: Option<String>,
    pub pay_address: Option<String>,
    /// The exact crypto amount to send, as the provider printed it.
    pub pay_amount: Option<String>,
    pub pay_currency: Option<String>,
}

/// A new deposit and, for a provider deposit, where the payer goes next.
#[derive(Debug, Clone)]
pub struct Started {
    pub deposit: Deposit,
    pub checkout: Option<Checkout>,
}

/// Starts a deposit by any method: `sandbox` and `manual` as before, a provider method by
/// creating the provider's invoice, payment or checkout session first (so a provider outage
/// leaves no pending deposit behind), then the pending deposit that its callback completes.
pub async fn start_deposit(state: &AppState, principal: &Principal, spec: DepositSpec) -> ApiResult<Started> {
    let Some(provider) = Provider::for_method(&spec.method) else {
        if spec.pay_currency.is_some() {
            return Err(ApiError::field("pay_currency", "is only accepted with the crypto method"));
        }
        let deposit =
            deposits::create(&state.db, principal, spec, state.config.enable_sandbox_deposits, state.now()).await?;
        return Ok(Started { deposit, checkout: None });
    };
    if !provider.is_configured(&state.config) {
        return Err(provider.not_configured());
    }
    let id = uuid::Uuid::now_v7().to_string();
    let urls = ReturnUrls::new(&state.config.public_url, provider, &id);
    let checkout = match provider {
        Provider::NowPayments => {
            nowpayments::Client::new(state)?.create(&id, spec.amount, spec.pay_currency.as_deref(), &urls).await?
        }
        Provider::Stripe => {
            if spec.pay_currency.is_some() {
                return Err(ApiError::field("pay_currency", "is only accepted with the crypto method"));
            }
            stripe::Client::new(state)?.create_checkout(&id, spec.amount, &urls).await?
        }
    };
    let deposit = store::insert_pending(&state.db, &id, principal, &spec, provider, &checkout, state.now()).await?;
    metrics::counter!("agentmarket_deposits_total", "method" => spec.method.clone(), "status" => "pending")
        .increment(1);
    Ok(Started { deposit, checkout: Some(checkout) })
}

/// Where a provider calls back and where it sends the payer afterwards.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    pub callback: String,
    pub success: String,
    pub cancel: String,
}

impl ReturnUrls {
    fn new(public_url: &str, provider: Provider, deposit_id: &str) -> ReturnUrls {
        let base = public_url.trim_end_matches('/');
        ReturnUrls {
            callback: format!("{base}/webhooks/{}", provider.name()),
            success: format!("{base}/dashboard/wallet?deposit={deposit_id}&result=success"),
            cancel: format!("{base}/dashboard/wallet?deposit={deposit_id}&result=cancelled"),
        }
    }
}

/// One way to pay in, as `GET /payments/methods` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentMethod {
    /// The `payment_method` (or `payment_type`) to send.
    pub method: &'static str,
    /// Other names accepted for the same method.
    pub aliases: Vec<&'static str>,
    /// The provider behind it, if any.
    pub provider: Option<&'static str>,
    /// Whether a deposit is credited at once (`sandbox`) or after confirmation.
    pub instant: bool,
}

/// The methods this server accepts, given its configuration.
pub fn methods(config: &Config) -> Vec<PaymentMethod> {
    let mut out = Vec::new();
    if config.enable_sandbox_deposits {
        out.push(PaymentMethod { method: "sandbox", aliases: vec![], provider: None, instant: true });
    }
    out.push(PaymentMethod { method: "manual", aliases: vec![], provider: None, instant: false });
    if Provider::NowPayments.is_configured(config) {
        out.push(PaymentMethod {
            method: "crypto",
            aliases: vec!["nowpayments"],
            provider: Some("nowpayments"),
            instant: false,
        });
    }
    if Provider::Stripe.is_configured(config) {
        out.push(PaymentMethod { method: "card", aliases: vec!["stripe"], provider: Some("stripe"), instant: false });
    }
    out
}

/// Lowercase hex of `bytes`.
/// Equal in constant time (for equal lengths; a length difference is not a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A provider URL, checked against the outbound policy like every outbound call.
fn checked_url(state: &AppState, provider: Provider, url: &str) -> ApiResult<url::Url> {
    crate::http::outbound::check_url(url, state.config.allow_private_network).map_err(|e| {
        tracing::error!(provider = provider.name(), error = %e, "the provider API URL is refused by the outbound policy");
        provider_error(provider)
    })
}

/// GETs `url` (a read: safe to try twice) and reads the JSON answer.
async fn get_json(
    state: &AppState,
    provider: Provider,
    url: &str,
    auth: (&str, String),
) -> ApiResult<serde_json::Value> {
    let url = checked_url(state, provider, url)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match state.http.get(url.clone()).header(auth.0, auth.1.as_str()).send().await {
            Err(e) if attempt < 2 && (e.is_connect() || e.is_timeout()) => continue,
            Err(e) => {
                tracing::warn!(provider = provider.name(), error = %e, "the provider could not be reached");
                return Err(unavailable(provider));
            }
            Ok(res) => return read_answer(provider, url.path(), res).await,
        }
    }
}

/// A provider's JSON answer; an error status is logged (its body names no secret of ours) and
/// becomes `PAYMENT_PROVIDER_ERROR` (4xx) or `PAYMENT_PROVIDER_UNAVAILABLE` (5xx).
async fn read_answer(provider: Provider, path: &str, res: reqwest::Response) -> ApiResult<serde_json::Value> {
    let status = res.status();
    let text = res.text().await.map_err(|_| unavailable(provider))?;
    if !status.is_success() {
        let excerpt: String = text.chars().take(500).collect();
        tracing::warn!(provider = provider.name(), path, status = status.as_u16(), body = %excerpt, "the provider refused");
        return Err(if status.is_server_error() { unavailable(provider) } else { provider_error(provider) });
    }
    serde_json::from_str(&text).map_err(|_| {
        tracing::warn!(provider = provider.name(), path, "the provider answered something other than JSON");
        provider_error(provider)
    })
}
