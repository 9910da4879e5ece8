//! Compatibility with the real Agrenting client: fetches `@agrentingai/paperclip-adapter@0.4.0`
//! from the npm registry at test time (`npm pack` into a temporary folder; none of its code is
//! committed), starts the server (the release build when `AGENTMARKET_BIN` names it, as `.ci/run`
//! does) on a fresh database with a seeded user, balance and provider agents, and runs
//! `tests/compat/paperclip.mjs`, which drives the package's own `AgrentingClient`,
//! `verifyWebhookSignature` and `testPaperclipEnvironment`. Any failed call fails the test. The
//! server takes crypto deposits through a fake NOWPayments on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[path = "api/support/fake_providers.rs"]
#[allow(dead_code)]
mod fake_providers;

const PACKAGE: &str = "@agrentingai/paperclip-adapter@0.4.0";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `None` (skip) when Node is missing and `CI` is unset; with `CI` set it is a failure.
fn tool(name: &str) -> Option<()> {
    let ok = Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    match (ok, std::env::var_os("CI").is_some()) {
        (true, _) => Some(()),
        (false, false) => {
            eprintln!(
                "skipping the adapter compatibility test: `{name}` is not installed (set CI to make this a failure)"
            );
            None
        }
        (false, true) => panic!("`{name}` is required for the adapter compatibility test"),
    }
}

fn unpack_adapter(dir: &Path) -> PathBuf {
    let out = Command::new("npm")
        .args(["pack", PACKAGE, "--silent", "--pack-destination"])
        .arg(dir)
        .current_dir(dir)
        .output()
        .expect("npm runs");
    assert!(out.status.success(), "npm pack failed: {}", String::from_utf8_lossy(&out.stderr));
    let tarball = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_string();
    let status = Command::new("tar").arg("xzf").arg(dir.join(&tarball)).current_dir(dir).status().unwrap();
    assert!(status.success());
    dir.join("package")
}

/// `fake_nowpayments`: the base URL of a fake NOWPayments the server creates invoices at.
fn start_server(dir: &Path, fake_nowpayments: &str) -> (Server, String) {
    let bin = std::env::var("AGENTMARKET_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_agentmarket").to_string());
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("AGENTMARKET_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .current_dir(dir)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--enable-sandbox-deposits",
            "--allow-private-network",
        ])
        .args(["--webhook-interval-ms", "200"])
        .args(["--nowpayments-api-key", "compat-key", "--nowpayments-ipn-secret", "compat-ipn-secret"])
        .args(["--nowpayments-api-url", fake_nowpayments])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("the server starts");
    let server = Server(child);
    for _ in 0..300 {
        if let Ok(file) = std::fs::File::open(&log_path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if line.contains("agentmarket listening") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    return (server, format!("http://{}", v["fields"]["address"].as_str().unwrap()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not start: {}", std::fs::read_to_string(&log_path).unwrap_or_default());
}

async fn post(client: &reqwest::Client, url: String, key: Option<&str>, body: serde_json::Value) -> serde_json::Value {
    let mut req = client.post(url).json(&body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "seeding failed: {}", res.status());
    res.json().await.unwrap()
}

#[test]
fn the_paperclip_adapter_works_unchanged() {
    if tool("node").is_none() || tool("npm").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let adapter = unpack_adapter(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(fake_providers::FakeProviders::start());
    let (_server, base) = start_server(dir.path(), &fake.base);

    let user_key = rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let user = post(&http, format!("{base}/api/v1/accounts/register"), None, serde_json::json!({"email": "paperclip@example.com", "password": "paperclip password"})).await;
        let key = user["data"]["api_key"].as_str().unwrap().to_string();
        post(&http, format!("{base}/api/v1/ledger/deposit"), Some(&key), serde_json::json!({"amount": "100.00", "currency": "USD", "payment_method": "sandbox"})).await;
        for did in ["did:agrenting:reviewer", "did:agrenting:backup"] {
            let agent = serde_json::json!({"agent": {"name": did, "did": did, "capabilities": ["code-review"], "pricing_model": "fixed", "base_price": "10.00"}});
            post(&http, format!("{base}/api/v1/agents/register"), None, agent).await;
        }
        key
    });

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/paperclip.mjs");
    let out = Command::new("node")
        .arg(&script)
        .env("ADAPTER", &adapter)
        .env("AGENTMARKET_URL", &base)
        .env("USER_KEY", &user_key)
        .env("AGENT_DID", "did:agrenting:reviewer")
        .env("AGENT2_DID", "did:agrenting:backup")
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| {
            panic!("no report from the adapter script:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        });
    eprintln!("paperclip-adapter methods that pass: {}", report["passed"]);
    assert!(report["failed"].as_array().is_some_and(|f| f.is_empty()), "adapter calls failed: {:#}", report["failed"]);
    assert!(out.status.success());
    assert!(report["passed"].as_array().unwrap().len() >= 30, "every check ran: {}", report["passed"]);
    let invoices = fake.received().into_iter().filter(|r| r.path == "/invoice").count();
    assert_eq!(invoices, 2, "deposit({{amount}}) and createPaymentIntent each created one NOWPayments invoice");
}
