//! Hirings: hire with escrow at once, the availability probe, idempotent replays, the client and
//! agent sides, questions, and the `{hirings, total, …}` list shape.

use serde_json::json;

use crate::both_engines;
use crate::support::receiver::Receiver;
use crate::support::{TestApp, enc};

fn hire_body(key: Option<&str>) -> serde_json::Value {
    let mut b = json!({"task_description": "Review PR #7", "capability_requested": "code-review", "price": "10.00",
                       "task_input": {"paperclip_run_id": "run-1"}, "client_message": "thanks!"});
    if let Some(k) = key {
        b["client_idempotency_key"] = json!(k);
    }
    b
}

both_engines!(a_hiring_holds_escrow_probes_the_agent_and_settles);
async fn a_hiring_holds_escrow_probes_the_agent_and_settles(app: TestApp) {
    let user = app.signup("hirer@example.com").await;
    app.fund(&user.key, "50").await;
    let callback = Receiver::start(None).await;
    let agent =
        app.register_agent(None, "did:agrenting:worker", json!({"metadata": {"callback_url": callback.url}})).await;
    let r = app
        .post(&format!("/api/v1/agents/{}/hire", enc(&agent.did)), Some(&user.key), hire_body(Some("run-1")))
        .await
        .expect(201);
    let hiring = &r.data()["hiring"];
    let id = hiring["id"].as_str().unwrap().to_string();
    assert_eq!((hiring["status"].as_str(), hiring["final"].as_bool()), (Some("queued"), Some(false)));
    assert_eq!(hiring["price"], "10.00");
    assert_eq!(hiring["task_input"], json!({"paperclip_run_id": "run-1"}));
    assert_eq!(hiring["messages"][0]["content"], "thanks!");
    assert_eq!(r.data()["config"]["agentDid"], agent.did.as_str());
    assert_eq!(r.data()["config"]["hiringId"], id.as_str());
    assert_eq!(app.balance(&user.key).await.1, "10.00", "escrow held at once");

    // Replays: same key + same request → the original; same key + another request → 409.
    let again = app
        .post(&format!("/api/v1/agents/{}/hire", enc(&agent.did)), Some(&user.key), hire_body(Some("run-1")))
        .await
        .expect(200);
    assert_eq!(again.data()["hiring"]["id"], id.as_str());
    let mut changed = hire_body(Some("run-1"));
    changed["price"] = json!("12.00");
    app.post(&format!("/api/v1/agents/{}/hire", enc(&agent.did)), Some(&user.key), changed)
        .await
        .expect_error(409, "IDEMPOTENCY_CONFLICT");
    assert_eq!(app.balance(&user.key).await.1, "10.00", "no second hold");

    // The probe: HEAD on the callback answers 200 → in progress.
    let probed = app.probe(&id).await;
    assert_eq!(probed.status.as_str(), "in_progress");
    assert_eq!(callback.received().len(), 0, "a HEAD probe carries no body to the receiver's POST route");
    let pending = app.get("/api/v1/hirings/pending", Some(&agent.key)).await.expect(200);
    assert_eq!(pending.data()[0]["id"], id.as_str());

    // A question from the agent stays open until the client answers it.
    let q = app
        .post(
            &format!("/api/v1/hirings/{id}/messages"),
            Some(&agent.key),
            json!({"content": "Which branch?", "kind": "question"}),
        )
        .await
        .expect(201);
    let qid = q.data()["id"].as_str().unwrap().to_string();
    let h = app.get(&format!("/api/v1/hirings/{id}"), Some(&user.key)).await.expect(200);
    assert_eq!(h.data()["open_questions"][0]["question_id"], qid.as_str());
    app.post(
        &format!("/api/v1/hirings/{id}/messages"),
        Some(&user.key),
        json!({"content": "main", "reply_to_id": qid}),
    )
    .await
    .expect(201);
    let h = app.get(&format!("/api/v1/hirings/{id}"), Some(&user.key)).await.expect(200);
    assert!(h.data()["open_questions"].as_array().unwrap().is_empty());

    let done = app
        .post(&format!("/api/v1/hirings/{id}/result"), Some(&agent.key), json!({"result": {"summary": "LGTM"}}))
        .await
        .expect(200);
    assert_eq!((done.data()["status"].as_str(), done.data()["final"].as_bool()), (Some("completed"), Some(true)));
    assert_eq!(done.data()["task_output"], json!({"summary": "LGTM"}));
    app.post(&format!("/api/v1/hirings/{id}/cancel"), Some(&user.key), json!({})).await.expect_error(409, "CONFLICT");
    // It settles through the same engine: the review window, then the release.
    app.clock.advance_secs(86_400);
    app.sweep().await;
    assert_eq!(app.available(&agent.key).await, "9.50");

    let list = app.get("/api/v1/hirings?limit=1", Some(&user.key)).await.expect(200);
    assert_eq!(
        (
            list.data()["total"].as_i64(),
            list.data()["page"].as_i64(),
            list.data()["per_page"].as_i64(),
            list.data()["total_pages"].as_i64()
        ),
        (Some(1), Some(1), Some(1), Some(1))
    );
    assert_eq!(list.data()["hirings"][0]["id"], id.as_str());
    let none = app.get("/api/v1/hirings?status=failed", Some(&user.key)).await.expect(200);
    assert_eq!(none.data()["total"], 0);
    app.audit_ok().await;
}

both_engines!(an_unavailable_agent_fails_the_hiring_with_a_refund);
async fn an_unavailable_agent_fails_the_hiring_with_a_refund(app: TestApp) {
    let user = app.signup("hirer@example.com").await;
    app.fund(&user.key, "20").await;
    let receiver = Receiver::start(None).await;
    let hooks = app
        .post(
            "/api/v1/webhooks",
            Some(&user.key),
            json!({"callback_url": receiver.url, "event_types": ["hiring.created", "hiring.failed"]}),
        )
        .await
        .expect(201);
    assert_eq!(hooks.status, 201);
    // A callback that refuses (nothing listens on port 9).
    let agent =
        app.register_agent(None, "did:t:down", json!({"metadata": {"callback_url": "http://127.0.0.1:9/hook"}})).await;
    let r = app.post(&format!("/api/v1/agents/{}/hire", agent.did), Some(&user.key), hire_body(None)).await.expect(201);
    let id = r.data()["hiring"]["id"].as_str().unwrap().to_string();
    let probed = app.probe(&id).await;
    assert_eq!((probed.status.as_str(), probed.payment_status.as_str()), ("failed", "refunded"));
    assert_eq!(app.balance(&user.key).await, ("20.00".into(), "0.00".into(), "0.00".into(), "20.00".into()));
    let h = app.get(&format!("/api/v1/hirings/{id}"), Some(&user.key)).await.expect(200);
    assert!(h.data()["failed_reason"].as_str().unwrap().starts_with("agent_unresponsive"));
    app.deliver().await;
    let events: Vec<String> =
        receiver.received().iter().map(|r| r.headers["x-webhook-event"].to_str().unwrap().to_string()).collect();
    let mut events = events;
    events.sort();
    assert_eq!(events, ["hiring.created", "hiring.failed"]);
    // Without a callback, an agent seen within the hour counts as available.
    let poller = app.register_agent(None, "did:t:poller", json!({})).await;
    let r =
        app.post(&format!("/api/v1/agents/{}/hire", poller.did), Some(&user.key), hire_body(None)).await.expect(201);
    let id = r.data()["hiring"]["id"].as_str().unwrap().to_string();
    assert_eq!(app.probe(&id).await.status.as_str(), "in_progress");
    app.audit_ok().await;
}

both_engines!(hire_validates_and_caps_and_cancels_with_refund);
async fn hire_validates_and_caps_and_cancels_with_refund(app: TestApp) {
    let user = app.signup("hirer@example.com").await;
    app.fund(&user.key, "20").await;
    let agent = app.register_agent(None, "did:t:cap", json!({})).await;
    let path = format!("/api/v1/agents/{}/hire", agent.did);
    let bad = app
        .post(
            &path,
            Some(&user.key),
            json!({"task_description": "", "capability_requested": "", "delivery_mode": "fax"}),
        )
        .await;
    let bad = bad.expect_error(422, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["capability_requested", "delivery_mode", "task_description"]);
    let mut low = hire_body(None);
    low["price"] = json!("9.99");
    app.post(&path, Some(&user.key), low).await.expect_error(422, "INVALID_AMOUNT");
    let capped = app
        .post("/api/v1/api-keys", Some(&user.key), json!({"name": "capped", "max_price_per_hire": "5"}))
        .await
        .expect(201);
    app.post(&path, Some(capped.data()["api_key"].as_str().unwrap()), hire_body(None))
        .await
        .expect_error(422, "PRICE_ABOVE_MAX");
    let mut big = hire_body(None);
    big["price"] = json!("20.01");
    app.post(&path, Some(&user.key), big).await.expect_error(422, "INSUFFICIENT_BALANCE");
    let r = app.post(&path, Some(&user.key), hire_body(None)).await.expect(201);
    let id = r.data()["hiring"]["id"].as_str().unwrap();
    let req = app
        .client
        .post(app.url(&format!("/api/v1/hirings/{id}/cancel")))
        .header("content-type", "application/json")
        .header("x-api-key", &user.key);
    let cancelled = app.send(req).await.expect(200);
    assert_eq!(
        (cancelled.data()["status"].as_str(), cancelled.data()["final"].as_bool()),
        (Some("cancelled"), Some(true))
    );
    assert_eq!(app.available(&user.key).await, "20.00");
    let stranger = app.signup("s@example.com").await;
    app.get(&format!("/api/v1/hirings/{id}"), Some(&stranger.key)).await.expect_error(404, "NOT_FOUND");
    app.post(&format!("/api/v1/hirings/{id}/retry"), Some(&user.key), json!({})).await.expect_error(409, "CONFLICT");
    app.audit_ok().await;
}
