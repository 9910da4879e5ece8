//! Stripe Checkout: a Checkout Session per card deposit, and the signed event callback.
//!
//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`: hex HMAC-SHA256, keyed with the endpoint
//! secret, of `"<t>.<raw body>"`; any `v1` may match (several appear while a secret rotates);
//! `t` within 300 s of now. Checked on the raw bytes before the body is parsed.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use super::nowpayments::Outcome;
use super::{Checkout, Provider, ReturnUrls, bad_signature, store};
use crate::error::{ApiError, ApiResult};
use crate::money::Amount;
use crate::state::AppState;

const PROVIDER: Provider = Provider::Stripe;

/// Stripe's default tolerance for a signature's timestamp, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// Units of `Amount` per US cent.
const UNITS_PER_CENT: i64 = crate::money::UNITS_PER_USD / 100;

/// The Stripe API, as configured.
pub struct Client<'a> {
    state: &'a AppState,
    secret_key: &'a str,
    base: String,
}

impl<'a> Client<'a> {
    pub fn new(state: &'a AppState) -> ApiResult<Client<'a>> {
        let secret_key = state.config.stripe_secret_key.as_ref().ok_or_else(|| PROVIDER.not_configured())?;
        let base = state.config.stripe_api_url.trim_end_matches('/').to_string();
        Ok(Client { state, secret_key: &secret_key.0, base })
    }

    /// A Checkout Session for `amount` (whole cents), correlated by our deposit id
    /// (`client_reference_id`, `metadata[deposit_id]`) and created at most once for it
    /// (`Idempotency-Key`), so a retry after a timeout returns the same session.
    pub async fn create_checkout(&self, deposit_id: &str, amount: Amount, urls: &ReturnUrls) -> ApiResult<Checkout> {
        if amount.units() % UNITS_PER_CENT != 0 {
            return Err(ApiError::invalid_amount("amount", "must be whole cents for card deposits"));
        }
        let cents = (amount.units() / UNITS_PER_CENT).to_string();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("mode", "payment")
            .append_pair("line_items[0][price_data][currency]", "usd")
            .append_pair("line_items[0][price_data][unit_amount]", &cents)
            .append_pair("line_items[0][price_data][product_data][name]", "Wallet deposit")
            .append_pair("line_items[0][quantity]", "1")
            .append_pair("client_reference_id", deposit_id)
            .append_pair("metadata[deposit_id]", deposit_id)
            .append_pair("success_url", &urls.success)
            .append_pair("cancel_url", &urls.cancel)
            .finish();
        let url = super::checked_url(self.state, PROVIDER, &format!("{}/checkout/sessions", self.base))?;
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            let sent = self
                .state
                .http
                .post(url.clone())
                .bearer_auth(self.secret_key)
                .header("idempotency-key", deposit_id)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone())
                .send()
                .await;
            match sent {
                // The idempotency key makes a second try safe even if the first arrived.
                Err(e) if attempt < 2 && (e.is_connect() || e.is_timeout()) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "Stripe could not be reached");
                    return Err(super::unavailable(PROVIDER));
                }
                Ok(res) => break super::read_answer(PROVIDER, "/checkout/sessions", res).await?,
            }
        };
        let text = |k: &str| answer.get(k).and_then(Value::as_str).map(String::from);
        match (text("id"), text("url")) {
            (Some(id), Some(url)) => Ok(Checkout { provider_ref: id, payment_url: Some(url), ..Checkout::default() }),
            _ => {
                tracing::warn!("Stripe's checkout session has no id or url");
                Err(super::provider_error(PROVIDER))
            }
        }
    }
}

impl Client<'_> {
    /// GETs `path` (`/checkout/sessions/<id>`).
    pub async fn get(&self, path: &str) -> ApiResult<Value> {
        let url = format!("{}{path}", self.base);
        super::get_json(self.state, PROVIDER, &url, ("authorization", format!("Bearer {}", self.secret_key))).await
    }
}

/// `t=<t>,v1=<hex>` for `body` at `t`, as Stripe (and its test helper) signs.
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", v1(secret, t, body))
}

fn v1(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    super::hex(&mac.finalize().into_bytes())
}

/// Checks `Stripe-Signature` over the raw body at `now_secs`.
pub fn verify(secret: &str, header: Option<&str>, raw: &[u8], now_secs: i64) -> ApiResult<()> {
    let refused = || bad_signature("Stripe-Signature");
    let header = header.ok_or_else(refused)?;
    let mut t = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or_else(refused)?;
    if (now_secs - t).abs() > TOLERANCE_SECS {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "INVALID_SIGNATURE",
            "Stripe-Signature: the timestamp is outside the tolerance",
        ));
    }
    let expected = v1(secret, t, raw);
    if candidates.iter().any(|c| super::same(c.as_bytes(), expected.as_bytes())) { Ok(()) } else { Err(refused()) }
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

/// Applies a verified event once (by its id): a paid session credits its deposit, an expired or
/// failed one fails it; other events are acknowledged and ignored.
pub async fn apply(state: &AppState, raw: &[u8]) -> ApiResult<Outcome> {
    let event: Event = serde_json::from_slice(raw).map_err(|e| ApiError::malformed_json(format!("event: {e}")))?;
    apply_session(state, Some(&event.id), &event.kind, &event.data.object).await
}

/// Applies what happened to a checkout session: from an event (`event_id`, applied once), or
/// from reconciliation (`None`: the session as the API shows it, under the matching event kind).
pub async fn apply_session(
    state: &AppState,
    event_id: Option<&str>,
    kind: &str,
    session: &Value,
) -> ApiResult<Outcome> {
    let dedup_id = event_id;
    let event_id = event_id.unwrap_or("reconciliation");
    let text = |k: &str| session.get(k).and_then(Value::as_str);
    let paid_now = match kind {
        "checkout.session.completed" => text("payment_status") == Some("paid"),
        "checkout.session.async_payment_succeeded" => true,
        "checkout.session.expired" | "checkout.session.async_payment_failed" => false,
        _ => return Ok(Outcome::Unchanged),
    };
    let (Some(session_id), Some(deposit_id)) =
        (text("id"), text("client_reference_id").or_else(|| session["metadata"]["deposit_id"].as_str()))
    else {
        tracing::warn!(event_id = event_id, "Stripe session event without a session id or deposit id; ignored");
        return Ok(Outcome::Unchanged);
    };
    let now = state.now();
    let mut tx = state.db.begin().await?;
    if let Some(id) = dedup_id
        && !store::first_delivery(&mut tx, PROVIDER, id, now).await?
    {
        return Ok(Outcome::Unchanged);
    }
    let Some(deposit) = store::find(&mut tx, PROVIDER, deposit_id).await? else {
        tracing::warn!(event_id = event_id, deposit_id, "Stripe event for an unknown deposit; ignored");
        tx.commit().await?;
        return Ok(Outcome::Unchanged);
    };
    if deposit.provider_ref.as_deref() != Some(session_id) {
        tracing::warn!(event_id = event_id, deposit_id, session_id, "Stripe session is not the deposit's; refused");
        return Err(mismatch());
    }
    let outcome = match (kind, paid_now) {
        (_, true) => {
            let cents = session.get("amount_total").and_then(Value::as_i64);
            let paid = cents.and_then(|c| c.checked_mul(UNITS_PER_CENT)).and_then(Amount::from_units);
            let (true, Some(paid)) = (text("currency").is_some_and(|c| c.eq_ignore_ascii_case("usd")), paid) else {
                tracing::warn!(event_id = event_id, deposit_id, "Stripe session amount or currency unusable; refused");
                return Err(mismatch());
            };
            if paid.is_zero() || paid > Amount::CEILING {
                return Err(mismatch());
            }
            let credited = !store::payment_applied(&mut tx, PROVIDER, session_id).await?
                && store::credit(&mut tx, &deposit, session_id, paid, "paid", now).await?;
            if credited { Outcome::Credited } else { Outcome::Unchanged }
        }
        ("checkout.session.completed", false) => {
            // Paid by a delayed method: the money arrives with `async_payment_succeeded`.
            let changed = store::note_progress(&mut tx, &deposit, "processing", None, now).await?;
            if changed { Outcome::Progress } else { Outcome::Unchanged }
        }
        (kind, false) => {
            let status = if kind == "checkout.session.expired" { "expired" } else { "failed" };
            if store::fail(&mut tx, &deposit, status, now).await? { Outcome::Failed } else { Outcome::Unchanged }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

fn mismatch() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "PAYMENT_MISMATCH",
        "the checkout session's amount, currency or id does not match the deposit",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_any_v1_within_the_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let good = signature_header("whsec_x", 1_000, body);
        assert!(verify("whsec_x", Some(&good), body, 1_100).is_ok());
        let rotated = format!("t=1000,v1=00ff,{}", good.split_once(',').unwrap().1);
        assert!(verify("whsec_x", Some(&rotated), body, 1_000).is_ok());
        assert!(verify("whsec_x", Some(&good), body, 1_000 + TOLERANCE_SECS + 1).is_err());
        assert!(verify("whsec_y", Some(&good), body, 1_000).is_err());
        assert!(verify("whsec_x", Some(&good), br#"{"id":"evt_2"}"#, 1_000).is_err());
        assert!(verify("whsec_x", Some("v1=abc"), body, 1_000).is_err());
        assert!(verify("whsec_x", None, body, 1_000).is_err());
    }
}
