//! A hiring's stream: the hired agent emits chunks (`POST /hirings/:id/stream`), kept in order
//! with sequence numbers; participants read them (`GET …?after=SEQ`, and the latest in the
//! hiring view). Who may emit in which state is the engine's rule; bad input stores nothing.

use serde_json::{Value, json};

use crate::both_engines;
use crate::support::{Agent, TestApp, User, enc};

async fn hired(app: &TestApp, hirer: &User, agent: &Agent) -> String {
    let body = json!({"task_description": "Review PR #9", "capability_requested": "code-review", "price": "10.00"});
    let r = app.post(&format!("/api/v1/agents/{}/hire", enc(&agent.did)), Some(&hirer.key), body).await.expect(201);
    r.data()["hiring"]["id"].as_str().unwrap().to_string()
}

fn seqs(chunks: &Value) -> Vec<i64> {
    chunks.as_array().unwrap().iter().map(|c| c["seq"].as_i64().unwrap()).collect()
}

both_engines!(chunks_are_kept_in_order_and_read_after_a_sequence_number);
async fn chunks_are_kept_in_order_and_read_after_a_sequence_number(app: TestApp) {
    let hirer = app.signup("hirer@example.com").await;
    app.fund(&hirer.key, "50").await;
    let agent = app.register_agent(None, "did:t:streamer", json!({})).await;
    let id = hired(&app, &hirer, &agent).await;
    let path = format!("/api/v1/hirings/{id}/stream");

    // Queued (the probe has not run yet) and running both take chunks.
    let first = app.post(&path, Some(&agent.key), json!({"content": "Reading the diff"})).await.expect(201);
    assert_eq!((first.data()["seq"].as_i64(), first.data()["kind"].as_str()), (Some(1), Some("text")));
    assert_eq!(app.probe(&id).await.status.as_str(), "in_progress");
    for (i, (content, kind)) in
        [("thinking…", "thinking"), (" ", "text"), ("line 2\n", "log"), ("50%", "progress")].into_iter().enumerate()
    {
        let r = app.post(&path, Some(&agent.key), json!({"content": content, "kind": kind})).await.expect(201);
        assert_eq!(r.data()["seq"], i as i64 + 2, "numbered in order");
        assert_eq!(r.data()["content"], content, "kept exactly as sent");
    }

    let all = app.get(&path, Some(&hirer.key)).await.expect(200);
    assert_eq!(seqs(all.data()), [1, 2, 3, 4, 5]);
    assert_eq!(all.data()[3]["content"], "line 2\n");
    assert_eq!(all.body["meta"]["pagination"]["total_count"], 5);
    assert_eq!(all.body["meta"]["pagination"]["has_more"], false);
    let after = app.get(&format!("{path}?after=3"), Some(&hirer.key)).await.expect(200);
    assert_eq!(seqs(after.data()), [4, 5]);
    let page = app.get(&format!("{path}?after=1&limit=2"), Some(&agent.key)).await.expect(200);
    assert_eq!(seqs(page.data()), [2, 3], "the agent reads its own stream too");
    let pagination = &page.body["meta"]["pagination"];
    assert_eq!(pagination["has_more"], true);
    let next = pagination["cursor"].as_str().unwrap();
    let rest = app.get(&format!("{path}?cursor={next}&limit=2"), Some(&hirer.key)).await.expect(200);
    assert_eq!(seqs(rest.data()), [4, 5]);
    assert!(
        app.get(&format!("{path}?after=5"), Some(&hirer.key)).await.expect(200).data().as_array().unwrap().is_empty()
    );

    // The hiring view carries the latest chunks and the last number.
    let view = app.get(&format!("/api/v1/hirings/{id}"), Some(&hirer.key)).await.expect(200);
    assert_eq!(seqs(&view.data()["stream"]), [1, 2, 3, 4, 5]);
    assert_eq!(view.data()["stream_seq"], 5);

    // Delivered: the stream is closed, and what was streamed stays readable.
    app.post(&format!("/api/v1/hirings/{id}/result"), Some(&agent.key), json!({"output": "done"})).await.expect(200);
    let late = app.post(&path, Some(&agent.key), json!({"content": "too late"})).await.expect_error(409, "CONFLICT");
    assert!(late.text.contains("completed"), "{}", late.text);
    assert_eq!(seqs(app.get(&path, Some(&hirer.key)).await.expect(200).data()), [1, 2, 3, 4, 5]);
    app.audit_ok().await;
}

both_engines!(only_the_hired_agent_emits_and_only_participants_read);
async fn only_the_hired_agent_emits_and_only_participants_read(app: TestApp) {
    let hirer = app.signup("hirer@example.com").await;
    app.fund(&hirer.key, "50").await;
    let agent = app.register_agent(None, "did:t:worker", json!({})).await;
    let other = app.register_agent(None, "did:t:other", json!({})).await;
    let stranger = app.signup("stranger@example.com").await;
    let id = hired(&app, &hirer, &agent).await;
    let path = format!("/api/v1/hirings/{id}/stream");
    let chunk = json!({"content": "hello"});

    app.post(&path, Some(&hirer.key), chunk.clone()).await.expect_error(403, "FORBIDDEN");
    app.post(&path, Some(&other.key), chunk.clone()).await.expect_error(404, "NOT_FOUND");
    app.post(&path, Some(&stranger.key), chunk.clone()).await.expect_error(404, "NOT_FOUND");
    app.post(&path, None, chunk.clone()).await.expect_error(401, "UNAUTHORIZED");
    app.get(&path, Some(&stranger.key)).await.expect_error(404, "NOT_FOUND");
    app.get(&path, Some(&other.key)).await.expect_error(404, "NOT_FOUND");
    app.get(&path, None).await.expect_error(401, "UNAUTHORIZED");
    // A key without the endpoint's scope is refused by the route table's guard.
    let reader = app
        .post("/api/v1/api-keys", Some(&hirer.key), json!({"name": "balance only", "scopes": ["balance:read"]}))
        .await
        .expect(201);
    let reader = reader.data()["api_key"].as_str().unwrap().to_string();
    app.get(&path, Some(&reader)).await.expect_error(403, "FORBIDDEN");
    // A task that is not a hiring has no stream.
    let task = app.task(&hirer.key, &agent, json!({"payment_type": "balance"})).await.expect(201);
    let task_id = task.data()["id"].as_str().unwrap();
    app.post(&format!("/api/v1/hirings/{task_id}/stream"), Some(&agent.key), chunk.clone())
        .await
        .expect_error(404, "NOT_FOUND");

    // The owner of the hired agent may emit for it with X-Agent-ID, as with any agent action.
    let owner = app.signup("owner@example.com").await;
    let owned = app.register_agent(Some(&owner.key), "did:t:owned", json!({})).await;
    let owned_id = hired(&app, &hirer, &owned).await;
    let req = app
        .client
        .post(app.url(&format!("/api/v1/hirings/{owned_id}/stream")))
        .header("content-type", "application/json")
        .header("x-api-key", &owner.key)
        .header("x-agent-id", &owned.id)
        .body(chunk.to_string());
    assert_eq!(app.send(req).await.expect(201).data()["seq"], 1);

    // Cancelled by the hirer: no more chunks.
    app.post(&format!("/api/v1/hirings/{id}/cancel"), Some(&hirer.key), json!({})).await.expect(200);
    app.post(&path, Some(&agent.key), chunk).await.expect_error(409, "CONFLICT");
    assert!(app.get(&path, Some(&hirer.key)).await.expect(200).data().as_array().unwrap().is_empty());
    app.audit_ok().await;
}

both_engines!(bad_chunks_are_refused_and_store_nothing);
async fn bad_chunks_are_refused_and_store_nothing(app: TestApp) {
    let hirer = app.signup("hirer@example.com").await;
    app.fund(&hirer.key, "50").await;
    let agent = app.register_agent(None, "did:t:careful", json!({})).await;
    let id = hired(&app, &hirer, &agent).await;
    let path = format!("/api/v1/hirings/{id}/stream");

    let bad = app.post(&path, Some(&agent.key), json!({"content": "", "kind": "shout"})).await;
    let bad = bad.expect_error(422, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["content", "kind"]);
    app.post(&path, Some(&agent.key), json!({})).await.expect_error(422, "VALIDATION_ERROR");
    app.post(&path, Some(&agent.key), json!({"content": 42})).await.expect_error(422, "VALIDATION_ERROR");
    app.post(&path, Some(&agent.key), json!({"content": "a\u{0}b"})).await.expect_error(422, "VALIDATION_ERROR");
    let long = "x".repeat(16_385);
    app.post(&path, Some(&agent.key), json!({"content": long})).await.expect_error(422, "VALIDATION_ERROR");
    let raw = app
        .client
        .post(app.url(&path))
        .header("content-type", "application/json")
        .header("x-api-key", &agent.key)
        .body("{not json");
    app.send(raw).await.expect_error(400, "MALFORMED_JSON");
    for query in ["after=-1", "after=x", "limit=0", "limit=101", "cursor=zz"] {
        app.get(&format!("{path}?{query}"), Some(&hirer.key)).await.expect_error(422, "VALIDATION_ERROR");
    }
    let view = app.get(&format!("/api/v1/hirings/{id}"), Some(&hirer.key)).await.expect(200);
    assert_eq!((view.data()["stream"].as_array().unwrap().len(), view.data()["stream_seq"].as_i64()), (0, Some(0)));

    // The longest chunk is fine, and numbering starts at 1 after the refusals.
    let max = "é".repeat(16_384);
    let ok = app.post(&path, Some(&agent.key), json!({"content": max, "kind": "done"})).await.expect(201);
    assert_eq!(ok.data()["seq"], 1);
}

both_engines!(concurrent_chunks_get_distinct_consecutive_numbers);
async fn concurrent_chunks_get_distinct_consecutive_numbers(app: TestApp) {
    let hirer = app.signup("hirer@example.com").await;
    app.fund(&hirer.key, "50").await;
    let agent = app.register_agent(None, "did:t:fast", json!({})).await;
    let id = hired(&app, &hirer, &agent).await;
    let path = format!("/api/v1/hirings/{id}/stream");
    let sends = (0..12).map(|i| {
        let (app, path, key) = (&app, &path, &agent.key);
        async move { app.post(path, Some(key), json!({"content": format!("chunk {i}")})).await.expect(201) }
    });
    let mut numbers: Vec<i64> =
        futures::future::join_all(sends).await.iter().map(|r| r.data()["seq"].as_i64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>(), "no gaps, no duplicates");
    let read = app.get(&format!("{path}?limit=100"), Some(&hirer.key)).await.expect(200);
    assert_eq!(seqs(read.data()), (1..=12).collect::<Vec<_>>());
}
