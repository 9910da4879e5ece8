//! Around the providers: outages, an unconfigured server, reconciliation, the dashboard wallet,
//! concurrent deliveries.

use serde_json::json;

use super::*;

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

async fn withdrawals_carry_the_payout_fee(app: TestApp) {
    let user = app.signup("payout@example.com").await;
    let admin = app.admin("ops@example.com").await;
    app.fund(&user.key, "100.00").await;
    let address = app
        .post(
            "/api/v1/withdrawal-addresses",
            Some(&user.key),
            json!({"currency": "USDT", "network": "TRC20", "address": "TXYZpayout"}),
        )
        .await
        .expect(201);
    let address_id = address.data()["id"].as_str().unwrap().to_string();
    let withdraw = |amount: &str| json!({"amount": amount, "currency": "USD", "withdrawal_address_id": address_id});
    let w = app.post("/api/v1/ledger/withdraw", Some(&user.key), withdraw("50.00")).await.expect(201);
    assert_eq!((w.data()["fee"].as_str(), w.data()["payout_amount"].as_str()), (Some("0.50"), Some("49.50")));
    let id = w.data()["transaction_id"].as_str().unwrap().to_string();
    let done =
        app.post(&format!("/api/v1/admin/withdrawals/{id}/complete"), Some(&admin.key), json!({})).await.expect(200);
    assert_eq!(done.data()["payout_amount"], "49.50");
    assert_eq!(app.available(&user.key).await, "50.00");
    assert_eq!(agentmarket::ledger::fees_collected(&app.state.db).await.unwrap().to_string(), "0.50");
    // A failed withdrawal gives everything back, fee included.
    let w = app.post("/api/v1/ledger/withdraw", Some(&user.key), withdraw("10.00")).await.expect(201);
    let id = w.data()["transaction_id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/admin/withdrawals/{id}/fail"), Some(&admin.key), json!({"reason": "address refused"}))
        .await
        .expect(200);
    assert_eq!(app.available(&user.key).await, "50.00");
    assert_eq!(agentmarket::ledger::fees_collected(&app.state.db).await.unwrap().to_string(), "0.50");
    app.audit_ok().await;
}
crate::both_engines!(withdrawals_carry_the_payout_fee, |c: &mut agentmarket::Config| c.withdrawal_fee_bps = 100);
