//! Who may call what, from the one route table: every guarded operation refuses a key without
//! scopes, and the routes that once ignored their scope now enforce it.

use serde_json::json;

use agentmarket::http::endpoint::Access;

use crate::both_engines;
use crate::support::TestApp;

fn concrete(path: &str) -> String {
    let id = "0192f000-0000-7000-8000-000000000000";
    path.replace("{id_or_did}", id).replace("{id}", id).replace("{key_id}", id).replace("{did}", id)
}

both_engines!(every_guarded_operation_refuses_a_key_without_scopes);
async fn every_guarded_operation_refuses_a_key_without_scopes(app: TestApp) {
    let user = app.signup("noscope@example.com").await;
    let created =
        app.post("/api/v1/api-keys", Some(&user.key), json!({"name": "nothing", "scopes": []})).await.expect(201);
    assert_eq!(created.data()["key"]["scopes"], json!([]));
    let key = created.data()["api_key"].as_str().unwrap().to_string();
    let table = agentmarket::routes::table();
    let mut guarded = 0;
    for endpoint in &table {
        let path = concrete(&endpoint.path);
        let r = app.call(endpoint.method.clone(), &path, Some(&key), Some(json!({}))).await;
        match endpoint.access {
            Access::Scoped(_) | Access::PublicOrScoped(_) | Access::AdminOnly => {
                guarded += 1;
                let r = r.expect_error(403, "FORBIDDEN");
                assert!(r.text.contains("scope") || r.text.contains("administrators"), "{path}: {}", r.text);
            }
            // Public operations do not look at scopes; any credential may exchange itself for a
            // session of the same (empty) rights or end its own sessions.
            Access::Public | Access::Credential => {
                assert_ne!(r.status, 403, "{} {path} needs no scope: {}", endpoint.method, r.text);
            }
        }
    }
    assert!(guarded >= 70, "the table guards most operations ({guarded})");
    let credential_only: Vec<&str> =
        table.iter().filter(|e| e.access == Access::Credential).map(|e| e.path.as_str()).collect();
    assert_eq!(credential_only, ["/api/v1/auth/authenticate", "/api/v1/auth/logout"]);
    // Nothing happened: the account still has its two keys and no agent.
    assert_eq!(app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200).data().as_array().unwrap().len(), 2);
}

both_engines!(the_routes_that_ignored_their_scope_enforce_it);
async fn the_routes_that_ignored_their_scope_enforce_it(app: TestApp) {
    let client = app.signup("bypass-client@example.com").await;
    let owner = app.signup("bypass-owner@example.com").await;
    let provider = app.register_agent(Some(&owner.key), "did:t:bypass", json!({})).await;
    app.fund(&client.key, "50").await;
    let hired = app
        .post(
            &format!("/api/v1/agents/{}/hire", provider.id),
            Some(&client.key),
            json!({"task_description": "look", "capability_requested": "code-review", "price": "10.00"}),
        )
        .await
        .expect(201);
    let hiring = hired.data()["hiring"]["id"].as_str().unwrap().to_string();
    let artifacts = app
        .post(
            &format!("/api/v1/hirings/{hiring}/artifacts"),
            Some(&provider.key),
            json!({"artifacts": [{"artifact_type": "text", "name": "a.txt", "content": "hi"}]}),
        )
        .await
        .expect(201);
    let artifact = artifacts.data()[0]["id"].as_str().unwrap().to_string();
    let upload = app
        .post("/api/v1/uploads", Some(&client.key), json!({"name": "spec.txt", "content": "aGk=", "task_id": hiring}))
        .await
        .expect(201);
    let upload_id = upload.data()["id"].as_str().unwrap().to_string();
    app.post("/api/v1/webhooks", Some(&client.key), json!({"callback_url": "http://127.0.0.1:9/hook"}))
        .await
        .expect(201);

    let reader = app
        .post("/api/v1/api-keys", Some(&client.key), json!({"name": "reader", "scopes": ["agents:read"]}))
        .await
        .expect(201);
    let reader = reader.data()["api_key"].as_str().unwrap().to_string();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    for (method, path, body) in [
        (get.clone(), format!("/api/v1/tasks/{hiring}/artifacts"), None),
        (get.clone(), format!("/api/v1/hirings/{hiring}/artifacts"), None),
        (get.clone(), format!("/api/v1/artifacts/{artifact}/download"), None),
        (get.clone(), format!("/api/v1/uploads/{upload_id}/download"), None),
        (get.clone(), format!("/api/v1/hirings/{hiring}/messages"), None),
        (post.clone(), format!("/api/v1/hirings/{hiring}/messages"), Some(json!({"content": "hello"}))),
        (post.clone(), "/api/v1/uploads".to_string(), Some(json!({"name": "x", "content": "aGk="}))),
        (get.clone(), "/api/v1/webhooks".to_string(), None),
    ] {
        let r = app.call(method, &path, Some(&reader), body).await;
        r.expect_error(403, "FORBIDDEN");
    }
    // Delivering work needs tasks:write on /hirings/:id/result as on /tasks/:id/complete.
    let agent_owner_reader = app
        .post("/api/v1/api-keys", Some(&owner.key), json!({"name": "r", "scopes": ["tasks:read", "hirings:read"]}))
        .await
        .expect(201);
    let as_agent = agent_owner_reader.data()["api_key"].as_str().unwrap().to_string();
    let result = app
        .client
        .post(app.url(&format!("/api/v1/hirings/{hiring}/result")))
        .header("x-api-key", &as_agent)
        .header("x-agent-id", &provider.id)
        .json(&json!({"output": "done"}));
    app.send(result).await.expect_error(403, "FORBIDDEN");
    let complete = app
        .client
        .post(app.url(&format!("/api/v1/tasks/{hiring}/complete")))
        .header("x-api-key", &as_agent)
        .header("x-agent-id", &provider.id)
        .json(&json!({"output": "done"}));
    app.send(complete).await.expect_error(403, "FORBIDDEN");
    let still = app.get(&format!("/api/v1/hirings/{hiring}"), Some(&client.key)).await.expect(200);
    assert_ne!(still.data()["status"], "completed", "nothing was delivered");
    // With the right scopes the same calls work.
    app.get(&format!("/api/v1/hirings/{hiring}/messages"), Some(&client.key)).await.expect(200);
    app.get("/api/v1/webhooks", Some(&client.key)).await.expect(200);
}
