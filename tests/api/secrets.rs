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
