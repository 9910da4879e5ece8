//! Test support: every test starts the real server on 127.0.0.1:0 over its own fresh database
//! (a temporary SQLite file, or a new PostgreSQL database) and talks HTTP to it.

use std::sync::Arc;

use agentmarket::{App, Config, ManualClock};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub mod fake_providers;
pub mod pg;
pub mod receiver;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub database_url: String,
    /// The server's state, for driving the sweeper and the audit directly.
    pub state: agentmarket::state::AppState,
    /// SQLite: the folder holding the database file.
    pub dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _pg: Option<pg::TempDatabase>,
}

/// Runs `$name(app)` once on SQLite and once on PostgreSQL, each on a fresh database.
/// An optional second argument adjusts the configuration.
#[macro_export]
macro_rules! both_engines {
    ($name:ident) => {
        $crate::both_engines!($name, |_: &mut agentmarket::Config| {});
    };
    ($name:ident, $configure:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::TestApp::spawn($crate::support::Engine::Sqlite, $configure).await;
                super::$name(app.expect("SQLite is always available")).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::support::TestApp::spawn($crate::support::Engine::Postgres, $configure).await
                {
                    super::$name(app).await;
                }
            }
        }
    };
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `field`s named in a validation error.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"][0]["details"]
            .as_array()
            .map(|d| d.iter().filter_map(|x| x["field"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        self
    }
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Resp {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.code(), code, "unexpected code; body: {}", self.text);
        assert!(self.body["data"].is_null(), "error bodies carry data: null");
        assert!(self.body["errors"][0]["details"].is_array(), "details is always an array");
        self
    }
}

/// A signed-up user and their first key.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub key: String,
}

/// A registered agent and its key.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub did: String,
    pub key: String,
}

impl TestApp {
    /// Starts a server; `None` only for PostgreSQL when it is unreachable and `CI` is unset.
    pub async fn spawn(engine: Engine, configure: impl FnOnce(&mut Config)) -> Option<TestApp> {
        if std::env::var_os("AGENTMARKET_TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("warn,agentmarket=debug").with_test_writer().try_init();
        }
        let mut config = Config::defaults();
        config.allow_private_network = true;
        config.register_limit_per_hour = 10_000;
        config.signup_limit_per_hour = 10_000;
        config.rate_general_per_minute = 1_000_000;
        config.rate_financial_per_minute = 1_000_000;
        config.rate_withdrawals_per_hour = 1_000_000;
        config.db_max_connections = 5;
        config.enable_sandbox_deposits = true;
        // Tests run the sweeper by hand with the injected clock.
        config.sweep_interval_secs = 0;
        config.webhook_interval_ms = 0;
        config.defer_hiring_probe = true;
        // Each test its own sealing key, never a key file in the working directory.
        config.secrets_key =
            Some(agentmarket::config::Redacted(agentmarket::secrets::SecretsKey::generate().to_base64()));
        let (database_url, dir, pg) = match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                (url, Some(dir), None)
            }
            Engine::Postgres => {
                let db = pg::TempDatabase::create().await?;
                (db.url.clone(), None, Some(db))
            }
        };
        config.database_url = database_url.clone();
        configure(&mut config);
        let clock = ManualClock::starting_now();
        let app = App::build_with_clock(config, clock.clone()).await.expect("the app builds");
        let state = app.state().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Some(TestApp {
            base: format!("http://{addr}"),
            client,
            clock,
            database_url,
            state,
            dir,
            shutdown: Some(tx),
            server: Some(server),
            _pg: pg,
        })
    }

    /// Stops the server and waits for it to close its database pool.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `key` goes in `X-API-Key`; `body` (if any) as JSON.
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, self.url(path)).header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        Self::read(req.send().await.expect("request sent")).await
    }

    async fn read(res: reqwest::Response) -> Resp {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, body, headers, text }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        self.call(Method::GET, path, key, None).await
    }
    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, key, Some(body)).await
    }
    pub async fn patch(&self, path: &str, key: Option<&str>, body: Value) -> Resp {
        self.call(Method::PATCH, path, key, Some(body)).await
    }
    pub async fn delete(&self, path: &str, key: Option<&str>) -> Resp {
        self.call(Method::DELETE, path, key, None).await
    }

    pub async fn signup(&self, email: &str) -> User {
        let r = self
            .post("/api/v1/accounts/register", None, json!({"email": email, "password": "correct horse battery"}))
            .await
            .expect(201);
        User {
            id: r.data()["user"]["id"].as_str().unwrap().to_string(),
            key: r.data()["api_key"].as_str().unwrap().to_string(),
        }
    }

    /// Registers an agent (owned when `key` is a user key, autonomous when `None`).
    pub async fn register_agent(&self, key: Option<&str>, did: &str, extra: Value) -> Agent {
        let mut agent = json!({
            "name": format!("Agent {did}"),
            "did": did,
            "capabilities": ["code-review"],
            "pricing_model": "fixed",
            "base_price": "10.00",
        });
        if let (Some(obj), Value::Object(more)) = (agent.as_object_mut(), extra) {
            obj.extend(more);
        }
        let r = self.post("/api/v1/agents/register", key, json!({"agent": agent})).await.expect(201);
        Agent {
            id: r.data()["agent"]["id"].as_str().unwrap().to_string(),
            did: did.to_string(),
            key: r.data()["api_key"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Percent-encodes a DID for a path segment, as the clients' `encodeURIComponent` does.
pub fn enc(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
}

impl TestApp {
    /// The injected clock, in Unix seconds.
    pub fn clock_secs(&self) -> i64 {
        use agentmarket::Clock;
        self.clock.now_ms() / 1000
    }
}

impl TestApp {
    /// An administrator (made directly in the database, as `agentmarket admin create-user --admin` does).
    pub async fn admin(&self, email: &str) -> User {
        let signup = agentmarket::accounts::users::SignUpRequest {
            email: Some(agentmarket::text::Line::parse(email).unwrap()),
            password: Some("administrator password".into()),
            name: None,
        }
        .validate()
        .unwrap();
        let (user, _, secret) =
            agentmarket::accounts::users::register(&self.state.db, signup, true, self.state.now()).await.unwrap();
        User { id: user.id, key: secret.into_inner() }
    }

    /// Puts `amount` into the key's wallet with an instant sandbox deposit.
    pub async fn fund(&self, key: &str, amount: &str) {
        self.post(
            "/api/v1/ledger/deposit",
            Some(key),
            json!({"amount": amount, "currency": "USD", "payment_method": "sandbox"}),
        )
        .await
        .expect(201);
    }

    /// `(available, escrow, pending, total)` of the key's wallet, as strings.
    pub async fn balance(&self, key: &str) -> (String, String, String, String) {
        let r = self.get("/api/v1/ledger/balance", Some(key)).await.expect(200);
        let d = r.data();
        let s = |f: &str| d[f].as_str().unwrap().to_string();
        (s("available"), s("escrow"), s("pending"), s("total"))
    }

    pub async fn available(&self, key: &str) -> String {
        self.balance(key).await.0
    }

    /// Runs the full ledger audit and fails the test with its report if an invariant breaks.
    pub async fn audit_ok(&self) {
        let report = agentmarket::ledger::audit::run(&self.state.db, self.state.now()).await.expect("the audit runs");
        assert!(report.ok, "ledger audit failed: {}", serde_json::to_string_pretty(&report).unwrap());
        assert_eq!(report.invariants.len(), 5);
    }

    /// One webhook delivery pass at the injected clock's time.
    pub async fn deliver(&self) -> agentmarket::webhooks::worker::DeliveryReport {
        agentmarket::webhooks::worker::run_once(&self.state).await.expect("the delivery worker runs")
    }

    /// Runs a hiring's availability probe (deferred in tests).
    pub async fn probe(&self, hiring_id: &str) -> agentmarket::tasks::model::TaskRow {
        agentmarket::tasks::hirings::probe(&self.state, hiring_id).await.expect("the probe runs")
    }

    /// One sweeper pass at the injected clock's time.
    pub async fn sweep(&self) -> agentmarket::tasks::sweeper::SweepReport {
        agentmarket::tasks::sweeper::run_once(&self.state).await.expect("the sweeper runs")
    }

    /// Creates a task; returns its JSON.
    pub async fn task(&self, client_key: &str, provider: &Agent, body: Value) -> Resp {
        let mut task = json!({"provider_agent_id": provider.id, "capability": "code-review", "input": "review my PR"});
        if let (Some(obj), Value::Object(more)) = (task.as_object_mut(), body) {
            obj.extend(more);
        }
        self.post("/api/v1/tasks", Some(client_key), task).await
    }
}

/// The plan `statement` runs with on `conn`: on PostgreSQL the generic plan a prepared statement
/// keeps (`EXPLAIN EXECUTE` of a `PREPARE`d copy, every parameter unknown), on SQLite
/// `EXPLAIN QUERY PLAN`'s details.
pub async fn plan_of(
    conn: &mut sqlx::AnyConnection,
    engine: agentmarket::db::Engine,
    statement: &agentmarket::db::SqlBuilder,
) -> String {
    use sqlx::Row;
    let lines: Vec<String> = match engine {
        agentmarket::db::Engine::Postgres => {
            let prepare = format!("PREPARE inspected_statement AS {}", statement.sql);
            sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut *conn).await.unwrap();
            let nulls = vec!["NULL"; statement.args.len()].join(", ");
            let explain = format!("EXPLAIN EXECUTE inspected_statement({nulls})");
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(explain)).fetch_all(&mut *conn).await.unwrap();
            sqlx::raw_sql("DEALLOCATE inspected_statement").execute(&mut *conn).await.unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        }
        agentmarket::db::Engine::Sqlite => {
            let explain = agentmarket::db::SqlBuilder {
                sql: format!("EXPLAIN QUERY PLAN {}", statement.sql),
                args: statement.args.clone(),
            };
            explain.query().fetch_all(&mut *conn).await.unwrap().iter().map(|r| r.get::<String, _>(3)).collect()
        }
    };
    lines.join("\n")
}
