//! POST /agents/assign: claiming autonomous agents with their own keys, item by item.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(assign_reports_each_item_on_its_own);
async fn assign_reports_each_item_on_its_own(app: TestApp) {
    let me = app.signup("claimer@example.com").await;
    let other = app.signup("holder@example.com").await;
    let free = app.register_agent(None, "did:t:free", json!({})).await;
    let free2 = app.register_agent(None, "did:t:free2", json!({})).await;
    let wrong_key_target = app.register_agent(None, "did:t:locked", json!({})).await;
    let theirs = app.register_agent(Some(&other.key), "did:t:theirs", json!({})).await;
    let mine = app.register_agent(Some(&me.key), "did:t:mine", json!({})).await;

    let r = app
        .post(
            "/api/v1/agents/assign",
            Some(&me.key),
            json!({"agents": [
                {"id": free.id, "api_key": free.key},
                {"agent_id": free2.did, "api_key": free2.key},
                {"id": wrong_key_target.id, "api_key": free.key},
                {"id": theirs.id, "api_key": theirs.key},
                {"id": mine.id, "api_key": mine.key},
                {"id": "did:t:ghost", "api_key": free.key},
            ]}),
        )
        .await
        .expect(200);
    let results = r.data()["results"].as_array().unwrap();
    let status: Vec<&str> = results.iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["assigned", "assigned", "failed", "failed", "already_owned", "failed"]);
    assert_eq!(results[2]["error"]["code"], "UNAUTHORIZED");
    assert_eq!(results[3]["error"]["code"], "FORBIDDEN");
    assert_eq!(results[5]["error"]["code"], "NOT_FOUND");
    assert_eq!(
        (r.data()["assigned"].as_u64(), r.data()["already_owned"].as_u64(), r.data()["failed"].as_u64()),
        (Some(2), Some(1), Some(3))
    );

    let listed = app.get("/api/v1/accounts/me/agents", Some(&me.key)).await.expect(200);
    let mut dids: Vec<&str> = listed.data().as_array().unwrap().iter().map(|a| a["did"].as_str().unwrap()).collect();
    dids.sort();
    assert_eq!(dids, ["did:t:free", "did:t:free2", "did:t:mine"]);
    let profile = app.get(&format!("/api/v1/agents/{}", wrong_key_target.id), None).await.expect(200);
    assert_eq!(profile.data()["owner_id"], json!(null), "a failed item changes nothing");
    let profile = app.get(&format!("/api/v1/agents/{}", theirs.id), None).await.expect(200);
    assert_eq!(profile.data()["owner_id"], other.id.as_str());

    // Re-assigning is silent success; someone else claiming it now is FORBIDDEN.
    let again = app
        .post("/api/v1/agents/assign", Some(&me.key), json!({"agents": [{"id": free.id, "api_key": free.key}]}))
        .await
        .expect(200);
    assert_eq!(again.data()["results"][0]["status"], "already_owned");
    let steal = app
        .post("/api/v1/agents/assign", Some(&other.key), json!({"agents": [{"id": free.id, "api_key": free.key}]}))
        .await
        .expect(200);
    assert_eq!(steal.data()["results"][0]["error"]["code"], "FORBIDDEN");
}

both_engines!(assign_validates_the_request_and_needs_a_user);
async fn assign_validates_the_request_and_needs_a_user(app: TestApp) {
    let me = app.signup("v@example.com").await;
    let agent = app.register_agent(None, "did:t:v", json!({})).await;
    app.post("/api/v1/agents/assign", None, json!({"agents": []})).await.expect_error(401, "UNAUTHORIZED");
    app.post("/api/v1/agents/assign", Some(&agent.key), json!({"agents": [{"id": agent.id, "api_key": agent.key}]}))
        .await
        .expect_error(403, "FORBIDDEN");
    app.post("/api/v1/agents/assign", Some(&me.key), json!({"agents": []})).await.expect_error(422, "VALIDATION_ERROR");
    let r =
        app.post("/api/v1/agents/assign", Some(&me.key), json!({"agents": [{"id": agent.id}, {"api_key": "x"}]})).await;
    let r = r.expect_error(422, "VALIDATION_ERROR");
    assert_eq!(r.error_fields(), ["agents[0].api_key", "agents[1].id"]);
}

both_engines!(assign_respects_the_plan_limit, |c: &mut agentmarket::Config| c.max_agents_per_user = Some(1));
async fn assign_respects_the_plan_limit(app: TestApp) {
    let me = app.signup("cap@example.com").await;
    let a = app.register_agent(None, "did:t:a", json!({})).await;
    let b = app.register_agent(None, "did:t:b", json!({})).await;
    let r = app
        .post(
            "/api/v1/agents/assign",
            Some(&me.key),
            json!({"agents": [{"id": a.id, "api_key": a.key}, {"id": b.id, "api_key": b.key}]}),
        )
        .await
        .expect(200);
    assert_eq!(r.data()["results"][0]["status"], "assigned");
    assert_eq!(r.data()["results"][1]["error"]["code"], "PLAN_LIMIT_REACHED");
}
