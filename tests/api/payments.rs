//! Provider deposits end to end: the server pointed at a fake NOWPayments and Stripe on
//! loopback, callbacks signed here with the providers' documented algorithms.

use serde_json::{Value, json};

use crate::support::fake_providers::FakeProviders;
use crate::support::{Engine, TestApp, User};

mod nowpayments;
mod operations;
mod stripe;
mod stripe_npm;

pub const NP_KEY: &str = "np-test-api-key-4b1d";
pub const NP_IPN_SECRET: &str = "np-test-ipn-secret-77aa";
pub const STRIPE_KEY: &str = "sk_test_fake_51abc";
pub const STRIPE_WHSEC: &str = "whsec_test_secret_9f9f";
pub const PUBLIC_URL: &str = "https://market.example.com";

/// A server with both providers pointed at a fresh fake.
pub async fn spawn(engine: Engine) -> Option<(TestApp, FakeProviders)> {
    let fake = FakeProviders::start().await;
    let base = fake.base.clone();
    let app = TestApp::spawn(engine, move |c| {
        c.public_url = PUBLIC_URL.into();
        c.nowpayments_api_key = Some(agentmarket::config::Redacted(NP_KEY.into()));
        c.nowpayments_ipn_secret = Some(agentmarket::config::Redacted(NP_IPN_SECRET.into()));
        c.nowpayments_api_url = base.clone();
        c.stripe_secret_key = Some(agentmarket::config::Redacted(STRIPE_KEY.into()));
        c.stripe_webhook_secret = Some(agentmarket::config::Redacted(STRIPE_WHSEC.into()));
        c.stripe_api_url = base;
    })
    .await?;
    Some((app, fake))
}

/// Runs `$name(app, fake)` on SQLite and on PostgreSQL, each with its own fake providers.
#[macro_export]
macro_rules! with_providers {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (app, fake) = $crate::payments::spawn($crate::support::Engine::Sqlite).await.expect("SQLite");
                super::$name(app, fake).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some((app, fake)) = $crate::payments::spawn($crate::support::Engine::Postgres).await {
                    super::$name(app, fake).await;
                }
            }
        }
    };
}

/// Hex HMAC-SHA512 of `bytes` with the IPN secret, as NOWPayments signs.
pub fn hmac512(secret: &str, bytes: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(bytes);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends `ipn` signed as NOWPayments does (keys sorted at every level), the body as given.
pub async fn send_ipn(app: &TestApp, ipn: &Value) -> crate::support::Resp {
    let canonical = serde_json::to_string(ipn).unwrap(); // `Value` keeps keys sorted
    let sig = hmac512(NP_IPN_SECRET, canonical.as_bytes());
    send_raw_ipn(app, unsorted(ipn), Some(&sig)).await
}

pub async fn send_raw_ipn(app: &TestApp, body: String, sig: Option<&str>) -> crate::support::Resp {
    let mut req = app.client.post(app.url("/webhooks/nowpayments")).header("content-type", "application/json");
    if let Some(sig) = sig {
        req = req.header("x-nowpayments-sig", sig);
    }
    app.send(req.body(body)).await
}

/// The JSON text with each object's keys in reverse order, as a sender that does not sort them
/// would write it: the signature must still verify, since it is over the sorted form.
pub fn unsorted(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), unsorted(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(unsorted).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// An IPN for deposit `order_id` as NOWPayments sends it.
pub fn ipn(order_id: &str, payment_id: u64, status: &str, price: f64, paid_fiat: f64) -> Value {
    json!({
        "payment_id": payment_id, "parent_payment_id": null, "invoice_id": 4522625843u64, "payment_status": status,
        "pay_address": "bc1qfakeaddress", "payin_extra_id": null, "price_amount": price, "price_currency": "usd",
        "pay_amount": 0.00012345, "actually_paid": 0.00012345, "actually_paid_at_fiat": paid_fiat, "pay_currency": "btc",
        "order_id": order_id, "order_description": "Wallet deposit", "purchase_id": "5837122679",
        "outcome_amount": 0.0001, "outcome_currency": "btc",
        "fee": {"currency": "btc", "depositFee": 0, "withdrawalFee": 0, "serviceFee": 0},
    })
}

pub async fn crypto_deposit(app: &TestApp, user: &User, amount: &str) -> String {
    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": amount, "currency": "USD", "payment_method": "crypto"}),
        )
        .await
        .expect(201);
    r.data()["transaction_id"].as_str().unwrap().to_string()
}

pub async fn deposit_view(app: &TestApp, user: &User, id: &str) -> Value {
    app.get(&format!("/api/v1/payments/deposits/{id}"), Some(&user.key)).await.expect(200).data().clone()
}

pub fn outcome(r: &crate::support::Resp) -> &str {
    r.data()["outcome"].as_str().unwrap_or("")
}

pub async fn card_deposit(app: &TestApp, user: &User, amount: &str) -> String {
    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": amount, "currency": "USD", "payment_method": "card"}),
        )
        .await
        .expect(201);
    r.data()["transaction_id"].as_str().unwrap().to_string()
}

/// A Stripe event about checkout session `session` of deposit `deposit_id`.
pub fn stripe_event(event_id: &str, kind: &str, session: &str, deposit_id: &str, cents: i64, paid: bool) -> String {
    json!({
        "id": event_id, "object": "event", "type": kind, "created": 1_700_000_000, "livemode": false,
        "api_version": "2025-10-29.clover",
        "data": {"object": {
            "id": session, "object": "checkout.session", "client_reference_id": deposit_id,
            "amount_total": cents, "currency": "usd", "mode": "payment",
            "payment_status": if paid { "paid" } else { "unpaid" }, "status": "complete",
            "metadata": {"deposit_id": deposit_id},
        }},
    })
    .to_string()
}

pub async fn send_stripe(app: &TestApp, body: &str, header: Option<&str>) -> crate::support::Resp {
    let mut req = app.client.post(app.url("/webhooks/stripe")).header("content-type", "application/json");
    if let Some(h) = header {
        req = req.header("stripe-signature", h);
    }
    app.send(req.body(body.to_string())).await
}

pub fn stripe_sign(secret: &str, t: i64, body: &str) -> String {
    agentmarket::payments::stripe::signature_header(secret, t, body.as_bytes())
}
