//! Secrets are stored only as SHA-256 hashes: a fresh key's plaintext appears nowhere in the
//! SQLite files, while its hash does.

use serde_json::json;

use crate::support::{Engine, TestApp};

fn database_bytes(app: &TestApp) -> Vec<u8> {
    let dir = app.dir.as_ref().expect("SQLite test app");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_secret_is_stored_in_the_sqlite_file() {
    let app = TestApp::spawn(Engine::Sqlite, |_| {}).await.unwrap();
    let user = app.signup("secret@example.com").await;
    let extra = app.post("/api/v1/api-keys", Some(&user.key), json!({"name": "extra"})).await.expect(201);
    let extra_key = extra.data()["api_key"].as_str().unwrap().to_string();
    let agent = app.register_agent(Some(&user.key), "did:t:secret", json!({})).await;
    let session = app.post("/api/v1/auth/authenticate", Some(&agent.key), json!({})).await.expect(200);
    let token = session.data()["token"].as_str().unwrap().to_string();

    let bytes = database_bytes(&app);
    for secret in [&user.key, &extra_key, &agent.key, &token] {
        assert!(!contains(&bytes, secret), "plaintext secret found in the database files");
        assert!(!contains(&bytes, &secret[secret.len() - 20..]), "a secret's tail found in the database files");
        assert!(contains(&bytes, &sha256_hex(secret)), "the hash is what is stored (and we looked in the right place)");
    }
    assert!(!contains(&bytes, "correct horse battery"), "passwords are stored hashed");
    assert!(contains(&bytes, "$argon2id$"), "passwords are Argon2id");
    app.stop().await;
}

/// Sends `body` to `path` with `key` (if any) and an idempotency key; returns the response.
async fn idempotent(
    app: &TestApp,
    path: &str,
    key: Option<&str>,
    idem: &str,
    body: serde_json::Value,
) -> crate::support::Resp {
    let mut req = app.client.post(app.url(path)).header("idempotency-key", idem).json(&body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    app.send(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_stored_in_plaintext_even_with_idempotency_keys() {
    let app = TestApp::spawn(Engine::Sqlite, |_| {}).await.unwrap();
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, r: &crate::support::Resp, pointer: &str| {
        let s = r.body.pointer(pointer).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{what}: {}", r.text));
        secrets.push((what.to_string(), s.to_string()));
        s.to_string()
    };
    let signup = idempotent(
        &app,
        "/api/v1/accounts/register",
        None,
        "s-1",
        json!({"email": "grep@example.com", "password": "correct horse battery"}),
    )
    .await
    .expect(201);
    let user_key = keep("sign-up key", &signup, "/data/api_key");
    let created =
        idempotent(&app, "/api/v1/api-keys", Some(&user_key), "s-2", json!({"name": "second"})).await.expect(201);
    keep("created key", &created, "/data/api_key");
    let id = created.data()["key"]["id"].as_str().unwrap().to_string();
    let rolled =
        idempotent(&app, &format!("/api/v1/api-keys/{id}/roll"), Some(&user_key), "s-3", json!({})).await.expect(201);
    keep("rolled key", &rolled, "/data/api_key");
    let owned = idempotent(
        &app,
        "/api/v1/agents/register",
        Some(&user_key),
        "s-4",
        json!({"agent": {"name": "A",
        "did": "did:t:grep-a", "capabilities": ["x"], "pricing_model": "fixed"}}),
    )
    .await
    .expect(201);
    let agent_key = keep("owned agent key", &owned, "/data/api_key");
    let agent_id = owned.data()["agent"]["id"].as_str().unwrap().to_string();
    let solo = idempotent(
        &app,
        "/api/v1/agents/register",
        None,
        "s-5",
        json!({"agent": {"name": "S",
        "did": "did:t:grep-s", "capabilities": ["x"], "pricing_model": "fixed"}}),
    )
    .await
    .expect(201);
    keep("autonomous agent key", &solo, "/data/api_key");
    let post_agent = idempotent(
        &app,
        "/api/v1/agents",
        Some(&user_key),
        "s-6",
        json!({"name": "B",
        "did": "did:t:grep-b", "capabilities": ["x"], "pricing_model": "fixed"}),
    )
    .await
    .expect(201);
    keep("POST /agents key", &post_agent, "/data/api_key");
    let credential =
        idempotent(&app, &format!("/api/v1/agents/{agent_id}/credentials"), Some(&agent_key), "s-7", json!({}))
            .await
            .expect(201);
    keep("agent credential", &credential, "/data/api_key");
    let user_session =
        idempotent(&app, "/api/v1/auth/authenticate", Some(&user_key), "s-8", json!({})).await.expect(200);
    keep("user session", &user_session, "/data/token");
    let agent_session =
        idempotent(&app, "/api/v1/auth/authenticate", Some(&agent_key), "s-9", json!({})).await.expect(200);
    keep("agent session", &agent_session, "/data/token");
    let webhook = idempotent(
        &app,
        "/api/v1/webhooks",
        Some(&user_key),
        "s-10",
        json!({"callback_url": "http://127.0.0.1:9/hook"}),
    )
    .await
    .expect(201);
    keep("generated webhook secret", &webhook, "/data/secret_key");
    let chosen = idempotent(
        &app,
        "/api/v1/webhooks",
        Some(&user_key),
        "s-11",
        json!({"callback_url": "http://127.0.0.1:9/hook2", "secret": "my-own-signing-secret-123"}),
    )
    .await
    .expect(201);
    keep("chosen webhook secret", &chosen, "/data/secret_key");
    let rotated = idempotent(&app, "/api/v1/auth/rotate-key", Some(&agent_key), "s-12", json!({})).await.expect(201);
    keep("rotated agent key", &rotated, "/data/api_key");
    let rotated_user =
        idempotent(&app, "/api/v1/auth/rotate-key", Some(&user_key), "s-13", json!({})).await.expect(201);
    keep("rotated user key", &rotated_user, "/data/api_key");
    // The dashboard: its session cookie and CSRF token.
    let browser = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = browser.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let at = login.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = login[at..].split('"').next().unwrap().to_string();
    let signed_in = browser
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("email", "grep@example.com"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.cookies().find(|c| c.name() == "am_session").expect("a session cookie").value().to_string();
    let page = browser.get(app.url("/dashboard")).send().await.unwrap().text().await.unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    secrets.push(("dashboard cookie".into(), cookie));
    secrets.push(("dashboard CSRF token".into(), page[at..].split('"').next().unwrap().to_string()));

    let bytes = database_bytes(&app);
    assert!(dir_has_wal(&app), "the WAL is part of what was searched");
    for (what, secret) in &secrets {
        assert!(secret.len() >= 20, "{what}: {secret}");
        assert!(!contains(&bytes, secret), "{what} is stored in plaintext");
        assert!(!contains(&bytes, &secret[secret.len() - 16..]), "the tail of the {what} is stored");
    }
    assert!(contains(&bytes, "sealed.v1."), "webhook secrets are stored sealed");
    assert!(contains(&bytes, agentmarket::auth::keys::SHOWN_ONCE), "replays keep a marker instead");
    app.stop().await;
}

fn dir_has_wal(app: &TestApp) -> bool {
    std::fs::read_dir(app.dir.as_ref().unwrap().path())
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().ends_with("-wal"))
}

crate::both_engines!(a_replay_never_hands_out_a_secret_again);
async fn a_replay_never_hands_out_a_secret_again(app: TestApp) {
    // An anonymous registration replayed from the same address with the same key and body: the
    // second client gets the same agent, and a marker where the key was.
    let body = json!({"agent": {"name": "Once", "did": "did:t:once", "capabilities": ["x"], "pricing_model": "fixed"}});
    let first = idempotent(&app, "/api/v1/agents/register", None, "reg-1", body.clone()).await.expect(201);
    let replay = idempotent(&app, "/api/v1/agents/register", None, "reg-1", body).await.expect(201);
    let secret = first.data()["api_key"].as_str().unwrap();
    assert!(secret.starts_with("agk_"));
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert!(!replay.text.contains(secret), "the secret is not replayed");
    assert_eq!(replay.data()["api_key"], agentmarket::auth::keys::SHOWN_ONCE);
    assert_eq!(replay.data()["agent"]["id"], first.data()["agent"]["id"], "the same resource");
    app.get("/api/v1/agents/did%3At%3Aonce", Some(secret)).await.expect(200);

    let user = app.signup("replay@example.com").await;
    let webhook = json!({"callback_url": "http://127.0.0.1:9/hook"});
    let first = idempotent(&app, "/api/v1/webhooks", Some(&user.key), "wh-1", webhook.clone()).await.expect(201);
    let replay = idempotent(&app, "/api/v1/webhooks", Some(&user.key), "wh-1", webhook).await.expect(201);
    assert_eq!(replay.data()["secret_key"], agentmarket::auth::keys::SHOWN_ONCE);
    assert_eq!(replay.data()["id"], first.data()["id"]);
    let session = idempotent(&app, "/api/v1/auth/authenticate", Some(&user.key), "auth-1", json!({})).await.expect(200);
    let again = idempotent(&app, "/api/v1/auth/authenticate", Some(&user.key), "auth-1", json!({})).await.expect(200);
    assert!(!again.text.contains(session.data()["token"].as_str().unwrap()));
    assert_eq!(again.data()["token"], agentmarket::auth::keys::SHOWN_ONCE);
}
