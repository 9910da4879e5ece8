//! `escrow-loadgen --base http://127.0.0.1:PORT --clients N --seconds S [--mode cycles|get]`
//!
//! Seeds N clients (each with a funded wallet and its own provider agent), then
//! - `cycles` (default): each client runs full escrow cycles for S seconds: create with a
//!   balance payment (hold) → claim → complete (escrow → pending) → accept (release with the
//!   fee). Prints cycles, money-moving requests per second (create, complete, accept) and
//!   p50/p99 latencies.
//! - `get`: each client reads its provider's public profile (`GET /agents/:id`) for S/2 seconds
//!   with its API key, then S/2 seconds without one, and prints both rates and their ratio: what
//!   authentication costs on a read.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Args {
    base: String,
    clients: usize,
    seconds: u64,
    mode: String,
}

fn args() -> Args {
    let mut a = Args { base: "http://127.0.0.1:8080".into(), clients: 16, seconds: 20, mode: "cycles".into() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().expect("every flag takes a value");
        match flag.as_str() {
            "--base" => a.base = value,
            "--clients" => a.clients = value.parse().expect("--clients N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds S"),
            "--mode" => a.mode = value,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

async fn call(client: &reqwest::Client, base: &str, path: &str, key: Option<&str>, body: Value) -> Value {
    let mut req = client.post(format!("{base}{path}")).json(&body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let v: Value = res.json().await.expect("json");
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

struct Seeded {
    client_key: String,
    provider_id: String,
    provider_key: String,
}

async fn seed(http: &reqwest::Client, base: &str, i: usize, run: u128) -> Seeded {
    let user = call(http, base, "/api/v1/accounts/register", None, json!({"email": format!("bench{run}-{i}@example.com"), "password": "benchmark password"})).await;
    let client_key = user["data"]["api_key"].as_str().unwrap().to_string();
    call(http, base, "/api/v1/ledger/deposit", Some(&client_key), json!({"amount": "1000000", "currency": "USD", "payment_method": "sandbox"})).await;
    let agent = json!({"name": format!("bench provider {i}"), "did": format!("did:bench:{run}-{i}"), "capabilities": ["bench"], "pricing_model": "fixed", "base_price": "1.00"});
    let reg = call(http, base, "/api/v1/agents/register", None, agent).await;
    Seeded {
        client_key,
        provider_id: reg["data"]["agent"]["id"].as_str().unwrap().to_string(),
        provider_key: reg["data"]["api_key"].as_str().unwrap().to_string(),
    }
}

#[derive(Default)]
struct Stats {
    cycles: u64,
    money: Vec<Duration>,
    other: Vec<Duration>,
}

async fn worker(http: reqwest::Client, base: String, s: Seeded, until: Instant) -> Stats {
    let mut stats = Stats::default();
    while Instant::now() < until {
        let t = Instant::now();
        let task = call(&http, &base, "/api/v1/tasks", Some(&s.client_key), json!({"provider_agent_id": s.provider_id, "capability": "bench", "input": "x", "payment_type": "balance"})).await;
        stats.money.push(t.elapsed());
        let id = task["data"]["id"].as_str().unwrap().to_string();
        let t = Instant::now();
        call(&http, &base, &format!("/api/v1/tasks/{id}/claim"), Some(&s.provider_key), json!({})).await;
        stats.other.push(t.elapsed());
        let t = Instant::now();
        call(&http, &base, &format!("/api/v1/tasks/{id}/complete"), Some(&s.provider_key), json!({"output": "done"})).await;
        stats.money.push(t.elapsed());
        let t = Instant::now();
        call(&http, &base, &format!("/api/v1/tasks/{id}/accept"), Some(&s.client_key), json!({})).await;
        stats.money.push(t.elapsed());
        stats.cycles += 1;
    }
    stats
}

/// Reads the provider's profile until `until`, with the client's key or anonymously.
async fn reader(http: reqwest::Client, base: String, s: Seeded, with_key: bool, until: Instant) -> Vec<Duration> {
    let mut times = Vec::new();
    let url = format!("{base}/api/v1/agents/{}", s.provider_id);
    while Instant::now() < until {
        let t = Instant::now();
        let mut req = http.get(&url);
        if with_key {
            req = req.header("x-api-key", &s.client_key);
        }
        let res = req.send().await.expect("request");
        assert!(res.status().is_success(), "GET {url}: {}", res.status());
        res.bytes().await.expect("body");
        times.push(t.elapsed());
    }
    times
}

async fn reads(http: &reqwest::Client, a: &Args, seeded: &[Seeded], with_key: bool) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds.div_ceil(2));
    let handles: Vec<_> = seeded
        .iter()
        .map(|s| {
            let s = Seeded { client_key: s.client_key.clone(), provider_id: s.provider_id.clone(), provider_key: String::new() };
            tokio::spawn(reader(http.clone(), a.base.clone(), s, with_key, until))
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort();
    (all.len() as f64 / started.elapsed().as_secs_f64(), all)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(a.clients * 2).build().unwrap();
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let mut seeded = Vec::new();
    for i in 0..a.clients {
        seeded.push(seed(&http, &a.base, i, run).await);
    }
    if a.mode == "get" {
        let (with_key, with_times) = reads(&http, &a, &seeded, true).await;
        let (anonymous, anon_times) = reads(&http, &a, &seeded, false).await;
        println!("get_authenticated_per_s={with_key:.1} p50={:.2} p99={:.2}", pct(&with_times, 0.5), pct(&with_times, 0.99));
        println!("get_anonymous_per_s={anonymous:.1} p50={:.2} p99={:.2}", pct(&anon_times, 0.5), pct(&anon_times, 0.99));
        println!("get_authenticated_over_anonymous={:.2}", with_key / anonymous);
        return;
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds);
    let handles: Vec<_> = seeded.into_iter().map(|s| tokio::spawn(worker(http.clone(), a.base.clone(), s, until))).collect();
    let mut all = Stats::default();
    for h in handles {
        let s = h.await.unwrap();
        all.cycles += s.cycles;
        all.money.extend(s.money);
        all.other.extend(s.other);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.money.sort();
    let mut every: Vec<Duration> = all.money.iter().chain(all.other.iter()).copied().collect();
    every.sort();
    println!("clients={} seconds={:.1}", a.clients, elapsed);
    println!("escrow_cycles={} cycles_per_s={:.1}", all.cycles, all.cycles as f64 / elapsed);
    println!("money_moving_requests_per_s={:.1}", all.money.len() as f64 / elapsed);
    println!("all_requests_per_s={:.1}", every.len() as f64 / elapsed);
    println!("money_moving_latency_ms p50={:.2} p99={:.2}", pct(&all.money, 0.50), pct(&all.money, 0.99));
    println!("all_latency_ms p50={:.2} p99={:.2}", pct(&every, 0.50), pct(&every, 0.99));
}
