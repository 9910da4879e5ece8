//! Every list pages by keyset (`http::keyset`): pages cover every row exactly once while rows
//! are inserted between page reads, cursors are checked per list, `offset`/`page` still work,
//! and counts say when they stopped counting — on both engines.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::both_engines;
use crate::support::receiver::Receiver;
use crate::support::{Resp, TestApp, enc};

fn ids_in(rows: &Value) -> Vec<String> {
    rows.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

fn cursor_of(r: &Resp) -> Option<String> {
    r.body["meta"]["pagination"]["cursor"].as_str().map(str::to_string)
}

fn hire_body() -> Value {
    json!({"task_description": "Review PR #7", "capability_requested": "code-review", "price": "10.00"})
}

/// Which list a walk reads, and how to add one more row to it.
#[derive(Clone, Copy, Debug)]
enum List {
    Tasks,
    Transactions,
    Hirings,
    Keys,
    OwnedAgents,
}

struct Fixture {
    key: String,
    provider: crate::support::Agent,
    _callback: Receiver,
    made: std::sync::atomic::AtomicUsize,
}

impl Fixture {
    async fn new(app: &TestApp) -> Fixture {
        let user = app.signup("lists@example.com").await;
        app.fund(&user.key, "2000").await;
        let callback = Receiver::start(None).await;
        let provider =
            app.register_agent(None, "did:l:provider", json!({"metadata": {"callback_url": callback.url}})).await;
        Fixture { key: user.key, provider, _callback: callback, made: Default::default() }
    }

    async fn add(&self, app: &TestApp, list: List) {
        match list {
            List::Tasks => {
                app.task(&self.key, &self.provider, json!({})).await.expect(201);
            }
            List::Transactions => app.fund(&self.key, "1").await,
            List::Hirings => {
                app.post(&format!("/api/v1/agents/{}/hire", enc(&self.provider.did)), Some(&self.key), hire_body())
                    .await
                    .expect(201);
            }
            List::Keys => {
                app.post("/api/v1/api-keys", Some(&self.key), json!({"name": "k"})).await.expect(201);
            }
            List::OwnedAgents => {
                let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                app.register_agent(Some(&self.key), &format!("did:l:owned-{n}"), json!({})).await;
            }
        }
    }

    /// One page: its ids and the next cursor.
    async fn page(&self, app: &TestApp, list: List, cursor: Option<&str>) -> (Vec<String>, Option<String>) {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        match list {
            List::Tasks | List::Transactions | List::Keys | List::OwnedAgents => {
                let path = match list {
                    List::Tasks => "/api/v1/tasks",
                    List::Transactions => "/api/v1/ledger/transactions",
                    List::Keys => "/api/v1/api-keys",
                    _ => "/api/v1/accounts/me/agents",
                };
                let r = app.get(&format!("{path}?limit=3{after}"), Some(&self.key)).await.expect(200);
                (ids_in(r.data()), cursor_of(&r))
            }
            List::Hirings => {
                let r = app.get(&format!("/api/v1/hirings?limit=3{after}"), Some(&self.key)).await.expect(200);
                let next = r.data()["next_cursor"].as_str().map(str::to_string);
                (ids_in(&r.data()["hirings"]), next)
            }
        }
    }
}

both_engines!(every_list_pages_each_row_once_while_rows_are_inserted);
async fn every_list_pages_each_row_once_while_rows_are_inserted(app: TestApp) {
    let f = Fixture::new(&app).await;
    for list in [List::Tasks, List::Transactions, List::Hirings, List::Keys, List::OwnedAgents] {
        for i in 0..8 {
            f.add(&app, list).await;
            if i % 3 == 0 {
                app.clock.advance_ms(1000); // some rows share a timestamp: the id breaks ties
            }
        }
        let (before, _) = {
            let mut all = Vec::new();
            let mut cursor = None;
            loop {
                let (ids, next) = f.page(&app, list, cursor.as_deref()).await;
                all.extend(ids);
                cursor = match next {
                    Some(c) => Some(c),
                    None => break,
                };
            }
            (all, ())
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (ids, next) = f.page(&app, list, cursor.as_deref()).await;
            assert!(ids.len() <= 3, "{list:?}: a page holds at most limit rows");
            seen.extend(ids);
            // New rows arrive between page reads, at the same and at later times.
            f.add(&app, list).await;
            app.clock.advance_ms(500);
            f.add(&app, list).await;
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{list:?}: no row twice");
        assert_eq!(seen, before, "{list:?}: every row present before the first page, once, newest first");
    }
}

both_engines!(cursors_are_checked_per_list_and_offsets_still_work);
async fn cursors_are_checked_per_list_and_offsets_still_work(app: TestApp) {
    let f = Fixture::new(&app).await;
    for _ in 0..5 {
        f.add(&app, List::Tasks).await;
        f.add(&app, List::Transactions).await;
    }
    let (_, tasks_cursor) = f.page(&app, List::Tasks, None).await;
    let tasks_cursor = tasks_cursor.expect("more tasks follow");
    let r = app
        .get(&format!("/api/v1/ledger/transactions?cursor={tasks_cursor}"), Some(&f.key))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(r.error_fields(), ["cursor"], "a cursor of another list is refused");
    for junk in ["x", "AAAA", &tasks_cursor[..tasks_cursor.len() - 1]] {
        let r =
            app.get(&format!("/api/v1/tasks?cursor={junk}"), Some(&f.key)).await.expect_error(422, "VALIDATION_ERROR");
        assert_eq!(r.error_fields(), ["cursor"]);
    }
    app.get(&format!("/api/v1/hirings?cursor={tasks_cursor}"), Some(&f.key))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    app.get("/api/v1/disputes?cursor=abc", Some(&f.key)).await.expect_error(422, "VALIDATION_ERROR");

    // `offset` (no cursor) still skips rows, bounded.
    let all = app.get("/api/v1/tasks?limit=100", Some(&f.key)).await.expect(200);
    let all = ids_in(all.data());
    let skipped = app.get("/api/v1/tasks?limit=2&offset=2", Some(&f.key)).await.expect(200);
    assert_eq!(ids_in(skipped.data()), all[2..4].to_vec());
    assert_eq!(skipped.body["meta"]["pagination"]["total_count"], 5);
    assert_eq!(skipped.body["meta"]["pagination"]["total_is_estimate"], false);
    app.get("/api/v1/tasks?offset=-1", Some(&f.key)).await.expect_error(422, "VALIDATION_ERROR");

    // `page` on the hirings list (the clients' shape) still pages.
    for _ in 0..3 {
        f.add(&app, List::Hirings).await;
    }
    let p2 = app.get("/api/v1/hirings?limit=2&page=2", Some(&f.key)).await.expect(200);
    assert_eq!(p2.data()["hirings"].as_array().unwrap().len(), 1);
    assert_eq!((p2.data()["total"].as_i64(), p2.data()["total_pages"].as_i64()), (Some(3), Some(2)));
    assert_eq!(p2.data()["total_is_estimate"], false);
    assert!(p2.data()["next_cursor"].is_null());
}

both_engines!(disputes_list_pages_with_a_cursor);
async fn disputes_list_pages_with_a_cursor(app: TestApp) {
    let f = Fixture::new(&app).await;
    let mut opened = Vec::new();
    for _ in 0..5 {
        let task = app.task(&f.key, &f.provider, json!({"payment_type": "balance"})).await.expect(201);
        let id = task.data()["id"].as_str().unwrap().to_string();
        app.post(&format!("/api/v1/tasks/{id}/claim"), Some(&f.provider.key), json!({})).await.expect(200);
        app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&f.provider.key), json!({"output": "half done"}))
            .await
            .expect(200);
        let r = app
            .post(&format!("/api/v1/tasks/{id}/dispute"), Some(&f.key), json!({"reason": "not as agreed"}))
            .await
            .expect(201);
        opened.push(r.data()["id"].as_str().unwrap().to_string());
        app.clock.advance_ms(1000);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let r = app.get(&format!("/api/v1/disputes?limit=2{after}"), Some(&f.key)).await.expect(200);
        assert_eq!(r.body["meta"]["pagination"]["total_count"], opened.len());
        seen.extend(ids_in(r.data()));
        match cursor_of(&r) {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    opened.reverse();
    assert_eq!(seen, opened, "newest first, each once");
}
