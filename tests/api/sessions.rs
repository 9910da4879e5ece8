//! /auth/authenticate, sessions as Bearer tokens, logout, rotate-key, the lockout, and the
//! anonymous registration limit.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(agent_keys_become_sessions_that_work_until_logout);
async fn agent_keys_become_sessions_that_work_until_logout(app: TestApp) {
    let agent = app.register_agent(None, "did:t:sess", json!({})).await;
    let r = app.post("/api/v1/auth/authenticate", Some(&agent.key), json!({})).await.expect(200);
    let token = r.data()["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ast_"));
    assert_eq!(r.data()["session_token"], token.as_str());
    assert_eq!(r.data()["agent"]["id"], agent.id.as_str());
    assert_eq!(r.data()["agent"]["name"], "Agent did:t:sess");
    assert!(r.data()["expires_at"].is_string());

    let path = format!("/api/v1/agents/{}", agent.id);
    let req = app.client.patch(app.url(&path)).bearer_auth(&token).json(&json!({"description": "via session"}));
    app.send(req).await.expect(200);
    // Also accepted in X-API-Key.
    app.patch(&path, Some(&token), json!({"description": "again"})).await.expect(200);

    let req = app.client.delete(app.url("/api/v1/auth/logout")).bearer_auth(&token);
    let out = app.send(req).await.expect(200);
    assert_eq!(out.data()["revoked_sessions"], 1);
    let req = app.client.patch(app.url(&path)).bearer_auth(&token).json(&json!({"description": "after"}));
    app.send(req).await.expect_error(401, "UNAUTHORIZED");
    app.patch(&path, Some(&agent.key), json!({"description": "key still works"})).await.expect(200);
}

both_engines!(user_keys_become_sessions_with_the_keys_scopes);
async fn user_keys_become_sessions_with_the_keys_scopes(app: TestApp) {
    let user = app.signup("sess@example.com").await;
    let r = app.post("/api/v1/auth/authenticate", Some(&user.key), json!({})).await.expect(200);
    assert_eq!(r.data()["user"]["id"], user.id.as_str());
    let token = r.data()["token"].as_str().unwrap().to_string();
    let req = app.client.get(app.url("/api/v1/accounts/me")).bearer_auth(&token);
    app.send(req).await.expect(200);

    let scoped = app
        .post("/api/v1/api-keys", Some(&user.key), json!({"name": "ro", "scopes": ["agents:read"]}))
        .await
        .expect(201);
    let scoped_key = scoped.data()["api_key"].as_str().unwrap();
    let s = app.post("/api/v1/auth/authenticate", Some(scoped_key), json!({})).await.expect(200);
    let scoped_token = s.data()["token"].as_str().unwrap();
    app.get("/api/v1/accounts/me", Some(scoped_token)).await.expect_error(403, "FORBIDDEN");
    // A session cannot mint another session.
    app.post("/api/v1/auth/authenticate", Some(&token), json!({})).await.expect_error(403, "FORBIDDEN");
    // Revoking the key ends its sessions.
    app.delete(&format!("/api/v1/api-keys/{}", scoped.data()["key"]["id"].as_str().unwrap()), Some(&user.key))
        .await
        .expect(200);
    app.get("/api/v1/agents", Some(scoped_token)).await.expect_error(401, "UNAUTHORIZED");
    // Logging out with the key itself ends all of its sessions.
    let second = app.post("/api/v1/auth/authenticate", Some(&user.key), json!({})).await.expect(200);
    let out = app.delete("/api/v1/auth/logout", Some(&user.key)).await.expect(200);
    assert_eq!(out.data()["revoked_sessions"], 2);
    app.get("/api/v1/accounts/me", Some(second.data()["token"].as_str().unwrap()))
        .await
        .expect_error(401, "UNAUTHORIZED");
}

both_engines!(sessions_expire, |c: &mut agentmarket::Config| c.session_ttl_secs = 600);
async fn sessions_expire(app: TestApp) {
    let agent = app.register_agent(None, "did:t:ttl", json!({})).await;
    let r = app.post("/api/v1/auth/authenticate", Some(&agent.key), json!({})).await.expect(200);
    let token = r.data()["token"].as_str().unwrap();
    app.get("/api/v1/agents", Some(token)).await.expect(200);
    app.clock.advance_secs(601);
    app.get("/api/v1/agents", Some(token)).await.expect_error(401, "UNAUTHORIZED");
}

both_engines!(rotate_key_replaces_agent_and_user_keys_at_once);
async fn rotate_key_replaces_agent_and_user_keys_at_once(app: TestApp) {
    let agent = app.register_agent(None, "did:t:rot", json!({})).await;
    let session = app.post("/api/v1/auth/authenticate", Some(&agent.key), json!({})).await.expect(200);
    let r = app.post("/api/v1/auth/rotate-key", Some(&agent.key), json!({})).await.expect(201);
    let new_key = r.data()["api_key"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("agk_"));
    assert_ne!(new_key, agent.key);
    app.get("/api/v1/agents", Some(&agent.key)).await.expect_error(401, "UNAUTHORIZED");
    app.get("/api/v1/agents", Some(session.data()["token"].as_str().unwrap())).await.expect_error(401, "UNAUTHORIZED");
    app.patch(&format!("/api/v1/agents/{}", agent.id), Some(&new_key), json!({"description": "rotated"}))
        .await
        .expect(200);

    let user = app.signup("rot@example.com").await;
    let r = app.post("/api/v1/auth/rotate-key", Some(&user.key), json!({})).await.expect(201);
    let new_user_key = r.data()["api_key"].as_str().unwrap();
    assert!(new_user_key.starts_with("ap_"));
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect_error(401, "UNAUTHORIZED");
    app.get("/api/v1/accounts/me", Some(new_user_key)).await.expect(200);
    app.post("/api/v1/auth/rotate-key", None, json!({})).await.expect_error(401, "UNAUTHORIZED");
}

both_engines!(failed_authentications_lock_the_ip_out_for_five_minutes);
async fn failed_authentications_lock_the_ip_out_for_five_minutes(app: TestApp) {
    let agent = app.register_agent(None, "did:t:lock", json!({})).await;
    let bad = format!("agk_{}", "z".repeat(40));
    for _ in 0..9 {
        app.post("/api/v1/auth/authenticate", Some(&bad), json!({})).await.expect_error(401, "UNAUTHORIZED");
    }
    let tenth = app.post("/api/v1/auth/authenticate", None, json!({})).await.expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(tenth.header("retry-after"), Some("300"));
    // Locked out: even a good key is refused, with the time left.
    app.clock.advance_secs(60);
    let locked = app
        .post("/api/v1/auth/authenticate", Some(&agent.key), json!({}))
        .await
        .expect_error(429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(locked.header("retry-after"), Some("240"));
    // Other endpoints are not affected by the authenticate lockout.
    app.get("/api/v1/agents", Some(&agent.key)).await.expect(200);
    app.clock.advance_secs(241);
    app.post("/api/v1/auth/authenticate", Some(&agent.key), json!({})).await.expect(200);
}

both_engines!(anonymous_registration_is_limited_per_ip, |c: &mut agentmarket::Config| c.register_limit_per_hour = 3);
async fn anonymous_registration_is_limited_per_ip(app: TestApp) {
    for i in 0..3 {
        app.register_agent(None, &format!("did:t:anon{i}"), json!({})).await;
    }
    let body = json!({"name": "x", "did": "did:t:anon3", "capabilities": ["a"], "pricing_model": "fixed"});
    let r = app.post("/api/v1/agents/register", None, body.clone()).await.expect_error(429, "RATE_LIMIT_EXCEEDED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    // Owned registrations are not limited by it.
    let user = app.signup("limitless@example.com").await;
    app.post("/api/v1/agents/register", Some(&user.key), body.clone()).await.expect(201);
    app.clock.advance_secs(3600);
    let body = json!({"name": "x", "did": "did:t:anon4", "capabilities": ["a"], "pricing_model": "fixed"});
    app.post("/api/v1/agents/register", None, body).await.expect(201);
}
