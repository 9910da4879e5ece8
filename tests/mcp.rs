//! The MCP surfaces driven by a real client: installs `@modelcontextprotocol/sdk@1.32.2` from
//! the npm registry at test time (into the build's temporary folder, once; none of its code is
//! committed) and runs the scripts of `tests/mcp/` with the SDK's own `Client` against the real
//! binary, on SQLite and on a fresh PostgreSQL database, over `StreamableHTTPClientTransport` and
//! over `SSEClientTransport`: `hirer.mjs` (every hirer tool, scoped and capped keys, a bad key)
//! and `story.mjs` (the hirer and the hired agent, each with its own key, through the whole
//! hiring with subscriptions; also behind a non-sticky load balancer over two servers). The
//! HTTP-level rules (401 before MCP, allowed hosts, sessions across servers, the SSE transport's
//! own rules) are checked with plain requests here and in `tests/mcp/servers.rs`.

mod process;
#[path = "mcp/servers.rs"]
mod servers;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use process::{Client, Server};
use serde_json::{Value, json};

const SDK: &str = "@modelcontextprotocol/sdk@1.32.2";
const AGENT_DID: &str = "did:agrenting:mcp-reviewer";
const PUBLIC_HOST: &str = "market.test";
const GITHUB_TOKEN: &str = "ghp_mcpTestToken0123456789abcdefWXYZ";

/// `false` (skip) when Node is missing and `CI` is unset; with `CI` set it is a failure.
fn node_available() -> bool {
    let ok = |name: &str| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success());
    match (ok("node") && ok("npm"), std::env::var_os("CI").is_some()) {
        (true, _) => true,
        (false, false) => {
            eprintln!("skipping the MCP client test: node/npm are not installed (set CI to make this a failure)");
            false
        }
        (false, true) => panic!("node and npm are required for the MCP client test"),
    }
}

/// The installed SDK package folder, installed on first use (one install at a time).
fn sdk_dir() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-sdk-1.32.2");
    let package = prefix.join("node_modules/@modelcontextprotocol/sdk");
    if !package.join("package.json").exists() {
        std::fs::create_dir_all(&prefix).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg(SDK)
            .output()
            .expect("npm runs");
        assert!(out.status.success(), "npm install {SDK} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(package.join("package.json")).unwrap()).unwrap();
    assert_eq!(manifest["version"], "1.32.2");
    package
}

async fn key_with(http: &Client, server: &Server, owner_key: &str, rights: Value) -> String {
    let (status, r) = http.post(server, "/api/v1/api-keys", Some(owner_key), rights).await;
    assert_eq!(status, 201, "{r}");
    r["data"]["api_key"].as_str().unwrap().to_string()
}

/// The JSON-RPC answer in a response: its JSON body, or the `data:` event of its event stream
/// that carries a result or an error.
async fn answer(res: reqwest::Response) -> Value {
    let text = res.text().await.unwrap();
    serde_json::from_str(&text).ok().unwrap_or_else(|| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC answer in {text}"))
    })
}

async fn mcp_post(http: &Client, server: &Server, host: Option<&str>, key: Option<&str>) -> reqwest::Response {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let mut req = http
        .0
        .post(format!("{}/mcp/hirer", server.base))
        .header("accept", "application/json, text/event-stream")
        .json(&init);
    if let Some(host) = host {
        req = req.header("host", host);
    }
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    req.send().await.unwrap()
}

/// The hirer surface on its own: every tool, keys with fewer rights, a bad key; over the
/// 2024-11-05 transport when `sse`.
fn hirer_story(database_url: &str, dir: &Path, sse: bool) {
    let public_url = format!("http://{PUBLIC_HOST}");
    let server = Server::start(
        database_url,
        dir,
        &["--enable-sandbox-deposits", "--defer-hiring-probe", "--public-url", &public_url],
    );
    let http = Client::new();
    let (key, scoped, capped, agent_key) = process::run(async {
        let key = http.signup(&server, "hirer@example.com").await;
        let deposit = json!({"amount": "100.00", "currency": "USD", "payment_method": "sandbox"});
        assert_eq!(http.post(&server, "/api/v1/ledger/deposit", Some(&key), deposit).await.0, 201);
        let agent = json!({"agent": {"name": "MCP reviewer", "did": AGENT_DID, "capabilities": ["code-review"],
            "pricing_model": "fixed", "base_price": "10.00"}});
        let (status, r) = http.post(&server, "/api/v1/agents/register", None, agent).await;
        assert_eq!(status, 201, "{r}");
        let agent_key = r["data"]["api_key"].as_str().unwrap().to_string();
        let scoped = key_with(
            &http,
            &server,
            &key,
            json!({"name": "read only",
            "scopes": ["agents:discover", "hirings:read", "balance:read"]}),
        )
        .await;
        let capped = key_with(&http, &server, &key, json!({"name": "capped",
            "scopes": ["agents:discover", "hire:create", "hirings:read", "balance:read"], "max_price_per_hire": "5.00"}))
        .await;

        // HTTP rules, before and around MCP.
        for bad in [None, Some("ap_not_a_real_key_0000000000000000")] {
            let res = mcp_post(&http, &server, None, bad).await;
            assert_eq!(res.status(), 401, "no or bad key: 401 before any MCP handling");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "the API error envelope: {body}");
        }
        let port = server.base.rsplit(':').next().unwrap().to_string();
        let res = mcp_post(&http, &server, Some(&format!("{PUBLIC_HOST}:{port}")), Some(&key)).await;
        assert_eq!(res.status(), 200, "the --public-url host is allowed");
        assert!(res.headers().get("mcp-session-id").is_some(), "initialize opens a session");
        let body = answer(res).await;
        assert_eq!(body["result"]["protocolVersion"], "2025-11-25", "{body}");
        assert_eq!(body["result"]["serverInfo"]["name"], "agentmarket");
        let res = mcp_post(&http, &server, Some(&format!("elsewhere.test:{port}")), Some(&key)).await;
        assert_eq!(res.status(), 403, "another host is refused (DNS rebinding)");
        let get = http.0.get(format!("{}/mcp/hirer", server.base)).header("authorization", format!("Bearer {key}"));
        let res = get.header("accept", "text/event-stream").send().await.unwrap();
        assert_eq!(res.status(), 400, "a stream belongs to a session");
        (key, scoped, capped, agent_key)
    });

    let mut env = vec![
        ("MCP_URL", format!("{}/mcp/hirer", server.base)),
        ("KEY", key.clone()),
        ("SCOPED_KEY", scoped),
        ("CAPPED_KEY", capped),
        ("AGENT_DID", AGENT_DID.to_string()),
        ("AGENT_KEY", agent_key),
        ("API_URL", format!("{}/api/v1", server.base)),
        ("GITHUB_TOKEN", GITHUB_TOKEN.to_string()),
    ];
    if sse {
        env.push(("TRANSPORT", "sse".to_string()));
    }
    let report = run_script("hirer.mjs", &env);
    let tools: Vec<&str> = report["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for tool in [
        "list_agents",
        "hire_agent",
        "get_hiring_status",
        "list_my_hirings",
        "cancel_hiring",
        "check_balance",
        "generate_deposit_address",
        "wait_for_hirings",
        "answer_hiring_question",
        "list_hiring_artifacts",
        "download_artifact",
        "set_github_token",
        "get_github_token_status",
        "clear_github_token",
    ] {
        assert!(tools.contains(&tool), "{tool} is listed: {tools:?}");
    }
    assert_eq!(report["checks"].as_array().unwrap().len(), 14, "every step ran: {}", report["checks"]);
    assert_eq!(report["balanceAfterCancel"]["available"], "100.00");
    assert!(report["scopeRefusal"].as_str().unwrap().contains("hire:create"));
    assert!(report["capRefusal"].as_str().unwrap().contains("PRICE_ABOVE_MAX"));
    assert_eq!(report["badKey"]["status"], 401, "the SDK saw the 401: {}", report["badKey"]);
    if !sse {
        assert!(report["badKey"]["message"].as_str().unwrap().contains("UNAUTHORIZED"));
    }

    // The stored GitHub token is sealed at rest and never logged.
    let mut at_rest = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        at_rest.extend(std::fs::read(entry.unwrap().path()).unwrap_or_default());
    }
    let needle = GITHUB_TOKEN.as_bytes();
    assert!(!at_rest.windows(needle.len()).any(|w| w == needle), "the token is in no file (SQLite, WAL, logs)");
    if database_url.starts_with("postgres") {
        process::run(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
            let (sealed,): (String,) =
                sqlx::query_as("SELECT sealed_token FROM github_tokens").fetch_one(&mut conn).await.unwrap();
            assert!(sealed.starts_with("sealed.v1.") && !sealed.contains(GITHUB_TOKEN));
        });
    }

    // What the tools did is what REST sees.
    process::run(async {
        let res = http.0.get(format!("{}/api/v1/hirings", server.base)).header("x-api-key", &key).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["data"]["total"], 1, "one hiring, whatever the replays and refusals: {body}");
        assert_eq!(body["data"]["hirings"][0]["status"], "cancelled");
    });
}

/// Runs a script of `tests/mcp/` with the SDK, `env` beside `SDK_DIR`; returns its JSON report.
fn run_script(name: &str, env: &[(&str, String)]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp").join(name);
    let mut cmd = Command::new("node");
    cmd.arg(&script).env("SDK_DIR", sdk_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed:\n{stdout}\n{stderr}");
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from {name}:\n{stdout}\n{stderr}"));
    assert_eq!(report["ok"], true);
    report
}

/// How the story's clients reach the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Streamable HTTP, one server.
    Streamable,
    /// The 2024-11-05 HTTP+SSE transport, one server.
    Sse,
    /// Streamable HTTP through a load balancer without sticky routing, two servers.
    Balanced,
}

/// The whole story over both surfaces: the hirer hires and follows over MCP, the agent asks,
/// streams and delivers over MCP with its own key.
fn agent_story(database_url: &str, dir: &Path, mode: Mode) {
    // The availability probe runs at each hire: the agent answers it over MCP.
    let server = Server::start(database_url, dir, &["--enable-sandbox-deposits"]);
    let second = (mode == Mode::Balanced).then(|| Server::start(database_url, dir, &["--enable-sandbox-deposits"]));
    let http = Client::new();
    let (key, agent_key) = process::run(async {
        let key = http.signup(&server, "story@example.com").await;
        let deposit = json!({"amount": "100.00", "currency": "USD", "payment_method": "sandbox"});
        assert_eq!(http.post(&server, "/api/v1/ledger/deposit", Some(&key), deposit).await.0, 201);
        let agent = json!({"agent": {"name": "Story reviewer", "did": AGENT_DID, "capabilities": ["code-review"],
            "pricing_model": "fixed", "base_price": "10.00"}});
        let (status, r) = http.post(&server, "/api/v1/agents/register", None, agent).await;
        assert_eq!(status, 201, "{r}");
        (key, r["data"]["api_key"].as_str().unwrap().to_string())
    });
    let mut env = vec![
        ("HIRER_URL", format!("{}/mcp/hirer", server.base)),
        ("AGENT_URL", format!("{}/mcp", server.base)),
        ("API_URL", format!("{}/api/v1", server.base)),
        ("KEY", key.clone()),
        ("AGENT_DID", AGENT_DID.to_string()),
        ("AGENT_KEY", agent_key.clone()),
    ];
    if let Some(second) = &second {
        env.push(("BALANCE", format!("{},{}", server.base, second.base)));
    }
    if mode == Mode::Sse {
        env.push(("TRANSPORT", "sse".to_string()));
    }
    let report = run_script("story.mjs", &env);
    assert_eq!(report["transport"], if mode == Mode::Sse { "sse" } else { "streamable" });
    assert_eq!(report["checks"].as_array().unwrap().len(), 16, "every step ran: {}", report["checks"]);
    assert!(report["pings"].as_u64().unwrap() >= 1, "the agent answered the probe's ping");
    eprintln!("milliseconds from the action to the client ({}): {}", report["transport"], report["timings"]);
    if let Some(second) = &second {
        let mut both = [server.base.clone(), second.base.clone()];
        both.sort();
        assert_eq!(report["servedBy"], json!([both, both]), "each session was served by both servers");
    }
    assert_eq!(report["userOnAgentSurface"]["status"], 401, "{}", report["userOnAgentSurface"]);
    // What the tools did is what REST sees.
    process::run(async {
        let res = http.0.get(format!("{}/api/v1/hirings", server.base)).header("x-api-key", &key).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        let mut statuses: Vec<&str> =
            body["data"]["hirings"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
        statuses.sort();
        assert_eq!(statuses, ["cancelled", "completed", "failed", "in_progress"], "{body}");
        let completed =
            body["data"]["hirings"].as_array().unwrap().iter().find(|h| h["status"] == "completed").unwrap();
        let stream = format!("{}/api/v1/hirings/{}/stream?after=1", server.base, completed["id"].as_str().unwrap());
        let res = http.0.get(stream).header("x-api-key", &key).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["data"][0]["seq"], 2, "{body}");
        assert_eq!(body["data"][0]["content"], "Found 2 issues");
    });
}

#[test]
fn the_agent_surface_delivers_a_hiring_with_the_sdk_client_on_sqlite() {
    if !node_available() {
        return;
    }
    let (url, dir) = process::run(process::sqlite());
    agent_story(&url, dir.path(), Mode::Streamable);
}

#[test]
fn the_story_holds_over_the_sse_transport_on_sqlite() {
    if !node_available() {
        return;
    }
    let (url, dir) = process::run(process::sqlite());
    agent_story(&url, dir.path(), Mode::Sse);
}

#[test]
fn the_story_holds_over_the_sse_transport_on_postgres() {
    if !node_available() {
        return;
    }
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    agent_story(&url, dir.path(), Mode::Sse);
}

#[test]
fn the_agent_surface_delivers_a_hiring_with_the_sdk_client_on_postgres() {
    if !node_available() {
        return;
    }
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    agent_story(&url, dir.path(), Mode::Streamable);
}

/// The whole story with the SDK clients behind a load balancer without sticky routing: two
/// servers on one PostgreSQL take turns at every session's requests, streams included.
#[test]
fn the_story_holds_across_two_servers_on_postgres() {
    if !node_available() {
        return;
    }
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    agent_story(&url, dir.path(), Mode::Balanced);
}

#[test]
fn the_hirer_surface_works_with_the_sdk_client_on_sqlite() {
    if !node_available() {
        return;
    }
    let (url, dir) = process::run(process::sqlite());
    hirer_story(&url, dir.path(), false);
}

#[test]
fn the_hirer_surface_works_over_the_sse_transport_on_sqlite() {
    if !node_available() {
        return;
    }
    let (url, dir) = process::run(process::sqlite());
    hirer_story(&url, dir.path(), true);
}

#[test]
fn the_hirer_surface_works_over_the_sse_transport_on_postgres() {
    if !node_available() {
        return;
    }
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    hirer_story(&url, dir.path(), true);
}

#[test]
fn the_hirer_surface_works_with_the_sdk_client_on_postgres() {
    if !node_available() {
        return;
    }
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    hirer_story(&url, dir.path(), false);
}

/// A hire through MCP spends the REST endpoint's `financial` allowance, not only the general one.
#[test]
fn hire_agent_counts_against_the_financial_limit() {
    let (url, dir) = process::run(process::sqlite());
    let server = Server::start(&url, dir.path(), &["--rate-financial-per-minute", "2"]);
    let http = Client::new();
    process::run(async {
        let key = http.signup(&server, "limited@example.com").await;
        let mut texts = Vec::new();
        for i in 0..3 {
            let call = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "hire_agent",
                "arguments": {"agent_did": "did:agrenting:nobody", "capability": "code-review",
                    "task_description": "x", "max_price": "1.00"}}});
            let res = http
                .0
                .post(format!("{}/mcp/hirer", server.base))
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {key}"))
                .json(&call)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["result"]["isError"], true, "{body}");
            texts.push(body["result"]["content"][0]["text"].as_str().unwrap().to_string());
        }
        assert!(!texts[0].contains("RATE_LIMIT_EXCEEDED") && !texts[1].contains("RATE_LIMIT_EXCEEDED"), "{texts:?}");
        assert!(texts[2].starts_with("RATE_LIMIT_EXCEEDED"), "the third hire in a minute is refused: {texts:?}");
    });
}

async fn rpc(http: &Client, server: &Server, key: &str, id: i64, method: &str, params: Value) -> Value {
    let res = http
        .0
        .post(format!("{}/mcp/hirer", server.base))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", format!("Bearer {key}"))
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{method} on {}", server.base);
    answer(res).await
}

async fn tool(http: &Client, server: &Server, key: &str, name: &str, arguments: Value) -> Value {
    let body = rpc(http, server, key, 2, "tools/call", json!({"name": name, "arguments": arguments})).await;
    assert_eq!(body["result"]["isError"], false, "{name}: {body}");
    serde_json::from_str(body["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

/// Two servers on one PostgreSQL behind a (simulated) load balancer: a client's requests land
/// on either; the surface keeps nothing per session, so each answers.
#[test]
fn two_servers_answer_one_client_on_postgres() {
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    let a = Server::start(&url, dir.path(), &["--enable-sandbox-deposits", "--defer-hiring-probe"]);
    let b = Server::start(&url, dir.path(), &["--enable-sandbox-deposits", "--defer-hiring-probe"]);
    let http = Client::new();
    process::run(async {
        let key = http.signup(&a, "two@example.com").await;
        let deposit = json!({"amount": "50.00", "currency": "USD", "payment_method": "sandbox"});
        assert_eq!(http.post(&a, "/api/v1/ledger/deposit", Some(&key), deposit).await.0, 201);
        let agent = json!({"agent": {"name": "Two", "did": AGENT_DID, "capabilities": ["code-review"],
            "pricing_model": "fixed", "base_price": "10.00"}});
        assert_eq!(http.post(&b, "/api/v1/agents/register", None, agent).await.0, 201);

        let init =
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
        let hello = rpc(&http, &a, &key, 1, "initialize", init).await;
        assert_eq!(hello["result"]["protocolVersion"], "2025-11-25");
        let listed = rpc(&http, &b, &key, 2, "tools/list", json!({})).await;
        assert!(listed["result"]["tools"].as_array().unwrap().len() >= 11, "{listed}");

        let hire = json!({"agent_did": AGENT_DID, "capability": "code-review", "task_description": "Review",
            "max_price": "10.00", "idempotency_key": "two-servers"});
        let hired = tool(&http, &a, &key, "hire_agent", hire.clone()).await;
        let id = hired["hiring"]["id"].as_str().unwrap().to_string();
        let replay = tool(&http, &b, &key, "hire_agent", hire).await;
        assert_eq!(replay["hiring"]["id"], id.as_str(), "the replay on the other server finds the same hiring");
        let balance = tool(&http, &b, &key, "check_balance", json!({})).await;
        assert_eq!((balance["available"].as_str(), balance["escrow"].as_str()), (Some("40.00"), Some("10.00")));
        let cancelled = tool(&http, &b, &key, "cancel_hiring", json!({"hiring_id": id})).await;
        assert_eq!(cancelled["final"], true);
        let status = tool(&http, &a, &key, "get_hiring_status", json!({"hiring_id": id})).await;
        assert_eq!(status["status"], "cancelled");
        let balance = tool(&http, &a, &key, "check_balance", json!({})).await;
        assert_eq!((balance["available"].as_str(), balance["escrow"].as_str()), (Some("50.00"), Some("0.00")));
    });
}

/// Protocol 2025-03-26 allows JSON-RPC batches: answered as one array; later versions refuse them.
#[test]
fn batches_are_answered_for_2025_03_26() {
    let (url, dir) = process::run(process::sqlite());
    let server = Server::start(&url, dir.path(), &[]);
    let http = Client::new();
    process::run(async {
        let key = http.signup(&server, "batch@example.com").await;
        let batch = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "check_balance", "arguments": {}}},
        ]);
        let post = |version: Option<&'static str>| {
            let mut req = http
                .0
                .post(format!("{}/mcp/hirer", server.base))
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {key}"))
                .json(&batch);
            if let Some(v) = version {
                req = req.header("mcp-protocol-version", v);
            }
            req.send()
        };
        for version in [None, Some("2025-03-26")] {
            let res = post(version).await.unwrap();
            assert_eq!(res.status(), 200);
            let answers: Value = res.json().await.unwrap();
            let answers = answers.as_array().unwrap();
            assert_eq!(answers.len(), 2, "one answer per request, none for the notification: {answers:?}");
            assert_eq!(answers[0]["id"], 1);
            assert!(answers[0]["result"]["tools"].as_array().unwrap().len() >= 11);
            assert_eq!(answers[1]["id"], 2);
            assert_eq!(answers[1]["result"]["isError"], false);
        }
        let res = post(Some("2025-11-25")).await.unwrap();
        assert!(res.status().is_client_error(), "no batches after 2025-03-26: {}", res.status());
    });
}
