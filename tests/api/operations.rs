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
    db.migrate().await.expect("re-applying migrations is a no-op");
    assert!(db.migrations_applied().await.unwrap());
    db.close().await;
    app.get("/api/v1/accounts/me", Some(&user.key)).await.expect(200);
}

/// Every endpoint the server routes, as (method, OpenAPI path).
const ENDPOINTS: &[(&str, &str)] = &[
    ("post", "/api/v1/accounts/register"),
    ("get", "/api/v1/accounts/me"),
    ("get", "/api/v1/accounts/me/agents"),
    ("get", "/api/v1/api-keys"),
    ("post", "/api/v1/api-keys"),
    ("delete", "/api/v1/api-keys/{id}"),
    ("post", "/api/v1/api-keys/{id}/roll"),
    ("post", "/api/v1/agents/register"),
    ("get", "/api/v1/agents"),
    ("post", "/api/v1/agents"),
    ("get", "/api/v1/agents/discover"),
    ("post", "/api/v1/agents/assign"),
    ("get", "/api/v1/agents/{id_or_did}"),
    ("patch", "/api/v1/agents/{id_or_did}"),
    ("put", "/api/v1/agents/{id_or_did}"),
    ("delete", "/api/v1/agents/{id_or_did}"),
    ("get", "/api/v1/agents/{id}/credentials"),
    ("post", "/api/v1/agents/{id}/credentials"),
    ("delete", "/api/v1/agents/{id}/credentials/{key_id}"),
    ("get", "/api/v1/capabilities"),
    ("post", "/api/v1/auth/authenticate"),
    ("delete", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/rotate-key"),
    ("get", "/api/v1/health/readiness"),
    ("get", "/api/v1/ledger/balance"),
    ("get", "/api/v1/ledger/transactions"),
    ("post", "/api/v1/ledger/deposit"),
    ("post", "/api/v1/payments/create-intent"),
    ("get", "/api/v1/withdrawal-addresses"),
    ("post", "/api/v1/withdrawal-addresses"),
    ("delete", "/api/v1/withdrawal-addresses/{id}"),
    ("post", "/api/v1/ledger/withdraw"),
    ("get", "/api/v1/fees/quote"),
    ("post", "/api/v1/admin/deposits/{id}/confirm"),
    ("post", "/api/v1/admin/withdrawals/{id}/complete"),
    ("post", "/api/v1/admin/withdrawals/{id}/fail"),
    ("post", "/api/v1/admin/credit"),
    ("get", "/api/v1/admin/ledger/audit"),
    ("post", "/api/v1/tasks"),
    ("get", "/api/v1/tasks"),
    ("get", "/api/v1/tasks/{id}"),
    ("post", "/api/v1/tasks/{id}/payments"),
    ("get", "/api/v1/tasks/{id}/payments"),
    ("post", "/api/v1/tasks/{id}/claim"),
    ("post", "/api/v1/tasks/{id}/progress"),
    ("post", "/api/v1/tasks/{id}/complete"),
    ("put", "/api/v1/tasks/{id}/complete"),
    ("post", "/api/v1/tasks/{id}/fail"),
    ("put", "/api/v1/tasks/{id}/fail"),
    ("post", "/api/v1/tasks/{id}/cancel"),
    ("post", "/api/v1/tasks/{id}/accept"),
    ("post", "/api/v1/tasks/{id}/reassign"),
    ("get", "/api/v1/tasks/{id}/timeline"),
    ("get", "/api/v1/tasks/{id}/attempts"),
    ("post", "/api/v1/tasks/{id}/messages"),
    ("get", "/api/v1/tasks/{id}/messages"),
    ("post", "/api/v1/tasks/{id}/dispute"),
    ("get", "/api/v1/disputes"),
    ("get", "/api/v1/disputes/{id}"),
    ("post", "/api/v1/disputes/{id}/evidence"),
    ("post", "/api/v1/admin/disputes/{id}/resolve"),
    ("post", "/api/v1/agents/{did}/hire"),
    ("get", "/api/v1/hirings"),
    ("get", "/api/v1/hirings/pending"),
    ("get", "/api/v1/hirings/{id}"),
    ("post", "/api/v1/hirings/{id}/cancel"),
    ("post", "/api/v1/hirings/{id}/retry"),
    ("post", "/api/v1/hirings/{id}/messages"),
    ("get", "/api/v1/hirings/{id}/messages"),
    ("post", "/api/v1/hirings/{id}/result"),
    ("post", "/api/v1/hirings/{id}/failure"),
    ("post", "/api/v1/tasks/{id}/artifacts"),
    ("get", "/api/v1/tasks/{id}/artifacts"),
    ("get", "/api/v1/artifacts/{id}/download"),
    ("post", "/api/v1/uploads"),
    ("get", "/api/v1/uploads/{id}/download"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks"),
    ("delete", "/api/v1/webhooks/{id}"),
];

both_engines!(the_openapi_document_covers_every_endpoint);
async fn the_openapi_document_covers_every_endpoint(app: TestApp) {
    let spec = app.get("/api/v1/openapi.json", None).await.expect(200);
    assert!(spec.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec.body["paths"].as_object().unwrap();
    for (method, path) in ENDPOINTS {
        assert!(paths.get(*path).and_then(|p| p.get(*method)).is_some(), "{method} {path} is documented");
        // ...and actually routed (anything but ROUTE_NOT_FOUND).
        let concrete =
            path.replace("{id_or_did}", "x").replace("{id}", "x").replace("{key_id}", "y").replace("{did}", "x");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let r = app.call(m, &concrete, None, Some(json!({}))).await;
        assert_ne!(r.code(), "ROUTE_NOT_FOUND", "{method} {path} is routed");
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, ENDPOINTS.len(), "no undocumented extras and no missing ones");
    assert!(spec.body["components"]["schemas"]["Agent"].is_object());
}
