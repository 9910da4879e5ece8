//! Artifacts on tasks and hirings, downloads for participants only, and uploads.

use base64::Engine;
use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

both_engines!(providers_attach_artifacts_that_participants_download);
async fn providers_attach_artifacts_that_participants_download(app: TestApp) {
    let client = app.signup("c@example.com").await;
    let stranger = app.signup("s@example.com").await;
    let provider = app.register_agent(None, "did:t:p", json!({})).await;
    app.fund(&client.key, "10").await;
    let hire = json!({"task_description": "draw", "capability_requested": "code-review", "price": "10"});
    let h = app.post(&format!("/api/v1/agents/{}/hire", provider.did), Some(&client.key), hire).await.expect(201);
    let id = h.data()["hiring"]["id"].as_str().unwrap().to_string();
    let png = base64::engine::general_purpose::STANDARD.encode([0x89u8, b'P', b'N', b'G', 0, 1, 2]);
    let body = json!({"artifacts": [
        {"artifact_type": "markdown", "name": "review.md", "content": "# LGTM"},
        {"artifact_type": "image", "name": "chart.png", "content": png, "encoding": "base64"},
    ]});
    let r = app.post(&format!("/api/v1/hirings/{id}/artifacts"), Some(&provider.key), body).await.expect(201);
    let items = r.data().as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[1]["size_bytes"].as_i64(), items[1]["content_type"].as_str()), (Some(7), Some("image/png")));
    let listed = app.get(&format!("/api/v1/tasks/{id}/artifacts"), Some(&client.key)).await.expect(200);
    assert_eq!(listed.data().as_array().unwrap().len(), 2);
    let hiring = app.get(&format!("/api/v1/hirings/{id}"), Some(&client.key)).await.expect(200);
    let url = hiring.data()["artifacts"][0]["download_url"].as_str().unwrap().to_string();
    let req = app.client.get(app.url(&url)).header("x-api-key", &client.key);
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/markdown");
    assert_eq!(res.text().await.unwrap(), "# LGTM");
    let image_url = format!("/api/v1/artifacts/{}/download", items[1]["id"].as_str().unwrap());
    let bytes = app
        .client
        .get(app.url(&image_url))
        .header("x-api-key", &provider.key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], &[0x89u8, b'P', b'N', b'G', 0, 1, 2]);
    app.get(&image_url, Some(&stranger.key)).await.expect_error(404, "NOT_FOUND");
    app.get(&image_url, None).await.expect_error(401, "UNAUTHORIZED");

    app.post(
        &format!("/api/v1/tasks/{id}/artifacts"),
        Some(&client.key),
        json!({"artifacts": [{"artifact_type": "text", "name": "x", "content": "y"}]}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    let bad = json!({"artifacts": [{"artifact_type": "video", "name": "", "content": "%%", "encoding": "base64"}]});
    let r = app
        .post(&format!("/api/v1/tasks/{id}/artifacts"), Some(&provider.key), bad)
        .await
        .expect_error(422, "VALIDATION_ERROR");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["artifacts[0].artifact_type", "artifacts[0].content", "artifacts[0].name"]);
    let many: Vec<_> =
        (0..51).map(|i| json!({"artifact_type": "text", "name": format!("a{i}"), "content": "x"})).collect();
    app.post(&format!("/api/v1/tasks/{id}/artifacts"), Some(&provider.key), json!({"artifacts": many}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    assert_eq!(
        app.get(&format!("/api/v1/tasks/{id}/artifacts"), Some(&client.key)).await.data().as_array().unwrap().len(),
        2
    );
}

both_engines!(uploads_are_stored_with_their_hash_for_their_owner);
async fn uploads_are_stored_with_their_hash_for_their_owner(app: TestApp) {
    let user = app.signup("u@example.com").await;
    let other = app.signup("o@example.com").await;
    let content = base64::engine::general_purpose::STANDARD.encode("Do the thing.");
    let r = app
        .post("/api/v1/uploads", Some(&user.key), json!({"name": "instructions.md", "content": content, "content_type": "text/plain", "document_type": "instructions"}))
        .await
        .expect(201);
    assert_eq!(r.data()["file_hash"].as_str().unwrap().len(), 64);
    assert_eq!(r.data()["document_type"], "instructions");
    let url = r.data()["file_url"].as_str().unwrap().to_string();
    let text = app.client.get(app.url(&url)).header("x-api-key", &user.key).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "Do the thing.");
    app.get(&url, Some(&other.key)).await.expect_error(404, "NOT_FOUND");
    app.post("/api/v1/uploads", Some(&user.key), json!({"name": "", "content": "***"}))
        .await
        .expect_error(422, "VALIDATION_ERROR");
    app.post(
        "/api/v1/uploads",
        Some(&user.key),
        json!({"name": "x", "content": content, "task_id": "00000000-0000-0000-0000-000000000000"}),
    )
    .await
    .expect_error(404, "NOT_FOUND");
}
