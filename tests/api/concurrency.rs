//! Many requests at once against one wallet or one task: nothing lost, nothing doubled, and the
//! audit clean afterwards, on both engines.

use std::sync::Arc;

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(fifty_payments_from_a_wallet_that_affords_ten);
async fn fifty_payments_from_a_wallet_that_affords_ten(app: TestApp) {
    let client = app.signup("rich@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({"base_price": "10.00"})).await;
    app.fund(&client.key, "100.00").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let t = app.task(&client.key, &provider, json!({})).await.expect(201);
        tasks.push(t.data()["id"].as_str().unwrap().to_string());
    }
    let app = Arc::new(app);
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|id| {
            let (app, key) = (app.clone(), client.key.clone());
            tokio::spawn(async move { app.post(&format!("/api/v1/tasks/{id}/payments"), Some(&key), json!({})).await })
        })
        .collect();
    let (mut paid, mut refused) = (0, 0);
    for h in handles {
        let r = h.await.unwrap();
        match (r.status, r.code()) {
            (201, _) => paid += 1,
            (422, "INSUFFICIENT_BALANCE") => refused += 1,
            _ => panic!("unexpected {}: {}", r.status, r.text),
        }
    }
    assert_eq!((paid, refused), (10, 40));
    assert_eq!(app.balance(&client.key).await, ("0.00".into(), "100.00".into(), "0.00".into(), "100.00".into()));
    let escrowed = app.get("/api/v1/tasks?limit=100", Some(&client.key)).await.expect(200);
    let held = escrowed.data().as_array().unwrap().iter().filter(|t| t["payment_status"] == "escrowed").count();
    assert_eq!(held, 10);
    app.audit_ok().await;
}

// No review window: a completion settles at once, so whichever of complete, cancel or fail
// wins, the race ends with exactly one settlement.
both_engines!(twenty_racing_settlements_of_one_task_settle_once, |c: &mut agentmarket::Config| c.review_window = 0);
async fn twenty_racing_settlements_of_one_task_settle_once(app: TestApp) {
    let client = app.signup("racer@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({"base_price": "10.00"})).await;
    app.fund(&client.key, "10.00").await;
    let t = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&provider.key), json!({})).await.expect(200);
    let app = Arc::new(app);
    let mut handles = Vec::new();
    for i in 0..20 {
        let (app, id) = (app.clone(), id.clone());
        let (ck, pk) = (client.key.clone(), provider.key.clone());
        handles.push(tokio::spawn(async move {
            match i % 4 {
                0 => app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&pk), json!({"output": "done"})).await,
                1 => app.post(&format!("/api/v1/tasks/{id}/cancel"), Some(&ck), json!({})).await,
                2 => app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&ck), json!({})).await,
                _ => app.post(&format!("/api/v1/tasks/{id}/fail"), Some(&pk), json!({"error_reason": "race"})).await,
            }
        }));
    }
    for h in handles {
        let r = h.await.unwrap();
        assert!(r.status == 200 || (r.status == 409 && r.code() == "CONFLICT"), "unexpected {}: {}", r.status, r.text);
    }
    let entries: Vec<(String,)> =
        sqlx::query_as("SELECT kind FROM journal_entries WHERE task_id = $1 AND kind IN ('escrow_release', 'escrow_refund', 'escrow_split')")
            .bind(&id)
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(entries.len(), 1, "exactly one settlement: {entries:?}");
    let (a, e, p, total) = app.balance(&client.key).await;
    let (pa, _, pp, ptotal) = app.balance(&provider.key).await;
    let units = |s: &str| agentmarket::money::Amount::parse(s).unwrap().units();
    let fees = agentmarket::ledger::fees_collected(&app.state.db).await.unwrap().units();
    assert_eq!(
        units(&total) + units(&ptotal) + fees,
        units("10.00"),
        "no money created or lost: {a} {e} {p} / {pa} {pp}"
    );
    app.audit_ok().await;
}

both_engines!(twenty_parallel_withdrawals_never_exceed_the_balance);
async fn twenty_parallel_withdrawals_never_exceed_the_balance(app: TestApp) {
    let user = app.signup("wd@example.com").await;
    app.fund(&user.key, "50.00").await;
    let addr = app
        .post("/api/v1/withdrawal-addresses", Some(&user.key), json!({"currency": "USDC", "address": "0xabc"}))
        .await
        .expect(201);
    let addr = addr.data()["id"].as_str().unwrap().to_string();
    let app = Arc::new(app);
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (app, key, addr) = (app.clone(), user.key.clone(), addr.clone());
            tokio::spawn(async move {
                app.post(
                    "/api/v1/ledger/withdraw",
                    Some(&key),
                    json!({"amount": "7.00", "currency": "USD", "withdrawal_address_id": addr}),
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for h in handles {
        let r = h.await.unwrap();
        match (r.status, r.code()) {
            (201, _) => ok += 1,
            (422, "INSUFFICIENT_BALANCE") => {}
            _ => panic!("unexpected {}: {}", r.status, r.text),
        }
    }
    assert_eq!(ok, 7, "7 × 7.00 fit in 50.00");
    assert_eq!(app.available(&user.key).await, "1.00");
    app.audit_ok().await;
}
