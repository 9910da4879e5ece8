//! User API keys: create, list, roll, revoke, scopes, expiry, caps, last use.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(keys_are_shown_once_and_listed_without_secrets);
async fn keys_are_shown_once_and_listed_without_secrets(app: TestApp) {
    let user = app.signup("keys@example.com").await;
    let ci = app.post("/api/v1/api-keys", Some(&user.key), json!({"name": "CI/CD"})).await.expect(201);
    let ci_key = ci.data()["api_key"].as_str().unwrap().to_string();
    assert!(ci_key.starts_with("ap_"));
    assert_eq!(ci.data()["key"]["name"], "CI/CD");
    assert_eq!(ci.data()["key"]["prefix"], format!("{}…", &ci_key[..7]));
    app.post("/api/v1/api-keys", Some(&ci_key), json!({"name": "Production"})).await.expect(201);

    let list = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200);
    let names: Vec<&str> = list.data().as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Production", "CI/CD", "default"], "newest first");
    assert!(!list.text.contains(&ci_key) && !list.text.contains(&user.key), "no secret in a list");
    assert!(list.data().as_array().unwrap().iter().all(|k| k.get("api_key").is_none() && k.get("key_hash").is_none()));
}

both_engines!(a_revoked_key_is_refused_at_once);
async fn a_revoked_key_is_refused_at_once(app: TestApp) {
    let user = app.signup("revoke@example.com").await;
    let created = app.post("/api/v1/api-keys", Some(&user.key), json!({"name": "temp"})).await.expect(201);
    let (id, key) = (created.data()["key"]["id"].as_str().unwrap(), created.data()["api_key"].as_str().unwrap());
    app.get("/api/v1/accounts/me", Some(key)).await.expect(200);
    let revoked = app.delete(&format!("/api/v1/api-keys/{id}"), Some(&user.key)).await.expect(200);
    assert!(revoked.data()["revoked_at"].is_string());
    app.get("/api/v1/accounts/me", Some(key)).await.expect_error(401, "UNAUTHORIZED");
    // Public endpoints refuse it too: a bad key never falls back to anonymous.
    app.get("/api/v1/agents", Some(key)).await.expect_error(401, "UNAUTHORIZED");
    // Another user cannot see or revoke my keys.
    let other = app.signup("other@example.com").await;
    let mine = app.get("/api/v1/api-keys", Some(&user.key)).await;
    let default_id = mine.data().as_array().unwrap().iter().find(|k| k["name"] == "default").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.delete(&format!("/api/v1/api-keys/{default_id}"), Some(&other.key)).await.expect_error(404, "NOT_FOUND");
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
}

both_engines!(rolling_replaces_the_secret_with_an_optional_grace_period);
async fn rolling_replaces_the_secret_with_an_optional_grace_period(app: TestApp) {
    let user = app.signup("roll@example.com").await;
    let created = app
        .post(
            "/api/v1/api-keys",
            Some(&user.key),
            json!({"name": "bot", "scopes": ["agents:read"], "max_price_per_hire": "5"}),
        )
        .await
        .expect(201);
    let (id, old) = (
        created.data()["key"]["id"].as_str().unwrap().to_string(),
        created.data()["api_key"].as_str().unwrap().to_string(),
    );

    let rolled = app
        .post(&format!("/api/v1/api-keys/{id}/roll"), Some(&user.key), json!({"expires_in_seconds": 3600}))
        .await
        .expect(201);
    let new = rolled.data()["api_key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rolled.data()["key"]["name"], "bot");
    assert_eq!(rolled.data()["key"]["scopes"], json!(["agents:read"]));
    assert_eq!(rolled.data()["key"]["max_price_per_hire"], "5.00");
    app.get("/api/v1/agents", Some(&old)).await.expect(200);
    app.get("/api/v1/agents", Some(&new)).await.expect(200);
    app.clock.advance_secs(3601);
    app.get("/api/v1/agents", Some(&old)).await.expect_error(401, "UNAUTHORIZED");
    app.get("/api/v1/agents", Some(&new)).await.expect(200);

    // Default grace 0: the old key stops at once.
    let new_id = rolled.data()["key"]["id"].as_str().unwrap();
    let again = app.post(&format!("/api/v1/api-keys/{new_id}/roll"), Some(&user.key), json!({})).await.expect(201);
    app.get("/api/v1/agents", Some(&new)).await.expect_error(401, "UNAUTHORIZED");
    app.get("/api/v1/agents", Some(again.data()["api_key"].as_str().unwrap())).await.expect(200);
    app.post(&format!("/api/v1/api-keys/{new_id}/roll"), Some(&user.key), json!({}))
        .await
        .expect_error(409, "CONFLICT");
    app.post(&format!("/api/v1/api-keys/{id}/roll"), Some(&user.key), json!({"expires_in_seconds": 604801}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
}

both_engines!(key_requests_are_validated_field_by_field);
async fn key_requests_are_validated_field_by_field(app: TestApp) {
    let user = app.signup("validate@example.com").await;
    let r = app
        .post(
            "/api/v1/api-keys",
            Some(&user.key),
            json!({"name": "", "scopes": ["agents:read", "root"], "expires_at": "2000-01-01T00:00:00Z", "max_price_per_hire": "-1"}),
        )
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["expires_at", "max_price_per_hire", "name", "scopes"]);
    let list = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 1, "nothing was created");
}

both_engines!(scoped_keys_get_403_outside_their_scopes);
async fn scoped_keys_get_403_outside_their_scopes(app: TestApp) {
    let user = app.signup("scopes@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:test:scoped", json!({})).await;
    let reader = app
        .post("/api/v1/api-keys", Some(&user.key), json!({"name": "reader", "scopes": ["agents:read"]}))
        .await
        .expect(201);
    let reader = reader.data()["api_key"].as_str().unwrap();
    app.get(&format!("/api/v1/agents/{}", agent.id), Some(reader)).await.expect(200);
    app.get("/api/v1/accounts/me/agents", Some(reader)).await.expect(200);
    let denied = app.get("/api/v1/api-keys", Some(reader)).await.expect_error(403, "FORBIDDEN");
    assert!(denied.body["errors"][0]["message"].as_str().unwrap().contains("account:read"));
    app.post(
        "/api/v1/agents/register",
        Some(reader),
        json!({"agent": {"name": "x", "did": "did:test:no", "capabilities": ["a"], "pricing_model": "fixed"}}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    app.patch(&format!("/api/v1/agents/{}", agent.id), Some(reader), json!({"status": "draft"}))
        .await
        .expect_error(403, "FORBIDDEN");

    // A scoped key cannot mint a broader key.
    let writer = app
        .post(
            "/api/v1/api-keys",
            Some(&user.key),
            json!({"name": "writer", "scopes": ["account:write", "agents:read"], "max_price_per_hire": "5"}),
        )
        .await
        .expect(201);
    let writer = writer.data()["api_key"].as_str().unwrap();
    app.post("/api/v1/api-keys", Some(writer), json!({"name": "escalate"})).await.expect_error(403, "FORBIDDEN");
    app.post(
        "/api/v1/api-keys",
        Some(writer),
        json!({"name": "bigger cap", "scopes": ["agents:read"], "max_price_per_hire": "6"}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    app.post(
        "/api/v1/api-keys",
        Some(writer),
        json!({"name": "narrower", "scopes": ["agents:read"], "max_price_per_hire": "5"}),
    )
    .await
    .expect(201);
}

both_engines!(expired_keys_are_401);
async fn expired_keys_are_401(app: TestApp) {
    let user = app.signup("expiry@example.com").await;
    let soon = time::OffsetDateTime::from_unix_timestamp(app.clock_secs() + 60).unwrap();
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let created =
        app.post("/api/v1/api-keys", Some(&user.key), json!({"name": "short", "expires_at": soon})).await.expect(201);
    let key = created.data()["api_key"].as_str().unwrap();
    app.get("/api/v1/accounts/me", Some(key)).await.expect(200);
    app.clock.advance_secs(61);
    app.get("/api/v1/accounts/me", Some(key)).await.expect_error(401, "UNAUTHORIZED");
    app.post("/api/v1/agents/register", Some(key), json!({})).await.expect_error(401, "UNAUTHORIZED");
}

both_engines!(last_used_at_is_written_at_most_once_a_minute);
async fn last_used_at_is_written_at_most_once_a_minute(app: TestApp) {
    let user = app.signup("touch@example.com").await;
    let last_used = |r: &crate::support::Resp| {
        r.data().as_array().unwrap().iter().find(|k| k["name"] == "default").unwrap()["last_used_at"].clone()
    };
    let first = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200);
    let t1 = last_used(&first);
    assert!(t1.is_string(), "the first use is recorded");
    app.clock.advance_secs(30);
    let second = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200);
    assert_eq!(last_used(&second), t1, "not rewritten within a minute");
    app.clock.advance_secs(31);
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
    let third = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200);
    assert_ne!(last_used(&third), t1, "rewritten after a minute");
}

/// Creates a key with `body` using `parent`; returns (id, secret).
async fn make_key(app: &TestApp, parent: &str, body: serde_json::Value) -> (String, String) {
    let r = app.post("/api/v1/api-keys", Some(parent), body).await.expect(201);
    (r.data()["key"]["id"].as_str().unwrap().to_string(), r.data()["api_key"].as_str().unwrap().to_string())
}

fn default_key_id(list: &crate::support::Resp) -> String {
    let keys = list.data().as_array().unwrap();
    keys.iter().find(|k| k["name"] == "default").unwrap()["id"].as_str().unwrap().to_string()
}

both_engines!(rolling_or_revoking_a_stronger_key_is_refused);
async fn rolling_or_revoking_a_stronger_key_is_refused(app: TestApp) {
    let user = app.signup("escalate@example.com").await;
    let full_id = default_key_id(&app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200));
    let (_, writer) = make_key(&app, &user.key, json!({"name": "writer", "scopes": ["account:write"]})).await;
    let (_, capped) = make_key(&app, &user.key, json!({"name": "capped", "max_price_per_hire": "1.00"})).await;
    let before = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200).data().as_array().unwrap().len();

    // A key scoped to account:write cannot roll (or revoke) the full-access key...
    let roll = format!("/api/v1/api-keys/{full_id}/roll");
    let refused =
        app.post(&roll, Some(&writer), json!({"expires_in_seconds": 604800})).await.expect_error(403, "FORBIDDEN");
    assert!(refused.data().is_null() && !refused.text.contains("ap_"), "no secret in the refusal");
    app.delete(&format!("/api/v1/api-keys/{full_id}"), Some(&writer)).await.expect_error(403, "FORBIDDEN");
    // ...nor can a capped key roll an uncapped one.
    app.post(&roll, Some(&capped), json!({"expires_in_seconds": 604800})).await.expect_error(403, "FORBIDDEN");
    // Nothing was minted and the full key still works (no grace period started).
    let after = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200);
    assert_eq!(after.data().as_array().unwrap().len(), before, "no key was created");
    assert!(after.data().as_array().unwrap().iter().all(|k| k["expires_at"].is_null()), "no grace period was set");
    app.clock.advance_secs(604_801);
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);

    // Keys no stronger than the caller can be rolled and revoked by it.
    let (weaker_id, _) =
        make_key(&app, &user.key, json!({"name": "weaker", "scopes": ["account:write"], "max_price_per_hire": "1"}))
            .await;
    let rolled = app.post(&format!("/api/v1/api-keys/{weaker_id}/roll"), Some(&capped), json!({})).await.expect(201);
    assert_eq!(rolled.data()["key"]["max_price_per_hire"], "1.00");
    let rolled_id = rolled.data()["key"]["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/api-keys/{rolled_id}"), Some(&writer)).await.expect(200);
}

both_engines!(a_session_token_mints_no_permanent_credential);
async fn a_session_token_mints_no_permanent_credential(app: TestApp) {
    let user = app.signup("session-mint@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:session-mint", json!({})).await;
    let session = |key: String| {
        let app = &app;
        async move {
            let r = app.post("/api/v1/auth/authenticate", Some(&key), json!({})).await.expect(200);
            r.data()["token"].as_str().unwrap().to_string()
        }
    };
    let user_session = session(user.key.clone()).await;
    let agent_session = session(agent.key.clone()).await;
    let body =
        json!({"agent": {"name": "n", "did": "did:t:from-session", "capabilities": ["x"], "pricing_model": "fixed"}});
    for (token, method, path, body) in [
        (&user_session, "POST", "/api/v1/auth/rotate-key".to_string(), json!({})),
        (&agent_session, "POST", "/api/v1/auth/rotate-key".to_string(), json!({})),
        (&user_session, "POST", format!("/api/v1/agents/{}/credentials", agent.id), json!({})),
        (&agent_session, "POST", format!("/api/v1/agents/{}/credentials", agent.id), json!({})),
        (&user_session, "POST", "/api/v1/api-keys".to_string(), json!({"name": "from a session"})),
        (&user_session, "POST", "/api/v1/agents".to_string(), body.clone()),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app.call(m, &path, Some(token), Some(body)).await;
        let r = r.expect_error(403, "FORBIDDEN");
        assert!(!r.text.contains("ap_") && !r.text.contains("agk_"), "{path}: no secret");
    }
    // The keys themselves still work, and nothing was minted.
    assert_eq!(app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200).data().as_array().unwrap().len(), 1);
    let creds = app.get(&format!("/api/v1/agents/{}/credentials", agent.id), Some(&agent.key)).await.expect(200);
    assert_eq!(creds.data().as_array().unwrap().len(), 1);
    app.get("/api/v1/agents/did%3At%3Afrom-session", None).await.expect_error(404, "NOT_FOUND");
    app.post("/api/v1/auth/rotate-key", Some(&agent.key), json!({})).await.expect(201);
}

both_engines!(agent_keys_are_minted_only_by_full_rights_credentials);
async fn agent_keys_are_minted_only_by_full_rights_credentials(app: TestApp) {
    let user = app.signup("agent-mint@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:agent-mint", json!({})).await;
    // An agent key has every right over its agent (its wallet included): a key that may only
    // write agents must not be able to mint one, nor revoke one.
    let (_, writer) = make_key(&app, &user.key, json!({"name": "w", "scopes": ["agents:write", "agents:read"]})).await;
    let path = format!("/api/v1/agents/{}/credentials", agent.id);
    app.post(&path, Some(&writer), json!({})).await.expect_error(403, "FORBIDDEN");
    let creds = app.get(&path, Some(&writer)).await.expect(200);
    let key_id = creds.data()[0]["id"].as_str().unwrap().to_string();
    app.delete(&format!("{path}/{key_id}"), Some(&writer)).await.expect_error(403, "FORBIDDEN");
    let (_, capped) = make_key(&app, &user.key, json!({"name": "c", "max_price_per_hire": "3"})).await;
    app.post(&path, Some(&capped), json!({})).await.expect_error(403, "FORBIDDEN");
    // The owner's full key and the agent itself may.
    app.post(&path, Some(&user.key), json!({})).await.expect(201);
    app.post(&path, Some(&agent.key), json!({})).await.expect(201);
    app.delete(&format!("{path}/{key_id}"), Some(&user.key)).await.expect(200);
}
