//! `discovery-loadgen --base URL --path /api/v1/… [--connections 32] [--seconds 8] [--label L]`
//! `discovery-loadgen --base URL --register [--connections 16] [--seconds 10] [--label L]`
//!
//! Keeps N connections busy with GET `path` (or with agent registrations, each a new DID) for S
//! seconds and prints one line: `label requests req_per_s p50_ms p99_ms errors`. A non-2xx answer
//! counts as an error (and its latency is still recorded).

use std::time::{Duration, Instant};

use serde_json::json;

struct Args {
    base: String,
    path: String,
    register: bool,
    connections: usize,
    seconds: u64,
    label: String,
}

fn args() -> Args {
    let mut a = Args {
        base: "http://127.0.0.1:8080".into(),
        path: "/api/v1/agents".into(),
        register: false,
        connections: 32,
        seconds: 8,
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--register" {
            a.register = true;
            continue;
        }
        let value = it.next().expect("every flag but --register takes a value");
        match flag.as_str() {
            "--base" => a.base = value,
            "--path" => a.path = value,
            "--connections" => a.connections = value.parse().expect("--connections N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds S"),
            "--label" => a.label = value,
            other => panic!("unknown flag {other}"),
        }
    }
    if a.label.is_empty() {
        a.label = if a.register { "register".into() } else { a.path.clone() };
    }
    a
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    errors: u64,
}

async fn worker(http: reqwest::Client, a: std::sync::Arc<Args>, n: usize, run: u128, until: Instant) -> Stats {
    let mut stats = Stats::default();
    let mut i = 0u64;
    while Instant::now() < until {
        let t = Instant::now();
        let res = if a.register {
            i += 1;
            let body = json!({"name": format!("Load {n} {i}"), "did": format!("did:load:{run}-{n}-{i}"),
                "capabilities": ["code-review", "load"], "pricing_model": "fixed", "base_price": "3.00",
                "description": "registered by the discovery benchmark"});
            http.post(format!("{}/api/v1/agents/register", a.base)).json(&body).send().await
        } else {
            http.get(format!("{}{}", a.base, a.path)).send().await
        };
        let ok = match res {
            Ok(r) => {
                let ok = r.status().is_success();
                let _ = r.bytes().await;
                ok
            }
            Err(_) => false,
        };
        stats.latencies.push(t.elapsed());
        if !ok {
            stats.errors += 1;
        }
    }
    stats
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
    let a = std::sync::Arc::new(args());
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(a.connections * 2).build().unwrap();
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds);
    let handles: Vec<_> =
        (0..a.connections).map(|n| tokio::spawn(worker(http.clone(), a.clone(), n, run, until))).collect();
    let mut all = Stats::default();
    for h in handles {
        let s = h.await.unwrap();
        all.latencies.extend(s.latencies);
        all.errors += s.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies.sort();
    println!(
        "{}\t{}\t{:.1}\t{:.2}\t{:.2}\t{}",
        a.label,
        all.latencies.len(),
        all.latencies.len() as f64 / elapsed,
        pct(&all.latencies, 0.50),
        pct(&all.latencies, 0.99),
        all.errors
    );
}
