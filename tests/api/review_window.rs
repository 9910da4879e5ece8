//! The review window and deadlines, driven by the sweeper with an injected clock.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(the_sweeper_releases_after_the_review_window, |c: &mut agentmarket::Config| c.review_window = 3600);
async fn the_sweeper_releases_after_the_review_window(app: TestApp) {
    let client = app.signup("c@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    app.fund(&client.key, "10").await;
    let t = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&provider.key), json!({})).await.expect(200);
    let done = app
        .post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": "ok"}))
        .await
        .expect(200);
    let review_until = agentmarket::clock::parse_rfc3339(done.data()["review_until"].as_str().unwrap()).unwrap();
    assert_eq!(review_until / 1000, app.clock_secs() + 3600);

    app.clock.advance_secs(3599);
    assert!(app.sweep().await.released.is_empty(), "not before the window ends");
    assert_eq!(app.balance(&provider.key).await.2, "10.00");
    app.clock.advance_secs(1);
    let report = app.sweep().await;
    assert_eq!(report.released, std::slice::from_ref(&id));
    assert_eq!(app.available(&provider.key).await, "9.50");
    assert!(app.sweep().await.released.is_empty(), "released once");
    let t = app.get(&format!("/api/v1/tasks/{id}"), Some(&client.key)).await.expect(200);
    assert_eq!(t.data()["payment_status"], "released");
    app.audit_ok().await;
}

both_engines!(sweepers_in_several_processes_release_each_task_once);
async fn sweepers_in_several_processes_release_each_task_once(app: TestApp) {
    let client = app.signup("c@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    app.fund(&client.key, "100").await;
    for _ in 0..5 {
        let t = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
        let id = t.data()["id"].as_str().unwrap().to_string();
        app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": "ok"}))
            .await
            .expect(200);
    }
    app.clock.advance_secs(86_400);
    // Four sweepers at once, as four server processes would run them.
    let (a, b, c, d) = tokio::join!(app.sweep(), app.sweep(), app.sweep(), app.sweep());
    let released = a.released.len() + b.released.len() + c.released.len() + d.released.len();
    assert_eq!(released, 5);
    assert_eq!(app.available(&provider.key).await, "47.50");
    app.audit_ok().await;
}

both_engines!(a_zero_window_releases_at_completion, |c: &mut agentmarket::Config| c.review_window = 0);
async fn a_zero_window_releases_at_completion(app: TestApp) {
    let client = app.signup("c@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    app.fund(&client.key, "10").await;
    let t = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap();
    let done = app
        .post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": "ok"}))
        .await
        .expect(200);
    assert_eq!(done.data()["payment_status"], "released");
    assert_eq!(app.available(&provider.key).await, "9.50");
    app.audit_ok().await;
}

both_engines!(overdue_tasks_are_failed_and_refunded);
async fn overdue_tasks_are_failed_and_refunded(app: TestApp) {
    let client = app.signup("c@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    app.fund(&client.key, "30").await;
    let deadline = time::OffsetDateTime::from_unix_timestamp(app.clock_secs() + 600).unwrap();
    let deadline = deadline.format(&time::format_description::well_known::Rfc3339).unwrap();
    let overdue =
        app.task(&client.key, &provider, json!({"payment_type": "balance", "deadline_at": deadline})).await.expect(201);
    let overdue = overdue.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{overdue}/claim"), Some(&provider.key), json!({})).await.expect(200);
    let on_time =
        app.task(&client.key, &provider, json!({"payment_type": "balance", "deadline_at": deadline})).await.expect(201);
    let on_time = on_time.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{on_time}/complete"), Some(&provider.key), json!({"output": "ok"}))
        .await
        .expect(200);
    let no_deadline = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);

    app.clock.advance_secs(599);
    assert!(app.sweep().await.expired.is_empty());
    app.clock.advance_secs(1);
    let report = app.sweep().await;
    assert_eq!(report.expired, std::slice::from_ref(&overdue));
    let t = app.get(&format!("/api/v1/tasks/{overdue}"), Some(&client.key)).await.expect(200);
    assert_eq!((t.data()["status"].as_str(), t.data()["payment_status"].as_str()), (Some("failed"), Some("refunded")));
    assert_eq!(t.data()["error_reason"], "the deadline passed");
    let untouched =
        app.get(&format!("/api/v1/tasks/{}", no_deadline.data()["id"].as_str().unwrap()), Some(&client.key)).await;
    assert_eq!(untouched.data()["status"], "pending");
    // 30 funded: 10 refunded, 10 completed (pending for the provider), 10 still escrowed.
    assert_eq!(app.balance(&client.key).await, ("10.00".into(), "10.00".into(), "0.00".into(), "20.00".into()));
    app.audit_ok().await;
}
