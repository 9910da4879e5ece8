//! Amounts have a configured maximum, balances a hard bound, and every sum the server takes
//! (capability prices, the audit) is exact on both engines, however large the amounts.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(amounts_above_the_configured_maximum_are_refused);
async fn amounts_above_the_configured_maximum_are_refused(app: TestApp) {
    let user = app.signup("max@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:max", json!({})).await;
    let deposit = |amount: &str| json!({"amount": amount, "currency": "USD", "payment_method": "sandbox"});
    for huge in ["92233720368.54775807", "1000000000.00000001", "99999999999999999999"] {
        let r = app.post("/api/v1/ledger/deposit", Some(&user.key), deposit(huge)).await;
        let r = r.expect_error(422, "INVALID_AMOUNT");
        assert_eq!(r.error_fields(), ["amount"]);
    }
    // Other money inputs share the bound.
    let too_much = "1000000000.01";
    app.post("/api/v1/api-keys", Some(&user.key), json!({"name": "k", "max_price_per_hire": too_much}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    app.post(
        "/api/v1/tasks",
        Some(&user.key),
        json!({"provider_agent_id": agent.id, "capability": "code-review",
        "input": "x", "max_price": too_much}),
    )
    .await
    .expect_error(422, "INVALID_AMOUNT");
    app.post(
        &format!("/api/v1/agents/{}/hire", agent.id),
        Some(&user.key),
        json!({"task_description": "x", "capability_requested": "code-review", "price": too_much}),
    )
    .await
    .expect_error(422, "INVALID_AMOUNT");
    app.get(&format!("/api/v1/fees/quote?price={too_much}"), None).await.expect_error(422, "INVALID_AMOUNT");
    let r = app
        .patch(&format!("/api/v1/agents/{}", agent.id), Some(&user.key), json!({"base_price": "92233720368"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(r.error_fields(), ["base_price"]);

    // The maximum itself is fine, and later deposits by anyone still work.
    app.post("/api/v1/ledger/deposit", Some(&user.key), deposit("1000000000.00")).await.expect(201);
    let other = app.signup("after@example.com").await;
    app.fund(&other.key, "5").await;
    assert_eq!(app.available(&user.key).await, "1000000000.00");
    app.audit_ok().await;
}

both_engines!(the_maximum_is_configurable, |c: &mut agentmarket::Config| {
    c.max_amount = agentmarket::money::Amount::parse("100.00").unwrap();
});
async fn the_maximum_is_configurable(app: TestApp) {
    let user = app.signup("small@example.com").await;
    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "100.01", "currency": "USD", "payment_method": "sandbox"}),
        )
        .await
        .expect_error(422, "INVALID_AMOUNT");
    assert!(r.text.contains("must be at most 100.00"), "{}", r.text);
    app.fund(&user.key, "100").await;
}

both_engines!(balances_stop_at_their_bound_and_stay_exact, |c: &mut agentmarket::Config| {
    c.max_amount = agentmarket::money::Amount::CEILING;
});
async fn balances_stop_at_their_bound_and_stay_exact(app: TestApp) {
    // 2^61 units is 23058430092.13693952 USD: two deposits of the ceiling fit, a third does not.
    let user = app.signup("rich@example.com").await;
    app.fund(&user.key, "10000000000").await;
    app.fund(&user.key, "10000000000").await;
    let r = app
        .post(
            "/api/v1/ledger/deposit",
            Some(&user.key),
            json!({"amount": "10000000000", "currency": "USD", "payment_method": "sandbox"}),
        )
        .await
        .expect_error(422, "INVALID_AMOUNT");
    assert!(r.text.contains("most an account can hold"), "{}", r.text);
    assert_eq!(
        app.balance(&user.key).await,
        ("20000000000.00".into(), "0.00".into(), "0.00".into(), "20000000000.00".into())
    );
    // Up to the bound exactly.
    app.fund(&user.key, "3058430092.13693952").await;
    assert_eq!(app.available(&user.key).await, "23058430092.13693952");
    app.post(
        "/api/v1/ledger/deposit",
        Some(&user.key),
        json!({"amount": "0.00000001", "currency": "USD", "payment_method": "sandbox"}),
    )
    .await
    .expect_error(422, "INVALID_AMOUNT");
    // The audit sums every balance and posting exactly, and finds the ledger whole.
    app.audit_ok().await;
    let admin = app.admin("auditor@example.com").await;
    let audit = app.get("/api/v1/admin/ledger/audit", Some(&admin.key)).await.expect(200);
    assert_eq!(audit.data()["ok"], true);
}

both_engines!(capability_prices_are_summed_exactly);
async fn capability_prices_are_summed_exactly(app: TestApp) {
    // 100 agents at the maximum price: the sum (10^19 units) is beyond an i64.
    for i in 0..100 {
        app.register_agent(
            None,
            &format!("did:t:pricey{i}"),
            json!({"capabilities": ["pricey"], "base_price": "1000000000"}),
        )
        .await;
    }
    app.register_agent(None, "did:t:cheap", json!({"capabilities": ["cheap"], "base_price": "0.00000003"})).await;
    app.register_agent(None, "did:t:cheap2", json!({"capabilities": ["cheap"], "base_price": "0.00000002"})).await;
    let caps = app.get("/api/v1/capabilities", None).await.expect(200);
    let find = |name: &str| caps.data().as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(find("pricey")["agent_count"], 100);
    assert_eq!(find("pricey")["avg_price"], "1000000000.00");
    assert_eq!(find("cheap")["avg_price"], "0.00000003", "the mean rounds half up, exactly");
}
