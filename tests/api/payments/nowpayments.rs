//! NOWPayments: invoices and payments as created, and every IPN path (progress, finished,
//! repeated and out of order, partial, expired, mismatched, re-deposits, bad signatures).

use serde_json::json;

use super::*;

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
