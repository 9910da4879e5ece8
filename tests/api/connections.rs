//! Connection handling: the head-read, idle and request timeouts, keep-alive after early
//! answers, and the connection cap. Raw sockets, so the test controls every byte and its timing.
//! Connection handling does not touch storage: these run once, on SQLite, with short limits.

use std::time::Duration;

use agentmarket::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::support::{Engine, TestApp};

/// Room for a loaded machine between a limit and the moment its effect is observed.
const SLACK: Duration = Duration::from_millis(2000);
/// Lower bounds allow for timer granularity only: nothing may close early.
const EARLY: Duration = Duration::from_millis(100);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn spawn(configure: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn(Engine::Sqlite, configure).await.expect("SQLite is always available")
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";

/// A raw HTTP/1.1 client connection.
struct Raw {
    reader: OwnedReadHalf,
    writer: Option<OwnedWriteHalf>,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
}

impl Raw {
    async fn connect(app: &TestApp) -> Raw {
        let stream = TcpStream::connect(app.base.trim_start_matches("http://")).await.expect("connect");
        let (reader, writer) = stream.into_split();
        Raw { reader, writer: Some(writer), buf: Vec::new() }
    }

    /// Writes `bytes`; false once the server has closed the connection.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.writer.as_mut().expect("the writer is here").write_all(bytes).await.is_ok()
    }

    /// Hands the writing half to a task that sends `bytes` one at a time, `every` apart
    /// (starting with a pause), until done or the server closes.
    fn trickle(&mut self, bytes: Vec<u8>, every: Duration) -> JoinHandle<()> {
        let mut writer = self.writer.take().expect("the writer is here");
        tokio::spawn(async move {
            for byte in bytes {
                sleep(every).await;
                if writer.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
            // Keep the connection open (dropping the writer would half-close it).
            std::future::pending::<()>().await;
        })
    }

    /// Reads into the buffer; false on EOF or a reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.reader.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response (framed by its `content-length`); `None` if the connection closes first.
    async fn response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize =
            headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        while self.buf.len() < head_end + length {
            if !self.fill().await {
                return None;
            }
        }
        let body = serde_json::from_slice(&self.buf[head_end..head_end + length]).unwrap_or(Value::Null);
        self.buf.drain(..head_end + length);
        Some(RawResponse { status, headers, body })
    }

    /// The next response, failing the test if none comes within `limit`.
    async fn expect_response(&mut self, limit: Duration) -> RawResponse {
        timeout(limit, self.response()).await.expect("a response in time").expect("a response, not a closed connection")
    }

    /// Reads until the server closes the connection: the instant it did, or `None` if it is
    /// still open at `deadline`. What arrives meanwhile stays in the buffer.
    async fn closed_by(&mut self, deadline: Instant) -> Option<Instant> {
        let closed = tokio::time::timeout_at(deadline, async { while self.fill().await {} }).await;
        closed.ok().map(|_| Instant::now())
    }
}

/// A connection that sends nothing is closed at the head-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_header_timeout() {
    let app = spawn(|c| c.header_read_timeout = ms(1000)).await;
    let mut raw = Raw::connect(&app).await;
    let opened = Instant::now();
    let closed = raw.closed_by(opened + ms(1000) + SLACK).await.expect("closed by the header timeout");
    assert!(closed - opened >= ms(1000) - EARLY, "closed too early: {:?}", closed - opened);
    // The server still answers others.
    let mut other = Raw::connect(&app).await;
    other.send(HEALTHZ).await;
    assert_eq!(other.expect_response(SLACK).await.status, 200);
}

/// A head trickled a byte every 200 ms is cut off at the header timeout, although bytes keep
/// coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_head_is_closed_at_the_header_timeout() {
    let app = spawn(|c| c.header_read_timeout = ms(1000)).await;
    let mut raw = Raw::connect(&app).await;
    let opened = Instant::now();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: {}", "a".repeat(200));
    let trickle = raw.trickle(head.into_bytes(), ms(200));
    let closed = raw.closed_by(opened + ms(1000) + SLACK).await;
    trickle.abort();
    let closed = closed.expect("closed by the header timeout although bytes kept coming");
    assert!(closed - opened >= ms(1000) - EARLY, "closed too early: {:?}", closed - opened);
    assert!(raw.buf.is_empty(), "no answer to half a head: {:?}", String::from_utf8_lossy(&raw.buf));
}

/// After a response, a keep-alive connection may idle past the header timeout (that one only
/// runs while a head is coming in) and is closed at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_and_closes_at_the_idle_timeout() {
    let app = spawn(|c| {
        c.header_read_timeout = ms(1000);
        c.idle_timeout = ms(3000);
    })
    .await;
    let mut raw = Raw::connect(&app).await;
    raw.send(HEALTHZ).await;
    assert_eq!(raw.expect_response(SLACK).await.status, 200);
    let idle_from = Instant::now();
    assert!(raw.closed_by(idle_from + ms(2500)).await.is_none(), "an idle connection was closed before its timeout");
    // Still usable, and a request starts the idle clock again.
    assert!(raw.send(HEALTHZ).await);
    assert_eq!(raw.expect_response(SLACK).await.status, 200);
    let idle_from = Instant::now();
    let closed = raw.closed_by(idle_from + ms(3000) + SLACK).await.expect("closed by the idle timeout");
    assert!(closed - idle_from >= ms(3000) - EARLY, "closed too early: {:?}", closed - idle_from);
}

/// A body sent a byte at a time is cut off by the request timeout with `408 REQUEST_TIMEOUT`
/// (and the connection closes), not accepted after it; the header timeout no longer applies
/// once the head is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_answered_408_at_the_request_timeout() {
    let app = spawn(|c| {
        c.header_read_timeout = ms(1000);
        c.request_timeout = ms(2000);
    })
    .await;
    let mut raw = Raw::connect(&app).await;
    let body = r#"{"email":"slow@example.com","password":"correct horse battery","name":"a slow client indeed"}"#;
    let head = format!(
        "POST /api/v1/accounts/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    raw.send(head.as_bytes()).await;
    let started = Instant::now();
    let trickle = raw.trickle(body.as_bytes().to_vec(), ms(100)); // 9.5 s for the whole body
    let response = raw.expect_response(ms(2000) + SLACK).await;
    let answered = started.elapsed();
    assert_eq!(response.status, 408, "{:?}", response.body);
    assert_eq!(response.code(), "REQUEST_TIMEOUT");
    assert!(response.body["data"].is_null() && response.body["meta"]["request_id"].is_string(), "the error envelope");
    assert!(answered >= ms(2000) - EARLY, "answered too early: {answered:?}");
    assert_eq!(response.header("connection"), Some("close"));
    assert!(raw.closed_by(Instant::now() + SLACK).await.is_some(), "the connection closes after a 408");
    trickle.abort();
    // The slow sign-up never happened: the address is still free.
    let signup = serde_json::json!({"email": "slow@example.com", "password": "correct horse battery"});
    app.post("/api/v1/accounts/register", None, signup).await.expect(201);
}

/// An early answer (401 for a bad key, 404 for an unknown route) before a lagging body arrived
/// keeps the connection alive for the client's next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_before_a_lagging_body_keeps_the_connection_alive() {
    let app = spawn(|_| {}).await;
    let body = r#"{"provider_agent_id":"did:agrenting:x","capability":"code-review","input":"review my PR"}"#;
    for i in 0..50u64 {
        let (path, status) = if i % 2 == 0 { ("/api/v1/tasks", 401) } else { ("/api/v1/no-such-route", 404) };
        let mut raw = Raw::connect(&app).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nX-API-Key: ap_wrongwrongwrongwrongwrongwrongwrongwr\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        raw.send(head.as_bytes()).await;
        sleep(ms(20 + i % 31)).await;
        raw.send(body.as_bytes()).await;
        let first = raw.expect_response(SLACK).await;
        assert_eq!(first.status, status, "round {i}: {:?}", first.body);
        assert!(raw.send(HEALTHZ).await, "round {i}: the connection was closed after the {status}");
        let second =
            timeout(SLACK, raw.response()).await.unwrap_or_else(|_| panic!("round {i}: no second response in time"));
        let second = second.unwrap_or_else(|| panic!("round {i}: the connection was closed after the {status}"));
        assert_eq!(second.status, 200, "round {i}");
    }
}

/// At the cap, connections idle in keep-alive are closed to make room: a new client is served
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_connections_are_shed_for_a_new_client() {
    let app = spawn(|c| c.max_connections = Some(4)).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut raw = Raw::connect(&app).await;
        raw.send(HEALTHZ).await;
        assert_eq!(raw.expect_response(SLACK).await.status, 200);
        idle.push(raw);
    }
    let started = Instant::now();
    let mut fifth = Raw::connect(&app).await;
    fifth.send(HEALTHZ).await;
    assert_eq!(fifth.expect_response(SLACK).await.status, 200);
    assert!(started.elapsed() < ms(1500), "the new client waited {:?}", started.elapsed());
    // The one idle the longest made room.
    assert!(idle[0].closed_by(Instant::now() + SLACK).await.is_some(), "the longest idle connection was shed");
}

/// At the cap with every connection stuck in its head, a new client waits (in the backlog) at
/// most the header timeout, when a stuck one is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_a_new_client_waits_at_most_the_header_timeout() {
    let app = spawn(|c| {
        c.max_connections = Some(4);
        c.header_read_timeout = ms(1000);
    })
    .await;
    let mut stuck = Vec::new();
    for _ in 0..4 {
        let mut raw = Raw::connect(&app).await;
        raw.send(b"GET /healthz HTTP/1.1\r\nHost: te").await;
        stuck.push(raw);
    }
    let started = Instant::now();
    let mut fifth = Raw::connect(&app).await;
    fifth.send(HEALTHZ).await;
    let response = fifth.expect_response(ms(1000) + SLACK).await;
    assert_eq!(response.status, 200);
    let waited = started.elapsed();
    assert!(waited >= ms(500), "served at once ({waited:?}): the cap of 4 did not hold");
}

/// Shutting down ends the open MCP event streams (a Streamable HTTP session's `GET` stream and
/// a 2024-11-05 SSE stream): they never end by themselves, and the server must not wait for
/// their clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_event_streams() {
    let app = spawn(|_| {}).await;
    let user = app.signup("streams@example.com").await;
    let bearer = format!("Bearer {}", user.key);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = client
        .post(app.url("/mcp/hirer"))
        .header("accept", "application/json, text/event-stream")
        .header("authorization", &bearer)
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let mut streamable = client
        .get(app.url("/mcp/hirer"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(streamable.status(), 200);
    let mut sse = client.get(app.url("/mcp/hirer/sse")).header("authorization", &bearer).send().await.unwrap();
    assert_eq!(sse.status(), 200);
    assert!(timeout(ms(5000), app.stop()).await.is_ok(), "the server waited for its event streams' clients");
    for stream in [&mut streamable, &mut sse] {
        let ended = timeout(ms(5000), async { while let Ok(Some(_)) = stream.chunk().await {} }).await;
        assert!(ended.is_ok(), "the stream ended with the server");
    }
}
