//! The dashboard in a real headless Chromium through WebDriver, against the real server.

#[path = "../api/support/mod.rs"]
#[allow(dead_code)]
mod support;
mod webdriver;

use serde_json::json;
use support::{Engine, TestApp};

mod story;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_agents_through_the_browser() {
    let Some(driver) = webdriver::start().await else { return };
    let Some(axe) = webdriver::axe_source() else { return };
    let app = TestApp::spawn(Engine::Sqlite, |_| {}).await.unwrap();
    for width in [1280u32, 390] {
        let s = driver.session(width).await;
        let email = format!("browser{width}@example.com");
        // Sign up.
        s.goto(&app.url("/register")).await;
        s.fill("#name", "Grace").await;
        s.fill("#email", &email).await;
        s.fill("#password", "correct horse battery").await;
        s.click("form[action='/register'] button[type=submit]").await;
        assert!(s.shows("Welcome, Grace").await);

        // Create a key: shown once, gone after a reload, accepted by the API.
        s.goto(&app.url("/dashboard/api-keys")).await;
        s.fill("#name", "CI/CD").await;
        s.click("form[action='/dashboard/api-keys'] button[type=submit]").await;
        let key = s.text("#new-key").await;
        assert!(key.starts_with("ap_") && key.len() >= 35, "{key}");
        s.audit(&axe, "api-keys-created").await;
        s.goto(&app.url("/dashboard/api-keys")).await;
        assert!(!s.source().await.contains(&key), "a reload never shows the key");
        app.get("/api/v1/accounts/me", Some(&key)).await.expect(200);

        // Revoke it (confirming the dialog): the API refuses it at once.
        let keys = app.get("/api/v1/api-keys", Some(&key)).await.expect(200);
        let id = keys.data().as_array().unwrap().iter().find(|k| k["name"] == "CI/CD").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        s.click(&format!("form[action='/dashboard/api-keys/{id}/revoke'] button")).await;
        s.accept_alert().await;
        assert!(s.shows("pill off\">revoked").await);
        app.get("/api/v1/accounts/me", Some(&key)).await.expect_error(401, "UNAUTHORIZED");

        // Register an agent from the form; toggle it to draft: it leaves the public list.
        let did = format!("did:browser:agent{width}");
        s.goto(&app.url("/dashboard/agents")).await;
        s.fill("#name", "Browser agent").await;
        s.fill("#did", &did).await;
        s.fill("#capabilities", "code-review").await;
        s.fill("#base_price", "2.00").await;
        s.click("form[action='/dashboard/agents'] button[type=submit]").await;
        let agent_key = s.text("#new-key").await;
        assert!(agent_key.starts_with("agk_"));
        let listed = app.get("/api/v1/agents", None).await.expect(200);
        assert!(listed.text.contains(&did));
        let agent = app.get(&format!("/api/v1/agents/{}", support::enc(&did)), None).await.expect(200);
        let agent_id = agent.data()["id"].as_str().unwrap().to_string();
        s.click(&format!("form[action='/dashboard/agents/{agent_id}/toggle'] button")).await;
        assert!(s.shows("Make active").await);
        let listed = app.get("/api/v1/agents", None).await.expect(200);
        assert!(!listed.text.contains(&did), "a draft is not in the marketplace");
        s.audit(&axe, "agents-draft").await;

        // An autonomous agent appears in no dashboard until claimed with its own key.
        let loose = app.register_agent(None, &format!("did:browser:loose{width}"), json!({})).await;
        s.goto(&app.url("/dashboard/agents")).await;
        assert!(!s.source().await.contains(&loose.did));
        s.fill("#claim_id", &loose.id).await;
        s.fill("#claim_key", "agk_wrongwrongwrongwrongwrongwrongwrongwrong").await;
        s.click("form[action='/dashboard/agents/claim'] button").await;
        assert!(s.shows("not a valid key of this agent").await);
        s.fill("#claim_id", &loose.did).await;
        s.fill("#claim_key", &loose.key).await;
        s.click("form[action='/dashboard/agents/claim'] button").await;
        assert!(s.shows("The agent is now yours.").await && s.source().await.contains(&loose.did));
        let claimed = app.get(&format!("/api/v1/agents/{}", loose.id), None).await.expect(200);
        assert!(claimed.data()["owner_id"].is_string());
        s.goto(&app.url("/")).await;
        assert!(s.source().await.contains(&loose.did), "it stays in the public marketplace");
        s.audit(&axe, "marketplace").await;

        // A paid task: fund the wallet and pay in the browser, deliver over the API as the
        // provider, accept in the browser; both wallets show the right amounts.
        s.goto(&app.url("/dashboard/api-keys")).await;
        s.fill("#name", "Automation").await;
        s.click("form[action='/dashboard/api-keys'] button[type=submit]").await;
        let automation = s.text("#new-key").await;
        s.goto(&app.url("/dashboard/wallet")).await;
        s.fill("#amount", "50.00").await;
        s.click("form[action='/dashboard/wallet/deposit'] button[type=submit]").await;
        assert!(s.shows("50.00 USD added.").await);
        let provider =
            app.register_agent(None, &format!("did:browser:provider{width}"), json!({"base_price": "10.00"})).await;
        let task = app.task(&automation, &provider, json!({})).await.expect(201);
        let task_id = task.data()["id"].as_str().unwrap().to_string();
        s.goto(&app.url(&format!("/dashboard/tasks/{task_id}"))).await;
        s.click(&format!("form[action='/dashboard/tasks/{task_id}/pay'] button")).await;
        assert!(s.shows("id=\"payment-status\">escrowed").await);
        app.post(&format!("/api/v1/tasks/{task_id}/claim"), Some(&provider.key), json!({})).await.expect(200);
        app.post(&format!("/api/v1/tasks/{task_id}/complete"), Some(&provider.key), json!({"output": "LGTM"}))
            .await
            .expect(200);
        s.goto(&app.url(&format!("/dashboard/tasks/{task_id}"))).await;
        s.click("#accept").await;
        assert!(s.shows("id=\"payment-status\">released").await);
        s.audit(&axe, "task-released").await;
        s.goto(&app.url("/dashboard/wallet")).await;
        assert!(s.shows("40.00").await);
        s.audit(&axe, "wallet").await;
        assert_eq!(app.balance(&automation).await, ("40.00".into(), "0.00".into(), "0.00".into(), "40.00".into()));
        assert_eq!(app.available(&provider.key).await, "9.50");
        s.close().await;
    }

    // A dispute resolved as a split by an administrator in the browser.
    let client = app.signup("disputer@example.com").await;
    app.fund(&client.key, "10.00").await;
    let provider = app.register_agent(None, "did:browser:disputed", json!({"base_price": "10.00"})).await;
    let task = app.task(&client.key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let task_id = task.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{task_id}/complete"), Some(&provider.key), json!({"output": "half done"}))
        .await
        .expect(200);
    let dispute = app
        .post(&format!("/api/v1/tasks/{task_id}/dispute"), Some(&client.key), json!({"reason": "only half"}))
        .await
        .expect(201);
    let dispute_id = dispute.data()["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/v1/disputes/{dispute_id}/evidence"),
        Some(&provider.key),
        json!({"content": "half was agreed"}),
    )
    .await
    .expect(201);
    app.admin("root@example.com").await;
    let s = driver.session(1280).await;
    s.log_in(&app.base, "root@example.com", "administrator password").await;
    assert!(s.shows("Admin").await);
    s.goto(&app.url("/dashboard/admin")).await;
    assert!(s.shows("half was agreed").await, "both sides' evidence is shown");
    let form = format!("form[action='/dashboard/admin/disputes/{dispute_id}/resolve']");
    s.click(&format!("{form} select[name=outcome] option[value=split]")).await;
    s.fill(&format!("{form} input[name=client_share_bps]"), "3000").await;
    s.click(&format!("{form} button")).await;
    assert!(s.shows("No open disputes.").await);
    // The page shows the last stored audit; the button runs one now.
    s.click("form[action='/dashboard/admin/ledger/run/audit'] button").await;
    assert!(s.shows("every invariant holds").await);
    s.audit(&axe, "admin-after-split").await;
    s.close().await;
    // The admin page on a phone.
    let s = driver.session(390).await;
    s.log_in(&app.base, "root@example.com", "administrator password").await;
    assert!(s.shows("Admin").await);
    s.goto(&app.url("/dashboard/admin")).await;
    assert!(s.shows("Fee income").await);
    s.audit(&axe, "admin").await;
    s.close().await;
    assert_eq!(app.available(&client.key).await, "3.00");
    assert_eq!(app.available(&provider.key).await, "6.65");
    app.audit_ok().await;
}
