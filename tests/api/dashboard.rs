//! The dashboard over HTTP with a cookie-keeping client (the browser-driven tests come next):
//! sign-up, sessions, CSRF, keys shown once, agents and the draft toggle, isolation between users.

use serde_json::json;

use crate::both_engines;
use crate::support::TestApp;

mod charts;
mod keys;
mod live;
mod market;

struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            http: reqwest::Client::builder().no_proxy().cookie_store(true).build().unwrap(),
            base: app.base.clone(),
        }
    }
    /// A browser that comes through the trusted proxy from `ip`.
    fn from_ip(app: &TestApp, ip: &str) -> Browser {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", ip.parse().unwrap());
        Browser {
            http: reqwest::Client::builder().no_proxy().cookie_store(true).default_headers(headers).build().unwrap(),
            base: app.base.clone(),
        }
    }
    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self.http.post(format!("{}{path}", self.base)).form(form).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    /// Like `post`, and the path the browser ended on after any redirects.
    async fn post_to(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let r = self.http.post(format!("{}{path}", self.base)).form(form).send().await.unwrap();
        let landed = r.url().path().to_string();
        (r.status().as_u16(), landed, r.text().await.unwrap())
    }
    /// Like `get`, and the path (with its query) the browser ended on after any redirects.
    async fn get_to(&self, path: &str) -> (u16, String, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let url = r.url();
        let landed = format!("{}{}", url.path(), url.query().map(|q| format!("?{q}")).unwrap_or_default());
        (r.status().as_u16(), landed, r.text().await.unwrap())
    }
    /// Signs up through the form; lands on the dashboard.
    async fn sign_up(&self, email: &str) -> String {
        let (_, page) = self.get("/register").await;
        let (status, page) = self
            .post(
                "/register",
                &[("csrf", &csrf(&page)), ("name", "Ada"), ("email", email), ("password", "correct horse battery")],
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Welcome, Ada"), "{page}");
        csrf(&page)
    }
}

fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

/// The value of the form field `name` on a page.
fn field_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker).unwrap_or_else(|| panic!("a {name} field")) + marker.len();
    page[at..].split('"').next().unwrap().to_string()
}

fn shown_key(page: &str, prefix: &str) -> String {
    let at = page.find("<code id=\"new-key\">").expect("the new key is shown") + "<code id=\"new-key\">".len();
    let key = page[at..].split('<').next().unwrap().to_string();
    assert!(key.starts_with(prefix), "{key}");
    key
}

both_engines!(a_key_created_in_the_dashboard_is_shown_once_and_works);
async fn a_key_created_in_the_dashboard_is_shown_once_and_works(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("ada@example.com").await;
    let (status, page) = b
        .post(
            "/dashboard/api-keys",
            &[("csrf", &token), ("name", "Production"), ("scopes", ""), ("max_price_per_hire", "")],
        )
        .await;
    assert_eq!(status, 200);
    let key = shown_key(&page, "ap_");
    assert!(page.contains("It will not be shown again"));
    let (_, reload) = b.get("/dashboard/api-keys").await;
    assert!(!reload.contains(&key), "a reload never shows the key again");
    assert!(reload.contains("Production") && reload.contains(&key[key.len() - 4..]), "listed by name and last four");
    app.get("/api/v1/accounts/me", Some(&key)).await.expect(200);

    let me = app.get("/api/v1/api-keys", Some(&key)).await.expect(200);
    let id = me.data().as_array().unwrap().iter().find(|k| k["name"] == "Production").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = b.post(&format!("/dashboard/api-keys/{id}/revoke"), &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    app.get("/api/v1/accounts/me", Some(&key)).await.expect_error(401, "UNAUTHORIZED");

    // Field errors come back beside the fields with the input kept.
    let (status, page) = b
        .post(
            "/dashboard/api-keys",
            &[
                ("csrf", &token),
                ("name", "capped"),
                ("preset", "custom"),
                ("scope.root", "on"),
                ("max_price_per_hire", "-5"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("unknown scope") && page.contains("value=\"capped\""), "{page}");
    // An expiry in the past is refused beside its field; a future one is kept on the key.
    let (status, page) = b
        .post(
            "/dashboard/api-keys",
            &[
                ("csrf", &token),
                ("name", "old"),
                ("scopes", ""),
                ("expires_at", "2001-01-01T00:00"),
                ("max_price_per_hire", ""),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("must be in the future"));
    let (status, page) = b
        .post(
            "/dashboard/api-keys",
            &[
                ("csrf", &token),
                ("name", "soon"),
                ("scopes", ""),
                ("expires_at", "2099-01-01T10:00"),
                ("max_price_per_hire", ""),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("2099-01-01T10:00:00Z"), "{page}");
}

both_engines!(forms_need_their_csrf_token_and_logins_fail_generically);
async fn forms_need_their_csrf_token_and_logins_fail_generically(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("csrf@example.com").await;
    let (status, _) = b.post("/dashboard/api-keys", &[("name", "no token")]).await;
    assert_eq!(status, 403);
    let (status, _) = b.post("/dashboard/api-keys", &[("csrf", "forged"), ("name", "bad token")]).await;
    assert_eq!(status, 403);
    let (_, page) = b.get("/dashboard/api-keys").await;
    assert!(!page.contains("no token") && !page.contains("bad token"), "nothing was created");

    let (status, _) = b.post("/logout", &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    let (_, page) = b.get("/dashboard").await;
    assert!(page.contains("Log in"), "logged out: the dashboard sends you to the login page");

    let fresh = Browser::new(&app);
    let (_, login) = fresh.get("/login").await;
    let t = csrf(&login);
    let (s1, wrong_password) =
        fresh.post("/login", &[("csrf", &t), ("email", "csrf@example.com"), ("password", "nope nope nope")]).await;
    let (_, login) = fresh.get("/login").await;
    let t = csrf(&login);
    let (s2, unknown_email) =
        fresh.post("/login", &[("csrf", &t), ("email", "ghost@example.com"), ("password", "nope nope nope")]).await;
    assert_eq!((s1, s2), (401, 401));
    assert!(wrong_password.contains("Wrong email or password.") && unknown_email.contains("Wrong email or password."));
    let (_, login) = fresh.get("/login").await;
    let (status, page) = fresh
        .post(
            "/login",
            &[("csrf", &csrf(&login)), ("email", "csrf@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Welcome"), "{page}");
    // A login form posted without its own CSRF cookie is refused.
    let bare = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = bare
        .post(format!("{}/login", app.base))
        .form(&[("csrf", "x"), ("email", "a"), ("password", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

both_engines!(agents_registered_in_the_dashboard_toggle_to_draft_and_stay_private);
async fn agents_registered_in_the_dashboard_toggle_to_draft_and_stay_private(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("owner@example.com").await;
    let autonomous = app.register_agent(None, "did:t:loose", json!({})).await;
    let form = [
        ("csrf", token.as_str()),
        ("name", "Form agent"),
        ("did", "did:t:form"),
        ("capabilities", "code-review, docs"),
        ("pricing_model", "fixed"),
        ("base_price", "3.50"),
    ];
    let (status, page) = b.post("/dashboard/agents", &form).await;
    assert_eq!(status, 200, "{page}");
    let agent_key = shown_key(&page, "agk_");
    assert!(!page.contains("did:t:loose"), "an autonomous agent is in no dashboard");
    let (_, reload) = b.get("/dashboard/agents").await;
    assert!(!reload.contains(&agent_key) && reload.contains("did:t:form"));
    let profile = app.get("/api/v1/agents/did%3At%3Aform", None).await.expect(200);
    let id = profile.data()["id"].as_str().unwrap().to_string();
    assert_eq!(profile.data()["base_price"], "3.50");

    let (status, _) = b.post(&format!("/dashboard/agents/{id}/toggle"), &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    let listed = app.get("/api/v1/agents", None).await.expect(200);
    let dids: Vec<&str> = listed.data().as_array().unwrap().iter().map(|a| a["did"].as_str().unwrap()).collect();
    assert_eq!(dids, ["did:t:loose"], "the draft left the marketplace");
    let (_, page) = b.get("/dashboard/agents").await;
    assert!(page.contains("Make active"));
    let (_, market) = b.get("/").await;
    assert!(!market.contains("did:t:form") && market.contains("did:t:loose"));

    // Bad input re-shows the form with the errors; another user sees none of this.
    let bad = [
        ("csrf", token.as_str()),
        ("name", "Keep me"),
        ("did", "nope"),
        ("capabilities", ""),
        ("pricing_model", "fixed"),
        ("base_price", ""),
    ];
    let (status, page) = b.post("/dashboard/agents", &bad).await;
    assert_eq!(status, 422);
    assert!(page.contains("value=\"Keep me\"") && page.contains("must look like did"), "{page}");
    let other = Browser::new(&app);
    let other_token = other.sign_up("other@example.com").await;
    let (_, page) = other.get("/dashboard/agents").await;
    assert!(!page.contains("did:t:form") && page.contains("No agents yet"));
    let (_, page) = other.get("/dashboard/api-keys").await;
    assert!(!page.contains("owner@example.com"));
    let (status, _) = other.post(&format!("/dashboard/agents/{id}/toggle"), &[("csrf", &other_token)]).await;
    assert_eq!(status, 422, "someone else's agent is refused");
    assert_eq!(app.get(&format!("/api/v1/agents/{}", autonomous.id), None).await.data()["owner_id"], json!(null));
}

both_engines!(tasks_and_wallet_pages_act_through_the_engine);
async fn tasks_and_wallet_pages_act_through_the_engine(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("payer@example.com").await;
    let (_, page) = b
        .post("/dashboard/api-keys", &[("csrf", &token), ("name", "k"), ("scopes", ""), ("max_price_per_hire", "")])
        .await;
    let key = shown_key(&page, "ap_");
    let (status, page) =
        b.post("/dashboard/wallet/deposit", &[("csrf", &token), ("amount", "25.00"), ("method", "sandbox")]).await;
    assert_eq!(status, 200);
    assert!(page.contains("25.00 USD added."));
    let (status, page) =
        b.post("/dashboard/wallet/deposit", &[("csrf", &token), ("amount", "-1"), ("method", "sandbox")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("amount"), "{page}");
    let provider = app.register_agent(None, "did:t:dash-provider", json!({"base_price": "10.00"})).await;
    let task = app.task(&key, &provider, json!({})).await.expect(201);
    let id = task.data()["id"].as_str().unwrap().to_string();
    let (_, list) = b.get("/dashboard/tasks").await;
    assert!(list.contains(&id), "the client's task is listed");
    let (status, _) = b.post(&format!("/dashboard/tasks/{id}/pay"), &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    assert_eq!(app.balance(&key).await, ("15.00".into(), "10.00".into(), "0.00".into(), "25.00".into()));
    // Accepting before completion is refused with the engine's message, and nothing moves.
    let (status, page) = b.post(&format!("/dashboard/tasks/{id}/accept"), &[("csrf", &token), ("rating", "5")]).await;
    assert_eq!(status, 422);
    assert!(page.contains("cannot be accepted"), "{page}");
    app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&provider.key), json!({"output": "done"})).await.expect(200);
    let (status, page) = b
        .post(&format!("/dashboard/tasks/{id}/accept"), &[("csrf", &token), ("rating", "5"), ("review", "great")])
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"payment-status\">released"), "{page}");
    assert_eq!(app.available(&provider.key).await, "9.50");
    let (_, wallet) = b.get("/dashboard/wallet").await;
    assert!(wallet.contains("escrow_release") && wallet.contains("15.00"));
    // Messages and a dispute with evidence from the task's page.
    let (status, page) =
        b.post(&format!("/dashboard/tasks/{id}/message"), &[("csrf", &token), ("content", "thanks for this")]).await;
    assert_eq!(status, 200);
    assert!(page.contains("thanks for this"));
    let second = app.task(&key, &provider, json!({"payment_type": "balance"})).await.expect(201);
    let second = second.data()["id"].as_str().unwrap().to_string();
    app.post(&format!("/api/v1/tasks/{second}/complete"), Some(&provider.key), json!({"output": "meh"}))
        .await
        .expect(200);
    let (status, page) = b
        .post(&format!("/dashboard/tasks/{second}/dispute"), &[("csrf", &token), ("reason", "not what I asked")])
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("not what I asked") && page.contains("Add evidence"), "{page}");
    let (_, page) =
        b.post(&format!("/dashboard/tasks/{second}/evidence"), &[("csrf", &token), ("content", "see the brief")]).await;
    assert!(page.contains("client: see the brief"));
    // Someone else sees neither the task nor its actions.
    let other = Browser::new(&app);
    let other_token = other.sign_up("nosy@example.com").await;
    let (status, _) = other.get(&format!("/dashboard/tasks/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = other.post(&format!("/dashboard/tasks/{id}/cancel"), &[("csrf", &other_token)]).await;
    assert_eq!(status, 404);
    let (_, list) = other.get("/dashboard/tasks").await;
    assert!(!list.contains(&id) && list.contains("No tasks"));
    // The administrators' page is for administrators only.
    let (status, _) = other.get("/dashboard/admin").await;
    assert_eq!(status, 404);
    let (status, _) = other.post(&format!("/dashboard/admin/deposits/{id}/confirm"), &[("csrf", &other_token)]).await;
    assert_eq!(status, 404);
}

both_engines!(webhooks_page_shows_the_secret_once);
async fn webhooks_page_shows_the_secret_once(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("hooks@example.com").await;
    let (status, page) = b
        .post(
            "/dashboard/webhooks",
            &[("csrf", &token), ("callback_url", "https://hooks.example.com/x"), ("events", "")],
        )
        .await;
    assert_eq!(status, 200);
    let secret = shown_key(&page, "whsec_");
    let (_, reload) = b.get("/dashboard/webhooks").await;
    assert!(
        !reload.contains(&secret)
            && reload.contains("https://hooks.example.com/x")
            && reload.contains("task.completed")
    );
    let (status, page) = b
        .post("/dashboard/webhooks", &[("csrf", &token), ("callback_url", "ftp://nope"), ("events", "task.exploded")])
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("value=\"ftp://nope\"") && page.contains("unknown event"), "{page}");
    let id_at = reload.find("/dashboard/webhooks/").unwrap() + "/dashboard/webhooks/".len();
    let id = reload[id_at..].split('/').next().unwrap().to_string();
    let (status, page) = b.post(&format!("/dashboard/webhooks/{id}/delete"), &[("csrf", &token)]).await;
    assert_eq!(status, 200);
    assert!(page.contains("No webhooks yet."));
}

both_engines!(logins_are_throttled_per_account_and_ip, |c: &mut agentmarket::Config| c.auth_failures_per_minute = 3);
async fn logins_are_throttled_per_account_and_ip(app: TestApp) {
    let b = Browser::new(&app);
    b.sign_up("locked@example.com").await;
    let attacker = Browser::new(&app);
    for _ in 0..3 {
        let (_, login) = attacker.get("/login").await;
        let (status, _) = attacker
            .post(
                "/login",
                &[("csrf", &csrf(&login)), ("email", "locked@example.com"), ("password", "guess guess guess")],
            )
            .await;
        assert_eq!(status, 401);
    }
    let (_, login) = attacker.get("/login").await;
    let (status, page) = attacker
        .post(
            "/login",
            &[("csrf", &csrf(&login)), ("email", "locked@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(status, 429, "locked out even with the right password");
    assert!(page.contains("Too many attempts"));
    app.clock.advance_secs(301);
    let (_, login) = attacker.get("/login").await;
    let (status, page) = attacker
        .post(
            "/login",
            &[("csrf", &csrf(&login)), ("email", "locked@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Welcome"));
}

both_engines!(nobody_locks_a_person_out_from_elsewhere, |c: &mut agentmarket::Config| {
    c.auth_failures_per_minute = 10;
    c.trust_forwarded_for = true;
});
async fn nobody_locks_a_person_out_from_elsewhere(app: TestApp) {
    let owner = Browser::from_ip(&app, "203.0.113.7");
    owner.sign_up("owner@example.com").await;
    let attacker = Browser::from_ip(&app, "198.51.100.9");
    for _ in 0..10 {
        let (_, login) = attacker.get("/login").await;
        attacker
            .post(
                "/login",
                &[("csrf", &csrf(&login)), ("email", "owner@example.com"), ("password", "wrong wrong wrong")],
            )
            .await;
    }
    let (_, login) = attacker.get("/login").await;
    let (status, _) = attacker
        .post(
            "/login",
            &[("csrf", &csrf(&login)), ("email", "owner@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(status, 429, "the attacking IP is locked out");
    // The owner, from their own address, still gets in at once.
    let owner_again = Browser::from_ip(&app, "203.0.113.7");
    let (_, login) = owner_again.get("/login").await;
    let (status, page) = owner_again
        .post(
            "/login",
            &[("csrf", &csrf(&login)), ("email", "owner@example.com"), ("password", "correct horse battery")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Welcome"));
}

both_engines!(withdrawals_from_the_wallet_page_hold_at_once);
async fn withdrawals_from_the_wallet_page_hold_at_once(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("payout@example.com").await;
    b.post("/dashboard/wallet/deposit", &[("csrf", &token), ("amount", "20.00"), ("method", "sandbox")]).await;
    let (_, page) = b.get("/dashboard/wallet").await;
    assert!(page.contains("Save a payout address first."));
    let (status, page) = b
        .post(
            "/dashboard/wallet/addresses",
            &[("csrf", &token), ("currency", "USDC"), ("address", "0xfeed"), ("label", "cold")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Address 0xfeed saved."));
    let at = page.find("name=\"withdrawal_address_id\"><option value=\"").unwrap()
        + "name=\"withdrawal_address_id\"><option value=\"".len();
    let address = page[at..].split('"').next().unwrap().to_string();
    let (status, page) = b
        .post(
            "/dashboard/wallet/withdraw",
            &[("csrf", &token), ("amount", "25.00"), ("withdrawal_address_id", &address)],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("available balance"), "{page}");
    let (status, page) = b
        .post(
            "/dashboard/wallet/withdraw",
            &[("csrf", &token), ("amount", "5.00"), ("withdrawal_address_id", &address)],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Withdrawal of 5.00 USD requested"));
    assert!(page.contains("15.00"), "the amount left available at once");
}

/// The "Older →" link of a dashboard list page.
fn older_link(page: &str) -> String {
    let end = page.find("\">Older →").expect("an Older link");
    let start = page[..end].rfind("href=\"").expect("its href") + 6;
    page[start..end].replace("&amp;", "&")
}

both_engines!(long_lists_paginate);
async fn long_lists_paginate(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("pages@example.com").await;
    for _ in 0..21 {
        b.post("/dashboard/wallet/deposit", &[("csrf", &token), ("amount", "1.00"), ("method", "sandbox")]).await;
    }
    let (_, first) = b.get("/dashboard/wallet").await;
    assert!(first.contains("Older →") && !first.contains("← Newest"));
    assert_eq!(first.matches(">deposit<").count(), 20);
    // The next page follows a keyset cursor; an old `page=2` link reaches the same rows.
    let (_, second) = b.get(&older_link(&first)).await;
    assert!(second.contains("← Newest") && !second.contains("Older →"));
    assert_eq!(second.matches(">deposit<").count(), 1);
    let (_, by_number) = b.get("/dashboard/wallet?page=2").await;
    assert_eq!(by_number.matches(">deposit<").count(), 1);
    let (_, edited) = b.get("/dashboard/wallet?after=garbage&page=2").await;
    assert_eq!(edited.matches(">deposit<").count(), 20, "an edited cursor shows the first page");
}

both_engines!(an_agents_page_edits_it_and_manages_its_keys);
async fn an_agents_page_edits_it_and_manages_its_keys(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("agentpage@example.com").await;
    let form = [
        ("csrf", token.as_str()),
        ("name", "Editable"),
        ("did", "did:t:editable"),
        ("capabilities", "docs"),
        ("pricing_model", "fixed"),
        ("base_price", "1"),
    ];
    let (_, page) = b.post("/dashboard/agents", &form).await;
    let first_key = shown_key(&page, "agk_");
    let id = app.get("/api/v1/agents/did%3At%3Aeditable", None).await.data()["id"].as_str().unwrap().to_string();
    let path = format!("/dashboard/agents/{id}");
    let (status, page) = b.get(&path).await;
    assert_eq!(status, 200);
    assert!(page.contains("Earned") && page.contains(&first_key[first_key.len() - 4..]));
    let (status, page) = b
        .post(
            &format!("{path}/edit"),
            &[
                ("csrf", &token),
                ("name", "Edited"),
                ("capabilities", "docs, rust"),
                ("base_price", "2.25"),
                ("description", "Writes docs"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Saved."));
    let profile = app.get(&format!("/api/v1/agents/{id}"), None).await.expect(200);
    assert_eq!(
        (profile.data()["name"].as_str(), profile.data()["base_price"].as_str()),
        (Some("Edited"), Some("2.25"))
    );
    assert_eq!(profile.data()["capabilities"], json!(["docs", "rust"]));
    let (status, page) = b
        .post(
            &format!("{path}/edit"),
            &[("csrf", &token), ("name", ""), ("capabilities", "docs"), ("base_price", "x"), ("description", "")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("must be 1–100 characters"), "{page}");
    let (_, page) = b.post(&format!("{path}/keys"), &[("csrf", &token)]).await;
    let second = shown_key(&page, "agk_");
    app.get("/api/v1/agents", Some(&second)).await.expect(200);
    let keys = app.get(&format!("/api/v1/agents/{id}/credentials"), Some(&second)).await.expect(200);
    let first_id = keys.data().as_array().unwrap().iter().find(|k| k["name"] == "default").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, page) = b.post(&format!("{path}/keys/{first_id}/revoke"), &[("csrf", &token)]).await;
    assert!(page.contains("Key revoked."));
    app.get("/api/v1/agents", Some(&first_key)).await.expect_error(401, "UNAUTHORIZED");
    // Another user cannot open it.
    let other = Browser::new(&app);
    other.sign_up("not-owner@example.com").await;
    assert_eq!(other.get(&path).await.0, 404);
}

both_engines!(keys_and_agents_lists_paginate_too);
async fn keys_and_agents_lists_paginate_too(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("many@example.com").await;
    for i in 0..21 {
        let name = format!("key-{i:02}");
        b.post("/dashboard/api-keys", &[("csrf", &token), ("name", &name), ("scopes", ""), ("max_price_per_hire", "")])
            .await;
    }
    // 22 keys with the sign-up key: 20 on the first page, 2 on the second.
    let (_, first) = b.get("/dashboard/api-keys").await;
    assert!(first.contains("Older →") && first.contains("key-20") && !first.contains(">default<"));
    let (_, second) = b.get(&older_link(&first)).await;
    assert!(second.contains(">default<") && second.contains("← Newest") && !second.contains("key-20"));
}

both_engines!(a_login_costs_the_same_for_an_unknown_email_as_for_a_wrong_password, |c: &mut agentmarket::Config| {
    // Enough failures allowed that the throttle never answers instead of the password check.
    c.auth_failures_per_minute = 1_000;
});
async fn a_login_costs_the_same_for_an_unknown_email_as_for_a_wrong_password(app: TestApp) {
    app.signup("timing@example.com").await;
    let b = Browser::new(&app);
    let (_, page) = b.get("/login").await;
    let mut token = csrf(&page);
    let mut attempt = async |email: &str| {
        let started = std::time::Instant::now();
        let (status, page) =
            b.post("/login", &[("csrf", &token), ("email", email), ("password", "nope nope nope")]).await;
        let took = started.elapsed();
        assert_eq!(status, 401, "{page}");
        token = csrf(&page);
        took
    };
    // Interleaved, so load on the machine weighs on both alike; the first round warms up.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..6 {
        let k = attempt("timing@example.com").await;
        let u = attempt(&format!("ghost{round}@example.com")).await;
        if round > 0 {
            known.push(k);
            unknown.push(u);
        }
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[known.len() / 2], unknown[unknown.len() / 2]);
    assert!(u.as_secs_f64() >= 0.5 * k.as_secs_f64(), "median login: known email {k:?}, unknown email {u:?}");
}

both_engines!(pages_send_security_headers_and_secret_pages_are_never_cached, |c: &mut agentmarket::Config| {
    c.trust_forwarded_for = true;
});
async fn pages_send_security_headers_and_secret_pages_are_never_cached(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("headers@example.com").await;
    let check = |r: &reqwest::Response, cached: bool| {
        let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let csp = h("content-security-policy");
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "no inline code allowed");
        assert_eq!(h("x-frame-options"), "DENY");
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("referrer-policy"), "same-origin");
        assert_eq!(h("cache-control") == "no-store", !cached, "{}", r.url());
        assert_eq!(h("strict-transport-security"), "", "no HSTS over plain http");
    };
    for (path, cached) in [("/", true), ("/login", false), ("/dashboard", false), ("/dashboard/api-keys", false)] {
        let r = b.http.get(format!("{}{path}", b.base)).send().await.unwrap();
        check(&r, cached);
    }
    // The page that shows a new key once.
    let r = b
        .http
        .post(format!("{}/dashboard/api-keys", b.base))
        .form(&[("csrf", token.as_str()), ("name", "shown"), ("scopes", ""), ("max_price_per_hire", "")])
        .send()
        .await
        .unwrap();
    check(&r, false);
    assert!(r.text().await.unwrap().contains("new-key"));
    // Over https through the trusted proxy: HSTS.
    let r = b.http.get(format!("{}/login", b.base)).header("x-forwarded-proto", "https").send().await.unwrap();
    assert!(r.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    // The pages run no inline script: the one script is served from our origin.
    let (_, page) = b.get("/dashboard/api-keys").await;
    assert!(page.contains("<script src=\"/static/app.js\"></script>") && !page.contains("style=\""));
    let js = b.http.get(format!("{}/static/app.js", b.base)).send().await.unwrap();
    assert_eq!(js.status(), 200);
}

both_engines!(the_admin_page_shows_the_last_stored_audit_and_runs_one_on_demand);
async fn the_admin_page_shows_the_last_stored_audit_and_runs_one_on_demand(app: TestApp) {
    let admin = app.admin("root@example.com").await;
    let b = Browser::new(&app);
    let (_, login) = b.get("/login").await;
    let form =
        [("csrf", csrf(&login)), ("email", "root@example.com".into()), ("password", "administrator password".into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = b.post("/login", &form).await;
    assert_eq!(status, 200);
    // A view does not audit: nothing has run yet.
    let (status, page) = b.get("/dashboard/admin").await;
    assert_eq!(status, 200);
    assert!(page.contains("not run yet"), "{page}");
    let (status, page) = b.post("/dashboard/admin/ledger/run/audit", &[("csrf", &csrf(&page))]).await;
    assert_eq!(status, 200);
    assert!(page.contains("every invariant holds") && page.contains("last run"), "{page}");
    // The API's on-demand audit is stored too, and the page shows the latest.
    app.clock.advance_secs(3600);
    let r = app.get("/api/v1/admin/ledger/audit", Some(&admin.key)).await.expect(200);
    let checked_at = r.data()["checked_at"].as_str().unwrap().to_string();
    let (_, page) = b.get("/dashboard/admin").await;
    assert!(page.contains(&format!("last run <time datetime=\"{checked_at}\"")), "{page}");
}
