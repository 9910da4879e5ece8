//! Real `agentmarket` processes for the multi-process tests: start one on a database, talk to
//! it over HTTP, kill it as a crash would.
#![allow(dead_code)] // each test file uses its own part

#[path = "../api/support/pg.rs"]
pub mod pg;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agentmarket");

/// A running `agentmarket` process; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on `database_url` with `args`, on a free port, and waits until it listens.
    pub fn start(database_url: &str, dir: &Path, args: &[&str]) -> Server {
        let log_path = dir.join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir);
        for (k, _) in std::env::vars() {
            if k.starts_with("AGENTMARKET_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["--database-url", database_url, "--bind", "127.0.0.1:0", "--log-format", "json"])
            .args(["--sweep-interval-secs", "0", "--webhook-interval-ms", "0"])
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server { child, base: String::new() };
        server.base = format!("http://{}", wait_for_address(&log_path));
        server
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_address(log_path: &Path) -> String {
    for _ in 0..300 {
        if let Ok(file) = std::fs::File::open(log_path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if line.contains("agentmarket listening") {
                    let v: Value = serde_json::from_str(&line).unwrap();
                    return v["fields"]["address"].as_str().unwrap().to_string();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the server did not start: {}", std::fs::read_to_string(log_path).unwrap_or_default());
}

pub struct Client(pub reqwest::Client);

impl Client {
    pub fn new() -> Client {
        Client(reqwest::Client::builder().no_proxy().build().unwrap())
    }
    pub async fn call(&self, method: reqwest::Method, url: String, key: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.0.request(method, url).json(&body);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
    pub async fn get(&self, server: &Server, path: &str, key: Option<&str>) -> u16 {
        self.call(reqwest::Method::GET, format!("{}{path}", server.base), key, Value::Null).await.0
    }
    pub async fn post(&self, server: &Server, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, format!("{}{path}", server.base), key, body).await
    }
    pub async fn signup(&self, server: &Server, email: &str) -> String {
        let body = json!({"email": email, "password": "correct horse battery"});
        let (status, r) = self.post(server, "/api/v1/accounts/register", None, body).await;
        assert_eq!(status, 201, "{r}");
        r["data"]["api_key"].as_str().unwrap().to_string()
    }
}

/// A fresh database of each engine: `(url, folder for logs and the SQLite file, guard)`.
pub async fn sqlite() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shared.db").display());
    (url, dir)
}

pub async fn postgres() -> Option<(String, tempfile::TempDir, pg::TempDatabase)> {
    let db = pg::TempDatabase::create().await?;
    Some((db.url.clone(), tempfile::tempdir().unwrap(), db))
}

pub fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f)
}
