//! Disputes (API.md §6): tier 1, the lock, evidence, and the three administrator rulings with
//! their amounts and reputation moves.

use serde_json::json;

use crate::both_engines;
use crate::support::{Agent, TestApp, User};

struct Case {
    client: User,
    provider: Agent,
    admin: User,
    task: String,
}

/// A 10.00 task, funded, claimed, and completed with `output` (or only claimed when `None`).
async fn case(app: &TestApp, output: Option<serde_json::Value>) -> Case {
    let client = app.signup("client@example.com").await;
    let owner = app.signup("owner@example.com").await;
    let admin = app.admin("admin@example.com").await;
    let provider = app.register_agent(Some(&owner.key), "did:t:p", json!({})).await;
    app.fund(&client.key, "100").await;
    let t = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let task = t.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{task}/claim"), Some(&provider.key), json!({})).await.expect(200);
    if let Some(output) = output {
        app.post(&format!("/api/v1/tasks/{task}/complete"), Some(&provider.key), json!({"output": output}))
            .await
            .expect(200);
    }
    Case { client, provider, admin, task }
}

async fn reputation(app: &TestApp, agent: &Agent) -> f64 {
    app.get(&format!("/api/v1/agents/{}", agent.id), None).await.expect(200).data()["reputation_score"]
        .as_f64()
        .unwrap()
}

both_engines!(empty_output_is_refunded_at_once_by_tier_one);
async fn empty_output_is_refunded_at_once_by_tier_one(app: TestApp) {
    let c = case(&app, Some(json!(""))).await;
    let d = app
        .post(&format!("/api/v1/tasks/{}/dispute", c.task), Some(&c.client.key), json!({"reason": "nothing delivered"}))
        .await
        .expect(201);
    assert_eq!((d.data()["status"].as_str(), d.data()["outcome"].as_str()), (Some("resolved"), Some("refund")));
    assert_eq!(app.balance(&c.client.key).await, ("100.00".into(), "0.00".into(), "0.00".into(), "100.00".into()));
    assert_eq!(app.balance(&c.provider.key).await.3, "0.00");
    assert_eq!(reputation(&app, &c.provider).await, 2.85);
    let t = app.get(&format!("/api/v1/tasks/{}", c.task), Some(&c.client.key)).await.expect(200);
    assert_eq!(t.data()["payment_status"], "refunded");
    app.post(&format!("/api/v1/tasks/{}/dispute", c.task), Some(&c.client.key), json!({"reason": "again"}))
        .await
        .expect_error(409, "DISPUTE_OPEN");
    app.audit_ok().await;
}

both_engines!(an_open_dispute_locks_the_money_until_an_admin_refunds);
async fn an_open_dispute_locks_the_money_until_an_admin_refunds(app: TestApp) {
    let c = case(&app, Some(json!({"answer": "wrong"}))).await;
    let path = format!("/api/v1/tasks/{}", c.task);
    app.post(&format!("{path}/dispute"), Some(&c.provider.key), json!({"reason": "x"}))
        .await
        .expect_error(403, "FORBIDDEN");
    app.post(&format!("{path}/dispute"), Some(&c.client.key), json!({})).await.expect_error(422, "VALIDATION_ERROR");
    let d = app
        .post(&format!("{path}/dispute"), Some(&c.client.key), json!({"reason": "the answer is wrong"}))
        .await
        .expect(201);
    let dispute = d.data()["id"].as_str().unwrap().to_string();
    assert_eq!(d.data()["status"], "open");
    app.post(&format!("{path}/dispute"), Some(&c.client.key), json!({"reason": "again"}))
        .await
        .expect_error(409, "DISPUTE_OPEN");
    assert_eq!(app.get(&path, Some(&c.client.key)).await.data()["payment_status"], "disputed");

    // Money-moving actions are locked; the sweeper leaves it alone too.
    app.post(&format!("{path}/accept"), Some(&c.client.key), json!({})).await.expect_error(423, "ESCROW_LOCKED");
    app.post(&format!("{path}/cancel"), Some(&c.client.key), json!({})).await.expect_error(423, "ESCROW_LOCKED");
    app.post(&format!("{path}/fail"), Some(&c.provider.key), json!({"error_reason": "x"}))
        .await
        .expect_error(423, "ESCROW_LOCKED");
    app.clock.advance_secs(2 * 86_400);
    assert!(app.sweep().await.released.is_empty());
    assert_eq!(app.balance(&c.provider.key).await.2, "10.00", "still pending for the provider");

    let ev = app
        .post(&format!("/api/v1/disputes/{dispute}/evidence"), Some(&c.client.key), json!({"content": "expected 42"}))
        .await
        .expect(201);
    assert_eq!(ev.data()["evidence"][0]["party"], "client");
    let ev = app
        .post(&format!("/api/v1/disputes/{dispute}/evidence"), Some(&c.provider.key), json!({"content": "42 is wrong"}))
        .await
        .expect(201);
    assert_eq!(ev.data()["evidence"][1]["party"], "provider");
    let stranger = app.signup("s@example.com").await;
    app.post(&format!("/api/v1/disputes/{dispute}/evidence"), Some(&stranger.key), json!({"content": "me too"}))
        .await
        .expect_error(404, "NOT_FOUND");
    app.get(&format!("/api/v1/disputes/{dispute}"), Some(&stranger.key)).await.expect_error(404, "NOT_FOUND");
    let listed = app.get("/api/v1/disputes?status=open", Some(&c.admin.key)).await.expect(200);
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
    assert!(app.get("/api/v1/disputes", Some(&stranger.key)).await.expect(200).data().as_array().unwrap().is_empty());
    // Both parties list it, with its evidence (one query for the page, one for the evidence).
    for key in [&c.client.key, &c.provider.key] {
        let mine = app.get("/api/v1/disputes", Some(key)).await.expect(200);
        assert_eq!(mine.data().as_array().unwrap().len(), 1);
        assert_eq!(mine.data()[0]["evidence"].as_array().unwrap().len(), 2);
        let none = app.get("/api/v1/disputes?status=resolved", Some(key)).await.expect(200);
        assert!(none.data().as_array().unwrap().is_empty());
    }

    let resolve = format!("/api/v1/admin/disputes/{dispute}/resolve");
    app.post(&resolve, Some(&c.client.key), json!({"outcome": "refund"})).await.expect_error(403, "FORBIDDEN");
    app.post(&resolve, Some(&c.admin.key), json!({"outcome": "maybe"})).await.expect_error(422, "VALIDATION_ERROR");
    let r =
        app.post(&resolve, Some(&c.admin.key), json!({"outcome": "refund", "note": "spec says 42"})).await.expect(200);
    assert_eq!((r.data()["status"].as_str(), r.data()["outcome"].as_str()), (Some("resolved"), Some("refund")));
    app.post(&resolve, Some(&c.admin.key), json!({"outcome": "release"})).await.expect_error(409, "CONFLICT");
    assert_eq!(app.balance(&c.client.key).await, ("100.00".into(), "0.00".into(), "0.00".into(), "100.00".into()));
    assert_eq!(app.balance(&c.provider.key).await.3, "0.00");
    assert_eq!(reputation(&app, &c.provider).await, 2.85);
    let events: Vec<String> = app.get(&format!("{path}/timeline"), Some(&c.client.key)).await.data()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        events.ends_with(&[
            "dispute_opened".into(),
            "dispute_evidence_added".into(),
            "dispute_evidence_added".into(),
            "payment_refunded".into(),
            "dispute_resolved".into()
        ]),
        "{events:?}"
    );
    app.audit_ok().await;
}

both_engines!(a_release_ruling_pays_the_provider_and_raises_reputation);
async fn a_release_ruling_pays_the_provider_and_raises_reputation(app: TestApp) {
    let c = case(&app, Some(json!("fine work"))).await;
    let d = app
        .post(&format!("/api/v1/tasks/{}/dispute", c.task), Some(&c.client.key), json!({"reason": "meh"}))
        .await
        .expect(201);
    let id = d.data()["id"].as_str().unwrap();
    app.post(&format!("/api/v1/admin/disputes/{id}/resolve"), Some(&c.admin.key), json!({"outcome": "release"}))
        .await
        .expect(200);
    assert_eq!(app.balance(&c.provider.key).await, ("9.50".into(), "0.00".into(), "0.00".into(), "9.50".into()));
    assert_eq!(app.available(&c.client.key).await, "90.00");
    assert_eq!(reputation(&app, &c.provider).await, 3.1);
    app.audit_ok().await;
}

both_engines!(a_split_ruling_takes_the_fee_on_the_providers_part_only);
async fn a_split_ruling_takes_the_fee_on_the_providers_part_only(app: TestApp) {
    let c = case(&app, Some(json!("half right"))).await;
    let d = app
        .post(&format!("/api/v1/tasks/{}/dispute", c.task), Some(&c.client.key), json!({"reason": "partly wrong"}))
        .await
        .expect(201);
    let id = d.data()["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/admin/disputes/{id}/resolve"),
        Some(&c.admin.key),
        json!({"outcome": "split", "client_share_bps": 10001}),
    )
    .await
    .expect_error(422, "VALIDATION_ERROR");
    let r = app
        .post(
            &format!("/api/v1/admin/disputes/{id}/resolve"),
            Some(&c.admin.key),
            json!({"outcome": "split", "client_share_bps": 3000}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["client_share_bps"], 3000);
    // Client gets 3.00 back; provider part 7.00, fee 5% of it = 0.35, provider receives 6.65.
    assert_eq!(app.available(&c.client.key).await, "93.00");
    assert_eq!(app.available(&c.provider.key).await, "6.65");
    assert_eq!(agentmarket::ledger::fees_collected(&app.state.db).await.unwrap().to_string(), "0.35");
    assert_eq!(reputation(&app, &c.provider).await, 2.95);
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{}", c.task), Some(&c.client.key)).await.data()["payment_status"],
        "split"
    );
    app.audit_ok().await;
}

both_engines!(disputes_on_unfinished_tasks_and_the_cli_ruling);
async fn disputes_on_unfinished_tasks_and_the_cli_ruling(app: TestApp) {
    let c = case(&app, None).await;
    let d = app
        .post(&format!("/api/v1/tasks/{}/dispute", c.task), Some(&c.client.key), json!({"reason": "no progress"}))
        .await
        .expect(201);
    assert_eq!(d.data()["status"], "open", "in-progress work goes to arbitration");
    app.post(&format!("/api/v1/tasks/{}/complete", c.task), Some(&c.provider.key), json!({"output": "x"}))
        .await
        .expect_error(423, "ESCROW_LOCKED");
    // Resolved by task id, as `agentmarket admin resolve` does.
    let req = agentmarket::tasks::disputes::ResolveRequest {
        outcome: Some("split".into()),
        client_share_bps: None,
        note: None,
    };
    let resolved = agentmarket::tasks::disputes::resolve(&app.state.db, &app.state.engine, &c.task, req).await.unwrap();
    assert_eq!(resolved.client_share_bps, Some(5000));
    assert_eq!(app.available(&c.client.key).await, "95.00");
    assert_eq!(app.available(&c.provider.key).await, "4.75");
    let t = app.get(&format!("/api/v1/tasks/{}", c.task), Some(&c.client.key)).await.expect(200);
    assert_eq!((t.data()["status"].as_str(), t.data()["payment_status"].as_str()), (Some("completed"), Some("split")));
    app.audit_ok().await;
}

both_engines!(settled_or_unpaid_tasks_cannot_be_disputed);
async fn settled_or_unpaid_tasks_cannot_be_disputed(app: TestApp) {
    let c = case(&app, Some(json!("ok"))).await;
    app.post(&format!("/api/v1/tasks/{}/accept", c.task), Some(&c.client.key), json!({})).await.expect(200);
    app.post(&format!("/api/v1/tasks/{}/dispute", c.task), Some(&c.client.key), json!({"reason": "late regret"}))
        .await
        .expect_error(409, "CONFLICT");
    let unpaid = app.task(&c.client.key, &c.provider, json!({})).await.expect(201);
    let id = unpaid.data()["id"].as_str().unwrap();
    app.post(&format!("/api/v1/tasks/{id}/dispute"), Some(&c.client.key), json!({"reason": "x"}))
        .await
        .expect_error(409, "CONFLICT");
    app.audit_ok().await;
}

// A refund ruling ends the task as a cancel does, so it tells the client's subscriptions so:
// `task.cancelled` (it sent nothing before the engine).
both_engines!(a_refund_ruling_sends_the_cancelled_webhook);
async fn a_refund_ruling_sends_the_cancelled_webhook(app: TestApp) {
    let c = case(&app, Some(json!({"answer": "wrong"}))).await;
    app.post("/api/v1/webhooks", Some(&c.client.key), json!({"callback_url": "http://127.0.0.1:9/hook"}))
        .await
        .expect(201);
    let path = format!("/api/v1/tasks/{}", c.task);
    let d = app.post(&format!("{path}/dispute"), Some(&c.client.key), json!({"reason": "wrong"})).await.expect(201);
    let dispute = d.data()["id"].as_str().unwrap().to_string();
    let cancelled = || async {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM webhook_deliveries WHERE event = 'task.cancelled' AND task_id = $1")
                .bind(&c.task)
                .fetch_one(app.state.db.pool())
                .await
                .unwrap();
        n
    };
    assert_eq!(cancelled().await, 0);
    app.post(&format!("/api/v1/admin/disputes/{dispute}/resolve"), Some(&c.admin.key), json!({"outcome": "refund"}))
        .await
        .expect(200);
    assert_eq!(cancelled().await, 1, "one task.cancelled delivery for the client's subscription");
    app.audit_ok().await;
}
