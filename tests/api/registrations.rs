//! Registrations arriving together (on SQLite they are committed in one transaction, each in its
//! own savepoint): one's refusal — a taken DID, the plan limit, a key in use — leaves the others
//! registered, and every count stays equal to the rows.

use std::collections::HashMap;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::both_engines;
use crate::support::TestApp;

fn agent(did: &str) -> Value {
    json!({"agent": {"name": format!("Agent {did}"), "did": did, "capabilities": ["batch"], "pricing_model": "fixed", "base_price": "3.00"}})
}

both_engines!(registrations_together_refuse_one_and_keep_the_others, |c: &mut agentmarket::Config| {
    c.max_agents_per_user = Some(4);
    c.register_limit_per_hour = 1_000;
});
async fn registrations_together_refuse_one_and_keep_the_others(app: TestApp) {
    let user = app.signup("together@example.com").await;
    // 12 anonymous registrations, three of them for one DID; 7 owned ones against a limit of 4;
    // two with one idempotency key and the same body.
    let mut requests = Vec::new();
    for i in 0..12 {
        let did = if i < 3 { "did:r:same".to_string() } else { format!("did:r:anon-{i}") };
        requests.push(app.client.post(app.url("/api/v1/agents/register")).json(&agent(&did)));
    }
    for i in 0..7 {
        requests.push(
            app.client
                .post(app.url("/api/v1/agents/register"))
                .header("x-api-key", &user.key)
                .json(&agent(&format!("did:r:own-{i}"))),
        );
    }
    for _ in 0..2 {
        requests.push(
            app.client
                .post(app.url("/api/v1/agents/register"))
                .header("idempotency-key", "reg-1")
                .json(&agent("did:r:keyed")),
        );
    }
    let answers = join_all(requests.into_iter().map(|r| app.send(r))).await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for a in &answers {
        *by_status.entry(a.status).or_default() += 1;
    }
    let same: Vec<u16> = answers[..3].iter().map(|a| a.status).collect();
    assert_eq!(same.iter().filter(|s| **s == 201).count(), 1, "one DID, one agent: {same:?}");
    assert_eq!(same.iter().filter(|s| **s == 409).count(), 2, "{same:?}");
    assert!(answers[3..12].iter().all(|a| a.status == 201), "the other anonymous ones registered");
    let owned: Vec<&crate::support::Resp> = answers[12..19].iter().collect();
    assert_eq!(owned.iter().filter(|a| a.status == 201).count(), 4, "the plan limit holds");
    assert!(owned.iter().filter(|a| a.status != 201).all(|a| a.code() == "PLAN_LIMIT_REACHED"));
    // The keyed pair: one registration; the other replays it or is told the first is running.
    let keyed: Vec<&crate::support::Resp> = answers[19..].iter().collect();
    assert!(keyed.iter().any(|a| a.status == 201), "{:?}", keyed.iter().map(|a| &a.body).collect::<Vec<_>>());
    for a in &keyed {
        assert!(a.status == 201 || (a.status == 409 && a.code() == "IDEMPOTENCY_PENDING"), "{}", a.text);
        if a.status == 201 {
            assert_eq!(a.data()["agent"]["did"], "did:r:keyed");
        }
    }

    // What was acknowledged is what is there, once.
    let listed = app.get("/api/v1/agents?capability=batch&limit=100", None).await.expect(200);
    let mut dids: Vec<String> =
        listed.data().as_array().unwrap().iter().map(|a| a["did"].as_str().unwrap().to_string()).collect();
    dids.sort();
    let mut expected: Vec<String> = answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.data()["agent"]["did"].as_str().unwrap().to_string())
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(dids, expected);
    assert_eq!(listed.body["meta"]["pagination"]["total_count"], expected.len());
    let caps = app.get("/api/v1/capabilities", None).await.expect(200);
    let batch = caps.data().as_array().unwrap().iter().find(|c| c["name"] == "batch").unwrap().clone();
    assert_eq!(batch["agent_count"], expected.len(), "the counters equal the rows");
    let mine = app.get("/api/v1/accounts/me/agents?limit=100", Some(&user.key)).await.expect(200);
    assert_eq!(mine.data().as_array().unwrap().len(), 4);

    // A replay after both finished answers the registration that was made.
    let replay = app
        .send(
            app.client
                .post(app.url("/api/v1/agents/register"))
                .header("idempotency-key", "reg-1")
                .json(&agent("did:r:keyed")),
        )
        .await
        .expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(by_status.values().sum::<usize>(), 21);
}
