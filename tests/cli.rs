//! The binary as an operator runs it: `admin create-user`, then `serve` with no flags but a
//! database URL, driven over HTTP; its logs never contain a secret.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_agentmarket");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn clean_command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("AGENTMARKET_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn create_user_then_serve_with_defaults_and_keep_secrets_out_of_logs() {
    let dir = tempfile::tempdir().unwrap();
    // `admin create-user` on the default database (agentmarket.db in the working directory).
    let out = clean_command(dir.path())
        .args(["admin", "create-user", "--email", "ops@example.com", "--password", "operator-password", "--admin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("API key (shown once): "))
        .expect("the key is printed once")
        .to_string();
    assert!(key.starts_with("ap_"));
    assert!(dir.path().join("agentmarket.db").exists(), "the default SQLite file is created");

    // Operators credit a wallet and audit the ledger from the command line.
    let credit = clean_command(dir.path())
        .args(["admin", "credit", "--principal", "ops@example.com", "--amount", "100.00", "--reason", "seed"])
        .output()
        .unwrap();
    assert!(credit.status.success(), "{}", String::from_utf8_lossy(&credit.stderr));
    assert!(String::from_utf8_lossy(&credit.stdout).contains("credited 100.00 USD"));
    let bad = clean_command(dir.path())
        .args(["admin", "credit", "--principal", "ops@example.com", "--amount", "1e3"])
        .output()
        .unwrap();
    assert!(!bad.status.success(), "a float amount is refused");
    let audit = clean_command(dir.path()).args(["admin", "audit"]).output().unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    assert!(String::from_utf8_lossy(&audit.stdout).contains("every invariant holds"));
    // No provider deposit pending: reconciliation has nothing to ask.
    let reconcile = clean_command(dir.path()).args(["admin", "reconcile-deposits"]).output().unwrap();
    assert!(reconcile.status.success(), "{}", String::from_utf8_lossy(&reconcile.stderr));
    assert!(String::from_utf8_lossy(&reconcile.stdout).contains("0 checked, 0 changed"));

    // `agentmarket` with no subcommand serves; port 0 so the test can run anywhere.
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = clean_command(dir.path())
        .args(["--bind", "127.0.0.1:0", "--log-format", "json", "--review-window", "1s", "--sweep-interval-secs", "1"])
        // Provider secrets, and a provider URL the outbound policy refuses (so a deposit logs a warning).
        .args(["--nowpayments-api-key", PROVIDER_SECRETS[0], "--nowpayments-ipn-secret", PROVIDER_SECRETS[1]])
        .args(["--stripe-secret-key", PROVIDER_SECRETS[2], "--stripe-webhook-secret", PROVIDER_SECRETS[3]])
        .args(["--nowpayments-api-url", "http://127.0.0.1:9/v1"])
        .env("AGENTMARKET_LOG", "debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    let addr = wait_for_address(&log_path);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (me, balance, agent_key, created_key) = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let me: serde_json::Value = client
            .get(format!("http://{addr}/api/v1/accounts/me"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let agent: serde_json::Value = client
            .post(format!("http://{addr}/api/v1/agents/register"))
            .header("authorization", format!("Bearer {key}"))
            .json(&serde_json::json!({"name": "Ops bot", "did": "did:ops:bot", "capabilities": ["ops"], "pricing_model": "fixed", "base_price": "1.00"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let created: serde_json::Value = client
            .post(format!("http://{addr}/api/v1/api-keys"))
            .header("x-api-key", &key)
            .json(&serde_json::json!({"name": "second"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let balance: serde_json::Value = client
            .get(format!("http://{addr}/api/v1/ledger/balance"))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The background sweeper runs in the real server: a completed task is released once its
        // one-second review window has passed.
        let task: serde_json::Value = client
            .post(format!("http://{addr}/api/v1/tasks"))
            .header("x-api-key", &key)
            .json(&serde_json::json!({"provider_agent_id": "did:ops:bot", "capability": "ops", "input": "x", "payment_type": "balance"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task_id = task["data"]["id"].as_str().unwrap().to_string();
        let agent_key = agent["data"]["api_key"].as_str().unwrap().to_string();
        let done = client
            .post(format!("http://{addr}/api/v1/tasks/{task_id}/complete"))
            .header("x-api-key", &agent_key)
            .json(&serde_json::json!({"output": "done"}))
            .send()
            .await
            .unwrap();
        assert!(done.status().is_success());
        let mut released = false;
        for _ in 0..100 {
            let t: serde_json::Value = client
                .get(format!("http://{addr}/api/v1/tasks/{task_id}"))
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if t["data"]["payment_status"] == "released" {
                released = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(released, "the sweeper released the task");
        // A provider deposit whose provider cannot be used, and a forged callback: both logged.
        let deposit = client
            .post(format!("http://{addr}/api/v1/ledger/deposit"))
            .header("x-api-key", &key)
            .json(&serde_json::json!({"amount": "5.00", "currency": "USD", "payment_method": "crypto"}))
            .send()
            .await
            .unwrap();
        assert_eq!(deposit.status().as_u16(), 502);
        let forged = client
            .post(format!("http://{addr}/webhooks/nowpayments"))
            .header("x-nowpayments-sig", "00")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status().as_u16(), 401);
        (
            me,
            balance,
            agent["data"]["api_key"].as_str().unwrap().to_string(),
            created["data"]["api_key"].as_str().unwrap().to_string(),
        )
    });
    assert_eq!(me["data"]["email"], "ops@example.com");
    assert_eq!(me["data"]["is_admin"], true);
    assert_eq!(balance["data"]["available"], "100.00", "the CLI credit is in the wallet");
    assert!(agent_key.starts_with("agk_"));

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("\"request\"") || logs.contains("request"), "requests are logged");
    for secret in [&key, &agent_key, &created_key] {
        assert!(!logs.contains(secret.as_str()), "a secret leaked into the logs");
    }
    assert!(!logs.contains("operator-password"));
    assert!(logs.contains("outbound policy"), "the refused provider call is logged");
    for secret in PROVIDER_SECRETS {
        assert!(!logs.contains(secret), "a payment provider secret leaked into the logs");
    }
}

const PROVIDER_SECRETS: [&str; 4] =
    ["np-cli-api-key-5e1f", "np-cli-ipn-secret-0c2d", "sk_test_cli_7a7a", "whsec_cli_3b3b"];

fn wait_for_address(log_path: &std::path::Path) -> String {
    for _ in 0..300 {
        if let Ok(file) = std::fs::File::open(log_path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if line.contains("agentmarket listening") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    return v["fields"]["address"].as_str().unwrap().to_string();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not start: {}", std::fs::read_to_string(log_path).unwrap_or_default());
}

#[test]
fn unsupported_database_urls_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_command(dir.path()).args(["migrate", "--database-url", "mysql://x"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}
