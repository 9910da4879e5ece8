//! API.md §0: envelopes, request ids, error codes, body handling, no redirects.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(success_and_error_envelopes_carry_the_request_id);
async fn success_and_error_envelopes_carry_the_request_id(app: TestApp) {
    let ok = app.get("/api/v1/agents", None).await.expect(200);
    assert_eq!(ok.body["meta"]["version"], "1.0");
    let rid = ok.body["meta"]["request_id"].as_str().unwrap();
    assert!(rid.starts_with("req_"));
    assert_eq!(ok.header("x-request-id"), Some(rid));
    assert!(ok.body.get("errors").is_none(), "a 2xx never carries errors");
    assert!(ok.header("content-type").unwrap().starts_with("application/json"));

    let err = app.get("/api/v1/agents/00000000-0000-0000-0000-000000000000", None).await.expect_error(404, "NOT_FOUND");
    let rid = err.body["meta"]["request_id"].as_str().unwrap();
    assert_eq!(err.header("x-request-id"), Some(rid));
    assert_ne!(rid, ok.body["meta"]["request_id"].as_str().unwrap(), "ids are per request");
}

both_engines!(unknown_routes_and_methods_are_route_not_found);
async fn unknown_routes_and_methods_are_route_not_found(app: TestApp) {
    app.get("/api/v1/nothing-here", None).await.expect_error(404, "ROUTE_NOT_FOUND");
    app.get("/elsewhere", None).await.expect_error(404, "ROUTE_NOT_FOUND");
    app.delete("/api/v1/capabilities", None).await.expect_error(404, "ROUTE_NOT_FOUND");
    // No trailing-slash canonicalisation: never a redirect.
    let r = app.get("/api/v1/agents/", None).await;
    assert!(!(300..400).contains(&r.status), "no redirects on /api: got {}", r.status);
}

both_engines!(malformed_and_non_object_json_is_400);
async fn malformed_and_non_object_json_is_400(app: TestApp) {
    let req = app
        .client
        .post(app.url("/api/v1/accounts/register"))
        .header("content-type", "application/json")
        .body("{not json");
    app.send(req).await.expect_error(400, "MALFORMED_JSON");
    let req =
        app.client.post(app.url("/api/v1/accounts/register")).header("content-type", "application/json").body("[1,2]");
    app.send(req).await.expect_error(400, "MALFORMED_JSON");
}

both_engines!(bodies_over_one_mebibyte_are_413);
async fn bodies_over_one_mebibyte_are_413(app: TestApp) {
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    let req =
        app.client.post(app.url("/api/v1/accounts/register")).header("content-type", "application/json").body(big);
    app.send(req).await.expect_error(413, "PAYLOAD_TOO_LARGE");
    // Just under the limit is parsed (and then fails validation, not size).
    let ok_size = format!("{{\"name\":\"{}\"}}", "a".repeat(1000));
    let req =
        app.client.post(app.url("/api/v1/accounts/register")).header("content-type", "application/json").body(ok_size);
    app.send(req).await.expect_error(422, "VALIDATION_ERROR");
}

both_engines!(validation_names_every_bad_field_with_the_wrapper);
async fn validation_names_every_bad_field_with_the_wrapper(app: TestApp) {
    let r = app
        .post(
            "/api/v1/agents/register",
            None,
            json!({"agent": {"name": " ", "did": "not-a-did", "capabilities": ["OK", "bad space"], "pricing_model": "free",
                             "base_price": "1.123456789", "metadata": {"callback_url": "ftp://x"}}}),
        )
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "agent.base_price",
            "agent.capabilities",
            "agent.did",
            "agent.metadata.callback_url",
            "agent.name",
            "agent.pricing_model"
        ]
    );
    // Flat bodies name the bare fields; missing required fields are named too.
    let r = app.post("/api/v1/agents/register", None, json!({})).await.expect_error(422, "VALIDATION_ERROR");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["capabilities", "did", "name", "pricing_model"]);
    // A wrong JSON type names its field.
    let r = app
        .post("/api/v1/agents/register", None, json!({"agent": {"name": 5}}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(r.error_fields(), ["agent.name"]);
    // Nothing was created by any of these.
    let list = app.get("/api/v1/agents", None).await.expect(200);
    assert_eq!(list.body["meta"]["pagination"]["total_count"], 0);
}

both_engines!(an_empty_body_with_a_json_content_type_is_accepted);
async fn an_empty_body_with_a_json_content_type_is_accepted(app: TestApp) {
    let user = app.signup("empty@example.com").await;
    let keys = app.get("/api/v1/api-keys", Some(&user.key)).await.expect(200);
    let id = keys.data()[0]["id"].as_str().unwrap().to_string();
    // Roll takes an optional body; the clients send content-type json with no body at all.
    let req = app
        .client
        .post(app.url(&format!("/api/v1/api-keys/{id}/roll")))
        .header("content-type", "application/json")
        .header("x-api-key", &user.key);
    let r = app.send(req).await.expect(201);
    assert!(r.data()["api_key"].as_str().unwrap().starts_with("ap_"));
}

both_engines!(page_numbers_and_offsets_are_bounded_on_every_list);
async fn page_numbers_and_offsets_are_bounded_on_every_list(app: TestApp) {
    let user = app.signup("pages@example.com").await;
    let huge = "100000000000000000";
    let r =
        app.get(&format!("/api/v1/hirings?page={huge}"), Some(&user.key)).await.expect_error(422, "VALIDATION_ERROR");
    assert_eq!(r.error_fields(), ["page"]);
    for path in ["/api/v1/tasks", "/api/v1/agents", "/api/v1/ledger/transactions", "/api/v1/disputes"] {
        let r = app.get(&format!("{path}?offset={huge}"), Some(&user.key)).await.expect_error(422, "VALIDATION_ERROR");
        assert_eq!(r.error_fields(), ["offset"], "{path}");
        app.get(&format!("{path}?limit=101"), Some(&user.key)).await.expect_error(422, "VALIDATION_ERROR");
        app.get(&format!("{path}?offset=1000000000"), Some(&user.key)).await.expect(200);
    }
    let last = app.get("/api/v1/hirings?page=10000000&limit=100", Some(&user.key)).await.expect(200);
    assert_eq!(last.data()["hirings"], serde_json::json!([]));
}
