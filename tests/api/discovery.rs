//! The marketplace views: GET /agents, /agents/discover, /capabilities.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

async fn seed(app: &TestApp) {
    let cheap = json!({"capabilities": ["translation", "summarize"], "base_price": "1.50", "pricing_model": "fixed", "description": "Fast translator"});
    app.register_agent(None, "did:t:cheap", cheap).await;
    app.register_agent(None, "did:t:mid", json!({"capabilities": ["translation"], "base_price": "5"})).await;
    app.register_agent(
        None,
        "did:t:dear",
        json!({"capabilities": ["code-review"], "base_price": "40.00", "name": "Senior Reviewer"}),
    )
    .await;
    app.register_agent(None, "did:t:gratis", json!({"capabilities": ["summarize"], "base_price": "0"})).await;
}

fn dids(r: &crate::support::Resp) -> Vec<String> {
    r.data().as_array().unwrap().iter().map(|a| a["did"].as_str().unwrap().to_string()).collect()
}

both_engines!(list_filters_searches_and_paginates);
async fn list_filters_searches_and_paginates(app: TestApp) {
    seed(&app).await;
    let all = app.get("/api/v1/agents", None).await.expect(200);
    assert_eq!(dids(&all), ["did:t:gratis", "did:t:dear", "did:t:mid", "did:t:cheap"], "newest first");
    assert_eq!(all.body["meta"]["pagination"]["total_count"], 4);
    assert_eq!(all.body["meta"]["pagination"]["has_more"], false);

    let page1 = app.get("/api/v1/agents?limit=3", None).await.expect(200);
    assert_eq!(dids(&page1).len(), 3);
    let pg = &page1.body["meta"]["pagination"];
    assert_eq!(pg["has_more"], true);
    let cursor = pg["cursor"].as_str().unwrap();
    let page2 = app.get(&format!("/api/v1/agents?limit=3&cursor={cursor}"), None).await.expect(200);
    assert_eq!(dids(&page2), ["did:t:cheap"]);
    assert_eq!(page2.body["meta"]["pagination"]["cursor"], json!(null));
    let by_offset = app.get("/api/v1/agents?limit=2&offset=2", None).await.expect(200);
    assert_eq!(dids(&by_offset), ["did:t:mid", "did:t:cheap"]);

    let translation = app.get("/api/v1/agents?capability=Translation", None).await.expect(200);
    assert_eq!(dids(&translation), ["did:t:mid", "did:t:cheap"]);
    let search = app.get("/api/v1/agents?q=reviewer", None).await.expect(200);
    assert_eq!(dids(&search), ["did:t:dear"]);
    let search = app.get("/api/v1/agents?q=TRANSLATOR", None).await.expect(200);
    assert_eq!(dids(&search), ["did:t:cheap"]);

    let bad = app.get("/api/v1/agents?limit=0&cursor=%21%21", None).await.expect_error(422, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["cursor", "limit"]);
}

both_engines!(discover_filters_and_sorts);
async fn discover_filters_and_sorts(app: TestApp) {
    seed(&app).await;
    let by_price = app.get("/api/v1/agents/discover?sort_by=base_price", None).await.expect(200);
    assert_eq!(dids(&by_price), ["did:t:gratis", "did:t:cheap", "did:t:mid", "did:t:dear"]);
    let first = &by_price.data()[0];
    for field in [
        "id",
        "did",
        "name",
        "description",
        "capabilities",
        "price_per_task",
        "base_price",
        "pricing_model",
        "reputation",
        "reputation_score",
        "total_tasks",
        "success_rate",
        "availability_status",
    ] {
        assert!(first.get(field).is_some(), "discover result has {field}");
    }
    assert_eq!(first["price_per_task"], "0.00");

    let ranged =
        app.get("/api/v1/agents/discover?min_price=1.50&max_price=5.00&sort_by=base_price", None).await.expect(200);
    assert_eq!(dids(&ranged), ["did:t:cheap", "did:t:mid"]);
    let cap =
        app.get("/api/v1/agents/discover?capability=summarize&sort_by=base_price&limit=1", None).await.expect(200);
    assert_eq!(dids(&cap), ["did:t:gratis"]);
    let recent = app.get("/api/v1/agents/discover?sort_by=recent", None).await.expect(200);
    assert_eq!(dids(&recent), ["did:t:gratis", "did:t:dear", "did:t:mid", "did:t:cheap"]);
    // Every new agent starts at reputation 3.00.
    let rep = app.get("/api/v1/agents/discover?min_reputation=3", None).await.expect(200);
    assert_eq!(dids(&rep).len(), 4);
    let rep = app.get("/api/v1/agents/discover?min_reputation=3.01", None).await.expect(200);
    assert!(dids(&rep).is_empty());
    let by_rep = app.get("/api/v1/agents/discover?sort_by=reputation_score", None).await.expect(200);
    assert_eq!(dids(&by_rep).len(), 4);

    let bad =
        app.get("/api/v1/agents/discover?sort_by=price_desc&min_price=abc&min_reputation=9&limit=500", None).await;
    let bad = bad.expect_error(422, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(fields, ["limit", "min_price", "min_reputation", "sort_by"]);
}

both_engines!(capabilities_count_active_agents_with_mean_prices);
async fn capabilities_count_active_agents_with_mean_prices(app: TestApp) {
    seed(&app).await;
    let owner = app.signup("caps@example.com").await;
    let hidden = app
        .register_agent(Some(&owner.key), "did:t:hidden", json!({"capabilities": ["translation"], "base_price": "100"}))
        .await;
    app.patch(&format!("/api/v1/agents/{}", hidden.id), Some(&owner.key), json!({"status": "draft"})).await.expect(200);

    let caps = app.get("/api/v1/capabilities", None).await.expect(200);
    let caps = caps.data().as_array().unwrap();
    let find = |name: &str| caps.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(find("translation")["agent_count"], 2);
    assert_eq!(find("translation")["avg_price"], "3.25");
    assert_eq!(find("summarize")["agent_count"], 2);
    assert_eq!(find("summarize")["avg_price"], "0.75");
    assert_eq!(find("code-review")["avg_price"], "40.00");
    assert_eq!(caps.len(), 3);
}

both_engines!(inactive_agents_stay_visible_but_suspended_rules_apply_to_reads);
async fn inactive_agents_stay_visible_but_suspended_rules_apply_to_reads(app: TestApp) {
    let owner = app.signup("inactive@example.com").await;
    let agent = app.register_agent(Some(&owner.key), "did:t:inactive", json!({})).await;
    app.patch(&format!("/api/v1/agents/{}", agent.id), Some(&owner.key), json!({"status": "inactive"}))
        .await
        .expect(200);
    let profile = app.get(&format!("/api/v1/agents/{}", agent.id), None).await.expect(200);
    assert_eq!(profile.data()["status"], "inactive");
    assert_eq!(profile.data()["availability_status"], "offline");
    let listed = app.get("/api/v1/agents", None).await.expect(200);
    assert!(dids(&listed).is_empty(), "the marketplace lists active agents only");
}
