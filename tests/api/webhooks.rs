//! Webhooks: subscriptions, the transactional outbox, signatures the adapter verifies, retries,
//! disabling, and one delivery per event however many workers run.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::both_engines;
use crate::support::TestApp;
use crate::support::receiver::Receiver;

fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()) == signature
}

both_engines!(subscriptions_show_the_secret_once_and_delete_with_a_body);
async fn subscriptions_show_the_secret_once_and_delete_with_a_body(app: TestApp) {
    let user = app.signup("hooks@example.com").await;
    let r = app
        .post("/api/v1/webhooks", Some(&user.key), json!({"callback_url": "https://hooks.example.com/a"}))
        .await
        .expect(201);
    let secret = r.data()["secret_key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(r.data()["status"], "active");
    assert_eq!(r.data()["event_types"].as_array().unwrap().len(), 6, "the task.* defaults");
    // The docs' spelling works too, with the caller's own secret.
    let docs = json!({"url": "https://hooks.example.com/b", "events": ["task.completed", "payment.confirmed"], "secret": "my-own-secret-0123"});
    let r2 = app.post("/api/v1/webhooks", Some(&user.key), docs).await.expect(201);
    assert_eq!(r2.data()["secret_key"], "my-own-secret-0123");
    let list = app.get("/api/v1/webhooks", Some(&user.key)).await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 2);
    assert!(!list.text.contains(&secret) && !list.text.contains("my-own-secret"), "secrets are shown once");
    assert_eq!(list.data()[0]["failure_count"], 0);
    let id = r.data()["id"].as_str().unwrap();
    let deleted = app.delete(&format!("/api/v1/webhooks/{id}"), Some(&user.key)).await.expect(200);
    assert_eq!(deleted.data()["status"], "deleted");
    app.delete(&format!("/api/v1/webhooks/{id}"), Some(&user.key)).await.expect_error(404, "NOT_FOUND");
    let bad = app
        .post(
            "/api/v1/webhooks",
            Some(&user.key),
            json!({"callback_url": "nope", "event_types": ["task.exploded"], "secret": "short"}),
        )
        .await;
    let bad = bad.expect_error(422, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["callback_url", "event_types", "secret"]);
}

both_engines!(private_callbacks_are_refused_by_default, |c: &mut agentmarket::Config| c.allow_private_network = false);
async fn private_callbacks_are_refused_by_default(app: TestApp) {
    let user = app.signup("private@example.com").await;
    for url in ["http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://localhost/x"] {
        app.post("/api/v1/webhooks", Some(&user.key), json!({"callback_url": url}))
            .await
            .expect_error(422, "VALIDATION_ERROR");
    }
}

/// Hosts and URLs the outbound policy refuses without `--allow-private-network`.
fn refused_callbacks() -> Vec<String> {
    let long = format!("https://hooks.example.com/{}", "a".repeat(2_049 - "https://hooks.example.com/".len()));
    assert_eq!(long.len(), 2_049);
    [
        "https://localhost./x",
        "https://[::7f00:1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",
        "https://[2002:7f00:1::]/x",
        "https://[fec0::1]/x",
        "https://198.18.0.1/x",
        "https://240.0.0.1/x",
        "https://example.com:8443/x",
    ]
    .into_iter()
    .map(String::from)
    .chain([long])
    .collect()
}

both_engines!(non_global_callbacks_long_urls_and_other_ports_are_refused, |c: &mut agentmarket::Config| {
    c.allow_private_network = false
});
async fn non_global_callbacks_long_urls_and_other_ports_are_refused(app: TestApp) {
    let user = app.signup("outbound@example.com").await;
    for url in refused_callbacks() {
        let r = app.post("/api/v1/webhooks", Some(&user.key), json!({"callback_url": url})).await;
        let r = r.expect_error(422, "VALIDATION_ERROR");
        assert_eq!(r.error_fields(), ["callback_url"], "{url}: {}", r.text);
        let agent = json!({"name": "Hooked", "did": "did:key:hooked", "capabilities": ["code-review"],
                           "pricing_model": "fixed", "base_price": "1.00", "metadata": {"callback_url": url}});
        let r = app.post("/api/v1/agents/register", Some(&user.key), agent).await;
        let r = r.expect_error(422, "VALIDATION_ERROR");
        assert_eq!(r.error_fields(), ["metadata.callback_url"], "{url}: {}", r.text);
    }
    let longest = format!("https://hooks.example.com/{}", "a".repeat(2_048 - "https://hooks.example.com/".len()));
    for url in ["https://hooks.example.com:443/x", "https://93.184.215.14/x", "https://[2606:4700::1111]/x", &longest] {
        app.post("/api/v1/webhooks", Some(&user.key), json!({"callback_url": url})).await.expect(201);
    }
}

both_engines!(task_events_arrive_signed_after_the_change_is_visible);
async fn task_events_arrive_signed_after_the_change_is_visible(app: TestApp) {
    let client = app.signup("client@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    app.fund(&client.key, "100").await;
    let receiver = Receiver::start(Some((app.base.clone(), client.key.clone()))).await;
    let sub = app.post("/api/v1/webhooks", Some(&client.key), json!({"callback_url": receiver.url})).await.expect(201);
    let secret = sub.data()["secret_key"].as_str().unwrap().to_string();

    // A change that rolls back leaves no delivery.
    app.task(&client.key, &provider, json!({"payment_type": "balance", "max_price": "5"}))
        .await
        .expect_error(422, "PRICE_ABOVE_MAX");
    app.patch(&format!("/api/v1/agents/{}", provider.id), Some(&provider.key), json!({"base_price": "500"}))
        .await
        .expect(200);
    app.task(&client.key, &provider, json!({"payment_type": "balance"}))
        .await
        .expect_error(422, "INSUFFICIENT_BALANCE");
    assert_eq!(app.deliver().await.delivered, 0);
    app.patch(&format!("/api/v1/agents/{}", provider.id), Some(&provider.key), json!({"base_price": "10"}))
        .await
        .expect(200);

    let t = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&provider.key), json!({})).await.expect(200);
    app.post(
        &format!("/api/v1/tasks/{id}/progress"),
        Some(&provider.key),
        json!({"progress_percent": 50, "progress_message": "half"}),
    )
    .await
    .expect(200);
    app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": {"answer": 42}}))
        .await
        .expect(200);
    let report = app.deliver().await;
    assert_eq!(report.delivered, 4);
    let got = receiver.received();
    let events: Vec<&str> = got.iter().map(|r| r.headers["x-webhook-event"].to_str().unwrap()).collect();
    let mut sorted = events.clone();
    sorted.sort();
    assert_eq!(sorted, ["task.claimed", "task.completed", "task.created", "task.in_progress"]);
    for r in &got {
        let signature = r.headers["x-webhook-signature"].to_str().unwrap();
        assert!(verify(&secret, &r.body, signature), "the adapter's check passes");
        assert!(!verify("wrong-secret-000000", &r.body, signature));
        assert_eq!(r.headers["x-webhook-task-id"].to_str().unwrap(), id);
        assert!(r.headers["x-webhook-signature-v2"].to_str().unwrap().starts_with("t="));
        assert!(r.headers.contains_key("x-webhook-id") && r.headers.contains_key("x-webhook-timestamp"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["task_id"], id.as_str());
        assert_eq!(body["event"], r.headers["x-webhook-event"].to_str().unwrap());
        // The state the webhook reports is already what the API shows.
        assert_eq!(r.task_status_seen.as_deref().unwrap(), "completed", "read back after all changes committed");
    }
    let completed = got.iter().find(|r| r.headers["x-webhook-event"] == "task.completed").unwrap();
    let body: Value = serde_json::from_slice(&completed.body).unwrap();
    assert_eq!((body["status"].as_str(), body["output"].clone()), (Some("completed"), json!({"answer": 42})));
    let progress = got.iter().find(|r| r.headers["x-webhook-event"] == "task.in_progress").unwrap();
    let body: Value = serde_json::from_slice(&progress.body).unwrap();
    assert_eq!((body["progress_percent"].as_i64(), body["progress_message"].as_str()), (Some(50), Some("half")));
    assert_eq!(app.deliver().await, Default::default(), "each delivery is sent once");
    let list = app.get("/api/v1/webhooks", Some(&client.key)).await.expect(200);
    assert!(list.data()[0]["last_delivery_at"].is_string());
}

both_engines!(failed_deliveries_are_retried_with_backoff);
async fn failed_deliveries_are_retried_with_backoff(app: TestApp) {
    let user = app.signup("retry@example.com").await;
    let receiver = Receiver::start(None).await;
    receiver.script(&[500, 503]);
    app.post(
        "/api/v1/webhooks",
        Some(&user.key),
        json!({"callback_url": receiver.url, "event_types": ["payment.deposited"]}),
    )
    .await
    .expect(201);
    app.fund(&user.key, "5").await;
    assert_eq!(app.deliver().await.failed, 1);
    assert_eq!(app.deliver().await, Default::default(), "not due again yet");
    app.clock.advance_secs(90);
    assert_eq!(app.deliver().await.failed, 1, "second attempt after about a minute");
    app.clock.advance_secs(60);
    assert_eq!(app.deliver().await, Default::default(), "the next delay is longer");
    app.clock.advance_secs(300);
    assert_eq!(app.deliver().await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.windows(2).all(|w| w[0].body == w[1].body), "the same bytes each time");
    assert!(got.windows(2).all(|w| w[0].headers["x-webhook-id"] == w[1].headers["x-webhook-id"]));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!((body["event"].as_str(), body["amount"].as_str()), (Some("payment.deposited"), Some("5.00")));
    let list = app.get("/api/v1/webhooks", Some(&user.key)).await.expect(200);
    assert_eq!(
        (list.data()[0]["failure_count"].as_i64(), list.data()[0]["status"].as_str()),
        (Some(2), Some("active"))
    );
}

both_engines!(a_run_of_failures_disables_the_subscription, |c: &mut agentmarket::Config| {
    c.webhook_disable_after = 2;
    c.webhook_max_attempts = 2;
});
async fn a_run_of_failures_disables_the_subscription(app: TestApp) {
    let user = app.signup("dead@example.com").await;
    let receiver = Receiver::start(None).await;
    receiver.script(&[500, 500, 500, 500]);
    app.post(
        "/api/v1/webhooks",
        Some(&user.key),
        json!({"callback_url": receiver.url, "event_types": ["payment.deposited"]}),
    )
    .await
    .expect(201);
    app.fund(&user.key, "5").await;
    assert_eq!(app.deliver().await.failed, 1);
    app.clock.advance_secs(3600);
    assert_eq!(app.deliver().await.dead, 1, "given up after the last attempt");
    let list = app.get("/api/v1/webhooks", Some(&user.key)).await.expect(200);
    assert_eq!(
        (list.data()[0]["status"].as_str(), list.data()[0]["failure_count"].as_i64()),
        (Some("disabled"), Some(2))
    );
    app.fund(&user.key, "5").await;
    app.clock.advance_secs(3600);
    assert_eq!(app.deliver().await, Default::default(), "a disabled subscription gets nothing new");
    assert_eq!(receiver.received().len(), 2);
}

both_engines!(several_workers_send_each_delivery_once);
async fn several_workers_send_each_delivery_once(app: TestApp) {
    let user = app.signup("workers@example.com").await;
    let receiver = Receiver::start(None).await;
    app.post(
        "/api/v1/webhooks",
        Some(&user.key),
        json!({"callback_url": receiver.url, "event_types": ["payment.deposited"]}),
    )
    .await
    .expect(201);
    for _ in 0..10 {
        app.fund(&user.key, "1").await;
    }
    let (a, b, c) = tokio::join!(app.deliver(), app.deliver(), app.deliver());
    assert_eq!(a.delivered + b.delivered + c.delivered, 10);
    assert_eq!(receiver.received().len(), 10);
}
