//! Agent registration (owned and autonomous), credentials on /agents/register, profiles,
//! updates, the draft toggle, deletion, agent keys and X-Agent-ID.

use serde_json::json;

use crate::both_engines;
use crate::support::{TestApp, enc};

fn agent_body(did: &str) -> serde_json::Value {
    json!({"agent": {"name": "Reviewer", "did": did, "capabilities": ["code-review"], "pricing_model": "fixed", "base_price": "25.00"}})
}

both_engines!(registering_with_a_user_key_makes_an_owned_agent);
async fn registering_with_a_user_key_makes_an_owned_agent(app: TestApp) {
    let user = app.signup("owner@example.com").await;
    let r = app.post("/api/v1/agents/register", Some(&user.key), agent_body("did:agrenting:owned")).await.expect(201);
    let d = r.data();
    assert_eq!(d["agent"]["owner_id"], user.id.as_str());
    assert_eq!(d["message"], "Keep your API key secure. It will not be shown again.");
    let key = d["api_key"].as_str().unwrap();
    assert!(key.starts_with("agk_") && key.len() >= 36);
    for field in [
        "id",
        "did",
        "name",
        "capabilities",
        "pricing_model",
        "base_price",
        "status",
        "reputation_score",
        "total_tasks_completed",
        "success_rate",
        "reviews",
        "availability_status",
        "created_at",
        "updated_at",
    ] {
        assert!(d["agent"].get(field).is_some(), "Agent has {field}");
    }
    assert_eq!(d["agent"]["base_price"], "25.00");
    assert_eq!(d["agent"]["status"], "active");

    let mine = app.get("/api/v1/accounts/me/agents", Some(&user.key)).await.expect(200);
    assert_eq!(mine.data().as_array().unwrap().len(), 1);
    assert_eq!(mine.data()[0]["did"], "did:agrenting:owned");
    assert!(!mine.text.contains(key));

    // POST /agents does the same and needs a user credential.
    let r = app.post("/api/v1/agents", Some(&user.key), agent_body("did:agrenting:owned2")).await.expect(201);
    assert_eq!(r.data()["agent"]["owner_id"], user.id.as_str());
    app.post("/api/v1/agents", None, agent_body("did:agrenting:owned3")).await.expect_error(401, "UNAUTHORIZED");
    app.post("/api/v1/agents", Some(key), agent_body("did:agrenting:owned3")).await.expect_error(403, "FORBIDDEN");
}

both_engines!(registering_without_a_key_makes_an_autonomous_agent);
async fn registering_without_a_key_makes_an_autonomous_agent(app: TestApp) {
    let user = app.signup("someone@example.com").await;
    let r = app.post("/api/v1/agents/register", None, agent_body("did:agrenting:free")).await.expect(201);
    assert_eq!(r.data()["agent"]["owner_id"], json!(null));
    assert!(r.data()["api_key"].as_str().unwrap().starts_with("agk_"));
    let mine = app.get("/api/v1/accounts/me/agents", Some(&user.key)).await.expect(200);
    assert_eq!(mine.data().as_array().unwrap().len(), 0, "in nobody's dashboard");
    // It is in the marketplace, and its key works.
    let listed = app.get("/api/v1/agents", None).await.expect(200);
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
}

both_engines!(bad_credentials_on_register_never_fall_back_to_anonymous);
async fn bad_credentials_on_register_never_fall_back_to_anonymous(app: TestApp) {
    let user = app.signup("cred@example.com").await;
    let wrong = format!("ap_{}", "x".repeat(40));
    app.post("/api/v1/agents/register", Some(&wrong), agent_body("did:t:a")).await.expect_error(401, "UNAUTHORIZED");
    app.post("/api/v1/agents/register", Some("garbage"), agent_body("did:t:a")).await.expect_error(401, "UNAUTHORIZED");
    let req = app.client.post(app.url("/api/v1/agents/register")).bearer_auth(&wrong).json(&agent_body("did:t:a"));
    app.send(req).await.expect_error(401, "UNAUTHORIZED");

    let created = app.post("/api/v1/api-keys", Some(&user.key), json!({"name": "gone"})).await.expect(201);
    let gone = created.data()["api_key"].as_str().unwrap().to_string();
    app.delete(&format!("/api/v1/api-keys/{}", created.data()["key"]["id"].as_str().unwrap()), Some(&user.key))
        .await
        .expect(200);
    app.post("/api/v1/agents/register", Some(&gone), agent_body("did:t:a")).await.expect_error(401, "UNAUTHORIZED");

    let agent = app.register_agent(Some(&user.key), "did:t:real", json!({})).await;
    app.post("/api/v1/agents/register", Some(&agent.key), agent_body("did:t:a")).await.expect_error(403, "FORBIDDEN");
    let session = app.post("/api/v1/auth/authenticate", Some(&user.key), json!({})).await.expect(200);
    let token = session.data()["token"].as_str().unwrap();
    app.post("/api/v1/agents/register", Some(token), agent_body("did:t:a")).await.expect_error(403, "FORBIDDEN");

    // None of those created anything: did:t:a is still free, and only did:t:real exists.
    let listed = app.get("/api/v1/agents", None).await.expect(200);
    assert_eq!(listed.body["meta"]["pagination"]["total_count"], 1);
    app.post("/api/v1/agents/register", None, agent_body("did:t:a")).await.expect(201);
}

both_engines!(profiles_resolve_by_uuid_and_percent_encoded_did);
async fn profiles_resolve_by_uuid_and_percent_encoded_did(app: TestApp) {
    let agent = app
        .register_agent(None, "did:key:z6Mk.a_b-c:d", json!({"metadata": {"callback_url": "https://hooks.example.com/x", "ai_model": "m1", "api_token": "s3cret"}}))
        .await;
    let by_id = app.get(&format!("/api/v1/agents/{}", agent.id), None).await.expect(200);
    let by_did = app.get(&format!("/api/v1/agents/{}", enc(&agent.did)), None).await.expect(200);
    assert_eq!(by_id.data()["id"], by_did.data()["id"]);
    assert_eq!(by_did.data()["did"], agent.did.as_str());
    // Public reads hide private metadata; the agent itself sees everything.
    assert_eq!(by_id.data()["metadata"], json!({"ai_model": "m1"}));
    let own = app.get(&format!("/api/v1/agents/{}", agent.id), Some(&agent.key)).await.expect(200);
    assert_eq!(own.data()["metadata"]["api_token"], "s3cret");
    assert_eq!(own.data()["availability_status"], "available");
    app.get("/api/v1/agents/did%3Anope%3Ax", None).await.expect_error(404, "NOT_FOUND");
}

both_engines!(duplicate_dids_are_409_and_leave_nothing_behind);
async fn duplicate_dids_are_409_and_leave_nothing_behind(app: TestApp) {
    let user = app.signup("dup@example.com").await;
    app.register_agent(None, "did:agrenting:same", json!({})).await;
    let r = app
        .post("/api/v1/agents/register", Some(&user.key), agent_body("did:agrenting:same"))
        .await
        .expect_error(409, "CONFLICT");
    assert_eq!(r.error_fields(), ["did"]);
    let mine = app.get("/api/v1/accounts/me/agents", Some(&user.key)).await.expect(200);
    assert!(mine.data().as_array().unwrap().is_empty());
    let me = app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
    assert_eq!(me.data()["agent_count"], 0);
}

both_engines!(owners_and_agents_update_and_others_cannot);
async fn owners_and_agents_update_and_others_cannot(app: TestApp) {
    let user = app.signup("upd@example.com").await;
    let other = app.signup("other@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:upd", json!({})).await;
    let path = format!("/api/v1/agents/{}", agent.id);

    let r = app
        .patch(&path, Some(&user.key), json!({"agent": {"description": "Reviews Rust", "capabilities": ["rust", "Code-Review"], "base_price": "12.5"}}))
        .await
        .expect(200);
    assert_eq!(r.data()["description"], "Reviews Rust");
    assert_eq!(r.data()["capabilities"], json!(["rust", "code-review"]));
    assert_eq!(r.data()["base_price"], "12.50");
    assert_eq!(r.data()["name"], "Agent did:t:upd", "untouched fields stay");

    let put =
        app.call(reqwest::Method::PUT, &path, Some(&agent.key), Some(json!({"name": "Renamed"}))).await.expect(200);
    assert_eq!(put.data()["name"], "Renamed");

    app.patch(&path, Some(&other.key), json!({"name": "Hijack"})).await.expect_error(403, "FORBIDDEN");
    app.patch(&path, None, json!({"name": "Hijack"})).await.expect_error(401, "UNAUTHORIZED");
    let bad = app
        .patch(&path, Some(&user.key), json!({"status": "deleted", "base_price": "1e3", "did": "did:t:other"}))
        .await;
    let bad = bad.expect_error(422, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["base_price", "status"]);
    app.patch(&path, Some(&user.key), json!({"did": "did:t:other"})).await.expect_error(422, "VALIDATION_ERROR");
    let now = app.get(&path, None).await.expect(200);
    assert_eq!(now.data()["name"], "Renamed", "failed updates changed nothing");
    assert_eq!(now.data()["did"], "did:t:upd");
}

both_engines!(draft_agents_are_hidden_from_everyone_but_owner_and_self);
async fn draft_agents_are_hidden_from_everyone_but_owner_and_self(app: TestApp) {
    let user = app.signup("draft@example.com").await;
    let other = app.signup("stranger@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:draft", json!({})).await;
    let path = format!("/api/v1/agents/{}", agent.id);
    let r = app.patch(&path, Some(&user.key), json!({"status": "draft"})).await.expect(200);
    assert_eq!(r.data()["status"], "draft");

    let listed = app.get("/api/v1/agents", None).await.expect(200);
    assert!(listed.data().as_array().unwrap().is_empty());
    let found = app.get("/api/v1/agents/discover?", None).await.expect(200);
    assert!(found.data().as_array().unwrap().is_empty());
    let caps = app.get("/api/v1/capabilities", None).await.expect(200);
    assert!(caps.data().as_array().unwrap().is_empty());
    app.get(&path, None).await.expect_error(404, "NOT_FOUND");
    app.get(&path, Some(&other.key)).await.expect_error(404, "NOT_FOUND");
    app.get(&path, Some(&user.key)).await.expect(200);
    app.get(&path, Some(&agent.key)).await.expect(200);
    let mine = app.get("/api/v1/accounts/me/agents", Some(&user.key)).await.expect(200);
    assert_eq!(mine.data()[0]["status"], "draft", "drafts stay in the owner's list");

    app.patch(&path, Some(&agent.key), json!({"status": "active"})).await.expect(200);
    let listed = app.get("/api/v1/agents", None).await.expect(200);
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
}

both_engines!(deleting_an_agent_revokes_its_keys);
async fn deleting_an_agent_revokes_its_keys(app: TestApp) {
    let user = app.signup("del@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:del", json!({})).await;
    let other = app.signup("nodel@example.com").await;
    let path = format!("/api/v1/agents/{}", agent.id);
    app.delete(&path, Some(&other.key)).await.expect_error(403, "FORBIDDEN");
    let r = app.delete(&path, Some(&user.key)).await.expect(200);
    assert_eq!(r.data()["status"], "deleted");
    app.get(&path, None).await.expect_error(404, "NOT_FOUND");
    app.get(&path, Some(&user.key)).await.expect_error(404, "NOT_FOUND");
    app.get("/api/v1/agents", Some(&agent.key)).await.expect_error(401, "UNAUTHORIZED");
    let mine = app.get("/api/v1/accounts/me/agents", Some(&user.key)).await.expect(200);
    assert!(mine.data().as_array().unwrap().is_empty());
    // The DID stays taken.
    app.post("/api/v1/agents/register", None, agent_body("did:t:del")).await.expect_error(409, "CONFLICT");
}

both_engines!(agents_hold_several_keys_and_revoke_them_one_by_one);
async fn agents_hold_several_keys_and_revoke_them_one_by_one(app: TestApp) {
    let user = app.signup("creds@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:creds", json!({})).await;
    let path = format!("/api/v1/agents/{}/credentials", enc(&agent.did));
    let second = app.post(&path, Some(&agent.key), json!({"name": "worker-2"})).await.expect(201);
    let second_key = second.data()["api_key"].as_str().unwrap().to_string();
    assert!(second_key.starts_with("agk_"));
    let third = app.post(&path, Some(&user.key), json!({})).await.expect(201);
    let list = app.get(&path, Some(&user.key)).await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 3);
    assert!(!list.text.contains(&second_key) && !list.text.contains(&agent.key));

    let other = app.signup("x@example.com").await;
    app.get(&path, Some(&other.key)).await.expect_error(403, "FORBIDDEN");
    app.post(&path, Some(&other.key), json!({})).await.expect_error(403, "FORBIDDEN");

    let id = second.data()["key"]["id"].as_str().unwrap();
    app.delete(&format!("{path}/{id}"), Some(&agent.key)).await.expect(200);
    app.get("/api/v1/agents", Some(&second_key)).await.expect_error(401, "UNAUTHORIZED");
    app.get("/api/v1/agents", Some(&agent.key)).await.expect(200);
    app.get("/api/v1/agents", Some(third.data()["api_key"].as_str().unwrap())).await.expect(200);
    app.delete(&format!("{path}/00000000-0000-0000-0000-000000000000"), Some(&agent.key))
        .await
        .expect_error(404, "NOT_FOUND");
}

both_engines!(x_agent_id_acts_as_an_owned_agent_only);
async fn x_agent_id_acts_as_an_owned_agent_only(app: TestApp) {
    let user = app.signup("actas@example.com").await;
    let other = app.signup("notmine@example.com").await;
    let mine = app.register_agent(Some(&user.key), "did:t:mine", json!({})).await;
    let theirs = app.register_agent(Some(&other.key), "did:t:theirs", json!({})).await;
    let autonomous = app.register_agent(None, "did:t:auto", json!({})).await;

    // Acting as my agent: its credentials are reachable as the agent itself.
    let req = app
        .client
        .get(app.url(&format!("/api/v1/agents/{}/credentials", mine.id)))
        .header("x-api-key", &user.key)
        .header("x-agent-id", &mine.did);
    app.send(req).await.expect(200);
    for foreign in [&theirs.id, &autonomous.id, &"00000000-0000-0000-0000-000000000000".to_string()] {
        let req =
            app.client.get(app.url("/api/v1/agents")).header("x-api-key", &user.key).header("x-agent-id", foreign);
        app.send(req).await.expect_error(403, "FORBIDDEN");
    }
    // An agent key cannot act as another agent.
    let req = app.client.get(app.url("/api/v1/agents")).header("x-api-key", &mine.key).header("x-agent-id", &mine.id);
    app.send(req).await.expect_error(403, "FORBIDDEN");
}

both_engines!(plan_limit_applies_to_owned_registrations_only, |c: &mut agentmarket::Config| c.max_agents_per_user =
    Some(2));
async fn plan_limit_applies_to_owned_registrations_only(app: TestApp) {
    let user = app.signup("limited@example.com").await;
    app.register_agent(Some(&user.key), "did:t:l1", json!({})).await;
    app.register_agent(Some(&user.key), "did:t:l2", json!({})).await;
    app.post("/api/v1/agents/register", Some(&user.key), agent_body("did:t:l3"))
        .await
        .expect_error(403, "PLAN_LIMIT_REACHED");
    app.post("/api/v1/agents", Some(&user.key), agent_body("did:t:l3")).await.expect_error(403, "PLAN_LIMIT_REACHED");
    // Autonomous registrations have no plan.
    for i in 0..3 {
        app.register_agent(None, &format!("did:t:auto{i}"), json!({})).await;
    }
    // Deleting one frees a slot.
    let mine = app.get("/api/v1/accounts/me/agents", Some(&user.key)).await.expect(200);
    let id = mine.data()[0]["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/agents/{id}"), Some(&user.key)).await.expect(200);
    app.register_agent(Some(&user.key), "did:t:l3", json!({})).await;
}

both_engines!(twenty_concurrent_registrations_of_one_did_make_exactly_one_agent);
async fn twenty_concurrent_registrations_of_one_did_make_exactly_one_agent(app: TestApp) {
    let user = app.signup("race@example.com").await;
    let app = std::sync::Arc::new(app);
    let mut handles = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        let key = user.key.clone();
        handles.push(tokio::spawn(async move {
            let key = (i % 2 == 0).then_some(key);
            app.post("/api/v1/agents/register", key.as_deref(), agent_body("did:agrenting:contested")).await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for h in handles {
        let r = h.await.unwrap();
        match r.status {
            201 => created += 1,
            409 => {
                assert_eq!(r.code(), "CONFLICT");
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!((created, conflicts), (1, 19));
    let listed = app.get("/api/v1/agents", None).await.expect(200);
    assert_eq!(listed.body["meta"]["pagination"]["total_count"], 1);
}

both_engines!(agents_with_unsettled_tasks_cannot_be_deleted);
async fn agents_with_unsettled_tasks_cannot_be_deleted(app: TestApp) {
    let client = app.signup("c@example.com").await;
    let owner = app.signup("o@example.com").await;
    let agent = app.register_agent(Some(&owner.key), "did:t:busy", json!({})).await;
    app.fund(&client.key, "10").await;
    let t = app.task(&client.key, &agent, json!({"payment_type": "balance"})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/agents/{}", agent.id);
    app.delete(&path, Some(&owner.key)).await.expect_error(409, "CONFLICT");
    app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&agent.key), json!({"output": "ok"})).await.expect(200);
    app.delete(&path, Some(&owner.key)).await.expect_error(409, "CONFLICT");
    app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&client.key), json!({})).await.expect(200);
    app.delete(&path, Some(&owner.key)).await.expect(200);
}
