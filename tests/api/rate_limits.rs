//! API.md §8 rate limits, driven with the injected clock.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

fn limits(general: u32, financial: u32, withdrawals: u32) -> impl FnOnce(&mut agentmarket::Config) {
    move |c: &mut agentmarket::Config| {
        c.rate_general_per_minute = general;
        c.rate_financial_per_minute = financial;
        c.rate_withdrawals_per_hour = withdrawals;
    }
}

both_engines!(general_limits_per_credential_with_headers, super::limits(5, 100, 100));
async fn general_limits_per_credential_with_headers(app: TestApp) {
    let user = app.signup("limited@example.com").await;
    let first = app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
    assert_eq!(first.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("4"));
    assert_eq!(first.header("x-ratelimit-reset"), Some("60"));
    for _ in 0..4 {
        app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
    }
    let limited = app.get("/api/v1/accounts/me", Some(&user.key)).await.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(limited.header("retry-after"), Some("60"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    // Another credential (and anonymous callers, by IP) have their own budget.
    let other = app.signup("other@example.com").await;
    app.get("/api/v1/accounts/me", Some(&other.key)).await.expect(200);
    app.clock.advance_secs(30);
    let later = app.get("/api/v1/accounts/me", Some(&user.key)).await.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(later.header("retry-after"), Some("30"));
    app.clock.advance_secs(30);
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
}

both_engines!(financial_and_withdrawal_categories_are_tighter, super::limits(1000, 2, 1));
async fn financial_and_withdrawal_categories_are_tighter(app: TestApp) {
    let user = app.signup("money@example.com").await;
    let deposit = json!({"amount": "10", "currency": "USD", "payment_method": "sandbox"});
    let r = app.post("/api/v1/ledger/deposit", Some(&user.key), deposit.clone()).await.expect(201);
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"), "the tightest category is reported");
    app.post("/api/v1/ledger/deposit", Some(&user.key), deposit.clone()).await.expect(201);
    app.post("/api/v1/ledger/deposit", Some(&user.key), deposit.clone()).await.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(app.available(&user.key).await, "20.00", "the refused request moved nothing");
    // Reads are only in the general category.
    assert_eq!(app.get("/api/v1/ledger/balance", Some(&user.key)).await.header("x-ratelimit-limit"), Some("1000"));

    let addr = app
        .post("/api/v1/withdrawal-addresses", Some(&user.key), json!({"currency": "USDC", "address": "0x1"}))
        .await
        .expect(201);
    let w = json!({"amount": "1", "currency": "USD", "withdrawal_address_id": addr.data()["id"]});
    app.post("/api/v1/ledger/withdraw", Some(&user.key), w.clone()).await.expect(201);
    let limited =
        app.post("/api/v1/ledger/withdraw", Some(&user.key), w.clone()).await.expect_error(429, "RATE_LIMIT_EXCEEDED");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    app.clock.advance_secs(3600);
    app.post("/api/v1/ledger/withdraw", Some(&user.key), w).await.expect(201);
}

both_engines!(reputation_scales_an_agents_limits, super::limits(4, 100, 100));
async fn reputation_scales_an_agents_limits(app: TestApp) {
    let trusted = app.register_agent(None, "did:t:trusted", json!({})).await;
    let shaky = app.register_agent(None, "did:t:shaky", json!({})).await;
    let neutral = app.register_agent(None, "did:t:neutral", json!({})).await;
    for (id, rep) in [(&trusted.id, 460), (&shaky.id, 250)] {
        sqlx::query("UPDATE agents SET reputation_centi = $1 WHERE id = $2")
            .bind(rep)
            .bind(id)
            .execute(app.state.db.pool())
            .await
            .unwrap();
    }
    let limit = |r: &crate::support::Resp| r.header("x-ratelimit-limit").map(String::from);
    assert_eq!(limit(&app.get("/api/v1/agents", Some(&trusted.key)).await), Some("8".into()), "≥ 4.5 doubles");
    assert_eq!(limit(&app.get("/api/v1/agents", Some(&shaky.key)).await), Some("2".into()), "< 3.0 halves");
    assert_eq!(limit(&app.get("/api/v1/agents", Some(&neutral.key)).await), Some("4".into()));
}

// A limit of 200 is taken from the shared counter ten requests at a time (`http::rate_lease`):
// still exactly 200 a minute, the headers count down one by one, and the database counter
// moved in shares, not per request.
both_engines!(a_large_limit_is_leased_in_shares_and_never_exceeded, super::limits(200, 1000, 100));
async fn a_large_limit_is_leased_in_shares_and_never_exceeded(app: TestApp) {
    let user = app.signup("leased@example.com").await;
    let mut remaining = Vec::new();
    for _ in 0..200 {
        let r = app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
        remaining.push(r.header("x-ratelimit-remaining").unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(remaining, (0..200).rev().collect::<Vec<u32>>());
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect_error(429, "RATE_LIMIT_EXCEEDED");
    let (hits,): (i64,) = sqlx::query_as("SELECT hits FROM rate_limit_counters WHERE bucket LIKE 'general:key:%'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(hits, 210, "twenty shares of ten, and the refused request's share");
    app.clock.advance_secs(60);
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
}
