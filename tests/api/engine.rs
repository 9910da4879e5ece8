//! The task engine's group commit: commands decided together in one transaction, each with
//! its own answer.

use agentmarket::agents;
use agentmarket::auth::Caller;
use agentmarket::auth::caller::{AgentCtx, Credential};
use agentmarket::auth::scope::Scopes;
use agentmarket::db::Engine;
use agentmarket::ledger::{Book, Principal};
use agentmarket::tasks::engine::batch::{apply_keyed_orders, apply_orders};
use agentmarket::tasks::engine::{Command, Create, Order, Pricing};
use agentmarket::tasks::model::{Actor, Status, TaskRow};
use agentmarket::tasks::store;
use serde_json::{Value, json};

use crate::both_engines;
use crate::support::{Agent, TestApp, plan_of};

fn caller(agent: &Agent) -> Caller {
    Caller {
        credential: Credential::AgentKey { key_id: format!("test-{}", agent.id) },
        user: None,
        agent: Some(AgentCtx { id: agent.id.clone(), did: agent.did.clone(), owner_id: None, reputation_centi: 300 }),
        scopes: Scopes::all(),
        max_price_per_hire: None,
    }
}

fn create(client: &Agent, provider: &Agent) -> Order {
    Order::Create(Box::new(Create {
        caller: caller(client),
        client: Principal::Agent(client.id.clone()),
        provider_ref: provider.id.clone(),
        capability: "code-review".into(),
        input: "{}".into(),
        pricing: Pricing::Model { max_price: None },
        pay_now: true,
        unsupported_payment: false,
        deadline_at: None,
        fee_bps: 500,
        hire: None,
    }))
}

fn act(agent: &Agent, task_id: &str, command: Command) -> Order {
    Order::Act { task_id: task_id.into(), actor: Actor::of(&caller(agent)), command }
}

both_engines!(one_refused_command_in_a_batch_leaves_the_others_applied);
async fn one_refused_command_in_a_batch_leaves_the_others_applied(app: TestApp) {
    let rich = app.register_agent(None, "did:t:rich", json!({})).await;
    let poor = app.register_agent(None, "did:t:poor", json!({})).await;
    let provider = app.register_agent(None, "did:t:provider", json!({})).await;
    app.fund(&rich.key, "25").await;
    app.fund(&poor.key, "5").await;
    // A task the provider already finished: claiming it again is the wrong state.
    let done = app.task(&rich.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let done = done.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{done}/complete"), Some(&provider.key), json!({"output": "ok"})).await.expect(200);
    // An unpaid task the poor client cannot afford to pay.
    let unpaid = app.task(&poor.key, &provider, json!({})).await.expect(201);
    let unpaid = unpaid.data()["id"].as_str().unwrap().to_string();

    let answers = apply_orders(
        &app.state.db,
        app.state.now(),
        vec![
            create(&rich, &provider),                                             // 10.00 of the 15.00 left
            create(&poor, &provider),                                             // 5.00 < 10.00: refused
            act(&provider, &done, Command::Claim),                                // completed: refused
            act(&poor, &unpaid, Command::pay()),                                  // 5.00 < 10.00: refused
            act(&rich, &done, Command::Accept { rating: Some(4), review: None }), // releases 10.00
            create(&rich, &provider),                                             // 5.00 left: refused
            act(&provider, &done, Command::Claim),                                // still refused after the accept
        ],
    )
    .await;
    let codes: Vec<&str> = answers.iter().map(|a| a.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code())).collect();
    assert_eq!(
        codes,
        ["ok", "INSUFFICIENT_BALANCE", "CONFLICT", "INSUFFICIENT_BALANCE", "ok", "INSUFFICIENT_BALANCE", "CONFLICT"]
    );
    let created = answers[0].as_ref().unwrap().task.id.clone();
    let shown = app.get(&format!("/api/v1/tasks/{created}"), Some(&rich.key)).await.expect(200);
    assert_eq!(shown.data()["payment_status"], "escrowed");
    assert_eq!(app.balance(&rich.key).await, ("5.00".into(), "10.00".into(), "0.00".into(), "15.00".into()));
    assert_eq!(app.balance(&poor.key).await.0, "5.00", "nothing was taken from the refused client");
    assert_eq!(app.available(&provider.key).await, "9.50", "the accept in the same batch paid out");
    let unpaid_now = app.get(&format!("/api/v1/tasks/{unpaid}"), Some(&poor.key)).await.expect(200);
    assert_eq!(unpaid_now.data()["payment_status"], "unpaid");
    let listed = app.get("/api/v1/tasks?role=client", Some(&poor.key)).await.expect(200);
    assert_eq!(listed.data().as_array().unwrap().len(), 1, "the refused creation left no task");
    app.audit_ok().await;
}

both_engines!(commands_on_one_task_in_one_batch_see_each_other);
async fn commands_on_one_task_in_one_batch_see_each_other(app: TestApp) {
    let client = app.register_agent(None, "did:t:client", json!({})).await;
    let provider = app.register_agent(None, "did:t:provider", json!({})).await;
    app.fund(&client.key, "10").await;
    let t = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    let answers = apply_orders(
        &app.state.db,
        app.state.now(),
        vec![
            act(&provider, &id, Command::Claim),
            act(&provider, &id, Command::progress(Some(40), None).unwrap()),
            act(&client, &id, Command::Cancel),
            act(&provider, &id, Command::complete(Some(json!("late")), 0).unwrap()),
            act(&client, &id, Command::Cancel),
        ],
    )
    .await;
    let codes: Vec<&str> = answers.iter().map(|a| a.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code())).collect();
    assert_eq!(codes, ["ok", "ok", "ok", "CONFLICT", "CONFLICT"]);
    let shown = app.get(&format!("/api/v1/tasks/{id}"), Some(&client.key)).await.expect(200);
    assert_eq!(
        (shown.data()["status"].as_str(), shown.data()["payment_status"].as_str()),
        (Some("cancelled"), Some("refunded"))
    );
    assert_eq!(app.available(&client.key).await, "10.00");
    let timeline = app.get(&format!("/api/v1/tasks/{id}/timeline"), Some(&client.key)).await.expect(200);
    let kinds: Vec<&str> =
        timeline.data()["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["task_created", "payment_escrowed", "task_claimed", "task_progress", "task_cancelled", "payment_refunded"],
        "events in decision order"
    );
    app.audit_ok().await;
}

// Each delivery of a batch carries its own webhook's body, however many webhooks before it in
// the batch had no subscriber (the payloads travel apart from the rows they belong to).
both_engines!(each_webhook_of_a_batch_is_delivered_with_its_own_body);
async fn each_webhook_of_a_batch_is_delivered_with_its_own_body(app: TestApp) {
    let quiet = app.register_agent(None, "did:t:quiet", json!({})).await;
    let listening = app.register_agent(None, "did:t:listening", json!({})).await;
    let provider = app.register_agent(None, "did:t:provider", json!({})).await;
    app.fund(&quiet.key, "50").await;
    app.fund(&listening.key, "50").await;
    let receiver = crate::support::receiver::Receiver::start(None).await;
    app.post("/api/v1/webhooks", Some(&listening.key), json!({"callback_url": receiver.url})).await.expect(201);
    let earlier = app.task(&listening.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let earlier = earlier.data()["id"].as_str().unwrap().to_string();
    assert_eq!(app.deliver().await.delivered, 1, "task.created of the earlier task");

    let answers = apply_orders(
        &app.state.db,
        app.state.now(),
        vec![
            create(&quiet, &provider),
            act(&provider, &earlier, Command::Claim),
            create(&quiet, &provider),
            create(&listening, &provider),
            act(&provider, &earlier, Command::complete(Some(json!("done")), 0).unwrap()),
        ],
    )
    .await;
    let ids: Vec<String> = answers.iter().map(|a| a.as_ref().unwrap().task.id.clone()).collect();
    assert_eq!(app.deliver().await.delivered, 3);
    let got: Vec<(String, String, Value)> = receiver.received()[1..]
        .iter()
        .map(|r| {
            let header = |h: &str| r.headers[h].to_str().unwrap().to_string();
            (header("x-webhook-event"), header("x-webhook-task-id"), serde_json::from_slice(&r.body).unwrap())
        })
        .collect();
    let mut seen: Vec<(&str, &str)> = got.iter().map(|(event, task, _)| (event.as_str(), task.as_str())).collect();
    seen.sort();
    let mut expected = [("task.claimed", earlier.as_str()), ("task.completed", &earlier), ("task.created", &ids[3])];
    expected.sort();
    assert_eq!(seen, expected);
    for (event, task, body) in &got {
        assert_eq!((body["event"].as_str(), body["task_id"].as_str()), (Some(event.as_str()), Some(task.as_str())));
    }
    let completed = got.iter().find(|(event, ..)| event == "task.completed").unwrap();
    assert_eq!((completed.2["status"].as_str(), completed.2["output"].as_str()), (Some("completed"), Some("done")));
    app.audit_ok().await;
}

// Two requests with one idempotency key that land in the same batch: the key is recorded once,
// so only the first runs; the other is told the key is in flight (it made four tasks under load).
both_engines!(two_requests_with_one_key_in_one_batch_run_once);
async fn two_requests_with_one_key_in_one_batch_run_once(app: TestApp) {
    let client = app.register_agent(None, "did:t:client", json!({})).await;
    let provider = app.register_agent(None, "did:t:provider", json!({})).await;
    app.fund(&client.key, "100").await;
    let key = Some(("key:test", "same-key"));
    let answers = apply_keyed_orders(
        &app.state.db,
        app.state.now(),
        vec![(create(&client, &provider), key), (create(&client, &provider), key), (create(&client, &provider), None)],
    )
    .await;
    let codes: Vec<&str> = answers.iter().map(|a| a.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code())).collect();
    assert_eq!(codes, ["ok", "IDEMPOTENCY_PENDING", "ok"]);
    assert_eq!(app.available(&client.key).await, "80.00", "two tasks held, not three");
    let (keys,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM idempotency_keys WHERE scope = 'key:test'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(keys, 1);
    app.audit_ok().await;
}

both_engines!(text_with_array_and_sql_syntax_round_trips_through_a_batch);
/// A batch's rows travel as array literals on PostgreSQL and as bound values on SQLite: text
/// that looks like either syntax (quotes, backslashes, braces, commas, the word NULL) must
/// come back exactly as sent, whatever else shares the batch.
async fn text_with_array_and_sql_syntax_round_trips_through_a_batch(app: TestApp) {
    let client = app.register_agent(None, "did:t:client", json!({})).await;
    let provider = app.register_agent(None, "did:t:provider", json!({})).await;
    app.fund(&client.key, "500").await;
    let tricky = ["NULL", "null", "a\"b", "a\\b\\\"", "{x,y}", "{\"NULL\"}", "', $1 --", "é 🦀 \u{2028}"];
    let mut ids = Vec::new();
    for text in tricky {
        let created =
            app.task(&client.key, &provider, json!({"input": text, "payment_type": "balance"})).await.expect(201);
        ids.push(created.data()["id"].as_str().unwrap().to_string());
    }
    // Every completion at once, so they share batches.
    let completions = ids.iter().zip(tricky).map(|(id, text)| {
        let (app, provider) = (&app, &provider);
        async move {
            app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&provider.key), json!({})).await.expect(200);
            app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": text}))
                .await
                .expect(200);
        }
    });
    futures::future::join_all(completions).await;
    for (id, text) in ids.iter().zip(tricky) {
        let task = app.get(&format!("/api/v1/tasks/{id}"), Some(&client.key)).await.expect(200);
        assert_eq!(task.data()["input"], json!({"prompt": text}), "input of {text:?}");
        assert_eq!(task.data()["output"], json!(text), "output of {text:?}");
    }
    app.audit_ok().await;
}

both_engines!(the_engines_statements_find_their_rows_by_key_on_a_new_database);
/// The engine's statements keep their plans (on PostgreSQL one generic plan per connection,
/// made at first use). Made while the tables were nearly empty, the plans read `tasks` whole,
/// or through its status index, at every batch: a batch cost more with every task ever made.
/// Each statement must find its rows by their keys, whatever the statistics say.
async fn the_engines_statements_find_their_rows_by_key_on_a_new_database(app: TestApp) {
    let client = app.register_agent(None, "did:t:client", json!({})).await;
    let provider = app.register_agent(None, "did:t:provider", json!({})).await;
    app.fund(&client.key, "25").await;
    let task = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = task.data()["id"].as_str().unwrap().to_string();

    let db = &app.state.db;
    let engine = db.engine();
    let mut tx = db.begin_keyed().await.unwrap();
    let before = store::lock_many(&mut tx, std::slice::from_ref(&id)).await.unwrap().pop().unwrap();
    let after = TaskRow { status: Status::Claimed, updated_at: before.updated_at + 1, ..before.clone() };
    let statements = [
        ("tasks", store::lock_many_statement(engine, &[id.clone(), "another".into()])),
        ("tasks", store::update_statement(engine, &[(&before, &after)]).unwrap()),
        ("ledger_accounts", Book::lock_statement(engine, &["world".into(), "platform:fees:00".into()])),
        ("agents", agents::store::find_many_statement(engine, &[provider.id.clone(), provider.did.clone()])),
    ];
    for (table, statement) in statements {
        let plan = plan_of(&mut tx, engine, &statement).await;
        let by_key = match engine {
            // `Index Cond: (id = …)`: a key lookup; a scan shows no such condition on the key.
            Engine::Postgres => !plan.contains("Seq Scan") && plan.contains("Index Cond: (id ="),
            Engine::Sqlite => {
                !plan.lines().any(|l| l.starts_with(&format!("SCAN {table}")))
                    && plan.lines().any(|l| l.starts_with(&format!("SEARCH {table}")))
            }
        };
        assert!(by_key, "{table} not found by key:\n{}\n{plan}", statement.sql);
    }
    tx.rollback().await.unwrap();
}

both_engines!(a_committers_open_transaction_ends_when_work_stops);
/// On PostgreSQL a committer's `COMMIT` also begins the next batch's transaction (one round
/// trip for both). Batch after batch commits through such transactions; once work stops, the
/// committer ends the one it holds: an idle server keeps no transaction open, and stops at once
/// (its pool closes only when every connection came back).
async fn a_committers_open_transaction_ends_when_work_stops(app: TestApp) {
    let client = app.register_agent(None, "did:t:held-client", json!({})).await;
    let provider = app.register_agent(None, "did:t:held-provider", json!({"base_price": "2.00"})).await;
    app.fund(&client.key, "10").await;
    for _ in 0..3 {
        let task = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
        let id = task.data()["id"].as_str().unwrap().to_string();
        app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&provider.key), json!({})).await.expect(200);
        app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": "ok"}))
            .await
            .expect(200);
        app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&client.key), json!({})).await.expect(200);
    }
    // Read from other connections: every batch committed.
    assert_eq!(app.available(&client.key).await, "4.00");
    assert_eq!(app.available(&provider.key).await, "5.70");
    app.audit_ok().await;
    if app.state.db.engine() == Engine::Postgres {
        let idle_in_transaction = || async {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
            )
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
            n
        };
        let mut n = idle_in_transaction().await;
        for _ in 0..50 {
            if n == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            n = idle_in_transaction().await;
        }
        assert_eq!(n, 0, "a transaction stayed open after the work stopped");
    }
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), app.stop()).await;
    assert!(stopped.is_ok(), "the server did not stop: a connection never came back to its pool");
}
