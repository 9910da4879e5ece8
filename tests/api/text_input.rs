//! NUL and other control characters are refused at the edge with 422 naming the field — the
//! same answer on SQLite and PostgreSQL (which cannot store NUL at all) — and leave nothing
//! behind. Free text keeps its newlines and tabs.

use serde_json::{Value, json};

use crate::both_engines;
use crate::support::TestApp;

fn assert_refused(r: crate::support::Resp, field: &str) {
    let r = r.expect_error(422, "VALIDATION_ERROR");
    assert!(r.error_fields().iter().any(|f| f == field), "expected {field} in {:?}: {}", r.error_fields(), r.text);
}

both_engines!(control_characters_are_refused_everywhere_with_the_field_named);
async fn control_characters_are_refused_everywhere_with_the_field_named(app: TestApp) {
    let user = app.signup("nul@example.com").await;
    let agent = app.register_agent(Some(&user.key), "did:t:nul", json!({})).await;
    app.fund(&user.key, "20").await;

    // Paths and query strings, with and without a credential.
    for path in ["/api/v1/agents/%00", "/api/v1/agents/did%3At%3A%00x", "/api/v1/tasks/%00", "/api/v1/hirings/%01"] {
        assert_refused(app.get(path, None).await, "path");
        assert_refused(app.get(path, Some(&user.key)).await, "path");
    }
    assert_refused(app.get("/api/v1/agents/discover?capability=%00", None).await, "capability");
    assert_refused(app.get("/api/v1/agents?q=a%1Bb", None).await, "q");
    assert_refused(app.get("/api/v1/ledger/transactions?type=%00", Some(&user.key)).await, "type");
    assert_refused(app.get("/api/v1/agents?cursor=%7F", None).await, "cursor");

    // Bodies: typed fields, wrapped bodies, free-form JSON and object keys.
    let signup = |name: &str| json!({"email": "new@example.com", "password": "correct horse battery", "name": name});
    assert_refused(app.post("/api/v1/accounts/register", None, signup("\u{0}")).await, "name");
    assert_refused(app.post("/api/v1/accounts/register", None, signup("two\nlines")).await, "name");
    let bad_agent = |field: &str, value: Value| {
        let mut a = json!({"name": "n", "did": "did:t:bad", "capabilities": ["x"], "pricing_model": "fixed"});
        a[field] = value;
        json!({"agent": a})
    };
    for (field, value, named) in [
        ("name", json!("a\u{0}b"), "agent.name"),
        ("did", json!("did:t:\u{0}"), "agent.did"),
        ("description", json!("x\u{1}y"), "agent.description"),
        ("capabilities", json!(["ok", "n\u{0}"]), "agent.capabilities[1]"),
        ("metadata", json!({"notes": "\u{0}"}), "agent.metadata.notes"),
        ("metadata", json!({"k\u{0}": 1}), "agent.metadata.(key)"),
        ("base_price", json!("1\u{0}"), "agent.base_price"),
    ] {
        assert_refused(app.post("/api/v1/agents/register", Some(&user.key), bad_agent(field, value)).await, named);
    }
    let hire = json!({"task_description": "do\u{0}it", "capability_requested": "code-review", "price": "10.00"});
    assert_refused(
        app.post(&format!("/api/v1/agents/{}/hire", agent.id), Some(&user.key), hire).await,
        "task_description",
    );
    let task = json!({"provider_agent_id": agent.id, "capability": "code-review", "input": {"prompt": "x\u{0}"}});
    assert_refused(app.post("/api/v1/tasks", Some(&user.key), task).await, "input.prompt");
    let deposit = json!({"amount": "5", "currency": "USD\u{0}", "payment_method": "sandbox"});
    assert_refused(app.post("/api/v1/ledger/deposit", Some(&user.key), deposit).await, "currency");
    let key = json!({"name": "k", "scopes": ["agents:read\u{0}"]});
    assert_refused(app.post("/api/v1/api-keys", Some(&user.key), key).await, "scopes[0]");

    // Nothing was stored by any refused request.
    app.get("/api/v1/agents/did%3At%3Abad", None).await.expect_error(404, "NOT_FOUND");
    assert_eq!(app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200).data().as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/tasks", Some(&user.key)).await.expect(200).data().as_array().unwrap().len(), 0);
    assert_eq!(app.available(&user.key).await, "20.00");
    let login = app.post("/api/v1/accounts/register", None, signup("fine")).await.expect(201);
    assert_eq!(login.data()["user"]["name"], "fine", "the email was not taken by a refused sign-up");

    // Free text keeps newlines and tabs.
    let free = app
        .post(
            "/api/v1/agents/register",
            Some(&user.key),
            json!({"agent": {"name": "Multi", "did": "did:t:multi", "capabilities": ["x"], "pricing_model": "fixed",
                             "description": "line one\nline two\twith a tab", "metadata": {"notes": "a\nb"}}}),
        )
        .await
        .expect(201);
    assert_eq!(free.data()["agent"]["description"], "line one\nline two\twith a tab");

    // The dashboard's pages and forms are behind the same edge.
    assert_refused(app.get("/?capability=%00", None).await, "capability");
    let form = app
        .client
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=x&email=a%00b%40example.com&password=x");
    let r = app.send(form).await;
    assert_eq!(r.status, 422, "{}", r.text);
}
