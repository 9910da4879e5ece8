//! Wallets (API.md §5): deposits by method, withdrawals held at once and finished exactly once,
//! statements, fee quotes, administrators' credits and the audit endpoint.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(deposits_by_method);
async fn deposits_by_method(app: TestApp) {
    let user = app.signup("dep@example.com").await;
    let admin = app.admin("admin@example.com").await;
    let sandbox = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "12.5", "currency": "USD", "payment_method": "sandbox"}),
        )
        .await
        .expect(201);
    assert_eq!(
        (sandbox.data()["status"].as_str(), sandbox.data()["amount"].as_str()),
        (Some("completed"), Some("12.50"))
    );
    assert!(sandbox.data()["transaction_id"].is_string());
    assert_eq!(app.available(&user.key).await, "12.50");

    let manual = app
        .post(
            "/api/v1/payments/create-intent",
            Some(&user.key),
            json!({"amount": "5", "currency": "USD", "payment_type": "manual"}),
        )
        .await
        .expect(201);
    assert_eq!(manual.data()["status"], "pending");
    let id = manual.data()["id"].as_str().unwrap().to_string();
    assert_eq!(app.available(&user.key).await, "12.50", "pending until confirmed");
    let pending = app.get("/api/v1/ledger/transactions?type=deposit", Some(&user.key)).await.expect(200);
    assert_eq!(pending.data()[0]["status"], "pending");

    app.post(&format!("/api/v1/admin/deposits/{id}/confirm"), Some(&user.key), json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    let confirmed =
        app.post(&format!("/api/v1/admin/deposits/{id}/confirm"), Some(&admin.key), json!({})).await.expect(200);
    assert_eq!(confirmed.data()["status"], "completed");
    app.post(&format!("/api/v1/admin/deposits/{id}/confirm"), Some(&admin.key), json!({}))
        .await
        .expect_error(409, "CONFLICT");
    assert_eq!(app.available(&user.key).await, "17.50", "credited exactly once");
    let done = app.get("/api/v1/ledger/transactions?type=deposit", Some(&user.key)).await.expect(200);
    assert!(done.data().as_array().unwrap().iter().all(|t| t["status"] == "completed"));

    for method in ["crypto", "nowpayments", "card", "stripe"] {
        app.post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "5", "currency": "USD", "payment_method": method}),
        )
        .await
        .expect_error(402, "PAYMENT_PROVIDER_NOT_CONFIGURED");
    }
    for (amount, code) in [
        ("0", "INVALID_AMOUNT"),
        ("-5", "INVALID_AMOUNT"),
        ("1.000000001", "INVALID_AMOUNT"),
        ("1e3", "INVALID_AMOUNT"),
    ] {
        app.post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": amount, "currency": "USD", "payment_method": "sandbox"}),
        )
        .await
        .expect_error(422, code);
    }
    app.post(
        "/api/v1/ledger/deposit",
        Some(&user.key),
        json!({"amount": "1", "currency": "EUR", "payment_method": "sandbox"}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR");
    app.post("/api/v1/ledger/deposit", Some(&user.key), json!({"amount": "1", "payment_method": "gold"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(app.available(&user.key).await, "17.50");
    app.audit_ok().await;
}

both_engines!(sandbox_deposits_are_refused_unless_enabled, |c: &mut agentmarket::Config| c.enable_sandbox_deposits =
    false);
async fn sandbox_deposits_are_refused_unless_enabled(app: TestApp) {
    let user = app.signup("nosandbox@example.com").await;
    app.post(
        "/api/v1/ledger/deposit",
        Some(&user.key),
        json!({"amount": "5", "currency": "USD", "payment_method": "sandbox"}),
    )
    .await
    .expect_error(402, "PAYMENT_FAILED");
    assert_eq!(app.available(&user.key).await, "0.00");
}

both_engines!(withdrawals_hold_at_once_and_finish_exactly_once, |c: &mut agentmarket::Config| c.min_withdrawal =
    agentmarket::money::Amount::parse("2").unwrap());
async fn withdrawals_hold_at_once_and_finish_exactly_once(app: TestApp) {
    let user = app.signup("wd@example.com").await;
    let other = app.signup("other@example.com").await;
    let admin = app.admin("admin@example.com").await;
    app.fund(&user.key, "50").await;
    let addr = app
        .post(
            "/api/v1/withdrawal-addresses",
            Some(&user.key),
            json!({"currency": "usdt", "network": "TRC20", "address": "TXyz123", "label": "cold"}),
        )
        .await
        .expect(201);
    assert_eq!(addr.data()["currency"], "USDT");
    let addr_id = addr.data()["id"].as_str().unwrap().to_string();
    let bad = app
        .post("/api/v1/withdrawal-addresses", Some(&user.key), json!({"currency": "", "address": "has space"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["address", "currency"]);
    assert_eq!(
        app.get("/api/v1/withdrawal-addresses", Some(&user.key)).await.expect(200).data().as_array().unwrap().len(),
        1
    );
    assert!(
        app.get("/api/v1/withdrawal-addresses", Some(&other.key))
            .await
            .expect(200)
            .data()
            .as_array()
            .unwrap()
            .is_empty()
    );

    let w =
        |amount: &str, address: &str| json!({"amount": amount, "currency": "USD", "withdrawal_address_id": address});
    app.post("/api/v1/ledger/withdraw", Some(&user.key), w("1.99", &addr_id)).await.expect_error(422, "INVALID_AMOUNT");
    app.post("/api/v1/ledger/withdraw", Some(&user.key), w("50.01", &addr_id))
        .await
        .expect_error(422, "INSUFFICIENT_BALANCE");
    app.post("/api/v1/ledger/withdraw", Some(&other.key), w("2", &addr_id)).await.expect_error(404, "NOT_FOUND");
    let first = app.post("/api/v1/ledger/withdraw", Some(&user.key), w("20", &addr_id)).await.expect(201);
    assert_eq!(first.data()["status"], "pending");
    let second = app.post("/api/v1/ledger/withdraw", Some(&user.key), w("10", &addr_id)).await.expect(201);
    assert_eq!(app.balance(&user.key).await, ("20.00".into(), "0.00".into(), "0.00".into(), "20.00".into()));

    let id1 = first.data()["transaction_id"].as_str().unwrap();
    let id2 = second.data()["id"].as_str().unwrap();
    app.post(&format!("/api/v1/admin/withdrawals/{id1}/complete"), Some(&user.key), json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    // A malformed transaction hash is refused and changes nothing; a good one is recorded.
    app.post(&format!("/api/v1/admin/withdrawals/{id1}/complete"), Some(&admin.key), json!({"tx_hash": "0xab cd"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(app.balance(&user.key).await.0, "20.00", "still held for the payout");
    let completed = app
        .post(
            &format!("/api/v1/admin/withdrawals/{id1}/complete"),
            Some(&admin.key),
            json!({"tx_hash": "0xdeadbeef01"}),
        )
        .await
        .expect(200);
    assert_eq!(completed.data()["status"], "completed");
    assert_eq!(completed.data()["payout_tx_hash"], "0xdeadbeef01");
    app.post(&format!("/api/v1/admin/withdrawals/{id1}/fail"), Some(&admin.key), json!({}))
        .await
        .expect_error(409, "CONFLICT");
    let failed = app
        .post(&format!("/api/v1/admin/withdrawals/{id2}/fail"), Some(&admin.key), json!({"reason": "address rejected"}))
        .await
        .expect(200);
    assert_eq!(
        (failed.data()["status"].as_str(), failed.data()["reason"].as_str()),
        (Some("failed"), Some("address rejected"))
    );
    app.post(&format!("/api/v1/admin/withdrawals/{id2}/complete"), Some(&admin.key), json!({}))
        .await
        .expect_error(409, "CONFLICT");
    assert_eq!(app.available(&user.key).await, "30.00", "the failed one came back, the completed one left");
    let types: Vec<String> = app
        .get("/api/v1/ledger/transactions", Some(&user.key))
        .await
        .expect(200)
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}:{}", t["type"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        ["withdrawal_refund:completed", "withdrawal:failed", "withdrawal:completed", "deposit:completed"]
    );

    app.delete(&format!("/api/v1/withdrawal-addresses/{addr_id}"), Some(&user.key)).await.expect(200);
    app.post("/api/v1/ledger/withdraw", Some(&user.key), w("5", &addr_id)).await.expect_error(404, "NOT_FOUND");
    app.audit_ok().await;
}

both_engines!(administrators_credit_and_audit);
async fn administrators_credit_and_audit(app: TestApp) {
    let user = app.signup("credited@example.com").await;
    let agent = app.register_agent(None, "did:t:credited", json!({})).await;
    let admin = app.admin("admin@example.com").await;
    app.post(
        "/api/v1/admin/credit",
        Some(&admin.key),
        json!({"principal": "credited@example.com", "amount": "100.00", "reason": "welcome"}),
    )
    .await
    .expect(201);
    app.post("/api/v1/admin/credit", Some(&admin.key), json!({"principal": agent.did, "amount": "0.00000001"}))
        .await
        .expect(201);
    app.post("/api/v1/admin/credit", Some(&admin.key), json!({"principal": "nobody@example.com", "amount": "1"}))
        .await
        .expect_error(404, "NOT_FOUND");
    app.post("/api/v1/admin/credit", Some(&admin.key), json!({"principal": agent.id, "amount": "0"}))
        .await
        .expect_error(422, "INVALID_AMOUNT");
    app.post("/api/v1/admin/credit", Some(&user.key), json!({"principal": agent.id, "amount": "1"}))
        .await
        .expect_error(403, "FORBIDDEN");
    assert_eq!(app.available(&user.key).await, "100.00");
    assert_eq!(app.available(&agent.key).await, "0.00000001");
    let tx = app.get("/api/v1/ledger/transactions", Some(&user.key)).await.expect(200);
    assert_eq!(
        (tx.data()[0]["type"].as_str(), tx.data()[0]["description"].as_str()),
        (Some("adjustment"), Some("welcome"))
    );

    let audit = app.get("/api/v1/admin/ledger/audit", Some(&admin.key)).await.expect(200);
    assert_eq!(audit.data()["ok"], true);
    let names: Vec<&str> =
        audit.data()["invariants"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    app.get("/api/v1/admin/ledger/audit", Some(&user.key)).await.expect_error(403, "FORBIDDEN");
}

both_engines!(the_audit_names_what_violates_an_invariant);
async fn the_audit_names_what_violates_an_invariant(app: TestApp) {
    let user = app.signup("tamper@example.com").await;
    app.fund(&user.key, "10").await;
    app.audit_ok().await;
    // Tamper behind the ledger's back: a balance no posting explains.
    sqlx::query("UPDATE ledger_accounts SET balance = balance + 1 WHERE id LIKE 'user:%:available'")
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let report = agentmarket::ledger::audit::run(&app.state.db, app.state.now()).await.unwrap();
    assert!(!report.ok);
    let broken: Vec<&str> = report.invariants.iter().filter(|i| !i.ok).map(|i| i.name).collect();
    assert_eq!(broken, ["entries_and_balances_sum_to_zero", "balances_equal_postings_and_are_not_negative"]);
    let v = &report.invariants[1].violations[0];
    assert_eq!(v["postings_sum"], 1_000_000_000i64);
    assert_eq!(v["balance"], 1_000_000_001i64);
}

both_engines!(statements_paginate_and_filter_by_type);
async fn statements_paginate_and_filter_by_type(app: TestApp) {
    let user = app.signup("statement@example.com").await;
    for i in 1..=5 {
        app.fund(&user.key, &format!("{i}")).await;
    }
    let page = app.get("/api/v1/ledger/transactions?limit=2", Some(&user.key)).await.expect(200);
    assert_eq!(page.data().as_array().unwrap().len(), 2);
    assert_eq!(page.data()[0]["amount"], "5.00", "newest first");
    assert_eq!(page.body["meta"]["pagination"]["total_count"], 5);
    let rest = app.get("/api/v1/ledger/transactions?limit=2&offset=4", Some(&user.key)).await.expect(200);
    assert_eq!(rest.data()[0]["amount"], "1.00");
    assert_eq!(rest.data()[0]["currency"], "USD");
    app.get("/api/v1/ledger/transactions?type=bogus", Some(&user.key)).await.expect_error(422, "VALIDATION_ERROR");
    let none = app.get("/api/v1/ledger/transactions?type=withdrawal", Some(&user.key)).await.expect(200);
    assert!(none.data().as_array().unwrap().is_empty());
}

both_engines!(fee_quotes_use_the_settlement_math, |c: &mut agentmarket::Config| c.fee_bps = 250);
async fn fee_quotes_use_the_settlement_math(app: TestApp) {
    let q = app.get("/api/v1/fees/quote?price=10.00", None).await.expect(200);
    assert_eq!(q.data(), &json!({"price": "10.00", "fee_bps": 250, "fee": "0.25", "provider_receives": "9.75"}));
    let tiny = app.get("/api/v1/fees/quote?price=0.00000020", None).await.expect(200);
    assert_eq!(
        (tiny.data()["fee"].as_str(), tiny.data()["provider_receives"].as_str()),
        (Some("0.00000001"), Some("0.00000019"))
    );
    app.get("/api/v1/fees/quote?price=abc", None).await.expect_error(422, "INVALID_AMOUNT");
    app.get("/api/v1/fees/quote", None).await.expect_error(422, "INVALID_AMOUNT");
}
