//! Idempotency keys (API.md §0): replay, mismatch, pending, per-credential scope, expiry.

use std::sync::Arc;

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(a_replayed_request_returns_the_original_response_and_has_one_effect);
async fn a_replayed_request_returns_the_original_response_and_has_one_effect(app: TestApp) {
    let user = app.signup("idem@example.com").await;
    let body = json!({"amount": "10", "currency": "USD", "payment_method": "sandbox"});
    let send = |key: &'static str, body: serde_json::Value| {
        let req = app
            .client
            .post(app.url("/api/v1/ledger/deposit"))
            .header("x-api-key", &user.key)
            .header("idempotency-key", key)
            .json(&body);
        app.send(req)
    };
    let first = send("dep-1", body.clone()).await.expect(201);
    let again = send("dep-1", body.clone()).await.expect(201);
    assert_eq!(again.data(), first.data(), "the original body is replayed");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.available(&user.key).await, "10.00", "one effect");

    let other = send("dep-1", json!({"amount": "11", "currency": "USD", "payment_method": "sandbox"})).await;
    other.expect_error(422, "IDEMPOTENCY_MISMATCH");
    // The X- spelling is the same key.
    let req = app
        .client
        .post(app.url("/api/v1/ledger/deposit"))
        .header("x-api-key", &user.key)
        .header("x-idempotency-key", "dep-1")
        .json(&body);
    app.send(req).await.expect(201);
    assert_eq!(app.available(&user.key).await, "10.00");

    // Errors are replayed too (a 4xx is an answer), but never server errors.
    let bad = json!({"amount": "-1", "currency": "USD", "payment_method": "sandbox"});
    send("dep-bad", bad.clone()).await.expect_error(422, "INVALID_AMOUNT");
    let replayed = send("dep-bad", bad).await.expect_error(422, "INVALID_AMOUNT");
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));

    // Keys are per credential: another user's identical key is independent.
    let other_user = app.signup("idem2@example.com").await;
    let req = app
        .client
        .post(app.url("/api/v1/ledger/deposit"))
        .header("x-api-key", &other_user.key)
        .header("idempotency-key", "dep-1")
        .json(&body);
    app.send(req).await.expect(201);
    assert_eq!(app.available(&other_user.key).await, "10.00");

    // After 24 hours the key may be used again; the sweeper drops the old records.
    app.clock.advance_secs(24 * 3600 + 1);
    assert!(app.sweep().await.purged_idempotency_keys >= 2);
    send("dep-1", body).await.expect(201);
    assert_eq!(app.available(&user.key).await, "20.00");
    app.audit_ok().await;
}

both_engines!(the_same_request_ten_times_in_parallel_has_one_effect);
async fn the_same_request_ten_times_in_parallel_has_one_effect(app: TestApp) {
    let client = app.signup("par@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    app.fund(&client.key, "100").await;
    let app = Arc::new(app);
    let body =
        json!({"provider_agent_id": provider.id, "capability": "code-review", "input": "x", "payment_type": "balance"});
    let mut handles = Vec::new();
    for _ in 0..10 {
        let (app, key, body) = (app.clone(), client.key.clone(), body.clone());
        handles.push(tokio::spawn(async move {
            let req = app
                .client
                .post(app.url("/api/v1/tasks"))
                .header("x-api-key", &key)
                .header("x-idempotency-key", "run-42")
                .json(&body);
            app.send(req).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let r = h.await.unwrap();
        match r.status {
            201 => {
                ids.insert(r.data()["id"].as_str().unwrap().to_string());
            }
            409 => {
                assert_eq!(r.code(), "IDEMPOTENCY_PENDING");
                assert_eq!(r.header("retry-after"), Some("1"), "a duplicate in flight is told when to retry");
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(ids.len(), 1, "every success is the same task");
    let list = app.get("/api/v1/tasks", Some(&client.key)).await.expect(200);
    assert_eq!(list.body["meta"]["pagination"]["total_count"], 1);
    assert_eq!(app.available(&client.key).await, "90.00");
    app.audit_ok().await;
}

both_engines!(bad_idempotency_keys_are_rejected);
async fn bad_idempotency_keys_are_rejected(app: TestApp) {
    let user = app.signup("badkey@example.com").await;
    let req = app
        .client
        .post(app.url("/api/v1/ledger/deposit"))
        .header("x-api-key", &user.key)
        .header("idempotency-key", "k".repeat(300))
        .json(&json!({"amount": "1", "currency": "USD", "payment_method": "sandbox"}));
    app.send(req).await.expect_error(422, "VALIDATION_ERROR");
    assert_eq!(app.available(&user.key).await, "0.00");
}

/// Holds the database's write lock (SQLite) or a lock on the ledger (PostgreSQL) until dropped,
/// so a money-moving request stalls inside its transaction.
struct Stall(Option<sqlx::AnyConnection>);

impl Stall {
    async fn start(app: &TestApp) -> Stall {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&app.database_url).await.unwrap();
        if app.database_url.starts_with("sqlite") {
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
        } else {
            sqlx::raw_sql("BEGIN; LOCK TABLE ledger_accounts IN ACCESS EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Stall(Some(conn))
    }
    async fn release(mut self) {
        let mut conn = self.0.take().unwrap();
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
    }
}

both_engines!(a_request_cut_off_mid_transaction_can_be_retried_at_once, |c: &mut agentmarket::Config| {
    c.request_timeout = std::time::Duration::from_millis(1500);
});
async fn a_request_cut_off_mid_transaction_can_be_retried_at_once(app: TestApp) {
    let user = app.signup("cutoff@example.com").await;
    let deposit = || {
        app.client
            .post(app.url("/api/v1/ledger/deposit"))
            .header("x-api-key", &user.key)
            .header("idempotency-key", "cut-1")
            .json(&json!({"amount": "7", "currency": "USD", "payment_method": "sandbox"}))
    };
    let stall = Stall::start(&app).await;
    app.send(deposit()).await.expect_error(408, "REQUEST_TIMEOUT");
    stall.release().await;
    // Nothing committed, so nothing holds the key: the retry runs now, not in five minutes.
    let retried = app.send(deposit()).await.expect(201);
    assert!(retried.header("idempotent-replayed").is_none());
    app.send(deposit()).await.expect(201).header("idempotent-replayed").map(drop).expect("then it replays");
    assert_eq!(app.available(&user.key).await, "7.00", "one effect");
    app.audit_ok().await;
}

both_engines!(a_duplicate_in_flight_is_told_to_retry);
async fn a_duplicate_in_flight_is_told_to_retry(app: TestApp) {
    let user = app.signup("inflight@example.com").await;
    let app = Arc::new(app);
    let deposit = |app: &TestApp| {
        app.client
            .post(app.url("/api/v1/ledger/deposit"))
            .header("x-api-key", &user.key)
            .header("idempotency-key", "flight-1")
            .json(&json!({"amount": "3", "currency": "USD", "payment_method": "sandbox"}))
    };
    let stall = Stall::start(&app).await;
    let first = tokio::spawn({
        let (app, req) = (app.clone(), deposit(&app));
        async move { app.send(req).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let second = tokio::spawn({
        let (app, req) = (app.clone(), deposit(&app));
        async move { app.send(req).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stall.release().await;
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    let (won, lost) = if first.status == 201 && first.header("idempotent-replayed").is_none() {
        (first, second)
    } else {
        (second, first)
    };
    won.expect(201);
    if app.database_url.starts_with("sqlite") && lost.status == 201 {
        // On SQLite the second request may queue for the write lock before it even looks at the
        // key (its rate-limit count is a write), and then finds the answer ready: a replay.
        assert_eq!(lost.header("idempotent-replayed"), Some("true"));
    } else {
        let lost = lost.expect_error(409, "IDEMPOTENCY_PENDING");
        assert_eq!(lost.header("retry-after"), Some("1"));
    }
    let replay = app.send(deposit(&app)).await.expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.available(&user.key).await, "3.00", "one effect");
}
