//! Tasks and escrow (API.md §6): pricing, holds, the state machine, settlement amounts, the
//! task's records, and every error path leaving balances untouched.

use serde_json::json;

use crate::both_engines;
use crate::support::{Agent, TestApp, User};

struct World {
    client: User,
    provider_owner: User,
    provider: Agent,
}

async fn world(app: &TestApp, price: &str) -> World {
    let client = app.signup("client@example.com").await;
    let provider_owner = app.signup("provider@example.com").await;
    let provider = app.register_agent(Some(&provider_owner.key), "did:t:provider", json!({"base_price": price})).await;
    app.fund(&client.key, "100.00").await;
    World { client, provider_owner, provider }
}

both_engines!(a_paid_task_walks_through_escrow_and_settles_with_the_fee);
async fn a_paid_task_walks_through_escrow_and_settles_with_the_fee(app: TestApp) {
    let w = world(&app, "10.00").await;
    let r = app.task(&w.client.key, &w.provider, json!({"payment_type": "balance"})).await.expect(201);
    let t = r.data();
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!((t["status"].as_str(), t["payment_status"].as_str()), (Some("pending"), Some("escrowed")));
    assert_eq!(
        (t["price"].as_str(), t["fee"].as_str(), t["fee_bps"].as_i64()),
        (Some("10.00"), Some("0.50"), Some(500))
    );
    assert_eq!(t["input"], json!({"prompt": "review my PR"}), "a string input becomes {{prompt}}");
    assert_eq!(t["client_user_id"], w.client.id.as_str());
    assert_eq!(app.balance(&w.client.key).await, ("90.00".into(), "10.00".into(), "0.00".into(), "100.00".into()));

    let path = format!("/api/v1/tasks/{id}");
    let claimed = app.post(&format!("{path}/claim"), Some(&w.provider.key), json!({})).await.expect(200);
    assert_eq!(claimed.data()["status"], "claimed");
    let p = app
        .post(
            &format!("{path}/progress"),
            Some(&w.provider.key),
            json!({"progress_percent": 40, "progress_message": "half way"}),
        )
        .await
        .expect(200);
    assert_eq!((p.data()["status"].as_str(), p.data()["progress_percent"].as_i64()), (Some("in_progress"), Some(40)));

    let output = json!({"summary": "LGTM", "issues": []});
    let req = app
        .client
        .put(app.url(&format!("{path}/complete")))
        .header("x-api-key", &w.provider.key)
        .json(&json!({"output": output}));
    let done = app.send(req).await.expect(200);
    assert_eq!(done.data()["status"], "completed");
    assert_eq!(done.data()["output"], output);
    let digest = done.data()["output_sha256"].as_str().unwrap();
    assert_eq!(digest.len(), 64);
    assert!(done.data()["review_until"].is_string());
    // The money waits in the provider's pending during the review window.
    assert_eq!(app.balance(&w.client.key).await, ("90.00".into(), "0.00".into(), "0.00".into(), "90.00".into()));
    assert_eq!(app.balance(&w.provider.key).await, ("0.00".into(), "0.00".into(), "10.00".into(), "10.00".into()));

    let accepted = app
        .post(&format!("{path}/accept"), Some(&w.client.key), json!({"rating": 4, "review": "fast"}))
        .await
        .expect(200);
    assert_eq!(accepted.data()["payment_status"], "released");
    assert!(accepted.data()["released_at"].is_string());
    assert_eq!(app.balance(&w.provider.key).await, ("9.50".into(), "0.00".into(), "0.00".into(), "9.50".into()));
    assert_eq!(app.available(&w.client.key).await, "90.00");
    let fees = agentmarket::ledger::fees_collected(&app.state.db).await.unwrap();
    assert_eq!(fees.to_string(), "0.50");

    let profile = app.get(&format!("/api/v1/agents/{}", w.provider.id), None).await.expect(200);
    assert_eq!(profile.data()["total_tasks_completed"], 1);
    assert_eq!(profile.data()["reviews"], json!({"average_rating": 4.0, "total_reviews": 1}));
    assert_eq!(profile.data()["success_rate"], 1.0);

    // The statement of each side.
    let client_tx = app.get("/api/v1/ledger/transactions?", Some(&w.client.key)).await.expect(200);
    let types: Vec<&str> = client_tx.data().as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["escrow_release", "escrow_hold", "deposit"]);
    let provider_tx = app.get("/api/v1/ledger/transactions", Some(&w.provider.key)).await.expect(200);
    let lines: Vec<(String, String)> = provider_tx
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["type"].as_str().unwrap().to_string(), t["amount"].as_str().unwrap().to_string()))
        .collect();
    assert!(
        lines.contains(&("earning".into(), "9.50".into())) && lines.contains(&("platform_fee".into(), "0.50".into()))
    );

    let timeline = app.get(&format!("{path}/timeline"), Some(&w.client.key)).await.expect(200);
    let events: Vec<&str> =
        timeline.data()["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "task_created",
            "payment_escrowed",
            "task_claimed",
            "task_progress",
            "task_completed",
            "task_accepted",
            "payment_released"
        ]
    );
    let attempts = app.get(&format!("{path}/attempts"), Some(&w.provider.key)).await.expect(200);
    assert_eq!(attempts.data()["attempts"][0]["status"], "completed");
    app.audit_ok().await;

    // A second accept settles nothing more.
    app.post(&format!("{path}/accept"), Some(&w.client.key), json!({})).await.expect_error(409, "CONFLICT");
    assert_eq!(app.available(&w.provider.key).await, "9.50");
}

both_engines!(payments_hold_once_and_the_get_reconciles);
async fn payments_hold_once_and_the_get_reconciles(app: TestApp) {
    let w = world(&app, "25.00").await;
    let r = app.task(&w.client.key, &w.provider, json!({})).await.expect(201);
    let id = r.data()["id"].as_str().unwrap();
    assert_eq!(r.data()["payment_status"], "unpaid");
    app.get(&format!("/api/v1/tasks/{id}/payments"), Some(&w.client.key)).await.expect_error(404, "NOT_FOUND");
    // Unfunded: the provider cannot claim.
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&w.provider.key), json!({}))
        .await
        .expect_error(409, "CONFLICT");

    let first = app
        .post(&format!("/api/v1/tasks/{id}/payments"), Some(&w.client.key), json!({"task_id": id}))
        .await
        .expect(201);
    let p = first.data();
    assert_eq!(
        (p["amount"].as_str(), p["status"].as_str(), p["payment_type"].as_str()),
        (Some("25.00"), Some("escrowed"), Some("balance"))
    );
    assert_eq!(p["escrow_held"], true);
    assert_eq!(p["id"], p["payment_id"]);
    let again = app.post(&format!("/api/v1/tasks/{id}/payments"), Some(&w.client.key), json!({})).await.expect(200);
    assert_eq!(again.data()["id"], p["id"], "the same payment, never a second hold");
    let read = app.get(&format!("/api/v1/tasks/{id}/payments"), Some(&w.provider.key)).await.expect(200);
    assert_eq!(read.data()["id"], p["id"]);
    assert_eq!(app.balance(&w.client.key).await.0, "75.00");
    // Only the client pays; crypto needs a provider.
    app.post(&format!("/api/v1/tasks/{id}/payments"), Some(&w.provider.key), json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    let other = app.task(&w.client.key, &w.provider, json!({})).await.expect(201);
    let other_id = other.data()["id"].as_str().unwrap();
    app.post(&format!("/api/v1/tasks/{other_id}/payments"), Some(&w.client.key), json!({"payment_type": "crypto"}))
        .await
        .expect_error(402, "PAYMENT_FAILED");
    app.audit_ok().await;
}

both_engines!(free_tasks_move_no_money);
async fn free_tasks_move_no_money(app: TestApp) {
    let w = world(&app, "0").await;
    let r = app.task(&w.client.key, &w.provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = r.data()["id"].as_str().unwrap();
    assert_eq!((r.data()["payment_status"].as_str(), r.data()["fee"].as_str()), (Some("not_required"), Some("0.00")));
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&w.provider.key), json!({})).await.expect(200);
    app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&w.provider.key), json!({"output": "done"}))
        .await
        .expect(200);
    let accepted =
        app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&w.client.key), json!({"rating": 5})).await.expect(200);
    assert_eq!(accepted.data()["payment_status"], "not_required");
    assert_eq!(app.balance(&w.client.key).await, ("100.00".into(), "0.00".into(), "0.00".into(), "100.00".into()));
    assert_eq!(app.balance(&w.provider.key).await.3, "0.00");
    let pay = app.post(&format!("/api/v1/tasks/{id}/payments"), Some(&w.client.key), json!({})).await.expect(200);
    assert_eq!(pay.data()["amount"], "0.00");
    app.audit_ok().await;
}

both_engines!(prices_follow_the_pricing_model_and_the_caps);
async fn prices_follow_the_pricing_model_and_the_caps(app: TestApp) {
    let w = world(&app, "10.00").await;
    let auction = app
        .register_agent(
            Some(&w.provider_owner.key),
            "did:t:auction",
            json!({"pricing_model": "auction", "base_price": "5"}),
        )
        .await;
    let hybrid = app
        .register_agent(
            Some(&w.provider_owner.key),
            "did:t:hybrid",
            json!({"pricing_model": "hybrid", "base_price": "5"}),
        )
        .await;

    app.task(&w.client.key, &w.provider, json!({"max_price": "9.99"})).await.expect_error(422, "PRICE_ABOVE_MAX");
    let fixed = app.task(&w.client.key, &w.provider, json!({"max_price": "50"})).await.expect(201);
    assert_eq!(fixed.data()["price"], "10.00", "fixed agents charge their base price");
    // DIDs work where ids are expected.
    let mut by_did = json!({"provider_agent_id": w.provider.did, "capability": "code-review", "input": {"x": 1}});
    app.post("/api/v1/tasks", Some(&w.client.key), by_did.take()).await.expect(201);

    app.task(&w.client.key, &auction, json!({})).await.expect_error(422, "INVALID_AMOUNT");
    let offer = app.task(&w.client.key, &auction, json!({"max_price": "3.25"})).await.expect(201);
    assert_eq!(offer.data()["price"], "3.25", "auction: max_price is the offer");
    app.task(&w.client.key, &hybrid, json!({"max_price": "4.99"})).await.expect_error(422, "INVALID_AMOUNT");
    assert_eq!(app.task(&w.client.key, &hybrid, json!({"max_price": "6"})).await.expect(201).data()["price"], "6.00");

    let capped = app
        .post("/api/v1/api-keys", Some(&w.client.key), json!({"name": "capped", "max_price_per_hire": "9.00"}))
        .await
        .expect(201);
    let capped = capped.data()["api_key"].as_str().unwrap().to_string();
    app.task(&capped, &w.provider, json!({})).await.expect_error(422, "PRICE_ABOVE_MAX");
    app.task(&capped, &auction, json!({"max_price": "9.00"})).await.expect(201);
    app.task(&w.client.key, &w.provider, json!({"max_price": "1.123456789"})).await.expect_error(422, "INVALID_AMOUNT");
    assert_eq!(app.available(&w.client.key).await, "100.00", "none of these paid");
}

both_engines!(task_creation_checks_the_provider_and_the_input);
async fn task_creation_checks_the_provider_and_the_input(app: TestApp) {
    let w = world(&app, "10.00").await;
    let r =
        app.post("/api/v1/tasks", Some(&w.client.key), json!({"input": 5})).await.expect_error(422, "VALIDATION_ERROR");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["capability", "input", "provider_agent_id"]);
    app.task(&w.client.key, &w.provider, json!({"capability": "cooking"})).await.expect_error(422, "VALIDATION_ERROR");
    let ghost = json!({"provider_agent_id": "did:t:ghost", "capability": "code-review", "input": "x"});
    app.post("/api/v1/tasks", Some(&w.client.key), ghost).await.expect_error(404, "NOT_FOUND");
    app.task(&w.client.key, &w.provider, json!({"deadline_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    // An agent cannot hire itself.
    app.fund(&w.provider.key, "20").await;
    app.task(&w.provider.key, &w.provider, json!({})).await.expect_error(422, "VALIDATION_ERROR");
    // A draft provider is unavailable.
    app.patch(&format!("/api/v1/agents/{}", w.provider.id), Some(&w.provider_owner.key), json!({"status": "inactive"}))
        .await
        .expect(200);
    app.task(&w.client.key, &w.provider, json!({})).await.expect_error(503, "AGENT_UNAVAILABLE");
    // Not enough money: nothing is created.
    app.patch(
        &format!("/api/v1/agents/{}", w.provider.id),
        Some(&w.provider_owner.key),
        json!({"status": "active", "base_price": "100.01"}),
    )
    .await
    .expect(200);
    app.task(&w.client.key, &w.provider, json!({"payment_type": "balance"}))
        .await
        .expect_error(422, "INSUFFICIENT_BALANCE");
    let list = app.get("/api/v1/tasks", Some(&w.client.key)).await.expect(200);
    assert_eq!(list.body["meta"]["pagination"]["total_count"], 0);
    assert_eq!(app.balance(&w.client.key).await, ("100.00".into(), "0.00".into(), "0.00".into(), "100.00".into()));
    app.audit_ok().await;
}

both_engines!(fail_and_cancel_refund_and_wrong_actors_are_refused);
async fn fail_and_cancel_refund_and_wrong_actors_are_refused(app: TestApp) {
    let w = world(&app, "10.00").await;
    let stranger = app.signup("stranger@example.com").await;
    let a = app.task(&w.client.key, &w.provider, json!({"payment_type": "balance"})).await.expect(201);
    let a = a.data()["id"].as_str().unwrap().to_string();
    let b = app.task(&w.client.key, &w.provider, json!({"payment_type": "balance"})).await.expect(201);
    let b = b.data()["id"].as_str().unwrap().to_string();
    assert_eq!(app.available(&w.client.key).await, "80.00");

    // Strangers see nothing; the client cannot act as provider and vice versa.
    app.get(&format!("/api/v1/tasks/{a}"), Some(&stranger.key)).await.expect_error(404, "NOT_FOUND");
    app.post(&format!("/api/v1/tasks/{a}/cancel"), Some(&stranger.key), json!({})).await.expect_error(404, "NOT_FOUND");
    app.post(&format!("/api/v1/tasks/{a}/claim"), Some(&w.client.key), json!({})).await.expect_error(403, "FORBIDDEN");
    app.post(&format!("/api/v1/tasks/{a}/cancel"), Some(&w.provider.key), json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    // The provider's owner acts for it.
    app.post(&format!("/api/v1/tasks/{a}/claim"), Some(&w.provider_owner.key), json!({})).await.expect(200);
    app.post(&format!("/api/v1/tasks/{a}/fail"), Some(&w.provider.key), json!({}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let failed = app
        .post(&format!("/api/v1/tasks/{a}/fail"), Some(&w.provider.key), json!({"error_reason": "repo is private"}))
        .await
        .expect(200);
    assert_eq!(
        (failed.data()["status"].as_str(), failed.data()["payment_status"].as_str()),
        (Some("failed"), Some("refunded"))
    );
    assert_eq!(failed.data()["error_reason"], "repo is private");

    // Cancel with the clients' empty body and JSON content type.
    let req = app
        .client
        .post(app.url(&format!("/api/v1/tasks/{b}/cancel")))
        .header("content-type", "application/json")
        .header("x-api-key", &w.client.key);
    let cancelled = app.send(req).await.expect(200);
    assert_eq!(
        (cancelled.data()["status"].as_str(), cancelled.data()["payment_status"].as_str()),
        (Some("cancelled"), Some("refunded"))
    );
    assert_eq!(app.balance(&w.client.key).await, ("100.00".into(), "0.00".into(), "0.00".into(), "100.00".into()));

    // Terminal tasks refuse further transitions and move no money.
    app.post(&format!("/api/v1/tasks/{b}/cancel"), Some(&w.client.key), json!({})).await.expect_error(409, "CONFLICT");
    app.post(&format!("/api/v1/tasks/{a}/complete"), Some(&w.provider.key), json!({"output": "late"}))
        .await
        .expect_error(409, "CONFLICT");
    app.post(&format!("/api/v1/tasks/{a}/accept"), Some(&w.client.key), json!({})).await.expect_error(409, "CONFLICT");
    app.post(&format!("/api/v1/tasks/{b}/payments"), Some(&w.client.key), json!({})).await.expect(200);
    assert_eq!(app.available(&w.client.key).await, "100.00");
    let profile = app.get(&format!("/api/v1/agents/{}", w.provider.id), None).await.expect(200);
    assert_eq!(profile.data()["success_rate"], 0.0);
    app.audit_ok().await;
}

both_engines!(bad_input_on_transitions_is_rejected_without_effect);
async fn bad_input_on_transitions_is_rejected_without_effect(app: TestApp) {
    let w = world(&app, "10.00").await;
    let t = app.task(&w.client.key, &w.provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&w.provider.key), json!({})).await.expect(200);
    app.post(&format!("/api/v1/tasks/{id}/progress"), Some(&w.provider.key), json!({"progress_percent": 101}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&w.provider.key), json!({}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&w.client.key), json!({"rating": 6}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&w.client.key), json!({})).await.expect_error(409, "CONFLICT");
    let now = app.get(&format!("/api/v1/tasks/{id}"), Some(&w.client.key)).await.expect(200);
    assert_eq!((now.data()["status"].as_str(), now.data()["progress_percent"].as_i64()), (Some("claimed"), Some(0)));
    assert_eq!(app.balance(&w.client.key).await, ("90.00".into(), "10.00".into(), "0.00".into(), "100.00".into()));
    app.audit_ok().await;
}

both_engines!(reassign_moves_the_task_and_keeps_the_escrow);
async fn reassign_moves_the_task_and_keeps_the_escrow(app: TestApp) {
    let w = world(&app, "10.00").await;
    let second = app.register_agent(Some(&w.provider_owner.key), "did:t:second", json!({})).await;
    let t = app.task(&w.client.key, &w.provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&w.provider.key), json!({})).await.expect(200);
    let r = app
        .post(
            &format!("/api/v1/tasks/{id}/reassign"),
            Some(&w.client.key),
            json!({"new_provider_agent_did": second.did}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["provider_agent_id"], second.id.as_str());
    assert_eq!(r.data()["previous_agent_did"], "did:t:provider");
    assert_eq!(r.data()["status"], "pending");
    assert_eq!(app.balance(&w.client.key).await.1, "10.00", "the escrow stays");
    // The old provider is no longer a participant.
    app.get(&format!("/api/v1/tasks/{id}"), Some(&w.provider.key)).await.expect_error(404, "NOT_FOUND");
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&second.key), json!({})).await.expect(200);
    // Naming no agent lets the platform pick another active one with the capability.
    let picked = app.post(&format!("/api/v1/tasks/{id}/reassign"), Some(&w.client.key), json!({})).await.expect(200);
    assert_eq!(picked.data()["provider_agent_id"], w.provider.id.as_str(), "the only other agent offering it");
    app.post(&format!("/api/v1/tasks/{id}/reassign"), Some(&w.client.key), json!({"provider_agent_id": second.id}))
        .await
        .expect(200);
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&second.key), json!({})).await.expect(200);
    let attempts = app.get(&format!("/api/v1/tasks/{id}/attempts"), Some(&w.client.key)).await.expect(200);
    let statuses: Vec<&str> =
        attempts.data()["attempts"].as_array().unwrap().iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["abandoned", "abandoned", "in_progress"]);
    app.audit_ok().await;
}

both_engines!(messages_and_listing_are_for_participants);
async fn messages_and_listing_are_for_participants(app: TestApp) {
    let w = world(&app, "10.00").await;
    let stranger = app.signup("nosy@example.com").await;
    let t = app.task(&w.client.key, &w.provider, json!({})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    let m = app
        .post(&format!("/api/v1/tasks/{id}/messages"), Some(&w.client.key), json!({"content": "please hurry"}))
        .await
        .expect(201);
    assert_eq!(m.data()["message_id"], m.data()["id"]);
    assert_eq!(m.data()["sender_user_id"], w.client.id.as_str());
    assert!(m.data()["sent_at"].is_string());
    let legacy = json!({"message": "which branch?", "message_type": "question"});
    let q = app.post(&format!("/api/v1/tasks/{id}/messages"), Some(&w.provider.key), legacy).await.expect(201);
    assert_eq!(
        (q.data()["message_type"].as_str(), q.data()["sender_name"].as_str()),
        (Some("question"), Some("Agent did:t:provider"))
    );
    app.post(&format!("/api/v1/tasks/{id}/messages"), Some(&w.client.key), json!({"content": ""}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    app.post(&format!("/api/v1/tasks/{id}/messages"), Some(&stranger.key), json!({"content": "hi"}))
        .await
        .expect_error(404, "NOT_FOUND");
    let all = app.get(&format!("/api/v1/tasks/{id}/messages"), Some(&w.provider.key)).await.expect(200);
    assert_eq!(all.data().as_array().unwrap().len(), 2);

    app.task(&w.client.key, &w.provider, json!({})).await.expect(201);
    let as_client = app.get("/api/v1/tasks?role=client", Some(&w.client.key)).await.expect(200);
    assert_eq!(as_client.body["meta"]["pagination"]["total_count"], 2);
    let as_provider = app.get("/api/v1/tasks?role=provider", Some(&w.provider.key)).await.expect(200);
    assert_eq!(as_provider.data().as_array().unwrap().len(), 2);
    let owner_view = app.get("/api/v1/tasks", Some(&w.provider_owner.key)).await.expect(200);
    assert_eq!(owner_view.data().as_array().unwrap().len(), 2, "owners see their agents' tasks");
    let none = app.get("/api/v1/tasks", Some(&stranger.key)).await.expect(200);
    assert!(none.data().as_array().unwrap().is_empty());
    let pending = app.get("/api/v1/tasks?status=completed", Some(&w.client.key)).await.expect(200);
    assert!(pending.data().as_array().unwrap().is_empty());
    app.get("/api/v1/tasks?role=boss", Some(&w.client.key)).await.expect_error(422, "VALIDATION_ERROR");
}

both_engines!(an_agent_pays_from_its_own_wallet_and_users_act_as_agents);
async fn an_agent_pays_from_its_own_wallet_and_users_act_as_agents(app: TestApp) {
    let w = world(&app, "10.00").await;
    let buyer = app.register_agent(Some(&w.client.key), "did:t:buyer", json!({})).await;
    app.fund(&buyer.key, "15").await;
    let t = app.task(&buyer.key, &w.provider, json!({"payment_type": "balance"})).await.expect(201);
    assert_eq!(t.data()["client_agent_id"], buyer.id.as_str());
    assert_eq!(app.balance(&buyer.key).await.0, "5.00");
    assert_eq!(app.available(&w.client.key).await, "100.00", "the owner's own wallet is separate");
    // The owner acting as the agent with X-Agent-ID sees the agent's wallet.
    let req = app
        .client
        .get(app.url("/api/v1/ledger/balance"))
        .header("x-api-key", &w.client.key)
        .header("x-agent-id", &buyer.id);
    let r = app.send(req).await.expect(200);
    assert_eq!(r.data()["escrow"], "10.00");
    app.audit_ok().await;
}
