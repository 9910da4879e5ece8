//! The transports over plain HTTP: two servers on one PostgreSQL, as behind a load balancer
//! without sticky routing (one MCP session's requests land on either server, and a change made
//! on one server reaches a subscriber whose stream is open on the other); long-lived streams;
//! the 2024-11-05 transport's own rules.

use std::time::Duration;

use serde_json::{Value, json};

use super::process::{self, Client, Server};
use super::{AGENT_DID, answer};

/// The surface a key uses: agent keys the agent surface, user keys the hirer surface.
fn surface(key: &str) -> &'static str {
    if key.starts_with("agk_") { "/mcp" } else { "/mcp/hirer" }
}

/// A JSON-RPC message POSTed to `base`'s surface for `key`, in session `session` if any.
async fn post(http: &Client, base: &str, key: &str, session: Option<&str>, message: Value) -> reqwest::Response {
    let mut req = http
        .0
        .post(format!("{base}{}", surface(key)))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("authorization", format!("Bearer {key}"))
        .json(&message);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

async fn call(http: &Client, base: &str, key: &str, session: &str, id: i64, method: &str, params: Value) -> Value {
    let res =
        post(http, base, key, Some(session), json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
    assert_eq!(res.status(), 200, "{method} on {base}");
    let body = answer(res).await;
    assert!(body.get("result").is_some(), "{method} on {base}: {body}");
    body["result"].clone()
}

async fn tool(http: &Client, base: &str, key: &str, session: &str, name: &str, arguments: Value) -> Value {
    let result = call(http, base, key, session, 9, "tools/call", json!({"name": name, "arguments": arguments})).await;
    assert_eq!(result["isError"], false, "{name}: {result}");
    serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap()
}

/// The next JSON-RPC message on the event stream for which `wanted` holds (others are skipped).
async fn next_message(stream: &mut reqwest::Response, seen: &mut String, wanted: impl Fn(&Value) -> bool) -> Value {
    let read = async {
        loop {
            while let Some(end) = seen.find("\n\n") {
                let event: String = seen.drain(..end + 2).collect();
                let data = event.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or("");
                if let Ok(message) = serde_json::from_str::<Value>(data.trim())
                    && wanted(&message)
                {
                    return message;
                }
            }
            match stream.chunk().await.unwrap() {
                Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                None => panic!("the stream ended: {seen}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.unwrap_or_else(|_| panic!("nothing wanted in: {seen}"))
}

/// Reads the event stream until a `notifications/resources/updated` for `uri` arrives.
async fn next_update(stream: &mut reqwest::Response, seen: &mut String, uri: &str) {
    next_message(stream, seen, |m| m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri).await;
}

/// Opens a session on `base` for `key`: its id.
async fn open_session(http: &Client, base: &str, key: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
        "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let res = post(http, base, key, None, init).await;
    assert_eq!(res.status(), 200);
    let session = res.headers()["mcp-session-id"].to_str().unwrap().to_string();
    assert_eq!(answer(res).await["result"]["protocolVersion"], "2025-11-25");
    session
}

/// The session's server-to-client stream, on `base`.
async fn open_stream(http: &Client, base: &str, key: &str, session: &str) -> reqwest::Response {
    let stream = http
        .0
        .get(format!("{base}{}", surface(key)))
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", session)
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    stream
}

/// Two servers on one database, as behind a load balancer.
fn two_servers(url: &str, dir: &std::path::Path, args: &[&str]) -> (Server, Server) {
    (Server::start(url, dir, args), Server::start(url, dir, args))
}

/// A hirer (funded with 50.00) and an agent's key, on `server`.
async fn parties(http: &Client, server: &Server) -> (String, String) {
    let key = http.signup(server, "spans@example.com").await;
    let deposit = json!({"amount": "50.00", "currency": "USD", "payment_method": "sandbox"});
    assert_eq!(http.post(server, "/api/v1/ledger/deposit", Some(&key), deposit).await.0, 201);
    let agent = json!({"agent": {"name": "Spans", "did": AGENT_DID, "capabilities": ["code-review"],
        "pricing_model": "fixed", "base_price": "10.00"}});
    let (status, r) = http.post(server, "/api/v1/agents/register", None, agent).await;
    assert_eq!(status, 201);
    (key, r["data"]["api_key"].as_str().unwrap().to_string())
}

fn hire(key: &str) -> Value {
    json!({"agent_did": AGENT_DID, "capability": "code-review", "task_description": "Review", "max_price": "10.00",
        "idempotency_key": key})
}

/// An open stream is a request in progress, not an idle connection: it outlives the idle timeout.
#[test]
fn a_stream_outlives_the_idle_timeout() {
    let (url, dir) = process::run(process::sqlite());
    let server =
        Server::start(&url, dir.path(), &["--enable-sandbox-deposits", "--defer-hiring-probe", "--idle-timeout", "1s"]);
    let http = Client::new();
    process::run(async {
        let (key, _) = parties(&http, &server).await;
        let session = open_session(&http, &server.base, &key).await;
        call(&http, &server.base, &key, &session, 2, "resources/subscribe", json!({"uri": "hirings://active"})).await;
        let mut stream = open_stream(&http, &server.base, &key, &session).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        tool(&http, &server.base, &key, &session, "hire_agent", hire("idle")).await;
        next_update(&mut stream, &mut String::new(), "hirings://active").await;
    });
}

#[test]
fn one_session_spans_two_servers_and_hears_changes_made_on_either_on_postgres() {
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    let (a, b) = two_servers(&url, dir.path(), &["--enable-sandbox-deposits", "--defer-hiring-probe"]);
    let http = Client::new();
    process::run(async {
        let (key, agent_key) = parties(&http, &a).await;
        let other_key = http.signup(&b, "other@example.com").await;

        // initialize on A, the rest of the handshake and the calls alternate between the servers.
        let session = open_session(&http, &a.base, &key).await;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(post(&http, &b.base, &key, Some(&session), initialized).await.status(), 202);
        let tools = call(&http, &b.base, &key, &session, 2, "tools/list", json!({})).await;
        assert_eq!(tools["tools"].as_array().unwrap().len(), 14);
        let hired = tool(&http, &a.base, &key, &session, "hire_agent", hire("spans")).await;
        let id = hired["hiring"]["id"].as_str().unwrap().to_string();
        let status_uri = format!("hiring://{id}/status");
        call(&http, &b.base, &key, &session, 3, "resources/subscribe", json!({"uri": status_uri})).await;
        call(&http, &a.base, &key, &session, 4, "resources/subscribe", json!({"uri": "hirings://active"})).await;

        // The session's stream is open on A.
        let mut stream = open_stream(&http, &a.base, &key, &session).await;
        let mut seen = String::new();

        // A question asked on B (over REST) reaches the stream on A.
        let question = json!({"content": "Which branch?", "kind": "question"});
        let (status, _) = http.post(&b, &format!("/api/v1/hirings/{id}/messages"), Some(&agent_key), question).await;
        assert_eq!(status, 201);
        next_update(&mut stream, &mut seen, &status_uri).await;
        // A cancellation through the session's own tool call on B, too.
        let cancelled = tool(&http, &b.base, &key, &session, "cancel_hiring", json!({"hiring_id": id})).await;
        assert_eq!(cancelled["status"], "cancelled");
        next_update(&mut stream, &mut seen, "hirings://active").await;

        // Only the credential that opened the session may use it, on either server.
        for server in [&a, &b] {
            let res = post(
                &http,
                &server.base,
                &other_key,
                Some(&session),
                json!({"jsonrpc": "2.0", "id": 5,
                "method": "tools/list"}),
            )
            .await;
            assert_eq!(res.status(), 404, "another key cannot use the session on {}", server.base);
        }

        // Ended on B, the session is gone on A too.
        let end = http
            .0
            .delete(format!("{}/mcp/hirer", b.base))
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", &session)
            .header("authorization", format!("Bearer {key}"))
            .send()
            .await
            .unwrap();
        assert!(end.status().is_success(), "DELETE: {}", end.status());
        let res =
            post(&http, &a.base, &key, Some(&session), json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}))
                .await;
        assert_eq!(res.status(), 404, "the ended session is unknown on A");
    });
}

/// The 2024-11-05 transport: the `endpoint` event names the session's message path; only the
/// credential that opened the session may post to it; answers travel on the stream; other hosts
/// are refused; the session is the stream's server's (a second server does not know it: sticky
/// routing, as the README says).
#[test]
fn the_sse_transport_serves_its_session_to_its_owner_on_postgres() {
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    let (a, b) = two_servers(&url, dir.path(), &["--enable-sandbox-deposits", "--defer-hiring-probe"]);
    let http = Client::new();
    process::run(async {
        let (key, agent_key) = parties(&http, &a).await;
        let other = http.signup(&a, "other@example.com").await;
        let open = |base: String, key: String, host: Option<String>| {
            let mut req = http.0.get(format!("{base}/mcp/hirer/sse")).header("authorization", format!("Bearer {key}"));
            if let Some(host) = host {
                req = req.header("host", host);
            }
            req.header("accept", "text/event-stream").send()
        };
        let port = a.base.rsplit(':').next().unwrap().to_string();
        let refused = open(a.base.clone(), key.clone(), Some(format!("elsewhere.test:{port}"))).await.unwrap();
        assert_eq!(refused.status(), 403, "another host is refused");
        assert_eq!(
            open(a.base.clone(), "ap_not_a_real_key_0000000000000000".into(), None).await.unwrap().status(),
            401
        );

        let mut stream = open(a.base.clone(), key.clone(), None).await.unwrap();
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let first = stream.chunk().await.unwrap().unwrap();
        let first = String::from_utf8_lossy(&first).to_string();
        let path = first.strip_prefix("event: endpoint\ndata: ").unwrap().trim().to_string();
        assert!(path.starts_with("/mcp/hirer/messages/"), "{first}");
        let mut seen = String::new();
        let answer_to = |id: i64| move |m: &Value| m["id"] == id;
        let send = |base: &str, key: &str, message: Value| {
            http.0.post(format!("{base}{path}")).header("authorization", format!("Bearer {key}")).json(&message).send()
        };
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2024-11-05",
            "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        assert_eq!(send(&a.base, &other, init.clone()).await.unwrap().status(), 404, "not the session's credential");
        assert_eq!(send(&b.base, &key, init.clone()).await.unwrap().status(), 404, "not this server's session");
        let bad = send(&a.base, &key, json!({"no": "message"})).await.unwrap();
        assert_eq!(bad.status(), 400);
        assert_eq!(send(&a.base, &key, init).await.unwrap().status(), 202);
        let answered = next_message(&mut stream, &mut seen, answer_to(1)).await;
        assert_eq!(answered["result"]["protocolVersion"], "2024-11-05");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(send(&a.base, &key, initialized).await.unwrap().status(), 202);

        // A hire through the session, a subscription, and a question asked on B reaching A's stream.
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "hire_agent", "arguments": hire("sse")}});
        assert_eq!(send(&a.base, &key, call).await.unwrap().status(), 202);
        let hired = next_message(&mut stream, &mut seen, answer_to(2)).await;
        let hiring: Value = serde_json::from_str(hired["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        let id = hiring["hiring"]["id"].as_str().unwrap().to_string();
        let subscribe = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe",
            "params": {"uri": format!("hiring://{id}/status")}});
        assert_eq!(send(&a.base, &key, subscribe).await.unwrap().status(), 202);
        assert!(next_message(&mut stream, &mut seen, answer_to(3)).await.get("result").is_some());
        let question = json!({"content": "Which branch?", "kind": "question"});
        assert_eq!(http.post(&b, &format!("/api/v1/hirings/{id}/messages"), Some(&agent_key), question).await.0, 201);
        next_update(&mut stream, &mut seen, &format!("hiring://{id}/status")).await;

        // The stream closed, the session is gone.
        drop(stream);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ping = json!({"jsonrpc": "2.0", "id": 4, "method": "ping"});
        assert_eq!(send(&a.base, &key, ping).await.unwrap().status(), 404);
    });
}

/// Waits until the hiring (read over REST on `server`) is in `status`; returns it.
async fn hiring_becomes(http: &Client, server: &Server, key: &str, id: &str, status: &str) -> Value {
    for _ in 0..100 {
        let (code, body) = http
            .call(reqwest::Method::GET, format!("{}/api/v1/hirings/{id}", server.base), Some(key), Value::Null)
            .await;
        assert_eq!(code, 200);
        if body["data"]["status"] == status {
            return body["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the hiring did not become {status}");
}

/// An agent with a session open on A is probed from B (where the hire happens): the ping goes
/// out on A's stream, the agent answers through B, and the hiring starts.
#[test]
fn an_agent_answering_pings_over_mcp_is_available_across_servers_on_postgres() {
    let Some((url, dir, _db)) = process::run(process::postgres()) else { return };
    let (a, b) = two_servers(&url, dir.path(), &["--enable-sandbox-deposits"]);
    let http = Client::new();
    process::run(async {
        let (key, agent_key) = parties(&http, &a).await;
        let session = open_session(&http, &a.base, &agent_key).await;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(post(&http, &b.base, &agent_key, Some(&session), initialized).await.status(), 202);
        let mut stream = open_stream(&http, &a.base, &agent_key, &session).await;
        let mut seen = String::new();

        let body = json!({"task_description": "Review", "capability_requested": "code-review", "price": "10.00"});
        let (status, hired) = http.post(&b, &format!("/api/v1/agents/{AGENT_DID}/hire"), Some(&key), body).await;
        assert_eq!(status, 201, "{hired}");
        let id = hired["data"]["hiring"]["id"].as_str().unwrap().to_string();
        let ping = next_message(&mut stream, &mut seen, |m| m["method"] == "ping").await;
        let pong = json!({"jsonrpc": "2.0", "id": ping["id"], "result": {}});
        assert_eq!(post(&http, &b.base, &agent_key, Some(&session), pong).await.status(), 202);
        hiring_becomes(&http, &a, &key, &id, "in_progress").await;
    });
}

/// An agent whose MCP stream is open but does not answer is unavailable, however recently it
/// was seen: the hiring fails with a refund.
#[test]
fn an_agent_that_does_not_answer_the_ping_is_unavailable() {
    let (url, dir) = process::run(process::sqlite());
    let server = Server::start(&url, dir.path(), &["--enable-sandbox-deposits"]);
    let http = Client::new();
    process::run(async {
        let (key, agent_key) = parties(&http, &server).await;
        let session = open_session(&http, &server.base, &agent_key).await;
        let mut stream = open_stream(&http, &server.base, &agent_key, &session).await;
        let body = json!({"task_description": "Review", "capability_requested": "code-review", "price": "10.00"});
        let (status, hired) = http.post(&server, &format!("/api/v1/agents/{AGENT_DID}/hire"), Some(&key), body).await;
        assert_eq!(status, 201, "{hired}");
        let id = hired["data"]["hiring"]["id"].as_str().unwrap().to_string();
        next_message(&mut stream, &mut String::new(), |m| m["method"] == "ping").await;
        let failed = hiring_becomes(&http, &server, &key, &id, "failed").await;
        assert!(failed["failed_reason"].as_str().unwrap().starts_with("agent_unresponsive"), "{failed}");
        let (_, balance) = http
            .call(reqwest::Method::GET, format!("{}/api/v1/ledger/balance", server.base), Some(&key), Value::Null)
            .await;
        assert_eq!(balance["data"]["available"], "50.00", "refunded");
    });
}
