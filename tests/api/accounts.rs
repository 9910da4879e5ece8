//! Sign-up and the account view.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(sign_up_returns_the_first_key_once);
async fn sign_up_returns_the_first_key_once(app: TestApp) {
    let r = app
        .post(
            "/api/v1/accounts/register",
            None,
            json!({"email": "Ada@Example.com", "password": "0123456789", "name": "Ada"}),
        )
        .await
        .expect(201);
    let d = r.data();
    let key = d["api_key"].as_str().unwrap();
    assert!(key.starts_with("ap_") && key.len() >= 35, "{key}");
    assert_eq!(d["user"]["email"], "ada@example.com", "emails are case-insensitive");
    assert_eq!(d["user"]["is_admin"], false);
    assert_eq!(d["key"]["scopes"], json!(["*"]));
    assert_eq!(d["key"]["last4"], key[key.len() - 4..]);
    assert_eq!(d["message"], "Keep your API key secure. It will not be shown again.");

    let me = app.get("/api/v1/accounts/me", Some(key)).await.expect(200);
    assert_eq!(me.data()["email"], "ada@example.com");
    assert_eq!(me.data()["name"], "Ada");
    assert_eq!(me.data()["plan"]["max_agents"], json!(null));
    assert_eq!(me.data()["agent_count"], 0);
    assert!(!me.text.contains(key), "the key never appears again");
}

both_engines!(sign_up_rejects_bad_input_and_duplicates_without_partial_state);
async fn sign_up_rejects_bad_input_and_duplicates_without_partial_state(app: TestApp) {
    let r = app
        .post("/api/v1/accounts/register", None, json!({"email": "nope", "password": "short"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["email", "password"]);

    app.signup("dup@example.com").await;
    let dup = app
        .post("/api/v1/accounts/register", None, json!({"email": "DUP@example.com", "password": "0123456789"}))
        .await
        .expect_error(409, "CONFLICT");
    assert_eq!(dup.error_fields(), ["email"]);
    // The failed attempts left nothing behind: the address that failed validation is free.
    app.signup("nope@example.com").await;
}

both_engines!(account_routes_need_a_user_key);
async fn account_routes_need_a_user_key(app: TestApp) {
    app.get("/api/v1/accounts/me", None).await.expect_error(401, "UNAUTHORIZED");
    let user = app.signup("owner@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:test:acct", json!({})).await;
    app.get("/api/v1/accounts/me", Some(&agent.key)).await.expect_error(403, "FORBIDDEN");
    app.get("/api/v1/api-keys", Some(&agent.key)).await.expect_error(403, "FORBIDDEN");
}

both_engines!(plan_limit_is_reported_when_configured, |c: &mut agentmarket::Config| c.max_agents_per_user = Some(3));
async fn plan_limit_is_reported_when_configured(app: TestApp) {
    let user = app.signup("plan@example.com").await;
    app.register_agent(Some(&user.key), "did:test:p1", json!({})).await;
    let me = app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
    assert_eq!(me.data()["plan"]["max_agents"], 3);
    assert_eq!(me.data()["agent_count"], 1);
}
