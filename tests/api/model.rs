//! A random-operation model test: deposits, tasks down every path, disputes with every outcome,
//! withdrawals and review-window sweeps, in random order. After every step the balances the API
//! reports must equal an independent model of the money, and the full ledger audit must pass.
//! `AGENTMARKET_MODEL_SEED` replays one seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::support::{Engine, TestApp};

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Wallet {
    available: i64,
    escrow: i64,
    pending: i64,
}

#[derive(Debug, Clone)]
struct ModelTask {
    id: String,
    client: usize,
    provider: usize,
    price: i64,
    /// Money is held for it.
    held: bool,
    /// The held money sits in the provider's pending (completed before settlement).
    in_pending: bool,
    dispute: Option<String>,
}

struct Party {
    key: String,
    /// For providers: the agent id.
    agent_id: Option<String>,
    address: Option<String>,
}

struct Model {
    wallets: Vec<Wallet>,
    fees: i64,
    tasks: Vec<ModelTask>,
    withdrawals: Vec<(usize, String, i64)>,
}

fn fee(amount: i64) -> i64 {
    ((amount as i128 * 500 + 5_000) / 10_000) as i64
}

fn units(s: &str) -> i64 {
    agentmarket::money::Amount::parse(s).unwrap().units()
}

fn fmt(u: i64) -> String {
    agentmarket::money::Amount::from_units(u).unwrap().to_string()
}

/// Moves a task's held money: `to_client` back to the client, the rest (less the fee on it) to
/// the provider.
fn settle(m: &mut Model, t: usize, to_client: i64) {
    let task = m.tasks[t].clone();
    if !task.held {
        return;
    }
    if task.in_pending {
        m.wallets[task.provider].pending -= task.price;
    } else {
        m.wallets[task.client].escrow -= task.price;
    }
    let provider_part = task.price - to_client;
    let f = fee(provider_part);
    m.wallets[task.client].available += to_client;
    m.wallets[task.provider].available += provider_part - f;
    m.fees += f;
    m.tasks[t].held = false;
}

const ALLOWED_REFUSALS: &[(u16, &str)] =
    &[(409, "CONFLICT"), (409, "DISPUTE_OPEN"), (422, "INSUFFICIENT_BALANCE"), (423, "ESCROW_LOCKED")];

#[track_caller]
fn refused(r: &crate::support::Resp, step: usize, op: &str) {
    assert!(ALLOWED_REFUSALS.contains(&(r.status, r.code())), "step {step} {op}: unexpected {} {}", r.status, r.text);
}

async fn run(engine: Engine, steps: usize, seed: u64) {
    let Some(app) = TestApp::spawn(engine, |_| {}).await else { return };
    let seed = std::env::var("AGENTMARKET_MODEL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
    let mut rng = SmallRng::seed_from_u64(seed);
    let admin = app.admin("admin@example.com").await;

    // Clients: two users and an autonomous agent. Providers: four prices, one free.
    let mut parties = Vec::new();
    for i in 0..2 {
        let u = app.signup(&format!("client{i}@example.com")).await;
        parties.push(Party { key: u.key, agent_id: None, address: None });
    }
    let agent_client = app.register_agent(None, "did:model:client", json!({"capabilities": ["buy"]})).await;
    parties.push(Party { key: agent_client.key, agent_id: Some(agent_client.id), address: None });
    for (i, price) in ["10.00", "0.00000021", "0", "1234.56789"].iter().enumerate() {
        let a = app.register_agent(None, &format!("did:model:p{i}"), json!({"base_price": price})).await;
        parties.push(Party { key: a.key, agent_id: Some(a.id), address: None });
    }
    let prices = [units("10.00"), 21, 0, units("1234.56789")];
    for p in parties.iter_mut() {
        let r = app
            .post("/api/v1/withdrawal-addresses", Some(&p.key), json!({"currency": "USDC", "address": "0xmodel"}))
            .await
            .expect(201);
        p.address = Some(r.data()["id"].as_str().unwrap().to_string());
    }
    let clients = 0..3usize;
    let providers = 3..7usize;
    let mut m =
        Model { wallets: vec![Wallet::default(); parties.len()], fees: 0, tasks: Vec::new(), withdrawals: Vec::new() };

    for step in 0..steps {
        let roll = rng.random_range(0..100);
        let task_ix = (!m.tasks.is_empty()).then(|| rng.random_range(0..m.tasks.len()));
        let op: &str;
        match roll {
            0..=9 => {
                op = "deposit";
                let who = rng.random_range(0..parties.len());
                let amount = [units("5"), units("50"), units("1500"), 7][rng.random_range(0..4)];
                app.post(
                    "/api/v1/ledger/deposit",
                    Some(&parties[who].key),
                    json!({"amount": fmt(amount), "currency": "USD", "payment_method": "sandbox"}),
                )
                .await
                .expect(201);
                m.wallets[who].available += amount;
            }
            10..=27 => {
                op = "create";
                let client = rng.random_range(clients.clone());
                let provider = rng.random_range(providers.clone());
                let pay_now = rng.random_bool(0.6);
                let mut body =
                    json!({"provider_agent_id": parties[provider].agent_id, "capability": "code-review", "input": "x"});
                if pay_now {
                    body["payment_type"] = json!("balance");
                }
                let r = app.post("/api/v1/tasks", Some(&parties[client].key), body).await;
                let price = prices[provider - 3];
                if r.status == 201 {
                    let held = pay_now && price > 0;
                    if held {
                        m.wallets[client].available -= price;
                        m.wallets[client].escrow += price;
                    }
                    let id = r.data()["id"].as_str().unwrap().to_string();
                    m.tasks.push(ModelTask { id, client, provider, price, held, in_pending: false, dispute: None });
                } else {
                    refused(&r, step, op);
                    assert!(m.wallets[client].available < price, "refused only when unaffordable");
                }
            }
            28..=37 if task_ix.is_some() => {
                op = "pay";
                let t = task_ix.unwrap();
                let task = m.tasks[t].clone();
                let r = app
                    .post(&format!("/api/v1/tasks/{}/payments", task.id), Some(&parties[task.client].key), json!({}))
                    .await;
                match r.status {
                    201 => {
                        m.wallets[task.client].available -= task.price;
                        m.wallets[task.client].escrow += task.price;
                        m.tasks[t].held = true;
                    }
                    200 => {}
                    _ => refused(&r, step, op),
                }
            }
            38..=47 if task_ix.is_some() => {
                op = "claim+complete";
                let t = task_ix.unwrap();
                let task = m.tasks[t].clone();
                let key = &parties[task.provider].key;
                let _ = app.post(&format!("/api/v1/tasks/{}/claim", task.id), Some(key), json!({})).await;
                let output = if rng.random_bool(0.2) { json!("") } else { json!({"result": step}) };
                let r = app
                    .post(&format!("/api/v1/tasks/{}/complete", task.id), Some(key), json!({"output": output}))
                    .await;
                if r.status == 200 {
                    if task.held {
                        m.wallets[task.client].escrow -= task.price;
                        m.wallets[task.provider].pending += task.price;
                    }
                    m.tasks[t].in_pending = true;
                } else {
                    refused(&r, step, op);
                }
            }
            48..=54 if task_ix.is_some() => {
                op = "fail";
                let t = task_ix.unwrap();
                let task = m.tasks[t].clone();
                let r = app
                    .post(
                        &format!("/api/v1/tasks/{}/fail", task.id),
                        Some(&parties[task.provider].key),
                        json!({"error_reason": "model"}),
                    )
                    .await;
                if r.status == 200 { settle(&mut m, t, task.price) } else { refused(&r, step, op) }
            }
            55..=61 if task_ix.is_some() => {
                op = "cancel";
                let t = task_ix.unwrap();
                let task = m.tasks[t].clone();
                let r = app
                    .post(&format!("/api/v1/tasks/{}/cancel", task.id), Some(&parties[task.client].key), json!({}))
                    .await;
                if r.status == 200 { settle(&mut m, t, task.price) } else { refused(&r, step, op) }
            }
            62..=69 if task_ix.is_some() => {
                op = "accept";
                let t = task_ix.unwrap();
                let task = m.tasks[t].clone();
                let r = app
                    .post(
                        &format!("/api/v1/tasks/{}/accept", task.id),
                        Some(&parties[task.client].key),
                        json!({"rating": 3}),
                    )
                    .await;
                if r.status == 200 { settle(&mut m, t, 0) } else { refused(&r, step, op) }
            }
            70..=77 if task_ix.is_some() => {
                op = "dispute";
                let t = task_ix.unwrap();
                let task = m.tasks[t].clone();
                let r = app
                    .post(
                        &format!("/api/v1/tasks/{}/dispute", task.id),
                        Some(&parties[task.client].key),
                        json!({"reason": "model"}),
                    )
                    .await;
                if r.status == 201 {
                    if r.data()["status"] == "resolved" {
                        settle(&mut m, t, task.price);
                    } else {
                        m.tasks[t].dispute = Some(r.data()["id"].as_str().unwrap().to_string());
                    }
                } else {
                    refused(&r, step, op);
                }
            }
            78..=85 => {
                op = "resolve";
                let open: Vec<usize> = (0..m.tasks.len()).filter(|&i| m.tasks[i].dispute.is_some()).collect();
                if let Some(&t) = open.get(rng.random_range(0..open.len().max(1))) {
                    let task = m.tasks[t].clone();
                    let (outcome, share) = match rng.random_range(0..3) {
                        0 => ("refund", 10_000),
                        1 => ("release", 0),
                        _ => ("split", rng.random_range(0..=10_000i64)),
                    };
                    let body = json!({"outcome": outcome, "client_share_bps": share});
                    let r = app
                        .post(
                            &format!("/api/v1/admin/disputes/{}/resolve", task.dispute.as_ref().unwrap()),
                            Some(&admin.key),
                            body,
                        )
                        .await
                        .expect(200);
                    assert_eq!(r.data()["status"], "resolved");
                    let to_client = ((task.price as i128 * share as i128 + 5_000) / 10_000) as i64;
                    settle(&mut m, t, to_client);
                    m.tasks[t].dispute = None;
                }
            }
            86..=91 => {
                op = "withdraw";
                let who = rng.random_range(0..parties.len());
                let amount = [units("1"), units("3.5"), units("20")][rng.random_range(0..3)];
                let body =
                    json!({"amount": fmt(amount), "currency": "USD", "withdrawal_address_id": parties[who].address});
                let r = app.post("/api/v1/ledger/withdraw", Some(&parties[who].key), body).await;
                if r.status == 201 {
                    m.wallets[who].available -= amount;
                    m.withdrawals.push((who, r.data()["id"].as_str().unwrap().to_string(), amount));
                } else {
                    refused(&r, step, op);
                    assert!(m.wallets[who].available < amount);
                }
            }
            92..=95 if !m.withdrawals.is_empty() => {
                op = "finish-withdrawal";
                let (who, id, amount) = m.withdrawals.swap_remove(rng.random_range(0..m.withdrawals.len()));
                let complete = rng.random_bool(0.5);
                let path = format!("/api/v1/admin/withdrawals/{id}/{}", if complete { "complete" } else { "fail" });
                app.post(&path, Some(&admin.key), json!({})).await.expect(200);
                if !complete {
                    m.wallets[who].available += amount;
                }
            }
            _ => {
                op = "sweep";
                app.clock.advance_secs(rng.random_range(0..3) * 12 * 3600);
                let report = app.sweep().await;
                for id in report.released {
                    let t = m.tasks.iter().position(|x| x.id == id).unwrap();
                    settle(&mut m, t, 0);
                }
                assert!(report.expired.is_empty(), "no deadlines in this model");
            }
        }

        // The API's balances equal the model's, and every invariant holds.
        for (i, p) in parties.iter().enumerate() {
            let (a, e, pe, _) = app.balance(&p.key).await;
            let got = Wallet { available: units(&a), escrow: units(&e), pending: units(&pe) };
            assert_eq!(got, m.wallets[i], "seed {seed} step {step} after {op}: wallet {i}");
        }
        let fees = agentmarket::ledger::fees_collected(&app.state.db).await.unwrap().units();
        assert_eq!(fees, m.fees, "seed {seed} step {step} after {op}: fees");
        app.audit_ok().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_keep_the_model_and_the_invariants_sqlite() {
    run(Engine::Sqlite, 2000, 0xA6E47).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_keep_the_model_and_the_invariants_postgres() {
    run(Engine::Postgres, 300, 0x5EED).await;
}
