//! A hiring's live page: the agent's questions answered in the browser, the result and its
//! artifacts rendered so they can do nothing, downloads for the participants only, the live
//! fragment the page refreshes from, and accepting with a rating.

use serde_json::json;

use super::{Browser, field_value};
use crate::both_engines;
use crate::support::TestApp;

both_engines!(a_hirings_page_shows_questions_artifacts_and_the_result_safely);
async fn a_hirings_page_shows_questions_artifacts_and_the_result_safely(app: TestApp) {
    let agent = app.register_agent(None, "did:t:live", json!({"base_price": "10.00"})).await;
    let b = Browser::new(&app);
    let token = b.sign_up("live@example.com").await;
    let (_, page) = b.post("/dashboard/api-keys", &[("csrf", &token), ("name", "checks")]).await;
    let key = super::shown_key(&page, "ap_");
    app.fund(&key, "20.00").await;
    let (_, form) = b.get("/agents/did:t:live/hire").await;
    let hire_key = field_value(&form, "key");
    let (status, landed, page) = b
        .post_to(
            "/agents/did:t:live/hire",
            &[("csrf", &token), ("key", &hire_key), ("description", "Write the README"), ("capability", "code-review")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let id = landed.trim_start_matches("/dashboard/tasks/").to_string();
    assert!(page.contains("Write the README") && page.contains("data-open=\"true\""), "{page}");
    assert!(page.contains("src=\"/static/live.js\""), "the page refreshes itself");

    // The agent asks; the page and its live fragment show the question with an answer box.
    let q = app
        .post(
            &format!("/api/v1/hirings/{id}/messages"),
            Some(&agent.key),
            json!({"content": "Which <branch>?", "kind": "question"}),
        )
        .await
        .expect(201);
    let qid = q.data()["id"].as_str().unwrap().to_string();
    let (status, fragment) = b.get(&format!("/dashboard/tasks/{id}/live")).await;
    assert_eq!(status, 200);
    assert!(!fragment.contains("<html"), "a fragment, not a page");
    assert!(
        fragment.contains("Which &#60;branch&#62;?") && fragment.contains(&format!("value=\"{qid}\"")),
        "{fragment}"
    );
    let (status, page) = b
        .post(&format!("/dashboard/tasks/{id}/answer"), &[("csrf", &token), ("question_id", &qid), ("content", "main")])
        .await;
    assert_eq!(status, 200);
    assert!(!page.contains(&format!("id=\"question-{qid}\"")) && page.contains("main"), "answered: {page}");
    let h = app.get(&format!("/api/v1/hirings/{id}"), Some(&key)).await.expect(200);
    assert!(h.data()["open_questions"].as_array().unwrap().is_empty());
    // An empty answer is refused beside nothing held or changed.
    let q2 = app
        .post(
            &format!("/api/v1/hirings/{id}/messages"),
            Some(&agent.key),
            json!({"content": "Tests?", "kind": "question"}),
        )
        .await
        .expect(201);
    let q2 = q2.data()["id"].as_str().unwrap().to_string();
    let (status, page) = b
        .post(&format!("/dashboard/tasks/{id}/answer"), &[("csrf", &token), ("question_id", &q2), ("content", " ")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("is required, at most 5000 characters") || page.contains("content"), "{page}");

    // Artifacts: markdown rendered without its script, HTML as source, binary as a download.
    let markdown = "# Report\n\n<script>window.pwned = 1</script>\n\n<img src=x onerror=\"window.pwned = 2\">\n\n[x](javascript:alert(1)) **done**";
    app.post(
        &format!("/api/v1/hirings/{id}/artifacts"),
        Some(&agent.key),
        json!({"artifacts": [
            {"artifact_type": "markdown", "name": "report.md", "content": markdown},
            {"artifact_type": "html", "name": "page.html", "content": "<b onclick=x>hi</b>"},
            {"artifact_type": "file", "name": "blob.bin", "content": "AAEC", "encoding": "base64"},
        ]}),
    )
    .await
    .expect(201);
    app.post(&format!("/api/v1/hirings/{id}/result"), Some(&agent.key), json!({"output": "All **set**"}))
        .await
        .expect(200);
    let (_, page) = b.get(&format!("/dashboard/tasks/{id}")).await;
    let lower = page.to_ascii_lowercase();
    assert!(page.contains("<h1>Report</h1>") && page.contains("<strong>done</strong>"), "{page}");
    assert!(page.contains("All <strong>set</strong>"), "the result is rendered: {page}");
    // The script and the handler are there only as text: no tag of theirs reaches the page.
    assert!(!lower.contains("<script>window") && !lower.contains("<img") && !lower.contains("<a href=\"javascript"));
    assert!(page.contains("&lt;img src=x onerror="), "{page}");
    assert!(page.contains("&lt;b onclick=x&gt;hi&lt;/b&gt;") || page.contains("&#60;b onclick=x&#62;hi&#60;/b&#62;"));
    assert!(page.contains("data-open=\"false\""), "delivered: the page stops refreshing");
    for shown in ["text/markdown", "application/octet-stream, 3 bytes"] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    let artifacts = app.get(&format!("/api/v1/hirings/{id}/artifacts"), Some(&key)).await.expect(200);
    let blob = artifacts.data().as_array().unwrap().iter().find(|a| a["name"] == "blob.bin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = b.http.get(format!("{}/dashboard/artifacts/{blob}/download", b.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[0u8, 1, 2]);

    // Someone else sees neither the page, its fragment nor the artifact.
    let other = Browser::new(&app);
    other.sign_up("other@example.com").await;
    for path in [
        format!("/dashboard/tasks/{id}"),
        format!("/dashboard/tasks/{id}/live"),
        format!("/dashboard/artifacts/{blob}/download"),
    ] {
        let (status, _) = other.get(&path).await;
        assert_eq!(status, 404, "{path}");
    }

    // Accept with a rating: released, and the review is on the agent's public page.
    let (status, page) = b
        .post(&format!("/dashboard/tasks/{id}/accept"), &[("csrf", &token), ("rating", "5"), ("review", "Lovely docs")])
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"payment-status\">released"), "{page}");
    let (_, public) = Browser::new(&app).get("/agents/did:t:live").await;
    assert!(public.contains("Lovely docs") && public.contains("5.00 / 5"), "{public}");
    assert_eq!(app.available(&agent.key).await, "9.50");
    app.audit_ok().await;
}
