//! Provider deposits end to end: the server pointed at a fake NOWPayments and Stripe on
//! loopback, callbacks signed here with the providers' documented algorithms.

use serde_json::{Value, json};

use crate::support::fake_providers::FakeProviders;
use crate::support::{Engine, TestApp, User};

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

fn outcome(r: &crate::support::Resp) -> &str {
    r.data()["outcome"].as_str().unwrap_or("")
}

async fn a_crypto_deposit_goes_through_a_nowpayments_invoice_and_credits_once(app: TestApp, fake: FakeProviders) {
    let user = app.signup("np@example.com").await;
    // The paperclip adapter's `deposit({amount})` body.
    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "25.00", "currency": "USD", "payment_method": "crypto"}),
        )
        .await
        .expect(201);
    let id = r.data()["transaction_id"].as_str().unwrap().to_string();
    assert_eq!(r.data()["status"], "pending");
    assert_eq!(r.data()["payment_url"], "https://nowpayments.example/payment/?iid=4522625801");

    let sent = fake.last();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/invoice");
    assert_eq!(sent.header("x-api-key"), Some(NP_KEY));
    assert!(sent.body.starts_with("{\"price_amount\":25.00,"), "the exact decimal: {}", sent.body);
    let body = sent.json();
    assert_eq!(body["price_currency"], "usd");
    assert_eq!(body["order_id"], id.as_str());
    assert_eq!(body["ipn_callback_url"], format!("{PUBLIC_URL}/webhooks/nowpayments"));
    assert!(body["success_url"].as_str().unwrap().starts_with(&format!("{PUBLIC_URL}/dashboard/wallet?deposit={id}")));
    assert!(body["cancel_url"].as_str().unwrap().starts_with(&format!("{PUBLIC_URL}/dashboard/wallet")));
    assert_eq!(app.available(&user.key).await, "0.00");

    let r = send_ipn(&app, &ipn(&id, 111, "confirming", 25.0, 25.0)).await.expect(200);
    assert_eq!(outcome(&r), "progress");
    assert_eq!(deposit_view(&app, &user, &id).await["provider_status"], "confirming");
    let r = send_ipn(&app, &ipn(&id, 111, "finished", 25.0, 25.0)).await.expect(200);
    assert_eq!(outcome(&r), "credited");
    assert_eq!(app.available(&user.key).await, "25.00");
    // Delivered again, then an older status arriving late: nothing changes.
    let r = send_ipn(&app, &ipn(&id, 111, "finished", 25.0, 25.0)).await.expect(200);
    assert_eq!(outcome(&r), "unchanged");
    let r = send_ipn(&app, &ipn(&id, 111, "confirming", 25.0, 25.0)).await.expect(200);
    assert_eq!(outcome(&r), "unchanged");
    let r = send_ipn(&app, &ipn(&id, 111, "expired", 25.0, 25.0)).await.expect(200);
    assert_eq!(outcome(&r), "unchanged");
    assert_eq!(app.available(&user.key).await, "25.00");
    let view = deposit_view(&app, &user, &id).await;
    assert_eq!(view["status"], "completed");
    assert_eq!(view["provider_status"], "finished");
    assert_eq!(view["paid_amount"], "25.00");
    let tx = app.get("/api/v1/ledger/transactions?type=deposit", Some(&user.key)).await.expect(200);
    assert_eq!(tx.data()[0]["status"], "completed");
    assert_eq!(tx.data()[0]["amount"], "25.00");
    app.audit_ok().await;
}
crate::with_providers!(a_crypto_deposit_goes_through_a_nowpayments_invoice_and_credits_once);

async fn payment_intents_and_named_coins(app: TestApp, fake: FakeProviders) {
    let user = app.signup("intent@example.com").await;
    let r = app
        .post(
            "/api/v1/payments/create-intent",
            Some(&user.key),
            json!({"amount": "7.00", "currency": "USD", "payment_type": "crypto"}),
        )
        .await
        .expect(201);
    assert_eq!(r.data()["status"], "pending");
    assert!(r.data()["id"].is_string());
    assert!(r.data()["payment_url"].as_str().unwrap().contains("iid="));
    assert_eq!(fake.last().path, "/invoice");

    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "10.00", "currency": "USD", "payment_method": "nowpayments", "pay_currency": "BTC"}),
        )
        .await
        .expect(201);
    assert_eq!(r.data()["deposit_address"], "bc1qfakeaddress");
    assert_eq!(r.data()["pay_amount"], "0.00012345");
    assert_eq!(r.data()["pay_currency"], "btc");
    assert!(r.data().get("payment_url").is_none());
    let sent = fake.last();
    assert_eq!(sent.path, "/payment");
    let body = sent.json();
    assert_eq!(body["pay_currency"], "btc");
    assert_eq!(body["order_id"], r.data()["transaction_id"]);
    assert_eq!(body["ipn_callback_url"], format!("{PUBLIC_URL}/webhooks/nowpayments"));
    // A coin only makes sense for crypto.
    app.post(
        "/api/v1/ledger/deposit",
        Some(&user.key),
        json!({"amount": "10.00", "currency": "USD", "payment_method": "card", "pay_currency": "btc"}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR");
    let methods = app.get("/api/v1/payments/methods", None).await.expect(200);
    let names: Vec<&str> = methods.data().as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(names, ["sandbox", "manual", "crypto", "card"]);
    // The coins, from the provider once, then from the cache.
    for _ in 0..2 {
        let r = app.get("/api/v1/payments/nowpayments/currencies", Some(&user.key)).await.expect(200);
        assert_eq!(r.data()["currencies"], json!(["btc", "eth", "usdttrc20"]));
    }
    let asked: Vec<_> = fake.received().into_iter().filter(|r| r.path == "/currencies").collect();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, "GET");
    assert_eq!(asked[0].header("x-api-key"), Some(NP_KEY));
}
crate::with_providers!(payment_intents_and_named_coins);

async fn bad_nowpayments_signatures_change_nothing(app: TestApp, _fake: FakeProviders) {
    let user = app.signup("badsig@example.com").await;
    let id = crypto_deposit(&app, &user, "20.00").await;
    let finished = ipn(&id, 222, "finished", 20.0, 20.0);
    let body = unsorted(&finished);
    // Wrong secret.
    let wrong = hmac512("another secret", serde_json::to_string(&finished).unwrap().as_bytes());
    send_raw_ipn(&app, body.clone(), Some(&wrong)).await.expect_error(401, "INVALID_SIGNATURE");
    // Signed over the body with only the top-level keys sorted (the old docs' replacer array).
    let mut top_sorted = String::from("{");
    for (i, (k, v)) in finished.as_object().unwrap().iter().enumerate() {
        top_sorted += &format!("{}{}:{}", if i > 0 { "," } else { "" }, serde_json::to_string(k).unwrap(), unsorted(v));
    }
    top_sorted += "}";
    assert_ne!(top_sorted, serde_json::to_string(&finished).unwrap());
    let shallow = hmac512(NP_IPN_SECRET, top_sorted.as_bytes());
    send_raw_ipn(&app, top_sorted, Some(&shallow)).await.expect_error(401, "INVALID_SIGNATURE");
    // No header; an empty one; a body that is not JSON.
    send_raw_ipn(&app, body.clone(), None).await.expect_error(401, "INVALID_SIGNATURE");
    send_raw_ipn(&app, body.clone(), Some("")).await.expect_error(401, "INVALID_SIGNATURE");
    send_raw_ipn(&app, "not json".into(), Some(&wrong)).await.expect_error(401, "INVALID_SIGNATURE");
    // The body changed after signing.
    let good = hmac512(NP_IPN_SECRET, serde_json::to_string(&finished).unwrap().as_bytes());
    let tampered = body.replace("\"actually_paid_at_fiat\":20.0", "\"actually_paid_at_fiat\":2000.0");
    assert_ne!(tampered, body);
    send_raw_ipn(&app, tampered, Some(&good)).await.expect_error(401, "INVALID_SIGNATURE");

    assert_eq!(app.available(&user.key).await, "0.00");
    let view = deposit_view(&app, &user, &id).await;
    assert_eq!(view["status"], "pending");
    assert!(view["provider_status"].is_null());
    // The genuine one still works afterwards.
    send_raw_ipn(&app, body, Some(&good)).await.expect(200);
    assert_eq!(app.available(&user.key).await, "20.00");
    app.audit_ok().await;
}
crate::with_providers!(bad_nowpayments_signatures_change_nothing);

async fn a_partial_payment_credits_what_arrived_when_it_finishes(app: TestApp, _fake: FakeProviders) {
    let user = app.signup("partial@example.com").await;
    let id = crypto_deposit(&app, &user, "50.00").await;
    let r = send_ipn(&app, &ipn(&id, 333, "partially_paid", 50.0, 30.25)).await.expect(200);
    assert_eq!(outcome(&r), "progress");
    let view = deposit_view(&app, &user, &id).await;
    assert_eq!((view["status"].as_str(), view["provider_status"].as_str()), (Some("pending"), Some("partially_paid")));
    assert_eq!((view["amount"].as_str(), view["paid_amount"].as_str()), (Some("50.00"), Some("30.25")));
    assert_eq!(app.available(&user.key).await, "0.00", "nothing credited before it finishes");
    send_ipn(&app, &ipn(&id, 333, "finished", 50.0, 30.25)).await.expect(200);
    assert_eq!(app.available(&user.key).await, "30.25");
    let view = deposit_view(&app, &user, &id).await;
    assert_eq!((view["amount"].as_str(), view["paid_amount"].as_str()), (Some("50.00"), Some("30.25")));
    assert_eq!(view["status"], "completed");
    app.audit_ok().await;
}
crate::with_providers!(a_partial_payment_credits_what_arrived_when_it_finishes);

async fn expiry_fails_and_mismatches_are_refused(app: TestApp, _fake: FakeProviders) {
    let user = app.signup("expiry@example.com").await;
    let id = crypto_deposit(&app, &user, "15.00").await;
    send_ipn(&app, &ipn(&id, 444, "waiting", 15.0, 0.0)).await.expect(200);
    let r = send_ipn(&app, &ipn(&id, 444, "expired", 15.0, 0.0)).await.expect(200);
    assert_eq!(outcome(&r), "failed");
    assert_eq!(deposit_view(&app, &user, &id).await["status"], "failed");
    let tx = app.get("/api/v1/ledger/transactions?type=deposit", Some(&user.key)).await.expect(200);
    assert_eq!(tx.data()[0]["status"], "failed");
    let r = send_ipn(&app, &ipn(&id, 444, "confirming", 15.0, 0.0)).await.expect(200);
    assert_eq!(outcome(&r), "unchanged");

    // Another deposit: an IPN whose price or currency is not the deposit's is refused.
    let other = crypto_deposit(&app, &user, "15.00").await;
    send_ipn(&app, &ipn(&other, 555, "finished", 1500.0, 1500.0)).await.expect_error(422, "PAYMENT_MISMATCH");
    let mut eur = ipn(&other, 555, "finished", 15.0, 15.0);
    eur["price_currency"] = json!("eur");
    send_ipn(&app, &eur).await.expect_error(422, "PAYMENT_MISMATCH");
    assert_eq!(deposit_view(&app, &user, &other).await["status"], "pending");
    // An unknown order is acknowledged and ignored.
    let r = send_ipn(&app, &ipn("not-a-deposit", 556, "finished", 15.0, 15.0)).await.expect(200);
    assert_eq!(outcome(&r), "unchanged");
    assert_eq!(app.available(&user.key).await, "0.00");
    app.audit_ok().await;
}
crate::with_providers!(expiry_fails_and_mismatches_are_refused);

async fn a_re_deposit_credits_as_its_own_deposit(app: TestApp, _fake: FakeProviders) {
    let user = app.signup("redeposit@example.com").await;
    let id = crypto_deposit(&app, &user, "20.00").await;
    send_ipn(&app, &ipn(&id, 600, "finished", 20.0, 20.0)).await.expect(200);
    let mut again = ipn(&id, 601, "confirming", 20.0, 5.5);
    again["parent_payment_id"] = json!(600);
    assert_eq!(outcome(&send_ipn(&app, &again).await.expect(200)), "unchanged");
    again["payment_status"] = json!("finished");
    assert_eq!(outcome(&send_ipn(&app, &again).await.expect(200)), "credited_follow_up");
    assert_eq!(outcome(&send_ipn(&app, &again).await.expect(200)), "unchanged");
    assert_eq!(app.available(&user.key).await, "25.50");
    // A second payment of the same invoice (no parent) after the first finished: its own deposit too.
    assert_eq!(
        outcome(&send_ipn(&app, &ipn(&id, 602, "finished", 20.0, 20.0)).await.expect(200)),
        "credited_follow_up"
    );
    assert_eq!(app.available(&user.key).await, "45.50");
    let tx = app.get("/api/v1/ledger/transactions?type=deposit", Some(&user.key)).await.expect(200);
    let amounts: Vec<&str> = tx.data().as_array().unwrap().iter().map(|t| t["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts.len(), 3);
    assert!(amounts.contains(&"5.50"));
    app.audit_ok().await;
}
crate::with_providers!(a_re_deposit_credits_as_its_own_deposit);

async fn provider_outages_leave_no_deposit(app: TestApp, fake: FakeProviders) {
    let user = app.signup("outage@example.com").await;
    fake.script(&[500]);
    let body = json!({"amount": "10.00", "currency": "USD", "payment_method": "crypto"});
    app.post("/api/v1/ledger/deposit", Some(&user.key), body.clone())
        .await
        .expect_error(503, "PAYMENT_PROVIDER_UNAVAILABLE");
    fake.script(&[401]);
    app.post("/api/v1/ledger/deposit", Some(&user.key), body).await.expect_error(502, "PAYMENT_PROVIDER_ERROR");
    fake.script(&[400]);
    let card = json!({"amount": "10.00", "currency": "USD", "payment_method": "card"});
    app.post("/api/v1/ledger/deposit", Some(&user.key), card).await.expect_error(502, "PAYMENT_PROVIDER_ERROR");
    let tx = app.get("/api/v1/ledger/transactions", Some(&user.key)).await.expect(200);
    assert_eq!(tx.data().as_array().unwrap().len(), 0, "no deposit was left behind");
    // Secrets are redacted wherever the configuration is printed.
    let printed = format!("{:?}", app.state.config);
    for secret in [NP_KEY, NP_IPN_SECRET, STRIPE_KEY, STRIPE_WHSEC] {
        assert!(!printed.contains(secret), "a provider secret in the configuration's Debug");
    }
}
crate::with_providers!(provider_outages_leave_no_deposit);

async fn unconfigured_providers_say_so(app: TestApp) {
    let user = app.signup("nocfg@example.com").await;
    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "5.00", "currency": "USD", "payment_method": "crypto"}),
        )
        .await
        .expect_error(402, "PAYMENT_PROVIDER_NOT_CONFIGURED");
    assert!(r.text.contains("--nowpayments-api-key"), "{}", r.text);
    let r = app
        .post(
            "/api/v1/payments/create-intent",
            Some(&user.key),
            json!({"amount": "5.00", "currency": "USD", "payment_type": "card"}),
        )
        .await
        .expect_error(402, "PAYMENT_PROVIDER_NOT_CONFIGURED");
    assert!(r.text.contains("--stripe-secret-key"), "{}", r.text);
    send_raw_ipn(&app, "{}".into(), Some("00")).await.expect_error(402, "PAYMENT_PROVIDER_NOT_CONFIGURED");
    app.get("/api/v1/payments/nowpayments/currencies", Some(&user.key))
        .await
        .expect_error(402, "PAYMENT_PROVIDER_NOT_CONFIGURED");
    let methods = app.get("/api/v1/payments/methods", None).await.expect(200);
    let names: Vec<&str> = methods.data().as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(names, ["sandbox", "manual"]);
    assert_eq!(
        app.get("/api/v1/ledger/transactions", Some(&user.key)).await.expect(200).data().as_array().unwrap().len(),
        0
    );
}
crate::both_engines!(unconfigured_providers_say_so);

// ---- Stripe ----

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

fn stripe_sign(secret: &str, t: i64, body: &str) -> String {
    agentmarket::payments::stripe::signature_header(secret, t, body.as_bytes())
}

async fn a_card_deposit_goes_through_stripe_checkout_and_credits_once(app: TestApp, fake: FakeProviders) {
    let user = app.signup("card@example.com").await;
    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "12.34", "currency": "USD", "payment_method": "card"}),
        )
        .await
        .expect(201);
    let id = r.data()["transaction_id"].as_str().unwrap().to_string();
    assert_eq!(r.data()["payment_url"], "https://checkout.stripe.example/c/pay/cs_test_1");
    let sent = fake.last();
    assert_eq!(sent.path, "/checkout/sessions");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {STRIPE_KEY}").as_str()));
    assert_eq!(sent.header("idempotency-key"), Some(id.as_str()));
    assert_eq!(sent.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = sent.form();
    let field = |k: &str| form.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
    assert_eq!(field("mode"), Some("payment"));
    assert_eq!(field("line_items[0][price_data][currency]"), Some("usd"));
    assert_eq!(field("line_items[0][price_data][unit_amount]"), Some("1234"));
    assert_eq!(field("line_items[0][quantity]"), Some("1"));
    assert_eq!(field("client_reference_id"), Some(id.as_str()));
    assert!(field("success_url").unwrap().starts_with(&format!("{PUBLIC_URL}/dashboard/wallet?deposit={id}")));
    assert!(field("cancel_url").is_some());
    // Sub-cent amounts cannot be charged to a card.
    app.post(
        "/api/v1/ledger/deposit",
        Some(&user.key),
        json!({"amount": "1.001", "currency": "USD", "payment_method": "stripe"}),
    )
    .await
    .expect_error(422, "INVALID_AMOUNT");

    let now = app.clock_secs();
    let completed = stripe_event("evt_1", "checkout.session.completed", "cs_test_1", &id, 1234, true);
    // A stale timestamp, a wrong secret, no header, a tampered body: refused, nothing changes.
    let stale = stripe_sign(STRIPE_WHSEC, now - 301, &completed);
    send_stripe(&app, &completed, Some(&stale)).await.expect_error(401, "INVALID_SIGNATURE");
    send_stripe(&app, &completed, Some(&stripe_sign("whsec_wrong", now, &completed)))
        .await
        .expect_error(401, "INVALID_SIGNATURE");
    send_stripe(&app, &completed, None).await.expect_error(401, "INVALID_SIGNATURE");
    let tampered = completed.replace("1234", "9999");
    send_stripe(&app, &tampered, Some(&stripe_sign(STRIPE_WHSEC, now, &completed)))
        .await
        .expect_error(401, "INVALID_SIGNATURE");
    assert_eq!(app.available(&user.key).await, "0.00");

    // Several v1 signatures (a secret being rotated): any one may match.
    let good = stripe_sign(STRIPE_WHSEC, now, &completed);
    let rotated = format!("t={now},v1={},{}", "ab".repeat(32), good.split_once(',').unwrap().1);
    let r = send_stripe(&app, &completed, Some(&rotated)).await.expect(200);
    assert_eq!(outcome(&r), "credited");
    assert_eq!(app.available(&user.key).await, "12.34");
    // The same event again, and another event for the same session: no second credit.
    assert_eq!(outcome(&send_stripe(&app, &completed, Some(&good)).await.expect(200)), "unchanged");
    let later = stripe_event("evt_2", "checkout.session.async_payment_succeeded", "cs_test_1", &id, 1234, true);
    assert_eq!(
        outcome(&send_stripe(&app, &later, Some(&stripe_sign(STRIPE_WHSEC, now, &later))).await.expect(200)),
        "unchanged"
    );
    let expired = stripe_event("evt_3", "checkout.session.expired", "cs_test_1", &id, 1234, false);
    assert_eq!(
        outcome(&send_stripe(&app, &expired, Some(&stripe_sign(STRIPE_WHSEC, now, &expired))).await.expect(200)),
        "unchanged"
    );
    assert_eq!(app.available(&user.key).await, "12.34");
    assert_eq!(deposit_view(&app, &user, &id).await["status"], "completed");
    app.audit_ok().await;
}
crate::with_providers!(a_card_deposit_goes_through_stripe_checkout_and_credits_once);

async fn stripe_async_and_expired_sessions(app: TestApp, _fake: FakeProviders) {
    let user = app.signup("async@example.com").await;
    let now = app.clock_secs();
    // Paid later by a delayed method: completed unpaid, then async_payment_succeeded credits.
    let id = card_deposit(&app, &user, "40.00").await;
    let session =
        deposit_view(&app, &user, &id).await["payment_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let unpaid = stripe_event("evt_a1", "checkout.session.completed", &session, &id, 4000, false);
    assert_eq!(
        outcome(&send_stripe(&app, &unpaid, Some(&stripe_sign(STRIPE_WHSEC, now, &unpaid))).await.expect(200)),
        "progress"
    );
    assert_eq!(app.available(&user.key).await, "0.00");
    let paid = stripe_event("evt_a2", "checkout.session.async_payment_succeeded", &session, &id, 4000, true);
    assert_eq!(
        outcome(&send_stripe(&app, &paid, Some(&stripe_sign(STRIPE_WHSEC, now, &paid))).await.expect(200)),
        "credited"
    );
    assert_eq!(app.available(&user.key).await, "40.00");

    // Expired: the deposit fails. A failed async payment fails too.
    let other = card_deposit(&app, &user, "8.00").await;
    let session = deposit_view(&app, &user, &other).await["payment_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let expired = stripe_event("evt_b1", "checkout.session.expired", &session, &other, 800, false);
    assert_eq!(
        outcome(&send_stripe(&app, &expired, Some(&stripe_sign(STRIPE_WHSEC, now, &expired))).await.expect(200)),
        "failed"
    );
    assert_eq!(deposit_view(&app, &user, &other).await["status"], "failed");
    // An event naming a session that is not the deposit's is refused; an unknown deposit ignored.
    let third = card_deposit(&app, &user, "9.00").await;
    let wrong = stripe_event("evt_c1", "checkout.session.completed", "cs_someone_else", &third, 900, true);
    send_stripe(&app, &wrong, Some(&stripe_sign(STRIPE_WHSEC, now, &wrong)))
        .await
        .expect_error(422, "PAYMENT_MISMATCH");
    let unknown = stripe_event("evt_d1", "checkout.session.completed", "cs_x", "no-such-deposit", 900, true);
    assert_eq!(
        outcome(&send_stripe(&app, &unknown, Some(&stripe_sign(STRIPE_WHSEC, now, &unknown))).await.expect(200)),
        "unchanged"
    );
    // Events of other types are acknowledged.
    let other_kind =
        json!({"id": "evt_e1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}}).to_string();
    assert_eq!(
        outcome(&send_stripe(&app, &other_kind, Some(&stripe_sign(STRIPE_WHSEC, now, &other_kind))).await.expect(200)),
        "unchanged"
    );
    assert_eq!(app.available(&user.key).await, "40.00");
    app.audit_ok().await;
}
crate::with_providers!(stripe_async_and_expired_sessions);

async fn reconciliation_applies_what_callbacks_missed(app: TestApp, fake: FakeProviders) {
    let user = app.signup("reconcile@example.com").await;
    let invoice_deposit = crypto_deposit(&app, &user, "30.00").await;
    let invoice_id = fake.last().json()["order_id"].clone();
    assert_eq!(invoice_id, invoice_deposit.as_str());
    let invoice = deposit_view(&app, &user, &invoice_deposit).await["payment_url"]
        .as_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();
    let coin = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "12.00", "currency": "USD", "payment_method": "crypto", "pay_currency": "btc"}),
        )
        .await
        .expect(201);
    let coin_deposit = coin.data()["transaction_id"].as_str().unwrap().to_string();
    let coin_payment = fake.received().len() as u64 + 5_077_125_000;
    let card = card_deposit(&app, &user, "9.00").await;
    let session =
        deposit_view(&app, &user, &card).await["payment_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let untouched = card_deposit(&app, &user, "1.00").await;
    let open_session = deposit_view(&app, &user, &untouched).await["payment_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();

    // The invoice's payment finished, the coin payment expired, the card session was paid, the
    // other session is still open; none of their callbacks arrived.
    let mut finished = ipn(&invoice_deposit, 900, "finished", 30.0, 30.0);
    finished.as_object_mut().unwrap().remove("order_id");
    fake.answer_get(&format!("/payment/?invoiceId={invoice}&limit=100"), json!({"data": [finished], "total": 1}));
    fake.answer_get(&format!("/payment/{coin_payment}"), ipn(&coin_deposit, coin_payment, "expired", 12.0, 0.0));
    let paid_session = json!({"id": session, "object": "checkout.session", "status": "complete", "payment_status": "paid",
        "amount_total": 900, "currency": "usd", "client_reference_id": card});
    fake.answer_get(&format!("/checkout/sessions/{session}"), paid_session);
    fake.answer_get(
        &format!("/checkout/sessions/{open_session}"),
        json!({"id": open_session, "status": "open", "payment_status": "unpaid"}),
    );

    let report = agentmarket::payments::reconcile::run(&app.state, 100).await.unwrap();
    assert_eq!((report.checked, report.changed, report.errors), (4, 3, 0), "{report:?}");
    assert_eq!(app.available(&user.key).await, "39.00");
    assert_eq!(deposit_view(&app, &user, &coin_deposit).await["status"], "failed");
    assert_eq!(deposit_view(&app, &user, &untouched).await["status"], "pending");
    let stripe_get = fake.received().into_iter().find(|r| r.path == format!("/checkout/sessions/{session}")).unwrap();
    assert_eq!(stripe_get.header("authorization"), Some(format!("Bearer {STRIPE_KEY}").as_str()));
    // A second pass (and the late callback) change nothing.
    let report = agentmarket::payments::reconcile::run(&app.state, 100).await.unwrap();
    assert_eq!((report.checked, report.changed), (1, 0));
    let late = send_ipn(&app, &ipn(&invoice_deposit, 900, "finished", 30.0, 30.0)).await.expect(200);
    assert_eq!(outcome(&late), "unchanged");
    assert_eq!(app.available(&user.key).await, "39.00");
    app.audit_ok().await;
}
crate::with_providers!(reconciliation_applies_what_callbacks_missed);

async fn the_wallet_page_sends_people_to_the_payment_page(app: TestApp, _fake: FakeProviders) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = |page: &str| {
        let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
        page[at..].split('"').next().unwrap().to_string()
    };
    let page = http.get(app.url("/register")).send().await.unwrap().text().await.unwrap();
    let form = [
        ("csrf", csrf(&page)),
        ("name", "Ada".into()),
        ("email", "wallet@example.com".into()),
        ("password", "correct horse battery".into()),
    ];
    http.post(app.url("/register")).form(&form).send().await.unwrap();
    let wallet = http.get(app.url("/dashboard/wallet")).send().await.unwrap().text().await.unwrap();
    let token = csrf(&wallet);
    for method in ["manual", "crypto", "card"] {
        assert!(wallet.contains(&format!("<option>{method}</option>")), "{method} offered");
    }
    let form = [("csrf", token.as_str()), ("amount", "15.00"), ("method", "card")];
    let res = http.post(app.url("/dashboard/wallet/deposit")).form(&form).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("https://checkout.stripe.example/c/pay/cs_test_"), "{location}");
    let back =
        http.get(app.url("/dashboard/wallet?deposit=x&result=success")).send().await.unwrap().text().await.unwrap();
    assert!(back.contains("credited once the provider confirms"));
    assert!(back.contains("pending"), "the pending deposit is listed");
}
crate::with_providers!(the_wallet_page_sends_people_to_the_payment_page);

async fn concurrent_deliveries_credit_once(app: TestApp, _fake: FakeProviders) {
    let user = app.signup("race@example.com").await;
    let id = crypto_deposit(&app, &user, "10.00").await;
    let finished = ipn(&id, 777, "finished", 10.0, 10.0);
    let mut redeposit = ipn(&id, 778, "finished", 10.0, 2.0);
    redeposit["parent_payment_id"] = json!(777);
    let card = card_deposit(&app, &user, "3.00").await;
    let session =
        deposit_view(&app, &user, &card).await["payment_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let event = stripe_event("evt_race", "checkout.session.completed", &session, &card, 300, true);
    let header = agentmarket::payments::stripe::signature_header(STRIPE_WHSEC, app.clock_secs(), event.as_bytes());
    let sends = (0..8).map(|i| {
        let (app, finished, redeposit, event, header) = (&app, &finished, &redeposit, &event, &header);
        async move {
            match i % 3 {
                0 => send_ipn(app, finished).await,
                1 => send_ipn(app, redeposit).await,
                _ => send_stripe(app, event, Some(header)).await,
            }
        }
    });
    for r in futures::future::join_all(sends).await {
        // A loser of a race may be told to retry (409); it never credits a second time.
        assert!(r.status == 200 || r.status == 409, "{}", r.text);
    }
    // The providers would retry the 409s: one more round of each changes nothing.
    send_ipn(&app, &finished).await.expect(200);
    send_ipn(&app, &redeposit).await.expect(200);
    send_stripe(&app, &event, Some(&header)).await.expect(200);
    assert_eq!(app.available(&user.key).await, "15.00");
    app.audit_ok().await;
}
crate::with_providers!(concurrent_deliveries_credit_once);
