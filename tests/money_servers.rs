//! Money under real processes: two servers on one PostgreSQL racing commands on the same
//! wallets and tasks, and a server killed (`kill -9`) in the middle of a loaded run. Whatever a
//! server acknowledged is in the database afterwards, and the ledger audit is clean.

#[path = "process/mod.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::{Client, Server, postgres, run, sqlite};
use reqwest::Method;
use serde_json::{Value, json};

const LIMITS: [&str; 9] = [
    "--enable-sandbox-deposits",
    "--rate-general-per-minute",
    "1000000",
    "--rate-financial-per-minute",
    "1000000",
    "--signup-limit-per-hour",
    "1000",
    "--register-limit-per-hour",
    "1000",
];

/// What a server answered with success: the operation it promised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ack {
    Deposit { wallet: usize, id: String },
    Created { client: usize, provider: usize, task: String },
    Claimed { task: String },
    Completed { task: String },
    Accepted { task: String },
    Cancelled { task: String },
}

struct World {
    clients: Vec<String>,
    providers: Vec<(String, String)>, // (agent id, key)
}

async fn setup(http: &Client, server: &Server, clients: usize, providers: usize) -> World {
    let mut world = World { clients: Vec::new(), providers: Vec::new() };
    for i in 0..clients {
        world.clients.push(http.signup(server, &format!("client{i}@example.com")).await);
    }
    for i in 0..providers {
        let agent = json!({"agent": {"name": format!("Provider {i}"), "did": format!("did:t:provider{i}"),
            "capabilities": ["code-review"], "pricing_model": "fixed", "base_price": "10.00"}});
        let (status, r) = http.post(server, "/api/v1/agents/register", None, agent).await;
        assert_eq!(status, 201, "{r}");
        let data = &r["data"];
        world.providers.push((data["agent"]["id"].as_str().unwrap().into(), data["api_key"].as_str().unwrap().into()));
    }
    world
}

async fn deposit(http: &Client, base: &str, key: &str, amount: &str) -> Result<Option<String>, reqwest::Error> {
    let body = json!({"amount": amount, "currency": "USD", "payment_method": "sandbox"});
    let (status, r) = call(http, Method::POST, base, "/api/v1/ledger/deposit", key, body).await?;
    assert!(status == 201 || status >= 500, "deposit: {status} {r}");
    Ok((status == 201).then(|| r["data"]["transaction_id"].as_str().unwrap().to_string()))
}

/// One request; `Err` when the connection failed (the server died), which acknowledges nothing.
async fn call(
    http: &Client,
    method: Method,
    base: &str,
    path: &str,
    key: &str,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let res = http.0.request(method, format!("{base}{path}")).header("x-api-key", key).json(&body).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

/// Creates a task paid from the balance; `Some(id)` when the server acknowledged it.
async fn create(http: &Client, base: &str, client: &str, provider_id: &str) -> Result<Option<String>, reqwest::Error> {
    let body = json!({"provider_agent_id": provider_id, "capability": "code-review", "input": "race",
        "payment_type": "balance"});
    let (status, r) = call(http, Method::POST, base, "/api/v1/tasks", client, body).await?;
    match (status, r["errors"][0]["code"].as_str()) {
        (201, _) => Ok(Some(r["data"]["id"].as_str().unwrap().to_string())),
        (422, Some("INSUFFICIENT_BALANCE")) => Ok(None),
        (s, _) if s >= 500 => Ok(None),
        _ => panic!("create: {status} {r}"),
    }
}

/// A task command; `true` when acknowledged (200), `false` when refused in the normal way.
async fn act(http: &Client, base: &str, key: &str, task: &str, verb: &str) -> Result<bool, reqwest::Error> {
    let body = match verb {
        "complete" => json!({"output": "done"}),
        _ => json!({}),
    };
    let (status, r) = call(http, Method::POST, base, &format!("/api/v1/tasks/{task}/{verb}"), key, body).await?;
    assert!(status == 200 || status == 409 || status >= 500, "{verb}: {status} {r}");
    Ok(status == 200)
}

async fn open_db(url: &str) -> agentmarket::db::Db {
    agentmarket::db::Db::connect(url, 2).await.expect("the test reaches the database")
}

async fn audit_ok(db: &agentmarket::db::Db) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let report = agentmarket::ledger::audit::run(db, now).await.expect("the audit runs");
    assert!(report.ok, "ledger audit failed: {}", serde_json::to_string_pretty(&report).unwrap());
}

async fn task_state(db: &agentmarket::db::Db, task: &str) -> (String, String) {
    sqlx::query_as("SELECT status, payment_status FROM tasks WHERE id = $1")
        .bind(task)
        .fetch_optional(db.pool())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("acknowledged task {task} is missing"))
}

/// Every acknowledged operation is in the database, and nothing contradicts it.
async fn check_acknowledged(db: &agentmarket::db::Db, acks: &[Ack]) {
    let mut per_task: BTreeMap<&str, BTreeSet<&'static str>> = BTreeMap::new();
    for ack in acks {
        match ack {
            Ack::Deposit { id, .. } => {
                let (status,): (String,) = sqlx::query_as("SELECT status FROM deposits WHERE id = $1")
                    .bind(id)
                    .fetch_optional(db.pool())
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("acknowledged deposit {id} is missing"));
                assert_eq!(status, "completed", "deposit {id}");
            }
            Ack::Created { task, .. } => {
                per_task.entry(task).or_default().insert("created");
            }
            Ack::Claimed { task } => {
                assert!(per_task.entry(task).or_default().insert("claimed"), "{task} claimed twice")
            }
            Ack::Completed { task } => {
                assert!(per_task.entry(task).or_default().insert("completed"), "{task} completed twice")
            }
            Ack::Accepted { task } => {
                assert!(per_task.entry(task).or_default().insert("accepted"), "{task} accepted twice")
            }
            Ack::Cancelled { task } => {
                assert!(per_task.entry(task).or_default().insert("cancelled"), "{task} cancelled twice")
            }
        }
    }
    for (task, done) in per_task {
        let (status, payment) = task_state(db, task).await;
        let expected = if done.contains("cancelled") {
            assert!(!done.contains("accepted") && !done.contains("completed"), "{task}: cancelled and also {done:?}");
            ("cancelled", "refunded")
        } else if done.contains("accepted") {
            assert!(done.contains("completed"), "{task}: accepted without completion");
            ("completed", "released")
        } else if done.contains("completed") {
            assert!(done.contains("claimed"), "{task}: completed without a claim");
            // Completed and not accepted (the review window is long): unless a late cancel or
            // accept that died with the server went through, the money is still held.
            if payment == "released" { ("completed", "released") } else { ("completed", "escrowed") }
        } else if status == "pending" || status == "claimed" {
            (status.as_str(), "escrowed")
        } else {
            // An unacknowledged command (its answer lost with the server) may have moved it on.
            (status.as_str(), payment.as_str())
        };
        assert_eq!((status.as_str(), payment.as_str()), expected, "task {task}: acknowledged {done:?}");
    }
}

async fn available(http: &Client, base: &str, key: &str) -> i64 {
    let (_, r) = call(http, Method::GET, base, "/api/v1/ledger/balance", key, Value::Null).await.unwrap();
    let units = |field: &str| agentmarket::money::Amount::parse(r["data"][field].as_str().unwrap()).unwrap().units();
    assert_eq!(units("pending"), 0);
    units("available") + units("escrow")
}

#[test]
fn two_servers_on_one_postgres_race_commands_on_the_same_wallets_and_tasks() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        let servers = Arc::new([Server::start(&url, dir.path(), &LIMITS), Server::start(&url, dir.path(), &LIMITS)]);
        let http = Arc::new(Client::new());
        let world = Arc::new(setup(&http, &servers[0], 3, 2).await);
        let acks = Arc::new(Mutex::new(Vec::new()));

        // Eight workers, each alternating servers: deposits and paid task creations on three
        // shared wallets (which afford far fewer tasks than are asked for), then every command
        // of each task sent to both servers at once.
        let mut workers = Vec::new();
        for w in 0..8usize {
            let (servers, http, world, acks) = (servers.clone(), http.clone(), world.clone(), acks.clone());
            workers.push(tokio::spawn(async move {
                for round in 0..12usize {
                    let client = (w + round) % world.clients.len();
                    let provider = (w * 7 + round) % world.providers.len();
                    let base = &servers[(w + round) % 2].base;
                    if round % 4 == 0 {
                        if let Some(id) = deposit(&http, base, &world.clients[client], "10.00").await.unwrap() {
                            acks.lock().unwrap().push(Ack::Deposit { wallet: client, id });
                        }
                        continue;
                    }
                    let (provider_id, provider_key) = &world.providers[provider];
                    let Some(task) = create(&http, base, &world.clients[client], provider_id).await.unwrap() else {
                        continue;
                    };
                    acks.lock().unwrap().push(Ack::Created { client, provider, task: task.clone() });
                    let client_key = &world.clients[client];
                    let (a, b) = (&servers[0].base, &servers[1].base);
                    for verb in ["claim", "complete", "accept"] {
                        let key = if verb == "accept" { client_key } else { provider_key };
                        // The same command on both servers at once, and on the client's side a
                        // cancel racing it: exactly the contradictions the row locks must order.
                        let (x, y, c) =
                            tokio::join!(act(&http, a, key, &task, verb), act(&http, b, key, &task, verb), async {
                                if round % 3 == 1 && verb == "complete" {
                                    act(&http, b, client_key, &task, "cancel").await
                                } else {
                                    Ok(false)
                                }
                            });
                        let wins = [x.unwrap(), y.unwrap()].into_iter().filter(|w| *w).count();
                        let mut acks = acks.lock().unwrap();
                        for _ in 0..wins {
                            acks.push(match verb {
                                "claim" => Ack::Claimed { task: task.clone() },
                                "complete" => Ack::Completed { task: task.clone() },
                                _ => Ack::Accepted { task: task.clone() },
                            });
                        }
                        if c.unwrap() {
                            acks.push(Ack::Cancelled { task: task.clone() });
                        }
                    }
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let acks = acks.lock().unwrap().clone();
        let db = open_db(&url).await;
        audit_ok(&db).await;
        check_acknowledged(&db, &acks).await;

        // The wallets hold exactly what the acknowledged operations say: deposits in, 10.00 per
        // accepted task out of the client and 9.50 into its provider.
        let accepted: BTreeSet<&str> = acks
            .iter()
            .filter_map(|a| if let Ack::Accepted { task } = a { Some(task.as_str()) } else { None })
            .collect();
        let units = |s: &str| agentmarket::money::Amount::parse(s).unwrap().units();
        let (mut client_expect, mut provider_expect) =
            (vec![0i64; world.clients.len()], vec![0i64; world.providers.len()]);
        for ack in &acks {
            match ack {
                Ack::Deposit { wallet, .. } => client_expect[*wallet] += units("10.00"),
                Ack::Created { client, provider, task } if accepted.contains(task.as_str()) => {
                    client_expect[*client] -= units("10.00");
                    provider_expect[*provider] += units("9.50");
                }
                _ => {}
            }
        }
        for (i, key) in world.clients.iter().enumerate() {
            assert_eq!(available(&http, &servers[i % 2].base, key).await, client_expect[i], "client {i}");
        }
        for (i, (_, key)) in world.providers.iter().enumerate() {
            assert_eq!(available(&http, &servers[1 - i % 2].base, key).await, provider_expect[i], "provider {i}");
        }
        assert!(!accepted.is_empty(), "the run settled something");
    });
}

/// A loaded server killed with SIGKILL: after a restart the audit is clean and every
/// acknowledged deposit, creation and settlement is there.
async fn a_crash_under_load_loses_nothing_acknowledged(url: &str, dir: &Path) {
    let server = Server::start(url, dir, &LIMITS);
    let http = Arc::new(Client::new());
    let world = Arc::new(setup(&http, &server, 4, 2).await);
    for key in &world.clients {
        deposit(&http, &server.base, key, "100.00").await.unwrap().expect("funded");
    }
    let acks = Arc::new(Mutex::new(Vec::new()));
    let base = Arc::new(server.base.clone());
    let mut workers = Vec::new();
    for w in 0..8usize {
        let (http, world, acks, base) = (http.clone(), world.clone(), acks.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            // Runs until the server dies under it; the first connection error ends the worker.
            let result: Result<(), reqwest::Error> = async {
                for round in 0.. {
                    let client = (w + round) % world.clients.len();
                    let provider = (w + round / 2) % world.providers.len();
                    let (provider_id, provider_key) = &world.providers[provider];
                    if round % 5 == 0 {
                        if let Some(id) = deposit(&http, &base, &world.clients[client], "3.00").await? {
                            acks.lock().unwrap().push(Ack::Deposit { wallet: client, id });
                        }
                        continue;
                    }
                    let Some(task) = create(&http, &base, &world.clients[client], provider_id).await? else { continue };
                    acks.lock().unwrap().push(Ack::Created { client, provider, task: task.clone() });
                    for (verb, key) in
                        [("claim", provider_key), ("complete", provider_key), ("accept", &world.clients[client])]
                    {
                        if !act(&http, &base, key, &task, verb).await? {
                            break;
                        }
                        acks.lock().unwrap().push(match verb {
                            "claim" => Ack::Claimed { task: task.clone() },
                            "complete" => Ack::Completed { task: task.clone() },
                            _ => Ack::Accepted { task: task.clone() },
                        });
                    }
                }
                Ok(())
            }
            .await;
            assert!(result.is_err(), "only the crash stops a worker");
        }));
    }
    // Let the load build up, then crash the server in the middle of it.
    let started = Instant::now();
    while acks.lock().unwrap().len() < 60 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    for w in workers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= 60, "the load ran before the crash: {} acknowledged", acks.len());

    let again = Server::start(url, dir, &LIMITS);
    let db = open_db(url).await;
    audit_ok(&db).await;
    check_acknowledged(&db, &acks).await;
    // The restarted server works on the same wallets.
    let (provider_id, _) = &world.providers[0];
    create(&http, &again.base, &world.clients[0], provider_id).await.unwrap().expect("the restarted server takes work");
    audit_ok(&db).await;
}

#[test]
fn a_crash_under_load_loses_nothing_acknowledged_on_sqlite() {
    run(async {
        let (url, dir) = sqlite().await;
        a_crash_under_load_loses_nothing_acknowledged(&url, dir.path()).await;
    });
}

#[test]
fn a_crash_under_load_loses_nothing_acknowledged_on_postgres() {
    run(async {
        let Some((url, dir, _db)) = postgres().await else { return };
        a_crash_under_load_loses_nothing_acknowledged(&url, dir.path()).await;
    });
}
