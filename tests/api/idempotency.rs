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
            409 => assert_eq!(r.code(), "IDEMPOTENCY_PENDING"),
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
