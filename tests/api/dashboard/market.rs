//! The public marketplace pages: an agent's page from the home page, its reviews, the Hire
//! button's way through sign-in and back.

use serde_json::json;

use super::{Browser, csrf};
use crate::both_engines;
use crate::support::{TestApp, enc};

both_engines!(agent_pages_are_public_linked_from_home_and_404_for_drafts);
async fn agent_pages_are_public_linked_from_home_and_404_for_drafts(app: TestApp) {
    let provider = app
        .register_agent(
            None,
            "did:t:public",
            json!({"name": "Reviewer", "description": "Reviews <b>Rust</b>", "base_price": "10.00"}),
        )
        .await;
    // A finished, rated task gives the page a review.
    let client = app.signup("client@example.com").await;
    app.fund(&client.key, "20.00").await;
    let task = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let id = task.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": "ok"})).await.expect(200);
    app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&client.key), json!({"rating": 4, "review": "Sharp <eyes>"}))
        .await
        .expect(200);

    let visitor = Browser::new(&app);
    let (_, home) = visitor.get("/").await;
    assert!(home.contains("href=\"/agents/did:t:public\""), "the home page's card links to the agent's page");
    let (status, page) = visitor.get("/agents/did:t:public").await;
    assert_eq!(status, 200, "{page}");
    for shown in [
        "Reviewer",
        "Reviews &#60;b&#62;Rust&#60;/b&#62;",
        "10.00 USD",
        "code-review",
        "Sharp &#60;eyes&#62;",
        "4.00 / 5",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    assert!(page.contains("<time datetime=") && page.contains("UTC\">"), "times are relative with the UTC time");
    assert!(page.contains("href=\"/agents/did:t:public/hire\""), "a Hire button");
    // The percent-encoded DID works too.
    let (status, _) = visitor.get(&format!("/agents/{}", enc("did:t:public"))).await;
    assert_eq!(status, 200);

    // Drafts and unknown agents are 404, to the owner too.
    let owner = app.signup("owner@example.com").await;
    let draft = app.register_agent(Some(&owner.key), "did:t:drafted", json!({})).await;
    app.patch(&format!("/api/v1/agents/{}", draft.id), Some(&owner.key), json!({"status": "draft"})).await.expect(200);
    for path in ["/agents/did:t:drafted", "/agents/did:t:nobody", "/agents/not-a-did"] {
        let (status, _) = visitor.get(path).await;
        assert_eq!(status, 404, "{path}");
    }
}

both_engines!(the_hire_button_goes_through_sign_in_and_back);
async fn the_hire_button_goes_through_sign_in_and_back(app: TestApp) {
    app.register_agent(None, "did:t:hireable", json!({"base_price": "3.00"})).await;
    let b = Browser::new(&app);
    let (_, landed, page) = b.get_to("/agents/did:t:hireable/hire").await;
    assert_eq!(landed, "/login?next=%2Fagents%2Fdid%3At%3Ahireable%2Fhire", "signed out: to the login page");
    assert!(page.contains("name=\"next\" value=\"/agents/did:t:hireable/hire\""), "{page}");
    // No account yet: the sign-up link carries the way back, and signing up follows it.
    assert!(page.contains("/register?next=%2Fagents%2Fdid%3At%3Ahireable%2Fhire"));
    let (_, signup) = b.get("/register?next=%2Fagents%2Fdid%3At%3Ahireable%2Fhire").await;
    let form = [
        ("csrf", csrf(&signup)),
        ("next", "/agents/did:t:hireable/hire".to_string()),
        ("name", "Ada".to_string()),
        ("email", "back@example.com".to_string()),
        ("password", "correct horse battery".to_string()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, landed, _) = b.post_to("/register", &form).await;
    assert_eq!((status, landed.as_str()), (200, "/agents/did:t:hireable/hire"));

    // Logging in comes back too; a `next` pointing elsewhere is ignored.
    let again = Browser::new(&app);
    for (next, expected) in [("/agents/did:t:hireable", "/agents/did:t:hireable"), ("//evil.example/x", "/dashboard")] {
        let (_, login) = again.get("/login").await;
        let token = csrf(&login);
        let form = [
            ("csrf", token.as_str()),
            ("next", next),
            ("email", "back@example.com"),
            ("password", "correct horse battery"),
        ];
        let (status, landed, _) = again.post_to("/login", &form).await;
        assert_eq!((status, landed.as_str()), (200, expected), "next = {next}");
    }
}

/// The signed-in browser's own API key (full access), made on the keys page.
async fn key_of(b: &Browser, token: &str) -> String {
    let (_, page) = b.post("/dashboard/api-keys", &[("csrf", token), ("name", "checks")]).await;
    super::shown_key(&page, "ap_")
}

both_engines!(hiring_from_the_browser_quotes_holds_once_and_refuses_cleanly);
async fn hiring_from_the_browser_quotes_holds_once_and_refuses_cleanly(app: TestApp) {
    app.register_agent(None, "did:t:fixed", json!({"base_price": "10.00", "capabilities": ["code-review", "docs"]}))
        .await;
    let b = Browser::new(&app);
    let token = b.sign_up("hirer@example.com").await;
    let key = key_of(&b, &token).await;
    let (status, form) = b.get("/agents/did:t:fixed/hire").await;
    assert_eq!(status, 200);
    for shown in [
        "id=\"quote-price\">10.00 USD",
        "id=\"quote-fee\">0.50 USD",
        "id=\"quote-provider\">9.50 USD",
        "id=\"quote-available\">0.00 USD",
        "Add funds in your wallet",
    ] {
        assert!(form.contains(shown), "{shown} in {form}");
    }
    let hire = |description: &'static str, max: &'static str, deadline: &'static str| {
        let (b, token, form) = (&b, token.clone(), form.clone());
        async move {
            let key = super::field_value(&form, "key");
            b.post_to(
                "/agents/did:t:fixed/hire",
                &[
                    ("csrf", token.as_str()),
                    ("key", key.as_str()),
                    ("description", description),
                    ("capability", "docs"),
                    ("max_price", max),
                    ("deadline", deadline),
                ],
            )
            .await
        }
    };
    let hirings =
        || async { app.get("/api/v1/hirings", Some(&key)).await.expect(200).data()["total"].as_i64().unwrap() };

    // Not enough balance: the form says so, links to the wallet, and nothing is held.
    let (status, _, page) = hire("Write the docs", "", "").await;
    assert_eq!(status, 422);
    assert!(page.contains("Not enough balance") && page.contains("href=\"/dashboard/wallet\""), "{page}");
    assert!(page.contains("Write the docs"), "the input is kept");
    assert_eq!(hirings().await, 0);
    app.fund(&key, "25.00").await;
    // A maximum below the agent's price, a past deadline, no description: refused beside the field.
    let (status, _, page) = hire("Write the docs", "5.00", "").await;
    assert_eq!(status, 422);
    assert!(page.contains("above your max_price 5.00"), "{page}");
    let (status, _, page) = hire("Write the docs", "", "2001-01-01T10:00").await;
    assert_eq!(status, 422);
    assert!(page.contains("must be an RFC 3339 time in the future"), "{page}");
    let (status, _, page) = hire("", "", "").await;
    assert_eq!(status, 422);
    assert!(page.contains("is required, at most 5000 characters"), "{page}");
    let (status, _, page) = hire("Write the docs", "ten", "").await;
    assert_eq!(status, 422);
    assert!(page.contains("must be a decimal string"), "{page}");
    assert_eq!(hirings().await, 0);
    assert_eq!(app.balance(&key).await, ("25.00".into(), "0.00".into(), "0.00".into(), "25.00".into()));

    // Within the cap: the agent's price is held and the browser lands on the hiring's page;
    // submitting the same form again lands on the same hiring, held once.
    let (status, landed, page) = hire("Write the docs", "12.00", "2099-01-01T10:00").await;
    assert_eq!(status, 200, "{page}");
    assert!(landed.starts_with("/dashboard/tasks/"), "{landed}");
    let id = landed.trim_start_matches("/dashboard/tasks/").to_string();
    let hiring = app.get(&format!("/api/v1/hirings/{id}"), Some(&key)).await.expect(200);
    assert_eq!(hiring.data()["price"], "10.00");
    assert_eq!(hiring.data()["capability_requested"], "docs");
    assert_eq!(hiring.data()["deadline_at"], "2099-01-01T10:00:00Z");
    let (_, again, _) = hire("Write the docs", "12.00", "2099-01-01T10:00").await;
    assert_eq!(again, landed);
    assert_eq!(hirings().await, 1);
    assert_eq!(app.balance(&key).await, ("15.00".into(), "10.00".into(), "0.00".into(), "25.00".into()));
    // Check the price: the quote for the typed maximum, nothing held.
    let (status, page) =
        b.post("/agents/did:t:fixed/hire", &[("csrf", &token), ("step", "quote"), ("max_price", "9.00")]).await;
    assert_eq!(status, 200);
    assert!(page.contains("above your max_price 9.00") && page.contains("id=\"quote-available\">15.00 USD"));
    assert_eq!(hirings().await, 1);
    // A draft cannot be hired from the browser either.
    let (status, _) = b.get("/agents/did:t:nobody/hire").await;
    assert_eq!(status, 404);
    app.audit_ok().await;
}

both_engines!(a_new_task_from_the_tasks_page_is_paid_from_the_balance);
async fn a_new_task_from_the_tasks_page_is_paid_from_the_balance(app: TestApp) {
    let provider = app.register_agent(None, "did:t:tasker", json!({"base_price": "4.00"})).await;
    let b = Browser::new(&app);
    let token = b.sign_up("tasker@example.com").await;
    let key = key_of(&b, &token).await;
    let (_, tasks) = b.get("/dashboard/tasks").await;
    assert!(tasks.contains("href=\"/dashboard/tasks/new\""));
    let (status, page) = b.get("/dashboard/tasks/new?agent=did:t:tasker").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"quote-price\">4.00 USD") && page.contains("<option>code-review</option>"), "{page}");
    let post = |input: &'static str| {
        let (b, token) = (&b, token.clone());
        async move {
            b.post_to(
                "/dashboard/tasks/new",
                &[("csrf", &token), ("agent", "did:t:tasker"), ("capability", "code-review"), ("description", input)],
            )
            .await
        }
    };
    let (status, _, page) = post("review my PR").await;
    assert_eq!(status, 422);
    assert!(page.contains("Not enough balance"), "{page}");
    app.fund(&key, "5.00").await;
    let (status, _, page) = post("").await;
    assert_eq!(status, 422);
    assert!(page.contains("is required"), "{page}");
    assert_eq!(app.available(&key).await, "5.00");
    let (status, landed, page) = post("review my PR").await;
    assert_eq!(status, 200, "{page}");
    let id = landed.trim_start_matches("/dashboard/tasks/").to_string();
    let task = app.get(&format!("/api/v1/tasks/{id}"), Some(&key)).await.expect(200);
    assert_eq!(task.data()["provider_agent_id"], provider.id);
    assert_eq!(app.balance(&key).await, ("1.00".into(), "4.00".into(), "0.00".into(), "5.00".into()));
    app.audit_ok().await;
}
