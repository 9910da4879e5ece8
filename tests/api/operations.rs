//! Health, readiness, metrics, the OpenAPI document, and migrations re-applying as a no-op.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(health_readiness_and_metrics_answer);
async fn health_readiness_and_metrics_answer(app: TestApp) {
    let live = app.get("/healthz", None).await.expect(200);
    assert_eq!(live.data()["status"], "ok");
    let ready = app.get("/api/v1/health/readiness", None).await.expect(200);
    assert_eq!(ready.data()["status"], "ready");
    assert_eq!(ready.data()["migrations"], "applied");
    app.get("/api/v1/agents", None).await.expect(200);
    let metrics = app.get("/metrics", None).await.expect(200);
    assert!(metrics.text.contains("agentmarket_http_requests_total"), "{}", metrics.text);
    assert!(metrics.text.contains("route=\"/api/v1/agents\""), "routes are labelled by template");
}

both_engines!(migrations_reapply_as_a_no_op);
async fn migrations_reapply_as_a_no_op(app: TestApp) {
    let user = app.signup("migrate@example.com").await;
    let db = agentmarket::db::Db::connect(&app.database_url, 1).await.unwrap();
    agentmarket::migrate(&db).await.expect("re-applying migrations is a no-op");
    assert!(db.migrations_applied().await.unwrap());
    db.close().await;
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
}

both_engines!(the_database_refuses_task_states_the_engine_does_not_know);
async fn the_database_refuses_task_states_the_engine_does_not_know(app: TestApp) {
    use agentmarket::tasks::model::{PaymentStatus, Status};
    let client = app.signup("c@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    let t = app.task(&client.key, &provider, json!({})).await.expect(201);
    let id = t.data()["id"].as_str().unwrap().to_string();
    let db = agentmarket::db::Db::connect(&app.database_url, 1).await.unwrap();
    let set = |column: &'static str, value: &'static str| {
        let (db, id) = (db.clone(), id.clone());
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE tasks SET {column} = $1 WHERE id = $2")))
                .bind(value)
                .bind(&id)
                .execute(db.pool())
                .await
        }
    };
    for status in Status::ALL {
        set("status", status.as_str()).await.unwrap_or_else(|e| panic!("{status} is a state: {e}"));
    }
    for payment in PaymentStatus::ALL {
        set("payment_status", payment.as_str()).await.unwrap_or_else(|e| panic!("{payment} is a state: {e}"));
    }
    assert!(set("status", "done").await.is_err(), "an unknown status is refused");
    assert!(set("payment_status", "paid").await.is_err(), "an unknown payment status is refused");
    let insert = |new_id: &'static str, status: &'static str| {
        let (db, id) = (db.clone(), id.clone());
        async move {
            sqlx::query(
                "INSERT INTO tasks (id, status, payment_status, provider_agent_id, provider_agent_did, capability, input, \
                 price, fee_bps, fee, currency, created_at, updated_at, kind, client_principal) \
                 SELECT $1, $2, 'unpaid', provider_agent_id, provider_agent_did, capability, input, price, fee_bps, \
                 fee, currency, created_at, updated_at, kind, client_principal FROM tasks WHERE id = $3",
            )
            .bind(new_id)
            .bind(status)
            .bind(&id)
            .execute(db.pool())
            .await
        }
    };
    insert("copy-1", "pending").await.expect("a copy with a known status is stored");
    assert!(insert("copy-2", "finished").await.is_err(), "a new row with an unknown status is refused too");
    // Applying the schema again keeps exactly one guard per column.
    agentmarket::migrate(&db).await.unwrap();
    agentmarket::migrate(&db).await.unwrap();
    assert!(set("status", "done").await.is_err());
    db.close().await;
}

both_engines!(the_openapi_document_is_the_route_table);
async fn the_openapi_document_is_the_route_table(app: TestApp) {
    let spec = app.get("/api/v1/openapi.json", None).await.expect(200);
    assert!(spec.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec.body["paths"].as_object().unwrap();
    let table = agentmarket::routes::table();
    for endpoint in &table {
        let method = endpoint.method.as_str().to_ascii_lowercase();
        let path = &endpoint.path;
        let op = paths.get(path).and_then(|p| p.get(&method));
        assert!(op.is_some(), "{method} {path} is documented");
        // ...and actually routed (anything but ROUTE_NOT_FOUND).
        let concrete =
            path.replace("{id_or_did}", "x").replace("{id}", "x").replace("{key_id}", "y").replace("{did}", "x");
        let r = app.call(endpoint.method.clone(), &concrete, None, Some(json!({}))).await;
        assert_ne!(r.code(), "ROUTE_NOT_FOUND", "{method} {path} is routed");
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, table.len(), "no undocumented extras and no missing ones");
    let hiring_artifacts = &paths["/api/v1/hirings/{id}/artifacts"];
    assert!(hiring_artifacts.get("get").is_some() && hiring_artifacts.get("post").is_some());
    assert!(spec.body["components"]["schemas"]["Agent"].is_object());
    // Every success body is inside the envelope, every error is the error envelope.
    let me = &paths["/api/v1/accounts/me"]["get"]["responses"];
    assert_eq!(me["200"]["content"]["application/json"]["schema"]["required"], json!(["data", "meta"]));
    assert_eq!(me["401"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorEnvelope");
    assert_eq!(paths["/api/v1/accounts/me"]["get"]["x-required-scopes"], json!(["account:read"]));
}
