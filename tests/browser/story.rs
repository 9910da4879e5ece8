//! The marketplace as a person uses it, in Chromium at 1280 and 390 px: sign up, fund the
//! wallet, open an agent's page from the home page, hire it with a price cap, watch the hiring
//! live (the agent, over the API, asks a question and delivers a markdown artifact carrying a
//! script), answer, see the result rendered without its script, accept with a rating, find the
//! review on the agent's public page and the movement on the wallet's chart. axe-core runs on
//! every page; no page scrolls sideways; the CSP stays strict.

use serde_json::{Value, json};

use crate::support::{Engine, TestApp};
use crate::webdriver;

const STRICT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_hires_an_agent_and_follows_the_work_live() {
    let Some(driver) = webdriver::start().await else { return };
    let Some(axe) = webdriver::axe_source() else { return };
    let app = TestApp::spawn(Engine::Sqlite, |_| {}).await.unwrap();
    for width in [1280u32, 390] {
        let did = format!("did:story:writer{width}");
        let agent = app
            .register_agent(
                None,
                &did,
                json!({"name": format!("Doc writer {width}"), "capabilities": ["docs"], "base_price": "10.00",
                    "description": "Writes READMEs."}),
            )
            .await;
        let s = driver.session(width).await;

        // Sign up, then fund the wallet (sandbox).
        s.goto(&app.url("/register")).await;
        let inner = s.execute("return window.innerWidth;", json!([])).await;
        assert_eq!(inner.as_u64(), Some(u64::from(width)), "the page is {width} px wide");
        s.audit(&axe, "register").await;
        s.fill("#name", "Ada").await;
        s.fill("#email", &format!("story{width}@example.com")).await;
        s.fill("#password", "correct horse battery").await;
        s.click("form[action='/register'] button[type=submit]").await;
        assert!(s.shows("Welcome, Ada").await);
        s.audit(&axe, "overview").await;
        s.goto(&app.url("/dashboard/wallet")).await;
        s.fill("#amount", "50.00").await;
        s.click("form[action='/dashboard/wallet/deposit'] button[type=submit]").await;
        assert!(s.shows("50.00 USD added.").await);
        app.clock.advance_secs(120);

        // The agent's page from the home page, then its Hire form with a price cap.
        s.goto(&app.url("/")).await;
        s.audit(&axe, "home").await;
        s.click(&format!("a[href='/agents/{did}']")).await;
        assert!(s.shows("Writes READMEs.").await);
        s.audit(&axe, "agent-page").await;
        s.click("#hire").await;
        assert!(s.shows("id=\"quote-provider\">9.50 USD").await, "the quote shows what the provider gets");
        assert!(s.shows("id=\"quote-available\">50.00 USD").await);
        s.audit(&axe, "hire-form").await;
        s.fill("#description", "Write the README for our CLI").await;
        s.fill("#max_price", "12.00").await;
        s.click("#hire-submit").await;
        assert!(s.shows("id=\"live\"").await && s.shows("Write the README for our CLI").await);
        let path = s.execute("return location.pathname;", json!([])).await;
        let id = path.as_str().unwrap().trim_start_matches("/dashboard/tasks/").to_string();
        s.audit(&axe, "hiring-open").await;

        // The agent asks over the API: the open page shows the question by itself.
        let q = app
            .post(
                &format!("/api/v1/hirings/{id}/messages"),
                Some(&agent.key),
                json!({"content": "Which shell should the examples use?", "kind": "question"}),
            )
            .await
            .expect(201);
        let qid = q.data()["id"].as_str().unwrap().to_string();
        assert!(s.shows("Which shell should the examples use?").await, "the live page refreshed itself");
        s.audit(&axe, "hiring-question").await;
        s.fill(&format!("#answer-{qid}"), "bash, please").await;
        s.click(&format!("#question-{qid} button[type=submit]")).await;
        assert!(s.shows("bash, please").await);
        let h = app.get(&format!("/api/v1/hirings/{id}"), Some(&agent.key)).await.expect(200);
        assert!(h.data()["open_questions"].as_array().unwrap().is_empty(), "answered");

        // The agent streams two chunks of work in progress: the open page shows them by itself,
        // in order, as text (the second one's markup is not interpreted).
        for chunk in [
            json!({"content": "Reading the CLI's flags", "kind": "progress"}),
            json!({"content": "## Usage <b>draft</b>"}),
        ] {
            app.post(&format!("/api/v1/hirings/{id}/stream"), Some(&agent.key), chunk).await.expect(201);
        }
        assert!(s.shows("id=\"chunk-2\"").await, "the live page showed the streamed chunks by itself");
        let chunks = s
            .execute(
                "return Array.from(document.querySelectorAll('#stream .chunk pre')).map(e => e.textContent);",
                json!([]),
            )
            .await;
        assert_eq!(chunks, json!(["Reading the CLI's flags", "## Usage <b>draft</b>"]));
        s.audit(&axe, "hiring-stream").await;

        // The agent delivers a markdown artifact that tries to run script, and the result.
        let markdown = "# README\n\nRun `cli --help`.\n\n<script>window.pwned = 1</script>\n\n\
            <img src=\"x\" onerror=\"window.pwned = 2\">\n\n[home](javascript:window.pwned=3)";
        app.post(
            &format!("/api/v1/hirings/{id}/artifacts"),
            Some(&agent.key),
            json!({"artifacts": [{"artifact_type": "markdown", "name": "README.md", "content": markdown}]}),
        )
        .await
        .expect(201);
        app.post(&format!("/api/v1/hirings/{id}/result"), Some(&agent.key), json!({"output": "Done: **README.md**"}))
            .await
            .expect(200);
        assert!(s.shows("id=\"result\"").await && s.shows("<h1>README</h1>").await, "the page showed the delivery");
        let dom = s
            .execute(
                "return {inline: Array.from(document.scripts).filter(function (x) { return !x.src; }).length,\
                   scripts: document.scripts.length, onerror: document.querySelectorAll('[onerror]').length,\
                   images: document.querySelectorAll('#live img').length,\
                   js_links: document.querySelectorAll('a[href^=\"javascript\"]').length,\
                   pwned: typeof window.pwned, code: document.querySelector('#artifacts code').textContent};",
                json!([]),
            )
            .await;
        assert_eq!(
            dom,
            json!({"inline": 0, "scripts": 2, "onerror": 0, "images": 0, "js_links": 0, "pwned": "undefined",
                "code": "cli --help"}),
            "the artifact's script and handler did nothing"
        );
        s.audit(&axe, "hiring-delivered").await;

        // Accept with a rating: released; the review is on the agent's public page.
        s.click("#rating option:nth-child(2)").await;
        s.fill("#review", "Clear and complete").await;
        s.click("#accept").await;
        assert!(s.shows("id=\"payment-status\">released").await);
        assert_eq!(app.available(&agent.key).await, "9.50");
        s.goto(&app.url(&format!("/agents/{did}"))).await;
        assert!(s.shows("Clear and complete").await && s.shows("5.00 / 5").await);
        s.audit(&axe, "agent-reviewed").await;

        // The wallet's chart shows the deposit and the payment.
        app.clock.advance_secs(120);
        s.goto(&app.url("/dashboard/wallet")).await;
        let table = s.execute("return document.getElementById('balance-chart-data').innerText;", json!([])).await;
        let table = table.as_str().unwrap();
        assert!(table.contains("50.00 USD") && table.contains("40.00 USD"), "{table}");
        let drawn = s.execute("return document.querySelectorAll('#balance-chart path.line').length;", json!([])).await;
        assert_eq!(drawn, json!(2));
        s.audit(&axe, "wallet-chart").await;

        // The keys page with the presets, and a key for an AI assistant with its MCP set-up.
        s.goto(&app.url("/dashboard/api-keys")).await;
        s.fill("#name", "Claude").await;
        s.click("input[name=preset][value=assistant]").await;
        let ticked =
            s.execute("return document.querySelector(\"input[name='scope.hire:create']\").checked;", json!([])).await;
        assert_eq!(ticked, Value::Bool(true), "the preset ticks its scopes");
        s.click("form[action='/dashboard/api-keys'] button[type=submit]").await;
        let key = s.text("#new-key").await;
        assert!(s.text("#mcp-claude").await.contains(&format!("Bearer {key}")));
        s.audit(&axe, "api-key-mcp").await;

        // Every other page, at this width too.
        for (path, name) in [
            ("/dashboard/tasks".to_string(), "tasks"),
            (format!("/dashboard/tasks/new?agent={did}"), "new-task"),
            ("/dashboard/agents".to_string(), "agents"),
            ("/dashboard/webhooks".to_string(), "webhooks"),
            ("/login".to_string(), "login"),
        ] {
            s.goto(&app.url(&path)).await;
            s.audit(&axe, name).await;
        }
        s.close().await;
    }

    // The pages keep the strict policy.
    for path in ["/", "/agents/did:story:writer1280", "/login"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["content-security-policy"], STRICT_CSP, "{path}");
    }
    app.audit_ok().await;
}
