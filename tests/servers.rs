//! Several real server processes on one database. What servers share — rate limits, the
//! authentication lockout — is one limit for all of them on one PostgreSQL, and survives a
//! restart, even a `kill -9`, on either engine.

#[path = "process/mod.rs"]
mod process;

use std::path::Path;
use std::time::Duration;

use process::{Client, Server, postgres, run, sqlite};
use serde_json::{Value, json};

#[test]
fn two_servers_on_one_postgres_enforce_one_request_limit() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        let args = ["--rate-general-per-minute", "6", "--signup-limit-per-hour", "100"];
        let (a, b) = (Server::start(&url, dir.path(), &args), Server::start(&url, dir.path(), &args));
        let http = Client::new();
        let key = http.signup(&a, "shared@example.com").await;
        // Six requests a minute for this key, whichever server answers.
        for i in 0..6 {
            let server = if i % 2 == 0 { &a } else { &b };
            assert_eq!(http.get(server, "/api/v1/accounts/me", Some(&key)).await, 200, "request {i}");
        }
        assert_eq!(http.get(&a, "/api/v1/accounts/me", Some(&key)).await, 429);
        assert_eq!(http.get(&b, "/api/v1/accounts/me", Some(&key)).await, 429);
    });
}

#[test]
fn two_servers_on_one_postgres_share_the_authentication_lockout_and_registration_limit() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        let args = ["--auth-failures-per-minute", "4", "--register-limit-per-hour", "3"];
        let (a, b) = (Server::start(&url, dir.path(), &args), Server::start(&url, dir.path(), &args));
        let http = Client::new();
        let bad = format!("agk_{}", "q".repeat(40));
        for (i, server) in [&a, &b, &a].into_iter().enumerate() {
            let (status, _) = http.post(server, "/api/v1/auth/authenticate", Some(&bad), json!({})).await;
            assert_eq!(status, 401, "failure {i}");
        }
        let (status, _) = http.post(&b, "/api/v1/auth/authenticate", Some(&bad), json!({})).await;
        assert_eq!(status, 429, "the fourth failure, on the other server, locks the IP out");
        let good = http.signup(&a, "lockout@example.com").await;
        let (status, _) = http.post(&a, "/api/v1/auth/authenticate", Some(&good), json!({})).await;
        assert_eq!(status, 429, "locked out on every server, even with a good key");

        // Anonymous registrations: three an hour per IP, across both servers.
        for i in 0..3 {
            let server = if i % 2 == 0 { &a } else { &b };
            let agent = json!({"name": "n", "did": format!("did:t:shared{i}"), "capabilities": ["x"], "pricing_model": "fixed"});
            let (status, r) = http.post(server, "/api/v1/agents/register", None, agent).await;
            assert_eq!(status, 201, "{r}");
        }
        let agent = json!({"name": "n", "did": "did:t:shared-over", "capabilities": ["x"], "pricing_model": "fixed"});
        let (status, _) = http.post(&b, "/api/v1/agents/register", None, agent).await;
        assert_eq!(status, 429);
    });
}

/// Limits and lockouts are still in force after the server is killed and started again.
async fn limits_survive_a_crash(url: &str, dir: &Path) {
    let args = ["--rate-general-per-minute", "4", "--auth-failures-per-minute", "2"];
    let server = Server::start(url, dir, &args);
    let http = Client::new();
    let key = http.signup(&server, "restart@example.com").await;
    for _ in 0..4 {
        assert_eq!(http.get(&server, "/api/v1/accounts/me", Some(&key)).await, 200);
    }
    let bad = format!("ap_{}", "q".repeat(40));
    http.post(&server, "/api/v1/auth/authenticate", Some(&bad), json!({})).await;
    let (status, _) = http.post(&server, "/api/v1/auth/authenticate", Some(&bad), json!({})).await;
    assert_eq!(status, 429);
    server.kill();

    let again = Server::start(url, dir, &args);
    assert_eq!(http.get(&again, "/api/v1/accounts/me", Some(&key)).await, 429, "the count survived the crash");
    let (status, _) = http.post(&again, "/api/v1/auth/authenticate", Some(&key), json!({})).await;
    assert_eq!(status, 429, "the lockout survived the crash");
}

#[test]
fn limits_survive_a_crash_on_sqlite() {
    run(async {
        let (url, dir) = sqlite().await;
        limits_survive_a_crash(&url, dir.path()).await;
    });
}

#[test]
fn limits_survive_a_crash_on_postgres() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        limits_survive_a_crash(&url, dir.path()).await;
    });
}

/// Holds a lock that stalls a deposit inside its transaction: the database's write lock
/// (SQLite), or the ledger's table (PostgreSQL).
async fn stall(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let sql = if url.starts_with("sqlite") {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN; LOCK TABLE ledger_accounts IN ACCESS EXCLUSIVE MODE"
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    conn
}

/// A server killed while a request with an idempotency key is in its transaction: nothing
/// committed, so the retry runs at once on the restarted server, with one effect.
async fn a_crash_mid_request_leaves_the_key_retryable(url: &str, dir: &Path) {
    let server = Server::start(url, dir, &["--enable-sandbox-deposits"]);
    let http = Client::new();
    let key = http.signup(&server, "crash@example.com").await;
    let deposit = |base: String| {
        http.0
            .post(format!("{base}/api/v1/ledger/deposit"))
            .header("x-api-key", &key)
            .header("idempotency-key", "crash-1")
            .json(&json!({"amount": "4", "currency": "USD", "payment_method": "sandbox"}))
    };
    let mut lock = stall(url).await;
    let in_flight = tokio::spawn(deposit(server.base.clone()).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    assert!(in_flight.await.unwrap().is_err(), "the request died with its server");
    sqlx::raw_sql("ROLLBACK").execute(&mut lock).await.unwrap();

    let again = Server::start(url, dir, &["--enable-sandbox-deposits"]);
    let retried = deposit(again.base.clone()).send().await.unwrap();
    assert_eq!(retried.status().as_u16(), 201, "{}", retried.text().await.unwrap());
    let balance =
        http.call(reqwest::Method::GET, format!("{}/api/v1/ledger/balance", again.base), Some(&key), Value::Null).await;
    assert_eq!(balance.1["data"]["available"], "4.00", "one effect");
}

#[test]
fn a_crash_mid_request_leaves_the_key_retryable_on_sqlite() {
    run(async {
        let (url, dir) = sqlite().await;
        a_crash_mid_request_leaves_the_key_retryable(&url, dir.path()).await;
    });
}

#[test]
fn a_crash_mid_request_leaves_the_key_retryable_on_postgres() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        a_crash_mid_request_leaves_the_key_retryable(&url, dir.path()).await;
    });
}

/// Each server trusts a verified key for at most 2 s (`--key-cache-ttl-ms`): a key revoked on
/// one server is refused by the server that revoked it at once, and by the other within 2 s.
#[test]
fn a_key_revoked_on_one_server_is_refused_by_the_other_within_two_seconds() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        let (a, b) = (Server::start(&url, dir.path(), &[]), Server::start(&url, dir.path(), &[]));
        let http = Client::new();
        let owner = http.signup(&a, "revoke@example.com").await;
        let (status, r) = http.post(&a, "/api/v1/api-keys", Some(&owner), json!({"name": "short-lived"})).await;
        assert_eq!(status, 201, "{r}");
        let (id, key) =
            (r["data"]["key"]["id"].as_str().unwrap().to_string(), r["data"]["api_key"].as_str().unwrap().to_string());
        // Both servers have verified (and cached) the key.
        assert_eq!(http.get(&a, "/api/v1/accounts/me", Some(&key)).await, 200);
        assert_eq!(http.get(&b, "/api/v1/accounts/me", Some(&key)).await, 200);

        let (status, r) = http
            .call(reqwest::Method::DELETE, format!("{}/api/v1/api-keys/{id}", b.base), Some(&owner), Value::Null)
            .await;
        assert_eq!(status, 200, "{r}");
        let revoked = std::time::Instant::now();
        assert_eq!(http.get(&b, "/api/v1/accounts/me", Some(&key)).await, 401, "refused at once where it was revoked");
        loop {
            let status = http.get(&a, "/api/v1/accounts/me", Some(&key)).await;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(revoked.elapsed() < Duration::from_millis(2_500), "still accepted after {:?}", revoked.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(http.get(&a, "/api/v1/accounts/me", Some(&owner)).await, 200, "other keys unaffected");
    });
}

/// A large limit is leased in shares by each server, and two servers together still never
/// allow more than the limit; at most a share less per server (limit 100: shares of 5).
#[test]
fn two_servers_leasing_one_limit_never_exceed_it() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        let args = ["--rate-general-per-minute", "100"];
        let (a, b) = (Server::start(&url, dir.path(), &args), Server::start(&url, dir.path(), &args));
        let http = Client::new();
        let key = http.signup(&a, "leases@example.com").await;
        let mut allowed = 0;
        for i in 0..130 {
            let server = if i % 3 == 0 { &a } else { &b };
            match http.get(server, "/api/v1/accounts/me", Some(&key)).await {
                200 => allowed += 1,
                429 => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert!((92..=100).contains(&allowed), "{allowed} allowed of a limit of 100");
    });
}
