//! Discovery at scale, for correctness: keyset pages under inserts, cursor tampering, every
//! filter and sort against a brute-force pass over the same rows, `q` search, and the
//! maintained counters against a recount — on both engines.

use std::collections::{BTreeMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::both_engines;
use crate::support::TestApp;

pub(crate) fn ids(r: &crate::support::Resp) -> Vec<String> {
    r.data().as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
}

fn next_cursor(r: &crate::support::Resp) -> Option<String> {
    r.body["meta"]["pagination"]["cursor"].as_str().map(str::to_string)
}

/// Reads `path` page by page (`limit` rows each), following the cursors.
pub(crate) async fn all_pages(app: &TestApp, path: &str, limit: usize) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..500 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = app.get(&url, None).await.expect(200);
        let page = ids(&r);
        assert!(page.len() <= limit);
        seen.extend(page);
        cursor = next_cursor(&r);
        assert_eq!(r.body["meta"]["pagination"]["has_more"], cursor.is_some());
        if cursor.is_none() {
            return seen;
        }
    }
    panic!("too many pages for {path}");
}

both_engines!(keyset_pages_cover_every_row_once_while_rows_are_inserted);
async fn keyset_pages_cover_every_row_once_while_rows_are_inserted(app: TestApp) {
    let mut before = Vec::new();
    for i in 0..17 {
        let price = format!("{}.00", i % 4);
        let a = app
            .register_agent(None, &format!("did:k:{i}"), json!({"capabilities": ["scan"], "base_price": price}))
            .await;
        before.push(a.id);
        if i % 3 == 0 {
            app.clock.advance_ms(1);
        }
    }
    for (n, path) in [
        "/api/v1/agents",
        "/api/v1/agents?capability=scan",
        "/api/v1/agents/discover?capability=scan&sort_by=base_price",
        "/api/v1/agents/discover?sort_by=reputation_score",
        "/api/v1/agents/discover?capability=scan&sort_by=recent",
        "/api/v1/agents/discover?capability=scan&sort_by=availability",
    ]
    .into_iter()
    .enumerate()
    {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut extra = 0;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=4&cursor={c}"),
                None => format!("{path}{sep}limit=4"),
            };
            let r = app.get(&url, None).await.expect(200);
            seen.extend(ids(&r));
            // Agents arrive between page reads, with prices on both sides of the cursor.
            for j in 0..2 {
                extra += 1;
                let price = format!("{}.50", (extra + j) % 5);
                app.register_agent(
                    None,
                    &format!("did:k:{n}-{extra}"),
                    json!({"capabilities": ["scan"], "base_price": price}),
                )
                .await;
            }
            cursor = next_cursor(&r);
            if cursor.is_none() {
                break;
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "no row twice: {path}");
        for id in &before {
            assert!(unique.contains(id), "every row present before the first page is seen: {path}");
        }
    }
}

both_engines!(cursors_are_opaque_and_checked);
async fn cursors_are_opaque_and_checked(app: TestApp) {
    for i in 0..3 {
        app.register_agent(None, &format!("did:c:{i}"), json!({})).await;
    }
    let r = app.get("/api/v1/agents?limit=1", None).await.expect(200);
    let cursor = next_cursor(&r).unwrap();
    app.get(&format!("/api/v1/agents?limit=1&cursor={cursor}"), None).await.expect(200);
    // Any edit, truncation or foreign cursor is a 422 naming `cursor`.
    let mut edited = cursor.clone().into_bytes();
    let i = edited.len() / 2;
    edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    for bad in [edited.as_str(), &cursor[..cursor.len() - 3], "bzo0", "eyJ4IjoxfQ", "%00"] {
        let r = app.get(&format!("/api/v1/agents?limit=1&cursor={bad}"), None).await;
        let r = r.expect_error(422, "VALIDATION_ERROR");
        assert_eq!(r.error_fields(), ["cursor"], "{bad}");
    }
    // A cursor of one ordering is not accepted by another.
    let r = app.get(&format!("/api/v1/agents/discover?sort_by=base_price&cursor={cursor}"), None).await;
    assert_eq!(r.expect_error(422, "VALIDATION_ERROR").error_fields(), ["cursor"]);
    let r = app.get(&format!("/api/v1/agents/discover?sort_by=recent&limit=1&cursor={cursor}"), None).await;
    r.expect(200);
}

/// One agent as the brute force sees it: read straight from the table.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    status: String,
    capabilities: Vec<String>,
    base_price: i64,
    reputation_centi: i64,
    tasks_completed: i64,
    created_at: i64,
    has_callback: i64,
    last_seen_at: i64,
}

async fn table(app: &TestApp) -> Vec<Row> {
    type Columns = (String, String, String, i64, i64, i64, i64, i64, Option<i64>);
    let rows: Vec<Columns> = sqlx::query_as(
        "SELECT id, status, capabilities, base_price, reputation_centi, tasks_completed, created_at, has_callback, \
         last_seen_at FROM agents",
    )
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, status, caps, base_price, reputation_centi, tasks_completed, created_at, has_callback, seen)| Row {
            id,
            status,
            capabilities: serde_json::from_str(&caps).unwrap(),
            base_price,
            reputation_centi,
            tasks_completed,
            created_at,
            has_callback,
            last_seen_at: seen.unwrap_or(0),
        })
        .collect()
}

fn brute_force(
    rows: &[Row],
    sort: &str,
    cap: Option<&str>,
    min: Option<i64>,
    max: Option<i64>,
    rep: Option<i64>,
) -> Vec<String> {
    let mut kept: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == "active")
        .filter(|r| cap.is_none_or(|c| r.capabilities.iter().any(|x| x == c)))
        .filter(|r| min.is_none_or(|m| r.base_price >= m))
        .filter(|r| max.is_none_or(|m| r.base_price <= m))
        .filter(|r| rep.is_none_or(|m| r.reputation_centi >= m))
        .collect();
    use std::cmp::Reverse;
    match sort {
        "reputation_score" => {
            kept.sort_by_key(|r| Reverse((r.reputation_centi, r.tasks_completed, r.created_at, r.id.clone())))
        }
        "base_price" => kept.sort_by_key(|r| (r.base_price, Reverse(r.reputation_centi), r.id.clone())),
        "recent" => kept.sort_by_key(|r| Reverse((r.created_at, r.id.clone()))),
        "availability" => {
            kept.sort_by_key(|r| Reverse((r.has_callback, r.last_seen_at, r.reputation_centi, r.id.clone())))
        }
        other => panic!("{other}"),
    }
    kept.into_iter().map(|r| r.id.clone()).collect()
}

both_engines!(every_filter_and_sort_agrees_with_a_brute_force_pass);
async fn every_filter_and_sort_agrees_with_a_brute_force_pass(app: TestApp) {
    let owner = app.signup("brute@example.com").await;
    let mut rng = StdRng::seed_from_u64(10);
    let caps = ["alpha", "beta", "gamma"];
    let mut agents = Vec::new();
    for i in 0..36 {
        let mine: Vec<&str> = caps.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
        let mine = if mine.is_empty() { vec!["alpha"] } else { mine };
        let price = format!("{}.{:02}", rng.random_range(0..4), [0, 50][rng.random_range(0..2)]);
        let mut body = json!({"capabilities": mine, "base_price": price});
        if rng.random_bool(0.3) {
            body["metadata"] = json!({"callback_url": "https://agents.example.com/hook"});
        }
        let a = app.register_agent(Some(&owner.key), &format!("did:b:{i}"), body).await;
        if rng.random_bool(0.2) {
            let status = ["draft", "inactive"][rng.random_range(0..2)];
            app.patch(&format!("/api/v1/agents/{}", a.id), Some(&owner.key), json!({"status": status}))
                .await
                .expect(200);
        }
        if rng.random_bool(0.3) {
            // The agent's key marks it seen (the availability order).
            app.get("/api/v1/ledger/balance", Some(&a.key)).await;
        }
        agents.push(a.id);
        app.clock.advance_ms(rng.random_range(0..3));
    }
    // Reputation and completed tasks as the task engine records them.
    let mut tx = app.state.db.begin().await.unwrap();
    let mut outcomes: Vec<(String, agentmarket::agents::store::Outcome)> = Vec::new();
    for id in &agents {
        if rng.random_bool(0.6) {
            let o = agentmarket::agents::store::Outcome {
                completed: rng.random_range(0..3),
                failed: 0,
                reputation_centi: [-50, 0, 25, 100, 250][rng.random_range(0..5)],
                rating: None,
            };
            outcomes.push((id.clone(), o));
        }
    }
    agentmarket::agents::store::record_outcomes(&mut tx, &outcomes, app.clock_secs() * 1000).await.unwrap();
    tx.commit().await.unwrap();

    let rows = table(&app).await;
    // (capability, min price, max price, min reputation)
    type Filter<'a> = (Option<&'a str>, Option<i64>, Option<i64>, Option<i64>);
    let filters: [Filter; 7] = [
        (None, None, None, None),
        (Some("alpha"), None, None, None),
        (Some("beta"), Some(100_000_000), None, None),
        (None, None, Some(150_000_000), None),
        (None, None, None, Some(325)),
        (Some("gamma"), Some(50_000_000), Some(250_000_000), Some(300)),
        (Some("nobody"), None, None, None),
    ];
    for sort in ["reputation_score", "base_price", "recent", "availability"] {
        for (cap, min, max, rep) in filters {
            let mut path = format!("/api/v1/agents/discover?sort_by={sort}");
            if let Some(c) = cap {
                path += &format!("&capability={c}");
            }
            let dec = |u: i64| format!("{}.{:02}", u / 100_000_000, u % 100_000_000 / 1_000_000);
            if let Some(m) = min {
                path += &format!("&min_price={}", dec(m));
            }
            if let Some(m) = max {
                path += &format!("&max_price={}", dec(m));
            }
            if let Some(r) = rep {
                path += &format!("&min_reputation={}.{:02}", r / 100, r % 100);
            }
            let expected = brute_force(&rows, sort, cap, min, max, rep);
            assert_eq!(all_pages(&app, &path, 5).await, expected, "{path}");
            let first = app.get(&path, None).await.expect(200);
            let pagination = &first.body["meta"]["pagination"];
            assert_eq!(pagination["total_count"], expected.len(), "{path}");
            assert_eq!(pagination["total_is_estimate"], false);
        }
    }
    // GET /agents: newest first, by capability too; the counters give the totals.
    assert_eq!(all_pages(&app, "/api/v1/agents", 7).await, brute_force(&rows, "recent", None, None, None, None));
    let alpha = brute_force(&rows, "recent", Some("alpha"), None, None, None);
    assert_eq!(all_pages(&app, "/api/v1/agents?capability=alpha", 7).await, alpha);
    let r = app.get("/api/v1/agents?capability=ALPHA", None).await.expect(200);
    assert_eq!(r.body["meta"]["pagination"]["total_count"], alpha.len());
    // offset still works, and a cursor continues where an offset page ended.
    let r = app.get("/api/v1/agents?limit=3&offset=2", None).await.expect(200);
    let all = brute_force(&rows, "recent", None, None, None, None);
    assert_eq!(ids(&r), all[2..5]);
    let next = next_cursor(&r).unwrap();
    let r = app.get(&format!("/api/v1/agents?limit=3&cursor={next}"), None).await.expect(200);
    assert_eq!(ids(&r), all[5..8]);
}

both_engines!(q_finds_by_name_description_and_capability_and_ranks_the_name_first);
async fn q_finds_by_name_description_and_capability_and_ranks_the_name_first(app: TestApp) {
    let by_description = app
        .register_agent(
            None,
            "did:q:desc",
            json!({"name": "Helper", "description": "I review Kotlin pull requests", "capabilities": ["code-review"]}),
        )
        .await;
    let by_name = app
        .register_agent(
            None,
            "did:q:name",
            json!({"name": "Kotlin Expert", "description": "Careful and quick", "capabilities": ["code-review"]}),
        )
        .await;
    let by_capability = app
        .register_agent(None, "did:q:cap", json!({"name": "Polyglot", "capabilities": ["kotlin", "translation"]}))
        .await;
    let other = app
        .register_agent(
            None,
            "did:q:other",
            json!({"name": "Painter", "description": "Paints", "capabilities": ["art"]}),
        )
        .await;
    let hidden_owner = app.signup("hidden@example.com").await;
    let hidden = app.register_agent(Some(&hidden_owner.key), "did:q:hidden", json!({"name": "Kotlin Draft"})).await;
    app.patch(&format!("/api/v1/agents/{}", hidden.id), Some(&hidden_owner.key), json!({"status": "draft"}))
        .await
        .expect(200);

    for path in ["/api/v1/agents?q=kotlin", "/api/v1/agents/discover?q=KOTLIN"] {
        let r = app.get(path, None).await.expect(200);
        assert_eq!(ids(&r), [by_name.id.clone(), by_capability.id.clone(), by_description.id.clone()], "{path}");
    }
    // Every word must match; punctuation between words is a separator.
    let r = app.get("/api/v1/agents?q=kotlin%20pull-requests", None).await.expect(200);
    assert_eq!(ids(&r), std::slice::from_ref(&by_description.id));
    let r = app.get("/api/v1/agents?q=translation", None).await.expect(200);
    assert_eq!(ids(&r), std::slice::from_ref(&by_capability.id));
    let r = app.get("/api/v1/agents/discover?q=code%20review&sort_by=recent", None).await.expect(200);
    assert_eq!(ids(&r), [by_name.id.clone(), by_description.id.clone()]);
    let r = app.get("/api/v1/agents?q=paints&capability=art", None).await.expect(200);
    assert_eq!(ids(&r), std::slice::from_ref(&other.id));
    // Pages through the ranking with the cursor.
    assert_eq!(all_pages(&app, "/api/v1/agents/discover?q=kotlin", 1).await.len(), 3);

    // User input is data: query syntax of either engine is just text.
    for q in [
        "%22kotlin%22",
        "kotlin*",
        "kotlin%20OR%20painter",
        "NEAR(kotlin%20expert)",
        "kotlin%20%26%20!painter",
        "%27%3B%20DROP%20TABLE%20agents%3B--",
        "%5C",
        "%25",
        "_",
        "name%3Akotlin",
        "%22",
        "(",
        "-kotlin",
        "%E2%80%94",
        "a%20b%20c%20d%20e%20f%20g%20h%20i%20j%20k%20l%20m%20n%20o%20p%20q%20r",
    ] {
        let r = app.get(&format!("/api/v1/agents?q={q}"), None).await.expect(200);
        assert!(r.data().is_array(), "{q}");
        app.get(&format!("/api/v1/agents/discover?q={q}&capability=code-review"), None).await.expect(200);
    }
    let r = app.get("/api/v1/agents?q=kotlin%20OR%20painter", None).await.expect(200);
    assert!(ids(&r).is_empty(), "OR is a word to match, not an operator");
    let r = app.get("/api/v1/agents?q=%22kotlin%22", None).await.expect(200);
    assert_eq!(ids(&r).len(), 3);
    app.get("/api/v1/agents?q=kotlin%00", None).await.expect_error(422, "VALIDATION_ERROR");
    // Renaming moves the agent in the index.
    let owner = app.signup("rename@example.com").await;
    let renamed = app.register_agent(Some(&owner.key), "did:q:renamed", json!({"name": "Zebra"})).await;
    app.patch(&format!("/api/v1/agents/{}", renamed.id), Some(&owner.key), json!({"name": "Okapi"})).await.expect(200);
    assert!(ids(&app.get("/api/v1/agents?q=zebra", None).await.expect(200)).is_empty());
    assert_eq!(ids(&app.get("/api/v1/agents?q=okapi", None).await.expect(200)), [renamed.id]);
}

/// /capabilities recomputed from the agents table.
async fn recount(app: &TestApp) -> Value {
    let mut by_cap: BTreeMap<String, (i64, i128)> = BTreeMap::new();
    for r in table(app).await.iter().filter(|r| r.status == "active") {
        for c in &r.capabilities {
            let e = by_cap.entry(c.clone()).or_default();
            e.0 += 1;
            e.1 += i128::from(r.base_price);
        }
    }
    let mut list: Vec<(String, i64, i128)> = by_cap.into_iter().map(|(c, (n, sum))| (c, n, sum)).collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Value::Array(
        list.into_iter()
            .map(|(name, n, sum)| {
                let avg = (sum + i128::from(n) / 2) / i128::from(n);
                let units = i64::try_from(avg).unwrap();
                let price = agentmarket::money::Amount::from_units(units).unwrap().to_string();
                json!({"name": name, "agent_count": n, "avg_price": price})
            })
            .collect(),
    )
}

both_engines!(capability_counters_equal_a_recount_after_random_changes);
async fn capability_counters_equal_a_recount_after_random_changes(app: TestApp) {
    let owner = app.signup("counters@example.com").await;
    let mut rng = StdRng::seed_from_u64(7);
    let caps = ["alpha", "beta", "gamma", "delta"];
    let mut live: Vec<String> = Vec::new();
    for step in 0..60 {
        let pick_caps = |rng: &mut StdRng| -> Vec<&str> {
            let mut v: Vec<&str> = caps.iter().copied().filter(|_| rng.random_bool(0.4)).collect();
            if v.is_empty() {
                v.push(caps[rng.random_range(0..caps.len())]);
            }
            v
        };
        let price = |rng: &mut StdRng| format!("{}.{:02}", rng.random_range(0..1000), rng.random_range(0..100));
        match rng.random_range(0..10) {
            0..=3 => {
                let body = json!({"capabilities": pick_caps(&mut rng), "base_price": price(&mut rng)});
                live.push(app.register_agent(Some(&owner.key), &format!("did:n:{step}"), body).await.id);
            }
            _ if live.is_empty() => continue,
            4..=5 => {
                let id = &live[rng.random_range(0..live.len())];
                let body = match rng.random_range(0..3) {
                    0 => json!({"capabilities": pick_caps(&mut rng)}),
                    1 => json!({"base_price": price(&mut rng)}),
                    _ => json!({"capabilities": pick_caps(&mut rng), "base_price": price(&mut rng), "name": "Renamed"}),
                };
                app.patch(&format!("/api/v1/agents/{id}"), Some(&owner.key), body).await.expect(200);
            }
            6..=7 => {
                let id = &live[rng.random_range(0..live.len())];
                let status = ["active", "draft", "inactive"][rng.random_range(0..3)];
                app.patch(&format!("/api/v1/agents/{id}"), Some(&owner.key), json!({"status": status}))
                    .await
                    .expect(200);
            }
            _ => {
                let id = live.swap_remove(rng.random_range(0..live.len()));
                app.delete(&format!("/api/v1/agents/{id}"), Some(&owner.key)).await.expect(200);
            }
        }
        if step % 6 == 5 {
            let served = app.get("/api/v1/capabilities", None).await.expect(200);
            assert_eq!(served.data(), &recount(&app).await, "after step {step}");
            let active = table(&app).await.iter().filter(|r| r.status == "active").count();
            let listed = app.get("/api/v1/agents?limit=1", None).await.expect(200);
            assert_eq!(listed.body["meta"]["pagination"]["total_count"], active);
        }
    }
    let served = app.get("/api/v1/capabilities", None).await.expect(200);
    assert_eq!(served.data(), &recount(&app).await);
}
