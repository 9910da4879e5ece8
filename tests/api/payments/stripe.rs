//! Stripe: the Checkout Session as created, and events (paid, async, expired, replayed, stale,
//! wrongly signed, for another session).

use serde_json::json;

use super::*;

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
