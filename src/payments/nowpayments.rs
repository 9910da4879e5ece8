//! NOWPayments: invoices (a hosted page where the payer picks a coin) and payments (a coin
//! named by the client: an address and an exact amount), and the IPN callback.
//!
//! The IPN's `x-nowpayments-sig` is the lowercase hex HMAC-SHA512, keyed with the IPN secret,
//! of the body re-serialised compactly with its keys sorted at every level. `serde_json::Value`
//! keeps objects in a `BTreeMap` (the `preserve_order` feature is off), so parsing and printing
//! it again sorts every level, as NOWPayments' own `JSON.stringify(sortObject(body))` does.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha512;

use super::amounts::{self, id_text};
use super::{Checkout, Provider, ReturnUrls, bad_signature, store};
use crate::error::{ApiError, ApiResult};
use crate::ledger::deposits::DepositStatus;
use crate::money::Amount;
use crate::state::AppState;

const PROVIDER: Provider = Provider::NowPayments;

/// A NOWPayments payment status (`payment_status` of a payment and of its IPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Waiting,
    Confirming,
    Confirmed,
    Sending,
    PartiallyPaid,
    Finished,
    Failed,
    Refunded,
    Expired,
}

impl PaymentStatus {
    pub fn parse(s: &str) -> Option<PaymentStatus> {
        Some(match s {
            "waiting" => PaymentStatus::Waiting,
            "confirming" => PaymentStatus::Confirming,
            "confirmed" => PaymentStatus::Confirmed,
            "sending" => PaymentStatus::Sending,
            "partially_paid" => PaymentStatus::PartiallyPaid,
            "finished" => PaymentStatus::Finished,
            "failed" => PaymentStatus::Failed,
            "refunded" => PaymentStatus::Refunded,
            "expired" => PaymentStatus::Expired,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Waiting => "waiting",
            PaymentStatus::Confirming => "confirming",
            PaymentStatus::Confirmed => "confirmed",
            PaymentStatus::Sending => "sending",
            PaymentStatus::PartiallyPaid => "partially_paid",
            PaymentStatus::Finished => "finished",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Expired => "expired",
        }
    }
}

/// The NOWPayments API, as configured.
pub struct Client<'a> {
    state: &'a AppState,
    api_key: &'a str,
    base: String,
}

impl<'a> Client<'a> {
    pub fn new(state: &'a AppState) -> ApiResult<Client<'a>> {
        let api_key = state.config.nowpayments_api_key.as_ref().ok_or_else(|| PROVIDER.not_configured())?;
        let base = state.config.nowpayments_api_url.trim_end_matches('/').to_string();
        Ok(Client { state, api_key: &api_key.0, base })
    }

    /// An invoice (a hosted payment page), or with `pay_currency` a payment (an address and the
    /// exact coin amount). `order_id` is our deposit id: the IPN names it.
    pub async fn create(
        &self,
        deposit_id: &str,
        amount: Amount,
        pay_currency: Option<&str>,
        urls: &ReturnUrls,
    ) -> ApiResult<Checkout> {
        let mut body = json!({
            "price_currency": "usd",
            "order_id": deposit_id,
            "order_description": format!("Wallet deposit {deposit_id}"),
            "ipn_callback_url": urls.callback,
        });
        let path = match pay_currency {
            Some(coin) => {
                body["pay_currency"] = json!(coin);
                "/payment"
            }
            None => {
                body["success_url"] = json!(urls.success);
                body["cancel_url"] = json!(urls.cancel);
                body["partially_paid_url"] = json!(urls.success);
                "/invoice"
            }
        };
        let answer = self.post(path, body, amount).await?;
        let provider_ref = id_text(answer.get("id").or_else(|| answer.get("payment_id")))
            .ok_or_else(|| unexpected("the answer has no id"))?;
        let text = |k: &str| answer.get(k).and_then(Value::as_str).map(String::from);
        let checkout = match pay_currency {
            None => Checkout {
                provider_ref,
                payment_url: Some(text("invoice_url").ok_or_else(|| unexpected("the invoice has no invoice_url"))?),
                ..Checkout::default()
            },
            Some(coin) => Checkout {
                provider_ref,
                payment_url: None,
                pay_address: Some(text("pay_address").ok_or_else(|| unexpected("the payment has no pay_address"))?),
                pay_amount: id_text(answer.get("pay_amount")),
                pay_currency: Some(text("pay_currency").unwrap_or_else(|| coin.to_string())),
            },
        };
        Ok(checkout)
    }

    /// POSTs `body` with `price_amount` = `amount`. The amount is written into the JSON text as
    /// the exact decimal (a float would round large amounts). A request that never reached the
    /// provider (connection refused) is tried once more; one that did is not, as NOWPayments
    /// has no idempotency key and a second invoice would be a second bill.
    async fn post(&self, path: &str, body: Value, amount: Amount) -> ApiResult<Value> {
        let url = super::checked_url(self.state, PROVIDER, &format!("{}{path}", self.base))?;
        let fields = body.to_string();
        let text = format!("{{\"price_amount\":{amount},{}", &fields[1..]);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .state
                .http
                .post(url.clone())
                .header("x-api-key", self.api_key)
                .header("content-type", "application/json")
                .body(text.clone())
                .send()
                .await;
            return match sent {
                Err(e) if e.is_connect() && attempt < 2 => continue,
                Err(e) => {
                    tracing::warn!(error = %e, path, "NOWPayments could not be reached");
                    Err(super::unavailable(PROVIDER))
                }
                Ok(res) => super::read_answer(PROVIDER, path, res).await,
            };
        }
    }
}

impl Client<'_> {
    /// GETs `path` (`/payment/<id>`, `/payment/?invoiceId=…`).
    pub async fn get(&self, path: &str) -> ApiResult<Value> {
        let url = format!("{}{path}", self.base);
        super::get_json(self.state, PROVIDER, &url, ("x-api-key", self.api_key.to_string())).await
    }

    /// The coins NOWPayments accepts (`GET /currencies`), cached for `CURRENCIES_TTL_MS` per API
    /// URL: the list changes rarely and every wallet page may ask.
    pub async fn currencies(&self) -> ApiResult<Vec<String>> {
        static CACHE: std::sync::Mutex<Option<CoinLists>> = std::sync::Mutex::new(None);
        let now = self.state.now();
        let cached = CACHE.lock().ok().and_then(|c| c.as_ref()?.get(&self.base).cloned());
        if let Some((at, list)) = cached
            && now - at < CURRENCIES_TTL_MS
        {
            return Ok(list);
        }
        let url = super::checked_url(self.state, PROVIDER, &format!("{}/currencies", self.base))?;
        let sent = self.state.http.get(url).header("x-api-key", self.api_key).send().await;
        let answer = match sent {
            Ok(res) => super::read_answer(PROVIDER, "/currencies", res).await?,
            Err(e) => {
                tracing::warn!(error = %e, "NOWPayments could not be reached");
                return Err(super::unavailable(PROVIDER));
            }
        };
        let list: Vec<String> = answer["currencies"]
            .as_array()
            .ok_or_else(|| unexpected("the currencies answer has no list"))?
            .iter()
            .filter_map(|c| c.as_str().or_else(|| c["code"].as_str()).map(str::to_ascii_lowercase))
            .collect();
        if let Ok(mut cache) = CACHE.lock() {
            cache.get_or_insert_with(Default::default).insert(self.base.clone(), (now, list.clone()));
        }
        Ok(list)
    }
}

/// Coin lists by API URL, with when each was fetched (ms).
type CoinLists = std::collections::HashMap<String, (i64, Vec<String>)>;

/// How long the list of coins is reused, in milliseconds.
const CURRENCIES_TTL_MS: i64 = 10 * 60 * 1000;

fn unexpected(what: &str) -> ApiError {
    tracing::warn!(what, "NOWPayments answered something unexpected");
    super::provider_error(PROVIDER)
}

/// The hex signature NOWPayments sends for `body` (keys sorted at every level).
pub fn signature(secret: &str, body: &Value) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body.to_string().as_bytes());
    super::hex(&mac.finalize().into_bytes())
}

/// Checks `x-nowpayments-sig` over the raw body; the body, parsed, only when it verifies.
pub fn verify(secret: &str, header: Option<&str>, raw: &[u8]) -> ApiResult<Value> {
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or_else(|| bad_signature("x-nowpayments-sig"))?;
    let body: Value = serde_json::from_slice(raw).map_err(|_| bad_signature("x-nowpayments-sig"))?;
    let expected = signature(secret, &body);
    if super::same(expected.as_bytes(), header.to_ascii_lowercase().as_bytes()) {
        Ok(body)
    } else {
        Err(bad_signature("x-nowpayments-sig"))
    }
}

/// The fields of an IPN this server acts on.
#[derive(Debug, Deserialize)]
struct Ipn {
    payment_id: Option<Value>,
    parent_payment_id: Option<Value>,
    payment_status: Option<String>,
    order_id: Option<Value>,
    price_amount: Option<Value>,
    price_currency: Option<String>,
    pay_amount: Option<Value>,
    actually_paid: Option<Value>,
    actually_paid_at_fiat: Option<Value>,
}

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The deposit was credited.
    Credited,
    /// A further payment to the address became a deposit of its own and was credited.
    CreditedFollowUp,
    /// The deposit failed (expired, failed, refunded before it finished).
    Failed,
    /// The provider's progress was recorded on the pending deposit.
    Progress,
    /// Nothing changed: already applied, out of order, or not ours.
    Unchanged,
}

/// Applies a verified IPN: at most one change, in one transaction.
pub async fn apply(state: &AppState, body: Value) -> ApiResult<Outcome> {
    let ipn: Ipn = serde_json::from_value(body).map_err(|e| ApiError::malformed_json(format!("IPN: {e}")))?;
    let payment_id = id_text(ipn.payment_id.as_ref());
    let status = ipn.payment_status.as_deref().and_then(PaymentStatus::parse);
    let (Some(payment_id), Some(status)) = (payment_id, status) else {
        tracing::warn!(status = ?ipn.payment_status, "NOWPayments IPN without a payment id or with an unknown status; ignored");
        return Ok(Outcome::Unchanged);
    };
    let order_id = id_text(ipn.order_id.as_ref()).unwrap_or_default();
    let now = state.now();
    let mut tx = state.db.begin().await?;
    let Some(deposit) = store::find(&mut tx, PROVIDER, &order_id).await? else {
        tracing::warn!(order_id, payment_id, "NOWPayments IPN for an unknown order; ignored");
        return Ok(Outcome::Unchanged);
    };
    let follow_up = id_text(ipn.parent_payment_id.as_ref()).is_some();
    if !ipn.price_currency.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("usd"))
        || (!follow_up && amounts::usd(ipn.price_amount.as_ref()) != Some(deposit.amount()))
    {
        tracing::warn!(
            order_id, payment_id, price_amount = ?ipn.price_amount, price_currency = ?ipn.price_currency,
            asked = %deposit.amount(), "NOWPayments IPN does not match its deposit; refused"
        );
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "PAYMENT_MISMATCH",
            "the payment's price or currency does not match the deposit",
        ));
    }
    let paid = paid_in_usd(&ipn);
    let outcome = match status {
        PaymentStatus::Finished => {
            let Some(paid) = paid.filter(|p| !p.is_zero()) else {
                tracing::warn!(
                    order_id,
                    payment_id,
                    "NOWPayments finished payment without a paid amount; left pending"
                );
                return Ok(Outcome::Unchanged);
            };
            if store::payment_applied(&mut tx, PROVIDER, &payment_id).await? {
                Outcome::Unchanged
            } else if !follow_up && deposit.status() != DepositStatus::Completed {
                store::credit(&mut tx, &deposit, &payment_id, paid, status.as_str(), now).await?;
                Outcome::Credited
            } else {
                store::credit_follow_up(&mut tx, &deposit, PROVIDER, &payment_id, paid, status.as_str(), now).await?;
                Outcome::CreditedFollowUp
            }
        }
        // A re-deposit is only ever credited when it finishes; its progress has no deposit yet.
        _ if follow_up => Outcome::Unchanged,
        PaymentStatus::Failed | PaymentStatus::Expired | PaymentStatus::Refunded => {
            if store::fail(&mut tx, &deposit, status.as_str(), now).await? {
                Outcome::Failed
            } else {
                Outcome::Unchanged
            }
        }
        PaymentStatus::Waiting
        | PaymentStatus::Confirming
        | PaymentStatus::Confirmed
        | PaymentStatus::Sending
        | PaymentStatus::PartiallyPaid => {
            let changed = store::note_progress(&mut tx, &deposit, status.as_str(), paid, now).await?;
            if changed { Outcome::Progress } else { Outcome::Unchanged }
        }
    };
    tx.commit().await?;
    if matches!(outcome, Outcome::Credited | Outcome::CreditedFollowUp) {
        tracing::info!(order_id, payment_id, paid = ?paid, "NOWPayments deposit credited");
    }
    if status == PaymentStatus::Refunded && deposit.status() == DepositStatus::Completed {
        tracing::warn!(order_id, payment_id, "NOWPayments refunded a credited deposit; an operator must reverse it");
    }
    Ok(outcome)
}

/// What arrived, in USD: `actually_paid_at_fiat` when the provider gives it; otherwise the price,
/// but only when the coin amount paid covers the coin amount asked.
fn paid_in_usd(ipn: &Ipn) -> Option<Amount> {
    match amounts::usd(ipn.actually_paid_at_fiat.as_ref()).filter(|a| !a.is_zero()) {
        Some(fiat) => Some(fiat),
        None if amounts::at_least(ipn.actually_paid.as_ref(), ipn.pay_amount.as_ref()) => {
            amounts::usd(ipn.price_amount.as_ref())
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_sorts_nested_keys() {
        let body: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":"x/y","c":2.5},"fee":{"serviceFee":0,"currency":"btc"}}"#).unwrap();
        assert_eq!(body.to_string(), r#"{"a":{"c":2.5,"z":"x/y"},"b":1,"fee":{"currency":"btc","serviceFee":0}}"#);
        let sig = signature("secret", &body);
        assert_eq!(sig.len(), 128);
        let raw = br#"{"b":1,"a":{"z":"x/y","c":2.5},"fee":{"serviceFee":0,"currency":"btc"}}"#;
        assert!(verify("secret", Some(&sig), raw).is_ok());
        assert!(verify("secret", Some(&sig.to_ascii_uppercase()), raw).is_ok());
        assert!(verify("other", Some(&sig), raw).is_err());
        assert!(verify("secret", None, raw).is_err());
    }
}
