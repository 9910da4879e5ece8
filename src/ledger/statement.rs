//! The wallet statement (`/ledger/transactions`): what a principal sees of the ledger, plus
//! items still pending (manual deposits, withdrawals in flight). The postings stay the truth.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Principal;
use crate::clock::rfc3339;
use crate::db::{Arg, Col, Db, Engine, Rows, SqlBuilder, Tx};
use crate::http::envelope::Pagination;
use crate::http::keyset::{self, Ordering, Page};
use crate::money::Amount;

pub const TYPES: &[&str] = &[
    "deposit",
    "withdrawal",
    "escrow_hold",
    "escrow_release",
    "escrow_refund",
    "earning",
    "platform_fee",
    "withdrawal_refund",
    "adjustment",
];

/// One statement line to write with a ledger entry.
pub struct Line<'a> {
    pub id: Option<String>,
    pub principal: &'a Principal,
    pub kind: &'static str,
    pub amount: Amount,
    pub status: &'static str,
    pub task_id: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub description: String,
}

pub async fn record(tx: &mut Tx, line: Line<'_>, now: i64) -> sqlx::Result<String> {
    Ok(record_all(tx, vec![line], now).await?.pop().unwrap_or_default())
}

/// Writes several lines in one statement.
pub async fn record_all(tx: &mut Tx, lines: Vec<Line<'_>>, now: i64) -> sqlx::Result<Vec<String>> {
    let (ids, q) = insert_lines(crate::db::engine_of(tx), lines, now);
    if let Some(q) = q {
        q.query().execute(&mut **tx).await?;
    }
    Ok(ids)
}

const LINE: &[(&str, Col)] = &[
    ("id", Col::Text),
    ("principal", Col::Text),
    ("type", Col::Text),
    ("amount", Col::Int),
    ("status", Col::Text),
    ("task_id", Col::Text),
    ("reference", Col::Text),
    ("description", Col::Text),
    ("created_at", Col::Int),
    ("updated_at", Col::Int),
];

/// The insert of `lines` (not run; `None` when there are none), with their ids.
fn insert_lines(engine: Engine, lines: Vec<Line<'_>>, now: i64) -> (Vec<String>, Option<SqlBuilder>) {
    let mut ids = Vec::with_capacity(lines.len());
    let mut rows = Rows::new(LINE);
    for line in lines {
        let id = line.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let text = |v: Option<&str>| v.map(|s| Arg::Text(s.to_string())).unwrap_or(Arg::NullText);
        rows.push([
            Arg::Text(id.clone()),
            Arg::Text(line.principal.key()),
            Arg::Text(line.kind.to_string()),
            Arg::Int(line.amount.units()),
            Arg::Text(line.status.to_string()),
            text(line.task_id),
            text(line.reference),
            Arg::Text(line.description),
            Arg::Int(now),
            Arg::Int(now),
        ]);
        ids.push(id);
    }
    let q = (!rows.is_empty()).then(|| SqlBuilder::insert_rows(engine, "wallet_transactions", &rows));
    (ids, q)
}

/// A completed line about a task (the engine writes a batch of these with its entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub principal: Principal,
    pub kind: &'static str,
    pub amount: Amount,
    pub task_id: String,
    pub description: String,
}

/// The insert of completed task lines, one statement (for `db::execute_all`); `None` if none.
pub fn items_statement(engine: Engine, items: &[Item], now: i64) -> Option<SqlBuilder> {
    let lines = items
        .iter()
        .map(|i| Line {
            id: None,
            principal: &i.principal,
            kind: i.kind,
            amount: i.amount,
            status: "completed",
            task_id: Some(&i.task_id),
            reference: None,
            description: i.description.clone(),
        })
        .collect();
    insert_lines(engine, lines, now).1
}

/// Moves a pending line (deposit, withdrawal) to its final status.
pub async fn set_status(tx: &mut Tx, id: &str, status: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE wallet_transactions SET status = $1, updated_at = $2 WHERE id = $3")
        .bind(status)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Transaction {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: Amount,
    pub currency: &'static str,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    pub task_id: Option<String>,
    pub description: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// One of the transaction types.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub cursor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    amount: i64,
    status: String,
    task_id: Option<String>,
    description: Option<String>,
    created_at: i64,
}

/// The order of a statement: newest first.
pub fn order() -> Ordering {
    Ordering::newest_first("transactions", "created_at", "id")
}

/// One page of a principal's statement (`wallet_transactions_by_principal` ends with
/// `(created_at, id)`, so a page reads from the cursor on), with its pagination block.
pub async fn list(
    db: &Db,
    principal: &Principal,
    kind: Option<&str>,
    page: &Page,
) -> sqlx::Result<(Vec<Transaction>, Pagination)> {
    let mut q = SqlBuilder::default();
    q.push(" FROM wallet_transactions WHERE principal = ?", [Arg::Text(principal.key())]);
    if let Some(kind) = kind {
        q.push(" AND type = ?", [Arg::Text(kind.to_string())]);
    }
    let columns = "id, type, amount, status, task_id, description, created_at";
    let (rows, pagination) =
        order().fetch(db, columns, q, page, |r: &Row| keyset::newest_key(r.created_at, &r.id)).await?;
    let items = rows
        .into_iter()
        .map(|r| Transaction {
            id: r.id,
            kind: r.kind,
            amount: Amount::from_units(r.amount).unwrap_or_default(),
            currency: "USD",
            status: r.status,
            task_id: r.task_id,
            description: r.description,
            created_at: rfc3339(r.created_at),
        })
        .collect();
    Ok((items, pagination))
}
