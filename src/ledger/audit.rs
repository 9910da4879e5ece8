//! The full invariant check (DESIGN.md, Money and the ledger): run by `GET /admin/ledger/audit`,
//! `agentmarket admin audit`, the admin page's button, and the tests after every property-test
//! step and concurrency test. It reads every posting, so it runs on demand only: each run is
//! stored (`record`), and the admin page shows the last one (`last`) with its time.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::db::Db;
use crate::tasks;

const MAX_VIOLATIONS: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct Invariant {
    pub name: &'static str,
    pub ok: bool,
    #[schema(value_type = Vec<Object>)]
    pub violations: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditReport {
    /// True only when every invariant holds.
    pub ok: bool,
    pub checked_at: String,
    pub invariants: Vec<Invariant>,
}

/// An exact sum in units: a JSON number when it fits an i64, else its decimal string.
fn units(sum: i128) -> Value {
    i64::try_from(sum).map(Value::from).unwrap_or_else(|_| Value::String(sum.to_string()))
}

fn invariant(name: &'static str, mut violations: Vec<Value>) -> Invariant {
    violations.truncate(MAX_VIOLATIONS);
    Invariant { name, ok: violations.is_empty(), violations }
}

/// A stored audit: when, how long, and each invariant's verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastAudit {
    pub ran_at: String,
    pub ok: bool,
    pub duration_ms: i64,
    /// `(invariant, holds)`.
    pub invariants: Vec<(String, bool)>,
}

/// Runs the audit and stores its result and duration.
pub async fn run_and_record(db: &Db, now: i64) -> anyhow::Result<AuditReport> {
    let started = std::time::Instant::now();
    let report = run(db, now).await?;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    sqlx::query("INSERT INTO ledger_audits (id, ran_at, ok, duration_ms, report) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(now)
        .bind(i64::from(report.ok))
        .bind(duration_ms)
        .bind(serde_json::to_string(&report)?)
        .execute(db.writer())
        .await?;
    Ok(report)
}

/// The most recent stored audit, if any has run.
pub async fn last(db: &Db) -> anyhow::Result<Option<LastAudit>> {
    let row: Option<(i64, i64, i64, String)> = sqlx::query_as(
        "SELECT ran_at, ok, duration_ms, report FROM ledger_audits ORDER BY ran_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(ran_at, ok, duration_ms, report)| {
        let report: Value = serde_json::from_str(&report).unwrap_or_default();
        let invariants = report["invariants"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|i| (i["name"].as_str().unwrap_or_default().to_string(), i["ok"].as_bool().unwrap_or(false)))
                    .collect()
            })
            .unwrap_or_default();
        LastAudit { ran_at: rfc3339(ran_at), ok: ok != 0, duration_ms, invariants }
    }))
}

pub async fn run(db: &Db, now: i64) -> anyhow::Result<AuditReport> {
    let invariants = vec![
        entries_balance(db).await?,
        balances_match_postings(db).await?,
        task_escrow_conserved(db).await?,
        settled_at_most_once(db).await?,
        one_effect_per_event(db).await?,
    ];
    Ok(AuditReport { ok: invariants.iter().all(|i| i.ok), checked_at: rfc3339(now), invariants })
}

/// 1. Every journal entry sums to zero, and so do all balances together (`world` carries
///    deposits minus withdrawals). Sums are exact (`db::exact_sum`): nothing here can overflow.
async fn entries_balance(db: &Db) -> anyhow::Result<Invariant> {
    // An entry has a handful of postings, each within `Amount::CEILING`: its plain sum fits an
    // i64, so the filter can use it; the reported sum is exact all the same.
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT entry_id, {} FROM postings GROUP BY entry_id HAVING SUM(amount) <> 0",
        crate::db::exact_sum("amount")
    )))
    .fetch_all(db.pool())
    .await?;
    let mut v: Vec<Value> = rows
        .into_iter()
        .map(|(id, high, low)| json!({"entry_id": id, "sum": units(crate::db::exact_total(high, low))}))
        .collect();
    let (high, low): (i64, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {} FROM ledger_accounts", crate::db::exact_sum("balance"))))
            .fetch_one(db.pool())
            .await?;
    let total = crate::db::exact_total(high, low);
    if total != 0 {
        v.push(json!({"all_balances_sum": units(total)}));
    }
    Ok(invariant("entries_and_balances_sum_to_zero", v))
}

/// 2. Each balance equals the sum of its postings, and no wallet is negative. An account's
///    postings are many (the `world` account has one per deposit), so their sum is taken exactly
///    and compared in Rust.
async fn balances_match_postings(db: &Db) -> anyhow::Result<Invariant> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT a.id, a.balance, {} FROM ledger_accounts a LEFT JOIN postings p ON p.account_id = a.id GROUP BY a.id, a.balance",
        crate::db::exact_sum("p.amount")
    )))
    .fetch_all(db.pool())
    .await?;
    let mut v: Vec<Value> = rows
        .into_iter()
        .map(|(id, balance, high, low)| (id, balance, crate::db::exact_total(high, low)))
        .filter(|(_, balance, sum)| i128::from(*balance) != *sum)
        .map(|(id, balance, sum)| json!({"account": id, "balance": balance, "postings_sum": units(sum)}))
        .collect();
    let negative: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, balance FROM ledger_accounts WHERE balance < 0 AND allow_negative = 0")
            .fetch_all(db.pool())
            .await?;
    v.extend(negative.into_iter().map(|(id, bal)| json!({"account": id, "negative_balance": bal})));
    Ok(invariant("balances_equal_postings_and_are_not_negative", v))
}

#[derive(Default, Debug)]
struct TaskMoney {
    held: i64,
    paid_out: i64,
    still_held: i64,
}

/// 3. Per task: held = released to the provider + fee + refunded, exactly; money still held
///    only while the task's payment is held.
async fn task_escrow_conserved(db: &Db) -> anyhow::Result<Invariant> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT e.task_id, \
           CAST(SUM(CASE WHEN e.kind = 'escrow_hold' AND p.amount > 0 THEN p.amount ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN e.kind IN ('escrow_release', 'escrow_refund', 'escrow_split') AND p.amount > 0 THEN p.amount ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN a.purpose IN ('escrow', 'pending') THEN p.amount ELSE 0 END) AS BIGINT) \
         FROM journal_entries e JOIN postings p ON p.entry_id = e.id JOIN ledger_accounts a ON a.id = p.account_id \
         WHERE e.task_id IS NOT NULL GROUP BY e.task_id",
    )
    .fetch_all(db.pool())
    .await?;
    let mut money: HashMap<String, TaskMoney> = rows
        .into_iter()
        .map(|(id, held, paid_out, still_held)| (id, TaskMoney { held, paid_out, still_held }))
        .collect();
    let mut v = Vec::new();
    for (id, price, status) in tasks::store::payment_states(db).await? {
        let m = money.remove(&id).unwrap_or_default();
        let settled = matches!(status.as_str(), "released" | "refunded" | "split");
        let ok = m.held == price
            && m.held == m.paid_out + m.still_held
            && if settled { m.still_held == 0 } else { m.paid_out == 0 && m.still_held == price };
        if !ok {
            v.push(json!({"task_id": id, "price": price, "payment_status": status, "held": m.held, "paid_out": m.paid_out, "still_held": m.still_held}));
        }
    }
    // Ledger money for a task that never took a payment.
    v.extend(
        money.into_iter().map(|(id, m)| json!({"task_id": id, "unexpected_ledger_entries": true, "held": m.held})),
    );
    Ok(invariant("task_held_equals_released_plus_fee_plus_refunded", v))
}

/// 4. An escrow is held at most once and settled at most once.
async fn settled_at_most_once(db: &Db) -> anyhow::Result<Invariant> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT task_id, CASE WHEN kind = 'escrow_hold' THEN 'hold' WHEN kind = 'escrow_to_pending' THEN 'complete' ELSE 'settle' END AS step, \
         COUNT(*) FROM journal_entries WHERE task_id IS NOT NULL \
         GROUP BY task_id, CASE WHEN kind = 'escrow_hold' THEN 'hold' WHEN kind = 'escrow_to_pending' THEN 'complete' ELSE 'settle' END \
         HAVING COUNT(*) > 1",
    )
    .fetch_all(db.pool())
    .await?;
    let v = rows.into_iter().map(|(task, step, n)| json!({"task_id": task, "step": step, "entries": n})).collect();
    Ok(invariant("escrow_settled_at_most_once", v))
}

/// 5. Every business event has exactly one effect: completed deposits one credit, pending none;
///    each withdrawal one hold, and one final entry once processed.
async fn one_effect_per_event(db: &Db) -> anyhow::Result<Invariant> {
    let mut v = Vec::new();
    let deposits: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT d.id, d.status, (SELECT COUNT(*) FROM journal_entries e WHERE e.reference = 'deposit:' || d.id) FROM deposits d",
    )
    .fetch_all(db.pool())
    .await?;
    for (id, status, n) in deposits {
        let expected = if status == "completed" { 1 } else { 0 };
        if n != expected {
            v.push(json!({"deposit_id": id, "status": status, "entries": n}));
        }
    }
    let withdrawals: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT w.id, w.status, \
           (SELECT COUNT(*) FROM journal_entries e WHERE e.reference = 'withdrawal:' || w.id || ':hold'), \
           (SELECT COUNT(*) FROM journal_entries e WHERE e.reference = 'withdrawal:' || w.id || ':final') \
         FROM withdrawals w",
    )
    .fetch_all(db.pool())
    .await?;
    for (id, status, holds, finals) in withdrawals {
        let expected_final = if status == "pending" { 0 } else { 1 };
        if holds != 1 || finals != expected_final {
            v.push(json!({"withdrawal_id": id, "status": status, "holds": holds, "finals": finals}));
        }
    }
    Ok(invariant("one_effect_per_event", v))
}
