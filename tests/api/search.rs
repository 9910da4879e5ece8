//! `q` search against a brute-force pass over the same agents, on both engines: which agents
//! match (every word, in name, capabilities or description; active agents only), their order
//! (tier — every word in the name, then in the name or capabilities, then anywhere — and newest
//! first within a tier), the count, and paging by cursor and offset through the tiers while
//! agents change.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::both_engines;
use crate::discovery_scale::{all_pages, ids};
use crate::support::TestApp;

/// The words of a text as both engines' indexes see them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

struct Agent {
    id: String,
    status: String,
    name: Vec<String>,
    capabilities: Vec<String>,
    description: Vec<String>,
    capability_list: Vec<String>,
    base_price: i64,
    created_at: i64,
}

async fn agents(app: &TestApp) -> Vec<Agent> {
    type Columns = (String, String, String, String, Option<String>, i64, i64);
    let rows: Vec<Columns> =
        sqlx::query_as("SELECT id, status, name, capabilities, description, base_price, created_at FROM agents")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, status, name, caps, description, base_price, created_at)| Agent {
            id,
            status,
            name: words(&name),
            capabilities: words(&caps),
            description: words(description.as_deref().unwrap_or("")),
            capability_list: serde_json::from_str(&caps).unwrap(),
            base_price,
            created_at,
        })
        .collect()
}

/// What `q` (with an optional capability and minimum price) should answer, in order.
fn brute_force(all: &[Agent], q: &str, capability: Option<&str>, min_price: Option<i64>) -> Vec<String> {
    let query = words(q);
    let mut kept: Vec<(u8, i64, &str)> = Vec::new();
    for a in all.iter().filter(|a| a.status == "active") {
        if capability.is_some_and(|c| !a.capability_list.iter().any(|x| x == c))
            || min_price.is_some_and(|m| a.base_price < m)
        {
            continue;
        }
        let in_name = |w: &String| a.name.contains(w);
        let in_name_or_caps = |w: &String| in_name(w) || a.capabilities.contains(w);
        let anywhere = |w: &String| in_name_or_caps(w) || a.description.contains(w);
        if !query.iter().all(anywhere) {
            continue;
        }
        let tier = if query.iter().all(in_name) {
            0
        } else if query.iter().all(in_name_or_caps) {
            1
        } else {
            2
        };
        kept.push((tier, a.created_at, &a.id));
    }
    kept.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)).then(y.2.cmp(x.2)));
    kept.into_iter().map(|(_, _, id)| id.to_string()).collect()
}

const VOCABULARY: [&str; 5] = ["red", "blue", "green", "kotlin", "fast"];

fn some_words(rng: &mut StdRng, at_most: usize) -> Vec<&'static str> {
    (0..rng.random_range(0..=at_most)).map(|_| VOCABULARY[rng.random_range(0..VOCABULARY.len())]).collect()
}

both_engines!(q_agrees_with_a_brute_force_pass_through_changes);
async fn q_agrees_with_a_brute_force_pass_through_changes(app: TestApp) {
    let owner = app.signup("search@example.com").await;
    let mut rng = StdRng::seed_from_u64(11);
    let mut live: Vec<String> = Vec::new();
    let queries = ["red", "blue", "kotlin", "red blue", "Green-Fast", "fast kotlin red", "nothing"];
    for step in 0..90 {
        // One registration per millisecond: newest first is then one order on both engines.
        app.clock.advance_ms(1);
        match rng.random_range(0..10) {
            0..=5 => {
                let mut caps: Vec<String> = some_words(&mut rng, 2).iter().map(|w| format!("{w}-team")).collect();
                caps.push(["art", "scan"][rng.random_range(0..2)].to_string());
                caps.sort();
                caps.dedup();
                let body = json!({
                    "name": format!("{} agent {step}", some_words(&mut rng, 2).join(" ")),
                    "description": some_words(&mut rng, 3).join(", "),
                    "capabilities": caps,
                    "base_price": format!("{}.00", rng.random_range(0..4)),
                });
                live.push(app.register_agent(Some(&owner.key), &format!("did:s:{step}"), body).await.id);
            }
            _ if live.is_empty() => continue,
            6 => {
                let id = &live[rng.random_range(0..live.len())];
                let body = json!({"name": format!("{} renamed", some_words(&mut rng, 2).join(" ")),
                                  "description": some_words(&mut rng, 2).join(" ")});
                app.patch(&format!("/api/v1/agents/{id}"), Some(&owner.key), body).await.expect(200);
            }
            7..=8 => {
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
        if step % 15 != 14 {
            continue;
        }
        let all = agents(&app).await;
        for q in queries {
            let encoded = q.replace(' ', "%20");
            let expected = brute_force(&all, q, None, None);
            let path = format!("/api/v1/agents/discover?q={encoded}");
            assert_eq!(all_pages(&app, &path, 3).await, expected, "{path} after step {step}");
            let first = app.get(&path, None).await.expect(200);
            assert_eq!(first.body["meta"]["pagination"]["total_count"], expected.len(), "{path}");
            assert_eq!(first.body["meta"]["pagination"]["total_is_estimate"], false);
            let path = format!("/api/v1/agents?q={encoded}");
            assert_eq!(all_pages(&app, &path, 4).await, expected, "{path} after step {step}");
            // Filters narrow the same ranking.
            let path = format!("/api/v1/agents/discover?q={encoded}&capability=art&min_price=1.00");
            let narrowed = brute_force(&all, q, Some("art"), Some(100_000_000));
            assert_eq!(all_pages(&app, &path, 2).await, narrowed, "{path} after step {step}");
            let first = app.get(&path, None).await.expect(200);
            assert_eq!(first.body["meta"]["pagination"]["total_count"], narrowed.len(), "{path}");
            // An offset page, and a cursor going on from it, across the tiers.
            if expected.len() > 4 {
                let r =
                    app.get(&format!("/api/v1/agents/discover?q={encoded}&limit=2&offset=2"), None).await.expect(200);
                assert_eq!(ids(&r), expected[2..4], "{q} offset");
                let next = r.body["meta"]["pagination"]["cursor"].as_str().unwrap().to_string();
                let r = app
                    .get(&format!("/api/v1/agents/discover?q={encoded}&limit=100&cursor={next}"), None)
                    .await
                    .expect(200);
                assert_eq!(ids(&r), expected[4..], "{q} after the offset page");
            }
        }
    }
}

both_engines!(q_pages_stay_stable_while_matching_agents_arrive);
async fn q_pages_stay_stable_while_matching_agents_arrive(app: TestApp) {
    let mut before = Vec::new();
    for i in 0..9 {
        app.clock.advance_ms(1);
        let name = ["Kotlin pro", "Helper", "Polyglot"][i % 3];
        let body = json!({"name": format!("{name} {i}"), "description": "kotlin", "capabilities": ["kotlin"]});
        before.push(app.register_agent(None, &format!("did:sa:{i}"), body).await.id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut extra = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/agents/discover?q=kotlin&limit=2&cursor={c}"),
            None => "/api/v1/agents/discover?q=kotlin&limit=2".to_string(),
        };
        let r = app.get(&url, None).await.expect(200);
        seen.extend(ids(&r));
        // New matches in every tier arrive between page reads.
        for name in ["Kotlin new", "Other"] {
            extra += 1;
            app.clock.advance_ms(1);
            let body = json!({"name": format!("{name} {extra}"), "capabilities": ["kotlin"]});
            app.register_agent(None, &format!("did:sb:{extra}"), body).await;
        }
        cursor = r.body["meta"]["pagination"]["cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no agent twice");
    for id in &before {
        assert!(seen.contains(id), "every agent present before the first page is seen");
    }
}

both_engines!(an_index_of_the_first_shape_is_rebuilt_at_start);
async fn an_index_of_the_first_shape_is_rebuilt_at_start(app: TestApp) {
    let owner = app.signup("upgrade@example.com").await;
    let listed = app.register_agent(Some(&owner.key), "did:u:1", json!({"name": "Kotlin listed"})).await;
    let draft = app.register_agent(Some(&owner.key), "did:u:2", json!({"name": "Kotlin draft"})).await;
    app.patch(&format!("/api/v1/agents/{}", draft.id), Some(&owner.key), json!({"status": "draft"})).await.expect(200);
    // Put back the first shape: every agent indexed (drafts too), no status trigger / an index
    // over every agent.
    let db = &app.state.db;
    let first_shape: &[&'static str] = match db.engine() {
        agentmarket::db::Engine::Sqlite => &[
            "DROP TRIGGER agents_search_insert",
            "DROP TRIGGER agents_search_relist",
            "DROP TRIGGER agents_search_delete",
            "DROP TABLE agents_search",
            "DROP TABLE agent_search_ids",
            "CREATE TABLE agent_search_ids (search_id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL UNIQUE)",
            "CREATE VIRTUAL TABLE agents_search USING fts5(name, capabilities, description)",
            "INSERT INTO agent_search_ids (agent_id) SELECT id FROM agents",
            "INSERT INTO agents_search (rowid, name, capabilities, description) SELECT m.search_id, a.name, \
             a.capabilities, COALESCE(a.description, '') FROM agent_search_ids m JOIN agents a ON a.id = m.agent_id",
            "CREATE TRIGGER agents_search_update AFTER UPDATE OF name ON agents BEGIN SELECT 1; END",
        ],
        agentmarket::db::Engine::Postgres => {
            // The first shape: a GIN index over every agent, no words table.
            &[
                "DROP FUNCTION agent_words_sync() CASCADE",
                "DROP TABLE agent_words",
                "CREATE INDEX agents_search_gin ON agents USING GIN (search)",
            ]
        }
    };
    for statement in first_shape {
        sqlx::query(*statement).execute(db.writer()).await.unwrap();
    }
    agentmarket::agents::search::ensure(db).await.unwrap();
    agentmarket::agents::search::ensure(db).await.unwrap(); // idempotent

    let r = app.get("/api/v1/agents/discover?q=kotlin", None).await.expect(200);
    assert_eq!(ids(&r), std::slice::from_ref(&listed.id));
    assert_eq!(r.body["meta"]["pagination"]["total_count"], 1);
    // The triggers of the current shape keep the index: a new agent, a relisted draft.
    let newer = app.register_agent(Some(&owner.key), "did:u:3", json!({"name": "Kotlin newer"})).await;
    app.patch(&format!("/api/v1/agents/{}", draft.id), Some(&owner.key), json!({"status": "active"})).await.expect(200);
    let r = app.get("/api/v1/agents/discover?q=kotlin", None).await.expect(200);
    assert_eq!(ids(&r), [newer.id.clone(), draft.id.clone(), listed.id.clone()]);
    if db.engine() == agentmarket::db::Engine::Sqlite {
        // A half-dropped index (the table gone, its triggers left) is rebuilt too.
        sqlx::query("DROP TABLE agents_search").execute(db.writer()).await.unwrap();
        agentmarket::agents::search::ensure(db).await.unwrap();
        let r = app.get("/api/v1/agents/discover?q=kotlin", None).await.expect(200);
        assert_eq!(r.body["meta"]["pagination"]["total_count"], 3);
    }
    if db.engine() == agentmarket::db::Engine::Postgres {
        let (old,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pg_indexes WHERE indexname LIKE 'agents_search%gin'")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(old, 0, "the GIN indexes nothing reads any more are dropped");
        // A half-dropped words table (its update trigger gone) is rebuilt too.
        sqlx::query("DROP TRIGGER agent_words_update ON agents").execute(db.writer()).await.unwrap();
        agentmarket::agents::search::ensure(db).await.unwrap();
        app.patch(&format!("/api/v1/agents/{}", listed.id), Some(&owner.key), json!({"name": "Swift listed"}))
            .await
            .expect(200);
        let r = app.get("/api/v1/agents/discover?q=kotlin", None).await.expect(200);
        assert_eq!(ids(&r), [newer.id, draft.id]);
    }
}

both_engines!(counts_checked_agent_by_agent_stop_at_two_hundred);
async fn counts_checked_agent_by_agent_stop_at_two_hundred(app: TestApp) {
    for i in 0..203 {
        let price = if i < 201 { "1.00" } else { "3.00" };
        app.register_agent(None, &format!("did:c:{i}"), json!({"capabilities": ["bulk"], "base_price": price})).await;
    }
    let count = |r: &crate::support::Resp| {
        let p = &r.body["meta"]["pagination"];
        (p["total_count"].as_i64().unwrap(), p["total_is_estimate"].as_bool().unwrap())
    };
    // From the counters: exact at any size.
    let r = app.get("/api/v1/agents/discover?capability=bulk", None).await.expect(200);
    assert_eq!(count(&r), (203, false));
    // 201 match: the count stops at 200 and says so.
    let r = app.get("/api/v1/agents/discover?capability=bulk&max_price=2.00", None).await.expect(200);
    assert_eq!(count(&r), (200, true));
    let r = app.get("/api/v1/agents/discover?max_price=2.00&sort_by=base_price", None).await.expect(200);
    assert_eq!(count(&r), (200, true));
    // One word: counted to 1,000 (from the index alone); two words: to 200.
    let r = app.get("/api/v1/agents/discover?q=bulk", None).await.expect(200);
    assert_eq!(count(&r), (203, false));
    let r = app.get("/api/v1/agents/discover?q=bulk%20agent", None).await.expect(200);
    assert_eq!(count(&r), (200, true));
    assert_eq!(ids(&r).len(), 20);
    // At or under the cap it is exact.
    let r = app.get("/api/v1/agents/discover?capability=bulk&min_price=2.00", None).await.expect(200);
    assert_eq!(count(&r), (2, false));
    assert_eq!(ids(&r).len(), 2);
}

both_engines!(q_statements_find_agents_by_key_on_a_new_database);
/// The search statements keep their plans (on PostgreSQL the search pool's sessions make one
/// generic plan per statement, at first use). Made while the tables were nearly empty, a page
/// read `agent_words` whole, and reached each entry's agent through the status index with the
/// id only as a filter (every active agent per entry). Each must walk the word's entries by
/// key and fetch each agent by its id, whatever the statistics say.
async fn q_statements_find_agents_by_key_on_a_new_database(app: TestApp) {
    use agentmarket::agents::search::{matching, page_queries};
    use agentmarket::db::{Engine, SqlBuilder};

    for i in 0..3 {
        app.register_agent(None, &format!("did:p:{i}"), json!({"name": format!("Kotlin reviewer {i}")})).await;
    }
    let db = &app.state.db;
    let engine = db.engine();
    let one = vec!["kotlin".to_string()];
    let two = vec!["kotlin".to_string(), "reviewer".to_string()];
    let no_filters = |_: &mut SqlBuilder| {};
    let mut statements = page_queries(engine, &one, "a.id", &no_filters, None, 21);
    statements.extend(page_queries(engine, &two, "a.id", &no_filters, Some((1, 5, "x")), 21));
    let mut count = matching(engine, &two, true);
    count.sql = format!("SELECT COUNT(*){}", count.sql);
    statements.push(count);

    let mut conn = db.search().acquire().await.unwrap();
    for statement in statements {
        let plan = crate::support::plan_of(&mut conn, engine, &statement).await;
        let by_key = match engine {
            Engine::Postgres => {
                !plan.contains("Seq Scan")
                    && plan.contains("Index Cond: (id = w.agent_id)")
                    && plan.contains("using agent_words_pkey")
            }
            Engine::Sqlite => !plan.lines().any(|l| l.starts_with("SCAN a")) && plan.contains("SEARCH a USING"),
        };
        assert!(by_key, "agents not found by key:\n{}\n{plan}", statement.sql);
    }
}
